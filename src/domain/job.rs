//! Jobs: what a user registers, validated before anything is stored.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::schedule::Schedule;

/// How often a fire may reach its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Called again until a call succeeds or retries run out, whatever dies in between.
    AtLeastOnce,
    /// Marked started durably before the request leaves; never sent twice.
    AtMostOnce,
}

/// What happens to fires that fell due while no node could run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MisfirePolicy {
    /// One catch-up call for the latest missed instant, then back on schedule.
    One,
    /// Every missed instant is called, up to a configured bound.
    All,
    /// Missed instants are skipped.
    None,
}

/// Retry settings of a job; unset parts fall back to the global defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOverride {
    /// Attempts per fire, 1 meaning no retry.
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, in milliseconds.
    pub backoff_ms: Option<u64>,
    /// Cap on the delay between attempts, in milliseconds.
    pub max_backoff_ms: Option<u64>,
}

/// Effective retry settings of a fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per fire, 1 meaning no retry.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub backoff_ms: u64,
    /// Cap on the delay between attempts, in milliseconds.
    pub max_backoff_ms: u64,
}

impl RetryPolicy {
    /// The job's overrides on top of these defaults.
    pub fn with(self, o: RetryOverride) -> RetryPolicy {
        RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            backoff_ms: o.backoff_ms.unwrap_or(self.backoff_ms),
            max_backoff_ms: o.max_backoff_ms.unwrap_or(self.max_backoff_ms),
        }
    }
}

/// An absolute http(s) URL a job calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(String);

impl TargetUrl {
    /// Accepts absolute `http` and `https` URLs with a host.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s.trim())
            .map_err(|e| format!("api must be an absolute http(s) URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "api must be an http or https URL, not {}:",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("api must name a host".into());
        }
        Ok(TargetUrl(url.to_string()))
    }

    /// The URL as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL for a log line: a password and the query's values masked, since targets
    /// often carry credentials there.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            return String::from("(unparsable URL)");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query().is_some() {
            let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(keys.iter().map(|k| (k.as_str(), "***")));
        }
        url.to_string()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The HTTP method a job calls its target with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// `GET` (sent without a body).
    Get,
    /// `POST`, the default.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

/// Whether calls of one job may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConcurrencyPolicy {
    /// A fire is called even while the previous call of the job runs (the default).
    Allow,
    /// A fire due while the previous call of the job runs is skipped and recorded as skipped.
    Forbid,
}

/// Headers a job may not set: cronhook or the HTTP connection owns them.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "idempotency-key",
];

/// Most headers a job may set.
pub const MAX_HEADERS: usize = 50;
/// Longest header value.
pub const MAX_HEADER_VALUE: usize = 4096;
/// Longest header name a job may send.
pub const MAX_HEADER_NAME: usize = 256;
/// Longest request body a job may send.
pub const MAX_JOB_BODY: usize = 32 * 1024;
/// Longest job name.
pub const MAX_NAME: usize = 200;
/// Bounds of a job's call timeout.
pub const TIMEOUT_MS_RANGE: (u64, u64) = (1, 600_000);
/// Bounds of a job's spread: up to a day, like the widest flexible window of managed
/// schedulers.
pub const SPREAD_MS_RANGE: (u64, u64) = (0, 86_400_000);

/// How far every fire of job `id` is moved past its scheduled instant, in milliseconds: a
/// fixed amount in `[0, spread_ms)` derived from the id alone, so it never changes while the
/// spread does not, the scheduled instant still names the fire, and jobs sharing a schedule
/// fall due spread across the window instead of all at once.
pub fn spread_offset_ms(id: Uuid, spread_ms: u64) -> i64 {
    if spread_ms == 0 {
        return 0;
    }
    // SplitMix64's finalizer over both halves: every bit of the id moves the offset, and
    // the same id gives the same offset on every node and every version.
    let (hi, lo) = id.as_u64_pair();
    let mut z = hi ^ lo.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % spread_ms) as i64
}

/// Validates one header a job sends: a token name, not reserved, and a visible-ASCII value.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.len() > MAX_HEADER_NAME {
        return Err(format!(
            "header name {} is longer than {MAX_HEADER_NAME} bytes",
            super::text::quote(name)
        ));
    }
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "header name {} is not a valid HTTP header name",
            super::text::quote(name)
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-cronhook-") {
        return Err(format!(
            "header {} is set by cronhook or the connection and cannot be overridden",
            super::text::quote(name)
        ));
    }
    if value.len() > MAX_HEADER_VALUE {
        return Err(format!(
            "header {} is longer than {MAX_HEADER_VALUE} bytes",
            super::text::quote(name)
        ));
    }
    if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        return Err(format!(
            "header {} has a value with characters other than visible ASCII",
            super::text::quote(name)
        ));
    }
    Ok(())
}

