//! Cron schedules: parsing (5 or 6 fields, seconds first) and next-instant arithmetic.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::cron::{self, Cron};

/// A validated cron schedule with the time zone it is evaluated in.
#[derive(Clone)]
pub struct Schedule {
    /// The expression as the user wrote it (trimmed), stored verbatim.
    expr: String,
    /// The zone the expression is evaluated in; instants are UTC everywhere else.
    tz: Tz,
    /// The parsed expression; none for a stored expression this version refuses (see
    /// [`Schedule::stored`]): such a schedule has no instants.
    cron: Option<Cron>,
}

/// The description of a stored expression this version refuses.
pub const NOT_PARSED: &str =
    "no instants: this version does not accept the stored expression; give the job a new schedule";

/// Why an expression or zone was rejected, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

impl Schedule {
    /// Parses `expr` (5 or 6 fields, or a nickname) evaluated in UTC.
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        Self::parse_in(expr, "UTC")
    }

    /// Parses `expr` (5 or 6 fields, or a nickname) evaluated in the IANA zone `tz`.
    pub fn parse_in(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        let tz = Tz::from_str(tz).map_err(|_| {
            let shown: String = tz.chars().take(80).collect();
            ScheduleError(format!(
                "unknown time zone {shown:?} (use an IANA name such as Europe/Paris)"
            ))
        })?;
        let cron = cron::parse(expr).map_err(|e| ScheduleError(e.0))?;
        Ok(Self {
            expr: expr.trim_matches([' ', '\t']).to_owned(),
            tz,
            cron: Some(cron),
        })
    }

    /// A schedule read from the store. An expression an earlier version accepted and this
    /// one refuses is kept verbatim with no instants, so its job still reads (and can be
    /// given a new schedule) rather than making every answer that lists it fail; the
    /// zone must still be known.
    pub fn stored(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        match (Self::parse_in(expr, tz), Tz::from_str(tz)) {
            (Err(_), Ok(tz)) => Ok(Self {
                expr: expr.to_owned(),
                tz,
                cron: None,
            }),
            (parsed, _) => parsed,
        }
    }

    /// The expression as stored.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone name as stored.
    pub fn tz_name(&self) -> &str {
        self.tz.name()
    }

    /// The schedule in plain words, with the zone unless it is UTC: "every 10 seconds",
    /// "at 09:00 on weekdays, Europe/Paris".
    pub fn describe(&self) -> String {
        let Some(cron) = &self.cron else {
            return NOT_PARSED.to_owned();
        };
        let words = cron.describe();
        if self.tz == Tz::UTC {
            words
        } else {
            format!("{words}, {}", self.tz.name())
        }
    }

    /// The first instant strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Instants are whole seconds, so strictly after `t` is strictly after its second.
        let next = self.cron.as_ref()?.next_after(&self.tz, t.timestamp())?;
        DateTime::from_timestamp(next, 0)
    }

    /// The first instant at or after `t`.
    pub fn next_from(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Round a sub-second start up so the answer is never before `t`.
        let whole = t
            .timestamp()
            .saturating_add(i64::from(t.timestamp_subsec_nanos() > 0));
        let next = self
            .cron
            .as_ref()?
            .next_after(&self.tz, whole.checked_sub(1)?)?;
        DateTime::from_timestamp(next, 0)
    }

    /// The last instant at or before `t`.
    pub fn prev_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let prev = self
            .cron
            .as_ref()?
            .prev_at_or_before(&self.tz, t.timestamp())?;
        DateTime::from_timestamp(prev, 0)
    }

    /// The next `n` instants strictly after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

/// Two schedules are the same when they read the same expression in the same zone.
impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr && self.tz == other.tz
    }
}

