//! Domain types: parsed and validated before anything reaches the store.

pub mod cron;
pub mod execution;
pub mod fire;
pub mod job;
pub mod plan;
pub mod schedule;
pub mod text;
