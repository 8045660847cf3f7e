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
use sluice_source_onepassword::{OnePasswordSource, OnePasswordSourceConfig};
use sluice_topology::{SinkPiece, SourcePiece, TopologyOptions, start};

const GOOD_1: &str = r#"{"uuid":"A1","timestamp":"2026-11-29T10:00:00Z","action":"join"}"#;
const BAD: &str = r#"{"uuid":"B2","timestamp":"2026-11-29T10:00:01Z","n":1e400}"#;
const GOOD_3: &str = r#"{"uuid":"C3","timestamp":"2026-11-29T10:00:02Z","action":"join"}"#;

fn token() -> String {
    let claims = r#"{"aud":["127.0.0.1"],"sub":"T","1password.com/fts":["auditevents"]}"#;
    format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
}

/// One page with the bad item in the middle, then empty pages.
fn out_of_range_page(n: u32) -> Vec<u8> {
    if n == 1 {
        format!(r#"{{"cursor":"c1","has_more":false,"items":[{GOOD_1},{BAD},{GOOD_3}]}}"#)
            .into_bytes()
    } else {
        br#"{"cursor":"c1","has_more":false,"items":[]}"#.to_vec()
    }
}

#[tokio::test]
async fn an_item_with_a_number_out_of_range_becomes_a_pipeline_error_and_the_cursor_moves() {
    let pages = Arc::new(Mutex::new(0));
    let url = api_serving(pages.clone(), out_of_range_page).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (topology, sink) = source_into(&url, dir.path(), 1);
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

/// An Events API whose `n`-th answer (from 1) to the audit events stream is
/// `page(n)`; every answer carries `RateLimit-Reset: 1e20` (which once
/// panicked the poller).
async fn api_serving(pages: Arc<Mutex<u32>>, page: fn(u32) -> Vec<u8>) -> String {
    let introspect = || async {
        axum::Json(
            serde_json::json!({"uuid": "T", "issued_at": "2026-11-01T00:00:00Z", "features": ["auditevents"]}),
        )
    };
    let events = move |_headers: HeaderMap| {
        let pages = pages.clone();
        async move {
            let n = {
                let mut served = pages.lock().expect("lock");
                *served += 1;
                *served
            };
            ([("content-type", "application/json"), ("ratelimit-reset", "1e20")], page(n))
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

/// The source (polling every `interval_secs`) into a recording sink.
fn source_into(
    url: &str,
    dir: &std::path::Path,
    interval_secs: u32,
) -> (sluice_topology::RunningTopology, RecordingSink) {
    std::fs::write(dir.join("token"), token()).expect("token");
    let yaml = format!(
        "url: {url}\nallow_custom_url: true\ntoken_file: token\nstart_time: 2d\ninterval_secs: {interval_secs}\n"
    );
    let config: OnePasswordSourceConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    let source = OnePasswordSource::new(config.validate(dir).expect("valid"));
    let sink = RecordingSink::new(AckStatus::Delivered);
    let options = TopologyOptions {
        data_dir: dir.join("data"),
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
    (topology, sink)
}

/// Review M3 (reliability 2026-12): `has_more` with no items and a new
/// cursor every time took the token's whole quota, forever; a cursor cycle
/// re-delivered the same events without end. Both now wait an interval.
#[tokio::test]
async fn a_lying_cursor_is_not_followed_at_the_rate_limit() {
    fn endless(n: u32) -> Vec<u8> {
        format!(r#"{{"cursor":"c{n}","has_more":true,"items":[]}}"#).into_bytes()
    }
    fn cycle(n: u32) -> Vec<u8> {
        let cursor = if n.is_multiple_of(2) { "p2" } else { "p1" };
        format!(r#"{{"cursor":"{cursor}","has_more":true,"items":[{GOOD_1}]}}"#).into_bytes()
    }
    for (name, page, most) in [("endless", endless as fn(u32) -> Vec<u8>, 5), ("cycle", cycle, 3)] {
        let pages = Arc::new(Mutex::new(0));
        let url = api_serving(pages.clone(), page).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (topology, sink) = source_into(&url, dir.path(), 600);
        assert!(wait_for(Duration::from_secs(30), || *pages.lock().expect("lock") >= most).await);
        // Within the 600 s interval no more pages are asked for.
        let asked = *pages.lock().expect("lock");
        assert!(
            !wait_for(Duration::from_secs(2), || *pages.lock().expect("lock") > asked).await,
            "{name}: the stream went on polling: {} pages",
            *pages.lock().expect("lock")
        );
        assert_eq!(asked, most, "{name}: waits after {most} pages");
        if name == "cycle" {
            assert_eq!(sink.values().len(), 3, "each page once");
        }
        let report = topology.stop(Duration::from_secs(10)).await;
        assert!(report.failed.is_empty() && report.timed_out.is_empty(), "{report:?}");
    }
}

/// Review L1: invalid UTF-8 in one item made the whole page unreadable and
/// blocked its stream; the item becomes a `pipeline_error` and the rest go on.
#[tokio::test]
async fn an_item_with_invalid_utf8_becomes_a_pipeline_error_and_the_rest_go_on() {
    fn page(n: u32) -> Vec<u8> {
        if n > 1 {
            return br#"{"cursor":"c1","has_more":false,"items":[]}"#.to_vec();
        }
        let mut body =
            format!(r#"{{"cursor":"c1","has_more":false,"items":[{GOOD_1},"#).into_bytes();
        body.extend_from_slice(b"{\"uuid\":\"U2\",\"name\":\"caf\xe9\"}");
        body.extend_from_slice(format!(",{GOOD_3}]}}").as_bytes());
        body
    }
    let pages = Arc::new(Mutex::new(0));
    let url = api_serving(pages, page).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (topology, sink) = source_into(&url, dir.path(), 1);
    assert!(wait_for(Duration::from_secs(30), || sink.values().len() >= 3).await);
    let report = topology.stop(Duration::from_secs(10)).await;
    assert!(report.failed.is_empty() && report.timed_out.is_empty(), "{report:?}");
    let values: Vec<serde_json::Value> =
        sink.values().iter().map(|v| serde_json::to_value(v).expect("json")).collect();
    assert_eq!(values[0]["uuid"], "A1");
    assert_eq!(values[2]["uuid"], "C3");
    assert_eq!(values[1]["event"]["kind"], "pipeline_error");
    assert!(values[1]["error"]["message"].to_string().contains("not valid UTF-8"), "{}", values[1]);
    assert!(values[1]["event"]["original"].as_str().expect("original").contains("caf\u{FFFD}"));
}
