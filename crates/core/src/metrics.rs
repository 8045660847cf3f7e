//! Component metrics with the names fixed in DESIGN.md: every series has the
//! labels `component_id`, `component_kind` and `component_type`, and no label
//! takes unbounded values.

use metrics::{Counter, Label, counter};

/// The name of the default output in metrics.
pub const DEFAULT_OUTPUT: &str = "_default";

/// The metrics of one component, with its labels applied.
#[derive(Clone)]
pub struct ComponentMetrics {
    labels: Vec<Label>,
    received_events: Counter,
    received_bytes: Counter,
}

impl std::fmt::Debug for ComponentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentMetrics").field("labels", &self.labels).finish()
    }
}

/// Where in a component an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading or decoding input.
    Receiving,
    /// Transforming.
    Processing,
    /// Delivering.
    Sending,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Processing => "processing",
            Self::Sending => "sending",
        }
    }
}

impl ComponentMetrics {
    /// Metrics for the component `id` of `kind` (`source`, `transform`, `sink`) and `type`.
    pub fn new(id: &str, kind: &'static str, component_type: &str) -> Self {
        let labels = vec![
            Label::new("component_id", id.to_owned()),
            Label::new("component_kind", kind),
            Label::new("component_type", component_type.to_owned()),
        ];
        Self {
            received_events: counter!("sluice_component_received_events_total", labels.clone()),
            received_bytes: counter!("sluice_component_received_bytes_total", labels.clone()),
            labels,
        }
    }

    /// The component labels, for a component's own metrics.
    pub fn labels(&self) -> Vec<Label> {
        self.labels.clone()
    }

    /// Its `component_kind` and `component_type` labels.
    pub fn kind_and_type(&self) -> (&str, &str) {
        let get = |key: &str| self.labels.iter().find(|l| l.key() == key).map_or("", |l| l.value());
        (get("component_kind"), get("component_type"))
    }

    /// The labels plus extra ones (each with a bounded set of values).
    pub fn labels_with(&self, extra: &[(&'static str, String)]) -> Vec<Label> {
        let mut labels = self.labels.clone();
        labels.extend(extra.iter().map(|(k, v)| Label::new(*k, v.clone())));
        labels
    }

    /// Events (and their raw size) that came in.
    pub fn received(&self, events: usize, bytes: usize) {
        self.received_events.increment(events as u64);
        if bytes > 0 {
            self.received_bytes.increment(bytes as u64);
        }
    }

    /// Events sent on `output` (`_default` or a port name); for sinks, delivered.
    pub fn sent(&self, events: usize, output: &str) {
        counter!(
            "sluice_component_sent_events_total",
            self.labels_with(&[("output", output.to_owned())])
        )
        .increment(events as u64);
    }

    /// One error; `error_type` is a short fixed word such as `parse_failed`.
    pub fn error(&self, stage: Stage, error_type: &'static str) {
        let labels = self.labels_with(&[
            ("stage", stage.as_str().to_owned()),
            ("error_type", error_type.to_owned()),
        ]);
        counter!("sluice_component_errors_total", labels).increment(1);
    }

    /// Events given up; `intentional` tells a filter from a failure.
    pub fn discarded(&self, events: usize, intentional: bool) {
        let labels = self.labels_with(&[("intentional", intentional.to_string())]);
        counter!("sluice_component_discarded_events_total", labels).increment(events as u64);
    }

    /// A retry; `reason` is a short fixed word such as `request_failed`.
    pub fn retry(&self, reason: &'static str) {
        counter!(
            "sluice_component_retries_total",
            self.labels_with(&[("reason", reason.to_owned())])
        )
        .increment(1);
    }

    /// Events the destination already held (replays); they count as delivered.
    pub fn duplicates(&self, events: usize) {
        if events > 0 {
            counter!("sluice_component_duplicates_total", self.labels()).increment(events as u64);
        }
    }

    /// Show a delivering sink's counters at 0 from its start: an alert on
    /// `increase()` misses a series' first value, and dashboards show 0
    /// rather than nothing.
    pub fn register_delivery(&self) {
        self.sent(0, DEFAULT_OUTPUT);
        self.rejected(0);
        counter!("sluice_component_duplicates_total", self.labels()).increment(0);
        for reason in ["request_failed", "refused", "item_retry", "split"] {
            counter!(
                "sluice_component_retries_total",
                self.labels_with(&[("reason", reason.to_owned())])
            )
            .increment(0);
        }
        for error_type in ["request_failed", "refused"] {
            let labels = self.labels_with(&[
                ("stage", Stage::Sending.as_str().to_owned()),
                ("error_type", error_type.to_owned()),
            ]);
            counter!("sluice_component_errors_total", labels).increment(0);
        }
    }

    /// Events rejected for good and written to the dead letter.
    pub fn rejected(&self, events: usize) {
        counter!("sluice_component_rejected_events_total", self.labels()).increment(events as u64);
    }
}

/// HELP text and units for the families core exports (call once, after the
/// recorder is installed); each plugin describes its own the same way.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sluice_component_received_events_total",
        "Events that came into a component."
    );
    describe_counter!(
        "sluice_component_received_bytes_total",
        Unit::Bytes,
        "Raw bytes of the events that came into a component."
    );
    describe_counter!(
        "sluice_component_sent_events_total",
        "Events a component sent on an output; for a sink, events delivered."
    );
    describe_counter!(
        "sluice_component_errors_total",
        "Errors of a component, by stage and error type."
    );
    describe_counter!(
        "sluice_component_discarded_events_total",
        "Events a component gave up (intentional: filtered)."
    );
    describe_counter!(
        "sluice_component_retries_total",
        "Retries of a sink's requests or items, by reason."
    );
    describe_counter!(
        "sluice_component_duplicates_total",
        "Events a sink's destination already held (replays); they count as delivered."
    );
    describe_counter!(
        "sluice_component_rejected_events_total",
        "Events a sink's destination rejected for good, written to the dead letter."
    );
    describe_gauge!("sluice_component_healthy", "0 while a component reports itself unhealthy.");
    describe_gauge!("sluice_build_info", "1, labelled with the version of this sluice.");
    describe_counter!(
        "sluice_tap_dropped_events_total",
        "Event copies a `sluice tap` watcher could not take."
    );
    describe_gauge!(
        "sluice_component_buffer_events",
        "Events waiting in the component's input queue."
    );
    describe_gauge!(
        "sluice_component_buffer_bytes",
        Unit::Bytes,
        "Bytes of events (as decoded in memory) waiting in the component's input queue."
    );
    describe_gauge!(
        "sluice_component_buffer_max_bytes",
        Unit::Bytes,
        "The byte bound of the component's input queue (buffer.max_bytes): a sender waits past it."
    );
    describe_gauge!(
        "sluice_sink_concurrency_limit",
        "Requests a sink may have in flight now (adaptive, or fixed)."
    );
    describe_histogram!(
        "sluice_sink_delivery_latency_seconds",
        Unit::Seconds,
        "From the moment a source received an event to its destination's acknowledgement."
    );
}
