//! The HTTP API: the seed's contract (`/jobs`, `/jobs/{id}/executions`, `/health`, `/dummy`).
//! Handlers turn input into domain types and call the store; no SQL here.

pub mod dummy;
pub mod error;
pub mod health;
pub mod jobs;
pub mod json;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::store::DynStore;
use crate::store::group::JobWriter;
use crate::worker::WorkerStats;
use error::ApiError;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: DynStore,
    /// New jobs, group-committed.
    pub jobs: JobWriter,
    /// Worker queue sizes for `/health`.
    pub stats: Arc<WorkerStats>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(jobs::router())
        .merge(health::router())
        .merge(dummy::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
