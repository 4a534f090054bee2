//! The claimer: moves attempts due within the look-ahead window out of the store into the
//! timer, in batches: the new fires of due jobs, and the attempts waiting in the store
//! (retries, manual calls, fires handed back by a stopped node or a failed start). It is the
//! only way into the timer, so the timer never holds a fire due beyond the window.
//!
//! It claims only what the node can hold: while `max_claimed` fires claimed by this node
//! wait in the timer or the dispatcher, it claims none, so a backlog stays in the store
//! (where each job's misfire policy meets it) rather than in memory; waiting attempts may
//! take a tenth of that room, so fires handed back for lack of a worker do not circle
//! between the store and memory by the thousand. The late ones their policy skips are
//! shed in the database by the [`Shedder`], room or not, in transactions of their own: a
//! slow shed over a large backlog never holds up a claim.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::lease::Lease;
use crate::meters;
use crate::store::{ClaimParams, DynStore, Misfires, StoreError};
use crate::worker::{Held, WorkerStats};

/// The claim loop's parts.
pub struct Claimer {
    /// The store claimed from.
    pub store: DynStore,
    /// This node's lease: no claims while it is not fresh.
    pub lease: Arc<Lease>,
    /// Where claimed fires go.
    pub timer: UnboundedSender<Vec<Held>>,
    /// The window's bounds.
    pub params: ClaimParams,
    /// Pause between polls when nothing more is due.
    pub interval: Duration,
    /// The wall clock, read inside each claim.
    pub clock: Arc<dyn Clock>,
    /// Wakes the claimer before its interval ends: something was stored that is due now.
    pub wake: Arc<Notify>,
    /// Counts the fires this node holds claimed and not started.
    pub stats: Arc<WorkerStats>,
    /// Most fires this node holds claimed and not started (`MAX_CLAIMED_FIRES`).
    pub max_claimed: usize,
}

impl Claimer {
    /// One claim transaction; returns whether it took a whole batch (of due jobs or of
    /// waiting attempts), so more may be due at once.
    pub async fn run_once(&self) -> Result<bool, StoreError> {
        if !self.lease.fresh() {
            return Ok(false);
        }
        let params = self.room();
        let (node, epoch) = self.lease.node();
        let began = std::time::Instant::now();
        let claimed = self
            .store
            .claim_due(&node, &params, self.clock.as_ref())
            .await?;
        meters::claimed(claimed.fires.len(), began.elapsed());
        count_misfires(claimed.misfires);
        if !claimed.fires.is_empty() {
            let at = std::time::Instant::now();
            let (n, first) = (claimed.fires.len(), claimed.first_attempts);
            self.stats.claimed.fetch_add(n, Ordering::AcqRel);
            self.stats
                .reclaimed
                .fetch_add(n.saturating_sub(first), Ordering::AcqRel);
            let held = claimed
                .fires
                .into_iter()
                .enumerate()
                .map(|(i, fire)| Held {
                    fire,
                    epoch,
                    node: node.clone(),
                    claimed: at,
                    waiting: i >= first,
                })
                .collect();
            let _ = self.timer.send(held);
        }
        let whole = |taken: usize, limit: u32| limit > 0 && taken >= limit as usize;
        Ok(whole(claimed.jobs, params.batch) || whole(claimed.waiting, params.waiting_batch))
    }

    /// This claim's bounds: the configured batches cut to the room left under
    /// `max_claimed`, nothing when there is none.
    fn room(&self) -> ClaimParams {
        let room = self
            .max_claimed
            .saturating_sub(self.stats.claimed.load(Ordering::Acquire));
        if room == 0 {
            tracing::debug!(
                max_claimed = self.max_claimed,
                "claiming paused: the node holds as many fires as it may"
            );
        }
        let waiting_room = (self.max_claimed / 10)
            .max(1)
            .saturating_sub(self.stats.reclaimed.load(Ordering::Acquire))
            .min(room);
        let cut = |limit: u32, room: usize| limit.min(u32::try_from(room).unwrap_or(u32::MAX));
        ClaimParams {
            batch: cut(self.params.batch, room),
            waiting_batch: cut(self.params.waiting_batch, waiting_room),
            max_fires: self.params.max_fires.min(room),
            ..self.params
        }
    }

    /// Claims until `stop`; keeps claiming at once while whole batches come back.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(self.interval, Duration::from_secs(5));
        loop {
            let wait = match self.run_once().await {
                Ok(true) => Duration::ZERO,
                Ok(false) => {
                    backoff.reset();
                    self.interval
                }
                Err(e) => {
                    meters::db_error(meters::op::CLAIM);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "claim failed");
                    wait
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Counts misfires in the metrics, by policy.
fn count_misfires(m: Misfires) {
    for (policy, n) in [("none", m.none), ("one", m.one), ("all", m.all)] {
        meters::misfired(policy, n);
    }
}

/// Records skipped, in the database, the late waiting attempts their jobs' misfire
/// policies drop, so a backlog the claimer has no room for never grows without bound.
pub struct Shedder {
    /// The store.
    pub store: DynStore,
    /// This node's lease: no shedding while it is not fresh.
    pub lease: Arc<Lease>,
    /// The claim window's bounds (the misfire threshold).
    pub params: ClaimParams,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Pause between sheds.
    pub interval: Duration,
}

impl Shedder {
    /// Sheds until `stop`: at once again while a whole batch went, else every `interval`.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(self.interval, Duration::from_secs(5));
        loop {
            let wait = if !self.lease.fresh() {
                self.interval
            } else {
                match self
                    .store
                    .shed_late(&self.params, self.clock.as_ref())
                    .await
                {
                    Ok(m) => {
                        backoff.reset();
                        count_misfires(m);
                        let whole = m.none.max(m.one) >= crate::store::SHED_LIMIT;
                        if whole { Duration::ZERO } else { self.interval }
                    }
                    Err(e) => {
                        meters::db_error(meters::op::CLAIM);
                        let wait = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64,
                            "shedding late waiting fires failed");
                        wait
                    }
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
