//! The outcome writer: stores attempts' outcomes in batches (one transaction each) and,
//! once a retry is stored, hands it to the timer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::backoff::Backoff;
use crate::domain::fire::Outcome;
use crate::scheduler::Held;
use crate::scheduler::lease::Lease;
use crate::store::{DynStore, StoreError};

/// Most outcomes written by one transaction.
const BATCH: usize = 512;
/// Attempts at a batch the database rejects for a reason other than being unreachable.
const MAX_REJECTED: u32 = 5;

/// The writer's parts.
pub struct OutcomeWriter {
    /// Outcomes arrive here with their call's lease epoch; the writer stops when every
    /// sender is gone and all is written.
    pub incoming: UnboundedReceiver<(Outcome, u64)>,
    /// The store written to.
    pub store: DynStore,
    /// Retries are claimed under this node's current id.
    pub lease: Arc<Lease>,
    /// Where stored retries go.
    pub timer: UnboundedSender<Vec<Held>>,
}

impl OutcomeWriter {
    /// Writes until the channel closes. While the store is unreachable the batch is kept and
    /// retried with backoff, so no outcome is dropped for an outage.
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut epochs = Vec::with_capacity(BATCH);
        while let Some(first) = self.incoming.recv().await {
            let mut next = Some(first);
            while let Some((outcome, epoch)) = next {
                batch.push(outcome);
                epochs.push(epoch);
                next = if batch.len() < BATCH {
                    self.incoming.try_recv().ok()
                } else {
                    None
                };
            }
            self.write(&batch).await;
            for epoch in epochs.drain(..) {
                self.lease.settle(epoch);
            }
            batch.clear();
        }
    }

    async fn write(&self, batch: &[Outcome]) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut rejected = 0;
        loop {
            let (node, epoch) = self.lease.node();
            match self.store.record_outcomes(&node, batch).await {
                Ok(stored) => {
                    // Only retries actually stored may run: one whose attempt already
                    // exists belongs to whoever stored it first.
                    let retries: Vec<Held> = batch
                        .iter()
                        .filter_map(|o| o.retry.clone())
                        .filter(|f| stored.contains(&f.execution_id))
                        .map(|fire| Held { fire, epoch })
                        .collect();
                    if !retries.is_empty() {
                        let _ = self.timer.send(retries);
                    }
                    return;
                }
                Err(StoreError::Other(e)) if rejected + 1 >= MAX_REJECTED => {
                    tracing::error!(error = %e, count = batch.len(), "outcomes rejected by the database; dropped");
                    return;
                }
                Err(e) => {
                    if matches!(e, StoreError::Other(_)) {
                        rejected += 1;
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, count = batch.len(), retry_in_ms = wait.as_millis() as u64, "writing outcomes failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
