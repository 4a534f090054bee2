//! Jobs fire, and their executions are recorded and listed as the contract says.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{
    Behaviour, Db, Server, Target, TestDb, client, create_job, eventually, executions_of,
};

async fn every_second_job_records_successes_newest_first(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let server = Server::start(&db.url, &[]);
    let job = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url(), "type": "ATLEAST_ONCE"}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), || target.calls_of(&job).len() >= 7).await,
        "7 calls within 15 s; got {}",
        target.calls_of(&job).len()
    );
    // Outcomes are written shortly after the call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = executions_of(&server, &job).await;
    assert_eq!(list.len(), 5, "at most 5: {list:?}");
    let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
    for e in &list {
        let obj = e.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["durationMs", "executedAt", "id", "statusCode", "success"],
            "exact fields"
        );
        assert_eq!(e["statusCode"], 200);
        assert_eq!(e["success"], true);
        assert!(e["durationMs"].is_u64());
        let s = e["executedAt"].as_str().unwrap();
        assert!(s.ends_with('Z'), "UTC: {s}");
        let at = chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc);
        if let Some(p) = previous {
            assert!(at < p, "newest first");
            let gap = (p - at).num_milliseconds();
            assert!((700..=1300).contains(&gap), "one per second, gap {gap} ms");
        }
        previous = Some(at);
    }
    // Every call carried its fire's identity, and each fire was called once.
    let calls = target.calls_of(&job);
    for c in &calls {
        assert_eq!(
            c.key,
            format!(
                "{}:{}",
                job,
                chrono::DateTime::parse_from_rfc3339(&c.scheduled_at)
                    .unwrap()
                    .timestamp_millis()
            )
        );
        assert_eq!(c.body["jobId"], job.as_str());
        assert_eq!(c.attempt, 1);
    }
    assert!(
        target.per_fire().values().all(|n| *n == 1),
        "no fire called twice"
    );
}

async fn failing_and_unreachable_targets_are_recorded(db: Db) {
    let db = TestDb::new(db).await;
    let failing = Target::start(Behaviour {
        status: 500,
        ..Behaviour::default()
    })
    .await;
    let server = Server::start(&db.url, &[]);
    let no_retry = json!({"maxAttempts": 1});
    let job500 = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": failing.url(), "retry": no_retry}),
    )
    .await;
    // A port nothing listens on: bind one, note it, close it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": format!("http://127.0.0.1:{dead}/x"), "type": "ATMOST_ONCE"}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let got = loop {
        let got = (
            executions_of(&server, &job500).await,
            executions_of(&server, &unreachable).await,
        );
        if (got.0.len() >= 2 && got.1.len() >= 2) || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ok = got.0.len() >= 2 && got.1.len() >= 2;
    assert!(ok, "executions recorded: {got:?}");
    for e in &got.0 {
        assert_eq!(e["statusCode"], 500);
        assert_eq!(e["success"], false);
    }
    for e in &got.1 {
        assert!(e["statusCode"].is_null(), "no response, null status: {e}");
        assert_eq!(e["success"], false);
    }
}

/// `LOG_CALLS=failures`, the default: failed calls get a line at `info`, successful ones do
/// not, and the summary at shutdown counts every call.
async fn only_failed_calls_get_a_line_and_the_summary_counts_all(db: Db) {
    let db = TestDb::new(db).await;
    let fine = Target::start(Behaviour::default()).await;
    let failing = Target::start(Behaviour {
        status: 500,
        ..Behaviour::default()
    })
    .await;
    let mut server = Server::start(&db.url, &[("LOG_CALLS", "failures".into())]);
    let ok = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": fine.url()}),
    )
    .await;
    let bad = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": failing.url(), "retry": {"maxAttempts": 1}}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), || {
            fine.calls_of(&ok).len() >= 3 && failing.calls_of(&bad).len() >= 3
        })
        .await,
        "3 calls of each within 15 s"
    );
    assert!(server.terminate(Duration::from_secs(15)), "clean exit");
    let lines: Vec<Value> = server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let call_lines = |job: &str| {
        lines
            .iter()
            .filter(|v| v["message"] == "call" && v["job_id"] == job)
            .count()
    };
    assert_eq!(call_lines(&ok), 0, "no line for a successful call");
    let failed_calls = failing.calls_of(&bad).len();
    assert_eq!(
        call_lines(&bad),
        failed_calls,
        "a line for each failed call"
    );
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|v| v["message"] == "calls made since the last summary")
        .collect();
    assert!(!summaries.is_empty(), "a summary at shutdown");
    let sum = |field: &str| {
        summaries
            .iter()
            .map(|v| v[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum("succeeded"), fine.calls_of(&ok).len() as u64);
    assert_eq!(sum("failed"), failed_calls as u64);
    assert_eq!(sum("failed_unlisted"), 0);
    assert_eq!(summaries.last().unwrap()["level"], "INFO");
}

async fn thirty_slow_jobs_never_exceed_ten_workers(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour {
        delay: Duration::from_millis(500),
        ..Behaviour::default()
    })
    .await;
    let server = Server::start(&db.url, &[]);
    for _ in 0..30 {
        create_job(
            &server,
            json!({"schedule": "* * * * * *", "api": target.url()}),
        )
        .await;
    }
    let mut max_active = 0;
    let mut max_queue = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let h: Value = client()
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        max_active = max_active.max(h["worker"]["activeWorkers"].as_u64().unwrap());
        max_queue = max_queue.max(h["worker"]["queueSize"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(max_active <= 10, "activeWorkers reached {max_active}");
    assert_eq!(max_active, 10, "all ten workers busy under load");
    // 30 calls a second at 500 ms each is three times what 10 workers can do: a backlog builds.
    assert!(
        max_queue >= 10,
        "queueSize showed the backlog: max {max_queue}"
    );
    assert!(
        target.max_in_flight() <= 10,
        "target saw {} at once",
        target.max_in_flight()
    );
}

async fn jobs_keep_firing_after_a_restart(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let mut server = Server::start(&db.url, &[]);
    let job = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url()}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || !target
            .calls_of(&job)
            .is_empty())
        .await
    );
    assert!(
        server.terminate(Duration::from_secs(15)),
        "clean exit:\n{}",
        server.log_text()
    );
    let before = target.calls_of(&job).len();
    let server = Server::start(&db.url, &[]);
    assert!(
        eventually(Duration::from_secs(10), || target.calls_of(&job).len()
            >= before + 3)
        .await,
        "fires again after restart"
    );
    let list = executions_of(&server, &job).await;
    assert!(!list.is_empty());
    assert!(
        target.per_fire().values().all(|n| *n == 1),
        "no fire called twice across the restart"
    );
}

both_backends!(
    every_second_job_records_successes_newest_first,
    failing_and_unreachable_targets_are_recorded,
    thirty_slow_jobs_never_exceed_ten_workers,
    jobs_keep_firing_after_a_restart,
    only_failed_calls_get_a_line_and_the_summary_counts_all,
);
