//! `/metrics`: the node's metrics in the Prometheus text format, behind the token like the
//! rest of the API (a scrape config passes it as a bearer token).

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// The text format's media type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The node's metrics: calls, lag, claims, outcome writes, queue, jobs, nodes, the process.
#[utoipa::path(get, path = "/metrics", tag = "tools",
    responses((status = 200, description = "The metrics, in the Prometheus text format (version 0.0.4)",
        content_type = "text/plain", body = String),
        (status = 401, description = "`API_TOKEN` is set and the request does not carry it", body = super::dto::Error)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, TEXT_FORMAT)], state.jobs.metrics().await)
}
