//! The store: the single source of truth for jobs, fires and nodes.
//!
//! One trait, [`Store`]: the operations whose SQL is the same on both databases are written
//! once, generically ([`CommonOps`]); the few that differ have one implementation per
//! database ([`postgres`], [`sqlite`]). One conformance suite (`tests/store_conformance.rs`)
//! runs every operation against both. SQL lives only here, and the store speaks domain types
//! only: how values are spelled in the database is its own business (`spelling.rs`).

mod claim;
pub mod group;
mod insert;
pub mod postgres;
mod rows;
mod shared;
mod spelling;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::fire::{Fire, Outcome};
use crate::domain::job::{JobState, NewJob};

pub use claim::ScheduleCache;
pub use rows::{DELETED, JobChange, OTHER_RUNNING};
pub use shared::{CommonOps, SHED_LIMIT};

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; the operation may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken database.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if unavailable(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Other(e.to_string())
        }
    }
}

/// Whether `e` says the database is away or cannot take writes for now (worth waiting for),
/// rather than that the request itself is wrong.
pub fn unavailable(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_)
        | E::Tls(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::Protocol(_) => true,
        E::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: connection exceptions (08), serialization failures and deadlocks
            // (40), insufficient resources (53), shutdown, start-up and cancellation (57),
            // read-only after a failover (25006). SQLite, by the primary code of an extended
            // one: busy (5), locked (6), read-only (8), I/O error (10), full (13). Which
            // database answered decides: a PostgreSQL SQLSTATE such as 22021 is digits too.
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c)) || code == "25006"
            } else {
                let primary = code.parse::<i32>().ok().map(|c| c & 0xff);
                matches!(primary, Some(5 | 6 | 8 | 10 | 13))
            }
        }
        _ => false,
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL: any number of nodes.
    Postgres,
    /// An SQLite file: one node.
    Sqlite,
}

/// A new job as stored: the job, its first fire and its creation instant.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// The validated job.
    pub job: NewJob,
    /// Its first fire; none for a schedule that never fires again.
    pub first_fire: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A page of jobs to list.
#[derive(Debug, Clone, Copy)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs with a greater id.
    pub after: Option<Uuid>,
    /// Most jobs returned.
    pub limit: u32,
}

/// How a change sets the job's next fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextFire {
    /// Recomputed by the caller (the schedule changed).
    At(Option<DateTime<Utc>>),
    /// Kept, moved back to the earliest withdrawn instant so none is lost; misfire policy
    /// applies to instants that passed meanwhile (a resume).
    Keep,
}

/// The jobs with executions recorded after a pruning mark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// Each job once.
    pub jobs: Vec<Uuid>,
    /// Of those, the jobs with an execution read that has not run yet (its row counts
    /// towards the job's history only once it finishes, after the mark has moved on).
    pub open: Vec<Uuid>,
    /// Execution rows read.
    pub rows: u64,
    /// The last execution id read: the next mark.
    pub last: Option<Uuid>,
}

/// What [`Store::start_exclusive`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusive {
    /// Recorded started: make the call.
    Started,
    /// Another call of the job runs: recorded skipped.
    Skipped,
    /// The attempt is no longer this node's (or no longer exists).
    NotOurs,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Applied: the job's new version and next fire.
    Applied {
        /// The version after the change.
        version: i64,
        /// The next fire after the change.
        next_fire_at: Option<DateTime<Utc>>,
    },
    /// No such job.
    NotFound,
    /// The job changed since it was read.
    Stale,
}

/// The bounds of one claim, read against the store's clock inside the claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimParams {
    /// How far ahead of now fires are claimed.
    pub lookahead: Duration,
    /// Fires older than this are misfires.
    pub misfire_threshold: Duration,
    /// Bound on catch-up fires under `MisfirePolicy::All`.
    pub max_catchup: usize,
    /// Most jobs advanced by one claim transaction.
    pub batch: u32,
    /// Most waiting attempts (retries, manual calls, fires handed back) taken by one claim
    /// transaction.
    pub waiting_batch: u32,
    /// Most new first attempts planned by one claim transaction (one job's catch-up is
    /// never split, so a single job may pass it).
    pub max_fires: usize,
}

/// An attempt a node claimed and hands back unsent, to wait in the store until `due_at`.
#[derive(Debug, Clone)]
pub struct Handback {
    /// The attempt.
    pub execution: Uuid,
    /// The node id it was claimed under.
    pub node: Arc<str>,
    /// When it is due again.
    pub due_at: DateTime<Utc>,
}

/// What one claim transaction did.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Attempts now claimed by the node: new first attempts of due jobs, and waiting
    /// attempts (retries, manual calls, fires handed back) due within the window.
    pub fires: Vec<Fire>,
    /// How many of `fires`, from the front, are new first attempts; the rest are waiting
    /// attempts.
    pub first_attempts: usize,
    /// Due jobs read and advanced (some may produce no fire, e.g. skipped misfires).
    pub jobs: usize,
    /// Waiting attempts taken.
    pub waiting: usize,
    /// Misfires met, by policy: due jobs past the misfire threshold, and late waiting
    /// attempts skipped.
    pub misfires: Misfires,
}

