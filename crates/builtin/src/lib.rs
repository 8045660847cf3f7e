//! sluice-builtin: components that need nothing outside the machine. They
//! sit beside the other plugins and depend on `sluice-core` only:
//!
//! - `file_source`: the `file` source (replays NDJSON exports and dead-letter files);
//! - `file_sink`: the `file` sink (fsynced NDJSON, through core's durable writer);
//! - `console`: the `console` sink (NDJSON on standard output);
//! - `blackhole`: the `blackhole` sink (counts and acknowledges).
#![deny(missing_docs)]

mod blackhole;
mod console;
mod file_sink;
mod file_source;

pub use blackhole::{BlackholeSink, BlackholeSinkConfig};
pub use console::{ConsoleSink, ConsoleSinkConfig};
pub use file_sink::{FileSink, FileSinkConfig};
pub use file_source::{FileSource, FileSourceConfig, ReadMode};

use sluice_core::Event;
use sluice_core::ack::PendingAcks;
use sluice_core::metrics::{ComponentMetrics, Stage};

/// Take the events' acknowledgements and encode them as NDJSON into `out`
/// (cleared first). An event that cannot be encoded is the document's own
/// failure: it is rejected at once (never counted as delivered) and
/// counted as an error. The acknowledgements of the others, and their count.
fn encode_ndjson(
    events: &mut [Event],
    out: &mut Vec<u8>,
    metrics: &ComponentMetrics,
) -> (PendingAcks, usize) {
    out.clear();
    let mut pending = PendingAcks::default();
    let mut failed = 0;
    for event in events.iter_mut() {
        let start = out.len();
        if event.write_json(out).is_ok() {
            out.push(b'\n');
            pending.push(event.take_finalizers());
        } else {
            out.truncate(start);
            failed += 1;
            event.take_finalizers().finish(sluice_core::AckStatus::Rejected);
        }
    }
    if failed > 0 {
        metrics.error(Stage::Sending, "encode_failed");
        metrics.discarded(failed, false);
    }
    (pending, events.len() - failed)
}
