//! Property tests: expressions generated from the grammar, checked against an oracle that
//! reads the generated structure directly and tests instants second by second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use crate::domain::schedule::Schedule;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const ZONES: [&str; 4] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
];
/// The 2027 offset changes of each zone above (UTC month, day, hour, minute).
const CHANGES: [[(u32, u32, u32, u32); 2]; 4] = [
    [(3, 14, 7, 0), (11, 7, 6, 0)],
    [(3, 14, 7, 0), (11, 7, 6, 0)],
    [(3, 28, 1, 0), (10, 31, 1, 0)],
    [(4, 3, 15, 0), (10, 2, 15, 30)],
];
/// How far after `t` the oracle checks every second.
const WINDOW: i64 = 2 * 3600;

#[derive(Debug, Clone)]
enum Base {
    Star,
    Value(u32),
    Range(u32, u32),
}

#[derive(Debug, Clone)]
struct Item {
    base: Base,
    step: Option<u32>,
    named: bool,
}

#[derive(Debug, Clone)]
enum DomItem {
    Plain(Item),
    BeforeLast(u32),
    Nearest(u32),
    LastWeekday,
}

#[derive(Debug, Clone)]
enum DowItem {
    Plain(Item),
    Nth(u32, u32),
    Last(u32),
}

#[derive(Debug, Clone)]
pub(super) struct Expr {
    sec: Option<Vec<Item>>,
    min: Vec<Item>,
    hour: Vec<Item>,
    dom: Vec<DomItem>,
    month: Vec<Item>,
    dow: Vec<DowItem>,
    question: bool,
}

fn item(min: u32, max: u32) -> impl Strategy<Value = Item> {
    let span = max - min + 1;
    let base = prop_oneof![
        3 => Just(Base::Star),
        2 => (min..=max).prop_map(Base::Value),
        1 => (min..=max, min..=max).prop_map(|(a, b)| Base::Range(a.min(b), a.max(b))),
    ];
    let step = prop_oneof![2 => Just(None), 1 => (1..=span).prop_map(Some)];
    (base, step, any::<bool>()).prop_map(|(base, step, named)| Item { base, step, named })
}

fn field(min: u32, max: u32) -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(item(min, max), 1..=3)
}

/// Mostly `*`, so that most answers fall in the brute-force window.
fn star_or<T: Clone + std::fmt::Debug + 'static>(
    star: T,
    other: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![3 => Just(star), 1 => other].boxed()
}

fn star() -> Item {
    Item {
        base: Base::Star,
        step: None,
        named: false,
    }
}

/// Hours near the offset changes of the zones tested, as single values or lists.
fn hour() -> impl Strategy<Value = Vec<Item>> {
    let near = prop::collection::vec(
        (0..=3u32).prop_map(|h| Item {
            base: Base::Value(h),
            step: None,
            named: false,
        }),
        1..=2,
    );
    prop_oneof![1 => field(0, 23), 1 => near]
}

fn dom() -> impl Strategy<Value = Vec<DomItem>> {
    let one = prop_oneof![
        6 => item(1, 31).prop_map(DomItem::Plain),
        1 => (0..=30u32).prop_map(DomItem::BeforeLast),
        1 => (1..=31u32).prop_map(DomItem::Nearest),
        1 => Just(DomItem::LastWeekday),
    ];
    prop::collection::vec(one, 1..=2)
}

fn dow() -> impl Strategy<Value = Vec<DowItem>> {
    let one = prop_oneof![
        6 => item(0, 7).prop_map(DowItem::Plain),
        1 => (0..=7u32, 1..=5u32).prop_map(|(n, k)| DowItem::Nth(n, k)),
        1 => (0..=7u32).prop_map(DowItem::Last),
    ];
    prop::collection::vec(one, 1..=2)
}

