//! Many accounts in one process fail alone: a token refused at start and
//! one revoked while running stop only their own account's streams, named
//! on /health and in the log, while the others are delivered in full and
//! the process keeps running; `--strict` keeps the all-or-nothing start.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::util::{free_port, http_get, http_send, run, spawn, start_sim, stderr_so_far, wait_for};

const LONG: Duration = Duration::from_secs(90);

/// The sum of `sluice_onepassword_events_total` of component `id`.
fn fetched(metrics: &str, id: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("sluice_onepassword_events_total{"))
        .filter(|l| l.contains(&format!(r#"component_id="{id}""#)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_refused_and_a_revoked_account_fail_alone_and_strict_keeps_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 200, &["--no-rate-limit"]);
    let (_, uuids) = http_get(sim.port, "/_sim/uuids").expect("uuids");
    let by_stream: HashMap<String, Vec<String>> = serde_json::from_str(&uuids).expect("json");
    let visible: usize = by_stream.values().map(Vec::len).sum();
    let features = r#"{"features":["signinattempts","itemusages","auditevents"]}"#;
    let (_, minted) = http_send(sim.port, "POST", "/_sim/tokens", features).expect("mint");
    let minted: serde_json::Value = serde_json::from_str(&minted).expect("json");
    std::fs::write(dir.path().join("good"), &sim.token).expect("token");
    std::fs::write(dir.path().join("bad"), format!("{}x", sim.token)).expect("token");
    std::fs::write(dir.path().join("revocable"), minted["token"].as_str().expect("token"))
        .expect("token");
    let api = free_port();
    let source = |id: &str, file: &str| {
        format!(
            "  {id}: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: {file}, start_time: 2d, interval_secs: 1, refused_retry_secs: 1}}\n",
            sim.port
        )
    };
    let config = format!(
        "data_dir: state\napi: {{address: '127.0.0.1:{api}'}}\nsources:\n{}{}{}sinks:\n  out: {{type: file, inputs: [a, b, c], path: out/events.ndjson}}\n",
        source("a", "good"),
        source("b", "bad"),
        source("c", "revocable")
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");

    let strict = run(&["run", "--strict", "sluice.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(2), "--strict refuses to start: {stderr}");
    assert!(stderr.contains("component b:") && stderr.contains("refused the token"), "{stderr}");

    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let delivered = wait_for(LONG, || {
        let (_, metrics) = http_get(api, "/metrics")?;
        (fetched(&metrics, "a") as usize >= visible && fetched(&metrics, "c") as usize >= visible)
            .then_some(())
    });
    assert!(delivered.is_some(), "a and c were not delivered: {}", stderr_so_far(&sluice));
    let (status, health) = http_get(api, "/health").expect("health");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("b.signin_attempts") && !health.contains("\"c."), "{health}");

    let sub = minted["sub"].as_str().expect("sub");
    let (status, _) = http_send(sim.port, "POST", "/_sim/revoke", &format!(r#"{{"sub":"{sub}"}}"#))
        .expect("revoke");
    assert!((200..300).contains(&status), "{status}");
    let both = wait_for(LONG, || {
        let (_, body) = http_get(api, "/health")?;
        (body.contains("b.audit_events") && body.contains("c.audit_events")).then_some(body)
    });
    assert!(both.is_some(), "/health does not name both: {}", stderr_so_far(&sluice));
    // A probe that follows the sink stays ready while accounts are refused.
    let (status, _) = http_get(api, "/health?component=out").expect("health");
    assert_eq!(status, 200);
    let (status, _) = http_get(api, "/health?component=out,b").expect("health");
    assert_eq!(status, 503);
    let (_, metrics) = http_get(api, "/metrics").expect("metrics");
    assert_eq!(fetched(&metrics, "a") as usize, visible, "a delivered in full, once");
    assert_eq!(fetched(&metrics, "b"), 0);
    assert!(sluice.try_wait().expect("status").is_none(), "the process keeps running");
    let _ = sluice.kill();
    let _ = sluice.wait();
    let log = super::util::stderr_of(&mut sluice);
    let refusal =
        log.lines().find(|l| l.contains("refuses this stream") && l.contains("component{id=b}"));
    assert!(refusal.is_some(), "the refusal names its account: {log}");
}
