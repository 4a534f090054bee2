//! `/jobs/{id}/executions`: a job's recorded calls, newest first, and each one's details.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::DateTime;
use uuid::Uuid;

use super::AppState;
use super::dto::{Errors, Execution, ExecutionDetail};
use super::error::ApiError;
use super::params::{limit_param, not_found, parse_job_id, query_params};
use crate::domain::execution::ExecutionSummary;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs/{job_id}/executions", get(page))
        .route("/jobs/{job_id}/executions/{execution_id}", get(detail))
}

/// The contract's default page: the last 5.
const RECENT: u32 = 5;
/// The largest page.
const PAGE_MAX: u32 = 100;

/// The cursor after an execution: `{executedAt ms}.{id}`.
fn cursor_of(e: &ExecutionSummary) -> String {
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
    let mut rows = state
        .jobs
        .executions(id, before, limit + 1)
        .await?
        .ok_or_else(|| not_found(id))?;
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
    let body: Vec<Execution> = rows.into_iter().map(Into::into).collect();
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
            format!(
                "{} is not an execution id (a UUID)",
                crate::domain::text::quote(&execution_id)
            ),
        )
    })?;
    let e = state
        .jobs
        .execution(job, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no execution {id} of job {job}")))?;
    Ok(Json(ExecutionDetail::from(e)))
}
