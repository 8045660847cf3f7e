//! The Users API (public preview) and its OAuth token endpoint, as
//! 1Password documents them: client credentials by HTTP Basic with a form
//! body, opaque tokens that live 900 s, revocation that answers 200 for any
//! token, `GET …/accounts/{account}/users` paged by `max_page_size` and
//! `page_token` (the camelCase spellings too, as gRPC gateways accept),
//! `GET …/users/{user}`, and errors as `google.rpc.Status`. The write
//! actions (`…/users/{user}:suspend`, `:reactivate`) answer 403 and are
//! counted, so tests can prove a collector never calls them.
//!
//! Sources: https://developer.1password.com/docs/users-api/request-access-token
//! (token, Basic auth, 900 s), …/revoke-access-token (200 for any token),
//! …/list-users (max_page_size up to 1000, default 25, page_token,
//! next_page_token only when more), …/get-user, …/suspend-user and
//! …/reactivate-user (the write actions), …/reference (the User object's
//! six fields); the camelCase parameters and the GA paths /v1 and
//! /v1/oauth/token from elastic/kibana@18bdc9b0022ba4e06ec3df52aeae56317ff2df39:src/platform/packages/shared/kbn-connector-specs/src/specs/one_password/one_password.ts;
//! the `google.rpc.Status` error body from the same file's 403 example.
//!
//! The people are the event generator's, plus as many generated ones as
//! `SimConfig::users` asks for, so sign-ins and the inventory agree.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::json;

use crate::state::{SimState, lock};

mod control;
pub mod directory;

pub use directory::{Directory, SimUser};

pub use directory::{CLIENT_ID, TOKEN_LIFETIME};

/// The Users API's routes, under `/v1beta1` and the announced `/v1`.
pub fn router() -> Router<Arc<SimState>> {
    let mut router = Router::new()
        .route("/v1beta1/users/oauth2/token", post(token))
        .route("/v1/oauth/token", post(token))
        .route("/v1beta1/users/oauth2/revoke", post(revoke))
        .route("/v1/oauth/revoke", post(revoke));
    for prefix in ["/v1beta1", "/v1"] {
        router = router
            .route(&format!("{prefix}/accounts/{{account}}/users"), get(list))
            .route(&format!("{prefix}/accounts/{{account}}/users/{{user}}"), get(one).post(write));
    }
    router.merge(control::router())
}

/// A `google.rpc.Status` error.
fn status(http: StatusCode, code: u8, message: &str) -> Response {
    (http, axum::Json(json!({"code": code, "message": message, "details": []}))).into_response()
}

/// The Basic credentials are the application's.
fn client_ok(state: &SimState, headers: &HeaderMap) -> bool {
    let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    let expected = format!("{CLIENT_ID}:{}", lock(&state.users).client_secret);
    decoded == expected.as_bytes()
}

fn form_ok(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// Decoded `application/x-www-form-urlencoded` pairs.
fn form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn token(State(state): State<Arc<SimState>>, headers: HeaderMap, body: String) -> Response {
    if !client_ok(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})))
            .into_response();
    }
    let fields = form(&body);
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if !form_ok(&headers) || get("grant_type") != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"})))
            .into_response();
    }
    if get("scope").is_some_and(|s| s != "openid") {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_scope"})))
            .into_response();
    }
    let mut directory = lock(&state.users);
    directory.issued += 1;
    let token = format!("simtok-{:x}-{:x}", directory.issued, crate::now_nanos());
    directory.tokens.insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME.as_secs(), "scope": "openid"}))
        .into_response()
}

async fn revoke(State(state): State<Arc<SimState>>, headers: HeaderMap, body: String) -> Response {
    if !client_ok(&state, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some((_, token)) = form(&body).into_iter().find(|(k, _)| k == "token") {
        let mut directory = lock(&state.users);
        if directory.tokens.remove(&token).is_some() {
            directory.revocations += 1;
        }
    }
    StatusCode::OK.into_response()
}

/// The bearer token is live, the user agent set and the account this one.
fn check(state: &SimState, headers: &HeaderMap, account: &str) -> Result<(), Box<Response>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let live = bearer.and_then(|t| lock(&state.users).tokens.get(t).copied());
    if live.is_none_or(|until| Instant::now() >= until) {
        return Err(Box::new(status(StatusCode::UNAUTHORIZED, 16, "unauthenticated")));
    }
    if headers.get(header::USER_AGENT).is_none() {
        return Err(Box::new(status(StatusCode::BAD_REQUEST, 3, "user_agent_required")));
    }
    if account != state.account_uuid {
        return Err(Box::new(status(StatusCode::NOT_FOUND, 5, "account_not_found")));
    }
    Ok(())
}

