//! The Elasticsearch emulator as a process, for benchmarks and manual runs:
//! `sluice-es-emulator [--answer-only] [ADDR]` serves until killed;
//! `GET /_testkit/stats` counts the documents. `--answer-only` answers each
//! `_bulk` item at once without storing documents (the strict emulator
//! spends more CPU parsing and storing than sluice does producing them).

use sluice_testkit::{EsEmulator, EsEmulatorConfig};

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let answer_only = args.iter().any(|a| a == "--answer-only");
    args.retain(|a| a != "--answer-only");
    let addr = args.first().cloned().unwrap_or_else(|| "127.0.0.1:9200".into());
    let addr = addr.parse().unwrap_or_else(|e| panic!("`{addr}` is not an address: {e}"));
    let config = EsEmulatorConfig { answer_only, ..EsEmulatorConfig::default() };
    let emulator = EsEmulator::start_on(config, addr).await;
    eprintln!("Elasticsearch emulator on {}", emulator.url());
    std::future::pending::<()>().await;
}
