//! This node's identity, its heartbeat, and the recovery of fires from dead nodes.
//!
//! Recovery only hands a dead node's attempts back to the store, where they wait for any
//! node's claimer like every other attempt: nothing here holds a fire.
//!
//! A node that cannot heartbeat for two thirds of the lease stops starting calls (it fences
//! itself) before any other node may take its fires over. When it is heard again it takes a
//! new identity, so its old fires are recovered by the ordinary sweep, by itself or another.
//! The old identity is kept alive until every call started under it has its outcome stored,
//! so a call whose outcome was merely waiting for the database is not made again.
//!
//! Time: this node judges its own lease on the monotonic clock, from when its last
//! successful heartbeat was sent, so no wall-clock step can keep a fenced node calling or
//! fence a healthy one. Heartbeats are stamped, and other nodes' leases judged, on the
//! shared clock (the database's, on PostgreSQL: see [`crate::clock::SharedClock`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::{Clock, SharedClock};
use crate::meters;
use crate::store::{Backend, DynStore, StoreError};

/// This node's identity and how fresh its heartbeat is.
pub struct Lease {
    /// The current node id, and its epoch (bumped whenever the id changes).
    id: RwLock<(Arc<str>, u64)>,
    /// Copy of the epoch for lock-free checks.
    epoch: AtomicU64,
    /// When the last successful heartbeat was sent, on the monotonic clock (none: never).
    last_ok: Mutex<Option<Instant>>,
    /// Whether the current id has had a successful heartbeat (an id that never did owns
    /// no fires, so there is no point replacing it).
    registered: AtomicBool,
    /// Set when a fire of the current epoch was not started for a stale lease: that fire
    /// is still claimed under the current id, so the id must be replaced for it to be
    /// recovered.
    must_rotate: AtomicBool,
    /// Calls started under each epoch whose outcome is not stored yet.
    unsettled: Mutex<HashMap<u64, usize>>,
    /// Earlier identities still heartbeated until their calls are settled.
    retired: Mutex<Vec<(Arc<str>, u64)>>,
    /// The lease: a node silent this long is dead to the others.
    lease: Duration,
    /// The shared clock, stamped on heartbeats.
    clock: Arc<dyn Clock>,
}

impl Lease {
    /// A fresh identity with no heartbeat yet.
    pub fn new(lease: Duration, clock: Arc<dyn Clock>) -> Self {
        Lease {
            id: RwLock::new((new_node_id(), 0)),
            epoch: AtomicU64::new(0),
            last_ok: Mutex::new(None),
            registered: AtomicBool::new(false),
            must_rotate: AtomicBool::new(false),
            unsettled: Mutex::default(),
            retired: Mutex::default(),
            lease,
            clock,
        }
    }

    /// The current node id and epoch.
    pub fn node(&self) -> (Arc<str>, u64) {
        self.id.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The lease: a node silent this long is dead to the others.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether a fire claimed under `epoch` may start now.
    pub fn may_start(&self, epoch: u64) -> bool {
        epoch == self.epoch() && self.fresh()
    }

    /// Whether the heartbeat is fresh enough that no other node can have taken our fires.
    pub fn fresh(&self) -> bool {
        self.last_ok()
            .is_some_and(|sent| sent.elapsed() < self.fence_after())
    }

    fn last_ok(&self) -> Option<Instant> {
        *self.last_ok.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fire of `epoch` was dropped for a stale lease: the current id must be replaced.
    /// True for the first such fire of the current id.
    pub fn fence(&self, epoch: u64) -> bool {
        epoch == self.epoch() && !self.must_rotate.swap(true, Ordering::AcqRel)
    }

    /// A call under `epoch` started: its outcome is owed to the store.
    pub fn begin(&self, epoch: u64) {
        *self
            .unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(epoch)
            .or_default() += 1;
    }

    /// The outcome of a call under `epoch` is stored (or there is none to store).
    pub fn settle(&self, epoch: u64) {
        let mut map = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&epoch) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&epoch);
            }
        }
    }

    fn settled(&self, epoch: u64) -> bool {
        !self
            .unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&epoch)
    }

    /// Every identity this node still answers for: the current one and retired ones.
    pub fn all_ids(&self) -> Vec<Arc<str>> {
        let mut ids = vec![self.node().0];
        ids.extend(
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(id, _)| id.clone()),
        );
        ids
    }

    /// How long after its last successful heartbeat was sent this node stops starting
    /// calls: two thirds of the lease, before any other node may take its fires over.
    pub fn fence_after(&self) -> Duration {
        self.lease * 2 / 3
    }

    /// Writes one heartbeat, taking a new identity first when the old one lapsed.
    pub async fn beat(&self, store: &DynStore) -> Result<(), StoreError> {
        let sent = Instant::now();
        let now = self.clock.now();
        let lapsed = self
            .last_ok()
            .is_some_and(|t| sent.duration_since(t) >= self.fence_after());
        let must = self.must_rotate.load(Ordering::Acquire);
        if (lapsed || must) && self.registered.load(Ordering::Acquire) {
            self.registered.store(false, Ordering::Release);
            self.must_rotate.store(false, Ordering::Release);
            let mut id = self.id.write().unwrap_or_else(|e| e.into_inner());
            let (old, epoch) = id.clone();
            *id = (new_node_id(), epoch + 1);
            self.epoch.store(epoch + 1, Ordering::Release);
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((old.clone(), epoch));
            tracing::warn!(old_node = %old, new_node = %id.0, "lease lapsed: continuing under a new node id; the old one's fires are recovered");
        }
        let (node, _) = self.node();
        let beat = tokio::time::timeout(self.lease / 3, store.heartbeat(&node, now))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("heartbeat timed out".into())));
        match beat {
            Ok(()) => {
                self.registered.store(true, Ordering::Release);
                *self.last_ok.lock().unwrap_or_else(|e| e.into_inner()) = Some(sent);
                self.beat_retired(store, now).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps retired identities alive while their calls are unsettled; then lets them go,
    /// so the sweep recovers the fires they held but never started.
    async fn beat_retired(&self, store: &DynStore, now: DateTime<Utc>) {
        let retired: Vec<(Arc<str>, u64)> = self
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (old, epoch) in retired {
            if self.settled(epoch) {
                if store.remove_node(&old).await.is_ok() {
                    self.retired
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|(id, _)| *id != old);
                    tracing::info!(old_node = %old, "retired node id released; its unstarted fires are recovered");
                }
            } else {
                let _ = store.heartbeat(&old, now).await;
            }
        }
    }
}

