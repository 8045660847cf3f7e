//! `ingest` against an Elasticsearch laid out as Fleet lays it out when the
//! 1Password integration's assets are installed (`EsEmulator::
//! install_1password_integration`: empty index-template settings, the
//! pipelines in `@package` and `.fleet_agent_id_verification-1`, the
//! package's pipelines from upstream fixtures, run by the emulator):
//! `ingest: elastic` feeds the package pipeline what Elastic Agent sends;
//! `ingest: sluice` skips it but still runs the user's `@custom` hooks and
//! keeps `event.original` through Fleet's final pipeline.

use sluice_core::test_util::RawSource;
use sluice_testkit::fleet::{FINAL_PIPELINE, PACKAGE_VERSION};

use super::*;

const AUDIT: &str = "logs-1password.audit_events-default";
const HOOKS: &str = sluice_sink_elasticsearch::HOOKS_PIPELINE;

/// A document as ecs.vrl maps an audit event: `event.original` kept.
fn audit_doc(n: usize) -> vrl::value::Value {
    vrl::value::Value::from(json!({
        "@timestamp": "2026-11-20T08:14:03.250Z",
        "event": {"kind": "event", "dataset": "1password.audit_events", "action": "join",
                  "original": format!(r#"{{"uuid":"AUDIT{n:021}","action":"join"}}"#)},
        "onepassword": {"uuid": format!("AUDIT{n:021}")},
    }))
}

fn audit_batches(count: usize, per_batch: usize) -> Vec<Vec<vrl::value::Value>> {
    (0..count).map(|b| (0..per_batch).map(|i| audit_doc(b * per_batch + i)).collect()).collect()
}

/// A user's hook: Fleet's docs tell users to add processing here.
fn add_custom_hook(es: &EsEmulator) {
    es.put_pipeline(
        "logs-1password.audit_events@custom",
        json!({"processors": [{"set": {"field": "labels.team", "value": "secops"}}]}),
    );
}

#[tokio::test]
async fn ingest_sluice_runs_the_users_custom_hooks_and_keeps_event_original_through_fleets_final_pipeline()
 {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
    add_custom_hook(&es);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(&es, dir.path(), "");
    sink.preflight().await.expect("preflight");
    sink.prepare().await.expect("installs the hooks pipeline");
    let statuses = run_in(dir.path(), sink, audit_batches(3, 40), &Health::new()).await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let params = es.bulk_pipeline_params();
    assert!(!params.is_empty());
    assert!(params.iter().all(|p| p.as_deref() == Some(HOOKS)), "{params:?}");
    // The user's hook and Fleet's final pipeline ran; the package's mapping did not.
    let runs = es.pipeline_runs();
    assert_eq!(runs.get(HOOKS), Some(&120));
    assert_eq!(runs.get("logs-1password.audit_events@custom"), Some(&120));
    assert_eq!(runs.get(FINAL_PIPELINE), Some(&120));
    assert_eq!(runs.len(), 3, "{runs:?}");
    let docs = es.documents(AUDIT);
    assert_eq!(docs.len(), 120);
    let stored = &docs["AUDIT000000000000000000007"];
    assert_eq!(stored["labels"]["team"], "secops");
    assert_eq!(
        stored["event"]["original"],
        r#"{"uuid":"AUDIT000000000000000000007","action":"join"}"#
    );
    assert_eq!(stored["tags"], json!(["preserve_original_event"]));
    assert_eq!(stored["event"]["agent_id_status"], "missing", "set by Fleet's final pipeline");
    assert!(stored["event"]["ingested"].is_string());
    assert_eq!(stored["data_stream"]["dataset"], "1password.audit_events");
}

#[tokio::test]
async fn the_preflight_alone_changes_nothing_in_elasticsearch() {
    // `sluice validate --network` runs the preflight only: a check installs nothing.
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
    let mut sink = sink(&es, std::path::Path::new("/"), "");
    sink.preflight().await.expect("preflight");
    sink.preflight().await.expect("again");
    let pipelines = reqwest_get(&es, &format!("/_ingest/pipeline/{HOOKS}")).await;
    assert_eq!(
        pipelines, 404,
        "the hooks pipeline is installed by prepare (a start), not by a check"
    );
}

async fn reqwest_get(es: &EsEmulator, path: &str) -> u16 {
    reqwest::get(format!("{}{path}", es.url())).await.expect("GET").status().as_u16()
}

#[tokio::test]
async fn event_original_drop_sends_documents_without_it_or_the_tag() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(&es, dir.path(), "event_original: drop\n");
    sink.preflight().await.expect("preflight");
    sink.prepare().await.expect("prepare");
    let statuses = run_in(dir.path(), sink, audit_batches(1, 5), &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Delivered)]);
    let stored = &es.documents(AUDIT)["AUDIT000000000000000000003"];
    assert!(stored["event"].get("original").is_none(), "{stored}");
    assert!(stored.get("tags").is_none(), "{stored}");
}

