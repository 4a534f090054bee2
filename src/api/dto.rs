//! The API's wire types: what handlers parse requests into and build answers from, so the
//! OpenAPI document, derived from these same types, cannot drift from what is accepted and
//! returned. Wire spellings live here; the domain types they convert to have none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

use super::params::rfc3339;
use crate::domain::execution::{self, ExecutionSummary};
use crate::domain::job::{self as domain, JobRecord, RetryOverride};

/// Every error: `{"error": {"code", "message", "field"?}}`.
#[derive(Serialize, ToSchema)]
pub struct Error {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable reason, e.g. `invalid_schedule`, `not_found`, `unauthorized`.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// The input field at fault, when one is.
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// The errors any endpoint may answer.
#[derive(IntoResponses)]
pub enum Errors {
    /// Invalid input: body, path or query parameter.
    #[response(status = 400)]
    BadRequest(Error),
    /// `API_TOKEN` is set and no valid bearer token was given.
    #[response(status = 401)]
    Unauthorized(Error),
    /// No such job or execution.
    #[response(status = 404)]
    NotFound(Error),
    /// The request target is over 8 KiB.
    #[response(status = 414)]
    UriTooLong(Error),
    /// The request's headers are over 16 KiB.
    #[response(status = 431)]
    HeadersTooLarge(Error),
    /// The database is unavailable; try again.
    #[response(status = 503)]
    Unavailable(Error),
}

/// The errors of endpoints that take a JSON body, besides [`Errors`].
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// The body did not arrive within `BODY_TIMEOUT_MS`.
    #[response(status = 408)]
    BodyTimeout(Error),
    /// The body is over 64 KiB.
    #[response(status = 413)]
    TooLarge(Error),
    /// The body is not `application/json`, or not UTF-8.
    #[response(status = 415)]
    UnsupportedMediaType(Error),
}

/// `From` both ways between a wire enum and the domain enum of the same variants: a variant
/// added to one and not the other does not compile.
macro_rules! same_variants {
    ($wire:ident, $domain:path, $($v:ident),+) => {
        impl From<$wire> for $domain {
            fn from(w: $wire) -> Self { match w { $($wire::$v => <$domain>::$v),+ } }
        }
        impl From<$domain> for $wire {
            fn from(d: $domain) -> Self { match d { $(<$domain>::$v => $wire::$v),+ } }
        }
    };
}

/// Delivery type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum Delivery {
    #[serde(rename = "ATLEAST_ONCE")]
    AtLeastOnce,
    #[serde(rename = "ATMOST_ONCE")]
    AtMostOnce,
}
same_variants!(Delivery, domain::Delivery, AtLeastOnce, AtMostOnce);

/// HTTP method of the calls (accepted in any case).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}
same_variants!(Method, domain::HttpMethod, Get, Post, Put, Patch, Delete);

/// Misfire policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Misfire {
    One,
    All,
    None,
}
same_variants!(Misfire, domain::MisfirePolicy, One, All, None);

/// Concurrency policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    Allow,
    Forbid,
}
same_variants!(Concurrency, domain::ConcurrencyPolicy, Allow, Forbid);

/// A job's state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Active,
    Paused,
    Finished,
}
same_variants!(JobState, domain::JobState, Active, Paused, Finished);

/// Where an execution stands; `claimed` with no node is waiting for any node's claimer.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionState {
    Claimed,
    Started,
    Succeeded,
    Failed,
    Unknown,
    Skipped,
}
same_variants!(
    ExecutionState,
    execution::ExecutionState,
    Claimed,
    Started,
    Succeeded,
    Failed,
    Unknown,
    Skipped
);

/// What made a fire.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
}
same_variants!(Trigger, execution::Trigger, Schedule, Manual);

/// Retry settings; fields left out take the global `RETRY_*` defaults.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    #[schema(minimum = 0, maximum = 86400000)]
    pub backoff_ms: Option<u64>,
    #[schema(minimum = 0, maximum = 86400000)]
    pub max_backoff_ms: Option<u64>,
}

impl Retry {
    /// The job's settings; none when every one is the default.
    pub fn of(r: RetryOverride) -> Option<Retry> {
        (r != RetryOverride::default()).then_some(Retry {
            max_attempts: r.max_attempts,
            backoff_ms: r.backoff_ms,
            max_backoff_ms: r.max_backoff_ms,
        })
    }
}

