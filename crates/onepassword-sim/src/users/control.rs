//! `/_sim/users`: the Users API's side of the control plane. Read the
//! directory (with the application's credentials and the count of write
//! calls, listings and revoked tokens), add, suspend, reactivate or remove a person, and rotate the
//! client secret (every token issued before stops working).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::directory::{CLIENT_ID, SimUser};
use crate::state::{SimState, lock};

/// The `/_sim/users` routes.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/users", get(directory).post(add))
        .route("/_sim/users/rotate", post(rotate))
        .route("/_sim/users/{id}/state", put(set_state))
        .route("/_sim/users/{id}", axum::routing::delete(remove))
}

async fn directory(State(state): State<Arc<SimState>>) -> Response {
    let directory = lock(&state.users);
    Json(json!({
        "account_id": state.account_uuid,
        "client_id": CLIENT_ID,
        "client_secret": directory.client_secret,
        "users": directory.users,
        "writes": directory.writes,
        "listings": directory.listings,
        "revocations": directory.revocations,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    display_name: String,
}

async fn add(State(state): State<Arc<SimState>>, Json(new): Json<NewUser>) -> Response {
    let id = state.new_user_id();
    let user = SimUser {
        path: format!("accounts/{}/users/{id}", state.account_uuid),
        id,
        email: new.email,
        display_name: new.display_name,
        state: "ACTIVE".into(),
        create_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    lock(&state.users).users.push(user.clone());
    Json(user).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewState {
    state: String,
}

async fn set_state(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(new): Json<NewState>,
) -> StatusCode {
    if !matches!(new.state.as_str(), "ACTIVE" | "SUSPENDED" | "STATE_UNSPECIFIED") {
        return StatusCode::BAD_REQUEST;
    }
    match lock(&state.users).users.iter_mut().find(|u| u.id == id) {
        Some(user) => {
            user.state = new.state;
            StatusCode::OK
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn remove(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> StatusCode {
    let mut directory = lock(&state.users);
    let before = directory.users.len();
    directory.users.retain(|u| u.id != id);
    if directory.users.len() < before { StatusCode::OK } else { StatusCode::NOT_FOUND }
}

async fn rotate(State(state): State<Arc<SimState>>) -> Response {
    let secret = lock(&state.users).rotate();
    Json(json!({"client_secret": secret})).into_response()
}
