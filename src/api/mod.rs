//! The HTTP API: the seed's contract (`/jobs`, `/jobs/{id}/executions`, `/health`, `/dummy`)
//! and the job-management endpoints around it. Handlers turn input into domain types and
//! call the application layer ([`crate::jobs::Service`]); no SQL here, and no scheduler.

pub mod auth;
pub mod cron;
pub mod dto;
pub mod dummy;
pub mod error;
pub mod executions;
pub mod health;
pub mod jobs;
pub mod json;
pub mod malformed;
pub mod openapi;
pub mod params;
pub mod scrape;
pub mod serve;
pub mod spec;
pub mod starting;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;

use crate::jobs::Service;
use error::ApiError;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// What can be done with jobs.
    pub jobs: Service,
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
        .merge(scrape::router())
        .merge(dummy::router())
        .merge(openapi::router())
        .merge(ui::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(json::refuse_oversized))
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
