//! The change gate: fires claimed before a job changed are not called.
//!
//! A change to a job (edit, pause, delete) bumps its version and withdraws, in the store, its
//! claimed attempts due after the change. Fires of those attempts may already sit in a
//! node's timer or queue; the gate drops them just before the call.
//!
//! The node that made the change applies it at once. On PostgreSQL the change also notifies
//! every node (`LISTEN/NOTIFY`, with a poll as fallback); each node applies what it reads and
//! then confirms, in its `nodes` row, the database instant up to which it has read. The change
//! is answered once every live node has confirmed it. A node that cannot read changes stops
//! starting calls once its last successful read is older than its fence (two thirds of the
//! lease), so the answer never waits longer than that for a silent node, and no node calls a
//! withdrawn fire after the answer.
//!
//! Memory: a change is remembered for [`REMEMBERED`]. A fire held longer than that is not
//! judged by the gate at all: it is handed back to the store, which withdrew it if a change
//! applied, and otherwise lets it be claimed again with the job as it is now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::fire::Fire;
use crate::lease::Lease;
use crate::store::{DELETED, DynStore, JobChange, StoreError};

/// How long a change is remembered; a fire held longer goes back to the store.
pub const REMEMBERED: Duration = Duration::from_secs(3600);
/// How far back each read looks, beyond the last one: covers changes whose transaction
/// began before the last read and committed after it.
const POLL_OVERLAP: Duration = Duration::from_secs(5);
/// Bounds of the pause between two checks for confirmations.
const CONFIRM_POLL: (Duration, Duration) = (Duration::from_millis(2), Duration::from_millis(50));

/// A remembered change.
#[derive(Debug, Clone, Copy)]
struct Change {
    /// The job's version after it.
    version: i64,
    /// Its instant, in ms.
    at: i64,
    /// When this node learned of it, on the monotonic clock.
    learned: Instant,
}

/// Changes of jobs, by job, and how current this node's view of them is.
pub struct Gate {
    /// Job → its latest change.
    changes: Mutex<HashMap<Uuid, Change>>,
    /// When the last successful read of changes began, on the monotonic clock; none while
    /// this node is the only one (every change is then made here).
    read: Mutex<Option<Instant>>,
    /// Whether changes are also made by other nodes and must be read.
    shared: bool,
    /// How long a change is remembered.
    memory: Duration,
}

impl Gate {
    /// A gate for a node that is alone (`shared` false: SQLite) or one of many.
    pub fn new(shared: bool) -> Self {
        Self::remembering(shared, REMEMBERED)
    }

    /// A gate that remembers changes for `memory`.
    fn remembering(shared: bool, memory: Duration) -> Self {
        Gate {
            changes: Mutex::default(),
            read: Mutex::default(),
            shared,
            memory,
        }
    }

    /// Records a change. Older versions of a job's change are superseded.
    pub fn apply(&self, change: JobChange) {
        let mut map = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let learned = Instant::now();
        let entry = map.entry(change.id).or_insert(Change {
            version: change.version,
            at: change.at,
            learned,
        });
        if change.version >= entry.version {
            *entry = Change {
                version: change.version,
                at: change.at.max(entry.at),
                learned,
            };
        }
    }

