//! Scheduling: the claimer moves due attempts out of the store, and the timer holds them
//! until their instant, then hands them to the worker queue. The scheduler never calls a
//! target itself, and nothing downstream hands work back to it: whatever must run again is
//! written to the store and claimed again.

pub mod claimer;
pub mod timer;
