//! The SQLite store: the zero-setup default, for one node.
//!
//! A lock file beside the database makes a second process on the same file refuse to start,
//! since only one node may claim from an SQLite file. Writes that read first take the write
//! lock up front (`BEGIN IMMEDIATE`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Claimed;
use super::claim::{
    DueJob, OpenExecution, ScheduleCache, due_job_columns, open_execution_columns, plan_due,
    split_missed,
};
use super::rows;
use super::shared::Sql;
use super::{Backend, ClaimParams, Misfires, Recorded, Store, StoreError, retries_of, to_ms};
use crate::clock::Clock;
use crate::domain::fire::{Fire, Outcome, Verdict};
use crate::domain::plan::Window;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per multi-row INSERT: well under SQLite's bound on bound parameters.
const CHUNK: usize = 500;

/// An SQLite-backed [`Store`].
pub struct SqliteStore {
    /// The connection pool.
    pool: SqlitePool,
    /// Parsed schedules of the jobs claimed lately.
    schedules: ScheduleCache,
    /// Held for the process's life: the single-node guard (none for in-memory databases).
    _lock: Option<File>,
}

/// Whether `db` can be an SQLite database: its directory exists, and the file, if there is
/// one, is an SQLite database (or empty).
fn check_path(db: &std::path::Path) -> Result<(), super::ConfigError> {
    let bad = |why: &str| super::ConfigError(format!("{}: {why}", db.display()));
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Err(bad("its directory does not exist"));
    }
    match std::fs::metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bad(&e.to_string())),
        Ok(m) if !m.is_file() => Err(bad("not a file")),
        Ok(m) if m.len() == 0 => Ok(()),
        Ok(_) => {
            let mut header = [0u8; 16];
            let read = std::fs::File::open(db)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
            match read {
                Ok(()) if &header == b"SQLite format 3\0" => Ok(()),
                Ok(()) => Err(bad("not an SQLite database")),
                Err(e) => Err(bad(&format!("cannot read it: {e}"))),
            }
        }
    }
}

