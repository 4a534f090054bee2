//! `/health`: liveness of the store and the worker queue's sizes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde_json::json;

use super::AppState;
use super::openapi::Health;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// How long the database may take to answer a health check.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database answers, and the worker queue's sizes. Needs no token.
#[utoipa::path(get, path = "/health", tag = "tools", security(()),
    responses((status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await;
    let worker = json!({
        "queueSize": state.stats.queued.load(Ordering::Acquire),
        "activeWorkers": state.stats.active.load(Ordering::Acquire),
    });
    let timestamp = state
        .clock
        .now()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    match ping {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({ "status": "healthy", "timestamp": timestamp, "worker": worker })),
        ),
        Ok(Err(e)) => unhealthy(timestamp, worker, e.to_string()),
        Err(_) => unhealthy(
            timestamp,
            worker,
            format!(
                "database did not answer within {} ms",
                PING_TIMEOUT.as_millis()
            ),
        ),
    }
}

fn unhealthy(
    timestamp: String,
    worker: serde_json::Value,
    reason: String,
) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(
            json!({ "status": "unhealthy", "timestamp": timestamp, "reason": reason, "worker": worker }),
        ),
    )
}
