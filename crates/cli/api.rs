//! The API server: `GET /metrics` for Prometheus; `GET /health`, which
//! answers 200 while all is well and 503 while draining or while a component
//! reports itself unhealthy, naming it (`?component=a,b`: 503 only for
//! those, so a probe of a pod with 500 accounts can follow the sink they
//! all need rather than any one account); `GET /tap/<output>?limit=N`, the
//! events leaving a source or transform output as JSON lines, live, for
//! `sluice tap` (404 with the outputs there are for an unknown name).
//!
//! `/tap` shows raw events (emails, IP addresses, names): it answers 403
//! unless `api.tap: true`, requires `Authorization: Bearer <api.tap_token>`
//! when a token is set (which the config requires beyond loopback), and
//! serves at most `api.max_tap_watchers` at once (503 past that).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_core::health::Health;
use sluice_core::tap::{Tap, Taps};

/// What the API serves.
#[derive(Clone)]
pub struct ApiState {
    /// Rendered at `/metrics`.
    pub metrics: PrometheusHandle,
    /// Reported at `/health`.
    pub health: Health,
    /// Watched at `/tap/<output>`.
    pub taps: Taps,
    /// Who may watch.
    pub tap_access: TapAccess,
}

/// Whether `/tap` serves, the token it requires, and room for watchers.
#[derive(Clone, Debug)]
pub struct TapAccess {
    /// `api.tap`.
    pub enabled: bool,
    /// `api.tap_token`, when set.
    pub token: Option<sluice_core::Secret>,
    /// One permit per connected watcher.
    pub watchers: std::sync::Arc<tokio::sync::Semaphore>,
}

impl TapAccess {
    /// From the `api` settings (a token file is read now).
    pub fn of(api: &sluice_topology::config::ApiConfig) -> anyhow::Result<Self> {
        let token = api.tap_secret().map_err(|e| anyhow::anyhow!("api.tap_token_file: {e}"))?;
        Ok(Self {
            enabled: api.tap,
            token,
            watchers: std::sync::Arc::new(tokio::sync::Semaphore::new(api.max_tap_watchers)),
        })
    }

    /// Why a request may not watch, if it may not.
    fn refuse(&self, headers: &axum::http::HeaderMap) -> Option<Response> {
        if !self.enabled {
            let body = serde_json::json!({"error": "the tap is off: set `api.tap: true` in the config to watch events"});
            return Some((StatusCode::FORBIDDEN, axum::Json(body)).into_response());
        }
        let token = self.token.as_ref()?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let matches = given.is_some_and(|given| {
            // Constant time in the token's length: no timing oracle.
            let (a, b) = (given.as_bytes(), token.expose().as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if matches {
            return None;
        }
        let body = serde_json::json!({"error": "the tap needs `Authorization: Bearer <api.tap_token>` (sluice tap --token-file)"});
        Some(
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], axum::Json(body))
                .into_response(),
        )
    }
}

/// Bind `address` and serve in the background; the bound address is returned.
pub async fn serve(address: SocketAddr, state: ApiState) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {address} for the API (api.address): {e}")
    })?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(render_health))
        .route("/tap/{output}", get(tap))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "API server stopped");
        }
    });
    Ok(bound)
}

async fn render_metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

#[derive(serde::Deserialize)]
struct HealthParams {
    /// Only these components (comma-separated ids) decide the status.
    component: Option<String>,
}

async fn render_health(
    State(state): State<ApiState>,
    Query(params): Query<HealthParams>,
) -> impl IntoResponse {
    let report = state.health.report();
    let ok = match params.component.as_deref() {
        None => report.is_ok(),
        Some(ids) => {
            let wanted: Vec<&str> =
                ids.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
            let concerns = |key: &str| {
                wanted.iter().any(|id| {
                    key == *id || key.strip_prefix(id).is_some_and(|r| r.starts_with('.'))
                })
            };
            report.status != "draining" && !report.unhealthy.keys().any(|key| concerns(key))
        }
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report))
}

#[derive(serde::Deserialize)]
struct TapParams {
    /// Stop after this many events.
    limit: Option<u64>,
}

/// Say, when a watcher leaves, how many copies it missed.
struct Watching {
    tap: Tap,
    output: String,
    sent: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let dropped = self.tap.dropped.load(Ordering::Relaxed);
        tracing::info!(output = %self.output, events = self.sent, dropped, "tap closed");
    }
}

