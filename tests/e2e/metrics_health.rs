//! A running sluice: `/metrics` with component labels, `/health` turning 503
//! while draining, SIGTERM draining to exit 0, and a real Prometheus scrape.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::util::{
    free_port, have, http_get, http_get_with, signal, spawn, start_sim, stderr_of, wait_exit,
    wait_for,
};

const CONFIG: &str = "\
data_dir: state
api:
  address: 127.0.0.1:${API_PORT}
sources:
  in:
    type: file
    path: input.ndjson
    stream: signin_attempts
    mode: follow
    batch_max_events: 100
    max_pending_batches: 2
sinks:
  stdout:
    type: console
    inputs: [in]
  dlq:
    type: blackhole
    inputs: [in.dropped]
";

fn setup(lines: usize) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sluice.yaml"), CONFIG).expect("config");
    let text: String = (0..lines)
        .map(|n| format!("{{\"uuid\":\"S{n:06}\",\"category\":\"success\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("input.ndjson"), &text).expect("input");
    (dir, text.len() as u64)
}

/// How many bytes the pipe behind `stdout` holds.
fn pipe_capacity(stdout: &std::process::ChildStdout) -> i32 {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl(2) F_GETPIPE_SZ on a pipe we own; it reads no memory of ours.
    #[allow(unsafe_code)]
    let size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ");
    size
}

/// The value of the series `name{labels}` in a Prometheus text page (0 if absent).
fn counter(page: &str, series: &str) -> f64 {
    page.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

fn committed(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("state/in/checkpoint.json")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["offset"].as_u64()
}

#[test]
fn sigterm_drains_with_health_503_then_exits_0() {
    // Standard output is not read at first: the console sink blocks on a
    // full pipe, so events are in flight when SIGTERM arrives.
    let (dir, total) = setup(20_000);
    let port = free_port();
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[("API_PORT", port.to_string())]);
    let health = wait_for(Duration::from_secs(30), || http_get(port, "/health"));
    assert_eq!(health.as_ref().map(|(s, _)| *s), Some(200), "{health:?}");
    assert!(health.expect("health").1.contains("\"status\":\"ok\""));

    // The sink writes each array it takes before taking the next, one line
    // per raw item: once it has taken more bytes than the pipe holds, it is
    // blocked on standard output with events in hand.
    let capacity = pipe_capacity(child.stdout.as_ref().expect("stdout")) as f64;
    let stuck = "sluice_component_received_bytes_total{component_id=\"stdout\",component_kind=\"sink\",component_type=\"console\"}";
    let mut page = String::new();
    let metrics = wait_for(Duration::from_secs(60), || {
        page = http_get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
        (counter(&page, stuck) > capacity).then(|| page.clone())
    })
    .unwrap_or_else(|| panic!("the console sink did not fill its pipe:\n{page}"));
    for expected in [
        "sluice_component_received_events_total{component_id=\"in\",component_kind=\"source\",component_type=\"file\"}",
        "sluice_component_sent_events_total{component_id=\"in\",component_kind=\"source\",component_type=\"file\",output=\"_default\"}",
        "sluice_component_received_events_total{component_id=\"stdout\",component_kind=\"sink\",component_type=\"console\"}",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in\n{metrics}");
    }

    signal(&child, libc::SIGTERM);
    // Generous: the heavy end-to-end tests may be sharing the two cores.
    let mut last = None;
    let draining = wait_for(Duration::from_secs(40), || {
        last = http_get(port, "/health");
        last.clone().filter(|(s, _)| *s == 503)
    });
    let Some((_, body)) = draining else {
        let exited = child.try_wait().expect("try_wait");
        let _ = child.kill();
        panic!(
            "/health never answered 503 while draining (last answer {last:?}, exited: {exited:?}): {}",
            stderr_of(&mut child)
        );
    };
    assert!(body.contains("\"status\":\"draining\""), "{body}");

    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).expect("read stdout");
        text
    });
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let stderr = stderr_of(&mut child);
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("drained; checkpoints committed"), "{stderr}");
    let printed = reader.join().expect("reader").lines().count() as u64;
    let offset = committed(dir.path()).expect("checkpoint");
    assert!(offset > 0 && offset <= total);
    // What was committed was printed: every committed line is on stdout.
    let committed_lines = std::fs::read_to_string(dir.path().join("input.ndjson")).expect("input")
        [..offset as usize]
        .lines()
        .count() as u64;
    assert!(printed >= committed_lines, "printed {printed} < committed {committed_lines}");
}

