//! Parsing: text to bit sets, refusing anything the dialect does not define.

use super::{Cron, CronError, Days};

/// The longest schedule accepted; longer ones are refused without being echoed.
const MAX_LEN: usize = 256;
/// How much of the user's input a message quotes.
const QUOTE_LEN: usize = 80;

/// One field's name, bounds and, for month and day of week, its names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: Option<(&'static [&'static str], u32, &'static str)>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: None,
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: None,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: None,
};
const DOM: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: None,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: Some((&MONTHS, 1, "is not a month name (use JAN-DEC or 1-12)")),
};
const DOW: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: Some((&WEEKDAYS, 0, "is not a day name (use SUN-SAT or 0-7)")),
};

/// Quotes at most `QUOTE_LEN` characters of the user's text.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LEN) {
        Some((i, _)) => format!("\"{}…\"", &s[..i]),
        None => format!("\"{s}\""),
    }
}

fn err<T>(msg: String) -> Result<T, CronError> {
    Err(CronError(msg))
}

/// Parses a whole expression: 5 or 6 fields, or a nickname.
pub fn parse(expr: &str) -> Result<Cron, CronError> {
    if expr.chars().count() > MAX_LEN {
        return err(format!("the schedule is longer than {MAX_LEN} characters"));
    }
    if expr.chars().any(|c| c.is_control() && c != '\t') {
        return err("the schedule contains a control character".into());
    }
    let expr = expr.trim_matches([' ', '\t']);
    if expr.starts_with('@') {
        return parse(nickname(expr)?);
    }
    let fields: Vec<&str> = expr.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
    let (sec, rest) = match fields.len() {
        6 => (fields[0], &fields[1..]),
        5 => ("0", &fields[..]),
        n => {
            return err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got {n}"
            ));
        }
    };
    let (dom_text, dow_text) = (rest[2], rest[4]);
    let mut days = Days::default();
    parse_dom(dom_text, &mut days)?;
    parse_dow(dow_text, &mut days)?;
    days.both = [dom_text, dow_text]
        .iter()
        .any(|f| f.starts_with(['*', '?']));
    let months = parse_plain(rest[3], &MONTH)? as u16;
    if !days.can_match(months) {
        return err(format!(
            "the schedule never fires: no month has such a day ({})",
            quote(expr)
        ));
    }
    Ok(Cron {
        seconds: parse_plain(sec, &SECOND)?,
        minutes: parse_plain(rest[0], &MINUTE)?,
        hours: parse_plain(rest[1], &HOUR)? as u32,
        days,
        months,
        fixed_hour: rest[1].bytes().all(|b| b.is_ascii_digit() || b == b','),
    })
}

/// The fields a nickname stands for (crontab(5): second 0).
fn nickname(expr: &str) -> Result<&'static str, CronError> {
    Ok(match expr {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@reboot" => {
            return err("@reboot is not a schedule: it means once at start-up, which cronhook has no notion of; write the fields".into());
        }
        other => {
            return err(format!(
                "unknown nickname {} (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
                quote(other)
            ));
        }
    })
}

/// Parses a field of plain items (values, ranges, steps) into bits `min..=max`.
fn parse_plain(text: &str, f: &Field) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in items(text, f)? {
        bits |= parse_item(item, f)?;
    }
    Ok(bits)
}

/// Splits a field into its list items, refusing empty ones and non-ASCII characters.
fn items<'a>(text: &'a str, f: &Field) -> Result<Vec<&'a str>, CronError> {
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        let hint = if c.is_whitespace() {
            "separate fields with ASCII spaces or tabs"
        } else {
            "only ASCII is allowed"
        };
        return err(format!(
            "{} {} contains the non-ASCII character U+{:04X} ({hint})",
            f.name,
            quote(text),
            c as u32
        ));
    }
    let items: Vec<&str> = text.split(',').collect();
    if items.iter().any(|i| i.is_empty()) {
        return err(format!("{} list {} has an empty item", f.name, quote(text)));
    }
    Ok(items)
}

