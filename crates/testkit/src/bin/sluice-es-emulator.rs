//! The Elasticsearch emulator as a process, for benchmarks and manual runs:
//! `sluice-es-emulator [ADDR]` serves until killed; `GET /_testkit/stats`
//! counts the documents.

use sluice_testkit::{EsEmulator, EsEmulatorConfig};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9200".into());
    let addr = addr.parse().unwrap_or_else(|e| panic!("`{addr}` is not an address: {e}"));
    let emulator = EsEmulator::start_on(EsEmulatorConfig::default(), addr).await;
    eprintln!("Elasticsearch emulator on {}", emulator.url());
    std::future::pending::<()>().await;
}
