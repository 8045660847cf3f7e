//! kill -9 in the middle of a run, then a restart: nothing is lost, and
//! nothing acknowledged before the kill is read again.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::util::{spawn, stderr_of, wait_exit, wait_for};

const LINES: usize = 200_000;

const CONFIG: &str = "\
data_dir: state
api:
  enabled: false
sources:
  in:
    type: file
    path: input.ndjson
    stream: item_usages
    batch_max_events: 200
    max_pending_batches: 4
sinks:
  a:
    type: file
    inputs: [in]
    path: out/a.ndjson
  b:
    type: file
    inputs: [in]
    path: out/b.ndjson
";

/// The input, and the byte offset at which each line ends.
fn write_input(path: &Path) -> Vec<u64> {
    let mut text = String::new();
    let mut ends = Vec::with_capacity(LINES);
    for n in 0..LINES {
        text.push_str(&format!("{{\"uuid\":\"U{n:07}\",\"n\":{n},\"action\":\"reveal\"}}\n"));
        ends.push(text.len() as u64);
    }
    std::fs::write(path, text).expect("write input");
    ends
}

fn committed_offset(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("state/in/checkpoint.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("checkpoint is JSON");
    value["offset"].as_u64()
}

/// How often each line number appears in a sink's file; every line must be whole JSON.
fn counts(path: &Path) -> HashMap<u64, usize> {
    let text = std::fs::read_to_string(path).expect("sink output");
    let mut counts = HashMap::new();
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        *counts.entry(value["n"].as_u64().expect("n")).or_default() += 1;
    }
    counts
}

#[test]
fn kill_9_then_restart_loses_nothing_and_rereads_nothing_acknowledged() {
    let _heavy = super::util::heavy();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sluice.yaml"), CONFIG).expect("config");
    let ends = write_input(&dir.path().join("input.ndjson"));
    let total = *ends.last().expect("lines");

    let mut first = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let progressed =
        wait_for(Duration::from_secs(60), || committed_offset(dir.path()).filter(|o| *o > 0));
    assert!(progressed.is_some(), "no checkpoint after 60 s: {}", {
        let _ = first.kill();
        stderr_of(&mut first)
    });
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let at_kill = committed_offset(dir.path()).expect("checkpoint survives the kill");
    assert!(at_kill < total, "the first run finished before the kill; make the input bigger");

    let mut second = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let status = wait_exit(&mut second, Duration::from_secs(180));
    assert!(status.success(), "restart failed: {}", stderr_of(&mut second));
    assert_eq!(committed_offset(dir.path()), Some(total), "everything is committed at the end");

    let acknowledged_before_kill = ends.iter().take_while(|end| **end <= at_kill).count();
    assert!(acknowledged_before_kill > 0);
    for sink in ["a", "b"] {
        let counts = counts(&dir.path().join(format!("out/{sink}.ndjson")));
        for n in 0..LINES as u64 {
            let seen = counts.get(&n).copied().unwrap_or(0);
            assert!(seen >= 1, "sink {sink}: line {n} is missing");
            if (n as usize) < acknowledged_before_kill {
                assert_eq!(
                    seen, 1,
                    "sink {sink}: line {n} was acknowledged before the kill but read again"
                );
            }
        }
        assert_eq!(counts.len(), LINES, "sink {sink}: unexpected lines");
    }
}
