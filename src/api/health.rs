//! `/health`: liveness of the store and the worker queue's sizes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use super::dto::{Health, WorkerHealth};
use super::params::rfc3339;

/// A node whose longest-waiting due fire has waited this long is `degraded`.
const DEGRADED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// Whether the database answers, and the worker queue's sizes. Needs no token.
#[utoipa::path(get, path = "/health", tag = "tools", security(()),
    responses((status = 200, description = "Healthy, or degraded: serving, but due fires wait longer than 1 s", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let health = state.jobs.health().await;
    let worker = WorkerHealth {
        queue_size: health.queued as u64,
        active_workers: health.active as u64,
        slow_calls: health.slow as u64,
        behind_ms: 0,
    };
    let timestamp = rfc3339(state.jobs.now());
    let behind_ms = health.behind.as_millis() as u64;
    let (code, status, reason) = match health.store {
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy", Some(reason)),
        Ok(()) if health.behind >= DEGRADED_AFTER => (
            StatusCode::OK,
            "degraded",
            Some(format!(
                "{behind_ms} ms behind: due fires are waiting for a worker or for their host's limit"
            )),
        ),
        Ok(()) => (StatusCode::OK, "healthy", None),
    };
    let body = Health {
        status: status.into(),
        timestamp,
        reason,
        worker: WorkerHealth {
            behind_ms,
            ..worker
        },
    };
    (code, Json(body))
}
