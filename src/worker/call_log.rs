//! Which calls get a log line of their own (`LOG_CALLS`), and the summary of all of them.
//!
//! A line per call costs more CPU than the rest of the call's bookkeeping (a formatted line
//! and a write for every fire), and at thousands of fires a second it buries everything
//! else. So by default only failed calls are logged at `info`, at most
//! [`FAILURE_LINES_PER_SECOND`] a second; every other call's line is at `debug`, and a
//! summary of all calls comes at `info` once a minute and at shutdown. Metrics count every
//! call regardless.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Most failed calls logged at `info` in one second under [`CallLogging::Failures`]; the
/// rest are logged at `debug` and counted in the summary.
pub const FAILURE_LINES_PER_SECOND: u32 = 20;
/// How often the summary is logged (when calls were made).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Which calls are logged at `info` (`LOG_CALLS`); the others at `debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLogging {
    /// Every call.
    All,
    /// Failed calls, at most [`FAILURE_LINES_PER_SECOND`] a second.
    Failures,
    /// None: only the summary.
    None,
}

impl CallLogging {
    /// Parses a `LOG_CALLS` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "failures" => Ok(Self::Failures),
            "none" => Ok(Self::None),
            _ => Err(format!("{s:?} is not all, failures or none")),
        }
    }
}

/// The level of one call's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Logged at `info`.
    Info,
    /// Logged at `debug`.
    Debug,
}

/// Counts of calls since the last summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls whose target answered 2xx.
    pub succeeded: u64,
    /// The others: another status, no answer, or refused by the target policy.
    pub failed: u64,
    /// Failed calls whose line went to `debug` (over the per-second bound, or
    /// `LOG_CALLS=none`).
    pub failed_unlisted: u64,
}

/// Decides each call's line and counts calls for the summary.
#[derive(Debug)]
pub struct CallLog {
    /// The setting.
    mode: CallLogging,
    /// Successful calls since the last summary.
    succeeded: AtomicU64,
    /// Failed calls since the last summary.
    failed: AtomicU64,
    /// Failed calls logged at `debug` since the last summary.
    failed_unlisted: AtomicU64,
    /// The second (since `origin`) failure lines are counted in, and how many it had.
    second: Mutex<(u64, u32)>,
    /// Where seconds count from.
    origin: Instant,
}

impl CallLog {
    /// A log that follows `mode`.
    pub fn new(mode: CallLogging) -> Self {
        CallLog {
            mode,
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failed_unlisted: AtomicU64::new(0),
            second: Mutex::new((0, 0)),
            origin: Instant::now(),
        }
    }

    /// Counts one call made now and says at which level its line goes.
    pub fn line(&self, success: bool) -> Line {
        self.line_at(success, Instant::now)
    }

    /// [`CallLog::line`] for a call made at `at()`, read only for a failure that may be
    /// listed.
    fn line_at(&self, success: bool, at: impl FnOnce() -> Instant) -> Line {
        if success {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let listed = match self.mode {
            CallLogging::All => true,
            CallLogging::None => false,
            CallLogging::Failures if success => false,
            CallLogging::Failures => {
                let now = at().saturating_duration_since(self.origin).as_secs();
                let mut second = self.second.lock().unwrap_or_else(|p| p.into_inner());
                if second.0 != now {
                    *second = (now, 0);
                }
                second.1 += 1;
                second.1 <= FAILURE_LINES_PER_SECOND
            }
        };
        if !listed && !success {
            self.failed_unlisted.fetch_add(1, Ordering::Relaxed);
        }
        if listed { Line::Info } else { Line::Debug }
    }

    /// The counts since the last call of `take`, reset.
    pub fn take(&self) -> Counts {
        Counts {
            succeeded: self.succeeded.swap(0, Ordering::Relaxed),
            failed: self.failed.swap(0, Ordering::Relaxed),
            failed_unlisted: self.failed_unlisted.swap(0, Ordering::Relaxed),
        }
    }

    /// Logs the summary every `every` while calls are made, and once more when `stop` is
    /// cancelled (once every outcome is in).
    pub async fn summarize(self: std::sync::Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut since = Instant::now();
        loop {
            let stopping = tokio::select! {
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep(every) => false,
            };
            let counts = self.take();
            if counts != Counts::default() {
                tracing::info!(
                    succeeded = counts.succeeded,
                    failed = counts.failed,
                    failed_unlisted = counts.failed_unlisted,
                    seconds = since.elapsed().as_secs(),
                    "calls made since the last summary"
                );
            }
            if stopping {
                return;
            }
            since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_failures_are_listed_and_at_most_so_many_a_second() {
        let log = CallLog::new(CallLogging::Failures);
        let t0 = log.origin + Duration::from_millis(5_500);
        assert_eq!(log.line_at(true, || t0), Line::Debug);
        let lines: Vec<Line> = (0..FAILURE_LINES_PER_SECOND + 5)
            .map(|_| log.line_at(false, || t0))
            .collect();
        assert!(
            lines[..FAILURE_LINES_PER_SECOND as usize]
                .iter()
                .all(|l| *l == Line::Info)
        );
        assert!(
            lines[FAILURE_LINES_PER_SECOND as usize..]
                .iter()
                .all(|l| *l == Line::Debug)
        );
        // A new second lists failures again.
        assert_eq!(
            log.line_at(false, || t0 + Duration::from_secs(1)),
            Line::Info
        );
        assert_eq!(
            log.take(),
            Counts {
                succeeded: 1,
                failed: u64::from(FAILURE_LINES_PER_SECOND) + 6,
                failed_unlisted: 5,
            }
        );
        assert_eq!(log.take(), Counts::default());
    }

    #[test]
    fn all_lists_every_call_and_none_lists_none() {
        let all = CallLog::new(CallLogging::All);
        let none = CallLog::new(CallLogging::None);
        for _ in 0..FAILURE_LINES_PER_SECOND * 2 {
            assert_eq!(all.line(false), Line::Info);
            assert_eq!(all.line(true), Line::Info);
            assert_eq!(none.line(false), Line::Debug);
            assert_eq!(none.line(true), Line::Debug);
        }
        let n = u64::from(FAILURE_LINES_PER_SECOND) * 2;
        assert_eq!(all.take().failed_unlisted, 0);
        assert_eq!(
            none.take(),
            Counts {
                succeeded: n,
                failed: n,
                failed_unlisted: n,
            }
        );
    }

    #[test]
    fn log_calls_values() {
        assert_eq!(CallLogging::parse("ALL"), Ok(CallLogging::All));
        assert_eq!(CallLogging::parse("failures"), Ok(CallLogging::Failures));
        assert_eq!(CallLogging::parse("none"), Ok(CallLogging::None));
        assert!(
            CallLogging::parse("some")
                .unwrap_err()
                .contains("all, failures or none")
        );
    }
}
