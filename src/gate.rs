//! The change gate: fires claimed before a job changed are not called.
//!
//! A change to a job (edit, pause, delete) bumps its version and withdraws, in the store, its
//! claimed attempts due after the change. Fires of those attempts may already sit in a
//! node's timer or queue; the gate drops them just before the call. The node that made the
//! change applies it at once; every node also polls the store for changes made elsewhere.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::fire::Fire;
use crate::store::{DELETED, DynStore, JobChange};

/// How long a change is remembered: longer than any fire waits in memory.
const REMEMBERED: Duration = Duration::from_secs(3600);
/// How far back each poll looks, beyond the last one: covers clock skew between nodes.
const POLL_OVERLAP: Duration = Duration::from_secs(5);

/// Changes of jobs, by job.
#[derive(Default)]
pub struct Gate {
    /// Job → (version after the change, the change's instant in ms).
    changes: Mutex<HashMap<Uuid, (i64, i64)>>,
}

impl Gate {
    /// Records a change. Older versions of a job's change are superseded.
    pub fn apply(&self, change: JobChange) {
        let mut map = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(change.id).or_insert((change.version, change.at));
        if change.version >= entry.0 {
            *entry = (change.version, change.at.max(entry.1));
        }
    }

    /// Whether a fire may still be called: false when its job was deleted, or changed after
    /// it was claimed and before it fell due.
    pub fn allows(&self, fire: &Fire) -> bool {
        let map = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&fire.job_id) {
            None => true,
            Some(&(version, _)) if version == DELETED => false,
            Some(&(version, at)) => {
                fire.call.version >= version || fire.due_at.timestamp_millis() <= at
            }
        }
    }

    /// Forgets changes older than [`REMEMBERED`].
    fn forget_before(&self, cutoff_ms: i64) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, at)| *at >= cutoff_ms);
    }

    /// Polls the store for changes every `interval` until `stop`.
    pub async fn watch(
        self: std::sync::Arc<Self>,
        store: DynStore,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let overlap = chrono::Duration::from_std(POLL_OVERLAP).unwrap_or_default();
        let remembered = chrono::Duration::from_std(REMEMBERED).unwrap_or_default();
        let mut since: DateTime<Utc> = clock.now() - overlap;
        loop {
            let started = clock.now();
            match store.changes_since(since).await {
                Ok(changes) => {
                    for change in changes {
                        self.apply(change);
                    }
                    since = started - overlap;
                    self.forget_before((started - remembered).timestamp_millis());
                }
                Err(e) => tracing::warn!(error = %e, "polling job changes failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fire::Call;
    use crate::domain::job::Delivery;
    use chrono::TimeZone;
    use std::sync::Arc;

    fn fire(job: Uuid, version: i64, due_s: i64) -> Fire {
        let at = Utc.timestamp_opt(due_s, 0).unwrap();
        let mut call = Call::post("http://127.0.0.1:9/", Delivery::AtLeastOnce);
        call.version = version;
        Fire {
            execution_id: Uuid::now_v7(),
            job_id: job,
            scheduled_at: at,
            due_at: at,
            attempt: 1,
            call: Arc::new(call),
        }
    }

    #[test]
    fn a_change_drops_older_fires_due_after_it() {
        let gate = Gate::default();
        let (job, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(gate.allows(&fire(job, 1, 100)));
        gate.apply(JobChange {
            id: job,
            version: 2,
            at: 50_000,
        });
        assert!(
            !gate.allows(&fire(job, 1, 100)),
            "claimed before, due after"
        );
        assert!(gate.allows(&fire(job, 1, 40)), "due before the change");
        assert!(gate.allows(&fire(job, 2, 100)), "claimed after the change");
        assert!(gate.allows(&fire(other, 1, 100)), "another job");
        // An older change arriving late does not undo a newer one.
        gate.apply(JobChange {
            id: job,
            version: 1,
            at: 10_000,
        });
        assert!(!gate.allows(&fire(job, 1, 100)));
    }

    #[test]
    fn a_deleted_job_fires_no_more() {
        let gate = Gate::default();
        let job = Uuid::now_v7();
        gate.apply(JobChange {
            id: job,
            version: DELETED,
            at: 50_000,
        });
        assert!(!gate.allows(&fire(job, 7, 10)));
        assert!(!gate.allows(&fire(job, 7, 100)));
    }
}
