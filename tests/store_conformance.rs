//! The store conformance suite: every operation of `Store`, written once and run against a
//! real PostgreSQL and a real SQLite file.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Db, TestDb};
use cronhook::clock::Clock;
use cronhook::domain::execution::{ExecutionState, ExecutionSummary, Trigger};
use cronhook::domain::fire::{Fire, Outcome, Verdict};
use cronhook::domain::job::{
    ConcurrencyPolicy, Delivery, HttpMethod, JobSpec, MisfirePolicy, NewJob, RetryOverride,
    TargetUrl, spread_offset_ms,
};
use cronhook::domain::job::{JobRecord, JobState};
use cronhook::domain::schedule::Schedule;
use cronhook::retention::{Pruner, Retention};
use cronhook::store::group::JobWriter;
use cronhook::store::{
    self, Backend, ClaimParams, DynStore, Exclusive, Handback, JobQuery, JobRow, NextFire,
    Recorded, Recovered, Update,
};
use uuid::Uuid;

/// Generates one `#[tokio::test]` per backend for each case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::Db;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$case(Db::Postgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$case(Db::Sqlite).await
                }
            }
        )*
    };
}

conformance!(
    case_ping_and_backend,
    case_insert_and_exists,
    case_group_commit,
    case_claim_window_and_continuity,
    case_claim_batch_and_horizon,
    case_misfire_policies,
    case_recent_executions,
    case_retry_waits_for_any_claimer_within_the_window,
    case_heartbeat_recover_release,
    case_mark_started_at_most_once,
    case_unique_fire_identity_under_concurrency,
    case_times_round_trip_in_milliseconds,
    case_job_records_list_by_state_and_cursor,
    case_update_withdraws_claimed_fires_and_bumps_the_version,
    case_delete_leaves_a_marker_and_no_history,
    case_trigger_stores_a_waiting_manual_attempt,
    case_executions_page_by_cursor_and_detail,
    case_exclusive_start_skips_overlaps_and_recovers,
    case_new_york_job_fires_at_the_right_utc_instants_across_dst,
    case_pruning_keeps_the_newest_k_per_job,
    case_postpone_hands_an_unstarted_attempt_back,
    case_a_late_outcome_is_fenced_out,
    case_a_lost_start_reply_does_not_block_a_forbid_job,
    case_handed_back_fires_follow_the_misfire_policy,
    case_an_abandoned_attempt_ends_unknown,
    case_nodes_confirm_reading_changes,
    case_the_forbid_check_reads_an_index,
    case_hand_backs_go_in_one_batch_and_waiting_claims_are_bounded,
    case_shedding_records_late_waiting_fires_by_policy,
    case_census_counts_jobs_by_state_and_live_nodes,
    case_spread_fires_are_due_their_offset_after_each_instant,
);

// ---------------------------------------------------------------------------------------------
// Support
// ---------------------------------------------------------------------------------------------

/// A clock that says what the test tells it to.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(t: DateTime<Utc>) -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(t)))
    }

    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A connected store on a fresh database. The store is declared first so it is dropped
/// before the database is.
struct Ctx {
    store: DynStore,
    db: TestDb,
}

async fn open(kind: Db) -> Ctx {
    let db = TestDb::new(kind).await;
    let store = store::connect(&db.url, 4)
        .await
        .expect("connect and migrate");
    Ctx { store, db }
}

/// A fixed instant on a 10-second boundary: 2024-05-01 10:00:00 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// `t0` plus `n` seconds.
fn secs(n: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(n)
}

/// `t0` plus `n` milliseconds.
fn ms(n: i64) -> DateTime<Utc> {
    t0() + Duration::milliseconds(n)
}

const API: &str = "http://127.0.0.1:9/hook";

fn new_job(expr: &str) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        spec: JobSpec::new(
            Schedule::parse(expr).unwrap(),
            TargetUrl::parse(API).unwrap(),
            Delivery::AtLeastOnce,
        ),
    }
}

fn row(job: &NewJob, first: Option<DateTime<Utc>>) -> JobRow {
    JobRow {
        job: job.clone(),
        first_fire: first,
        created_at: t0() - Duration::hours(1),
    }
}

async fn insert(s: &DynStore, job: &NewJob, first: Option<DateTime<Utc>>) {
    s.insert_jobs(&[row(job, first)])
        .await
        .expect("insert_jobs");
}

fn params(lookahead: Duration) -> ClaimParams {
    ClaimParams {
        lookahead,
        misfire_threshold: Duration::seconds(5),
        max_catchup: 3,
        batch: 100,
        waiting_batch: 100,
        max_fires: usize::MAX,
    }
}

/// Hands one attempt back; whether it was still `node`'s.
async fn postpone(s: &DynStore, execution: Uuid, node: &str, due_at: DateTime<Utc>) -> bool {
    let one = Handback {
        execution,
        node: Arc::from(node),
        due_at,
    };
    s.postpone(&[one]).await.unwrap() == 1
}

async fn claim(s: &DynStore, node: &str, p: &ClaimParams, clock: &TestClock) -> Vec<Fire> {
    s.claim_due(node, p, clock).await.expect("claim_due").fires
}

