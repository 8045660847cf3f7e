//! The vrl transform through the binary: compile errors, dead letters and
//! their metrics, `sluice test`.

use std::path::Path;
use std::time::Duration;

use super::util::{free_port, http_get, repo, run, signal, spawn, stderr_of, wait_exit, wait_for};

#[test]
fn a_vrl_syntax_error_fails_validate_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("map.vrl"), ".a = 1\n.b = upcase(.c\n.d = 2\n").expect("vrl");
    let config = "sources:\n  in: {type: file, path: x, stream: audit_events}\ntransforms:\n  map:\n    type: vrl\n    inputs: [in]\n    file: map.vrl\nsinks:\n  out: {type: blackhole, inputs: [map]}\n";
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    let output = run(&["validate", "sluice.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let vrl =
        dir.path().join("map.vrl").canonicalize().unwrap_or_else(|_| dir.path().join("map.vrl"));
    assert!(stderr.contains("sluice.yaml:7:5: component map: the VRL program in "), "{stderr}");
    assert!(stderr.contains("error[E"), "vrl's rendered diagnostic: {stderr}");
    assert!(
        stderr.contains(&format!("{}:3:1", vrl.display())) || stderr.contains("map.vrl:3:1"),
        "file and line: {stderr}"
    );
    assert!(stderr.contains("3 │ .d = 2"), "the source line: {stderr}");
}

#[test]
fn failed_events_reach_the_dead_letter_with_their_reason_and_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"uuid":"OKAAAAAAAAAAAAAAAAAAAAAAAA","timestamp":"2026-11-20T10:00:00Z","used_version":1,"action":"fill","user":{"uuid":"U","name":"N","email":"e@example.com"},"client":{"ip_address":"192.0.2.1"}}"#,
        r#"{"uuid":"BADTIMEAAAAAAAAAAAAAAAAAAA","timestamp":"2026-13-45T99:00:00Z","used_version":1}"#,
        r#"{"uuid":"BADTYPEAAAAAAAAAAAAAAAAAAA","timestamp":["not","a","string"],"used_version":1}"#,
        r#"{"uuid":"OKBBBBBBBBBBBBBBBBBBBBBBBB","timestamp":"2026-11-20T10:00:01Z","used_version":2}"#,
    ];
    std::fs::write(dir.path().join("in.ndjson"), lines.join("\n") + "\n").expect("input");
    std::fs::create_dir_all(dir.path().join("vrl")).expect("mkdir");
    std::fs::copy(repo().join("pipelines/vrl/ecs.vrl"), dir.path().join("vrl/ecs.vrl"))
        .expect("copy");
    let port = free_port();
    let config = format!(
        "data_dir: state\napi: {{address: '127.0.0.1:{port}'}}\nsources:\n  in: {{type: file, path: in.ndjson, stream: item_usages, mode: follow}}\ntransforms:\n  ecs: {{type: vrl, inputs: [in], file: vrl/ecs.vrl}}\nsinks:\n  es: {{type: file, inputs: [ecs], path: out/ecs.ndjson}}\n  dlq: {{type: file, inputs: [ecs.dropped, in.dropped], path: out/dead-letter.ndjson}}\n"
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let metrics = wait_for(Duration::from_secs(30), || {
        http_get(port, "/metrics").filter(|(_, body)| body.contains("error_type=\"vrl_abort\"} 2"))
    });
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let stderr = stderr_of(&mut child);
    assert!(metrics.is_some(), "the two failures are counted: {stderr}");
    assert!(status.success(), "{stderr}");
    let metrics = metrics.expect("metrics").1;
    assert!(metrics.contains("sluice_component_errors_total{component_id=\"ecs\",component_kind=\"transform\",component_type=\"vrl\",stage=\"processing\",error_type=\"vrl_abort\"} 2"), "{metrics}");

    let read = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join(name))
            .expect("output")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    };
    let mapped = read("out/ecs.ndjson");
    let uuids: Vec<&str> =
        mapped.iter().map(|d| d["onepassword"]["uuid"].as_str().expect("uuid")).collect();
    assert_eq!(
        uuids,
        ["OKAAAAAAAAAAAAAAAAAAAAAAAA", "OKBBBBBBBBBBBBBBBBBBBBBBBB"],
        "nothing else is affected"
    );
    let dead = read("out/dead-letter.ndjson");
    assert_eq!(dead.len(), 2);
    assert_eq!(
        dead[0]["error"]["message"][0],
        "the item's `timestamp` is not RFC 3339: 2026-13-45T99:00:00Z"
    );
    assert_eq!(dead[0]["event"]["original"], lines[1]);
    assert_eq!(dead[1]["error"]["message"][0], "the item has no `timestamp` string");
    assert_eq!(dead[1]["event"]["kind"], "pipeline_error");
    assert_eq!(dead[1]["sluice"]["component_id"], "ecs");
}

#[test]
fn sluice_test_passes_the_shipped_tests_and_shows_a_readable_diff() {
    let output = run(&["test", "pipelines/demo.yaml"], &repo());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"
sources:
  in: {type: file, path: x, stream: audit_events}
transforms:
  shape:
    type: vrl
    inputs: [in]
    source: |
      .event.kind = "event"
      .count = to_int!(.n) + 1
sinks:
  out: {type: blackhole, inputs: [shape]}
tests:
  - name: counts up
    inputs:
      - {insert_at: shape, stream: audit_events, value: {n: "1"}}
    outputs:
      - extract_from: shape
        expected: {n: "1", count: 3, event: {kind: "event", extra: true}}
  - name: a condition that holds
    inputs:
      - {insert_at: shape, value: {n: "4"}}
    outputs:
      - extract_from: shape
        conditions:
          - {type: vrl, source: 'assert_eq!(.count, 5)'}
    no_outputs_from: [shape.dropped]
  - name: a failing assertion
    inputs:
      - {insert_at: shape, value: {n: "nine"}}
    outputs:
      - extract_from: shape
        conditions:
          - {type: vrl, source: 'assert_eq!(.count, 10)'}
"#;
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    let output = run(&["test", "sluice.yaml"], dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("test counts up ... FAILED"), "{stdout}");
    assert!(stdout.contains(".count: expected 3, got 2"), "{stdout}");
    assert!(stdout.contains(".event.extra: missing (expected true)"), "{stdout}");
    assert!(stdout.contains("test a condition that holds ... ok"), "{stdout}");
    assert!(stdout.contains("test a failing assertion ... FAILED"), "{stdout}");
    assert!(
        stdout.contains("output shape: no event came out (events came out of: shape.dropped (1))"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 2 failed"), "{stdout}");
}
