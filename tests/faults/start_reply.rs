//! A start recorded in the store whose reply is lost (the `fault-injection` build's
//! `CRONHOOK_FAULT_LOSE_START_REPLIES`): nothing is sent for that attempt; an ATMOST_ONCE one
//! ends `unknown`, an exclusive ATLEAST_ONCE one is called later, and no started row is left
//! behind to make a `forbid` job skip its later fires.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use cronhook::faults::LOSE_START_REPLIES;
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::common::{Behaviour, Db, Server, Target, TestDb, create_job, eventually};
use crate::{Row, SERIAL, instant_of, rows};

/// What the fault point logs each time it loses a reply.
const FAULT_LOGGED: &str = "fault injection: the reply of a recorded start is lost";

/// The job's rows.
async fn rows_of(url: &str, job: &str) -> Vec<Row> {
    let id: Uuid = job.parse().unwrap();
    rows(url)
        .await
        .into_iter()
        .filter(|r| r.job_id == id)
        .collect()
}

/// The error recorded on each `unknown` row of the store.
async fn unknown_errors(url: &str) -> Vec<Option<String>> {
    let sql = "SELECT error FROM executions WHERE state = 'unknown'";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
    }
}

/// The execution ids the server logged it could not mark started.
fn not_started(server: &Server) -> Vec<String> {
    server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "cannot mark the fire started")
        .filter_map(|v| v["execution_id"].as_str().map(str::to_owned))
        .collect()
}

/// Starts a server whose first recorded start loses its reply.
fn start_losing_one_reply(db: &TestDb) -> Server {
    Server::start(&db.url, &[(LOSE_START_REPLIES, "1".into())])
}

/// The fault point fired once: the binary under test has it (one built without the
/// `fault-injection` feature never logs it, and this fails).
fn fault_fired_once(server: &Server) {
    let logs = server.log_text();
    assert_eq!(
        logs.matches(FAULT_LOGGED).count(),
        1,
        "the binary under test has the fault point, and it fired once: {logs}"
    );
    assert_eq!(not_started(server).len(), 1, "one start reply lost: {logs}");
}

/// Instants `first`, `first + step`, ... up to the largest in `got`; none missing.
fn contiguous(got: &BTreeSet<i64>, first: i64, step: i64) -> bool {
    match got.last() {
        Some(&last) => *got == (first..=last).step_by(step as usize).collect(),
        None => false,
    }
}

async fn at_most_once(kind: Db) {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(kind).await;
    let target = Target::start(Behaviour::default()).await;
    let mut server = start_losing_one_reply(&db);
    let job = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url(), "type": "ATMOST_ONCE"}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), || target.calls_of(&job).len() >= 4).await,
        "the job keeps firing: {:?}",
        target.calls_of(&job)
    );
    // A clean stop: calls in flight finish and their outcomes are stored.
    assert!(server.terminate(Duration::from_secs(10)), "clean shutdown");
    fault_fired_once(&server);

    let rows = rows_of(&db.url, &job).await;
    let unknown: Vec<&Row> = rows.iter().filter(|r| r.state == "unknown").collect();
    assert_eq!(unknown.len(), 1, "one attempt ends unknown: {rows:?}");
    let lost = unknown[0];
    assert_eq!(lost.success, Some(false));
    assert_eq!(lost.status_code, None);
    assert_eq!(lost.attempt, 1);
    assert_eq!(
        lost.scheduled_at,
        rows.iter().map(|r| r.scheduled_at).min().unwrap(),
        "the first fire is the one whose start reply was lost: {rows:?}"
    );
    let errors = unknown_errors(&db.url).await;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .as_deref()
            .unwrap_or("")
            .contains("acknowledgement was lost, so the call was not made"),
        "{errors:?}"
    );

    // That fire was never sent; every later one was, once, and recorded succeeded.
    let lost_id = not_started(&server).remove(0);
    let calls = target.calls_of(&job);
    assert!(
        calls
            .iter()
            .all(|c| instant_of(c) != lost.scheduled_at && c.execution_id != lost_id),
        "the fire whose start reply was lost is not called: {calls:?}"
    );
    let mut per_instant: HashMap<i64, usize> = HashMap::new();
    for c in &calls {
        *per_instant.entry(instant_of(c)).or_default() += 1;
    }
    assert!(
        per_instant.values().all(|&n| n == 1),
        "each fire called once: {per_instant:?}"
    );
    let succeeded: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.state == "succeeded")
        .map(|r| r.scheduled_at)
        .collect();
    assert!(
        contiguous(&succeeded, lost.scheduled_at + 1000, 1000) && succeeded.len() >= 3,
        "every later fire recorded succeeded: {rows:?}"
    );
    let called: BTreeSet<i64> = per_instant.keys().copied().collect();
    assert_eq!(called, succeeded, "the calls are the recorded successes");
    assert!(
        rows.iter()
            .all(|r| matches!(r.state.as_str(), "succeeded" | "unknown" | "claimed")),
        "only successes, the unknown one and fires not yet due: {rows:?}"
    );
}

