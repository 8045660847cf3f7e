//! The delivery layer through the binary: refusals that hold the 1Password
//! checkpoints and show on `/health` until Elasticsearch accepts, and a
//! `pipeline_error` document that stays one document across a kill -9.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sluice_testkit::{EsEmulator, EsEmulatorConfig, EsFault, ItemFailure};

use super::elasticsearch::{checkpoints, holds_all, stored, visible, write_config};
use super::util::{free_port, http_get, signal, spawn, start_sim, stderr_of, wait_exit, wait_for};

/// Each stream's committed cursor, if any.
fn cursors(dir: &Path) -> Vec<Option<String>> {
    checkpoints(dir)
        .into_iter()
        .map(|bytes| {
            let checkpoint: serde_json::Value = serde_json::from_slice(&bytes?).ok()?;
            checkpoint["cursor"].as_str().map(str::to_owned)
        })
        .collect()
}

#[test]
fn an_api_key_without_create_doc_holds_the_checkpoints_until_elasticsearch_accepts() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    es.fail_items(Some(ItemFailure::Unauthorized));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 300, &["--no-rate-limit"]);
    let at_start = visible(&sim);
    let api_port = free_port();
    write_config(dir.path(), &sim, &es, api_port, "    request: {refused_retry_secs: 1}\n");
    // The default dead letter, not the configured one: nothing may reach either.
    let yaml = std::fs::read_to_string(dir.path().join("sluice.yaml")).expect("config");
    let yaml = yaml.replace("    dead_letter: {path: out/rejected.ndjson}\n", "");
    let yaml = yaml.replace("    request: {retry_max_backoff_secs: 2}\n", "");
    std::fs::write(dir.path().join("sluice.yaml"), yaml).expect("config");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[]);

    let unhealthy = wait_for(Duration::from_secs(60), || {
        http_get(api_port, "/health")
            .filter(|(status, body)| *status == 503 && body.contains("security_exception"))
    });
    let gauge = http_get(api_port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let held = cursors(dir.path());
    // Several refused rounds later, still nothing has moved.
    let requests = es.bulk_requests();
    wait_for(Duration::from_secs(60), || (es.bulk_requests() >= requests + 3).then_some(()));
    let still = cursors(dir.path());
    let dead_letter = dir.path().join("state/es/dead-letter.ndjson");
    let dead_letter_exists = dead_letter.exists();
    let stored_while_refused = stored(&es);

    es.fail_items(None);
    let done = wait_for(Duration::from_secs(120), || holds_all(&es, &at_start).then_some(()));
    let healthy = wait_for(Duration::from_secs(30), || {
        http_get(api_port, "/health").filter(|(status, _)| *status == 200)
    });
    let moved = wait_for(Duration::from_secs(30), || {
        (cursors(dir.path()).iter().all(Option::is_some)).then_some(())
    });
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let logs = stderr_of(&mut child);

    let (_, body) = unhealthy.unwrap_or_else(|| panic!("/health never named the refusal: {logs}"));
    assert!(body.contains("\"es\""), "{body}");
    assert!(body.contains("Elasticsearch refuses: 403 security_exception"), "{body}");
    // With the labels every component series has.
    assert!(
        gauge.contains("sluice_component_healthy{component_id=\"es\",component_kind=\"sink\",component_type=\"elasticsearch\"} 0"),
        "{gauge}"
    );
    assert!(
        gauge.contains("sluice_component_healthy{component_id=\"op\",component_kind=\"source\",component_type=\"onepassword\"} 1"),
        "{gauge}"
    );
    // A first start writes its start time, never a cursor, before a commit.
    assert!(held.iter().all(Option::is_none), "no cursor was committed while refused: {held:?}");
    assert_eq!(still, held, "the checkpoints wait");
    assert_eq!(stored_while_refused, 0);
    assert!(!dead_letter_exists, "a refusal is not a rejection");
    let at_end: usize = visible(&sim).values().map(HashSet::len).sum();
    assert!(done.is_some(), "{} stored: {logs}", stored(&es));
    assert!(healthy.is_some(), "/health turns back by itself");
    assert!(moved.is_some(), "the checkpoints move once Elasticsearch accepts");
    assert!(stored(&es) <= at_end, "each event once (late arrivals may have joined)");
    assert!(!dead_letter.exists());
    assert!(status.success(), "{logs}");
}

