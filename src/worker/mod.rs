//! The worker side: due fires wait in the queue, at most `concurrency` calls run at once,
//! the executor makes each call and the outcome writer stores what it did. Work only moves
//! forward from here: a retry or a fire that could not start is written to the store, and
//! comes back through the claimer like every other attempt.

pub mod executor;
pub mod outcomes;
pub mod signing;
pub mod target_policy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::domain::fire::Fire;
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
}

/// Counters the health endpoint shows.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Fires due and waiting for a worker.
    pub queued: AtomicUsize,
    /// Calls in flight.
    pub active: AtomicUsize,
}

/// The queue between the timer and the workers: many producers, many consumers.
pub struct Queue {
    /// Due fires in order.
    tx: flume::Sender<Held>,
    /// Each worker takes the next fire from its own handle.
    rx: flume::Receiver<Held>,
    /// Sizes for the health endpoint.
    stats: Arc<WorkerStats>,
}

impl Queue {
    /// An empty queue reporting into `stats`.
    pub fn new(stats: Arc<WorkerStats>) -> Self {
        let (tx, rx) = flume::unbounded();
        Queue { tx, rx, stats }
    }

    /// Adds a due fire.
    pub fn push(&self, held: Held) {
        self.stats.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(held).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    async fn pop(&self) -> Option<Held> {
        let held = self.rx.recv_async().await.ok();
        if held.is_some() {
            self.stats.queued.fetch_sub(1, Ordering::AcqRel);
        }
        held
    }
}

/// The running workers.
pub struct WorkerPool {
    /// One task per worker.
    tasks: JoinSet<()>,
}

impl WorkerPool {
    /// Starts `concurrency` workers taking from `queue` until `stop`.
    pub fn start(
        concurrency: usize,
        queue: Arc<Queue>,
        executor: Arc<Executor>,
        stop: CancellationToken,
    ) -> Self {
        let mut tasks = JoinSet::new();
        for _ in 0..concurrency {
            let queue = queue.clone();
            let executor = executor.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    let held = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        held = queue.pop() => match held { Some(h) => h, None => return },
                    };
                    executor.run(held).await;
                }
            });
        }
        WorkerPool { tasks }
    }

    /// Waits up to `grace` for the calls in flight, then abandons the rest (their fires
    /// are recovered from the store). Returns how many were abandoned.
    pub async fn drain(mut self, grace: Duration) -> usize {
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_ok() {
            return 0;
        }
        let left = self.tasks.len();
        self.tasks.shutdown().await;
        left
    }
}
