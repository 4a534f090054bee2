//! Plain-words descriptions: "every 10 seconds", "at 09:00 on weekdays".
//!
//! Everything is read from the parsed bit sets, never from the user's text: nicknames read
//! like their fields and nothing the user wrote is echoed. Regular times read as steps and
//! windows ("every 5 minutes from 09:00 to 17:55"), a few times as clock times, anything
//! else as compact lists per field; a description that would run long is told again with
//! fewer list items, down to counts ("at 23 chosen minutes").

use super::{Cron, Days};

/// Descriptions are shorter than this many characters.
const MAX_CHARS: usize = 200;
/// List items allowed per list, tried in turn until the description is short enough.
const ITEM_LIMITS: [usize; 3] = [8, 3, 1];
/// Up to this many times a day read as clock times, before any pattern.
const FEW_TIMES: u64 = 3;
/// Up to this many times a day read as clock times when they follow no pattern.
const SOME_TIMES: u64 = 6;
/// Days of month 1..=31 all set.
const ALL_DOM: u32 = 0xFFFF_FFFE;
/// Days of week 0..=6 all set.
const ALL_DOW: u8 = 0x7F;
/// Monday to Friday.
const WEEKDAYS: u8 = 0x3E;
/// Saturday and Sunday.
const WEEKENDS: u8 = 0x41;

/// Month names, January first.
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// Day names by day of week, Sunday (0) first.
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl Cron {
    /// The schedule in plain English, e.g. "every 10 seconds" or "at 09:00 on weekdays";
    /// never empty and always shorter than 200 characters.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for max_items in ITEM_LIMITS {
            text = self.describe_with(max_items);
            if text.chars().count() < MAX_CHARS {
                return text;
            }
        }
        cut(&text)
    }

    /// The description with at most `max_items` items in any list.
    fn describe_with(&self, max_items: usize) -> String {
        let time = self.time(max_items);
        let days = days_text(&self.days, max_items);
        let months = months_text(self.months, max_items);
        let mut out = time.text;
        let mut months_said = false;
        match days {
            DaysText::Every if time.clocks => out.push_str(" every day"),
            DaysText::Every => {}
            DaysText::Said { text, of_month } => {
                out.push_str(if time.clocks { " " } else { ", " });
                out.push_str(&text);
                if of_month {
                    match &months {
                        Some(Months::List(names)) => {
                            out.push_str(" of ");
                            out.push_str(names);
                            months_said = true;
                        }
                        _ => out.push_str(" of the month"),
                    }
                }
            }
        }
        if let Some(m) = months.filter(|_| !months_said) {
            out.push(' ');
            out.push_str(&m.phrase());
        }
        out
    }

    /// The times of day.
    fn time(&self, max_items: usize) -> Time {
        let fields = [
            Unit::new(self.seconds, 60, 1, "second"),
            Unit::new(self.minutes, 60, 60, "minute"),
            Unit::new(u64::from(self.hours), 24, 3600, "hour"),
        ];
        let count: u64 = fields.iter().map(|f| f.values.len() as u64).product();
        let clocks = || Time {
            text: format!("at {}", clock_times(&fields)),
            clocks: true,
        };
        if count <= FEW_TIMES {
            return clocks();
        }
        if let Some(text) = regular(&fields) {
            return Time {
                text,
                clocks: false,
            };
        }
        if count <= SOME_TIMES {
            return clocks();
        }
        Time {
            text: per_field(&fields, max_items),
            clocks: false,
        }
    }
}

/// Cuts `text` to fewer than `MAX_CHARS` characters, marking the cut.
fn cut(text: &str) -> String {
    let kept: String = text.chars().take(MAX_CHARS - 4).collect();
    format!("{kept}...")
}

/// The times-of-day part and whether it is a list of clock times.
struct Time {
    text: String,
    clocks: bool,
}

/// One time field: its values in order, its size and the length of one value in seconds.
struct Unit {
    values: Vec<u32>,
    size: u32,
    seconds: u32,
    noun: &'static str,
}

