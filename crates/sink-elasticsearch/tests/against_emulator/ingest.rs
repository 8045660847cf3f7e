//! `ingest`: with Elastic's 1Password integration installed (index
//! templates whose `default_pipeline` maps raw items), `ingest: sluice`
//! bypasses that pipeline and `ingest: elastic` feeds it what Elastic Agent
//! sends.

use sluice_core::Stream;
use sluice_core::test_util::RawSource;

use super::*;

const PIPELINE: &str = "logs-1password.item_usages-1.31.0";
const FINAL: &str = ".fleet_final_pipeline-1";

/// What installing the integration's assets leaves in Elasticsearch.
fn install_integration(es: &EsEmulator) {
    for stream in Stream::ALL {
        let stream = stream.as_str();
        let pipeline = format!("logs-1password.{stream}-1.31.0");
        es.put_index_template(
            &format!("logs-1password.{stream}"),
            json!({
                "index_patterns": [format!("logs-1password.{stream}-*")],
                "data_stream": {},
                "priority": 200,
                "composed_of": ["logs@settings", format!("logs-1password.{stream}@package")],
                "template": {"settings": {"index": {"default_pipeline": pipeline, "final_pipeline": FINAL}}},
            }),
        );
        es.put_pipeline(&pipeline, json!({"processors": [{"rename": {"field": "message", "target_field": "event.original"}}]}));
    }
    es.put_pipeline(FINAL, json!({"processors": [{"set": {"field": "event.ingested", "value": "{{{_ingest.timestamp}}}"}}]}));
}

fn raw_items(count: usize) -> Vec<Vec<bytes::Bytes>> {
    let items = (0..count).map(|n| {
        bytes::Bytes::from(format!(
            r#"{{"uuid":"RAW{n:023}","timestamp":"2026-11-20T08:14:03.25Z","used_version":{n},"action":"fill"}}"#
        ))
    });
    vec![items.collect()]
}

#[tokio::test]
async fn ingest_sluice_bypasses_the_integrations_default_pipeline() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    install_integration(&es);
    let mut sink = sink(&es, std::path::Path::new("/"), "");
    sink.preflight().await.expect("no integration check for ingest: sluice");
    let statuses = run(sink, batches(3, 40), &Health::new()).await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let params = es.bulk_pipeline_params();
    assert!(!params.is_empty());
    assert!(params.iter().all(|p| p.as_deref() == Some("_none")), "{params:?}");
    // The final pipeline still runs; the integration's mapping does not.
    assert_eq!(es.pipeline_runs(), [(FINAL.to_owned(), 120)].into_iter().collect());
    let docs = es.documents(STREAM);
    assert_eq!(docs.len(), 120);
    let mut expected = serde_json::to_value(doc(7)).expect("json");
    expected["data_stream"] =
        json!({"type": "logs", "dataset": "1password.item_usages", "namespace": "default"});
    assert_eq!(docs["UUID0000000000000000000007"], expected, "stored as sluice mapped it");
}

#[tokio::test]
async fn a_named_pipeline_replaces_none_and_a_missing_one_waits_instead_of_dead_lettering() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    install_integration(&es);
    es.put_pipeline("sluice-extra", json!({"processors": []}));
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses = run_in(
        dir.path(),
        sink(&es, dir.path(), "pipeline: sluice-extra\n"),
        batches(1, 10),
        &Health::new(),
    )
    .await;
    assert_eq!(statuses, [(0, BatchStatus::Delivered)]);
    assert!(es.bulk_pipeline_params().iter().all(|p| p.as_deref() == Some("sluice-extra")));
    assert_eq!(es.pipeline_runs()["sluice-extra"], 10);

    // A pipeline that does not exist is a setting to fix, not the documents' fault.
    let health = Health::new();
    let data_dir = dir.path().to_owned();
    let sink = sink(&es, dir.path(), "pipeline: sluice-missing\n");
    let running = tokio::spawn({
        let health = health.clone();
        async move { run_in(&data_dir, sink, vec![vec![doc(500)]], &health).await }
    });
    assert!(
        wait_for(Duration::from_secs(30), || health.report().unhealthy.contains_key("es")).await
    );
    let reason = health.report().unhealthy["es"].clone();
    assert!(reason.contains("pipeline with id [sluice-missing] does not exist"), "{reason}");
    es.put_pipeline("sluice-missing", json!({"processors": []}));
    let statuses = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("delivered once the pipeline exists")
        .expect("task");
    assert_eq!(statuses, [(0, BatchStatus::Delivered)]);
    assert!(!dir.path().join("es/dead-letter.ndjson").exists());
}

#[tokio::test]
async fn ingest_elastic_sends_the_raw_item_for_the_integration_to_map() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    install_integration(&es);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(&es, dir.path(), "ingest: elastic\n");
    sink.preflight().await.expect("the integration is installed");
    let (source, statuses) = RawSource::new(raw_items(25), Stream::ItemUsages);
    run_source(dir.path(), Box::new(source), sink, &Health::new()).await;
    assert_eq!(*statuses.lock().expect("lock"), [(0, BatchStatus::Delivered)]);
    assert!(es.bulk_pipeline_params().iter().all(Option::is_none), "the default pipeline runs");
    assert_eq!(
        es.pipeline_runs(),
        [(FINAL.to_owned(), 25), (PIPELINE.to_owned(), 25)].into_iter().collect()
    );
    let docs = es.documents(STREAM);
    assert_eq!(docs.len(), 25);
    let stored = &docs["RAW00000000000000000000003"];
    assert_eq!(
        stored["message"],
        r#"{"uuid":"RAW00000000000000000000003","timestamp":"2026-11-20T08:14:03.25Z","used_version":3,"action":"fill"}"#
    );
    assert_eq!(stored["tags"], json!(["forwarded", "1password-item_usages"]));
    assert_eq!(stored["data_stream"]["dataset"], "1password.item_usages");
    assert!(stored["@timestamp"].is_string());
    assert!(stored.get("onepassword").is_none());
}

#[tokio::test]
async fn ingest_elastic_without_the_integration_refuses_to_start_and_says_how_to_install_it() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    let mut sink = sink(&es, std::path::Path::new("/"), "ingest: elastic\n");
    let error = sink.preflight().await.expect_err("no templates").to_string();
    assert!(
        error.contains("no index template logs-1password.signin_attempts")
            && error.contains("Install 1Password assets")
            && error.contains("ingest: sluice"),
        "{error}"
    );
    // The template without its pipeline (a half-removed integration).
    install_integration(&es);
    let mut sink = sink_with_missing_pipeline(&es).await;
    let error = sink.preflight().await.expect_err("no pipeline").to_string();
    assert!(
        error.contains("the ingest pipeline logs-1password.signin_attempts-2.0.0 does not exist"),
        "{error}"
    );
}

async fn sink_with_missing_pipeline(es: &EsEmulator) -> Box<dyn Sink> {
    es.put_index_template(
        "logs-1password.signin_attempts",
        json!({"index_patterns": ["logs-1password.signin_attempts-*"], "priority": 200,
               "template": {"settings": {"index.default_pipeline": "logs-1password.signin_attempts-2.0.0"}}}),
    );
    sink(es, std::path::Path::new("/"), "ingest: elastic\n")
}
