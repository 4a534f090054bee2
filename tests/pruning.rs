//! Pruning at scale, on both stores: with 1,000,000 jobs, each with history already swept,
//! and 1,000 of them with new executions, one sweep visits those 1,000 jobs and reads only
//! their new rows; the jobs table is not read at all (PostgreSQL's own statistics say so);
//! and while one node holds the pruning lease the other does not prune.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Db, TestDb};
use cronhook::clock::SystemClock;
use cronhook::lease::Lease;
use cronhook::retention::{Pruner, Retention};
use cronhook::store;
use sqlx::Connection;

const JOBS: i64 = 1_000_000;
const CHANGED: i64 = 1_000;
const NEW_PER_JOB: i64 = 5;
const KEEP: u32 = 2;

/// UUIDs in three ordered ranges: prefix 0 for jobs, 1 for swept history, 2 for new rows.
fn pg_setup() -> Vec<String> {
    let id = |prefix: &str, n: &str| {
        format!("('0000000{prefix}-0000-7000-8000-' || lpad(to_hex({n}), 12, '0'))::uuid")
    };
    vec![
        format!(
            "INSERT INTO jobs (id, schedule, api, delivery, enabled, created_at, updated_at) \
             SELECT {}, '0 0 * * * *', 'http://127.0.0.1:9/', 'ATLEAST_ONCE', FALSE, 0, 0 \
             FROM generate_series(1, {JOBS}) AS i",
            id("0", "i")
        ),
        format!(
            "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, executed_at, success) \
             SELECT {}, {}, 0, 1, 0, 'succeeded', 1, TRUE FROM generate_series(1, {JOBS}) AS i",
            id("1", "i"),
            id("0", "i")
        ),
        format!(
            "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, executed_at, success) \
             SELECT {}, {}, k, 1, k, 'succeeded', 10 + k, TRUE \
             FROM generate_series(1, {CHANGED}) AS i, generate_series(1, {NEW_PER_JOB}) AS k",
            id("2", "i * 10 + k"),
            id("0", "i")
        ),
        format!(
            "UPDATE maintenance SET mark = {} WHERE name = 'prune'",
            id("1", &JOBS.to_string())
        ),
    ]
}

fn sqlite_setup() -> Vec<String> {
    let id = |prefix: &str, n: &str| {
        format!("unhex('0000000{prefix}00007000' || '8000' || printf('%012x', {n}))")
    };
    let series = |name: &str, to: i64| {
        format!(
            "WITH RECURSIVE {name}(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM {name} WHERE v < {to})"
        )
    };
    vec![
        format!(
            "{} INSERT INTO jobs (id, schedule, api, delivery, enabled, created_at, updated_at) \
             SELECT {}, '0 0 * * * *', 'http://127.0.0.1:9/', 'ATLEAST_ONCE', 0, 0, 0 FROM i",
            series("i", JOBS),
            id("0", "v")
        ),
        format!(
            "{} INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, executed_at, success) \
             SELECT {}, {}, 0, 1, 0, 'succeeded', 1, 1 FROM i",
            series("i", JOBS),
            id("1", "v"),
            id("0", "v")
        ),
        format!(
            "{}, k(w) AS (SELECT 1 UNION ALL SELECT w + 1 FROM k WHERE w < {NEW_PER_JOB}) \
             INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, executed_at, success) \
             SELECT {}, {}, k.w, 1, k.w, 'succeeded', 10 + k.w, 1 FROM i, k",
            series("i", CHANGED),
            id("2", "i.v * 10 + k.w"),
            id("0", "i.v")
        ),
        format!(
            "UPDATE maintenance SET mark = {} WHERE name = 'prune'",
            id("1", &JOBS.to_string())
        ),
    ]
}

/// Reads of the jobs table so far (sequential and index scans), from PostgreSQL's counters;
/// an idle session reports its own within 10 s (PostgreSQL 15's idle flush), so it waits
/// that long first.
async fn pg_job_reads(c: &mut sqlx::PgConnection) -> i64 {
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::int8 \
         FROM pg_stat_user_tables WHERE relname = 'jobs'",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap()
}

async fn one_sweep_visits_only_the_changed_jobs(kind: Db) {
    let db = TestDb::new(kind).await;
    let s = store::connect(&db.url, 4)
        .await
        .expect("connect and migrate");
    let setup = match kind {
        Db::Postgres => pg_setup(),
        Db::Sqlite => sqlite_setup(),
    };
    if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        for sql in setup {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        for sql in setup {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    let clock = Arc::new(SystemClock);
    let pruner = Pruner {
        store: s.clone(),
        retention: Retention {
            keep: KEEP,
            max_age: None,
            interval: Duration::from_secs(1),
            jobs_per_step: 100,
            batch: 500,
        },
        clock: clock.clone(),
        lease: Arc::new(Lease::new(Duration::from_secs(15), clock)),
        revisit: Default::default(),
    };
    let mut pg = match kind {
        Db::Postgres => Some(sqlx::PgConnection::connect(&db.url).await.unwrap()),
        Db::Sqlite => None,
    };
    let before = match pg.as_mut() {
        Some(c) => pg_job_reads(c).await,
        None => 0,
    };

    let sweep = pruner.sweep("node-a").await.unwrap();
    assert!(sweep.held);
    assert_eq!(sweep.jobs, CHANGED as usize, "jobs visited");
    assert_eq!(sweep.rows, (CHANGED * NEW_PER_JOB) as u64, "rows read");
    // Each changed job had its swept row and 5 new ones; 2 are kept.
    assert_eq!(
        sweep.deleted,
        (CHANGED * (1 + NEW_PER_JOB - KEEP as i64)) as u64
    );
    if let Some(c) = pg.as_mut() {
        assert_eq!(
            pg_job_reads(c).await,
            before,
            "the sweep never reads the jobs table"
        );
        // The counter does see a read of it through the store's pool.
        assert!(s.job_exists(uuid::Uuid::nil()).await.is_ok());
        assert!(pg_job_reads(c).await > before, "a job lookup is counted");
    }
    let again = pruner.sweep("node-a").await.unwrap();
    assert_eq!(
        (again.jobs, again.rows, again.deleted),
        (0, 0, 0),
        "nothing new"
    );
    // Two nodes do not both prune.
    assert!(!pruner.sweep("node-b").await.unwrap().held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    one_sweep_visits_only_the_changed_jobs(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    one_sweep_visits_only_the_changed_jobs(Db::Sqlite).await
}
