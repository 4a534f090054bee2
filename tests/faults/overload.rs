//! Overload: 2,000 jobs every second on one target that takes 2 s to answer, on the default
//! ten workers, so the target can take 5 calls a second and 1,995 fires a second cannot be
//! called in time. The node must stay bounded and honest for 130 s: memory flat, no
//! more fires held claimed than `MAX_CLAIMED_FIRES`, `/health` degraded with how far behind,
//! `misfirePolicy: none` fires recorded missed, and `all` fires kept in the store and every
//! one called once the target is fast again. Nothing is called twice.
//!
//! Both stores run at once, one node each, on the debug binary.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{
    Behaviour, Db, Server, Target, TestDb, client, create_job, eventually, fast_env,
};
use crate::common::{count, exec};
use crate::{SERIAL, health, instant_of, now_ms, rss_kib};

const NONE_JOBS: usize = 1_950;
const ALL_JOBS: usize = 50;
/// Memory is compared between `EARLY_S` and `LATE_S` into the overload, which runs
/// `HALF_WINDOW_S` past `LATE_S` (`CRONHOOK_OVERLOAD_S` runs it longer, to watch memory level
/// off; `LATE_S` is then that many seconds less `HALF_WINDOW_S`).
const EARLY_S: u64 = 30;
const LATE_S: u64 = 120;
/// RSS "at" an instant is the median of the samples taken every second over the
/// `HALF_WINDOW_S` either side of it. A single sample swings with the work in hand: a
/// PostgreSQL node read 40.5 to 48.1 MB over five minutes of one run, rising and falling by
/// 3 MB within 30 s with no trend (the allocator keeping and giving back pages), which is as
/// much as the 10% under test, and the highest sample of a window swings with it. The
/// median of 21 samples is the level the node keeps at that stage; growth would raise it.
const HALF_WINDOW_S: u64 = 10;
/// The API keeps answering under overload: the slowest of the probes (a read, a pause and a
/// resume of a job that never fires in the test) within this. Measured on the debug binary
/// with both stores at once: PostgreSQL 157 ms, SQLite 1.14 s.
const API_WITHIN: Duration = Duration::from_secs(5);
/// The bound under test: well under what the look-ahead and the dispatcher's misfire window
/// would hold at this rate (about 2,000 × (1 s + 2 s)), so the claimer must pause.
const MAX_CLAIMED: i64 = 4_000;
/// Fires a claim may take past the room it saw: one claim batch of jobs.
const CLAIM_SLACK: i64 = 1_000;

const HELD_BY_A_NODE: &str =
    "SELECT count(*) FROM executions WHERE state = 'claimed' AND node_id IS NOT NULL";
const RECORDED_MISSED: &str = "SELECT count(*) FROM executions e JOIN jobs j ON j.id = e.job_id \
     WHERE j.misfire_policy = 'none' AND e.state = 'skipped' AND e.error LIKE 'missed%'";

struct Measured {
    store: &'static str,
    rss_early_kib: u64,
    rss_late_kib: u64,
    /// (seconds into the overload, RSS KiB), every second.
    rss_samples: Vec<(u64, u64)>,
    /// The slowest API answer probed during the overload.
    slowest_api: Duration,
    most_held: i64,
    degraded_behind_ms: u64,
    missed_recorded: i64,
    /// `all` fires scheduled during the overload never called.
    all_uncalled: usize,
    all_expected: usize,
    /// Calls per fire above one.
    doubled: usize,
    log: String,
}

