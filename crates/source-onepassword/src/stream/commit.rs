//! Taking a final page into the checkpoint (the kit writes it).

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Position, StreamPoller};
use crate::checkpoint::StreamCheckpoint;

/// Take a final page's position into `checkpoint`; whether it changed.
pub(super) fn take(
    checkpoint: &mut StreamCheckpoint,
    poller: &StreamPoller,
    position: Position,
) -> bool {
    if checkpoint.cursor.as_deref() == Some(position.cursor.as_str()) && position.events == 0 {
        return false;
    }
    checkpoint.cursor = Some(position.cursor);
    checkpoint.api_version = poller.settings.api_version;
    checkpoint.start_time = None;
    checkpoint.events = checkpoint.events.saturating_add(position.events);
    checkpoint.account.clone_from(&poller.account);
    checkpoint.consumers = poller.consumers.to_vec();
    checkpoint.url = Some(poller.client.base().to_owned());
    if let Some(newest) = position.newest {
        let known = checkpoint
            .newest_timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if known.is_none_or(|k| newest > k) {
            checkpoint.newest_timestamp = Some(newest.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
    checkpoint.committed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    true
}
