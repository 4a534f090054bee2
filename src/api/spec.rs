//! A job's fields on the wire: a JSON object is read into [`JobInput`] field by field, so
//! every error names its field, then checked into a [`JobSpec`]; and a spec renders back
//! into the body that would create it.
//!
//! `POST /jobs` parses its body; `PATCH /jobs/{id}` lays its body over the stored job's
//! rendering and parses the result the same way, so both accept exactly the same values.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::dto::{JobInput, Retry};
use super::error::ApiError;
use crate::domain::job::{
    HttpMethod, JobSpec, MAX_HEADERS, MAX_JOB_BODY, MAX_NAME, MisfirePolicy, RetryOverride,
    SPREAD_MS_RANGE, TIMEOUT_MS_RANGE, TargetUrl, check_header,
};
use crate::domain::schedule::Schedule;
use crate::domain::text::{self, Controls};

/// Every field a job body may have: the properties of [`JobInput`].
pub const FIELDS: [&str; 15] = [
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
    "spreadMs",
];
const RETRY_FIELDS: [&str; 3] = ["maxAttempts", "backoffMs", "maxBackoffMs"];
/// Bounds of the retry delays, in milliseconds.
const MAX_BACKOFF_MS: u64 = 86_400_000;

/// Rejects a field that is not one of [`FIELDS`].
pub fn check_fields(body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            "unknown_field",
            text::field_name(unknown),
            format!(
                "unknown field {}; the fields are {}",
                text::quote(unknown),
                FIELDS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Fields that take a default when left out: in a `PATCH`, `null` for one of them is
/// refused rather than silently reset to the default (`enabled: null` would resume a paused
/// job). `null` clears the other, optional, fields.
pub const DEFAULTED: [&str; 7] = [
    "schedule",
    "api",
    "timezone",
    "type",
    "method",
    "misfirePolicy",
    "concurrencyPolicy",
];

/// Refuses `null` for a field that has a default or is required (a `PATCH`).
pub fn check_nulls(patch: &Map<String, Value>) -> Result<(), ApiError> {
    let refused = patch
        .iter()
        .find(|(k, v)| v.is_null() && (DEFAULTED.contains(&k.as_str()) || *k == "enabled"));
    match refused {
        Some((k, _)) => Err(ApiError::field(
            "null_not_allowed",
            k.clone(),
            format!("{k} cannot be null: give a value, or leave it out to keep it"),
        )),
        None => Ok(()),
    }
}

/// Validates a job body into a spec.
pub fn parse_spec(body: &Map<String, Value>) -> Result<JobSpec, ApiError> {
    check_fields(body)?;
    into_spec(read_input(body)?)
}

/// A spec as the body that would create it: every field, unset ones as null. It holds the
/// signing secret: answers never show it.
pub fn render_spec(spec: &JobSpec) -> Map<String, Value> {
    match serde_json::to_value(JobInput::from(spec)) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Reads each field with its type; absent and null are both unset.
fn read_input(body: &Map<String, Value>) -> Result<JobInput, ApiError> {
    let method = optional_str(body, "method")?
        .map(|m| wire(&m.to_ascii_uppercase(), "method", "invalid_method"))
        .transpose()?;
    Ok(JobInput {
        name: optional_str(body, "name")?.map(str::to_owned),
        schedule: required_str(body, "schedule")?.to_owned(),
        timezone: optional_str(body, "timezone")?.map(str::to_owned),
        api: required_str(body, "api")?.to_owned(),
        delivery: wire_field(body, "type", "invalid_type")?,
        method,
        headers: read_headers(body.get("headers"))?,
        body: optional_str(body, "body")?.map(str::to_owned),
        timeout_ms: whole(body, "timeoutMs", "invalid_timeout", TIMEOUT_MS_RANGE)?,
        retry: read_retry(body.get("retry"))?,
        misfire_policy: wire_field(body, "misfirePolicy", "invalid_misfire_policy")?,
        concurrency_policy: wire_field(body, "concurrencyPolicy", "invalid_concurrency_policy")?,
        enabled: match body.get("enabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(ApiError::field(
                    "invalid_enabled",
                    "enabled",
                    "enabled must be true or false",
                ));
            }
        },
        signing_secret: optional_str(body, "signingSecret")?.map(str::to_owned),
        spread_ms: whole(body, "spreadMs", "invalid_spread", SPREAD_MS_RANGE)?,
    })
}

