//! The elasticsearch sink against the strict emulator, through a topology:
//! idempotent creates, per-item retry and dead letter, outages, credentials,
//! and the rule that only a document's own fault is a rejection.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::BatchStatus;
use sluice_core::component::Sink;
use sluice_core::health::Health;
use sluice_core::test_util::Statuses;
use sluice_core::test_util::{VecSource, wait_for};
use sluice_sink_elasticsearch::{ElasticsearchSink, ElasticsearchSinkConfig};
use sluice_testkit::{EsAuth, EsEmulator, EsEmulatorConfig, EsFault, ItemFailure};
use sluice_topology::{SinkPiece, SourcePiece, TopologyOptions, start};

fn doc(n: usize) -> vrl::value::Value {
    let value = json!({
        "@timestamp": "2026-11-20T08:14:03.250Z",
        "event": {"kind": "event", "dataset": "1password.item_usages"},
        "onepassword": {"uuid": format!("UUID{n:022}"), "used_version": n},
    });
    vrl::value::Value::from(value)
}

fn sink(es: &EsEmulator, dir: &std::path::Path, extra: &str) -> Box<dyn Sink> {
    let batch =
        if extra.contains("batch:") { "" } else { "batch: {max_events: 50, timeout_secs: 0.05}\n" };
    let yaml = format!(
        "endpoints: ['{}']\n{batch}request: {{retry_max_backoff_secs: 1, refused_retry_secs: 1}}\n{extra}",
        es.url()
    );
    let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    Box::new(ElasticsearchSink::new(config.validate(dir).expect("valid")))
}

/// Run `batches` through the sink with `data_dir`; the batch statuses, in order.
async fn run_in(
    data_dir: &std::path::Path,
    sink: Box<dyn Sink>,
    batches: Vec<Vec<vrl::value::Value>>,
    health: &Health,
) -> Vec<(usize, BatchStatus)> {
    run_recording(data_dir, sink, batches, health, None).await
}

async fn run(
    sink: Box<dyn Sink>,
    batches: Vec<Vec<vrl::value::Value>>,
    health: &Health,
) -> Vec<(usize, BatchStatus)> {
    let dir = tempfile::tempdir().expect("tempdir");
    run_in(dir.path(), sink, batches, health).await
}

/// As [`run_in`], also sharing the statuses as they come.
async fn run_recording(
    data_dir: &std::path::Path,
    sink: Box<dyn Sink>,
    batches: Vec<Vec<vrl::value::Value>>,
    health: &Health,
    share: Option<tokio::sync::oneshot::Sender<Statuses>>,
) -> Vec<(usize, BatchStatus)> {
    let (source, statuses) = VecSource::new(batches);
    if let Some(share) = share {
        let _ = share.send(statuses.clone());
    }
    run_source(data_dir, Box::new(source), sink, health).await;
    statuses.lock().expect("lock").clone()
}

/// Run `source` into `sink` with `data_dir` until both finish.
async fn run_source(
    data_dir: &std::path::Path,
    source: Box<dyn sluice_core::component::Source>,
    sink: Box<dyn Sink>,
    health: &Health,
) {
    let options = TopologyOptions {
        data_dir: data_dir.to_owned(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 2, ..Default::default() },
        health: health.clone(),
        taps: Default::default(),
    };
    let mut topology = start(
        vec![SourcePiece { id: "in".into(), type_name: "test", outputs: vec![], source }],
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
}

fn batches(count: usize, per_batch: usize) -> Vec<Vec<vrl::value::Value>> {
    (0..count).map(|b| (0..per_batch).map(|i| doc(b * per_batch + i)).collect()).collect()
}

const STREAM: &str = "logs-1password.item_usages-default";

#[tokio::test]
async fn documents_land_in_their_data_stream_once_even_when_replayed() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run_in(dir.path(), sink(&es, dir.path(), ""), batches(4, 30), &Health::new()).await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let docs = es.documents(STREAM);
    assert_eq!(docs.len(), 120);
    let first = &docs["UUID0000000000000000000000"];
    assert_eq!(
        first["data_stream"],
        json!({"type": "logs", "dataset": "1password.item_usages", "namespace": "default"})
    );
    // A replay (a crash before the checkpoint) is answered 409 and counts as delivered.
    let statuses =
        run_in(dir.path(), sink(&es, dir.path(), ""), batches(4, 30), &Health::new()).await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert_eq!(es.documents(STREAM).len(), 120, "no duplicate");
    assert!(!dir.path().join("es/dead-letter.ndjson").exists());
}