/// A job to create: what `POST /jobs` parses its body into. `PATCH` takes any subset of
/// the same fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobInput {
    /// A label, 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// Cron expression, 5 or 6 fields (seconds first), at most 256 bytes.
    #[schema(
        example = "*/10 * * * * *",
        max_length = 256,
        pattern = "^\\s*[0-9A-Za-z*/,?#-]+(\\s+[0-9A-Za-z*/,?#-]+){4,5}\\s*$"
    )]
    pub schedule: String,
    /// IANA time zone (default `UTC`).
    #[schema(schema_with = time_zone)]
    pub timezone: Option<String>,
    /// Target URL (`http` or `https`), at most 2048 bytes.
    #[schema(
        example = "https://example.com/hook",
        max_length = 2048,
        pattern = "^https?://[^\\s/?#]+"
    )]
    pub api: String,
    #[serde(rename = "type")]
    pub delivery: Option<Delivery>,
    pub method: Option<Method>,
    /// Extra request headers: names are HTTP tokens, values visible ASCII (at most 4096
    /// bytes); `Host`, `Content-Length`, hop-by-hop headers, `Idempotency-Key` and
    /// `X-Cronhook-*` are refused.
    #[schema(schema_with = headers)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body (not with `GET`), at most 32 KiB, without NUL characters.
    #[schema(max_length = 32768)]
    pub body: Option<String>,
    #[schema(minimum = 1, maximum = 600000)]
    pub timeout_ms: Option<u64>,
    pub retry: Option<Retry>,
    pub misfire_policy: Option<Misfire>,
    pub concurrency_policy: Option<Concurrency>,
    pub enabled: Option<bool>,
    /// This job's signing secret, 16 to 256 visible ASCII characters.
    #[schema(pattern = "^[!-~]{16,256}$")]
    pub signing_secret: Option<String>,
    /// Calls every fire a fixed offset in `[0, spreadMs)` after its scheduled instant,
    /// derived from the job's id (default 0: on the instant). Jobs sharing a schedule then
    /// fall due spread across the window instead of all at once; `scheduledAt` and the
    /// `Idempotency-Key` still name the instant, `dueAt` shows when the fire was due.
    #[schema(minimum = 0, maximum = 86400000)]
    pub spread_ms: Option<u64>,
}

impl From<&domain::JobSpec> for JobInput {
    /// The body that would create `spec`: every field, unset ones as null.
    fn from(spec: &domain::JobSpec) -> Self {
        JobInput {
            name: spec.name.clone(),
            schedule: spec.schedule.expr().to_owned(),
            timezone: Some(spec.schedule.tz_name().to_owned()),
            api: spec.api.as_str().to_owned(),
            delivery: Some(spec.delivery.into()),
            method: Some(spec.method.into()),
            headers: Some(spec.headers.iter().cloned().collect()),
            body: spec.body.clone(),
            timeout_ms: spec.timeout_ms,
            retry: Retry::of(spec.retry),
            misfire_policy: Some(spec.misfire.into()),
            concurrency_policy: Some(spec.concurrency.into()),
            enabled: Some(spec.enabled),
            signing_secret: spec.signing_secret.clone(),
            spread_ms: Some(spec.spread_ms),
        }
    }
}

/// Request headers as a job sets them.
pub fn headers() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, SchemaType};
    use utoipa::openapi::{ObjectBuilder, Type};
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some("^[\\t -~]*$"))
        .max_length(Some(4096));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(AdditionalProperties::RefOr(value.build().into())))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .max_length(Some(256))
                .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")),
        ))
        .max_properties(Some(50))
        .build()
}

/// An IANA time zone name, or null for UTC.
pub fn time_zone() -> utoipa::openapi::Object {
    zones(true)
}

/// The IANA time zone names cronhook knows, and null when `nullable`.
fn zones(nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::Type;
    let types = if nullable {
        vec![Type::String, Type::Null]
    } else {
        vec![Type::String]
    };
    let names = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| serde_json::Value::String(tz.name().to_owned()));
    let values: Vec<serde_json::Value> = if nullable {
        names.chain([serde_json::Value::Null]).collect()
    } else {
        names.collect()
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter(types))
        .enum_values(Some(values))
        .description(Some("IANA time zone (default UTC)"))
        .build()
}

/// An IANA time zone name, as a query parameter.
pub struct TimeZoneName;

impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        zones(false).into()
    }
}

impl ToSchema for TimeZoneName {}

/// A change to a job: [`JobInput`] with no field required; null clears an optional one.
pub struct JobPatch;

impl utoipa::PartialSchema for JobPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let mut schema = <JobInput as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.clear();
            object.description =
                Some("Any subset of a job's fields; null clears an optional one.".into());
        }
        schema
    }
}

impl ToSchema for JobPatch {}

/// `201`: the new job's id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub job_id: Uuid,
}

