//! The node's metrics, exported at `/metrics` in the Prometheus text format: one recorder
//! per process (the `metrics` facade with `metrics-exporter-prometheus`), fed where things
//! happen (a call, a claim, a write) and, for what is a level rather than an event (queue
//! depth, jobs, nodes, the process), read when scraped. No label holds a job id, a URL or
//! anything else unbounded: every label's values are listed here.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::domain::job::Delivery;

/// Fire lag: when the request left minus when the attempt was due (seconds).
pub const FIRE_LAG: &str = "cronhook_fire_lag_seconds";
/// How long each call took, from sending to the end of the answer or the failure.
pub const CALL_DURATION: &str = "cronhook_call_duration_seconds";
/// Attempts by `result` and `delivery`.
pub const CALLS: &str = "cronhook_calls_total";
/// Retries stored with a failed attempt's outcome.
pub const RETRIES: &str = "cronhook_retries_scheduled_total";
/// Instants and waiting attempts skipped by a misfire policy, by `policy`.
pub const MISFIRES: &str = "cronhook_misfires_total";
/// Attempts of dead or stopped nodes taken over, by `outcome`.
pub const RECOVERED: &str = "cronhook_fires_recovered_total";
/// Fires not started because the node fenced itself, by `reason`.
pub const FENCED: &str = "cronhook_fires_fenced_total";
/// Outcomes the store did not take, by `reason`.
pub const OUTCOMES_DROPPED: &str = "cronhook_outcomes_dropped_total";
/// Fires due and waiting for a worker.
pub const QUEUE_DEPTH: &str = "cronhook_queue_depth";
/// Calls in flight, slow ones included.
pub const ACTIVE_CALLS: &str = "cronhook_active_calls";
/// Calls in flight that gave their worker back.
pub const SLOW_CALLS: &str = "cronhook_slow_calls";
/// Configured workers.
pub const CONCURRENCY: &str = "cronhook_worker_concurrency";
/// How long the longest-waiting due fire has waited (seconds).
pub const BEHIND: &str = "cronhook_behind_seconds";
/// Jobs by `state`.
pub const JOBS: &str = "cronhook_jobs";
/// Fires per claim transaction.
pub const CLAIM_BATCH: &str = "cronhook_claim_batch_fires";
/// How long one claim transaction took (seconds).
pub const CLAIM_DURATION: &str = "cronhook_claim_duration_seconds";
/// Fires claimed by this node and held by the timer until due.
pub const TIMER_FIRES: &str = "cronhook_timer_fires";
/// Fires claimed by this node and not yet taken by a worker (the `MAX_CLAIMED_FIRES` count).
pub const CLAIMED_FIRES: &str = "cronhook_claimed_fires";
/// Outcomes per write transaction.
pub const OUTCOME_BATCH: &str = "cronhook_outcome_batch_size";
/// How long one outcome write took (seconds).
pub const OUTCOME_WRITE: &str = "cronhook_outcome_write_duration_seconds";
/// Outcomes of calls made, waiting to be stored.
pub const OUTCOMES_WAITING: &str = "cronhook_outcomes_waiting";
/// Database operations that failed, by `operation`.
pub const DB_ERRORS: &str = "cronhook_db_errors_total";
/// 1 while this node's lease is fresh (it may start calls), 0 while fenced.
pub const LEASE_FRESH: &str = "cronhook_lease_fresh";
/// Nodes whose heartbeat is within the lease.
pub const NODES_LIVE: &str = "cronhook_nodes_live";
/// Always 1, labelled with the `version`.
pub const BUILD_INFO: &str = "cronhook_build_info";

/// Buckets of the lag histogram: fine enough to tell a millisecond's precision.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];
/// Buckets of the duration histograms (calls, claims, writes).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of the batch-size histograms.
const BATCH_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// How often histograms are drained when nobody scrapes, so samples never pile up.
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's recorder, installed at first use.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder: installed as the global one the first time, with every metric
/// described and the build info set.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (names, buckets) in [
            (&[FIRE_LAG][..], LAG_BUCKETS),
            (
                &[CALL_DURATION, CLAIM_DURATION, OUTCOME_WRITE][..],
                DURATION_BUCKETS,
            ),
            (&[CLAIM_BATCH, OUTCOME_BATCH][..], BATCH_BUCKETS),
        ] {
            for name in names {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                    .expect("the buckets are not empty");
            }
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (a test's): this one then records
        // nothing, and `/metrics` shows only what is read at scrape time.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        register();
        handle
    })
}

