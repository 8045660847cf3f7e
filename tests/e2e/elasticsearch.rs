//! simulator → onepassword source → ECS → elasticsearch sink → the strict
//! emulator, through the binary: 100,000 events with kill -9, a 60 s
//! outage, item-level 429s and rejections, and the API key kept out of logs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use sluice_core::Event;
use sluice_core::component::{FunctionTransform, TransformOutput};
use sluice_testkit::{EsAuth, EsEmulator, EsEmulatorConfig};
use sluice_transform_vrl::VrlTransformConfig;

use super::util::{
    Sim, free_port, http_get, repo, signal, spawn, start_sim, stderr_of, wait_exit, wait_for,
};

const STREAMS: [&str; 3] = ["signin_attempts", "item_usages", "audit_events"];

/// The uuids the simulator shows now, by stream.
pub(super) fn visible(sim: &Sim) -> HashMap<String, HashSet<String>> {
    let (_, body) = http_get(sim.port, "/_sim/uuids").expect("uuids");
    let streams: HashMap<String, Vec<String>> = serde_json::from_str(&body).expect("json");
    streams.into_iter().map(|(stream, uuids)| (stream, uuids.into_iter().collect())).collect()
}

pub(super) fn write_config(
    dir: &Path,
    sim: &Sim,
    es: &EsEmulator,
    api_port: u16,
    sink_extra: &str,
) {
    write_config_for(dir, sim, &es.url(), api_port, sink_extra);
}

/// sim → onepassword → ECS → elasticsearch at `es_url`, in `dir/sluice.yaml`.
pub(super) fn write_config_for(
    dir: &Path,
    sim: &Sim,
    es_url: &str,
    api_port: u16,
    sink_extra: &str,
) {
    std::fs::create_dir_all(dir.join("vrl")).expect("mkdir");
    std::fs::copy(repo().join("pipelines/vrl/ecs.vrl"), dir.join("vrl/ecs.vrl")).expect("vrl");
    let config = format!(
        "data_dir: state
api: {{address: '127.0.0.1:{api_port}'}}
sources:
  op:
    type: onepassword
    url: http://127.0.0.1:{}
    allow_custom_url: true
    token_file: op_token
    start_time: 2d
    interval_secs: 1
transforms:
  # A debug build beside CPU hogs can exceed the default 50 ms per event.
  ecs: {{type: vrl, inputs: [op], file: vrl/ecs.vrl, event_budget_ms: 2000}}
sinks:
  es:
    type: elasticsearch
    inputs: [ecs]
    endpoints: ['{}']
    request: {{retry_max_backoff_secs: 2}}
    dead_letter: {{path: out/rejected.ndjson}}
{sink_extra}",
        sim.port, es_url
    );
    std::fs::write(dir.join("sluice.yaml"), config).expect("config");
}

fn data_stream(stream: &str) -> String {
    format!("logs-1password.{stream}-default")
}

/// Whether every uuid in `expected` (stream → uuids) is a document of its
/// stream: later arrivals can make the count reach a total before it holds.
pub(super) fn holds_all(es: &EsEmulator, expected: &HashMap<String, HashSet<String>>) -> bool {
    expected.iter().all(|(stream, uuids)| {
        let ids = es.ids(&data_stream(stream));
        uuids.iter().all(|uuid| ids.contains(uuid))
    })
}

pub(super) fn stored(es: &EsEmulator) -> usize {
    STREAMS.iter().map(|s| es.documents(&data_stream(s)).len()).sum()
}

/// Map the raw item kept in `event.original` again, as the conformance test does.
fn expected_document(
    transform: &mut dyn FunctionTransform,
    stream: &str,
    raw: &str,
) -> serde_json::Value {
    let mut event =
        Event::from_json(bytes::Bytes::copy_from_slice(raw.as_bytes())).expect("raw item");
    event.meta.dataset = Some(format!("1password.{stream}").into());
    let mut out = TransformOutput::default();
    transform.transform(event, &mut out);
    let (mut mapped, failed) = out.take_for_test();
    assert!(failed.is_empty(), "{stream}: {raw}");
    let mut document = serde_json::to_value(&mapped.remove(0).value).expect("json");
    document["data_stream"] = serde_json::json!({"type": "logs", "dataset": format!("1password.{stream}"), "namespace": "default"});
    // The sink tags what keeps event.original, so Fleet's final pipeline keeps it too.
    if document["event"]["original"].is_string() {
        document["tags"] = serde_json::json!(["preserve_original_event"]);
    }
    document
}

