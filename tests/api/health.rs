//! `/health` and `/dummy`.

use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Db, Server, TestDb, client};

async fn health_reports_healthy_with_worker_sizes(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &[]);
    let resp = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h: Value = resp.json().await.unwrap();
    assert_eq!(h["status"], "healthy");
    assert!(chrono::DateTime::parse_from_rfc3339(h["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(h["worker"]["queueSize"], 0);
    assert_eq!(h["worker"]["activeWorkers"], 0);
}

async fn dummy_answers_and_logs_what_it_received(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &[]);
    let resp = client()
        .post(server.url("/dummy"))
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["received"]["hello"], "world");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        server.log_text().contains("dummy received a call"),
        "logged"
    );
}

both_backends!(
    health_reports_healthy_with_worker_sizes,
    dummy_answers_and_logs_what_it_received
);

/// A database the node can read but not write is unhealthy, not healthy: the heartbeat (a
/// write) fails, so the node makes no calls, and `/health` says why; a create answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_unhealthy() {
    let db = TestDb::new(Db::Sqlite).await;
    // Migrated while writable, then opened read-only (as root, file permissions would not
    // stop the writes).
    drop(cronhook::store::connect(&db.url, 2).await.expect("migrate"));
    let server = Server::start(&format!("{}?mode=ro", db.url), &[]);
    let resp = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let h: Value = resp.json().await.unwrap();
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert!(
        h["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("database not writable")),
        "{h}"
    );
    let resp = client()
        .post(server.url("/jobs"))
        .json(&json!({"schedule": "* * * * * *", "api": "http://127.0.0.1:9/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    assert_eq!(crate::count_rows(&db.url, "jobs").await, 0);
}
