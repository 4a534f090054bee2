//! Bearer-token access control: with `API_TOKEN` set, every endpoint but `/health` and the
//! dashboard's files (`/ui`) needs `Authorization: Bearer <token>`.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Lets a request through when no token is configured, for an open path, or with the token.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else {
        return next.run(req).await;
    };
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Whether a path is served without the token: `/health`, and the dashboard's static files
/// (`/ui`, `/ui/...`), which hold no data and ask for the token themselves.
fn is_open(path: &str) -> bool {
    path == "/health" || path == "/ui" || path.starts_with("/ui/")
}

/// The token of an `Authorization` value using the `Bearer` scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    // RFC 9110, 11.1: the authentication scheme is case-insensitive.
    scheme.eq_ignore_ascii_case("Bearer").then(|| token.trim())
}

/// Whether the inputs are equal; the time taken tells neither where they differ nor their
/// exact lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` on slices returns at once when the lengths differ, which would tell a caller
    // the token's length. Fixed-size digests hide it, up to the number of 64-byte blocks
    // hashed; two different inputs compare equal only through a SHA-256 collision.
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a[..].ct_eq(&b[..]).into()
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, constant_time_eq, is_open};

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-12"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn only_health_and_the_dashboard_are_open() {
        for path in ["/health", "/ui", "/ui/", "/ui/app.js", "/ui/index.html"] {
            assert!(is_open(path), "{path}");
        }
        for path in [
            "/jobs",
            "/jobs/x/executions",
            "/cron/next",
            "/openapi.json",
            "/docs/",
            "/dummy",
            "/uix",
            "/ui.js",
            "/health/x",
            "/x/ui/",
            "",
        ] {
            assert!(!is_open(path), "{path}");
        }
    }
}