/// Drains the histograms every few seconds until `stop`, whether or not anyone scrapes.
pub async fn upkeep(stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP) => handle().run_upkeep(),
        }
    }
}

/// What an attempt came to, as [`CALLS`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// A 2xx answer.
    Succeeded,
    /// Another status.
    FailedStatus,
    /// No answer within the call's timeout.
    Timeout,
    /// No answer: the connection failed or broke.
    ConnectError,
    /// Not sent: the target policy refuses the address.
    Denied,
    /// Not sent: the job forbids overlapping calls and its previous one still ran.
    Skipped,
}

impl CallResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Succeeded => "succeeded",
            CallResult::FailedStatus => "failed_status",
            CallResult::Timeout => "timeout",
            CallResult::ConnectError => "connect_error",
            CallResult::Denied => "denied",
            CallResult::Skipped => "skipped",
        }
    }
}

/// The label value of a delivery type.
fn delivery(d: Delivery) -> &'static str {
    match d {
        Delivery::AtLeastOnce => "at_least_once",
        Delivery::AtMostOnce => "at_most_once",
    }
}

/// Counts one attempt that was not sent (skipped).
pub fn not_sent(result: CallResult, d: Delivery) {
    counter!(CALLS, "result" => result.as_str(), "delivery" => delivery(d)).increment(1);
}

/// Counts one call made: its result, its lag behind its due instant and its duration.
pub fn called(result: CallResult, d: Delivery, lag: Duration, took: Duration, retry: bool) {
    counter!(CALLS, "result" => result.as_str(), "delivery" => delivery(d)).increment(1);
    histogram!(FIRE_LAG).record(lag.as_secs_f64());
    histogram!(CALL_DURATION).record(took.as_secs_f64());
    if retry {
        counter!(RETRIES).increment(1);
    }
}

/// Counts instants or attempts skipped by a misfire `policy` (`none`, `one` or `all`).
pub fn misfired(policy: &'static str, n: u64) {
    if n > 0 {
        counter!(MISFIRES, "policy" => policy).increment(n);
    }
}

/// Counts a database operation that failed; `operation` is one of a fixed few.
pub fn db_error(operation: &'static str) {
    counter!(DB_ERRORS, "operation" => operation).increment(1);
}

/// Records one claim transaction.
pub fn claimed(fires: usize, took: Duration) {
    histogram!(CLAIM_BATCH).record(fires as f64);
    histogram!(CLAIM_DURATION).record(took.as_secs_f64());
}

/// Records one outcome write.
pub fn outcomes_written(outcomes: usize, took: Duration) {
    histogram!(OUTCOME_BATCH).record(outcomes as f64);
    histogram!(OUTCOME_WRITE).record(took.as_secs_f64());
}

/// Counts fires of dead nodes handed back (`released`) or recorded unknown (`unknown`).
pub fn recovered(released: u64, unknown: u64) {
    if released > 0 {
        counter!(RECOVERED, "outcome" => "released").increment(released);
    }
    if unknown > 0 {
        counter!(RECOVERED, "outcome" => "unknown").increment(unknown);
    }
}

/// Counts a fire not started because the node fenced itself: its lease lapsed or it could
/// not read job changes (`lease`), or too many outcomes wait for the database (`unstored`).
pub fn fenced(reason: &'static str) {
    counter!(FENCED, "reason" => reason).increment(1);
}

/// Counts outcomes the store did not take: the attempt was no longer the node's (`late`)
/// or the database refused it (`refused`).
pub fn outcomes_dropped(reason: &'static str, n: u64) {
    if n > 0 {
        counter!(OUTCOMES_DROPPED, "reason" => reason).increment(n);
    }
}

