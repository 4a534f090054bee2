//! `/cron/next`: the next instants of an expression, as `cronhook cron` prints them, and
//! the expression in plain words.

use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};

use super::AppState;
use super::dto::{CronNext, Errors};
use super::error::ApiError;
use super::params::{query_params, rfc3339};
use crate::domain::schedule::Schedule;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/cron/next", get(next))
}

/// Default and largest number of instants.
const N_DEFAULT: usize = 5;
const N_MAX: usize = 100;

/// The next instants of a cron expression, as `cronhook cron` prints them, and the
/// expression in plain words.
#[utoipa::path(get, path = "/cron/next", tag = "tools",
    params(("expr" = String, Query, min_length = 1, max_length = 256, description = "Cron expression, 5 or 6 fields, at most 256 bytes"),
        ("tz" = Option<super::dto::TimeZoneName>, Query,
            description = "IANA time zone (default UTC)"),
        ("n" = Option<u32>, Query, minimum = 1, maximum = 100, description = "How many (default 5)"),
        ("from" = Option<String>, Query, format = DateTime,
            description = "The instants after this RFC 3339 instant (default now)")),
    responses((status = 200, description = "The next instants and a description", body = CronNext), Errors))]
pub(crate) async fn next(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let params = query_params(query.as_deref(), &["expr", "tz", "n", "from"])?;
    let expr = params
        .get("expr")
        .ok_or_else(|| ApiError::field("missing_field", "expr", "expr is required"))?;
    // The same bound and characters as a job's schedule.
    crate::domain::text::check(expr, 256, crate::domain::text::Controls::Refused)
        .map_err(|why| ApiError::field("invalid_text", "expr", format!("expr {why}")))?;
    let tz = params.get("tz").map_or("UTC", String::as_str);
    if tz.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::field(
            "invalid_timezone",
            "tz",
            format!(
                "unknown time zone {} (use an IANA name such as Europe/Paris)",
                crate::domain::text::quote(tz)
            ),
        ));
    }
    let n = match params.get("n") {
        None => N_DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=N_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "invalid_n",
                    "n",
                    format!("n must be a whole number from 1 to {N_MAX}"),
                ));
            }
        },
    };
    let from = match params.get("from") {
        None => state.jobs.now(),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::field(
                    "invalid_from",
                    "from",
                    "from must be an RFC 3339 instant, e.g. 2027-03-14T00:00:00Z",
                )
            })?,
    };
    let schedule = Schedule::parse_in(expr, tz)
        .map_err(|e| ApiError::field("invalid_schedule", "expr", e.to_string()))?;
    let next: Vec<String> = schedule
        .upcoming(from, n)
        .into_iter()
        .map(rfc3339)
        .collect();
    Ok(Json(CronNext {
        expr: schedule.expr().to_owned(),
        timezone: schedule.tz_name().to_owned(),
        description: schedule.describe(),
        next,
    }))
}
