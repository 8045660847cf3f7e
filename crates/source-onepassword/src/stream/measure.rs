//! A stream's own metrics (pages, rate-limit waits, lag; the polling kit
//! keeps requests, events, retries, checkpoint age and `stream_up`), their
//! HELP texts, and the backfill's progress line.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};
use sluice_core::poll::PollMetrics;

use crate::checkpoint::StreamCheckpoint;
use crate::streams::Stream;

/// One stream's own counters and gauges (the kit's are in [`PollMetrics`]).
pub(super) struct StreamMetrics {
    pub(super) pages: Counter,
    pub(super) rate_limit_wait: Histogram,
    /// Registered at the first delivery: no lag is shown before there is one.
    lag: OnceLock<Gauge>,
    labels: Vec<Label>,
}

impl StreamMetrics {
    pub(super) fn new(kit: &PollMetrics) -> Self {
        let labels = kit.labels_with(&[]);
        Self {
            pages: counter!("sluice_onepassword_pages_total", labels.clone()),
            rate_limit_wait: histogram!(
                "sluice_onepassword_rate_limit_wait_seconds",
                labels.clone()
            ),
            lag: OnceLock::new(),
            labels,
        }
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

/// Where a backfill stands: events so far, newest delivered, lag.
pub(super) fn log_progress(stream: Stream, checkpoint: &StreamCheckpoint, events: u64) {
    let newest = checkpoint.newest_timestamp.clone().unwrap_or_else(|| "-".into());
    let lag = lag(checkpoint)
        .map(|lag| humantime::format_duration(Duration::from_secs(lag.as_secs())).to_string())
        .unwrap_or_else(|| "-".into());
    tracing::info!(%stream, events, newest_delivered = %newest, %lag, "backfill progress");
}

/// Now minus the newest event timestamp delivered, if any.
pub(super) fn lag(checkpoint: &StreamCheckpoint) -> Option<Duration> {
    let newest = DateTime::parse_from_rfc3339(checkpoint.newest_timestamp.as_deref()?).ok()?;
    Some((Utc::now() - newest.with_timezone(&Utc)).to_std().unwrap_or(Duration::ZERO))
}
