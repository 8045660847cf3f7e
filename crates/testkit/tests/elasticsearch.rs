//! The emulator is as strict as Elasticsearch's documentation says.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_testkit::{EsAuth, EsEmulator, EsEmulatorConfig, EsFault};

async fn post(
    es: &EsEmulator,
    body: &str,
    content_type: Option<&str>,
    auth: Option<&str>,
) -> (StatusCode, Value) {
    let mut request =
        reqwest::Client::new().post(format!("{}/_bulk", es.url())).body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("answer");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

const NDJSON: Option<&str> = Some("application/x-ndjson");

#[tokio::test]
async fn bulk_framing_content_type_and_newline_are_enforced() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    let one = "{\"create\":{\"_index\":\"logs-1password.audit_events-default\",\"_id\":\"a\"}}\n{\"@timestamp\":\"2026-11-20T00:00:00Z\"}\n";
    let (status, body) = post(&es, one, Some("application/json"), None).await;
    assert_eq!((status, body["status"].clone()), (StatusCode::NOT_ACCEPTABLE, json!(406)));
    let (status, body) = post(&es, one.trim_end(), NDJSON, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["reason"], "The bulk request must be terminated by a newline [\\n]");
    let (status, body) = post(&es, "{\"nope\":{}}\n{}\n", NDJSON, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(&es, one, NDJSON, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"], false);
    assert_eq!(body["items"][0]["create"]["status"], 201);
    assert!(body["took"].is_u64());
}

#[tokio::test]
async fn items_follow_data_stream_index_and_conflict_rules() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    let body = [
        r#"{"create":{"_index":"logs-1password.audit_events-default","_id":"a"}}"#,
        r#"{"@timestamp":"2026-11-20T00:00:00Z","n":1}"#,
        r#"{"create":{"_index":"logs-1password.audit_events-default","_id":"a"}}"#,
        r#"{"@timestamp":"2026-11-20T00:00:00Z","n":2}"#,
        r#"{"index":{"_index":"logs-1password.audit_events-default","_id":"b"}}"#,
        r#"{"@timestamp":"2026-11-20T00:00:00Z"}"#,
        r#"{"create":{"_index":"logs-1password.audit_events-default","_id":"c"}}"#,
        r#"{"no_timestamp":true}"#,
        r#"{"create":{"_index":"Bad-Index","_id":"d"}}"#,
        r#"{"x":1}"#,
    ]
    .join("\n")
        + "\n";
    let (status, body) = post(&es, &body, NDJSON, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"], true);
    let statuses: Vec<u64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["create"]["status"].as_u64().or(i["index"]["status"].as_u64()).expect("status"))
        .collect();
    assert_eq!(statuses, [201, 409, 400, 400, 400]);
    assert_eq!(body["items"][1]["create"]["error"]["type"], "version_conflict_engine_exception");
    assert_eq!(
        body["items"][2]["index"]["error"]["reason"],
        "only write ops with an op_type of create are allowed in data streams"
    );
    assert_eq!(
        body["items"][3]["create"]["error"]["reason"],
        "data stream timestamp field [@timestamp] is missing"
    );
    assert_eq!(body["items"][4]["create"]["error"]["type"], "invalid_index_name_exception");
    assert_eq!(
        es.documents("logs-1password.audit_events-default")["a"]["n"],
        1,
        "the first create wins"
    );
}

#[tokio::test]
async fn gzip_auth_faults_and_size_limits() {
    let es = EsEmulator::start(EsEmulatorConfig {
        auth: EsAuth::Basic { user: "elastic".into(), password: "s3cret".into() },
        max_content_length: 400,
        ..EsEmulatorConfig::default()
    })
    .await;
    let one = "{\"create\":{\"_index\":\"x\",\"_id\":\"1\"}}\n{\"a\":1}\n";
    let (status, body) = post(&es, one, NDJSON, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["type"], "security_exception");
    let basic = "Basic ZWxhc3RpYzpzM2NyZXQ=";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(one.as_bytes()).expect("gzip");
    let response = reqwest::Client::new()
        .post(format!("{}/_bulk", es.url()))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .header("authorization", basic)
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(es.documents("x").len(), 1);
    es.push_fault(EsFault::Status(429));
    assert_eq!(post(&es, one, NDJSON, Some(basic)).await.0, StatusCode::TOO_MANY_REQUESTS);
    let big = one.repeat(20);
    assert_eq!(post(&es, &big, NDJSON, Some(basic)).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    es.throttle_items(1);
    let (_, body) = post(
        &es,
        "{\"create\":{\"_index\":\"x\",\"_id\":\"2\"}}\n{\"a\":2}\n",
        NDJSON,
        Some(basic),
    )
    .await;
    assert_eq!(body["items"][0]["create"]["status"], 429);
    assert_eq!(body["items"][0]["create"]["error"]["type"], "es_rejected_execution_exception");
    let root: Value = reqwest::Client::new()
        .get(es.url())
        .header("authorization", basic)
        .send()
        .await
        .expect("GET /")
        .json()
        .await
        .expect("json");
    assert_eq!(root["version"]["number"], "8.15.0");
}
