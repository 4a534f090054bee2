//! `/metrics`: scraped during a run of 100 jobs on the real binary, the text parses, every
//! family is there, and the counts match what the store recorded.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::common::{Behaviour, Db, Server, Target, TestDb, client, create_job, fast_env};

both_backends!(metrics_match_the_executions_recorded);

/// Every family the node exports.
const FAMILIES: &[&str] = &[
    "cronhook_fire_lag_seconds",
    "cronhook_call_duration_seconds",
    "cronhook_calls_total",
    "cronhook_retries_scheduled_total",
    "cronhook_misfires_total",
    "cronhook_fires_recovered_total",
    "cronhook_fires_fenced_total",
    "cronhook_outcomes_dropped_total",
    "cronhook_queue_depth",
    "cronhook_active_calls",
    "cronhook_slow_calls",
    "cronhook_worker_concurrency",
    "cronhook_behind_seconds",
    "cronhook_jobs",
    "cronhook_claim_batch_fires",
    "cronhook_claim_duration_seconds",
    "cronhook_timer_fires",
    "cronhook_claimed_fires",
    "cronhook_outcome_batch_size",
    "cronhook_outcome_write_duration_seconds",
    "cronhook_outcomes_waiting",
    "cronhook_db_errors_total",
    "cronhook_lease_fresh",
    "cronhook_nodes_live",
    "cronhook_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
];

/// One scrape, parsed: each sample's value by name and sorted labels; a histogram's by its
/// name with `_count` (its `+Inf` bucket).
struct Scrape {
    text: String,
    values: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("the text format parses");
        let mut values = HashMap::new();
        for s in parsed.samples {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let (name, value) = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => (s.metric, v),
                prometheus_parse::Value::Histogram(buckets) => (
                    format!("{}_count", s.metric),
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                ),
                prometheus_parse::Value::Summary(_) => continue,
            };
            values.insert((name, labels), value);
        }
        Scrape { text, values }
    }

    /// The value of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        *self
            .values
            .get(&(name.to_owned(), want))
            .unwrap_or_else(|| panic!("{name} {labels:?} missing from\n{}", self.text))
    }

    /// The sum of `name` over the samples whose labels include `filter`.
    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.values
            .iter()
            .filter(|((n, labels), _)| {
                n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }
}

async fn scrape(server: &Server) -> Scrape {
    let r = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    Scrape::parse(r.text().await.unwrap())
}

