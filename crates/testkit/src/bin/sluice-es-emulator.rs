//! The Elasticsearch emulator as a process, for benchmarks and manual runs:
//! `sluice-es-emulator [--answer-only] [--latency-ms N] [--jitter-ms M] [ADDR]`
//! serves until killed; `GET /_testkit/stats` counts the documents.
//! `--answer-only` answers each `_bulk` item without storing documents (the
//! strict emulator spends more CPU parsing and storing than sluice does
//! producing them). `--latency-ms` makes every `_bulk` take that long (plus
//! up to `--jitter-ms` more), as a cluster that indexes for real does;
//! `PUT /_testkit/latency {"ms": N, "jitter_ms": M}` changes it while running.

use std::time::Duration;

use sluice_testkit::{EsEmulator, EsEmulatorConfig, Latency};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut answer_only, mut latency, mut addr) = (false, Latency::default(), None);
    let millis = |flag: &str, value: Option<String>| {
        let value = value.unwrap_or_else(|| panic!("{flag} needs a number of milliseconds"));
        let ms: u64 = value.parse().unwrap_or_else(|e| panic!("{flag} `{value}`: {e}"));
        Duration::from_millis(ms)
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--answer-only" => answer_only = true,
            "--latency-ms" => latency.base = millis("--latency-ms", args.next()),
            "--jitter-ms" => latency.jitter = millis("--jitter-ms", args.next()),
            _ => addr = Some(arg),
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9200".into());
    let addr = addr.parse().unwrap_or_else(|e| panic!("`{addr}` is not an address: {e}"));
    let config = EsEmulatorConfig { answer_only, ..EsEmulatorConfig::default() };
    let emulator = EsEmulator::start_on(config, addr).await;
    emulator.set_latency(latency);
    eprintln!("Elasticsearch emulator on {} (latency {latency:?})", emulator.url());
    std::future::pending::<()>().await;
}
