//! Settings: each declared once below with its environment variable, default and meaning, read
//! by clap from the environment (which a `.env` file, loaded by `main`, fills in) or from the
//! matching `serve` flag. `cronhook serve --help` lists them.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Args};

use crate::domain::job::RetryPolicy;
use crate::retention::Retention;
use crate::worker::call_log::CallLogging;
use crate::worker::target_policy::TargetPolicy;

/// Log line layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Which addresses calls may reach, before `TARGET_ALLOW`'s exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every address.
    Any,
    /// Public addresses only.
    Public,
}

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://cronhook.db";

/// The longest duration setting, in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// The settings `migrate` shares with `serve`: the database and logging.
#[derive(Debug, Clone, Args)]
pub struct CommonSettings {
    /// postgres://user:pass@host:5432/db or sqlite://path.db; a ?schema=NAME suffix on a postgres URL selects that schema.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, value_parser = Setting(database_url))]
    pub database_url: String,
    /// Minimum level logged: trace, debug, info, warn or error (RUST_LOG, when set, refines it per module).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = Setting(log_level))]
    pub log_level: String,
    /// Log line layout: pretty or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty", value_parser = Setting(log_format))]
    pub log_format: LogFormat,
}

// Each field is named after its variable, so `--help` shows the variable as the flag's value
// name (`--port <PORT>`); a test holds every field to it.
/// Every setting of `serve`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The database and logging.
    #[command(flatten)]
    pub common: CommonSettings,
    /// Address to bind; localhost means 127.0.0.1.
    #[arg(long, env = "HOST", default_value = "127.0.0.1", value_parser = Setting(host))]
    pub host: IpAddr,
    /// Port to bind (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000, value_parser = Setting(whole::<u16>(0..=65_535)))]
    pub port: u16,
    /// A request's headers must all arrive within this, or the connection is closed.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = Setting(whole::<u64>(100..=600_000)))]
    pub header_timeout_ms: u64,
    /// A request's body must all arrive within this, or the answer is 408.
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 10_000, value_parser = Setting(whole::<u64>(100..=600_000)))]
    pub body_timeout_ms: u64,
    /// A connection with no request in progress for this long is closed.
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = Setting(whole::<u64>(100..=DAY_MS)))]
    pub idle_timeout_ms: u64,
    /// Most client connections open at once; kept below the descriptor limit (RLIMIT_NOFILE, raised to its hard limit at start) less 64.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, value_parser = Setting(whole::<usize>(8..=1_000_000)))]
    pub max_connections: usize,
    /// Workers starting calls (1 to 10000): a call holds its worker until it ends or SLOW_CALL_MS passes.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 10, value_parser = Setting(whole::<usize>(1..=10_000)))]
    pub worker_concurrency: usize,
    /// Most calls in flight to one host (host:port), young and slow together; unset means WORKER_CONCURRENCY.
    #[arg(long, env = "HOST_CONCURRENCY", default_value = "", hide_default_value = true, value_parser = Setting(unset_or(whole::<usize>(1..=10_000))))]
    pub host_concurrency: std::option::Option<usize>,
    /// A call running longer than this gives its worker back and goes on as a slow call; its host is served from the slow calls until one of its calls is fast again (at least 10).
    #[arg(long, env = "SLOW_CALL_MS", default_value_t = 1_000, value_parser = Setting(whole::<u64>(10..=DAY_MS)))]
    pub slow_call_ms: u64,
    /// Most slow calls in flight at once (0 to 100000; 0 keeps every call on its worker).
    #[arg(long, env = "MAX_SLOW_CALLS", default_value_t = 100, value_parser = Setting(whole::<usize>(0..=100_000)))]
    pub max_slow_calls: usize,
    /// Timeout of one call (at least 1).
    #[arg(long, env = "CALL_TIMEOUT_MS", default_value_t = 30_000, value_parser = Setting(whole::<u64>(1..=DAY_MS)))]
    pub call_timeout_ms: u64,
    /// Ceiling on every call's timeout, a job's timeoutMs and CALL_TIMEOUT_MS alike (at least 1).
    #[arg(long, env = "MAX_CALL_TIMEOUT_MS", default_value_t = 120_000, value_parser = Setting(whole::<u64>(1..=DAY_MS)))]
    pub max_call_timeout_ms: u64,
    /// How long in-flight calls may finish on SIGINT/SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000, value_parser = Setting(whole::<u64>(0..=DAY_MS)))]
    pub shutdown_grace_ms: u64,
    /// A node that has not heartbeated for this long is dead and a live node recovers its fires; nodes heartbeat every LEASE_MS/3 (at least 1000).
    #[arg(long, env = "LEASE_MS", default_value_t = 15_000, value_parser = Setting(whole::<u64>(1_000..=DAY_MS)))]
    pub lease_ms: u64,
    /// How far ahead fires are claimed from the store.
    #[arg(long, env = "LOOKAHEAD_MS", default_value_t = 2_000, value_parser = Setting(whole::<u64>(0..=DAY_MS)))]
    pub lookahead_ms: u64,
    /// How often the claimer polls (at least 10).
    #[arg(long, env = "CLAIM_INTERVAL_MS", default_value_t = 250, value_parser = Setting(whole::<u64>(10..=DAY_MS)))]
    pub claim_interval_ms: u64,
    /// How often a node reads job changes made by other nodes when none is announced (PostgreSQL; at least every LEASE_MS/3 regardless).
    #[arg(long, env = "CHANGE_POLL_MS", default_value_t = 1_000, value_parser = Setting(whole::<u64>(10..=DAY_MS)))]
    pub change_poll_ms: u64,
    /// A fire later than this is a misfire and follows the job's misfirePolicy.
    #[arg(long, env = "MISFIRE_THRESHOLD_MS", default_value_t = 5_000, value_parser = Setting(whole::<u64>(0..=DAY_MS)))]
    pub misfire_threshold_ms: u64,
    /// Bound on catch-up fires for misfirePolicy "all" (1 to 100000).
    #[arg(long, env = "MISFIRE_MAX_CATCHUP", default_value_t = 100, value_parser = Setting(whole::<usize>(1..=100_000)))]
    pub misfire_max_catchup: usize,
    /// Attempts per ATLEAST_ONCE fire, 1 meaning no retry (1 to 100).
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = 3, value_parser = Setting(whole::<u32>(1..=100)))]
    pub retry_max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 1_000, value_parser = Setting(whole::<u64>(0..=DAY_MS)))]
    pub retry_backoff_ms: u64,
    /// Cap on the retry delay.
    #[arg(long, env = "RETRY_MAX_BACKOFF_MS", default_value_t = 60_000, value_parser = Setting(whole::<u64>(0..=DAY_MS)))]
    pub retry_max_backoff_ms: u64,
    /// Most fires a node holds claimed and not started (in its timer or waiting for a worker); at the bound it claims no more until some start (100 to 10000000).
    #[arg(long, env = "MAX_CLAIMED_FIRES", default_value_t = 50_000, value_parser = Setting(whole::<usize>(100..=10_000_000)))]
    pub max_claimed_fires: usize,
    /// Which calls get a log line at info: all, failures (at most 20 a second) or none; the others' lines are at debug, and a summary of all comes once a minute.
    #[arg(long, env = "LOG_CALLS", default_value = "failures", value_parser = Setting(CallLogging::parse))]
    pub log_calls: CallLogging,
    /// Most outcomes of calls made that wait for the database (about 400 bytes each); at the bound the node starts no call and fences itself (1 to 10000000).
    #[arg(long, env = "MAX_UNSTORED_OUTCOMES", default_value_t = 10_000, value_parser = Setting(whole::<usize>(1..=10_000_000)))]
    pub max_unstored_outcomes: usize,
    /// When set, start-up gives up (exit 1) if the database has not answered within this; unset waits for it (/health answers starting meanwhile).
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value = "", hide_default_value = true, value_parser = Setting(unset_or(whole::<u64>(0..=DAY_MS))))]
    pub db_connect_timeout_ms: std::option::Option<u64>,
    /// Connections to PostgreSQL (2 to 1000; SQLite uses 4).
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 10, value_parser = Setting(whole::<u32>(2..=1_000)))]
    pub db_pool_size: u32,
    // `std::option::Option` rather than `Option`: clap's derive would otherwise give the
    // parser only set values, leaving it no way to read a blank one as unset.
    /// When set, every endpoint but /health requires `Authorization: Bearer <token>` (16+ visible ASCII characters); set it for any deployment.
    #[arg(long, env = "API_TOKEN", default_value = "", hide_default_value = true, hide_env_values = true, value_parser = Setting(unset_or(secret)))]
    pub api_token: std::option::Option<String>,
    /// When set, calls of jobs without their own secret are signed with it (16+ visible ASCII characters).
    #[arg(long, env = "SIGNING_SECRET", default_value = "", hide_default_value = true, hide_env_values = true, value_parser = Setting(unset_or(secret)))]
    pub signing_secret: std::option::Option<String>,
    /// "public" refuses calls to loopback, private, link-local and other non-public addresses; "any" allows every address.
    #[arg(long, env = "TARGET_POLICY", default_value = "any", value_parser = Setting(reach))]
    pub target_policy: Reach,
    /// Exceptions to TARGET_POLICY=public: comma-separated CIDRs, addresses and host names.
    #[arg(long, env = "TARGET_ALLOW", default_value = "", hide_default_value = true, value_parser = Setting(target_allow))]
    pub target_allow: TargetPolicy,
    /// Finished executions kept per job; older ones are pruned in the background (1 to 1000000).
    #[arg(long, env = "HISTORY_KEEP", default_value_t = 1_000, value_parser = Setting(whole::<u32>(1..=1_000_000)))]
    pub history_keep: u32,
    /// When set, also prune finished executions older than this (at least 1000, at most ten years).
    #[arg(long, env = "HISTORY_MAX_AGE_MS", default_value = "", hide_default_value = true, value_parser = Setting(unset_or(whole::<u64>(1_000..=3_650 * DAY_MS))))]
    pub history_max_age_ms: std::option::Option<u64>,
    /// Pause between pruning sweeps; each visits the jobs run since the last (at least 10).
    #[arg(long, env = "PRUNE_INTERVAL_MS", default_value_t = 60_000, value_parser = Setting(whole::<u64>(10..=DAY_MS)))]
    pub prune_interval_ms: u64,
    /// Jobs pruned between two renewals of the pruning lease (1 to 100000).
    #[arg(long, env = "PRUNE_JOBS", default_value_t = 100, value_parser = Setting(whole::<u32>(1..=100_000)))]
    pub prune_jobs: u32,
    /// Rows deleted per statement, each its own short transaction (1 to 100000).
    #[arg(long, env = "PRUNE_BATCH", default_value_t = 500, value_parser = Setting(whole::<u32>(1..=100_000)))]
    pub prune_batch: u32,
}

