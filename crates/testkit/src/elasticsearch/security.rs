//! The has-privileges API (`GET|POST /_security/user/_has_privileges`) and
//! the cluster privilege `GET /` needs, for an API key that lacks some.
//! Request and answer as the reference documents them
//! (https://www.elastic.co/guide/en/elasticsearch/reference/current/security-api-has-privileges.html;
//! the 6.x page shows the same shape: `{"cluster": [...], "index": [{"names",
//! "privileges"}]}` in, `{"username", "has_all_requested", "cluster": {priv:
//! bool}, "index": {name: {priv: bool}}}` out). "All users can use this API,
//! but only to determine their own privileges": it needs no privilege.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{EsState, es_error, unauthorized};

/// `GET /` without the `monitor` cluster privilege, in Elasticsearch's words.
pub(super) fn monitor_refused() -> Response {
    es_error(
        StatusCode::FORBIDDEN,
        "security_exception",
        "action [cluster:monitor/main] is unauthorized for API key id [testkit] of user [sluice], this action is granted by the cluster privileges [monitor,manage,all]",
    )
}

pub(super) async fn has_privileges(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized("/_security/user/_has_privileges");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return es_error(StatusCode::BAD_REQUEST, "parse_exception", "request body is required");
    };
    let denied = state.lock().denied_privileges.clone();
    let granted = |privilege: &str| !denied.contains(privilege);
    let mut all = true;
    let mut cluster = Map::new();
    for privilege in request["cluster"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        all &= granted(privilege);
        cluster.insert(privilege.to_owned(), Value::Bool(granted(privilege)));
    }
    let mut index = Map::new();
    for entry in request["index"].as_array().into_iter().flatten() {
        for name in entry["names"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let mut privileges = Map::new();
            for privilege in
                entry["privileges"].as_array().into_iter().flatten().filter_map(Value::as_str)
            {
                all &= granted(privilege);
                privileges.insert(privilege.to_owned(), Value::Bool(granted(privilege)));
            }
            index.insert(name.to_owned(), Value::Object(privileges));
        }
    }
    axum::Json(json!({
        "username": "sluice",
        "has_all_requested": all,
        "cluster": cluster,
        "index": index,
        "application": {},
    }))
    .into_response()
}
