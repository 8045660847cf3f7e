//! The event that travels through a topology: a `vrl::value::Value` tree plus
//! the little metadata sluice needs to route and acknowledge it.

use std::sync::Arc;

use bytes::Bytes;
use vrl::value::Value;

use crate::ack::{AckStatus, EventFinalizers};

/// The dataset of an event nothing names: Elastic's default for logs
/// (`logs-generic-default`).
pub const GENERIC_DATASET: &str = "generic";

/// A dataset's two halves by Elastic's convention `<package>.<name>`:
/// `("okta", "system")` for `okta.system`; a dataset
/// without a dot is both.
pub fn dataset_parts(dataset: &str) -> (&str, &str) {
    dataset.split_once('.').unwrap_or((dataset, dataset))
}

/// Where an event came from and how to acknowledge it.
#[derive(Clone, Debug, Default)]
pub struct EventMetadata {
    /// The id of the source component that produced it.
    pub source_id: Option<Arc<str>>,
    /// The dataset its source files it under (`<package>.<name>`, as
    /// Elastic's `data_stream.dataset`), when the source names one.
    pub dataset: Option<Arc<str>>,
    /// The raw JSON text of the item, as the source read it (`event.original`).
    pub raw: Option<Bytes>,
    /// Acknowledgement handles; fan-out copies share them.
    pub finalizers: EventFinalizers,
}

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    /// The event's fields.
    pub value: Value,
    /// Routing and acknowledgement metadata.
    pub meta: EventMetadata,
}

impl Event {
    /// An event without metadata.
    pub fn new(value: Value) -> Self {
        Self { value, meta: EventMetadata::default() }
    }

    /// Parse one JSON document straight into a `Value` and keep its text.
    pub fn from_json(raw: Bytes) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_slice(&raw)?;
        Ok(Self { value, meta: EventMetadata { raw: Some(raw), ..EventMetadata::default() } })
    }

    /// The event a failure turns `meta`'s item into: Elastic's
    /// `pipeline_error` shape, with the raw item in `event.original` (and
    /// still in the metadata), `error.type` and `error.message`, and the
    /// component that failed in `sluice.component_id`. It goes to a dead
    /// letter, never silently away.
    pub fn pipeline_error(
        meta: EventMetadata,
        error_type: &str,
        message: String,
        component_id: &str,
    ) -> Self {
        use vrl::value::ObjectMap;
        let mut event = ObjectMap::new();
        event.insert("kind".into(), Value::from("pipeline_error"));
        if let Some(raw) = &meta.raw {
            event.insert("original".into(), Value::Bytes(raw.clone()));
        }
        if let Some(dataset) = &meta.dataset {
            event.insert("dataset".into(), Value::from(dataset.as_ref()));
        }
        let mut error = ObjectMap::new();
        error.insert("message".into(), Value::Array(vec![Value::from(message)]));
        error.insert("type".into(), Value::from(error_type));
        let mut sluice = ObjectMap::new();
        sluice.insert("component_id".into(), Value::from(component_id));
        let mut root = ObjectMap::new();
        root.insert("@timestamp".into(), Value::from(now_rfc3339()));
        root.insert("event".into(), Value::Object(event));
        root.insert("error".into(), Value::Object(error));
        root.insert("sluice".into(), Value::Object(sluice));
        root.insert("tags".into(), Value::Array(vec![Value::from("preserve_original_event")]));
        Self { value: Value::Object(root), meta }
    }

    /// The dataset to file it under: its source's, else its `event.dataset`
    /// field, else [`GENERIC_DATASET`].
    pub fn dataset(&self) -> &str {
        if let Some(dataset) = &self.meta.dataset {
            return dataset;
        }
        let Value::Object(root) = &self.value else { return GENERIC_DATASET };
        match root.get("event") {
            Some(Value::Object(event)) => {
                let text = match event.get("dataset") {
                    Some(Value::Bytes(bytes)) => std::str::from_utf8(bytes).ok(),
                    Some(Value::String(text)) => Some(text.as_ref()),
                    _ => None,
                };
                text.filter(|d| !d.is_empty()).unwrap_or(GENERIC_DATASET)
            }
            _ => GENERIC_DATASET,
        }
    }

    /// Take the acknowledgement handles out (sinks do this before encoding).
    pub fn take_finalizers(&mut self) -> EventFinalizers {
        std::mem::take(&mut self.meta.finalizers)
    }

    /// Roughly the bytes this event holds in memory, for bounding queues.
    /// An event with its raw text (every 1Password item) counts four times
    /// that: the text itself, and a decoded tree of many small allocations
    /// (a rough factor; walking the tree instead cost 4 % of a pipeline's
    /// CPU). Other events are walked.
    pub fn size_estimate(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.meta.raw {
                Some(raw) => raw.len() * 4,
                None => value_size(&self.value),
            }
    }

    /// Serialise the value as one line of JSON, without a newline. It cannot
    /// fail: every key of a value is a string, and a `Vec` takes any write.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &self.value).expect("a value serializes into a Vec");
    }
}

