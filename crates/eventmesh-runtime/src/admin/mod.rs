//! The admin HTTP listener.
//!
//! * `GET /health`: `200 {"status":"ok","node_id":…,"store":…}` when the node is ready (not
//!   shutting down, the core ready, and the event store's health check passing within
//!   [`HEALTH_CHECK_TIMEOUT`]); otherwise `503` with the same fields, `"status":"unavailable"` and
//!   a `"reason"`.
//! * `GET /metrics`: every metric in the Prometheus text format.
//!
//! Anything else is a JSON `404`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use eventmesh_storage::EventStore;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::telemetry::admin::AdminRequest;
use crate::telemetry::node::{Readiness, Uptime};
use crate::telemetry::storage::{HealthChecked, HealthResult};

/// How long `/health` waits for the event store's health check.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text format's content type.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Tells whether the parts of the node other than the store are ready: `Err(reason)` when not.
pub type ReadinessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// This node's id.
    pub node_id: String,
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// Readiness of the rest of the node (core, shutdown).
    pub readiness: ReadinessCheck,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// When the runtime started.
    pub started: Instant,
}

/// Runs the store's health check with a timeout, recording its metrics. `Err(reason)` when it
/// fails.
pub async fn check_store(store: &dyn EventStore, timeout: Duration) -> Result<(), String> {
    let begin = Instant::now();
    let (result, outcome) = match tokio::time::timeout(timeout, store.health()).await {
        Ok(Ok(())) => (HealthResult::Ok, Ok(())),
        Ok(Err(error)) => (
            HealthResult::Error,
            Err(format!("event store unhealthy: {error}")),
        ),
        Err(_) => (
            HealthResult::Timeout,
            Err(format!(
                "event store health check did not answer within {}",
                humantime::format_duration(timeout)
            )),
        ),
    };
    HealthChecked {
        store: store.kind(),
        result,
        elapsed: begin.elapsed(),
    }
    .emit();
    outcome
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(Arc::new(state))
}

async fn health(State(s): State<Arc<AdminState>>) -> Response {
    let store = s.store.kind();
    let outcome = match (s.readiness)() {
        Ok(()) => check_store(s.store.as_ref(), HEALTH_CHECK_TIMEOUT).await,
        Err(reason) => Err(reason),
    };
    Readiness {
        ready: outcome.is_ok(),
    }
    .emit();
    let (status, body) = match outcome {
        Ok(()) => (
            StatusCode::OK,
            json!({"status": "ok", "node_id": s.node_id, "store": store}),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "node_id": s.node_id, "store": store, "reason": reason}),
        ),
    };
    AdminRequest {
        route: "/health",
        status: status.as_u16(),
    }
    .emit();
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    Uptime {
        seconds: s.started.elapsed().as_secs_f64(),
    }
    .emit();
    AdminRequest {
        route: "/metrics",
        status: 200,
    }
    .emit();
    let body = crate::telemetry::recorder::render(&s.metrics);
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
}

async fn not_found() -> Response {
    AdminRequest {
        route: "other",
        status: 404,
    }
    .emit();
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not found", "routes": ["/health", "/metrics"]})),
    )
        .into_response()
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the admin API on `listener` until `shutdown` is cancelled, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
