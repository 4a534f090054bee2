//! The JSON body extractor: content type, size limit and syntax, each with its own error.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON object from a request body.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json_type {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".into(),
            ));
        }
        // JSON is UTF-8 (RFC 8259); a body declared in another charset is not read as if it
        // were.
        let charset = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';').skip(1).find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case("charset"))
                        .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
                })
            });
        if charset.is_some_and(|c| c != "utf-8" && c != "utf8") {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be UTF-8 JSON (charset=utf-8, or no charset)".into(),
            ));
        }
        let bytes = read_limited(req).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::Invalid {
                code: "invalid_body",
                message: "the body must be a JSON object".into(),
                field: None,
            }),
            Err(e) => Err(ApiError::Invalid {
                code: "malformed_json",
                message: format!("the body is not valid JSON: {e}"),
                field: None,
            }),
        }
    }
}

/// How long a request's body may take to arrive, as the server sets it on each request.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// The bound on a body's arrival when the server set none.
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a body of at most [`MAX_BODY`] bytes, within the request's [`BodyTimeout`].
pub async fn read_limited(req: Request) -> Result<Bytes, ApiError> {
    let within = req
        .extensions()
        .get::<BodyTimeout>()
        .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    match tokio::time::timeout(within, axum::body::to_bytes(req.into_body(), MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::TooLarge(MAX_BODY)),
        Err(_) => Err(ApiError::BodyTimeout(within.as_millis() as u64)),
    }
}

/// Longest request target (path and query) accepted.
pub const MAX_URI: usize = 8 * 1024;
/// Most header bytes (names and values) accepted.
pub const MAX_HEADERS: usize = 16 * 1024;

/// Refuses at once, with the JSON error shape, a request whose target or headers are over
/// their bounds, or whose `Content-Length` is over [`MAX_BODY`] (before any of its body is
/// read).
pub async fn refuse_oversized(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI {
        return ApiError::UriTooLong(MAX_URI).into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADERS {
        return ApiError::HeadersTooLarge(MAX_HEADERS).into_response();
    }
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        let mut response = ApiError::TooLarge(MAX_BODY).into_response();
        // The rest of the body is not read: the connection cannot be reused.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    next.run(req).await
}