/// The levels read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Levels {
    /// Fires due and waiting for a worker.
    pub queued: usize,
    /// Calls in flight.
    pub active: usize,
    /// Slow calls in flight.
    pub slow: usize,
    /// Configured workers.
    pub workers: usize,
    /// Fires claimed and not taken by a worker.
    pub claimed: usize,
    /// Outcomes waiting to be stored.
    pub unstored: usize,
    /// How long the longest-waiting due fire has waited.
    pub behind: Duration,
    /// Whether the lease is fresh.
    pub fresh: bool,
}

/// Sets the level gauges.
pub fn set_levels(l: &Levels) {
    gauge!(QUEUE_DEPTH).set(l.queued as f64);
    gauge!(ACTIVE_CALLS).set(l.active as f64);
    gauge!(SLOW_CALLS).set(l.slow as f64);
    gauge!(CONCURRENCY).set(l.workers as f64);
    gauge!(CLAIMED_FIRES).set(l.claimed as f64);
    gauge!(TIMER_FIRES).set(l.claimed.saturating_sub(l.queued) as f64);
    gauge!(OUTCOMES_WAITING).set(l.unstored as f64);
    gauge!(BEHIND).set(l.behind.as_secs_f64());
    gauge!(LEASE_FRESH).set(if l.fresh { 1.0 } else { 0.0 });
}

/// Sets the gauges read from the store: jobs by state and live nodes.
pub fn set_census(enabled: u64, paused: u64, nodes: u64) {
    gauge!(JOBS, "state" => "enabled").set(enabled as f64);
    gauge!(JOBS, "state" => "paused").set(paused as f64);
    gauge!(NODES_LIVE).set(nodes as f64);
}

/// The text of a scrape: the recorder's metrics, then the process's.
pub fn render() -> String {
    let mut text = handle().render();
    text.push_str(&process_metrics());
    text
}

/// The process's resident memory, CPU time, open descriptors and start time, in the names
/// Prometheus client libraries use; read from `/proc`, so empty elsewhere.
fn process_metrics() -> String {
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
        ));
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kib) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        put(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            kib * 1024.0,
        );
    }
    // Fields after the command name, which is in parentheses and may hold spaces.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    if let (Some(user), Some(system)) = (field(11), field(12))
        && ticks > 0.0
    {
        put(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            (user + system) / ticks,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        put(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds.count() as f64,
        );
    }
    out
}

/// The `operation` labels of [`DB_ERRORS`].
pub mod op {
    /// A claim transaction.
    pub const CLAIM: &str = "claim";
    /// Storing outcomes.
    pub const OUTCOMES: &str = "outcomes";
    /// Handing attempts back.
    pub const HAND_BACK: &str = "hand_back";
    /// The heartbeat or the recovery sweep.
    pub const HEARTBEAT: &str = "heartbeat";
    /// Recording an attempt started.
    pub const START: &str = "start";
    /// Reading job changes.
    pub const CHANGES: &str = "changes";
    /// Pruning history.
    pub const PRUNE: &str = "prune";
    /// Every label, for registration.
    pub const ALL: [&str; 7] = [CLAIM, OUTCOMES, HAND_BACK, HEARTBEAT, START, CHANGES, PRUNE];
}

/// Registers every metric with each of its label values, so every family is in the first
/// scrape, at zero, rather than appearing with its first event.
fn register() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let results = [
        CallResult::Succeeded,
        CallResult::FailedStatus,
        CallResult::Timeout,
        CallResult::ConnectError,
        CallResult::Denied,
        CallResult::Skipped,
    ];
    for r in results {
        for d in [Delivery::AtLeastOnce, Delivery::AtMostOnce] {
            counter!(CALLS, "result" => r.as_str(), "delivery" => delivery(d)).increment(0);
        }
    }
    counter!(RETRIES).increment(0);
    for policy in ["none", "one", "all"] {
        counter!(MISFIRES, "policy" => policy).increment(0);
    }
    for outcome in ["released", "unknown"] {
        counter!(RECOVERED, "outcome" => outcome).increment(0);
    }
    for reason in ["lease", "unstored"] {
        counter!(FENCED, "reason" => reason).increment(0);
    }
    for reason in ["late", "refused"] {
        counter!(OUTCOMES_DROPPED, "reason" => reason).increment(0);
    }
    for operation in op::ALL {
        counter!(DB_ERRORS, "operation" => operation).increment(0);
    }
    for name in [
        FIRE_LAG,
        CALL_DURATION,
        CLAIM_BATCH,
        CLAIM_DURATION,
        OUTCOME_BATCH,
        OUTCOME_WRITE,
    ] {
        let _ = histogram!(name);
    }
    set_levels(&Levels::default());
    set_census(0, 0, 0);
}

