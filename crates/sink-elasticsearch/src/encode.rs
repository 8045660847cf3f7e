//! One event → one bulk item: a `create` action naming its data stream (or
//! index) and `_id`, and the document with `data_stream.*` filled in.
//! `create` plus a stable `_id` make replays harmless: Elasticsearch answers
//! 409 for a document it already has.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use sluice_core::Event;
use sluice_core::event::dataset_parts;
use sluice_core::sink::Encoded;
use vrl::value::{ObjectMap, Value};

use crate::config::{EventOriginal, Ingest, Mode, Settings};

fn id_of(value: &Value, path: &[String]) -> Option<String> {
    let mut current = value;
    for segment in path {
        let Value::Object(map) = current else { return None };
        current = map.get(segment.as_str())?;
    }
    match current {
        Value::Bytes(_) | Value::String(_) => Some(current.to_string_lossy().into_owned()),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `_id` of an event without the id field (a `pipeline_error`
/// document, say): a hash of its dataset and raw original, so a replay of
/// the same item gets the same `_id` and answers 409 instead of doubling.
/// Without a raw original, the hash of the document itself.
fn derived_id(event: &Event, dataset: &str, document: &[u8]) -> String {
    let mut hash = Sha256::new();
    // The hash of a 1Password item took its stream's name before events
    // carried a dataset; it still does, so replays keep their `_id`s.
    hash.update(dataset_parts(dataset).1.as_bytes());
    hash.update([0]);
    hash.update(event.meta.raw.as_deref().unwrap_or(document));
    format!("sluice-{}", URL_SAFE_NO_PAD.encode(&hash.finalize()[..20]))
}

/// The `data_stream.*` fields of a document.
fn data_stream_fields(settings: &Settings, dataset: &str) -> ObjectMap {
    let ds = &settings.data_stream;
    let mut fields = ObjectMap::new();
    fields.insert("type".into(), Value::from(ds.kind.as_str()));
    fields.insert("dataset".into(), Value::from(dataset));
    fields.insert("namespace".into(), Value::from(ds.namespace.as_str()));
    fields
}

/// What Elastic Agent's httpjson input sends for one item, for the
/// 1Password integration's pipeline to map: the raw item in `message`,
/// the read time in `@timestamp` (the pipeline keeps it as `event.created`),
/// the input's default tags, and the data stream.
fn agent_document(
    event: &Event,
    dataset: &str,
    settings: &Settings,
) -> Result<Value, serde_json::Error> {
    let message = match &event.meta.raw {
        Some(raw) => String::from_utf8_lossy(raw).into_owned(),
        None => serde_json::to_string(&event.value)?,
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut document = ObjectMap::new();
    document.insert("@timestamp".into(), Value::from(now));
    document.insert("message".into(), Value::from(message));
    document.insert(
        "tags".into(),
        Value::Array(vec![Value::from("forwarded"), Value::from(dataset.replacen('.', "-", 1))]),
    );
    if settings.mode == Mode::DataStream {
        document.insert("data_stream".into(), Value::Object(data_stream_fields(settings, dataset)));
    }
    let mut event_fields = ObjectMap::new();
    event_fields.insert("dataset".into(), Value::from(dataset));
    document.insert("event".into(), Value::Object(event_fields));
    Ok(Value::Object(document))
}

/// Keep `event.original` through Fleet's final pipeline (tag
/// `preserve_original_event`), or drop it.
fn event_original(document: &mut ObjectMap, what: EventOriginal) {
    let Some(Value::Object(event)) = document.get_mut("event") else { return };
    if what == EventOriginal::Drop {
        event.remove("original");
        return;
    }
    if !event.contains_key("original") {
        return;
    }
    const TAG: &str = "preserve_original_event";
    match document.get_mut("tags") {
        Some(Value::Array(tags)) => {
            if !tags.iter().any(|t| t.to_str_lossy().is_some_and(|t| t == TAG)) {
                tags.push(Value::from(TAG));
            }
        }
        _ => {
            document.insert("tags".into(), Value::Array(vec![Value::from(TAG)]));
        }
    }
}

/// The action line: `{"create":{"_id":…,"_index":…}}`, written directly.
fn write_action(out: &mut Vec<u8>, index: &str, id: &str) {
    out.extend_from_slice(br#"{"create":{"_id":"#);
    json_string(out, id);
    out.extend_from_slice(br#","_index":"#);
    json_string(out, index);
    out.extend_from_slice(b"}}\n");
}

/// `text` as a JSON string.
fn json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("a string serializes into a Vec");
}

/// Encode `event` as a `create` action and its document: sluice's mapping
/// with `data_stream.*` filled in (`ingest: sluice`), or what Elastic Agent
/// sends (`ingest: elastic`).
pub fn encode(event: &mut Event, settings: &Settings) -> Result<Encoded, serde_json::Error> {
    let dataset = event.dataset().to_owned();
    let index = match settings.mode {
        Mode::DataStream => {
            let ds = &settings.data_stream;
            format!("{}-{dataset}-{}", ds.kind, ds.namespace)
        }
        // Validation makes `index` required in this mode.
        Mode::Index => settings
            .index
            .as_deref()
            .unwrap_or("{dataset}")
            .replace("{dataset}", &dataset)
            .replace("{stream}", dataset_parts(&dataset).1),
    };
    let id = id_of(&event.value, &settings.id_field);
    // The document is serialized before the action line when its `_id` is
    // derived from it or it is not the event's value; else it is written
    // straight into the payload.
    let early = match settings.ingest {
        Ingest::Elastic => Some(serde_json::to_vec(&agent_document(event, &dataset, settings)?)?),
        Ingest::Sluice => {
            if let Value::Object(map) = &mut event.value {
                if settings.mode == Mode::DataStream {
                    map.insert(
                        "data_stream".into(),
                        Value::Object(data_stream_fields(settings, &dataset)),
                    );
                }
                event_original(map, settings.event_original);
            }
            id.is_none().then(|| {
                let mut document = Vec::new();
                event.write_json(&mut document);
                document
            })
        }
    };
    let id =
        id.unwrap_or_else(|| derived_id(event, &dataset, early.as_deref().unwrap_or_default()));
    // The document holds the raw item escaped in `event.original` beside
    // the fields mapped from it: about twice its size (a vector that grows
    // copies itself; this one rarely does).
    let estimate = match (&early, &event.meta.raw) {
        (Some(document), _) => document.len() + 256,
        (None, Some(raw)) => raw.len() * 2 + 1024,
        (None, None) => 2048,
    };
    let mut payload = Vec::with_capacity(estimate);
    write_action(&mut payload, &index, &id);
    let start = payload.len();
    match early {
        Some(document) => payload.extend_from_slice(&document),
        None => event.write_json(&mut payload),
    }
    payload.push(b'\n');
    let payload = Bytes::from(payload);
    Ok(Encoded {
        document: payload.slice(start..payload.len() - 1),
        payload,
        destination: Arc::from(index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ElasticsearchSinkConfig;

    fn settings(yaml: &str) -> Settings {
        let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(yaml).expect("config");
        config.validate(std::path::Path::new("/")).expect("valid")
    }

    fn event() -> Event {
        let mut event = Event::from_json(bytes::Bytes::from_static(br#"{"@timestamp":"2026-11-20T08:14:03.250Z","onepassword":{"uuid":"56YE2TYN2VFYRLNSHKPW5NVT5E"}}"#)).expect("json");
        event.meta.dataset = Some("1password.signin_attempts".into());
        event
    }

    fn tags_after(json: serde_json::Value, what: EventOriginal) -> serde_json::Value {
        let Value::Object(mut map) = Value::from(json) else { panic!("object") };
        event_original(&mut map, what);
        serde_json::to_value(Value::Object(map)).expect("json")
    }

    #[test]
    fn event_original_is_tagged_once_kept_or_dropped() {
        let kept =
            tags_after(serde_json::json!({"event": {"original": "{}"}}), EventOriginal::Keep);
        assert_eq!(kept["tags"], serde_json::json!(["preserve_original_event"]));
        // A pipeline_error document already carries the tag: not twice.
        let failed =
            serde_json::json!({"event": {"original": "{}"}, "tags": ["preserve_original_event"]});
        assert_eq!(
            tags_after(failed, EventOriginal::Keep)["tags"],
            serde_json::json!(["preserve_original_event"])
        );
        let other = serde_json::json!({"event": {"original": "{}"}, "tags": ["mine"]});
        assert_eq!(
            tags_after(other, EventOriginal::Keep)["tags"],
            serde_json::json!(["mine", "preserve_original_event"])
        );
        let none = tags_after(serde_json::json!({"event": {"kind": "event"}}), EventOriginal::Keep);
        assert!(none.get("tags").is_none(), "nothing to keep, nothing tagged");
        let dropped =
            tags_after(serde_json::json!({"event": {"original": "{}"}}), EventOriginal::Drop);
        assert_eq!(dropped, serde_json::json!({"event": {}}));
    }

    #[test]
    fn data_stream_items_are_creates_with_the_uuid_as_id() {
        let settings = settings("endpoints: [http://es:9200]\n");
        let mut event = event();
        let encoded = encode(&mut event, &settings).expect("encodes");
        assert_eq!(&*encoded.destination, "logs-1password.signin_attempts-default");
        let text = String::from_utf8(encoded.payload.to_vec()).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                r#"{"create":{"_id":"56YE2TYN2VFYRLNSHKPW5NVT5E","_index":"logs-1password.signin_attempts-default"}}"#
            )
        );
        let line = lines.next().expect("doc");
        assert_eq!(
            line.as_bytes(),
            &encoded.document[..],
            "the dead letter gets the document line"
        );
        let doc: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(
            doc["data_stream"],
            serde_json::json!({"type": "logs", "dataset": "1password.signin_attempts", "namespace": "default"})
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn index_mode_names_the_index_from_a_template() {
        let settings = settings(
            "endpoints: [http://es:9200]\nmode: index\nindex: 1password-{stream}\nid_field: missing.field\n",
        );
        let mut event = event();
        let encoded = encode(&mut event, &settings).expect("encodes");
        assert_eq!(&*encoded.destination, "1password-signin_attempts");
        assert!(
            !String::from_utf8(encoded.payload.to_vec()).expect("utf-8").contains("data_stream")
        );
    }

    #[test]
    fn elastic_ingest_sends_what_elastic_agent_sends() {
        let settings = settings("endpoints: [http://es:9200]\ningest: elastic\n");
        let raw = br#"{"uuid":"56YE2TYN2VFYRLNSHKPW5NVT5E","timestamp":"2026-11-20T08:14:03.25Z"}"#;
        let mut event = Event::from_json(bytes::Bytes::from_static(raw)).expect("json");
        event.meta.raw = Some(bytes::Bytes::from_static(raw));
        event.meta.dataset = Some("1password.signin_attempts".into());
        let encoded = encode(&mut event, &settings).expect("encodes");
        assert_eq!(action_id(&encoded), "56YE2TYN2VFYRLNSHKPW5NVT5E");
        let doc: serde_json::Value = serde_json::from_slice(&encoded.document).expect("json");
        assert_eq!(doc["message"].as_str().map(str::as_bytes), Some(&raw[..]));
        assert_eq!(doc["tags"], serde_json::json!(["forwarded", "1password-signin_attempts"]));
        assert_eq!(doc["event"], serde_json::json!({"dataset": "1password.signin_attempts"}));
        assert_eq!(doc["data_stream"]["dataset"], "1password.signin_attempts");
        let at = doc["@timestamp"].as_str().expect("a read time");
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
        assert!(doc.get("onepassword").is_none(), "the integration's pipeline maps it");
    }

    fn action_id(encoded: &Encoded) -> String {
        let text = String::from_utf8(encoded.payload.to_vec()).expect("utf-8");
        let action: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("action")).expect("json");
        action["create"]["_id"].as_str().expect("an _id").to_owned()
    }

    #[test]
    fn an_event_without_the_id_field_gets_a_stable_id_from_its_raw_original() {
        let settings = settings("endpoints: [http://es:9200]\n");
        let raw = br#"{"uuid":"X","timestamp":"2026-01-01T00:00:00Z","n":1e400}"#;
        let failed = |at: &str| {
            let mut event = Event::new(vrl::value::Value::from(serde_json::json!({
                "@timestamp": at, "event": {"kind": "pipeline_error"}
            })));
            event.meta.raw = Some(bytes::Bytes::from_static(raw));
            event.meta.dataset = Some("1password.audit_events".into());
            event
        };
        // A replay maps the same raw item again at another time.
        let first = encode(&mut failed("2026-11-30T10:00:00.000Z"), &settings).expect("encodes");
        let replay = encode(&mut failed("2026-11-30T10:05:00.000Z"), &settings).expect("encodes");
        assert_eq!(action_id(&first), action_id(&replay));
        assert!(action_id(&first).starts_with("sluice-"), "{}", action_id(&first));
        let mut other = failed("2026-11-30T10:00:00.000Z");
        other.meta.raw = Some(bytes::Bytes::from_static(b"{\"uuid\":\"Y\"}"));
        assert_ne!(action_id(&encode(&mut other, &settings).expect("encodes")), action_id(&first));
        assert_eq!(
            action_id(&encode(&mut event(), &settings).expect("encodes")),
            "56YE2TYN2VFYRLNSHKPW5NVT5E"
        );
    }

    #[test]
    fn any_dataset_names_its_data_stream_index_and_tag() {
        let mut event = event();
        event.meta.dataset = Some("okta.system".into());
        let streams = settings("endpoints: [http://es:9200]\n");
        assert_eq!(
            &*encode(&mut event.clone(), &streams).expect("ok").destination,
            "logs-okta.system-default"
        );
        let template =
            settings("endpoints: [http://es:9200]\nmode: index\nindex: 'siem-{dataset}'\n");
        assert_eq!(
            &*encode(&mut event.clone(), &template).expect("ok").destination,
            "siem-okta.system"
        );
        let agent = settings("endpoints: [http://es:9200]\ningest: elastic\n");
        let encoded = encode(&mut event, &agent).expect("ok");
        let doc: serde_json::Value = serde_json::from_slice(&encoded.document).expect("json");
        assert_eq!(doc["tags"], serde_json::json!(["forwarded", "okta-system"]));
        // Without a dataset in the metadata, the document's `event.dataset`,
        // else Elastic's `generic`.
        let mut named =
            Event::new(Value::from(serde_json::json!({"event": {"dataset": "acme.audit"}})));
        assert_eq!(
            &*encode(&mut named, &streams).expect("ok").destination,
            "logs-acme.audit-default"
        );
        let mut nothing = Event::new(Value::from(serde_json::json!({"a": 1})));
        assert_eq!(
            &*encode(&mut nothing, &streams).expect("ok").destination,
            "logs-generic-default"
        );
    }
}