#[test]
fn a_drain_that_outlives_the_timeout_exits_1_and_names_the_component() {
    let (dir, _) = setup(20_000);
    let port = free_port();
    let mut command = super::util::sluice();
    command
        .args(["run", "sluice.yaml", "--shutdown-timeout", "1s"])
        .current_dir(dir.path())
        .env("API_PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("starts");
    wait_for(Duration::from_secs(30), || http_get(port, "/health")).expect("up");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    // Standard output is never read, so the console sink never finishes.
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("drain did not finish within --shutdown-timeout"), "{stderr}");
    assert!(stderr.contains("stdout"), "{stderr}");
}

/// A real Prometheus server scrapes sluice. `.ci/run` installs Prometheus and
/// sets SLUICE_REQUIRE_PROMETHEUS=1; elsewhere the test says why it skips.
#[test]
fn a_real_prometheus_scrapes_the_component_counters() {
    if !have(
        "prometheus",
        &["--version"],
        "SLUICE_REQUIRE_PROMETHEUS",
        "apt-get install prometheus",
    ) {
        return;
    }
    let (dir, _) = setup(500);
    std::fs::write(
        dir.path().join("sluice.yaml"),
        CONFIG.replace("type: console", "type: blackhole"),
    )
    .expect("config");
    let port = free_port();
    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[("API_PORT", port.to_string())]);
    let prom_port = free_port();
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), prom_config).expect("prometheus config");
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let query =
        "/api/v1/query?query=sluice_component_sent_events_total%7Bcomponent_id%3D%22stdout%22%7D";
    let result = wait_for(Duration::from_secs(45), || {
        http_get(prom_port, query)
            .filter(|(status, body)| *status == 200 && body.contains("\"500\""))
    });
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    signal(&sluice, libc::SIGTERM);
    let status = wait_exit(&mut sluice, Duration::from_secs(30));
    let (_, body) = result.expect("Prometheus reports 500 events sent by the sink");
    assert!(body.contains("\"component_kind\":\"sink\""), "{body}");
    assert!(body.contains("\"component_type\":\"blackhole\""), "{body}");
    assert!(status.success(), "{}", stderr_of(&mut sluice));
}

/// `promtool check metrics` (Prometheus' own lint: HELP text, base units,
/// counter suffixes, histograms) finds nothing in the metrics of a sluice
/// running every source and sink type, its sinks' destinations down.
#[test]
fn promtool_finds_nothing_to_fix_with_every_source_and_sink_type() {
    if !have("promtool", &["--version"], "SLUICE_REQUIRE_PROMETHEUS", "apt-get install prometheus")
    {
        return;
    }
    let (dir, _) = setup(50);
    let sim = start_sim(dir.path(), 50, &["--no-rate-limit"]);
    let (api, closed, listen) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("sluice.yaml"),
        format!(
            "data_dir: state\napi: {{address: '127.0.0.1:{api}'}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{}', allow_custom_url: true, token_file: op_token, start_time: 1d}}\n  in: {{type: file, path: input.ndjson, stream: signin_attempts}}\n  edges: {{type: sluice, address: '127.0.0.1:{listen}'}}\ntransforms:\n  ecs: {{type: vrl, inputs: [op, in, edges], source: '.mapped = true'}}\nsinks:\n  es: {{type: elasticsearch, inputs: [ecs], endpoints: ['http://127.0.0.1:{closed}']}}\n  hec: {{type: splunk_hec, inputs: [op], endpoint: 'http://127.0.0.1:{closed}', token: t}}\n  forward: {{type: sluice, inputs: [op], endpoints: ['http://127.0.0.1:{closed}']}}\n  out: {{type: file, inputs: [ecs], path: out.ndjson}}\n  hole: {{type: blackhole, inputs: [in.dropped]}}\n  show: {{type: console, inputs: [edges]}}\n",
            sim.port
        ),
    )
    .expect("config");
    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let metrics = wait_for(Duration::from_secs(60), || {
        let (_, body) = http_get(api, "/metrics")?;
        let fetched = body
            .lines()
            .any(|l| l.starts_with("sluice_onepassword_pages_total{") && !l.ends_with(" 0"));
        (fetched && body.contains("sluice_component_retries_total{")).then_some(body)
    });
    let _ = sluice.kill();
    let log = stderr_of(&mut sluice);
    let metrics = metrics.unwrap_or_else(|| panic!("no metrics with pages fetched: {log}"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    std::io::Write::write_all(&mut promtool.stdin.take().expect("stdin"), metrics.as_bytes())
        .expect("metrics to promtool");
    let output = promtool.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && said.trim().is_empty(), "promtool: {said}\n{metrics}");
    for family in ["sluice_sink_concurrency_limit", "sluice_onepassword_requests_total"] {
        assert!(metrics.contains(&format!("# HELP {family} ")), "{family} has HELP: {metrics}");
    }
}

