//! Ingest pipelines as far as a shipper sees them: `PUT`/`GET
//! /_ingest/pipeline/<id>`, and which pipelines a document would pass
//! through (the request's `pipeline`, `_none`, or the matching index
//! template's `default_pipeline`, then its `final_pipeline`). The emulator
//! records the runs; it does not execute processors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{EsState, Store, es_error, unauthorized};

/// Whether `name` matches an index pattern with `*` wildcards.
fn matches(pattern: &str, name: &str) -> bool {
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

/// An index setting of a template, nested or flat.
fn setting<'a>(template: &'a Value, key: &str) -> Option<&'a str> {
    let settings = &template["template"]["settings"];
    settings["index"][key].as_str().or_else(|| settings[format!("index.{key}")].as_str())
}

/// The template that applies to `index`: the matching one of highest priority.
fn template_for<'a>(store: &'a Store, index: &str) -> Option<&'a Value> {
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

/// The pipelines a document for `index` passes through, given the
/// request's `pipeline`; `Err(id)` names one that does not exist.
pub(crate) fn pipelines_for(
    store: &Store,
    index: &str,
    requested: Option<&str>,
) -> Result<Vec<String>, String> {
    let template = template_for(store, index);
    let first = match requested {
        Some("_none") => None,
        Some(id) => Some(id),
        None => template.and_then(|t| setting(t, "default_pipeline")),
    };
    let last = template.and_then(|t| setting(t, "final_pipeline"));
    let ids: Vec<String> = first.into_iter().chain(last).map(str::to_owned).collect();
    match ids.iter().find(|id| !store.pipelines.contains_key(*id)) {
        Some(missing) => Err(missing.clone()),
        None => Ok(ids),
    }
}

pub(crate) async fn put_pipeline(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_ingest/pipeline");
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(pipeline) if pipeline.get("processors").is_some_and(Value::is_array) => {
            state.lock().pipelines.insert(id, pipeline);
            axum::Json(json!({"acknowledged": true})).into_response()
        }
        Ok(_) => es_error(
            StatusCode::BAD_REQUEST,
            "parse_exception",
            "[processors] required property is missing",
        ),
        Err(err) => {
            es_error(StatusCode::BAD_REQUEST, "x_content_parse_exception", &err.to_string())
        }
    }
}

pub(crate) async fn get_pipeline(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_ingest/pipeline");
    }
    match state.lock().pipelines.get(&id) {
        Some(pipeline) => axum::Json(json!({ id: pipeline })).into_response(),
        // Elasticsearch answers an unknown pipeline with 404 and an empty object.
        None => (StatusCode::NOT_FOUND, axum::Json(json!({}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_patterns_match_as_elasticsearch_globs() {
        assert!(matches("logs-1password.audit_events-*", "logs-1password.audit_events-default"));
        assert!(matches("logs-*-*", "logs-1password.audit_events-default"));
        assert!(!matches("logs-*-*", "logs-1password"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exact2"));
    }

    #[test]
    fn the_request_pipeline_wins_and_none_skips_only_the_default() {
        let mut store = Store::default();
        store.templates.insert("t".into(), json!({"index_patterns": ["logs-1password.*-*"], "priority": 200,
            "template": {"settings": {"index": {"default_pipeline": "op", "final_pipeline": "final"}}}}));
        store.pipelines.insert("op".into(), json!({"processors": []}));
        store.pipelines.insert("final".into(), json!({"processors": []}));
        let index = "logs-1password.audit_events-default";
        assert_eq!(pipelines_for(&store, index, None), Ok(vec!["op".into(), "final".into()]));
        assert_eq!(pipelines_for(&store, index, Some("_none")), Ok(vec!["final".into()]));
        assert_eq!(pipelines_for(&store, index, Some("x")), Err("x".into()));
        assert_eq!(pipelines_for(&store, "other", None), Ok(vec![]));
    }
}
