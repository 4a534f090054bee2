//! Rows both backends read and the SQL they share. Statements here use `$n` parameters,
//! which PostgreSQL and SQLite both accept, and only syntax both understand.

use std::sync::Arc;

use uuid::Uuid;

use super::from_ms;
use super::spelling::Stored;
use crate::domain::execution::{Execution, ExecutionState, Trigger};
use crate::domain::fire::Call;
use crate::domain::job::{
    ConcurrencyPolicy, Delivery, HttpMethod, JobRecord, JobSpec, JobState, MisfirePolicy,
    RetryOverride, TargetUrl,
};
use crate::domain::schedule::Schedule;

/// The job columns a call needs, read with the job aliased `j`.
macro_rules! call_columns {
    () => {
        "j.api, j.method, j.headers, j.body, j.timeout_ms, j.delivery, j.retry_max_attempts, \
         j.retry_backoff_ms, j.retry_max_backoff_ms, j.concurrency_policy, j.signing_secret, \
         j.version"
    };
}
pub(crate) use call_columns;

/// The call columns of a job, as [`call_columns!`] selects them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CallRow {
    pub api: String,
    pub method: String,
    pub headers: Option<String>,
    pub body: Option<String>,
    pub timeout_ms: Option<i64>,
    pub delivery: String,
    pub retry_max_attempts: Option<i32>,
    pub retry_backoff_ms: Option<i64>,
    pub retry_max_backoff_ms: Option<i64>,
    pub concurrency_policy: String,
    pub signing_secret: Option<String>,
    pub version: i64,
}

impl CallRow {
    /// The call, shared by the fires of the job read together, with its URL parsed for them.
    pub fn into_call(self) -> Arc<Call> {
        let mut call = self.into_parts();
        call.url = url::Url::parse(&call.api).ok();
        Arc::new(call)
    }

    /// The call's settings. Methods, types and policies are checked by the schema's
    /// constraints, so the fallbacks never apply to a row cronhook wrote.
    fn into_parts(self) -> Call {
        Call {
            method: HttpMethod::read(&self.method),
            headers: headers_of(self.headers.as_deref()),
            body: self.body,
            timeout_ms: self.timeout_ms.map(|v| v.max(1) as u64),
            delivery: Delivery::read(&self.delivery),
            retry: retry_of(
                self.retry_max_attempts,
                self.retry_backoff_ms,
                self.retry_max_backoff_ms,
            ),
            concurrency: ConcurrencyPolicy::read(&self.concurrency_policy),
            signing_secret: self.signing_secret,
            version: self.version,
            url: None,
            api: self.api,
        }
    }
}

pub(crate) fn retry_of(
    max: Option<i32>,
    backoff: Option<i64>,
    max_backoff: Option<i64>,
) -> RetryOverride {
    RetryOverride {
        max_attempts: max.map(|v| v.max(1) as u32),
        backoff_ms: backoff.map(|v| v.max(0) as u64),
        max_backoff_ms: max_backoff.map(|v| v.max(0) as u64),
    }
}

/// Headers are stored as a JSON array of `[name, value]` pairs, keeping their order.
pub(crate) fn headers_json(headers: &[(String, String)]) -> Option<String> {
    if headers.is_empty() {
        None
    } else {
        serde_json::to_string(headers).ok()
    }
}

fn headers_of(stored: Option<&str>) -> Vec<(String, String)> {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Every column of a job.
macro_rules! job_columns {
    () => {
        "id, name, schedule, timezone, api, method, headers, body, timeout_ms, delivery, \
         misfire_policy, retry_max_attempts, retry_backoff_ms, retry_max_backoff_ms, \
         concurrency_policy, enabled, signing_secret, spread_ms, next_fire_at, created_at, \
         updated_at, version"
    };
}

/// A whole job row: its call columns and the rest.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: Uuid,
    pub name: Option<String>,
    pub schedule: String,
    pub timezone: String,
    pub misfire_policy: String,
    pub enabled: bool,
    pub spread_ms: i64,
    pub next_fire_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[sqlx(flatten)]
    pub call: CallRow,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = super::StoreError;
    fn try_from(r: JobRow) -> Result<Self, Self::Error> {
        let broken = |what: &str, e: String| {
            super::StoreError::Other(format!(
                "job {} has a stored {what} that does not parse: {e}",
                r.id
            ))
        };
        let schedule = Schedule::stored(&r.schedule, &r.timezone)
            .map_err(|e| broken("schedule", e.to_string()))?;
        let call = r.call.into_parts();
        let api = TargetUrl::parse(&call.api).map_err(|e| broken("api", e))?;
        let spec = JobSpec {
            name: r.name,
            schedule,
            api,
            method: call.method,
            headers: call.headers,
            body: call.body,
            timeout_ms: call.timeout_ms,
            delivery: call.delivery,
            misfire: MisfirePolicy::read(&r.misfire_policy),
            retry: call.retry,
            concurrency: call.concurrency,
            enabled: r.enabled,
            signing_secret: call.signing_secret,
            spread_ms: u64::try_from(r.spread_ms).unwrap_or(0),
        };
        Ok(JobRecord {
            id: r.id,
            spec,
            next_fire_at: r.next_fire_at.map(from_ms),
            created_at: from_ms(r.created_at),
            updated_at: from_ms(r.updated_at),
            version: call.version,
        })
    }
}

