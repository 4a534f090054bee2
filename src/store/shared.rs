//! The store operations whose SQL is the same on both databases, written once as generic
//! code over sqlx's [`Database`]: a backend names its pool and its two differences of
//! dialect ([`Sql`]), and gets [`CommonOps`]. Statements use `$n` parameters, which
//! PostgreSQL and SQLite both accept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::claim::{HistoryRow, missed_error};
use super::insert::{JOB_CHUNK, insert_jobs_query};
use super::rows::{self, CallRow};
use super::{
    Census, Changed, ClaimParams, Exclusive, Handback, JobChange, JobQuery, JobRow, Misfires,
    NextFire, Recovered, StoreError, Triggered, UNKNOWN_OUTCOME, Update, from_ms, to_ms,
};
use crate::clock::Clock;
use crate::domain::execution::{Execution, ExecutionSummary};
use crate::domain::job::{JobRecord, JobSpec, MisfirePolicy, spread_offset_ms};
use crate::domain::plan::{Missed, Window};

/// Attempts handed back by one statement: three parameters each, well under both
/// databases' bounds on bound parameters.
const HANDBACK_CHUNK: usize = 1000;

/// A backend of the shared operations: its pool and where its dialect differs.
pub trait Sql: Send + Sync {
    /// The sqlx database.
    type DB: Database;
    /// Begins a transaction that writes: SQLite takes its write lock up front
    /// (`BEGIN IMMEDIATE`), so a transaction that reads first cannot deadlock on upgrade.
    const BEGIN_WRITE: &'static str;
    /// Reads a job's `version` and `next_fire_at` by id (`$1`), locking its row for the
    /// transaction where the database locks rows (SQLite holds the whole write lock).
    const LOCK_JOB: &'static str;
    /// Announces a job change to the other nodes when the transaction commits; none where
    /// one node runs.
    const ANNOUNCE_CHANGE: Option<&'static str>;
    /// The two statements that shed late waiting first attempts ([`rows::shed_waiting`]),
    /// with the backend's row lock.
    const SHED_WAITING: [&'static str; 2];
    /// Run first in a shed's transaction: bounds how long it may take where the database
    /// can (a shed left running holds back the cleanup of the rows it scans).
    const SHED_BOUND: Option<&'static str>;

    /// The connection pool.
    fn pool(&self) -> &Pool<Self::DB>;
}

/// The operations whose SQL is the same on both databases; a supertrait of
/// [`super::Store`], implemented once for every [`Sql`] backend.
#[async_trait]
pub trait CommonOps {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores new jobs in one transaction: all of them or, on error, none.
    async fn insert_jobs(&self, jobs: &[JobRow]) -> Result<(), StoreError>;