#[tokio::test]
async fn item_429s_are_retried_and_mapping_errors_go_to_the_dead_letter() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.throttle_items(25);
    es.reject_documents("/onepassword/used_version", json!(7));
    es.reject_documents("/onepassword/used_version", json!(42));
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = sink(&es, dir.path(), "dead_letter: {path: dead.ndjson}\n");
    let statuses = run(sink, batches(2, 50), &Health::new()).await;
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
    assert_eq!(dead[0]["destination"], STREAM);
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
    let reason = &health.report().unhealthy["es"];
    assert!(
        reason.starts_with("Elasticsearch refuses: 401 security_exception: unable to authenticate"),
        "{reason}"
    );
    assert!(!reason.contains("wrong-key"));
    assert_eq!(es.document_count(), 0);
    running.abort();

    let mut good = sink(&es, dir.path(), "auth: {strategy: api_key, api_key: right-key}\n");
    good.preflight().await.expect("accepted");
    let mut bad = sink(&es, dir.path(), "auth: {strategy: api_key, api_key: wrong-key}\n");
    let error = bad.preflight().await.expect_err("refused").to_string();
    assert!(
        error.starts_with(
            "Elasticsearch refused the credentials (401 security_exception: unable to authenticate"
        ),
        "{error}"
    );
    assert!(error.ends_with("; check `auth`"), "{error}");
    assert!(!error.contains("wrong-key"));
}

/// Newcomer review rows 28-30: the start names the privilege the API key
/// lacks (asked of the has-privileges API), and an empty key says that no
/// credentials were sent, instead of "refused the credentials" for both.
#[tokio::test]
async fn the_preflight_names_the_missing_privilege_and_an_empty_key() {
    let es = EsEmulator::start(EsEmulatorConfig {
        auth: EsAuth::ApiKey("right-key".into()),
        ..EsEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "auth: {strategy: api_key, api_key: right-key}\n";
    let preflight = |extra: &str| {
        let mut sink = sink(&es, dir.path(), extra);
        async move { sink.preflight().await.map_err(|e| e.to_string()) }
    };
    preflight(key).await.expect("every privilege granted");
    es.deny_privileges(&["monitor"]);
    let error = preflight(key).await.expect_err("no monitor");
    assert!(error.contains("lacks the cluster privilege `monitor`"), "{error}");
    es.deny_privileges(&["create_doc"]);
    let error = preflight(key).await.expect_err("no create_doc");
    assert_eq!(
        error,
        "the Elasticsearch API key lacks `create_doc` on `logs-1password.*-default`; grant them to its role (README: \"The API key's privileges\")"
    );
    es.deny_privileges(&["auto_configure"]);
    let error = preflight(&format!("{key}data_stream: {{namespace: prod}}\n"))
        .await
        .expect_err("no auto_configure");
    assert!(error.contains("`auto_configure` on `logs-1password.*-prod`"), "{error}");
    es.deny_privileges(&[]);
    let error = preflight("auth: {strategy: api_key, api_key: ''}\n").await.expect_err("no key");
    assert!(error.starts_with("Elasticsearch wants credentials and none were sent"), "{error}");
    assert!(error.contains("is ES_API_KEY set?"), "{error}");
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

/// While `fault` holds: nothing acknowledged, `/health` names the sink, no
/// dead letter. Once it is lifted: every event stored once, all delivered.
async fn waits_out(name: &str, apply: impl Fn(&EsEmulator, bool), expected_reason: &str) {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    apply(&es, true);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_owned();
    let sink = sink(&es, dir.path(), "");
    let health = Health::new();
    let (share, shared) = tokio::sync::oneshot::channel();
    let running = tokio::spawn({
        let health = health.clone();
        async move { run_recording(&data_dir, sink, batches(3, 20), &health, Some(share)).await }
    });
    let statuses = shared.await.expect("statuses");
    assert!(
        wait_for(Duration::from_secs(30), || health.report().unhealthy.contains_key("es")).await,
        "{name}: /health names the sink"
    );
    let reason = health.report().unhealthy["es"].clone();
    assert!(reason.contains(expected_reason), "{name}: {reason}");
    assert!(statuses.lock().expect("lock").is_empty(), "{name}: nothing acknowledged");
    assert_eq!(es.document_count(), 0, "{name}");
    assert!(!dir.path().join("es/dead-letter.ndjson").exists(), "{name}: nothing dead-lettered");

    apply(&es, false);
    let statuses = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("finishes")
        .expect("task");
    assert_eq!(statuses.len(), 3, "{name}");
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{name}: {statuses:?}");
    assert_eq!(es.documents(STREAM).len(), 60, "{name}: each stored once");
    assert!(health.report().is_ok(), "{name}: healthy again: {:?}", health.report());
}

#[tokio::test]
async fn refusals_and_blocks_wait_for_the_operator_instead_of_losing_events() {
    for (name, failure, reason) in [
        (
            "no create_doc privilege",
            ItemFailure::Unauthorized,
            "Elasticsearch refuses: 403 security_exception: action [indices:data/write/bulk[s]] is unauthorized",
        ),
        (
            "missing index",
            ItemFailure::IndexNotFound,
            "Elasticsearch refuses: 404 index_not_found_exception",
        ),
        (
            "read-only after a full disk",
            ItemFailure::ReadOnly,
            "Elasticsearch refuses: 429 cluster_block_exception",
        ),
    ] {
        waits_out(name, |es, on| es.fail_items(on.then_some(failure)), reason).await;
    }
}

#[tokio::test]
async fn whole_request_404_408_and_503_wait_and_show_on_health() {
    for (status, reason) in [
        (404, "Elasticsearch refuses: 404 index_not_found_exception"),
        (408, "408 http_error: <html>"),
        (503, "503 unavailable_shards_exception: primary shard is not active"),
    ] {
        waits_out(&status.to_string(), |es, on| es.fail_requests(on.then_some(status)), reason)
            .await;
    }
}

#[tokio::test]
async fn a_whole_request_400_is_split_until_the_bad_document_is_alone() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let documents: Vec<_> = (0..1000)
        .map(|n| {
            // One `_id` longer than Elasticsearch's 512 bytes fails the whole request.
            let id = if n == 617 { "X".repeat(600) } else { format!("UUID{n:022}") };
            vrl::value::Value::from(json!({"@timestamp": "2026-11-20T08:14:03.250Z", "key": id}))
        })
        .collect();
    let sink = sink(
        &es,
        dir.path(),
        "batch: {max_events: 1000, timeout_secs: 0.05}\nid_field: key\nmode: index\nindex: 1password-{stream}\n",
    );
    let statuses = run_in(dir.path(), sink, vec![documents], &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Rejected)]);
    assert_eq!(es.documents("1password-generic").len(), 999);
    let dead =
        std::fs::read_to_string(dir.path().join("es/dead-letter.ndjson")).expect("dead letter");
    let records: Vec<Value> =
        dead.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["document"]["key"], "X".repeat(600));
    assert_eq!(records[0]["status"], 400);
    assert_eq!(records[0]["error"]["type"], "action_request_validation_exception");
}

