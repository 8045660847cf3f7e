//! A stream's metrics: counters and gauges labelled with the component and
//! the stream, and how the poller keeps its gauges and progress log current.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{State, StreamPoller};
use crate::checkpoint::StreamCheckpoint;

use crate::streams::Stream;
use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};
use sluice_core::metrics::ComponentMetrics;

/// One stream's counters and gauges.
pub(super) struct StreamMetrics {
    pub(super) events: Counter,
    pub(super) pages: Counter,
    pub(super) rate_limit_wait: Histogram,
    /// Registered at the first delivery: no lag is shown before there is one.
    lag: OnceLock<Gauge>,
    labels: Vec<Label>,
    pub(super) checkpoint_age: Gauge,
    pub(super) up: Gauge,
    pub(super) component: ComponentMetrics,
    pub(super) stream: &'static str,
}

impl StreamMetrics {
    pub(super) fn new(component: &ComponentMetrics, stream: Stream) -> Self {
        let labels = component.labels_with(&[("stream", stream.as_str().to_owned())]);
        // At 0 from the start, so `increase()` in alerts sees the first retry.
        for reason in ["rate_limited", "malformed", "transport", "server_error", "delivery_failed"]
        {
            let labels = component.labels_with(&[
                ("stream", stream.as_str().to_owned()),
                ("reason", reason.to_owned()),
            ]);
            counter!("sluice_onepassword_retries_total", labels).increment(0);
        }
        Self {
            events: counter!("sluice_onepassword_events_total", labels.clone()),
            pages: counter!("sluice_onepassword_pages_total", labels.clone()),
            rate_limit_wait: histogram!(
                "sluice_onepassword_rate_limit_wait_seconds",
                labels.clone()
            ),
            lag: OnceLock::new(),
            checkpoint_age: gauge!("sluice_onepassword_checkpoint_age_seconds", labels.clone()),
            up: gauge!("sluice_onepassword_stream_up", labels.clone()),
            labels,
            component: component.clone(),
            stream: stream.as_str(),
        }
    }

    pub(super) fn request(&self, status: String) {
        let labels =
            self.component.labels_with(&[("stream", self.stream.to_owned()), ("status", status)]);
        counter!("sluice_onepassword_requests_total", labels).increment(1);
    }

    pub(super) fn retry(&self, reason: &'static str) {
        let labels = self
            .component
            .labels_with(&[("stream", self.stream.to_owned()), ("reason", reason.to_owned())]);
        counter!("sluice_onepassword_retries_total", labels).increment(1);
    }

    /// Now minus the newest event delivered.
    pub(super) fn set_lag(&self, lag: Duration) {
        self.lag
            .get_or_init(|| gauge!("sluice_onepassword_lag_seconds", self.labels.clone()))
            .set(lag.as_secs_f64());
    }
}

/// HELP text and units of the source's families (call once, after the
/// recorder is installed).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sluice_onepassword_requests_total",
        "Events API requests of a stream, by answer status."
    );
    describe_counter!("sluice_onepassword_events_total", "Events a stream fetched.");
    describe_counter!("sluice_onepassword_pages_total", "Pages a stream fetched.");
    describe_counter!("sluice_onepassword_retries_total", "Retries of a stream, by reason.");
    describe_histogram!(
        "sluice_onepassword_rate_limit_wait_seconds",
        Unit::Seconds,
        "Waits for the token's rate limit, in slices of at most a second (the sum is the time waited)."
    );
    describe_gauge!(
        "sluice_onepassword_lag_seconds",
        Unit::Seconds,
        "Now minus the newest event timestamp delivered."
    );
    describe_gauge!(
        "sluice_onepassword_checkpoint_age_seconds",
        Unit::Seconds,
        "Seconds since a stream's checkpoint last moved."
    );
    describe_gauge!(
        "sluice_onepassword_stream_up",
        "1 while the API accepts the stream's requests."
    );
}

/// How often a backfill logs where it stands.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl StreamPoller {
    /// Checkpoint age and lag now, and the backfill's progress line.
    pub(super) fn update_gauges(&self, state: &State, metrics: &StreamMetrics) {
        metrics.checkpoint_age.set(state.committed_at.elapsed().as_secs_f64());
        if let Some(lag) = lag(&state.checkpoint) {
            metrics.set_lag(lag);
        }
        // A backfill waiting (a rate-limit pause, retries) still says where it stands.
        if state.backfilling {
            self.log_progress(state);
        }
    }

    /// At most every [`PROGRESS_EVERY`]: events so far, newest delivered, lag.
    fn log_progress(&self, state: &State) {
        {
            let mut at = state.progress_at.lock().unwrap_or_else(|p| p.into_inner());
            if at.elapsed() < PROGRESS_EVERY {
                return;
            }
            *at = Instant::now();
        }
        let newest = state.checkpoint.newest_timestamp.clone().unwrap_or_else(|| "-".into());
        let lag = lag(&state.checkpoint)
            .map(|lag| humantime::format_duration(Duration::from_secs(lag.as_secs())).to_string())
            .unwrap_or_else(|| "-".into());
        tracing::info!(stream = %self.stream, events = state.events_this_run, newest_delivered = %newest, %lag, "backfill progress");
    }
}

/// Now minus the newest event timestamp delivered, if any.
fn lag(checkpoint: &StreamCheckpoint) -> Option<Duration> {
    let newest = DateTime::parse_from_rfc3339(checkpoint.newest_timestamp.as_deref()?).ok()?;
    Some((Utc::now() - newest.with_timezone(&Utc)).to_std().unwrap_or(Duration::ZERO))
}