/// A change to a job: its spec from `$2` to `$16` (bound by [`bind_spec`]), then the next
/// fire `$17` and the instant `$18`, for the job `$1` at version `$19`, its signing secret
/// `$20`, and its spread `$21` with the offset it gives the job `$22`.
pub(crate) const UPDATE_JOB: &str = "UPDATE jobs SET name = $2, schedule = $3, timezone = $4, \
     api = $5, method = $6, headers = $7, body = $8, timeout_ms = $9, delivery = $10, \
     misfire_policy = $11, retry_max_attempts = $12, retry_backoff_ms = $13, \
     retry_max_backoff_ms = $14, concurrency_policy = $15, enabled = $16, next_fire_at = $17, \
     updated_at = $18, version = version + 1, signing_secret = $20, spread_ms = $21, \
     spread_offset_ms = $22 WHERE id = $1 AND version = $19";

/// Binds a spec's columns in [`UPDATE_JOB`] order, after the id.
pub(crate) fn bind_spec<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    spec: &JobSpec,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i32>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(spec.name.clone())
        .bind(spec.schedule.expr().to_owned())
        .bind(spec.schedule.tz_name().to_owned())
        .bind(spec.api.as_str().to_owned())
        .bind(spec.method.stored().to_owned())
        .bind(headers_json(&spec.headers))
        .bind(spec.body.clone())
        .bind(spec.timeout_ms.map(|v| v as i64))
        .bind(spec.delivery.stored().to_owned())
        .bind(spec.misfire.stored().to_owned())
        .bind(spec.retry.max_attempts.map(|v| v as i32))
        .bind(spec.retry.backoff_ms.map(|v| v as i64))
        .bind(spec.retry.max_backoff_ms.map(|v| v as i64))
        .bind(spec.concurrency.stored().to_owned())
        .bind(spec.enabled)
}

/// One execution with every detail.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ExecutionRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub scheduled_at: i64,
    pub due_at: i64,
    pub attempt: i32,
    pub state: String,
    pub node_id: Option<String>,
    pub executed_at: Option<i64>,
    pub status_code: Option<i32>,
    pub duration_ms: Option<i64>,
    pub success: Option<bool>,
    pub error: Option<String>,
    pub trigger: String,
}

/// One execution of one job, every column.
pub(crate) const EXECUTION_BY_ID: &str = "SELECT id, job_id, scheduled_at, due_at, attempt, state, \
     node_id, executed_at, status_code, duration_ms, success, error, trigger FROM executions \
     WHERE id = $1 AND job_id = $2";

/// A page of a job's recorded executions, newest first, before the cursor (`$2`, `$3`).
pub(crate) const HISTORY_PAGE: &str = "SELECT id, executed_at, status_code, duration_ms, success \
     FROM executions WHERE job_id = $1 AND executed_at IS NOT NULL \
     AND state IN ('succeeded', 'failed', 'unknown', 'skipped') \
     AND (executed_at < $2 OR (executed_at = $2 AND id < $3)) \
     ORDER BY executed_at DESC, id DESC LIMIT $4";

/// A job by id.
pub(crate) const JOB_BY_ID: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

/// Withdraws a job's claimed attempts due after `$2`: a change applies to them.
pub(crate) const WITHDRAW_CLAIMED: &str = "DELETE FROM executions WHERE job_id = $1 \
     AND state = 'claimed' AND due_at > $2 RETURNING scheduled_at, attempt, trigger";

/// Deletes a job (its executions go with it).
pub(crate) const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = $1";

/// Marks a job deleted at `$2` for other nodes, and forgets markers older than `$3`.
pub(crate) const MARK_DELETED: &str = "INSERT INTO deleted_jobs (id, deleted_at) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at";
pub(crate) const FORGET_DELETED: &str = "DELETE FROM deleted_jobs WHERE deleted_at < $1";

