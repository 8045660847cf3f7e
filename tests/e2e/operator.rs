//! What an operator meets first (../shared/reviews/newcomer-2026-11.md),
//! through the binary: token files read by offline `validate`, a token of
//! another host, one error for one YAML mistake, `checkpoint list` without
//! secrets, `sluice test` positions as line and column, a backfill that
//! says where it stands while it waits out a rate-limit pause.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::util::{free_port, run, spawn, start_sim, stderr_so_far, wait_for};

/// An Events API token (unsigned: only its claims matter offline) for `audience`.
fn token(audience: &str) -> String {
    let claims = format!(
        r#"{{"aud":["{audience}"],"1password.com/fts":["signinattempts","itemusages","auditevents"]}}"#
    );
    format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln\n", URL_SAFE_NO_PAD.encode(claims))
}

/// `sluice <args>` in a folder holding `sluice.yaml` = `config` and `files`.
fn in_dir(config: &str, files: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("file");
    }
    let output = run(args, dir.path());
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn onepassword(url: &str) -> String {
    format!(
        "data_dir: state
sources:
  op:
    type: onepassword
    token_file: op_token
{url}sinks:
  out: {{type: blackhole, inputs: [op]}}
"
    )
}

#[test]
fn offline_validate_reads_the_token_file_and_reports_it_at_its_line() {
    let config = onepassword("");
    let (code, _, stderr) = in_dir(&config, &[], &["validate", "sluice.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("sluice.yaml:5:5: component op: cannot read the token file"),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "the cause once: {stderr}");

    let (code, _, stderr) =
        in_dir(&config, &[("op_token", "not a token\n")], &["validate", "sluice.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sluice.yaml:5:5: component op: the token is not a JWT"), "{stderr}");
    assert!(!stderr.contains("not a token"), "the file's content never shows: {stderr}");

    let good = token("events.1password.com");
    let (code, stdout, stderr) =
        in_dir(&config, &[("op_token", &good)], &["validate", "sluice.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid: 1 source(s)"), "{stdout}");

    // The secrets of CI are not mounted: --skip-files checks the config alone.
    let (code, _, stderr) = in_dir(&config, &[], &["validate", "--skip-files", "sluice.yaml"]);
    assert_eq!(code, 0, "{stderr}");
}

/// `sluice.yaml:<line>:<column>` of `key_and_value` in `config`.
fn at(config: &str, key_and_value: &str) -> String {
    let (n, line) = config
        .lines()
        .enumerate()
        .find(|(_, line)| line.contains(key_and_value))
        .expect("the key is in the config");
    format!("sluice.yaml:{}:{}", n + 1, line.find(key_and_value).expect("found") + 1)
}

#[test]
fn offline_validate_reads_the_token_and_certificate_files_of_every_component() {
    let config = "data_dir: state
sources:
  edges:
    type: sluice
    address: 127.0.0.1:6000
    token_file: forward_token
    tls:
      crt_file: server.crt
      key_file: server.key
sinks:
  es:
    type: elasticsearch
    inputs: [edges]
    endpoints: ['https://127.0.0.1:9200']
    tls:
      ca_file: es_ca.pem
  hec:
    type: splunk_hec
    inputs: [edges]
    endpoint: https://127.0.0.1:8088
    token_file: hec_token
  up:
    type: sluice
    inputs: [edges]
    endpoints: ['https://127.0.0.1:6001']
    token_file: forward_token
    tls:
      ca_file: up_ca.pem
";
    let files = [("forward_token", "a-forward-token\n"), ("es_ca.pem", "not a certificate\n")];
    let (code, _, stderr) = in_dir(config, &files, &["validate", "sluice.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    for (key, expected) in [
        ("crt_file: server.crt", "component edges: cannot use the certificate"),
        ("ca_file: es_ca.pem", "component es: tls.ca_file"),
        ("token_file: hec_token", "component hec: cannot read the token file"),
        ("ca_file: up_ca.pem", "component up: cannot use the CA file"),
    ] {
        let line = format!("{}: {expected}", at(config, key));
        assert!(stderr.contains(&line), "{line} in:\n{stderr}");
    }
    assert!(stderr.contains("no PEM certificate in it"), "{stderr}");
    assert!(!stderr.contains("a-forward-token"), "a token never shows: {stderr}");
    let (code, _, stderr) = in_dir(config, &files, &["validate", "--skip-files", "sluice.yaml"]);
    assert_eq!(code, 0, "the config itself is valid: {stderr}");
}

#[test]
fn a_token_of_another_host_is_an_error_for_1password_and_a_warning_for_a_relay() {
    let eu = token("events.1password.eu");
    let config = onepassword("    url: https://events.1password.com\n");
    let (code, _, stderr) = in_dir(&config, &[("op_token", &eu)], &["validate", "sluice.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("sluice.yaml:5:5: component op: the token was issued for `events.1password.eu`, but url sends it to `events.1password.com`"),
        "{stderr}"
    );

    let config = onepassword("    url: http://127.0.0.1:18080\n    allow_custom_url: true\n");
    let (code, _, stderr) = in_dir(&config, &[("op_token", &eu)], &["validate", "sluice.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains("sluice.yaml:5:5: component op: the token was issued for `events.1password.eu`, not url's `127.0.0.1:18080`"),
        "{stderr}"
    );
    let matching = token("127.0.0.1:18080");
    let (code, _, stderr) =
        in_dir(&config, &[("op_token", &matching)], &["validate", "sluice.yaml"]);
    assert_eq!((code, stderr.contains("WARN")), (0, false), "{stderr}");
}

#[test]
fn a_yaml_mistake_is_one_error_not_three() {
    for (text, expected) in [
        ("sources:\n  op:\n\ttype: file\n", "sluice.yaml:3:1: invalid YAML"),
        ("sources:\n  op:\n    type: file\n    type: file\n", "duplicate entry with key \"type\""),
    ] {
        let (code, _, stderr) = in_dir(text, &[], &["validate", "sluice.yaml"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("invalid configuration (1 error):"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("has no source"), "{stderr}");
    }
    let (code, _, stderr) = in_dir("", &[], &["validate", "missing.yaml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid configuration (1 error):\n  missing.yaml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn checkpoint_list_needs_no_token() {
    let config = "data_dir: state
sources:
  op:
    type: onepassword
    token: ${OP_EVENTS_TOKEN_FOR_NOBODY}
sinks:
  out: {type: blackhole, inputs: [op]}
";
    let (code, stdout, stderr) = in_dir(config, &[], &["checkpoint", "list", "sluice.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("op               signin_attempts  none"), "{stdout}");
    // A mistake outside the components still stops it.
    let (code, _, stderr) =
        in_dir(&format!("{config}bogus: 1\n"), &[], &["checkpoint", "list", "sluice.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown top-level key `bogus`"), "{stderr}");
}

#[test]
fn sluice_test_reports_a_failed_assertion_at_its_line_and_column() {
    let config = r#"
sources:
  in: {type: file, path: x, stream: audit_events}
transforms:
  shape: {type: vrl, inputs: [in], source: '.n = 1'}
sinks:
  out: {type: blackhole, inputs: [shape]}
tests:
  - name: second line fails
    inputs:
      - {insert_at: shape, value: {}}
    outputs:
      - extract_from: shape
        conditions:
          - type: vrl
            source: |
              assert_eq!(.n, 1)
              assert_eq!(.n, 2)
"#;
    let (code, stdout, _) = in_dir(config, &[], &["test", "sluice.yaml"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(
            r#"function call error for "assert_eq" at line 2, column 1: assertion failed: 1 == 2"#
        ),
        "{stdout}"
    );
}

#[test]
fn start_time_beyond_the_retention_is_warned_about_at_its_line() {
    let config = onepassword("    start_time: 200d\n");
    let good = token("events.1password.com");
    let (code, _, stderr) = in_dir(&config, &[("op_token", &good)], &["validate", "sluice.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .contains("sluice.yaml:6:5: component op: start_time is older than the API's 120 days"),
        "{stderr}"
    );
}

/// A backfill held by the token's rate limit for most of a minute still logs
/// where it stands every 5 s (the newcomer saw nothing for 36 s).
#[test]
fn a_backfill_logs_its_progress_while_it_waits_out_a_rate_limit_pause() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Four requests a minute: the introspection and three pages, then a pause.
    let sim = start_sim(dir.path(), 500, &["--rate-limit-per-minute", "4"]);
    super::elasticsearch::write_config_for(dir.path(), &sim, "http://127.0.0.1:9", free_port(), "");
    let config = dir.path().join("sluice.yaml");
    let yaml = std::fs::read_to_string(&config).expect("config");
    let yaml = yaml.replace(
        "    interval_secs: 1\n",
        "    interval_secs: 1\n    limit: 10\n    streams: [audit_events]\n",
    );
    let yaml = yaml.replace("  es:\n    type: elasticsearch\n    inputs: [ecs]\n    endpoints: ['http://127.0.0.1:9']\n    request: {retry_max_backoff_secs: 2}\n    dead_letter: {path: out/rejected.ndjson}\n", "  out: {type: blackhole, inputs: [ecs]}\n");
    std::fs::write(&config, yaml).expect("config");
    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let paused = "every stream of this token waits";
    let log = wait_for(Duration::from_secs(45), || {
        let log = stderr_so_far(&sluice);
        let after = log.split_once(paused)?.1.to_owned();
        after.contains("backfill progress").then_some(log)
    });
    let _ = sluice.kill();
    let _ = sluice.wait();
    let log = log
        .unwrap_or_else(|| panic!("no progress line during the pause: {}", stderr_so_far(&sluice)));
    let during = log.split_once(paused).expect("paused").1;
    let line = during.lines().find(|l| l.contains("backfill progress")).expect("a progress line");
    assert!(line.contains("stream=audit_events") && line.contains("events=30"), "{line}");
}
