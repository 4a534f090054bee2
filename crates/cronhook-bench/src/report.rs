//! Results as Markdown tables, written between markers in BENCHMARKS.md.

use std::path::Path;

use crate::cron::CronResult;
use crate::scenarios::{ApiResult, PrecisionResult, ScaleResult};

/// The precision table.
pub fn precision(rows: &[PrecisionResult]) -> String {
    let mut s = String::from(
        "| backend | jobs (fires/s) | workers | seconds | fires expected | missed | duplicates | lag p50 ms | lag p99 ms | lag max ms | service CPU (cores) | peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} |\n",
            r.backend.name(),
            match (r.hanging, r.spread_ms) {
                (0, 0) => r.jobs.to_string(),
                (0, spread) => format!("{}, spread {spread} ms", r.jobs),
                (h, _) => format!("{} + {h} hanging", r.jobs),
            },
            r.workers,
            r.seconds,
            r.expected,
            r.missed,
            r.duplicates,
            r.lag_p50_ms,
            r.lag_p99_ms,
            r.lag_max_ms,
            r.cpu_cores,
            r.peak_rss_mib
        );
    }
    s
}

/// The nodes table: one PostgreSQL shared by 1, 2, 3... nodes.
pub fn nodes(rows: &[PrecisionResult]) -> String {
    let mut s = String::from(
        "| nodes | jobs (fires/s) | seconds | fires expected | missed | duplicates | lag p50 ms | lag p99 ms | calls per node | cronhook µs/fire (all nodes) | database µs/fire | WAL bytes/fire | lock waits seen (per sample) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let per_node: Vec<String> = r.calls_per_node.iter().map(u64::to_string).collect();
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.1} | {} | {} | {} ({:.3}) |\n",
            r.nodes,
            r.jobs,
            r.seconds,
            r.expected,
            r.missed,
            r.duplicates,
            r.lag_p50_ms,
            r.lag_p99_ms,
            per_node.join(" / "),
            r.service_us_per_fire,
            r.db_us_per_fire
                .map_or("–".to_owned(), |d| format!("{d:.1}")),
            r.wal_bytes_per_fire
                .map_or("–".to_owned(), |w| format!("{w:.0}")),
            r.lock_waits,
            r.lock_waits as f64 / r.lock_samples.max(1) as f64,
        );
    }
    s
}

/// The cost table: CPU time per fire called, by process.
pub fn cost(rows: &[PrecisionResult]) -> String {
    let mut s = String::from(
        "| backend | jobs (fires/s) | seconds | fires called | cronhook µs/fire | database µs/fire | cronhook + database µs/fire | bench target µs/fire | lag p99 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let called = r.expected - r.missed;
        let (db, both) = match r.db_us_per_fire {
            Some(db) => (format!("{db:.1}"), r.service_us_per_fire + db),
            None => ("in cronhook".to_owned(), r.service_us_per_fire),
        };
        s += &format!(
            "| {} | {} | {} | {called} | {:.1} | {db} | {both:.1} | {:.1} | {:.1} |\n",
            r.backend.name(),
            r.jobs,
            r.seconds,
            r.service_us_per_fire,
            r.bench_us_per_fire,
            r.lag_p99_ms
        );
    }
    s
}

/// The scale table.
pub fn scale(rows: &[ScaleResult]) -> String {
    let mut s = String::from(
        "| backend | jobs | execution rows | created through the API: jobs, s (jobs/s) | idle RSS MiB | restart to first fire s | POST /jobs p50 / p99 ms | GET executions p50 / p99 ms | GET /jobs?limit=100 p50 / p99 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {}, {:.1} ({:.0}) | {:.1} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |\n",
            r.backend.name(),
            r.jobs,
            r.history,
            r.api_jobs,
            r.create_s,
            r.create_rate,
            r.idle_rss_mib,
            r.restart_to_first_fire_s,
            r.post.pct_ms(50.0),
            r.post.pct_ms(99.0),
            r.get.pct_ms(50.0),
            r.get.pct_ms(99.0),
            r.list.pct_ms(50.0),
            r.list.pct_ms(99.0)
        );
    }
    s
}

/// The cron evaluation table.
pub fn cron(rows: &[CronResult]) -> String {
    let mut s = String::from(
        "| expression | zone | next_after calls | ns per next_after | µs per parse |\n\
         |---|---|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| `{}` | {} | {} | {:.0} | {:.1} |\n",
            r.expr, r.tz, r.calls, r.next_ns, r.parse_us
        );
    }
    s
}

/// The API table.
pub fn api(rows: &[ApiResult]) -> String {
    let mut s = String::from(
        "| backend | concurrency | POST /jobs req/s | POST p50 / p99 ms | GET executions req/s | GET p50 / p99 ms | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {} |\n",
            r.backend.name(),
            r.concurrency,
            r.post.rate(),
            r.post.pct_ms(50.0),
            r.post.pct_ms(99.0),
            r.get.rate(),
            r.get.pct_ms(50.0),
            r.get.pct_ms(99.0),
            r.post.errors + r.get.errors
        );
    }
    s
}

/// Replaces the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->`.
pub fn write_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let (open, close) = (
        format!("<!-- results:{name} -->"),
        format!("<!-- /results:{name} -->"),
    );
    let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
        anyhow::bail!("{} has no {open} ... {close} markers", path.display());
    };
    let updated = format!("{}{open}\n{body}{}", &text[..a], &text[b..]);
    std::fs::write(path, updated)?;
    Ok(())
}

/// The machine the results come from.
pub fn machine(pg: &str, sqlite: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_owned();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "- CPU: {model}, {cores} cores available\n- Memory: {mem_gib:.0} GiB\n- Linux {}\n- PostgreSQL {pg} (local, default settings), SQLite {sqlite} (bundled, WAL, synchronous=FULL)\n- Measured on {}\n",
        kernel.trim(),
        chrono::Utc::now().format("%Y-%m-%d")
    )
}
