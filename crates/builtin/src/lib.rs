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

/// Take the events' acknowledgements and encode them as NDJSON into `out`
/// (cleared first). The acknowledgements, and how many events were encoded.
fn encode_ndjson(events: &mut [Event], out: &mut Vec<u8>) -> (PendingAcks, usize) {
    out.clear();
    let mut pending = PendingAcks::default();
    for event in events.iter_mut() {
        event.write_json(out);
        out.push(b'\n');
        pending.push(event.take_finalizers());
    }
    (pending, events.len())
}
