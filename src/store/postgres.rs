//! The PostgreSQL store: any number of nodes, claims with `FOR UPDATE SKIP LOCKED`.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL-backed [`Store`].
pub struct PgStore {
    /// The connection pool.
    pool: PgPool,
    /// Parsed schedules of the jobs claimed lately.
    schedules: ScheduleCache,
    /// One connection, opened when first needed, that listens for job changes.
    listen: PgPool,
}

/// The channel job changes are announced on.
const CHANGES_CHANNEL: &str = "cronhook_job_changes";
/// Pause before listening again after the listening connection failed.
const RELISTEN: StdDuration = StdDuration::from_secs(1);

/// Where a PostgreSQL URL points, for messages: `host:port/database`, never the password.
pub(crate) fn describe(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "an unparsable URL".into(),
    }
}

/// Splits a Prisma-style `?schema=NAME` parameter off a URL: sqlx does not know it.
fn connect_options(url: &str) -> Result<PgConnectOptions, anyhow::Error> {
    let mut parsed = url::Url::parse(url)?;
    let schema = parsed
        .query_pairs()
        .find(|(k, _)| k == "schema")
        .map(|(_, v)| v.into_owned());
    if schema.is_some() {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "schema")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
    }
    let mut options = PgConnectOptions::from_str(parsed.as_str())?;
    if let Some(schema) = schema {
        options = options.options([("search_path", schema.as_str())]);
    }
    Ok(options)
}

impl PgStore {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, anyhow::Error> {
        let options =
            connect_options(url).map_err(|e| super::ConfigError(format!("bad URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .acquire_timeout(StdDuration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let listen = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(StdDuration::from_secs(5))
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            schedules: ScheduleCache::default(),
            listen,
        })
    }
}

impl Sql for PgStore {
    type DB = Postgres;
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_JOB: &'static str =
        "SELECT version, next_fire_at FROM jobs WHERE id = $1 FOR UPDATE";
    const SHED_WAITING: [&'static str; 2] = [
        rows::shed_waiting!(none, " FOR UPDATE OF e SKIP LOCKED"),
        rows::shed_waiting!(one, " FOR UPDATE OF e SKIP LOCKED"),
    ];
    const SHED_BOUND: Option<&'static str> = Some("SET LOCAL statement_timeout = 5000");
    const ANNOUNCE_CHANGE: Option<&'static str> =
        Some("SELECT pg_notify('cronhook_job_changes', '')");

    fn pool(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn heartbeat(&self, node: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
        )
        .bind(node)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn db_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: i64 =
            sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8")
                .fetch_one(&self.pool)
                .await?;
        Ok(Some(super::from_ms(ms)))
    }

