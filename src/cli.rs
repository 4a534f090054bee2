//! The command line: `serve` (the default), `migrate`, and `cron` to preview a schedule.

use chrono::{SecondsFormat, Utc};
use clap::{Parser, Subcommand};

use crate::domain::schedule::Schedule;

/// cronhook: a durable cron-over-HTTP job scheduler.
#[derive(Debug, Parser)]
#[command(name = "cronhook", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
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
    },
}

/// The next `n` instants of `expr` in `tz`, one RFC 3339 UTC line each, or why it is invalid.
pub fn preview(expr: &str, tz: &str, n: usize) -> Result<String, String> {
    let schedule = Schedule::parse_in(expr, tz).map_err(|e| e.to_string())?;
    let lines: Vec<String> = schedule
        .upcoming(Utc::now(), n)
        .into_iter()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .collect();
    Ok(lines.join("\n"))
}
