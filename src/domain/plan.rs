//! Which instants of a job a claim takes, and what its next fire time becomes.
//!
//! Pure arithmetic on a schedule, so the misfire rules are tested without a clock or a store.

use chrono::{DateTime, Duration, Utc};

use super::job::MisfirePolicy;
use super::schedule::Schedule;

/// The bounds one claim works within.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The store's idea of now when the claim runs.
    pub now: DateTime<Utc>,
    /// Fires up to and including this instant are claimed (now + look-ahead).
    pub horizon: DateTime<Utc>,
    /// A fire earlier than this is a misfire and follows the job's policy.
    pub misfire_before: DateTime<Utc>,
    /// At most this many missed fires are called under `MisfirePolicy::All`.
    pub max_catchup: usize,
}

impl Window {
    /// A window at `now` with the given look-ahead and misfire threshold.
    pub fn new(
        now: DateTime<Utc>,
        lookahead: Duration,
        misfire: Duration,
        max_catchup: usize,
    ) -> Self {
        Window {
            now,
            horizon: now + lookahead,
            misfire_before: now - misfire,
            max_catchup,
        }
    }

    /// The same window with every bound moved `by` earlier: the window in which a job whose
    /// fires are due `by` after their instants is planned.
    pub fn earlier_by(&self, by: Duration) -> Self {
        Window {
            now: self.now - by,
            horizon: self.horizon - by,
            misfire_before: self.misfire_before - by,
            max_catchup: self.max_catchup,
        }
    }
}

/// What a claim does with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The instants to record as fires, in order.
    pub fires: Vec<DateTime<Utc>>,
    /// The job's next fire time after them (`None`: the schedule never fires again).
    pub next: Option<DateTime<Utc>>,
    /// The job was past the misfire threshold: its policy decided which missed instants
    /// are called.
    pub misfired: bool,
}

/// Plans the fires of a job whose next fire time is `next` (at or before the horizon).
///
/// Instants are stepped from the previous scheduled instant, never from now, so schedules
/// do not drift; instants before `misfire_before` follow `policy`.
pub fn plan(schedule: &Schedule, next: DateTime<Utc>, policy: MisfirePolicy, w: &Window) -> Plan {
    let mut fires = Vec::new();
    let mut cursor = Some(next);
    let misfired = next < w.misfire_before;
    if misfired {
        match policy {
            MisfirePolicy::All => {
                while let Some(t) = cursor {
                    if t >= w.misfire_before || fires.len() >= w.max_catchup {
                        break;
                    }
                    fires.push(t);
                    cursor = schedule.next_after(t);
                }
            }
            MisfirePolicy::One => {
                let latest = schedule
                    .prev_at_or_before(w.misfire_before - Duration::milliseconds(1))
                    .filter(|t| *t >= next)
                    .unwrap_or(next);
                fires.push(latest);
            }
            MisfirePolicy::None => {}
        }
        // Back on schedule: the first instant that is not a misfire.
        if cursor.is_some_and(|t| t < w.misfire_before) {
            cursor = schedule.next_from(w.misfire_before);
        }
    }
    while let Some(t) = cursor {
        if t > w.horizon {
            break;
        }
        fires.push(t);
        cursor = schedule.next_after(t);
    }
    Plan {
        fires,
        next: cursor,
        misfired,
    }
}

/// A waiting attempt as the misfire rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct WaitingFire {
    /// Its job.
    pub job: uuid::Uuid,
    /// The instant it stands for.
    pub scheduled_at: DateTime<Utc>,
    /// Whether it is the first attempt at a scheduled instant: only those are misfires (a
    /// retry continues a fire already called; a manual call is always made).
    pub first_scheduled: bool,
    /// Its job's policy.
    pub policy: MisfirePolicy,
}

/// Why a waiting attempt is not called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Late, under `misfirePolicy: none`.
    None,
    /// Late, and a later missed instant of the job is called instead (`one`).
    Superseded,
    /// Late, beyond the bound on catch-up calls (`all`).
    BeyondCatchup,
}

