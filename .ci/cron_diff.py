"""Differential test of cronhook's cron evaluator against Python's croniter.

Generates random valid expressions (5 and 6 fields; names, lists, ranges, steps, L, W and #;
about a third in a time zone, started a few hours before one of the 2027 DST changes of
America/New_York, Europe/London and Australia/Lord_Howe), asks `cronhook cron --from` and
croniter for the next 50 instants, and compares. croniter runs with `implement_cron_bug`,
which gives crontab(5)'s day rule (a day field starting with `*` means AND), and
`second_at_beginning` for 6 fields.

Every disagreement must have a reason listed in REASONS; the run fails on any other.
"""

import concurrent.futures
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

SEED = int(os.environ.get("CRON_DIFF_SEED", "20271107"))
COUNT = int(os.environ.get("CRON_DIFF_COUNT", "5000"))
INSTANTS = 50
BIN = os.environ.get("CRONHOOK_BIN", "target/debug/cronhook")

# The 2027 DST changes, as local wall-clock instants in each zone.
TRANSITIONS = {
    "America/New_York": [datetime(2027, 3, 14, 2, 0), datetime(2027, 11, 7, 2, 0)],
    "Europe/London": [datetime(2027, 3, 28, 1, 0), datetime(2027, 10, 31, 2, 0)],
    "Australia/Lord_Howe": [datetime(2027, 4, 4, 2, 0), datetime(2027, 10, 3, 2, 0)],
}
UTC_STARTS = [
    datetime(2027, 1, 1, tzinfo=timezone.utc),
    datetime(2027, 2, 26, 13, 7, 11, tzinfo=timezone.utc),
    datetime(2027, 12, 30, 23, 59, 59, tzinfo=timezone.utc),
]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# Why a disagreement is expected; each is checked by a predicate below.
REASONS = {
    "one_value_range": "croniter reads a one-value range such as `7-7` or `1-1` as the whole "
    "field (a croniter bug); cronhook reads it as that one value",
    "weekday_step_to_seven": "a step from one day-of-week value (`4/3`) runs to 7 in cronhook "
    "as in cronie (`4-7/3`: Thursday and Sunday); croniter stops at 6",
    "dst": "a DST change falls within the compared instants: cronhook follows crontab(5) "
    "(fixed hour: a skipped time fires once just after the gap, a repeated time once at its "
    "first occurrence; wildcard, range or step hour: the wall clock), croniter has rules of "
    "its own",
}


def pick(rng, lo, hi, names=None):
    """One value of a field, sometimes as a name."""
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3:
        offset = 1 if names is MONTHS else 0
        return names[(v - offset) % len(names)]
    return str(v)


