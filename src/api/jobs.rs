//! `/jobs`: create, list, read, change, pause, resume, trigger and delete jobs.

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use uuid::Uuid;

use super::AppState;
use super::dto::{
    BodyErrors, Created, Error, Errors, Execution, Job, JobDetail, JobInput, JobPage, JobPatch,
    JobState, Triggered,
};
use super::error::ApiError;
use super::json::JsonObject;
use super::params::{limit_param, not_found, parse_job_id, query_params, rfc3339};
use super::spec::{check_fields, check_nulls, parse_spec, render_spec, wire};
use crate::domain::job::JobSpec;
use crate::jobs::ChangeError;
use crate::store::JobQuery;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(create).get(list))
        .route("/jobs/{job_id}", get(read).patch(change).delete(remove))
        .route("/jobs/{job_id}/pause", post(pause))
        .route("/jobs/{job_id}/resume", post(resume))
        .route("/jobs/{job_id}/trigger", post(trigger))
}

/// Default and largest page of `GET /jobs`.
const LIST_DEFAULT: u32 = 50;
const LIST_MAX: u32 = 500;

/// Creates a job.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = JobInput,
    responses((status = 201, description = "Created", body = Created,
        headers(("Location" = String, description = "The job's URL"))), Errors, BodyErrors))]
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let spec = parse_spec(&body)?;
    refuse_target(&state, &spec)?;
    let (schedule, api, delivery) = (
        spec.schedule.expr().to_owned(),
        spec.api.redacted(),
        spec.delivery,
    );
    let id = state.jobs.create(spec).await?;
    tracing::info!(job_id = %id, %schedule, %api, ?delivery, "job created");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/jobs/{id}"))],
        Json(Created { job_id: id }),
    ))
}

/// Refuses a job whose target the target policy refuses by its URL alone.
fn refuse_target(state: &AppState, spec: &JobSpec) -> Result<(), ApiError> {
    match state.jobs.refused_target(spec) {
        Some(why) => Err(ApiError::field("target_refused", "api", why)),
        None => Ok(()),
    }
}

/// Lists jobs in creation order, a page at a time.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<Uuid>, Query, description = "`nextCursor` of the previous page"),
        ("state" = Option<JobState>, Query, description = "Only jobs in this state"),
    ),
    responses((status = 200, description = "A page of jobs", body = JobPage), Errors))]
pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let params = query_params(query.as_deref(), &["limit", "cursor", "state"])?;
    let limit = limit_param(&params, LIST_DEFAULT, LIST_MAX)?;
    let after = params
        .get("cursor")
        .map(|c| {
            Uuid::parse_str(c).map_err(|_| {
                ApiError::field(
                    "invalid_cursor",
                    "cursor",
                    "cursor must be a nextCursor value",
                )
            })
        })
        .transpose()?;
    let job_state = params
        .get("state")
        .map(|s| wire::<JobState>(s, "state", "invalid_state"))
        .transpose()?;
    let mut jobs = state
        .jobs
        .list(&JobQuery {
            state: job_state.map(Into::into),
            after,
            limit: limit + 1,
        })
        .await?;
    let next = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Json(JobPage {
        jobs: jobs.iter().map(Job::from).collect(),
        next_cursor: next,
    }))
}

/// Reads a job, with its next run and its last execution.
#[utoipa::path(get, path = "/jobs/{jobId}", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobDetail), Errors))]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    let (job, last) = tokio::join!(state.jobs.get(id), state.jobs.executions(id, None, 1));
    let job = job?.ok_or_else(|| not_found(id))?;
    Ok(Json(JobDetail {
        job: Job::from(&job),
        last_execution: last?
            .and_then(|page| page.into_iter().next())
            .map(Execution::from),
    }))
}

/// Changes any fields of a job; the next fire is recomputed at once.
#[utoipa::path(patch, path = "/jobs/{jobId}", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    request_body(content = JobPatch, description = "Any subset of the fields; null clears an optional one"),
    responses((status = 200, description = "The changed job", body = Job),
        (status = 409, description = "The job kept changing concurrently", body = Error),
        Errors, BodyErrors))]
pub(crate) async fn change(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    JsonObject(patch): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    check_fields(&patch)?;
    check_nulls(&patch)?;
    let changed = state
        .jobs
        .change(id, |current| {
            let mut merged = render_spec(current);
            merged.extend(patch.clone());
            let spec = parse_spec(&merged)?;
            refuse_target(&state, &spec)?;
            Ok(spec)
        })
        .await;
    let job = changed.map_err(|e| change_error(id, e))?;
    Ok(Json(Job::from(&job)))
}

/// Pauses a job: it fires no more until resumed.
#[utoipa::path(post, path = "/jobs/{jobId}/pause", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The paused job", body = Job),
        (status = 409, description = "The job kept changing concurrently", body = Error), Errors))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_enabled(state, &job_id, false).await
}

/// Resumes a job; instants missed while paused follow its misfire policy.
#[utoipa::path(post, path = "/jobs/{jobId}/resume", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The resumed job", body = Job),
        (status = 409, description = "The job kept changing concurrently", body = Error), Errors))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_enabled(state, &job_id, true).await
}

async fn set_enabled(state: AppState, job_id: &str, enabled: bool) -> Result<Json<Job>, ApiError> {
    let id = parse_job_id(job_id)?;
    let job = state
        .jobs
        .set_enabled(id, enabled)
        .await
        .map_err(|e| change_error(id, e))?;
    Ok(Json(Job::from(&job)))
}

/// The answer to a change that was not made: an edit's own refusal as it is.
fn change_error(id: Uuid, e: ChangeError<ApiError>) -> ApiError {
    match e {
        ChangeError::NotFound => not_found(id),
        ChangeError::Store(e) => ApiError::Store(e),
        ChangeError::Conflict => {
            ApiError::Conflict(format!("job {id} kept changing concurrently; try again"))
        }
        ChangeError::Edit(e) => e,
    }
}

/// Deletes a job and its history; nothing fires after the answer.
#[utoipa::path(delete, path = "/jobs/{jobId}", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    responses((status = 204, description = "Deleted"), Errors))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    if !state.jobs.delete(id).await? {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Calls a job once now, recorded as a manual execution.
#[utoipa::path(post, path = "/jobs/{jobId}/trigger", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    responses((status = 202, description = "The call is on its way", body = Triggered), Errors))]
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    let triggered = state.jobs.trigger(id).await?.ok_or_else(|| not_found(id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Triggered {
            execution_id: triggered.execution_id,
            scheduled_at: rfc3339(triggered.scheduled_at),
        }),
    ))
}
