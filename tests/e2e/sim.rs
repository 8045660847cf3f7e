//! `sluice sim` as a user runs it: a token file, introspection, SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use super::util::{free_port, http_get_with, signal, sluice, stderr_of, wait_exit, wait_for};

#[test]
fn sim_writes_a_private_token_serves_the_api_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let token_path = dir.path().join("secrets/op_token");
    let mut child = sluice()
        .args(["sim", "--listen", &format!("127.0.0.1:{port}"), "--events", "20", "--token-file"])
        .arg(&token_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let token = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&token_path).ok().filter(|t| t.ends_with('\n'))
    })
    .expect("token file written");
    let token = token.trim().to_owned();
    let mode = std::fs::metadata(&token_path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");

    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, body) =
        wait_for(Duration::from_secs(30), || http_get_with(port, "/api/v2/auth/introspect", &auth))
            .expect("answers");
    assert_eq!(status, 200, "{body}");
    let introspection: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        introspection["features"],
        serde_json::json!(["signinattempts", "itemusages", "auditevents"])
    );
    let (status, _) =
        http_get_with(port, "/api/v2/auth/introspect", "Authorization: Bearer nope\r\n")
            .expect("answers");
    assert_eq!(status, 401);

    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let stderr = stderr_of(&mut child);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("serving the 1Password Events API simulator"), "{stderr}");
    assert!(!stderr.contains(&token), "the token must never be logged");
}

#[test]
fn sim_refuses_bad_options_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output =
        sluice().args(["sim", "--error-rate", "2"]).current_dir(dir.path()).output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--error-rate must be between 0 and 1, not 2")
    );
    let output = sluice().args(["sim", "--fixtures"]).arg(dir.path()).output().expect("runs");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("holds none of signin_attempts.ndjson")
    );
}