/// A manual attempt at instant `$3`, waiting for a claimer.
pub(crate) const INSERT_MANUAL: &str = "INSERT INTO executions \
     (id, job_id, scheduled_at, attempt, due_at, state, node_id, trigger) \
     VALUES ($1, $2, $3, 1, $3, 'claimed', NULL, 'manual') \
     ON CONFLICT (job_id, scheduled_at, attempt) DO NOTHING";

/// Hands ATLEAST_ONCE attempt `$1`, recorded started by `$2` though nothing was sent (the
/// acknowledgement of its start was lost), back to wait until `$3`.
pub(crate) const POSTPONE_UNSENT: &str = "UPDATE executions SET state = 'claimed', \
     executed_at = NULL, node_id = NULL, due_at = $3 \
     WHERE id = $1 AND node_id = $2 AND state = 'started' \
     AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = executions.job_id \
     AND j.delivery = 'ATLEAST_ONCE')";

/// Records ATMOST_ONCE attempt `$1`, recorded started by `$2` though nothing was sent, as
/// unknown (`$4`) at `$3`: an ATMOST_ONCE start is never undone.
pub(crate) const UNSENT_AT_MOST_ONCE: &str = "UPDATE executions SET state = 'unknown', \
     success = FALSE, error = $4, node_id = NULL, duration_ms = 0, \
     executed_at = COALESCE(executed_at, $3) \
     WHERE id = $1 AND node_id = $2 AND state = 'started'";

/// The error recorded for an ATMOST_ONCE attempt whose start was recorded but whose
/// acknowledgement was lost.
pub(crate) const UNSENT: &str = "outcome unknown: the start was recorded but its acknowledgement \
     was lost, so the call was not made";

impl From<ExecutionRow> for Execution {
    fn from(r: ExecutionRow) -> Self {
        Execution {
            id: r.id,
            job_id: r.job_id,
            scheduled_at: from_ms(r.scheduled_at),
            due_at: from_ms(r.due_at),
            attempt: r.attempt.max(1) as u32,
            state: ExecutionState::read(&r.state),
            node: r.node_id,
            executed_at: r.executed_at.map(from_ms),
            status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
            duration_ms: r.duration_ms.map(|d| d.max(0) as u64),
            success: r.success,
            error: r.error,
            trigger: Trigger::read(&r.trigger),
        }
    }
}

/// A change to a job other nodes must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct JobChange {
    /// The job.
    pub id: Uuid,
    /// Its version after the change; [`DELETED`] for a deleted job.
    pub version: i64,
    /// When the change committed.
    pub at: i64,
}

/// The version of a deleted job in a [`JobChange`]: above every real one.
pub const DELETED: i64 = i64::MAX;

/// A withdrawn attempt.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Withdrawn {
    pub scheduled_at: i64,
    pub attempt: i32,
    pub trigger: String,
}

/// The next fire a change keeps: the earliest scheduled first attempt it withdrew, if earlier
/// than the stored one, so no instant of the schedule is lost.
/// `offset` is the job's spread offset: the next fire time is a due instant.
pub(crate) fn kept_next(stored: Option<i64>, withdrawn: &[Withdrawn], offset: i64) -> Option<i64> {
    let earliest = withdrawn
        .iter()
        .filter(|w| w.attempt == 1 && w.trigger == "schedule")
        .map(|w| w.scheduled_at + offset)
        .min();
    match (stored, earliest) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Jobs changed (after creation) or deleted since `$1`.
pub(crate) const CHANGES_SINCE: &str = "SELECT id, version, updated_at AS at FROM jobs \
     WHERE version > 1 AND updated_at >= $1 \
     UNION ALL SELECT id, 9223372036854775807 AS version, deleted_at AS at FROM deleted_jobs \
     WHERE deleted_at >= $1";

/// How long deleted-job markers are kept for other nodes to see.
pub(crate) const DELETED_KEPT_MS: i64 = 3_600_000;

/// A page of jobs: by id, after the cursor, in the state asked for.
pub(crate) fn list_jobs_query<DB>(query: &super::JobQuery) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Arguments: Default,
    Uuid: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
{
    let mut q =
        sqlx::QueryBuilder::new(concat!("SELECT ", job_columns!(), " FROM jobs WHERE 1 = 1"));
    if let Some(after) = query.after {
        q.push(" AND id > ").push_bind(after);
    }
    q.push(match query.state {
        None => "",
        Some(JobState::Active) => " AND enabled AND next_fire_at IS NOT NULL",
        Some(JobState::Paused) => " AND NOT enabled",
        Some(JobState::Finished) => " AND enabled AND next_fire_at IS NULL",
    });
    q.push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(query.limit));
    q
}