/// Everything `serve` runs with, in the types the service uses.
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
    /// Which calls get a log line at `info`.
    pub log_calls: CallLogging,
    /// The HTTP server's limits.
    pub server: crate::api::serve::Limits,
    /// How calls share the workers.
    pub lanes: crate::worker::dispatch::Limits,
    /// Timeout of one call (at most `max_call_timeout`).
    pub call_timeout: Duration,
    /// Ceiling on every call's timeout.
    pub max_call_timeout: Duration,
    /// How long in-flight calls may finish at shutdown.
    pub shutdown_grace: Duration,
    /// A node silent for this long is dead; its fires are recovered.
    pub lease: Duration,
    /// How far ahead fires are claimed.
    pub lookahead: Duration,
    /// How often the claimer polls the store.
    pub claim_interval: Duration,
    /// How often job changes are read when none is announced.
    pub change_poll: Duration,
    /// A fire later than this is a misfire.
    pub misfire_threshold: Duration,
    /// Bound on catch-up fires under misfire policy `all`.
    pub misfire_max_catchup: usize,
    /// Global retry defaults for ATLEAST_ONCE fires.
    pub retry: RetryPolicy,
    /// Connections to the database.
    pub db_pool_size: u32,
    /// Most outcomes waiting for the database before the node stops starting calls.
    pub max_unstored_outcomes: usize,
    /// Most fires a node holds claimed and not started.
    pub max_claimed_fires: usize,
    /// How long start-up waits for the database; none waits for it.
    pub db_connect_timeout: Option<Duration>,
    /// When set, every endpoint but `/health` requires `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// When set, calls of jobs without their own secret are signed with it.
    pub signing_secret: Option<String>,
    /// Which addresses calls may reach.
    pub target_policy: Arc<TargetPolicy>,
    /// How much execution history is kept.
    pub retention: Retention,
}

