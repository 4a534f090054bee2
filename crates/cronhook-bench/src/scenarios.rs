//! The three scenarios: precision and throughput, scale, API throughput.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::db::{Backend, BenchDb};
use crate::load::{self, Timings, percentile};
use crate::service::{self, Service};
use crate::target::{Silent, Target};

/// Concurrency used to create jobs.
const CREATE_CONCURRENCY: usize = 64;

/// What one precision run loads the service with.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Jobs firing every second, on the bench's target.
    pub jobs: usize,
    /// Jobs beside them whose target never answers (their fires are not measured).
    pub hanging: usize,
    /// Measured seconds.
    pub seconds: u64,
    /// The service's `WORKER_CONCURRENCY`.
    pub workers: usize,
    /// Each job's `spreadMs` (0: every fire on its instant).
    pub spread_ms: u64,
    /// Service processes sharing the database (PostgreSQL only beyond 1); the jobs are
    /// created through the first, and every one claims and calls.
    pub nodes: usize,
    /// Samples PostgreSQL's backends waiting on a lock every 20 ms during the window, and
    /// reads each node's calls from its `/metrics`.
    pub watch_nodes: bool,
}

impl Load {
    /// `jobs` every-second jobs measured for `seconds`, with the defaults for the rest.
    pub fn every_second(jobs: usize, seconds: u64) -> Load {
        Load {
            jobs,
            hanging: 0,
            seconds,
            workers: DEFAULT_WORKERS,
            spread_ms: 0,
            nodes: 1,
            watch_nodes: false,
        }
    }
}

/// One precision run.
#[derive(Debug, Clone)]
pub struct PrecisionResult {
    pub backend: Backend,
    pub jobs: usize,
    /// Jobs beside them whose target never answers (their fires are not measured).
    pub hanging: usize,
    pub workers: usize,
    pub seconds: u64,
    /// Each job's `spreadMs`: lag is then counted from each fire's due instant.
    pub spread_ms: u64,
    pub expected: usize,
    pub missed: usize,
    pub duplicates: usize,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    pub cpu_cores: f64,
    pub peak_rss_mib: f64,
    /// CPU time per fire called in the window, µs: the service's own.
    pub service_us_per_fire: f64,
    /// The database's (every `postgres` process); none for SQLite, which runs inside the
    /// service and is counted there.
    pub db_us_per_fire: Option<f64>,
    /// The bench's (its target answering the calls).
    pub bench_us_per_fire: f64,
    /// Service processes sharing the database.
    pub nodes: usize,
    /// Calls each node made in the window, from its `/metrics` (watched runs only).
    pub calls_per_node: Vec<u64>,
    /// Lock waits seen: the sum, over samples every 20 ms, of PostgreSQL backends of the
    /// run's database waiting on a lock (watched runs only).
    pub lock_waits: u64,
    /// Samples taken.
    pub lock_samples: u64,
    /// Write-ahead log PostgreSQL wrote in the window per fire, bytes (the whole server's:
    /// the run's database is the only one written to).
    pub wal_bytes_per_fire: Option<f64>,
}

/// The service's default worker concurrency, used by every scenario unless told otherwise.
pub const DEFAULT_WORKERS: usize = 10;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn sleep_until_ms(t: i64) {
    loop {
        let left = t - now_ms();
        if left <= 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(left.min(500) as u64)).await;
    }
}

