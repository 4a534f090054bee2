//! Jobs: what a user registers, validated before anything is stored.

use std::fmt;
use std::str::FromStr;

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

impl Delivery {
    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "ATLEAST_ONCE",
            Delivery::AtMostOnce => "ATMOST_ONCE",
        }
    }
}

impl FromStr for Delivery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ATLEAST_ONCE" => Ok(Delivery::AtLeastOnce),
            "ATMOST_ONCE" => Ok(Delivery::AtMostOnce),
            other => Err(format!(
                "unknown type {other:?}: expected ATLEAST_ONCE or ATMOST_ONCE"
            )),
        }
    }
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

impl MisfirePolicy {
    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::One => "one",
            MisfirePolicy::All => "all",
            MisfirePolicy::None => "none",
        }
    }
}

impl FromStr for MisfirePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "one" => Ok(MisfirePolicy::One),
            "all" => Ok(MisfirePolicy::All),
            "none" => Ok(MisfirePolicy::None),
            other => Err(format!(
                "unknown misfirePolicy {other:?}: expected one, all or none"
            )),
        }
    }
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
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated job, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job's identity (UUID v7: time-ordered, so indexes stay compact).
    pub id: Uuid,
    /// When it fires.
    pub schedule: Schedule,
    /// What it calls.
    pub api: TargetUrl,
    /// How often one fire may reach the target.
    pub delivery: Delivery,
    /// What happens to fires missed while no node ran.
    pub misfire: MisfirePolicy,
    /// Per-job retry settings.
    pub retry: RetryOverride,
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
    fn spellings_round_trip() {
        for d in [Delivery::AtLeastOnce, Delivery::AtMostOnce] {
            assert_eq!(d.as_str().parse::<Delivery>(), Ok(d));
        }
        for m in [MisfirePolicy::One, MisfirePolicy::All, MisfirePolicy::None] {
            assert_eq!(m.as_str().parse::<MisfirePolicy>(), Ok(m));
        }
        assert!("atleast_once".parse::<Delivery>().is_err());
    }
}
