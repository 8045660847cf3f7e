//! Helpers shared by the end-to-end tests: running the binary, free ports,
//! a minimal HTTP GET, waiting for conditions.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.env("RUST_LOG", "info").env_remove("SLUICE_LOG_FORMAT");
    command
}

/// Run `sluice <args>` to completion.
pub fn run(args: &[&str], dir: &Path) -> Output {
    sluice().args(args).current_dir(dir).output().expect("sluice runs")
}

/// Start `sluice run <config>` in `dir` with extra environment.
pub fn spawn(config: &Path, dir: &Path, env: &[(&str, String)]) -> Child {
    let mut command = sluice();
    command
        .arg("run")
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("sluice starts");
    // Read standard error continuously: a full pipe would block its logging.
    collect_stderr(&mut child);
    child
}

type Logs = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;
type Collected = std::collections::HashMap<u32, (Logs, std::thread::JoinHandle<()>)>;

fn logs() -> &'static std::sync::Mutex<Collected> {
    static LOGS: std::sync::OnceLock<std::sync::Mutex<Collected>> = std::sync::OnceLock::new();
    LOGS.get_or_init(Default::default)
}

/// Read the child's standard error in a thread, for [`stderr_of`].
pub fn collect_stderr(child: &mut Child) {
    let Some(mut stderr) = child.stderr.take() else { return };
    let buffer: Logs = Default::default();
    let sink = buffer.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0_u8; 8192];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().expect("log buffer").extend_from_slice(&chunk[..n]);
        }
    });
    logs().lock().expect("logs").insert(child.id(), (buffer, reader));
}

/// Whether `tool args` runs and succeeds. If not: a failure when the
/// environment variable `required_by` is set (`.ci/run` sets it after
/// installing the tool), else a printed notice that the test skips.
pub fn have(tool: &str, args: &[&str], required_by: &str, install: &str) -> bool {
    let status = Command::new(tool).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if status.is_ok_and(|s| s.success()) {
        return true;
    }
    assert!(
        std::env::var_os(required_by).is_none(),
        "{required_by} is set but `{tool} {}` fails ({install})",
        args.join(" ")
    );
    eprintln!("notice: skipping: `{tool} {}` fails ({install})", args.join(" "));
    false
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET http://127.0.0.1:<port><path>`: the status and body, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_with(port, path, "")
}

/// `GET` with extra header lines (each ending in `\r\n`).
pub fn http_get_with(port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    get(port, path, headers, Duration::from_secs(5))
}

/// `GET` of a large answer, which may take long on a busy machine.
pub fn http_get_large(port: u16, path: &str) -> Option<(u16, String)> {
    get(port, path, "", Duration::from_secs(120))
}

fn get(port: u16, path: &str, headers: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Some((status, dechunk(body)))
}

/// `method http://127.0.0.1:<port><path>` with a JSON body: status and body.
pub fn http_send(port: u16, method: &str, path: &str, json: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Some((status, dechunk(body)))
}

/// Undo `Transfer-Encoding: chunked` if the body looks chunked.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_owned() };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    if out.is_empty() { body.to_owned() } else { out }
}

/// Poll `check` every 50 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait for a child to exit, at most `timeout`; kills it and panics past that.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let status = wait_for(timeout, || child.try_wait().expect("try_wait"));
    status.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = stderr_of(child);
        let tail: String = stderr
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("sluice did not exit within {timeout:?}; the end of its log:\n{tail}");
    })
}

/// Held by the tests that move tens of thousands of events, so that they do
/// not share the machine's cores with each other and their timings hold.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Everything the child wrote to standard error (complete once it exited).
pub fn stderr_of(child: &mut Child) -> String {
    let collected = logs().lock().expect("logs").remove(&child.id());
    if let Some((buffer, reader)) = collected {
        if child.try_wait().ok().flatten().is_some() {
            let _ = reader.join();
        }
        return String::from_utf8_lossy(&buffer.lock().expect("log buffer")).into_owned();
    }
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// What a running child wrote to standard error so far.
pub fn stderr_so_far(child: &Child) -> String {
    let logs = logs().lock().expect("logs");
    let Some((buffer, _)) = logs.get(&child.id()) else { return String::new() };
    String::from_utf8_lossy(&buffer.lock().expect("log buffer")).into_owned()
}

/// A process's resident memory in KiB (Linux), `None` once it is gone.
pub fn rss_kib(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The repository root (for pipelines/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Send a signal to a child.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we own; no memory is shared.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// `sluice sim` in its own process, killed when dropped.
pub struct Sim {
    /// The process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The token it wrote (all three features).
    pub token: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `sluice sim` with `events` per stream and no live trickle; it
/// writes its token to `dir/op_token`.
pub fn start_sim(dir: &Path, events: usize, extra: &[&str]) -> Sim {
    let port = free_port();
    let token_path = dir.join("op_token");
    let child = sluice()
        .args([
            "sim",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate",
            "0",
            "--events",
            &events.to_string(),
        ])
        .args(extra)
        .arg("--token-file")
        .arg(&token_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim starts");
    let token = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&token_path).ok().filter(|t| t.ends_with('\n'))
    })
    .expect("token written");
    wait_for(Duration::from_secs(30), || http_get(port, "/_sim/stats")).expect("sim answers");
    Sim { child, port, token: token.trim().to_owned() }
}
