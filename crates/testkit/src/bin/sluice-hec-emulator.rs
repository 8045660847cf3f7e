//! The Splunk HEC emulator as a process, for benchmarks and manual runs:
//! `sluice-hec-emulator [ADDR] [TOKEN] [ACK_DELAY_MS]` serves a token with
//! indexer acknowledgement on until killed (an event is indexed, and its ack
//! `true`, ACK_DELAY_MS after the POST; default 0); `GET /_testkit/stats`
//! counts the events, `POST /_testkit/restart` and `/_testkit/faults` make
//! it fail as production does (see the library's `splunk` module).

use sluice_testkit::{HecEmulator, HecEmulatorConfig, HecToken};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8088".into());
    let addr = addr.parse().unwrap_or_else(|e| panic!("`{addr}` is not an address: {e}"));
    let token = args.next().unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    let delay = args.next().map_or(0, |ms| {
        ms.parse::<u64>().unwrap_or_else(|e| panic!("`{ms}` is not a delay in milliseconds: {e}"))
    });
    let config = HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(&token)],
        ack_delay: std::time::Duration::from_millis(delay),
        ..HecEmulatorConfig::default()
    };
    let emulator = HecEmulator::start_on(config, addr).await;
    eprintln!("Splunk HEC emulator on {}", emulator.url());
    std::future::pending::<()>().await;
}
