//! Settings from the environment (and a `.env` file, loaded by `main`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::job::RetryPolicy;
use crate::retention::Retention;
use crate::worker::target_policy::TargetPolicy;

/// Log line layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `postgres://...` or `sqlite://...`.
    pub database_url: String,
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Minimum level logged: trace, debug, info, warn or error.
    pub log_level: String,
    /// Log line layout.
    pub log_format: LogFormat,
    /// Most calls in flight at once.
    pub worker_concurrency: usize,
    /// Timeout of one call.
    pub call_timeout: Duration,
    /// How long in-flight calls may finish at shutdown.
    pub shutdown_grace: Duration,
    /// A node silent for this long is dead; its fires are recovered.
    pub lease: Duration,
    /// How far ahead fires are claimed.
    pub lookahead: Duration,
    /// How often the claimer polls the store.
    pub claim_interval: Duration,
    /// A fire later than this is a misfire.
    pub misfire_threshold: Duration,
    /// Bound on catch-up fires under misfire policy `all`.
    pub misfire_max_catchup: usize,
    /// Global retry defaults for ATLEAST_ONCE fires.
    pub retry: RetryPolicy,
    /// Connections to the database.
    pub db_pool_size: u32,
    /// When set, every endpoint but `/health` requires `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// When set, calls of jobs without their own secret are signed with it.
    pub signing_secret: Option<String>,
    /// Which addresses calls may reach.
    pub target_policy: Arc<TargetPolicy>,
    /// How much execution history is kept.
    pub retention: Retention,
}

/// A setting that could not be used, naming its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://cronhook.db";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &'static str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let database_url = match var("DATABASE_URL") {
            None => DEFAULT_DATABASE_URL.to_owned(),
            Some(url) => {
                let url = url.trim_matches('"').to_owned();
                if !(url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("sqlite:"))
                {
                    return Err(ConfigError {
                        var: "DATABASE_URL",
                        message: "expected postgres://..., postgresql://... or sqlite://...".into(),
                    });
                }
                url
            }
        };
        let log_level = var("LOG_LEVEL")
            .unwrap_or_else(|| "info".into())
            .to_ascii_lowercase();
        if !["trace", "debug", "info", "warn", "error"].contains(&log_level.as_str()) {
            return Err(ConfigError {
                var: "LOG_LEVEL",
                message: format!("{log_level:?} is not one of trace, debug, info, warn, error"),
            });
        }
        let log_format = match var("LOG_FORMAT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "LOG_FORMAT",
                    message: format!("{other:?} is not pretty or json"),
                });
            }
        };
        let num = |k: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match var(k) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError {
                        var: k,
                        message: format!("{v:?} is not a whole number from {min} to {max}"),
                    }),
                },
            }
        };
        let ms = |k: &'static str, default: u64, min: u64| -> Result<Duration, ConfigError> {
            num(k, default, min, 86_400_000).map(Duration::from_millis)
        };
        let host = match var("HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(h) if h == "localhost" => IpAddr::from([127, 0, 0, 1]),
            Some(h) => h.parse().map_err(|_| ConfigError {
                var: "HOST",
                message: format!("{h:?} is not an IP address"),
            })?,
        };
        let lease = ms("LEASE_MS", 15_000, 1_000)?;
        let public_only = match var("TARGET_POLICY")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("any") => false,
            Some("public") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "TARGET_POLICY",
                    message: format!("{other:?} is not any or public"),
                });
            }
        };
        let target_policy =
            TargetPolicy::new(public_only, &var("TARGET_ALLOW").unwrap_or_default()).map_err(
                |message| ConfigError {
                    var: "TARGET_ALLOW",
                    message,
                },
            )?;
        let signing_secret = var("SIGNING_SECRET");
        if let Some(s) = &signing_secret
            && (s.len() < 16 || !s.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(ConfigError {
                var: "SIGNING_SECRET",
                message: "must be at least 16 visible ASCII characters".into(),
            });
        }
        let api_token = var("API_TOKEN");
        if let Some(t) = &api_token
            && (t.len() < 16 || !t.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(ConfigError {
                var: "API_TOKEN",
                message: "must be at least 16 visible ASCII characters".into(),
            });
        }
        let retry = RetryPolicy {
            max_attempts: num("RETRY_MAX_ATTEMPTS", 3, 1, 100)? as u32,
            backoff_ms: num("RETRY_BACKOFF_MS", 1_000, 0, 86_400_000)?,
            max_backoff_ms: num("RETRY_MAX_BACKOFF_MS", 60_000, 0, 86_400_000)?,
        };
        Ok(Config {
            database_url,
            host,
            port: num("PORT", 3000, 0, 65_535)? as u16,
            log_level,
            log_format,
            worker_concurrency: num("WORKER_CONCURRENCY", 10, 1, 10_000)? as usize,
            call_timeout: ms("CALL_TIMEOUT_MS", 30_000, 1)?,
            shutdown_grace: ms("SHUTDOWN_GRACE_MS", 10_000, 0)?,
            lease,
            lookahead: ms("LOOKAHEAD_MS", 2_000, 0)?,
            claim_interval: ms("CLAIM_INTERVAL_MS", 250, 10)?,
            misfire_threshold: ms("MISFIRE_THRESHOLD_MS", 5_000, 0)?,
            misfire_max_catchup: num("MISFIRE_MAX_CATCHUP", 100, 1, 100_000)? as usize,
            retry,
            db_pool_size: num("DB_POOL_SIZE", 10, 2, 1_000)? as u32,
            api_token,
            signing_secret,
            target_policy: Arc::new(target_policy),
            retention: Retention {
                keep: num("HISTORY_KEEP", 1_000, 1, 1_000_000)? as u32,
                max_age: match var("HISTORY_MAX_AGE_MS") {
                    None => None,
                    Some(_) => Some(Duration::from_millis(num(
                        "HISTORY_MAX_AGE_MS",
                        0,
                        1_000,
                        10 * 365 * 86_400_000,
                    )?)),
                },
                interval: ms("PRUNE_INTERVAL_MS", 1_000, 10)?,
                jobs_per_step: num("PRUNE_JOBS", 100, 1, 100_000)? as u32,
                batch: num("PRUNE_BATCH", 500, 1, 100_000)? as u32,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_serve_on_3000_with_sqlite() {
        let c = load(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.port, 3000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.worker_concurrency, 10);
        assert_eq!(c.call_timeout, Duration::from_secs(30));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("PORT", "70000"),
            ("PORT", "abc"),
            ("WORKER_CONCURRENCY", "0"),
            ("LOG_LEVEL", "loud"),
            ("LOG_FORMAT", "xml"),
            ("DATABASE_URL", "mysql://x"),
            ("HOST", "not-an-ip"),
            ("API_TOKEN", "short"),
            ("SIGNING_SECRET", "short"),
            ("TARGET_POLICY", "private"),
            ("TARGET_ALLOW", "10.0.0.0/40"),
            ("HISTORY_KEEP", "0"),
            ("HISTORY_MAX_AGE_MS", "5"),
            ("CALL_TIMEOUT_MS", "-5"),
            ("LEASE_MS", "10"),
        ] {
            let err = load(&[(k, v)]).unwrap_err();
            assert_eq!(err.var, k, "{k}={v}");
            assert!(
                err.to_string().starts_with(&format!("invalid {k}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn values_are_read() {
        let c = load(&[
            ("PORT", "8080"),
            ("LOG_LEVEL", "DEBUG"),
            ("LOG_FORMAT", "json"),
            ("DATABASE_URL", "\"postgres://u@h/db\""),
        ])
        .unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.database_url, "postgres://u@h/db");
    }
}