#[test]
fn a_100000_event_run_survives_kill_9_with_one_document_per_uuid() {
    let _heavy = super::util::heavy();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 33_334, &["--no-rate-limit"]);
    let at_start = visible(&sim);
    let total: usize = at_start.values().map(HashSet::len).sum();
    assert!(total > 95_000, "{total}");
    write_config(dir.path(), &sim, &es, free_port(), "");

    let mut first = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let progressed = wait_for(Duration::from_secs(180), || (stored(&es) >= 25_000).then_some(()));
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    assert!(progressed.is_some(), "no progress before the kill");
    assert!(stored(&es) < total, "the first run finished before the kill");

    write_config(dir.path(), &sim, &es, free_port(), "");
    let mut second = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let done = wait_for(Duration::from_secs(300), || {
        (stored(&es) >= total && holds_all(&es, &at_start)).then_some(())
    });
    signal(&second, libc::SIGTERM);
    let status = wait_exit(&mut second, Duration::from_secs(60));
    let stderr = stderr_of(&mut second);
    let errors: Vec<String> = STREAMS
        .iter()
        .flat_map(|s| es.documents(&data_stream(s)).into_values())
        .filter(|d| d["event"]["kind"] == "pipeline_error")
        .map(|d| d["error"].to_string())
        .collect();
    assert!(
        done.is_some(),
        "{} documents for {total} events visible at the start; pipeline errors: {errors:?}; {stderr}",
        stored(&es)
    );
    assert!(status.success(), "{stderr}");
    eprintln!("replays answered 409 after the restart: {}", es.conflicts());

    let at_end = visible(&sim);
    let mut transform = VrlTransformConfig {
        source: None,
        file: Some(repo().join("pipelines/vrl/ecs.vrl")),
        files: None,
        geoip: Default::default(),
        event_budget_ms: 1000,
        concurrency: None,
    }
    .validate(&repo(), "ecs")
    .expect("compiles");
    let mut differences = Vec::new();
    for stream in STREAMS {
        let documents = es.documents(&data_stream(stream));
        for uuid in &at_start[stream] {
            assert!(documents.contains_key(uuid), "{stream}: {uuid} is missing");
        }
        for (id, document) in &documents {
            assert!(at_end[stream].contains(id), "{stream}: {id} is not an event of this stream");
            let raw = document["event"]["original"].as_str().expect("event.original");
            let expected = expected_document(&mut transform, stream, raw);
            for difference in sluice_topology::diff::json_diff(&expected, document) {
                differences.push(format!("{stream} {id}: {difference}"));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences, first: {:?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
    assert!(!dir.path().join("out/rejected.ndjson").exists(), "nothing was rejected");
}

pub(super) fn checkpoints(dir: &Path) -> Vec<Option<Vec<u8>>> {
    STREAMS.iter().map(|s| std::fs::read(dir.join(format!("state/op/{s}.json"))).ok()).collect()
}

#[test]
fn a_60_second_outage_loses_nothing_and_holds_the_checkpoints() {
    let _heavy = super::util::heavy();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 20_000, &["--no-rate-limit"]);
    let total: usize = visible(&sim).values().map(HashSet::len).sum();
    // Small pages, so the backfill is still running when Elasticsearch goes away.
    write_config(dir.path(), &sim, &es, free_port(), "    batch: {max_events: 200}\n");
    let yaml = std::fs::read_to_string(dir.path().join("sluice.yaml")).expect("config").replace(
        "    interval_secs: 1\n",
        "    interval_secs: 1\n    limit: 100\n    max_pages_in_flight: 2\n",
    );
    std::fs::write(dir.path().join("sluice.yaml"), yaml).expect("config");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    assert!(
        wait_for(Duration::from_secs(120), || (stored(&es) >= 2_000).then_some(())).is_some(),
        "no progress"
    );
    runtime.block_on(es.refuse_connections());
    // Pages acknowledged before the outage may still be committed in the first moments.
    std::thread::sleep(Duration::from_secs(3));
    let held = checkpoints(dir.path());
    let stored_during = stored(&es);
    assert!(stored_during < total, "the backfill finished before the outage");
    for _ in 0..57 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            checkpoints(dir.path()),
            held,
            "a checkpoint moved while Elasticsearch was down"
        );
        assert!(child.try_wait().expect("try_wait").is_none(), "sluice must keep running");
    }
    runtime.block_on(es.resume());
    let done = wait_for(Duration::from_secs(240), || (stored(&es) >= total).then_some(()));
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let stderr = stderr_of(&mut child);
    assert!(done.is_some(), "delivery did not resume: {} of {total}: {stderr}", stored(&es));
    assert!(status.success(), "{stderr}");
    assert_ne!(checkpoints(dir.path()), held, "the checkpoints moved on after the outage");
}

