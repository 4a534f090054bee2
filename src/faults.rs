//! Test-only fault points, compiled only with the `fault-injection` feature (which the
//! fault tests turn on; a release build never has it). Each is configured by a
//! `CRONHOOK_FAULT_*` environment variable, read once, the first time the point is reached.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::store::{Exclusive, StoreError};

/// How many successful starts (`mark_started`, `start_exclusive`) have their reply lost.
pub const LOSE_START_REPLIES: &str = "CRONHOOK_FAULT_LOSE_START_REPLIES";

/// Starts whose reply is still to be lost.
fn starts_to_lose() -> &'static AtomicU32 {
    static LEFT: OnceLock<AtomicU32> = OnceLock::new();
    LEFT.get_or_init(|| {
        let n = std::env::var(LOSE_START_REPLIES)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        AtomicU32::new(n)
    })
}

/// The executor's view of a start the store recorded: for the first
/// `CRONHOOK_FAULT_LOSE_START_REPLIES` recorded starts, an error, as if the reply was lost
/// on its way back (the row stays started in the store).
pub fn lose_start_reply(started: Result<Exclusive, StoreError>) -> Result<Exclusive, StoreError> {
    if !matches!(started, Ok(Exclusive::Started)) {
        return started;
    }
    let lost = starts_to_lose()
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok();
    if !lost {
        return started;
    }
    tracing::warn!("fault injection: the reply of a recorded start is lost");
    Err(StoreError::Unavailable(
        "fault injection: start reply lost".into(),
    ))
}