async fn recover(
    s: &DynStore,
    node: &str,
    live_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Recovered {
    s.recover(node, live_since, now).await.expect("recover")
}

/// What a recovery sweep did: `released` attempts handed back, `unknown` recorded so.
fn swept(released: u64, unknown: u64) -> Recovered {
    Recovered { released, unknown }
}

/// The fires among `got` with the execution ids of `want`.
fn only(got: &[Fire], want: &[&Fire]) -> Vec<Fire> {
    let ids: HashSet<Uuid> = want.iter().map(|f| f.execution_id).collect();
    got.iter()
        .filter(|f| ids.contains(&f.execution_id))
        .cloned()
        .collect()
}

/// The scheduled instants of `job`'s fires, sorted.
fn instants(fires: &[Fire], job: Uuid) -> Vec<DateTime<Utc>> {
    let mut v: Vec<_> = fires
        .iter()
        .filter(|f| f.job_id == job)
        .map(|f| f.scheduled_at)
        .collect();
    v.sort();
    v
}

fn ids(fires: &[Fire]) -> HashSet<Uuid> {
    fires.iter().map(|f| f.execution_id).collect()
}

fn outcome(
    f: &Fire,
    executed_at: DateTime<Utc>,
    status_code: Option<u16>,
    duration_ms: u64,
    verdict: Verdict,
    error: Option<&str>,
) -> Outcome {
    Outcome {
        execution_id: f.execution_id,
        node: "node-a".into(),
        executed_at,
        status_code,
        duration_ms,
        verdict,
        error: error.map(str::to_owned),
        retry: None,
    }
}

fn success(f: &Fire, executed_at: DateTime<Utc>) -> Outcome {
    outcome(f, executed_at, Some(200), 12, Verdict::Succeeded, None)
}

/// A success reported by `node`, which made the call.
fn success_by(f: &Fire, executed_at: DateTime<Utc>, node: &str) -> Outcome {
    Outcome {
        node: node.into(),
        ..success(f, executed_at)
    }
}

/// Asserts two fires are the same attempt with the same job settings.
fn assert_same_fire(got: &Fire, want: &Fire) {
    assert_eq!(got.execution_id, want.execution_id, "execution id");
    assert_eq!(got.job_id, want.job_id, "job id");
    assert_eq!(got.scheduled_at, want.scheduled_at, "scheduled_at");
    assert_eq!(got.due_at, want.due_at, "due_at");
    assert_eq!(got.attempt, want.attempt, "attempt");
    assert_eq!(got.call, want.call, "call settings");
}

/// Asserts `got` holds exactly the fires of `want` (any order), attempt by attempt.
fn assert_same_fires(got: &[Fire], want: &[&Fire]) {
    assert_eq!(
        got.len(),
        want.len(),
        "fire count: got {got:?}, want {want:?}"
    );
    for w in want {
        let g = got
            .iter()
            .find(|g| g.execution_id == w.execution_id)
            .unwrap_or_else(|| panic!("fire {w:?} missing from {got:?}"));
        assert_same_fire(g, w);
    }
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// Case 1: The database answers and the store says which one it is.
async fn case_ping_and_backend(kind: Db) {
    let ctx = open(kind).await;
    ctx.store.ping().await.expect("ping");
    let want = match ctx.db.kind {
        Db::Postgres => Backend::Postgres,
        Db::Sqlite => Backend::Sqlite,
    };
    assert_eq!(ctx.store.backend(), want);
    // Still answers after a few round trips on the pool.
    for _ in 0..3 {
        ctx.store.ping().await.expect("ping again");
    }
}

/// Case 2: Inserted jobs exist, other ids do not, an id cannot be inserted twice, and a batch
/// commits all its rows or none.
async fn case_insert_and_exists(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("*/5 * * * *");
    let disabled = new_job("* * * * *");
    insert(s, &job, Some(secs(0))).await;
    insert(s, &disabled, None).await;
    assert!(s.job_exists(job.id).await.unwrap());
    assert!(s.job_exists(disabled.id).await.unwrap());
    assert!(!s.job_exists(Uuid::now_v7()).await.unwrap());
    assert!(
        s.insert_jobs(&[row(&job, Some(secs(0)))]).await.is_err(),
        "a second insert of the same id must fail"
    );
    assert!(s.job_exists(job.id).await.unwrap());

    // Many rows, more than one statement's worth, commit together.
    let many: Vec<NewJob> = (0..2500).map(|_| new_job("0 * * * *")).collect();
    let rows: Vec<JobRow> = many.iter().map(|j| row(j, Some(secs(3600)))).collect();
    s.insert_jobs(&rows).await.expect("a batch of 2500 jobs");
    for j in [&many[0], &many[999], &many[1000], &many[2499]] {
        assert!(s.job_exists(j.id).await.unwrap());
    }
    // A batch with one bad row stores none of its rows.
    let fresh: Vec<NewJob> = (0..1500).map(|_| new_job("0 * * * *")).collect();
    let mut rows: Vec<JobRow> = fresh.iter().map(|j| row(j, None)).collect();
    rows.push(row(&many[7], None));
    assert!(
        s.insert_jobs(&rows).await.is_err(),
        "a batch repeating an id must fail"
    );
    for j in [&fresh[0], &fresh[1499]] {
        assert!(
            !s.job_exists(j.id).await.unwrap(),
            "a failed batch must store nothing"
        );
    }
    assert!(s.insert_jobs(&[]).await.is_ok());
}

/// Case 2b: The group-commit writer stores every one of many concurrent jobs, and a bad row
/// fails only its own request.
async fn case_group_commit(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let writer = JobWriter::spawn(s.clone());
    let existing = new_job("0 * * * *");
    insert(s, &existing, None).await;
    let jobs: Vec<NewJob> = (0..300).map(|_| new_job("0 * * * *")).collect();
    let mut calls = tokio::task::JoinSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let (w, new) = (writer.clone(), row(job, Some(secs(60))));
        calls.spawn(async move { (i, w.insert(new).await) });
        if i == 150 {
            let (w, repeated) = (writer.clone(), row(&existing, None));
            calls.spawn(async move { (usize::MAX, w.insert(repeated).await) });
        }
    }
    let mut failed = Vec::new();
    while let Some(done) = calls.join_next().await {
        let (i, result) = done.expect("insert task");
        if result.is_err() {
            failed.push(i);
        }
    }
    assert_eq!(failed, vec![usize::MAX], "only the repeated id may fail");
    for job in &jobs {
        assert!(s.job_exists(job.id).await.unwrap(), "job {} lost", job.id);
    }
}

/// Case 3: A claim takes exactly the instants up to now + look-ahead; later claims continue from
/// the previous scheduled instant without gaps or duplicates.
async fn case_claim_window_and_continuity(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("* * * * * *");
    job.spec.retry = RetryOverride {
        max_attempts: Some(4),
        backoff_ms: Some(250),
        max_backoff_ms: None,
    };
    insert(s, &job, Some(secs(0))).await;
    // Daily at 06:00 in New York: t0 (10:00 UTC, EDT) then 24 h later. The zone must be
    // stored and used by the claim, or the next instant would be 06:00 UTC.
    let mut zoned = new_job("0 0 6 * * *");
    zoned.spec.schedule = Schedule::parse_in("0 0 6 * * *", "America/New_York").unwrap();
    insert(s, &zoned, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let p = params(Duration::seconds(2));

    let first = claim(s, "node-a", &p, &clock).await;
    assert_eq!(instants(&first, zoned.id), vec![secs(0)]);
    let first: Vec<Fire> = first.into_iter().filter(|f| f.job_id == job.id).collect();
    assert_eq!(instants(&first, job.id), vec![secs(0), secs(1), secs(2)]);
    assert_eq!(first.len(), 3);
    assert_eq!(ids(&first).len(), 3, "execution ids are distinct");
    for f in &first {
        assert_eq!(f.job_id, job.id);
        assert_eq!(f.attempt, 1);
        assert_eq!(f.due_at, f.scheduled_at);
        assert_eq!(f.call.api, job.spec.api.as_str());
        assert_eq!(f.call.delivery, Delivery::AtLeastOnce);
        assert_eq!(f.call.retry, job.spec.retry);
    }

    // Same now: the next fire time moved past the horizon.
    assert!(claim(s, "node-a", &p, &clock).await.is_empty());

    let mut all: Vec<DateTime<Utc>> = instants(&first, job.id);
    let mut all_ids = ids(&first);
    // (clock, instants expected from that claim)
    let steps: [(DateTime<Utc>, Vec<DateTime<Utc>>); 4] = [
        (ms(1500), vec![secs(3)]),
        (secs(5), vec![secs(4), secs(5), secs(6), secs(7)]),
        (ms(5200), vec![]),
        (secs(10), (8..=12).map(secs).collect()),
    ];
    for (now, want) in steps {
        clock.set(now);
        let got = claim(s, "node-a", &p, &clock).await;
        assert_eq!(instants(&got, job.id), want, "claim at {now}");
        for f in &got {
            assert!(all_ids.insert(f.execution_id), "execution id reused: {f:?}");
            assert_eq!(f.attempt, 1);
            assert_eq!(f.due_at, f.scheduled_at);
        }
        all.extend(instants(&got, job.id));
    }
    let want: Vec<_> = (0..=12).map(secs).collect();
    assert_eq!(all, want, "no gap, no duplicate across claims");

    // A day later (the per-second job misfires meanwhile; only the zoned one matters here).
    clock.set(secs(86_400) - Duration::seconds(2));
    let got = claim(s, "node-a", &p, &clock).await;
    assert_eq!(instants(&got, zoned.id), vec![secs(86_400)]);
}

/// Case 4: One claim advances at most `batch` jobs, earliest first; jobs beyond the horizon and
/// jobs without a next fire are not claimed.
async fn case_claim_batch_and_horizon(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let a = new_job("* * * * * *");
    let b = new_job("* * * * * *");
    let c = new_job("* * * * * *");
    let later = new_job("* * * * * *");
    let never = new_job("* * * * * *");
    // Inserted out of order: the claim orders by next fire time.
    insert(s, &c, Some(secs(0))).await;
    insert(s, &later, Some(secs(3600))).await;
    insert(s, &a, Some(secs(-2))).await;
    insert(s, &never, None).await;
    insert(s, &b, Some(secs(-1))).await;

    let clock = TestClock::at(secs(0));
    let mut p = params(Duration::zero());
    p.batch = 2;
    let first = claim(s, "node-a", &p, &clock).await;
    let jobs: HashSet<Uuid> = first.iter().map(|f| f.job_id).collect();
    assert_eq!(jobs, HashSet::from([a.id, b.id]), "the two earliest jobs");
    assert_eq!(instants(&first, a.id), vec![secs(-2), secs(-1), secs(0)]);
    assert_eq!(instants(&first, b.id), vec![secs(-1), secs(0)]);

    let second = s.claim_due("node-a", &p, &*clock).await.unwrap();
    assert_eq!(second.jobs, 1, "one due job left to advance");
    let second = second.fires;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(instants(&second, c.id), vec![secs(0)]);

    assert!(claim(s, "node-a", &p, &clock).await.is_empty());

    // Just before the far job's instant: still beyond the horizon.
    p.batch = 100;
    p.lookahead = Duration::seconds(2);
    clock.set(secs(3600) - Duration::milliseconds(2001));
    let got = claim(s, "node-a", &p, &clock).await;
    assert!(instants(&got, later.id).is_empty(), "{got:?}");
    assert!(instants(&got, never.id).is_empty());
    // Its instant enters the horizon.
    clock.set(secs(3600) - Duration::milliseconds(2000));
    let got = claim(s, "node-a", &p, &clock).await;
    assert_eq!(instants(&got, later.id), vec![secs(3600)]);
    assert!(instants(&got, never.id).is_empty());
}

/// Case 5: Misfire policies applied by the store: one, none and all (bounded by max_catchup).
async fn case_misfire_policies(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut one = new_job("*/10 * * * * *");
    one.spec.misfire = MisfirePolicy::One;
    let mut none = new_job("*/10 * * * * *");
    none.spec.misfire = MisfirePolicy::None;
    let mut all = new_job("*/10 * * * * *");
    all.spec.misfire = MisfirePolicy::All;
    for j in [&one, &none, &all] {
        insert(s, j, Some(secs(0))).await;
    }
    // Down from t0 to t0 + 60 s; instants t0 .. t0+50 are older than the 5 s threshold.
    let clock = TestClock::at(secs(60));
    let p = ClaimParams {
        lookahead: Duration::seconds(2),
        misfire_threshold: Duration::seconds(5),
        max_catchup: 3,
        batch: 100,
        waiting_batch: 100,
        max_fires: usize::MAX,
    };
    let got = claim(s, "node-a", &p, &clock).await;
    assert_eq!(instants(&got, one.id), vec![secs(50), secs(60)], "one");
    assert_eq!(instants(&got, none.id), vec![secs(60)], "none");
    assert_eq!(
        instants(&got, all.id),
        vec![secs(0), secs(10), secs(20), secs(60)],
        "all, bounded by max_catchup = 3"
    );
    assert_eq!(got.len(), 2 + 1 + 4);
    for f in &got {
        assert_eq!(f.attempt, 1);
        assert_eq!(
            f.due_at, f.scheduled_at,
            "catch-up fires are due at their instant"
        );
    }

    // Back on schedule: nothing more at the same now, then the next on-time instant.
    assert!(claim(s, "node-a", &p, &clock).await.is_empty());

    // Every missed instant when max_catchup allows it.
    let mut all_wide = new_job("*/10 * * * * *");
    all_wide.spec.misfire = MisfirePolicy::All;
    insert(s, &all_wide, Some(secs(0))).await;
    let wide = ClaimParams {
        max_catchup: 100,
        ..p
    };
    let got = claim(s, "node-a", &wide, &clock).await;
    assert_eq!(
        instants(&got, all_wide.id),
        (0..=6).map(|i| secs(i * 10)).collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 7, "only the new job was due: {got:?}");

    clock.set(secs(70));
    let got = claim(s, "node-a", &p, &clock).await;
    for j in [&one, &none, &all, &all_wide] {
        assert_eq!(instants(&got, j.id), vec![secs(70)], "{:?}", j.spec.misfire);
    }
    assert_eq!(got.len(), 4);

    // A claim that records no fire still advances the job: hourly, down for 2.5 hours.
    let mut hourly_none = new_job("0 0 * * * *");
    hourly_none.spec.misfire = MisfirePolicy::None;
    let mut hourly_one = new_job("0 0 * * * *");
    hourly_one.spec.misfire = MisfirePolicy::One;
    insert(s, &hourly_none, Some(secs(-2 * 3600))).await;
    insert(s, &hourly_one, Some(secs(-2 * 3600))).await;
    clock.set(secs(1800));
    let got = claim(s, "node-a", &p, &clock).await;
    assert!(instants(&got, hourly_none.id).is_empty(), "{got:?}");
    assert_eq!(instants(&got, hourly_one.id), vec![secs(0)]);
    assert!(claim(s, "node-a", &p, &clock).await.is_empty());
    clock.set(secs(3600));
    let got = claim(s, "node-a", &p, &clock).await;
    assert_eq!(instants(&got, hourly_none.id), vec![secs(3600)]);
    assert_eq!(instants(&got, hourly_one.id), vec![secs(3600)]);
}

/// Case 6: Recent executions: recorded outcomes only, newest first, bounded by the limit.
async fn case_recent_executions(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("* * * * * *");
    let idle = new_job("* * * * * *");
    insert(s, &job, Some(secs(0))).await;
    insert(s, &idle, None).await;
    let clock = TestClock::at(secs(0));
    let mut fires = claim(s, "node-a", &params(Duration::seconds(4)), &clock).await;
    fires.sort_by_key(|f| f.scheduled_at);
    assert_eq!(fires.len(), 5);

    assert!(
        s.executions_page(job.id, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed fires are not executions yet"
    );

    let recorded = [
        success(&fires[0], ms(10)),
        outcome(
            &fires[1],
            ms(1020),
            Some(500),
            30,
            Verdict::Failed,
            Some("HTTP 500"),
        ),
        outcome(&fires[2], ms(2005), Some(200), 7, Verdict::Succeeded, None),
        outcome(
            &fires[3],
            ms(3100),
            None,
            5000,
            Verdict::Failed,
            Some("connection refused"),
        ),
    ];
    // Two transactions: the history does not depend on how outcomes were batched.
    s.record_outcomes(&recorded[..1]).await.unwrap();
    s.record_outcomes(&recorded[1..]).await.unwrap();

    let view = |o: &Outcome| ExecutionSummary {
        id: o.execution_id,
        executed_at: o.executed_at,
        status_code: o.status_code,
        duration_ms: o.duration_ms,
        success: o.verdict == Verdict::Succeeded,
    };
    let newest_first: Vec<ExecutionSummary> = recorded.iter().rev().map(view).collect();

    let got = s.executions_page(job.id, None, 10).await.unwrap();
    assert_eq!(got, newest_first, "fires[4] is claimed, not listed");
    assert_eq!(got[0].status_code, None);
    assert!(!got[0].success);
    assert_eq!(got[2].status_code, Some(500));
    assert!(!got[2].success);

    let got = s.executions_page(job.id, None, 3).await.unwrap();
    assert_eq!(got, newest_first[..3].to_vec());
    let got = s.executions_page(job.id, None, 1).await.unwrap();
    assert_eq!(got, newest_first[..1].to_vec());
    assert!(s.executions_page(job.id, None, 0).await.unwrap().is_empty());

    // Newest by executed_at, not by scheduled instant.
    let late = success(&fires[4], ms(500));
    s.record_outcomes(std::slice::from_ref(&late))
        .await
        .unwrap();
    let got = s.executions_page(job.id, None, 10).await.unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[3], view(&late));
    let times: Vec<_> = got.iter().map(|v| v.executed_at).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    assert!(
        s.executions_page(idle.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.executions_page(Uuid::now_v7(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Case 7: A retry written with an outcome waits in the store, held by no node, until it is
/// due within some node's look-ahead window; then exactly one claimer takes it.
async fn case_retry_waits_for_any_claimer_within_the_window(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("0 0 10 * * *");
    job.spec.retry = RetryOverride {
        max_attempts: Some(3),
        backoff_ms: Some(2500),
        max_backoff_ms: Some(60_000),
    };
    insert(s, &job, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let fires = claim(s, "node-a", &params(Duration::zero()), &clock).await;
    assert_eq!(fires.len(), 1);
    let first = &fires[0];

    let retry = Fire {
        execution_id: Uuid::now_v7(),
        due_at: ms(2520),
        attempt: 2,
        ..first.clone()
    };
    let mut failed = outcome(
        first,
        ms(20),
        Some(503),
        15,
        Verdict::Failed,
        Some("HTTP 503"),
    );
    failed.retry = Some(retry.clone());
    let stored = s
        .record_outcomes(std::slice::from_ref(&failed))
        .await
        .unwrap();
    assert_eq!(
        stored.retries,
        vec![retry.execution_id],
        "the retry is reported stored"
    );

    // Recording the same outcome again (e.g. after a lost commit acknowledgement) must not
    // create a second attempt 2 of the same fire.
    let mut again = failed.clone();
    again.retry = Some(Fire {
        execution_id: Uuid::now_v7(),
        ..retry.clone()
    });
    let stored = s
        .record_outcomes(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert!(
        stored.outcomes.is_empty() && stored.retries.is_empty(),
        "a duplicate attempt is not reported stored: {stored:?}"
    );

    // The failed attempt is history; the retry is not (it has not run), and no node holds it.
    let history = s.executions_page(job.id, None, 10).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].id, first.execution_id);
    assert_eq!(history[0].status_code, Some(503));
    assert!(!history[0].success);
    let waiting = s
        .execution(job.id, retry.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (waiting.state, waiting.node),
        (ExecutionState::Claimed, None)
    );

    // Due beyond the window (now + 2 s = 2.000 < 2.520): no node takes it yet.
    let p = params(Duration::seconds(2));
    clock.set(secs(0));
    assert!(claim(s, "node-b", &p, &clock).await.is_empty());
    clock.set(ms(519));
    assert!(claim(s, "node-b", &p, &clock).await.is_empty());
    // Due within it: whichever node claims first takes it, as it was stored.
    clock.set(ms(520));
    let got = claim(s, "node-b", &p, &clock).await;
    assert_same_fires(&got, &[&retry]);
    assert_eq!(got[0].attempt, 2);
    assert_eq!(got[0].due_at, ms(2520));
    assert_eq!(got[0].scheduled_at, secs(0));
    let held = s
        .execution(job.id, retry.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.node.as_deref(), Some("node-b"));

    // Taken once.
    clock.set(secs(2));
    assert!(claim(s, "node-c", &p, &clock).await.is_empty());
}

/// Case 8: Liveness by heartbeat; a dead node's claimed fires are handed back to wait for
/// any claimer; remove_node and release_claimed.
async fn case_heartbeat_recover_release(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    // Three instants a day: the claims below see only the fires handed back, late, and
    // (under `all`) every one of them is called.
    let mut job = new_job("0-2 0 10 * * *");
    job.spec.misfire = MisfirePolicy::All;
    insert(s, &job, Some(secs(0))).await;
    s.heartbeat("node-a", secs(-10)).await.unwrap();
    s.heartbeat("node-a", secs(0)).await.unwrap();
    let clock = TestClock::at(secs(0));
    let p = params(Duration::seconds(2));
    let mut fires = claim(s, "node-a", &p, &clock).await;
    fires.sort_by_key(|f| f.scheduled_at);
    assert_eq!(fires.len(), 3);
    s.record_outcomes(&[success(&fires[0], ms(5))])
        .await
        .unwrap();

    // node-a heard from at t0: alive for any live_since up to t0 inclusive.
    for live_since in [secs(-1), secs(0)] {
        let r = recover(s, "node-b", live_since, secs(1)).await;
        assert_eq!(r, swept(0, 0), "live since {live_since}");
    }
    clock.set(secs(1));
    assert!(
        claim(s, "node-b", &p, &clock).await.is_empty(),
        "still node-a's"
    );

    // node-a dead: exactly its claimed, unrecorded fires are handed back, once.
    assert_eq!(recover(s, "node-b", ms(1), secs(30)).await, swept(2, 0));
    assert_eq!(recover(s, "node-b", ms(1), secs(30)).await, swept(0, 0));
    // They wait for any claimer, which takes them as they were claimed.
    clock.set(secs(30));
    let taken = claim(s, "node-b", &p, &clock).await;
    assert_same_fires(&taken, &[&fires[1], &fires[2]]);
    assert!(
        claim(s, "node-c", &p, &clock).await.is_empty(),
        "taken once"
    );

    // node-b alive: nothing of its is handed back.
    s.heartbeat("node-b", secs(30)).await.unwrap();
    assert_eq!(recover(s, "node-c", secs(20), secs(31)).await, swept(0, 0));
    // A removed node is not alive, whatever its last heartbeat.
    s.remove_node("node-b").await.unwrap();
    assert_eq!(recover(s, "node-c", secs(20), secs(32)).await, swept(2, 0));
    clock.set(secs(32));
    let taken = claim(s, "node-d", &p, &clock).await;
    assert_same_fires(&taken, &[&fires[1], &fires[2]]);

    // Recorded fires are never handed back.
    s.record_outcomes(&[
        success_by(&fires[1], secs(33), "node-d"),
        success_by(&fires[2], secs(33), "node-d"),
    ])
    .await
    .unwrap();
    assert_eq!(
        recover(s, "node-e", secs(100), secs(100)).await,
        swept(0, 0)
    );

    // Release: node-a (alive again) hands its claimed fires back at shutdown.
    let other = new_job("* * * * * *");
    insert(s, &other, Some(secs(40))).await;
    s.heartbeat("node-a", secs(40)).await.unwrap();
    clock.set(secs(40));
    let claimed = claim(s, "node-a", &p, &clock).await;
    assert_eq!(claimed.len(), 3);
    assert_eq!(recover(s, "node-f", secs(35), secs(40)).await, swept(0, 0));
    assert_eq!(s.release_claimed("node-x").await.unwrap(), 0);
    assert_eq!(
        s.release_claimed("node-a").await.unwrap(),
        claimed.len() as u64
    );
    assert_eq!(s.release_claimed("node-a").await.unwrap(), 0);
    let want: Vec<&Fire> = claimed.iter().collect();
    let taken = claim(s, "node-f", &p, &clock).await;
    assert_same_fires(&only(&taken, &want), &want);
}

/// Case 9: ATMOST_ONCE: started once, by its owner only; a dead owner's started fire becomes
/// an unknown outcome, never a fire again.
async fn case_mark_started_at_most_once(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("* * * * * *");
    job.spec.delivery = Delivery::AtMostOnce;
    insert(s, &job, Some(secs(0))).await;
    s.heartbeat("node-a", secs(0)).await.unwrap();
    let clock = TestClock::at(secs(0));
    let fires = claim(s, "node-a", &params(Duration::seconds(1)), &clock).await;
    assert_eq!(fires.len(), 2);
    let (started, idle) = if fires[0].scheduled_at < fires[1].scheduled_at {
        (&fires[0], &fires[1])
    } else {
        (&fires[1], &fires[0])
    };
    assert_eq!(started.call.delivery, Delivery::AtMostOnce);

    assert!(
        !s.mark_started(started.execution_id, "node-b", ms(3))
            .await
            .unwrap(),
        "not node-b's to start"
    );
    assert!(
        s.mark_started(started.execution_id, "node-a", ms(4))
            .await
            .unwrap()
    );
    assert!(
        !s.mark_started(started.execution_id, "node-a", ms(5))
            .await
            .unwrap(),
        "started once only"
    );
    assert!(
        !s.mark_started(started.execution_id, "node-b", ms(6))
            .await
            .unwrap()
    );
    assert!(
        !s.mark_started(Uuid::now_v7(), "node-a", ms(6))
            .await
            .unwrap()
    );
    assert!(
        s.executions_page(job.id, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "started is not an outcome yet"
    );

    // node-a alive: nothing happens.
    assert_eq!(recover(s, "node-b", secs(0), secs(1)).await, swept(0, 0));

    // node-a dead: the started fire is unknown, the idle one waits for a claimer.
    assert_eq!(recover(s, "node-b", secs(1), secs(2)).await, swept(1, 1));
    clock.set(secs(2));
    let taken = claim(s, "node-b", &params(Duration::zero()), &clock).await;
    assert!(
        !ids(&taken).contains(&started.execution_id),
        "a started ATMOST_ONCE fire is never handed out again"
    );
    assert_same_fires(&only(&taken, &[idle]), &[idle]);

    let history = s.executions_page(job.id, None, 10).await.unwrap();
    assert_eq!(
        history,
        vec![ExecutionSummary {
            id: started.execution_id,
            executed_at: ms(4),
            status_code: None,
            duration_ms: 0,
            success: false,
        }]
    );

    // Once unknown, it stays so: neither started again nor counted again.
    assert!(
        !s.mark_started(started.execution_id, "node-a", secs(3))
            .await
            .unwrap()
    );
    assert_eq!(recover(s, "node-c", secs(10), secs(10)).await.unknown, 0);
    clock.set(secs(10));
    let taken = claim(s, "node-c", &params(Duration::zero()), &clock).await;
    assert!(!ids(&taken).contains(&started.execution_id));

    // The recovered fire is node-b's to start now, not node-a's.
    assert!(
        !s.mark_started(idle.execution_id, "node-a", secs(3))
            .await
            .unwrap()
    );
}

/// Case 10: Concurrent claims by two nodes never produce the same fire twice.
async fn case_unique_fire_identity_under_concurrency(kind: Db) {
    let ctx = open(kind).await;
    let first: DynStore = ctx.store.clone();
    let second: DynStore = match ctx.db.kind {
        Db::Postgres => store::connect(&ctx.db.url, 4)
            .await
            .expect("a second PostgreSQL store"),
        Db::Sqlite => {
            let err = match store::connect(&ctx.db.url, 4).await {
                Ok(_) => panic!("a second store on the same SQLite file must be refused"),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                err.contains("another"),
                "refusal should mention another process: {err}"
            );
            ctx.store.clone()
        }
    };

    const JOBS: usize = 20;
    let mut jobs = Vec::new();
    for _ in 0..JOBS {
        let j = new_job("* * * * * *");
        insert(&first, &j, Some(secs(0))).await;
        jobs.push(j.id);
    }
    let clock = TestClock::at(secs(0));
    let p = params(Duration::seconds(2));
    let mut seen: HashSet<(Uuid, DateTime<Utc>)> = HashSet::new();
    let mut seen_ids: HashSet<Uuid> = HashSet::new();
    let mut total = 0;
    for round in 0..5i64 {
        clock.set(secs(round * 3));
        let spawn = |s: DynStore, node: &'static str| {
            let clock = clock.clone();
            tokio::spawn(async move { s.claim_due(node, &p, &*clock).await.map(|c| c.fires) })
        };
        let a = spawn(first.clone(), "node-a");
        let b = spawn(second.clone(), "node-b");
        let (a, b) = (
            a.await.unwrap().expect("claim a"),
            b.await.unwrap().expect("claim b"),
        );
        let mut round_keys = HashSet::new();
        for f in a.iter().chain(b.iter()) {
            assert!(
                round_keys.insert((f.job_id, f.scheduled_at)),
                "fire ({}, {}) claimed twice in round {round}",
                f.job_id,
                f.scheduled_at
            );
            assert!(
                seen.insert((f.job_id, f.scheduled_at)),
                "fire ({}, {}) claimed again",
                f.job_id,
                f.scheduled_at
            );
            assert!(seen_ids.insert(f.execution_id));
            assert_eq!(f.attempt, 1);
        }
        total += a.len() + b.len();
        // Together they claimed everything due: every job, three instants each.
        let want: HashSet<_> = jobs
            .iter()
            .flat_map(|j| (round * 3..round * 3 + 3).map(move |i| (*j, secs(i))))
            .collect();
        assert_eq!(round_keys, want, "round {round}");
    }
    assert_eq!(total, JOBS * 15);
    assert_eq!(seen.len(), JOBS * 15);
    if ctx.db.kind == Db::Postgres {
        second.close().await;
    }
}

/// Case 11: Instants keep their milliseconds through every operation that stores one.
async fn case_times_round_trip_in_milliseconds(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("* * * * * *");
    // A first fire off the whole second: the claim records exactly that instant.
    insert(s, &job, Some(ms(123))).await;
    let clock = TestClock::at(ms(123));
    let fires = claim(s, "node-a", &params(Duration::zero()), &clock).await;
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].scheduled_at, ms(123));
    assert_eq!(fires[0].due_at, ms(123));
    assert_eq!(fires[0].scheduled_at.timestamp_subsec_millis(), 123);
    // And steps on from it to the schedule's next instant.
    clock.set(ms(1001));
    let next = claim(s, "node-a", &params(Duration::zero()), &clock).await;
    assert_eq!(instants(&next, job.id), vec![secs(1)]);

    // executed_at of an outcome, due_at of a retry.
    let retry = Fire {
        execution_id: Uuid::now_v7(),
        due_at: ms(7789),
        attempt: 2,
        ..fires[0].clone()
    };
    let mut o = outcome(&fires[0], ms(456), Some(500), 3, Verdict::Failed, Some("x"));
    o.retry = Some(retry.clone());
    s.record_outcomes(&[o]).await.unwrap();
    let history = s.executions_page(job.id, None, 1).await.unwrap();
    assert_eq!(history[0].executed_at, ms(456));

    // A retry waits until its due millisecond enters the window.
    clock.set(ms(7788));
    let early = claim(s, "node-a", &params(Duration::zero()), &clock).await;
    assert!(!ids(&early).contains(&retry.execution_id));
    clock.set(ms(7789));
    let due = claim(s, "node-a", &params(Duration::zero()), &clock).await;
    let retried = due
        .iter()
        .find(|f| f.execution_id == retry.execution_id)
        .expect("the retry is claimed at its due millisecond");
    assert_same_fire(retried, &retry);
    assert_eq!(retried.due_at, ms(7789));
    assert_eq!(retried.scheduled_at, ms(123));

    // Heartbeats: alive at exactly the heartbeat's millisecond, dead one millisecond after.
    s.heartbeat("node-a", ms(500)).await.unwrap();
    assert_eq!(recover(s, "node-b", ms(500), ms(600)).await.released, 0);
    assert!(recover(s, "node-b", ms(501), ms(600)).await.released > 0);

    // mark_started's instant becomes the unknown outcome's executed_at.
    let mut amo = new_job("* * * * * *");
    amo.spec.delivery = Delivery::AtMostOnce;
    insert(s, &amo, Some(ms(20_250))).await;
    clock.set(ms(20_250));
    let f = claim(s, "node-b", &params(Duration::zero()), &clock).await;
    let f = f.iter().find(|f| f.job_id == amo.id).expect("claimed");
    assert_eq!(f.scheduled_at, ms(20_250));
    assert!(
        s.mark_started(f.execution_id, "node-b", ms(20_251))
            .await
            .unwrap()
    );
    let r = recover(s, "node-c", ms(30_000), ms(30_000)).await;
    assert_eq!(r.unknown, 1);
    let history = s.executions_page(amo.id, None, 1).await.unwrap();
    assert_eq!(history[0].executed_at, ms(20_251));
}

/// Case 12: Every field of a job reads back as stored; listings page by id and filter by state.
async fn case_job_records_list_by_state_and_cursor(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut full = new_job("0 30 2 * * *");
    full.spec = JobSpec {
        name: Some("nightly".into()),
        schedule: Schedule::parse_in("0 30 2 * * *", "America/New_York").unwrap(),
        api: TargetUrl::parse("https://example.com/hook").unwrap(),
        method: HttpMethod::Put,
        headers: vec![("X-B".into(), "2".into()), ("X-A".into(), "1".into())],
        body: Some("{\"x\":1}".into()),
        timeout_ms: Some(2500),
        delivery: Delivery::AtMostOnce,
        misfire: MisfirePolicy::All,
        retry: RetryOverride {
            max_attempts: Some(4),
            backoff_ms: Some(100),
            max_backoff_ms: Some(1000),
        },
        concurrency: ConcurrencyPolicy::Forbid,
        enabled: true,
        signing_secret: Some("0123456789abcdef-secret".into()),
        spread_ms: 45_000,
    };
    insert(s, &full, Some(secs(60))).await;
    let mut paused = new_job("* * * * *");
    paused.spec.enabled = false;
    insert(s, &paused, Some(secs(60))).await;
    let finished = new_job("* * * * *");
    insert(s, &finished, None).await;

    let got = s.get_job(full.id).await.unwrap().expect("stored");
    assert_eq!(got.id, full.id);
    assert_eq!(
        cronhook::api::spec::render_spec(&got.spec),
        cronhook::api::spec::render_spec(&full.spec)
    );
    assert_eq!(got.spec.headers, full.spec.headers, "header order kept");
    assert_eq!(got.next_fire_at, Some(secs(60)));
    assert_eq!(got.version, 1);
    assert_eq!(got.created_at, t0() - Duration::hours(1));
    assert!(s.get_job(Uuid::now_v7()).await.unwrap().is_none());

    let ids = |v: Vec<JobRecord>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let q = |state, after, limit| JobQuery {
        state,
        after,
        limit,
    };
    assert_eq!(
        ids(s.list_jobs(&q(None, None, 10)).await.unwrap()),
        vec![full.id, paused.id, finished.id]
    );
    assert_eq!(
        ids(s.list_jobs(&q(None, Some(full.id), 1)).await.unwrap()),
        vec![paused.id]
    );
    for (state, want) in [
        (JobState::Active, full.id),
        (JobState::Paused, paused.id),
        (JobState::Finished, finished.id),
    ] {
        assert_eq!(
            ids(s.list_jobs(&q(Some(state), None, 10)).await.unwrap()),
            vec![want],
            "{state:?}"
        );
    }
}

/// Case 13: An update withdraws the claimed attempts due after it, keeps the earliest withdrawn
/// instant as the next fire (or takes the given one), bumps the version, refuses a stale
/// version, and stops retries of the older version being stored.
async fn case_update_withdraws_claimed_fires_and_bumps_the_version(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("* * * * * *");
    insert(s, &job, Some(secs(0))).await;
    s.heartbeat("node-a", secs(0)).await.unwrap();
    let clock = TestClock::at(secs(0));
    let fires = claim(s, "node-a", &params(Duration::seconds(3)), &clock).await;
    assert_eq!(
        instants(&fires, job.id),
        vec![secs(0), secs(1), secs(2), secs(3)]
    );

    // Paused at 1.5 s: the attempts due at 2 s and 3 s are withdrawn, 0 s and 1 s are not.
    let mut spec = job.spec.clone();
    spec.enabled = false;
    let done = s
        .update_job(job.id, 1, &spec, NextFire::Keep, ms(1500))
        .await
        .unwrap();
    assert_eq!(
        done,
        Update::Applied {
            version: 2,
            next_fire_at: Some(secs(2))
        }
    );
    let kept = s.execution(job.id, fires[1].execution_id).await.unwrap();
    assert_eq!(kept.map(|e| e.state), Some(ExecutionState::Claimed));
    for f in &fires[2..] {
        assert!(s.execution(job.id, f.execution_id).await.unwrap().is_none());
    }
    let stored = s.get_job(job.id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.spec.enabled), (2, false));
    assert_eq!(stored.updated_at, ms(1500));
    // A paused job is not claimed.
    clock.set(secs(3));
    assert!(
        claim(s, "node-a", &params(Duration::seconds(3)), &clock)
            .await
            .is_empty()
    );

    // A retry of a version-1 fire is not stored any more.
    let mut o = outcome(&fires[0], ms(10), Some(500), 3, Verdict::Failed, Some("x"));
    o.retry = Some(Fire {
        execution_id: Uuid::now_v7(),
        due_at: ms(4000),
        attempt: 2,
        ..fires[0].clone()
    });
    assert!(s.record_outcomes(&[o]).await.unwrap().retries.is_empty());

    // Stale and missing jobs.
    assert_eq!(
        s.update_job(job.id, 1, &spec, NextFire::Keep, ms(1600))
            .await
            .unwrap(),
        Update::Stale
    );
    assert_eq!(
        s.update_job(Uuid::now_v7(), 1, &spec, NextFire::Keep, ms(1600))
            .await
            .unwrap(),
        Update::NotFound
    );
    // A given next fire is stored as given; the change is visible to other nodes.
    spec.enabled = true;
    let done = s
        .update_job(job.id, 2, &spec, NextFire::At(Some(secs(10))), secs(5))
        .await
        .unwrap();
    assert_eq!(
        done,
        Update::Applied {
            version: 3,
            next_fire_at: Some(secs(10))
        }
    );
    let changes = s.changes_since(secs(4)).await.unwrap();
    assert_eq!(
        changes,
        vec![cronhook::store::JobChange {
            id: job.id,
            version: 3,
            at: secs(5).timestamp_millis()
        }]
    );
    assert!(s.changes_since(secs(6)).await.unwrap().is_empty());
}

/// Case 14: Deleting a job removes it and its executions and leaves a marker other nodes see.
async fn case_delete_leaves_a_marker_and_no_history(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("* * * * * *");
    let other = new_job("* * * * * *");
    insert(s, &job, Some(secs(0))).await;
    insert(s, &other, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let fires = claim(s, "node-a", &params(Duration::seconds(1)), &clock).await;
    let mine: Vec<&Fire> = fires.iter().filter(|f| f.job_id == job.id).collect();
    s.record_outcomes(&[success(mine[0], ms(5))]).await.unwrap();
    assert!(s.delete_job(job.id, secs(2)).await.unwrap());
    assert!(s.get_job(job.id).await.unwrap().is_none());
    assert!(!s.job_exists(job.id).await.unwrap());
    assert!(
        s.execution(job.id, mine[0].execution_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.executions_page(job.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !s.delete_job(job.id, secs(3)).await.unwrap(),
        "already gone"
    );
    assert!(
        s.get_job(other.id).await.unwrap().is_some(),
        "others untouched"
    );
    let changes = s.changes_since(secs(1)).await.unwrap();
    assert_eq!(
        changes,
        vec![cronhook::store::JobChange {
            id: job.id,
            version: cronhook::store::DELETED,
            at: secs(2).timestamp_millis()
        }]
    );
}

/// Case 15: A manual trigger stores an attempt at the trigger instant (the next free
/// millisecond when the instant is taken), waiting for any claimer; none for a missing job.
async fn case_trigger_stores_a_waiting_manual_attempt(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("0 0 0 1 1 *");
    job.spec.method = HttpMethod::Delete;
    insert(s, &job, None).await;
    let a = s.trigger(job.id, ms(1234)).await.unwrap().unwrap();
    let b = s.trigger(job.id, ms(1234)).await.unwrap().unwrap();
    assert_eq!(a.scheduled_at, ms(1234));
    assert_eq!(b.scheduled_at, ms(1235), "the next free millisecond");
    let d = s.execution(job.id, a.execution_id).await.unwrap().unwrap();
    assert_eq!(d.trigger, Trigger::Manual);
    assert_eq!((d.state, d.node), (ExecutionState::Claimed, None));
    assert_eq!((d.due_at, d.attempt), (ms(1234), 1));
    assert!(s.trigger(Uuid::now_v7(), ms(1)).await.unwrap().is_none());

    // The next claim takes both, with the job's call settings.
    let clock = TestClock::at(ms(1234));
    let taken = claim(s, "node-a", &params(Duration::seconds(1)), &clock).await;
    assert_eq!(ids(&taken), HashSet::from([a.execution_id, b.execution_id]));
    let first = taken
        .iter()
        .find(|f| f.execution_id == a.execution_id)
        .unwrap();
    assert_eq!(
        (first.scheduled_at, first.due_at, first.attempt),
        (ms(1234), ms(1234), 1)
    );
    assert_eq!(first.call.method, HttpMethod::Delete);
    assert_eq!(first.call.version, 1);

    // A manual attempt's outcome is history like any other.
    s.record_outcomes(&[success(first, ms(1240))])
        .await
        .unwrap();
    let d = s.execution(job.id, a.execution_id).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.status_code, d.success),
        (ExecutionState::Succeeded, Some(200), Some(true))
    );
    assert_eq!(
        s.executions_page(job.id, None, 5).await.unwrap()[0].id,
        a.execution_id
    );
}

/// Case 16: History pages by `(executed_at, id)` cursor, newest first, with ties at one
/// instant split correctly.
async fn case_executions_page_by_cursor_and_detail(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("* * * * * *");
    insert(s, &job, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let fires = claim(s, "node-a", &params(Duration::seconds(6)), &clock).await;
    assert_eq!(fires.len(), 7);
    // Two pairs share an executed_at instant.
    let at = [
        ms(10),
        ms(1010),
        ms(1010),
        ms(3010),
        ms(4010),
        ms(4010),
        ms(6010),
    ];
    let outcomes: Vec<Outcome> = fires.iter().zip(at).map(|(f, t)| success(f, t)).collect();
    s.record_outcomes(&outcomes).await.unwrap();
    let whole = s.executions_page(job.id, None, 100).await.unwrap();
    assert_eq!(whole.len(), 7);
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = s.executions_page(job.id, before, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| (e.executed_at, e.id));
        paged.extend(page);
    }
    assert_eq!(
        paged, whole,
        "pages join into the whole history without gaps or repeats"
    );
    let d = s
        .execution(job.id, fires[3].execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.scheduled_at, secs(3));
    assert_eq!(d.executed_at, Some(ms(3010)));
    assert_eq!(d.attempt, 1);
    assert_eq!(d.trigger, Trigger::Schedule);
    assert_eq!(d.node, None, "a finished attempt belongs to no node");
    assert!(
        s.execution(Uuid::now_v7(), fires[3].execution_id)
            .await
            .unwrap()
            .is_none(),
        "an execution is read through its own job only"
    );
}

/// Case 17: A job forbidding overlaps starts an attempt only while no other of its attempts
/// runs, else records it skipped; a dead node's started ATLEAST_ONCE attempt is called again.
async fn case_exclusive_start_skips_overlaps_and_recovers(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("* * * * * *");
    job.spec.concurrency = ConcurrencyPolicy::Forbid;
    insert(s, &job, Some(secs(0))).await;
    s.heartbeat("node-a", secs(0)).await.unwrap();
    let clock = TestClock::at(secs(0));
    let mut fires = claim(s, "node-a", &params(Duration::seconds(2)), &clock).await;
    fires.sort_by_key(|f| f.scheduled_at);
    assert_eq!(fires.len(), 3);
    assert_eq!(fires[0].call.concurrency, ConcurrencyPolicy::Forbid);
    let start = |f: &Fire, node: &'static str, at| {
        let (e, j) = (f.execution_id, f.job_id);
        async move { s.start_exclusive(e, j, node, at).await.unwrap() }
    };
    assert_eq!(start(&fires[0], "node-a", ms(1)).await, Exclusive::Started);
    assert_eq!(
        start(&fires[1], "node-a", secs(1)).await,
        Exclusive::Skipped
    );
    let skipped = s
        .execution(job.id, fires[1].execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.state, ExecutionState::Skipped);
    assert_eq!(skipped.executed_at, Some(secs(1)));
    assert_eq!(skipped.success, Some(false));
    assert!(skipped.error.unwrap().contains("overlapping"));
    let history = s.executions_page(job.id, None, 10).await.unwrap();
    assert_eq!(history.len(), 1, "the skipped fire is history: {history:?}");
    assert_eq!((history[0].status_code, history[0].success), (None, false));

    s.record_outcomes(&[success(&fires[0], ms(1))])
        .await
        .unwrap();
    assert_eq!(
        start(&fires[2], "node-b", secs(2)).await,
        Exclusive::NotOurs
    );
    assert_eq!(
        start(&fires[2], "node-a", secs(2)).await,
        Exclusive::Started
    );
    assert_eq!(
        start(&fires[2], "node-a", secs(2)).await,
        Exclusive::NotOurs
    );

    // node-a dies with the attempt started: it waits to be called again, nothing is unknown.
    s.heartbeat("node-b", secs(30)).await.unwrap();
    assert_eq!(recover(s, "node-b", secs(20), secs(30)).await, swept(1, 0));
    let d = s
        .execution(job.id, fires[2].execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.state, d.node), (ExecutionState::Claimed, None));
    assert_eq!(d.executed_at, None);
    clock.set(secs(30));
    let taken = claim(s, "node-b", &params(Duration::zero()), &clock).await;
    assert_same_fires(&only(&taken, &[&fires[2]]), &[&fires[2]]);
}

/// Case 18: A job at 09:00 in America/New_York is claimed at 14:00 UTC in winter and 13:00 UTC
/// in summer, across both DST changes of 2024, with the clock injected.
async fn case_new_york_job_fires_at_the_right_utc_instants_across_dst(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let utc = |m, d, h| Utc.with_ymd_and_hms(2024, m, d, h, 0, 0).unwrap();
    for (start, want) in [
        // Spring forward on Sunday 10 March.
        (
            utc(3, 8, 0),
            vec![utc(3, 8, 14), utc(3, 9, 14), utc(3, 10, 13), utc(3, 11, 13)],
        ),
        // Fall back on Sunday 3 November.
        (
            utc(11, 1, 0),
            vec![
                utc(11, 1, 13),
                utc(11, 2, 13),
                utc(11, 3, 14),
                utc(11, 4, 14),
            ],
        ),
    ] {
        let mut job = new_job("0 0 9 * * *");
        job.spec.schedule = Schedule::parse_in("0 0 9 * * *", "America/New_York").unwrap();
        insert(s, &job, job.spec.schedule.next_after(start)).await;
        let clock = TestClock::at(start);
        let mut got = Vec::new();
        for instant in &want {
            // Half a second before each instant, a one-second window holds exactly it.
            clock.set(*instant - Duration::milliseconds(500));
            got.extend(instants(
                &claim(s, "node-a", &params(Duration::seconds(1)), &clock).await,
                job.id,
            ));
        }
        assert_eq!(got, want);
    }
}

/// Case 19: Pruning keeps exactly the newest K finished executions of each job (and drops
/// those past the maximum age). A sweep visits only the jobs with executions recorded since
/// the last sweep, and only the node holding the pruning lease sweeps.
async fn case_pruning_keeps_the_newest_k_per_job(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job("* * * * * *")).collect();
    for j in &jobs {
        insert(s, j, Some(secs(0))).await;
    }
    let clock = TestClock::at(secs(0));
    let fires = claim(s, "node-a", &params(Duration::seconds(9)), &clock).await;
    assert_eq!(fires.len(), 30);
    // Every attempt but the last of each job finishes; the last stays claimed.
    let finish = |fires: &[Fire]| -> Vec<Outcome> {
        fires
            .iter()
            .filter(|f| f.scheduled_at < secs(9))
            .map(|f| success(f, f.scheduled_at + Duration::milliseconds(5)))
            .collect()
    };
    s.record_outcomes(&finish(&fires)).await.unwrap();
    let lease = Arc::new(cronhook::lease::Lease::new(
        std::time::Duration::from_secs(15),
        clock.clone(),
    ));
    let pruner = |max_age: Option<std::time::Duration>| Pruner {
        store: s.clone(),
        retention: Retention {
            keep: 4,
            max_age,
            interval: std::time::Duration::from_secs(1),
            jobs_per_step: 2,
            batch: 2,
        },
        clock: clock.clone(),
        lease: lease.clone(),
        revisit: Default::default(),
    };
    // Two jobs between lease renewals, 2 rows per statement, keeping 4.
    let first = pruner(None);
    let sweep = first.sweep("node-a").await.unwrap();
    assert_eq!(
        (
            sweep.held,
            sweep.jobs,
            sweep.rows,
            sweep.deleted,
            sweep.more
        ),
        (true, 3, 30, 15, false)
    );
    for j in &jobs {
        let kept = s.executions_page(j.id, None, 100).await.unwrap();
        let at: Vec<_> = kept.iter().map(|e| e.executed_at).collect();
        let want: Vec<_> = (5..9)
            .rev()
            .map(|n| secs(n) + Duration::milliseconds(5))
            .collect();
        assert_eq!(at, want, "the newest 4 are kept");
        let open = fires
            .iter()
            .find(|f| f.job_id == j.id && f.scheduled_at == secs(9))
            .unwrap();
        let d = s.execution(j.id, open.execution_id).await.unwrap().unwrap();
        assert_eq!(
            d.state,
            ExecutionState::Claimed,
            "unfinished attempts are never pruned"
        );
    }
    // A call read before it ran (the mark has passed its row) finishes: the same pruner
    // visits its job again and brings it back to 4.
    let open0 = fires
        .iter()
        .find(|f| f.job_id == jobs[0].id && f.scheduled_at == secs(9))
        .unwrap();
    s.record_outcomes(&[success(open0, secs(9) + Duration::milliseconds(5))])
        .await
        .unwrap();
    let again = first.sweep("node-a").await.unwrap();
    assert_eq!((again.jobs, again.rows, again.deleted), (3, 0, 1));
    assert_eq!(
        s.executions_page(jobs[0].id, None, 100)
            .await
            .unwrap()
            .len(),
        4
    );
    // Nothing recorded since: the next sweep visits no job and reads no row.
    let idle = pruner(None).sweep("node-a").await.unwrap();
    assert_eq!(
        (idle.held, idle.jobs, idle.rows, idle.deleted),
        (true, 0, 0, 0)
    );
    // Another node does not sweep while node-a holds the lease.
    assert!(!pruner(None).sweep("node-b").await.unwrap().held);

    // A new job runs: only it is visited.
    let late = new_job("* * * * * *");
    insert(s, &late, Some(secs(0))).await;
    let more = claim(s, "node-a", &params(Duration::seconds(9)), &clock).await;
    assert!(more.iter().all(|f| f.job_id == late.id));
    s.record_outcomes(&finish(&more)).await.unwrap();
    let sweep = pruner(None).sweep("node-a").await.unwrap();
    assert_eq!((sweep.jobs, sweep.rows, sweep.deleted), (1, 10, 5));

    // A maximum age removes every finished execution older than it, whatever K says. The
    // aged rows are found by id (created before they ran), so the cutoff is on the real
    // clock here, like the ids: now less 100 s, seen from 100 s ahead. By then node-a's
    // lease has lapsed and node-b sweeps.
    clock.set(Utc::now() + Duration::seconds(100));
    let sweep = pruner(Some(std::time::Duration::from_secs(100)))
        .sweep("node-b")
        .await
        .unwrap();
    assert!(sweep.held, "node-b takes over a lapsed lease");
    assert_eq!((sweep.jobs, sweep.deleted), (0, 16), "4 jobs × 4 kept");
    for j in jobs.iter().chain([&late]) {
        let left = s.executions_page(j.id, None, 100).await.unwrap();
        assert!(left.is_empty(), "only the unfinished attempt is left");
    }
    let open = fires
        .iter()
        .find(|f| f.job_id == jobs[1].id && f.scheduled_at == secs(9))
        .unwrap();
    assert!(
        s.execution(open.job_id, open.execution_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!pruner(None).sweep("node-a").await.unwrap().held);
}

/// Case 21: An attempt that could not be marked started is handed back by its node only, to
/// wait until its new due instant; a started attempt cannot be handed back.
async fn case_postpone_hands_an_unstarted_attempt_back(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("0-1 0 10 * * *");
    job.spec.delivery = Delivery::AtMostOnce;
    insert(s, &job, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let mut fires = claim(s, "node-a", &params(Duration::seconds(1)), &clock).await;
    fires.sort_by_key(|f| f.scheduled_at);
    assert_eq!(fires.len(), 2);
    let (idle, started) = (&fires[0], &fires[1]);
    assert!(
        s.mark_started(started.execution_id, "node-a", ms(1))
            .await
            .unwrap()
    );

    assert!(
        !postpone(s, idle.execution_id, "node-b", secs(5)).await,
        "not node-b's"
    );
    assert!(
        !postpone(s, started.execution_id, "node-b", secs(5)).await,
        "started by node-a, not node-b's"
    );
    // node-a's start was recorded but it never heard so (a lost reply), and sent nothing:
    // an ATMOST_ONCE start is never undone, so the attempt ends unknown, not started.
    assert!(postpone(s, started.execution_id, "node-a", secs(5)).await);
    let d = s
        .execution(job.id, started.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.state, d.node, d.success, d.executed_at),
        (ExecutionState::Unknown, None, Some(false), Some(ms(1)))
    );
    assert!(postpone(s, idle.execution_id, "node-a", secs(5)).await);
    assert!(
        !postpone(s, idle.execution_id, "node-a", secs(6)).await,
        "once"
    );
    let d = s
        .execution(job.id, idle.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.state, d.node, d.due_at),
        (ExecutionState::Claimed, None, secs(5))
    );

    let p = params(Duration::seconds(1));
    clock.set(ms(3999));
    assert!(
        claim(s, "node-b", &p, &clock).await.is_empty(),
        "not due within the window"
    );
    clock.set(secs(4));
    let taken = claim(s, "node-b", &p, &clock).await;
    assert_eq!(ids(&taken), HashSet::from([idle.execution_id]));
    assert_eq!(taken[0].due_at, secs(5));
    assert_eq!(taken[0].scheduled_at, idle.scheduled_at);
}

/// Case 22: An outcome is stored only by the node holding its attempt, in a state awaiting
/// one: a node that lost its attempt to recovery cannot overwrite the outcome another node
/// recorded, nor schedule a retry.
async fn case_a_late_outcome_is_fenced_out(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("0 0 10 * * *");
    job.spec.retry = RetryOverride {
        max_attempts: Some(3),
        ..RetryOverride::default()
    };
    insert(s, &job, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let p = params(Duration::zero());
    let fire = claim(s, "node-a", &p, &clock).await.remove(0);

    // node-a goes silent mid-call; node-b hands its attempt back, claims it and records it.
    assert_eq!(recover(s, "node-b", secs(1), secs(20)).await, swept(1, 0));
    clock.set(secs(20));
    let again = claim(s, "node-b", &p, &clock).await;
    assert_same_fires(&again, &[&fire]);
    let by_b = success_by(&fire, secs(21), "node-b");
    let late_a = {
        let mut o = outcome(&fire, secs(30), Some(503), 9, Verdict::Failed, Some("503"));
        o.retry = Some(Fire {
            execution_id: Uuid::now_v7(),
            attempt: 2,
            due_at: secs(31),
            ..fire.clone()
        });
        o
    };
    // node-a's late failure, before and after node-b's success: neither counts.
    let early = s
        .record_outcomes(std::slice::from_ref(&late_a))
        .await
        .unwrap();
    assert_eq!(
        early,
        Recorded::default(),
        "held by node-b: not node-a's to record"
    );
    let recorded = s
        .record_outcomes(std::slice::from_ref(&by_b))
        .await
        .unwrap();
    assert_eq!(recorded.outcomes, vec![fire.execution_id]);
    let late = s
        .record_outcomes(std::slice::from_ref(&late_a))
        .await
        .unwrap();
    assert_eq!(late, Recorded::default(), "finished: nothing overwrites it");

    let d = s
        .execution(job.id, fire.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.state, d.status_code, d.success, d.executed_at),
        (
            ExecutionState::Succeeded,
            Some(200),
            Some(true),
            Some(secs(21))
        )
    );
    clock.set(secs(40));
    assert!(
        claim(s, "node-c", &params(Duration::seconds(60)), &clock)
            .await
            .is_empty(),
        "no retry was scheduled by the late outcome"
    );
}

/// Case 23: An exclusive ATLEAST_ONCE start recorded though its node never heard so (and
/// sent nothing) is handed back to wait and be called, and the job's later fires are not
/// skipped for it.
async fn case_a_lost_start_reply_does_not_block_a_forbid_job(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let mut job = new_job("0-1 0 10 * * *");
    job.spec.concurrency = ConcurrencyPolicy::Forbid;
    insert(s, &job, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let mut fires = claim(s, "node-a", &params(Duration::seconds(1)), &clock).await;
    fires.sort_by_key(|f| f.scheduled_at);
    let (first, second) = (&fires[0], &fires[1]);
    let start = |f: &Fire, at| {
        let (e, j) = (f.execution_id, f.job_id);
        async move { s.start_exclusive(e, j, "node-a", at).await.unwrap() }
    };
    assert_eq!(start(first, ms(1)).await, Exclusive::Started);
    // The reply was lost: node-a hands the attempt back instead of calling.
    assert!(postpone(s, first.execution_id, "node-a", secs(3)).await);
    let d = s
        .execution(job.id, first.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.state, d.node, d.executed_at, d.due_at),
        (ExecutionState::Claimed, None, None, secs(3))
    );
    // Nothing runs: the next fire starts instead of being skipped.
    assert_eq!(start(second, secs(1)).await, Exclusive::Started);
    s.record_outcomes(&[success(second, secs(1))])
        .await
        .unwrap();
    // The handed-back attempt is claimed again when due and is called.
    clock.set(secs(2));
    let again = claim(s, "node-b", &params(Duration::seconds(1)), &clock).await;
    assert_eq!(ids(&again), HashSet::from([first.execution_id]));
    assert_eq!((again[0].scheduled_at, again[0].due_at), (secs(0), secs(3)));
}

/// Three jobs with five instants a day (10:00:00 .. 10:00:04), first due at 0, with the
/// misfire policies `none`, `one` and `all`, in that order.
async fn one_job_per_misfire_policy(s: &DynStore) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for policy in [MisfirePolicy::None, MisfirePolicy::One, MisfirePolicy::All] {
        let mut job = new_job("0-4 0 10 * * *");
        job.spec.misfire = policy;
        insert(s, &job, Some(secs(0))).await;
        jobs.push(job);
    }
    jobs
}

/// Case 24: Fires handed back by a dead node and claimed past the misfire threshold follow
/// their job's policy: `none` records them skipped, `one` calls only the latest, `all` calls
/// each (up to the catch-up bound); a manual call and a retry are called however late.
async fn case_handed_back_fires_follow_the_misfire_policy(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let jobs = one_job_per_misfire_policy(s).await;
    let clock = TestClock::at(secs(0));
    let p = params(Duration::seconds(4));
    let claimed = claim(s, "node-a", &p, &clock).await;
    assert_eq!(claimed.len(), 15);
    let manual = s.trigger(jobs[0].id, secs(0)).await.unwrap().unwrap();
    // node-a dies; its fires are handed back 30 s later and claimed at once.
    s.heartbeat("node-a", secs(0)).await.unwrap();
    assert_eq!(recover(s, "node-b", secs(15), secs(30)).await, swept(15, 0));
    clock.set(secs(30));
    let taken = claim(s, "node-b", &p, &clock).await;
    let (none, one, all) = (jobs[0].id, jobs[1].id, jobs[2].id);
    assert_eq!(
        taken
            .iter()
            .filter(|f| f.job_id == none)
            .map(|f| f.execution_id)
            .collect::<Vec<_>>(),
        vec![manual.execution_id],
        "none: only the manual call"
    );
    assert_eq!(instants(&taken, one), vec![secs(4)], "one: the latest");
    assert_eq!(
        instants(&taken, all),
        vec![secs(0), secs(1), secs(2)],
        "all: up to max_catchup (3)"
    );
    // The others are recorded skipped, with why, and never claimed again.
    let history = s.executions_page(none, None, 10).await.unwrap();
    assert_eq!(history.len(), 5);
    assert!(history.iter().all(|e| !e.success));
    let skipped = claimed
        .iter()
        .find(|f| f.job_id == none)
        .map(|f| f.execution_id)
        .unwrap();
    let d = s.execution(none, skipped).await.unwrap().unwrap();
    assert_eq!((d.state, d.node), (ExecutionState::Skipped, None));
    assert!(d.error.unwrap().contains("misfirePolicy none"));
    assert_eq!(s.executions_page(one, None, 10).await.unwrap().len(), 4);
    assert_eq!(s.executions_page(all, None, 10).await.unwrap().len(), 2);
    clock.set(secs(31));
    assert!(claim(s, "node-c", &p, &clock).await.is_empty());
}

/// Case 25: An attempt whose outcome cannot be stored is recorded unknown by the node that
/// holds it, claimed or started; never one another node holds, nor a finished one.
async fn case_an_abandoned_attempt_ends_unknown(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let job = new_job("0-1 0 10 * * *");
    insert(s, &job, Some(secs(0))).await;
    let clock = TestClock::at(secs(0));
    let mut fires = claim(s, "node-a", &params(Duration::seconds(1)), &clock).await;
    fires.sort_by_key(|f| f.scheduled_at);
    let (claimed, started) = (&fires[0], &fires[1]);
    assert!(
        s.mark_started(started.execution_id, "node-a", ms(1))
            .await
            .unwrap()
    );
    for f in [claimed, started] {
        assert!(
            !s.abandon(f.execution_id, "node-b", secs(1), "why")
                .await
                .unwrap()
        );
        assert!(
            s.abandon(f.execution_id, "node-a", secs(1), "why")
                .await
                .unwrap()
        );
        assert!(
            !s.abandon(f.execution_id, "node-a", secs(2), "why")
                .await
                .unwrap()
        );
        let d = s.execution(job.id, f.execution_id).await.unwrap().unwrap();
        assert_eq!(
            (d.state, d.node, d.success, d.error.as_deref()),
            (ExecutionState::Unknown, None, Some(false), Some("why"))
        );
    }
    let d = s
        .execution(job.id, started.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.executed_at,
        Some(ms(1)),
        "a started attempt keeps its start"
    );
    // Nothing is left to recover, and no started row blocks the job.
    assert_eq!(
        recover(s, "node-b", secs(100), secs(100)).await,
        swept(0, 0)
    );
}

/// Case 26: Nodes confirm up to which instant they read job changes; a change waits for the
/// live nodes that have not confirmed it.
async fn case_nodes_confirm_reading_changes(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    s.heartbeat("node-a", secs(0)).await.unwrap();
    s.heartbeat("node-b", secs(0)).await.unwrap();
    s.heartbeat("node-dead", secs(-60)).await.unwrap();
    let mut waiting = s.unconfirmed(secs(-15), secs(1)).await.unwrap();
    waiting.sort();
    assert_eq!(
        waiting,
        vec!["node-a".to_owned(), "node-b".to_owned()],
        "dead nodes are not waited for"
    );
    s.confirm_read(&["node-a".to_owned()], secs(2))
        .await
        .unwrap();
    assert_eq!(
        s.unconfirmed(secs(-15), secs(1)).await.unwrap(),
        vec!["node-b".to_owned()]
    );
    assert_eq!(
        s.unconfirmed(secs(-15), secs(2)).await.unwrap(),
        vec!["node-b".to_owned()]
    );
    // A confirmation never goes back.
    s.confirm_read(&["node-a".to_owned(), "node-b".to_owned()], secs(3))
        .await
        .unwrap();
    s.confirm_read(&["node-a".to_owned()], secs(1))
        .await
        .unwrap();
    assert!(s.unconfirmed(secs(-15), secs(3)).await.unwrap().is_empty());
    assert_eq!(s.unconfirmed(secs(-15), ms(3001)).await.unwrap().len(), 2);
}

/// Case 27: The forbid check (is another attempt of the job running?) is answered from the
/// partial index of started attempts, not by reading the job's whole history.
async fn case_the_forbid_check_reads_an_index(kind: Db) {
    use sqlx::Connection;
    let db = TestDb::new(kind).await;
    let _store = store::connect(&db.url, 2)
        .await
        .expect("connect and migrate");
    let id = Uuid::now_v7();
    let sql = store::OTHER_RUNNING
        .replace("$1", &format!("'{id}'"))
        .replace("$2", &format!("'{id}'"));
    let plan: Vec<String> = match kind {
        Db::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            // On an empty table any plan is cheap: forbid the sequential scan to see
            // whether an index serves the query at all.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
        Db::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let sql = sql.replace(&format!("'{id}'"), "X'00'");
            sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {sql}"
            )))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.3)
            .collect()
        }
    };
    let plan = plan.join("\n");
    assert!(plan.contains("executions_running"), "{plan}");
}

