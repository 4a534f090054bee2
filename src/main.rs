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
