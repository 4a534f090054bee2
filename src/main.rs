use std::process::ExitCode;

use clap::Parser;
use cronhook::app::{Application, shutdown_signal};
use cronhook::cli::{Cli, Command, preview};
use cronhook::config::Config;
use cronhook::{store, telemetry};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Cron { expr, tz, n }) = &cli.command {
        return match preview(expr, tz, usize::from(*n)) {
            Ok(lines) => {
                println!("{lines}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    // A .env file fills in what the environment leaves unset.
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_level, config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Migrate) => {
                let store = store::connect(&config.database_url, 2).await?;
                store.close().await;
                tracing::info!("migrations applied");
                Ok(())
            }
            _ => {
                let app = Application::build(config).await?;
                app.run_until_stopped(shutdown_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
