//! `/jobs`: create a job, read its recent executions.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::json::JsonObject;
use crate::domain::job::{Delivery, MisfirePolicy, NewJob, RetryOverride, TargetUrl};
use crate::domain::schedule::Schedule;
use crate::store::{ExecutionView, JobRow};

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", post(create))
        .route("/jobs/{job_id}/executions", get(executions))
}

/// `201 {"jobId"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    job_id: Uuid,
}

/// One execution, exactly the contract's fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionBody {
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
            executed_at: e.executed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            status_code: e.status_code,
            duration_ms: e.duration_ms,
            success: e.success,
        }
    }
}

/// How many executions the endpoint returns.
const RECENT: u32 = 5;

async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let job = parse_new_job(&body)?;
    let now = state.clock.now();
    let first = job.schedule.next_after(now);
    let (id, schedule, api, kind) = (
        job.id,
        job.schedule.expr().to_owned(),
        job.api.to_string(),
        job.delivery.as_str(),
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

async fn executions(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_job_id(&job_id)?;
    let (exists, recent) = tokio::join!(
        state.store.job_exists(id),
        state.store.recent_executions(id, RECENT)
    );
    if !exists? {
        return Err(ApiError::NotFound(format!("no job {id}")));
    }
    let body: Vec<ExecutionBody> = recent?.into_iter().map(Into::into).collect();
    Ok(Json(body))
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

const FIELDS: [&str; 5] = ["schedule", "api", "type", "misfirePolicy", "retry"];
const RETRY_FIELDS: [&str; 3] = ["maxAttempts", "backoffMs", "maxBackoffMs"];

/// Validates a `POST /jobs` body into a job.
fn parse_new_job(body: &Map<String, Value>) -> Result<NewJob, ApiError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            "unknown_field",
            unknown.clone(),
            format!(
                "unknown field {unknown:?}; the fields are {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let schedule = required_str(body, "schedule")?;
    let schedule = Schedule::parse(schedule)
        .map_err(|e| ApiError::field("invalid_schedule", "schedule", e.to_string()))?;
    let api = required_str(body, "api")?;
    let api = TargetUrl::parse(api).map_err(|e| ApiError::field("invalid_api", "api", e))?;
    let delivery = match optional_str(body, "type")? {
        None => Delivery::AtLeastOnce,
        Some(t) => t
            .parse()
            .map_err(|e: String| ApiError::field("invalid_type", "type", e))?,
    };
    let misfire = match optional_str(body, "misfirePolicy")? {
        None => MisfirePolicy::One,
        Some(m) => m
            .parse()
            .map_err(|e: String| ApiError::field("invalid_misfire_policy", "misfirePolicy", e))?,
    };
    let retry = match body.get("retry") {
        None | Some(Value::Null) => RetryOverride::default(),
        Some(Value::Object(r)) => parse_retry(r)?,
        Some(_) => {
            return Err(ApiError::field(
                "invalid_retry",
                "retry",
                "retry must be an object",
            ));
        }
    };
    Ok(NewJob {
        id: Uuid::now_v7(),
        schedule,
        api,
        delivery,
        misfire,
        retry,
    })
}

fn parse_retry(r: &Map<String, Value>) -> Result<RetryOverride, ApiError> {
    if let Some(unknown) = r.keys().find(|k| !RETRY_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            "unknown_field",
            format!("retry.{unknown}"),
            format!(
                "unknown field retry.{unknown}; the fields are {}",
                RETRY_FIELDS.join(", ")
            ),
        ));
    }
    let int = |k: &str, min: u64, max: u64| -> Result<Option<u64>, ApiError> {
        match r.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::field(
                    "invalid_retry",
                    format!("retry.{k}"),
                    format!("retry.{k} must be a whole number from {min} to {max}"),
                )),
            },
        }
    };
    let retry = RetryOverride {
        max_attempts: int("maxAttempts", 1, 100)?.map(|v| v as u32),
        backoff_ms: int("backoffMs", 0, 86_400_000)?,
        max_backoff_ms: int("maxBackoffMs", 0, 86_400_000)?,
    };
    if let (Some(b), Some(m)) = (retry.backoff_ms, retry.max_backoff_ms)
        && b > m
    {
        return Err(ApiError::field(
            "invalid_retry",
            "retry.backoffMs",
            "retry.backoffMs must not exceed retry.maxBackoffMs",
        ));
    }
    Ok(retry)
}

fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ApiError> {
    optional_str(body, field)?
        .ok_or_else(|| ApiError::field("missing_field", field, format!("{field} is required")))
}

fn optional_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::field(
            "invalid_type_of_field",
            field,
            format!("{field} must be a string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewJob, ApiError> {
        parse_new_job(v.as_object().unwrap())
    }

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::Invalid { field, .. } => field,
            _ => None,
        }
    }

    #[test]
    fn the_seed_body_parses_with_defaults() {
        let job = parse(
            json!({"schedule": "31 10-15 1 * * MON-FRI", "api": "https://localhost:4444/foo"}),
        )
        .unwrap();
        assert_eq!(job.delivery, Delivery::AtLeastOnce);
        assert_eq!(job.misfire, MisfirePolicy::One);
        assert_eq!(job.retry, RetryOverride::default());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"api": "http://x"}), "schedule"),
            (json!({"schedule": "* * * * * *"}), "api"),
            (json!({"schedule": 5, "api": "http://x"}), "schedule"),
            (json!({"schedule": "nope", "api": "http://x"}), "schedule"),
            (json!({"schedule": "* * * * * *", "api": "ftp://x"}), "api"),
            (
                json!({"schedule": "* * * * * *", "api": "http://x", "type": "SOMETIMES"}),
                "type",
            ),
            (
                json!({"schedule": "* * * * * *", "api": "http://x", "misfirePolicy": "some"}),
                "misfirePolicy",
            ),
            (
                json!({"schedule": "* * * * * *", "api": "http://x", "retry": {"maxAttempts": 0}}),
                "retry.maxAttempts",
            ),
            (
                json!({"schedule": "* * * * * *", "api": "http://x", "retry": {"tries": 2}}),
                "retry.tries",
            ),
            (
                json!({"schedule": "* * * * * *", "api": "http://x", "extra": 1}),
                "extra",
            ),
        ];
        for (body, field) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(field_of(err).as_deref(), Some(field), "{body}");
        }
    }
}
