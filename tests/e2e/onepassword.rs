//! The onepassword source through the binary, against `sluice sim` in its
//! own process: a 60,000-event backfill with kill -9 and a restart, and the
//! token kept out of every output.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::util::{
    Sim, free_port, http_get, signal, sluice, spawn, start_sim, stderr_of, stderr_so_far,
    wait_exit, wait_for,
};

const PER_STREAM: usize = 20_000;

/// The uuids of every event the simulator shows now.
fn visible(sim: &Sim) -> std::collections::HashSet<String> {
    let (_, body) = http_get(sim.port, "/_sim/uuids").expect("uuids");
    let streams: HashMap<String, Vec<String>> = serde_json::from_str(&body).expect("json");
    streams.into_values().flatten().collect()
}

fn config(sim: &Sim, api_port: u16) -> String {
    format!(
        "data_dir: state\napi:\n  address: 127.0.0.1:{api_port}\nsources:\n  op:\n    type: onepassword\n    url: http://127.0.0.1:{}\n    allow_custom_url: true\n    token_file: op_token\n    start_time: 2d\n    interval_secs: 1\n    max_pages_in_flight: 2\nsinks:\n  out:\n    type: file\n    inputs: [op]\n    path: out/events.ndjson\n",
        sim.port
    )
}

/// `sluice run` from `sim` into an Elasticsearch sink nothing listens for:
/// nothing is delivered, so nothing is acknowledged. Its API port and process.
fn run_without_a_reachable_sink(dir: &Path, sim: &Sim) -> (u16, std::process::Child) {
    let api = free_port();
    let closed = free_port();
    super::elasticsearch::write_config_for(
        dir,
        sim,
        &format!("http://127.0.0.1:{closed}"),
        api,
        "",
    );
    (api, spawn(Path::new("sluice.yaml"), dir, &[]))
}

fn stream_of(event: &serde_json::Value) -> &'static str {
    if event.get("category").is_some() {
        "signin_attempts"
    } else if event.get("item_uuid").is_some() {
        "item_usages"
    } else {
        "audit_events"
    }
}

/// Delivered events per stream, in file order.
fn delivered(dir: &Path) -> HashMap<&'static str, Vec<String>> {
    let text = std::fs::read_to_string(dir.join("out/events.ndjson")).unwrap_or_default();
    let mut by_stream: HashMap<&'static str, Vec<String>> = HashMap::new();
    // A line being written while the test reads has no newline yet.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        by_stream
            .entry(stream_of(&event))
            .or_default()
            .push(event["uuid"].as_str().expect("uuid").to_owned());
    }
    by_stream
}

fn committed_events(dir: &Path, stream: &str) -> u64 {
    std::fs::read(dir.join(format!("state/op/{stream}.json")))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|checkpoint| checkpoint["events"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_60000_event_backfill_survives_kill_9() {
    let _heavy = super::util::heavy();
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), PER_STREAM, &[]);
    let at_start = visible(&sim);
    let total = at_start.len();
    assert!(total > 55_000, "most of the 60,000 events are visible: {total}");
    std::fs::write(dir.path().join("sluice.yaml"), config(&sim, free_port())).expect("config");

    let mut first = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let started = wait_for(Duration::from_secs(120), || {
        let committed: u64 = ["signin_attempts", "item_usages", "audit_events"]
            .iter()
            .map(|s| committed_events(dir.path(), s))
            .sum();
        (committed >= 5_000).then_some(committed)
    });
    assert!(started.is_some(), "no progress: {}", {
        let _ = first.kill();
        stderr_of(&mut first)
    });
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let at_kill: HashMap<&str, u64> = ["signin_attempts", "item_usages", "audit_events"]
        .iter()
        .map(|s| (*s, committed_events(dir.path(), s)))
        .collect();
    let delivered_at_kill: usize = delivered(dir.path()).values().map(Vec::len).sum();
    assert!(delivered_at_kill < total, "the first run finished before the kill");

    std::fs::write(dir.path().join("sluice.yaml"), config(&sim, free_port())).expect("config");
    let mut second = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let done = wait_for(Duration::from_secs(240), || {
        let unique: usize = delivered(dir.path())
            .values()
            .map(|uuids| uuids.iter().collect::<std::collections::HashSet<_>>().len())
            .sum();
        (unique >= total).then_some(unique)
    });
    signal(&second, libc::SIGTERM);
    let status = wait_exit(&mut second, Duration::from_secs(30));
    let stderr = stderr_of(&mut second);
    assert!(done.is_some(), "not every event arrived after the restart: {stderr}");
    assert!(status.success(), "{stderr}");

    // Backfilled events ingested late become visible while the test runs.
    let at_end = visible(&sim);
    let by_stream = delivered(dir.path());
    for (stream, uuids) in &by_stream {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for uuid in uuids {
            *counts.entry(uuid.as_str()).or_default() += 1;
        }
        for uuid in counts.keys() {
            assert!(at_end.contains(*uuid), "{stream}: {uuid} is not an event of the simulator");
        }
        // What was committed before the kill was delivered once: duplicates
        // only come from the pages in flight when sluice died.
        let committed = at_kill[stream] as usize;
        for uuid in &uuids[..committed.min(uuids.len())] {
            assert_eq!(
                counts[uuid.as_str()],
                1,
                "{stream}: {uuid} was committed before the kill but delivered again"
            );
        }
    }
    let all: std::collections::HashSet<&String> = by_stream.values().flatten().collect();
    let missing: Vec<_> = at_start.iter().filter(|uuid| !all.contains(uuid)).take(5).collect();
    assert!(missing.is_empty(), "events missing: {missing:?}");
}