def field(rng, lo, hi, names=None, star_weight=0.4):
    """A random valid field: `*`, a value, a range, a list or a step."""
    r = rng.random()
    if r < star_weight:
        return "*"
    r = rng.random()
    if r < 0.3:
        return pick(rng, lo, hi, names)
    if r < 0.5:
        a, b = sorted(rng.sample(range(lo, hi + 1), 2))
        return f"{pick_in(rng, a, names)}-{pick_in(rng, b, names)}"
    if r < 0.7:
        items = sorted(set(rng.randint(lo, hi) for _ in range(rng.randint(2, 4))))
        return ",".join(pick_in(rng, v, names) for v in items)
    step = rng.randint(2, max(2, (hi - lo) // 2))
    form = rng.random()
    if form < 0.4:
        return f"*/{step}"
    a = rng.randint(lo, hi - 1)
    if form < 0.7:
        b = rng.randint(a + 1, hi)
        return f"{a}-{b}/{step}"
    return f"{a}/{step}"


def pick_in(rng, v, names):
    """`v`, sometimes spelled as its name."""
    if names and rng.random() < 0.3:
        offset = 1 if names is MONTHS else 0
        return names[(v - offset) % len(names)]
    return str(v)


def day_fields(rng):
    """Day of month and day of week, with Quartz's L, W and # now and then."""
    r = rng.random()
    if r < 0.08:
        return rng.choice(["L", f"{rng.randint(1, 28)}W"]), "*"
    if r < 0.16:
        return "*", rng.choice([f"{rng.randint(1, 5)}#{rng.randint(1, 4)}", f"{rng.randint(1, 5)}L"])
    return field(rng, 1, 31), field(rng, 0, 7, DAYS)


def expression(rng, zoned):
    """One expression: 6 fields (seconds first) or 5; zoned ones fire at most a few times an
    hour, so 50 instants reach across the DST change they start near."""
    dom, dow = day_fields(rng)
    month = field(rng, 1, 12, MONTHS, star_weight=0.6)
    if zoned:
        minute = rng.choice(["0", "30", "0,30", "*/15", "15,45", "5"])
        hour = rng.choice(["*", "1", "2", "3", "1-3", "0,2,4", "*/2", "2,3", field(rng, 0, 23)])
        dom, dow, month = ("*", "*", "*") if rng.random() < 0.6 else (dom, dow, month)
        fields = [minute, hour, dom, month, dow]
        if rng.random() < 0.5:
            fields.insert(0, "0")
        return " ".join(fields)
    fields = [field(rng, 0, 59), field(rng, 0, 23), dom, month, dow]
    if rng.random() < 0.5:
        fields.insert(0, field(rng, 0, 59))
    return " ".join(fields)


def cases():
    rng = random.Random(SEED)
    out = []
    for i in range(COUNT):
        zoned = i % 3 == 0
        if zoned:
            zone = rng.choice(sorted(TRANSITIONS))
            change = rng.choice(TRANSITIONS[zone])
            start = (change - timedelta(hours=rng.choice([3, 6, 20]))).replace(tzinfo=ZoneInfo(zone))
        else:
            zone = None
            start = rng.choice(UTC_STARTS)
        out.append((expression(rng, zoned), zone, start))
    return out


def utc(t):
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ours(expr, zone, start):
    args = [BIN, "cron", expr, "-n", str(INSTANTS), "--from", start.isoformat()]
    if zone:
        args += ["--tz", zone]
    run = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if run.returncode != 0:
        return "refused: " + run.stderr.strip()[:200]
    return run.stdout.split()


def theirs(expr, zone, start):
    fields = expr.split()
    # croniter spells the last weekday of a month L5 where Quartz and cronhook spell it 5L.
    fields = [f"L{f[:-1]}" if len(f) > 1 and f.endswith("L") and f[:-1].isdigit() else f for f in fields]
    try:
        it = croniter(
            " ".join(fields),
            start,
            second_at_beginning=len(fields) == 6,
            implement_cron_bug=True,
        )
        return [utc(it.get_next(datetime)) for _ in range(INSTANTS)]
    except Exception as e:  # croniter's own errors
        return "refused: " + str(e)[:200]


def reason(expr, zone, a, b):
    """The listed reason a disagreement is expected, or None."""
    parts = [p for f in expr.split() for p in f.split(",")]
    if any("-" in p and "/" not in p and len(set(p.split("-"))) == 1 for p in parts):
        return "one_value_range"
    dow = expr.split()[-1]
    if any(p.split("/")[0].isdigit() and "/" in p for p in dow.split(",")):
        return "weekday_step_to_seven"
    if zone and isinstance(a, list) and isinstance(b, list):
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        around = a[first:first + 1] + b[first:first + 1] or a[-1:]
        if any(near_dst_change(s, zone) for s in around):
            return "dst"
    return None


def near_dst_change(instant, zone, hours=26):
    """Whether the zone's UTC offset changes within `hours` of `instant` (any year)."""
    at = datetime.strptime(instant, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    tz = ZoneInfo(zone)
    before = (at - timedelta(hours=hours)).astimezone(tz).utcoffset()
    after = (at + timedelta(hours=hours)).astimezone(tz).utcoffset()
    return before != after


def compare(case):
    expr, zone, start = case
    a = ours(expr, zone, start)
    b = theirs(expr, zone, start)
    if a == b:
        return case, None, a, b
    return case, reason(expr, zone, a, b) or "UNEXPLAINED", a, b


def main():
    all_cases = cases()
    counts = {}
    examples = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for case, why, a, b in pool.map(compare, all_cases):
            key = why or "agree"
            counts[key] = counts.get(key, 0) + 1
            examples.setdefault(key, []).append((case, a, b))
    print(f"cron-diff: {len(all_cases)} expressions, {INSTANTS} instants each, seed {SEED}")
    for key in sorted(counts):
        note = REASONS.get(key, "")
        print(f"  {key}: {counts[key]}" + (f"  ({note})" if note else ""))
    bad = examples.get("UNEXPLAINED", [])
    for (expr, zone, start), a, b in bad[:15]:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None) if isinstance(a, list) and isinstance(b, list) else None
        print(f"UNEXPLAINED {expr!r} tz={zone} from={start.isoformat()} at #{first}")
        print(f"  cronhook: {a if not isinstance(a, list) else a[(first or 0):(first or 0) + 3]}")
        print(f"  croniter: {b if not isinstance(b, list) else b[(first or 0):(first or 0) + 3]}")
    if bad:
        print(f"cron-diff: {len(bad)} disagreements without a listed reason")
        return 1
    print(f"cron-diff: {counts.get('agree', 0)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
