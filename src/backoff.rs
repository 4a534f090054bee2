//! Exponential backoff with jitter, for store retries and call retries alike.

use std::time::Duration;

use rand::Rng;

/// Doubling delays from `initial` up to `max`, each drawn from the upper half of its step.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The first delay.
    initial: Duration,
    /// The cap.
    max: Duration,
    /// Delays handed out since the last reset.
    step: u32,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            step: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = delay(self.initial, self.max, self.step);
        self.step = self.step.saturating_add(1);
        d
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.step = 0;
    }
}

/// The delay before retry number `step` (0-based): `initial * 2^step` capped at `max`,
/// with jitter drawn uniformly from its upper half.
pub fn delay(initial: Duration, max: Duration, step: u32) -> Duration {
    let full = initial
        .saturating_mul(1u32.checked_shl(step.min(31)).unwrap_or(u32::MAX))
        .min(max);
    let ms = full.as_millis() as u64;
    if ms < 2 {
        return full;
    }
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..100 {
            let d0 = delay(i, m, 0).as_millis();
            assert!((50..=100).contains(&d0), "{d0}");
            let d2 = delay(i, m, 2).as_millis();
            assert!((200..=400).contains(&d2), "{d2}");
            let d9 = delay(i, m, 9).as_millis();
            assert!((500..=1000).contains(&d9), "{d9}");
            assert!(delay(i, m, 60).as_millis() <= 1000);
        }
        let mut b = Backoff::new(i, m);
        b.next_delay();
        b.next_delay();
        b.reset();
        assert!(b.next_delay() <= i);
    }
}