#[test]
fn item_429s_are_retried_rejections_are_dead_lettered_and_the_api_key_stays_secret() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let api_key = "c2x1aWNlLXRlc3Q6dmVyeS1zZWNyZXQtYXBpLWtleQ==";
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig {
        auth: EsAuth::ApiKey(api_key.into()),
        ..EsEmulatorConfig::default()
    }));
    es.throttle_items(500);
    es.reject_documents("/onepassword/used_version", serde_json::json!(3));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 1_000, &["--no-rate-limit"]);
    let at_start = visible(&sim);
    let total: usize = at_start.values().map(HashSet::len).sum();
    let api_port = free_port();
    write_config(
        dir.path(),
        &sim,
        &es,
        api_port,
        "    auth: {strategy: api_key, api_key: '${ES_API_KEY}'}\n",
    );
    let mut child = spawn(
        Path::new("sluice.yaml"),
        dir.path(),
        &[("ES_API_KEY", api_key.to_owned()), ("RUST_LOG", "trace".to_owned())],
    );
    let rejected_count = || -> usize {
        std::fs::read_to_string(dir.path().join("out/rejected.ndjson"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let done = wait_for(Duration::from_secs(120), || {
        (stored(&es) + rejected_count() >= total).then_some(())
    });
    let metrics = http_get(api_port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let logs = stderr_of(&mut child);
    assert!(done.is_some(), "{} stored + {} rejected of {total}", stored(&es), rejected_count());
    assert!(status.success(), "{logs}");

    let rejected: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("out/rejected.ndjson"))
            .expect("dead letter")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
    assert!(!rejected.is_empty(), "some item usages have used_version 3");
    for record in &rejected {
        assert_eq!(record["error"]["type"], "mapper_parsing_exception");
        assert_eq!(record["document"]["onepassword"]["used_version"], 3);
        assert_eq!(record["destination"], "logs-1password.item_usages-default");
    }
    let counted = format!(
        "sluice_component_rejected_events_total{{component_id=\"es\",component_kind=\"sink\",component_type=\"elasticsearch\"}} {}",
        rejected.len()
    );
    assert!(metrics.contains(&counted), "{counted} in\n{metrics}");
    assert!(metrics.contains("sluice_component_retries_total{component_id=\"es\",component_kind=\"sink\",component_type=\"elasticsearch\",reason=\"item_retry\"}"), "{metrics}");
    assert_eq!(stored(&es) + rejected.len(), total, "nothing else is lost");
    assert!(logs.contains("TRACE"), "trace logging is on");
    assert!(!logs.contains(api_key), "the API key appears in the logs");
    assert!(!metrics.contains(api_key));
}

/// Newcomer review row 29: a sink refused until shutdown does not log
/// "sink healthy again" when its refused requests are given up.
#[test]
fn a_sink_refused_until_shutdown_is_not_called_healthy_again() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    es.fail_items(Some(sluice_testkit::ItemFailure::Unauthorized));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 20, &["--no-rate-limit"]);
    let api_port = free_port();
    write_config(dir.path(), &sim, &es, api_port, "");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let refused = wait_for(Duration::from_secs(60), || {
        http_get(api_port, "/health")
            .filter(|(status, body)| *status == 503 && body.contains("refuses"))
    });
    signal(&child, libc::SIGTERM);
    // The drain cannot finish (nothing is accepted): it ends at the timeout.
    let _ = wait_exit(&mut child, Duration::from_secs(90));
    let logs = stderr_of(&mut child);
    assert!(refused.is_some(), "{logs}");
    assert!(logs.contains("refuses items") && logs.contains("drain did not finish"), "{logs}");
    assert!(!logs.contains("sink healthy again"), "{logs}");
    assert_eq!(es.document_count(), 0);
}