/// Takes the single-node lock of the database at `db`.
fn lock_database(db: &std::path::Path) -> Result<File, anyhow::Error> {
    let mut path = PathBuf::from(db);
    let name = format!(
        "{}.lock",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    path.set_file_name(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another cronhook process is using the SQLite database {}: SQLite runs a single node \
             (use PostgreSQL to run several)",
            db.display()
        ),
        Err(TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database, takes the single-node lock and migrates.
    pub async fn connect(url: &str) -> Result<Self, anyhow::Error> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| super::ConfigError(format!("bad URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(StdDuration::from_secs(10))
            // SQLite's page cache, per connection (1 MiB, half SQLite's default): its buffers
            // are kept once allocated, so a node's memory grows by up to this times the pool's
            // four connections as the database grows; with the default that growth alone
            // took the overload fault test past its 10% bound. Little is lost: in WAL mode
            // another connection's commit empties a connection's cache when its next
            // transaction begins, and every connection here writes. The bench measured no
            // cost (BENCHMARKS.md, "Allocator").
            .pragma("cache_size", "-1024")
            .foreign_keys(true);
        let filename = options.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:")
            || filename.as_os_str().is_empty()
            || filename.to_string_lossy().contains(":memory:");
        let lock = if in_memory {
            None
        } else {
            // Checked before the lock file is made beside it.
            check_path(&filename)?;
            Some(lock_database(&filename)?)
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(if in_memory { 1 } else { 0 })
            .acquire_timeout(StdDuration::from_secs(15))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            schedules: ScheduleCache::default(),
            _lock: lock,
        })
    }
}

impl Sql for SqliteStore {
    type DB = Sqlite;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_JOB: &'static str = "SELECT version, next_fire_at FROM jobs WHERE id = $1";
    const SHED_WAITING: [&'static str; 2] =
        [rows::shed_waiting!(none, ""), rows::shed_waiting!(one, "")];
    const SHED_BOUND: Option<&'static str> = None;
    const ANNOUNCE_CHANGE: Option<&'static str> = None;

    fn pool(&self) -> &sqlx::Pool<Sqlite> {
        &self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn heartbeat(&self, node: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(node)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn db_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(None)
    }

    async fn listen_changes(&self, _announced: Arc<Notify>, _stop: CancellationToken) {
        // One node makes every change itself: there is nothing to listen for.
    }

    async fn claim_due(
        &self,
        node: &str,
        params: &ClaimParams,
        clock: &dyn Clock,
    ) -> Result<Claimed, StoreError> {
        // Read and planned before the write lock is taken: SQLite has one, for everything.
        let w = Window::new(
            clock.now(),
            params.lookahead,
            params.misfire_threshold,
            params.max_catchup,
        );
        let jobs: Vec<DueJob> = sqlx::query_as(concat!(
            "SELECT ",
            due_job_columns!(),
            " FROM jobs j WHERE j.enabled = 1 AND j.next_fire_at IS NOT NULL AND j.next_fire_at <= ? \
             ORDER BY j.next_fire_at LIMIT ?"
        ))
        .bind(to_ms(w.horizon))
        .bind(i64::from(params.batch))
        .fetch_all(&self.pool)
        .await?;
        let jobs_read = jobs.len();
        let mut planned = plan_due(jobs, &w, &self.schedules, params.max_fires);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // A job changed since it was read keeps its row; its fires are planned again by the
        // next claim.
        let mut moved = std::collections::HashSet::with_capacity(planned.next.len());
        for a in &planned.next {
            let done = sqlx::query(
                "UPDATE jobs SET next_fire_at = ? WHERE id = ? AND next_fire_at = ? AND version = ? \
                 AND enabled = 1",
            )
            .bind(a.to)
            .bind(a.id)
            .bind(a.from)
            .bind(a.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                moved.insert(a.id);
            }
        }
        planned.fires.retain(|f| moved.contains(&f.job_id));
        let mut fires = insert_first_attempts(&mut tx, node, planned.fires).await?;
        let (waiting, waiting_read, mut misfires) =
            take_waiting(&mut tx, node, &w, params.waiting_batch).await?;
        misfires.merge(planned.misfires);
        tx.commit().await?;
        let first_attempts = fires.len();
        fires.extend(waiting);
        Ok(Claimed {
            fires,
            first_attempts,
            jobs: jobs_read,
            waiting: waiting_read,
            misfires,
        })
    }

    async fn record_outcomes(&self, outcomes: &[Outcome]) -> Result<Recorded, StoreError> {
        if outcomes.is_empty() {
            return Ok(Recorded::default());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut recorded = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let ok = o.verdict == Verdict::Succeeded;
            // Fenced: only the node holding the attempt, in a state that awaits an outcome.
            let done = sqlx::query(
                "UPDATE executions SET state = ?, executed_at = ?, status_code = ?, duration_ms = ?, \
                 success = ?, error = ?, node_id = NULL WHERE id = ? AND node_id = ? \
                 AND state IN ('claimed', 'started')",
            )
            .bind(if ok { "succeeded" } else { "failed" })
            .bind(to_ms(o.executed_at))
            .bind(o.status_code.map(i32::from))
            .bind(o.duration_ms as i64)
            .bind(ok)
            .bind(o.error.as_deref())
            .bind(o.execution_id)
            .bind(o.node.as_ref())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                recorded.push(o.execution_id);
            }
        }
        let retries = retries_of(outcomes, &recorded);
        let mut stored = Vec::new();
        for chunk in retries.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, node_id) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, 'claimed', NULL FROM (",
            );
            q.push_values(chunk, |mut b, f| {
                b.push_bind(f.execution_id)
                    .push_bind(f.job_id)
                    .push_bind(to_ms(f.scheduled_at))
                    .push_bind(f.attempt as i32)
                    .push_bind(to_ms(f.due_at))
                    .push_bind(f.call.version);
            });
            // A retry is stored only while its job is unchanged: a change withdraws retries.
            q.push(
                ") AS v WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = v.column2 AND jobs.version = v.column6) \
                 ON CONFLICT (job_id, scheduled_at, attempt) DO NOTHING RETURNING id",
            );
            let ids: Vec<Uuid> = q
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            stored.extend(ids);
        }
        tx.commit().await?;
        Ok(Recorded {
            outcomes: recorded,
            retries: stored,
        })
    }
}

/// Records new first attempts as claimed by `node`; returns those recorded (an instant
/// already recorded is not).
async fn insert_first_attempts(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    node: &str,
    mut fires: Vec<Fire>,
) -> Result<Vec<Fire>, sqlx::Error> {
    let mut inserted: std::collections::HashSet<Uuid> =
        std::collections::HashSet::with_capacity(fires.len());
    for chunk in fires.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, node_id) ",
        );
        q.push_values(chunk, |mut b, f| {
            b.push_bind(f.execution_id)
                .push_bind(f.job_id)
                .push_bind(to_ms(f.scheduled_at))
                .push("1")
                .push_bind(to_ms(f.due_at))
                .push("'claimed'")
                .push_bind(node.to_owned());
        });
        q.push(" ON CONFLICT (job_id, scheduled_at, attempt) DO NOTHING RETURNING id");
        // Not kept prepared: the text changes with the number of fires, and SQLite compiles
        // each in this process, so a cache of them only grows memory.
        let ids: Vec<Uuid> = q
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut **tx)
            .await?;
        inserted.extend(ids);
    }
    fires.retain(|f| inserted.contains(&f.execution_id));
    Ok(fires)
}

/// Takes for `node` the waiting attempts due by the window's horizon, earliest first, at
/// most `limit`. `state = 'claimed' AND node_id IS NULL` is the partial index's condition
/// word for word. Late first attempts follow their job's misfire policy: those it skips are
/// recorded skipped. Returns the attempts to call, how many were taken and the misfires
/// skipped, by policy.
async fn take_waiting(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    node: &str,
    w: &Window,
    limit: u32,
) -> Result<(Vec<Fire>, usize, Misfires), sqlx::Error> {
    let rows: Vec<OpenExecution> = sqlx::query_as(concat!(
        "SELECT ",
        open_execution_columns!(),
        " FROM executions e JOIN jobs j ON j.id = e.job_id \
         WHERE e.state = 'claimed' AND e.node_id IS NULL AND e.due_at <= ?1 \
         ORDER BY e.due_at LIMIT ?2"
    ))
    .bind(to_ms(w.horizon))
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        sqlx::query("UPDATE executions SET node_id = ? WHERE id = ?")
            .bind(node)
            .bind(r.id)
            .execute(&mut **tx)
            .await?;
    }
    let taken = rows.len();
    let (call, skip, misfires) = split_missed(rows, w);
    for (id, why) in skip {
        sqlx::query(rows::SKIP_MISSED)
            .bind(id)
            .bind(to_ms(w.now))
            .bind(why)
            .execute(&mut **tx)
            .await?;
    }
    Ok((call, taken, misfires))
}
