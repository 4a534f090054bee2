//! Request helpers every resource shares: path ids, query parameters and times.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::error::ApiError;

/// An instant as every answer shows it: RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The 404 of a job that does not exist.
pub fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}

/// Parses a job id from a path segment.
pub fn parse_job_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::field(
            "invalid_id",
            "jobId",
            format!("{} is not a job id (a UUID)", crate::domain::text::quote(s)),
        )
    })
}

/// A query string's parameters, refusing any not in `allowed` and any given twice.
pub fn query_params(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::field(
                "unknown_parameter",
                crate::domain::text::field_name(&k),
                format!(
                    "unknown query parameter {}; the parameters are {}",
                    crate::domain::text::quote(&k),
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::field(
                "repeated_parameter",
                crate::domain::text::field_name(&k),
                format!(
                    "query parameter {} is given more than once",
                    crate::domain::text::quote(&k)
                ),
            ));
        }
    }
    Ok(out)
}

/// The `limit` parameter: 1 to `max`, `default` when absent.
pub fn limit_param(
    params: &HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "invalid_limit",
                "limit",
                format!("limit must be a whole number from 1 to {max}"),
            )),
        },
    }
}