impl Eq for Schedule {}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.expr, self.tz.name())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn seed_example_fires_at_second_31_of_minutes_10_to_15_of_hour_1_on_weekdays() {
        let s = Schedule::parse("31 10-15 1 * * MON-FRI").unwrap();
        // 2024-01-01 is a Monday. From midnight the first fire is 01:10:31.
        let from = at(2024, 1, 1, 0, 0, 0);
        let got = s.upcoming(from, 7);
        let want = vec![
            at(2024, 1, 1, 1, 10, 31),
            at(2024, 1, 1, 1, 11, 31),
            at(2024, 1, 1, 1, 12, 31),
            at(2024, 1, 1, 1, 13, 31),
            at(2024, 1, 1, 1, 14, 31),
            at(2024, 1, 1, 1, 15, 31),
            // Then Tuesday.
            at(2024, 1, 2, 1, 10, 31),
        ];
        assert_eq!(got, want);
        // Friday 2024-01-05 after its last fire: next is Monday 2024-01-08, skipping the weekend.
        assert_eq!(
            s.next_after(at(2024, 1, 5, 1, 15, 31)),
            Some(at(2024, 1, 8, 1, 10, 31))
        );
        // Exactly on an instant, `next_after` moves on and `next_from` keeps it.
        assert_eq!(
            s.next_after(at(2024, 1, 1, 1, 10, 31)),
            Some(at(2024, 1, 1, 1, 11, 31))
        );
        assert_eq!(
            s.next_from(at(2024, 1, 1, 1, 10, 31)),
            Some(at(2024, 1, 1, 1, 10, 31))
        );
    }

    #[test]
    fn sub_second_starting_points_never_give_an_earlier_instant() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let t = at(2024, 5, 1, 10, 0, 10) + chrono::Duration::milliseconds(523);
        assert_eq!(s.next_from(t), Some(at(2024, 5, 1, 10, 0, 11)));
        assert_eq!(s.next_after(t), Some(at(2024, 5, 1, 10, 0, 11)));
        assert_eq!(s.prev_at_or_before(t), Some(at(2024, 5, 1, 10, 0, 10)));
    }

    #[test]
    fn zero_and_seven_both_mean_sunday() {
        // 2024-01-06 is a Saturday, 2024-01-07 a Sunday.
        let from = at(2024, 1, 6, 12, 0, 0);
        for expr in ["0 0 12 * * 0", "0 0 12 * * 7", "0 0 12 * * SUN"] {
            let s = Schedule::parse(expr).unwrap();
            assert_eq!(s.next_after(from), Some(at(2024, 1, 7, 12, 0, 0)), "{expr}");
        }
        let s = Schedule::parse("0 0 12 * * 5-7").unwrap();
        assert_eq!(
            s.upcoming(at(2024, 1, 4, 13, 0, 0), 3),
            vec![
                at(2024, 1, 5, 12, 0, 0),
                at(2024, 1, 6, 12, 0, 0),
                at(2024, 1, 7, 12, 0, 0)
            ]
        );
    }

    #[test]
    fn five_fields_mean_second_zero_and_six_fields_take_seconds_first() {
        let five = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(
            five.upcoming(at(2024, 3, 10, 8, 1, 0), 2),
            vec![at(2024, 3, 10, 8, 15, 0), at(2024, 3, 10, 8, 30, 0)]
        );
        let six = Schedule::parse("*/20 * * * * *").unwrap();
        assert_eq!(
            six.upcoming(at(2024, 3, 10, 8, 1, 5), 3),
            vec![
                at(2024, 3, 10, 8, 1, 20),
                at(2024, 3, 10, 8, 1, 40),
                at(2024, 3, 10, 8, 2, 0)
            ]
        );
        let lists = Schedule::parse("0 5,35 9 1 JAN,jul *").unwrap();
        assert_eq!(
            lists.upcoming(at(2024, 2, 1, 0, 0, 0), 3),
            vec![
                at(2024, 7, 1, 9, 5, 0),
                at(2024, 7, 1, 9, 35, 0),
                at(2025, 1, 1, 9, 5, 0)
            ]
        );
    }

    #[test]
    fn time_zones_are_dst_correct() {
        // 02:30 local does not exist on 2024-03-10 in New York; 09:00 local is 13:00 UTC after the change.
        let s = Schedule::parse_in("0 0 9 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.upcoming(at(2024, 3, 9, 0, 0, 0), 2),
            vec![at(2024, 3, 9, 14, 0, 0), at(2024, 3, 10, 13, 0, 0)]
        );
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let cases = [
            ("", "expected 5 fields"),
            ("* * * *", "got 4"),
            ("* * * * * * *", "got 7"),
            ("61 * * * * *", "second \"61\" is out of range 0-59"),
            ("* 60 * * * *", "minute \"60\" is out of range 0-59"),
            ("* * 24 * * *", "hour \"24\" is out of range 0-23"),
            ("* * * 32 * *", "day-of-month \"32\" is out of range 1-31"),
            ("* * * * 13 *", "month \"13\" is out of range 1-12"),
            ("* * * * * 8", "day-of-week \"8\" is out of range 0-7"),
            (
                "* * * * * FUNDAY",
                "day-of-week \"FUNDAY\" is not a day name (use SUN-SAT or 0-7)",
            ),
            ("0 0 0 30 2 *", "never fires"),
            ("@reboot", "@reboot is not a schedule: "),
            ("@often", "unknown nickname \"@often\""),
        ];
        for (expr, want) in cases {
            let err = Schedule::parse(expr).unwrap_err().to_string();
            assert!(err.contains(want), "{expr:?}: {err:?} lacks {want:?}");
        }
        let err = Schedule::parse_in("* * * * *", "Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown time zone"), "{err}");
    }
}
