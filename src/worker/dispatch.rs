//! The dispatcher between the timer and the workers: due fires wait here, one queue per
//! target host, and workers take them so that one slow or hanging target cannot hold the
//! workers every other target needs.
//!
//! The rules, in the order a worker applies them when it looks for its next call:
//!
//! 1. Hosts with waiting fires are served in turn (round robin), each host's fires in order.
//! 2. A host never has more than `host_calls` calls in flight.
//! 3. A call holds its worker until it ends or `slow_after` passes; then it gives the worker
//!    back and goes on as a *slow call* (at most `slow_calls` of those at once), and its
//!    host is marked slow. A slow host's next calls start as slow calls straight away, so
//!    they never hold a worker; a call of it that ends within `slow_after` unmarks it.
//! 4. While another host has fires that need a worker, no host holds more than half the
//!    workers. Alone, a host may use them all: one target alone loses no throughput.
//! 5. A fire that has waited longer than `late_after` past its due instant is handed back to
//!    the store, where its job's misfire policy decides what becomes of it; the outcome
//!    writer stores each batch of hand-backs in one transaction. The claimer, for its part,
//!    claims nothing while the node holds `MAX_CLAIMED_FIRES` fires not yet taken here
//!    (see [`crate::scheduler::claimer`]), so what the dispatcher holds is bounded twice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::mpsc::WeakUnboundedSender;

use super::outcomes::Report;
use super::{Held, WorkerStats};
use crate::clock::Clock;
use crate::store::Handback;

/// The least time a fire waits in memory before it is handed back, whatever
/// `MISFIRE_THRESHOLD_MS` says: a fire is not sent round the store for a few milliseconds.
const MIN_LATE: Duration = Duration::from_secs(1);

/// How calls share the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Workers starting calls.
    pub workers: usize,
    /// Most calls in flight to one host.
    pub host_calls: usize,
    /// Most slow calls in flight.
    pub slow_calls: usize,
    /// A call running this long gives its worker back.
    pub slow_after: Duration,
    /// A fire waiting this long past its due instant is handed back.
    pub late_after: Duration,
}

impl Limits {
    /// The most workers one host holds while another host needs one.
    fn share(&self) -> usize {
        (self.workers / 2).max(1)
    }
}

/// Where a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// On the worker that took it.
    Worker,
    /// On its own, as a slow call.
    Slow,
}

/// A taken fire's place: its host and lane, returned when the call ends.
#[derive(Debug)]
pub struct Ticket {
    host: Arc<str>,
    /// Where the call runs now.
    pub lane: Lane,
}

/// One target host's waiting fires and calls in flight.
#[derive(Default)]
struct Host {
    /// The host's key in the map, shared with the ring.
    key: Arc<str>,
    waiting: VecDeque<Held>,
    /// Calls holding a worker.
    young: usize,
    /// Slow calls.
    slow: usize,
    /// A call of the host outlived `slow_after` and none has been fast since.
    marked: bool,
}

impl Host {
    fn calls(&self) -> usize {
        self.young + self.slow
    }
}

#[derive(Default)]
struct State {
    /// Hosts with waiting fires or calls in flight.
    hosts: HashMap<Arc<str>, Host>,
    /// Hosts with waiting fires, in serving order.
    ring: VecDeque<Arc<str>>,
    /// Slow calls in flight, all hosts.
    slow: usize,
}

/// The queue between the timer and the workers.
pub struct Dispatch {
    state: Mutex<State>,
    /// Woken when a fire arrives or a call ends or leaves its worker.
    ready: Notify,
    limits: Limits,
    stats: Arc<WorkerStats>,
    clock: Arc<dyn Clock>,
    /// Where late fires are handed back (the outcome writer); weak, so the writer still
    /// ends once the workers are gone.
    handback: WeakUnboundedSender<Report>,
}

