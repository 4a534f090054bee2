//! History retention: a background sweep keeps each job's newest executions (and, when set,
//! only those younger than a maximum age). It scales with change, not with size: a sweep
//! reads the executions recorded since the last sweep's mark (through the primary key:
//! UUIDv7 ids are in creation order) and visits only their jobs, a few at a time, each
//! with short statements; the maximum age is applied from the oldest ids up. One node at a
//! time sweeps: the holder of the pruning lease in the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::lease::Lease;
use crate::store::{DynStore, StoreError};

/// The sweep's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished executions kept per job.
    pub keep: u32,
    /// Finished executions older than this are deleted, when set.
    pub max_age: Option<Duration>,
    /// Pause between sweeps.
    pub interval: Duration,
    /// Jobs pruned between two renewals of the lease.
    pub jobs_per_step: u32,
    /// Rows deleted per statement.
    pub batch: u32,
}

/// Execution rows read per query while looking for changed jobs.
const SCAN_ROWS: u32 = 50_000;
/// Most jobs one sweep visits; the next sweep, at once, takes the rest.
const MAX_SWEEP_JOBS: usize = 100_000;
/// How long sweeps visit again a job whose execution had not run when it was read (its row
/// joins the history after the mark has passed it): past the look-ahead, a call's longest
/// timeout and a retry's usual backoff.
const REVISIT_FOR: Duration = Duration::from_secs(300);
/// The shortest hold of the pruning lease.
const MIN_HOLD: Duration = Duration::from_secs(30);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// This node held the pruning lease; nothing else was done when not.
    pub held: bool,
    /// Jobs visited: those with executions recorded since the last sweep.
    pub jobs: usize,
    /// Execution rows read to find them.
    pub rows: u64,
    /// Executions deleted.
    pub deleted: u64,
    /// The sweep stopped at a bound with more left: the next one starts at once.
    pub more: bool,
}

/// The sweep.
pub struct Pruner {
    /// The store pruned.
    pub store: DynStore,
    /// What to keep.
    pub retention: Retention,
    /// The wall clock, for the maximum age and the lease.
    pub clock: Arc<dyn Clock>,
    /// This node's identity, the pruning lease's holder.
    pub lease: Arc<Lease>,
    /// Jobs to visit again, until when: they had an execution not yet run when the mark
    /// passed it.
    pub revisit: Mutex<HashMap<Uuid, Instant>>,
}

impl Pruner {
    /// Sweeps every `interval` until `stop`, while this node holds the pruning lease.
    pub async fn run(self, stop: CancellationToken) {
        let mut holding = false;
        loop {
            let node = self.lease.node().0;
            let wait = match self.sweep(&node).await {
                Ok(sweep) => {
                    if sweep.held != holding {
                        holding = sweep.held;
                        if holding {
                            tracing::info!(node = %node, "this node prunes the history (it holds the pruning lease)");
                        }
                    }
                    if sweep.deleted > 0 {
                        tracing::debug!(
                            jobs = sweep.jobs,
                            rows = sweep.rows,
                            deleted = sweep.deleted,
                            "pruned execution history"
                        );
                    }
                    if sweep.more {
                        Duration::ZERO
                    } else {
                        self.retention.interval
                    }
                }
                Err(e) => {
                    crate::meters::db_error(crate::meters::op::PRUNE);
                    tracing::warn!(error = %e, "pruning history failed; retrying");
                    self.retention.interval
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn hold(&self) -> chrono::Duration {
        chrono::Duration::from_std((self.retention.interval * 3).max(MIN_HOLD))
            .unwrap_or(chrono::Duration::seconds(30))
    }

    /// Takes or renews the pruning lease for `node`; the stored mark when held.
    async fn take(&self, node: &str) -> Result<Option<Option<Uuid>>, StoreError> {
        let now = self.clock.now();
        self.store.prune_lease(node, now, now + self.hold()).await
    }

    /// One sweep as `node`: nothing unless it holds the pruning lease; then the jobs with
    /// executions recorded since the mark keep their newest `keep`, the mark moves on, and
    /// executions past the maximum age go.
    pub async fn sweep(&self, node: &str) -> Result<Sweep, StoreError> {
        let r = self.retention;
        let Some(mut mark) = self.take(node).await? else {
            return Ok(Sweep::default());
        };
        let mut sweep = Sweep {
            held: true,
            ..Sweep::default()
        };
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        let mut revisit =
            std::mem::take(&mut *self.revisit.lock().unwrap_or_else(|e| e.into_inner()));
        jobs.extend(revisit.keys().copied().filter(|j| seen.insert(*j)));
        let now = Instant::now();
        revisit.retain(|_, until| *until > now);
        loop {
            let changed = self.store.changed_jobs(mark, SCAN_ROWS).await?;
            sweep.rows += changed.rows;
            revisit.extend(changed.open.iter().map(|j| (*j, now + REVISIT_FOR)));
            jobs.extend(changed.jobs.into_iter().filter(|j| seen.insert(*j)));
            mark = changed.last.or(mark);
            if changed.rows < u64::from(SCAN_ROWS) {
                break;
            }
            if jobs.len() >= MAX_SWEEP_JOBS {
                sweep.more = true;
                break;
            }
        }
        sweep.jobs = jobs.len();
        if revisit.len() <= MAX_SWEEP_JOBS {
            *self.revisit.lock().unwrap_or_else(|e| e.into_inner()) = revisit;
        }
        for chunk in jobs.chunks(r.jobs_per_step.max(1) as usize) {
            sweep.deleted += self.store.prune_jobs(chunk, r.keep, r.batch).await?;
            if self.take(node).await?.is_none() {
                return Ok(sweep); // Another node took over; it starts from the stored mark.
            }
        }
        if let Some(mark) = mark {
            self.store.set_prune_mark(node, mark).await?;
        }
        if let Some(age) = r.max_age.and_then(|a| chrono::Duration::from_std(a).ok()) {
            let older_than = self.clock.now() - age;
            loop {
                let deleted = self.store.prune_aged(older_than, r.batch).await?;
                sweep.deleted += deleted;
                if deleted < u64::from(r.batch) {
                    break;
                }
            }
        }
        Ok(sweep)
    }
}
