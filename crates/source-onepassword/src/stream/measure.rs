//! A stream's metrics: counters and gauges labelled with the component and
//! the stream.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};
use sluice_core::Stream;
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
