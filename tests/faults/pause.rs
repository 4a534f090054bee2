//! A node paused (`kill -STOP`) with a call in flight, for longer than its lease, then
//! resumed (`kill -CONT`) while the node that recovered the fire is still calling it: the
//! paused node's late outcome changes nothing in the store, neither while the other node's
//! call runs (only the node fence holds then) nor after.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Behaviour, Db, Server, Target, TestDb, client, create_job, eventually};
use crate::{SERIAL, rows};

const LEASE_MS: u64 = 3000;
/// How long A's call takes: it is answered while A is stopped.
const A_CALL: Duration = Duration::from_secs(5);
/// How long B's call takes: still running when A is resumed.
const B_CALL: Duration = Duration::from_secs(8);
/// How long node A stays stopped at least: well past its lease.
const PAUSE: Duration = Duration::from_secs(8);

/// Sends `signal` (`STOP` or `CONT`) to the server's process.
fn signal(server: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} succeeded");
}

/// The `status` of every `call` log line of one execution, in order.
fn logged_calls(server: &Server, execution: &str) -> Vec<Option<u64>> {
    server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "call" && v["execution_id"] == execution)
        .map(|v| v["status"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_lease_mid_call_cannot_overwrite_the_recovered_outcome() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    // The first call of the fire answers 500, every later one 200 (`fail_first` counts the
    // fire's earlier calls); each call takes the delay set when it arrives.
    let target = Target::start(Behaviour {
        delay: A_CALL,
        fail_first: 1,
        ..Behaviour::default()
    })
    .await;
    let env = [("LEASE_MS", LEASE_MS.to_string())];
    let a = Server::start(&db.url, &env);
    // Once a year, so only the manual call below fires; a retry soon after a failure, so a
    // retry scheduled by A's late 500 would show.
    let job = create_job(
        &a,
        json!({"schedule": "0 0 0 1 1 *", "api": target.url(), "type": "ATLEAST_ONCE",
               "retry": {"maxAttempts": 3, "backoffMs": 200, "maxBackoffMs": 200}}),
    )
    .await;
    let job_id: Uuid = job.parse().unwrap();
    let triggered = client()
        .post(a.url(&format!("/jobs/{job}/trigger")))
        .send()
        .await
        .unwrap();
    assert_eq!(triggered.status(), 202);
    let triggered: Value = triggered.json().await.unwrap();
    let execution = triggered["executionId"].as_str().unwrap().to_owned();

    // Only A runs, so A makes the first call; once it arrives, A is stopped mid-call.
    assert!(
        eventually(Duration::from_secs(5), || !target.calls_of(&job).is_empty()).await,
        "node A calls the fire"
    );
    signal(&a, "STOP");
    let stopped = Instant::now();
    target.set(Behaviour {
        delay: B_CALL,
        fail_first: 1,
        ..Behaviour::default()
    });
    let b = Server::start(&db.url, &env);

    // B takes the fire over once A's lease expired, and calls it.
    assert!(
        eventually(Duration::from_secs(7), || target.calls_of(&job).len() >= 2).await,
        "node B calls the fire while A is stopped"
    );
    let b_called = Instant::now();
    // A's last heartbeat was at most one heartbeat period (a third of the lease) before it
    // was stopped, so its lease lapsed no sooner than two thirds of the lease after.
    let taken_over = target.calls_of(&job)[1]
        .at
        .saturating_duration_since(stopped);
    assert!(
        taken_over >= Duration::from_millis(LEASE_MS / 2),
        "taken over only once A's lease lapsed, not {taken_over:?} after A stopped"
    );
    // A is resumed while B's call runs (B_CALL is longer than what is left of the pause).
    tokio::time::sleep(PAUSE.saturating_sub(stopped.elapsed())).await;
    signal(&a, "CONT");

    // A reads its 500, and the store refuses its outcome: the attempt is B's now.
    assert!(
        eventually(Duration::from_secs(5), || a
            .log_text()
            .contains("late outcome not recorded"))
        .await,
        "node A logs its late outcome: {}",
        a.log_text()
    );
    assert!(
        b_called.elapsed() < B_CALL - Duration::from_millis(500),
        "A's outcome came back while B's call still ran"
    );
    let during: Vec<_> = rows(&db.url)
        .await
        .into_iter()
        .filter(|r| r.job_id == job_id)
        .collect();
    assert_eq!(during.len(), 1, "no retry from A's 500: {during:?}");
    assert_eq!(
        (during[0].state.as_str(), during[0].success),
        ("claimed", None),
        "A's outcome did not land on the attempt B holds: {during:?}"
    );

    // B's outcome is stored once its call answers.
    assert!(
        crate::common::eventually_async(Duration::from_secs(10), || async {
            rows(&db.url)
                .await
                .iter()
                .any(|r| r.job_id == job_id && r.success.is_some())
        })
        .await,
        "B's outcome is stored"
    );
    // Time for anything A's late outcome could have caused (a retry due 200 ms later).
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The target saw the fire twice, once from each node, under one execution and key.
    let calls = target.calls_of(&job);
    assert_eq!(calls.len(), 2, "two calls: {calls:?}");
    assert!(calls.iter().all(|c| c.execution_id == execution));
    assert!(calls.iter().all(|c| c.key == calls[0].key));
    assert!(calls.iter().all(|c| c.attempt == 1));
    assert_eq!(logged_calls(&a, &execution), [Some(500)], "A's call");
    assert_eq!(logged_calls(&b, &execution), [Some(200)], "B's call");

    // The store holds B's outcome only: one row, attempt 1, succeeded with 200, and no
    // retry from A's 500.
    let rows: Vec<_> = rows(&db.url)
        .await
        .into_iter()
        .filter(|r| r.job_id == job_id)
        .collect();
    assert_eq!(rows.len(), 1, "one attempt of the fire: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.attempt, 1);
    assert_eq!(row.state, "succeeded", "{row:?}");
    assert_eq!(row.success, Some(true));
    assert_eq!(row.status_code, Some(200));
}
