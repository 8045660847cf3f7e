//! Taking a final page into the checkpoint, and writing the checkpoint
//! file (retried, shown on `/health`, never ending the stream).

use chrono::{DateTime, SecondsFormat, Utc};
use sluice_core::metrics::Stage;
use tokio::time::Instant;

use super::measure::StreamMetrics;
use super::{Position, State, StreamPoller};
use crate::checkpoint;

impl StreamPoller {
    /// Take a final page's position into the checkpoint and write it.
    pub(super) fn commit(&self, state: &mut State, metrics: &StreamMetrics, position: Position) {
        let checkpoint = &mut state.checkpoint;
        if checkpoint.cursor.as_deref() == Some(position.cursor.as_str()) && position.events == 0 {
            return;
        }
        checkpoint.cursor = Some(position.cursor);
        checkpoint.api_version = self.settings.api_version;
        checkpoint.start_time = None;
        checkpoint.events = checkpoint.events.saturating_add(position.events);
        checkpoint.account.clone_from(&self.account);
        checkpoint.consumers = self.consumers.to_vec();
        checkpoint.url = Some(self.client.base().to_owned());
        if let Some(newest) = position.newest {
            let known = checkpoint
                .newest_timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            if known.is_none_or(|k| newest > k) {
                checkpoint.newest_timestamp =
                    Some(newest.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            }
        }
        checkpoint.committed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        state.unsaved = true;
        self.save(state, metrics);
    }

    /// Write the checkpoint if the file is behind it; whether the file is
    /// now current. A failed write never ends the stream: it shows on
    /// `/health` under `<stream>.checkpoint` and is retried, and the same
    /// (or a newer) content is written once the disk accepts it.
    pub(super) fn save(&self, state: &mut State, metrics: &StreamMetrics) -> bool {
        if !state.unsaved {
            return true;
        }
        let key = format!("{}.checkpoint", self.stream);
        match checkpoint::save(&self.checkpoint_path, &state.checkpoint) {
            Ok(()) => {
                state.unsaved = false;
                if std::mem::take(&mut state.save_failed) {
                    tracing::info!(stream = %self.stream, "the checkpoint is written again");
                    self.health.set_healthy(&key);
                }
                state.save_backoff.reset();
                state.committed_at = Instant::now();
                self.update_gauges(state, metrics);
                true
            }
            Err(err) => {
                if !std::mem::replace(&mut state.save_failed, true) {
                    tracing::error!(stream = %self.stream, error = %err, "the checkpoint cannot be written; no new page is fetched until it can (the write is retried)");
                }
                metrics.component.error(Stage::Processing, "checkpoint_write");
                self.health.set_unhealthy(&key, format!("{err}; retrying"));
                false
            }
        }
    }
}
