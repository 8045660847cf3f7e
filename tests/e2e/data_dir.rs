//! One data_dir, one owner: a second `sluice run` and a `checkpoint reset`
//! on the data_dir of a running sluice exit 2 naming its pid.

use std::path::Path;
use std::time::Duration;

use super::util::{
    free_port, http_get, run, signal, spawn, start_sim, stderr_of, stderr_so_far, wait_exit,
    wait_for,
};

#[test]
fn a_second_run_and_a_reset_are_refused_while_the_data_dir_is_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 50, &["--no-rate-limit"]);
    let config = |port: u16| {
        format!(
            "data_dir: state\napi: {{address: '127.0.0.1:{port}'}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: op_token, start_time: 1d}}\nsinks:\n  out: {{type: blackhole, inputs: [op]}}\n",
            sim.port
        )
    };
    let port = free_port();
    std::fs::write(dir.path().join("a.yaml"), config(port)).expect("config");
    std::fs::write(dir.path().join("b.yaml"), config(free_port())).expect("config");
    let mut first = spawn(Path::new("a.yaml"), dir.path(), &[]);
    assert!(
        wait_for(Duration::from_secs(60), || http_get(port, "/health")).is_some(),
        "{}",
        stderr_of(&mut first)
    );
    let pid = first.id();

    let second = run(&["run", "b.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("is locked by pid {pid}")), "{stderr}");

    let reset = run(&["checkpoint", "reset", "a.yaml", "--source", "op"], dir.path());
    let stderr = String::from_utf8_lossy(&reset.stderr);
    assert_eq!(reset.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("is locked by pid {pid}")) && stderr.contains("checkpoint reset"),
        "{stderr}"
    );

    signal(&first, libc::SIGTERM);
    assert!(wait_exit(&mut first, Duration::from_secs(60)).success());
    let reset = run(&["checkpoint", "reset", "a.yaml", "--source", "op"], dir.path());
    assert_eq!(reset.status.code(), Some(0), "{}", String::from_utf8_lossy(&reset.stderr));
}

/// A checkpoint records the token's account; a cursor of another account
/// is refused with the way out, and a reset clears it.
#[test]
fn a_cursor_of_another_account_is_refused_until_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 20, &["--no-rate-limit"]);
    let config = format!(
        "data_dir: state\napi: {{enabled: false}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: op_token, start_time: 1d, streams: [audit_events]}}\nsinks:\n  out: {{type: blackhole, inputs: [op]}}\n",
        sim.port
    );
    std::fs::write(dir.path().join("a.yaml"), config).expect("config");
    let file = dir.path().join("state/op/audit_events.json");
    let read = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&file).ok()?).ok()
    };
    let mut first = spawn(Path::new("a.yaml"), dir.path(), &[]);
    let committed =
        wait_for(Duration::from_secs(60), || read().filter(|c| c["cursor"].is_string()));
    signal(&first, libc::SIGTERM);
    assert!(wait_exit(&mut first, Duration::from_secs(30)).success());
    let mut checkpoint = committed.expect("a cursor is committed");
    let account = checkpoint["account"].as_str().expect("the account is recorded").to_owned();
    assert_eq!(checkpoint["url"], format!("http://127.0.0.1:{}", sim.port));

    checkpoint["account"] = "ANOTHERACCOUNTUUID".into();
    std::fs::write(&file, checkpoint.to_string()).expect("edit");
    let refused = run(&["run", "a.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "holds a cursor of account ANOTHERACCOUNTUUID, and the token is of account {account}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("sluice checkpoint reset <config> --source op"), "{stderr}");

    let reset = run(&["checkpoint", "reset", "a.yaml", "--source", "op"], dir.path());
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let mut again = spawn(Path::new("a.yaml"), dir.path(), &[]);
    let recommitted =
        wait_for(Duration::from_secs(60), || read().filter(|c| c["cursor"].is_string()));
    signal(&again, libc::SIGTERM);
    assert!(wait_exit(&mut again, Duration::from_secs(30)).success());
    assert_eq!(recommitted.expect("committed again")["account"], account.as_str());
}

/// Before its first commit a stream keeps the start time it resolved, so a
/// restart does not move a `30d` window forward.
#[test]
fn a_first_start_time_is_kept_across_a_restart_before_any_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 5, &["--no-rate-limit"]);
    // The API is never reached, so nothing is ever committed.
    let closed = free_port();
    let config = format!(
        "data_dir: state\napi: {{enabled: false}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{closed}', allow_custom_url: true, token_file: op_token, start_time: 30d, streams: [audit_events]}}\nsinks:\n  out: {{type: blackhole, inputs: [op]}}\n"
    );
    drop(sim);
    std::fs::write(dir.path().join("a.yaml"), config).expect("config");
    let file = dir.path().join("state/op/audit_events.json");
    let start_of = || -> Option<String> {
        let checkpoint: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
        assert!(checkpoint["cursor"].is_null(), "{checkpoint}");
        checkpoint["start_time"].as_str().map(str::to_owned)
    };
    let mut first = spawn(Path::new("a.yaml"), dir.path(), &[]);
    let start = wait_for(Duration::from_secs(60), start_of);
    signal(&first, libc::SIGTERM);
    wait_exit(&mut first, Duration::from_secs(30));
    let start = start.expect("the start time is written before any commit");
    let mut second = spawn(Path::new("a.yaml"), dir.path(), &[]);
    let logged = wait_for(Duration::from_secs(60), || {
        let log = super::util::stderr_so_far(&second);
        log.contains("starting a new cursor").then_some(log)
    });
    signal(&second, libc::SIGTERM);
    wait_exit(&mut second, Duration::from_secs(30));
    let log = logged.expect("the stream starts");
    assert!(log.contains(&format!("start_time={start}")), "{start}: {log}");
    assert_eq!(start_of(), Some(start));
    let list = run(&["checkpoint", "list", "a.yaml"], dir.path());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.lines().any(|l| l.contains("audit_events") && l.contains(" starting ")), "{text}");
}

