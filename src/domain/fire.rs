//! Fires: one scheduled instant of one job, and the outcome of one attempt at it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::job::{ConcurrencyPolicy, Delivery, HttpMethod, RetryOverride};

/// How a job calls its target, as it stood when a fire was claimed. Shared by the fires of
/// one job read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Where the call goes.
    pub api: String,
    /// `api` parsed, once for the fires read together rather than on every call; none if it
    /// does not parse (a URL cronhook stored always does), and the call then fails as the
    /// HTTP client reports it.
    pub url: Option<url::Url>,
    /// The method.
    pub method: HttpMethod,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body; none sends cronhook's JSON description of the fire.
    pub body: Option<String>,
    /// The job's own timeout in milliseconds; none uses the global one.
    pub timeout_ms: Option<u64>,
    /// How often the fire may reach the target.
    pub delivery: Delivery,
    /// The job's own retry settings.
    pub retry: RetryOverride,
    /// Whether calls of the job may overlap.
    pub concurrency: ConcurrencyPolicy,
    /// The job's own signing secret.
    pub signing_secret: Option<String>,
    /// The job's version when the fire was claimed: a fire of an older version than the
    /// job's current one was withdrawn by a change and is not called.
    pub version: i64,
}

impl Call {
    /// A plain POST to `api` with every option at its default, at version 1.
    pub fn post(api: &str, delivery: Delivery) -> Call {
        Call {
            api: api.to_owned(),
            url: url::Url::parse(api).ok(),
            method: HttpMethod::Post,
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            delivery,
            retry: RetryOverride::default(),
            concurrency: ConcurrencyPolicy::Allow,
            signing_secret: None,
            version: 1,
        }
    }
}

/// One attempt at one fire, claimed by this node and waiting for its instant.
///
/// A fire's identity is `(job_id, scheduled_at)`; each attempt is its own execution row.
#[derive(Debug, Clone)]
pub struct Fire {
    /// The execution row this attempt writes its outcome to.
    pub execution_id: Uuid,
    /// The job that fires.
    pub job_id: Uuid,
    /// The instant the schedule named: the fire's identity together with the job.
    pub scheduled_at: DateTime<Utc>,
    /// When this attempt should start (the scheduled instant, or later for a retry).
    pub due_at: DateTime<Utc>,
    /// 1 for the first call, then 2, 3... for retries.
    pub attempt: u32,
    /// How to call.
    pub call: Arc<Call>,
}

impl Fire {
    /// The key a target can deduplicate on: stable across retries and re-deliveries of one fire.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.job_id, self.scheduled_at.timestamp_millis())
    }
}

/// The recorded end of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx answer.
    Succeeded,
    /// Any other answer, or no answer.
    Failed,
}

/// What one attempt did, as it is written to the store.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The execution row.
    pub execution_id: Uuid,
    /// The node id that held the attempt when it was called: the outcome is stored only
    /// while that node still holds it, so a late node cannot overwrite what another
    /// recorded.
    pub node: Arc<str>,
    /// When the request left.
    pub executed_at: DateTime<Utc>,
    /// The answer's status, if an answer came.
    pub status_code: Option<u16>,
    /// Time from sending to the end of the answer (or the failure).
    pub duration_ms: u64,
    /// Success or failure.
    pub verdict: Verdict,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// The next attempt, stored in the same transaction so a crash cannot lose it.
    pub retry: Option<Fire>,
}