/// An expression of the grammar, mostly `*` in the day fields; the description tests use it
/// too.
pub(super) fn expr() -> impl Strategy<Value = Expr> {
    let dense_sec = prop_oneof![1 => Just(None), 3 => field(0, 59).prop_map(Some)];
    let days = (
        star_or(vec![DomItem::Plain(star())], dom()),
        star_or(vec![star()], field(1, 12)),
        star_or(vec![DowItem::Plain(star())], dow()),
    );
    (dense_sec, field(0, 59), hour(), days, any::<bool>()).prop_map(
        |(sec, min, hour, (dom, month, dow), question)| Expr {
            sec,
            min,
            hour,
            dom,
            month,
            dow,
            question,
        },
    )
}

fn name(v: u32, names: Option<&[&str]>, first: u32, named: bool) -> String {
    match names {
        Some(names) if named && v >= first && ((v - first) as usize) < names.len() => {
            names[(v - first) as usize].to_owned()
        }
        _ => v.to_string(),
    }
}

fn render_item(i: &Item, names: Option<&[&str]>, first: u32, day: bool, q: bool) -> String {
    let n = |v| name(v, names, first, i.named);
    let base = match i.base {
        Base::Star if day && q => "?".to_owned(),
        Base::Star => "*".to_owned(),
        Base::Value(v) => n(v),
        Base::Range(a, b) => format!("{}-{}", n(a), n(b)),
    };
    match i.step {
        Some(s) => format!("{base}/{s}"),
        None => base,
    }
}

/// The expression's text.
pub(super) fn render(e: &Expr) -> String {
    let list = |items: &[Item], names, first| {
        let v: Vec<_> = items
            .iter()
            .map(|i| render_item(i, names, first, false, false))
            .collect();
        v.join(",")
    };
    let dom: Vec<_> = e
        .dom
        .iter()
        .map(|d| match d {
            DomItem::Plain(i) => render_item(i, None, 1, true, e.question),
            DomItem::BeforeLast(0) => "L".into(),
            DomItem::BeforeLast(n) => format!("L-{n}"),
            DomItem::Nearest(n) => format!("{n}W"),
            DomItem::LastWeekday => "LW".into(),
        })
        .collect();
    let dow: Vec<_> = e
        .dow
        .iter()
        .map(|d| match d {
            DowItem::Plain(i) => render_item(i, Some(&WEEKDAYS), 0, true, e.question),
            DowItem::Nth(n, k) => format!("{n}#{k}"),
            DowItem::Last(n) => format!("{n}L"),
        })
        .collect();
    let five = format!(
        "{} {} {} {} {}",
        list(&e.min, None, 0),
        list(&e.hour, None, 0),
        dom.join(","),
        list(&e.month, Some(&MONTHS), 1),
        dow.join(",")
    );
    match &e.sec {
        Some(sec) => format!("{} {five}", list(sec, None, 0)),
        None => five,
    }
}

/// Whether `v` is in the item's values; a field's `*` runs from `min` to `max`.
fn item_matches(i: &Item, v: u32, min: u32, max: u32) -> bool {
    let (lo, hi) = match (&i.base, i.step) {
        (Base::Star, _) => (min, max),
        (Base::Value(a), Some(_)) => (*a, max),
        (Base::Value(a), None) => (*a, *a),
        (Base::Range(a, b), _) => (*a, *b),
    };
    v >= lo && v <= hi && (v - lo).is_multiple_of(i.step.unwrap_or(1))
}

fn any_matches(items: &[Item], v: u32, min: u32, max: u32) -> bool {
    items.iter().any(|i| item_matches(i, v, min, max))
}

fn last_day(date: NaiveDate) -> u32 {
    let first_next = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    };
    first_next.unwrap().pred_opt().unwrap().day()
}

/// The nearest weekday to day `n`, staying in the month.
fn nearest(date: NaiveDate, n: u32) -> Option<u32> {
    let last = last_day(date);
    if n > last {
        return None;
    }
    let wd = date.with_day(n)?.weekday().num_days_from_sunday();
    Some(match wd {
        6 if n == 1 => 3,
        6 => n - 1,
        0 if n == last => n - 2,
        0 => n + 1,
        _ => n,
    })
}