/// Events on their way between two components.
///
/// If an array is dropped before its receiver takes the events out (a
/// channel closed by a component that failed, a send cancelled at shutdown),
/// its events are marked [`AckStatus::Errored`] so their source does not
/// commit past them.
#[derive(Debug)]
pub struct EventArray {
    events: Vec<Event>,
}

impl EventArray {
    /// Wrap events for sending.
    pub fn new(events: Vec<Event>) -> Self {
        Self { events }
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Take the events out; from here on the receiver is responsible for them.
    pub fn into_events(mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

impl Drop for EventArray {
    fn drop(&mut self) {
        for event in &self.events {
            event.meta.finalizers.update_status(AckStatus::Errored);
        }
    }
}

/// The heap bytes under a value: each string's length, each node's slot
/// (a B-tree map holds about one node per 11 entries; counted per entry).
fn value_size(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    match value {
        Value::Bytes(bytes) => bytes.len(),
        Value::String(text) => text.len(),
        Value::Regex(regex) => regex.as_str().len(),
        Value::Object(map) => {
            map.iter().map(|(key, value)| NODE + key.len() + 8 + value_size(value)).sum()
        }
        Value::Array(items) => items.iter().map(|item| NODE + value_size(item)).sum(),
        _ => 0,
    }
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-30T10:00:00.123Z`).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{BatchNotifier, BatchStatus};

    #[test]
    fn json_is_parsed_into_a_value_and_the_raw_text_kept() {
        let raw = Bytes::from_static(br#"{"uuid":"A","n":1,"tags":["x"]}"#);
        let event = Event::from_json(raw.clone()).expect("valid json");
        assert_eq!(event.meta.raw, Some(raw));
        let mut out = Vec::new();
        event.write_json(&mut out);
        assert_eq!(out, br#"{"n":1,"tags":["x"],"uuid":"A"}"#);
    }

    #[test]
    fn the_size_estimate_grows_with_the_content() {
        let small = Event::from_json(Bytes::from_static(br#"{"a":"b"}"#)).expect("json");
        let text = format!(r#"{{"a":"{}","list":[1,2,3]}}"#, "x".repeat(10_000));
        let large = Event::from_json(Bytes::from(text)).expect("json");
        // The raw text and the decoded string both count.
        assert!(large.size_estimate() > 20_000, "{}", large.size_estimate());
        assert!(small.size_estimate() < 300, "{}", small.size_estimate());
        // Without raw text, the tree is walked.
        let walked = Event::new(large.value.clone());
        assert!(walked.size_estimate() > 10_000, "{}", walked.size_estimate());
        assert!(Event::new(small.value).size_estimate() < 300);
    }

    #[test]
    fn the_dataset_is_the_sources_else_the_documents_else_generic() {
        let mut event = Event::new(vrl::value!({"event": {"dataset": "okta.system"}}));
        assert_eq!(event.dataset(), "okta.system");
        event.meta.dataset = Some(Arc::from("acme.audit"));
        assert_eq!(event.dataset(), "acme.audit");
        assert_eq!(Event::new(vrl::value!({"event": {"dataset": ""}})).dataset(), "generic");
        assert_eq!(Event::new(Value::from(1)).dataset(), "generic");
        assert_eq!(dataset_parts("acme.audit.v2"), ("acme", "audit.v2"));
        assert_eq!(dataset_parts("generic"), ("generic", "generic"));
    }

    #[tokio::test]
    async fn an_array_dropped_in_transit_errors_its_batch() {
        let (notifier, receiver) = BatchNotifier::new_with_receiver();
        let mut event = Event::new(Value::from(1));
        event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
        drop(notifier);
        drop(EventArray::new(vec![event]));
        assert_eq!(receiver.await, BatchStatus::Errored);
    }

    #[tokio::test]
    async fn events_taken_out_of_an_array_are_not_errored() {
        let (notifier, receiver) = BatchNotifier::new_with_receiver();
        let mut event = Event::new(Value::from(1));
        event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
        drop(notifier);
        let events = EventArray::new(vec![event]).into_events();
        drop(events);
        assert_eq!(receiver.await, BatchStatus::Delivered);
    }
}
