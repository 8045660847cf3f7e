//! The simulator's control plane under `/_sim/`, for tests and demos: mint
//! and revoke tokens, set or queue faults, ingest late events, read counters
//! and the uuids of every visible event.
//! It is not part of the 1Password API.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::generate::format_timestamp;
use crate::state::SimState;
use crate::{Fault, Faults, SimStream, now_nanos};

/// The `/_sim/` routes.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/tokens", post(mint))
        .route("/_sim/revoke", post(revoke))
        .route("/_sim/faults", put(set_faults))
        .route("/_sim/faults/next", post(push_faults))
        .route("/_sim/events", post(inject))
        .route("/_sim/stats", get(stats))
        .route("/_sim/uuids", get(uuids))
        .route("/_sim/items", get(items))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    features: Vec<String>,
    #[serde(default)]
    expires_in_secs: Option<i64>,
    #[serde(default)]
    audience: Option<String>,
}

async fn mint(State(state): State<Arc<SimState>>, Json(request): Json<MintRequest>) -> Response {
    let features: Vec<&str> = request.features.iter().map(String::as_str).collect();
    let (token, claims) =
        state.mint(&features, request.expires_in_secs, request.audience.as_deref());
    Json(json!({"token": token, "sub": claims.sub})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    sub: String,
}

async fn revoke(
    State(state): State<Arc<SimState>>,
    Json(request): Json<RevokeRequest>,
) -> StatusCode {
    state.revoke(&request.sub);
    StatusCode::NO_CONTENT
}

async fn set_faults(State(state): State<Arc<SimState>>, Json(faults): Json<Faults>) -> StatusCode {
    state.set_faults(faults);
    StatusCode::NO_CONTENT
}

async fn push_faults(
    State(state): State<Arc<SimState>>,
    Json(faults): Json<Vec<Fault>>,
) -> StatusCode {
    faults.into_iter().for_each(|fault| state.push_fault(fault));
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectRequest {
    stream: SimStream,
    /// When it happened; default now.
    #[serde(default)]
    timestamp: Option<String>,
}

async fn inject(
    State(state): State<Arc<SimState>>,
    Json(request): Json<InjectRequest>,
) -> Response {
    let occurred = match request.timestamp.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => now_nanos(),
        Some(Ok(time)) => time.timestamp_nanos_opt().unwrap_or(0),
        Some(Err(err)) => {
            return (StatusCode::BAD_REQUEST, format!("timestamp: {err}")).into_response();
        }
    };
    let event = state.ingest_new(request.stream, occurred);
    Json(json!({"uuid": event.uuid, "timestamp": format_timestamp(event.occurred)})).into_response()
}

async fn uuids(State(state): State<Arc<SimState>>) -> Response {
    let now = now_nanos();
    let streams: serde_json::Map<String, serde_json::Value> = SimStream::ALL
        .iter()
        .map(|s| (s.name().to_owned(), state.store.visible_uuids(*s, now).into()))
        .collect();
    Json(streams).into_response()
}

/// Every visible item, exactly as the v2 API serializes it:
/// `{"<stream>": {"<uuid>": "<item JSON text>"}}`.
async fn items(State(state): State<Arc<SimState>>) -> Response {
    let now = now_nanos();
    let streams: serde_json::Map<String, serde_json::Value> = SimStream::ALL
        .iter()
        .map(|s| {
            let items: serde_json::Map<String, serde_json::Value> = state
                .store
                .visible_items(*s, now)
                .into_iter()
                .map(|(uuid, item)| (uuid, serde_json::Value::String(item.to_string())))
                .collect();
            (s.name().to_owned(), items.into())
        })
        .collect();
    Json(streams).into_response()
}

async fn stats(State(state): State<Arc<SimState>>) -> Response {
    let now = now_nanos();
    let visible: serde_json::Map<String, serde_json::Value> = SimStream::ALL
        .iter()
        .map(|s| (s.name().to_owned(), state.store.visible(*s, now).into()))
        .collect();
    Json(json!({"requests": state.requests(), "visible_events": visible})).into_response()
}