/// Checks the values read and fills in the defaults.
fn into_spec(input: JobInput) -> Result<JobSpec, ApiError> {
    let timezone = input.timezone.as_deref().unwrap_or("UTC");
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::field(
            "invalid_timezone",
            "timezone",
            format!(
                "unknown time zone {} (use an IANA name such as Europe/Paris)",
                text::quote(timezone)
            ),
        ));
    }
    let schedule = Schedule::parse_in(&input.schedule, timezone)
        .map_err(|e| ApiError::field("invalid_schedule", "schedule", e.to_string()))?;
    let api = TargetUrl::parse(&input.api).map_err(|e| ApiError::field("invalid_api", "api", e))?;
    let method = input.method.map_or(HttpMethod::Post, Into::into);
    if input
        .name
        .as_ref()
        .is_some_and(|n| n.trim().is_empty() || n.chars().count() > MAX_NAME)
    {
        return Err(ApiError::field(
            "invalid_name",
            "name",
            format!("name must have 1 to {MAX_NAME} characters"),
        ));
    }
    check_body(input.body.as_deref(), method)?;
    let headers: Vec<(String, String)> = input.headers.unwrap_or_default().into_iter().collect();
    for (name, value) in &headers {
        check_header(name, value).map_err(|e| {
            ApiError::field(
                "invalid_headers",
                format!("headers.{}", text::field_name(name)),
                e,
            )
        })?;
    }
    if let Some(secret) = &input.signing_secret
        && !((16..=256).contains(&secret.len()) && secret.chars().all(|c| c.is_ascii_graphic()))
    {
        return Err(ApiError::field(
            "invalid_signing_secret",
            "signingSecret",
            "signingSecret must be 16 to 256 visible ASCII characters",
        ));
    }
    let retry = input
        .retry
        .map_or_else(RetryOverride::default, |r| RetryOverride {
            max_attempts: r.max_attempts,
            backoff_ms: r.backoff_ms,
            max_backoff_ms: r.max_backoff_ms,
        });
    Ok(JobSpec {
        name: input.name,
        schedule,
        api,
        method,
        headers,
        body: input.body,
        timeout_ms: input.timeout_ms,
        delivery: input
            .delivery
            .map_or(crate::domain::job::Delivery::AtLeastOnce, Into::into),
        misfire: input.misfire_policy.map_or(MisfirePolicy::One, Into::into),
        retry,
        concurrency: input
            .concurrency_policy
            .map_or(crate::domain::job::ConcurrencyPolicy::Allow, Into::into),
        enabled: input.enabled.unwrap_or(true),
        signing_secret: input.signing_secret,
        spread_ms: input.spread_ms.unwrap_or(0),
    })
}

/// A job's own body: not with `GET`, and at most [`MAX_JOB_BODY`] bytes.
fn check_body(body: Option<&str>, method: HttpMethod) -> Result<(), ApiError> {
    match body {
        Some(_) if method == HttpMethod::Get => Err(ApiError::field(
            "invalid_body",
            "body",
            "a GET call carries no body: remove body or use another method",
        )),
        Some(b) if b.len() > MAX_JOB_BODY => Err(ApiError::field(
            "invalid_body",
            "body",
            format!("body must be at most {MAX_JOB_BODY} bytes"),
        )),
        _ => Ok(()),
    }
}

fn read_headers(v: Option<&Value>) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
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
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let Value::String(value) = value else {
            return Err(ApiError::field(
                "invalid_headers",
                format!("headers.{}", text::field_name(name)),
                "a header value must be a string",
            ));
        };
        out.insert(name.clone(), value.clone());
    }
    Ok(Some(out))
}