/// A node shedding fires hands them back in one call, and a claim takes no more waiting
/// attempts than its `waiting_batch`: the claimer's room for them.
async fn case_hand_backs_go_in_one_batch_and_waiting_claims_are_bounded(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    for _ in 0..3 {
        insert(s, &new_job("* * * * * *"), Some(secs(0))).await;
    }
    let clock = TestClock::at(secs(0));
    let first = s
        .claim_due("node-a", &params(Duration::seconds(1)), clock.as_ref())
        .await
        .unwrap();
    assert_eq!(first.fires.len(), 6, "three jobs, instants 0 and 1");
    assert_eq!(first.first_attempts, 6, "all new first attempts");

    let mut back: Vec<Handback> = first
        .fires
        .iter()
        .map(|f| Handback {
            execution: f.execution_id,
            node: Arc::from("node-a"),
            due_at: secs(0),
        })
        .collect();
    back[5].node = Arc::from("node-b");
    assert_eq!(s.postpone(&back).await.unwrap(), 5, "all but node-b's one");
    assert_eq!(s.postpone(&back).await.unwrap(), 0, "each once");

    let bounded = ClaimParams {
        waiting_batch: 2,
        ..params(Duration::seconds(1))
    };
    let mut taken = Vec::new();
    for want in [2, 2, 1, 0] {
        let got = s
            .claim_due("node-c", &bounded, clock.as_ref())
            .await
            .unwrap();
        assert_eq!(
            (got.fires.len(), got.first_attempts, got.waiting),
            (want, 0, want),
            "waiting attempts come back {want} at a time"
        );
        taken.extend(got.fires.into_iter().map(|f| f.execution_id));
    }
    let unique: HashSet<Uuid> = taken.iter().copied().collect();
    assert_eq!(unique.len(), 5, "each handed-back attempt is claimed once");
    assert!(
        !unique.contains(&back[5].execution),
        "node-a still holds its own"
    );
}