/// N jobs firing every second for `seconds`: lag of each call, missed and duplicate fires,
/// the service's CPU and peak memory. With `hanging` > 0, that many more jobs fire every
/// second at a target that never answers (`timeoutMs` 30000), and only the N are measured.
/// With `spread_ms` > 0 each job's fires are due its spread offset after their instants,
/// and lag is counted from there.
pub async fn precision(
    bin: &Path,
    admin: &str,
    backend: Backend,
    load: Load,
) -> anyhow::Result<PrecisionResult> {
    let Load {
        jobs,
        hanging,
        seconds,
        workers,
        spread_ms,
        nodes,
        watch_nodes,
    } = load;
    anyhow::ensure!(
        nodes == 1 || backend == Backend::Postgres,
        "only PostgreSQL is shared by several nodes"
    );
    let db = BenchDb::create(backend, admin).await?;
    let mut others = Vec::new();
    let svc = Service::start(bin, &db.url, &db.log_path(), workers).await?;
    for _ in 1..nodes.max(1) {
        others.push(Service::start(bin, &db.url, &db.log_path(), workers).await?);
    }
    let all = || std::iter::once(&svc).chain(others.iter());
    let cpu = || all().map(Service::cpu_seconds).sum::<f64>();
    let target = Target::start().await?;
    let silent = Silent::start().await?;
    for _ in 0..hanging {
        load::create_one(
            &svc.base,
            json!({"schedule": "* * * * * *", "api": silent.url, "timeoutMs": 30000}),
        )
        .await?;
    }
    load::create_jobs(
        &svc.base,
        &target.url,
        jobs,
        CREATE_CONCURRENCY,
        spread_ms,
        |_| "* * * * * *".into(),
    )
    .await?;
    // Warm up, then measure whole seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = (now_ms() / 1000 + 1) * 1000;
    let end = start + seconds as i64 * 1000;
    sleep_until_ms(start).await;
    let calls0 = if watch_nodes {
        node_calls(all()).await
    } else {
        Vec::new()
    };
    let locks = watch_nodes.then(|| tokio::spawn(sample_lock_waits(db.url.clone(), end)));
    let wal0 = wal_lsn(backend, admin).await;
    let cpu0 = cpu();
    let (db0, bench0) = (service::postgres_cpu_seconds(), service::own_cpu_seconds());
    sleep_until_ms(end).await;
    let cpu1 = cpu();
    let (db1, bench1) = (service::postgres_cpu_seconds(), service::own_cpu_seconds());
    let wal1 = wal_lsn(backend, admin).await;
    let calls_per_node = if watch_nodes {
        let calls1 = node_calls(all()).await;
        calls1.iter().zip(&calls0).map(|(b, a)| b - a).collect()
    } else {
        Vec::new()
    };
    let (lock_waits, lock_samples) = match locks {
        Some(task) => task.await.unwrap_or((0, 0)),
        None => (0, 0),
    };
    // Late calls still count; one that has not arrived 10 s after the window is missed.
    let drain_until = Instant::now() + Duration::from_secs(10);
    let expected = jobs * seconds as usize;
    loop {
        let got = target
            .hits()
            .iter()
            .filter(|h| h.scheduled_ms >= start && h.scheduled_ms < end)
            .count();
        if got >= expected || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak_rss_mib = all().map(Service::peak_rss_mib).fold(0.0, f64::max);
    let hits: Vec<_> = target
        .hits()
        .into_iter()
        .filter(|h| h.scheduled_ms >= start && h.scheduled_ms < end)
        .collect();
    let mut first: HashMap<&str, i64> = HashMap::with_capacity(hits.len());
    for h in &hits {
        let due_ms = h.scheduled_ms + due_offset_ms(&h.key, spread_ms);
        let lag = h.arrived_us - due_ms * 1000;
        first
            .entry(h.key.as_str())
            .and_modify(|v| *v = (*v).min(lag))
            .or_insert(lag);
    }
    let lags: Vec<u64> = first.values().map(|v| (*v).max(0) as u64).collect();
    let per_fire = |seconds: f64| seconds * 1e6 / first.len().max(1) as f64;
    let result = PrecisionResult {
        backend,
        jobs,
        hanging,
        workers,
        seconds,
        spread_ms,
        expected,
        missed: expected.saturating_sub(first.len()),
        duplicates: hits.len() - first.len(),
        lag_p50_ms: percentile(&lags, 50.0) as f64 / 1000.0,
        lag_p99_ms: percentile(&lags, 99.0) as f64 / 1000.0,
        lag_max_ms: lags.iter().max().copied().unwrap_or(0) as f64 / 1000.0,
        cpu_cores: (cpu1 - cpu0) / seconds as f64,
        peak_rss_mib,
        service_us_per_fire: per_fire(cpu1 - cpu0),
        db_us_per_fire: (backend == Backend::Postgres).then(|| per_fire(db1 - db0)),
        bench_us_per_fire: per_fire(bench1 - bench0),
        nodes,
        calls_per_node,
        lock_waits,
        lock_samples,
        wal_bytes_per_fire: wal0
            .zip(wal1)
            .map(|(a, b)| (b - a) as f64 / first.len().max(1) as f64),
    };
    for other in others {
        other.stop().await;
    }
    svc.stop().await;
    Ok(result)
}

/// PostgreSQL's current write-ahead log position, in bytes; none for SQLite.
async fn wal_lsn(backend: Backend, admin: &str) -> Option<i64> {
    use sqlx::Connection;
    if backend != Backend::Postgres {
        return None;
    }
    let mut c = sqlx::PgConnection::connect(admin).await.ok()?;
    sqlx::query_scalar::<_, i64>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
        .fetch_one(&mut c)
        .await
        .ok()
}

/// Each node's calls so far: the sum of its `cronhook_calls_total` series.
async fn node_calls(nodes: impl Iterator<Item = &Service>) -> Vec<u64> {
    let client = reqwest::Client::new();
    let mut calls = Vec::new();
    for node in nodes {
        let text = match client.get(format!("{}/metrics", node.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("cronhook_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        calls.push(total as u64);
    }
    calls
}

/// Until `end_ms`, every 20 ms: how many of the database's backends wait on a lock. Returns
/// the sum of those counts and the number of samples.
async fn sample_lock_waits(url: String, end_ms: i64) -> (u64, u64) {
    use sqlx::Connection;
    let Ok(mut c) = sqlx::PgConnection::connect(&url).await else {
        return (0, 0);
    };
    let (mut waits, mut samples) = (0u64, 0u64);
    while now_ms() < end_ms {
        let n: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut c)
        .await;
        if let Ok(n) = n {
            waits += n as u64;
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (waits, samples)
}

/// How long after its instant a fire named by `key` (`<job id>:<instant ms>`) was due: the
/// service's own rule, from its library.
fn due_offset_ms(key: &str, spread_ms: u64) -> i64 {
    key.split(':')
        .next()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map_or(0, |id| {
            cronhook::domain::job::spread_offset_ms(id, spread_ms)
        })
}

/// One scale run.
#[derive(Debug, Clone)]
pub struct ScaleResult {
    pub backend: Backend,
    pub jobs: usize,
    pub api_jobs: usize,
    pub history: i64,
    pub create_s: f64,
    pub create_rate: f64,
    pub idle_rss_mib: f64,
    pub restart_to_first_fire_s: f64,
    pub post: Timings,
    pub get: Timings,
    /// `GET /jobs?limit=100` from cursors at random positions.
    pub list: Timings,
}

/// How big a scale run is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Registered jobs.
    pub jobs: usize,
    /// Of those, created through the API; the rest are copies of their rows.
    pub api_jobs: usize,
    /// Execution rows.
    pub history: u64,
}

fn hourly_or_daily(i: usize) -> String {
    // Half hourly, half daily, spread over the hour and the day.
    let (s, m, h) = (i % 60, (i / 60) % 60, (i / 3600) % 24);
    if i.is_multiple_of(2) {
        format!("{s} {m} * * * *")
    } else {
        format!("{s} {m} {h} * * *")
    }
}

/// Many registered jobs and a large history: creation time, idle memory, restart to the
/// first fire, and API latency at that size.
pub async fn scale(
    bin: &Path,
    admin: &str,
    backend: Backend,
    size: Size,
) -> anyhow::Result<ScaleResult> {
    let Size {
        jobs,
        api_jobs,
        history,
    } = size;
    let db = BenchDb::create(backend, admin).await?;
    let target = Target::start().await?;
    let svc = Service::start(bin, &db.url, &db.log_path(), DEFAULT_WORKERS).await?;
    let created = load::create_jobs(
        &svc.base,
        &target.url,
        api_jobs,
        CREATE_CONCURRENCY,
        0,
        hourly_or_daily,
    )
    .await?;
    // One job that fires every second, to time the restart.
    load::create_one(
        &svc.base,
        json!({"schedule": "* * * * * *", "api": target.url}),
    )
    .await?;
    svc.stop().await;
    if jobs > api_jobs {
        let copied = db.copy_jobs(jobs - api_jobs).await?;
        eprintln!("  {copied} jobs copied");
    }

    let per_job = history.div_ceil(jobs.max(1) as u64);
    db.add_history(per_job).await?;
    let rows = db.execution_rows().await?;

    target.clear();
    let svc = Service::start(bin, &db.url, &db.log_path(), DEFAULT_WORKERS).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while target.first_arrival().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restart_to_first_fire_s = target
        .first_arrival()
        .map(|t| t.duration_since(svc.spawned).as_secs_f64())
        .unwrap_or(f64::NAN);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss_mib = svc.rss_mib();

    let base = svc.base.clone();
    let api = target.url.clone();
    let post = load::run_count(2000, 1, 201, move |c, i| {
        c.post(format!("{base}/jobs"))
            .json(&json!({"schedule": hourly_or_daily(i), "api": api}))
    })
    .await;
    let ids = db.sample_jobs(2000).await?;
    let base = svc.base.clone();
    let cursors = ids.clone();
    let get = load::run_count(ids.len(), 1, 200, move |c, i| {
        c.get(format!("{base}/jobs/{}/executions", ids[i]))
    })
    .await;
    let base = svc.base.clone();
    let list = load::run_count(cursors.len(), 1, 200, move |c, i| {
        c.get(format!("{base}/jobs?limit=100&cursor={}", cursors[i]))
    })
    .await;
    svc.stop().await;
    Ok(ScaleResult {
        backend,
        jobs,
        api_jobs,
        history: rows,
        create_s: created.elapsed.as_secs_f64(),
        create_rate: created.rate(),
        idle_rss_mib,
        restart_to_first_fire_s,
        post,
        get,
        list,
    })
}

/// One API throughput run.
#[derive(Debug, Clone)]
pub struct ApiResult {
    pub backend: Backend,
    pub concurrency: usize,
    pub post: Timings,
    pub get: Timings,
}

/// `POST /jobs` and `GET /jobs/{id}/executions` at a fixed concurrency for `seconds` each.
pub async fn api(
    bin: &Path,
    admin: &str,
    backend: Backend,
    seconds: u64,
    concurrency: usize,
) -> anyhow::Result<ApiResult> {
    let db = BenchDb::create(backend, admin).await?;
    let target = Target::start().await?;
    let svc = Service::start(bin, &db.url, &db.log_path(), DEFAULT_WORKERS).await?;
    let (base, api) = (svc.base.clone(), target.url.clone());
    let post = load::run_for(
        Duration::from_secs(seconds),
        concurrency,
        201,
        move |c, i| {
            c.post(format!("{base}/jobs"))
                .json(&json!({"schedule": hourly_or_daily(i), "api": api}))
        },
    )
    .await;
    svc.stop().await;
    db.add_history(5).await?;
    let svc = Service::start(bin, &db.url, &db.log_path(), DEFAULT_WORKERS).await?;
    let ids = db.sample_jobs(1000).await?;
    let base = svc.base.clone();
    let get = load::run_for(
        Duration::from_secs(seconds),
        concurrency,
        200,
        move |c, i| c.get(format!("{base}/jobs/{}/executions", ids[i % ids.len()])),
    )
    .await;
    svc.stop().await;
    Ok(ApiResult {
        backend,
        concurrency,
        post,
        get,
    })
}
