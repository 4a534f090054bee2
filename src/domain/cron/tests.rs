//! The findings, one table each, the evaluator against a brute-force oracle, and
//! the descriptions in plain words.

use chrono::{DateTime, TimeZone, Utc};

use crate::domain::schedule::Schedule;

mod describe;
mod oracle;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn err(expr: &str) -> String {
    match Schedule::parse(expr) {
        Ok(s) => panic!("{expr:?} was accepted as {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn next_n(expr: &str, tz: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    Schedule::parse_in(expr, tz).unwrap().upcoming(from, n)
}

#[test]
fn names_belong_only_to_their_own_fields() {
    let cases = [
        (
            "MON * * * * *",
            "names are not allowed in the second field: \"MON\"",
        ),
        (
            "0 MON * * * *",
            "names are not allowed in the minute field: \"MON\"",
        ),
        (
            "0 0 jan * * *",
            "names are not allowed in the hour field: \"jan\"",
        ),
        (
            "0 0 0 FRI * *",
            "names are not allowed in the day-of-month field: \"FRI\"",
        ),
        (
            "0 0 0 * MON *",
            "month \"MON\" is not a month name (use JAN-DEC or 1-12)",
        ),
        (
            "0 0 0 1 SAT *",
            "month \"SAT\" is not a month name (use JAN-DEC or 1-12)",
        ),
        (
            "0 0 0 * * JAN",
            "day-of-week \"JAN\" is not a day name (use SUN-SAT or 0-7)",
        ),
        (
            "0 0 0 * * MONDAY",
            "day-of-week \"MONDAY\" is not a day name (use SUN-SAT or 0-7)",
        ),
        (
            "0 0 0 * JANUARY *",
            "month \"JANUARY\" is not a month name (use JAN-DEC or 1-12)",
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(err(expr), want, "{expr}");
    }
    // Names are ASCII case-insensitive and work in ranges and lists.
    let a = next_n(
        "0 0 0 * jan-Mar,DEC mon,fri",
        "UTC",
        at(2024, 1, 1, 0, 0, 0),
        3,
    );
    let b = next_n("0 0 0 * 1-3,12 1,5", "UTC", at(2024, 1, 1, 0, 0, 0), 3);
    assert_eq!(a, b);
    // SAT-SUN reads as Saturday to Sunday.
    let a = next_n("0 0 0 * * SAT-SUN", "UTC", at(2024, 1, 1, 0, 0, 0), 4);
    assert_eq!(
        a,
        next_n("0 0 0 * * 6,0", "UTC", at(2024, 1, 1, 0, 0, 0), 4)
    );
    // A range from Sunday to Sunday is Sunday alone, not the whole week.
    assert_eq!(
        next_n("0 0 0 * * SUN-SUN", "UTC", at(2024, 1, 1, 0, 0, 0), 2),
        vec![at(2024, 1, 7, 0, 0, 0), at(2024, 1, 14, 0, 0, 0)]
    );
    // While `0-SUN`, like `0-7`, is the whole week.
    assert_eq!(
        next_n("0 0 0 * * 0-SUN", "UTC", at(2024, 1, 1, 0, 0, 0), 2),
        vec![at(2024, 1, 2, 0, 0, 0), at(2024, 1, 3, 0, 0, 0)]
    );
}

#[test]
fn only_ascii_is_read_and_lists_have_no_empty_items() {
    let cases = [
        (
            "0 0 0 * * ſun",
            "day-of-week \"ſun\" contains the non-ASCII character U+017F",
        ),
        (
            "0 0 0 * * frı",
            "contains the non-ASCII character U+0131 (only ASCII is allowed)",
        ),
        (
            "0 0 0 * * 1,,2",
            "day-of-week list \"1,,2\" has an empty item",
        ),
        ("0 1, 0 * * *", "minute list \"1,\" has an empty item"),
        ("0 ,1 0 * * *", "has an empty item"),
        (
            "0\u{a0}0 0 * * *",
            "(separate fields with ASCII spaces or tabs)",
        ),
        (
            "0 0\u{3000}0 * * *",
            "U+3000 (separate fields with ASCII spaces or tabs)",
        ),
        ("0 0 0 * *\n*", "control character"),
        ("0 0 0 * * *\0", "control character"),
    ];
    for (expr, want) in cases {
        let got = err(expr);
        assert!(got.contains(want), "{expr:?}: {got:?} lacks {want:?}");
    }
    // Tabs and repeated spaces separate fields; surrounding blanks are trimmed.
    let s = Schedule::parse(" 0\t0  0 * * * ").unwrap();
    assert_eq!(s.expr(), "0\t0  0 * * *");
}

#[test]
fn dst_gaps_fire_once_for_fixed_hours_whatever_the_number_of_values() {
    let ny = "America/New_York";
    // 2027-03-14: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    let from = at(2027, 3, 13, 12, 0, 0);
    assert_eq!(
        next_n("0 30 2 * * *", ny, from, 2),
        vec![at(2027, 3, 14, 7, 0, 0), at(2027, 3, 15, 6, 30, 0)]
    );
    assert_eq!(
        next_n("0 0,30 2 * * *", ny, from, 3),
        vec![
            at(2027, 3, 14, 7, 0, 0),
            at(2027, 3, 15, 6, 0, 0),
            at(2027, 3, 15, 6, 30, 0)
        ]
    );
    // A gap fire and a real 03:00 are one fire.
    assert_eq!(
        next_n("0 0 2,3 * * *", ny, from, 2),
        vec![at(2027, 3, 14, 7, 0, 0), at(2027, 3, 15, 6, 0, 0)]
    );
    // 2027-11-07: 02:00 EDT falls back to 01:00 EST (06:00 UTC); 01:30 fires once, in EDT.
    let from = at(2027, 11, 6, 12, 0, 0);
    assert_eq!(
        next_n("0 30 1 * * *", ny, from, 2),
        vec![at(2027, 11, 7, 5, 30, 0), at(2027, 11, 8, 6, 30, 0)]
    );
    assert_eq!(
        next_n("0 0,30 1 * * *", ny, from, 3),
        vec![
            at(2027, 11, 7, 5, 0, 0),
            at(2027, 11, 7, 5, 30, 0),
            at(2027, 11, 8, 6, 0, 0)
        ]
    );
}

#[test]
fn dst_follows_the_wall_clock_when_the_hour_is_a_wildcard_range_or_step() {
    let ny = "America/New_York";
    // Fall back: 01:00 and 01:15 happen in EDT and again in EST.
    assert_eq!(
        next_n("0 */15 * * * *", ny, at(2027, 11, 7, 4, 50, 0), 6),
        vec![
            at(2027, 11, 7, 5, 0, 0),
            at(2027, 11, 7, 5, 15, 0),
            at(2027, 11, 7, 5, 30, 0),
            at(2027, 11, 7, 5, 45, 0),
            at(2027, 11, 7, 6, 0, 0),
            at(2027, 11, 7, 6, 15, 0),
        ]
    );
    assert_eq!(
        next_n("0 30 1-2 * * *", ny, at(2027, 11, 7, 0, 0, 0), 3),
        vec![
            at(2027, 11, 7, 5, 30, 0),
            at(2027, 11, 7, 6, 30, 0),
            at(2027, 11, 7, 7, 30, 0)
        ]
    );
    // Spring forward: 02:00 and 02:30 do not happen.
    assert_eq!(
        next_n("0 0,30 */1 * * *", ny, at(2027, 3, 14, 6, 0, 0), 3),
        vec![
            at(2027, 3, 14, 6, 30, 0),
            at(2027, 3, 14, 7, 0, 0),
            at(2027, 3, 14, 7, 30, 0)
        ]
    );
    assert_eq!(
        next_n("0 30 2-3 * * *", ny, at(2027, 3, 14, 0, 0, 0), 2),
        vec![at(2027, 3, 14, 7, 30, 0), at(2027, 3, 15, 6, 30, 0)]
    );
}

#[test]
fn day_fields_combine_as_crontab_does() {
    // 2024-01: Mondays are the 1st, 8th, 15th, 22nd and 29th.
    let from = at(2023, 12, 31, 0, 0, 0);
    let cases = [
        // A field starting with `*` or `?`: a day matches both.
        ("0 0 0 */2 * MON", vec![(1, 1), (1, 15), (1, 29)]),
        ("0 0 0 ? * MON", vec![(1, 1), (1, 8), (1, 15)]),
        ("0 0 0 1-31/2 * ?", vec![(1, 1), (1, 3), (1, 5)]),
        // Both restricted: either.
        ("0 0 0 2 * MON", vec![(1, 1), (1, 2), (1, 8)]),
        (
            "0 0 0 L * MON",
            vec![(1, 1), (1, 8), (1, 15), (1, 22), (1, 29), (1, 31)],
        ),
    ];
    for (expr, days) in cases {
        let want: Vec<_> = days.iter().map(|&(m, d)| at(2024, m, d, 0, 0, 0)).collect();
        assert_eq!(next_n(expr, "UTC", from, want.len()), want, "{expr}");
    }
}

#[test]
fn quartz_day_forms() {
    let from = at(2024, 1, 1, 0, 0, 0);
    let days = |expr: &str, n| -> Vec<(u32, u32)> {
        use chrono::Datelike;
        next_n(expr, "UTC", from, n)
            .iter()
            .map(|d| (d.month(), d.day()))
            .collect()
    };
    assert_eq!(days("0 0 0 L * ?", 3), [(1, 31), (2, 29), (3, 31)]);
    assert_eq!(days("0 0 0 L-2 * ?", 2), [(1, 29), (2, 27)]);
    // LW: the last weekday. 2024-03-31 is a Sunday, 2024-08-31 a Saturday.
    assert_eq!(days("0 0 0 LW 3,8 ?", 2), [(3, 29), (8, 30)]);
    // 15W: 2024-06-15 is a Saturday (Friday 14th), 2024-09-15 a Sunday (Monday 16th);
    // 1W on Saturday 2024-06-01 stays in June (Monday 3rd).
    assert_eq!(days("0 0 0 15W 6,9 ?", 2), [(6, 14), (9, 16)]);
    assert_eq!(days("0 0 0 1W 6 ?", 1), [(6, 3)]);
    // The second Friday and the last Friday.
    assert_eq!(days("0 0 0 ? 1,2 FRI#2", 2), [(1, 12), (2, 9)]);
    assert_eq!(days("0 0 0 ? 1,2 5L", 2), [(1, 26), (2, 23)]);
    // `a/n` is `a-max/n`.
    assert_eq!(
        next_n("10/20 * * * * *", "UTC", from, 3),
        vec![
            at(2024, 1, 1, 0, 0, 10),
            at(2024, 1, 1, 0, 0, 30),
            at(2024, 1, 1, 0, 0, 50)
        ]
    );
}

#[test]
fn nicknames_are_crontab_s() {
    let from = at(2024, 1, 1, 0, 30, 0);
    let cases = [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ];
    for (nick, fields) in cases {
        assert_eq!(
            next_n(nick, "UTC", from, 3),
            next_n(fields, "UTC", from, 3),
            "{nick}"
        );
    }
    assert_eq!(Schedule::parse("@hourly").unwrap().expr(), "@hourly");
    assert!(err("@reboot").starts_with("@reboot is not a schedule: "));
}

#[test]
fn messages_name_the_part_in_the_user_s_words_and_stay_short() {
    let cases = [
        ("0 30-10 * * * *", "minute range \"30-10\" is reversed"),
        ("0 0 0 * 13 *", "month \"13\" is out of range 1-12"),
        ("*/0 * * * * *", "second step \"*/0\" must be at least 1"),
        (
            "*/61 * * * * *",
            "second step \"*/61\" is larger than the field's span (60)",
        ),
        ("0 0 */x * * *", "hour step \"*/x\" is not a number"),
        (
            "? * * * * *",
            "\"?\" is only allowed in the day fields, not in the second field",
        ),
        (
            "0 0 0 L-31 * ?",
            "day-of-month \"L-31\" must be L-1 to L-30",
        ),
        (
            "0 0 0 ? * MON#6",
            "day-of-week \"MON#6\" must end in #1 to #5",
        ),
        ("0 0 0 30 2 *", "the schedule never fires"),
        ("0 0 0 31 4,6,9,11 *", "the schedule never fires"),
        ("0 0 0 ? 2 MON#5,TUE#5,WED#5,THU#5,FRI#5 ", ""),
    ];
    for (expr, want) in cases {
        if want.is_empty() {
            Schedule::parse(expr).unwrap();
            continue;
        }
        let got = err(expr);
        assert!(got.contains(want), "{expr:?}: {got:?} lacks {want:?}");
    }
    let long_item = format!("0 0 0 * * {}", "1".repeat(200));
    let got = err(&long_item);
    assert!(got.len() < 150, "{got}");
    let huge = "1 ".repeat(30_000);
    let got = err(&huge);
    assert_eq!(got, "the schedule is longer than 256 characters");
}

#[test]
fn sparse_and_dense_schedules_answer_without_scanning() {
    let s = Schedule::parse("0 0 0 29 2 *").unwrap();
    assert_eq!(
        s.next_after(at(2096, 3, 1, 0, 0, 0)),
        Some(at(2104, 2, 29, 0, 0, 0))
    );
    assert_eq!(
        s.prev_at_or_before(at(2104, 2, 28, 0, 0, 0)),
        Some(at(2096, 2, 29, 0, 0, 0))
    );
    let s = Schedule::parse("* * * * * *").unwrap();
    let t = at(2024, 12, 31, 23, 59, 59);
    assert_eq!(s.next_after(t), Some(at(2025, 1, 1, 0, 0, 0)));
    assert_eq!(s.prev_at_or_before(t), Some(t));
}