/// Creates the jobs, a hundred per request loop, four loops at once: the `all` jobs' ids and
/// the `none` jobs' ids.
async fn create_jobs(server: &Server, api: &str) -> (Vec<String>, Vec<String>) {
    let url = server.url("/jobs");
    let mut tasks = tokio::task::JoinSet::new();
    let (mut all, mut none) = (Vec::new(), Vec::new());
    let mut keep = |made: Vec<(&str, String)>| {
        for (policy, id) in made {
            if policy == "all" {
                all.push(id);
            } else {
                none.push(id);
            }
        }
    };
    for chunk in 0..(NONE_JOBS + ALL_JOBS).div_ceil(100) {
        let (url, api) = (url.clone(), api.to_owned());
        tasks.spawn(async move {
            let mut made = Vec::new();
            for i in chunk * 100..((chunk + 1) * 100).min(NONE_JOBS + ALL_JOBS) {
                let policy = if i < ALL_JOBS { "all" } else { "none" };
                let r = client()
                    .post(&url)
                    .json(&json!({"schedule": "* * * * * *", "api": api, "misfirePolicy": policy}))
                    .send()
                    .await
                    .expect("POST /jobs");
                assert_eq!(r.status(), 201);
                let id = r.json::<Value>().await.unwrap()["jobId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                made.push((policy, id));
            }
            made
        });
        if tasks.len() >= 4 {
            keep(tasks.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(made) = tasks.join_next().await {
        keep(made.unwrap());
    }
    (all, none)
}

/// Ends the load of the `none` jobs by disabling them in the database, as if they had
/// been paused: through the API each pause waits for the overloaded node to confirm the
/// change, and 1,950 of them would outlast the test.
async fn disable_none_jobs(url: &str) {
    exec(
        url,
        "UPDATE jobs SET enabled = FALSE WHERE misfire_policy = 'none'",
    )
    .await;
}

/// Reads the probe job, pauses and resumes it; how long the slowest of the three took.
async fn api_probe(server: &Server, probe: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for (get, path) in [
        (true, format!("/jobs/{probe}")),
        (false, format!("/jobs/{probe}/pause")),
        (false, format!("/jobs/{probe}/resume")),
    ] {
        let url = server.url(&path);
        let request = if get {
            client().get(url)
        } else {
            client().post(url)
        };
        let began = Instant::now();
        let r = request
            .send()
            .await
            .expect("the API answers under overload");
        assert_eq!(r.status(), 200, "{path}");
        slowest = slowest.max(began.elapsed());
    }
    slowest
}

async fn overload(db: Db, store: &'static str) -> Measured {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour {
        delay: Duration::from_secs(2),
        ..Behaviour::default()
    })
    .await;
    let mut env = fast_env();
    env.extend([
        ("MISFIRE_THRESHOLD_MS", "2000".to_owned()),
        ("MISFIRE_MAX_CATCHUP", "100000".to_owned()),
        ("MAX_CLAIMED_FIRES", MAX_CLAIMED.to_string()),
    ]);
    let server = Server::start(&db.url, &env);
    let pid = server.child.id();
    let (all_jobs, _none_jobs) = create_jobs(&server, &target.url()).await;
    let probe = create_job(
        &server,
        json!({"schedule": "0 0 0 1 1 *", "api": target.url(), "name": "probe"}),
    )
    .await;
    let overload_s = std::env::var("CRONHOOK_OVERLOAD_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(LATE_S + HALF_WINDOW_S);
    let from = (now_ms() / 1000 + 1) * 1000;
    let began = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while began.elapsed() < Duration::from_secs(overload_s) {
            tick.tick().await;
            samples.push((began.elapsed().as_secs(), rss_kib(pid)));
        }
        samples
    });
    let (mut most_held, mut degraded_behind_ms) = (0, 0);
    let mut slowest_api = Duration::ZERO;
    while began.elapsed() < Duration::from_secs(overload_s) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        slowest_api = slowest_api.max(api_probe(&server, &probe).await);
        most_held = most_held.max(count(&db.url, HELD_BY_A_NODE).await);
        let (status, h) = health(&server).await;
        if status == 200 && h["status"] == "degraded" {
            degraded_behind_ms =
                degraded_behind_ms.max(h["worker"]["behindMs"].as_u64().unwrap_or(0));
        }
    }
    let rss_samples = sampler.await.unwrap();
    let median_around = |at: u64| {
        let mut around: Vec<u64> = rss_samples
            .iter()
            .filter(|(s, _)| s.abs_diff(at) <= HALF_WINDOW_S)
            .map(|(_, kib)| *kib)
            .collect();
        around.sort_unstable();
        around.get(around.len() / 2).copied().unwrap_or(0)
    };
    let (rss_early_kib, rss_late_kib) = (
        median_around(EARLY_S),
        median_around(overload_s.saturating_sub(HALF_WINDOW_S)),
    );
    let until = now_ms() / 1000 * 1000;
    // The overload ends (the `none` jobs stop) and the target is fast again: every `all`
    // fire of the overload is called.
    disable_none_jobs(&db.url).await;
    target.set(Behaviour::default());
    let expected: BTreeSet<i64> = (from..until).step_by(1000).collect();
    let uncalled = |calls: &HashMap<String, BTreeSet<i64>>| {
        all_jobs
            .iter()
            .map(|job| {
                calls
                    .get(job)
                    .map_or(expected.len(), |got| expected.difference(got).count())
            })
            .sum::<usize>()
    };
    let called = || {
        let mut by_job: HashMap<String, BTreeSet<i64>> = HashMap::new();
        for c in target.calls() {
            by_job
                .entry(c.job_id.clone())
                .or_default()
                .insert(instant_of(&c));
        }
        by_job
    };
    eventually(Duration::from_secs(120), || uncalled(&called()) == 0).await;
    Measured {
        store,
        rss_early_kib,
        rss_late_kib,
        rss_samples,
        slowest_api,
        most_held,
        degraded_behind_ms,
        missed_recorded: count(&db.url, RECORDED_MISSED).await,
        all_uncalled: uncalled(&called()),
        all_expected: expected.len() * all_jobs.len(),
        doubled: target.per_fire().values().filter(|n| **n > 1).count(),
        log: server.log_text(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_bounded_and_sheds_by_misfire_policy() {
    let _serial = SERIAL.lock().await;
    let (pg, lite) = tokio::join!(
        overload(Db::Postgres, "postgres"),
        overload(Db::Sqlite, "sqlite")
    );
    for m in [pg, lite] {
        let store = m.store;
        let _ = std::fs::write(
            std::env::temp_dir().join(format!("cronhook-overload-{store}.log")),
            &m.log,
        );
        let tail: String = m.log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        eprintln!(
            "{store}: RSS (median over {HALF_WINDOW_S} s either side) {} KiB at {EARLY_S} s, {} KiB {HALF_WINDOW_S} s before the end; most held {}; behind {} ms; \
             none recorded missed {}; all uncalled {} of {}; doubled {}",
            m.rss_early_kib,
            m.rss_late_kib,
            m.most_held,
            m.degraded_behind_ms,
            m.missed_recorded,
            m.all_uncalled,
            m.all_expected,
            m.doubled
        );
        eprintln!(
            "{store}: RSS samples (s, KiB), every 5th {:?}; slowest API answer {:?}",
            m.rss_samples.iter().step_by(5).collect::<Vec<_>>(),
            m.slowest_api
        );
        assert!(
            m.rss_early_kib > 0 && m.rss_late_kib * 10 <= m.rss_early_kib * 11,
            "{store}: memory grew from {} KiB to {} KiB",
            m.rss_early_kib,
            m.rss_late_kib
        );
        assert!(
            m.slowest_api <= API_WITHIN,
            "{store}: the API took {:?} to answer under overload",
            m.slowest_api
        );
        assert!(
            m.most_held <= MAX_CLAIMED + CLAIM_SLACK,
            "{store}: {} fires held claimed, bound {MAX_CLAIMED}",
            m.most_held
        );
        assert!(
            m.degraded_behind_ms >= 1000,
            "{store}: /health never said degraded and behind"
        );
        // 1,950 jobs × 120 s of fires, of which the target took 5 a second: most are missed
        // and recorded so (those never claimed while the claimer paused are skipped at the
        // claim, like any misfire of a `none` job).
        assert!(
            m.missed_recorded >= (NONE_JOBS as i64) * 10,
            "{store}: only {} none fires recorded missed\n{tail}",
            m.missed_recorded
        );
        assert_eq!(
            m.all_uncalled, 0,
            "{store}: `all` fires never called, of {}\n{tail}",
            m.all_expected
        );
        assert_eq!(m.doubled, 0, "{store}: fires called twice");
    }
}
