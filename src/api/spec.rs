//! A job's fields on the wire: parsing a JSON object into a [`JobSpec`], and back.
//!
//! `POST /jobs` parses its body; `PATCH /jobs/{id}` lays its body over the stored job's
//! fields and parses the result the same way, so both accept exactly the same values.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::domain::job::{
    ConcurrencyPolicy, Delivery, HttpMethod, JobSpec, MAX_HEADERS, MAX_JOB_BODY, MAX_NAME,
    MisfirePolicy, RetryOverride, TIMEOUT_MS_RANGE, TargetUrl, check_header,
};
use crate::domain::schedule::Schedule;

/// Every field a job body may have.
pub const FIELDS: [&str; 14] = [
    "name",
    "schedule",
    "timezone",
    "api",
    "type",
    "method",
    "headers",
    "body",
    "timeoutMs",
    "retry",
    "misfirePolicy",
    "concurrencyPolicy",
    "enabled",
    "signingSecret",
];
const RETRY_FIELDS: [&str; 3] = ["maxAttempts", "backoffMs", "maxBackoffMs"];

/// Rejects a field that is not one of [`FIELDS`].
pub fn check_fields(body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            "unknown_field",
            unknown.clone(),
            format!(
                "unknown field {unknown:?}; the fields are {}",
                FIELDS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Validates a job body into a spec.
pub fn parse_spec(body: &Map<String, Value>) -> Result<JobSpec, ApiError> {
    check_fields(body)?;
    let schedule = required_str(body, "schedule")?;
    let timezone = optional_str(body, "timezone")?.unwrap_or("UTC");
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::field(
            "invalid_timezone",
            "timezone",
            format!("unknown time zone {timezone:?} (use an IANA name such as Europe/Paris)"),
        ));
    }
    let schedule = Schedule::parse_in(schedule, timezone)
        .map_err(|e| ApiError::field("invalid_schedule", "schedule", e.to_string()))?;
    let api = required_str(body, "api")?;
    let api = TargetUrl::parse(api).map_err(|e| ApiError::field("invalid_api", "api", e))?;
    let delivery = parsed(body, "type", "invalid_type")?.unwrap_or(Delivery::AtLeastOnce);
    let method = match optional_str(body, "method")? {
        None => HttpMethod::Post,
        Some(m) => m
            .to_ascii_uppercase()
            .parse()
            .map_err(|e: String| ApiError::field("invalid_method", "method", e))?,
    };
    let misfire =
        parsed(body, "misfirePolicy", "invalid_misfire_policy")?.unwrap_or(MisfirePolicy::One);
    let concurrency = parsed(body, "concurrencyPolicy", "invalid_concurrency_policy")?
        .unwrap_or(ConcurrencyPolicy::Allow);

    let name = match optional_str(body, "name")? {
        None => None,
        Some(n) if n.trim().is_empty() || n.chars().count() > MAX_NAME => {
            return Err(ApiError::field(
                "invalid_name",
                "name",
                format!("name must have 1 to {MAX_NAME} characters"),
            ));
        }
        Some(n) => Some(n.to_owned()),
    };
    let headers = parse_headers(body.get("headers"))?;
    let job_body = match optional_str(body, "body")? {
        None => None,
        Some(_) if method == HttpMethod::Get => {
            return Err(ApiError::field(
                "invalid_body",
                "body",
                "a GET call carries no body: remove body or use another method",
            ));
        }
        Some(b) if b.len() > MAX_JOB_BODY => {
            return Err(ApiError::field(
                "invalid_body",
                "body",
                format!("body must be at most {MAX_JOB_BODY} bytes"),
            ));
        }
        Some(b) => Some(b.to_owned()),
    };
    let (lo, hi) = TIMEOUT_MS_RANGE;
    let timeout_ms = match body.get("timeoutMs") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::field(
                    "invalid_timeout",
                    "timeoutMs",
                    format!("timeoutMs must be a whole number from {lo} to {hi}"),
                ));
            }
        },
    };
    let retry = match body.get("retry") {
        None | Some(Value::Null) => RetryOverride::default(),
        Some(Value::Object(r)) => parse_retry(r)?,
        Some(_) => {
            return Err(ApiError::field(
                "invalid_retry",
                "retry",
                "retry must be an object",
            ));
        }
    };
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::field(
                "invalid_enabled",
                "enabled",
                "enabled must be true or false",
            ));
        }
    };
    let signing_secret = match optional_str(body, "signingSecret")? {
        None => None,
        Some(s) if (16..=256).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) => {
            Some(s.to_owned())
        }
        Some(_) => {
            return Err(ApiError::field(
                "invalid_signing_secret",
                "signingSecret",
                "signingSecret must be 16 to 256 visible ASCII characters",
            ));
        }
    };
    Ok(JobSpec {
        name,
        schedule,
        api,
        method,
        headers,
        body: job_body,
        timeout_ms,
        delivery,
        misfire,
        retry,
        concurrency,
        enabled,
        signing_secret,
    })
}