/// Started `ATLEAST_ONCE` attempts of nodes not heard from since `$2` (other than `$1`) go
/// back to waiting, to be called again: only `ATMOST_ONCE` attempts end as unknown. (An
/// `ATLEAST_ONCE` attempt is recorded started only when its job forbids overlapping calls.)
/// `state IN ('claimed', 'started')` repeats the partial index's condition word for word:
/// SQLite uses a partial index only then, and scans every execution otherwise.
pub(crate) const RECLAIM_STARTED_AT_LEAST_ONCE: &str = "UPDATE executions SET state = 'claimed', \
     executed_at = NULL, node_id = NULL WHERE state IN ('claimed', 'started') AND state = 'started' \
     AND (node_id IS NULL OR (node_id <> $1 AND \
     node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $2))) \
     AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = executions.job_id \
     AND j.delivery = 'ATLEAST_ONCE')";

/// Whether another attempt of job `$1` than `$2` is running.
pub const OTHER_RUNNING: &str =
    "SELECT COUNT(*) FROM executions WHERE job_id = $1 AND state = 'started' AND id <> $2";

/// Marks attempt `$1`, claimed by `$2`, started at `$3`.
pub(crate) const START_CLAIMED: &str = "UPDATE executions SET state = 'started', executed_at = $3 \
     WHERE id = $1 AND node_id = $2 AND state = 'claimed'";

/// Records attempt `$1`, claimed by `$2`, skipped at `$3` for the reason `$4`.
pub(crate) const SKIP_CLAIMED: &str = "UPDATE executions SET state = 'skipped', executed_at = $3, \
     duration_ms = 0, success = FALSE, error = $4, node_id = NULL \
     WHERE id = $1 AND node_id = $2 AND state = 'claimed'";

/// Records attempt `$1`, held by `$2`, ended at `$3` with an unknown outcome (`$4`).
pub(crate) const ABANDON: &str = "UPDATE executions SET state = 'unknown', success = FALSE, \
     error = $4, node_id = NULL, duration_ms = COALESCE(duration_ms, 0), \
     executed_at = COALESCE(executed_at, $3) \
     WHERE id = $1 AND node_id = $2 AND state IN ('claimed', 'started')";

/// Records waiting attempt `$1` skipped at `$2` for the reason `$3` (a misfire).
pub(crate) const SKIP_MISSED: &str = "UPDATE executions SET state = 'skipped', executed_at = $2, \
     duration_ms = 0, success = FALSE, error = $3, node_id = NULL WHERE id = $1";

/// Records skipped, at `$1` with error `$2`, waiting first attempts of scheduled fires due
/// by `$3` whose due instant (the scheduled one plus the job's spread offset) is before `$4`
/// (the misfire threshold) and whose job's policy sheds them,
/// among the first `$5` such attempts of the policy's jobs: `none` all of them, `one` all
/// but each job's latest. The same rule as a claim's (`plan::misfired`), applied in the
/// database so a backlog of them is shed without being read into memory; `$lock` is the
/// backend's row lock.
macro_rules! shed_waiting {
    (none, $lock:literal) => {
        $crate::store::rows::shed_waiting!("none", "SELECT id FROM late", $lock)
    };
    (one, $lock:literal) => {
        $crate::store::rows::shed_waiting!(
            "one",
            "SELECT id FROM (SELECT id, scheduled_at, \
             max(scheduled_at) OVER (PARTITION BY job_id) AS latest FROM late) AS t \
             WHERE scheduled_at < latest",
            $lock
        )
    };
    ($policy:literal, $pick:literal, $lock:literal) => {
        // A join, not `id IN (...)`: a subquery with LIMIT and a row lock is not pulled up
        // into a semi-join, and PostgreSQL may run it again for every waiting row, which
        // grows with the square of the backlog (200 s at 28,000 waiting fires).
        // The join is by id alone: the rows `late` picked are waiting and locked (on
        // SQLite the statement is the only writer), and a filter here that implied the
        // waiting index's predicate let PostgreSQL, on a table not yet analyzed, scan that
        // whole index once per row shed (3.7 s for 2,282 rows).
        concat!(
            "UPDATE executions SET state = 'skipped', executed_at = $1, duration_ms = 0, \
             success = FALSE, error = $2, node_id = NULL \
             FROM (WITH late AS \
             (SELECT e.id, e.job_id, e.scheduled_at FROM executions e \
             JOIN jobs j ON j.id = e.job_id WHERE e.state = 'claimed' AND e.node_id IS NULL \
             AND e.due_at <= $3 AND e.attempt <= 1 AND e.trigger = 'schedule' \
             AND e.scheduled_at + j.spread_offset_ms < $4 AND j.misfire_policy = '",
            $policy,
            "' ORDER BY e.due_at LIMIT $5",
            $lock,
            ") ",
            $pick,
            ") AS shed WHERE executions.id = shed.id"
        )
    };
}
pub(crate) use shed_waiting;