#[test]
fn the_token_appears_in_no_log_metric_error_or_validate_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 200, &[]);
    let api_port = free_port();
    // The token inline, through a variable, for the run; as a file elsewhere.
    let inline = config(&sim, api_port).replace("token_file: op_token", "token: ${OP_TOKEN}");
    std::fs::write(dir.path().join("sluice.yaml"), &inline).expect("config");
    let env = [("OP_TOKEN", sim.token.clone()), ("RUST_LOG", "trace".to_owned())];
    let mut run = spawn(Path::new("sluice.yaml"), dir.path(), &env);
    let metrics = wait_for(Duration::from_secs(60), || {
        http_get(api_port, "/metrics")
            .filter(|(_, body)| body.contains("sluice_onepassword_requests_total"))
    })
    .expect("metrics")
    .1;
    let health = http_get(api_port, "/health").expect("health").1;
    signal(&run, libc::SIGTERM);
    let status = wait_exit(&mut run, Duration::from_secs(30));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut run.stdout.take().expect("stdout"), &mut stdout)
        .expect("stdout");
    let logs = stderr_of(&mut run);
    assert!(status.success(), "{logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "trace logging is on");

    let mut outputs =
        vec![("run logs", logs), ("run stdout", stdout), ("metrics", metrics), ("health", health)];
    // An invalid config that holds the token, and a preflight refusal.
    let broken = inline.replace("interval_secs: 1", "interval_secs: 0");
    std::fs::write(dir.path().join("broken.yaml"), broken).expect("config");
    let output = sluice()
        .args(["validate", "broken.yaml"])
        .current_dir(dir.path())
        .env("OP_TOKEN", &sim.token)
        .output()
        .expect("validate");
    assert_eq!(output.status.code(), Some(2));
    outputs.push((
        "validate",
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ));
    let lacking = inline
        .replace("    interval_secs: 1\n", "    interval_secs: 1\n    streams: [item_usages]\n");
    std::fs::write(dir.path().join("network.yaml"), lacking).expect("config");
    let output = sluice()
        .args(["validate", "--network", "network.yaml"])
        .current_dir(dir.path())
        .env("OP_TOKEN", format!("{}x", sim.token))
        .env("RUST_LOG", "trace")
        .output()
        .expect("validate --network");
    assert_eq!(output.status.code(), Some(2), "a wrong token fails the network check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("refused the token (401 Unauthorized)"), "{text}");
    outputs.push(("validate --network", text));

    let signature = sim.token.rsplit('.').next().expect("signature").to_owned();
    for (name, text) in outputs {
        assert!(!text.contains(&sim.token), "{name} shows the token");
        assert!(!text.contains(&signature), "{name} shows the token's signature");
    }
}

#[test]
fn checkpoint_list_and_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 50, &[]);
    std::fs::write(dir.path().join("sluice.yaml"), config(&sim, free_port())).expect("config");
    let mut run = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    // Caught up: every stream committed something, and all of it was delivered.
    let caught_up = wait_for(Duration::from_secs(60), || {
        let committed: Vec<u64> = ["signin_attempts", "item_usages", "audit_events"]
            .iter()
            .map(|s| committed_events(dir.path(), s))
            .collect();
        (committed.iter().all(|c| *c > 0)
            && delivered(dir.path()).values().map(Vec::len).sum::<usize>() as u64
                == committed.iter().sum::<u64>())
        .then_some(())
    });
    signal(&run, libc::SIGTERM);
    assert!(wait_exit(&mut run, Duration::from_secs(30)).success());
    assert!(caught_up.is_some(), "not every stream caught up in 60 s");

    let list = sluice()
        .args(["checkpoint", "list", "sluice.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("list");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let item_line = text
        .lines()
        .find(|l| l.starts_with("op") && l.contains("item_usages"))
        .expect("a line per stream");
    assert!(item_line.contains(" yes "), "{text}");
    assert!(item_line.contains(&committed_events(dir.path(), "item_usages").to_string()), "{text}");

    let reset = sluice()
        .args([
            "checkpoint",
            "reset",
            "sluice.yaml",
            "--source",
            "op",
            "--stream",
            "item_usages",
            "--start-time",
            "3d",
        ])
        .current_dir(dir.path())
        .output()
        .expect("reset");
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let checkpoint: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state/op/item_usages.json")).expect("file"),
    )
    .expect("json");
    assert!(checkpoint["cursor"].is_null() && checkpoint["start_time"].is_string(), "{checkpoint}");
    let text = String::from_utf8_lossy(
        &sluice()
            .args(["checkpoint", "list", "sluice.yaml"])
            .current_dir(dir.path())
            .output()
            .expect("list")
            .stdout,
    )
    .into_owned();
    assert!(text.lines().any(|l| l.contains("item_usages") && l.contains(" reset ")), "{text}");

    // The next run reads item usages again from three days back, and only them.
    let before = delivered(dir.path());
    let mut again = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let item_total = before["item_usages"].len();
    let redone = wait_for(Duration::from_secs(60), || {
        (delivered(dir.path())["item_usages"].len() >= 2 * item_total).then_some(())
    });
    signal(&again, libc::SIGTERM);
    assert!(wait_exit(&mut again, Duration::from_secs(30)).success());
    assert!(redone.is_some(), "item usages are delivered again after the reset");
    let after = delivered(dir.path());
    assert_eq!(
        after["signin_attempts"].len(),
        before["signin_attempts"].len(),
        "other streams are untouched"
    );

    let wrong = sluice()
        .args(["checkpoint", "reset", "sluice.yaml", "--source", "nope"])
        .current_dir(dir.path())
        .output()
        .expect("reset");
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("`nope` is not a onepassword source of this config (it has: op)")
    );
}

