//! The one error type of every endpoint: `{"error": {"code", "message", "field"?}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An API failure and the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that cannot be used (400).
    #[error("{message}")]
    Invalid {
        /// Machine-readable reason.
        code: &'static str,
        /// What is wrong, for a person.
        message: String,
        /// The offending field, when one is to blame.
        field: Option<String>,
    },
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the resource's current state (409).
    #[error("{0}")]
    Conflict(String),
    /// No valid credentials (401).
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Method not allowed on this path (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is over the limit (413).
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The request target is too long (414).
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    /// The request's headers are too large (431).
    #[error("the request's headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The body did not arrive in time (408).
    #[error("the request body was not received within {0} ms")]
    BodyTimeout(u64),
    /// The body is not JSON by its content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 400 about one field.
    pub fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = match self {
            ApiError::Invalid {
                code,
                message,
                field,
            } => (StatusCode::BAD_REQUEST, code, message, field),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m, None),
            e @ ApiError::Unauthorized => {
                let body = json!({ "error": { "code": "unauthorized", "message": e.to_string() } });
                return (
                    StatusCode::UNAUTHORIZED,
                    [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this path".into(),
                None,
            ),
            e @ ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
                None,
            ),
            e @ ApiError::UriTooLong(_) => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                e.to_string(),
                None,
            ),
            e @ ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                e.to_string(),
                None,
            ),
            e @ ApiError::BodyTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                e.to_string(),
                None,
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
                None,
            ),
            ApiError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "request failed: database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again".into(),
                    None,
                )
            }
            ApiError::Store(StoreError::Other(e)) => {
                tracing::error!(error = %e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                    None,
                )
            }
        };
        let mut error = json!({ "code": code, "message": message });
        if let Some(field) = field {
            error["field"] = json!(field);
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}