    async fn listen_changes(&self, announced: Arc<Notify>, stop: CancellationToken) {
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&self.listen).await?;
                listener.listen(CHANGES_CHANNEL).await?;
                // Whatever was announced while nobody listened is read now.
                announced.notify_one();
                loop {
                    // `None`: the connection was lost (and made again); something may have
                    // been missed meanwhile, so read.
                    listener.try_recv().await?;
                    announced.notify_one();
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                result = listening => {
                    let result: Result<(), sqlx::Error> = result;
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "listening for job changes failed; polling meanwhile");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RELISTEN) => {}
            }
        }
    }

    async fn claim_due(
        &self,
        node: &str,
        params: &ClaimParams,
        clock: &dyn Clock,
    ) -> Result<Claimed, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The window is read only now: waiting for a connection must not make it stale.
        let w = Window::new(
            clock.now(),
            params.lookahead,
            params.misfire_threshold,
            params.max_catchup,
        );
        let jobs: Vec<DueJob> = sqlx::query_as(concat!(
            "SELECT ",
            due_job_columns!(),
            " FROM jobs j WHERE j.enabled AND j.next_fire_at IS NOT NULL AND j.next_fire_at <= $1 \
             ORDER BY j.next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(to_ms(w.horizon))
        .bind(i64::from(params.batch))
        .fetch_all(&mut *tx)
        .await?;
        let jobs_read = jobs.len();
        let planned = plan_due(jobs, &w, &self.schedules, params.max_fires);
        let mut fires = insert_first_attempts(&mut tx, node, planned.fires).await?;
        if !planned.next.is_empty() {
            let (ids, next): (Vec<Uuid>, Vec<Option<i64>>) =
                planned.next.iter().map(|a| (a.id, a.to)).unzip();
            sqlx::query(
                "UPDATE jobs SET next_fire_at = u.next FROM UNNEST($1::uuid[], $2::int8[]) AS u(id, next) \
                 WHERE jobs.id = u.id",
            )
            .bind(&ids)
            .bind(&next)
            .execute(&mut *tx)
            .await?;
        }
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
        let mut ids = Vec::with_capacity(outcomes.len());
        let mut states = Vec::with_capacity(outcomes.len());
        let mut executed = Vec::with_capacity(outcomes.len());
        let mut codes = Vec::with_capacity(outcomes.len());
        let mut durations = Vec::with_capacity(outcomes.len());
        let mut successes = Vec::with_capacity(outcomes.len());
        let mut errors = Vec::with_capacity(outcomes.len());
        let mut nodes = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            nodes.push(o.node.to_string());
            ids.push(o.execution_id);
            let ok = o.verdict == Verdict::Succeeded;
            states.push(if ok { "succeeded" } else { "failed" });
            executed.push(to_ms(o.executed_at));
            codes.push(o.status_code.map(i32::from));
            durations.push(o.duration_ms as i64);
            successes.push(ok);
            errors.push(o.error.clone());
        }
        let mut tx = self.pool.begin().await?;
        // Fenced: only the node holding the attempt, in a state that awaits an outcome.
        let recorded: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE executions e SET state = u.state, executed_at = u.executed_at, status_code = u.code, \
             duration_ms = u.duration, success = u.success, error = u.error, node_id = NULL \
             FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::int4[], $5::int8[], $6::bool[], $7::text[], $8::text[]) \
             AS u(id, state, executed_at, code, duration, success, error, node) \
             WHERE e.id = u.id AND e.node_id = u.node AND e.state IN ('claimed', 'started') \
             RETURNING e.id",
        )
        .bind(&ids)
        .bind(&states)
        .bind(&executed)
        .bind(&codes)
        .bind(&durations)
        .bind(&successes)
        .bind(&errors)
        .bind(&nodes)
        .fetch_all(&mut *tx)
        .await?;
        let retries = retries_of(outcomes, &recorded);
        let mut stored = Vec::new();
        if !retries.is_empty() {
            let ids: Vec<Uuid> = retries.iter().map(|f| f.execution_id).collect();
            let jobs: Vec<Uuid> = retries.iter().map(|f| f.job_id).collect();
            let ats: Vec<i64> = retries.iter().map(|f| to_ms(f.scheduled_at)).collect();
            let attempts: Vec<i32> = retries.iter().map(|f| f.attempt as i32).collect();
            let dues: Vec<i64> = retries.iter().map(|f| to_ms(f.due_at)).collect();
            let versions: Vec<i64> = retries.iter().map(|f| f.call.version).collect();
            // A retry is stored only while its job is unchanged: a change withdraws retries.
            stored = sqlx::query_scalar(
                "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, node_id) \
                 SELECT u.id, u.job_id, u.at, u.attempt, u.due, 'claimed', NULL \
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::int4[], $5::int8[], $6::int8[]) \
                 AS u(id, job_id, at, attempt, due, version) \
                 WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = u.job_id AND jobs.version = u.version) \
                 ON CONFLICT (job_id, scheduled_at, attempt) DO NOTHING RETURNING id",
            )
            .bind(&ids)
            .bind(&jobs)
            .bind(&ats)
            .bind(&attempts)
            .bind(&dues)
            .bind(&versions)
            .fetch_all(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Recorded {
            outcomes: recorded,
            retries: stored,
        })
    }
}

/// Records new first attempts as claimed by `node`; returns those recorded (an instant
/// another claim recorded first is not).
async fn insert_first_attempts(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    node: &str,
    mut fires: Vec<Fire>,
) -> Result<Vec<Fire>, sqlx::Error> {
    if fires.is_empty() {
        return Ok(fires);
    }
    let ids: Vec<Uuid> = fires.iter().map(|f| f.execution_id).collect();
    let jobs: Vec<Uuid> = fires.iter().map(|f| f.job_id).collect();
    let ats: Vec<i64> = fires.iter().map(|f| to_ms(f.scheduled_at)).collect();
    let dues: Vec<i64> = fires.iter().map(|f| to_ms(f.due_at)).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, node_id) \
         SELECT u.id, u.job_id, u.at, 1, u.due, 'claimed', $4 \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $5::int8[]) AS u(id, job_id, at, due) \
         ON CONFLICT (job_id, scheduled_at, attempt) DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&jobs)
    .bind(&ats)
    .bind(node)
    .bind(&dues)
    .fetch_all(&mut **tx)
    .await?;
    if inserted.len() != fires.len() {
        let kept: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        fires.retain(|f| kept.contains(&f.execution_id));
    }
    Ok(fires)
}

/// Takes for `node` the waiting attempts due by the window's horizon, earliest first, at
/// most `limit`; attempts another claim holds locked are left to it. Late first attempts
/// follow their job's misfire policy: those it skips are recorded skipped. Returns the
/// attempts to call, how many were taken and the misfires skipped, by policy.
async fn take_waiting(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    node: &str,
    w: &Window,
    limit: u32,
) -> Result<(Vec<Fire>, usize, Misfires), sqlx::Error> {
    let rows: Vec<OpenExecution> = sqlx::query_as(concat!(
        "WITH taken AS (SELECT id FROM executions WHERE state = 'claimed' AND node_id IS NULL \
         AND due_at <= $2 ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         UPDATE executions e SET node_id = $1 FROM taken, jobs j \
         WHERE e.id = taken.id AND j.id = e.job_id RETURNING ",
        open_execution_columns!()
    ))
    .bind(node)
    .bind(to_ms(w.horizon))
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisma_schema_parameter_becomes_the_search_path() {
        let o = connect_options("postgresql://u:p@localhost:5432/db?schema=public&sslmode=disable")
            .unwrap();
        assert_eq!(o.get_database(), Some("db"));
        assert_eq!(o.get_options(), Some("-c search_path=public"));
    }
}
