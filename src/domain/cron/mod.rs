//! The cron dialect: crontab(5) with a seconds field and Quartz's `L`, `W` and `#`.
//!
//! Parsing turns each field into a bit set; evaluation walks local dates in a time zone,
//! skipping whole months and days that cannot match, and resolves each day's times against
//! the zone's offsets once per day. Descriptions in plain words are read from the same bit
//! sets.

mod describe;
mod eval;
mod parse;

#[cfg(test)]
mod tests;

pub use parse::parse;

/// A parsed cron expression: one bit set per field plus the day rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: Days,
    /// Bits 1..=12.
    months: u16,
    /// The hour field is single values only: DST gaps and folds fire once (see `eval`).
    fixed_hour: bool,
}

/// The two day fields and how they combine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Days {
    /// Day of month, bits 1..=31.
    dom: u32,
    /// `L` and `L-n`: bit n means n days before the month's last day.
    before_last: u32,
    /// `nW`: bit n means the weekday nearest the nth.
    nearest_weekday: u32,
    /// `LW`: the month's last weekday.
    last_weekday: bool,
    /// Day of week, bits 0..=6 (Sunday is 0).
    dow: u8,
    /// `n#k`: for weekday n, bit k means its kth occurrence in the month.
    nth: [u8; 7],
    /// `nL`: the month's last such weekday.
    last_dow: u8,
    /// One of the fields began with `*` or `?`: a day must match both (crontab(5)).
    both: bool,
}

/// Why an expression was refused; the message quotes the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl std::fmt::Display for CronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Days {
    /// Whether day `d` of a month of `len` days, falling on weekday `wd`, matches.
    fn matches(&self, d: u32, len: u32, wd: u32) -> bool {
        let in_month = self.dom & (1 << d) != 0
            || (len - d < 31 && self.before_last & (1 << (len - d)) != 0)
            || (self.nearest_weekday != 0 && self.is_nearest_weekday(d, len, wd))
            || (self.last_weekday && d == last_weekday(len, (wd + 7 - (d - 1) % 7) % 7));
        let in_week = self.dow & (1 << wd) != 0
            || self.nth[wd as usize] & (1 << ((d - 1) / 7 + 1)) != 0
            || (self.last_dow & (1 << wd) != 0 && d + 7 > len);
        if self.both {
            in_month && in_week
        } else {
            in_month || in_week
        }
    }

    /// Whether `d` is the weekday nearest some `nW` day, never leaving the month.
    fn is_nearest_weekday(&self, d: u32, len: u32, wd: u32) -> bool {
        if wd == 0 || wd == 6 {
            return false;
        }
        // The nW days that could move to `d`: itself, or a weekend day next to it.
        let candidates = [
            (d, 0),
            (d + 1, 1),
            (d.wrapping_sub(1), -1),
            (d + 2, 2),
            (d.wrapping_sub(2), -2),
        ];
        candidates.iter().any(|&(n, delta): &(u32, i32)| {
            if n == 0 || n > len || n > 31 || self.nearest_weekday & (1 << n) == 0 {
                return false;
            }
            let nwd = (wd as i32 + delta).rem_euclid(7) as u32;
            nearest_weekday(n, len, nwd) == d
        })
    }

    /// Whether the rules can match any day of some month in `months`, over every month shape.
    fn can_match(&self, months: u16) -> bool {
        (1..=12u32).filter(|m| months & (1 << m) != 0).any(|m| {
            let lens: &[u32] = if m == 2 {
                &[28, 29]
            } else {
                &[days_in(m, false)]
            };
            lens.iter().any(|&len| {
                (0..7).any(|wd1| (1..=len).any(|d| self.matches(d, len, (wd1 + d - 1) % 7)))
            })
        })
    }
}

/// The day `nW` names in a month of `len` days whose nth falls on weekday `wd`.
fn nearest_weekday(n: u32, len: u32, wd: u32) -> u32 {
    match wd {
        6 if n == 1 => 3,
        6 => n - 1,
        0 if n == len => n - 2,
        0 => n + 1,
        _ => n,
    }
}

/// The last weekday of a month of `len` days whose first day is weekday `wd1`.
fn last_weekday(len: u32, wd1: u32) -> u32 {
    match (wd1 + len - 1) % 7 {
        6 => len - 1,
        0 => len - 2,
        _ => len,
    }
}

/// Days in month `m` (1..=12).
fn days_in(m: u32, leap: bool) -> u32 {
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
