//! cronhook: a durable cron-over-HTTP job scheduler.
//!
//! Work moves one way, and nothing downstream hands work back upstream in memory: a retry,
//! a manual call, a fire that could not start and a dead node's fire are all written to the
//! store and come back through the claimer, like every other fire.
//!
//! ```text
//! api ──► jobs ──► store ──► scheduler::claimer ──► scheduler::timer ──► worker (queue)
//!                    ▲                                                       │
//!                    └──── worker::outcomes ◄──── worker::executor ◄─────────┘
//! ```
//!
//! - [`api`]: HTTP endpoints; validates input into [`domain`] types, then calls [`jobs`].
//! - [`jobs`]: the application layer: create, change, pause, resume, trigger, delete.
//! - [`store`]: the single source of truth (PostgreSQL or SQLite behind one trait).
//! - [`scheduler`]: the claimer takes attempts due within the look-ahead window; the timer
//!   holds only those and releases each to the worker queue at its instant.
//! - [`worker`]: the queue with bounded concurrency, the HTTP executor and the outcome
//!   writer that stores outcomes, retries and attempts handed back.
//! - [`lease`]: this node's identity and heartbeat; hands dead nodes' attempts back.
//! - [`gate`]: drops fires in memory whose job changed since they were claimed.
//! - [`retention`]: prunes each job's history in the background.
//! - [`meters`]: the metrics every part records, exported at `/metrics`.
//! - [`app`] wires it together; [`config`], [`cli`] and [`telemetry`] surround it;
//!   [`clock`] and [`backoff`] are small shared tools.
//!
//! See `ARCHITECTURE.md` for each module's one job and where a new feature goes.

pub mod api;
pub mod app;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod gate;
pub mod jobs;
pub mod lease;
pub mod meters;
pub mod retention;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod worker;
