//! Evaluation: the next or previous instant, in whole seconds, in a time zone.
//!
//! Dates are walked in local time, skipping months and days that cannot match. Each
//! matching date is cut into parts of constant UTC offset; within a part local time and
//! UTC move together, so the first (or last) matching time of a part is found from the
//! bit sets directly. DST follows cronie: with a fixed hour, times skipped by a
//! spring-forward change fire once when the gap ends and times repeated by a fall-back
//! change fire at their first occurrence; otherwise the wall clock rules, so skipped times
//! never occur and repeated ones occur twice.

use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

use super::{Cron, days_in};

/// How far the search looks before giving up; the calendar repeats every 400 years.
const SEARCH_YEARS: i32 = 401;
const DAY: i64 = 86_400;

/// A part of one date's local time, in the order of the instants it maps to.
enum Part {
    /// Local times `[lo, hi)` that map to UTC with `offset`.
    Span { lo: i64, hi: i64, offset: i64 },
    /// Local times `[lo, hi)` skipped by a spring-forward change, all firing at `at`.
    Gap { lo: i64, hi: i64, at: i64 },
}

impl Cron {
    /// The first instant (Unix seconds) strictly after `t` in zone `tz`.
    pub fn next_after(&self, tz: &Tz, t: i64) -> Option<i64> {
        let mut date = local_date(tz, t)?.pred_opt()?;
        let limit = date.year().checked_add(SEARCH_YEARS)?;
        while date.year() <= limit {
            if !self.month_matches(date) {
                date = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?
                    .checked_add_months(chrono::Months::new(1))?;
                continue;
            }
            if self.day_matches(date)
                && let Some(found) = self.first_on(tz, date, t)
            {
                // A fold across midnight can put the next date's first times earlier.
                let next = date
                    .succ_opt()
                    .filter(|d| self.month_matches(*d) && self.day_matches(*d));
                let other = next.and_then(|d| self.first_on(tz, d, t));
                return Some(other.map_or(found, |o| o.min(found)));
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The last instant (Unix seconds) at or before `t` in zone `tz`.
    pub fn prev_at_or_before(&self, tz: &Tz, t: i64) -> Option<i64> {
        let mut date = local_date(tz, t)?.succ_opt()?;
        let limit = date.year().checked_sub(SEARCH_YEARS)?;
        while date.year() >= limit {
            if !self.month_matches(date) {
                date = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?.pred_opt()?;
                continue;
            }
            if self.day_matches(date)
                && let Some(found) = self.last_on(tz, date, t)
            {
                let prev = date
                    .pred_opt()
                    .filter(|d| self.month_matches(*d) && self.day_matches(*d));
                let other = prev.and_then(|d| self.last_on(tz, d, t));
                return Some(other.map_or(found, |o| o.max(found)));
            }
            date = date.pred_opt()?;
        }
        None
    }

    fn month_matches(&self, date: NaiveDate) -> bool {
        self.months & (1 << date.month()) != 0
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let len = days_in(date.month(), date.leap_year());
        let wd = date.weekday().num_days_from_sunday();
        self.days.matches(date.day(), len, wd)
    }

    /// The first instant after `t` among the date's matching times.
    fn first_on(&self, tz: &Tz, date: NaiveDate, t: i64) -> Option<i64> {
        let start = day_start(date)?;
        self.parts(tz, date)?.iter().find_map(|part| match *part {
            Part::Span { lo, hi, offset } => {
                let from = lo.max(t + offset + 1);
                Some(start + self.first_time(from - start, hi - start)? - offset)
            }
            Part::Gap { lo, hi, at } => {
                (at > t && self.first_time(lo - start, hi - start).is_some()).then_some(at)
            }
        })
    }

    /// The last instant at or before `t` among the date's matching times.
    fn last_on(&self, tz: &Tz, date: NaiveDate, t: i64) -> Option<i64> {
        let start = day_start(date)?;
        self.parts(tz, date)?
            .iter()
            .rev()
            .find_map(|part| match *part {
                Part::Span { lo, hi, offset } => {
                    let until = hi.min(t + offset + 1);
                    Some(start + self.last_time(lo - start, until - start)? - offset)
                }
                Part::Gap { lo, hi, at } => {
                    (at <= t && self.first_time(lo - start, hi - start).is_some()).then_some(at)
                }
            })
    }

    /// Cuts the date's local time at its UTC offset change, applying the DST rule.
    fn parts(&self, tz: &Tz, date: NaiveDate) -> Option<Vec<Part>> {
        let start = day_start(date)?;
        let end = start + DAY;
        // Every instant whose local date is `date`, for offsets from -12 h to +14 h.
        let (lo, hi) = (start - 15 * 3600, end + 13 * 3600);
        // Offsets change far less often than every 52 hours, so one change at most is cut.
        let (before, after) = (offset_at(tz, lo), offset_at(tz, hi));
        let span = |lo: i64, hi: i64, offset| Part::Span {
            lo: lo.max(start),
            hi: hi.min(end),
            offset,
        };
        if before == after {
            return Some(vec![span(start, end, before)]);
        }
        let change = first_with_offset(tz, lo, hi, after);
        let (old_wall, new_wall) = (change + before, change + after);
        let mut parts = vec![span(start, old_wall, before)];
        if after > before && self.fixed_hour {
            parts.push(Part::Gap {
                lo: old_wall.max(start),
                hi: new_wall.min(end),
                at: change,
            });
        }
        // With a fixed hour, repeated times fire at their first occurrence only.
        let second_from = if after < before && self.fixed_hour {
            old_wall
        } else {
            new_wall
        };
        parts.push(span(second_from, end, after));
        parts.retain(|p| match *p {
            Part::Span { lo, hi, .. } | Part::Gap { lo, hi, .. } => lo < hi,
        });
        Some(parts)
    }

    /// The first matching time of day (seconds) in `[from, until)`.
    fn first_time(&self, from: i64, until: i64) -> Option<i64> {
        if from >= until {
            return None;
        }
        let from = u32::try_from(from.max(0)).ok()?;
        let (mut h, mut m, mut s) = (from / 3600, from / 60 % 60, from % 60);
        loop {
            let h2 = next_bit(u64::from(self.hours), h)?;
            if h2 != h {
                (h, m, s) = (h2, 0, 0);
            }
            let Some(m2) = next_bit(self.minutes, m) else {
                (h, m, s) = (h + 1, 0, 0);
                continue;
            };
            if m2 != m {
                (m, s) = (m2, 0);
            }
            let Some(s2) = next_bit(self.seconds, s) else {
                (m, s) = (m + 1, 0);
                continue;
            };
            let at = i64::from(h * 3600 + m * 60 + s2);
            return (at < until).then_some(at);
        }
    }

    /// The last matching time of day (seconds) in `[from, until)`.
    fn last_time(&self, from: i64, until: i64) -> Option<i64> {
        if from >= until || until <= 0 {
            return None;
        }
        let last = i32::try_from((until - 1).min(DAY - 1)).ok()?;
        let (mut h, mut m, mut s) = (last / 3600, last / 60 % 60, last % 60);
        loop {
            if h < 0 {
                return None;
            }
            let h2 = prev_bit(u64::from(self.hours), h)?;
            if h2 != h {
                (h, m, s) = (h2, 59, 59);
            }
            if m < 0 {
                (h, m, s) = (h - 1, 59, 59);
                continue;
            }
            let Some(m2) = prev_bit(self.minutes, m) else {
                (h, m, s) = (h - 1, 59, 59);
                continue;
            };
            if m2 != m {
                (m, s) = (m2, 59);
            }
            let Some(s2) = prev_bit(self.seconds, s) else {
                (m, s) = (m - 1, 59);
                continue;
            };
            let at = i64::from(h * 3600 + m * 60 + s2);
            return (at >= from).then_some(at);
        }
    }
}

/// The lowest set bit at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let rest = bits.checked_shr(from)?.checked_shl(from)?;
    (rest != 0).then(|| rest.trailing_zeros())
}

/// The highest set bit at or below `from` (which is non-negative when bits are left).
fn prev_bit(bits: u64, from: i32) -> Option<i32> {
    let from = u32::try_from(from).ok()?;
    let mask = if from >= 63 {
        u64::MAX
    } else {
        (1u64 << (from + 1)) - 1
    };
    let rest = bits & mask;
    (rest != 0).then(|| 63 - rest.leading_zeros() as i32)
}

/// The UTC offset (seconds) in effect at instant `t`.
fn offset_at(tz: &Tz, t: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

/// The first instant in `(lo, hi]` whose offset is `target`, the offset at `hi`.
fn first_with_offset(tz: &Tz, mut lo: i64, mut hi: i64, target: i64) -> i64 {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid) == target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The local date at instant `t`.
fn local_date(tz: &Tz, t: i64) -> Option<NaiveDate> {
    let utc = chrono::DateTime::from_timestamp(t.checked_add(offset_at(tz, t))?, 0)?;
    Some(utc.date_naive())
}

/// The date's midnight as local seconds (the Unix timestamp it would have in UTC).
fn day_start(date: NaiveDate) -> Option<i64> {
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}