    /// Whether a job exists.
    async fn job_exists(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Forgets a node that stopped cleanly.
    async fn remove_node(&self, node: &str) -> Result<(), StoreError>;

    /// Marks an ATMOST_ONCE attempt started, durably, before its request leaves. False when
    /// the attempt is no longer this node's to start.
    async fn mark_started(
        &self,
        execution: Uuid,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Hands back attempts their node holds but did not send, each to wait until its
    /// `due_at`, in one transaction: claimed ones, or ones whose start was recorded though
    /// the acknowledgement was lost (then an ATMOST_ONCE attempt is recorded unknown
    /// instead: its start is never undone). Returns how many were still their node's. No
    /// started row is left behind to block a job that forbids overlapping calls.
    async fn postpone(&self, attempts: &[Handback]) -> Result<usize, StoreError>;

    /// Records an attempt `node` holds (claimed or started) as ended with an unknown outcome
    /// at `at`, with `error`. False when it is no longer `node`'s.
    async fn abandon(
        &self,
        execution: Uuid,
        node: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError>;

    /// Hands back every fire `node` claimed but did not start, for any node to take.
    async fn release_claimed(&self, node: &str) -> Result<u64, StoreError>;

    /// Hands back the attempts of nodes other than `node` not heard from since
    /// `live_since`: claimed ones, and started ATLEAST_ONCE ones, wait for any claimer
    /// again; started ATMOST_ONCE ones are recorded as unknown at `now`.
    async fn recover(
        &self,
        node: &str,
        live_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Recovered, StoreError>;

    /// Closes the connections.
    async fn close(&self);

    /// Announces that job changes were made, so the other nodes read them now (nothing
    /// where one node runs).
    async fn announce_change(&self) -> Result<(), StoreError>;

    /// Records that the nodes `ids` have read and applied every job change committed
    /// before `at`.
    async fn confirm_read(&self, ids: &[String], at: DateTime<Utc>) -> Result<(), StoreError>;

    /// The nodes heard from since `live_since` that have not confirmed reading the changes
    /// committed before `at`.
    async fn unconfirmed(
        &self,
        live_since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// The job's executions with a recorded outcome, newest first, older than `before`
    /// (the `(executed_at, id)` of the last one seen) when given.
    async fn executions_page(
        &self,
        job: Uuid,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ExecutionSummary>, StoreError>;

    /// One execution of a job, with every detail.
    async fn execution(&self, job: Uuid, id: Uuid) -> Result<Option<Execution>, StoreError>;

    /// One job.
    async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError>;

    /// Jobs by id (creation order), after a cursor, in one state.
    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError>;

    /// Replaces a job's spec if it is still at `expected_version`, in one transaction:
    /// bumps its version, withdraws its claimed attempts due after `now` (the change applies
    /// to them) and sets its next fire.
    async fn update_job(
        &self,
        id: Uuid,
        expected_version: i64,
        spec: &JobSpec,
        next: NextFire,
        now: DateTime<Utc>,
    ) -> Result<Update, StoreError>;

    /// Deletes a job and its executions, leaving a marker other nodes see. False when
    /// there was no such job.
    async fn delete_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Stores a manual call of a job at `now`, waiting for a claimer; none when there is
    /// no such job.
    async fn trigger(&self, job: Uuid, now: DateTime<Utc>)
    -> Result<Option<Triggered>, StoreError>;

    /// Takes or renews the pruning lease for `node` until `until`, when it is free, lapsed
    /// by `now` or already `node`'s. Returns the stored mark (the last execution id the
    /// previous sweep looked at) when `node` holds the lease, `None` when another does.
    async fn prune_lease(
        &self,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Option<Uuid>>, StoreError>;

    /// The jobs of the executions recorded after `mark` (by id, so in creation order),
    /// reading at most `rows` of them: which jobs, how many rows were read and the last id.
    async fn changed_jobs(&self, mark: Option<Uuid>, rows: u32) -> Result<Changed, StoreError>;

    /// Deletes, for each of `jobs`, at most `batch` finished executions beyond its newest
    /// `keep`, one short statement per job.
    async fn prune_jobs(&self, jobs: &[Uuid], keep: u32, batch: u32) -> Result<u64, StoreError>;

    /// Deletes at most `batch` finished executions that ran before `older_than`, any job's,
    /// found through the executions' primary key (an execution is created before it runs).
    async fn prune_aged(&self, older_than: DateTime<Utc>, batch: u32) -> Result<u64, StoreError>;

    /// Stores the mark a finished sweep reached, while `node` holds the lease.
    async fn set_prune_mark(&self, node: &str, mark: Uuid) -> Result<bool, StoreError>;

    /// Jobs changed or deleted at or after `since`.
    async fn changes_since(&self, since: DateTime<Utc>) -> Result<Vec<JobChange>, StoreError>;

    /// Records skipped the late waiting first attempts their jobs' misfire policies skip
    /// (`none`, and `one` when a later one waits), at most [`SHED_LIMIT`] per policy, in a
    /// transaction of its own; returns how many, by policy. Claims apply the same rule to
    /// what they take; this keeps a backlog the claimer has no room for from piling up.
    async fn shed_late(
        &self,
        params: &ClaimParams,
        clock: &dyn Clock,
    ) -> Result<Misfires, StoreError>;

    /// Jobs by state, and the nodes heard from since `live_since`.
    async fn census(&self, live_since: DateTime<Utc>) -> Result<Census, StoreError>;

    /// Starts an attempt of a job whose calls may not overlap: records it started, durably,
    /// unless another attempt of the job is running, in which case records it skipped.
    async fn start_exclusive(
        &self,
        execution: Uuid,
        job: Uuid,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Exclusive, StoreError>;
}

/// How many rows a statement changed: each driver has its own inherent method for it.
pub trait Affected {
    /// Rows changed.
    fn affected(&self) -> u64;
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// Most waiting attempts one shed records skipped per policy.
pub const SHED_LIMIT: u64 = 10_000;

/// Sheds, in the database, the late waiting first attempts their jobs' misfire policies skip
/// (`none`, and `one` when a later one waits), at most [`SHED_LIMIT`] of each per call.
/// `statements` are [`rows::shed_waiting`]'s two, with the backend's row lock. Returns how
/// many it shed, by policy.
async fn shed_waiting<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    statements: [&'static str; 2],
    w: &Window,
) -> Result<Misfires, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: Affected,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    let mut shed = Misfires::default();
    let policies = [
        (Missed::None, MisfirePolicy::None),
        (Missed::Superseded, MisfirePolicy::One),
    ];
    for (statement, (why, policy)) in statements.into_iter().zip(policies) {
        let n = sqlx::query(statement)
            .bind(to_ms(w.now))
            .bind(missed_error(why))
            .bind(to_ms(w.horizon))
            .bind(to_ms(w.misfire_before))
            .bind(SHED_LIMIT as i64)
            .execute(&mut **tx)
            .await?
            .affected();
        shed.add(policy, n);
    }
    let n = shed.none + shed.one;
    if n > 0 {
        tracing::info!(
            fires = n,
            "waiting fires past the misfire threshold: skipped by their jobs' misfire policies"
        );
    }
    Ok(shed)
}

/// Written once for every [`Sql`] backend; the bounds say what the operations need of its
/// database.
#[async_trait]
impl<T> CommonOps for T
where
    T: Sql,
    T::DB: sqlx::database::HasStatementCache,
    for<'c> &'c mut <T::DB as Database>::Connection: Executor<'c, Database = T::DB>,
    for<'a> <T::DB as Database>::Arguments: IntoArguments<T::DB>,
    <T::DB as Database>::Arguments: Default,
    <T::DB as Database>::QueryResult: Affected,
    Uuid: for<'q> Encode<'q, T::DB> + for<'r> Decode<'r, T::DB> + Type<T::DB>,
    i64: for<'q> Encode<'q, T::DB> + for<'r> Decode<'r, T::DB> + Type<T::DB>,
    i32: for<'q> Encode<'q, T::DB> + for<'r> Decode<'r, T::DB> + Type<T::DB>,
    bool: for<'q> Encode<'q, T::DB> + Type<T::DB>,
    String: for<'q> Encode<'q, T::DB> + Type<T::DB>,
    for<'s> &'s str: Encode<'s, T::DB> + Type<T::DB>,
    Option<i32>: for<'q> Encode<'q, T::DB> + Type<T::DB>,
    Option<i64>: for<'q> Encode<'q, T::DB> + Type<T::DB>,
    Option<String>: for<'q> Encode<'q, T::DB> + Type<T::DB>,
    HistoryRow: for<'r> FromRow<'r, <T::DB as Database>::Row>,
    rows::ExecutionRow: for<'r> FromRow<'r, <T::DB as Database>::Row>,
    rows::JobRow: for<'r> FromRow<'r, <T::DB as Database>::Row>,
    rows::Withdrawn: for<'r> FromRow<'r, <T::DB as Database>::Row>,
    JobChange: for<'r> FromRow<'r, <T::DB as Database>::Row>,
    CallRow: for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (i64, Option<i64>): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (i64,): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (i32,): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (Uuid,): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (Option<Uuid>,): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (Uuid, Uuid, i64, i64): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (i64, i64, i64): for<'r> FromRow<'r, <T::DB as Database>::Row>,
    (String,): for<'r> FromRow<'r, <T::DB as Database>::Row>,
{
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    async fn insert_jobs(&self, jobs: &[JobRow]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        for chunk in jobs.chunks(JOB_CHUNK) {
            insert_jobs_query::<T::DB>(chunk)
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job_exists(&self, id: Uuid) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    async fn remove_node(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn mark_started(
        &self,
        execution: Uuid,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(rows::START_CLAIMED)
            .bind(execution)
            .bind(node)
            .bind(to_ms(now))
            .execute(self.pool())
            .await?;
        Ok(done.affected() == 1)
    }

    async fn postpone(&self, attempts: &[Handback]) -> Result<usize, StoreError> {
        if attempts.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        // The usual case, claimed and never started, in one statement per chunk.
        let mut back: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
        for chunk in attempts.chunks(HANDBACK_CHUNK) {
            let mut q = sqlx::QueryBuilder::<T::DB>::new(
                "UPDATE executions SET node_id = NULL, due_at = v.column3 FROM (",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.execution)
                    .push_bind(a.node.to_string())
                    .push_bind(to_ms(a.due_at));
            });
            q.push(
                ") AS v WHERE executions.id = v.column1 AND executions.node_id = v.column2 \
                 AND executions.state = 'claimed' RETURNING executions.id",
            );
            // Not kept prepared: its text changes with the batch's size, and a cache of such
            // statements grows the process (SQLite compiles them in it) for no reuse.
            let ids: Vec<Uuid> = q
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            back.extend(ids);
        }
        let mut total = back.len();
        // The rest: a start recorded though its acknowledgement was lost.
        for a in attempts.iter().filter(|a| !back.contains(&a.execution)) {
            let node: &str = &a.node;
            let mut done = sqlx::query(rows::POSTPONE_UNSENT)
                .bind(a.execution)
                .bind(node)
                .bind(to_ms(a.due_at))
                .execute(&mut *tx)
                .await?
                .affected();
            if done == 0 {
                done = sqlx::query(rows::UNSENT_AT_MOST_ONCE)
                    .bind(a.execution)
                    .bind(node)
                    .bind(to_ms(a.due_at))
                    .bind(rows::UNSENT)
                    .execute(&mut *tx)
                    .await?
                    .affected();
            }
            total += usize::from(done == 1);
        }
        tx.commit().await?;
        Ok(total)
    }

    async fn abandon(
        &self,
        execution: Uuid,
        node: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(rows::ABANDON)
            .bind(execution)
            .bind(node)
            .bind(to_ms(at))
            .bind(error)
            .execute(self.pool())
            .await?;
        Ok(done.affected() == 1)
    }

    async fn release_claimed(&self, node: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE executions SET node_id = NULL WHERE node_id = $1 AND state = 'claimed'",
        )
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(done.affected())
    }

    async fn recover(
        &self,
        node: &str,
        live_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Recovered, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        let resent = sqlx::query(rows::RECLAIM_STARTED_AT_LEAST_ONCE)
            .bind(node)
            .bind(to_ms(live_since))
            .execute(&mut *tx)
            .await?
            .affected();
        let unknown = sqlx::query(rows::UNKNOWN_STARTED)
            .bind(node)
            .bind(to_ms(live_since))
            .bind(UNKNOWN_OUTCOME)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?
            .affected();
        let released = sqlx::query(rows::RELEASE_DEAD_CLAIMS)
            .bind(node)
            .bind(to_ms(live_since))
            .execute(&mut *tx)
            .await?
            .affected();
        tx.commit().await?;
        Ok(Recovered {
            released: resent + released,
            unknown,
        })
    }

    async fn close(&self) {
        self.pool().close().await;
    }

    async fn announce_change(&self) -> Result<(), StoreError> {
        if let Some(announce) = T::ANNOUNCE_CHANGE {
            sqlx::query(announce).execute(self.pool()).await?;
        }
        Ok(())
    }

    async fn confirm_read(&self, ids: &[String], at: DateTime<Utc>) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query("UPDATE nodes SET seen_at = $2 WHERE id = $1 AND seen_at < $2")
                .bind(id.as_str())
                .bind(to_ms(at))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    async fn unconfirmed(
        &self,
        live_since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM nodes WHERE heartbeat_at >= $1 AND seen_at < $2")
                .bind(to_ms(live_since))
                .bind(to_ms(at))
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn executions_page(
        &self,
        job: Uuid,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        let (at, id) = before.map_or((i64::MAX, Uuid::max()), |(t, id)| (to_ms(t), id));
        let rows: Vec<HistoryRow> = sqlx::query_as(rows::HISTORY_PAGE)
            .bind(job)
            .bind(at)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn execution(&self, job: Uuid, id: Uuid) -> Result<Option<Execution>, StoreError> {
        let row: Option<rows::ExecutionRow> = sqlx::query_as(rows::EXECUTION_BY_ID)
            .bind(id)
            .bind(job)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Into::into))
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<rows::JobRow> = sqlx::query_as(rows::JOB_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(JobRecord::try_from).transpose()
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let found: Vec<rows::JobRow> = rows::list_jobs_query::<T::DB>(query)
            .build_query_as()
            .fetch_all(self.pool())
            .await?;
        found.into_iter().map(JobRecord::try_from).collect()
    }

    async fn update_job(
        &self,
        id: Uuid,
        expected_version: i64,
        spec: &JobSpec,
        next: NextFire,
        now: DateTime<Utc>,
    ) -> Result<Update, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        let current: Option<(i64, Option<i64>)> = sqlx::query_as(T::LOCK_JOB)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((version, stored_next)) = current else {
            return Ok(Update::NotFound);
        };
        if version != expected_version {
            return Ok(Update::Stale);
        }
        let withdrawn: Vec<rows::Withdrawn> = sqlx::query_as(rows::WITHDRAW_CLAIMED)
            .bind(id)
            .bind(to_ms(now))
            .fetch_all(&mut *tx)
            .await?;
        let offset = spread_offset_ms(id, spec.spread_ms);
        let next_fire_at = match next {
            NextFire::At(at) => at.map(to_ms),
            NextFire::Keep => rows::kept_next(stored_next, &withdrawn, offset),
        };
        let q = sqlx::query(rows::UPDATE_JOB).bind(id);
        rows::bind_spec(q, spec)
            .bind(next_fire_at)
            .bind(to_ms(now))
            .bind(version)
            .bind(spec.signing_secret.clone())
            .bind(spec.spread_ms as i64)
            .bind(offset)
            .execute(&mut *tx)
            .await?;
        if let Some(announce) = T::ANNOUNCE_CHANGE {
            sqlx::query(announce).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Update::Applied {
            version: version + 1,
            next_fire_at: next_fire_at.map(from_ms),
        })
    }

    async fn delete_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        let gone = sqlx::query(rows::DELETE_JOB)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .affected();
        if gone > 0 {
            sqlx::query(rows::MARK_DELETED)
                .bind(id)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query(rows::FORGET_DELETED)
                .bind(to_ms(now) - rows::DELETED_KEPT_MS)
                .execute(&mut *tx)
                .await?;
            if let Some(announce) = T::ANNOUNCE_CHANGE {
                sqlx::query(announce).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn trigger(
        &self,
        job: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Triggered>, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        let found: Option<(i64, Option<i64>)> = sqlx::query_as(T::LOCK_JOB)
            .bind(job)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let execution_id = Uuid::now_v7();
        // A fire is (job, instant): a manual call takes the first free millisecond.
        let mut at = to_ms(now);
        while sqlx::query(rows::INSERT_MANUAL)
            .bind(execution_id)
            .bind(job)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .affected()
            == 0
        {
            at += 1;
        }
        tx.commit().await?;
        Ok(Some(Triggered {
            execution_id,
            scheduled_at: from_ms(at),
        }))
    }

    async fn prune_lease(
        &self,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Option<Uuid>>, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        let taken = sqlx::query(rows::TAKE_PRUNE_LEASE)
            .bind(node)
            .bind(to_ms(until))
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?
            .affected();
        let mark = if taken == 1 {
            let mark: Option<Uuid> = sqlx::query_scalar(rows::PRUNE_MARK)
                .fetch_one(&mut *tx)
                .await?;
            Some(mark)
        } else {
            None
        };
        tx.commit().await?;
        Ok(mark)
    }

    async fn changed_jobs(&self, mark: Option<Uuid>, rows: u32) -> Result<Changed, StoreError> {
        let groups: Vec<(Uuid, Uuid, i64, i64)> = sqlx::query_as(rows::CHANGED_JOBS)
            .bind(mark.unwrap_or(Uuid::nil()))
            .bind(i64::from(rows))
            .fetch_all(self.pool())
            .await?;
        Ok(Changed {
            rows: groups.iter().map(|g| g.2 as u64).sum(),
            last: groups.iter().map(|g| g.1).max(),
            open: groups.iter().filter(|g| g.3 > 0).map(|g| g.0).collect(),
            jobs: groups.into_iter().map(|g| g.0).collect(),
        })
    }

    async fn prune_jobs(&self, jobs: &[Uuid], keep: u32, batch: u32) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for &id in jobs {
            // Batch after batch, so a job far over its bound (a lowered HISTORY_KEEP) is
            // brought down in this visit: it is not visited again until it runs again.
            loop {
                let n = sqlx::query(rows::PRUNE_BEYOND)
                    .bind(id)
                    .bind(i64::from(batch))
                    .bind(i64::from(keep))
                    .execute(self.pool())
                    .await?
                    .affected();
                deleted += n;
                if n < u64::from(batch) {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    async fn prune_aged(&self, older_than: DateTime<Utc>, batch: u32) -> Result<u64, StoreError> {
        let before = uuid::Builder::from_unix_timestamp_millis(
            u64::try_from(to_ms(older_than)).unwrap_or(0),
            &[0; 10],
        )
        .into_uuid();
        Ok(sqlx::query(rows::PRUNE_AGED)
            .bind(before)
            .bind(to_ms(older_than))
            .bind(i64::from(batch))
            .execute(self.pool())
            .await?
            .affected())
    }

    async fn set_prune_mark(&self, node: &str, mark: Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query(rows::SET_PRUNE_MARK)
            .bind(node)
            .bind(mark)
            .execute(self.pool())
            .await?
            .affected()
            == 1)
    }

    async fn changes_since(&self, since: DateTime<Utc>) -> Result<Vec<JobChange>, StoreError> {
        Ok(sqlx::query_as(rows::CHANGES_SINCE)
            .bind(to_ms(since))
            .fetch_all(self.pool())
            .await?)
    }

    async fn shed_late(
        &self,
        params: &ClaimParams,
        clock: &dyn Clock,
    ) -> Result<Misfires, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        if let Some(bound) = T::SHED_BOUND {
            sqlx::query(bound).execute(&mut *tx).await?;
        }
        // The window is read only now: waiting for a connection must not make it stale.
        let w = Window::new(
            clock.now(),
            params.lookahead,
            params.misfire_threshold,
            params.max_catchup,
        );
        let shed = shed_waiting(&mut tx, T::SHED_WAITING, &w).await?;
        tx.commit().await?;
        Ok(shed)
    }

    async fn census(&self, live_since: DateTime<Utc>) -> Result<Census, StoreError> {
        let (enabled, paused, nodes): (i64, i64, i64) = sqlx::query_as(rows::CENSUS)
            .bind(to_ms(live_since))
            .fetch_one(self.pool())
            .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Census {
            enabled: n(enabled),
            paused: n(paused),
            nodes: n(nodes),
        })
    }

    async fn start_exclusive(
        &self,
        execution: Uuid,
        job: Uuid,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<Exclusive, StoreError> {
        let mut tx = self.pool().begin_with(T::BEGIN_WRITE).await?;
        sqlx::query(T::LOCK_JOB).bind(job).execute(&mut *tx).await?;
        let running: i64 = sqlx::query_scalar(rows::OTHER_RUNNING)
            .bind(job)
            .bind(execution)
            .fetch_one(&mut *tx)
            .await?;
        let (query, done) = if running > 0 {
            let skip = sqlx::query(rows::SKIP_CLAIMED);
            (
                skip.bind(execution)
                    .bind(node)
                    .bind(to_ms(now))
                    .bind(rows::SKIPPED),
                Exclusive::Skipped,
            )
        } else {
            let start = sqlx::query(rows::START_CLAIMED);
            (
                start.bind(execution).bind(node).bind(to_ms(now)),
                Exclusive::Started,
            )
        };
        let changed = query.execute(&mut *tx).await?.affected();
        tx.commit().await?;
        Ok(if changed == 1 {
            done
        } else {
            Exclusive::NotOurs
        })
    }
}
