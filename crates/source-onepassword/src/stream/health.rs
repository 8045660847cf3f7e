//! A stream on `/health` and `stream_up`: down once its requests have
//! failed for `unhealthy_after` (checked on each failure and on the gauge
//! timer, so the "for N" stays current between retries), or at once when
//! the API refuses it.

use std::time::Duration;

use super::measure::StreamMetrics;
use super::{State, StreamPoller};

impl StreamPoller {
    /// Report the stream down once its requests have failed for
    /// `unhealthy_after`, with how long they have (kept current).
    pub(super) fn check_failing(&self, state: &mut State, metrics: &StreamMetrics) {
        let Some((since, err)) = &state.failing else { return };
        let Some(reason) = failing_reason(since.elapsed(), self.settings.unhealthy_after, err)
        else {
            return;
        };
        let (err, failing_for) = (err.clone(), since.elapsed().as_secs());
        if self.mark_down(state, metrics, &reason) {
            tracing::error!(stream = %self.stream, error = %err, failing_for_secs = failing_for, "requests to the Events API keep failing; /health reports the stream until one succeeds");
        }
    }

    /// Report the stream down on `/health` and `stream_up`; whether it just went down.
    pub(super) fn mark_down(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        reason: &str,
    ) -> bool {
        metrics.up.set(0.0);
        self.health.set_unhealthy(self.stream.as_str(), reason);
        !std::mem::replace(&mut state.down, true)
    }

    /// The API refuses the stream: say so once, mark it, keep the other streams going.
    pub(super) fn refuse(&self, state: &mut State, metrics: &StreamMetrics, reason: &str) {
        if self.mark_down(state, metrics, reason) {
            tracing::error!(stream = %self.stream, error = reason, retry_every = ?self.settings.refused_retry, "the API refuses this stream; the other streams go on. Fix the token (a token_file is read again) or reset the checkpoint");
        }
    }
}

/// What `/health` says of a stream whose requests have failed for
/// `failing_for` (whole seconds), once that reaches `threshold`.
fn failing_reason(failing_for: Duration, threshold: Duration, err: &str) -> Option<String> {
    if failing_for < threshold {
        return None;
    }
    let shown = humantime::format_duration(Duration::from_secs(failing_for.as_secs()));
    Some(format!("requests have failed for {shown}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_appears_at_the_threshold_and_says_how_long_now() {
        let threshold = Duration::from_secs(60);
        assert_eq!(failing_reason(Duration::from_secs(59), threshold, "503"), None);
        assert_eq!(
            failing_reason(Duration::from_millis(60_400), threshold, "503").as_deref(),
            Some("requests have failed for 1m: 503")
        );
        assert_eq!(
            failing_reason(Duration::from_secs(95), threshold, "503").as_deref(),
            Some("requests have failed for 1m 35s: 503")
        );
    }
}