/// The error recorded for a skipped attempt.
pub(crate) const SKIPPED: &str =
    "skipped: the job forbids overlapping calls and its previous call was still running";

/// The next `$2` job ids after `$1`.
/// Deletes at most `$2` finished executions of job `$1` beyond its newest `$3`.
pub(crate) const PRUNE_BEYOND: &str = "DELETE FROM executions WHERE id IN (SELECT id FROM executions \
     WHERE job_id = $1 AND executed_at IS NOT NULL \
     AND state IN ('succeeded', 'failed', 'unknown', 'skipped') \
     ORDER BY executed_at DESC, id DESC LIMIT $2 OFFSET $3)";

/// Deletes at most `$3` finished executions that ran before `$2`, scanning the primary key
/// below `$1` (the first UUIDv7 of that instant: an execution is created before it runs).
pub(crate) const PRUNE_AGED: &str = "DELETE FROM executions WHERE id IN (SELECT id FROM executions \
     WHERE id < $1 AND executed_at < $2 \
     AND state IN ('succeeded', 'failed', 'unknown', 'skipped') ORDER BY id LIMIT $3)";

/// Takes the pruning lease for `$1` until `$2` when it is free, lapsed by `$3`, or `$1`'s.
pub(crate) const TAKE_PRUNE_LEASE: &str = "UPDATE maintenance SET holder = $1, until = $2 \
     WHERE name = 'prune' AND (holder = $1 OR holder IS NULL OR until < $3)";

/// The last execution id the pruning sweeps have looked at.
pub(crate) const PRUNE_MARK: &str = "SELECT mark FROM maintenance WHERE name = 'prune'";

/// Stores the pruning mark `$2`, while `$1` holds the lease.
pub(crate) const SET_PRUNE_MARK: &str =
    "UPDATE maintenance SET mark = $2 WHERE name = 'prune' AND holder = $1";

/// The jobs of at most `$2` executions created after id `$1`: each job once, with the last
/// id, the number of rows read of it, and 1 when one of them has not run yet.
pub(crate) const CHANGED_JOBS: &str = "WITH t AS \
     (SELECT id, job_id, executed_at FROM executions WHERE id > $1 ORDER BY id LIMIT $2) \
     SELECT job_id, (SELECT id FROM t ORDER BY id DESC LIMIT 1), count(*), \
     CAST(max(CASE WHEN executed_at IS NULL THEN 1 ELSE 0 END) AS BIGINT) FROM t GROUP BY job_id";

/// Started `ATMOST_ONCE` attempts of nodes not heard from since `$2` (other than `$1`) are
/// recorded unknown (`$3`) at `$4`; they are never sent again. Run after
/// [`RECLAIM_STARTED_AT_LEAST_ONCE`], which takes the started attempts that may be resent.
pub(crate) const UNKNOWN_STARTED: &str = "UPDATE executions SET state = 'unknown', success = FALSE, \
     error = $3, node_id = NULL, duration_ms = COALESCE(duration_ms, 0), \
     executed_at = COALESCE(executed_at, $4) \
     WHERE state IN ('claimed', 'started') AND state = 'started' \
     AND (node_id IS NULL OR (node_id <> $1 AND \
     node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $2)))";

/// Claimed attempts of nodes not heard from since `$2` (other than `$1`) go back to waiting.
pub(crate) const RELEASE_DEAD_CLAIMS: &str = "UPDATE executions SET node_id = NULL \
     WHERE state IN ('claimed', 'started') AND state = 'claimed' AND node_id IS NOT NULL \
     AND node_id <> $1 AND node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $2)";

/// Enabled jobs, paused jobs, and nodes heard from since `$1`.
pub(crate) const CENSUS: &str = "SELECT \
     (SELECT count(*) FROM jobs WHERE enabled), \
     (SELECT count(*) FROM jobs WHERE NOT enabled), \
     (SELECT count(*) FROM nodes WHERE heartbeat_at >= $1)";
