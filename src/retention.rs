//! History retention: a background sweep keeps each job's newest executions (and, when set,
//! only those younger than a maximum age), deleting the rest in small batches, a few jobs
//! at a time, so pruning never holds the database long enough to delay a fire.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::store::DynStore;

/// The sweep's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished executions kept per job.
    pub keep: u32,
    /// Finished executions older than this are deleted, when set.
    pub max_age: Option<Duration>,
    /// Pause between steps.
    pub interval: Duration,
    /// Jobs looked at per step.
    pub jobs_per_step: u32,
    /// Rows deleted per job and rule per step.
    pub batch: u32,
}

/// The sweep.
pub struct Pruner {
    /// The store pruned.
    pub store: DynStore,
    /// What to keep.
    pub retention: Retention,
    /// The wall clock, for the maximum age.
    pub clock: Arc<dyn Clock>,
}

impl Pruner {
    /// Sweeps until `stop`, cycling through every job.
    pub async fn run(self, stop: CancellationToken) {
        let r = self.retention;
        let max_age = r.max_age.and_then(|a| chrono::Duration::from_std(a).ok());
        let mut cursor: Option<Uuid> = None;
        loop {
            let older_than = max_age.map(|a| self.clock.now() - a);
            match self
                .store
                .prune_history(cursor, r.jobs_per_step, r.keep, older_than, r.batch)
                .await
            {
                Ok(step) => {
                    if step.deleted > 0 {
                        tracing::debug!(deleted = step.deleted, "pruned execution history");
                    }
                    cursor = step.last_job;
                }
                Err(e) => tracing::warn!(error = %e, "pruning history failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(r.interval) => {}
            }
        }
    }
}