impl From<Settings> for Config {
    fn from(s: Settings) -> Config {
        let ms = Duration::from_millis;
        Config {
            database_url: s.common.database_url,
            host: s.host,
            port: s.port,
            log_level: s.common.log_level,
            log_format: s.common.log_format,
            log_calls: s.log_calls,
            server: crate::api::serve::Limits {
                header_timeout: ms(s.header_timeout_ms),
                body_timeout: ms(s.body_timeout_ms),
                idle_timeout: ms(s.idle_timeout_ms),
                max_connections: s.max_connections,
            },
            lanes: crate::worker::dispatch::Limits {
                workers: s.worker_concurrency,
                host_calls: s.host_concurrency.unwrap_or(s.worker_concurrency),
                slow_calls: s.max_slow_calls,
                slow_after: ms(s.slow_call_ms),
                late_after: ms(s.misfire_threshold_ms),
            },
            call_timeout: ms(s.call_timeout_ms.min(s.max_call_timeout_ms)),
            max_call_timeout: ms(s.max_call_timeout_ms),
            shutdown_grace: ms(s.shutdown_grace_ms),
            lease: ms(s.lease_ms),
            lookahead: ms(s.lookahead_ms),
            claim_interval: ms(s.claim_interval_ms),
            change_poll: ms(s.change_poll_ms),
            misfire_threshold: ms(s.misfire_threshold_ms),
            misfire_max_catchup: s.misfire_max_catchup,
            retry: RetryPolicy {
                max_attempts: s.retry_max_attempts,
                backoff_ms: s.retry_backoff_ms,
                max_backoff_ms: s.retry_max_backoff_ms,
            },
            db_pool_size: s.db_pool_size,
            db_connect_timeout: s.db_connect_timeout_ms.map(ms),
            max_unstored_outcomes: s.max_unstored_outcomes,
            max_claimed_fires: s.max_claimed_fires,
            api_token: s.api_token,
            signing_secret: s.signing_secret,
            target_policy: Arc::new(TargetPolicy {
                public_only: s.target_policy == Reach::Public,
                ..s.target_allow
            }),
            retention: Retention {
                keep: s.history_keep,
                max_age: s.history_max_age_ms.map(ms),
                interval: ms(s.prune_interval_ms),
                jobs_per_step: s.prune_jobs,
                batch: s.prune_batch,
            },
        }
    }
}

