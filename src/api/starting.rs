//! What the server answers before the service is ready: it listens from the start, so an
//! orchestrator sees `/health` say `starting` (503) while the database is waited for, and
//! every other request gets a 503 in the JSON error shape. Once the service is ready, every
//! request goes to its router.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::dto::{Health, WorkerHealth};
use super::params::rfc3339;

/// Seconds a client is told to wait before trying again.
const RETRY_AFTER_S: &str = "1";

/// A router that answers as starting until `ready` holds the service's router, then hands
/// every request to it. `attempts` counts the connections to the database tried so far.
pub fn router(ready: Arc<OnceLock<Router>>, attempts: Arc<AtomicU32>) -> Router {
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let (ready, attempts) = (ready.clone(), attempts.clone());
        async move {
            match ready.get() {
                Some(app) => app.clone().oneshot(req).await,
                None => Ok::<_, Infallible>(starting(
                    req.uri().path(),
                    attempts.load(Ordering::Acquire),
                )),
            }
        }
    }))
}

fn starting(path: &str, attempts: u32) -> Response {
    let mut response = if path == "/health" {
        let body = Health {
            status: "starting".into(),
            timestamp: rfc3339(chrono::Utc::now()),
            reason: Some(format!(
                "waiting for the database ({attempts} connection attempts so far)"
            )),
            worker: WorkerHealth {
                queue_size: 0,
                active_workers: 0,
                slow_calls: 0,
                behind_ms: 0,
            },
        };
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    } else {
        let body = serde_json::json!({ "error": {
            "code": "starting",
            "message": "the service is starting: it is waiting for its database; try again",
        }});
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
    response
}
