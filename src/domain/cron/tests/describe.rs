//! Descriptions in plain words: a table of exact wordings, then every generated expression
//! and every combination of bit sets described without a panic, briefly.

use proptest::prelude::*;

use super::oracle;
use crate::domain::cron::{Cron, Days};
use crate::domain::schedule::Schedule;

fn describe(expr: &str) -> String {
    Schedule::parse(expr)
        .unwrap_or_else(|e| panic!("{expr:?} refused: {e}"))
        .describe()
}

#[test]
fn each_feature_reads_as_plain_words() {
    let cases = [
        // Steps over the whole day.
        ("* * * * * *", "every second"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("0 * * * * *", "every minute"),
        ("* * * * *", "every minute"),
        ("0 */5 * * * *", "every 5 minutes"),
        ("0 0 * * * *", "every hour"),
        ("0 0 */2 * * *", "every 2 hours"),
        ("0 0 0,6,12,18 * * *", "every 6 hours"),
        ("0 30 * * * *", "every hour at minute 30"),
        ("15 30 * * * *", "every hour at minute 30, second 15"),
        ("30 */5 * * * *", "every 5 minutes at second 30"),
        ("5/10 * * * * *", "every 10 seconds starting at second 5"),
        ("0 5/10 * * * *", "every 10 minutes starting at minute 5"),
        // Steps within a window.
        ("0 0 1/2 * * *", "every 2 hours from 01:00 to 23:00"),
        ("0 0 */5 * * *", "every 5 hours from 00:00 to 20:00"),
        ("0 0 9-17 * * *", "every hour from 09:00 to 17:00"),
        ("0 15 9-17 * * *", "every hour from 09:15 to 17:15"),
        (
            "0 */15 9-17 * * MON-FRI",
            "every 15 minutes from 09:00 to 17:45, on weekdays",
        ),
        ("* * 9-17 * * *", "every second from 09:00:00 to 17:59:59"),
        (
            "*/10 15 9 * * *",
            "every 10 seconds from 09:15:00 to 09:15:50",
        ),
        (
            "31 10-15 1 * * MON-FRI",
            "every minute from 01:10:31 to 01:15:31, on weekdays",
        ),
        // Clock times.
        ("0 0 9 * * MON-FRI", "at 09:00 on weekdays"),
        ("30 15 9 * * *", "at 09:15:30 every day"),
        ("0 0 9,17 * * *", "at 09:00 and 17:00 every day"),
        ("0 0 */12 * * *", "at 00:00 and 12:00 every day"),
        (
            "0 0,30 9,12,17 * * *",
            "at 09:00, 09:30, 12:00, 12:30, 17:00 and 17:30 every day",
        ),
        // Irregular times, field by field.
        ("0,7,30 * * * * *", "at seconds 0, 7 and 30 of every minute"),
        ("0 10-15 * * * *", "at minutes 10 to 15 of every hour"),
        (
            "*/7 * * * * *",
            "at seconds 0, 7, 14, ..., 56 of every minute",
        ),
        (
            "0 */7 * * * *",
            "at minutes 0, 7, 14, ..., 56 of every hour",
        ),
        ("0 * 9,17 * * *", "every minute during hours 9 and 17"),
        (
            "0 0,30 9,12,17,20 * * *",
            "every 30 minutes during hours 9, 12, 17 and 20",
        ),
        (
            "31 10-15 1-3 * * *",
            "at second 31 of minutes 10 to 15 of hours 1 to 3",
        ),
        (
            "*/10 10-15 */2 * * *",
            "every 10 seconds during minutes 10 to 15 of every 2nd hour",
        ),
        (
            "0 30 1,9,12,17,20-23 * * *",
            "at minute 30 of hours 1, 9, 12, 17 and 20 to 23",
        ),
        // Days of the month.
        (
            "0 0 9 1,15 * *",
            "at 09:00 on the 1st and 15th of the month",
        ),
        (
            "0 0 0 1,2,3,5,8,13,21 * *",
            "at 00:00 on the 1st to 3rd, 5th, 8th, 13th and 21st of the month",
        ),
        ("0 0 9 L * ?", "at 09:00 on the last day of the month"),
        (
            "0 0 9 L-2 * ?",
            "at 09:00 on the 3rd-to-last day of the month",
        ),
        (
            "0 0 9 L,L-1 * ?",
            "at 09:00 on the last and 2nd-to-last days of the month",
        ),
        ("0 0 9 LW * ?", "at 09:00 on the last weekday of the month"),
        (
            "0 0 9 15W * ?",
            "at 09:00 on the weekday nearest the 15th of the month",
        ),
        (
            "0 0 0 1W,15W * ?",
            "at 00:00 on the weekdays nearest the 1st and 15th of the month",
        ),
        // Days of the week.
        ("0 0 9 * * SAT,SUN", "at 09:00 on weekends"),
        ("0 0 9 * * SAT-SUN", "at 09:00 on weekends"),
        ("0 0 0 * * MON-THU", "at 00:00 from Monday to Thursday"),
        ("0 0 0 * * FRI-7", "at 00:00 from Friday to Sunday"),
        (
            "0 0 0 * * MON,WED,FRI",
            "at 00:00 on Mondays, Wednesdays and Fridays",
        ),
        ("0 0 9 ? * 5#3", "at 09:00 on the 3rd Friday of the month"),
        (
            "0 0 0 ? * MON#1,MON#3",
            "at 00:00 on the 1st and 3rd Mondays of the month",
        ),
        ("0 0 9 ? * 5L", "at 09:00 on the last Friday of the month"),
        // Both day fields: either when both are restricted, both when one starts with `*`.
        (
            "0 0 9 1 * MON",
            "at 09:00 on the 1st of the month or on Mondays",
        ),
        (
            "0 0 0 L * MON",
            "at 00:00 on the last day of the month or on Mondays",
        ),
        (
            "0 0 9 */2 * MON",
            "at 09:00 on Mondays, but only on the 1st, 3rd, 5th, ..., 31st of the month",
        ),
        ("0 0 0 1-31 * MON", "at 00:00 every day"),
        ("0 0 0 1 * 1-7", "at 00:00 every day"),
        // Months.
        ("0 0 9 * 1,7 *", "at 09:00 every day in January and July"),
        ("0 0 9 * 3-10 *", "at 09:00 every day from March to October"),
        ("0 0 9 ? 1 5#3", "at 09:00 on the 3rd Friday of January"),
        (
            "0 0 0 1 */2 *",
            "at 00:00 on the 1st of January, March, May, ..., November",
        ),
        (
            "0 0 9 L 3-10 ?",
            "at 09:00 on the last day of the month from March to October",
        ),
        ("0 0 * * 1 *", "every hour in January"),
        // Nicknames read like their fields.
        ("@yearly", "at 00:00 on the 1st of January"),
        ("@annually", "at 00:00 on the 1st of January"),
        ("@monthly", "at 00:00 on the 1st of the month"),
        ("@weekly", "at 00:00 on Sundays"),
        ("@daily", "at 00:00 every day"),
        ("@midnight", "at 00:00 every day"),
        ("@hourly", "every hour"),
    ];
    let mut wrong = Vec::new();
    for (expr, want) in cases {
        let got = describe(expr);
        if got != want {
            wrong.push(format!("{expr:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_zone_follows_unless_it_is_utc() {
    let paris = Schedule::parse_in("0 0 9 * * MON-FRI", "Europe/Paris").unwrap();
    assert_eq!(paris.describe(), "at 09:00 on weekdays, Europe/Paris");
    let utc = Schedule::parse_in("*/10 * * * * *", "UTC").unwrap();
    assert_eq!(utc.describe(), "every 10 seconds");
}

#[test]
fn the_user_s_text_is_never_echoed() {
    // Names, case, numbers and spacing that mean the same read the same.
    for (a, b) in [
        ("0 0 9 * * mon-FRI", "0 0 9 * * 1-5"),
        ("0 0 0 1 jan *", "@yearly"),
        ("0\t0  0 * * 7", "@weekly"),
        ("0 0 12 * * SUN", "0 0 12 * * 0"),
    ] {
        assert_eq!(describe(a), describe(b), "{a:?} and {b:?}");
    }
    let text = describe("0 0 0 * * FrI");
    assert!(!text.contains("FrI"), "{text}");
}

#[test]
fn long_lists_become_counts() {
    let primes = "1,2,3,5,7,11,13,17,19,23,29,31,37,41,43,47,53,59";
    let days = "1,2,3,5,7,11,13,17,19,23,29,31";
    let expr = format!("{primes} {primes} 1,3,4,8,11,12,17,19,23 {days} 1,3,5,8 1,3,5");
    assert_eq!(
        describe(&expr),
        "at 18 chosen seconds of 18 chosen minutes of 9 chosen hours, on 12 chosen days of \
         the month or on Mondays, Wednesdays and Fridays in January, March, May and August"
    );
    // Lists that fit one by one but not all together are counted too.
    let eight = "1,4,6,10,15,17,19,21";
    let expr = format!("{eight} {eight} {eight} {eight} * MON");
    assert_eq!(
        describe(&expr),
        "at 8 chosen seconds of 8 chosen minutes of 8 chosen hours, on 8 chosen days of the \
         month or on Mondays"
    );
}

#[test]
fn every_step_and_range_of_every_field_reads_briefly() {
    let fields = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let base = ["0", "0", "0", "*", "*", "*"];
    let steps = [1, 2, 3, 5, 7, 12, 15, 30, 59];
    let mut seen = 0;
    for (i, &(min, max)) in fields.iter().enumerate() {
        for a in min..=max {
            for b in a..=max {
                for n in steps.iter().filter(|&&n| n <= max - min + 1) {
                    let mut parts = base.map(str::to_owned);
                    parts[i] = format!("{a}-{b}/{n}");
                    let expr = parts.join(" ");
                    if let Ok(s) = Schedule::parse(&expr) {
                        check(&expr, &s.describe());
                        seen += 1;
                    }
                }
            }
        }
    }
    assert!(seen > 20_000, "{seen}");
}

/// A description is a short, plain sentence.
fn check(expr: &str, text: &str) {
    assert!(!text.is_empty(), "{expr:?}");
    assert!(text.chars().count() < 200, "{expr:?}: {text:?}");
    assert!(text.is_ascii(), "{expr:?}: {text:?}");
    assert!(
        !text.contains("  ") && !text.starts_with(' ') && !text.ends_with([' ', ',']),
        "{expr:?}: {text:?}"
    );
}

/// A bit set of `width` bits from `lo`: sparse, dense or all, sometimes empty when `empty`.
fn bits(lo: u32, width: u32, empty: bool) -> BoxedStrategy<u64> {
    let all = ((1u64 << width) - 1) << lo;
    let sparse = prop::collection::vec(lo..lo + width, 1..=4)
        .prop_map(|vs| vs.iter().fold(0u64, |acc, v| acc | 1 << v));
    let dense = any::<u64>().prop_map(move |b| b & all);
    let some = prop_oneof![
        3 => sparse,
        2 => dense,
        1 => Just(all),
    ];
    if empty {
        prop_oneof![3 => some, 1 => Just(0)].boxed()
    } else {
        some.prop_filter("a field has a value", |b| *b != 0).boxed()
    }
}

/// Any combination of bit sets, including ones no expression gives.
fn any_cron() -> impl Strategy<Value = Cron> {
    let time = (bits(0, 60, false), bits(0, 60, false), bits(0, 24, false));
    let days = (
        bits(1, 31, true),
        bits(0, 31, true),
        bits(1, 31, true),
        any::<bool>(),
        bits(0, 7, true),
        prop::array::uniform7(bits(1, 5, true)),
        bits(0, 7, true),
        any::<bool>(),
    );
    (time, days, bits(1, 12, false), any::<bool>()).prop_map(
        |((seconds, minutes, hours), days, months, fixed_hour)| {
            let (dom, before_last, nearest_weekday, last_weekday, dow, nth, last_dow, both) = days;
            Cron {
                seconds,
                minutes,
                hours: hours as u32,
                days: Days {
                    dom: dom as u32,
                    before_last: before_last as u32,
                    nearest_weekday: nearest_weekday as u32,
                    last_weekday,
                    dow: dow as u8,
                    nth: nth.map(|k| k as u8),
                    last_dow: last_dow as u8,
                    both,
                },
                months: months as u16,
                fixed_hour,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn generated_expressions_read_briefly(e in oracle::expr(), tz in prop_oneof![
        Just("Europe/Paris"), Just("America/Argentina/ComodRivadavia"),
    ]) {
        let text = oracle::render(&e);
        if let Ok(s) = Schedule::parse(&text) {
            let words = s.describe();
            check(&text, &words);
            let zoned = Schedule::parse_in(&text, tz).unwrap().describe();
            prop_assert_eq!(zoned, format!("{words}, {tz}"));
        }
    }

    #[test]
    fn any_bit_sets_read_briefly(cron in any_cron()) {
        check(&format!("{cron:?}"), &cron.describe());
    }
}
