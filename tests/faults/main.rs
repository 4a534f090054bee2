//! Fault injection on real processes: crashes, several nodes, a database outage, retries,
//! timeouts and graceful shutdown. Each test runs the real `cronhook` binary and a real
//! target that counts calls per fire, and checks the counts in the target and the store.
//!
//! The tests run one at a time: they measure timing and share two cores.

#[path = "../common/mod.rs"]
mod common;

mod changes;
mod clocks;
mod cold_start;
mod crash;
mod fairness;
mod nodes;
mod outage;
mod overload;
#[cfg(unix)]
mod pause;
mod pg;
mod prune_nodes;
mod recovered;
mod retries;
mod shutdown;
mod start_reply;
mod withdraw;

use std::collections::{BTreeSet, HashMap};

use sqlx::Connection;
use uuid::Uuid;

/// `/health`'s status and body; status 0 when it does not answer.
pub async fn health(server: &common::Server) -> (u16, serde_json::Value) {
    match common::client().get(server.url("/health")).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(serde_json::Value::Null))
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Serializes the fault tests.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One execution row, as the tests inspect it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub job_id: Uuid,
    pub scheduled_at: i64,
    pub attempt: i32,
    pub state: String,
    pub success: Option<bool>,
    pub status_code: Option<i32>,
    pub executed_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// Every execution row.
pub async fn rows(url: &str) -> Vec<Row> {
    let sql = "SELECT job_id, scheduled_at, attempt, state, success, status_code, executed_at, duration_ms \
               FROM executions ORDER BY scheduled_at, attempt";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

/// A process's resident memory (KiB), from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Jobs' creation instants (ms).
pub async fn created(url: &str) -> HashMap<Uuid, i64> {
    let sql = "SELECT id, created_at FROM jobs";
    let pairs: Vec<(Uuid, i64)> = if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    };
    pairs.into_iter().collect()
}

/// The instants (ms) of an every-second job from its first fire after `created` to `until`.
pub fn every_second(created: i64, until: i64) -> BTreeSet<i64> {
    let first = (created / 1000 + 1) * 1000;
    (first..=until).step_by(1000).collect()
}

/// Instants of `job` with a recorded success.
pub fn succeeded(rows: &[Row], job: Uuid) -> BTreeSet<i64> {
    rows.iter()
        .filter(|r| r.job_id == job && r.success == Some(true))
        .map(|r| r.scheduled_at)
        .collect()
}

/// Wall-clock now in ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The scheduled instant (ms) of a call from its header.
pub fn instant_of(call: &common::Call) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&call.scheduled_at)
        .unwrap()
        .timestamp_millis()
}
