//! A document's fields at dotted paths, and the ingest processors that only
//! move, parse or edit fields (`rename`, `json`, `append`, `remove`,
//! `date`), with Elasticsearch's error texts (see `processors.rs`).

use serde_json::{Map, Value};

pub(super) fn rename(
    doc: &mut Value,
    field: &str,
    target: &str,
    ignore_missing: bool,
) -> Result<(), String> {
    let Some(value) = get(doc, field).cloned() else {
        return if ignore_missing { Ok(()) } else { Err(format!("field [{field}] doesn't exist")) };
    };
    if get(doc, target).is_some() {
        return Err(format!("field [{target}] already exists"));
    }
    remove(doc, field);
    set(doc, target, value)
}

pub(super) fn json(doc: &mut Value, field: &str, target: &str) -> Result<(), String> {
    let text = match get(doc, field) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(format!(
                "field [{field}] of type [{}] cannot be cast to [java.lang.String]",
                kind_of(other)
            ));
        }
        None => return Err(format!("field [{field}] not present as part of path [{field}]")),
    };
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|e| format!("com.fasterxml.jackson.core.JsonParseException: {e}"))?;
    set(doc, target, parsed)
}

pub(super) fn append(
    doc: &mut Value,
    field: &str,
    values: Value,
    duplicates: bool,
) -> Result<(), String> {
    let values = match values {
        Value::Array(values) => values,
        one => vec![one],
    };
    let mut list = match get(doc, field).cloned() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(one) => vec![one],
    };
    for value in values {
        if duplicates || !list.contains(&value) {
            list.push(value);
        }
    }
    set(doc, field, Value::Array(list))
}

pub(super) fn remove_fields(
    doc: &mut Value,
    fields: &Value,
    ignore_missing: bool,
) -> Result<(), String> {
    let fields: Vec<String> = match fields {
        Value::Array(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    };
    for field in fields {
        if remove(doc, &field).is_none() && !ignore_missing {
            return Err(format!("field [{field}] doesn't exist"));
        }
    }
    Ok(())
}

pub(super) fn date(doc: &mut Value, field: &str, config: &Value) -> Result<(), String> {
    let target = config["target_field"].as_str().unwrap_or("@timestamp");
    let formats = config["formats"].as_array().cloned().unwrap_or_default();
    if formats.iter().any(|f| f.as_str() != Some("ISO8601")) {
        return Err(format!("date formats other than ISO8601 are not modelled: {formats:?}"));
    }
    let text = get(doc, field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("field [{field}] not present as part of path [{field}]"))?;
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| format!("unable to parse date [{text}]"))?;
    // The processor's default output_format, yyyy-MM-dd'T'HH:mm:ss.SSSXXX.
    let out = parsed.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    set(doc, target, Value::String(out.to_string()))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "java.util.HashMap",
        Value::Array(_) => "java.util.ArrayList",
        Value::Number(_) => "java.lang.Integer",
        Value::Bool(_) => "java.lang.Boolean",
        _ => "null",
    }
}

/// The value at a dotted path (`@timestamp` is one key).
pub(crate) fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |at, key| at.as_object()?.get(key))
}

pub(super) fn set(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut at = doc;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        let Some(map) = at.as_object_mut() else {
            return Err(format!("cannot set [{path}]: a parent is not an object"));
        };
        if keys.peek().is_none() {
            map.insert(key.to_owned(), value);
            return Ok(());
        }
        let next = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if next.is_null() {
            *next = Value::Object(Map::new());
        }
        at = next;
    }
    Err(format!("cannot set an empty path [{path}]"))
}

pub(super) fn remove(doc: &mut Value, path: &str) -> Option<Value> {
    match path.rsplit_once('.') {
        None => doc.as_object_mut()?.remove(path),
        Some((parent, key)) => {
            let parent = path_mut(doc, parent)?;
            parent.as_object_mut()?.remove(key)
        }
    }
}

fn path_mut<'a>(doc: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(doc, |at, key| at.as_object_mut()?.get_mut(key))
}
