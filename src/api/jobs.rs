//! `/jobs`: create, list, read, change, pause, resume, trigger and delete jobs.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::executions::ExecutionBody;
use super::json::JsonObject;
use super::openapi::{BodyErrors, Error, Errors, Job, JobInput, JobPage, JobPatch, Triggered};
use super::spec::{check_fields, parse_spec, render_spec};
use crate::domain::job::{JobSpec, NewJob};
use crate::scheduler::Held;
use crate::store::{
    Backend, DELETED, JobChange, JobQuery, JobRecord, JobRow, JobState, NextFire, Update,
};

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(create).get(list))
        .route("/jobs/{job_id}", get(read).patch(change).delete(remove))
        .route("/jobs/{job_id}/pause", post(pause))
        .route("/jobs/{job_id}/resume", post(resume))
        .route("/jobs/{job_id}/trigger", post(trigger))
}

/// `201 {"jobId"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    job_id: Uuid,
}

/// Default and largest page of `GET /jobs`.
const LIST_DEFAULT: u32 = 50;
const LIST_MAX: u32 = 500;
/// Attempts at a change that keeps meeting concurrent changes.
const CHANGE_ATTEMPTS: usize = 5;

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A job as every endpoint shows it: its fields, its state and its times.
fn job_view(job: &JobRecord) -> Map<String, Value> {
    let mut view = Map::new();
    view.insert("id".into(), json!(job.id));
    view.extend(render_spec(&job.spec));
    view.remove("signingSecret");
    view.insert(
        "hasSigningSecret".into(),
        json!(job.spec.signing_secret.is_some()),
    );
    view.insert(
        "state".into(),
        json!(JobState::of(job.spec.enabled, job.next_fire_at).as_str()),
    );
    view.insert("nextRunAt".into(), json!(job.next_fire_at.map(rfc3339)));
    view.insert("createdAt".into(), json!(rfc3339(job.created_at)));
    view.insert("updatedAt".into(), json!(rfc3339(job.updated_at)));
    view.insert("version".into(), json!(job.version));
    view
}

/// Creates a job.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = JobInput,
    responses((status = 201, description = "Created", body = super::openapi::Created,
        headers(("Location" = String, description = "The job's URL"))), Errors, BodyErrors))]
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let spec = parse_spec(&body)?;
    let now = state.clock.now();
    let first = spec.schedule.next_after(now);
    let job = NewJob {
        id: Uuid::now_v7(),
        spec,
    };
    let (id, schedule, api, kind) = (
        job.id,
        job.spec.schedule.expr().to_owned(),
        job.spec.api.to_string(),
        job.spec.delivery.as_str(),
    );
    state
        .jobs
        .insert(JobRow {
            job,
            first_fire: first,
            created_at: now,
        })
        .await?;
    tracing::info!(job_id = %id, %schedule, %api, r#type = kind, "job created");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/jobs/{id}"))],
        Json(Created { job_id: id }),
    ))
}

/// Lists jobs in creation order, a page at a time.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<Uuid>, Query, description = "`nextCursor` of the previous page"),
        ("state" = Option<super::openapi::JobState>, Query, description = "Only jobs in this state"),
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
        .map(|s| {
            s.parse::<JobState>()
                .map_err(|e| ApiError::field("invalid_state", "state", e))
        })
        .transpose()?;
    let mut jobs = state
        .store
        .list_jobs(&JobQuery {
            state: job_state,
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
    let views: Vec<Value> = jobs.iter().map(|j| Value::Object(job_view(j))).collect();
    Ok(Json(json!({ "jobs": views, "nextCursor": next })))
}

/// Reads a job, with its next run and its last execution.
#[utoipa::path(get, path = "/jobs/{jobId}", tag = "jobs", params(("jobId" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = Job), Errors))]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    let (job, last) = tokio::join!(
        state.store.get_job(id),
        state.store.executions_page(id, None, 1)
    );
    let job = job?.ok_or_else(|| not_found(id))?;
    let mut view = job_view(&job);
    let last = last?.into_iter().next().map(ExecutionBody::from);
    view.insert("lastExecution".into(), json!(last));
    Ok(Json(Value::Object(view)))
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
    let job = apply_change(&state, id, |current| {
        let mut merged = render_spec(current);
        merged.extend(patch.clone());
        parse_spec(&merged)
    })
    .await?;
    Ok(Json(Value::Object(job_view(&job))))
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

