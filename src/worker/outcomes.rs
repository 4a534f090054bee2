//! The outcome writer: stores what attempts did, in batches (one transaction each). A
//! failed attempt's retry is stored with its outcome, and an attempt that could not start
//! is handed back: both wait in the store for a claimer, like every other attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::domain::fire::Outcome;
use crate::lease::Lease;
use crate::meters::{self, op};
use crate::store::{DynStore, Handback, StoreError};
use crate::worker::WorkerStats;

/// Most outcomes written by one transaction.
const BATCH: usize = 512;
/// How long the writer gathers reports after the first before it writes: outcomes that
/// arrive one by one (fires spread across the second rather than due at one instant) are
/// then stored a few hundred to a transaction instead of a few, which is what a commit costs
/// the database. An outcome waits in memory at most this much longer; a crash within it
/// leaves its attempt open, to be resolved by recovery like any attempt in flight.
const LINGER: Duration = Duration::from_millis(20);
/// Most attempts handed back by one transaction.
const HANDBACK_BATCH: usize = 2048;
/// Attempts at a write the database rejects for a reason other than being unreachable.
const MAX_REJECTED: u32 = 5;

/// The error recorded for an attempt whose outcome the database refused to store.
pub const REFUSED: &str =
    "outcome unknown: the call was made but the database refused to store its outcome";

/// What the executor reports about one attempt.
#[derive(Debug)]
pub enum Report {
    /// The call was made: its outcome, and the lease epoch it was made under (settled once
    /// the outcome is stored).
    Outcome(Outcome, u64),
    /// Attempts sent nowhere (their start could not be recorded, or they waited too long
    /// for a worker): they go back to the store, each to be claimed again at its `due_at`.
    Postponed(Vec<Handback>),
    /// Claimed fires not started: handed back by the dispatcher when they waited too long
    /// for a worker, or by the executor when the node fenced itself. Counted among the
    /// node's claimed fires until they are back in the store.
    HandedBack(Vec<Handback>),
}

/// The writer's parts.
pub struct OutcomeWriter {
    /// Reports arrive here; the writer stops when every sender is gone and all is written.
    pub incoming: UnboundedReceiver<Report>,
    /// The store written to.
    pub store: DynStore,
    /// Settles each call's epoch once its outcome is stored.
    pub lease: Arc<Lease>,
    /// Counts the outcomes waiting to be stored down as they are.
    pub stats: Arc<WorkerStats>,
}

impl OutcomeWriter {
    /// Writes until the channel closes. While the store is unreachable a write is kept and
    /// retried with backoff, so nothing is dropped for an outage.
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut epochs = Vec::with_capacity(BATCH);
        let mut reports = Vec::with_capacity(BATCH);
        let mut handbacks = Vec::new();
        let mut held = 0;
        while self.incoming.recv_many(&mut reports, BATCH).await > 0 {
            let deadline = tokio::time::Instant::now() + LINGER;
            while reports.len() < BATCH {
                let room = BATCH - reports.len();
                match tokio::time::timeout_at(deadline, self.incoming.recv_many(&mut reports, room))
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            for report in reports.drain(..) {
                match report {
                    Report::Outcome(outcome, epoch) => {
                        batch.push(outcome);
                        epochs.push(epoch);
                    }
                    Report::Postponed(attempts) => handbacks.extend(attempts),
                    Report::HandedBack(attempts) => {
                        held += attempts.len();
                        handbacks.extend(attempts);
                    }
                }
            }
            // Handed back in one transaction per batch, so a node shedding thousands of
            // fires a second keeps up with them.
            for chunk in handbacks.chunks(HANDBACK_BATCH) {
                self.persist("handing back attempts", op::HAND_BACK, || {
                    self.store.postpone(chunk)
                })
                .await;
            }
            handbacks.clear();
            // Back in the store (or given up on): no longer this node's to hold.
            self.stats.claimed.fetch_sub(
                std::mem::take(&mut held),
                std::sync::atomic::Ordering::AcqRel,
            );
            if !batch.is_empty() {
                let began = std::time::Instant::now();
                let recorded = self
                    .persist("writing outcomes", op::OUTCOMES, || {
                        self.store.record_outcomes(&batch)
                    })
                    .await;
                meters::outcomes_written(batch.len(), began.elapsed());
                match recorded {
                    Some(recorded) => report_late(&batch, &recorded.outcomes),
                    None => self.write_each(&batch, &epochs).await,
                }
            }
            let stored = epochs.len();
            let _ = self.stats.unstored.fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |n| Some(n.saturating_sub(stored)),
            );
            for epoch in epochs.drain(..) {
                self.lease.settle(epoch);
            }
            batch.clear();
        }
    }

    /// Writes a batch the database refused one outcome at a time, so one bad outcome does
    /// not take the others with it. An outcome still refused is recorded `unknown`; if even
    /// that is refused, its node id is replaced, so recovery resolves the attempt like any
    /// other of a stopped node. No attempt is left `started` or held forever.
    async fn write_each(&self, batch: &[Outcome], epochs: &[u64]) {
        for (outcome, &epoch) in batch.iter().zip(epochs) {
            let one = std::slice::from_ref(outcome);
            if let Some(recorded) = self
                .persist("writing an outcome", op::OUTCOMES, || {
                    self.store.record_outcomes(one)
                })
                .await
            {
                report_late(one, &recorded.outcomes);
                continue;
            }
            meters::outcomes_dropped("refused", 1);
            let abandoned = self
                .persist("recording an outcome unknown", op::OUTCOMES, || {
                    self.store.abandon(
                        outcome.execution_id,
                        &outcome.node,
                        outcome.executed_at,
                        REFUSED,
                    )
                })
                .await;
            if abandoned.is_none() {
                tracing::error!(execution_id = %outcome.execution_id,
                    "the database refuses this attempt's outcome: the node id is replaced so recovery resolves it");
                self.lease.fence(epoch);
            }
        }
    }

    /// Runs `write` until it succeeds: forever while the database is unreachable, at most
    /// [`MAX_REJECTED`] times while it rejects the write (then none). Each failure counts
    /// as a database error of `operation`.
    async fn persist<T, F>(
        &self,
        what: &str,
        operation: &'static str,
        write: impl Fn() -> F,
    ) -> Option<T>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut rejected = 0;
        loop {
            let result = write().await;
            if result.is_err() {
                meters::db_error(operation);
            }
            match result {
                Ok(written) => return Some(written),
                Err(StoreError::Other(e)) if rejected + 1 >= MAX_REJECTED => {
                    tracing::error!(error = %e, "{what}: rejected by the database; dropped");
                    return None;
                }
                Err(e) => {
                    if matches!(e, StoreError::Other(_)) {
                        rejected += 1;
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what} failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Logs the outcomes the store did not take: their attempt was no longer their node's (it
/// was recovered by another node, or withdrawn by a change). They are evidence of a late
/// call, never an overwrite, and they schedule no retry.
fn report_late(batch: &[Outcome], recorded: &[Uuid]) {
    if recorded.len() == batch.len() {
        return;
    }
    meters::outcomes_dropped("late", (batch.len() - recorded.len()) as u64);
    let recorded: std::collections::HashSet<&Uuid> = recorded.iter().collect();
    for o in batch.iter().filter(|o| !recorded.contains(&o.execution_id)) {
        tracing::warn!(execution_id = %o.execution_id, node = %o.node, status = o.status_code,
            success = o.verdict == crate::domain::fire::Verdict::Succeeded,
            "late outcome not recorded: the attempt is no longer this node's");
    }
}