#[test]
fn demo_prints_events_sluice_tap_sees_them_and_it_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut demo = sluice()
        .args(["demo", "--events", "20"])
        .current_dir(dir.path())
        .env("SLUICE_DEMO_API_ADDRESS", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let mut stdout = demo.stdout.take().expect("stdout");
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    std::thread::spawn({
        let printed = printed.clone();
        move || {
            let mut buffered = std::io::BufReader::new(&mut stdout);
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut buffered, &mut line).is_ok_and(|n| n > 0) {
                printed.lock().expect("lines").push(std::mem::take(&mut line));
            }
        }
    });
    assert!(
        wait_for(Duration::from_secs(60), || http_get(port, "/health").filter(|(s, _)| *s == 200))
            .is_some(),
        "the demo's API never answered: {}",
        stderr_so_far(&demo)
    );
    let url = format!("http://127.0.0.1:{port}");
    let unknown = sluice().args(["tap", "es", "--url", &url]).output().expect("tap");
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr).trim(),
        "error: no output `es` to tap; outputs: ecs, ecs.dropped, op, people"
    );
    let mut tap = sluice()
        .args(["tap", "ecs", "--limit", "5", "--url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tap starts");
    let status = wait_exit(&mut tap, Duration::from_secs(120));
    let mut tapped = String::new();
    std::io::Read::read_to_string(&mut tap.stdout.take().expect("stdout"), &mut tapped)
        .expect("tap output");
    assert!(status.success(), "{}", stderr_of(&mut tap));
    let uuids: Vec<String> = tapped
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(event["ecs"]["version"], "8.11.0", "an ECS document: {line}");
            event["onepassword"]["uuid"].as_str().expect("a uuid").to_owned()
        })
        .collect();
    assert_eq!(uuids.len(), 5, "{tapped}");
    // The tap saw copies of what the console sink prints.
    let all_printed = wait_for(Duration::from_secs(60), || {
        let printed = printed.lock().expect("lines");
        (printed.len() >= 30
            && uuids.iter().all(|u| printed.iter().any(|l| l.contains(u.as_str()))))
        .then_some(())
    });
    assert!(all_printed.is_some(), "the console did not print the tapped events");
    // `sluice top` shows the demo's components, non-interactively: two refreshes.
    let top = sluice()
        .args(["top", "--url", &url, "--count", "2", "--interval-secs", "0.5"])
        .output()
        .expect("top");
    let table = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    assert_eq!(table.matches("sluice top: ").count(), 2, "{table}");
    let last = table.rsplit("sluice top: ").next().expect("the second table");
    let row = |id: &str| -> Vec<String> {
        let line = last.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap_or_default();
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    assert_eq!(row("op")[..3], ["op", "source", "onepassword"], "{table}");
    let ecs = row("ecs");
    assert_eq!(ecs[..3], ["ecs", "transform", "vrl"], "{table}");
    let received: u64 = ecs[3].split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(received >= 30 && ecs[3].ends_with("/s)"), "events in with a rate: {table}");
    let console = row("console");
    assert_eq!(console[..3], ["console", "sink", "console"], "{table}");
    assert!(console[7].ends_with('%') && console[8] == "ok", "queue fill and health: {table}");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let refused = sluice().args(["top", "--url", &nowhere, "--count", "1"]).output().expect("top");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot reach sluice's API"));
    // A second demo on the same port says which flag moves it.
    let second = sluice()
        .args(["demo", "--events", "1"])
        .current_dir(dir.path())
        .env("SLUICE_DEMO_API_ADDRESS", format!("127.0.0.1:{port}"))
        .output()
        .expect("second demo");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pass --api-address"), "{stderr}");
    signal(&demo, libc::SIGINT);
    let status = wait_exit(&mut demo, Duration::from_secs(30));
    let stderr = stderr_of(&mut demo);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("tap closed") && stderr.contains("events=5"), "{stderr}");
    let mut people = 0;
    for line in printed.lock().expect("lines").iter() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON event per line");
        assert_eq!(event["ecs"]["version"], "8.11.0", "an ECS document: {line}");
        let uuid = event["onepassword"]["uuid"].as_str().unwrap_or_default();
        if event["event"]["dataset"] == "1password.users" {
            // The inventory's documents: `<user id>-<generation hash>`.
            let user = event["user"]["id"].as_str().unwrap_or("?");
            assert!(uuid.starts_with(&format!("{user}-")), "{line}");
            people += 1;
        } else {
            assert_eq!(uuid.len(), 26, "{line}");
        }
    }
    assert_eq!(people, 12, "the demo prints the simulated account's people once");
}