fn read_retry(v: Option<&Value>) -> Result<Option<Retry>, ApiError> {
    let r = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(r)) => r,
        Some(_) => {
            return Err(ApiError::field(
                "invalid_retry",
                "retry",
                "retry must be an object",
            ));
        }
    };
    if let Some(unknown) = r.keys().find(|k| !RETRY_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            "unknown_field",
            format!("retry.{}", text::field_name(unknown)),
            format!(
                "unknown field retry.{}; the fields are {}",
                text::field_name(unknown),
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
    Ok(Some(Retry {
        max_attempts: int("maxAttempts", 1, 100)?.map(|v| v as u32),
        backoff_ms: int("backoffMs", 0, MAX_BACKOFF_MS)?,
        max_backoff_ms: int("maxBackoffMs", 0, MAX_BACKOFF_MS)?,
    }))
}

/// A whole number field within `(lo, hi)`, its error named `code`.
fn whole(
    body: &Map<String, Value>,
    field: &'static str,
    code: &'static str,
    (lo, hi): (u64, u64),
) -> Result<Option<u64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::field(
                code,
                field,
                format!("{field} must be a whole number from {lo} to {hi}"),
            )),
        },
    }
}

/// An optional field holding one of a wire enum's spellings, its error named `code`.
fn wire_field<T: DeserializeOwned>(
    body: &Map<String, Value>,
    field: &'static str,
    code: &'static str,
) -> Result<Option<T>, ApiError> {
    optional_str(body, field)?
        .map(|s| wire(s, field, code))
        .transpose()
}

/// One of a wire enum's spellings; the error lists them (the enum is their only source).
pub fn wire<T: DeserializeOwned>(
    s: &str,
    field: &'static str,
    code: &'static str,
) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|e| {
        let expected = e.to_string();
        let expected = expected
            .split_once(", expected ")
            .map_or(expected.as_str(), |(_, rest)| rest);
        ApiError::field(
            code,
            field,
            format!(
                "unknown {field} {}: expected {}",
                text::quote(s),
                expected.replace('`', "")
            ),
        )
    })
}

fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ApiError> {
    optional_str(body, field)?
        .ok_or_else(|| ApiError::field("missing_field", field, format!("{field} is required")))
}

/// The bound on each string field, and which control characters it may hold: the one place
/// these are set (header names and values are checked by `check_header`).
const TEXT_FIELDS: &[(&str, usize, Controls)] = &[
    ("name", 4 * MAX_NAME, Controls::Refused),
    ("schedule", 256, Controls::Refused),
    ("timezone", 64, Controls::Refused),
    ("api", 2048, Controls::Refused),
    ("type", 32, Controls::Refused),
    ("method", 32, Controls::Refused),
    ("misfirePolicy", 32, Controls::Refused),
    ("concurrencyPolicy", 32, Controls::Refused),
    ("body", MAX_JOB_BODY, Controls::AllButNul),
    ("signingSecret", 256, Controls::Refused),
];

/// A string field; absent and null are both none. Its length and characters are checked
/// against [`TEXT_FIELDS`].
pub fn optional_str<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if let Some(&(_, max, controls)) = TEXT_FIELDS.iter().find(|(f, _, _)| *f == field) {
                text::check(s, max, controls).map_err(|why| {
                    ApiError::field("invalid_text", field, format!("{field} {why}"))
                })?;
            }
            Ok(Some(s.as_str()))
        }
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

    use crate::domain::job::{ConcurrencyPolicy, Delivery};
    use serde_json::json;

    #[test]
    fn the_fields_are_the_documented_input_schema() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(JobInput::schema()).unwrap();
        let mut documented: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        let mut fields = FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(documented, fields);
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn an_unknown_spelling_lists_the_ones_the_wire_enum_has() {
        let err = parse(json!({"schedule": "* * * * * *", "api": "http://x", "type": "SOMETIMES"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown type \"SOMETIMES\": expected ATLEAST_ONCE or ATMOST_ONCE"
        );
        let err =
            parse(json!({"schedule": "* * * * * *", "api": "http://x", "misfirePolicy": "x"}))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown misfirePolicy \"x\": expected one of one, all, none"
        );
        let lower = parse(json!({"schedule": "* * * * * *", "api": "http://x", "method": "put"}));
        assert_eq!(lower.unwrap().method, HttpMethod::Put);
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
        assert_eq!(job.spread_ms, 0);
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
            "signingSecret": "0123456789abcdef-secret",
            "spreadMs": 30000
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
            (with("spreadMs", json!(-1)), "spreadMs"),
            (with("spreadMs", json!(86_400_001)), "spreadMs"),
            (with("spreadMs", json!("1s")), "spreadMs"),
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
