//! Templates and ingest pipelines as far as a shipper sees them: `PUT`/`GET
//! /_ingest/pipeline/<ids>` (comma lists and `*`), `PUT`/`GET
//! /_component_template/<name>`, `POST /_index_template/_simulate_index/<index>`,
//! and which pipelines a document passes through: the request's `pipeline`
//! (`_none`: none) or else the index's `default_pipeline`, then its
//! `final_pipeline`, where an index's settings are those of its matching
//! template of highest priority composed as Elasticsearch composes them
//! (each component template of `composed_of` in order, then the template's
//! own `template`, the later winning: the index templates reference,
//! https://www.elastic.co/guide/en/elasticsearch/reference/current/index-templates.html).
//! `processors.rs` runs them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::templates::{matches, setting, template_for};
use super::{EsState, Store, es_error, unauthorized};

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
        Some(id) => Some(id.to_owned()),
        None => template.and_then(|t| setting(store, t, "default_pipeline")),
    };
    let last = template.and_then(|t| setting(store, t, "final_pipeline"));
    let ids: Vec<String> = first.into_iter().chain(last).collect();
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
    if state.lock().pipeline_writes_forbidden {
        return es_error(
            StatusCode::FORBIDDEN,
            "security_exception",
            "action [cluster:admin/ingest/pipeline/put] is unauthorized for API key id [VuaCfGcBCdbkQm-e5aOx] of user [sluice], this action is granted by the cluster privileges [manage_ingest_pipelines,manage_pipeline,manage,all]",
        );
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
    let store = state.lock();
    let found: Map<String, Value> = store
        .pipelines
        .iter()
        .filter(|(name, _)| id.split(',').any(|pattern| matches(pattern, name)))
        .map(|(name, pipeline)| (name.clone(), pipeline.clone()))
        .collect();
    if found.is_empty() {
        // Elasticsearch answers an unknown pipeline with 404 and an empty object.
        return (StatusCode::NOT_FOUND, axum::Json(json!({}))).into_response();
    }
    axum::Json(Value::Object(found)).into_response()
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