/// Parses `*`, `?`, `a`, `a-b`, each optionally `/step`, into a bit set.
fn parse_item(item: &str, f: &Field) -> Result<u64, CronError> {
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (item, None),
    };
    let (lo, hi) = if base == "*" || base == "?" {
        if base == "?" && !f.name.starts_with("day") {
            return err(format!(
                "\"?\" is only allowed in the day fields, not in the {} field",
                f.name
            ));
        }
        (f.min, f.max)
    } else if let Some((a, b)) = base.split_once('-') {
        // A range ending in SUN ends at 7 (`SAT-SUN`, `0-SUN` as `0-7`), unless it starts
        // with the name SUN too: `SUN-SUN` is Sunday alone.
        let from_sunday = a.eq_ignore_ascii_case("SUN");
        let (a, b) = (value(a, f, false)?, value(b, f, !from_sunday)?);
        if a > b {
            return err(format!("{} range {} is reversed", f.name, quote(base)));
        }
        (a, b)
    } else {
        let a = value(base, f, false)?;
        // `a/n` means `a-max/n`; a lone value is itself.
        (a, if step.is_some() { f.max } else { a })
    };
    let step = match step {
        None => 1,
        Some(text) => step_of(text, item, f)?,
    };
    let mut bits = 0u64;
    for v in (lo..=hi).step_by(step as usize) {
        // Day of week 7 is Sunday, bit 0.
        bits |= 1 << if f.max == 7 { v % 7 } else { v };
    }
    Ok(bits)
}

/// Parses the step after `/`: at least 1 and at most the field's span.
fn step_of(text: &str, item: &str, f: &Field) -> Result<u32, CronError> {
    let span = f.max - f.min + 1;
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match number(text) {
        Some(0) => err(format!(
            "{} step {} must be at least 1",
            f.name,
            quote(item)
        )),
        Some(n) if n <= span => Ok(n),
        // Too many digits for a u32 is too large as well.
        _ if digits => err(format!(
            "{} step {} is larger than the field's span ({span})",
            f.name,
            quote(item)
        )),
        _ => err(format!("{} step {} is not a number", f.name, quote(item))),
    }
}

/// Plain ASCII digits as a number (`parse` alone would also take a sign).
fn number(s: &str) -> Option<u32> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())?
}

/// Parses one value: digits, or a name where the field has names.
fn value(text: &str, f: &Field, range_end: bool) -> Result<u32, CronError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (f.min..=f.max).contains(&v) => Ok(v),
            _ => err(format!(
                "{} {} is out of range {}-{}",
                f.name,
                quote(text),
                f.min,
                f.max
            )),
        };
    }
    let upper = text.to_ascii_uppercase();
    match f.names {
        Some((names, first, hint)) => match names.iter().position(|n| *n == upper) {
            // `SAT-SUN` reads as Saturday to Sunday.
            Some(0) if range_end && f.max == 7 => Ok(7),
            Some(i) => Ok(i as u32 + first),
            None => err(format!("{} {} {hint}", f.name, quote(text))),
        },
        None if MONTHS.contains(&upper.as_str()) || WEEKDAYS.contains(&upper.as_str()) => {
            err(format!(
                "names are not allowed in the {} field: {}",
                f.name,
                quote(text)
            ))
        }
        None => err(format!("{} {} is not a number", f.name, quote(text))),
    }
}

/// Parses day of month: plain items plus `L`, `L-n`, `LW` and `nW`.
fn parse_dom(text: &str, days: &mut Days) -> Result<(), CronError> {
    for item in items(text, &DOM)? {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            days.before_last |= 1;
        } else if upper == "LW" {
            days.last_weekday = true;
        } else if let Some(n) = upper.strip_prefix("L-") {
            match number(n) {
                Some(n) if (1..=30).contains(&n) => {
                    days.before_last |= 1 << n;
                }
                _ => return err(format!("day-of-month {} must be L-1 to L-30", quote(item))),
            }
        } else if let Some(n) = upper.strip_suffix('W') {
            days.nearest_weekday |= 1 << value(n, &DOM, false)?;
        } else {
            days.dom |= parse_item(item, &DOM)? as u32;
        }
    }
    Ok(())
}

/// Parses day of week: plain items plus `n#k` and `nL`.
fn parse_dow(text: &str, days: &mut Days) -> Result<(), CronError> {
    for item in items(text, &DOW)? {
        if let Some((n, k)) = item.split_once('#') {
            let wd = value(n, &DOW, false)? % 7;
            match number(k) {
                Some(k) if (1..=5).contains(&k) => {
                    days.nth[wd as usize] |= 1 << k;
                }
                _ => return err(format!("day-of-week {} must end in #1 to #5", quote(item))),
            }
        } else if item.len() > 1 && item.ends_with(['L', 'l']) {
            days.last_dow |= 1 << (value(&item[..item.len() - 1], &DOW, false)? % 7);
        } else {
            days.dow |= parse_item(item, &DOW)? as u8;
        }
    }
    Ok(())
}
