//! cronhook-bench: runs the real `cronhook` release binary as a child process against
//! PostgreSQL and SQLite, drives it through its HTTP API, receives its calls on a loopback
//! target, and measures precision, scale and API throughput; and times the library's cron
//! evaluation in process.

mod cron;
mod db;
mod load;
mod report;
mod scenarios;
mod service;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use db::Backend;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of the cronhook service.
#[derive(Debug, Parser)]
#[command(name = "cronhook-bench")]
struct Args {
    /// The service binary (default: `cronhook` beside this binary).
    #[arg(long, global = true)]
    binary: Option<PathBuf>,
    /// PostgreSQL server URL; each run creates and drops its own database there.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL_TEST_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg: String,
    /// Which stores to run against.
    #[arg(long, global = true, value_enum, default_value = "both")]
    backend: Which,
    /// Write the results into this Markdown file, between its result markers.
    #[arg(long, global = true)]
    write: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    Both,
    Postgres,
    Sqlite,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N jobs firing every second: lag, missed and duplicate fires, CPU, memory.
    Precision {
        /// Job counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
        jobs: Vec<usize>,
        /// Measured seconds per run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Worker concurrencies (`WORKER_CONCURRENCY`), comma-separated; each job count runs
        /// with each.
        #[arg(long, value_delimiter = ',', default_values_t = [scenarios::DEFAULT_WORKERS])]
        workers: Vec<usize>,
        /// Jobs beside them, every second, on a target that never answers (`timeoutMs`
        /// 30000); only the others are measured.
        #[arg(long, default_value_t = 0)]
        hanging: usize,
        /// Each job's `spreadMs`: its fires fall due a fixed offset in [0, spread) after
        /// their instants, and lag is counted from there. The table is written to the
        /// `spread` section instead of `precision`.
        #[arg(long, default_value_t = 0)]
        spread: u64,
    },
    /// CPU time per fire of the service, of PostgreSQL (every `postgres` process) and of the
    /// bench's target, from `/proc`, over precision runs of N jobs every second.
    Cost {
        /// Job counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
        jobs: Vec<usize>,
        /// Measured seconds per run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// One PostgreSQL shared by 1, 2, 3... nodes: missed and duplicate fires, how the calls
    /// split between the nodes, CPU per fire of all nodes and of the database, and lock
    /// waits sampled every 20 ms.
    Nodes {
        /// Node counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3])]
        nodes: Vec<usize>,
        /// Jobs firing every second.
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        /// Measured seconds per run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Many jobs and a large history: creation, idle memory, restart to first fire, latency.
    Scale {
        /// Registered jobs (hourly and daily schedules).
        #[arg(long, default_value_t = 1_000_000)]
        jobs: usize,
        /// Of those, how many are created through the API (default: all); the rest are
        /// copies of their rows under new ids, inserted by SQL with the service stopped.
        #[arg(long)]
        api_jobs: Option<usize>,
        /// Execution rows stored.
        #[arg(long, default_value_t = 10_000_000)]
        history: u64,
    },
    /// Requests per second and latency of the API at a fixed concurrency.
    Api {
        /// Seconds per endpoint.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// A small run of all three (under 2 minutes); fails on missed or duplicate fires.
    Quick,
    /// The cost of one `next_after` call and one parse, per expression (in process).
    Cron {
        /// `next_after` calls per expression.
        #[arg(long, default_value_t = 200_000)]
        calls: u64,
    },
}

fn backends(w: Which) -> Vec<Backend> {
    match w {
        Which::Both => vec![Backend::Postgres, Backend::Sqlite],
        Which::Postgres => vec![Backend::Postgres],
        Which::Sqlite => vec![Backend::Sqlite],
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the scenario; `Ok(false)` when fires were missed or duplicated.
async fn run(args: Args) -> anyhow::Result<bool> {
    if let Scenario::Cron { calls } = args.scenario {
        let body = report::cron(&cron::run(calls)?);
        println!("{body}");
        if let Some(path) = &args.write {
            report::write_section(path, "cron", &body)?;
        }
        return Ok(true);
    }
    let bin = args.binary.clone().unwrap_or_else(service::default_binary);
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it with `cargo build --release -p cronhook`",
        bin.display()
    );
    let which = backends(args.backend);
    let mut fires_ok = true;
    let write = |name: &str, body: &str| -> anyhow::Result<()> {
        println!("{body}");
        if let Some(path) = &args.write {
            report::write_section(path, name, body)?;
        }
        Ok(())
    };
    match &args.scenario {
        Scenario::Precision {
            jobs,
            seconds,
            workers,
            hanging,
            spread,
        } => {
            let mut rows = Vec::new();
            for &backend in &which {
                for &n in jobs {
                    for &w in workers {
                        eprintln!(
                            "precision: {} {n} jobs, {w} workers, spread {spread} ms, for {seconds} s",
                            backend.name()
                        );
                        let load = scenarios::Load {
                            hanging: *hanging,
                            workers: w,
                            spread_ms: *spread,
                            ..scenarios::Load::every_second(n, *seconds)
                        };
                        let r = scenarios::precision(&bin, &args.pg, backend, load).await?;
                        eprintln!("  {r:?}");
                        rows.push(r);
                    }
                }
            }
            let (pg, sqlite) = db::versions(&args.pg).await;
            if *spread > 0 {
                // Its own table, with its machine beside it: section 1's machine stays.
                let body = format!(
                    "{}\n{}",
                    report::precision(&rows),
                    report::machine(&pg, &sqlite)
                );
                write("spread", &body)?;
            } else {
                write("machine", &report::machine(&pg, &sqlite))?;
                write("precision", &report::precision(&rows))?;
            }
        }
        Scenario::Cost { jobs, seconds } => {
            let mut rows = Vec::new();
            for &backend in &which {
                for &n in jobs {
                    eprintln!("cost: {} {n} jobs, for {seconds} s", backend.name());
                    let load = scenarios::Load::every_second(n, *seconds);
                    let r = scenarios::precision(&bin, &args.pg, backend, load).await?;
                    eprintln!("  {r:?}");
                    rows.push(r);
                }
            }
            // The machine beside the table: the cost depends on it more than any figure.
            let (pg, sqlite) = db::versions(&args.pg).await;
            let body = format!("{}\n{}", report::cost(&rows), report::machine(&pg, &sqlite));
            write("cost", &body)?;
        }
        Scenario::Nodes {
            nodes,
            jobs,
            seconds,
        } => {
            let mut rows = Vec::new();
            for &n in nodes {
                eprintln!("nodes: {n} on PostgreSQL, {jobs} jobs, for {seconds} s");
                let load = scenarios::Load {
                    nodes: n,
                    watch_nodes: true,
                    ..scenarios::Load::every_second(*jobs, *seconds)
                };
                let r = scenarios::precision(&bin, &args.pg, Backend::Postgres, load).await?;
                eprintln!("  {r:?}");
                fires_ok &= r.missed == 0 && r.duplicates == 0;
                rows.push(r);
            }
            let (pg, sqlite) = db::versions(&args.pg).await;
            let body = format!(
                "{}\n{}",
                report::nodes(&rows),
                report::machine(&pg, &sqlite)
            );
            write("nodes", &body)?;
        }
        Scenario::Scale {
            jobs,
            api_jobs,
            history,
        } => {
            let mut rows = Vec::new();
            let api_jobs = api_jobs.unwrap_or(*jobs).min(*jobs);
            for &backend in &which {
                eprintln!(
                    "scale: {} {jobs} jobs ({api_jobs} through the API), {history} execution rows",
                    backend.name()
                );
                let size = scenarios::Size {
                    jobs: *jobs,
                    api_jobs,
                    history: *history,
                };
                rows.push(scenarios::scale(&bin, &args.pg, backend, size).await?);
            }
            write("scale", &report::scale(&rows))?;
        }
        Scenario::Api {
            seconds,
            concurrency,
        } => {
            let mut rows = Vec::new();
            for &backend in &which {
                eprintln!(
                    "api: {} {seconds} s per endpoint at concurrency {concurrency}",
                    backend.name()
                );
                rows.push(scenarios::api(&bin, &args.pg, backend, *seconds, *concurrency).await?);
            }
            write("api", &report::api(&rows))?;
        }
        // Measured above, in process: it needs neither the service nor a database.
        Scenario::Cron { .. } => {}
        Scenario::Quick => {
            let mut precision = Vec::new();
            let mut scale = Vec::new();
            let mut api = Vec::new();
            for &backend in &which {
                eprintln!("quick: {}", backend.name());
                precision.push(
                    scenarios::precision(
                        &bin,
                        &args.pg,
                        backend,
                        scenarios::Load::every_second(500, 8),
                    )
                    .await?,
                );
                let size = scenarios::Size {
                    jobs: 10_000,
                    api_jobs: 10_000,
                    history: 100_000,
                };
                scale.push(scenarios::scale(&bin, &args.pg, backend, size).await?);
                api.push(scenarios::api(&bin, &args.pg, backend, 2, 16).await?);
            }
            println!("{}", report::precision(&precision));
            println!("{}", report::scale(&scale));
            println!("{}", report::api(&api));
            for r in &precision {
                if r.missed > 0 || r.duplicates > 0 {
                    eprintln!(
                        "FAIL: {} missed {} and duplicated {} fires",
                        r.backend.name(),
                        r.missed,
                        r.duplicates
                    );
                    fires_ok = false;
                }
            }
        }
    }
    Ok(fires_ok)
}