fn day_matches(e: &Expr, date: NaiveDate) -> bool {
    let (d, last) = (date.day(), last_day(date));
    let wd = date.weekday().num_days_from_sunday();
    let in_month = e.dom.iter().any(|i| match i {
        DomItem::Plain(i) => any_matches(std::slice::from_ref(i), d, 1, 31),
        DomItem::BeforeLast(n) => last.checked_sub(*n) == Some(d),
        DomItem::Nearest(n) => nearest(date, *n) == Some(d),
        DomItem::LastWeekday => {
            (1..=last).rev().find(|&x| {
                !matches!(
                    date.with_day(x).unwrap().weekday().num_days_from_sunday(),
                    0 | 6
                )
            }) == Some(d)
        }
    });
    let in_week = e.dow.iter().any(|i| match i {
        DowItem::Plain(i) => {
            let one = std::slice::from_ref(i);
            any_matches(one, wd, 0, 7) || (wd == 0 && any_matches(one, 7, 0, 7))
        }
        DowItem::Nth(n, k) => wd == n % 7 && (d - 1) / 7 + 1 == *k,
        DowItem::Last(n) => wd == n % 7 && d + 7 > last,
    });
    // The rendered field begins with `*` or `?` exactly when its first item is a star.
    let dom_star = matches!(
        e.dom[0],
        DomItem::Plain(Item {
            base: Base::Star,
            ..
        })
    );
    let dow_star = matches!(
        e.dow[0],
        DowItem::Plain(Item {
            base: Base::Star,
            ..
        })
    );
    if dom_star || dow_star {
        in_month && in_week
    } else {
        in_month || in_week
    }
}

/// Whether the local time matches every field.
fn matches(e: &Expr, l: NaiveDateTime) -> bool {
    let sec_ok = match &e.sec {
        Some(sec) => any_matches(sec, l.second(), 0, 59),
        None => l.second() == 0,
    };
    sec_ok
        && any_matches(&e.min, l.minute(), 0, 59)
        && any_matches(&e.hour, l.hour(), 0, 23)
        && any_matches(&e.month, l.month(), 1, 12)
        && day_matches(e, l.date())
}

fn fixed_hour(e: &Expr) -> bool {
    e.hour
        .iter()
        .all(|i| matches!((&i.base, i.step), (Base::Value(_), None)))
}

fn offset(tz: Tz, u: i64) -> i64 {
    let utc = DateTime::from_timestamp(u, 0).unwrap().naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

fn wall(u: i64) -> NaiveDateTime {
    DateTime::from_timestamp(u, 0).unwrap().naive_utc()
}

/// Whether instant `u` is a fire under the DST rule of the contract.
fn fires(e: &Expr, tz: Tz, u: i64) -> bool {
    let local = wall(u + offset(tz, u));
    if !fixed_hour(e) {
        return matches(e, local);
    }
    let first = tz
        .from_local_datetime(&local)
        .earliest()
        .map(|d| d.timestamp());
    if matches(e, local) && first == Some(u) {
        return true;
    }
    // The end of a spring-forward gap fires for the local times the gap skipped.
    let (before, now) = (offset(tz, u - 1), offset(tz, u));
    before < now && (u + before..u + now).any(|w| matches(e, wall(w)))
}

/// A zone and a start: anywhere in 2024-2030, or within 3 hours of one of its changes.
fn zone_and_start() -> impl Strategy<Value = (usize, i64)> {
    (0..ZONES.len()).prop_flat_map(|zone| (Just(zone), start(zone)))
}

fn start(zone: usize) -> impl Strategy<Value = i64> {
    let uniform = (1_704_067_200i64..1_924_992_000).boxed();
    let near = (0..2usize, -3 * 3600i64..3 * 3600)
        .prop_map(move |(i, d)| {
            let (mo, day, h, mi) = CHANGES[zone][i];
            Utc.with_ymd_and_hms(2027, mo, day, h, mi, 0)
                .unwrap()
                .timestamp()
                + d
        })
        .boxed();
    prop_oneof![1 => uniform, 2 => near]
}

/// How many cases had their answer in the brute-force window.
static IN_WINDOW: AtomicU64 = AtomicU64::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn next_after_is_the_first_fire_after_t(e in expr(), (zone, t) in zone_and_start()) {
        let text = render(&e);
        let tz: Tz = ZONES[zone].parse().unwrap();
        let s = match Schedule::parse_in(&text, ZONES[zone]) {
            Ok(s) => s,
            Err(err) if err.to_string().contains("never fires") => return Ok(()),
            Err(err) => panic!("{text:?} refused: {err}"),
        };
        let from = DateTime::from_timestamp(t, 0).unwrap();
        let next = s.next_after(from).expect("a schedule that fires has a next instant");
        let n = next.timestamp();
        prop_assert!(n > t, "{text:?}: {next} is not after {from}");
        prop_assert!(fires(&e, tz, n), "{text:?} in {}: {next} is not a fire", ZONES[zone]);
        if n - t <= WINDOW {
            IN_WINDOW.fetch_add(1, Ordering::Relaxed);
            for u in t + 1..n {
                prop_assert!(!fires(&e, tz, u), "{text:?} in {}: {} skipped before {next}",
                    ZONES[zone], wall(u));
            }
            let prev = s.prev_at_or_before(DateTime::from_timestamp(n - 1, 0).unwrap());
            prop_assert!(prev.is_none_or(|p| p.timestamp() <= t && fires(&e, tz, p.timestamp())),
                "{text:?}: prev before {next} is {prev:?}");
        }
        prop_assert_eq!(s.prev_at_or_before(next), Some(next));
        eprintln!("cases checked second by second: {}", IN_WINDOW.load(Ordering::Relaxed));
    }
}

