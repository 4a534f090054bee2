//! Time as a parameter, so code that depends on it can be tested; and the clock nodes share.
//!
//! On PostgreSQL every node keeps time by the database's clock: [`SharedClock`] is anchored
//! to it at each heartbeat and advanced by the monotonic clock in between, so a node whose
//! own wall clock is wrong, or steps, still fires, claims and judges leases on the one clock
//! all nodes agree on.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A reference clock (the database's) read at one monotonic instant.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// When the reference was read, on the monotonic clock.
    at: Instant,
    /// What the reference clock said then.
    reference: DateTime<Utc>,
}

/// The database's clock, as this node follows it: the last reading of the database's clock,
/// advanced by this node's monotonic clock (which no wall-clock step moves). Before the
/// first reading it is the wall clock.
#[derive(Debug, Default)]
pub struct SharedClock {
    /// The last reading; none until the database first answered.
    anchor: Mutex<Option<Anchor>>,
}

impl SharedClock {
    /// Takes a reading of the reference clock: `reference` was read by a request sent at
    /// `sent` whose answer arrived at `received`; it is taken as read halfway between, so
    /// the error is at most half the round trip.
    pub fn observe(&self, reference: DateTime<Utc>, sent: Instant, received: Instant) {
        let at = sent + received.saturating_duration_since(sent) / 2;
        *self.anchor.lock().unwrap_or_else(|e| e.into_inner()) = Some(Anchor { at, reference });
    }

    /// How far this node's wall clock is from the reference, in ms (positive: ahead).
    pub fn wall_offset_ms(&self) -> Option<i64> {
        let anchored = self.anchored()?;
        Some((Utc::now() - anchored).num_milliseconds())
    }

    fn anchored(&self) -> Option<DateTime<Utc>> {
        let anchor = (*self.anchor.lock().unwrap_or_else(|e| e.into_inner()))?;
        let elapsed = Instant::now().saturating_duration_since(anchor.at);
        Some(anchor.reference + chrono::Duration::from_std(elapsed).unwrap_or_default())
    }
}

impl Clock for SharedClock {
    fn now(&self) -> DateTime<Utc> {
        self.anchored().unwrap_or_else(Utc::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_shared_clock_follows_its_reference_on_the_monotonic_clock() {
        let clock = SharedClock::default();
        let before = Utc::now();
        assert!(clock.now() >= before, "the wall clock until anchored");
        let reference = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let sent = Instant::now();
        std::thread::sleep(Duration::from_millis(10));
        let received = Instant::now();
        clock.observe(reference, sent, received);
        let read = clock.now();
        // Taken as read halfway through the round trip: about 5 ms before `received`.
        assert!(read >= reference + chrono::Duration::milliseconds(4));
        assert!(read < reference + chrono::Duration::seconds(1));
        assert!(clock.wall_offset_ms().unwrap() < -100_000_000);
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.now() - read >= chrono::Duration::milliseconds(20));
    }
}