/// A job.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    pub name: Option<String>,
    pub schedule: String,
    pub timezone: String,
    /// The schedule in plain words, with the zone unless it is UTC.
    #[schema(example = "at 09:00 on weekdays, Europe/Paris")]
    pub description: String,
    pub api: String,
    #[serde(rename = "type")]
    pub delivery: Delivery,
    pub method: Method,
    /// Header names, each value shown as `***`: values are write-only (they often hold
    /// credentials); a PATCH without `headers` keeps them.
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub timeout_ms: Option<u64>,
    pub retry: Option<Retry>,
    pub misfire_policy: Misfire,
    pub concurrency_policy: Concurrency,
    pub enabled: bool,
    /// Whether the job has its own signing secret (never shown).
    pub has_signing_secret: bool,
    /// Each fire is called a fixed offset in `[0, spreadMs)` after its scheduled instant.
    pub spread_ms: u64,
    pub state: JobState,
    /// When the next fire is due: the next scheduled instant, plus the job's spread offset.
    pub next_run_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Bumped by every change.
    pub version: i64,
}

impl From<&JobRecord> for Job {
    fn from(job: &JobRecord) -> Self {
        let spec = &job.spec;
        Job {
            id: job.id,
            name: spec.name.clone(),
            schedule: spec.schedule.expr().to_owned(),
            timezone: spec.schedule.tz_name().to_owned(),
            description: spec.schedule.describe(),
            api: spec.api.as_str().to_owned(),
            delivery: spec.delivery.into(),
            method: spec.method.into(),
            // Write-only, like the signing secret: header values are often credentials.
            headers: spec
                .headers
                .iter()
                .map(|(name, _)| (name.clone(), MASKED.to_owned()))
                .collect(),
            body: spec.body.clone(),
            timeout_ms: spec.timeout_ms,
            retry: Retry::of(spec.retry),
            misfire_policy: spec.misfire.into(),
            concurrency_policy: spec.concurrency.into(),
            enabled: spec.enabled,
            has_signing_secret: spec.signing_secret.is_some(),
            spread_ms: spec.spread_ms,
            state: job.state().into(),
            next_run_at: job.next_fire_at.map(rfc3339),
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            version: job.version,
        }
    }
}

/// What an answer shows in place of a header value.
pub const MASKED: &str = "***";

/// A job with its newest recorded execution (`GET /jobs/{jobId}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    /// The newest recorded execution; null before the first.
    pub last_execution: Option<Execution>,
}

/// A page of jobs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<Uuid>,
}

/// One execution, exactly the contract's fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: Uuid,
    pub executed_at: String,
    /// Null when no answer came.
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub success: bool,
}

impl From<ExecutionSummary> for Execution {
    fn from(e: ExecutionSummary) -> Self {
        Execution {
            id: e.id,
            executed_at: rfc3339(e.executed_at),
            status_code: e.status_code,
            duration_ms: e.duration_ms,
            success: e.success,
        }
    }
}

/// One execution with its details.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    pub id: Uuid,
    pub job_id: Uuid,
    pub scheduled_at: String,
    pub due_at: String,
    pub attempt: u32,
    pub state: ExecutionState,
    pub trigger: Trigger,
    /// The node holding it, while it is claimed or running.
    pub node: Option<String>,
    pub executed_at: Option<String>,
    pub status_code: Option<u16>,
    pub duration_ms: Option<u64>,
    pub success: Option<bool>,
    pub error: Option<String>,
}

impl From<execution::Execution> for ExecutionDetail {
    fn from(e: execution::Execution) -> Self {
        ExecutionDetail {
            id: e.id,
            job_id: e.job_id,
            scheduled_at: rfc3339(e.scheduled_at),
            due_at: rfc3339(e.due_at),
            attempt: e.attempt,
            state: e.state.into(),
            trigger: e.trigger.into(),
            node: e.node,
            executed_at: e.executed_at.map(rfc3339),
            status_code: e.status_code,
            duration_ms: e.duration_ms,
            success: e.success,
            error: e.error,
        }
    }
}

/// `202`: the manual call's execution.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Triggered {
    pub execution_id: Uuid,
    pub scheduled_at: String,
}

/// The next instants of an expression.
#[derive(Serialize, ToSchema)]
pub struct CronNext {
    pub expr: String,
    pub timezone: String,
    /// The expression in plain words, with the zone unless it is UTC.
    #[schema(example = "every 10 seconds")]
    pub description: String,
    pub next: Vec<String>,
}

/// Liveness of the store and the worker queue.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `healthy`, `degraded` (serving, but due fires have waited over 1 s) or `unhealthy`.
    pub status: String,
    pub timestamp: String,
    /// Why it is degraded or unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub worker: WorkerHealth,
}

/// The worker queue.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerHealth {
    /// Fires due and waiting to start.
    pub queue_size: u64,
    /// Calls in flight, slow calls included.
    pub active_workers: u64,
    /// Calls in flight that outlived SLOW_CALL_MS and gave their worker back.
    pub slow_calls: u64,
    /// How long the longest-waiting due fire has waited past its instant (ms).
    pub behind_ms: u64,
}

/// What `/dummy` received.
#[derive(Serialize, ToSchema)]
pub struct DummyReply {
    pub ok: bool,
    pub received: serde_json::Value,
}
