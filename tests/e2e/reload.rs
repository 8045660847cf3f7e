//! SIGHUP reloads the config, through the binary: an invalid new config is
//! refused and the old one keeps running; an unchanged one is a no-op; a
//! changed sink batch size replaces the sink alone, mid-backfill, without
//! losing or re-reading an acknowledged event.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sluice_testkit::{EsEmulator, EsEmulatorConfig};

use super::elasticsearch::{holds_all, stored, visible, write_config};
use super::util::{
    free_port, http_get, signal, spawn, start_sim, stderr_of, stderr_so_far, wait_exit, wait_for,
};

/// Send SIGHUP and wait for the log line that answers it (the `count`th of its kind).
fn hup_and_wait(child: &std::process::Child, answer: &str, count: usize) -> String {
    signal(child, libc::SIGHUP);
    wait_for(Duration::from_secs(60), || {
        let log = stderr_so_far(child);
        (log.matches(answer).count() >= count).then_some(log)
    })
    .unwrap_or_else(|| panic!("no `{answer}` after SIGHUP:\n{}", stderr_so_far(child)))
}

#[test]
fn sighup_replaces_a_changed_sink_and_loses_or_repeats_nothing() {
    let _heavy = super::util::heavy();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 10_000, &["--no-rate-limit"]);
    let at_start = visible(&sim);
    let total: usize = at_start.values().map(HashSet::len).sum();
    let api_port = free_port();
    // Small pages and batches, so the backfill is still under way at the reload.
    let small = "    batch: {max_events: 40}\n";
    write_config(dir.path(), &sim, &es, api_port, small);
    let config = dir.path().join("sluice.yaml");
    let pages = |yaml: String| {
        yaml.replace("    interval_secs: 1\n", "    interval_secs: 1\n    limit: 100\n")
    };
    std::fs::write(&config, pages(std::fs::read_to_string(&config).expect("config")))
        .expect("config");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    wait_for(Duration::from_secs(120), || (stored(&es) >= 2_000).then_some(()))
        .unwrap_or_else(|| panic!("no progress: {}", stderr_so_far(&child)));

    // Invalid: refused with file:line, still running, /health still 200.
    let valid = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, valid.replace(small, "    batch: {max_events: 0}\n")).expect("config");
    let log = hup_and_wait(&child, "still running the previous one", 1);
    assert!(log.contains("sluice.yaml:"), "the error names the file and line: {log}");
    assert!(child.try_wait().expect("status").is_none(), "still running");
    assert_eq!(http_get(api_port, "/health").map(|(code, _)| code), Some(200));

    // Unchanged: nothing replaced.
    std::fs::write(&config, &valid).expect("config");
    hup_and_wait(&child, "the config is unchanged", 1);

    // A larger batch: the sink alone is replaced, mid-backfill.
    let before = stored(&es);
    std::fs::write(&config, valid.replace(small, "    batch: {max_events: 500}\n"))
        .expect("config");
    let log = hup_and_wait(&child, "config reloaded", 1);
    assert!(log.contains(r#"replaced=["es"]"#), "{log}");
    assert!(before < total, "the backfill ended before the reload; make it longer");
    // Events the simulator dates a little ahead become visible meanwhile:
    // done means every event visible at that moment is stored.
    let done = wait_for(Duration::from_secs(300), || {
        let now = visible(&sim);
        let count: usize = now.values().map(HashSet::len).sum();
        (count >= total && stored(&es) >= count && holds_all(&es, &now)).then_some(count)
    });
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let stderr = stderr_of(&mut child);
    let Some(caught_up) = done else { panic!("{} of {total} documents: {stderr}", stored(&es)) };
    assert!(status.success(), "{stderr}");
    let at_end: usize = visible(&sim).values().map(HashSet::len).sum();
    assert!(
        (caught_up..=at_end).contains(&stored(&es)),
        "one document per event: {} stored, {caught_up}..={at_end} visible",
        stored(&es)
    );
    // An acknowledged event read again would be created again: a 409.
    assert_eq!(es.conflicts(), 0, "nothing re-read: {stderr}");
    // The source kept running: one cursor start per stream, one token check.
    assert_eq!(stderr.matches("starting a new cursor").count(), 3, "{stderr}");
    assert_eq!(stderr.matches("Events API token accepted").count(), 1, "{stderr}");
    let sizes = es.bulk_sizes();
    assert!(sizes.iter().all(|s| *s <= 500), "{sizes:?}");
    assert!(sizes.iter().any(|s| *s > 40), "the new batch size is in use: {sizes:?}");
}

/// `--watch-config`: editing the file is a reload; a sink added this way
/// receives what arrives after it, the running one goes on with everything.
#[test]
fn watch_config_reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |n: usize| format!("{{\"uuid\":\"u{n}\",\"timestamp\":\"2026-11-30T10:00:00Z\"}}\n");
    std::fs::write(dir.path().join("in.ndjson"), line(1)).expect("input");
    let config = "data_dir: state\napi: {enabled: false}\nsources:\n  in: {type: file, path: in.ndjson, stream: audit_events, mode: follow}\nsinks:\n  out: {type: file, inputs: [in], path: out.ndjson}\n";
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    let mut child = super::util::sluice()
        .args(["run", "--watch-config", "sluice.yaml"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice starts");
    super::util::collect_stderr(&mut child);
    let lines = |name: &str| {
        std::fs::read_to_string(dir.path().join(name)).map(|t| t.lines().count()).unwrap_or(0)
    };
    wait_for(Duration::from_secs(60), || (lines("out.ndjson") == 1).then_some(()))
        .unwrap_or_else(|| panic!("nothing delivered: {}", stderr_so_far(&child)));
    let added = format!("{config}  copy: {{type: file, inputs: [in], path: copy.ndjson}}\n");
    std::fs::write(dir.path().join("sluice.yaml"), added).expect("config");
    wait_for(Duration::from_secs(60), || {
        stderr_so_far(&child).contains(r#"added=["copy"]"#).then_some(())
    })
    .unwrap_or_else(|| panic!("no reload: {}", stderr_so_far(&child)));
    let mut input =
        std::fs::OpenOptions::new().append(true).open(dir.path().join("in.ndjson")).expect("open");
    std::io::Write::write_all(&mut input, line(2).as_bytes()).expect("append");
    wait_for(Duration::from_secs(60), || {
        (lines("out.ndjson") == 2 && lines("copy.ndjson") == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("not delivered after the reload: {}", stderr_so_far(&child)));
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let stderr = stderr_of(&mut child);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("a config file changed: reloading the config"), "{stderr}");
}