#[tokio::test]
async fn without_manage_pipeline_ingest_sluice_sends_none_and_the_hooks_do_not_run() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
    add_custom_hook(&es);
    es.forbid_pipeline_writes();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(&es, dir.path(), "");
    sink.preflight().await.expect("preflight");
    sink.prepare().await.expect("a warning, not a failure");
    let statuses = run_in(dir.path(), sink, audit_batches(1, 10), &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Delivered)]);
    assert!(es.bulk_pipeline_params().iter().all(|p| p.as_deref() == Some("_none")));
    let runs = es.pipeline_runs();
    assert_eq!(runs.get("logs-1password.audit_events@custom"), None);
    assert_eq!(runs.get(FINAL_PIPELINE), Some(&10));
    // `event.original` still survives the final pipeline: the tag does not depend on the hooks.
    assert!(es.documents(AUDIT)["AUDIT000000000000000000001"]["event"]["original"].is_string());
}

#[tokio::test]
async fn a_named_pipeline_replaces_none_and_a_missing_one_waits_instead_of_dead_lettering() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
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

/// Raw audit items as the Events API returns them.
fn raw_audit_items(count: usize) -> Vec<Vec<bytes::Bytes>> {
    let items = (0..count).map(|n| {
        bytes::Bytes::from(format!(
            r#"{{"uuid":"RAW{n:023}","timestamp":"2026-11-20T08:14:03.25Z","actor_uuid":"IK4P","actor_details":{{"uuid":"IK4P","name":"Ada Lovelace","email":"ada@example.com"}},"action":"join","object_type":"user","object_uuid":"WZCV","session":{{"ip":"192.0.2.{n}"}}}}"#
        ))
    });
    vec![items.collect()]
}

#[tokio::test]
async fn ingest_elastic_starts_on_a_fleet_install_and_the_package_pipeline_maps_every_event_once() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(&es, dir.path(), "ingest: elastic\n");
    sink.preflight().await.expect("the pipeline is found in the @package component template");
    let (source, statuses) = RawSource::new(raw_audit_items(25), "1password.audit_events");
    run_source(dir.path(), Box::new(source), sink, &Health::new()).await;
    assert_eq!(*statuses.lock().expect("lock"), [(0, BatchStatus::Delivered)]);
    assert!(es.bulk_pipeline_params().iter().all(Option::is_none), "the default pipeline runs");
    let package = format!("logs-1password.audit_events-{PACKAGE_VERSION}");
    assert_eq!(
        es.pipeline_runs(),
        [(FINAL_PIPELINE.to_owned(), 25), (package, 25)].into_iter().collect()
    );
    let docs = es.documents(AUDIT);
    assert_eq!(docs.len(), 25, "each event stored once");
    assert_eq!(es.conflicts(), 0);
    let stored = &docs["RAW00000000000000000000003"];
    assert_eq!(stored["event"]["action"], "join");
    assert_eq!(stored["related"]["user"], json!(["Ada Lovelace", "IK4P", "WZCV"]));
    assert_eq!(stored["related"]["ip"], json!(["192.0.2.3"]));
    assert_eq!(stored["user"]["full_name"], "Ada Lovelace");
    assert_eq!(stored["source"]["ip"], "192.0.2.3");
    assert_eq!(stored["@timestamp"], "2026-11-20T08:14:03.250Z");
    assert_eq!(stored["ecs"]["version"], "8.11.0");
    assert_eq!(stored["tags"], json!(["forwarded", "1password-audit_events"]));
    // Elastic Agent's default policy sets no preserve_original_event either: the final pipeline drops it.
    assert!(stored["event"].get("original").is_none());
    assert!(stored.get("message").is_none());
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
    // A half-removed integration: the package pipeline is gone.
    es.install_1password_integration();
    let package = format!("logs-1password.signin_attempts-{PACKAGE_VERSION}");
    es.remove_pipeline(&package);
    let mut sink = self::sink(&es, std::path::Path::new("/"), "ingest: elastic\n");
    let error = sink.preflight().await.expect_err("no pipeline").to_string();
    assert!(error.contains(&format!("the ingest pipeline {package} does not exist")), "{error}");
    // The @package component template is gone: nothing names a default pipeline.
    es.remove_component_template("logs-1password.signin_attempts@package");
    let mut sink = self::sink(&es, std::path::Path::new("/"), "ingest: elastic\n");
    let error = sink.preflight().await.expect_err("no default pipeline").to_string();
    assert!(
        error.contains("neither the index template logs-1password.signin_attempts nor its component templates set index.default_pipeline"),
        "{error}"
    );
}

#[tokio::test]
async fn a_hooks_pipeline_an_administrator_installed_is_used_without_manage_pipeline() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.install_1password_integration();
    add_custom_hook(&es);
    // What docker/elastic/setup.sh does as `elastic`: the same body sluice would install.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut installer = sink(&es, dir.path(), "");
    installer.prepare().await.expect("installs");
    es.forbid_pipeline_writes();
    let mut sink = sink(&es, dir.path(), "");
    sink.prepare().await.expect("finds the installed pipeline");
    let statuses = run_in(dir.path(), sink, audit_batches(1, 4), &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Delivered)]);
    assert!(es.bulk_pipeline_params().iter().all(|p| p.as_deref() == Some(HOOKS)));
    assert_eq!(es.pipeline_runs().get("logs-1password.audit_events@custom"), Some(&4));
}
