//! A node killed with fires claimed far ahead, restarted 8 s later: the fires it held are
//! handed back late, and each job's misfire policy decides what happens to them (`none`
//! skips them, `one` calls the latest once, `all` calls each), on both stores.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::common::{Behaviour, Db, Server, Target, TestDb, create_job};
use crate::{SERIAL, instant_of, now_ms, rows};

/// Late past this, a fire is a misfire.
const THRESHOLD_MS: i64 = 2000;

async fn recovered_fires_follow_the_misfire_policy(kind: Db) {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(kind).await;
    let target = Target::start(Behaviour::default()).await;
    // Fires are claimed 12 s ahead: every instant of the downtime is held by the node when it
    // dies, so what happens to them is the recovery's doing, not the claim's.
    let env = [
        ("LOOKAHEAD_MS", "12000".to_string()),
        ("MISFIRE_THRESHOLD_MS", THRESHOLD_MS.to_string()),
    ];
    let mut first = Server::start(&db.url, &env);
    let mut jobs = BTreeMap::new();
    for policy in ["none", "one", "all"] {
        let body = json!({"schedule": "* * * * * *", "api": target.url(), "misfirePolicy": policy});
        jobs.insert(policy, create_job(&first, body).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill();
    let killed_at = now_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let restarted_at = now_ms();
    let second = Server::start(&db.url, &env);
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(second);

    // Instants well inside the downtime: handed back more than the threshold late.
    let late = |t: i64| t > killed_at + 500 && t < restarted_at - THRESHOLD_MS - 500;
    let expected: Vec<i64> = (killed_at / 1000 + 1..=restarted_at / 1000)
        .map(|s| s * 1000)
        .filter(|t| late(*t))
        .collect();
    assert!(expected.len() >= 4, "late instants: {expected:?}");
    let called = |policy: &str| -> Vec<i64> {
        let mut v: Vec<i64> = target
            .calls_of(&jobs[policy])
            .iter()
            .map(instant_of)
            .filter(|t| late(*t))
            .collect();
        v.sort();
        v
    };
    // What the store recorded skipped in the downtime, by job.
    let rows = rows(&db.url).await;
    let down = |t: i64| t > killed_at + 500 && t < restarted_at;
    let skipped = |policy: &str| -> Vec<i64> {
        let id: uuid::Uuid = jobs[policy].parse().unwrap();
        let mut v: Vec<i64> = rows
            .iter()
            .filter(|r| r.job_id == id && r.state == "skipped" && down(r.scheduled_at))
            .map(|r| r.scheduled_at)
            .collect();
        v.sort();
        v
    };
    let called_down = |policy: &str| -> Vec<i64> {
        let mut v: Vec<i64> = target
            .calls_of(&jobs[policy])
            .iter()
            .map(instant_of)
            .filter(|t| down(*t))
            .collect();
        v.sort();
        v
    };
    // none: every surely-late instant skipped, none called.
    assert_eq!(called("none"), Vec::<i64>::new(), "none: not called");
    assert!(
        expected.iter().all(|t| skipped("none").contains(t)),
        "none: each late fire recorded skipped: {:?}",
        skipped("none")
    );
    // one: of the late instants only the latest is called; every earlier one is skipped.
    let (one_skipped, one_called) = (skipped("one"), called_down("one"));
    assert!(
        one_skipped.len() >= expected.len() - 1,
        "one: skipped {one_skipped:?}"
    );
    assert!(
        called("one").len() <= 1,
        "one: at most the latest late instant called: {:?}",
        called("one")
    );
    assert!(
        one_called.first() > one_skipped.last(),
        "one: the latest is called: called {one_called:?}, skipped {one_skipped:?}"
    );
    // Each instant of the downtime ends called or skipped, exactly once.
    for policy in ["none", "one", "all"] {
        let (mut both, n) = (called_down(policy), skipped(policy));
        both.extend(&n);
        both.sort();
        let mut unique = both.clone();
        unique.dedup();
        assert_eq!(
            both, unique,
            "{policy}: an instant both called and skipped, or twice"
        );
    }
    // all: each late instant called once, none skipped.
    assert_eq!(called("all"), expected, "all: each, once");
    assert!(skipped("all").is_empty(), "all: {:?}", skipped("all"));
    // And the jobs went on after the restart.
    for job in jobs.values() {
        assert!(
            target
                .calls_of(job)
                .iter()
                .any(|c| instant_of(c) > restarted_at + 1000),
            "job {job} fires after the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_fires_follow_the_misfire_policy_sqlite() {
    recovered_fires_follow_the_misfire_policy(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_fires_follow_the_misfire_policy_postgres() {
    recovered_fires_follow_the_misfire_policy(Db::Postgres).await;
}
