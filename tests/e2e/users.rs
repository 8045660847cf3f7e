//! The onepassword_users source through the binary, against `sluice sim`'s
//! Users API in its own process: kill -9 between a poll and its
//! acknowledgement sends the change again after the restart; a wrong secret
//! stops `validate --network`; a rotated one turns `/health`; the secret
//! appears in no output.

use std::path::Path;
use std::time::Duration;

use super::util::{
    Sim, free_port, http_get, http_send, run, signal, spawn, start_sim, stderr_of, stderr_so_far,
    wait_exit, wait_for,
};

const LONG: Duration = Duration::from_secs(60);

/// A sim with 8 people beyond the generator's 12, its client secret in
/// `dir/users_secret`.
fn sim_with_people(dir: &Path) -> Sim {
    let secret = dir.join("users_secret");
    start_sim(dir, 0, &["--users", "8", "--users-secret-file", secret.to_str().expect("utf-8")])
}

fn directory(sim: &Sim) -> serde_json::Value {
    let (_, body) = http_get(sim.port, "/_sim/users").expect("directory");
    serde_json::from_str(&body).expect("json")
}

/// A config: the users source into `sink` (YAML of one sink), API on `api`.
fn config(dir: &Path, sim: &Sim, api: u16, sink: &str) {
    let directory = directory(sim);
    let yaml = format!(
        "data_dir: state\napi:\n  address: 127.0.0.1:{api}\nsources:\n  people:\n    type: onepassword_users\n    url: http://127.0.0.1:{}\n    allow_custom_url: true\n    account_id: {}\n    client_id: {}\n    client_secret_file: users_secret\n    interval_secs: 1\n    refused_retry_secs: 1\nsinks:\n  out:\n{sink}",
        sim.port,
        directory["account_id"].as_str().expect("account"),
        directory["client_id"].as_str().expect("client"),
    );
    std::fs::write(dir.join("sluice.yaml"), yaml).expect("config");
}

const FILE_SINK: &str = "    type: file\n    inputs: [people]\n    path: out/users.ndjson\n";

fn delivered(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("out/users.ndjson")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn generation(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("state/people/users.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["generation"].as_u64()
}

#[test]
fn kill_9_before_the_acknowledgement_sends_the_change_again_after_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim_with_people(dir.path());
    config(dir.path(), &sim, free_port(), FILE_SINK);
    let mut first = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let committed = wait_for(LONG, || generation(dir.path()).filter(|g| *g == 1));
    assert!(committed.is_some(), "no inventory committed: {}", stderr_so_far(&first));
    assert_eq!(delivered(dir.path()).len(), 20, "the full inventory, once");
    first.kill().expect("kill -9");
    first.wait().expect("reaped");

    // Suspend someone, then poll into a sink that never acknowledges.
    let user = directory(&sim)["users"][2]["id"].as_str().expect("id").to_owned();
    let (status, _) = http_send(
        sim.port,
        "PUT",
        &format!("/_sim/users/{user}/state"),
        r#"{"state":"SUSPENDED"}"#,
    )
    .expect("sim");
    assert_eq!(status, 200);
    let closed = free_port();
    let unreachable = format!(
        "    type: elasticsearch\n    inputs: [people]\n    endpoints: ['http://127.0.0.1:{closed}']\n"
    );
    config(dir.path(), &sim, free_port(), &unreachable);
    let listings = directory(&sim)["listings"].as_u64().expect("count");
    let mut second = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let polled =
        wait_for(LONG, || (directory(&sim)["listings"].as_u64()? > listings + 1).then_some(()));
    assert!(polled.is_some(), "no poll: {}", stderr_so_far(&second));
    second.kill().expect("kill -9");
    second.wait().expect("reaped");
    assert_eq!(generation(dir.path()), Some(1), "nothing acknowledged, nothing committed");

    // Back to the file: the change comes, once.
    config(dir.path(), &sim, free_port(), FILE_SINK);
    let mut third = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let sent = wait_for(LONG, || (delivered(dir.path()).len() > 20).then_some(()));
    assert!(sent.is_some(), "the change was not sent again: {}", stderr_so_far(&third));
    wait_for(LONG, || generation(dir.path()).filter(|g| *g == 2)).expect("committed");
    let _ = third.kill();
    let _ = third.wait();
    let later: Vec<_> = delivered(dir.path()).split_off(20);
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0]["change"], "modified");
    assert_eq!(later[0]["user"]["id"], user.as_str());
    assert_eq!(later[0]["user"]["state"], "SUSPENDED");
    assert_eq!(directory(&sim)["writes"], 0, "read-only");
}

#[test]
fn a_wrong_secret_stops_validate_network_and_is_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim_with_people(dir.path());
    config(dir.path(), &sim, free_port(), FILE_SINK);
    std::fs::write(dir.path().join("users_secret"), "wrong-secret-3f9a\n").expect("secret");
    let output = run(&["validate", "--network", "sluice.yaml"], dir.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("people") && text.contains("refuses the client credentials"), "{text}");
    assert!(!text.contains("wrong-secret-3f9a"), "{text}");
}

#[test]
fn a_rotated_secret_turns_health_naming_the_source_and_no_output_shows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim_with_people(dir.path());
    let api = free_port();
    config(dir.path(), &sim, api, FILE_SINK);
    let secret = directory(&sim)["client_secret"].as_str().expect("secret").to_owned();
    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    wait_for(LONG, || generation(dir.path())).expect("first inventory");
    let (_, metrics) = http_get(api, "/metrics").expect("metrics");
    let up = metrics.lines().find(|l| {
        l.starts_with("sluice_onepassword_stream_up{")
            && l.contains(r#"component_id="people""#)
            && l.contains(r#"stream="users""#)
    });
    assert!(up.is_some_and(|l| l.ends_with(" 1")), "{metrics}");
    let (status, _) = http_send(sim.port, "POST", "/_sim/users/rotate", "").expect("sim");
    assert_eq!(status, 200);
    let health = wait_for(LONG, || {
        let (status, body) = http_get(api, "/health")?;
        (status == 503 && body.contains("people.users")).then_some(body)
    });
    let health = health.unwrap_or_else(|| panic!("/health stayed up: {}", stderr_so_far(&sluice)));
    assert!(health.contains("refuses the client credentials"), "{health}");
    let (_, metrics) = http_get(api, "/metrics").expect("metrics");
    let _ = sluice.kill();
    let log = stderr_of(&mut sluice);
    for text in [&health, &metrics, &log] {
        assert!(!text.contains(&secret), "the secret leaked: {text}");
    }
    let refusal = log.lines().find(|l| l.contains("the Users API refuses this source"));
    let refusal = refusal.unwrap_or_else(|| panic!("no refusal logged: {log}"));
    assert!(refusal.contains("component{id=people}"), "the line names the source: {refusal}");
}

#[test]
fn a_stop_revokes_the_access_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim_with_people(dir.path());
    config(dir.path(), &sim, free_port(), FILE_SINK);
    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    wait_for(LONG, || generation(dir.path())).expect("first inventory");
    assert_eq!(directory(&sim)["revocations"], 0);
    signal(&sluice, 15);
    let status = wait_exit(&mut sluice, LONG);
    assert!(status.success(), "{status:?}: {}", stderr_of(&mut sluice));
    assert_eq!(directory(&sim)["revocations"], 1, "the token is revoked at shutdown");
}
