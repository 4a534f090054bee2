//! The application layer: what the API can do with jobs. The API calls these and nothing
//! below them; this is where a change is made to take effect everywhere before it is
//! answered, and where a manual call is stored for the claimer to pick up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::execution::{Execution, ExecutionSummary};
use crate::domain::job::{JobRecord, JobSpec, NewJob};
use crate::gate::Gate;
use crate::lease::Lease;
use crate::meters;
use crate::store::group::JobWriter;
use crate::store::{
    Census, DELETED, DynStore, JobChange, JobQuery, JobRow, NextFire, StoreError, Triggered, Update,
};
use crate::worker::dispatch::Dispatch;
use crate::worker::target_policy::TargetPolicy;

/// Attempts at a change that keeps meeting concurrent changes.
const CHANGE_ATTEMPTS: usize = 5;
/// How long the database may take to answer a health check.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a change was not made.
#[derive(Debug)]
pub enum ChangeError<E> {
    /// No such job.
    NotFound,
    /// The job kept changing concurrently.
    Conflict,
    /// The edit refused the job's current spec.
    Edit(E),
    /// The store failed.
    Store(StoreError),
}

impl<E> From<StoreError> for ChangeError<E> {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e)
    }
}

/// What `/health` reports.
#[derive(Debug)]
pub struct Health {
    /// Whether the database answered in time, or why not.
    pub store: Result<(), String>,
    /// Fires due and waiting for a worker.
    pub queued: usize,
    /// Calls in flight.
    pub active: usize,
    /// Of those, calls that gave their worker back.
    pub slow: usize,
    /// How long the longest-waiting due fire has waited.
    pub behind: std::time::Duration,
}

/// The operations on jobs, shared by every request handler.
#[derive(Clone)]
pub struct Service {
    /// The store.
    store: DynStore,
    /// New jobs, group-committed.
    writer: JobWriter,
    /// Fires of changed jobs already in this node's memory are dropped here.
    gate: Arc<Gate>,
    /// Wakes this node's claimer for an attempt stored due now.
    claimer: Arc<Notify>,
    /// This node's identities and lease: a change waits for the other nodes' confirmations
    /// at most as long as a silent node takes to fence itself.
    lease: Arc<Lease>,
    /// The dispatcher, read for health.
    workers: Arc<Dispatch>,
    /// Which addresses calls may reach: a target it refuses by its very URL is refused at
    /// creation.
    policy: Arc<TargetPolicy>,
    /// The wall clock.
    clock: Arc<dyn Clock>,
    /// The last census of jobs and nodes, and when it was taken.
    census: Arc<std::sync::Mutex<Option<(std::time::Instant, Census)>>>,
}

/// How long a census of jobs and nodes serves the metrics: counting ten million jobs on
/// every scrape would cost the database more than the scrape is worth.
const CENSUS_FOR: Duration = Duration::from_secs(10);

impl Service {
    /// The service over `store`; `claimer` wakes this node's claimer, `gate` is consulted
    /// by this node's workers, `lease` is this node's.
    pub fn new(
        store: DynStore,
        gate: Arc<Gate>,
        claimer: Arc<Notify>,
        lease: Arc<Lease>,
        workers: Arc<Dispatch>,
        policy: Arc<TargetPolicy>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Service {
            writer: JobWriter::spawn(store.clone()),
            store,
            gate,
            claimer,
            lease,
            workers,
            policy,
            clock,
            census: Default::default(),
        }
    }

    /// Now, on the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Why the target policy refuses a job's target by its URL alone (an IP literal it
    /// never permits); none when it may be called. A host name is checked at each call.
    pub fn refused_target(&self, spec: &JobSpec) -> Option<String> {
        self.policy
            .check_literal(spec.api.as_str())
            .err()
            .map(|d| d.to_string())
    }

    /// Stores a new job, with its first fire after now.
    pub async fn create(&self, spec: JobSpec) -> Result<Uuid, StoreError> {
        let now = self.clock.now();
        let job = NewJob {
            id: Uuid::now_v7(),
            spec,
        };
        let id = job.id;
        self.writer
            .insert(JobRow {
                first_fire: job.spec.first_due(id, now),
                job,
                created_at: now,
            })
            .await?;
        Ok(id)
    }