impl Unit {
    /// The field of `size` values whose bits are `bits`, each value `seconds` long.
    fn new(bits: u64, size: u32, seconds: u32, noun: &'static str) -> Unit {
        Unit {
            values: values(bits, 0, size - 1),
            size,
            seconds,
            noun,
        }
    }

    /// The smallest value.
    fn first(&self) -> u32 {
        self.values.first().copied().unwrap_or(0)
    }

    /// The largest value.
    fn last(&self) -> u32 {
        self.values.last().copied().unwrap_or(0)
    }

    /// Every value of the field.
    fn full(&self) -> bool {
        self.values.len() == self.size as usize
    }

    /// Exactly one value.
    fn single(&self) -> bool {
        self.values.len() == 1
    }

    /// Consecutive values (one value counts).
    fn run(&self) -> bool {
        self.single() || step(&self.values) == Some(1)
    }

    /// Evenly spaced values whose spacing also holds across the wrap to the next period.
    fn cyclic_step(&self) -> Option<u32> {
        step(&self.values).filter(|d| self.last() + d == self.first() + self.size)
    }

    /// The step when the values are evenly spaced from 0 across the whole period.
    fn step_from_zero(&self) -> Option<u32> {
        self.cyclic_step().filter(|_| self.first() == 0)
    }

    /// "every minute", "every 5 minutes".
    fn every(&self, d: u32) -> String {
        match d {
            1 => format!("every {}", self.noun),
            d => format!("every {d} {}s", self.noun),
        }
    }

    /// "minute 5", "minutes 0, 7 and 30", "23 chosen minutes".
    fn list(&self, max_items: usize) -> String {
        if let [v] = self.values[..] {
            return format!("{} {v}", self.noun);
        }
        match listed(&self.values, &|v| v.to_string(), max_items) {
            Some(items) => format!("{}s {items}", self.noun),
            None => format!("{} chosen {}s", self.values.len(), self.noun),
        }
    }

    /// As the finest field said: "every 10 seconds" or "at seconds 0, 7 and 30", and
    /// whether it names particular values.
    fn every_or_at(&self, max_items: usize) -> (String, bool) {
        match self.step_from_zero() {
            Some(d) => (self.every(d), false),
            None => (format!("at {}", self.list(max_items)), true),
        }
    }

    /// As a coarser field said after a finer one: "of hours 9 and 17" after particular
    /// values, "during hours 9 and 17" after "every ...", "during every 2nd hour"; and
    /// whether it names particular values.
    fn within(&self, after_particular: bool, max_items: usize) -> (String, bool) {
        let lead = if after_particular { "of" } else { "during" };
        match self.step_from_zero() {
            Some(1) => (format!("{lead} every {}", self.noun), false),
            Some(d) => (format!("{lead} every {} {}", ordinal(d), self.noun), false),
            None => (format!("{lead} {}", self.list(max_items)), true),
        }
    }
}

/// The values of `bits` from `lo` to `hi`, in order.
fn values(bits: u64, lo: u32, hi: u32) -> Vec<u32> {
    (lo..=hi.min(63)).filter(|v| bits & (1 << v) != 0).collect()
}

/// The common difference of two or more evenly spaced values.
fn step(values: &[u32]) -> Option<u32> {
    let d = values.get(1)?.checked_sub(*values.first()?)?;
    values
        .windows(2)
        .all(|w| w[1].checked_sub(w[0]) == Some(d))
        .then_some(d)
}

/// The values as runs `(first, last)` of consecutive values.
fn runs(values: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == v => *last = v,
            _ => out.push((v, v)),
        }
    }
    out
}