async fn set_enabled(
    state: AppState,
    job_id: &str,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    let id = parse_job_id(job_id)?;
    let job = apply_change(&state, id, |current| {
        Ok(JobSpec {
            enabled,
            ..current.clone()
        })
    })
    .await?;
    Ok(Json(Value::Object(job_view(&job))))
}

/// Reads a job, derives its new spec with `edit` and stores it if nothing changed it
/// meanwhile (trying again if something did). An edit that changes nothing stores
/// nothing.
async fn apply_change(
    state: &AppState,
    id: Uuid,
    edit: impl Fn(&JobSpec) -> Result<JobSpec, ApiError>,
) -> Result<JobRecord, ApiError> {
    for _ in 0..CHANGE_ATTEMPTS {
        let current = state
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let spec = edit(&current.spec)?;
        if render_spec(&spec) == render_spec(&current.spec) {
            return Ok(current);
        }
        let now = state.clock.now();
        let rescheduled = spec.schedule.expr() != current.spec.schedule.expr()
            || spec.schedule.tz_name() != current.spec.schedule.tz_name();
        let next = if rescheduled {
            NextFire::At(spec.schedule.next_after(now))
        } else {
            NextFire::Keep
        };
        match state
            .store
            .update_job(id, current.version, &spec, next, now)
            .await?
        {
            Update::Applied {
                version,
                next_fire_at,
            } => {
                settle_change(
                    state,
                    JobChange {
                        id,
                        version,
                        at: now.timestamp_millis(),
                    },
                )
                .await;
                tracing::info!(job_id = %id, version, "job changed");
                return Ok(JobRecord {
                    spec,
                    next_fire_at,
                    updated_at: now,
                    version,
                    ..current
                });
            }
            Update::NotFound => return Err(not_found(id)),
            Update::Stale => continue,
        }
    }
    Err(ApiError::Conflict(format!(
        "job {id} kept changing concurrently; try again"
    )))
}

/// Applies a committed change to this node's gate and, on PostgreSQL, waits until every
/// other node has polled it, so no fire it withdrew is called after the answer.
async fn settle_change(state: &AppState, change: JobChange) {
    state.gate.apply(change);
    if state.store.backend() == Backend::Postgres {
        tokio::time::sleep(state.change_poll + std::time::Duration::from_millis(50)).await;
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
    let now = state.clock.now();
    if !state.store.delete_job(id, now).await? {
        return Err(not_found(id));
    }
    settle_change(
        &state,
        JobChange {
            id,
            version: DELETED,
            at: now.timestamp_millis(),
        },
    )
    .await;
    tracing::info!(job_id = %id, "job deleted");
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
    let (node, epoch) = state.lease.node();
    let fire = state
        .store
        .trigger(id, &node, state.clock.now())
        .await?
        .ok_or_else(|| not_found(id))?;
    let body = json!({
        "executionId": fire.execution_id,
        "scheduledAt": rfc3339(fire.scheduled_at),
    });
    tracing::info!(job_id = %id, execution_id = %fire.execution_id, "manual call");
    // If this node is shutting down the fire stays claimed and is recovered from the store.
    let _ = state.timer.send(vec![Held { fire, epoch }]);
    Ok((StatusCode::ACCEPTED, Json(body)))
}

pub(super) fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}

/// Parses a job id from a path segment.
pub fn parse_job_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::field(
            "invalid_id",
            "jobId",
            format!("{s:?} is not a job id (a UUID)"),
        )
    })
}

/// A query string's parameters, refusing any not in `allowed` and any given twice.
pub(super) fn query_params(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::field(
                "unknown_parameter",
                k.to_string(),
                format!(
                    "unknown query parameter {k:?}; the parameters are {}",
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::field(
                "repeated_parameter",
                k.to_string(),
                format!("query parameter {k:?} is given more than once"),
            ));
        }
    }
    Ok(out)
}

/// The `limit` parameter: 1 to `max`, `default` when absent.
pub(super) fn limit_param(
    params: &HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "invalid_limit",
                "limit",
                format!("limit must be a whole number from 1 to {max}"),
            )),
        },
    }
}
