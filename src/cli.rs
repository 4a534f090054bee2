//! The command line: `serve` (the default), `migrate`, and `cron` to preview a schedule.

use std::ffi::OsString;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};

use crate::config::{CommonSettings, Settings};
use crate::domain::schedule::Schedule;

/// cronhook: a durable cron-over-HTTP job scheduler.
#[derive(Debug, Parser)]
#[command(name = "cronhook", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    ///
    /// Each setting is taken from its flag, else its environment variable, else a .env file in
    /// the working directory, else its default. A blank value is unset. Durations are whole
    /// milliseconds, at most a day unless noted.
    Serve(Box<Settings>),
    /// Apply database migrations and exit.
    Migrate(CommonSettings),
    /// Print the next fire instants of a cron expression.
    Cron {
        /// The expression: 6 fields (seconds first) or 5.
        expr: String,
        /// IANA time zone the expression is evaluated in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// How many instants to print.
        #[arg(short = 'n', long = "count", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
        n: u16,
        /// Print the instants after this RFC 3339 instant instead of after now, e.g. to check
        /// a schedule across next year's DST change.
        #[arg(long, value_parser = rfc3339)]
        from: Option<DateTime<Utc>>,
    },
}

/// The command `args` name, its settings read from the environment; `serve` when they name none.
pub fn parse_command(args: impl IntoIterator<Item = OsString>) -> Result<Command, clap::Error> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    // The top level takes no arguments but --help and --version, so a bare program name is
    // the one way to name no command, and it runs `serve` with the same settings.
    if args.len() == 1 {
        args.push("serve".into());
    }
    Cli::try_parse_from(args).map(|cli| cli.command)
}

/// An RFC 3339 instant, e.g. `2027-03-14T00:00:00-05:00`.
fn rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 instant (e.g. 2027-03-14T00:00:00Z): {e}"))
}

/// The next `n` instants of `expr` in `tz` after `from`, one RFC 3339 UTC line each, or why
/// it is invalid.
pub fn preview(expr: &str, tz: &str, n: usize, from: DateTime<Utc>) -> Result<String, String> {
    let schedule = Schedule::parse_in(expr, tz).map_err(|e| e.to_string())?;
    let lines: Vec<String> = schedule
        .upcoming(from, n)
        .into_iter()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .collect();
    Ok(lines.join("\n"))
}