/// The values in words: "1, 5 and 10 to 15", or "0, 7, 14, ..., 56" when evenly spaced;
/// none when that takes more than `max_items` items.
fn listed(values: &[u32], show: &dyn Fn(u32) -> String, max_items: usize) -> Option<String> {
    if let ([a, b, c, ..], Some(d)) = (values, step(values))
        && values.len() >= 5
        && d > 1
    {
        let last = values.last().copied().unwrap_or(*c);
        return Some(format!(
            "{}, {}, {}, ..., {}",
            show(*a),
            show(*b),
            show(*c),
            show(last)
        ));
    }
    let mut items = Vec::new();
    for (a, b) in runs(values) {
        match b - a {
            0 => items.push(show(a)),
            1 => items.extend([show(a), show(b)]),
            _ => items.push(format!("{} to {}", show(a), show(b))),
        }
    }
    (items.len() <= max_items.max(1)).then(|| join_words(&items))
}

/// "a", "a and b", "a, b and c".
fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// 1st, 2nd, 3rd, 4th, 11th, 21st, ...
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A second of the day as `HH:MM`, or `HH:MM:SS` when `seconds` are shown.
fn clock(t: u32, seconds: bool) -> String {
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if seconds {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// Every time of day the fields allow, as clock times: "09:00 and 17:00".
fn clock_times(fields: &[Unit; 3]) -> String {
    let [s, m, h] = fields;
    let seconds = s.values != [0];
    let mut times = Vec::new();
    for hv in &h.values {
        for mv in &m.values {
            for sv in &s.values {
                times.push(clock(hv * 3600 + mv * 60 + sv, seconds));
            }
        }
    }
    join_words(&times)
}

/// The times as one even step: all day ("every 5 minutes", "every hour at minute 30") or
/// within a window ("every 5 minutes from 09:00 to 17:55"); none when they are not evenly
/// spaced.
fn regular(fields: &[Unit; 3]) -> Option<String> {
    // The finest field with more than one value sets the step; finer ones are fixed.
    let k = fields.iter().position(|f| f.values.len() > 1)?;
    let (field, coarser) = (&fields[k], &fields[k + 1..]);
    let d = step(&field.values)?;
    let cyclic = field.cyclic_step().is_some();
    // Coarser fields with several values keep the step only if the step wraps evenly and
    // together they form one unbroken span: full fields, then one run, then fixed ones.
    if coarser.iter().any(|f| !f.single()) && !(cyclic && one_span(coarser)) {
        return None;
    }
    let every = field.every(d);
    let second = fields[0].first();
    let minute = fields[1].first();
    if cyclic && coarser.iter().all(Unit::full) && field.seconds < 3600 {
        // All day: the offset within each step is said instead of a window.
        let offset = match (k, field.first()) {
            (0, 0) => String::new(),
            (0, a) => format!(" starting at second {a}"),
            (_, 0) => at_offset(" at", None, second),
            (_, a) => at_offset(" starting at", Some(a), second),
        };
        return Some(format!("{every}{offset}"));
    }
    if cyclic && coarser.is_empty() && field.first() == 0 {
        // Hours from midnight, evenly across the day.
        let minute = (minute != 0 || second != 0).then_some(minute);
        return Some(format!("{every}{}", at_offset(" at", minute, second)));
    }
    let start: u32 = fields.iter().map(|f| f.first() * f.seconds).sum();
    let end: u32 = fields.iter().map(|f| f.last() * f.seconds).sum();
    let seconds = fields[0].values != [0];
    Some(format!(
        "{every} from {} to {}",
        clock(start, seconds),
        clock(end, seconds)
    ))
}

/// " at minute 30, second 15", " at second 30"; empty when there is no offset.
fn at_offset(lead: &str, minute: Option<u32>, second: u32) -> String {
    match (minute, second) {
        (None, 0) => String::new(),
        (None, s) => format!("{lead} second {s}"),
        (Some(m), 0) => format!("{lead} minute {m}"),
        (Some(m), s) => format!("{lead} minute {m}, second {s}"),
    }
}

/// Whether coarser fields, finest first, allow one unbroken span of time: any full
/// fields, then at most one run, then fixed values.
fn one_span(coarser: &[Unit]) -> bool {
    let mut rest = coarser.iter().skip_while(|f| f.full());
    match rest.next() {
        None => true,
        Some(f) => f.run() && rest.all(Unit::single),
    }
}

/// Field by field, finest first: "at second 31 of minutes 10 to 15 of hours 1 and 3",
/// "every minute during hours 9 and 17".
fn per_field(fields: &[Unit; 3], max_items: usize) -> String {
    let [s, m, h] = fields;
    let mut parts = Vec::new();
    // Whether the last part named particular values: then a coarser field is said with
    // "of", and said even when full; after "every ..." it is said with "during".
    let mut particular = false;
    if s.values != [0] {
        let (text, p) = s.every_or_at(max_items);
        parts.push(text);
        particular = p;
    }
    if parts.is_empty() {
        let (text, p) = m.every_or_at(max_items);
        parts.push(text);
        particular = p;
    } else if !m.full() {
        let (text, p) = m.within(particular, max_items);
        parts.push(text);
        particular = p;
    } else if particular {
        parts.push("of every minute".to_owned());
        particular = false;
    }
    if !h.full() {
        parts.push(h.within(particular, max_items).0);
    } else if particular {
        parts.push("of every hour".to_owned());
    }
    parts.join(" ")
}

/// How the day fields read.
enum DaysText {
    /// Every day matches.
    Every,
    /// `text` starts with "on" or "from"; when `of_month`, the month follows it ("of the
    /// month", "of January").
    Said { text: String, of_month: bool },
}

/// The day fields in words, combined as crontab(5) combines them.
fn days_text(days: &Days, max_items: usize) -> DaysText {
    let dom_all = days.dom & ALL_DOM == ALL_DOM;
    let dow_all = days.dow & ALL_DOW == ALL_DOW;
    let said = |(text, of_month)| DaysText::Said { text, of_month };
    match (days.both, dom_all, dow_all) {
        (true, true, true) | (false, true, _) | (false, _, true) => DaysText::Every,
        (true, true, false) => said(week_days(days, max_items)),
        (true, false, true) => said((month_days(days, max_items), true)),
        (true, false, false) => said((
            format!(
                "{}, but only {} of the month",
                finish(week_days(days, max_items)),
                month_days(days, max_items)
            ),
            false,
        )),
        (false, false, false) => said((
            format!(
                "{} of the month or {}",
                month_days(days, max_items),
                finish(week_days(days, max_items))
            ),
            false,
        )),
    }
}

/// A week phrase with its "of the month" when it needs one.
fn finish((text, of_month): (String, bool)) -> String {
    if of_month {
        format!("{text} of the month")
    } else {
        text
    }
}

/// The day-of-month rules: "on the 1st and 15th", "on the last weekday" (before "of the
/// month").
fn month_days(days: &Days, max_items: usize) -> String {
    let mut groups = Vec::new();
    if days.dom & ALL_DOM != 0 {
        let dom = values(u64::from(days.dom), 1, 31);
        groups.push(match listed(&dom, &|d| ordinal(d), max_items) {
            Some(items) => format!("the {items}"),
            None => format!("{} chosen days", dom.len()),
        });
    }
    let before_last = values(u64::from(days.before_last), 0, 30);
    if !before_last.is_empty() {
        let name = |n: u32| match n {
            0 => "last".to_owned(),
            n => format!("{}-to-last", ordinal(n + 1)),
        };
        groups.push(
            match (&before_last[..], listed(&before_last, &name, max_items)) {
                ([n], _) => format!("the {} day", name(*n)),
                (_, Some(items)) => format!("the {items} days"),
                (all, None) => format!("{} chosen days near the end", all.len()),
            },
        );
    }
    let nearest = values(u64::from(days.nearest_weekday), 1, 31);
    if !nearest.is_empty() {
        groups.push(
            match (&nearest[..], listed(&nearest, &|d| ordinal(d), max_items)) {
                ([d], _) => format!("the weekday nearest the {}", ordinal(*d)),
                (_, Some(items)) => format!("the weekdays nearest the {items}"),
                (all, None) => format!("the weekdays nearest {} chosen days", all.len()),
            },
        );
    }
    if days.last_weekday {
        groups.push("the last weekday".to_owned());
    }
    if groups.is_empty() || groups.len() > max_items.max(1) {
        return "on chosen days".to_owned();
    }
    format!("on {}", join_words(&groups))
}

/// Day-of-week order for reading: Monday first, Sunday last.
const MONDAY_FIRST: [usize; 7] = [1, 2, 3, 4, 5, 6, 0];

/// The day-of-week rules, and whether they are counted within the month ("the 3rd
/// Friday", which "of the month" must follow).
fn week_days(days: &Days, max_items: usize) -> (String, bool) {
    let plain = days.dow & ALL_DOW;
    let of_month = days.nth.iter().any(|&k| k != 0) || days.last_dow != 0;
    if !of_month && let Some(text) = weekday_range(plain) {
        return (text, false);
    }
    let mut groups = Vec::new();
    match plain {
        0 => {}
        WEEKDAYS => groups.push("weekdays".to_owned()),
        WEEKENDS => groups.push("weekends".to_owned()),
        _ => groups.extend(
            MONDAY_FIRST
                .iter()
                .filter(|&&wd| plain & (1 << wd) != 0)
                .map(|&wd| format!("{}s", DAY_NAMES[wd])),
        ),
    }
    for wd in MONDAY_FIRST {
        let ks = values(u64::from(days.nth[wd]), 1, 5);
        let ords: Vec<String> = ks.iter().map(|&k| ordinal(k)).collect();
        match ks.len() {
            0 => {}
            1 => groups.push(format!("the {} {}", join_words(&ords), DAY_NAMES[wd])),
            _ => groups.push(format!("the {} {}s", join_words(&ords), DAY_NAMES[wd])),
        }
    }
    for wd in MONDAY_FIRST {
        if days.last_dow & (1 << wd) != 0 {
            groups.push(format!("the last {}", DAY_NAMES[wd]));
        }
    }
    if groups.is_empty() || groups.len() > max_items.max(1) {
        return ("on chosen days of the week".to_owned(), false);
    }
    (format!("on {}", join_words(&groups)), of_month)
}

/// "from Monday to Thursday" when the days of week are one run of three or more, Monday
/// first; weekdays and weekends by name.
fn weekday_range(plain: u8) -> Option<String> {
    match plain {
        WEEKDAYS => return Some("on weekdays".to_owned()),
        WEEKENDS => return Some("on weekends".to_owned()),
        _ => {}
    }
    let order: Vec<u32> = (1..=7u32)
        .filter(|&i| plain & (1 << (i % 7)) != 0)
        .collect();
    match (order.first(), order.last(), step(&order)) {
        (Some(&a), Some(&b), Some(1)) if order.len() >= 3 => Some(format!(
            "from {} to {}",
            DAY_NAMES[(a % 7) as usize],
            DAY_NAMES[(b % 7) as usize]
        )),
        _ => None,
    }
}

/// The month field in words.
enum Months {
    /// "January and July", "January, March, May, ..., November".
    List(String),
    /// "from March to October".
    Range(String),
    /// "in 7 chosen months".
    Count(usize),
}

impl Months {
    /// The phrase after the days: "in January and July", "from March to October".
    fn phrase(&self) -> String {
        match self {
            Months::List(names) => format!("in {names}"),
            Months::Range(text) => text.clone(),
            Months::Count(n) => format!("in {n} chosen months"),
        }
    }
}

/// The months, or none when every month matches.
fn months_text(bits: u16, max_items: usize) -> Option<Months> {
    let months = values(u64::from(bits), 1, 12);
    if months.len() == 12 {
        return None;
    }
    let name = |m: u32| MONTH_NAMES[(m as usize + 11) % 12].to_owned();
    if months.len() >= 3 && step(&months) == Some(1) {
        let (a, b) = (months.first()?, months.last()?);
        return Some(Months::Range(format!("from {} to {}", name(*a), name(*b))));
    }
    Some(match listed(&months, &name, max_items) {
        Some(names) => Months::List(names),
        None => Months::Count(months.len()),
    })
}