/// A setting's parser, made to read like every other: surrounding blanks are ignored, a blank
/// value is the default (so `PORT=` in `.env` leaves PORT unset), and an error names the
/// variable whether the value came from it or from the flag.
#[derive(Clone)]
struct Setting<F>(F);

impl<T, F> TypedValueParser for Setting<F>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let var = arg.and_then(Arg::get_env).unwrap_or_default();
        let fail = |reason: String| {
            let message = format!("invalid {}: {reason}", var.to_string_lossy());
            clap::Error::raw(ErrorKind::ValueValidation, message).format(&mut cmd.clone())
        };
        let text = value.to_str().map(str::trim);
        let text = match text {
            None => return Err(fail(format!("{value:?} is not UTF-8"))),
            Some("") => arg
                .and_then(|a| a.get_default_values().first())
                .and_then(|d| d.to_str())
                .unwrap_or(""),
            Some(text) => text,
        };
        (self.0)(text).map_err(fail)
    }
}

/// A whole number in `range`, as a `T` that holds the whole range.
fn whole<T: TryFrom<u64> + 'static>(
    range: RangeInclusive<u64>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s| {
        s.parse()
            .ok()
            .filter(|n| range.contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                let (min, max) = (range.start(), range.end());
                format!("{s:?} is not a whole number from {min} to {max}")
            })
    }
}

/// `parse`, except that a blank value is unset.
fn unset_or<T>(
    parse: impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
) -> impl Fn(&str) -> Result<Option<T>, String> + Clone + Send + Sync + 'static {
    move |s| match s {
        "" => Ok(None),
        s => parse(s).map(Some),
    }
}

fn database_url(s: &str) -> Result<String, String> {
    // Quotes survive from some .env writers and docker-compose files.
    let url = s.trim_matches('"');
    if ["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        Ok(url.to_owned())
    } else {
        Err("expected postgres://..., postgresql://... or sqlite://...".into())
    }
}

fn log_level(s: &str) -> Result<String, String> {
    let level = s.to_ascii_lowercase();
    match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => Ok(level),
        _ => Err(format!(
            "{s:?} is not one of trace, debug, info, warn, error"
        )),
    }
}

fn log_format(s: &str) -> Result<LogFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not pretty or json")),
    }
}

fn host(s: &str) -> Result<IpAddr, String> {
    match s {
        "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        s => s.parse().map_err(|_| format!("{s:?} is not an IP address")),
    }
}

fn secret(s: &str) -> Result<String, String> {
    if s.len() >= 16 && s.chars().all(|c| c.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err("must be at least 16 visible ASCII characters".into())
    }
}

