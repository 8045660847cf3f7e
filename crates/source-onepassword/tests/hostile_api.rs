//! The onepassword source against a hand-written Events API that sends what
//! the simulator cannot: an item with a number out of range, and headers
//! asking for absurd waits. Nothing may panic, stop the stream or be lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice_core::AckStatus;
use sluice_core::health::Health;
use sluice_core::test_util::{RecordingSink, wait_for};
use sluice_core::topology::{SinkPiece, SourcePiece, TopologyOptions, start};
use sluice_source_onepassword::{OnePasswordSource, OnePasswordSourceConfig};

const GOOD_1: &str = r#"{"uuid":"A1","timestamp":"2026-11-29T10:00:00Z","action":"join"}"#;
const BAD: &str = r#"{"uuid":"B2","timestamp":"2026-11-29T10:00:01Z","n":1e400}"#;
const GOOD_3: &str = r#"{"uuid":"C3","timestamp":"2026-11-29T10:00:02Z","action":"join"}"#;

/// Serves one page with the bad item in the middle, then empty pages; every
/// answer carries `RateLimit-Reset: 1e20` (which once panicked the poller).
async fn api(pages: Arc<Mutex<u32>>) -> String {
    let introspect = || async {
        axum::Json(
            serde_json::json!({"uuid": "T", "issued_at": "2026-11-01T00:00:00Z", "features": ["auditevents"]}),
        )
    };
    let events = move |_headers: HeaderMap| {
        let pages = pages.clone();
        async move {
            let mut served = pages.lock().expect("lock");
            *served += 1;
            let body = if *served == 1 {
                format!(r#"{{"cursor":"c1","has_more":false,"items":[{GOOD_1},{BAD},{GOOD_3}]}}"#)
            } else {
                r#"{"cursor":"c1","has_more":false,"items":[]}"#.to_owned()
            };
            ([("content-type", "application/json"), ("ratelimit-reset", "1e20")], body)
                .into_response()
        }
    };
    let app = Router::new()
        .route("/api/v2/auth/introspect", get(introspect))
        .route("/api/v2/auditevents", post(events));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

fn token() -> String {
    let claims = r#"{"aud":["127.0.0.1"],"sub":"T","1password.com/fts":["auditevents"]}"#;
    format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
}

#[tokio::test]
async fn an_item_with_a_number_out_of_range_becomes_a_pipeline_error_and_the_cursor_moves() {
    let pages = Arc::new(Mutex::new(0));
    let url = api(pages.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), token()).expect("token");
    let yaml = format!(
        "url: {url}\nallow_custom_url: true\ntoken_file: token\nstart_time: 2d\ninterval_secs: 1\n"
    );
    let config: OnePasswordSourceConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    let source = OnePasswordSource::new(config.validate(dir.path()).expect("valid"));
    let sink = RecordingSink::new(AckStatus::Delivered);
    let options = TopologyOptions {
        data_dir: dir.path().join("data"),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 2, ..Default::default() },
        health: Health::new(),
        taps: Default::default(),
    };
    let topology = start(
        vec![SourcePiece {
            id: "op".into(),
            type_name: "onepassword",
            outputs: vec![],
            source: Box::new(source),
        }],
        vec![],
        vec![SinkPiece {
            id: "out".into(),
            type_name: "test",
            inputs: vec!["op".into()],
            sink: Box::new(sink.clone()),
        }],
        &options,
    );
    let checkpoint = dir.path().join("data/op/audit_events.json");
    let committed = || {
        std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|c| c["cursor"] == "c1")
    };
    assert!(
        wait_for(Duration::from_secs(30), || sink.values().len() >= 3 && committed()).await,
        "{:?}",
        sink.values()
    );
    let report = topology.stop(Duration::from_secs(10)).await;
    assert!(
        report.failed.is_empty() && report.timed_out.is_empty(),
        "no panic, no failure: {report:?}"
    );
    let values: Vec<serde_json::Value> =
        sink.values().iter().map(|v| serde_json::to_value(v).expect("json")).collect();
    assert_eq!(values[0]["uuid"], "A1");
    assert_eq!(values[2]["uuid"], "C3");
    assert_eq!(values[1]["event"]["kind"], "pipeline_error");
    assert_eq!(values[1]["event"]["original"], BAD, "the raw item is kept");
    assert_eq!(values[1]["error"]["type"], "parse_failed");
    assert!(*pages.lock().expect("lock") >= 1);
}