#[tokio::test]
async fn without_a_dead_letter_setting_rejections_go_to_the_data_dir() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.reject_documents("/onepassword/used_version", json!(3));
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run_in(dir.path(), sink(&es, dir.path(), ""), batches(1, 10), &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Rejected)]);
    assert_eq!(es.documents(STREAM).len(), 9);
    let dead =
        std::fs::read_to_string(dir.path().join("es/dead-letter.ndjson")).expect("dead letter");
    let record: Value = serde_json::from_str(dead.trim_end()).expect("one record");
    assert_eq!(record["error"]["type"], "mapper_parsing_exception");
    assert_eq!(record["document"]["onepassword"]["uuid"], "UUID0000000000000000000003");
}

#[tokio::test]
async fn a_full_dead_letter_holds_the_sink_back_until_it_is_moved() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.reject_documents("/onepassword/used_version", json!(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dead.ndjson");
    std::fs::write(&path, format!("{}\n", "x".repeat(1000))).expect("an almost full file");
    let sink = sink(&es, dir.path(), "dead_letter: {path: dead.ndjson, max_bytes: 1024}\n");
    let health = Health::new();
    let data_dir = dir.path().to_owned();
    let (share, shared) = tokio::sync::oneshot::channel();
    let running = tokio::spawn({
        let health = health.clone();
        async move { run_recording(&data_dir, sink, batches(1, 5), &health, Some(share)).await }
    });
    let statuses = shared.await.expect("statuses");
    assert!(
        wait_for(Duration::from_secs(30), || health.report().unhealthy.contains_key("es")).await
    );
    let reason = health.report().unhealthy["es"].clone();
    assert!(
        reason.contains("dead_letter_unwritable")
            && reason.contains("is full: 1001 bytes, limit 1024"),
        "{reason}"
    );
    assert!(statuses.lock().expect("lock").is_empty(), "the rejected event is not acknowledged");
    std::fs::rename(&path, dir.path().join("dead.ndjson.1")).expect("the operator moves it");
    let statuses = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("finishes")
        .expect("task");
    assert_eq!(statuses, [(0, BatchStatus::Rejected)]);
    let record: Value =
        serde_json::from_str(std::fs::read_to_string(&path).expect("new file").trim_end())
            .expect("json");
    assert_eq!(record["document"]["onepassword"]["used_version"], 1);
}

#[path = "against_emulator/ingest.rs"]
mod ingest;

#[test]
fn the_ca_file_is_checked_offline_a_bundle_passes_a_file_without_a_certificate_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = sluice_testkit::pki::write(dir.path());
    let check = |ca: &std::path::Path| {
        let yaml = format!(
            "endpoints: ['https://127.0.0.1:9200']\ntls: {{ca_file: '{}'}}\n",
            ca.display()
        );
        let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
        let sink = ElasticsearchSink::new(config.validate(dir.path()).expect("valid"));
        let errors = sink.check_files().errors;
        errors.into_iter().map(|e| format!("{:?}: {}", e.field, e.message)).collect::<Vec<_>>()
    };
    assert_eq!(check(&pki.ca), Vec::<String>::new(), "a CA certificate is a usable ca_file");
    let bundle = dir.path().join("bundle.pem");
    let mut text = std::fs::read_to_string(&pki.ca).expect("ca");
    text.push_str(&std::fs::read_to_string(&pki.server_crt).expect("crt"));
    std::fs::write(&bundle, text).expect("bundle");
    assert_eq!(check(&bundle), Vec::<String>::new(), "a bundle of two is usable");
    let errors = check(&pki.server_key);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("tls.ca_file") && errors[0].contains("no PEM certificate in it"),
        "{errors:?}"
    );
    let errors = check(&dir.path().join("missing.pem"));
    assert!(errors[0].contains("cannot read it"), "{errors:?}");
}