/// Review H3 (reliability 2026-12): `/tap` shows raw events. It is off by
/// default; beyond loopback the config must give it a token, and a request
/// without that token gets 401; the token never shows in the logs.
#[test]
fn the_tap_is_off_by_default_and_needs_its_token_beyond_loopback() {
    let (dir, _) = setup(50);
    let token = "tap-secret-0123456789abcdef";
    std::fs::write(dir.path().join("tap_token"), token).expect("token");
    let open = CONFIG.replace(
        "  address: 127.0.0.1:${API_PORT}\n",
        "  address: 0.0.0.0:${API_PORT}\n  tap: true\n",
    );
    std::fs::write(dir.path().join("open.yaml"), &open).expect("config");
    let refused = super::util::sluice()
        .args(["validate", "open.yaml"])
        .env("API_PORT", "9598")
        .current_dir(dir.path())
        .output()
        .expect("validate runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("beyond loopback, and /tap shows raw events"), "{stderr}");

    // Off by default (the shipped manifests leave it so).
    let port = free_port();
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[("API_PORT", port.to_string())]);
    let answer = wait_for(Duration::from_secs(30), || http_get(port, "/tap/in?limit=1"));
    assert_eq!(answer.as_ref().map(|(s, _)| *s), Some(403), "{answer:?}");
    signal(&child, libc::SIGTERM);
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());

    let guarded = open.replace("  tap: true\n", "  tap: true\n  tap_token_file: tap_token\n");
    std::fs::write(dir.path().join("guarded.yaml"), guarded).expect("config");
    let port = free_port();
    let mut child = spawn(Path::new("guarded.yaml"), dir.path(), &[("API_PORT", port.to_string())]);
    let bare = wait_for(Duration::from_secs(30), || http_get(port, "/tap/in?limit=1"));
    assert_eq!(bare.as_ref().map(|(s, _)| *s), Some(401), "{bare:?}");
    let wrong = http_get_with(port, "/tap/in?limit=1", "Authorization: Bearer nope\r\n");
    assert_eq!(wrong.map(|(s, _)| s), Some(401));
    let url = format!("http://127.0.0.1:{port}");
    let cli = super::util::run(&["tap", "in", "--url", &url, "--limit", "1"], dir.path());
    assert_eq!(cli.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("401"), "{cli:?}");
    // With the token the tap opens (the file source follows its input, so
    // one line appended now is seen).
    let mut tap = super::util::sluice()
        .args(["tap", "in", "--url", &url, "--limit", "1", "--token-file", "tap_token"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tap starts");
    let appended = wait_for(Duration::from_secs(60), || {
        use std::io::Write;
        let mut input =
            std::fs::OpenOptions::new().append(true).open(dir.path().join("input.ndjson")).ok()?;
        writeln!(input, "{{\"uuid\":\"TAPPED\",\"category\":\"success\"}}").ok()?;
        std::thread::sleep(Duration::from_millis(200));
        tap.try_wait().ok()?.map(|_| ())
    });
    assert!(appended.is_some(), "the tap saw an event");
    let mut seen = String::new();
    tap.stdout.take().expect("stdout").read_to_string(&mut seen).expect("read");
    assert!(seen.contains("TAPPED"), "{seen}");
    signal(&child, libc::SIGTERM);
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let logs = stderr_of(&mut child);
    assert!(!logs.contains(token), "the tap token never shows in the logs");
}
