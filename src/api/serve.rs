//! The HTTP server: HTTP/1.1 over the bound listener, with the limits a service open to
//! careless and hostile clients needs. Headers must arrive within a timeout, bodies within
//! another, an idle connection is closed, and the number of connections is bounded below the
//! process's descriptor limit. At the bound, a new connection takes the place of the oldest
//! one that has no request in progress, so silent or slow sockets cannot lock anyone out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::json::BodyTimeout;
use super::malformed::Answering;

/// Descriptors kept for everything but client connections: the database pool, outgoing
/// calls, files.
const RESERVED_FDS: u64 = 64;
/// How often idle connections are looked for.
const SWEEP: Duration = Duration::from_millis(250);

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must all arrive within this.
    pub header_timeout: Duration,
    /// A request's body must all arrive within this.
    pub body_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once (lowered to fit the descriptor limit).
    pub max_connections: usize,
}

/// One open connection.
struct Conn {
    /// When it last began or finished a request (or opened).
    active: Mutex<Instant>,
    /// Requests in progress.
    busy: AtomicUsize,
    /// Cancelled to close it.
    close: CancellationToken,
}

impl Conn {
    fn idle_for(&self) -> Option<Duration> {
        (self.busy.load(Ordering::Acquire) == 0).then(|| {
            self.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
        })
    }

    fn touch(&self) {
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// The open connections, by arrival.
#[derive(Default)]
struct Conns {
    /// Those not yet told to close.
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    /// Those whose socket is still open, told to close or not.
    alive: AtomicUsize,
    /// Woken whenever a socket is closed.
    closed: tokio::sync::Notify,
}

impl Conns {
    /// Registers an accepted connection.
    fn admit(&self, id: u64) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            active: Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
            close: CancellationToken::new(),
        });
        self.alive.fetch_add(1, Ordering::AcqRel);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        conn
    }

    /// Tells the connection idle longest to close; false when every one is busy.
    fn evict_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let oldest_idle = open
            .iter()
            .filter_map(|(id, c)| c.idle_for().map(|idle| (idle, *id)))
            .max();
        match oldest_idle.and_then(|(_, id)| open.remove(&id)) {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }

    /// A connection's socket is closed.
    fn gone(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.alive.fetch_sub(1, Ordering::AcqRel);
        self.closed.notify_waiters();
    }

    /// Makes room for one more connection under `max`: closes idle ones and waits for their
    /// sockets to go. False when every connection is busy.
    async fn make_room(&self, max: usize) -> bool {
        while self.alive.load(Ordering::Acquire) >= max {
            let closed = self.closed.notified();
            if !self.evict_idle()
                && self.open.lock().unwrap_or_else(|e| e.into_inner()).len() >= max
            {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), closed).await;
        }
        true
    }

    /// Closes connections idle longer than `idle`.
    fn close_idle(&self, idle: Duration) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, c| {
            let stale = c.idle_for().is_some_and(|d| d >= idle);
            if stale {
                c.close.cancel();
            }
            !stale
        });
    }
}

/// Raises the soft descriptor limit to the hard one and returns the soft limit then in force.
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// The connection bound in force: the configured one, kept below the descriptor limit.
pub fn connection_bound(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(fds) if fds != libc::RLIM_INFINITY => {
            let room = fds.saturating_sub(RESERVED_FDS).max(8) as usize;
            configured.min(room)
        }
        _ => configured,
    }
}

/// Serves `app` on `listener` until `stop`, then lets requests in progress finish.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let conns = Arc::new(Conns::default());
    let sweeper = {
        let (conns, stop) = (conns.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(SWEEP) => conns.close_idle(limits.idle_timeout),
                }
            }
        })
    };
    let app = app.layer(axum::Extension(BodyTimeout(limits.body_timeout)));
    let tasks = tokio_util::task::TaskTracker::new();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or similar: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !conns.make_room(limits.max_connections).await {
            tracing::warn!(
                max = limits.max_connections,
                "connection refused: every connection has a request in progress"
            );
            continue;
        }
        next_id += 1;
        let id = next_id;
        let conn = conns.admit(id);
        let (app, conns, stop) = (app.clone(), conns.clone(), stop.clone());
        tasks.spawn(async move {
            let service = {
                let conn = conn.clone();
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (app, conn) = (app.clone(), conn.clone());
                    conn.busy.fetch_add(1, Ordering::AcqRel);
                    conn.touch();
                    async move {
                        let response = app.oneshot(req.map(axum::body::Body::new)).await;
                        conn.touch();
                        conn.busy.fetch_sub(1, Ordering::AcqRel);
                        response
                    }
                })
            };
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(Answering::new(stream)), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection closed on an error");
                    }
                }
                _ = conn.close.cancelled() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            // The socket is dropped with the connection, above.
            conns.gone(id);
        });
    }
    sweeper.abort();
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_bound_the_longest_idle_connection_makes_room() {
        let conns = Conns::default();
        let a = conns.admit(1);
        std::thread::sleep(Duration::from_millis(5));
        let b = conns.admit(2);
        b.busy.fetch_add(1, Ordering::AcqRel);
        // At the bound: the idle one is told to close, and room is made once it has.
        let room = {
            let conns = &conns;
            async move { conns.make_room(2).await }
        };
        let closer = async {
            a.close.cancelled().await;
            conns.gone(1);
        };
        let (room, ()) = tokio::join!(room, closer);
        assert!(room);
        assert!(!b.close.is_cancelled(), "a busy one stays");
        let c = conns.admit(3);
        c.busy.fetch_add(1, Ordering::AcqRel);
        assert!(!conns.make_room(2).await, "all busy: no room");
    }

    #[test]
    fn the_bound_stays_below_the_descriptor_limit() {
        assert_eq!(connection_bound(1024, Some(200)), 136);
        assert_eq!(connection_bound(100, Some(200)), 100);
        assert_eq!(connection_bound(1024, Some(1_048_576)), 1024);
        assert_eq!(connection_bound(1024, None), 1024);
    }
}
