//! Two nodes on one PostgreSQL prune the history, one at a time: only the holder of the
//! pruning lease sweeps, the history stays within `HISTORY_KEEP`, and when the holder dies
//! the other node takes the duty over once the lease runs out.

use std::time::Duration;

use serde_json::json;

use crate::SERIAL;
use crate::common::{Behaviour, Db, Server, Target, TestDb, count, create_job, eventually};

const KEEP: i64 = 3;
const JOBS: i64 = 20;
/// The pruning lease is held for three intervals and at least 30 s (`retention::MIN_HOLD`).
const HOLD: Duration = Duration::from_secs(30);
const FINISHED: &str =
    "SELECT count(*) FROM executions WHERE state IN ('succeeded', 'failed', 'skipped')";

const TAKES_LEASE: &str = "this node prunes the history";
const PRUNED: &str = r#""message":"pruned execution history""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_prune_at_once_and_the_survivor_takes_over() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour::default()).await;
    let env = [
        ("HISTORY_KEEP", KEEP.to_string()),
        ("PRUNE_INTERVAL_MS", "500".to_string()),
        ("RUST_LOG", "info,cronhook::retention=debug".to_string()),
    ];
    let mut nodes = [Server::start(&db.url, &env), Server::start(&db.url, &env)];
    for _ in 0..JOBS {
        create_job(
            &nodes[0],
            json!({"schedule": "* * * * * *", "api": target.url()}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;

    let took: Vec<usize> = nodes
        .iter()
        .map(|n| n.log_text().matches(TAKES_LEASE).count())
        .collect();
    let pruned: Vec<usize> = nodes
        .iter()
        .map(|n| n.log_text().matches(PRUNED).count())
        .collect();
    assert_eq!(
        took.iter().sum::<usize>(),
        1,
        "one node took the pruning lease: {took:?}"
    );
    let holder = took.iter().position(|&n| n == 1).unwrap();
    let other = 1 - holder;
    assert!(pruned[holder] > 0, "the holder pruned: {pruned:?}");
    assert_eq!(pruned[other], 0, "the other node never pruned: {pruned:?}");
    // Twelve seconds of 20 jobs every second, and a sweep every half second: each job keeps
    // its newest KEEP, plus what finished since the last sweep.
    let calls = target.calls().len() as i64;
    let finished = count(&db.url, FINISHED).await;
    assert!(calls >= JOBS * 8, "the jobs fired: {calls} calls");
    assert!(
        finished <= JOBS * (KEEP + 2),
        "history kept within HISTORY_KEEP: {finished} finished rows for {JOBS} jobs, {calls} calls"
    );

    // The holder dies; once its lease runs out the survivor prunes, alone.
    nodes[holder].kill();
    let survivor = &nodes[other];
    let took_over = eventually(HOLD + Duration::from_secs(10), || {
        survivor.log_text().contains(TAKES_LEASE) && survivor.log_text().contains(PRUNED)
    })
    .await;
    assert!(
        took_over,
        "the survivor took the pruning over within the lease: {}",
        survivor.log_text().matches(PRUNED).count()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let finished = count(&db.url, FINISHED).await;
    assert!(
        finished <= JOBS * (KEEP + 2),
        "history kept within HISTORY_KEEP after the takeover: {finished} finished rows"
    );
}