async fn forbid(kind: Db) {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(kind).await;
    let target = Target::start(Behaviour::default()).await;
    let mut server = start_losing_one_reply(&db);
    // Every two seconds: the attempt handed back (due one second later) is called between
    // two fires, so no overlap with the next fire can make a legitimate skip.
    let job = create_job(
        &server,
        json!({"schedule": "*/2 * * * * *", "api": target.url(), "type": "ATLEAST_ONCE",
               "concurrencyPolicy": "forbid"}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(20), || target.calls_of(&job).len() >= 5).await,
        "the job keeps firing: {:?}",
        target.calls_of(&job)
    );
    assert!(server.terminate(Duration::from_secs(10)), "clean shutdown");
    fault_fired_once(&server);

    // The attempt whose start reply was lost went back to wait and was called later, once.
    let lost = not_started(&server).remove(0);
    let calls = target.calls_of(&job);
    let lost_calls: Vec<_> = calls.iter().filter(|c| c.execution_id == lost).collect();
    assert_eq!(lost_calls.len(), 1, "called once, later: {calls:?}");
    let lost_at = instant_of(lost_calls[0]);
    let sent_at = lost_calls[0].body["sentAt"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap()
        .timestamp_millis();
    assert!(
        sent_at - lost_at >= 900,
        "called about a second late, after the hand-back: {} ms",
        sent_at - lost_at
    );

    let rows = rows_of(&db.url, &job).await;
    assert!(
        rows.iter().all(|r| r.state != "started"),
        "no started row left: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.state != "skipped"),
        "no fire skipped: {rows:?}"
    );
    assert_eq!(
        rows.iter().map(|r| r.scheduled_at).min(),
        Some(lost_at),
        "the first fire is the one whose start reply was lost: {rows:?}"
    );
    let lost_rows: Vec<&Row> = rows.iter().filter(|r| r.scheduled_at == lost_at).collect();
    assert_eq!(lost_rows.len(), 1, "one attempt at that fire: {rows:?}");
    assert_eq!(
        (lost_rows[0].attempt, lost_rows[0].state.as_str()),
        (1, "succeeded")
    );
    // Every fire from the first on succeeded, each called once.
    let succeeded: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.state == "succeeded")
        .map(|r| r.scheduled_at)
        .collect();
    assert!(
        contiguous(&succeeded, lost_at, 2000) && succeeded.len() >= 5,
        "every fire recorded succeeded: {rows:?}"
    );
    let per_fire = target.per_fire();
    assert!(
        calls.iter().all(|c| per_fire[&c.key] == 1),
        "each fire called once: {per_fire:?}"
    );
    assert!(
        rows.iter().all(|r| r.state == "succeeded"
            || (r.state == "claimed" && r.scheduled_at > *succeeded.last().unwrap())),
        "only successes and fires not yet due: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_start_reply_of_an_at_most_once_fire_ends_unknown_on_postgres() {
    at_most_once(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_start_reply_of_an_at_most_once_fire_ends_unknown_on_sqlite() {
    at_most_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_start_reply_of_a_forbid_job_leaves_no_started_row_on_postgres() {
    forbid(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_start_reply_of_a_forbid_job_leaves_no_started_row_on_sqlite() {
    forbid(Db::Sqlite).await;
}
