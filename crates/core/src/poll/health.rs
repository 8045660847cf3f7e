//! A target on `/health` and `stream_up`: down once its requests have
//! failed for `unhealthy_after` (checked on each failure and on the gauge
//! timer, so the "for N" stays current between retries), or at once when
//! the API refuses it; and its checkpoint writes, retried and shown as
//! `<label>.checkpoint` while they fail.

use std::time::Duration;

use tokio::time::Instant;

use super::PollTarget;
use super::driver::{Poller, State};
use crate::metrics::Stage;

impl Poller {
    /// Report the target down once its requests have failed for
    /// `unhealthy_after`, with how long they have (kept current).
    pub(super) fn check_failing<T: PollTarget>(&self, state: &mut State<T::Position>, target: &T) {
        let Some((since, err)) = &state.failing else { return };
        let Some(reason) = failing_reason(since.elapsed(), self.settings.unhealthy_after, err)
        else {
            return;
        };
        let (err, failing_for) = (err.clone(), since.elapsed().as_secs());
        if self.mark_down(state, target, &reason) {
            tracing::error!(stream = %target.label(), error = %err, failing_for_secs = failing_for, "requests to {} keep failing; /health reports the stream until one succeeds", target.api());
        }
    }

    /// Report the target down on `/health` and `stream_up`; whether it just went down.
    fn mark_down<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &T,
        reason: &str,
    ) -> bool {
        self.metrics.up.set(0.0);
        self.health.set_unhealthy(target.label(), reason);
        !std::mem::replace(&mut state.down, true)
    }

    /// The API refuses the target: say so once, mark it, keep the others going.
    pub(super) fn refuse<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &T,
        reason: &str,
    ) {
        if self.mark_down(state, target, reason) {
            tracing::error!(stream = %target.label(), error = reason, retry_every = ?self.settings.refused_retry, "{}", target.refused_hint());
        }
    }

    /// Write the checkpoint if the file is behind it; whether the file is
    /// now current. A failed write never ends the poller: it shows on
    /// `/health` under `<label>.checkpoint` and is retried, and the same
    /// (or a newer) content is written once the disk accepts it.
    pub(super) fn save<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
    ) -> bool {
        if !state.unsaved {
            return true;
        }
        let key = format!("{}.checkpoint", target.label());
        match target.save() {
            Ok(()) => {
                state.unsaved = false;
                if std::mem::take(&mut state.save_failed) {
                    tracing::info!(stream = %target.label(), "the checkpoint is written again");
                    self.health.set_healthy(&key);
                }
                state.save_backoff.reset();
                state.committed_at = Instant::now();
                self.update_gauges(state, target);
                true
            }
            Err(err) => {
                if !std::mem::replace(&mut state.save_failed, true) {
                    tracing::error!(stream = %target.label(), error = %err, "the checkpoint cannot be written; nothing new is fetched until it can (the write is retried)");
                }
                self.metrics.component.error(Stage::Processing, "checkpoint_write");
                self.health.set_unhealthy(&key, format!("{err}; retrying"));
                false
            }
        }
    }
}

/// What `/health` says of a target whose requests have failed for
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
