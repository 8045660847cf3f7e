//! A target's counters and gauges, in families named by the source's
//! prefix (`sluice_onepassword` gives `sluice_onepassword_requests_total`,
//! …) and labelled with the component and the target's `stream`.

use metrics::{Counter, Gauge, counter, gauge};

use crate::metrics::ComponentMetrics;

/// The retry reasons the poller and the sources built on it count, at 0
/// from the start so that `increase()` in alerts sees the first retry.
const RETRY_REASONS: [&str; 5] =
    ["rate_limited", "malformed", "transport", "server_error", "delivery_failed"];

/// One target's counters and gauges.
#[derive(Clone, Debug)]
pub struct PollMetrics {
    prefix: &'static str,
    stream: String,
    /// `<prefix>_events_total`: events fetched.
    pub events: Counter,
    /// `<prefix>_checkpoint_age_seconds`: since the checkpoint last moved.
    pub checkpoint_age: Gauge,
    /// `<prefix>_stream_up`: 1 while the API accepts the target.
    pub up: Gauge,
    /// The component's own metrics (errors, received).
    pub component: ComponentMetrics,
}

impl PollMetrics {
    /// The families `<prefix>_*` of `component`'s target `stream`.
    pub fn new(component: &ComponentMetrics, prefix: &'static str, stream: &str) -> Self {
        let labels = component.labels_with(&[("stream", stream.to_owned())]);
        // Registered at once (HELP and TYPE from the start, and no scrape
        // that sees the first page without its request).
        let ok = component.labels_with(&[("stream", stream.to_owned()), ("status", "200".into())]);
        counter!(format!("{prefix}_requests_total"), ok).increment(0);
        for reason in RETRY_REASONS {
            let labels =
                component.labels_with(&[("stream", stream.to_owned()), ("reason", reason.into())]);
            counter!(format!("{prefix}_retries_total"), labels).increment(0);
        }
        Self {
            prefix,
            stream: stream.to_owned(),
            events: counter!(format!("{prefix}_events_total"), labels.clone()),
            checkpoint_age: gauge!(format!("{prefix}_checkpoint_age_seconds"), labels.clone()),
            up: gauge!(format!("{prefix}_stream_up"), labels),
            component: component.clone(),
        }
    }

    /// The labels of the target's families, plus `extra`.
    pub fn labels_with(&self, extra: &[(&'static str, String)]) -> Vec<metrics::Label> {
        let mut all = vec![("stream", self.stream.clone())];
        all.extend(extra.iter().cloned());
        self.component.labels_with(&all)
    }

    /// One request answered `status` (`200`, `503`, `transport`, …).
    pub fn request(&self, status: String) {
        let labels = self.labels_with(&[("status", status)]);
        counter!(format!("{}_requests_total", self.prefix), labels).increment(1);
    }

    /// One retry for `reason`.
    pub fn retry(&self, reason: &'static str) {
        let labels = self.labels_with(&[("reason", reason.to_owned())]);
        counter!(format!("{}_retries_total", self.prefix), labels).increment(1);
    }
}