    /// One job.
    pub async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        self.store.get_job(id).await
    }

    /// A page of jobs.
    pub async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        self.store.list_jobs(query).await
    }

    /// A page of a job's recorded executions, newest first; none when there is no such job.
    pub async fn executions(
        &self,
        job: Uuid,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Option<Vec<ExecutionSummary>>, StoreError> {
        let (exists, page) = tokio::join!(
            self.store.job_exists(job),
            self.store.executions_page(job, before, limit)
        );
        Ok(if exists? { Some(page?) } else { None })
    }

    /// One execution of a job.
    pub async fn execution(&self, job: Uuid, id: Uuid) -> Result<Option<Execution>, StoreError> {
        self.store.execution(job, id).await
    }

    /// Derives a job's new spec from its current one with `edit` and stores it, unless the
    /// job changed meanwhile (then it tries again). An edit that changes nothing stores
    /// nothing. Once it returns, no fire the change withdrew is called, on any node.
    pub async fn change<E>(
        &self,
        id: Uuid,
        edit: impl Fn(&JobSpec) -> Result<JobSpec, E>,
    ) -> Result<JobRecord, ChangeError<E>> {
        for _ in 0..CHANGE_ATTEMPTS {
            let current = self.store.get_job(id).await?.ok_or(ChangeError::NotFound)?;
            let spec = edit(&current.spec).map_err(ChangeError::Edit)?;
            if spec == current.spec {
                return Ok(current);
            }
            let now = self.clock.now();
            // A new spread moves every fire, like a new schedule: the job starts again
            // from the first instant after the change.
            let next = if spec.schedule == current.spec.schedule
                && spec.spread_ms == current.spec.spread_ms
            {
                NextFire::Keep
            } else {
                NextFire::At(spec.first_due(id, now))
            };
            match self
                .store
                .update_job(id, current.version, &spec, next, now)
                .await?
            {
                Update::Applied {
                    version,
                    next_fire_at,
                } => {
                    self.settle(JobChange {
                        id,
                        version,
                        at: now.timestamp_millis(),
                    })
                    .await;
                    tracing::info!(job_id = %id, version, "job changed");
                    return Ok(JobRecord {
                        spec,
                        next_fire_at,
                        updated_at: now,
                        version,
                        ..current
                    });
                }
                Update::NotFound => return Err(ChangeError::NotFound),
                Update::Stale => continue,
            }
        }
        Err(ChangeError::Conflict)
    }

    /// Pauses (`false`) or resumes (`true`) a job; the edit itself never refuses, so `E` is
    /// whatever error type the caller's other changes use.
    pub async fn set_enabled<E>(
        &self,
        id: Uuid,
        enabled: bool,
    ) -> Result<JobRecord, ChangeError<E>> {
        self.change(id, |current| {
            Ok(JobSpec {
                enabled,
                ..current.clone()
            })
        })
        .await
    }

    /// Deletes a job and its history; false when there was no such job. Once it returns,
    /// no fire of the job is called, on any node.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let now = self.clock.now();
        if !self.store.delete_job(id, now).await? {
            return Ok(false);
        }
        self.settle(JobChange {
            id,
            version: DELETED,
            at: now.timestamp_millis(),
        })
        .await;
        tracing::info!(job_id = %id, "job deleted");
        Ok(true)
    }

    /// Stores a manual call of a job, due now, and wakes this node's claimer for it; none
    /// when there is no such job.
    pub async fn trigger(&self, id: Uuid) -> Result<Option<Triggered>, StoreError> {
        let triggered = self.store.trigger(id, self.clock.now()).await?;
        if let Some(t) = &triggered {
            tracing::info!(job_id = %id, execution_id = %t.execution_id, "manual call");
            self.claimer.notify_one();
        }
        Ok(triggered)
    }

    /// Whether the database answers, and the worker queue's sizes.
    pub async fn health(&self) -> Health {
        // The answer says what, never why: database and role names, hosts and paths stay
        // in the log, since `/health` is open to anyone.
        let store = match tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await {
            // The database answers, but this node's heartbeat, a write, has not been stored
            // within the fence: a read-only file, a full disk, a permission. The node makes
            // no calls until one is (the heartbeat's error is in the log).
            Ok(Ok(())) if !self.lease.fresh() => {
                Err("database not writable: this node's heartbeat is not being stored, so it makes no calls".to_owned())
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "health check: the database did not answer");
                Err("database unreachable".to_owned())
            }
            Err(_) => Err(format!(
                "database unreachable: no answer within {} ms",
                PING_TIMEOUT.as_millis()
            )),
        };
        let stats = self.workers.stats();
        Health {
            store,
            queued: stats.queued.load(Ordering::Acquire),
            active: stats.active.load(Ordering::Acquire),
            slow: stats.slow.load(Ordering::Acquire),
            behind: self.workers.behind(),
        }
    }

    /// The metrics in the Prometheus text format: the levels read now, jobs and nodes
    /// counted at most every [`CENSUS_FOR`] (the last count is shown while the database
    /// does not answer).
    pub async fn metrics(&self) -> String {
        let stats = self.workers.stats();
        meters::set_levels(&meters::Levels {
            queued: stats.queued.load(Ordering::Acquire),
            active: stats.active.load(Ordering::Acquire),
            slow: stats.slow.load(Ordering::Acquire),
            workers: self.workers.workers(),
            claimed: stats.claimed.load(Ordering::Acquire),
            unstored: stats.unstored.load(Ordering::Acquire),
            behind: self.workers.behind(),
            fresh: self.lease.fresh(),
        });
        let stale = {
            let last = self.census.lock().unwrap_or_else(|e| e.into_inner());
            last.is_none_or(|(at, _)| at.elapsed() >= CENSUS_FOR)
        };
        if stale {
            let live_since = self.clock.now()
                - chrono::Duration::from_std(self.lease.lease()).unwrap_or_default();
            match tokio::time::timeout(PING_TIMEOUT, self.store.census(live_since)).await {
                Ok(Ok(c)) => {
                    meters::set_census(c.enabled, c.paused, c.nodes);
                    *self.census.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((std::time::Instant::now(), c));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "metrics: counting jobs and nodes failed"),
                Err(_) => tracing::warn!("metrics: counting jobs and nodes timed out"),
            }
        }
        meters::render()
    }

    /// Applies a committed change to this node's gate and waits until every other live
    /// node has read it (or, silent, has stopped starting calls), so no fire it withdrew is
    /// called after the answer.
    async fn settle(&self, change: JobChange) {
        self.gate.apply(change);
        match self.gate.confirm(&self.store, &self.lease).await {
            Ok(silent) if silent.is_empty() => {}
            Ok(silent) => tracing::warn!(job_id = %change.id, nodes = ?silent,
                "nodes did not confirm a job change; answered once they could no longer start calls"),
            Err(e) => {
                // The change is committed; without the database no node starts calls for
                // long either: each fences itself once it cannot read changes.
                tracing::warn!(job_id = %change.id, error = %e,
                    "could not check that other nodes read a job change; waiting out their fence");
                tokio::time::sleep(self.lease.fence_after()).await;
            }
        }
    }
}
