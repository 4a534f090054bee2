//! A change made on one node is honoured by the others when it is answered, without
//! sleeping: two nodes on one PostgreSQL, reading changes unannounced only every 10 s, so
//! only the announcement (LISTEN/NOTIFY) and the confirmation protocol can make it so. A
//! node paused while a change is made holds the answer until it has read the change.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::SERIAL;
use crate::common::{Behaviour, Db, Server, Target, TestDb, client, create_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_is_honoured_by_the_other_when_answered() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let (old, new) = (
        Target::start(Behaviour::default()).await,
        Target::start(Behaviour::default()).await,
    );
    // Unannounced reads every 10 s (the lease is long enough not to shorten that).
    let env = [
        ("CHANGE_POLL_MS", "10000".to_string()),
        ("LEASE_MS", "30000".to_string()),
    ];
    let (a, b) = (Server::start(&db.url, &env), Server::start(&db.url, &env));
    let mut jobs = Vec::new();
    for _ in 0..12 {
        let body = json!({"schedule": "* * * * * *", "api": old.url()});
        jobs.push(create_job(&a, body).await);
    }
    // Both nodes call these jobs (which node claims a second's fires is a race).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        b.log_text().contains(r#""message":"call""#),
        "node B makes calls: {}",
        b.log_text()
    );

    // Every job but the last is edited on A, the last deleted on A; each answer's instant is
    // kept. Fires of the old versions are already claimed, within B's look-ahead.
    let mut answered = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let sent = Instant::now();
        let resp = if i + 1 < jobs.len() {
            client()
                .patch(a.url(&format!("/jobs/{job}")))
                .json(&json!({"api": new.url()}))
                .send()
                .await
                .unwrap()
        } else {
            client()
                .delete(a.url(&format!("/jobs/{job}")))
                .send()
                .await
                .unwrap()
        };
        assert!(resp.status().is_success(), "{}", resp.status());
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "a change is answered once the other node confirmed it, not after a poll: {took:?}"
        );
        answered.push(Instant::now());
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    // No call to the old URL started after its change was answered, on either node.
    for (job, at) in jobs.iter().zip(&answered) {
        let late: Vec<_> = old
            .calls_of(job)
            .into_iter()
            .filter(|c| c.at > *at)
            .map(|c| c.scheduled_at)
            .collect();
        assert!(
            late.is_empty(),
            "job {job}: old URL called after the answer: {late:?}"
        );
    }
    // The edited jobs go on at the new URL; the deleted one nowhere.
    for job in &jobs[..jobs.len() - 1] {
        assert!(new.calls_of(job).len() >= 2, "job {job} calls the new URL");
    }
    assert!(new.calls_of(&jobs[jobs.len() - 1]).is_empty());
    // B dropped fires it held for the old versions (at least one, over twelve jobs).
    let dropped = a
        .log_text()
        .matches("changed or deleted after this fire was claimed")
        .count()
        + b.log_text()
            .matches("changed or deleted after this fire was claimed")
            .count();
    assert!(dropped > 0, "fires claimed before the changes were dropped");
}

/// Sends `signal` (`STOP`, `CONT`) to a node.
fn signal(node: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waits_for_a_paused_node_to_read_it() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let (old, new) = (
        Target::start(Behaviour::default()).await,
        Target::start(Behaviour::default()).await,
    );
    let env = [
        ("CHANGE_POLL_MS", "10000".to_string()),
        ("LEASE_MS", "30000".to_string()),
    ];
    let (a, b) = (Server::start(&db.url, &env), Server::start(&db.url, &env));
    let mut jobs = Vec::new();
    for _ in 0..6 {
        let body = json!({"schedule": "* * * * * *", "api": old.url()});
        jobs.push(create_job(&a, body).await);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    // B is paused holding claimed fires; A edits every job meanwhile.
    signal(&b, "STOP");
    let paused = Instant::now();
    let edits = {
        let (url, jobs, new) = (a.url(""), jobs.clone(), new.url());
        tokio::spawn(async move {
            let mut answered = Vec::new();
            for job in jobs {
                let resp = client()
                    .patch(format!("{url}/jobs/{job}"))
                    .json(&json!({"api": new}))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                answered.push(Instant::now());
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&b, "CONT");
    let answered = edits.await.unwrap();
    // The first answer waited for B, which could not confirm while paused.
    assert!(
        answered[0] >= paused + Duration::from_millis(1400),
        "answered {:?} after the pause began, while B was still paused",
        answered[0] - paused
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (job, at) in jobs.iter().zip(&answered) {
        let late: Vec<_> = old
            .calls_of(job)
            .into_iter()
            .filter(|c| c.at > *at)
            .map(|c| c.scheduled_at)
            .collect();
        assert!(
            late.is_empty(),
            "job {job}: old URL called after the answer: {late:?}"
        );
        assert!(!new.calls_of(job).is_empty(), "job {job} calls the new URL");
    }
    assert!(
        !b.log_text().contains("lease lapsed"),
        "B was not fenced by a 1.5 s pause"
    );
}
