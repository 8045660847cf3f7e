//! Index and component templates as far as a shipper sees them: `PUT`/`GET
//! /_index_template/<name>`, `PUT`/`GET /_component_template/<name>`,
//! `POST /_index_template/_simulate_index/<index>`, and the settings an
//! index gets: those of its matching template of highest priority, composed
//! as Elasticsearch composes them (each component template of `composed_of`
//! in order, then the template's own `template`, the later winning: the
//! index templates reference,
//! https://www.elastic.co/guide/en/elasticsearch/reference/current/index-templates.html).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{EsState, Store, es_error, unauthorized};

/// Whether `name` matches an index pattern with `*` wildcards.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (n, part) in parts.iter().enumerate() {
        if n + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// A PUT body: JSON that `valid` accepts, or Elasticsearch's 400.
fn parse(body: &[u8], valid: impl Fn(&Value) -> bool, missing: &str) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(template) if valid(&template) => Ok(template),
        Ok(_) => Err(es_error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            &format!("Validation Failed: 1: {missing};"),
        )),
        Err(err) => {
            Err(es_error(StatusCode::BAD_REQUEST, "x_content_parse_exception", &err.to_string()))
        }
    }
}

fn acknowledged() -> Response {
    axum::Json(json!({"acknowledged": true})).into_response()
}

/// A named template, or Elasticsearch's 404 for it.
fn found(
    kind: &str,
    name: &str,
    template: Option<Value>,
    wrap: impl FnOnce(Value) -> Value,
) -> Response {
    match template {
        Some(template) => axum::Json(wrap(template)).into_response(),
        None => es_error(
            StatusCode::NOT_FOUND,
            "resource_not_found_exception",
            &format!("{kind} matching [{name}] not found"),
        ),
    }
}

/// `settings` with flat keys (`index.default_pipeline`) nested, merged into `into`.
fn merge_settings(into: &mut Map<String, Value>, settings: &Value) {
    let Some(settings) = settings.as_object() else { return };
    for (key, value) in settings {
        let mut at = &mut *into;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                match (at.get_mut(part), value) {
                    (Some(Value::Object(existing)), Value::Object(_)) => {
                        merge_settings(existing, value)
                    }
                    _ => {
                        let mut nested = Map::new();
                        if value.is_object() {
                            merge_settings(&mut nested, value);
                            at.insert(part.to_owned(), Value::Object(nested));
                        } else {
                            at.insert(part.to_owned(), value.clone());
                        }
                    }
                }
                break;
            }
            let next = at.entry(part).or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            at = next.as_object_mut().expect("made an object");
        }
    }
}

/// The settings an index created from `template` gets, nested.
pub(crate) fn resolved_settings(store: &Store, template: &Value) -> Map<String, Value> {
    let mut settings = Map::new();
    for name in template["composed_of"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Some(component) = store.component_templates.get(name) {
            merge_settings(&mut settings, &component["template"]["settings"]);
        }
    }
    merge_settings(&mut settings, &template["template"]["settings"]);
    settings
}

/// An index setting of a template after composition.
pub(crate) fn setting(store: &Store, template: &Value, key: &str) -> Option<String> {
    resolved_settings(store, template)
        .get("index")
        .and_then(|index| index.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The template that applies to `index`: the matching one of highest priority.
pub(crate) fn template_for<'a>(store: &'a Store, index: &str) -> Option<&'a Value> {
    store
        .templates
        .values()
        .filter(|t| {
            t["index_patterns"]
                .as_array()
                .is_some_and(|ps| ps.iter().filter_map(Value::as_str).any(|p| matches(p, index)))
        })
        .max_by_key(|t| t["priority"].as_u64().unwrap_or(0))
}

pub(crate) async fn put_template(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_index_template");
    }
    match parse(&body, |t| t.get("index_patterns").is_some(), "index patterns are missing") {
        Ok(template) => {
            state.lock().templates.insert(name, template);
            acknowledged()
        }
        Err(response) => response,
    }
}

pub(crate) async fn get_template(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_index_template");
    }
    let template = state.lock().templates.get(&name).cloned();
    found(
        "index template",
        &name,
        template,
        |t| json!({"index_templates": [{"name": name, "index_template": t}]}),
    )
}

pub(crate) async fn put_component_template(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_component_template");
    }
    let valid = |t: &Value| t.get("template").is_some_and(Value::is_object);
    match parse(&body, valid, "a component template requires a [template]") {
        Ok(template) => {
            state.lock().component_templates.insert(name, template);
            acknowledged()
        }
        Err(response) => response,
    }
}

pub(crate) async fn get_component_template(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_component_template");
    }
    let template = state.lock().component_templates.get(&name).cloned();
    found(
        "component template",
        &name,
        template,
        |t| json!({"component_templates": [{"name": name, "component_template": t}]}),
    )
}

/// `POST /_index_template/_simulate_index/<index>`: the settings an index of
/// that name would get. (Elasticsearch requires `manage_index_templates`;
/// the emulator has no privileges. Its answer for a name no template
/// matches is not verified: here an empty `template`.)
pub(crate) async fn simulate_index(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(index): Path<String>,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_index_template/_simulate_index");
    }
    let store = state.lock();
    let settings =
        template_for(&store, &index).map(|t| resolved_settings(&store, t)).unwrap_or_default();
    axum::Json(json!({"template": {"settings": settings, "mappings": {}, "aliases": {}}, "overlapping": []}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_compose_from_component_templates_in_order_then_the_templates_own() {
        let mut store = Store::default();
        store.component_templates.insert("a".into(), json!({"template": {"settings": {"index": {"default_pipeline": "from-a", "codec": "x"}}}}));
        store.component_templates.insert(
            "b".into(),
            json!({"template": {"settings": {"index.default_pipeline": "from-b"}}}),
        );
        let template = json!({"index_patterns": ["logs-*-*"], "composed_of": ["a", "missing@custom", "b"],
            "template": {"settings": {"index": {"final_pipeline": "own"}}}});
        let settings = resolved_settings(&store, &template);
        assert_eq!(
            settings["index"],
            json!({"default_pipeline": "from-b", "codec": "x", "final_pipeline": "own"})
        );
    }
}
