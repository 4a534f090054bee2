//! The outcome writer never leaves an attempt unresolved: when the database refuses a batch
//! (here PostgreSQL refusing a NUL character in one outcome's error text), the batch is
//! written one outcome at a time, and the one still refused is recorded `unknown`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Db, TestDb};
use cronhook::clock::{Clock, SystemClock};
use cronhook::domain::execution::ExecutionState;
use cronhook::domain::fire::{Outcome, Verdict};
use cronhook::domain::job::{Delivery, JobSpec, NewJob, TargetUrl};
use cronhook::domain::schedule::Schedule;
use cronhook::lease::Lease;
use cronhook::store::{self, ClaimParams, JobRow};
use cronhook::worker::outcomes::{OutcomeWriter, REFUSED, Report};
use tokio::sync::mpsc::unbounded_channel;
use uuid::Uuid;

struct FixedClock(Mutex<DateTime<Utc>>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_database_refuses_ends_unknown_and_takes_no_other_with_it() {
    let db = TestDb::new(Db::Postgres).await;
    let store = store::connect(&db.url, 4).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let job = NewJob {
        id: Uuid::now_v7(),
        spec: JobSpec::new(
            Schedule::parse("0-2 0 10 * * *").unwrap(),
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
    let params = ClaimParams {
        lookahead: Duration::seconds(2),
        misfire_threshold: Duration::seconds(5),
        max_catchup: 10,
        batch: 100,
        waiting_batch: 100,
        max_fires: usize::MAX,
    };
    let clock = FixedClock(Mutex::new(t0));
    let mut fires = store
        .claim_due("node-a", &params, &clock)
        .await
        .unwrap()
        .fires;
    fires.sort_by_key(|f| f.scheduled_at);
    assert_eq!(fires.len(), 3);

    let lease = Arc::new(Lease::new(
        StdDuration::from_secs(15),
        Arc::new(SystemClock),
    ));
    let (reports, incoming) = unbounded_channel();
    let writer = tokio::spawn(
        OutcomeWriter {
            incoming,
            store: store.clone(),
            lease: lease.clone(),
            stats: Arc::default(),
        }
        .run(),
    );
    for (i, f) in fires.iter().enumerate() {
        let error = (i == 1).then(|| "the target wrote a NUL: \0".to_owned());
        let outcome = Outcome {
            execution_id: f.execution_id,
            node: "node-a".into(),
            executed_at: f.scheduled_at,
            status_code: Some(200),
            duration_ms: 3,
            verdict: Verdict::Succeeded,
            error,
            retry: None,
        };
        lease.begin(0);
        reports.send(Report::Outcome(outcome, 0)).unwrap();
    }
    drop(reports);
    tokio::time::timeout(StdDuration::from_secs(60), writer)
        .await
        .expect("the writer gives up on a refused write in bounded time")
        .unwrap();

    let state = |i: usize| {
        let (store, id) = (store.clone(), fires[i].execution_id);
        async move { store.execution(job.id, id).await.unwrap().unwrap() }
    };
    for i in [0, 2] {
        let e = state(i).await;
        assert_eq!(
            (e.state, e.success),
            (ExecutionState::Succeeded, Some(true))
        );
    }
    let refused = state(1).await;
    assert_eq!(
        (
            refused.state,
            refused.success,
            refused.node,
            refused.error.as_deref()
        ),
        (ExecutionState::Unknown, Some(false), None, Some(REFUSED))
    );
    // Every call's epoch is settled: nothing keeps the node's identity alive for it.
    assert_eq!(lease.all_ids().len(), 1);
}
