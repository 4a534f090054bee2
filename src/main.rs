use std::process::ExitCode;

use cronhook::app::{Application, shutdown_signal};
use cronhook::cli::{Command, parse_command, preview};
use cronhook::config::{Config, LogFormat};
use cronhook::{store, telemetry};

/// mimalloc, built with transparent huge pages off (`no_thp`: it disables them for this
/// process; `MIMALLOC_ALLOW_THP=1` turns them back on). With huge pages the resident set
/// swung by 10-20 MB with the work in hand and drifted upward: in the overload fault test
/// (2,000 fires a second, debug build) a PostgreSQL node read 57-92 MB over two minutes,
/// against 40-48 MB without them. glibc's malloc held memory as flat, but SQLite at 10,000
/// fires a second then missed a third of its fires (BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tune_c_malloc();
    // Before parsing: clap reads the settings from the environment, which .env fills in where
    // it leaves them unset.
    let _ = dotenvy::dotenv();
    // A bad setting exits with code 2, its message naming the variable.
    let command = parse_command(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match command {
        Command::Cron { expr, tz, n, from } => match preview(
            &expr,
            &tz,
            usize::from(n),
            from.unwrap_or_else(chrono::Utc::now),
        ) {
            Ok(lines) => {
                println!("{lines}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Migrate(common) => run(&common.log_level, common.log_format, async move {
            let store = store::connect(&common.database_url, 2).await?;
            store.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }),
        Command::Serve(settings) => {
            let config = Config::from(*settings);
            run(&config.log_level.clone(), config.log_format, async move {
                let app = Application::build(config).await?;
                app.run_until_stopped(shutdown_signal()).await
            })
        }
    }
}

/// SQLite is C and allocates with the C library's malloc, not with mimalloc. glibc's defaults
/// suit it badly: each of the pool's four connection threads gets an arena of its own, and
/// after the first large block is freed the threshold above which blocks are mapped (and
/// given back on free) rises to that block's size, so later statement-sized buffers (SQLite's
/// own high-water mark reached 14 MB under overload, against 2-5 MB in use) stay in the arenas
/// as holes. A SQLite node's resident set then crept upward by about 7 MB over two minutes
/// of overload and sat 14 MB higher. One arena (SQLite serialises its allocations behind its
/// own mutex anyway) and a fixed 128 KiB threshold took the 14 MB away and left only
/// SQLite's page cache filling (bounded per connection, see `store/sqlite.rs`), at no
/// measured cost (BENCHMARKS.md, "Allocator").
fn tune_c_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Starts logging and a runtime, then runs `task` to its end.
fn run(
    log_level: &str,
    log_format: LogFormat,
    task: impl Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    telemetry::init(log_level, log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        // Said once, on stderr; a setting that cannot work exits 2 like any bad setting.
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.chain().any(|c| c.is::<store::ConfigError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