/// The host (and port) a call goes to: the URL's authority without user information.
pub fn host_of(api: &str) -> &str {
    let rest = api.split_once("://").map_or(api, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

impl Dispatch {
    /// An empty dispatcher.
    pub fn new(
        limits: Limits,
        stats: Arc<WorkerStats>,
        clock: Arc<dyn Clock>,
        handback: WeakUnboundedSender<Report>,
    ) -> Self {
        Dispatch {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            limits,
            stats,
            clock,
            handback,
        }
    }

    /// The configured workers.
    pub fn workers(&self) -> usize {
        self.limits.workers
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds due fires, all at once, so the fires of one instant are shared out together.
    pub fn push(&self, batch: Vec<Held>) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        let mut late = Vec::new();
        {
            let mut st = self.state();
            let State { hosts, ring, .. } = &mut *st;
            for held in batch {
                let key = host_of(&held.fire.call.api);
                let host = match hosts.get_mut(key) {
                    Some(host) => host,
                    None => {
                        let key: Arc<str> = Arc::from(key);
                        hosts.entry(key.clone()).or_insert_with(|| Host {
                            key,
                            ..Host::default()
                        })
                    }
                };
                if host.waiting.is_empty() {
                    ring.push_back(host.key.clone());
                }
                host.waiting.push_back(held);
            }
            self.stats.queued.fetch_add(n, Ordering::AcqRel);
            // Fires a blocked host kept waiting too long go back to the store.
            let now = self.clock.now();
            for key in ring.iter() {
                if let Some(host) = hosts.get_mut(key) {
                    while host.waiting.front().is_some_and(|h| self.is_late(h, now)) {
                        if let Some(h) = host.waiting.pop_front() {
                            self.release(&h, true);
                            late.push(h);
                        }
                    }
                }
            }
            if !late.is_empty() {
                ring.retain(|k| hosts.get(k).is_some_and(|h| !h.waiting.is_empty()));
                hosts.retain(|_, h| !h.waiting.is_empty() || h.calls() > 0);
                self.stats.queued.fetch_sub(late.len(), Ordering::AcqRel);
            }
        }
        self.hand_back(late);
        if n == 1 {
            self.ready.notify_one();
        } else {
            self.ready.notify_waiters();
        }
    }

    /// Counts a fire out of the node's claimed fires as a worker takes it. A fire handed
    /// back stays counted until the outcome writer has stored it back (`late`).
    fn release(&self, held: &Held, late: bool) {
        if !late {
            self.stats.claimed.fetch_sub(1, Ordering::AcqRel);
        }
        if held.waiting {
            self.stats.reclaimed.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether `held` has waited here too long: since it fell due, or since it was claimed
    /// if it was claimed already late (the claim judged that lateness by the misfire
    /// policy; only the time spent waiting for a worker counts here).
    fn is_late(&self, held: &Held, now: chrono::DateTime<chrono::Utc>) -> bool {
        let late = self.limits.late_after.max(MIN_LATE);
        (now - held.fire.due_at)
            .to_std()
            .is_ok_and(|since_due| since_due.min(held.claimed.elapsed()) > late)
    }

    /// Sends late fires back to the store, due now.
    fn hand_back(&self, late: Vec<Held>) {
        if late.is_empty() {
            return;
        }
        tracing::warn!(
            fires = late.len(),
            waited_ms = self.limits.late_after.max(MIN_LATE).as_millis() as u64,
            "fires waited too long for a worker or their host: handed back to the store, where their misfire policy applies"
        );
        let Some(reports) = self.handback.upgrade() else {
            return; // Shutting down: the store hands back everything not started.
        };
        let due_at = self.clock.now();
        let _ = reports.send(Report::HandedBack(
            late.into_iter()
                .map(|held| Handback {
                    execution: held.fire.execution_id,
                    node: held.node,
                    due_at,
                })
                .collect(),
        ));
    }

    /// Counters for health.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// How long the longest-waiting due fire has waited past its due instant.
    pub fn behind(&self) -> Duration {
        let now = self.clock.now();
        let st = self.state();
        st.ring
            .iter()
            .filter_map(|k| st.hosts.get(k)?.waiting.front())
            .filter_map(|h| (now - h.fire.due_at).to_std().ok())
            .max()
            .unwrap_or_default()
    }

    /// Takes the next fire a free worker may start, by the rules above.
    fn take(&self) -> Option<(Held, Ticket)> {
        let mut late = Vec::new();
        let taken = {
            let mut st = self.state();
            let now = self.clock.now();
            let mut taken = None;
            for _ in 0..st.ring.len() {
                let Some(key) = st.ring.pop_front() else {
                    break;
                };
                let lane = self.lane_for(&st, &key);
                let State { hosts, ring, slow } = &mut *st;
                let Some(host) = hosts.get_mut(&key) else {
                    continue;
                };
                let Some(lane) = lane else {
                    ring.push_back(key);
                    continue;
                };
                let mut held = None;
                while let Some(h) = host.waiting.pop_front() {
                    self.stats.queued.fetch_sub(1, Ordering::AcqRel);
                    let is_late = self.is_late(&h, now);
                    self.release(&h, is_late);
                    if is_late {
                        late.push(h);
                    } else {
                        held = Some(h);
                        break;
                    }
                }
                if !host.waiting.is_empty() {
                    ring.push_back(key.clone());
                }
                let Some(held) = held else {
                    if host.calls() == 0 {
                        hosts.remove(&key);
                    }
                    continue;
                };
                match lane {
                    Lane::Worker => host.young += 1,
                    Lane::Slow => {
                        host.slow += 1;
                        *slow += 1;
                        self.stats.slow.fetch_add(1, Ordering::AcqRel);
                    }
                }
                taken = Some((held, Ticket { host: key, lane }));
                break;
            }
            taken
        };
        self.hand_back(late);
        taken
    }

    /// The lane `key`'s next fire may start in now, if any.
    fn lane_for(&self, st: &State, key: &Arc<str>) -> Option<Lane> {
        let host = st.hosts.get(key)?;
        if host.calls() >= self.limits.host_calls {
            return None;
        }
        if host.marked && st.slow < self.limits.slow_calls {
            return Some(Lane::Slow);
        }
        if host.young < self.limits.share() {
            return Some(Lane::Worker);
        }
        // Past its share: only while no other host needs a worker.
        let others_need = st.ring.iter().any(|k| {
            k != key
                && st.hosts.get(k).is_some_and(|h| {
                    h.calls() < self.limits.host_calls
                        && !(h.marked && st.slow < self.limits.slow_calls)
                })
        });
        (!others_need).then_some(Lane::Worker)
    }

    /// Waits for the next fire a free worker may start.
    pub async fn pop(&self) -> (Held, Ticket) {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(taken) = self.take() {
                return taken;
            }
            ready.await;
        }
    }

    /// Moves a call that outlived `slow_after` off its worker, if there is room for another
    /// slow call; marks its host slow either way.
    pub fn to_slow(&self, ticket: &mut Ticket) -> bool {
        let moved = {
            let mut st = self.state();
            let room = st.slow < self.limits.slow_calls;
            let Some(host) = st.hosts.get_mut(&ticket.host) else {
                return false;
            };
            host.marked = true;
            if room && ticket.lane == Lane::Worker {
                host.young -= 1;
                host.slow += 1;
                st.slow += 1;
                self.stats.slow.fetch_add(1, Ordering::AcqRel);
                ticket.lane = Lane::Slow;
                true
            } else {
                false
            }
        };
        if moved {
            self.ready.notify_one();
        }
        moved
    }

    /// A call ended, after `took`.
    pub fn done(&self, ticket: Ticket, took: Duration) {
        {
            let mut st = self.state();
            let State { hosts, slow, .. } = &mut *st;
            if let Some(host) = hosts.get_mut(&ticket.host) {
                match ticket.lane {
                    Lane::Worker => host.young -= 1,
                    Lane::Slow => {
                        host.slow -= 1;
                        *slow -= 1;
                        self.stats.slow.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                if took < self.limits.slow_after {
                    host.marked = false;
                }
                if host.calls() == 0 && host.waiting.is_empty() {
                    hosts.remove(&ticket.host);
                }
            }
        }
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::fire::{Call, Fire};
    use crate::domain::job::Delivery;

    fn limits() -> Limits {
        Limits {
            workers: 4,
            host_calls: 3,
            slow_calls: 2,
            slow_after: Duration::from_millis(100),
            late_after: Duration::from_secs(5),
        }
    }

    fn held(api: &str, due_ago_ms: i64) -> Held {
        let now = chrono::Utc::now();
        Held {
            fire: Fire {
                execution_id: uuid::Uuid::now_v7(),
                job_id: uuid::Uuid::now_v7(),
                scheduled_at: now,
                due_at: now - chrono::Duration::milliseconds(due_ago_ms),
                attempt: 1,
                call: Arc::new(Call::post(api, Delivery::AtLeastOnce)),
            },
            epoch: 0,
            node: Arc::from("n"),
            claimed: std::time::Instant::now()
                .checked_sub(Duration::from_millis(due_ago_ms as u64))
                .unwrap(),
            waiting: false,
        }
    }

    fn dispatch(
        limits: Limits,
    ) -> (
        Dispatch,
        tokio::sync::mpsc::UnboundedSender<Report>,
        tokio::sync::mpsc::UnboundedReceiver<Report>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let d = Dispatch::new(
            limits,
            Arc::default(),
            Arc::new(SystemClock),
            tx.downgrade(),
        );
        (d, tx, rx)
    }

    fn host(t: &(Held, Ticket)) -> &str {
        host_of(&t.0.fire.call.api)
    }

    #[test]
    fn the_host_is_the_authority_without_credentials() {
        assert_eq!(host_of("http://a.example:8080/x?y#z"), "a.example:8080");
        assert_eq!(host_of("https://u:p@b.example/"), "b.example");
        assert_eq!(host_of("http://[::1]:9/hook"), "[::1]:9");
        assert_eq!(host_of("http://c.example?q=1"), "c.example");
    }

    #[test]
    fn hosts_take_turns_and_none_holds_more_than_half_while_others_wait() {
        let (d, _tx, _rx) = dispatch(limits());
        let mut batch: Vec<Held> = (0..3).map(|_| held("http://slow.example/", 0)).collect();
        batch.extend((0..3).map(|_| held("http://fast.example/", 0)));
        d.push(batch);
        let first: Vec<_> = (0..4).map(|_| d.take().expect("a fire")).collect();
        let hosts: Vec<&str> = first.iter().map(host).collect();
        assert_eq!(
            hosts,
            [
                "slow.example",
                "fast.example",
                "slow.example",
                "fast.example"
            ]
        );
        // Each host holds its share, 2 of the 4 workers. When a fast call ends, its worker
        // goes to fast's next fire, not to slow's third: fast still needs a worker.
        let (f, t) = first.into_iter().nth(1).unwrap();
        drop(f);
        d.done(t, Duration::from_millis(1));
        let next = d.take().expect("a fire");
        assert_eq!(host(&next), "fast.example");
    }

    #[test]
    fn alone_a_host_uses_every_worker_up_to_its_limit() {
        let (d, _tx, _rx) = dispatch(Limits {
            host_calls: 10,
            ..limits()
        });
        d.push((0..6).map(|_| held("http://one.example/", 0)).collect());
        let taken: Vec<_> = (0..4).filter_map(|_| d.take()).collect();
        assert_eq!(taken.len(), 4, "all four workers");
        assert!(taken.iter().all(|t| t.1.lane == Lane::Worker));
    }

    #[test]
    fn a_host_never_has_more_than_its_calls_in_flight() {
        let (d, _tx, _rx) = dispatch(Limits {
            workers: 10,
            ..limits()
        });
        d.push((0..6).map(|_| held("http://one.example/", 0)).collect());
        let taken: Vec<_> = (0..6).filter_map(|_| d.take()).collect();
        assert_eq!(taken.len(), 3);
        assert_eq!(d.stats.queued.load(Ordering::Acquire), 3);
    }

    #[test]
    fn a_slow_call_gives_its_worker_back_and_its_host_starts_slow() {
        let (d, _tx, _rx) = dispatch(limits());
        d.push((0..3).map(|_| held("http://slow.example/", 0)).collect());
        let (_h, mut ticket) = d.take().unwrap();
        assert!(d.to_slow(&mut ticket));
        assert_eq!(ticket.lane, Lane::Slow);
        let (_h2, second) = d.take().unwrap();
        assert_eq!(second.lane, Lane::Slow, "a marked host starts slow");
        // The slow calls are full (2): the third holds a worker.
        let (_h3, mut third) = d.take().unwrap();
        assert_eq!(third.lane, Lane::Worker);
        assert!(!d.to_slow(&mut third), "no room among the slow calls");
        // A fast call unmarks the host.
        d.done(third, Duration::from_millis(5));
        d.push(vec![held("http://slow.example/", 0)]);
        let (_h4, fourth) = d.take().unwrap();
        assert_eq!(fourth.lane, Lane::Worker);
        assert_eq!(d.stats.slow.load(Ordering::Acquire), 2);
    }

    #[test]
    fn a_fire_claimed_late_is_judged_by_its_time_here() {
        let (d, _tx, mut rx) = dispatch(limits());
        // Due 6 s ago but claimed just now (after an outage, say): the claim applied the
        // misfire policy; here it has not waited, so it is started, not handed back.
        let mut late = held("http://a.example/", 6_000);
        late.claimed = std::time::Instant::now();
        d.push(vec![late]);
        assert!(rx.try_recv().is_err());
        assert!(d.take().is_some());
    }

    #[test]
    fn fires_waiting_past_the_threshold_go_back_to_the_store() {
        let (d, _tx, mut rx) = dispatch(Limits {
            host_calls: 1,
            ..limits()
        });
        d.push(vec![
            held("http://a.example/", 0),
            held("http://a.example/", 0),
        ]);
        let _busy = d.take().unwrap();
        // The host is at its limit; a fire already 6 s late arrives behind the waiting one.
        d.push(vec![held("http://a.example/", 6_000)]);
        // Order within a host is kept, so the late fire is found when it reaches the front
        // or when a worker looks: here the front is not late, so nothing goes back yet.
        assert!(rx.try_recv().is_err());
        d.push(vec![held("http://b.example/", 6_000)]);
        match rx.try_recv() {
            Ok(Report::HandedBack(_)) => {}
            other => panic!("expected a hand-back, got {other:?}"),
        }
        assert_eq!(d.stats.queued.load(Ordering::Acquire), 2);
    }
}
