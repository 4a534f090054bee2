//! Three nodes on one PostgreSQL: every fire called exactly once; a killed node's fires are
//! taken over within the lease.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::common::{Behaviour, Db, Server, Target, TestDb, create_job};
use crate::{SERIAL, created, every_second, instant_of, now_ms, rows, succeeded};

const LEASE_MS: i64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_take_over_a_killed_one() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour::default()).await;
    let env = [("LEASE_MS", LEASE_MS.to_string())];
    let mut nodes: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &env)).collect();
    let mut jobs = Vec::new();
    for i in 0..200 {
        let node = &nodes[i % 3];
        jobs.push(
            create_job(
                node,
                json!({"schedule": "* * * * * *", "api": target.url()}),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let checked_until = now_ms() - 3000;
    let created = created(&db.url).await;

    // Phase 1: every fire of every job, up to a few seconds ago, called exactly once.
    let calls = target.calls();
    let mut per_fire: HashMap<(String, i64), usize> = HashMap::new();
    for c in &calls {
        *per_fire
            .entry((c.job_id.clone(), instant_of(c)))
            .or_default() += 1;
    }
    let mut expected = 0;
    for job in &jobs {
        let id: Uuid = job.parse().unwrap();
        for t in every_second(created[&id], checked_until) {
            expected += 1;
            let n = per_fire.get(&(job.clone(), t)).copied().unwrap_or(0);
            assert_eq!(n, 1, "job {job} instant {t} called {n} times");
        }
    }
    assert!(expected >= 200 * 15, "{expected} fires checked");
    // The work was shared: each node logs the calls it makes, and at least two of the three
    // made some (which node claims a second's fires first is a race it loses about two
    // times in three, twenty seconds in a row).
    let calls_per_node: Vec<usize> = nodes
        .iter()
        .map(|n| n.log_text().matches(r#""message":"call""#).count())
        .collect();
    assert!(
        calls_per_node.iter().filter(|&&n| n > 0).count() >= 2,
        "the work is shared between nodes: {calls_per_node:?}"
    );

    // Phase 2: kill one node; its fires are taken over within the lease.
    let mut victim = nodes.remove(0);
    victim.kill();
    let killed_at = now_ms();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let end = now_ms() - 3000;
    let rows = rows(&db.url).await;
    let mut missing = Vec::new();
    for job in &jobs {
        let id: Uuid = job.parse().unwrap();
        let done = succeeded(&rows, id);
        for t in every_second(created[&id], end) {
            if !done.contains(&t) {
                missing.push((job.clone(), t));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} fires missing after the kill: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Fires due around the kill were called within the lease (plus claim and call time).
    let around_kill = |c: &crate::common::Call| {
        instant_of(c) >= killed_at - 2000 && instant_of(c) <= killed_at + LEASE_MS
    };
    assert!(
        target.calls().iter().any(around_kill),
        "fires around the kill were called"
    );
    let max_lateness = target
        .calls()
        .iter()
        .filter(|c| around_kill(c))
        .map(|c| {
            c.body["sentAt"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|s| s.timestamp_millis() - instant_of(c))
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    assert!(
        max_lateness <= LEASE_MS * 2 + 1000,
        "taken over in {max_lateness} ms"
    );
}