/// Describes every metric, so the scrape carries its help text.
fn describe() {
    describe_histogram!(
        FIRE_LAG,
        metrics::Unit::Seconds,
        "When each call's request left minus when its attempt was due."
    );
    describe_histogram!(
        CALL_DURATION,
        metrics::Unit::Seconds,
        "How long each call took, from sending to the end of the answer or the failure."
    );
    describe_counter!(
        CALLS,
        "Attempts by result (succeeded, failed_status, timeout, connect_error, denied, skipped) and delivery type."
    );
    describe_counter!(
        RETRIES,
        "Retries stored with the outcome of a failed attempt."
    );
    describe_counter!(
        MISFIRES,
        "Instants and waiting attempts skipped by their job's misfire policy (none, one, all)."
    );
    describe_counter!(
        RECOVERED,
        "Attempts of dead or stopped nodes taken over: handed back (released) or recorded unknown."
    );
    describe_counter!(
        FENCED,
        "Fires not started because this node fenced itself (lease, unstored)."
    );
    describe_counter!(
        OUTCOMES_DROPPED,
        "Outcomes the store did not take: late (the attempt was no longer this node's) or refused."
    );
    describe_gauge!(QUEUE_DEPTH, "Fires due and waiting for a worker.");
    describe_gauge!(ACTIVE_CALLS, "Calls in flight, slow ones included.");
    describe_gauge!(SLOW_CALLS, "Calls in flight that gave their worker back.");
    describe_gauge!(CONCURRENCY, "Configured workers (WORKER_CONCURRENCY).");
    describe_gauge!(
        BEHIND,
        metrics::Unit::Seconds,
        "How long the longest-waiting due fire has waited for a worker."
    );
    describe_gauge!(JOBS, "Jobs by state (enabled, paused).");
    describe_histogram!(CLAIM_BATCH, "Fires claimed per claim transaction.");
    describe_histogram!(
        CLAIM_DURATION,
        metrics::Unit::Seconds,
        "How long each claim transaction took."
    );
    describe_gauge!(
        TIMER_FIRES,
        "Fires claimed and held by the timer until due."
    );
    describe_gauge!(
        CLAIMED_FIRES,
        "Fires claimed by this node and not yet taken by a worker (bounded by MAX_CLAIMED_FIRES)."
    );
    describe_histogram!(OUTCOME_BATCH, "Outcomes per write transaction.");
    describe_histogram!(
        OUTCOME_WRITE,
        metrics::Unit::Seconds,
        "How long each outcome write took."
    );
    describe_gauge!(
        OUTCOMES_WAITING,
        "Outcomes of calls made, waiting to be stored (bounded by MAX_UNSTORED_OUTCOMES)."
    );
    describe_counter!(DB_ERRORS, "Database operations that failed, by operation.");
    describe_gauge!(
        LEASE_FRESH,
        "1 while this node's lease is fresh and it may start calls, 0 while fenced."
    );
    describe_gauge!(NODES_LIVE, "Nodes whose heartbeat is within the lease.");
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_block_is_in_the_text_format() {
        // The kernel counts CPU time in ticks of 10 ms: a test process that has just started
        // (one process per test under nextest) may not have used one yet.
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let text = process_metrics();
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from {text}"));
            let value: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
            assert!(value > 0.0, "{line}");
            assert!(text.contains(&format!("# TYPE {name} ")));
        }
    }

    #[test]
    fn every_result_has_its_label() {
        let all = [
            CallResult::Succeeded,
            CallResult::FailedStatus,
            CallResult::Timeout,
            CallResult::ConnectError,
            CallResult::Denied,
            CallResult::Skipped,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