/// Raw audit events; every 100th has a timestamp the ECS mapping refuses,
/// so it becomes a `pipeline_error` document without a uuid.
fn audit_file(path: &Path, count: usize) -> usize {
    let mut text = String::new();
    let mut bad = 0;
    for n in 0..count {
        let timestamp = if n % 100 == 0 {
            bad += 1;
            "yesterday at noon".to_owned()
        } else {
            format!("2026-11-29T10:{:02}:{:02}Z", (n / 60) % 60, n % 60)
        };
        text.push_str(&format!(
            "{{\"uuid\":\"AUDIT{n:021}\",\"timestamp\":\"{timestamp}\",\"actor_uuid\":\"ACTOR\",\"action\":\"join\",\"object_type\":\"gm\",\"object_uuid\":\"OBJ{n}\"}}\n"
        ));
    }
    std::fs::write(path, text).expect("audit file");
    bad
}

#[test]
fn a_pipeline_error_document_replayed_after_kill_9_is_one_document() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 2_000;
    let bad = audit_file(&dir.path().join("audit.ndjson"), total);
    std::fs::create_dir_all(dir.path().join("vrl")).expect("mkdir");
    std::fs::copy(
        super::util::repo().join("pipelines/vrl/ecs.vrl"),
        dir.path().join("vrl/ecs.vrl"),
    )
    .expect("vrl");
    // One acknowledgement batch for the whole file: nothing is committed
    // before the kill, so the restart replays everything already stored.
    let config = format!(
        "data_dir: state
api: {{address: '127.0.0.1:{}'}}
sources:
  audit: {{type: file, path: audit.ndjson, stream: audit_events, batch_max_events: {total}}}
transforms:
  # A debug build beside CPU hogs can exceed the default 50 ms per event.
  ecs: {{type: vrl, inputs: [audit], file: vrl/ecs.vrl, event_budget_ms: 2000}}
sinks:
  es:
    type: elasticsearch
    inputs: [ecs]
    endpoints: ['{}']
    batch: {{max_events: 50, timeout_secs: 0.05}}
    request: {{concurrency: 1}}
",
        free_port(),
        es.url()
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    // 40 requests of 50. The mapping puts failed events at the end of their
    // array, so the last request holds the pipeline_error documents: it is
    // stored but answered only after the kill, and nothing is committed.
    for _ in 1..(total / 50) {
        es.push_fault(EsFault::Slow(Duration::ZERO));
    }
    es.push_fault(EsFault::SlowAnswer(Duration::from_secs(60)));
    let stream = "logs-1password.audit_events-default";
    let errors = || {
        es.documents(stream)
            .into_iter()
            .filter(|(_, doc)| doc["event"]["kind"] == "pipeline_error")
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    let mut first = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let progressed = wait_for(Duration::from_secs(120), || (errors().len() >= bad).then_some(()));
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let before = errors();
    assert!(progressed.is_some(), "the pipeline_error documents were not stored before the kill");
    assert!(!dir.path().join("state/audit/checkpoint.json").exists(), "nothing was committed");

    let mut second = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let done =
        wait_for(Duration::from_secs(180), || (es.documents(stream).len() >= total).then_some(()));
    let status = wait_exit(&mut second, Duration::from_secs(60));
    let logs = stderr_of(&mut second);
    assert!(done.is_some(), "{} of {total}: {logs}", es.documents(stream).len());
    assert!(status.success(), "the file source stops at the end: {logs}");
    let after = errors();
    assert_eq!(after.len(), bad, "one document per failed item");
    assert_eq!(es.documents(stream).len(), total, "nothing doubled");
    assert!(before.iter().all(|id| id.starts_with("sluice-") && after.contains(id)));
    assert_eq!(es.conflicts(), total as u64, "the whole replay was answered 409");
}