/// Review H4 (reliability 2026-12): an answer whose items come back in
/// another order is retried; a document refused for its own fault still
/// reaches the dead letter and only it, and every other one is stored.
#[tokio::test]
async fn reordered_answers_are_retried_and_never_misattributed() {
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.reject_documents("/onepassword/used_version", json!(7));
    for _ in 0..3 {
        es.push_fault(EsFault::Reordered);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = sink(&es, dir.path(), "dead_letter: {path: dead.ndjson}\n");
    let statuses = run(sink, batches(2, 50), &Health::new()).await;
    assert_eq!(statuses, [(0, BatchStatus::Rejected), (1, BatchStatus::Delivered)]);
    assert_eq!(es.documents(STREAM).len(), 99, "all but the refused one stored");
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead.ndjson"))
        .expect("dead letter")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["document"]["onepassword"]["uuid"], "UUID0000000000000000000007");
}

/// Review L6 (reliability 2026-12): an untrusted certificate is a setting,
/// not a transient fault: the sink waits for the operator and `/health`
/// names the certificate at once, and nothing is acknowledged.
#[tokio::test]
async fn an_untrusted_certificate_waits_for_the_operator_and_shows_on_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = sluice_testkit::pki::write(dir.path());
    let address = sluice_testkit::pki::tls_listener(&pki).await;
    let yaml = format!(
        "endpoints: ['https://127.0.0.1:{}']\nbatch: {{max_events: 10, timeout_secs: 0.05}}\nrequest: {{retry_max_backoff_secs: 1, refused_retry_secs: 1}}\n",
        address.port()
    );
    let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    let sink = Box::new(ElasticsearchSink::new(config.validate(dir.path()).expect("valid")));
    let health = Health::new();
    let running = tokio::spawn({
        let health = health.clone();
        async move { run(sink, batches(1, 5), &health).await }
    });
    assert!(
        wait_for(Duration::from_secs(30), || health
            .report()
            .unhealthy
            .values()
            .any(|reason| reason.contains("tls_certificate")))
        .await,
        "{:?}",
        health.report()
    );
    assert!(!running.is_finished(), "nothing is acknowledged");
    running.abort();
}