/// Jobs by state and live nodes, as the metrics show them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Jobs that fire.
    pub enabled: u64,
    /// Paused jobs.
    pub paused: u64,
    /// Nodes whose heartbeat is recent.
    pub nodes: u64,
}

/// Misfires counted by their job's policy.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Misfires {
    /// Under `misfirePolicy: none`.
    pub none: u64,
    /// Under `one`.
    pub one: u64,
    /// Under `all`.
    pub all: u64,
}

impl Misfires {
    /// Counts `n` misfires of a job with `policy`.
    pub fn add(&mut self, policy: crate::domain::job::MisfirePolicy, n: u64) {
        use crate::domain::job::MisfirePolicy;
        match policy {
            MisfirePolicy::None => self.none += n,
            MisfirePolicy::One => self.one += n,
            MisfirePolicy::All => self.all += n,
        }
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: Misfires) {
        self.none += other.none;
        self.one += other.one;
        self.all += other.all;
    }
}

/// What a recovery sweep did with dead nodes' attempts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Attempts that never started (or ATLEAST_ONCE ones cut off mid-call), handed back to
    /// wait for any node's claimer.
    pub released: u64,
    /// ATMOST_ONCE fires that had started on a dead node, now recorded as unknown.
    pub unknown: u64,
}

/// What [`Store::record_outcomes`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The executions whose outcome was written; the others were no longer their node's.
    pub outcomes: Vec<Uuid>,
    /// The retries stored (a retry whose attempt already exists, or whose job changed or is
    /// gone, is not).
    pub retries: Vec<Uuid>,
}

/// The retries of the outcomes written: a fenced-out outcome schedules none.
pub(crate) fn retries_of<'a>(outcomes: &'a [Outcome], recorded: &[Uuid]) -> Vec<&'a Fire> {
    let recorded: std::collections::HashSet<&Uuid> = recorded.iter().collect();
    outcomes
        .iter()
        .filter(|o| recorded.contains(&o.execution_id))
        .filter_map(|o| o.retry.as_ref())
        .collect()
}

/// A manual call, stored to wait for a claimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggered {
    /// Its execution.
    pub execution_id: Uuid,
    /// The instant it stands for: the trigger instant, or the next free millisecond.
    pub scheduled_at: DateTime<Utc>,
}

/// The operations the scheduler, workers and API need from a database: those whose SQL
/// differs between the databases here, the rest in [`CommonOps`], written once.
#[async_trait]
pub trait Store: CommonOps + Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Records that `node` is alive at `now` (on the shared clock).
    async fn heartbeat(&self, node: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// The database's own clock, which every node follows; none where the database has no
    /// clock of its own to share (SQLite: one node, on its own clock).
    async fn db_time(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Wakes `announced` whenever another node announces a job change (and whenever an
    /// announcement may have been missed), until `stop`. Returns at once where one node runs.
    async fn listen_changes(
        &self,
        announced: Arc<tokio::sync::Notify>,
        stop: tokio_util::sync::CancellationToken,
    );

    /// Records the fires of due jobs within the look-ahead window as claimed by `node`,
    /// advances the jobs' next fire times, and takes for `node` the waiting attempts due
    /// within the window, in one transaction. Now is read from `clock` once the transaction
    /// holds its locks.
    async fn claim_due(
        &self,
        node: &str,
        params: &ClaimParams,
        clock: &dyn Clock,
    ) -> Result<Claimed, StoreError>;

    /// Writes attempts' outcomes, and the retries they schedule (waiting, held by no node),
    /// in one transaction. An outcome is written only while the node that made the call
    /// still holds its attempt, in a state awaiting an outcome; a late one changes nothing
    /// and schedules no retry.
    async fn record_outcomes(&self, outcomes: &[Outcome]) -> Result<Recorded, StoreError>;
}

/// A shared store.
pub type DynStore = Arc<dyn Store>;

/// Connects to the store named by `url` (`postgres://...` or `sqlite://...`) and applies
/// the migrations.
///
/// A setting that cannot work (an unknown scheme, a URL that does not parse, a path that is
/// not an SQLite database) is a [`ConfigError`]; a database that does not answer is not.
/// Either way the message names the store and the variable to fix.
pub async fn connect(url: &str, pool_size: u32) -> Result<DynStore, anyhow::Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let at = postgres::describe(url);
        Ok(Arc::new(
            postgres::PgStore::connect(url, pool_size)
                .await
                .map_err(|e| e.context(format!("cannot use PostgreSQL at {at} (DATABASE_URL)")))?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await.map_err(
            |e| e.context("cannot use the SQLite database of DATABASE_URL"),
        )?))
    } else {
        Err(ConfigError(
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
        )
        .into())
    }
}

/// The database a URL names, for messages: PostgreSQL's host, port and database (never the
/// password), or the SQLite path.
pub fn describe(url: &str) -> String {
    if url.starts_with("sqlite:") {
        format!(
            "the SQLite database {}",
            url.trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
        )
    } else {
        format!("PostgreSQL at {}", postgres::describe(url))
    }
}

/// A setting that cannot work, as opposed to a database that does not answer: the process
/// exits with code 2, as for any other bad setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The error text recorded for an ATMOST_ONCE fire whose node died mid-call.
pub(crate) const UNKNOWN_OUTCOME: &str =
    "outcome unknown: the node running the call stopped before recording it";
