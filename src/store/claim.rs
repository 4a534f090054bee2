//! What both backends share in a claim: the rows read and the planning done on them.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use super::rows::CallRow;
use super::spelling::Stored;
use super::{Misfires, from_ms, to_ms};
use crate::domain::execution::ExecutionSummary;
use crate::domain::execution::Trigger;
use crate::domain::fire::Fire;
use crate::domain::job::MisfirePolicy;
use crate::domain::plan::{Missed, WaitingFire, Window, misfired, plan};
use crate::domain::schedule::Schedule;

/// Parsed schedules by (expression, zone): parsing costs far more than stepping.
#[derive(Default)]
pub struct ScheduleCache {
    /// Bounded map; cleared when full so memory stays independent of the number of jobs.
    map: Mutex<HashMap<(String, String), Schedule>>,
}

const CACHE_BOUND: usize = 4096;

impl ScheduleCache {
    fn get(&self, expr: &str, tz: &str) -> Option<Schedule> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&(expr.to_owned(), tz.to_owned())) {
            return Some(s.clone());
        }
        let parsed = Schedule::parse_in(expr, tz).ok()?;
        if map.len() >= CACHE_BOUND {
            map.clear();
        }
        map.insert((expr.to_owned(), tz.to_owned()), parsed.clone());
        Some(parsed)
    }
}

/// The columns of a job a claim needs.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DueJob {
    pub id: Uuid,
    pub schedule: String,
    pub timezone: String,
    pub misfire_policy: String,
    /// When its next fire is due: its next scheduled instant plus `spread_offset_ms`.
    pub next_fire_at: i64,
    pub spread_offset_ms: i64,
    #[sqlx(flatten)]
    pub call: CallRow,
}

/// The SELECT list of a [`DueJob`], from jobs aliased `j`.
macro_rules! due_job_columns {
    () => {
        concat!(
            "j.id, j.schedule, j.timezone, j.misfire_policy, j.next_fire_at, j.spread_offset_ms, ",
            $crate::store::rows::call_columns!()
        )
    };
}
pub(crate) use due_job_columns;

/// Most new fires one claim plans: beyond it, the remaining due jobs are left for the next
/// claim (a single job's catch-up may pass it, up to `MISFIRE_MAX_CATCHUP`).
pub(crate) const FIRE_BUDGET: usize = 20_000;

/// A job's next fire time moved by a claim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Advance {
    /// The job.
    pub id: Uuid,
    /// Its next fire time (ms) and version when read: the claim advances it only if both
    /// are unchanged.
    pub from: i64,
    pub version: i64,
    /// Its next fire time after the claim; `None` disables further firing.
    pub to: Option<i64>,
}

/// The fires to record and the next fire times to store, planned from due jobs.
pub(crate) struct Planned {
    /// New first attempts, as they will be handed to the timer.
    pub fires: Vec<Fire>,
    /// The jobs planned; due jobs beyond the budget are not among them.
    pub next: Vec<Advance>,
    /// The planned jobs that were past the misfire threshold, by policy.
    pub misfires: Misfires,
}

/// Plans the fires of due `jobs`, at most `budget` of them (the claimer's room) and never
/// more than [`FIRE_BUDGET`]: a job whose fires would pass it is left due for the next
/// claim, unless it is the first (one job's catch-up is never split).
pub(crate) fn plan_due(
    jobs: Vec<DueJob>,
    w: &Window,
    cache: &ScheduleCache,
    budget: usize,
) -> Planned {
    let budget = budget.min(FIRE_BUDGET);
    let mut fires = Vec::with_capacity(jobs.len() * 2);
    let mut next = Vec::with_capacity(jobs.len());
    let mut misfires = Misfires::default();
    for job in jobs {
        if fires.len() >= budget {
            break;
        }
        let (from, version) = (job.next_fire_at, job.call.version);
        let Some(schedule) = cache.get(&job.schedule, &job.timezone) else {
            tracing::error!(job_id = %job.id, schedule = %job.schedule, "stored schedule does not parse: the job stops firing");
            next.push(Advance {
                id: job.id,
                from,
                version,
                to: None,
            });
            continue;
        };
        let policy = MisfirePolicy::read(&job.misfire_policy);
        // A spread job is planned on its scheduled instants, in a window moved back by its
        // offset, so its misfire threshold and look-ahead apply to the instants it is due.
        let offset = chrono::Duration::milliseconds(job.spread_offset_ms);
        let p = plan(
            &schedule,
            from_ms(job.next_fire_at) - offset,
            policy,
            &w.earlier_by(offset),
        );
        if !fires.is_empty() && fires.len() + p.fires.len() > budget {
            break;
        }
        if p.misfired {
            misfires.add(policy, 1);
        }
        let call = job.call.into_call();
        for at in p.fires {
            fires.push(Fire {
                execution_id: Uuid::now_v7(),
                job_id: job.id,
                scheduled_at: at,
                due_at: at + offset,
                attempt: 1,
                call: call.clone(),
            });
        }
        next.push(Advance {
            id: job.id,
            from,
            version,
            to: p.next.map(|at| to_ms(at + offset)),
        });
    }
    Planned {
        fires,
        next,
        misfires,
    }
}

