//! `/health`: liveness of the store and the worker queue's sizes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use super::dto::{Health, WorkerHealth};
use super::params::rfc3339;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// Whether the database answers, and the worker queue's sizes. Needs no token.
#[utoipa::path(get, path = "/health", tag = "tools", security(()),
    responses((status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let health = state.jobs.health().await;
    let worker = WorkerHealth {
        queue_size: health.queued as u64,
        active_workers: health.active as u64,
    };
    let timestamp = rfc3339(state.jobs.now());
    let (status, body) = match health.store {
        Ok(()) => (
            StatusCode::OK,
            Health {
                status: "healthy".into(),
                timestamp,
                reason: None,
                worker,
            },
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                status: "unhealthy".into(),
                timestamp,
                reason: Some(reason),
                worker,
            },
        ),
    };
    (status, Json(body))
}
