//! The `file` source's settings and their validation (no I/O).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sluice_core::config::FieldError;

use super::{DROPPED, FileSource};

/// How far to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Read to the end, wait until everything is acknowledged, then stop.
    #[default]
    Once,
    /// Keep reading lines appended to the file, like `tail -f`.
    Follow,
}

/// What each line holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// One raw item (a 1Password export, say).
    #[default]
    Ndjson,
    /// One dead-letter record of a sink: its raw item is replayed, with the
    /// dataset the record names.
    DeadLetter,
}

/// `type: file` under `sources`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The NDJSON file, relative to the config file's folder.
    pub path: PathBuf,
    /// The dataset its events belong to (`1password.audit_events`,
    /// `okta.system`). Required for `ndjson` (or `stream`); with
    /// `dead_letter` it overrides the dataset each record names.
    #[serde(default)]
    pub dataset: Option<String>,
    /// A 1Password stream (`signin_attempts`, `item_usages`,
    /// `audit_events`): the same as `dataset: 1password.<stream>`, as
    /// configs before `dataset` said it.
    #[serde(default)]
    pub stream: Option<String>,
    /// `ndjson` (default: raw items) or `dead_letter` (a sink's dead letter).
    #[serde(default)]
    pub format: LineFormat,
    /// `once` (default) or `follow`.
    #[serde(default)]
    pub mode: ReadMode,
    /// Lines per acknowledgement batch (1 to 100000, default 500).
    #[serde(default = "default_batch")]
    pub batch_max_events: usize,
    /// Batches in flight before reading waits for acknowledgements (default 64).
    #[serde(default = "default_pending")]
    pub max_pending_batches: usize,
    /// Bytes of lines in flight before reading waits for acknowledgements
    /// (64 KiB to 1 GiB, default 4 MiB): enough that a sink whose answers
    /// take 200 ms keeps its requests full, few enough that memory stays small.
    #[serde(default = "default_pending_bytes")]
    pub max_pending_bytes: u64,
    /// How often `follow` looks for new lines, in milliseconds (default 250).
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// The longest line read (1 KiB to 64 MiB, default 1 MiB). A longer line
    /// goes on as one `pipeline_error` event holding its first bytes, and
    /// reading goes on after it.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
}

fn default_max_line() -> usize {
    1024 * 1024
}

fn default_batch() -> usize {
    500
}
fn default_pending() -> usize {
    64
}
fn default_pending_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_poll() -> u64 {
    250
}

impl FileSourceConfig {
    /// Its named outputs.
    pub fn outputs() -> Vec<String> {
        vec![DROPPED.to_owned()]
    }

    /// Check the settings and resolve the path against `dir`.
    pub fn validate(mut self, dir: &Path) -> Result<FileSource, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(1..=100_000).contains(&self.batch_max_events) {
            errors.push(FieldError::new(
                "batch_max_events",
                "batch_max_events must be between 1 and 100000",
            ));
        }
        if self.max_pending_batches == 0 {
            errors.push(FieldError::new(
                "max_pending_batches",
                "max_pending_batches must be at least 1",
            ));
        }
        if !(64 * 1024..=1 << 30).contains(&self.max_pending_bytes) {
            errors.push(FieldError::new(
                "max_pending_bytes",
                "max_pending_bytes must be from 65536 (64 KiB) to 1073741824 (1 GiB)",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_line_bytes) {
            errors.push(FieldError::new(
                "max_line_bytes",
                "max_line_bytes must be from 1024 (1 KiB) to 67108864 (64 MiB)",
            ));
        }
        let dataset = self.dataset_of(&mut errors);
        if self.poll_interval_ms == 0 {
            errors.push(FieldError::new("poll_interval_ms", "poll_interval_ms must be at least 1"));
        }
        self.path = dir.join(&self.path);
        if errors.is_empty() { Ok(FileSource { config: self, dataset }) } else { Err(errors) }
    }

    /// `dataset`, or the 1Password dataset `stream` names.
    fn dataset_of(&self, errors: &mut Vec<FieldError>) -> Option<Arc<str>> {
        const STREAMS: [&str; 3] = ["signin_attempts", "item_usages", "audit_events"];
        let dataset = match (&self.dataset, &self.stream) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "stream",
                    "set `dataset` or `stream`, not both (`stream: audit_events` is `dataset: 1password.audit_events`)",
                ));
                return None;
            }
            (Some(dataset), None) if dataset.trim().is_empty() => {
                errors.push(FieldError::new("dataset", "dataset must not be empty"));
                return None;
            }
            (Some(dataset), None) => Some(Arc::from(dataset.as_str())),
            (None, Some(stream)) if STREAMS.contains(&stream.as_str()) => {
                Some(Arc::from(format!("1password.{stream}")))
            }
            (None, Some(stream)) => {
                errors.push(FieldError::new(
                    "stream",
                    format!("unknown stream `{stream}`, expected signin_attempts, item_usages or audit_events (or set `dataset`)"),
                ));
                return None;
            }
            (None, None) => None,
        };
        if self.format == LineFormat::Ndjson && dataset.is_none() {
            errors.push(FieldError::new(
                "dataset",
                "a file of raw items needs its `dataset` (1password.audit_events, say) or 1Password `stream`: signin_attempts, item_usages or audit_events (or `format: dead_letter` for a sink's dead letter, whose records name theirs)",
            ));
        }
        dataset
    }
}
