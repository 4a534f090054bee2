//! The timer: holds claimed fires of the look-ahead window and releases each to the worker
//! queue at its instant. Its memory is bounded by the window, not by the number of jobs.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::worker::Held;
use crate::worker::dispatch::Dispatch;

/// A held fire ordered by due instant, then arrival.
struct Entry {
    due_ms: i64,
    seq: u64,
    held: Held,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ms, self.seq) == (other.due_ms, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due_ms, self.seq).cmp(&(other.due_ms, other.seq))
    }
}

/// The longest single sleep: the wall clock is re-read at least this often.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// The first whole millisecond at or after `due_at`: a fire never starts before its instant
/// (a retry's instant has microseconds, and a change withdraws attempts not yet due).
fn due_ms(due_at: chrono::DateTime<chrono::Utc>) -> i64 {
    let us = due_at.timestamp_micros();
    us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0)
}

/// The timer's parts.
pub struct Timer {
    /// Claimed fires arrive here, from the claimer only.
    pub incoming: UnboundedReceiver<Vec<Held>>,
    /// Where due fires go.
    pub dispatch: Arc<Dispatch>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
}

impl Timer {
    /// Runs until `stop`; fires still held then are dropped (the store hands them back).
    pub async fn run(mut self, stop: CancellationToken) {
        let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
        let mut seq = 0u64;
        loop {
            let now_ms = self.clock.now().timestamp_millis();
            // The fires of one instant go together, so the dispatcher shares them out
            // among their hosts rather than in arrival order.
            let mut due = Vec::new();
            while heap.peek().is_some_and(|Reverse(e)| e.due_ms <= now_ms) {
                if let Some(Reverse(e)) = heap.pop() {
                    due.push(e.held);
                }
            }
            self.dispatch.push(due);
            let wait = heap
                .peek()
                .map(|Reverse(e)| Duration::from_millis((e.due_ms - now_ms) as u64))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = stop.cancelled() => return,
                batch = self.incoming.recv() => match batch {
                    Some(batch) => {
                        for held in batch {
                            seq += 1;
                            heap.push(Reverse(Entry { due_ms: due_ms(held.fire.due_at), seq, held }));
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due_ms;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_fire_is_timed_at_or_after_its_instant() {
        let whole = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        assert_eq!(due_ms(whole), 1_700_000_000_123);
        let inside = whole + chrono::Duration::microseconds(1);
        assert_eq!(due_ms(inside), 1_700_000_000_124);
        let before_epoch =
            Utc.timestamp_millis_opt(-5).unwrap() + chrono::Duration::microseconds(300);
        assert_eq!(due_ms(before_epoch), -4);
    }
}