async fn list(
    State(state): State<Arc<SimState>>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = check(&state, &headers, &account) {
        return *answer;
    }
    let params = form(query.as_deref().unwrap_or_default());
    let get =
        |a: &str, b: &str| params.iter().find(|(k, _)| k == a || k == b).map(|(_, v)| v.clone());
    let filter = get("filter", "filter").unwrap_or_default();
    let wanted: fn(&SimUser) -> bool = match filter.as_str() {
        "" => |_| true,
        "user.isActive()" => |u| u.state == "ACTIVE",
        "user.isSuspended()" => |u| u.state == "SUSPENDED",
        _ => return status(StatusCode::BAD_REQUEST, 3, "invalid_filter"),
    };
    let size = match get("max_page_size", "maxPageSize").map(|s| s.parse::<i64>()) {
        None => 25,
        Some(Ok(0)) => 25,
        Some(Ok(n)) if n > 0 => n.min(1000) as usize,
        _ => return status(StatusCode::BAD_REQUEST, 3, "invalid_page_size"),
    };
    let offset = match get("page_token", "pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match page_offset(&token, &filter) {
            Some(offset) => offset,
            None => return status(StatusCode::BAD_REQUEST, 3, "invalid_page_token"),
        },
    };
    let mut directory = lock(&state.users);
    directory.listings += 1;
    let matching: Vec<&SimUser> = directory.users.iter().filter(|u| wanted(u)).collect();
    let results: Vec<&SimUser> = matching.iter().skip(offset).take(size).copied().collect();
    let mut body = json!({"results": results});
    if offset + size < matching.len() {
        body["next_page_token"] = page_token(offset + size, &filter).into();
    }
    axum::Json(body).into_response()
}

/// An opaque token of (offset, filter).
fn page_token(offset: usize, filter: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{offset}|{filter}"))
}

/// The offset a token stands for, if it was issued for `filter`.
fn page_offset(token: &str, filter: &str) -> Option<usize> {
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let (offset, for_filter) = std::str::from_utf8(&text).ok()?.split_once('|')?;
    (for_filter == filter).then(|| offset.parse().ok()).flatten()
}

async fn one(
    State(state): State<Arc<SimState>>,
    Path((account, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = check(&state, &headers, &account) {
        return *answer;
    }
    match lock(&state.users).users.iter().find(|u| u.id == user) {
        Some(user) => axum::Json(user.clone()).into_response(),
        None => status(StatusCode::NOT_FOUND, 5, "user_not_found"),
    }
}

/// `:suspend` and `:reactivate`: counted and refused (the simulated
/// application holds only the list and get permissions).
async fn write(
    State(state): State<Arc<SimState>>,
    Path((account, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    lock(&state.users).writes += 1;
    tracing::warn!(%user, "a write action was called on the Users API");
    if let Err(answer) = check(&state, &headers, &account) {
        return *answer;
    }
    if !(user.ends_with(":suspend") || user.ends_with(":reactivate")) {
        return status(StatusCode::NOT_FOUND, 5, "not_found");
    }
    status(StatusCode::FORBIDDEN, 7, "permission_denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_are_tied_to_their_filter() {
        let token = page_token(50, "user.isActive()");
        assert_eq!(page_offset(&token, "user.isActive()"), Some(50));
        assert_eq!(page_offset(&token, ""), None);
        assert_eq!(page_offset("garbage!", ""), None);
    }

    #[test]
    fn forms_decode() {
        assert_eq!(
            form("grant_type=client_credentials&scope=openid")[1],
            ("scope".into(), "openid".into())
        );
        assert_eq!(decode("a%2Bb+c"), "a+b c");
    }
}
