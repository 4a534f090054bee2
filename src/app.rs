//! Wires the store, scheduler, workers and API together and runs them until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::backoff::Backoff;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::Config;
use crate::gate::Gate;
use crate::jobs::Service;
use crate::lease::{Lease, LeaseKeeper};
use crate::meters;
use crate::retention::Pruner;
use crate::scheduler::claimer::{Claimer, Shedder};
use crate::scheduler::timer::Timer;
use crate::store::{self, Backend, ClaimParams, DynStore, StoreError};
use crate::worker::call_log::{CallLog, SUMMARY_EVERY};
use crate::worker::dispatch::Dispatch;
use crate::worker::executor::Executor;
use crate::worker::outcomes::OutcomeWriter;
use crate::worker::{WorkerPool, WorkerStats};

/// Jobs advanced by one claim transaction (and waiting fires taken by one). Every buffer a
/// claim fills (the rows read, the fires planned, the statement sent, each pooled
/// connection's buffers) grows with it and is reused at its largest: at 2,000 a PostgreSQL
/// node under the overload fault test sat at 33-40 MB and was still rising at 30 s, at 500 at
/// 30-32 MB and flat, with the same CPU per fire at 3,000 and 10,000 fires a second
/// (BENCHMARKS.md, "Claim batch").
const CLAIM_BATCH: u32 = 500;
/// Least pause between sheds of late waiting fires.
const SHED_INTERVAL: Duration = Duration::from_secs(1);
/// How long the outcome writer may take to store what is left at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause between attempts to reach the database at start-up.
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(250);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(1);
/// Bound on each store call made while shutting down.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// A store call bounded by [`STORE_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
}

/// A built service: port bound and answering (as starting until the service runs), store
/// connected and migrated.
pub struct Application {
    /// Settings.
    config: Config,
    /// The store.
    store: DynStore,
    /// The bound address.
    addr: SocketAddr,
    /// The HTTP server, running since the port was bound.
    server: tokio::task::JoinHandle<()>,
    /// Where the service's router goes once it runs; until then the server answers as
    /// starting.
    ready: Arc<OnceLock<axum::Router>>,
    /// Stops the server (and, once running, every part).
    stop: CancellationToken,
    /// The clock every part reads: the database's on PostgreSQL, else the wall clock.
    clock: Arc<dyn Clock>,
    /// On PostgreSQL, the same clock, anchored to the database's at each heartbeat.
    shared: Option<Arc<SharedClock>>,
}

