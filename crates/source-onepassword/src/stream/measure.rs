//! A stream's metrics: counters and gauges labelled with the component and
//! the stream.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Label, counter, gauge};
use sluice_core::Stream;
use sluice_core::metrics::ComponentMetrics;

/// One stream's counters and gauges.
pub(super) struct StreamMetrics {
    pub(super) events: Counter,
    pub(super) pages: Counter,
    pub(super) rate_limit_wait: Counter,
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
            rate_limit_wait: counter!(
                "sluice_onepassword_rate_limit_wait_milliseconds_total",
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
