//! Fires: one scheduled instant of one job, and the outcome of one attempt at it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::job::{Delivery, RetryOverride};

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
    /// Where the call goes.
    pub api: Arc<str>,
    /// How often the fire may reach the target.
    pub delivery: Delivery,
    /// The job's own retry settings.
    pub retry: RetryOverride,
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
