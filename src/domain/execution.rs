//! Executions: each attempt at a fire, as recorded.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionState {
    /// Due and not started: held by the node that claimed it, or waiting for any node's
    /// claimer when no node holds it.
    Claimed,
    /// Its request left (recorded before sending only when the job needs that).
    Started,
    /// A 2xx answer.
    Succeeded,
    /// Any other answer, or no answer.
    Failed,
    /// An ATMOST_ONCE attempt whose node stopped mid-call: it is never sent again.
    Unknown,
    /// Not called: the job forbids overlapping calls and its previous call still ran.
    Skipped,
}

/// What made a fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The job's schedule.
    Schedule,
    /// A manual call.
    Manual,
}

/// A recorded call: the seed contract's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSummary {
    /// The execution id.
    pub id: Uuid,
    /// When the request left.
    pub executed_at: DateTime<Utc>,
    /// The answer's status, when one came.
    pub status_code: Option<u16>,
    /// How long the call took.
    pub duration_ms: u64,
    /// Whether it succeeded (false for an unknown outcome).
    pub success: bool,
}

/// One attempt with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The execution id.
    pub id: Uuid,
    /// Its job.
    pub job_id: Uuid,
    /// The instant the schedule named (the trigger instant for a manual call).
    pub scheduled_at: DateTime<Utc>,
    /// When this attempt was due to start.
    pub due_at: DateTime<Utc>,
    /// 1 for the first call, then 2, 3... for retries.
    pub attempt: u32,
    /// Where it stands.
    pub state: ExecutionState,
    /// The node holding it, while it is claimed or running.
    pub node: Option<String>,
    /// When the request left.
    pub executed_at: Option<DateTime<Utc>>,
    /// The answer's status.
    pub status_code: Option<u16>,
    /// How long the call took.
    pub duration_ms: Option<u64>,
    /// Whether it succeeded; none until it ends.
    pub success: Option<bool>,
    /// What went wrong.
    pub error: Option<String>,
    /// What made the fire.
    pub trigger: Trigger,
}