/// A waiting execution joined with its job, as a claim takes it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OpenExecution {
    pub id: Uuid,
    pub job_id: Uuid,
    pub scheduled_at: i64,
    pub attempt: i32,
    pub due_at: i64,
    pub trigger: String,
    pub misfire_policy: String,
    pub spread_offset_ms: i64,
    #[sqlx(flatten)]
    pub call: CallRow,
}

/// Waiting attempts taken by a claim, split by the misfire rule: those to call, and those
/// to record skipped, with the reason (and the count of these by policy).
pub(crate) fn split_missed(
    taken: Vec<OpenExecution>,
    w: &Window,
) -> (Vec<Fire>, Vec<(Uuid, &'static str)>, Misfires) {
    let seen: Vec<WaitingFire> = taken
        .iter()
        .map(|r| WaitingFire {
            job: r.job_id,
            // Judged late from the instant it was due, like a new fire.
            scheduled_at: from_ms(r.scheduled_at + r.spread_offset_ms),
            first_scheduled: r.attempt <= 1 && Trigger::read(&r.trigger) == Trigger::Schedule,
            policy: MisfirePolicy::read(&r.misfire_policy),
        })
        .collect();
    let verdicts = misfired(&seen, w);
    let mut call = Vec::with_capacity(taken.len());
    let mut skip = Vec::new();
    let mut misfires = Misfires::default();
    for (row, verdict) in taken.into_iter().zip(verdicts) {
        match verdict {
            None => call.push(Fire::from(row)),
            Some(why) => {
                misfires.add(MisfirePolicy::read(&row.misfire_policy), 1);
                tracing::debug!(job_id = %row.job_id, execution_id = %row.id, reason = ?why,
                    "a handed-back fire is past the misfire threshold: skipped by its job's misfire policy");
                skip.push((row.id, missed_error(why)));
            }
        }
    }
    if !skip.is_empty() {
        // One line per claim, not per fire: under overload thousands a second are skipped.
        tracing::info!(
            fires = skip.len(),
            "handed-back fires past the misfire threshold: skipped by their jobs' misfire policies"
        );
    }
    (call, skip, misfires)
}

/// The error recorded for a waiting attempt skipped by its job's misfire policy.
pub(crate) fn missed_error(why: Missed) -> &'static str {
    match why {
        Missed::None => "missed: handed back past the misfire threshold (misfirePolicy none)",
        Missed::Superseded => {
            "missed: handed back past the misfire threshold; a later missed instant was called instead (misfirePolicy one)"
        }
        Missed::BeyondCatchup => {
            "missed: handed back past the misfire threshold, beyond MISFIRE_MAX_CATCHUP (misfirePolicy all)"
        }
    }
}

impl From<OpenExecution> for Fire {
    fn from(r: OpenExecution) -> Fire {
        Fire {
            execution_id: r.id,
            job_id: r.job_id,
            scheduled_at: from_ms(r.scheduled_at),
            due_at: from_ms(r.due_at),
            attempt: r.attempt.max(1) as u32,
            call: r.call.into_call(),
        }
    }
}

/// A history row as both backends read it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub id: Uuid,
    pub executed_at: i64,
    pub status_code: Option<i32>,
    pub duration_ms: Option<i64>,
    pub success: Option<bool>,
}

impl From<HistoryRow> for ExecutionSummary {
    fn from(r: HistoryRow) -> Self {
        ExecutionSummary {
            id: r.id,
            executed_at: from_ms(r.executed_at),
            status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
            duration_ms: r.duration_ms.unwrap_or(0).max(0) as u64,
            success: r.success.unwrap_or(false),
        }
    }
}