/// 100 jobs every second for a few seconds: 80 on a target whose first call of each fire
/// fails (so each fire succeeds on its retry), 10 `ATMOST_ONCE` on the same target, 5 on a
/// closed port, 5 with a 100 ms timeout on a target that takes a second. Then every job is
/// paused, the calls drain, and the metrics must agree with the store.
async fn metrics_match_the_executions_recorded(db: Db) {
    let db = TestDb::new(db).await;
    let flaky = Target::start(Behaviour {
        fail_first: 1,
        ..Behaviour::default()
    })
    .await;
    let slow = Target::start(Behaviour {
        delay: Duration::from_secs(1),
        ..Behaviour::default()
    })
    .await;
    let mut env = fast_env();
    env.push(("RETRY_BACKOFF_MS", "100".into()));
    let server = Server::start(&db.url, &env);

    let first = scrape(&server).await;
    for family in FAMILIES {
        assert!(
            first.text.contains(&format!("# TYPE {family} ")),
            "{family} is not in the first scrape"
        );
    }
    assert_eq!(
        first.get("cronhook_worker_concurrency", &[]),
        10.0,
        "the default workers"
    );
    assert_eq!(first.sum("cronhook_calls_total", &[]), 0.0);

    let mut jobs = Vec::new();
    for i in 0..100 {
        let body = match i {
            0..80 => json!({"schedule": "* * * * * *", "api": flaky.url()}),
            80..90 => json!({"schedule": "* * * * * *", "api": flaky.url(), "type": "ATMOST_ONCE"}),
            90..95 => json!({"schedule": "* * * * * *", "api": "http://127.0.0.1:9/closed"}),
            _ => json!({"schedule": "* * * * * *", "api": slow.url(), "timeoutMs": 100}),
        };
        jobs.push(create_job(&server, body).await);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = scrape(&server).await;
    assert!(
        during.sum("cronhook_calls_total", &[]) > 0.0,
        "calls are counted as they are made"
    );
    assert!(during.get("cronhook_claim_batch_fires_count", &[]) > 0.0);
    let fresh = during.get("cronhook_lease_fresh", &[]);
    assert!(fresh == 0.0 || fresh == 1.0, "lease_fresh is {fresh}");
    // Jobs and nodes are counted at most every 10 s: the count catches up within that.
    let mut census = (0.0, 0.0);
    for _ in 0..60 {
        let m = scrape(&server).await;
        census = (
            m.get("cronhook_jobs", &[("state", "enabled")])
                + m.get("cronhook_jobs", &[("state", "paused")]),
            m.get("cronhook_nodes_live", &[]),
        );
        if census == (100.0, 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(census, (100.0, 1.0), "jobs and live nodes");
    for job in &jobs {
        let r = client()
            .post(server.url(&format!("/jobs/{job}/pause")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Calls in flight end and their outcomes (and the retries they scheduled) are stored.
    let mut last = scrape(&server).await;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = scrape(&server).await;
        let settled = now.get("cronhook_active_calls", &[]) == 0.0
            && now.get("cronhook_outcomes_waiting", &[]) == 0.0
            && now.sum("cronhook_calls_total", &[]) == last.sum("cronhook_calls_total", &[]);
        last = now;
        if settled {
            break;
        }
    }
    let m = last;

    let made = crate::common::count(
        &db.url,
        "SELECT count(*) FROM executions WHERE state IN ('succeeded', 'failed')",
    )
    .await as f64;
    let succeeded = crate::common::count(
        &db.url,
        "SELECT count(*) FROM executions WHERE state = 'succeeded'",
    )
    .await as f64;
    // Every failure here is retryable (500, no connection, timeout): each ATLEAST_ONCE
    // attempt but the last (of 3) scheduled a retry. Retries not yet due when their job was
    // paused were withdrawn, so the rows of later attempts would undercount them.
    let retries = crate::common::count(
        &db.url,
        "SELECT count(*) FROM executions e JOIN jobs j ON j.id = e.job_id \
         WHERE e.state = 'failed' AND j.delivery = 'ATLEAST_ONCE' AND e.attempt < 3",
    )
    .await as f64;
    let sent = m.sum("cronhook_calls_total", &[])
        - m.sum("cronhook_calls_total", &[("result", "skipped")]);
    let late = m.sum("cronhook_outcomes_dropped_total", &[]);
    eprintln!(
        "made {made}, succeeded {succeeded}, retries {retries}; metrics: sent {sent}, dropped {late}, lag count {}, by result {:?}",
        m.get("cronhook_fire_lag_seconds_count", &[]),
        [
            "succeeded",
            "failed_status",
            "timeout",
            "connect_error",
            "denied"
        ]
        .map(|r| (r, m.sum("cronhook_calls_total", &[("result", r)])))
    );
    assert!(made >= 100.0, "the run made calls: {made}");
    // A call whose job was paused while it ran may have its outcome fenced out (the pause
    // withdrew its attempt): counted as made, and as dropped, never recorded.
    assert!(late <= 10.0, "{late} outcomes dropped");
    assert_eq!(
        sent,
        made + late,
        "calls counted = executions recorded as made + outcomes dropped"
    );
    assert_eq!(
        m.get("cronhook_fire_lag_seconds_count", &[]),
        sent,
        "one lag sample per call made"
    );
    assert_eq!(
        m.get("cronhook_call_duration_seconds_count", &[]),
        sent,
        "one duration sample per call made"
    );
    // A dropped outcome may be a success: counted as a call that succeeded, never stored.
    let counted_ok = m.sum("cronhook_calls_total", &[("result", "succeeded")]);
    assert!(
        counted_ok >= succeeded && counted_ok <= succeeded + late,
        "succeeded counted {counted_ok}, stored {succeeded}, dropped {late}"
    );
    // A retry scheduled by an outcome that was then dropped is counted but not stored.
    let counted = m.get("cronhook_retries_scheduled_total", &[]);
    assert!(
        counted >= retries && counted <= retries + late,
        "retries counted {counted}, stored {retries}"
    );
    for result in ["succeeded", "failed_status", "timeout", "connect_error"] {
        assert!(
            m.sum("cronhook_calls_total", &[("result", result)]) > 0.0,
            "no call counted as {result}"
        );
    }
    assert!(
        m.sum(
            "cronhook_calls_total",
            &[("delivery", "at_most_once"), ("result", "failed_status")]
        ) > 0.0,
        "ATMOST_ONCE calls are counted under their delivery type"
    );
    assert_eq!(
        m.sum("cronhook_db_errors_total", &[]),
        0.0,
        "no database error in a quiet run"
    );
    assert!(m.get("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.get("process_open_fds", &[]) > 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(m.get("cronhook_build_info", &[("version", version)]), 1.0);
    assert!(
        !m.text.contains(&jobs[0]) && !m.text.contains("127.0.0.1:9"),
        "no job id or URL in a label"
    );
}
