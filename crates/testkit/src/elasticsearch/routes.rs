//! The emulator's HTTP routes: Elasticsearch's own (`/`, `_bulk`, ingest,
//! templates, security, cluster health) and the `_testkit` controls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{EsState, Latency, bulk, es_error, ingest, security, templates, unauthorized};

pub(super) fn router(state: Arc<EsState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/_cluster/health", get(health))
        .route("/_index_template/{name}", get(templates::get_template).put(templates::put_template))
        .route("/_index_template/_simulate_index/{index}", post(templates::simulate_index))
        .route(
            "/_component_template/{name}",
            get(templates::get_component_template).put(templates::put_component_template),
        )
        .route("/_ingest/pipeline/{id}", get(ingest::get_pipeline).put(ingest::put_pipeline))
        .route(
            "/_security/user/_has_privileges",
            get(security::has_privileges).post(security::has_privileges),
        )
        .route("/_bulk", post(bulk::bulk))
        .route("/{index}/_bulk", post(bulk::bulk_in_index))
        .route("/_testkit/stats", get(stats))
        .route("/_testkit/ids", get(ids))
        .route("/_testkit/fail_requests", axum::routing::put(set_request_failure))
        .route("/_testkit/latency", axum::routing::put(set_latency))
        .fallback(|| async {
            es_error(
                StatusCode::NOT_FOUND,
                "resource_not_found_exception",
                "no handler found for this request",
            )
        })
        .with_state(state)
}

/// Counters for scripts (not an Elasticsearch API).
async fn stats(State(state): State<Arc<EsState>>) -> Response {
    let store = state.lock();
    let documents: usize =
        store.indices.values().map(BTreeMap::len).sum::<usize>() + state.seen.documents();
    axum::Json(json!({"documents": documents, "conflicts": store.conflicts, "bulk_requests": state.bulk_requests.load(Ordering::Relaxed)}))
        .into_response()
}

/// Every stored `_id` by index, and the `onepassword.uuid` of each document
/// (for scripts counting lost and doubled events; not an Elasticsearch API).
async fn ids(State(state): State<Arc<EsState>>) -> Response {
    let store = state.lock();
    let indices: serde_json::Map<String, Value> = store
        .indices
        .iter()
        .map(|(index, documents)| {
            let pairs: Vec<Value> = documents
                .iter()
                .map(|(id, document)| json!([id, document["onepassword"]["uuid"]]))
                .collect();
            (index.clone(), Value::Array(pairs))
        })
        .collect();
    axum::Json(Value::Object(indices)).into_response()
}

/// `{"status": 503}` answers every `_bulk` with that status until
/// `{"status": null}` (an outage for scripts; not an Elasticsearch API).
async fn set_request_failure(
    State(state): State<Arc<EsState>>,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    let status = body["status"].as_u64().and_then(|s| u16::try_from(s).ok());
    state.lock().request_failure = status;
    StatusCode::NO_CONTENT
}

/// `{"ms": 50, "jitter_ms": 20}`: every `_bulk` from now on waits that long
/// before it answers (for scripts; not an Elasticsearch API).
async fn set_latency(
    State(state): State<Arc<EsState>>,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    let ms = |key: &str| Duration::from_millis(body[key].as_u64().unwrap_or(0));
    state.lock().latency = Latency { base: ms("ms"), jitter: ms("jitter_ms") };
    StatusCode::NO_CONTENT
}

async fn root(State(state): State<Arc<EsState>>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/");
    }
    if state.lock().denied_privileges.contains("monitor") {
        return security::monitor_refused();
    }
    axum::Json(json!({
        "name": "sluice-testkit",
        "cluster_name": "testkit",
        "cluster_uuid": "c2x1aWNlLXRlc3RraXQ",
        "version": {"number": state.config.version, "build_flavor": "default", "lucene_version": "9.11.1",
                    "minimum_wire_compatibility_version": "7.17.0", "minimum_index_compatibility_version": "7.0.0"},
        "tagline": "You Know, for Search",
    }))
    .into_response()
}

async fn health(State(state): State<Arc<EsState>>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_cluster/health");
    }
    axum::Json(json!({"cluster_name": "testkit", "status": "green", "timed_out": false, "number_of_nodes": 1, "number_of_data_nodes": 1}))
        .into_response()
}