fn reach(s: &str) -> Result<Reach, String> {
    match s.to_ascii_lowercase().as_str() {
        "any" => Ok(Reach::Any),
        "public" => Ok(Reach::Public),
        _ => Err(format!("{s:?} is not any or public")),
    }
}

/// The exceptions alone; `From<Settings>` adds whether only public addresses are allowed.
fn target_allow(s: &str) -> Result<TargetPolicy, String> {
    TargetPolicy::new(false, s)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command, parse_command};

    /// `cronhook serve ARGS` as the binary reads it, process environment included.
    fn serve(args: &[&str]) -> Result<Config, clap::Error> {
        let argv = ["cronhook", "serve"].iter().chain(args);
        match parse_command(argv.map(Into::into))? {
            Command::Serve(settings) => Ok((*settings).into()),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// `serve ARGS` blind to the process environment, so that a variable exported where the
    /// tests run cannot change what they see.
    fn serve_without_env(args: &[&str]) -> Config {
        let command = Settings::augment_args(clap::Command::new("serve")).mut_args(|a| a.env(None));
        let matches = command
            .try_get_matches_from(["serve"].iter().chain(args))
            .unwrap();
        Settings::from_arg_matches(&matches).unwrap().into()
    }

    /// The flag of variable `var`.
    fn flag(var: &str, value: &str) -> String {
        format!("--{}={value}", var.to_ascii_lowercase().replace('_', "-"))
    }

    #[test]
    fn defaults_serve_on_3000_with_sqlite() {
        let c = serve_without_env(&[]);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.port, 3000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.lanes.workers, 10);
        assert_eq!(c.lanes.host_calls, 10);
        assert_eq!(c.max_call_timeout, Duration::from_secs(120));
        assert_eq!(c.call_timeout, Duration::from_secs(30));
        assert_eq!(c.lease, Duration::from_secs(15));
        assert_eq!(c.claim_interval, Duration::from_millis(250));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.log_calls, CallLogging::Failures);
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!((c.api_token, c.signing_secret), (None, None));
        assert_eq!(*c.target_policy, TargetPolicy::default());
        assert_eq!(c.retention.keep, 1_000);
        assert_eq!(c.retention.max_age, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("PORT", "70000"),
            ("PORT", "abc"),
            ("WORKER_CONCURRENCY", "0"),
            ("LOG_LEVEL", "loud"),
            ("LOG_FORMAT", "xml"),
            ("LOG_CALLS", "some"),
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
            ("DB_POOL_SIZE", "1"),
        ] {
            let err = serve(&[&flag(k, v)]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{k}={v}");
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string().starts_with(&format!("error: invalid {k}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn values_are_read() {
        let c = serve_without_env(&[
            "--port=8080",
            "--log-level=DEBUG",
            "--log-format=json",
            "--log-calls=ALL",
            "--database-url=\"postgres://u@h/db\"",
            "--host=localhost",
            "--call-timeout-ms=1500",
            "--api-token=0123456789abcdef",
            "--target-policy=Public",
            "--target-allow=10.0.0.0/8, hooks.internal",
            "--history-max-age-ms=60000",
            "--prune-batch=7",
        ]);
        assert_eq!(c.port, 8080);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_calls, CallLogging::All);
        assert_eq!(c.database_url, "postgres://u@h/db");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.call_timeout, Duration::from_millis(1500));
        assert_eq!(c.api_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            *c.target_policy,
            TargetPolicy::new(true, "10.0.0.0/8,hooks.internal").unwrap()
        );
        assert_eq!(c.retention.max_age, Some(Duration::from_secs(60)));
        assert_eq!(c.retention.batch, 7);
    }

    #[test]
    fn blank_values_are_unset_and_surrounding_blanks_ignored() {
        let c = serve_without_env(&[
            "--port=",
            "--api-token= ",
            "--history-max-age-ms=",
            "--worker-concurrency= 7 ",
        ]);
        assert_eq!(c.port, 3000);
        assert_eq!(c.api_token, None);
        assert_eq!(c.retention.max_age, None);
        assert_eq!(c.lanes.workers, 7);
    }

    #[test]
    fn every_setting_is_named_after_its_variable() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let settings: Vec<_> = serve
            .get_arguments()
            .filter(|a| a.get_long() != Some("help"))
            .collect();
        assert_eq!(settings.len(), 39);
        for arg in settings {
            let var = arg.get_env().and_then(OsStr::to_str);
            let id = arg.get_id().as_str().to_ascii_uppercase();
            assert_eq!(var, Some(id.as_str()), "{arg:?}");
        }
    }
}