fn new_node_id() -> Arc<str> {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let id = Uuid::now_v7().simple().to_string();
    if host.is_empty() {
        Arc::from(id)
    } else {
        Arc::from(format!("{host}-{id}"))
    }
}

/// Keeps the heartbeat and hands dead nodes' attempts back to the store.
pub struct LeaseKeeper {
    /// The store.
    pub store: DynStore,
    /// This node's lease.
    pub lease: Arc<Lease>,
    /// The shared clock.
    pub clock: Arc<dyn Clock>,
    /// On PostgreSQL, the shared clock to anchor to the database's at each heartbeat.
    pub shared: Option<Arc<SharedClock>>,
    /// When this process started: on SQLite every node not heard from since is dead.
    pub started: DateTime<Utc>,
    /// Cancelled at shutdown: from then on only heartbeats, no more taking over fires.
    pub draining: CancellationToken,
}

impl LeaseKeeper {
    /// One heartbeat and one recovery sweep; returns how many attempts were handed back.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        if let Some(shared) = &self.shared {
            let sent = Instant::now();
            let read = tokio::time::timeout(self.lease.lease / 3, self.store.db_time()).await;
            if let Ok(Ok(Some(reference))) = read {
                shared.observe(reference, sent, Instant::now());
            }
        }
        self.lease.beat(&self.store).await?;
        if self.draining.is_cancelled() {
            return Ok(0);
        }
        let now = self.clock.now();
        // On SQLite only this process can run (the file lock guarantees it): every node not
        // heard from since it started is dead, while its own retired ids, still
        // heartbeated, are not.
        let live_since: DateTime<Utc> = match self.store.backend() {
            Backend::Sqlite => self.started,
            Backend::Postgres => {
                now - chrono::Duration::from_std(self.lease.lease).unwrap_or_default()
            }
        };
        let (node, _) = self.lease.node();
        let got = self.store.recover(&node, live_since, now).await?;
        meters::recovered(got.released, got.unknown);
        if got.unknown > 0 {
            tracing::warn!(
                count = got.unknown,
                "ATMOST_ONCE fires started by a stopped node recorded as unknown"
            );
        }
        if got.released > 0 {
            tracing::info!(
                count = got.released,
                "handed back the attempts of stopped nodes; they are claimed again when due"
            );
        }
        Ok(got.released)
    }

    /// Runs until `stop`, every third of the lease.
    pub async fn run(self, stop: CancellationToken) {
        let period = self.lease.lease / 3;
        loop {
            let wait = match self.run_once().await {
                Ok(_) => period,
                Err(e) => {
                    meters::db_error(meters::op::HEARTBEAT);
                    tracing::warn!(error = %e, "heartbeat or recovery failed; retrying");
                    period.min(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
