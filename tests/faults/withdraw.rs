//! A change while a retry waits in the store: a `PATCH` of the target and a `DELETE` withdraw
//! the pending retries, so the old target is never called again once the answer is back,
//! and the changed job's later fires go to its new target.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

use crate::common::{Behaviour, Db, Server, Target, TestDb, client, create_job, eventually};
use crate::{SERIAL, instant_of, now_ms, rows};

/// The retry's backoff: with jitter it is due 3 to 6 s after the failed call.
const BACKOFF_MS: u64 = 6000;
/// The second instant of the schedule, after the first.
const SECOND_FIRE_MS: i64 = 12_000;

/// Attempts numbered 2 or more: (job, attempt, state, node).
async fn retries(url: &str) -> Vec<(Uuid, i32, String, Option<String>)> {
    let sql = "SELECT job_id, attempt, state, node_id FROM executions WHERE attempt > 1";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

/// Two jobs fail their first fire and wait for a retry; one is re-pointed, one deleted.
/// With two nodes (PostgreSQL), the jobs are created on one and changed on the other.
async fn change_during_a_pending_retry(kind: Db, nodes: usize) {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(kind).await;
    let old = Target::start(Behaviour {
        status: 500,
        ..Behaviour::default()
    })
    .await;
    let new = Target::start(Behaviour::default()).await;
    let servers: Vec<Server> = (0..nodes).map(|_| Server::start(&db.url, &[])).collect();
    let first = &servers[0];
    let other = &servers[nodes - 1];

    // Two instants a minute, 12 s apart, the first about 3 s from now.
    let first_fire = (now_ms() / 1000 + 3) * 1000;
    let second_fire = first_fire + SECOND_FIRE_MS;
    let (s1, s2) = ((first_fire / 1000) % 60, (second_fire / 1000) % 60);
    let schedule = format!("{},{} * * * * *", s1.min(s2), s1.max(s2));
    let spec = json!({"schedule": schedule, "api": old.url(), "type": "ATLEAST_ONCE",
        "retry": {"maxAttempts": 3, "backoffMs": BACKOFF_MS, "maxBackoffMs": BACKOFF_MS}});
    let a = create_job(first, spec.clone()).await;
    let b = create_job(first, spec).await;
    let (a_id, b_id): (Uuid, Uuid) = (a.parse().unwrap(), b.parse().unwrap());

    // Both fail their first fire, and each retry waits in the store, held by no node.
    assert!(
        eventually(Duration::from_secs(10), || old.calls().len() >= 2).await,
        "both jobs call the old target"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let waiting = loop {
        let waiting = retries(&db.url).await;
        if waiting.len() >= 2 || Instant::now() > deadline {
            break waiting;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut expected = vec![
        (a_id, 2, "claimed".to_owned(), None),
        (b_id, 2, "claimed".to_owned(), None),
    ];
    expected.sort();
    let mut got = waiting.clone();
    got.sort();
    assert_eq!(got, expected, "the retries wait in the store");
    let failed_at = now_ms();

    // Re-point A, delete B; each answer's arrival is the instant after which the old
    // target must not be called for that job.
    let patched = client()
        .patch(other.url(&format!("/jobs/{a}")))
        .json(&json!({"api": new.url()}))
        .send()
        .await
        .unwrap();
    let patched_at = Instant::now();
    assert_eq!(patched.status(), 200, "{:?}", patched.text().await);
    let deleted = client()
        .delete(other.url(&format!("/jobs/{b}")))
        .send()
        .await
        .unwrap();
    let deleted_at = Instant::now();
    assert_eq!(deleted.status(), 204);
    assert!(
        now_ms() - failed_at < 2000,
        "changed well before the retries were due"
    );

    // Well past the latest the retries could have been due.
    let past_due = failed_at + BACKOFF_MS as i64 + 2000;
    tokio::time::sleep(Duration::from_millis((past_due - now_ms()).max(0) as u64)).await;
    let calls = old.calls();
    assert!(
        calls
            .iter()
            .filter(|c| c.job_id == a)
            .all(|c| c.at < patched_at),
        "the old target is not called for A after the PATCH answered: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.job_id == b)
            .all(|c| c.at < deleted_at),
        "the old target is not called for B after the DELETE answered: {calls:?}"
    );
    assert_eq!(old.calls_of(&a).len(), 1, "A's first attempt only");
    assert_eq!(old.calls_of(&b).len(), 1, "B's first attempt only");
    assert!(
        new.calls_of(&a).is_empty(),
        "the withdrawn retry is not made to the new target either"
    );
    let stored = rows(&db.url).await;
    let a_rows: Vec<_> = stored.iter().filter(|r| r.job_id == a_id).collect();
    assert_eq!(
        a_rows.len(),
        1,
        "A's fire has its failed first attempt only: {a_rows:?}"
    );
    assert_eq!(
        (
            a_rows[0].scheduled_at,
            a_rows[0].attempt,
            a_rows[0].state.as_str(),
            a_rows[0].status_code
        ),
        (first_fire, 1, "failed", Some(500))
    );
    assert!(
        stored.iter().all(|r| r.job_id != b_id),
        "B's history went with it: {stored:?}"
    );
    assert!(retries(&db.url).await.is_empty(), "no retry is stored");

    // A's next instant goes to the new target, and succeeds.
    assert!(
        eventually(Duration::from_secs(10), || !new.calls_of(&a).is_empty()).await,
        "A's next fire calls the new target"
    );
    let to_new = new.calls_of(&a);
    assert_eq!(to_new.len(), 1, "{to_new:?}");
    assert_eq!(instant_of(&to_new[0]), second_fire);
    assert_eq!(to_new[0].attempt, 1);
    assert!(
        crate::common::eventually_async(Duration::from_secs(5), || async {
            rows(&db.url).await.iter().any(|r| {
                r.job_id == a_id && r.scheduled_at == second_fire && r.success == Some(true)
            })
        })
        .await,
        "A's second fire recorded succeeded"
    );
    assert_eq!(
        old.calls().len(),
        2,
        "the old target was called twice in all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_withdraws_a_pending_retry_on_postgres() {
    change_during_a_pending_retry(Db::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_withdraws_a_pending_retry_on_sqlite() {
    change_during_a_pending_retry(Db::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_withdraws_a_pending_retry_on_two_postgres_nodes() {
    change_during_a_pending_retry(Db::Postgres, 2).await;
}
