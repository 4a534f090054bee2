//! `/jobs/{id}/executions`: a job's recorded calls, newest first, and each one's details.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::DateTime;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::jobs::{limit_param, not_found, parse_job_id, query_params, rfc3339};
use super::openapi::{Errors, Execution, ExecutionDetail};
use crate::store::ExecutionView;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs/{job_id}/executions", get(page))
        .route("/jobs/{job_id}/executions/{execution_id}", get(detail))
}

/// One execution, exactly the contract's fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionBody {
    id: Uuid,
    executed_at: String,
    status_code: Option<u16>,
    duration_ms: u64,
    success: bool,
}

impl From<ExecutionView> for ExecutionBody {
    fn from(e: ExecutionView) -> Self {
        ExecutionBody {
            id: e.id,
            executed_at: rfc3339(e.executed_at),
            status_code: e.status_code,
            duration_ms: e.duration_ms,
            success: e.success,
        }
    }
}

/// The contract's default page: the last 5.
const RECENT: u32 = 5;
/// The largest page.
const PAGE_MAX: u32 = 100;

/// The cursor after an execution: `{executedAt ms}.{id}`.
fn cursor_of(e: &ExecutionView) -> String {
    format!("{}.{}", e.executed_at.timestamp_millis(), e.id)
}

fn parse_cursor(c: &str) -> Result<(DateTime<chrono::Utc>, Uuid), ApiError> {
    let bad = || {
        ApiError::field(
            "invalid_cursor",
            "cursor",
            "cursor must be a nextCursor value",
        )
    };
    let (ms, id) = c.split_once('.').ok_or_else(bad)?;
    let at = ms
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// The body stays the contract's array; the next page's cursor is in `X-Next-Cursor` and a
/// `Link: <...>; rel="next"` header.
/// A job's recorded executions, newest first: the last 5 by default. The next page's cursor
/// comes in the `X-Next-Cursor` and `Link` headers.
#[utoipa::path(get, path = "/jobs/{jobId}/executions", tag = "executions",
    params(("jobId" = Uuid, Path, description = "The job's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 5)"),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,15}\\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            description = "`X-Next-Cursor` of the previous page")),
    responses((status = 200, description = "Executions, newest first", body = Vec<Execution>,
        headers(("X-Next-Cursor" = String, description = "Cursor of the next page, when there is one"),
                ("Link" = String, description = "`<...>; rel=\"next\"`, when there is a next page"))),
        Errors))]
pub(crate) async fn page(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    let params = query_params(query.as_deref(), &["limit", "cursor"])?;
    let limit = limit_param(&params, RECENT, PAGE_MAX)?;
    let before = params.get("cursor").map(|c| parse_cursor(c)).transpose()?;
    let (exists, mut rows) = tokio::join!(
        state.store.job_exists(id),
        state.store.executions_page(id, before, limit + 1)
    );
    if !exists? {
        return Err(not_found(id));
    }
    let rows = rows.as_mut().map_err(|e| ApiError::Store(e.clone()))?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut headers = axum::http::HeaderMap::new();
    if more && let Some(last) = rows.last() {
        let cursor = cursor_of(last);
        let link = format!("</jobs/{id}/executions?limit={limit}&cursor={cursor}>; rel=\"next\"");
        if let (Ok(c), Ok(l)) = (HeaderValue::from_str(&cursor), HeaderValue::from_str(&link)) {
            headers.insert("x-next-cursor", c);
            headers.insert(axum::http::header::LINK, l);
        }
    }
    let body: Vec<ExecutionBody> = std::mem::take(rows).into_iter().map(Into::into).collect();
    Ok((headers, Json(body)))
}

/// One execution with its details.
#[utoipa::path(get, path = "/jobs/{jobId}/executions/{executionId}", tag = "executions",
    params(("jobId" = Uuid, Path, description = "The job's id"),
        ("executionId" = Uuid, Path, description = "The execution's id")),
    responses((status = 200, description = "The execution", body = ExecutionDetail), Errors))]
pub(crate) async fn detail(
    State(state): State<AppState>,
    Path((job_id, execution_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let job = parse_job_id(&job_id)?;
    let id = Uuid::parse_str(&execution_id).map_err(|_| {
        ApiError::field(
            "invalid_id",
            "executionId",
            format!("{execution_id:?} is not an execution id (a UUID)"),
        )
    })?;
    let e = state
        .store
        .execution(job, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no execution {id} of job {job}")))?;
    Ok(Json(json!({
        "id": e.id,
        "jobId": e.job_id,
        "scheduledAt": rfc3339(e.scheduled_at),
        "dueAt": rfc3339(e.due_at),
        "attempt": e.attempt,
        "state": e.state,
        "trigger": e.trigger,
        "node": e.node,
        "executedAt": e.executed_at.map(rfc3339),
        "statusCode": e.status_code,
        "durationMs": e.duration_ms,
        "success": e.success,
        "error": e.error,
    })))
}