/// Case 29: Shedding, in a transaction of its own, records skipped the late waiting first
/// attempts their policies drop (`none` all, `one` all but the latest) and counts them;
/// `all` fires and manual calls stay for a claim, which then takes no shed one.
async fn case_shedding_records_late_waiting_fires_by_policy(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let jobs = one_job_per_misfire_policy(s).await;
    let clock = TestClock::at(secs(0));
    let p = params(Duration::seconds(4));
    assert_eq!(claim(s, "node-a", &p, &clock).await.len(), 15);
    let manual = s.trigger(jobs[0].id, secs(0)).await.unwrap().unwrap();
    s.heartbeat("node-a", secs(0)).await.unwrap();
    assert_eq!(recover(s, "node-b", secs(15), secs(30)).await, swept(15, 0));
    clock.set(secs(30));
    let shed = s.shed_late(&p, clock.as_ref()).await.unwrap();
    assert_eq!(
        (shed.none, shed.one, shed.all),
        (5, 4, 0),
        "none: all five; one: all but the latest; all: none"
    );
    assert_eq!(
        s.shed_late(&p, clock.as_ref()).await.unwrap(),
        store::Misfires::default(),
        "each once"
    );
    let taken = claim(s, "node-b", &p, &clock).await;
    let (none, one, all) = (jobs[0].id, jobs[1].id, jobs[2].id);
    let of = |job: Uuid| -> Vec<Uuid> {
        taken
            .iter()
            .filter(|f| f.job_id == job)
            .map(|f| f.execution_id)
            .collect()
    };
    assert_eq!(of(none), vec![manual.execution_id], "none: the manual call");
    assert_eq!(instants(&taken, one), vec![secs(4)], "one: the latest");
    assert_eq!(instants(&taken, all), vec![secs(0), secs(1), secs(2)]);
    let history = s.executions_page(none, None, 10).await.unwrap();
    assert_eq!(history.len(), 5, "the shed fires are history");
    assert!(history.iter().all(|e| !e.success));
}

