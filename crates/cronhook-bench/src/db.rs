//! Bench databases: a fresh PostgreSQL database or SQLite file per run, and bulk history.

use std::path::PathBuf;

use anyhow::Context;
use sqlx::Connection;

/// Which store a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

/// A fresh database for one run; removed on drop.
pub struct BenchDb {
    /// The URL the service uses.
    pub url: String,
    /// Which store.
    pub backend: Backend,
    admin: String,
    pg_name: Option<String>,
    dir: Option<tempfile::TempDir>,
}

/// A version-7-like UUID whose millisecond field is `$1` plus the next value of the
/// temporary sequence `bench_ids`: ids rise in the order rows are inserted, as the
/// service's own (UUIDv7) do, so rows neighbouring by id neighbour on disk too.
const PG_ORDERED_ID: &str = "(lpad(to_hex($1 + nextval('bench_ids')), 12, '0') || '7' \
     || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid";
/// [`PG_ORDERED_ID`] for SQLite: the millisecond field is `?3` plus the row's number `n`.
const SQLITE_ORDERED_ID: &str = "unhex(printf('%012x', ?3 + n) || '7' \
     || substr(hex(randomblob(2)), 1, 3) || '8' || substr(hex(randomblob(8)), 1, 15))";

impl BenchDb {
    /// Creates an empty database.
    pub async fn create(backend: Backend, admin: &str) -> anyhow::Result<BenchDb> {
        match backend {
            Backend::Postgres => {
                let name = format!("cronhook_bench_{}", uuid::Uuid::now_v7().simple());
                let mut c = sqlx::PgConnection::connect(admin)
                    .await
                    .context("connect to PostgreSQL")?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut c)
                    .await?;
                let mut url = url::Url::parse(admin)?;
                url.set_path(&name);
                Ok(BenchDb {
                    url: url.to_string(),
                    backend,
                    admin: admin.to_owned(),
                    pg_name: Some(name),
                    dir: None,
                })
            }
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("cronhook-bench")
                    .tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("cronhook.db").display());
                Ok(BenchDb {
                    url,
                    backend,
                    admin: admin.to_owned(),
                    pg_name: None,
                    dir: Some(dir),
                })
            }
        }
    }

    /// Where the service's log goes.
    pub fn log_path(&self) -> PathBuf {
        match &self.dir {
            Some(d) => d.path().join("cronhook.log"),
            None => std::env::temp_dir().join(format!(
                "{}.log",
                self.pg_name.as_deref().unwrap_or("cronhook-bench")
            )),
        }
    }

    /// Adds `per_job` succeeded executions to each of the first `jobs` jobs (history for
    /// the executions endpoint), straight in SQL.
    pub async fn add_history(&self, per_job: u64) -> anyhow::Result<u64> {
        let now = chrono::Utc::now().timestamp_millis();
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query("CREATE TEMP SEQUENCE bench_ids")
                    .execute(&mut c)
                    .await?;
                let sql = format!(
                    "INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, executed_at, \
                     status_code, duration_ms, success) \
                     SELECT {}, j.id, $1 - g * 3600000, 1, $1 - g * 3600000, 'succeeded', \
                     $1 - g * 3600000 + 3, 200, 5, TRUE FROM jobs j CROSS JOIN generate_series(1, $2) AS g",
                    PG_ORDERED_ID
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(per_job as i64)
                    .execute(&mut c)
                    .await?;
                sqlx::query("ANALYZE").execute(&mut c).await?;
                Ok(done.rows_affected())
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&mut c)
                    .await?;
                sqlx::query("PRAGMA synchronous = OFF")
                    .execute(&mut c)
                    .await?;
                let done = sqlx::query(
                    "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?2) \
                     INSERT INTO executions (id, job_id, scheduled_at, attempt, due_at, state, executed_at, \
                     status_code, duration_ms, success) \
                     SELECT randomblob(16), j.id, ?1 - g.x * 3600000, 1, ?1 - g.x * 3600000, 'succeeded', \
                     ?1 - g.x * 3600000 + 3, 200, 5, 1 FROM jobs j, g",
                )
                .bind(now)
                .bind(per_job as i64)
                .execute(&mut c)
                .await?;
                sqlx::query("ANALYZE").execute(&mut c).await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Inserts `n` copies, under new ids, of the jobs' rows (all but the every-second job
    /// the scale run times its restart with), round robin; returns how many.
    pub async fn copy_jobs(&self, n: usize) -> anyhow::Result<u64> {
        const COLUMNS: &str = "schedule, timezone, api, method, headers, body, timeout_ms, \
             delivery, misfire_policy, retry_max_attempts, retry_backoff_ms, retry_max_backoff_ms, \
             concurrency_policy, enabled, signing_secret, next_fire_at, created_at, updated_at, \
             spread_ms, spread_offset_ms, version";
        // Only the rows copied: counting the excluded one could leave the copy short.
        let sources = self
            .count("SELECT COUNT(*) FROM jobs WHERE schedule <> '* * * * * *'")
            .await?
            .max(1);
        let rounds = (n as u64).div_ceil(sources as u64) as i64;
        let done = match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query("CREATE TEMP SEQUENCE bench_ids")
                    .execute(&mut c)
                    .await?;
                let sql = format!(
                    "INSERT INTO jobs (id, {COLUMNS}) SELECT {PG_ORDERED_ID}, {COLUMNS} FROM \
                     (SELECT {COLUMNS} FROM jobs WHERE schedule <> '* * * * * *') j \
                     CROSS JOIN generate_series(1, $2) AS g LIMIT $3"
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(chrono::Utc::now().timestamp_millis())
                    .bind(rounds)
                    .bind(n as i64)
                    .execute(&mut c)
                    .await?;
                sqlx::query("ANALYZE jobs").execute(&mut c).await?;
                done.rows_affected()
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::query("PRAGMA synchronous = OFF")
                    .execute(&mut c)
                    .await?;
                let sql = format!(
                    "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?1) \
                     INSERT INTO jobs (id, {COLUMNS}) SELECT {SQLITE_ORDERED_ID}, {COLUMNS} FROM \
                     (SELECT {COLUMNS}, row_number() OVER () AS n FROM \
                     (SELECT {COLUMNS} FROM jobs WHERE schedule <> '* * * * * *'), g LIMIT ?2)"
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(rounds)
                    .bind(n as i64)
                    .bind(chrono::Utc::now().timestamp_millis())
                    .execute(&mut c)
                    .await?;
                sqlx::query("ANALYZE").execute(&mut c).await?;
                done.rows_affected()
            }
        };
        Ok(done)
    }

    /// The one number `sql` (a `SELECT COUNT(*) ...`) answers.
    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query_scalar(sql).fetch_one(&mut c).await?
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::query_scalar(sql).fetch_one(&mut c).await?
            }
        })
    }

    /// Up to `n` job ids, sampled at random.
    pub async fn sample_jobs(&self, n: usize) -> anyhow::Result<Vec<uuid::Uuid>> {
        let sql = "SELECT id FROM jobs ORDER BY random() LIMIT $1";
        Ok(match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query_scalar(sql)
                    .bind(n as i64)
                    .fetch_all(&mut c)
                    .await?
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::query_scalar(sql)
                    .bind(n as i64)
                    .fetch_all(&mut c)
                    .await?
            }
        })
    }

    /// Rows in `executions`.
    pub async fn execution_rows(&self) -> anyhow::Result<i64> {
        self.count("SELECT COUNT(*) FROM executions").await
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = std::process::Command::new("psql")
                .arg(&self.admin)
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            let _ = std::fs::remove_file(self.log_path());
        }
    }
}

/// Versions of the databases, for the report.
pub async fn versions(admin: &str) -> (String, String) {
    let pg = async {
        let mut c = sqlx::PgConnection::connect(admin).await.ok()?;
        sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut c)
            .await
            .ok()
    }
    .await
    .unwrap_or_else(|| "unreachable".into());
    let sqlite = async {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .ok()?;
        sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
            .fetch_one(&mut c)
            .await
            .ok()
    }
    .await
    .unwrap_or_default();
    (pg, sqlite)
}