/// Before anything is delivered there is no lag to show (not a lag of 0),
/// and a 429 pause is logged once at INFO, not only at DEBUG.
#[test]
fn no_lag_is_shown_before_a_delivery_and_a_429_pause_is_logged_at_info() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 50, &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/_sim/faults/next", sim.port))
            .json(&serde_json::json!([{"kind": "status", "status": 429}]))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the 429 is queued");
    });
    let (api, mut sluice) = run_without_a_reachable_sink(dir.path(), &sim);
    let pages_fetched = |metrics: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_onepassword_pages_total{") && !l.ends_with(" 0"))
    };
    let metrics = wait_for(Duration::from_secs(60), || {
        http_get(api, "/metrics").map(|(_, body)| body).filter(|body| pages_fetched(body))
    });
    let logged = wait_for(Duration::from_secs(30), || {
        let log = stderr_so_far(&sluice);
        log.contains("429 Too Many Requests").then_some(log)
    });
    let _ = sluice.kill();
    let _ = sluice.wait();
    let metrics = metrics.expect("pages were fetched");
    assert!(metrics.contains("sluice_onepassword_checkpoint_age_seconds{"), "{metrics}");
    assert!(!metrics.contains("sluice_onepassword_lag_seconds"), "a lag before any delivery");
    let log = logged.expect("the 429 is logged");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("429 Too Many Requests")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
}

/// Newcomer row 26: while the sink cannot deliver and the source is held
/// back (its pages in flight all waiting), the checkpoint age keeps
/// growing, so SluiceCheckpointStale can fire; it froze at a few seconds.
#[test]
fn checkpoint_age_keeps_growing_while_the_source_is_held_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 3_000, &["--no-rate-limit"]);
    let (api, mut sluice) = run_without_a_reachable_sink(dir.path(), &sim);
    let age = || -> Option<f64> {
        let (_, body) = http_get(api, "/metrics")?;
        body.lines()
            .filter(|l| l.starts_with("sluice_onepassword_checkpoint_age_seconds{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(f64::min)
    };
    // Well past the moment every stream's pages in flight are taken.
    let grew = wait_for(Duration::from_secs(120), || age().filter(|a| *a >= 25.0));
    let last = age();
    let _ = sluice.kill();
    let _ = sluice.wait();
    let logs = stderr_of(&mut sluice);
    assert!(grew.is_some(), "the checkpoint age stopped at {last:?}: {logs}");
}
