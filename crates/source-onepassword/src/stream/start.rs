//! Where a stream starts: the checkpoint read and checked (the account, the
//! sinks it fed, a first start's fixed start time), and the first request.

use chrono::{DateTime, SecondsFormat, Utc};
use sluice_core::component::BoxError;

use super::StreamPoller;
use crate::checkpoint::{self, StreamCheckpoint};
use crate::client::Request;
use crate::config::StartTime;

impl StreamPoller {
    /// The checkpoint to start from, and whether it must be written before
    /// the first page (a first start's start time, a new set of sinks).
    pub(super) fn prepare_checkpoint(&self) -> Result<(StreamCheckpoint, bool), BoxError> {
        let mut checkpoint = checkpoint::load(&self.checkpoint_path)?.unwrap_or_default();
        if let (Some(_), Some(theirs), Some(ours)) =
            (&checkpoint.cursor, &checkpoint.account, &self.account)
            && theirs != ours
        {
            return Err(format!(
                "stream {}: the checkpoint {} holds a cursor of account {theirs}, and the token is of account {ours}; a cursor of another account cannot be used. Point data_dir elsewhere, or start this source afresh with `sluice checkpoint reset <config> --source {}`",
                self.stream,
                self.checkpoint_path.display(),
                self.source_id
            )
            .into());
        }
        if let Some(warning) =
            checkpoint::consumers_missing_history(&checkpoint, &self.consumers, &self.source_id)
        {
            tracing::warn!(stream = %self.stream, path = %self.checkpoint_path.display(), "{warning}");
        }
        // Recorded at once (the cursor unchanged), so that it is said once
        // even while the stream has nothing new to commit.
        let consumers_changed =
            checkpoint.cursor.is_some() && checkpoint.consumers[..] != self.consumers[..];
        if consumers_changed {
            checkpoint.consumers = self.consumers.to_vec();
        }
        // A first start fixes its start time, so that a restart before the
        // first commit does not move the window forward.
        let first_start = checkpoint.cursor.is_none() && checkpoint.start_time.is_none();
        if first_start {
            let start = self.settings.start_time.resolve(Utc::now());
            checkpoint.start_time = Some(start.to_rfc3339_opts(SecondsFormat::Nanos, true));
            checkpoint.api_version = self.settings.api_version;
        }
        Ok((checkpoint, first_start || consumers_changed))
    }

    pub(super) fn resume_request(&self, checkpoint: &StreamCheckpoint) -> Request {
        let limit = self.settings.limit;
        match (&checkpoint.cursor, checkpoint.api_version == self.settings.api_version) {
            (Some(cursor), true) => {
                tracing::info!(stream = %self.stream, "resuming from the checkpointed cursor");
                Request::Cursor(cursor.clone())
            }
            (cursor, same_version) => {
                let start = match (
                    &checkpoint.start_time,
                    &checkpoint.newest_timestamp,
                    cursor.is_some() && !same_version,
                ) {
                    (Some(start), _, _) => DateTime::parse_from_rfc3339(start)
                        .map(|t| StartTime::At(t.with_timezone(&Utc)))
                        .unwrap_or(self.settings.start_time),
                    (None, Some(newest), true) => {
                        tracing::warn!(stream = %self.stream, "the checkpoint's cursor is for another api_version; restarting from its newest timestamp (late events before it may be missed)");
                        DateTime::parse_from_rfc3339(newest)
                            .map(|t| StartTime::At(t.with_timezone(&Utc)))
                            .unwrap_or(self.settings.start_time)
                    }
                    _ => self.settings.start_time,
                };
                let start_time =
                    start.resolve(Utc::now()).to_rfc3339_opts(SecondsFormat::Nanos, true);
                tracing::info!(stream = %self.stream, %start_time, "no checkpoint: starting a new cursor");
                Request::Reset { limit, start_time }
            }
        }
    }
}
