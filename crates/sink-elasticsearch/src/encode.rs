//! One event → one bulk item: a `create` action naming its data stream (or
//! index) and `_id`, and the document with `data_stream.*` filled in.
//! `create` plus a stable `_id` make replays harmless: Elasticsearch answers
//! 409 for a document it already has.

use sluice_core::Event;
use vrl::value::{ObjectMap, Value};

use crate::config::{Mode, Settings};

/// An encoded item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The data stream or index.
    pub index: String,
    /// The `_id`, when the event has the id field.
    pub id: Option<String>,
    /// The action line and the document line, each ending in `\n`.
    pub bytes: Vec<u8>,
}

/// The stream name of an event: its metadata, else its `event.dataset`.
fn stream_of(event: &Event) -> String {
    if let Some(stream) = event.meta.stream {
        return stream.as_str().to_owned();
    }
    let path = ["event".to_owned(), "dataset".to_owned()];
    let dataset = id_of(&event.value, &path).unwrap_or_default();
    dataset.strip_prefix("1password.").filter(|s| !s.is_empty()).unwrap_or("unknown").to_owned()
}

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

/// Encode `event` (its value gains `data_stream.*` in data stream mode).
pub fn encode(event: &mut Event, settings: &Settings) -> Result<Encoded, serde_json::Error> {
    let stream = stream_of(event);
    let index = match settings.mode {
        Mode::DataStream => {
            let dataset = format!("1password.{stream}");
            let ds = &settings.data_stream;
            if let Value::Object(map) = &mut event.value {
                let mut fields = ObjectMap::new();
                fields.insert("type".into(), Value::from(ds.kind.as_str()));
                fields.insert("dataset".into(), Value::from(dataset.as_str()));
                fields.insert("namespace".into(), Value::from(ds.namespace.as_str()));
                map.insert("data_stream".into(), Value::Object(fields));
            }
            format!("{}-{dataset}-{}", ds.kind, ds.namespace)
        }
        Mode::Index => {
            settings.index.as_deref().unwrap_or("1password-{stream}").replace("{stream}", &stream)
        }
    };
    let id = id_of(&event.value, &settings.id_field);
    let mut action = serde_json::Map::new();
    action.insert("_index".into(), serde_json::Value::from(index.as_str()));
    if let Some(id) = &id {
        action.insert("_id".into(), serde_json::Value::from(id.as_str()));
    }
    if let Some(pipeline) = &settings.pipeline {
        action.insert("pipeline".into(), serde_json::Value::from(pipeline.as_str()));
    }
    let mut bytes = serde_json::to_vec(&serde_json::json!({ "create": action }))?;
    bytes.push(b'\n');
    serde_json::to_writer(&mut bytes, &event.value)?;
    bytes.push(b'\n');
    Ok(Encoded { index, id, bytes })
}

#[cfg(test)]
mod tests {
    use sluice_core::Stream;

    use super::*;
    use crate::ElasticsearchSinkConfig;

    fn settings(yaml: &str) -> Settings {
        let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(yaml).expect("config");
        config.validate(std::path::Path::new("/")).expect("valid").settings().clone()
    }

    fn event() -> Event {
        let mut event = Event::from_json(bytes::Bytes::from_static(br#"{"@timestamp":"2026-11-20T08:14:03.250Z","onepassword":{"uuid":"56YE2TYN2VFYRLNSHKPW5NVT5E"}}"#)).expect("json");
        event.meta.stream = Some(Stream::SigninAttempts);
        event
    }

    #[test]
    fn data_stream_items_are_creates_with_the_uuid_as_id() {
        let settings = settings("endpoints: [http://es:9200]\n");
        let mut event = event();
        let encoded = encode(&mut event, &settings).expect("encodes");
        assert_eq!(encoded.index, "logs-1password.signin_attempts-default");
        assert_eq!(encoded.id.as_deref(), Some("56YE2TYN2VFYRLNSHKPW5NVT5E"));
        let text = String::from_utf8(encoded.bytes).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                r#"{"create":{"_id":"56YE2TYN2VFYRLNSHKPW5NVT5E","_index":"logs-1password.signin_attempts-default"}}"#
            )
        );
        let doc: serde_json::Value =
            serde_json::from_str(lines.next().expect("doc")).expect("json");
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
        assert_eq!(encoded.index, "1password-signin_attempts");
        assert_eq!(encoded.id, None);
        assert!(!String::from_utf8(encoded.bytes).expect("utf-8").contains("data_stream"));
    }
}
