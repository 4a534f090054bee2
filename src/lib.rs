//! cronhook: a durable cron-over-HTTP job scheduler.
//!
//! Data flows one way:
//!
//! ```text
//! api ──► store (jobs) ──► scheduler::claimer ──► scheduler::timer ──► worker (queue) ──► worker::executor ──► store (executions)
//! ```
//!
//! - [`api`]: HTTP endpoints; validates input into [`domain`] types before anything is stored.
//! - [`store`]: the single source of truth (PostgreSQL or SQLite behind one trait).
//! - [`scheduler`]: claims due fires in batches within a look-ahead window, holds only
//!   those in a timer, keeps this node's lease and recovers the fires of dead nodes.
//! - [`worker`]: a queue with bounded concurrency, the HTTP executor and the outcome writer.
//! - [`retention`]: prunes each job's history in the background.
//! - [`app`]: wires it together; [`config`], [`cli`] and [`telemetry`] surround it.

pub mod api;
pub mod app;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod retention;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod worker;
