//! HTTP load: creating jobs and timing requests at a fixed concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

/// Latencies of a run, in µs, and how long it took.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// One per successful request.
    pub latencies_us: Vec<u64>,
    /// Requests that did not get the expected status.
    pub errors: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Timings {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile in ms (0..=100).
    pub fn pct_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

/// The `p`-th percentile of unsorted values (nearest rank).
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A client with enough pooled connections for `concurrency`.
pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Runs `total` requests built by `make(i)` with `concurrency` in flight; counts a request
/// as successful when its status is `ok_status`.
pub async fn run_count<F>(total: usize, concurrency: usize, ok_status: u16, make: F) -> Timings
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    run(Some(total), None, concurrency, ok_status, make).await
}

/// Runs requests for `duration` with `concurrency` in flight.
pub async fn run_for<F>(duration: Duration, concurrency: usize, ok_status: u16, make: F) -> Timings
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    run(None, Some(duration), concurrency, ok_status, make).await
}

async fn run<F>(
    total: Option<usize>,
    duration: Option<Duration>,
    concurrency: usize,
    ok_status: u16,
    make: F,
) -> Timings
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let client = client(concurrency);
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, make, next) = (client.clone(), make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Timings::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if total.is_some_and(|n| i >= n) || deadline.is_some_and(|d| Instant::now() >= d) {
                    return t;
                }
                let sent = Instant::now();
                match make(&client, i).send().await {
                    Ok(r) if r.status().as_u16() == ok_status => {
                        let _ = r.bytes().await;
                        t.latencies_us.push(sent.elapsed().as_micros() as u64);
                    }
                    _ => t.errors += 1,
                }
            }
        }));
    }
    let mut all = Timings::default();
    for task in tasks {
        if let Ok(t) = task.await {
            all.latencies_us.extend(t.latencies_us);
            all.errors += t.errors;
        }
    }
    all.elapsed = started.elapsed();
    all
}

/// Creates `n` jobs whose schedule is `schedule(i)`, all calling `api`; returns the timings.
pub async fn create_jobs(
    base: &str,
    api: &str,
    n: usize,
    concurrency: usize,
    spread_ms: u64,
    schedule: fn(usize) -> String,
) -> anyhow::Result<Timings> {
    let url = format!("{base}/jobs");
    let api = api.to_owned();
    let t = run_count(n, concurrency, 201, move |c, i| {
        c.post(&url).json(&json!({
            "schedule": schedule(i), "api": api, "type": "ATLEAST_ONCE", "spreadMs": spread_ms
        }))
    })
    .await;
    if t.errors > 0 {
        bail!("{} of {n} job creations failed", t.errors);
    }
    Ok(t)
}

/// Creates one job and returns its id.
pub async fn create_one(base: &str, body: Value) -> anyhow::Result<String> {
    let r = reqwest::Client::new()
        .post(format!("{base}/jobs"))
        .json(&body)
        .send()
        .await?;
    if r.status() != 201 {
        bail!("create job: {}", r.status());
    }
    let v: Value = r.json().await?;
    Ok(v["jobId"].as_str().unwrap_or_default().to_owned())
}
