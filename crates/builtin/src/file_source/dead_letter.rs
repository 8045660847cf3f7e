//! `format: dead_letter`: the `file` source reads a sink's dead letter and
//! hands on the raw item each record was made from, with its dataset, so a
//! replay goes through the same transform and sink again.
//!
//! A record is `{"@timestamp", "destination", "status", "error",
//! "sluice": {"component_id"}, "document"}` (`sluice_core::sink::dead_letter`).
//! Where the raw item sits in `document` depends on the sink that wrote it:
//!
//! | sink | raw item | dataset |
//! |---|---|---|
//! | `elasticsearch`, `ingest: sluice`; `splunk_hec`, `encoding: ecs` | `document.event.original` (a string) | `document.data_stream.dataset` or `document.event.dataset` |
//! | `elasticsearch`, `ingest: elastic` | `document.message` (a string) | the same |
//! | `splunk_hec`, `encoding: raw` | `document.event` (the item itself) | the sourcetype's first and last `:` parts (`1password:insights:<stream>` → `1password.<stream>`) |
//! | `sluice` (forwarder) | `document` (the item itself) | the source's `dataset` (or `stream`) |

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use std::sync::Arc;

/// One dead-letter record, as much of it as a replay needs.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    document: &'a RawValue,
    #[serde(default)]
    destination: Option<String>,
}

/// The parts of a document that can hold the raw item or name its stream.
#[derive(Deserialize, Default)]
struct Document<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data_stream: Option<DataStream>,
    #[serde(default)]
    sourcetype: Option<String>,
}

#[derive(Deserialize, Default)]
struct EventFields {
    #[serde(default)]
    original: Option<String>,
    #[serde(default)]
    dataset: Option<String>,
}

#[derive(Deserialize, Default)]
struct DataStream {
    #[serde(default)]
    dataset: Option<String>,
}

/// The dataset a raw HEC envelope's sourcetype names: its first and last
/// `:` parts (`1password:insights:audit_events` → `1password.audit_events`).
fn dataset_of_sourcetype(sourcetype: &str) -> Option<String> {
    let (package, rest) = sourcetype.split_once(':')?;
    let name = rest.rsplit(':').next().filter(|name| !name.is_empty() && !package.is_empty())?;
    Some(format!("{package}.{name}"))
}

