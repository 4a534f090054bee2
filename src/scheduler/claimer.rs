//! The claimer: moves attempts due within the look-ahead window out of the store into the
//! timer, in batches: the new fires of due jobs, and the attempts waiting in the store
//! (retries, manual calls, fires handed back by a stopped node or a failed start). It is the
//! only way into the timer, so the timer never holds a fire due beyond the window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::lease::Lease;
use crate::store::{ClaimParams, DynStore, StoreError};
use crate::worker::Held;

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
}

impl Claimer {
    /// One claim transaction; returns whether it took a whole batch (of due jobs or of
    /// waiting attempts), so more may be due at once.
    pub async fn run_once(&self) -> Result<bool, StoreError> {
        if !self.lease.fresh() {
            return Ok(false);
        }
        let (node, epoch) = self.lease.node();
        let claimed = self
            .store
            .claim_due(&node, &self.params, self.clock.as_ref())
            .await?;
        if !claimed.fires.is_empty() {
            let at = std::time::Instant::now();
            let held = claimed
                .fires
                .into_iter()
                .map(|fire| Held {
                    fire,
                    epoch,
                    node: node.clone(),
                    claimed: at,
                })
                .collect();
            let _ = self.timer.send(held);
        }
        let batch = self.params.batch as usize;
        Ok(claimed.jobs >= batch || claimed.waiting >= batch)
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
