//! The API server: `GET /metrics` for Prometheus and `GET /health`, which
//! answers 200 while all is well and 503 while draining or while a component
//! reports itself unhealthy, naming it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_core::health::Health;

#[derive(Clone)]
struct ApiState {
    metrics: PrometheusHandle,
    health: Health,
}

/// Bind `address` and serve in the background; the bound address is returned.
pub async fn serve(
    address: SocketAddr,
    metrics: PrometheusHandle,
    health: Health,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {address} for the API (api.address): {e}")
    })?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(render_health))
        .with_state(ApiState { metrics, health });
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

async fn render_health(State(state): State<ApiState>) -> impl IntoResponse {
    let report = state.health.report();
    let status = if report.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report))
}
