//! The emulator's HTTP routes: HEC's own (event, ack, health) and the
//! `_testkit` controls.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::{HecFault, HecState, collector, reply};

pub(super) fn router(state: Arc<HecState>) -> Router {
    Router::new()
        .route("/services/collector", post(collector::event))
        .route("/services/collector/event", post(collector::event))
        .route("/services/collector/event/1.0", post(collector::event))
        .route("/services/collector/ack", post(collector::ack))
        .route("/services/collector/health", get(health))
        .route("/services/collector/health/1.0", get(health))
        .route("/_testkit/stats", get(stats))
        .route("/_testkit/restart", post(restart))
        .route("/_testkit/uuids", get(uuids))
        .route("/_testkit/faults", post(faults))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found").into_response() })
        .with_state(state)
}

async fn health() -> Response {
    reply(StatusCode::OK, "HEC is healthy", 17)
}

/// Counters for scripts (not a Splunk API).
async fn stats(axum::extract::State(state): axum::extract::State<Arc<HecState>>) -> Response {
    let mut store = state.lock();
    store.settle();
    axum::Json(json!({
        "events": store.events.len(),
        "acks_true": store.acks_true,
        "acks_lost": store.acks_lost,
        "restarts": store.restarts,
        "events_lost": store.events_lost,
    }))
    .into_response()
}

/// The `uuid` of every indexed event, once per time it was indexed (for
/// scripts counting lost and doubled events; not a Splunk API).
async fn uuids(axum::extract::State(state): axum::extract::State<Arc<HecState>>) -> Response {
    let mut store = state.lock();
    store.settle();
    let uuids: Vec<Option<String>> = store
        .events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.event)
                .ok()
                .and_then(|v| v["uuid"].as_str().map(str::to_owned))
        })
        .collect();
    axum::Json(uuids).into_response()
}

/// Restart every indexer, for scripts (not a Splunk API).
async fn restart(axum::extract::State(state): axum::extract::State<Arc<HecState>>) -> Response {
    state.lock().restart();
    StatusCode::NO_CONTENT.into_response()
}

/// Queue faults for scripts (not a Splunk API): `{"html": n, "ack_disabled": n, "busy": n}`.
async fn faults(
    axum::extract::State(state): axum::extract::State<Arc<HecState>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    let count = |key: &str| body[key].as_u64().unwrap_or(0) as usize;
    let mut store = state.lock();
    for _ in 0..count("html") {
        store.faults.push_back(HecFault::ProxyHtml);
    }
    for _ in 0..count("busy") {
        store.faults.push_back(HecFault::Busy);
    }
    store.ack_disabled_answers += count("ack_disabled");
    StatusCode::NO_CONTENT.into_response()
}
