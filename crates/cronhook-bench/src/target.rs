//! The bench's own loopback target: answers every call at once and records when each fire
//! arrived.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::net::TcpListener;

/// One call received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The fire's `Idempotency-Key` (`job:instant_ms`).
    pub key: String,
    /// The scheduled instant, ms since the epoch.
    pub scheduled_ms: i64,
    /// Arrival, µs since the epoch.
    pub arrived_us: i64,
}

#[derive(Default)]
struct Recorder {
    hits: Mutex<Vec<Hit>>,
    first: Mutex<Option<Instant>>,
}

/// A running target.
pub struct Target {
    /// URL to register as `api`.
    pub url: String,
    rec: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    /// Binds a loopback port and serves.
    pub async fn start() -> anyhow::Result<Target> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let rec = Arc::new(Recorder::default());
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(rec.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Target {
            url: format!("http://127.0.0.1:{port}/hook"),
            rec,
            task,
        })
    }

    /// Everything received so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.rec
            .hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the first call arrived.
    pub fn first_arrival(&self) -> Option<Instant> {
        *self.rec.first.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.rec
            .hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.rec.first.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A target that accepts connections and never answers: a hanging neighbour.
pub struct Silent {
    /// URL to register as `api`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    /// Binds a loopback port and holds every connection open, unanswered.
    pub async fn start() -> anyhow::Result<Silent> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Ok(Silent {
            url: format!("http://127.0.0.1:{port}/hook"),
            task,
        })
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(State(rec): State<Arc<Recorder>>, headers: HeaderMap) -> StatusCode {
    let arrived_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let scheduled_ms = key
        .rsplit(':')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    {
        let mut first = rec.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    rec.hits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Hit {
            key,
            scheduled_ms,
            arrived_us,
        });
    StatusCode::OK
}
