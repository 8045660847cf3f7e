//! Two tiers of sluice processes: an edge (simulator → onepassword →
//! `sluice` sink) and an aggregator (`sluice` source → ECS → the
//! Elasticsearch emulator). kill -9 of either side, an outage behind the
//! aggregator, TLS and token refusals, and an independent Python client.

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use sluice_testkit::{EsEmulator, EsEmulatorConfig};

use super::elasticsearch::{checkpoints, holds_all, stored, visible};
use super::util::{
    Sim, free_port, have, http_get, repo, rss_kib, signal, spawn, start_sim, stderr_of,
    stderr_so_far, wait_exit, wait_for,
};

/// The two configs' directories and ports.
struct Tiers {
    edge_dir: std::path::PathBuf,
    aggregator_dir: std::path::PathBuf,
    edge_api: u16,
    aggregator_api: u16,
}

fn tiers(dir: &Path, sim: &Sim, es: &EsEmulator, edge_extra: &str) -> Tiers {
    let port = free_port();
    let (edge_api, aggregator_api) = (free_port(), free_port());
    let aggregator_dir = dir.join("aggregator");
    let edge_dir = dir.join("edge");
    std::fs::create_dir_all(aggregator_dir.join("vrl")).expect("mkdir");
    std::fs::create_dir_all(&edge_dir).expect("mkdir");
    std::fs::copy(repo().join("pipelines/vrl/ecs.vrl"), aggregator_dir.join("vrl/ecs.vrl"))
        .expect("vrl");
    let aggregator = format!(
        "data_dir: state
api: {{address: '127.0.0.1:{aggregator_api}'}}
sources:
  edges: {{type: sluice, address: '127.0.0.1:{port}'}}
transforms:
  ecs: {{type: vrl, inputs: [edges], file: vrl/ecs.vrl, event_budget_ms: 2000}}
sinks:
  es:
    type: elasticsearch
    inputs: [ecs]
    endpoints: ['{}']
    request: {{retry_max_backoff_secs: 2}}
    dead_letter: {{path: out/rejected.ndjson}}
",
        es.url()
    );
    let edge = format!(
        "data_dir: state
api: {{address: '127.0.0.1:{edge_api}'}}
sources:
  op:
    type: onepassword
    url: http://127.0.0.1:{}
    allow_custom_url: true
    token_file: ../op_token
    start_time: 2d
    interval_secs: 1
sinks:
  forward:
    type: sluice
    inputs: [op]
    endpoints: ['http://127.0.0.1:{port}']
    request: {{timeout_secs: 10, retry_max_backoff_secs: 2}}
{edge_extra}",
        sim.port
    );
    std::fs::write(aggregator_dir.join("sluice.yaml"), aggregator).expect("config");
    std::fs::write(edge_dir.join("sluice.yaml"), edge).expect("config");
    Tiers { edge_dir, aggregator_dir, edge_api, aggregator_api }
}

/// The sum of every series of `name` in a Prometheus page whose labels contain `label`.
fn metric(port: u16, name: &str, label: &str) -> f64 {
    let Some((_, page)) = http_get(port, "/metrics") else { return 0.0 };
    page.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value)
}

impl Tiers {
    /// The edge's failed pushes so far.
    fn edge_retries(&self) -> f64 {
        metric(self.edge_api, "sluice_component_retries_total", "component_id=\"forward\"")
    }
}

/// A simulator with `per_stream` events per stream, the Elasticsearch
/// emulator, and the aggregator and the edge running against them.
struct Running {
    runtime: tokio::runtime::Runtime,
    es: EsEmulator,
    _dir: tempfile::TempDir,
    sim: Sim,
    tiers: Tiers,
    aggregator: Child,
    edge: Child,
}

fn run_tiers(per_stream: usize, edge_extra: &str) -> Running {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), per_stream, &["--no-rate-limit"]);
    let tiers = tiers(dir.path(), &sim, &es, edge_extra);
    let config = Path::new("sluice.yaml");
    let aggregator = spawn(config, &tiers.aggregator_dir, &[]);
    let edge = spawn(config, &tiers.edge_dir, &[]);
    Running { runtime, es, _dir: dir, sim, tiers, aggregator, edge }
}

