//! The elasticsearch sink against the strict emulator, through a topology:
//! idempotent creates, per-item retry and dead letter, outages, credentials.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::BatchStatus;
use sluice_core::component::Sink;
use sluice_core::health::Health;
use sluice_core::test_util::{VecSource, wait_for};
use sluice_core::topology::{SinkPiece, SourcePiece, TopologyOptions, start};
use sluice_sink_elasticsearch::ElasticsearchSinkConfig;
use sluice_testkit::{EsAuth, EsEmulator, EsEmulatorConfig, EsFault};

fn doc(n: usize) -> vrl::value::Value {
    let value = json!({
        "@timestamp": "2026-11-20T08:14:03.250Z",
        "event": {"kind": "event", "dataset": "1password.item_usages"},
        "onepassword": {"uuid": format!("UUID{n:022}"), "used_version": n},
    });
    vrl::value::Value::from(value)
}

fn sink(es: &EsEmulator, dir: &std::path::Path, extra: &str) -> Box<dyn Sink> {
    let yaml = format!(
        "endpoints: ['{}']\nbatch: {{max_events: 50, timeout_secs: 0.05}}\nretry_max_backoff_secs: 1\nrefused_retry_secs: 1\ndead_letter: {{path: dead.ndjson}}\n{extra}",
        es.url()
    );
    let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    Box::new(config.validate(dir).expect("valid"))
}

/// Run `batches` through the sink; the batch statuses, in order.
async fn run(
    sink: Box<dyn Sink>,
    batches: Vec<Vec<vrl::value::Value>>,
    health: &Health,
) -> Vec<(usize, BatchStatus)> {
    let (source, statuses) = VecSource::new(batches);
    let options = TopologyOptions {
        data_dir: std::env::temp_dir(),
        channel_capacity: 2,
        health: health.clone(),
    };
    let mut topology = start(
        vec![SourcePiece {
            id: "in".into(),
            type_name: "vec",
            outputs: vec![],
            source: Box::new(source),
        }],
        vec![],
        vec![SinkPiece {
            id: "es".into(),
            type_name: "elasticsearch",
            inputs: vec!["in".into()],
            sink,
        }],
        &options,
    );
    while let Some(exit) = topology.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
    statuses.lock().expect("lock").clone()
}

fn batches(count: usize, per_batch: usize) -> Vec<Vec<vrl::value::Value>> {
    (0..count).map(|b| (0..per_batch).map(|i| doc(b * per_batch + i)).collect()).collect()
}

const STREAM: &str = "logs-1password.item_usages-default";

#[tokio::test]
async fn documents_land_in_their_data_stream_once_even_when_replayed() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses = run(sink(&es, dir.path(), ""), batches(4, 30), &Health::new()).await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let docs = es.documents(STREAM);
    assert_eq!(docs.len(), 120);
    let first = &docs["UUID0000000000000000000000"];
    assert_eq!(
        first["data_stream"],
        json!({"type": "logs", "dataset": "1password.item_usages", "namespace": "default"})
    );
    // A replay (a crash before the checkpoint) is answered 409 and counts as delivered.
    let statuses = run(sink(&es, dir.path(), ""), batches(4, 30), &Health::new()).await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert_eq!(es.documents(STREAM).len(), 120, "no duplicate");
    assert!(!dir.path().join("dead.ndjson").exists());
}

#[tokio::test]
async fn item_429s_are_retried_and_mapping_errors_go_to_the_dead_letter() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.throttle_items(25);
    es.reject_documents("/onepassword/used_version", json!(7));
    es.reject_documents("/onepassword/used_version", json!(42));
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses = run(sink(&es, dir.path(), ""), batches(2, 50), &Health::new()).await;
    assert_eq!(
        statuses,
        [(0, BatchStatus::Rejected), (1, BatchStatus::Delivered)],
        "a page with a dead-lettered document is final"
    );
    assert_eq!(
        es.documents(STREAM).len(),
        98,
        "all but the two rejected, the throttled ones included"
    );
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead.ndjson"))
        .expect("dead letter")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["status"], 400);
    assert_eq!(dead[0]["error"]["type"], "mapper_parsing_exception");
    assert!(
        dead[0]["error"]["reason"]
            .as_str()
            .expect("reason")
            .contains("failed to parse field [onepassword.used_version]")
    );
    assert_eq!(dead[0]["index"], STREAM);
    assert_eq!(dead[0]["document"]["onepassword"]["uuid"], "UUID0000000000000000000007");
    assert_eq!(dead[0]["sluice"]["component_id"], "es");
}

#[tokio::test]
async fn whole_request_failures_and_an_outage_are_retried_until_delivered() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    for fault in [EsFault::Status(503), EsFault::Status(429), EsFault::Reset, EsFault::Status(502)]
    {
        es.push_fault(fault);
    }
    es.refuse_connections().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = sink(&es, dir.path(), "");
    let health = Health::new();
    let running = tokio::spawn({
        let health = health.clone();
        async move { run(sink, batches(3, 20), &health).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!running.is_finished(), "nothing is acknowledged while Elasticsearch is down");
    es.resume().await;
    let statuses = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("finishes")
        .expect("task");
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert_eq!(es.documents(STREAM).len(), 60);
}

#[tokio::test]
async fn refused_credentials_mark_health_and_deliver_nothing() {
    let es = EsEmulator::start(EsEmulatorConfig {
        auth: EsAuth::ApiKey("right-key".into()),
        ..EsEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = sink(&es, dir.path(), "auth: {strategy: api_key, api_key: wrong-key}\n");
    let health = Health::new();
    let running = tokio::spawn({
        let health = health.clone();
        async move { run(refused, batches(1, 5), &health).await }
    });
    assert!(
        wait_for(Duration::from_secs(10), || health.report().unhealthy.contains_key("es")).await
    );
    assert!(health.report().unhealthy["es"].contains("refuses the credentials (HTTP 401)"));
    assert_eq!(es.document_count(), 0);
    running.abort();

    let mut good = sink(&es, dir.path(), "auth: {strategy: api_key, api_key: right-key}\n");
    good.preflight().await.expect("accepted");
    let mut bad = sink(&es, dir.path(), "auth: {strategy: api_key, api_key: wrong-key}\n");
    let error = bad.preflight().await.expect_err("refused").to_string();
    assert_eq!(error, "Elasticsearch refused the credentials (HTTP 401); check `auth`");
    assert!(!error.contains("wrong-key"));
}

#[tokio::test]
async fn an_oversized_batch_is_split() {
    let es = EsEmulator::start(EsEmulatorConfig {
        max_content_length: 6_000,
        ..EsEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run(sink(&es, dir.path(), "compression: none\n"), batches(1, 50), &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Delivered)]);
    assert_eq!(es.documents(STREAM).len(), 50);
}
