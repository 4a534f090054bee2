//! The store operations whose SQL is the same on both databases, written once: each backend
//! instantiates them with [`common_ops!`], giving its store type, its sqlx database and the
//! row-lock suffix of its `SELECT`s (`FOR UPDATE` on PostgreSQL; SQLite takes the whole
//! database's write lock at `BEGIN IMMEDIATE` instead).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Exclusive, ExecutionDetail, ExecutionView, JobChange, JobQuery, JobRecord, NextFire, Pruned,
    StoreError, Triggered, Update,
};
use crate::domain::job::JobSpec;

/// The operations of [`common_ops!`]; a supertrait of [`super::Store`].
#[async_trait]
pub trait CommonOps {
    /// The job's executions with a recorded outcome, newest first, older than `before`
    /// (the `(executed_at, id)` of the last one seen) when given.
    async fn executions_page(
        &self,
        job: Uuid,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ExecutionView>, StoreError>;

    /// One execution of a job, with every detail.
    async fn execution(&self, job: Uuid, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError>;

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

    /// Prunes the history of the next `jobs` jobs after the cursor `after`: finished
    /// executions beyond each job's newest `keep`, and those older than `older_than`, at
    /// most `batch` rows per job and rule.
    async fn prune_history(
        &self,
        after: Option<Uuid>,
        jobs: u32,
        keep: u32,
        older_than: Option<DateTime<Utc>>,
        batch: u32,
    ) -> Result<Pruned, StoreError>;

    /// Jobs changed or deleted at or after `since`.
    async fn changes_since(&self, since: DateTime<Utc>) -> Result<Vec<JobChange>, StoreError>;

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

/// Implements [`CommonOps`] for `$store` (with a `pool` field and a `write_tx` method) on
/// the sqlx database `$db`; `$lock` ends the `SELECT`s that lock a job row.
macro_rules! common_ops {
    ($store:ty, $db:ty, $lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use uuid::Uuid;

            use $crate::domain::job::JobSpec;
            use $crate::store::claim::HistoryRow;
            use $crate::store::rows;
            use $crate::store::shared::CommonOps;
            use $crate::store::{
                Exclusive, ExecutionDetail, ExecutionView, JobChange, JobQuery, JobRecord,
                NextFire, Pruned, StoreError, Triggered, Update, from_ms, to_ms,
            };

            #[async_trait]
            impl CommonOps for $store {
                async fn executions_page(
                    &self,
                    job: Uuid,
                    before: Option<(DateTime<Utc>, Uuid)>,
                    limit: u32,
                ) -> Result<Vec<ExecutionView>, StoreError> {
                    let (at, id) = before.map_or((i64::MAX, Uuid::max()), |(t, id)| (to_ms(t), id));
                    let rows: Vec<HistoryRow> = sqlx::query_as(rows::HISTORY_PAGE)
                        .bind(job)
                        .bind(at)
                        .bind(id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn execution(
                    &self,
                    job: Uuid,
                    id: Uuid,
                ) -> Result<Option<ExecutionDetail>, StoreError> {
                    let row: Option<rows::ExecutionRow> = sqlx::query_as(rows::EXECUTION_BY_ID)
                        .bind(id)
                        .bind(job)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
                    let row: Option<rows::JobRow> = sqlx::query_as(rows::JOB_BY_ID)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(JobRecord::try_from).transpose()
                }

                async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
                    let found: Vec<rows::JobRow> = rows::list_jobs_query::<$db>(query)
                        .build_query_as()
                        .fetch_all(&self.pool)
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
                    let mut tx = self.write_tx().await?;
                    let current: Option<(i64, Option<i64>)> = sqlx::query_as(concat!(
                        "SELECT version, next_fire_at FROM jobs WHERE id = $1",
                        $lock
                    ))
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
                    let next_fire_at = match next {
                        NextFire::At(at) => at.map(to_ms),
                        NextFire::Keep => rows::kept_next(stored_next, &withdrawn),
                    };
                    let q = sqlx::query(rows::UPDATE_JOB).bind(id);
                    rows::bind_spec!(q, spec)
                        .bind(next_fire_at)
                        .bind(to_ms(now))
                        .bind(version)
                        .bind(spec.signing_secret.clone())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Update::Applied {
                        version: version + 1,
                        next_fire_at: next_fire_at.map(from_ms),
                    })
                }

                async fn delete_job(
                    &self,
                    id: Uuid,
                    now: DateTime<Utc>,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.write_tx().await?;
                    let gone = sqlx::query(rows::DELETE_JOB)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
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
                    }
                    tx.commit().await?;
                    Ok(gone > 0)
                }

                async fn trigger(
                    &self,
                    job: Uuid,
                    now: DateTime<Utc>,
                ) -> Result<Option<Triggered>, StoreError> {
                    let mut tx = self.write_tx().await?;
                    let found: Option<i32> =
                        sqlx::query_scalar(concat!("SELECT 1 FROM jobs WHERE id = $1", $lock))
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
                        .rows_affected()
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

                async fn prune_history(
                    &self,
                    after: Option<Uuid>,
                    jobs: u32,
                    keep: u32,
                    older_than: Option<DateTime<Utc>>,
                    batch: u32,
                ) -> Result<Pruned, StoreError> {
                    let ids: Vec<Uuid> = sqlx::query_scalar(rows::JOB_IDS_AFTER)
                        .bind(after.unwrap_or(Uuid::nil()))
                        .bind(i64::from(jobs))
                        .fetch_all(&self.pool)
                        .await?;
                    let mut deleted = 0;
                    for &id in &ids {
                        deleted += sqlx::query(rows::PRUNE_BEYOND)
                            .bind(id)
                            .bind(i64::from(batch))
                            .bind(i64::from(keep))
                            .execute(&self.pool)
                            .await?
                            .rows_affected();
                        if let Some(cutoff) = older_than {
                            deleted += sqlx::query(rows::PRUNE_OLDER)
                                .bind(id)
                                .bind(to_ms(cutoff))
                                .bind(i64::from(batch))
                                .execute(&self.pool)
                                .await?
                                .rows_affected();
                        }
                    }
                    Ok(Pruned {
                        deleted,
                        last_job: if ids.len() < jobs as usize {
                            None
                        } else {
                            ids.last().copied()
                        },
                    })
                }

                async fn changes_since(
                    &self,
                    since: DateTime<Utc>,
                ) -> Result<Vec<JobChange>, StoreError> {
                    Ok(sqlx::query_as(rows::CHANGES_SINCE)
                        .bind(to_ms(since))
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn start_exclusive(
                    &self,
                    execution: Uuid,
                    job: Uuid,
                    node: &str,
                    now: DateTime<Utc>,
                ) -> Result<Exclusive, StoreError> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query(concat!("SELECT 1 FROM jobs WHERE id = $1", $lock))
                        .bind(job)
                        .execute(&mut *tx)
                        .await?;
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
                    let changed = query.execute(&mut *tx).await?.rows_affected();
                    tx.commit().await?;
                    Ok(if changed == 1 {
                        done
                    } else {
                        Exclusive::NotOurs
                    })
                }
            }
        };
    };
}
pub(crate) use common_ops;
