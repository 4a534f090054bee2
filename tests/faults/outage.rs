//! PostgreSQL stopped mid-run: health goes unhealthy then healthy by itself, the process
//! keeps running, and fires that fell due meanwhile follow each job's misfire policy.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::common::{Behaviour, Server, Target, create_job, eventually_async};
use crate::pg::PrivatePg;
use crate::{SERIAL, health, instant_of, now_ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_mid_run() {
    let _serial = SERIAL.lock().await;
    let pg = PrivatePg::start();
    let target = Target::start(Behaviour::default()).await;
    let mut server = Server::start(&pg.url(), &[("MISFIRE_THRESHOLD_MS", "1000".into())]);
    let job = |policy: &str| json!({"schedule": "* * * * * *", "api": target.url(), "misfirePolicy": policy});
    let all = create_job(&server, job("all")).await;
    let one = create_job(&server, job("one")).await;
    let none = create_job(&server, job("none")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health(&server).await.0, 200);

    pg.down();
    let down_at = now_ms();
    let went_unhealthy = eventually_async(Duration::from_secs(10), || async {
        let (status, body) = health(&server).await;
        status == 503 && body["status"] == "unhealthy" && body["reason"].is_string()
    })
    .await;
    assert!(went_unhealthy, "health reports unhealthy during the outage");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "still running during the outage"
    );
    pg.up();
    let up_at = now_ms();
    let recovered = eventually_async(Duration::from_secs(20), || async {
        health(&server).await.0 == 200
    })
    .await;
    assert!(recovered, "healthy again by itself:\n{}", server.log_text());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(server.child.try_wait().unwrap().is_none(), "never exited");

    // Instants from 2 s into the outage (past what was claimed ahead before it) to 3 s after.
    let window = |job: &str| -> BTreeSet<i64> {
        target
            .calls_of(job)
            .iter()
            .map(instant_of)
            .filter(|t| *t >= down_at + 2000 && *t <= up_at + 3000)
            .collect()
    };
    let (w_all, w_one, w_none) = (window(&all), window(&one), window(&none));
    for (name, job) in [("all", &all), ("one", &one), ("none", &none)] {
        let rel: Vec<i64> = target
            .calls_of(job)
            .iter()
            .map(|c| (instant_of(c) - down_at) / 100)
            .collect();
        eprintln!(
            "{name}: instants relative to the outage start (0.1 s): {rel:?}; up at {}",
            (up_at - down_at) / 100
        );
    }
    let first = (down_at + 2000).div_euclid(1000) * 1000
        + if (down_at + 2000) % 1000 == 0 {
            0
        } else {
            1000
        };
    let expected_all: BTreeSet<i64> = (first..=up_at + 3000).step_by(1000).collect();
    eprintln!(
        "outage {} ms: all {} / one {} / none {} calls in the window of {} instants",
        up_at - down_at,
        w_all.len(),
        w_one.len(),
        w_none.len(),
        expected_all.len()
    );
    assert_eq!(
        w_all, expected_all,
        "misfirePolicy all: every missed instant called"
    );
    // `none` resumes with the first instant that is not a misfire; `one` adds one catch-up
    // call for the latest missed instant before that.
    assert!(!w_none.is_empty(), "none resumes firing");
    assert!(
        w_none.len() < expected_all.len() - 5,
        "none skips the missed instants: {w_none:?}"
    );
    assert!(w_none.is_subset(&w_one), "one fires everything none fires");
    assert_eq!(
        w_one.len(),
        w_none.len() + 1,
        "one adds exactly one catch-up call: one {w_one:?} none {w_none:?}"
    );
    let extra = *w_one.difference(&w_none).next().unwrap();
    assert!(
        extra < *w_none.iter().next().unwrap(),
        "the catch-up is for a missed instant"
    );
    // Nothing was called twice.
    assert!(
        target.per_fire().values().all(|n| *n == 1),
        "no fire called twice"
    );
    server.kill();
}

