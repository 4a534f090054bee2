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
    sqlite_allocates_with_mimalloc();
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

/// SQLite is C and would allocate with the C library's malloc, beside mimalloc. glibc's heap
/// keeps the holes SQLite's statement-sized buffers leave (its high-water mark reached 9-14 MB
/// under overload, against 2-7 MB in use), and only the top of it is ever given back: in the
/// overload fault test a SQLite node's `[heap]` crept from 6.4 to 7.9 MB over two minutes even
/// with one arena and a fixed mmap threshold, while mimalloc's region moved up and down with the
/// work in hand. So SQLite allocates with mimalloc too, whose free pages are given back to the
/// system: the `[heap]` stays at 24 KiB, at no measured CPU cost (BENCHMARKS.md, "Allocator").
/// Set before SQLite initialises (its first connection), or SQLite refuses it.
fn sqlite_allocates_with_mimalloc() {
    use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};
    use libsqlite3_sys::{SQLITE_CONFIG_MALLOC, SQLITE_OK, sqlite3_config, sqlite3_mem_methods};
    use std::ffi::{c_int, c_void};

    // SQLite passes sizes as positive `int`s and needs 8-byte alignment, which mimalloc gives.
    unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: any size may be asked of mimalloc; a failure returns null, as SQLite expects.
        unsafe { mi_malloc(usize::try_from(n).unwrap_or(0)) }
    }
    unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc` or `realloc` above returned.
        unsafe { mi_free(p) }
    }
    unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as for `free`; mimalloc keeps the block's contents up to the smaller size.
        unsafe { mi_realloc(p, usize::try_from(n).unwrap_or(0)) }
    }
    unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: as for `free`: `p` is a live mimalloc block.
        c_int::try_from(unsafe { mi_usable_size(p) }).unwrap_or(c_int::MAX)
    }
    unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure function of the size.
        c_int::try_from(unsafe { mi_good_size(usize::try_from(n).unwrap_or(0)) }).unwrap_or(n)
    }
    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        SQLITE_OK
    }
    unsafe extern "C" fn shutdown(_: *mut c_void) {}

    let methods = sqlite3_mem_methods {
        xMalloc: Some(malloc),
        xFree: Some(free),
        xRealloc: Some(realloc),
        xSize: Some(size),
        xRoundup: Some(roundup),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: called once, before any thread starts and before SQLite initialises; SQLite
    // copies the methods.
    let rc = unsafe { sqlite3_config(SQLITE_CONFIG_MALLOC, &raw const methods) };
    if rc != SQLITE_OK {
        // Not fatal: SQLite keeps the C library's malloc.
        eprintln!("warning: SQLite keeps the C library's malloc (sqlite3_config: {rc})");
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
