//! One data_dir, one owner: a second `sluice run` and a `checkpoint reset`
//! on the data_dir of a running sluice exit 2 naming its pid.

use std::path::Path;
use std::time::Duration;

use super::util::{
    free_port, http_get, run, signal, spawn, start_sim, stderr_of, wait_exit, wait_for,
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
