//! The worker side: due fires wait in the dispatcher, which shares the workers out among
//! target hosts (see [`dispatch`]), the executor makes each call and the outcome writer
//! stores what it did. Work only moves
//! forward from here: a retry or a fire that could not start is written to the store, and
//! comes back through the claimer like every other attempt.

pub mod call_log;
pub mod dispatch;
pub mod executor;
pub mod outcomes;
pub mod signing;
pub mod target_policy;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::fire::Fire;
use dispatch::{Dispatch, Lane, Limits, Ticket};
use executor::Executor;

/// A fire held in memory, tagged with the node identity it was claimed under.
#[derive(Debug, Clone)]
pub struct Held {
    /// The attempt to run.
    pub fire: Fire,
    /// The node identity's epoch at claim time: a fire from an older epoch is not run.
    pub epoch: u64,
    /// The node id that claimed it: the store takes the attempt's start and outcome from
    /// this id only.
    pub node: Arc<str>,
    /// When it was claimed, on the monotonic clock.
    pub claimed: std::time::Instant,
    /// It was a waiting attempt when claimed (a retry, a manual call, a fire handed back),
    /// not a job's new fire.
    pub waiting: bool,
}

/// Counters the health endpoint shows.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Fires this node claimed that no worker has taken and none was handed back: held by
    /// the timer until due, or due and waiting in the dispatcher. The claimer claims no
    /// more while it reaches `MAX_CLAIMED_FIRES`.
    pub claimed: AtomicUsize,
    /// Of `claimed`, the waiting attempts (retries, manual calls, fires handed back).
    pub reclaimed: AtomicUsize,
    /// Fires due and waiting for a worker.
    pub queued: AtomicUsize,
    /// Calls in flight.
    pub active: AtomicUsize,
    /// Calls in flight that gave their worker back (slow calls).
    pub slow: AtomicUsize,
    /// Outcomes of calls made, not yet stored.
    pub unstored: AtomicUsize,
}

/// The running workers, and the slow calls they handed off.
pub struct WorkerPool {
    /// One task per worker.
    tasks: JoinSet<()>,
    /// The slow calls.
    slow: TaskTracker,
    /// Cancelled to abandon the slow calls still running after the grace period.
    abandon: CancellationToken,
}

impl WorkerPool {
    /// Starts `limits.workers` workers taking from `dispatch` until `stop`.
    pub fn start(
        limits: Limits,
        dispatch: Arc<Dispatch>,
        executor: Arc<Executor>,
        stop: CancellationToken,
    ) -> Self {
        let mut tasks = JoinSet::new();
        let slow = TaskTracker::new();
        let abandon = CancellationToken::new();
        for _ in 0..limits.workers {
            let worker = Worker {
                dispatch: dispatch.clone(),
                executor: executor.clone(),
                slow: slow.clone(),
                abandon: abandon.clone(),
                slow_after: limits.slow_after,
            };
            let stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    let (held, ticket) = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        taken = worker.dispatch.pop() => taken,
                    };
                    worker.run(held, ticket).await;
                }
            });
        }
        WorkerPool {
            tasks,
            slow,
            abandon,
        }
    }

    /// Waits up to `grace` for the calls in flight, then abandons the rest (their fires
    /// are recovered from the store). Returns how many were abandoned.
    pub async fn drain(mut self, grace: Duration) -> usize {
        self.slow.close();
        let all_done = async {
            while self.tasks.join_next().await.is_some() {}
            self.slow.wait().await;
        };
        if tokio::time::timeout(grace, all_done).await.is_ok() {
            return 0;
        }
        let left = self.tasks.len() + self.slow.len();
        self.tasks.shutdown().await;
        self.abandon.cancel();
        self.slow.wait().await;
        left
    }
}

/// One worker's handles.
struct Worker {
    dispatch: Arc<Dispatch>,
    executor: Arc<Executor>,
    slow: TaskTracker,
    abandon: CancellationToken,
    slow_after: Duration,
}

impl Worker {
    /// Runs one call: on this worker until it ends or outlives `slow_after`, then (if there
    /// is room) on its own as a slow call while the worker takes the next fire.
    async fn run(&self, held: Held, mut ticket: Ticket) {
        let started = Instant::now();
        let executor = self.executor.clone();
        let mut call = Box::pin(async move { executor.run(held).await });
        if ticket.lane == Lane::Worker {
            loop {
                match tokio::time::timeout(self.slow_after, call.as_mut()).await {
                    Ok(()) => {
                        self.dispatch.done(ticket, started.elapsed());
                        return;
                    }
                    Err(_) if self.dispatch.to_slow(&mut ticket) => break,
                    Err(_) => {}
                }
            }
        }
        let (dispatch, abandon) = (self.dispatch.clone(), self.abandon.clone());
        self.slow.spawn(async move {
            tokio::select! {
                () = call => {}
                _ = abandon.cancelled() => {}
            }
            dispatch.done(ticket, started.elapsed());
        });
    }
}
