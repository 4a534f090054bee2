//! The multi-row job INSERT both backends share.

use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use super::rows::headers_json;
use super::spelling::Stored;
use super::{JobRow, to_ms};
use crate::domain::job::spread_offset_ms;

/// Rows per INSERT statement: 22 parameters a row stays well under both databases' bounds
/// on bound parameters (SQLite's 32,766, PostgreSQL's 65,535).
pub(crate) const JOB_CHUNK: usize = 1000;

/// Builds `INSERT INTO jobs ... VALUES (...), (...)` for `rows`.
pub(crate) fn insert_jobs_query<DB>(rows: &[JobRow]) -> QueryBuilder<DB>
where
    DB: Database,
    <DB as Database>::Arguments: Default,
    Uuid: Encode<'static, DB> + Type<DB>,
    String: Encode<'static, DB> + Type<DB>,
    i64: Encode<'static, DB> + Type<DB>,
    Option<i32>: Encode<'static, DB> + Type<DB>,
    Option<i64>: Encode<'static, DB> + Type<DB>,
    Option<String>: Encode<'static, DB> + Type<DB>,
    bool: Encode<'static, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(
        "INSERT INTO jobs (id, name, schedule, timezone, api, method, headers, body, timeout_ms, \
         delivery, misfire_policy, retry_max_attempts, retry_backoff_ms, retry_max_backoff_ms, \
         concurrency_policy, enabled, signing_secret, next_fire_at, created_at, updated_at, \
         spread_ms, spread_offset_ms) ",
    );
    q.push_values(rows, |mut b, row| {
        let job = &row.job.spec;
        let created = to_ms(row.created_at);
        b.push_bind(row.job.id)
            .push_bind(job.name.clone())
            .push_bind(job.schedule.expr().to_owned())
            .push_bind(job.schedule.tz_name().to_owned())
            .push_bind(job.api.as_str().to_owned())
            .push_bind(job.method.stored().to_owned())
            .push_bind(headers_json(&job.headers))
            .push_bind(job.body.clone())
            .push_bind(job.timeout_ms.map(|v| v as i64))
            .push_bind(job.delivery.stored().to_owned())
            .push_bind(job.misfire.stored().to_owned())
            .push_bind(job.retry.max_attempts.map(|v| v as i32))
            .push_bind(job.retry.backoff_ms.map(|v| v as i64))
            .push_bind(job.retry.max_backoff_ms.map(|v| v as i64))
            .push_bind(job.concurrency.stored().to_owned())
            .push_bind(job.enabled)
            .push_bind(job.signing_secret.clone())
            .push_bind(row.first_fire.map(to_ms))
            .push_bind(created)
            .push_bind(created)
            .push_bind(job.spread_ms as i64)
            .push_bind(spread_offset_ms(row.job.id, job.spread_ms));
    });
    q
}
