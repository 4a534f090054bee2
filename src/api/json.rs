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

/// Reads a body of at most [`MAX_BODY`] bytes.
pub async fn read_limited(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge(MAX_BODY))
}
