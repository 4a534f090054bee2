//! The cost of evaluating a schedule: one `next_after` call, and one parse, for dense and
//! sparse expressions, in UTC and in zones with DST. Runs the library in this process: no
//! service, no database.

use std::hint::black_box;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use cronhook::domain::schedule::Schedule;

/// The expressions measured, with their zones.
pub const CASES: [(&str, &str); 5] = [
    ("* * * * * *", "UTC"),
    ("0 0 0 29 2 *", "UTC"),
    ("0 */15 9-17 * * MON-FRI", "UTC"),
    ("0 30 2 * * *", "America/New_York"),
    ("0 0 0 1-7 * MON", "Europe/London"),
];

/// One expression's figures.
#[derive(Debug)]
pub struct CronResult {
    /// The expression.
    pub expr: &'static str,
    /// Its zone.
    pub tz: &'static str,
    /// `next_after` calls made.
    pub calls: u64,
    /// Mean time per `next_after`, in nanoseconds.
    pub next_ns: f64,
    /// Mean time per parse, in microseconds.
    pub parse_us: f64,
}

/// Times `calls` `next_after` calls per expression, each from a start one second later
/// than the last (so a sparse expression searches up to four years every call), and
/// `calls / 100` parses.
pub fn run(calls: u64) -> anyhow::Result<Vec<CronResult>> {
    let start = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("start instant"))?;
    let mut rows = Vec::new();
    for (expr, tz) in CASES {
        let parses = (calls / 100).max(1);
        let t = Instant::now();
        for _ in 0..parses {
            black_box(Schedule::parse_in(black_box(expr), tz)?);
        }
        let parse_us = t.elapsed().as_secs_f64() * 1e6 / parses as f64;
        let schedule = Schedule::parse_in(expr, tz)?;
        let t = Instant::now();
        for i in 0..calls {
            black_box(schedule.next_after(black_box(start + Duration::seconds(i as i64))));
        }
        let next_ns = t.elapsed().as_secs_f64() * 1e9 / calls as f64;
        rows.push(CronResult {
            expr,
            tz,
            calls,
            next_ns,
            parse_us,
        });
    }
    Ok(rows)
}
