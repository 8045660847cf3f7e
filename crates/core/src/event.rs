//! The event that travels through a topology: a `vrl::value::Value` tree plus
//! the little metadata sluice needs to route and acknowledge it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use crate::ack::{AckStatus, EventFinalizers};

/// The 1Password Events API streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// `POST /api/v{1,2}/signinattempts`.
    SigninAttempts,
    /// `POST /api/v{1,2}/itemusages`.
    ItemUsages,
    /// `POST /api/v{1,2}/auditevents`.
    AuditEvents,
}

impl Stream {
    /// Every stream, in the order the API documents them.
    pub const ALL: [Stream; 3] = [Self::SigninAttempts, Self::ItemUsages, Self::AuditEvents];

    /// The snake_case name used in configs, metrics, data stream names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigninAttempts => "signin_attempts",
            Self::ItemUsages => "item_usages",
            Self::AuditEvents => "audit_events",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|stream| stream.as_str() == s).ok_or_else(|| {
            format!("unknown stream `{s}`, expected signin_attempts, item_usages or audit_events")
        })
    }
}

/// Where an event came from and how to acknowledge it.
#[derive(Clone, Debug, Default)]
pub struct EventMetadata {
    /// The id of the source component that produced it.
    pub source_id: Option<Arc<str>>,
    /// The 1Password stream it belongs to, when known.
    pub stream: Option<Stream>,
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
        if let Some(stream) = meta.stream {
            event.insert("dataset".into(), Value::from(format!("1password.{stream}")));
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
    fn streams_round_trip_their_names() {
        for stream in Stream::ALL {
            assert_eq!(stream.as_str().parse::<Stream>(), Ok(stream));
        }
        assert!("signins".parse::<Stream>().is_err());
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