/// Applies the misfire policies to waiting attempts (fires handed back by a dead or stopped
/// node, or whose start failed), as a claim does to a job's own missed instants: for each
/// attempt, in order, whether it is skipped. A first attempt at a scheduled instant older
/// than the window's misfire threshold follows its job's policy; the rest are called.
pub fn misfired(waiting: &[WaitingFire], w: &Window) -> Vec<Option<Missed>> {
    let late = |f: &WaitingFire| f.first_scheduled && f.scheduled_at < w.misfire_before;
    let mut latest: std::collections::HashMap<uuid::Uuid, DateTime<Utc>> = Default::default();
    for f in waiting.iter().filter(|f| late(f)) {
        let e = latest.entry(f.job).or_insert(f.scheduled_at);
        *e = (*e).max(f.scheduled_at);
    }
    let mut kept: std::collections::HashMap<uuid::Uuid, usize> = Default::default();
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    order.sort_by_key(|&i| waiting[i].scheduled_at);
    let mut verdicts = vec![None; waiting.len()];
    for i in order {
        let f = &waiting[i];
        if !late(f) {
            continue;
        }
        verdicts[i] = match f.policy {
            MisfirePolicy::None => Some(Missed::None),
            MisfirePolicy::One if latest.get(&f.job) != Some(&f.scheduled_at) => {
                Some(Missed::Superseded)
            }
            MisfirePolicy::One => None,
            MisfirePolicy::All => {
                let n = kept.entry(f.job).or_default();
                *n += 1;
                (*n > w.max_catchup).then_some(Missed::BeyondCatchup)
            }
        };
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn late_waiting_first_attempts_follow_their_job_s_policy() {
        let w = window(t(10, 1, 0));
        let (a, b, c) = (
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
        );
        let f = |job, at, policy| WaitingFire {
            job,
            scheduled_at: at,
            first_scheduled: true,
            policy,
        };
        let mut waiting = vec![
            f(a, t(10, 0, 30), MisfirePolicy::None),
            f(a, t(10, 0, 58), MisfirePolicy::None),
            f(b, t(10, 0, 40), MisfirePolicy::One),
            f(b, t(10, 0, 30), MisfirePolicy::One),
            f(b, t(10, 0, 50), MisfirePolicy::One),
        ];
        for s in 0..5 {
            waiting.push(f(c, t(10, 0, 10 + s), MisfirePolicy::All));
        }
        // A retry and a manual call are never misfires, however late.
        waiting.push(WaitingFire {
            first_scheduled: false,
            ..f(a, t(10, 0, 1), MisfirePolicy::None)
        });
        let v = misfired(&waiting, &w);
        assert_eq!(v[0], Some(Missed::None), "none: late, skipped");
        assert_eq!(v[1], None, "within the threshold: called");
        assert_eq!(
            v[2..5],
            [Some(Missed::Superseded), Some(Missed::Superseded), None],
            "one: only the latest"
        );
        // all: bounded by max_catchup = 3, oldest first.
        assert_eq!(
            v[5..10],
            [
                None,
                None,
                None,
                Some(Missed::BeyondCatchup),
                Some(Missed::BeyondCatchup)
            ]
        );
        assert_eq!(v[10], None);
    }

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, s).unwrap()
    }

    fn window(now: DateTime<Utc>) -> Window {
        Window::new(now, Duration::seconds(2), Duration::seconds(5), 3)
    }

    #[test]
    fn on_time_claims_every_instant_up_to_the_horizon() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let p = plan(&s, t(10, 0, 0), MisfirePolicy::One, &window(t(10, 0, 0)));
        assert_eq!(p.fires, vec![t(10, 0, 0), t(10, 0, 1), t(10, 0, 2)]);
        assert_eq!(p.next, Some(t(10, 0, 3)));
    }

    #[test]
    fn slightly_late_fires_are_not_misfires() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let p = plan(&s, t(10, 0, 0), MisfirePolicy::None, &window(t(10, 0, 4)));
        assert_eq!(p.fires.first(), Some(&t(10, 0, 0)));
        assert_eq!(p.fires.len(), 7);
    }

    #[test]
    fn misfire_policies() {
        let s = Schedule::parse("*/10 * * * * *").unwrap();
        // Down from 10:00:00 to 10:01:00: instants 10:00:00 .. 10:00:50 are older than 5 s.
        let w = window(t(10, 1, 0));
        let one = plan(&s, t(10, 0, 0), MisfirePolicy::One, &w);
        assert_eq!(one.fires, vec![t(10, 0, 50), t(10, 1, 0)]);
        assert_eq!(one.next, Some(t(10, 1, 10)));
        let none = plan(&s, t(10, 0, 0), MisfirePolicy::None, &w);
        assert_eq!(none.fires, vec![t(10, 1, 0)]);
        let all = plan(&s, t(10, 0, 0), MisfirePolicy::All, &w);
        // Bounded by max_catchup = 3, then back on schedule.
        assert_eq!(
            all.fires,
            vec![t(10, 0, 0), t(10, 0, 10), t(10, 0, 20), t(10, 1, 0)]
        );
        assert_eq!(all.next, Some(t(10, 1, 10)));
    }

    #[test]
    fn one_catch_up_is_distinct_from_the_resumed_instants_when_now_has_milliseconds() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let now = t(10, 1, 0) + Duration::milliseconds(523);
        let p = plan(&s, t(10, 0, 0), MisfirePolicy::One, &window(now));
        // Missed up to 10:00:55.523: the catch-up is 10:00:55, then on schedule from 10:00:56.
        assert_eq!(p.fires[..3], [t(10, 0, 55), t(10, 0, 56), t(10, 0, 57)]);
        assert_eq!(p.fires.last(), Some(&t(10, 1, 2)));
        let none = plan(&s, t(10, 0, 0), MisfirePolicy::None, &window(now));
        assert_eq!(none.fires.first(), Some(&t(10, 0, 56)));
        assert_eq!(none.fires.len() + 1, p.fires.len());
    }

    #[test]
    fn steps_from_the_previous_instant_not_from_now() {
        let s = Schedule::parse("0 */5 * * * *").unwrap();
        // Claimed 1.5 s before its instant; the next one is exactly 5 minutes later.
        let p = plan(&s, t(10, 5, 0), MisfirePolicy::One, &window(t(10, 4, 58)));
        assert_eq!(p.fires, vec![t(10, 5, 0)]);
        assert_eq!(p.next, Some(t(10, 10, 0)));
    }
}
