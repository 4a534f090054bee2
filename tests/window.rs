//! The timer only ever holds fires due within the look-ahead window: the claimer is its only
//! input, and whatever is due later (a retry an hour away) waits in the store, held by no
//! node, until it enters some node's window.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Db, TestDb};
use cronhook::clock::Clock;
use cronhook::domain::fire::{Fire, Outcome, Verdict};
use cronhook::domain::job::{Delivery, JobSpec, NewJob, TargetUrl};
use cronhook::domain::schedule::Schedule;
use cronhook::lease::Lease;
use cronhook::scheduler::claimer::Claimer;
use cronhook::store::{self, ClaimParams, JobRow};
use tokio::sync::Notify;
use tokio::sync::mpsc::unbounded_channel;
use uuid::Uuid;

/// A clock the test moves.
struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

async fn only_the_window_reaches_the_timer(kind: Db) {
    let db = TestDb::new(kind).await;
    let store = store::connect(&db.url, 4).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let job = NewJob {
        id: Uuid::now_v7(),
        spec: JobSpec::new(
            Schedule::parse("*/10 * * * * *").unwrap(),
            TargetUrl::parse("http://127.0.0.1:9/").unwrap(),
            Delivery::AtLeastOnce,
        ),
    };
    store
        .insert_jobs(&[JobRow {
            job: job.clone(),
            first_fire: Some(t0),
            created_at: t0,
        }])
        .await
        .unwrap();
    let lease = Arc::new(Lease::new(StdDuration::from_secs(15), clock.clone()));
    let lookahead = Duration::seconds(2);
    let (timer, mut held) = unbounded_channel();
    let claimer = Claimer {
        store: store.clone(),
        lease: lease.clone(),
        timer,
        params: ClaimParams {
            lookahead,
            misfire_threshold: Duration::seconds(5),
            max_catchup: 10,
            batch: 100,
            waiting_batch: 100,
            max_fires: usize::MAX,
        },
        interval: StdDuration::from_millis(250),
        clock: clock.clone(),
        wake: Arc::new(Notify::new()),
        stats: Arc::default(),
        max_claimed: 50_000,
    };

    let mut retry: Option<Fire> = None;
    let mut retry_claimed_at = None;
    let mut first_attempts = 0;
    // Seventy minutes in steps of one second: the retry is due an hour after the first call.
    for step in 0..4200 {
        let now = t0 + Duration::seconds(step);
        *clock.0.lock().unwrap() = now;
        lease.beat(&store).await.unwrap();
        claimer.run_once().await.unwrap();
        while let Ok(batch) = held.try_recv() {
            for h in batch {
                assert!(
                    h.fire.due_at <= now + lookahead,
                    "at {now} the timer got a fire due at {}",
                    h.fire.due_at
                );
                if h.fire.attempt == 2 {
                    assert!(retry_claimed_at.is_none(), "the retry is claimed once");
                    retry_claimed_at = Some(now);
                    continue;
                }
                first_attempts += 1;
                // The first call fails, and its retry is due an hour later.
                let next = retry.is_none().then(|| Fire {
                    execution_id: Uuid::now_v7(),
                    attempt: 2,
                    due_at: now + Duration::hours(1),
                    ..h.fire.clone()
                });
                let outcome = Outcome {
                    execution_id: h.fire.execution_id,
                    node: h.node.clone(),
                    executed_at: now,
                    status_code: Some(if next.is_some() { 503 } else { 200 }),
                    duration_ms: 5,
                    verdict: if next.is_some() {
                        Verdict::Failed
                    } else {
                        Verdict::Succeeded
                    },
                    error: None,
                    retry: next.clone(),
                };
                store.record_outcomes(&[outcome]).await.unwrap();
                if next.is_some() {
                    retry = next;
                }
            }
        }
    }
    let retry = retry.expect("a retry was stored");
    // Claimed at the first step whose window reached it, not before, and not held meanwhile.
    assert_eq!(retry_claimed_at, Some(retry.due_at - lookahead));
    assert_eq!(
        first_attempts,
        4200 / 10 + 1,
        "every instant of the schedule claimed"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_window_reaches_the_timer_sqlite() {
    only_the_window_reaches_the_timer(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_window_reaches_the_timer_postgres() {
    only_the_window_reaches_the_timer(Db::Postgres).await
}
