//! Scheduling: the claimer moves due fires out of the store, the timer holds them until
//! their instant, the lease keeper proves this node alive and recovers dead nodes' fires, and
//! the gate drops fires of jobs changed since they were claimed. The scheduler never calls a
//! target itself.

pub mod claimer;
pub mod gate;
pub mod lease;
pub mod timer;

use crate::domain::fire::Fire;

/// A fire held in memory, tagged with the lease epoch it was claimed under.
#[derive(Debug, Clone)]
pub struct Held {
    /// The attempt to run.
    pub fire: Fire,
    /// The node identity's epoch at claim time: a fire from an older epoch is not run.
    pub epoch: u64,
}
