//! Wires the store, scheduler, workers and API together and runs them until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::retention::Pruner;
use crate::scheduler::claimer::Claimer;
use crate::scheduler::gate::Gate;
use crate::scheduler::lease::{Lease, LeaseKeeper};
use crate::scheduler::timer::Timer;
use crate::store::group::JobWriter;
use crate::store::{self, ClaimParams, DynStore, StoreError};
use crate::worker::executor::Executor;
use crate::worker::outcomes::OutcomeWriter;
use crate::worker::{Queue, WorkerPool, WorkerStats};

/// Jobs advanced by one claim transaction.
const CLAIM_BATCH: u32 = 2000;
/// How long the outcome writer may take to store what is left at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each store call made while shutting down.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// A store call bounded by [`STORE_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
}

/// A built service: store connected and migrated, port bound.
pub struct Application {
    /// Settings.
    config: Config,
    /// The store.
    store: DynStore,
    /// The bound listener.
    listener: TcpListener,
    /// The wall clock.
    clock: Arc<dyn Clock>,
}

impl Application {
    /// Connects the store (applying migrations) and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = store::connect(&config.database_url, config.db_pool_size).await?;
        let listener = TcpListener::bind(SocketAddr::new(config.host, config.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on {}:{}: {e}", config.host, config.port)
            })?;
        Ok(Application {
            config,
            store,
            listener,
            clock: Arc::new(SystemClock),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` resolves, then stops claiming, lets calls in flight finish
    /// within the grace period and hands back what was claimed but not started.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            config,
            store,
            listener,
            clock,
        } = self;
        let stats = Arc::new(WorkerStats::default());
        let queue = Arc::new(Queue::new(stats.clone()));
        let lease = Arc::new(Lease::new(config.lease, clock.clone()));
        let (timer_tx, timer_rx) = unbounded_channel();
        let (outcome_tx, outcome_rx) = unbounded_channel();

        let stop = CancellationToken::new();
        let lease_stop = CancellationToken::new();

        let keeper = LeaseKeeper {
            store: store.clone(),
            lease: lease.clone(),
            timer: timer_tx.clone(),
            clock: clock.clone(),
            started: clock.now(),
            draining: stop.clone(),
        };
        if let Err(e) = keeper.run_once().await {
            tracing::warn!(error = %e, "first heartbeat failed; the node starts once the database answers");
        }
        let (node, _) = lease.node();
        tracing::info!(node = %node, "node registered");
        let keeper_task = tokio::spawn(keeper.run(lease_stop.clone()));

        let timer_task = tokio::spawn(
            Timer {
                incoming: timer_rx,
                queue: queue.clone(),
                clock: clock.clone(),
            }
            .run(stop.clone()),
        );
        let claimer_task = tokio::spawn(
            Claimer {
                store: store.clone(),
                lease: lease.clone(),
                timer: timer_tx.clone(),
                params: ClaimParams {
                    lookahead: chrono::Duration::from_std(config.lookahead)?,
                    misfire_threshold: chrono::Duration::from_std(config.misfire_threshold)?,
                    max_catchup: config.misfire_max_catchup,
                    batch: CLAIM_BATCH,
                },
                interval: config.claim_interval,
                clock: clock.clone(),
            }
            .run(stop.clone()),
        );
        let pruner_task = tokio::spawn(
            Pruner {
                store: store.clone(),
                retention: config.retention,
                clock: clock.clone(),
            }
            .run(stop.clone()),
        );
        let gate = Arc::new(Gate::default());
        let gate_task = tokio::spawn(gate.clone().watch(
            store.clone(),
            clock.clone(),
            config.claim_interval,
            stop.clone(),
        ));
        let executor = Arc::new(Executor {
            client: Executor::client(&config.target_policy),
            timeout: config.call_timeout,
            retry: config.retry,
            store: store.clone(),
            lease: lease.clone(),
            outcomes: outcome_tx,
            timer: timer_tx.clone(),
            stats: stats.clone(),
            clock: clock.clone(),
            gate: gate.clone(),
            signing_secret: config.signing_secret.clone(),
            policy: config.target_policy.clone(),
        });
        let writer_task = tokio::spawn(
            OutcomeWriter {
                incoming: outcome_rx,
                store: store.clone(),
                lease: lease.clone(),
                timer: timer_tx.clone(),
            }
            .run(),
        );
        let workers = WorkerPool::start(
            config.worker_concurrency,
            queue.clone(),
            executor,
            stop.clone(),
        );

        let app = api::router(AppState {
            store: store.clone(),
            jobs: JobWriter::spawn(store.clone()),
            stats: stats.clone(),
            clock: clock.clone(),
            gate,
            change_poll: config.claim_interval,
            timer: timer_tx,
            lease: lease.clone(),
            token: config.api_token.as_deref().map(Arc::from),
        });
        let addr = listener.local_addr()?;
        tracing::info!(%addr, database = store_kind(&config.database_url), "cronhook listening");
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { server_stop.cancelled().await })
                .await
        });

        shutdown.await;
        tracing::info!("shutting down: no more claims; letting calls in flight finish");
        stop.cancel();
        let _ = claimer_task.await;
        let _ = gate_task.await;
        let _ = pruner_task.await;
        let _ = timer_task.await;
        let abandoned = workers.drain(config.shutdown_grace).await;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "calls still running after the grace period were abandoned; their fires are recovered"
            );
        }
        // The workers are gone, and with them the executor's outcome sender: the writer
        // stores what is left and ends.
        if tokio::time::timeout(FLUSH_TIMEOUT, writer_task)
            .await
            .is_err()
        {
            tracing::warn!(
                "outcomes not stored within the flush timeout; their fires will be called again"
            );
        }
        // No more heartbeats from here: a late one would bring the node record back.
        lease_stop.cancel();
        let _ = keeper_task.await;
        for node in lease.all_ids() {
            match bounded(store.release_claimed(&node)).await {
                Ok(n) => {
                    tracing::info!(node = %node, released = n, "handed back fires claimed but not started")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand back claimed fires; they are recovered after the lease")
                }
            }
            if let Err(e) = bounded(store.remove_node(&node)).await {
                tracing::warn!(error = %e, "could not remove the node record");
            }
        }
        match tokio::time::timeout(STORE_TIMEOUT, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP connections still open at exit were dropped"),
        }
        let _ = tokio::time::timeout(STORE_TIMEOUT, store.close()).await;
        tracing::info!("stopped");
        Ok(())
    }
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
