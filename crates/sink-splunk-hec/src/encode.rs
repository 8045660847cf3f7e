//! One event → one HEC envelope: `time` (the event's timestamp as
//! fixed-point epoch seconds, the fraction kept, never an exponent), `host`,
//! `source`, `sourcetype` and `index` from their templates, and `event`: the
//! raw 1Password item byte for byte (`encoding: raw`) or the document as it
//! reaches the sink (`encoding: ecs`). Envelopes are concatenated into a
//! request body with nothing between them, as HEC expects.

use std::sync::Arc;

use bytes::Bytes;
use chrono::DateTime;
use sluice_core::Event;
use sluice_core::event::dataset_parts;
use sluice_core::sink::{EncodeError, Encoded};
use vrl::value::Value;

use crate::config::{Encoding, Settings};

/// `"2026-11-20T08:15:41.5+01:00"` → `1795158941.5`; `None` if it is not RFC 3339.
pub fn epoch_seconds(timestamp: &str) -> Option<String> {
    let at = DateTime::parse_from_rfc3339(timestamp).ok()?;
    let seconds = at.timestamp();
    if seconds < 0 {
        return None;
    }
    let nanos = at.timestamp_subsec_nanos();
    if nanos == 0 {
        return Some(seconds.to_string());
    }
    let fraction = format!("{nanos:09}");
    Some(format!("{seconds}.{}", fraction.trim_end_matches('0')))
}

fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(key),
        _ => None,
    }
}

fn timestamp_of(event: &Event, encoding: Encoding) -> Option<String> {
    let keys: &[&str] = match encoding {
        Encoding::Raw => &["timestamp", "@timestamp"],
        Encoding::Ecs => &["@timestamp", "timestamp"],
    };
    keys.iter().find_map(|key| match field(&event.value, key)? {
        text @ (Value::Bytes(_) | Value::String(_)) => epoch_seconds(&text.to_string_lossy()),
        Value::Timestamp(at) => epoch_seconds(&at.to_rfc3339()),
        _ => None,
    })
}

fn push_string(out: &mut Vec<u8>, key: &str, value: &str) -> Result<(), EncodeError> {
    out.extend_from_slice(b"\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(&mut *out, value)?;
    out.push(b',');
    Ok(())
}

/// Encode `event` as one envelope.
pub fn encode(event: &Event, settings: &Settings) -> Result<Encoded, EncodeError> {
    let dataset = event.dataset();
    let (package, stream) = dataset_parts(dataset);
    let fill = |template: &str| {
        template
            .replace("{dataset}", dataset)
            .replace("{package}", package)
            .replace("{stream}", stream)
    };
    let sourcetype = fill(&settings.sourcetype);
    let mut out = Vec::with_capacity(event.meta.raw.as_ref().map_or(512, |r| r.len() + 160));
    out.push(b'{');
    if let Some(time) = timestamp_of(event, settings.encoding) {
        out.extend_from_slice(b"\"time\":");
        out.extend_from_slice(time.as_bytes());
        out.push(b',');
    }
    if let Some(host) = &settings.host {
        push_string(&mut out, "host", host)?;
    }
    if let Some(source) = &settings.source {
        push_string(&mut out, "source", &fill(source))?;
    }
    push_string(&mut out, "sourcetype", &sourcetype)?;
    if let Some(index) = &settings.index {
        push_string(&mut out, "index", &fill(index))?;
    }
    out.extend_from_slice(b"\"event\":");
    match (settings.encoding, &event.meta.raw) {
        (Encoding::Raw, Some(raw)) => out.extend_from_slice(raw.trim_ascii()),
        _ => event.write_json(&mut out),
    }
    out.push(b'}');
    let payload = Bytes::from(out);
    Ok(Encoded { document: payload.clone(), payload, destination: Arc::from(sourcetype) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplunkHecSinkConfig;

    fn settings(extra: &str) -> Settings {
        let yaml = format!("endpoint: https://splunk:8088\ntoken: t\n{extra}");
        let config: SplunkHecSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
        config.validate(std::path::Path::new("/")).expect("valid")
    }

    const RAW: &str = r#"{"uuid":"56YE2TYN2VFYRLNSHKPW5NVT5E","session_uuid":"A","timestamp":"2026-11-20T08:15:41.123456789+01:00","category":"success","new_v2_field":{"x":[1,2.50,"é"]}}"#;

    fn event() -> Event {
        let mut event = Event::from_json(Bytes::from_static(RAW.as_bytes())).expect("json");
        event.meta.dataset = Some("1password.signin_attempts".into());
        event
    }

    #[test]
    fn raw_items_go_byte_for_byte_with_their_time_and_the_add_ons_sourcetype() {
        let encoded =
            encode(&event(), &settings("index: '1password'\nsource: 'sluice:{stream}'\n"))
                .expect("encodes");
        let text = std::str::from_utf8(&encoded.payload).expect("utf-8");
        assert_eq!(
            text,
            format!(
                r#"{{"time":1795158941.123456789,"source":"sluice:signin_attempts","sourcetype":"1password:insights:signin_attempts","index":"1password","event":{RAW}}}"#
            )
        );
        let envelope: serde_json::Value = serde_json::from_str(text).expect("one JSON object");
        assert_eq!(envelope["event"]["new_v2_field"]["x"][1], 2.5);
        assert_eq!(&*encoded.destination, "1password:insights:signin_attempts");
    }

    #[test]
    fn epoch_seconds_are_fixed_point() {
        assert_eq!(epoch_seconds("2026-11-20T07:15:41Z").as_deref(), Some("1795158941"));
        assert_eq!(epoch_seconds("2026-11-20T07:15:41.500Z").as_deref(), Some("1795158941.5"));
        assert_eq!(
            epoch_seconds("2026-11-20T07:15:41.000001Z").as_deref(),
            Some("1795158941.000001")
        );
        assert_eq!(epoch_seconds("yesterday"), None);
    }

    #[test]
    fn ecs_sends_the_document() {
        let mut event = event();
        event.value = Value::from(
            serde_json::json!({"@timestamp": "2026-11-20T07:15:41.250Z", "event": {"kind": "event"}}),
        );
        let encoded = encode(&event, &settings("encoding: ecs\n")).expect("encodes");
        assert_eq!(
            std::str::from_utf8(&encoded.payload).expect("utf-8"),
            r#"{"time":1795158941.25,"sourcetype":"1password:ecs:signin_attempts","event":{"@timestamp":"2026-11-20T07:15:41.250Z","event":{"kind":"event"}}}"#
        );
    }

    #[test]
    fn any_dataset_fills_the_templates_and_none_is_generic() {
        let mut event = event();
        event.meta.dataset = Some("okta.system".into());
        let templates = settings("encoding: ecs\nindex: 'idx-{package}'\nsource: '{dataset}'\n");
        let encoded = encode(&event, &templates).expect("encodes");
        let envelope: serde_json::Value = serde_json::from_slice(&encoded.payload).expect("json");
        assert_eq!(
            (&envelope["sourcetype"], &envelope["index"], &envelope["source"]),
            (&"okta:ecs:system".into(), &"idx-okta".into(), &"okta.system".into())
        );
        event.meta.dataset = None;
        assert_eq!(
            &*encode(&event, &settings("")).expect("encodes").destination,
            "generic:insights:generic"
        );
    }
}