/// Review H2 and M2 (reliability 2026-12): under umask 022 what sluice
/// writes under data_dir is private; a data_dir deleted under a running
/// sluice is taken again, so a second process is still refused.
#[test]
fn data_dir_is_private_and_a_deleted_one_is_taken_again() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 20, &["--no-rate-limit"]);
    let config = |port: u16| {
        format!(
            "data_dir: state\napi: {{address: '127.0.0.1:{port}'}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: op_token, start_time: 1d, streams: [audit_events]}}\nsinks:\n  out: {{type: file, inputs: [op], path: state/out/events.ndjson}}\n",
            sim.port
        )
    };
    let port = free_port();
    std::fs::write(dir.path().join("a.yaml"), config(port)).expect("config");
    std::fs::write(dir.path().join("b.yaml"), config(free_port())).expect("config");
    // SAFETY: umask(2) only sets this process's file mode mask; the children inherit it.
    #[allow(unsafe_code)]
    let old = unsafe { libc::umask(0o022) };
    let mut first = spawn(Path::new("a.yaml"), dir.path(), &[]);
    let state = dir.path().join("state");
    let checkpoint = state.join("op/audit_events.json");
    let output = state.join("out/events.ndjson");
    let ready = wait_for(Duration::from_secs(60), || {
        (std::fs::metadata(&output).ok()?.len() > 0 && checkpoint.exists()).then_some(())
    });
    assert!(ready.is_some(), "{}", stderr_of(&mut first));
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "data_dir");
    for file in [&checkpoint, &output, &state.join(".lock")] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // `rm -rf data_dir` while it runs: it takes the lock again, and a second
    // sluice on the same data_dir is still refused.
    // sluice may write into it while it goes, as under `rm -rf` ("Directory
    // not empty"): remove until it is gone.
    let removed = wait_for(Duration::from_secs(30), || match std::fs::remove_dir_all(&state) {
        Ok(()) => Some(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(()),
        Err(_) => None,
    });
    assert!(removed.is_some(), "rm -rf {} never succeeded", state.display());
    assert!(
        wait_for(Duration::from_secs(30), || state.join(".lock").exists().then_some(())).is_some(),
        "{}",
        stderr_of(&mut first)
    );
    let second = run(&["run", "b.yaml"], dir.path());
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(old)
    };
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("is locked by pid {}", first.id())), "{stderr}");
    signal(&first, libc::SIGTERM);
    assert!(wait_exit(&mut first, Duration::from_secs(60)).success(), "{}", stderr_of(&mut first));
}

/// The cursor trap (newcomer review row 36): a second pipeline resuming the
/// first one's checkpoints is told which sinks miss the history and how to
/// get out, once; the checkpoint then records the sinks it serves.
#[test]
fn a_pipeline_resuming_another_pipelines_cursor_is_told_what_its_sinks_miss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 40, &["--no-rate-limit"]);
    let source = format!(
        "data_dir: state\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: op_token, start_time: 1d}}\n",
        sim.port
    );
    let elastic = format!(
        "{source}api: {{address: '127.0.0.1:{}'}}\nsinks:\n  archive: {{type: file, path: out/archive.ndjson, inputs: [op]}}\n",
        free_port()
    );
    let splunk = |port: u16| {
        format!(
            "{source}api: {{address: '127.0.0.1:{port}'}}\ntransforms:\n  map: {{type: vrl, inputs: [op], source: '.'}}\nsinks:\n  splunk: {{type: blackhole, inputs: [map]}}\n"
        )
    };
    std::fs::write(dir.path().join("elastic.yaml"), elastic).expect("config");
    let checkpoint = dir.path().join("state/op/audit_events.json");
    let recorded = || -> Option<serde_json::Value> {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&checkpoint).ok()?).ok()?;
        value.get("cursor").is_some().then(|| value["consumers"].clone())
    };
    let run_until_committed = |config: &str, expected: serde_json::Value| {
        let mut child = spawn(Path::new(config), dir.path(), &[]);
        // Signals are handled once the API serves.
        let committed = wait_for(Duration::from_secs(60), || {
            let serving = stderr_so_far(&child).contains("serving /metrics");
            recorded().filter(|c| serving && *c == expected).map(|_| ())
        });
        signal(&child, libc::SIGTERM);
        let status = wait_exit(&mut child, Duration::from_secs(60));
        let logs = stderr_of(&mut child);
        assert!(committed.is_some() && status.success(), "{:?}\n{logs}", recorded());
        logs
    };
    let first = run_until_committed("elastic.yaml", serde_json::json!(["archive (file)"]));
    assert!(!first.contains("will not get the events"), "{first}");

    std::fs::write(dir.path().join("splunk.yaml"), splunk(free_port())).expect("config");
    let second = run_until_committed("splunk.yaml", serde_json::json!(["splunk (blackhole)"]));
    assert!(second.contains("WARN"), "{second}");
    assert!(
        second.contains("delivered to archive (file); it now delivers to splunk (blackhole), so splunk (blackhole) will not get the events before it"),
        "{second}"
    );
    assert!(second.contains("give it its own data_dir"), "{second}");

    std::fs::write(dir.path().join("splunk.yaml"), splunk(free_port())).expect("config");
    let third = run_until_committed("splunk.yaml", serde_json::json!(["splunk (blackhole)"]));
    assert!(!third.contains("will not get the events"), "said once: {third}");
}
