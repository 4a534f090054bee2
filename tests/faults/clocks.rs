//! Wrong and stepping node clocks (libfaketime): three nodes on one PostgreSQL, one 30 s
//! ahead, one 30 s behind, one whose clock steps back 20 s mid-run. Every node keeps time by
//! the database's clock, so every fire is called once, on time, and no lease is misjudged.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::common::{Behaviour, Db, Server, Target, TestDb, create_job};
use crate::{SERIAL, created, every_second, instant_of, now_ms};

/// libfaketime, from Debian's `faketime` package (the multi-threaded variant).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Environment that runs a node with its wall clock shifted as `file` says (re-read at every
/// call, so the shift can change mid-run); the monotonic clock is left alone, as a real
/// clock step leaves it.
fn shifted(file: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", LIBFAKETIME.into()),
        ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_and_stepping_clocks_neither_lose_nor_repeat_fires() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "libfaketime is installed (Debian package faketime; .ci/run installs it)"
    );
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let shift = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        path
    };
    let ahead = shift("ahead", "+30s");
    let behind = shift("behind", "-30s");
    let stepping = shift("stepping", "+0");
    let nodes = [
        Server::start(&db.url, &shifted(&ahead)),
        Server::start(&db.url, &shifted(&behind)),
        Server::start(&db.url, &shifted(&stepping)),
    ];
    for node in &nodes {
        assert!(
            node.log_text()
                .contains("keeping time by the database's clock"),
            "{}",
            node.log_text()
        );
    }
    let mut jobs = Vec::new();
    for i in 0..30 {
        let body = json!({"schedule": "* * * * * *", "api": target.url()});
        jobs.push(create_job(&nodes[i % 3], body).await);
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    std::fs::write(&stepping, "-20s").unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let until = now_ms() - 2500;

    // Every instant of every job called exactly once.
    let created = created(&db.url).await;
    let mut per_fire: HashMap<(String, i64), usize> = HashMap::new();
    for c in target.calls() {
        *per_fire
            .entry((c.job_id.clone(), instant_of(&c)))
            .or_default() += 1;
    }
    let mut checked = 0;
    for job in &jobs {
        let id: Uuid = job.parse().unwrap();
        for t in every_second(created[&id], until) {
            checked += 1;
            let n = per_fire.get(&(job.clone(), t)).copied().unwrap_or(0);
            assert_eq!(n, 1, "job {job} instant {t} called {n} times");
        }
    }
    assert!(checked >= 30 * 10, "{checked} fires checked");
    // On time by the real clock: never early, never more than a second late.
    let now = now_ms();
    let lateness: Vec<i64> = target
        .calls()
        .iter()
        .map(|c| now - c.at.elapsed().as_millis() as i64 - instant_of(c))
        .collect();
    let (min, max) = (
        lateness.iter().min().copied().unwrap(),
        lateness.iter().max().copied().unwrap(),
    );
    assert!(min >= -50, "a call came {} ms early", -min);
    assert!(max <= 1000, "a call came {max} ms late");
    // The lease decisions held: no node was fenced. The work was shared (which node claims
    // a second's fires first is a race, so at least two of the three made calls).
    let mut calling = 0;
    for node in &nodes {
        let log = node.log_text();
        assert!(!log.contains("lease lapsed"), "{log}");
        calling += usize::from(log.contains(r#""message":"call""#));
    }
    assert!(calling >= 2, "{calling} nodes made calls");
}