/// A spec as the body that would create it: every field, unset ones as null. It holds the
/// signing secret: views remove it.
pub fn render_spec(spec: &JobSpec) -> Map<String, Value> {
    let headers: Map<String, Value> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let retry = if spec.retry == RetryOverride::default() {
        Value::Null
    } else {
        json!({
            "maxAttempts": spec.retry.max_attempts,
            "backoffMs": spec.retry.backoff_ms,
            "maxBackoffMs": spec.retry.max_backoff_ms,
        })
    };
    let v = json!({
        "name": spec.name,
        "schedule": spec.schedule.expr(),
        "timezone": spec.schedule.tz_name(),
        "api": spec.api.as_str(),
        "type": spec.delivery.as_str(),
        "method": spec.method.as_str(),
        "headers": headers,
        "body": spec.body,
        "timeoutMs": spec.timeout_ms,
        "retry": retry,
        "misfirePolicy": spec.misfire.as_str(),
        "concurrencyPolicy": spec.concurrency.as_str(),
        "enabled": spec.enabled,
        "signingSecret": spec.signing_secret,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn parse_headers(v: Option<&Value>) -> Result<Vec<(String, String)>, ApiError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::field(
                "invalid_headers",
                "headers",
                "headers must be an object of header names to string values",
            ));
        }
    };
    if map.len() > MAX_HEADERS {
        return Err(ApiError::field(
            "invalid_headers",
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let field = format!("headers.{name}");
        let Value::String(value) = value else {
            return Err(ApiError::field(
                "invalid_headers",
                field,
                "a header value must be a string",
            ));
        };
        check_header(name, value).map_err(|e| ApiError::field("invalid_headers", field, e))?;
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

fn parse_retry(r: &Map<String, Value>) -> Result<RetryOverride, ApiError> {
    if let Some(unknown) = r.keys().find(|k| !RETRY_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            "unknown_field",
            format!("retry.{unknown}"),
            format!(
                "unknown field retry.{unknown}; the fields are {}",
                RETRY_FIELDS.join(", ")
            ),
        ));
    }
    let int = |k: &str, min: u64, max: u64| -> Result<Option<u64>, ApiError> {
        match r.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::field(
                    "invalid_retry",
                    format!("retry.{k}"),
                    format!("retry.{k} must be a whole number from {min} to {max}"),
                )),
            },
        }
    };
    // A first delay above the cap is allowed: every delay is capped at maxBackoffMs.
    Ok(RetryOverride {
        max_attempts: int("maxAttempts", 1, 100)?.map(|v| v as u32),
        backoff_ms: int("backoffMs", 0, 86_400_000)?,
        max_backoff_ms: int("maxBackoffMs", 0, 86_400_000)?,
    })
}

/// An optional string field parsed with `FromStr`, its error named `code`.
fn parsed<T: std::str::FromStr<Err = String>>(
    body: &Map<String, Value>,
    field: &'static str,
    code: &'static str,
) -> Result<Option<T>, ApiError> {
    optional_str(body, field)?
        .map(|s| {
            s.parse()
                .map_err(|e: String| ApiError::field(code, field, e))
        })
        .transpose()
}

fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ApiError> {
    optional_str(body, field)?
        .ok_or_else(|| ApiError::field("missing_field", field, format!("{field} is required")))
}

/// A string field; absent and null are both none.
pub fn optional_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::field(
            "invalid_type_of_field",
            field,
            format!("{field} must be a string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<JobSpec, ApiError> {
        parse_spec(v.as_object().unwrap())
    }

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::Invalid { field, .. } => field,
            _ => None,
        }
    }

    #[test]
    fn the_seed_body_parses_with_defaults() {
        let job = parse(
            json!({"schedule": "31 10-15 1 * * MON-FRI", "api": "https://localhost:4444/foo"}),
        )
        .unwrap();
        assert_eq!(job.delivery, Delivery::AtLeastOnce);
        assert_eq!(job.misfire, MisfirePolicy::One);
        assert_eq!(job.retry, RetryOverride::default());
        assert_eq!(job.method, HttpMethod::Post);
        assert_eq!(job.concurrency, ConcurrencyPolicy::Allow);
        assert_eq!(job.schedule.tz_name(), "UTC");
        assert!(job.enabled);
    }

    #[test]
    fn every_field_round_trips_through_its_rendering() {
        let body = json!({
            "name": "nightly report",
            "schedule": "0 30 2 * * *",
            "timezone": "America/New_York",
            "api": "https://example.com/hook",
            "type": "ATMOST_ONCE",
            "method": "PUT",
            "headers": {"X-Api-Key": "k", "Authorization": "Bearer t"},
            "body": "{\"a\":1}",
            "timeoutMs": 2500,
            "retry": {"maxAttempts": 4, "backoffMs": 100, "maxBackoffMs": 1000},
            "misfirePolicy": "all",
            "concurrencyPolicy": "forbid",
            "enabled": false,
            "signingSecret": "0123456789abcdef-secret"
        });
        let spec = parse(body.clone()).unwrap();
        let rendered = Value::Object(render_spec(&spec));
        assert_eq!(rendered, body);
        let again = parse(rendered).unwrap();
        assert_eq!(Value::Object(render_spec(&again)), body);
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = json!({"schedule": "* * * * * *", "api": "http://x"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let cases = [
            (json!({"api": "http://x"}), "schedule"),
            (json!({"schedule": "* * * * * *"}), "api"),
            (with("schedule", json!(5)), "schedule"),
            (with("schedule", json!("nope")), "schedule"),
            (with("timezone", json!("Mars/Olympus")), "timezone"),
            (with("api", json!("ftp://x")), "api"),
            (with("type", json!("SOMETIMES")), "type"),
            (with("method", json!("TRACE")), "method"),
            (with("misfirePolicy", json!("some")), "misfirePolicy"),
            (
                with("concurrencyPolicy", json!("queue")),
                "concurrencyPolicy",
            ),
            (
                with("retry", json!({"maxAttempts": 0})),
                "retry.maxAttempts",
            ),
            (with("retry", json!({"tries": 2})), "retry.tries"),
            (with("headers", json!({"Host": "evil"})), "headers.Host"),
            (with("headers", json!({"X-A": 1})), "headers.X-A"),
            (with("headers", json!(["X-A"])), "headers"),
            (with("timeoutMs", json!(0)), "timeoutMs"),
            (with("timeoutMs", json!(1.5)), "timeoutMs"),
            (with("name", json!("")), "name"),
            (with("enabled", json!("yes")), "enabled"),
            (with("signingSecret", json!("short")), "signingSecret"),
            (with("body", json!({"a": 1})), "body"),
            (with("extra", json!(1)), "extra"),
        ];
        for (body, field) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(field_of(err).as_deref(), Some(field), "{body}");
        }
        let get_with_body =
            json!({"schedule": "* * * * * *", "api": "http://x", "method": "GET", "body": "x"});
        assert_eq!(
            field_of(parse(get_with_body).unwrap_err()).as_deref(),
            Some("body")
        );
    }
}