/// Case 30: The census counts enabled and paused jobs and the nodes heard from lately.
async fn case_census_counts_jobs_by_state_and_live_nodes(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    let empty = s.census(secs(0)).await.unwrap();
    assert_eq!((empty.enabled, empty.paused, empty.nodes), (0, 0, 0));
    for _ in 0..3 {
        insert(s, &new_job("* * * * * *"), Some(secs(0))).await;
    }
    let mut paused = new_job("* * * * * *");
    paused.spec.enabled = false;
    insert(s, &paused, None).await;
    s.heartbeat("node-a", secs(10)).await.unwrap();
    s.heartbeat("node-b", secs(20)).await.unwrap();
    let c = s.census(secs(15)).await.unwrap();
    assert_eq!((c.enabled, c.paused, c.nodes), (3, 1, 1), "node-a is stale");
    assert_eq!(s.census(secs(5)).await.unwrap().nodes, 2);
}

/// Case 31: A spread job's fires keep their instants and are due its offset after them: the
/// claim plans them so and advances the job to the next due instant, the spread round-trips,
/// and a waiting first attempt is late (shed by its policy) only counting from its due
/// instant.
async fn case_spread_fires_are_due_their_offset_after_each_instant(kind: Db) {
    let ctx = open(kind).await;
    let s = &ctx.store;
    // A ten-minute spread and an id whose offset is at least a minute, so that an instant
    // far behind the misfire threshold can still be due within it.
    let (job, offset) = loop {
        let mut job = new_job("* * * * * *");
        job.spec.spread_ms = 600_000;
        job.spec.misfire = MisfirePolicy::None;
        let offset = spread_offset_ms(job.id, job.spec.spread_ms);
        if offset >= 60_000 {
            break (job, Duration::milliseconds(offset));
        }
    };
    insert(s, &job, Some(secs(0) + offset)).await;
    let stored = s.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(stored.spec.spread_ms, 600_000);
    assert_eq!(stored.next_fire_at, Some(secs(0) + offset));

    // Look-ahead 2 s from 1 s before the first due instant: the horizon is 1 s after it, so
    // instants 0 and 1 are due by then and instant 2 a second later.
    let clock = TestClock::at(secs(0) + offset - Duration::seconds(1));
    let p = params(Duration::seconds(2));
    let fires = claim(s, "node-a", &p, &clock).await;
    assert_eq!(instants(&fires, job.id), vec![secs(0), secs(1)]);
    for f in &fires {
        assert_eq!(
            f.due_at - f.scheduled_at,
            offset,
            "due its offset after the instant"
        );
    }
    let advanced = s.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(advanced.next_fire_at, Some(secs(2) + offset));

    // Handed back unsent, the first fire waits in the store, due when it was.
    assert!(postpone(s, fires[0].execution_id, "node-a", fires[0].due_at).await);
    // Its instant is a minute or more behind the 5 s threshold, but it fell due 3 s ago:
    // not late, so nothing is shed.
    clock.set(secs(0) + offset + Duration::seconds(3));
    let shed = s.shed_late(&p, clock.as_ref()).await.unwrap();
    assert_eq!(
        shed,
        store::Misfires::default(),
        "not late from its due instant"
    );
    // Ten seconds after it fell due it is late, and `none` sheds it.
    clock.set(secs(0) + offset + Duration::seconds(10));
    let shed = s.shed_late(&p, clock.as_ref()).await.unwrap();
    assert_eq!((shed.none, shed.one, shed.all), (1, 0, 0));

    // A new spread starts again from the instant after the change, at the new offset.
    let mut spec = stored.spec.clone();
    spec.spread_ms = 0;
    let now = secs(0) + offset + Duration::seconds(10);
    let next = spec.first_due(job.id, now);
    let updated = s
        .update_job(job.id, stored.version, &spec, NextFire::At(next), now)
        .await
        .unwrap();
    let Update::Applied { next_fire_at, .. } = updated else {
        panic!("not applied: {updated:?}");
    };
    assert_eq!(next_fire_at, next);
    let read = s.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(read.spec.spread_ms, 0);
    assert_eq!(
        read.next_fire_at.map(|t| t.timestamp_subsec_millis()),
        Some(0)
    );
}
