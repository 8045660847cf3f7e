//! One checkpoint file per (source, stream): `<data_dir>/<source id>/<stream>.json`,
//! holding the cursor of the last page that is final together with every
//! page before it. Written atomically (temporary file, fsync, rename).

use std::path::{Path, PathBuf};

use crate::streams::Stream;
use serde::{Deserialize, Serialize};
use sluice_core::poll::CheckpointStore;

use crate::Error;
use crate::client::ApiVersion;

/// A stream's saved position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCheckpoint {
    /// The cursor to continue from; `None` after a reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The API version the cursor belongs to.
    pub api_version: ApiVersion,
    /// Where to start when there is no cursor (set by `sluice checkpoint reset --start-time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// The newest event timestamp delivered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_timestamp: Option<String>,
    /// Events delivered since the checkpoint was created.
    #[serde(default)]
    pub events: u64,
    /// When it was written (RFC 3339).
    #[serde(default)]
    pub committed_at: String,
    /// The account of the token that fetched the cursor (`1password.com/auuid`):
    /// a cursor is refused for a token of another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The API's base URL the cursor came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The sinks the source delivered to when it wrote the cursor, as
    /// `<id> (<type>)`: another pipeline resuming it is told what it misses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
}

/// What to say when the sinks that wrote `checkpoint`'s cursor are not the
/// ones its source delivers to now (`consumers`): sinks that are new to it
/// will not get the events before the cursor. `None` when nothing is
/// missed (the same sinks, fewer, or no cursor or record yet).
pub fn consumers_missing_history(
    checkpoint: &StreamCheckpoint,
    consumers: &[String],
    source_id: &str,
) -> Option<String> {
    if checkpoint.cursor.is_none() || checkpoint.consumers.is_empty() {
        return None;
    }
    let new: Vec<&str> = consumers
        .iter()
        .filter(|c| !checkpoint.consumers.contains(c))
        .map(String::as_str)
        .collect();
    if new.is_empty() {
        return None;
    }
    Some(format!(
        "this cursor was written while source `{source_id}` delivered to {}; it now delivers to {}, so {} will not get the events before it. If this is another pipeline, give it its own data_dir (two pipelines sharing one resume each other's cursors and leave gaps in both); to send the history to the new sink, `sluice checkpoint reset <config> --source {source_id} --start-time 30d` (sinks that already hold those events answer the replays as duplicates)",
        checkpoint.consumers.join(", "),
        if consumers.is_empty() { "nothing".to_owned() } else { consumers.join(", ") },
        new.join(", "),
    ))
}

/// The file of `stream` of the source `source_id`.
pub fn path(data_dir: &Path, source_id: &str, stream: Stream) -> PathBuf {
    data_dir.join(source_id).join(format!("{}.json", stream.as_str()))
}

/// Read a checkpoint; `None` if there is none.
pub fn load(path: &Path) -> Result<Option<StreamCheckpoint>, Error> {
    store(path).load().map_err(Error::from)
}

fn store(path: &Path) -> CheckpointStore<StreamCheckpoint> {
    CheckpointStore::new(path.to_owned())
}

/// One row of `sluice checkpoint list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The source id.
    pub source: String,
    /// The stream.
    pub stream: Stream,
    /// `yes`, `starting` (a first run's start time, no cursor yet), `reset`
    /// (a start time set by a reset) or `none` (no checkpoint).
    pub cursor: &'static str,
    /// The newest event delivered, or `(from <start>)` after a reset, or `-`.
    pub newest: String,
    /// Events delivered since the checkpoint was created.
    pub events: u64,
    /// When it was written, or `-`.
    pub committed_at: String,
}

/// Where each stream of each of `sources` stands.
pub fn list(data_dir: &Path, sources: &[&str]) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    for source in sources {
        for stream in Stream::ALL {
            let row = match load(&path(data_dir, source, stream))? {
                None => Row {
                    source: (*source).to_owned(),
                    stream,
                    cursor: "none",
                    newest: "-".into(),
                    events: 0,
                    committed_at: "-".into(),
                },
                Some(cp) => Row {
                    source: (*source).to_owned(),
                    stream,
                    // A first run writes its start time before its first
                    // commit; a reset writes one with the time of the reset.
                    cursor: match (&cp.cursor, cp.committed_at.is_empty()) {
                        (Some(_), _) => "yes",
                        (None, true) => "starting",
                        (None, false) => "reset",
                    },
                    newest: cp
                        .newest_timestamp
                        .or(cp.start_time.map(|t| format!("(from {t})")))
                        .unwrap_or_else(|| "-".into()),
                    events: cp.events,
                    committed_at: if cp.committed_at.is_empty() {
                        "-".into()
                    } else {
                        cp.committed_at
                    },
                },
            };
            rows.push(row);
        }
    }
    Ok(rows)
}

/// What a reset did to one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reset {
    /// The cursor is gone; the next start reads from this instant (RFC 3339).
    StartsFrom(String),
    /// The checkpoint is gone; the next start uses the source's `start_time`.
    Removed,
}

/// Rewind `streams` of `source`: to `start_time` (RFC 3339 or a duration
/// ago, resolved at `now`), or, without it, by removing the checkpoints.
pub fn reset(
    data_dir: &Path,
    source: &str,
    streams: &[Stream],
    start_time: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(Stream, Reset)>, Error> {
    use chrono::SecondsFormat;
    let start = match start_time.map(crate::config::parse_start_time) {
        None => None,
        Some(Ok(start)) => Some(start.resolve(now).to_rfc3339_opts(SecondsFormat::Secs, true)),
        Some(Err(message)) => return Err(Error::Usage(message)),
    };
    let mut done = Vec::new();
    for stream in streams {
        let file = path(data_dir, source, *stream);
        match &start {
            Some(start) => {
                let previous = load(&file)?.unwrap_or_default();
                let reset = StreamCheckpoint {
                    cursor: None,
                    start_time: Some(start.clone()),
                    committed_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
                    ..previous
                };
                save(&file, &reset)?;
                done.push((*stream, Reset::StartsFrom(start.clone())));
            }
            None => {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(Error::Checkpoint { path: file, message: err.to_string() });
                    }
                }
                done.push((*stream, Reset::Removed));
            }
        }
    }
    Ok(done)
}