    /// Whether a fire may still be called: false when its job was deleted, or changed after
    /// it was claimed and before it fell due.
    pub fn allows(&self, fire: &Fire) -> bool {
        let map = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&fire.job_id) {
            None => true,
            Some(c) if c.version == DELETED => false,
            Some(c) => fire.call.version >= c.version || fire.due_at.timestamp_millis() <= c.at,
        }
    }

    /// Whether a fire claimed at `claimed` can be judged here: every change since its claim
    /// is still remembered.
    pub fn remembers(&self, claimed: Instant) -> bool {
        claimed.elapsed() < self.memory
    }

    /// Whether this node's view of changes is recent enough to start calls: its last read
    /// began less than `fence` ago (always, for a node that is alone).
    pub fn current(&self, fence: Duration) -> bool {
        !self.shared
            || self
                .read
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|at| at.elapsed() < fence)
    }

    /// Forgets changes learned longer than its memory ago.
    fn forget_old(&self) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, c| c.learned.elapsed() < self.memory);
    }

    /// Waits until every other live node has confirmed reading the changes committed so far,
    /// or, for a node that does not confirm, until it has stopped starting calls (its fence
    /// has passed). Returns the nodes that did not confirm.
    pub async fn confirm(
        &self,
        store: &DynStore,
        lease: &Lease,
    ) -> Result<Vec<String>, StoreError> {
        if !self.shared {
            return Ok(Vec::new());
        }
        let Some(committed) = store.db_time().await? else {
            return Ok(Vec::new());
        };
        // A silent node stops by its last read + fence; that read began before `committed`.
        let deadline = Instant::now() + lease.fence_after() + CONFIRM_POLL.1;
        let live_since = committed - chrono::Duration::from_std(lease.lease()).unwrap_or_default();
        let ours = lease.all_ids();
        let mut pause = CONFIRM_POLL.0;
        loop {
            let mut waiting = store.unconfirmed(live_since, committed).await?;
            waiting.retain(|id| !ours.iter().any(|o| **o == **id));
            if waiting.is_empty() || Instant::now() >= deadline {
                return Ok(waiting);
            }
            // A node may have read between the commit and `committed`: announce again, so it
            // reads once more, after `committed`.
            store.announce_change().await?;
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(CONFIRM_POLL.1);
        }
    }

    /// Reads changes made by any node whenever one is announced, and at least every
    /// `interval`, and confirms each read; until `stop`.
    pub async fn watch(
        self: Arc<Self>,
        store: DynStore,
        lease: Arc<Lease>,
        clock: Arc<dyn Clock>,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let announced = Arc::new(Notify::new());
        let listener = {
            let (store, announced, stop) = (store.clone(), announced.clone(), stop.clone());
            tokio::spawn(async move { store.listen_changes(announced, stop).await })
        };
        let overlap = chrono::Duration::from_std(POLL_OVERLAP).unwrap_or_default();
        let mut since: Option<DateTime<Utc>> = None;
        loop {
            let began = Instant::now();
            match self.read_once(&store, &lease, clock.as_ref(), since).await {
                Ok(at) => {
                    since = Some(at - overlap);
                    *self.read.lock().unwrap_or_else(|e| e.into_inner()) = Some(began);
                    self.forget_old();
                }
                Err(e) => {
                    crate::meters::db_error(crate::meters::op::CHANGES);
                    tracing::warn!(error = %e, "reading job changes failed; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = announced.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
        let _ = listener.await;
    }

    /// One read: the database's instant first, then every change since the last read (all
    /// committed before that instant are among them), applied, then confirmed up to that
    /// instant for every identity of this node. Returns the instant.
    async fn read_once(
        &self,
        store: &DynStore,
        lease: &Lease,
        clock: &dyn Clock,
        since: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let at = store.db_time().await?.unwrap_or_else(|| clock.now());
        let since =
            since.unwrap_or(at - chrono::Duration::from_std(POLL_OVERLAP).unwrap_or_default());
        for change in store.changes_since(since).await? {
            self.apply(change);
        }
        let ids: Vec<String> = lease.all_ids().iter().map(|id| id.to_string()).collect();
        store.confirm_read(&ids, at).await?;
        Ok(at)
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
        let gate = Gate::new(false);
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
    fn a_fire_held_longer_than_the_memory_is_not_judged_here() {
        let gate = Gate::remembering(false, Duration::from_millis(40));
        let job = Uuid::now_v7();
        gate.apply(JobChange {
            id: job,
            version: 2,
            at: 50_000,
        });
        let claimed = Instant::now();
        assert!(gate.remembers(claimed));
        std::thread::sleep(Duration::from_millis(50));
        // The change is forgotten, so the fire could pass: it must not be judged here.
        gate.forget_old();
        assert!(gate.allows(&fire(job, 1, 100)));
        assert!(!gate.remembers(claimed), "handed back to the store instead");
        assert!(gate.remembers(Instant::now()));
    }

    #[test]
    fn only_a_node_that_shares_its_jobs_must_have_read_changes_lately() {
        assert!(Gate::new(false).current(Duration::from_secs(10)));
        let shared = Gate::new(true);
        assert!(!shared.current(Duration::from_secs(10)), "never read");
        *shared.read.lock().unwrap() = Some(Instant::now());
        assert!(shared.current(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !shared.current(Duration::from_millis(10)),
            "read too long ago"
        );
    }

    #[test]
    fn a_deleted_job_fires_no_more() {
        let gate = Gate::new(false);
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