/// Everything a user sets on a job: the seed's three fields and the optional rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// A label for people; not unique.
    pub name: Option<String>,
    /// When it fires, in its time zone.
    pub schedule: Schedule,
    /// What it calls.
    pub api: TargetUrl,
    /// How it calls.
    pub method: HttpMethod,
    /// Extra request headers, in order.
    pub headers: Vec<(String, String)>,
    /// The request body; none sends cronhook's JSON description of the fire.
    pub body: Option<String>,
    /// This job's call timeout; none uses the global one.
    pub timeout_ms: Option<u64>,
    /// How often one fire may reach the target.
    pub delivery: Delivery,
    /// What happens to fires missed while no node ran (or while paused).
    pub misfire: MisfirePolicy,
    /// Per-job retry settings.
    pub retry: RetryOverride,
    /// Whether calls of the job may overlap.
    pub concurrency: ConcurrencyPolicy,
    /// False while paused.
    pub enabled: bool,
    /// This job's own secret for signing its calls; none uses the global one, if any.
    pub signing_secret: Option<String>,
    /// Every fire is called [`spread_offset_ms`] after its scheduled instant; 0 calls it on
    /// the instant.
    pub spread_ms: u64,
}

impl JobSpec {
    /// When job `id`'s first fire after `now` is due: the schedule's next instant moved by
    /// the job's spread offset; none when the schedule has no more instants.
    pub fn first_due(&self, id: Uuid, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let offset = chrono::Duration::milliseconds(spread_offset_ms(id, self.spread_ms));
        self.schedule.next_after(now).map(|at| at + offset)
    }

    /// A job with the seed's fields and every optional one at its default.
    pub fn new(schedule: Schedule, api: TargetUrl, delivery: Delivery) -> JobSpec {
        JobSpec {
            name: None,
            schedule,
            api,
            method: HttpMethod::Post,
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            delivery,
            misfire: MisfirePolicy::One,
            retry: RetryOverride::default(),
            concurrency: ConcurrencyPolicy::Allow,
            enabled: true,
            signing_secret: None,
            spread_ms: 0,
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Enabled, with a next fire.
    Active,
    /// Disabled by the user.
    Paused,
    /// Enabled, but its schedule has no more instants.
    Finished,
}

impl JobState {
    /// The state of a job.
    pub fn of(enabled: bool, next_fire_at: Option<DateTime<Utc>>) -> JobState {
        match (enabled, next_fire_at) {
            (false, _) => JobState::Paused,
            (true, None) => JobState::Finished,
            (true, Some(_)) => JobState::Active,
        }
    }
}

/// A stored job: what the user set, and what the store keeps about it.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// The job's id.
    pub id: Uuid,
    /// What the user set.
    pub spec: JobSpec,
    /// When its next fire is due: the next scheduled instant moved by the job's spread
    /// offset; none when the schedule has no more.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change.
    pub version: i64,
}

impl JobRecord {
    /// Where the job stands.
    pub fn state(&self) -> JobState {
        JobState::of(self.spec.enabled, self.next_fire_at)
    }
}

/// A validated job, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job's identity (UUID v7: time-ordered, so indexes stay compact).
    pub id: Uuid,
    /// What the user set.
    pub spec: JobSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(TargetUrl::parse("http://127.0.0.1:8080/x").is_ok());
        assert!(TargetUrl::parse("https://example.com").is_ok());
        for bad in [
            "/relative",
            "ftp://example.com/x",
            "example.com",
            "http://",
            "",
        ] {
            assert!(TargetUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn logged_urls_hide_passwords_and_query_values() {
        let u = TargetUrl::parse("https://bob:s3cret@example.com/hook?apikey=k3y&x=1").unwrap();
        let r = u.redacted();
        assert!(!r.contains("s3cret") && !r.contains("k3y"), "{r}");
        assert!(r.contains("bob") && r.contains("apikey=") && r.contains("example.com/hook"));
        let plain = TargetUrl::parse("https://example.com/hook").unwrap();
        assert_eq!(plain.redacted(), "https://example.com/hook");
    }

    #[test]
    fn headers_are_checked() {
        assert!(check_header("X-Api-Key", "secret value").is_ok());
        assert!(check_header("Authorization", "Bearer abc").is_ok());
        for (name, value) in [
            ("", "x"),
            ("Bad Name", "x"),
            ("Host", "example.com"),
            ("content-length", "3"),
            ("Idempotency-Key", "k"),
            ("X-Cronhook-Attempt", "9"),
            ("X-Ok", "line\nbreak"),
        ] {
            assert!(
                check_header(name, value).is_err(),
                "{name:?}: {value:?} accepted"
            );
        }
        assert!(check_header("X-Long", &"a".repeat(MAX_HEADER_VALUE + 1)).is_err());
    }

    #[test]
    fn a_spread_offset_is_fixed_by_the_id_and_fills_the_window() {
        assert_eq!(spread_offset_ms(Uuid::now_v7(), 0), 0);
        assert_eq!(spread_offset_ms(Uuid::now_v7(), 1), 0);
        // Stable across versions: a fire's due instant must not move on an upgrade.
        let id = Uuid::parse_str("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap();
        assert_eq!(spread_offset_ms(id, 1000), spread_offset_ms(id, 1000));
        assert_eq!(spread_offset_ms(id, 1000), 768);
        // Ids made in one millisecond (the same v7 time prefix) still spread evenly.
        let mut tenths = [0usize; 10];
        for _ in 0..10_000 {
            let off = spread_offset_ms(Uuid::now_v7(), 1000);
            assert!((0..1000).contains(&off), "{off}");
            tenths[(off / 100) as usize] += 1;
        }
        for (i, n) in tenths.iter().enumerate() {
            assert!(
                (800..=1200).contains(n),
                "tenth {i} holds {n} of 10,000: {tenths:?}"
            );
        }
    }
}