impl Application {
    /// Binds the port and serves `/health` as starting at once, then connects the store
    /// (applying migrations), waiting for a database that does not answer yet.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::new(config.host, config.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on {}:{}: {e}", config.host, config.port)
            })?;
        let addr = listener.local_addr()?;
        let fds = api::serve::raise_fd_limit();
        let limits = api::serve::Limits {
            max_connections: api::serve::connection_bound(config.server.max_connections, fds),
            ..config.server
        };
        tracing::info!(
            max_connections = limits.max_connections,
            descriptor_limit = fds,
            "client connections bounded"
        );
        let stop = CancellationToken::new();
        let ready = Arc::new(OnceLock::new());
        let attempts = Arc::new(AtomicU32::new(0));
        let server = tokio::spawn(api::serve::serve(
            listener,
            api::starting::router(ready.clone(), attempts.clone()),
            limits,
            stop.clone(),
        ));
        let store = match connect_store(&config, &attempts, addr).await {
            Ok(store) => store,
            Err(e) => {
                stop.cancel();
                let _ = server.await;
                return Err(e);
            }
        };
        let (clock, shared): (Arc<dyn Clock>, _) = match store.backend() {
            Backend::Postgres => {
                let shared = Arc::new(SharedClock::default());
                (shared.clone(), Some(shared))
            }
            Backend::Sqlite => (Arc::new(SystemClock), None),
        };
        Ok(Application {
            config,
            store,
            addr,
            server,
            ready,
            stop,
            clock,
            shared,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` resolves, then stops claiming, lets calls in flight finish
    /// within the grace period and hands back what was claimed but not started.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let running = self.start().await?;
        shutdown.await;
        running.stop().await;
        Ok(())
    }

    /// Starts every part: the lease keeper, the workers and the outcome writer, the claimer
    /// and timer, the change poll, the pruner and the HTTP server.
    async fn start(self) -> anyhow::Result<Running> {
        let Application {
            config,
            store,
            addr,
            server,
            ready,
            stop,
            clock,
            shared,
        } = self;
        let lease_stop = CancellationToken::new();
        let lease = Arc::new(Lease::new(config.lease, clock.clone()));
        let keeper = LeaseKeeper {
            store: store.clone(),
            lease: lease.clone(),
            clock: clock.clone(),
            shared: shared.clone(),
            started: clock.now(),
            draining: stop.clone(),
        };
        if let Err(e) = keeper.run_once().await {
            tracing::warn!(error = %e, "first heartbeat failed; the node starts once the database answers");
        }
        match shared.as_ref().and_then(|s| s.wall_offset_ms()) {
            Some(offset_ms) => {
                tracing::info!(node = %lease.node().0, wall_clock_offset_ms = offset_ms,
                "node registered; keeping time by the database's clock")
            }
            None => tracing::info!(node = %lease.node().0, "node registered"),
        }
        let mut tasks = vec![tokio::spawn(keeper.run(lease_stop.clone()))];
        // The recorder is installed before any part records, and drained whether or not
        // anyone scrapes.
        meters::handle();
        tasks.push(tokio::spawn(meters::upkeep(lease_stop.clone())));
        let parts = Parts {
            config: &config,
            store: &store,
            lease: &lease,
            clock: &clock,
            stop: &stop,
        };
        // Downstream first: each part is built with the handle of the next.
        let workers = parts.start_workers();
        // Stopped with the heartbeat, once the last outcomes are in: the last summary
        // counts every call.
        tasks.push(tokio::spawn(
            workers
                .calls
                .clone()
                .summarize(SUMMARY_EVERY, lease_stop.clone()),
        ));
        let wake = Arc::new(Notify::new());
        tasks.extend(parts.start_scheduler(workers.dispatch.clone(), wake.clone())?);
        if store.backend() == Backend::Postgres {
            // At least every third of the lease, so a healthy node's view of changes never
            // ages past its fence.
            let poll = config.change_poll.min(config.lease / 3);
            // Stopped with the heartbeat, not with the claims: while its calls drain at
            // shutdown the node is still live to the others, so it keeps confirming changes
            // rather than make them wait out its fence.
            tasks.push(tokio::spawn(workers.gate.clone().watch(
                store.clone(),
                lease.clone(),
                clock.clone(),
                poll,
                lease_stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(
            Pruner {
                store: store.clone(),
                retention: config.retention,
                clock: clock.clone(),
                lease: lease.clone(),
                revisit: Default::default(),
            }
            .run(stop.clone()),
        ));
        let app = api::router(AppState {
            jobs: Service::new(
                store.clone(),
                workers.gate,
                wake,
                lease.clone(),
                workers.dispatch,
                config.target_policy.clone(),
                clock,
            ),
            token: config.api_token.as_deref().map(Arc::from),
        });
        let _ = ready.set(app);
        tracing::info!(%addr, database = store_kind(&config.database_url), "cronhook listening");
        Ok(Running {
            stop,
            lease_stop,
            tasks,
            workers: workers.pool,
            writer: workers.writer,
            server,
            lease,
            store,
            grace: config.shutdown_grace,
        })
    }
}

/// What every part is built from.
struct Parts<'a> {
    /// Settings.
    config: &'a Config,
    /// The store.
    store: &'a DynStore,
    /// This node's lease.
    lease: &'a Arc<Lease>,
    /// The wall clock.
    clock: &'a Arc<dyn Clock>,
    /// Cancelled at shutdown.
    stop: &'a CancellationToken,
}

/// The started worker side.
struct Workers {
    /// Where the timer puts due fires.
    dispatch: Arc<Dispatch>,
    /// Consulted before each call; changes are applied to it by the API and the poll.
    gate: Arc<Gate>,
    /// The workers.
    pool: WorkerPool,
    /// The outcome writer.
    writer: tokio::task::JoinHandle<()>,
    /// Decides which calls are logged; summarizes them all.
    calls: Arc<CallLog>,
}

impl Parts<'_> {
    /// The queue, the workers with their executor, and the outcome writer.
    fn start_workers(&self) -> Workers {
        let stats = Arc::new(WorkerStats::default());
        let gate = Arc::new(Gate::new(self.store.backend() == Backend::Postgres));
        let (reports, incoming) = unbounded_channel();
        let dispatch = Arc::new(Dispatch::new(
            self.config.lanes,
            stats.clone(),
            self.clock.clone(),
            reports.downgrade(),
        ));
        let writer = tokio::spawn(
            OutcomeWriter {
                incoming,
                store: self.store.clone(),
                lease: self.lease.clone(),
                stats: stats.clone(),
            }
            .run(),
        );
        let calls = Arc::new(CallLog::new(self.config.log_calls));
        let executor = Arc::new(Executor {
            client: Executor::client(&self.config.target_policy),
            timeout: self.config.call_timeout,
            max_timeout: self.config.max_call_timeout,
            max_unstored: self.config.max_unstored_outcomes,
            retry: self.config.retry,
            store: self.store.clone(),
            lease: self.lease.clone(),
            reports,
            stats: stats.clone(),
            clock: self.clock.clone(),
            gate: gate.clone(),
            signing_secret: self.config.signing_secret.clone(),
            policy: self.config.target_policy.clone(),
            calls: calls.clone(),
        });
        let pool = WorkerPool::start(
            self.config.lanes,
            dispatch.clone(),
            executor,
            self.stop.clone(),
        );
        Workers {
            dispatch,
            gate,
            pool,
            writer,
            calls,
        }
    }

    /// The timer, feeding `dispatch`, and the claimer, feeding the timer; `wake` wakes the
    /// claimer early.
    fn start_scheduler(
        &self,
        dispatch: Arc<Dispatch>,
        wake: Arc<Notify>,
    ) -> anyhow::Result<[tokio::task::JoinHandle<()>; 3]> {
        let (timer, incoming) = unbounded_channel();
        let timer_task = tokio::spawn(
            Timer {
                incoming,
                dispatch: dispatch.clone(),
                clock: self.clock.clone(),
            }
            .run(self.stop.clone()),
        );
        let claimer = Claimer {
            store: self.store.clone(),
            lease: self.lease.clone(),
            timer,
            params: ClaimParams {
                lookahead: chrono::Duration::from_std(self.config.lookahead)?,
                misfire_threshold: chrono::Duration::from_std(self.config.misfire_threshold)?,
                max_catchup: self.config.misfire_max_catchup,
                batch: CLAIM_BATCH,
                waiting_batch: CLAIM_BATCH,
                max_fires: usize::MAX,
            },
            interval: self.config.claim_interval,
            clock: self.clock.clone(),
            wake,
            stats: dispatch.stats().clone(),
            max_claimed: self.config.max_claimed_fires,
        };
        let shedder = Shedder {
            store: self.store.clone(),
            lease: self.lease.clone(),
            params: claimer.params,
            clock: self.clock.clone(),
            interval: self.config.claim_interval.max(SHED_INTERVAL),
        };
        Ok([
            timer_task,
            tokio::spawn(claimer.run(self.stop.clone())),
            tokio::spawn(shedder.run(self.stop.clone())),
        ])
    }
}

/// A started service, until it is stopped.
struct Running {
    /// Stops claiming, the timer, the workers, the polls and the HTTP server.
    stop: CancellationToken,
    /// Stops the heartbeat: cancelled last, once every outcome is stored.
    lease_stop: CancellationToken,
    /// The background loops (lease keeper, timer, claimer, change poll, pruner).
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The workers making calls.
    workers: WorkerPool,
    /// The outcome writer: ends once every worker is gone and all is stored.
    writer: tokio::task::JoinHandle<()>,
    /// The HTTP server.
    server: tokio::task::JoinHandle<()>,
    /// This node's identities, handed back at the end.
    lease: Arc<Lease>,
    /// The store.
    store: DynStore,
    /// How long calls in flight may take to finish.
    grace: Duration,
}

impl Running {
    /// Stops claiming, lets calls in flight finish within the grace period, stores their
    /// outcomes and hands back what was claimed but not started.
    async fn stop(self) {
        tracing::info!("shutting down: no more claims; letting calls in flight finish");
        self.stop.cancel();
        let abandoned = self.workers.drain(self.grace).await;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "calls still running after the grace period were abandoned; their fires are recovered"
            );
        }
        // The workers are gone, and with them the executor's report sender: the writer
        // stores what is left and ends.
        if tokio::time::timeout(FLUSH_TIMEOUT, self.writer)
            .await
            .is_err()
        {
            tracing::warn!(
                "outcomes not stored within the flush timeout; their fires will be called again"
            );
        }
        // No more heartbeats from here: a late one would bring the node record back.
        self.lease_stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        for node in self.lease.all_ids() {
            hand_back(&self.store, &node).await;
        }
        match tokio::time::timeout(STORE_TIMEOUT, self.server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP connections still open at exit were dropped"),
        }
        let _ = tokio::time::timeout(STORE_TIMEOUT, self.store.close()).await;
        tracing::info!("stopped");
    }
}

/// Hands back the fires `node` claimed but did not start, and forgets the node.
async fn hand_back(store: &DynStore, node: &str) {
    match bounded(store.release_claimed(node)).await {
        Ok(n) => {
            tracing::info!(node = %node, released = n, "handed back fires claimed but not started")
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not hand back claimed fires; they are recovered after the lease")
        }
    }
    if let Err(e) = bounded(store.remove_node(node)).await {
        tracing::warn!(error = %e, "could not remove the node record");
    }
}

/// Connects the store, retrying with backoff while the database does not answer (a
/// connection refused or timed out, a server starting up), each attempt logged, until it
/// does or `DB_CONNECT_TIMEOUT_MS` passes. A setting that cannot work, or a database that
/// answers with a refusal, fails at once.
async fn connect_store(
    config: &Config,
    attempts: &AtomicU32,
    addr: SocketAddr,
) -> anyhow::Result<DynStore> {
    let started = Instant::now();
    let mut backoff = Backoff::new(CONNECT_RETRY_FIRST, CONNECT_RETRY_MAX);
    loop {
        let attempt = attempts.fetch_add(1, Ordering::AcqRel) + 1;
        let connect = store::connect(&config.database_url, config.db_pool_size);
        // With a limit, an attempt is cut where the limit falls; without, it takes as long
        // as it takes (a migration of a large database may be slow).
        let (connected, cut) = match config.db_connect_timeout {
            Some(limit) => {
                let left = limit.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, connect).await {
                    Ok(result) => (result, false),
                    Err(_) => (
                        Err(anyhow::anyhow!(
                            "cannot use {} (DATABASE_URL): no answer",
                            store::describe(&config.database_url)
                        )),
                        true,
                    ),
                }
            }
            None => (connect.await, false),
        };
        let error = match connected {
            Ok(store) => {
                if attempt > 1 {
                    tracing::info!(attempt, "connected to the database");
                }
                return Ok(store);
            }
            Err(e) if cut || worth_waiting_for(&e) => e,
            Err(e) => return Err(e),
        };
        let wait = backoff.next_delay();
        tracing::warn!(%addr, attempt, error = format!("{error:#}"), retry_in_ms = wait.as_millis() as u64,
            "the database does not answer yet; /health answers starting until it does");
        if let Some(limit) = config.db_connect_timeout
            && started.elapsed() + wait >= limit
        {
            return Err(error.context(format!(
                "gave up after {} ms and {attempt} attempts (DB_CONNECT_TIMEOUT_MS)",
                started.elapsed().as_millis()
            )));
        }
        tokio::time::sleep(wait).await;
    }
}

/// Whether a connection error says the database is not there yet, rather than refusing.
fn worth_waiting_for(e: &anyhow::Error) -> bool {
    if e.chain().any(|c| c.is::<store::ConfigError>()) {
        return false;
    }
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .is_some_and(store::unavailable)
            || c.downcast_ref::<sqlx::migrate::MigrateError>().is_some_and(
                |m| matches!(m, sqlx::migrate::MigrateError::Execute(e) if store::unavailable(e)),
            )
    })
}

fn store_kind(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
