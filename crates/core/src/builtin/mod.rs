//! Components that need nothing outside the machine: the `file` source
//! (replays NDJSON exports and dead-letter files) and the `console`, `file`
//! and `blackhole` sinks.

mod blackhole;
mod console;
mod file_sink;
mod file_source;

pub use blackhole::{BlackholeSink, BlackholeSinkConfig};
pub use console::{ConsoleSink, ConsoleSinkConfig};
pub use file_sink::{FileSink, FileSinkConfig};
pub use file_source::{FileSource, FileSourceConfig, ReadMode};

use crate::event::Event;

/// Encode events as NDJSON into `out`; events that cannot be encoded are returned.
fn encode_ndjson(events: &[Event], out: &mut Vec<u8>) -> Vec<usize> {
    let mut failed = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let start = out.len();
        if event.write_json(out).is_ok() {
            out.push(b'\n');
        } else {
            out.truncate(start);
            failed.push(index);
        }
    }
    failed
}
