//! The HTTP API: the seed's contract (`/jobs`, `/jobs/{id}/executions`, `/health`, `/dummy`)
//! and the job-management endpoints around it. Handlers turn input into domain types and
//! call the store; no SQL here.

pub mod auth;
pub mod cron;
pub mod dummy;
pub mod error;
pub mod executions;
pub mod health;
pub mod jobs;
pub mod json;
pub mod openapi;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::sync::mpsc::UnboundedSender;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::scheduler::Held;
use crate::scheduler::gate::Gate;
use crate::scheduler::lease::Lease;
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
    /// Where job changes are applied on this node.
    pub gate: Arc<Gate>,
    /// How often nodes poll for changes: a change waits this long on PostgreSQL.
    pub change_poll: Duration,
    /// This node's timer, for manual calls.
    pub timer: UnboundedSender<Vec<Held>>,
    /// This node's identity, for manual calls.
    pub lease: Arc<Lease>,
    /// The bearer token every endpoint but `/health` requires, when set.
    pub token: Option<Arc<str>>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(jobs::router())
        .merge(executions::router())
        .merge(cron::router())
        .merge(health::router())
        .merge(dummy::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
