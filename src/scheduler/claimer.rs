//! The claimer: moves due fires out of the store into the timer, in batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::Held;
use super::lease::Lease;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::store::{ClaimParams, DynStore, StoreError};

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
}

impl Claimer {
    /// One claim transaction; returns how many due jobs it advanced.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        if !self.lease.fresh() {
            return Ok(0);
        }
        let (node, epoch) = self.lease.node();
        let claimed = self
            .store
            .claim_due(&node, &self.params, self.clock.as_ref())
            .await?;
        if !claimed.fires.is_empty() {
            let held = claimed
                .fires
                .into_iter()
                .map(|fire| Held { fire, epoch })
                .collect();
            let _ = self.timer.send(held);
        }
        Ok(claimed.jobs)
    }

    /// Claims until `stop`; keeps claiming at once while whole batches of jobs come back.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(self.interval, Duration::from_secs(5));
        loop {
            let wait = match self.run_once().await {
                Ok(n) if n >= self.params.batch as usize => Duration::ZERO,
                Ok(_) => {
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
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
