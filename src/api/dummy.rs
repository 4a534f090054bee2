//! `/dummy`: a target for trying the service locally; it logs what it receives.

use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::AppState;
use super::dto::DummyReply;
use super::error::ApiError;
use super::json::read_limited;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/dummy", post(dummy))
}

/// A target for trying the service: logs what it receives and answers 200.
#[utoipa::path(post, path = "/dummy", tag = "tools",
    request_body(content = Option<serde_json::Value>, description = "Anything, or nothing"),
    responses((status = 200, description = "What was received", body = DummyReply),
        (status = 401, description = "No valid bearer token", body = super::dto::Error),
        (status = 413, description = "Over 64 KiB", body = super::dto::Error)))]
pub(crate) async fn dummy(req: Request) -> Result<Json<Value>, ApiError> {
    let headers: HeaderMap = req.headers().clone();
    let bytes = read_limited(req).await?;
    let received: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info!(
        idempotency_key = header("idempotency-key"),
        job_id = header("x-cronhook-job-id"),
        execution_id = header("x-cronhook-execution-id"),
        body = %received,
        "dummy received a call"
    );
    Ok(Json(json!({ "ok": true, "received": received })))
}