fn stop(child: &mut Child, what: &str) {
    signal(child, libc::SIGTERM);
    let status = wait_exit(child, Duration::from_secs(60));
    let stderr = stderr_of(child);
    assert!(status.success(), "{what}: {stderr}");
}

#[test]
fn sixty_thousand_events_survive_kill_9_of_the_aggregator_and_of_the_edge_once_each() {
    let _heavy = super::util::heavy();
    // Every field bound: the runtime serves the emulator, the directory holds both tiers.
    let Running { runtime: _runtime, es, _dir, sim, tiers: t, mut aggregator, mut edge } =
        run_tiers(20_000, "");
    let at_start = visible(&sim);
    let total: usize = at_start.values().map(HashSet::len).sum();
    assert!(total > 55_000, "{total}");
    let config = Path::new("sluice.yaml");

    let progressed = wait_for(Duration::from_secs(180), || (stored(&es) >= 10_000).then_some(()));
    aggregator.kill().expect("kill -9 the aggregator");
    aggregator.wait().expect("reaped");
    assert!(progressed.is_some(), "no progress: {}", stderr_so_far(&edge));
    assert!(stored(&es) < total, "the backfill finished before the kill");

    // While the aggregator is gone the edge's checkpoints hold: wait until
    // its pushes have failed twice (any acknowledgement from before the
    // kill is committed by then), then watch through three more failures.
    let base = t.edge_retries();
    assert!(
        wait_for(Duration::from_secs(120), || (t.edge_retries() >= base + 2.0).then_some(()))
            .is_some()
    );
    let held = checkpoints(&t.edge_dir);
    let base = t.edge_retries();
    while t.edge_retries() < base + 3.0 {
        assert_eq!(
            checkpoints(&t.edge_dir),
            held,
            "a checkpoint moved while the aggregator was down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(edge.try_wait().expect("try_wait").is_none(), "the edge keeps running");

    let mut aggregator = spawn(config, &t.aggregator_dir, &[]);
    let progressed = wait_for(Duration::from_secs(180), || (stored(&es) >= 35_000).then_some(()));
    edge.kill().expect("kill -9 the edge");
    edge.wait().expect("reaped");
    assert!(progressed.is_some(), "no progress after the restart: {}", stderr_so_far(&aggregator));
    assert!(stored(&es) < total, "the backfill finished before the second kill");

    let mut edge = spawn(config, &t.edge_dir, &[]);
    let done = wait_for(Duration::from_secs(600), || {
        (stored(&es) >= total && holds_all(&es, &at_start)).then_some(())
    });
    assert!(done.is_some(), "{} of {total} stored; edge: {}", stored(&es), stderr_so_far(&edge));
    // One document per event (the `_id` is the event's uuid, so a replay
    // is answered 409), and no document that is not an event.
    let at_end = visible(&sim);
    for (stream, uuids) in &at_end {
        let ids = es.ids(&format!("logs-1password.{stream}-default"));
        for id in &ids {
            assert!(uuids.contains(id), "{stream}: {id} is not an event of this stream");
        }
    }
    eprintln!("{} documents; replays answered 409: {}", stored(&es), es.conflicts());
    stop(&mut edge, "edge");
    stop(&mut aggregator, "aggregator");
    assert!(!t.aggregator_dir.join("out/rejected.ndjson").exists(), "nothing was rejected");
    assert!(!t.edge_dir.join("state/forward/dead-letter.ndjson").exists(), "nor dead-lettered");
}

#[test]
fn a_60_second_outage_behind_the_aggregator_holds_the_edge_and_both_memories() {
    let _heavy = super::util::heavy();
    let Running { runtime, es, _dir, sim, tiers: t, mut aggregator, mut edge } =
        run_tiers(20_000, "    batch: {max_events: 200}\n");
    let total: usize = visible(&sim).values().map(HashSet::len).sum();
    assert!(
        wait_for(Duration::from_secs(120), || (stored(&es) >= 2_000).then_some(())).is_some(),
        "no progress: {}",
        stderr_so_far(&edge)
    );
    runtime.block_on(es.refuse_connections());
    let outage = std::time::Instant::now();
    // Pushes now wait on the aggregator until the edge times out (10 s) and
    // sends them again; two such retries and everything acknowledged before
    // the outage is committed.
    assert!(
        wait_for(Duration::from_secs(60), || (t.edge_retries() >= 2.0).then_some(())).is_some()
    );
    let held = checkpoints(&t.edge_dir);
    let memory = |child: &Child| rss_kib(child).expect("running") / 1024;
    let (edge_before, aggregator_before) = (memory(&edge), memory(&aggregator));
    assert!(stored(&es) < total, "the backfill finished before the outage");
    while outage.elapsed() < Duration::from_secs(60) {
        assert_eq!(checkpoints(&t.edge_dir), held, "a checkpoint moved during the outage");
        assert!(edge.try_wait().expect("try_wait").is_none(), "the edge keeps running");
        assert!(aggregator.try_wait().expect("try_wait").is_none(), "the aggregator keeps running");
        std::thread::sleep(Duration::from_millis(250));
    }
    let (edge_after, aggregator_after) = (memory(&edge), memory(&aggregator));
    eprintln!(
        "RSS during the outage: edge {edge_before} → {edge_after} MiB, aggregator {aggregator_before} → {aggregator_after} MiB"
    );
    assert!(edge_after <= edge_before + 32, "the edge grew: {edge_before} → {edge_after} MiB");
    assert!(
        aggregator_after <= aggregator_before + 32,
        "the aggregator grew: {aggregator_before} → {aggregator_after} MiB"
    );
    let joined = metric(t.aggregator_api, "sluice_forward_batches_total", "answer=\"joined\"");
    let pushed_back =
        metric(t.aggregator_api, "sluice_forward_batches_total", "answer=\"resource_exhausted\"");
    assert!(joined + pushed_back > 0.0, "the edge's resends were joined or pushed back");

    runtime.block_on(es.resume());
    // A bound, not a pace: on a busy 2-core machine a debug build moves
    // about 250 events/s through both tiers, so the rest takes minutes.
    let done = wait_for(Duration::from_secs(600), || (stored(&es) >= total).then_some(()));
    assert!(
        done.is_some(),
        "delivery did not resume: {} of {total}\nedge: {}\naggregator: {}",
        stored(&es),
        stderr_so_far(&edge),
        stderr_so_far(&aggregator)
    );
    assert_ne!(checkpoints(&t.edge_dir), held, "the checkpoints moved on after the outage");
    eprintln!("resends joined: {joined}, pushed back: {pushed_back}");
    stop(&mut edge, "edge");
    stop(&mut aggregator, "aggregator");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn tls_and_token_refusals_are_clear_on_both_sides_and_the_token_is_in_no_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = sluice_testkit::pki::write(dir.path());
    let port = free_port();
    let (agg_token, edge_token) = ("aggregator-secret-7f3a9", "edge-wrong-secret-19bd2");
    write(&dir.path().join("agg_token"), agg_token);
    write(&dir.path().join("wrong_token"), edge_token);
    write(
        &dir.path().join("aggregator.yaml"),
        &format!(
            "data_dir: agg-state\napi: {{enabled: false}}\nsources:\n  edges:\n    type: sluice\n    address: 127.0.0.1:{port}\n    token_file: agg_token\n    tls: {{crt_file: server.crt, key_file: server.key, client_ca_file: ca.crt}}\nsinks:\n  out: {{type: file, inputs: [edges], path: out/events.ndjson}}\n"
        ),
    );
    let sim = start_sim(dir.path(), 50, &["--no-rate-limit"]);
    let edge = |name: &str, tls: &str, token_file: &str| {
        write(
            &dir.path().join(name),
            &format!(
                "data_dir: {name}-state\napi: {{enabled: false}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: op_token, start_time: 2d}}\nsinks:\n  forward:\n    type: sluice\n    inputs: [op]\n    endpoints: ['https://localhost:{port}']\n    token_file: {token_file}\n    tls: {tls}\n",
                sim.port
            ),
        );
        Path::new(name).to_owned()
    };
    let no_certificate = edge("no-cert.yaml", "{ca_file: ca.crt}", "agg_token");
    let wrong_token = edge(
        "wrong-token.yaml",
        "{ca_file: ca.crt, crt_file: edge.crt, key_file: edge.key}",
        "wrong_token",
    );
    let good =
        edge("good.yaml", "{ca_file: ca.crt, crt_file: edge.crt, key_file: edge.key}", "agg_token");
    assert!(pki.server_crt.ends_with("server.crt"));

    let mut aggregator = spawn(Path::new("aggregator.yaml"), dir.path(), &[]);
    assert!(
        wait_for(Duration::from_secs(30), || stderr_so_far(&aggregator)
            .contains("listening for sluice edges")
            .then_some(()))
        .is_some(),
        "{}",
        stderr_so_far(&aggregator)
    );
    for (config, edge_says, aggregator_says) in [
        (&no_certificate, "requires a client certificate", "TLS handshake with an edge failed"),
        (&wrong_token, "UNAUTHENTICATED", "the edge sent a wrong bearer token"),
    ] {
        let mut refused = spawn(config, dir.path(), &[]);
        let status = wait_exit(&mut refused, Duration::from_secs(60));
        let stderr = stderr_of(&mut refused);
        assert!(!status.success(), "{config:?} must not start: {stderr}");
        assert!(stderr.contains(edge_says), "{config:?}: {stderr}");
        assert!(
            wait_for(Duration::from_secs(30), || stderr_so_far(&aggregator)
                .contains(aggregator_says)
                .then_some(()))
            .is_some(),
            "aggregator log lacks {aggregator_says:?}: {}",
            stderr_so_far(&aggregator)
        );
        for token in [agg_token, edge_token] {
            assert!(!stderr.contains(token), "a token in the edge's log: {stderr}");
        }
    }
    let mut edge = spawn(&good, dir.path(), &[]);
    let expected: usize = visible(&sim).values().map(HashSet::len).sum();
    let lines = || {
        std::fs::read_to_string(dir.path().join("out/events.ndjson"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let delivered = wait_for(Duration::from_secs(60), || (lines() >= expected).then_some(()));
    stop(&mut edge, "edge");
    signal(&aggregator, libc::SIGTERM);
    wait_exit(&mut aggregator, Duration::from_secs(60));
    let aggregator_log = stderr_of(&mut aggregator);
    assert!(delivered.is_some(), "{} of {expected} delivered: {aggregator_log}", lines());
    for token in [agg_token, edge_token] {
        assert!(!aggregator_log.contains(token), "a token in the aggregator's log");
    }
}

#[test]
fn an_independent_python_client_gets_the_documented_answer_after_the_sink_stored_the_batch() {
    if !have(
        "python3",
        &["-c", "import grpc, grpc_tools"],
        "SLUICE_REQUIRE_GRPCIO",
        "pip install grpcio grpcio-tools",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let stubs = dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).expect("mkdir");
    let generated = std::process::Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(repo().join("proto"))
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg(repo().join("proto/sluice/v1/forward.proto"))
        .output()
        .expect("protoc runs");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));

    let port = free_port();
    write(
        &dir.path().join("aggregator.yaml"),
        &format!(
            "data_dir: state\napi: {{enabled: false}}\nsources:\n  edges: {{type: sluice, address: '127.0.0.1:{port}', token: py-token-42}}\nsinks:\n  out: {{type: file, inputs: [edges], path: out/events.ndjson}}\n"
        ),
    );
    let mut aggregator = spawn(Path::new("aggregator.yaml"), dir.path(), &[]);
    let sink_file = dir.path().join("out/events.ndjson");
    let output = std::process::Command::new("python3")
        .arg(repo().join("tests/fixtures/forward_client.py"))
        .arg(&stubs)
        .arg(port.to_string())
        .arg("py-token-42")
        .arg(&sink_file)
        .output()
        .expect("python runs");
    stop(&mut aggregator, "aggregator");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(report["wrong_token"], "UNAUTHENTICATED", "{report}");
    assert_eq!(report["status"], "REJECTED", "{report}");
    assert_eq!(report["rejections"][0]["index"], 2, "{report}");
    assert_eq!(report["rejections"][0]["kind"], "invalid_document", "{report}");
    assert_eq!(report["rejections"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report["lines_at_answer"], 2, "both valid events were stored before the answer");
    let stored = std::fs::read_to_string(&sink_file).expect("sink file");
    let first: serde_json::Value =
        serde_json::from_str(stored.lines().next().expect("a line")).expect("json");
    assert_eq!(first["uuid"], "PY000000000000000000000000");
}