/// During an outage the outcomes waiting for the database are bounded: at
/// `MAX_UNSTORED_OUTCOMES` the node stops starting calls (the lease alone would let it call
/// for 40 s here), and once the database is back every call made has its outcome stored,
/// none lost and none made twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_waiting_for_the_database_are_bounded() {
    let _serial = SERIAL.lock().await;
    let pg = PrivatePg::start();
    let target = Target::start(Behaviour::default()).await;
    let server = Server::start(
        &pg.url(),
        &[
            ("LEASE_MS", "60000".into()),
            ("LOOKAHEAD_MS", "3000".into()),
            ("MAX_UNSTORED_OUTCOMES", "3".into()),
        ],
    );
    let mut jobs = Vec::new();
    for _ in 0..10 {
        jobs.push(
            create_job(
                &server,
                json!({"schedule": "* * * * * *", "api": target.url(), "misfirePolicy": "all"}),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.down();
    let at_down = target.calls().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_4s = target.calls().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_8s = target.calls().len();
    // About 30 fires were claimed before the outage (3 s of look-ahead); they start until
    // three outcomes wait (and those already past the check finish: at most the ten
    // workers); then nothing more is called, though the lease is still fresh.
    assert!(
        after_4s - at_down <= 3 + 10,
        "{} calls during the outage",
        after_4s - at_down
    );
    assert_eq!(after_8s, after_4s, "calls went on past the bound");
    assert!(
        server
            .log_text()
            .contains("too many outcomes wait for the database"),
        "{}",
        server.log_text()
    );
    pg.up();
    let stored = eventually_async(Duration::from_secs(30), || async {
        let rows = crate::rows(&pg.url()).await;
        target.calls().iter().all(|c| {
            rows.iter().any(|r| {
                r.job_id.to_string() == c.job_id
                    && r.scheduled_at == instant_of(c)
                    && r.success == Some(true)
            })
        })
    })
    .await;
    assert!(
        stored,
        "every call made has its outcome stored:\n{}",
        server.log_text()
    );
    assert!(
        target.per_fire().values().all(|n| *n == 1),
        "no fire called twice"
    );
    // And the node calls again.
    let before = target.calls().len();
    let resumed = eventually_async(Duration::from_secs(20), || async {
        target.calls().len() > before + 5
    })
    .await;
    assert!(resumed, "calls resume:\n{}", server.log_text());
}

/// Outage at load: 1,000 jobs every second, PostgreSQL stopped for 60 s and started again.
/// Memory stays within what the README promises for the outage (the outcomes waiting for
/// the database, at most `MAX_UNSTORED_OUTCOMES` of about 400 bytes; nothing new is claimed
/// while the database is away), every call made has its outcome stored once the database
/// is back, and no fire is called twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_at_a_thousand_fires_a_second_loses_nothing() {
    const JOBS: usize = 1_000;
    const UNSTORED: u64 = 10_000;
    let _serial = SERIAL.lock().await;
    let pg = PrivatePg::start();
    let target = Target::start(Behaviour::default()).await;
    let mut server = Server::start(
        &pg.url(),
        &[("MAX_UNSTORED_OUTCOMES", UNSTORED.to_string())],
    );
    let pid = server.child.id();
    let url = server.url("/jobs");
    let mut made = tokio::task::JoinSet::new();
    for chunk in 0..JOBS / 100 {
        let (url, api) = (url.clone(), target.url());
        made.spawn(async move {
            for _ in 0..100 {
                let r = crate::common::client()
                    .post(&url)
                    .json(&json!({"schedule": "* * * * * *", "api": api}))
                    .send()
                    .await
                    .expect("POST /jobs");
                assert_eq!(r.status(), 201, "job {chunk}");
            }
        });
    }
    while let Some(done) = made.join_next().await {
        done.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    let calls_before = target.calls().len();
    assert!(
        calls_before > JOBS * 5,
        "{calls_before} calls in the first 15 s"
    );
    let rss_before = crate::rss_kib(pid);

    pg.down();
    let down_ms = now_ms();
    let mut rss_most = rss_before;
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_most = rss_most.max(crate::rss_kib(pid));
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "still running after 60 s without its database"
    );
    pg.up();
    let recovered = eventually_async(Duration::from_secs(30), || async {
        health(&server).await.0 == 200
    })
    .await;
    assert!(recovered, "healthy again:\n{}", server.log_text());

    // Every call made has its outcome stored, none lost for the outage.
    // Calls go on at 1,000 a second: each check takes the calls made so far, then gives
    // their outcomes a second to be written before it reads the rows.
    let stored = eventually_async(Duration::from_secs(60), || async {
        let calls = target.calls();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rows = crate::rows(&pg.url()).await;
        let ok: std::collections::HashSet<(String, i64)> = rows
            .iter()
            .filter(|r| r.success == Some(true))
            .map(|r| (r.job_id.to_string(), r.scheduled_at))
            .collect();
        calls
            .iter()
            .all(|c| ok.contains(&(c.job_id.clone(), instant_of(c))))
    })
    .await;
    if !stored {
        let calls = target.calls();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rows = crate::rows(&pg.url()).await;
        let mut by_fire: std::collections::HashMap<(String, i64), Vec<&crate::Row>> =
            std::collections::HashMap::new();
        for r in &rows {
            by_fire
                .entry((r.job_id.to_string(), r.scheduled_at))
                .or_default()
                .push(r);
        }
        let missing: Vec<String> = calls
            .iter()
            .map(|c| (c.job_id.clone(), instant_of(c)))
            .filter(|k| {
                !by_fire
                    .get(k)
                    .is_some_and(|rs| rs.iter().any(|r| r.success == Some(true)))
            })
            .take(5)
            .map(|k| {
                format!(
                    "{} at {} (down at {down_ms}): {:?}",
                    k.0,
                    k.1,
                    by_fire.get(&k)
                )
            })
            .collect();
        let log = server.log_text();
        let tail: Vec<&str> = log.lines().filter(|l| !l.contains("\"call\"")).collect();
        panic!(
            "every call made has its outcome stored; missing:\n{}\n{}",
            missing.join("\n"),
            tail.join("\n")
        );
    }
    assert!(
        target.per_fire().values().all(|n| *n == 1),
        "no fire called twice"
    );
    // The README's bound: the waiting outcomes (about 400 bytes each) and no new claims;
    // the debug binary's allocator is given as much again.
    let grew = rss_most.saturating_sub(rss_before);
    assert!(
        grew <= UNSTORED * 400 / 1024 * 2 + 4096,
        "memory grew by {grew} KiB during the outage (from {rss_before} KiB)"
    );
    eprintln!(
        "outage at load: {calls_before} calls before, RSS {rss_before} KiB before, at most {rss_most} KiB during, {} calls in all",
        target.calls().len()
    );
}
