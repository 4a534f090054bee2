//! Retries with backoff, and calls that time out on time.

use std::time::Duration;

use serde_json::json;

use crate::common::{
    Behaviour, Db, Server, Target, TestDb, create_job, eventually, eventually_async, executions_of,
};
use crate::{SERIAL, instant_of, rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_twice_then_ok_gives_three_attempts_with_backoff() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour {
        fail_first: 2,
        ..Behaviour::default()
    })
    .await;
    let server = Server::start(&db.url, &[]);
    let job = create_job(
        &server,
        json!({"schedule": "*/30 * * * * *", "api": target.url(), "retry": {"maxAttempts": 5, "backoffMs": 400, "maxBackoffMs": 5000}}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(45), || target.calls_of(&job).len() >= 3).await,
        "three calls"
    );
    let calls = target.calls_of(&job);
    let first = &calls[0];
    let same_fire: Vec<_> = calls.iter().filter(|c| c.key == first.key).collect();
    assert_eq!(same_fire.len(), 3, "three attempts at one fire");
    assert_eq!(
        same_fire.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        same_fire.iter().all(|c| instant_of(c) == instant_of(first)),
        "same scheduled instant"
    );
    // Backoff with jitter: the first delay is 200..400 ms, the second 400..800 ms.
    let gap1 = same_fire[1].at - same_fire[0].at;
    let gap2 = same_fire[2].at - same_fire[1].at;
    assert!(
        gap1 >= Duration::from_millis(190) && gap1 <= Duration::from_millis(1200),
        "first backoff {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(390) && gap2 <= Duration::from_millis(1800),
        "second backoff {gap2:?}"
    );
    // Every attempt is recorded: two failures with 500, then the success.
    let ok = eventually_async(Duration::from_secs(5), || async {
        rows(&db.url)
            .await
            .iter()
            .any(|r| r.attempt == 3 && r.success == Some(true))
    })
    .await;
    assert!(ok, "third attempt recorded as a success");
    let rows = rows(&db.url).await;
    let fire: Vec<_> = rows
        .iter()
        .filter(|r| r.scheduled_at == instant_of(first))
        .collect();
    assert_eq!(fire.len(), 3);
    assert_eq!(
        fire.iter()
            .map(|r| (r.attempt, r.status_code, r.success))
            .collect::<Vec<_>>(),
        [
            (1, Some(500), Some(false)),
            (2, Some(500), Some(false)),
            (3, Some(200), Some(true)),
        ]
    );
    let list = executions_of(&server, &job).await;
    assert_eq!(
        list.iter()
            .map(|e| e["success"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, false, false]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_times_out_on_time() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour {
        delay: Duration::from_secs(20),
        ..Behaviour::default()
    })
    .await;
    let server = Server::start(&db.url, &[("CALL_TIMEOUT_MS", "1000".into())]);
    let job = create_job(
        &server,
        json!({"schedule": "*/30 * * * * *", "api": target.url(), "retry": {"maxAttempts": 1}}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    let list = loop {
        let list = executions_of(&server, &job).await;
        if !list.is_empty() || std::time::Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0]["statusCode"].is_null());
    assert_eq!(list[0]["success"], false);
    let took = list[0]["durationMs"].as_u64().unwrap();
    assert!(
        (1000..1400).contains(&took),
        "timed out after {took} ms for a 1000 ms timeout"
    );
    assert!(server.log_text().contains("timed out after 1000 ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_an_hour_away_waits_in_the_store_held_by_no_node() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour {
        status: 500,
        ..Behaviour::default()
    })
    .await;
    let server = Server::start(&db.url, &crate::common::fast_env());
    // Once a year, so only the manual call below fires.
    let job = create_job(
        &server,
        json!({"schedule": "0 0 0 1 1 *", "api": target.url(),
               "retry": {"maxAttempts": 2, "backoffMs": 3_600_000, "maxBackoffMs": 3_600_000}}),
    )
    .await;
    let triggered = crate::common::client()
        .post(server.url(&format!("/jobs/{job}/trigger")))
        .send()
        .await
        .unwrap();
    assert_eq!(triggered.status(), 202);
    let called_at = crate::now_ms();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            rows(&db.url).await.iter().any(|r| r.attempt == 2)
        })
        .await,
        "the retry is stored with the failed call"
    );
    let url = db.url.clone();
    let retry: (Option<String>, i64, String) = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_as("SELECT node_id, due_at, state FROM executions WHERE attempt = 2")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    // Backoff with jitter: due between 30 and 60 minutes after the call.
    let (node, due_at, state) = retry;
    assert!(
        (called_at + 1_800_000 - 5_000..=called_at + 3_600_000).contains(&due_at),
        "due {} ms after the call",
        due_at - called_at
    );
    assert_eq!(state, "claimed");
    assert_eq!(node, None, "no node holds an attempt due beyond its window");
    // Still held by no node a few claim intervals later, and nothing is queued in memory.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let node: Option<String> = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT node_id FROM executions WHERE attempt = 2")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(node, None);
    assert_eq!(target.calls_of(&job).len(), 1, "called once so far");
}