/// Write a checkpoint atomically.
pub fn save(path: &Path, checkpoint: &StreamCheckpoint) -> Result<(), Error> {
    store(path).save(checkpoint).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_written_for_other_sinks_names_what_the_new_ones_miss() {
        let es = || vec!["es (elasticsearch)".to_owned()];
        let written = StreamCheckpoint {
            cursor: Some("c1".into()),
            consumers: es(),
            ..StreamCheckpoint::default()
        };
        let splunk = vec!["splunk (splunk_hec)".to_owned()];
        let warning = consumers_missing_history(&written, &splunk, "op").expect("a warning");
        assert!(warning.contains("delivered to es (elasticsearch); it now delivers to splunk (splunk_hec), so splunk (splunk_hec) will not get the events before it"), "{warning}");
        assert!(
            warning.contains("give it its own data_dir")
                && warning.contains("--source op --start-time 30d"),
            "{warning}"
        );
        // The same sinks, fewer sinks, no cursor yet, or an older checkpoint
        // that recorded none: nothing is missed, or nothing can be told.
        assert_eq!(consumers_missing_history(&written, &es(), "op"), None);
        assert_eq!(consumers_missing_history(&written, &[], "op"), None);
        let fresh = StreamCheckpoint { cursor: None, ..written.clone() };
        assert_eq!(consumers_missing_history(&fresh, &splunk, "op"), None);
        let old = StreamCheckpoint { consumers: Vec::new(), ..written };
        assert_eq!(consumers_missing_history(&old, &splunk, "op"), None);
    }

    #[test]
    fn round_trips_and_reports_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "op", Stream::ItemUsages);
        assert!(file.ends_with("op/item_usages.json"));
        assert_eq!(load(&file).expect("readable"), None);
        let checkpoint = StreamCheckpoint {
            cursor: Some("abc".into()),
            events: 3,
            ..StreamCheckpoint::default()
        };
        save(&file, &checkpoint).expect("written");
        assert_eq!(load(&file).expect("readable"), Some(checkpoint));
        std::fs::write(&file, "{not json").expect("write");
        let error = load(&file).expect_err("corrupt").to_string();
        assert!(error.contains("sluice checkpoint reset"), "{error}");
    }

    #[test]
    fn reset_rewinds_or_removes_and_list_shows_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now =
            chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").expect("time").to_utc();
        let checkpoint = StreamCheckpoint {
            cursor: Some("abc".into()),
            events: 7,
            ..StreamCheckpoint::default()
        };
        for stream in Stream::ALL {
            save(&path(dir.path(), "op", stream), &checkpoint).expect("written");
        }
        let done = reset(dir.path(), "op", &[Stream::AuditEvents], Some("1d"), now).expect("reset");
        assert_eq!(done, [(Stream::AuditEvents, Reset::StartsFrom("2026-11-29T12:00:00Z".into()))]);
        let done = reset(dir.path(), "op", &[Stream::ItemUsages], None, now).expect("reset");
        assert_eq!(done, [(Stream::ItemUsages, Reset::Removed)]);
        let rows = list(dir.path(), &["op"]).expect("list");
        let cursors: Vec<_> =
            rows.iter().map(|r| (r.stream, r.cursor, r.newest.as_str(), r.events)).collect();
        assert_eq!(
            cursors,
            [
                (Stream::SigninAttempts, "yes", "-", 7),
                (Stream::ItemUsages, "none", "-", 0),
                (Stream::AuditEvents, "reset", "(from 2026-11-29T12:00:00Z)", 7),
            ]
        );
        let error = reset(dir.path(), "op", &[Stream::AuditEvents], Some("yesterday"), now)
            .expect_err("usage");
        assert!(matches!(error, Error::Usage(_)), "{error}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// A checkpoint file holding anything (a crash, a hand edit, another
        /// program): loaded, listed, reset or refused, never a panic; and a
        /// checkpoint with extreme values round-trips.
        #[test]
        fn any_checkpoint_file_is_read_or_refused_without_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            json in r#"\{("(cursor|events|newest_timestamp|start_time|committed_at|api_version|account)":("[ -~]{0,20}"|-?[0-9]{1,25}|null|true),?){0,5}\}"#,
            events in proptest::prelude::any::<u64>(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = path(dir.path(), "op", Stream::AuditEvents);
            std::fs::create_dir_all(file.parent().expect("folder")).expect("mkdir");
            let now = chrono::Utc::now();
            for content in [&bytes[..], json.as_bytes()] {
                std::fs::write(&file, content).expect("write");
                let _ = load(&file);
                let _ = list(dir.path(), &["op"]);
                let _ = reset(dir.path(), "op", &[Stream::AuditEvents], Some("1d"), now);
            }
            let extreme = StreamCheckpoint {
                cursor: Some(json.clone()),
                events,
                newest_timestamp: Some(json.clone()),
                ..StreamCheckpoint::default()
            };
            save(&file, &extreme).expect("written");
            proptest::prop_assert_eq!(load(&file).expect("readable"), Some(extreme));
        }
    }
}
