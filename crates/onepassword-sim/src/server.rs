//! The HTTP routes of the Events API, its request validation, its errors and
//! the injected faults.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::DateTime;
use serde_json::{Value, json};

use crate::auth::Claims;
use crate::cursor::CursorState;
use crate::generate::format_timestamp;
use crate::state::SimState;
use crate::{ApiVersion, Fault, SimStream, now_nanos};

const HOUR_NANOS: i64 = 3600 * 1_000_000_000;
/// The API keeps 120 days of events.
pub const RETENTION_NANOS: i64 = 120 * 24 * HOUR_NANOS;

/// The router with every API route, the control plane and the 404 fallback.
pub fn router(state: Arc<SimState>) -> Router {
    let mut router = Router::new()
        .route("/api/auth/introspect", get(introspect_v1))
        .route("/api/v2/auth/introspect", get(introspect_v2));
    for (prefix, version) in [("/api/v1", ApiVersion::V1), ("/api/v2", ApiVersion::V2)] {
        for stream in SimStream::ALL {
            let handler = move |state: State<Arc<SimState>>, headers: HeaderMap, body: Bytes| {
                events(state, version, stream, headers, body)
            };
            router = router.route(&format!("{prefix}/{}", stream.feature()), post(handler));
        }
    }
    router
        .merge(crate::control::router())
        .merge(crate::users::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "404 page not found\n",
            )
        })
        .with_state(state)
}

/// Log every answer (path, status, `Retry-After`) for tests.
async fn record(
    State(state): State<Arc<SimState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let retry_after =
        response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
    state.record(crate::state::RequestRecord {
        at: Instant::now(),
        path,
        status: response.status().as_u16(),
        retry_after,
    });
    response
}

/// The API's JSON error body.
pub fn error(status: StatusCode) -> Response {
    let message = status.canonical_reason().unwrap_or("Error");
    (status, axum::Json(json!({"Error": {"Message": message}}))).into_response()
}

fn set_quota(response: &mut Response, quota: &crate::ratelimit::Quota) {
    let headers = response.headers_mut();
    headers.insert("RateLimit-Limit", HeaderValue::from(quota.limit));
    headers.insert("RateLimit-Remaining", HeaderValue::from(quota.remaining));
    headers.insert("RateLimit-Reset", HeaderValue::from(quota.reset_secs));
}

/// Authenticate, authorize for `feature` and count against the rate limit.
/// The error is the whole answer to send; it is built once per refused request.
#[allow(clippy::result_large_err)]
fn admit(
    state: &SimState,
    headers: &HeaderMap,
    feature: Option<&str>,
) -> Result<(Claims, Option<crate::ratelimit::Quota>), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let claims = token
        .and_then(|token| {
            state.keys.verify(token, &state.audience, now_nanos() / 1_000_000_000).ok()
        })
        .filter(|claims| !state.is_revoked(&claims.sub))
        .filter(|claims| feature.is_none_or(|f| claims.features.iter().any(|g| g == f)))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED))?;
    let Some(limiter) = &state.limiter else { return Ok((claims, None)) };
    match limiter.check(&claims.account_uuid, Instant::now()) {
        Ok(quota) => Ok((claims, state.config.rate_limit_headers.then_some(quota))),
        Err(limited) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after_secs));
            if state.config.rate_limit_headers {
                set_quota(&mut response, &limited.quota);
            }
            Err(response)
        }
    }
}

async fn introspect_v1(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    introspect(
        &state,
        &headers,
        |claims| json!({"UUID": claims.sub, "IssuedAt": format_timestamp(claims.iat * 1_000_000_000), "Features": claims.features}),
    )
}

async fn introspect_v2(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    introspect(&state, &headers, |claims| {
        json!({
            "uuid": claims.sub, "issued_at": format_timestamp(claims.iat * 1_000_000_000),
            "features": claims.features, "account_uuid": claims.account_uuid,
        })
    })
}

fn introspect(
    state: &SimState,
    headers: &HeaderMap,
    body: impl FnOnce(&Claims) -> Value,
) -> Response {
    state.count_request();
    match admit(state, headers, None) {
        Ok((claims, quota)) => {
            let mut response = axum::Json(body(&claims)).into_response();
            if let Some(quota) = quota {
                set_quota(&mut response, &quota);
            }
            response
        }
        Err(response) => response,
    }
}

/// The request's paging state, or `None` for a 400.
fn parse_request(
    state: &SimState,
    body: &[u8],
    stream: SimStream,
    version: ApiVersion,
    now: i64,
) -> Option<(CursorState, Option<String>)> {
    let Value::Object(request) = serde_json::from_slice::<Value>(body).ok()? else { return None };
    if let Some(cursor) = request.get("cursor") {
        let text = cursor.as_str()?;
        let decoded = state.cursors.decode(text)?;
        return (decoded.stream == stream && decoded.version == version)
            .then(|| (decoded, Some(text.to_owned())));
    }
    let limit = match request.get("limit") {
        None | Some(Value::Null) => 100,
        Some(limit) => {
            let value = limit.as_f64()?;
            if value.fract() != 0.0 || !(1.0..=1000.0).contains(&value) {
                return None;
            }
            value as u16
        }
    };
    let time = |key: &str| -> Option<Option<i64>> {
        match request.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(value) => Some(Some(
                DateTime::parse_from_rfc3339(value.as_str()?).ok()?.timestamp_nanos_opt()?,
            )),
        }
    };
    let end = time("end_time")?;
    let start = time("start_time")?.unwrap_or(end.unwrap_or(now) - HOUR_NANOS);
    let start = start.max(now - RETENTION_NANOS);
    Some((CursorState { stream, version, limit, start, end, after: None }, None))
}

async fn events(
    State(state): State<Arc<SimState>>,
    version: ApiVersion,
    stream: SimStream,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let fault = state.next_fault();
    if let Some(Fault::Slow { ms }) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(Fault::Status { status }) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        return response;
    }
    let quota = match admit(&state, &headers, Some(stream.feature())) {
        Ok((_, quota)) => quota,
        Err(response) => return response,
    };
    let now = now_nanos();
    let Some((cursor, given)) = parse_request(&state, &body, stream, version, now) else {
        return error(StatusCode::BAD_REQUEST);
    };
    let page = state.store.page(&cursor, version, now);
    let (items, has_more, next) = if fault == Some(Fault::EmptyPage) && !page.items.is_empty() {
        (Vec::new(), true, given.clone().unwrap_or_else(|| state.cursors.encode(&cursor)))
    } else {
        let next = match (page.last, given) {
            (Some(last), _) => state.cursors.encode(&CursorState { after: Some(last), ..cursor }),
            // An empty page gives back the same cursor.
            (None, Some(text)) => text,
            (None, None) => state.cursors.encode(&cursor),
        };
        (page.items, page.has_more, next)
    };
    let bytes = serde_json::to_vec(&json!({"cursor": next, "has_more": has_more, "items": items}))
        .expect("serialises");
    let body = match fault {
        Some(Fault::Malformed) => Body::from(bytes[..bytes.len() / 2].to_vec()),
        Some(Fault::Reset) => {
            let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated reset")),
            ];
            Body::from_stream(futures_util::stream::iter(chunks))
        }
        _ => Body::from(bytes),
    };
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(quota) = quota {
        set_quota(&mut response, &quota);
    }
    response
}
