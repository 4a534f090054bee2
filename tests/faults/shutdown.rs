//! SIGTERM under load: calls in flight finish, nothing claimed is lost, and a restarted node
//! carries on.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::common::{Behaviour, Db, Server, Target, TestDb, create_job};
use crate::{SERIAL, created, every_second, now_ms, rows, succeeded};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_calls_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Db::Postgres).await;
    let target = Target::start(Behaviour {
        delay: Duration::from_millis(1000),
        ..Behaviour::default()
    })
    .await;
    let mut first = Server::start(&db.url, &[("SHUTDOWN_GRACE_MS", "5000".into())]);
    let mut jobs = Vec::new();
    for i in 0..6 {
        let kind = if i % 3 == 2 {
            "ATMOST_ONCE"
        } else {
            "ATLEAST_ONCE"
        };
        jobs.push((
            create_job(
                &first,
                json!({"schedule": "* * * * * *", "api": target.url(), "type": kind}),
            )
            .await,
            kind,
        ));
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let calls_before = target.calls().len();
    let started = std::time::Instant::now();
    let sent_at = now_ms();
    assert!(
        first.terminate(Duration::from_secs(10)),
        "clean exit on SIGTERM:\n{}",
        first.log_text()
    );
    let took = started.elapsed();
    let log = first.log_text();
    eprintln!("SIGTERM: exited in {took:?}; {calls_before} calls before");
    assert!(
        took < Duration::from_secs(5),
        "exited within the grace period"
    );
    assert!(!log.contains("abandoned"), "no call abandoned: {log}");
    // Every call the target received before the exit has its outcome stored.
    let rows_now = rows(&db.url).await;
    let recorded = rows_now.iter().filter(|r| r.success.is_some()).count();
    assert_eq!(
        recorded,
        target.calls().len(),
        "every call that was made is recorded"
    );

    let _second = Server::start(&db.url, &[]);
    let created = created(&db.url).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rows = rows(&db.url).await;
    for (job, kind) in &jobs {
        let id: Uuid = job.parse().unwrap();
        let done = succeeded(&rows, id);
        let owed = every_second(created[&id], sent_at);
        if *kind == "ATLEAST_ONCE" {
            let missing: Vec<_> = owed.difference(&done).collect();
            assert!(
                missing.is_empty(),
                "{job}: {missing:?} lost across the shutdown"
            );
        }
        assert!(
            done.iter().any(|t| *t > sent_at + 2000),
            "{job} carries on after the restart"
        );
    }
    assert!(
        target.per_fire().values().all(|n| *n == 1),
        "no fire called twice across a clean shutdown"
    );
}