/// The SELECT list of an [`OpenExecution`]: executions `e` joined with jobs `j`.
macro_rules! open_execution_columns {
    () => {
        concat!(
            "e.id, e.job_id, e.scheduled_at, e.attempt, e.due_at, e.trigger, j.misfire_policy, \
             j.spread_offset_ms, ",
            $crate::store::rows::call_columns!()
        )
    };
}
pub(crate) use open_execution_columns;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn due_job(next_fire_at: i64) -> DueJob {
        DueJob {
            id: Uuid::now_v7(),
            schedule: "* * * * * *".into(),
            timezone: "UTC".into(),
            misfire_policy: "all".into(),
            next_fire_at,
            spread_offset_ms: 0,
            call: CallRow {
                api: "http://127.0.0.1:9/".into(),
                method: "POST".into(),
                headers: None,
                body: None,
                timeout_ms: None,
                delivery: "ATLEAST_ONCE".into(),
                retry_max_attempts: None,
                retry_backoff_ms: None,
                retry_max_backoff_ms: None,
                concurrency_policy: "allow".into(),
                signing_secret: None,
                version: 3,
            },
        }
    }

    #[test]
    fn one_claim_plans_a_bounded_number_of_fires() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        // Ten every-second jobs five hours behind, each allowed 100,000 catch-up fires:
        // 18,000 each, 180,000 in all without a bound.
        let from = to_ms(now - Duration::hours(5));
        let jobs: Vec<DueJob> = (0..10).map(|_| due_job(from)).collect();
        let w = Window::new(now, Duration::seconds(2), Duration::seconds(5), 100_000);
        let planned = plan_due(jobs, &w, &ScheduleCache::default(), usize::MAX);
        // Planning stops before the job whose fires would pass the budget; the first job's
        // catch-up is never split, so it may pass it alone.
        assert_eq!(planned.next.len(), 1, "jobs planned");
        assert!(planned.fires.len() <= FIRE_BUDGET);
        assert!(planned.fires.len() >= 18_000);
        let alone = plan_due(
            (0..3).map(|_| due_job(from)).collect(),
            &w,
            &ScheduleCache::default(),
            500,
        );
        assert_eq!(
            alone.next.len(),
            1,
            "the first job alone, past a budget of 500"
        );
        // Each planned job records what it was read at, to be advanced only if unchanged.
        assert!(
            planned
                .next
                .iter()
                .all(|a| a.from == from && a.version == 3)
        );
        assert!(planned.next.iter().all(|a| a.to > Some(to_ms(now))));
    }

    #[test]
    fn a_spread_job_is_planned_on_its_instants_and_due_after_them() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let w = Window::new(now, Duration::seconds(2), Duration::seconds(5), 10);
        // Due 700 ms after each instant: next due 12:00:00.700 for the instant 12:00:00.
        let job = DueJob {
            spread_offset_ms: 700,
            ..due_job(to_ms(now) + 700)
        };
        let planned = plan_due(vec![job], &w, &ScheduleCache::default(), usize::MAX);
        let instants: Vec<_> = planned.fires.iter().map(|f| f.scheduled_at).collect();
        // The look-ahead reaches 12:00:02: the fires due by then are those of instants 0 and
        // 1; the instant 12:00:02 is due at 02.700, past the horizon.
        assert_eq!(instants, [now, now + Duration::seconds(1)]);
        for f in &planned.fires {
            assert_eq!(f.due_at - f.scheduled_at, Duration::milliseconds(700));
        }
        assert_eq!(planned.next[0].to, Some(to_ms(now) + 2_700));
        assert_eq!(planned.misfires.one + planned.misfires.all, 0);
        // Six seconds late is a misfire (threshold 5 s) counted from the due instant.
        let late = DueJob {
            spread_offset_ms: 700,
            ..due_job(to_ms(now - Duration::seconds(6)) + 700)
        };
        let planned = plan_due(vec![late], &w, &ScheduleCache::default(), usize::MAX);
        assert_eq!(planned.misfires.all, 1);
        // Under `all` the missed instants are called, each still due 700 ms after it.
        assert!(
            planned
                .fires
                .iter()
                .all(|f| f.due_at - f.scheduled_at == Duration::milliseconds(700))
        );
    }
}