/// The raw item of a dead-letter line and its dataset (`configured` wins
/// over what the record says), or why neither can be had.
pub(super) fn unwrap(
    line: &[u8],
    configured: Option<&Arc<str>>,
) -> Result<(Bytes, Arc<str>), String> {
    let record: Record<'_> = serde_json::from_slice(line)
        .map_err(|e| format!("not a dead-letter record (an object with `document`): {e}"))?;
    let text = record.document.get();
    // A document that is not an object (or has none of these fields) is the
    // item itself: what the forwarder's dead letter holds.
    let document: Document<'_> = serde_json::from_str(text).unwrap_or_default();
    let event_object = document.event.filter(|raw| raw.get().starts_with('{'));
    let fields: EventFields =
        event_object.and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default();
    let named = document
        .data_stream
        .and_then(|ds| ds.dataset)
        .or(fields.dataset)
        .filter(|dataset| !dataset.is_empty());
    let (raw, found) = if let Some(original) = fields.original {
        (Bytes::from(original), named)
    } else if let (Some(message), Some(_)) = (document.message, &named) {
        (Bytes::from(message), named)
    } else if let (Some(event), Some(sourcetype)) = (event_object, &document.sourcetype) {
        (Bytes::copy_from_slice(event.get().as_bytes()), dataset_of_sourcetype(sourcetype))
    } else if named.is_some() || document.sourcetype.is_some() {
        return Err("the document holds no raw item (`event.original`): the sink \
             dropped it (`event_original: drop`), so this record cannot be replayed"
            .into());
    } else {
        (Bytes::copy_from_slice(text.as_bytes()), None)
    };
    let dataset = match (configured, found) {
        (Some(configured), _) => configured.clone(),
        (None, Some(found)) => Arc::from(found),
        (None, None) => {
            let destination = record.destination.as_deref().unwrap_or("?");
            return Err(format!(
                "the record does not say which dataset it belongs to (destination `{destination}`); \
                 set the source's `dataset` (or 1Password `stream`)"
            ));
        }
    };
    Ok((raw, dataset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = r#"{"uuid":"U1","timestamp":"2026-11-20T08:14:03Z","used_version":3}"#;

    fn record(document: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "@timestamp": "2026-12-03T10:00:00Z",
            "destination": "logs-1password.item_usages-default",
            "status": 400,
            "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"},
            "sluice": {"component_id": "es"},
            "document": document,
        }))
        .expect("json")
    }

    #[test]
    fn an_ecs_document_gives_back_its_original_byte_for_byte() {
        let line = record(&serde_json::json!({
            "@timestamp": "2026-11-20T08:14:03Z",
            "event": {"original": ITEM, "dataset": "1password.item_usages"},
            "data_stream": {"type": "logs", "dataset": "1password.item_usages", "namespace": "default"},
        }));
        let (raw, stream) = unwrap(&line, None).expect("replayable");
        assert_eq!(&raw[..], ITEM.as_bytes());
        assert_eq!(&*stream, "1password.item_usages");
        // event.dataset alone (HEC's ecs encoding has no data_stream).
        let line = record(
            &serde_json::json!({"event": {"original": ITEM, "dataset": "1password.audit_events"}}),
        );
        assert_eq!(&*unwrap(&line, None).expect("replayable").1, "1password.audit_events");
    }

    #[test]
    fn an_agent_document_gives_back_its_message() {
        let line = record(&serde_json::json!({
            "message": ITEM,
            "event": {"dataset": "1password.signin_attempts"},
            "data_stream": {"dataset": "1password.signin_attempts"},
        }));
        let (raw, stream) = unwrap(&line, None).expect("replayable");
        assert_eq!((&raw[..], &*stream), (ITEM.as_bytes(), "1password.signin_attempts"));
    }

    #[test]
    fn a_raw_hec_envelope_gives_back_its_event_and_the_sourcetypes_stream() {
        let envelope = format!(
            r#"{{"time":1763626443,"sourcetype":"1password:insights:audit_events","event":{ITEM}}}"#
        );
        let line = format!(
            r#"{{"destination":"1password:insights:audit_events","error":{{}},"document":{envelope}}}"#
        );
        let (raw, stream) = unwrap(line.as_bytes(), None).expect("replayable");
        assert_eq!((&raw[..], &*stream), (ITEM.as_bytes(), "1password.audit_events"));
    }

    #[test]
    fn a_forwarded_item_needs_the_configured_stream() {
        let line = record(&serde_json::from_str(ITEM).expect("item"));
        let error = unwrap(&line, None).expect_err("no stream");
        assert!(error.contains("set the source's `dataset`"), "{error}");
        let configured: Arc<str> = "1password.item_usages".into();
        let (raw, stream) = unwrap(&line, Some(&configured)).expect("replayable");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&raw).expect("json")["uuid"], "U1");
        assert_eq!(&*stream, "1password.item_usages");
    }

    #[test]
    fn the_configured_stream_wins_and_what_cannot_be_replayed_says_why() {
        let line = record(
            &serde_json::json!({"event": {"original": ITEM, "dataset": "1password.item_usages"}}),
        );
        let configured: Arc<str> = "okta.system".into();
        assert_eq!(&*unwrap(&line, Some(&configured)).expect("ok").1, "okta.system");
        // Any dataset a record names is taken.
        let other =
            record(&serde_json::json!({"event": {"original": ITEM, "dataset": "acme.audit"}}));
        assert_eq!(&*unwrap(&other, None).expect("ok").1, "acme.audit");
        assert_eq!(dataset_of_sourcetype("acme:audit").as_deref(), Some("acme.audit"));
        assert_eq!(dataset_of_sourcetype("plain"), None);
        let dropped = record(
            &serde_json::json!({"event": {"dataset": "1password.item_usages"}, "data_stream": {"dataset": "1password.item_usages"}}),
        );
        assert!(unwrap(&dropped, None).expect_err("no original").contains("event_original: drop"));
        assert!(
            unwrap(ITEM.as_bytes(), None)
                .expect_err("not a record")
                .contains("not a dead-letter record")
        );
        assert!(unwrap(b"{\"document\": 3", None).is_err());
    }
}