async fn tap(
    State(state): State<ApiState>,
    Path(output): Path<String>,
    Query(params): Query<TapParams>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(refused) = state.tap_access.refuse(&headers) {
        return refused;
    }
    let Ok(permit) = state.tap_access.watchers.clone().try_acquire_owned() else {
        let body = serde_json::json!({"error": "too many tap watchers (api.max_tap_watchers); try again when one leaves"});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    };
    let tap = match state.taps.watch(&output) {
        Ok(tap) => tap,
        Err(unknown) => {
            let body = serde_json::json!({"error": unknown.to_string(), "outputs": unknown.known});
            return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
        }
    };
    tracing::info!(%output, limit = ?params.limit, "tap opened");
    let limit = params.limit.unwrap_or(u64::MAX);
    let watching = Watching { tap, output, sent: 0, _permit: permit };
    let lines = futures_util::stream::unfold(watching, move |mut watching| async move {
        if watching.sent >= limit {
            return None;
        }
        let line = watching.tap.lines.recv().await?;
        watching.sent += 1;
        Some((Ok::<_, Infallible>(line), watching))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn api(enabled: bool, token: Option<&str>, watchers: usize) -> String {
        let taps = Taps::default();
        let _point = taps.point("op");
        let state = ApiState {
            metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
            health: Health::new(),
            taps,
            tap_access: TapAccess {
                enabled,
                token: token.map(sluice_core::Secret::new),
                watchers: std::sync::Arc::new(tokio::sync::Semaphore::new(watchers)),
            },
        };
        let address = serve("127.0.0.1:0".parse().expect("addr"), state).await.expect("serve");
        format!("http://{address}/tap/op")
    }

    /// `?component=` decides the status by the named components only: a
    /// probe can follow the sink while one account of many is refused.
    #[tokio::test]
    async fn health_can_be_asked_about_some_components_only() {
        let health = Health::new();
        let state = ApiState {
            metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
            health: health.clone(),
            taps: Taps::default(),
            tap_access: TapAccess {
                enabled: false,
                token: None,
                watchers: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            },
        };
        let address = serve("127.0.0.1:0".parse().expect("addr"), state).await.expect("serve");
        health.handle("op7").set_unhealthy("audit_events", "refused the token");
        let status = |query: &'static str| {
            let url = format!("http://{address}/health{query}");
            async move { reqwest::get(url).await.expect("answer").status().as_u16() }
        };
        assert_eq!(status("").await, 503, "anything unhealthy: 503");
        assert_eq!(status("?component=aggregator").await, 200, "the sink is well");
        assert_eq!(status("?component=op").await, 200, "op is not op7");
        assert_eq!(status("?component=aggregator,op7").await, 503);
        health.set_draining();
        assert_eq!(status("?component=aggregator").await, 503, "draining is everyone's");
    }

    /// Review H3 (reliability 2026-12): the tap is off unless enabled, needs
    /// its token when one is set, and serves a bounded number of watchers.
    #[tokio::test]
    async fn the_tap_is_guarded_and_bounded() {
        let client = reqwest::Client::new();
        let off = api(false, None, 4).await;
        assert_eq!(client.get(&off).send().await.expect("answer").status(), 403);

        let guarded = api(true, Some("s3cret"), 1).await;
        let status = |r: reqwest::Response| r.status().as_u16();
        assert_eq!(status(client.get(&guarded).send().await.expect("answer")), 401);
        let wrong = client.get(&guarded).bearer_auth("s3cre").send().await.expect("answer");
        assert_eq!(status(wrong), 401);
        let first = client.get(&guarded).bearer_auth("s3cret").send().await.expect("answer");
        assert_eq!(first.status(), 200, "the watcher is connected and waits for events");
        let second = client.get(&guarded).bearer_auth("s3cret").send().await.expect("answer");
        assert_eq!(status(second), 503, "one watcher at most");
        drop(first);
        let mut again = None;
        for _ in 0..200 {
            let answer = client.get(&guarded).bearer_auth("s3cret").send().await.expect("answer");
            if answer.status() == 200 {
                again = Some(answer);
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(again.is_some(), "the place is free again once the first watcher left");
    }
}