/// The slowest parse seen over the generated strings, in nanoseconds.
static SLOWEST_PARSE_NS: AtomicU64 = AtomicU64::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_any_string_never_panics(
        text in prop_oneof![
            "[0-9*/,?LW#@ \\-A-Za-z]{0,60}",
            ".{0,256}",
            "([0-9*/,?LW#\\-]{1,8} ){4,6}",
        ],
    ) {
        let began = Instant::now();
        let parsed = Schedule::parse_in(&text, "Europe/London");
        let took = began.elapsed().as_nanos() as u64;
        SLOWEST_PARSE_NS.fetch_max(took, Ordering::Relaxed);
        if let Ok(s) = parsed {
            let t = Utc.with_ymd_and_hms(2027, 3, 28, 0, 30, 0).unwrap();
            let next = s.next_after(t);
            prop_assert!(next.is_some_and(|n| n > t), "{text:?}: {next:?}");
        }
        eprintln!("slowest parse so far: {} µs", SLOWEST_PARSE_NS.load(Ordering::Relaxed) / 1000);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The day forms, which the window above rarely reaches, checked day by day over 5 years.
    #[test]
    fn the_days_fired_are_the_days_that_match(
        e in expr(),
        dom in dom(),
        month in field(1, 12),
        dow in dow(),
    ) {
        let e = Expr { sec: None, min: vec![star()], hour: vec![star()], dom, month, dow, ..e };
        let text = render(&e);
        let daily = format!("0 0 {}", text.splitn(3, ' ').nth(2).unwrap());
        let s = match Schedule::parse(&daily) {
            Ok(s) => s,
            Err(err) if err.to_string().contains("never fires") => return Ok(()),
            Err(err) => panic!("{daily:?} refused: {err}"),
        };
        let first = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let want: Vec<NaiveDate> = first
            .iter_days()
            .take_while(|d| d.year() < 2029)
            .filter(|d| any_matches(&e.month, d.month(), 1, 12) && day_matches(&e, *d))
            .collect();
        let from = Utc.with_ymd_and_hms(2023, 12, 31, 0, 0, 0).unwrap();
        let got: Vec<NaiveDate> = s
            .upcoming(from, want.len() + 1)
            .iter()
            .map(|t| t.date_naive())
            .filter(|d| d.year() < 2029)
            .collect();
        let first_difference = got.iter().zip(&want).find(|(g, w)| g != w);
        prop_assert!(first_difference.is_none() && got.len() == want.len(),
            "{daily:?}: fired {first_difference:?} (got, want); {} fires, {} expected",
            got.len(), want.len());
    }
}
