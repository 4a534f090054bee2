//! The command line and start-up configuration, through the real binary.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Db, Server, TestDb};

fn cronhook() -> Command {
    let mut c = Command::new(common::binary());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn cron_prints_the_next_instants() {
    let out = cronhook()
        .args(["cron", "*/15 * * * * *", "-n", "4"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let instants: Vec<chrono::DateTime<chrono::FixedOffset>> = lines
        .iter()
        .map(|l| chrono::DateTime::parse_from_rfc3339(l).unwrap())
        .collect();
    for w in instants.windows(2) {
        assert_eq!((w[1] - w[0]).num_seconds(), 15);
    }
    assert!(
        instants
            .iter()
            .all(|t| chrono::Timelike::second(t) % 15 == 0)
    );
}

#[test]
fn cron_evaluates_in_a_time_zone() {
    let out = cronhook()
        .args(["cron", "0 0 9 * * *", "--tz", "Asia/Tokyo", "-n", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // 09:00 in Tokyo (UTC+9, no DST) is 00:00 UTC.
    assert!(text.lines().all(|l| l.ends_with("T00:00:00Z")), "{text}");
}

#[test]
fn cron_starts_from_a_given_instant() {
    let out = cronhook()
        .args([
            "cron",
            "0 0 12 * * *",
            "-n",
            "2",
            "--from",
            "2027-06-01T07:00:00-04:00",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2027-06-01T12:00:00Z\n2027-06-02T12:00:00Z\n"
    );
    let out = cronhook()
        .args(["cron", "0 0 12 * * *", "--from", "tomorrow"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

#[test]
fn cron_rejects_a_bad_expression_with_exit_code_2() {
    let out = cronhook().args(["cron", "* * 25 * * *"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("hour \"25\" is out of range 0-23"), "{err}");
    let out = cronhook().args(["cron", "* *"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("got 2"));
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    for (k, v) in [
        ("PORT", "eighty"),
        ("WORKER_CONCURRENCY", "0"),
        ("LOG_LEVEL", "chatty"),
        ("DATABASE_URL", "mysql://x/y"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = cronhook()
            .current_dir(dir.path())
            .env(k, v)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{k}={v}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&format!("invalid {k}")), "{k}: {err}");
    }
}

#[test]
fn serve_help_lists_every_setting() {
    let out = cronhook().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "DATABASE_URL",
        "HOST",
        "PORT",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "LOG_CALLS",
        "HEADER_TIMEOUT_MS",
        "BODY_TIMEOUT_MS",
        "IDLE_TIMEOUT_MS",
        "MAX_CONNECTIONS",
        "WORKER_CONCURRENCY",
        "HOST_CONCURRENCY",
        "SLOW_CALL_MS",
        "MAX_SLOW_CALLS",
        "CALL_TIMEOUT_MS",
        "MAX_CALL_TIMEOUT_MS",
        "SHUTDOWN_GRACE_MS",
        "LEASE_MS",
        "LOOKAHEAD_MS",
        "CLAIM_INTERVAL_MS",
        "CHANGE_POLL_MS",
        "MISFIRE_THRESHOLD_MS",
        "MISFIRE_MAX_CATCHUP",
        "RETRY_MAX_ATTEMPTS",
        "RETRY_BACKOFF_MS",
        "RETRY_MAX_BACKOFF_MS",
        "DB_POOL_SIZE",
        "DB_CONNECT_TIMEOUT_MS",
        "MAX_UNSTORED_OUTCOMES",
        "API_TOKEN",
        "SIGNING_SECRET",
        "TARGET_POLICY",
        "TARGET_ALLOW",
        "HISTORY_KEEP",
        "HISTORY_MAX_AGE_MS",
        "PRUNE_INTERVAL_MS",
        "PRUNE_JOBS",
        "PRUNE_BATCH",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "{var}: {help}");
    }
    assert!(help.contains("[default: 3000]"), "{help}");
}

#[test]
fn cron_and_migrate_ignore_the_settings_they_do_not_use() {
    let out = cronhook()
        .args(["cron", "0 * * * * *", "-n", "1"])
        .env("PORT", "eighty")
        .env("DATABASE_URL", "mysql://x/y")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = cronhook()
        .current_dir(dir.path())
        .arg("migrate")
        .env("PORT", "eighty")
        .env("DATABASE_URL", "sqlite://migrated.db")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("migrated.db").exists());
}

#[test]
fn a_dot_env_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "LOG_LEVEL=shouting\n").unwrap();
    let out = cronhook().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("invalid LOG_LEVEL")
    );
    // The environment wins over the file.
    std::fs::write(dir.path().join(".env"), "LOG_LEVEL=debug\nPORT=notaport\n").unwrap();
    let out = cronhook()
        .current_dir(dir.path())
        .env("PORT", "x1")
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr).unwrap().contains("\"x1\""));
}

#[test]
fn with_no_configuration_it_creates_cronhook_db_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    // PORT=0 only so that parallel tests do not fight over 3000; the rest is the default.
    let mut child = cronhook()
        .current_dir(dir.path())
        .env("PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.path().join("cronhook.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !db.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(db.exists(), "./cronhook.db created");
    assert!(alive, "still serving");
}

#[tokio::test]
async fn migrate_applies_the_schema_and_exits() {
    for kind in [Db::Sqlite, Db::Postgres] {
        let db = TestDb::new(kind).await;
        let out = cronhook()
            .current_dir(std::env::temp_dir())
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        use sqlx::Connection;
        let n: i64 = if kind == Db::Sqlite {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
                .fetch_one(&mut c)
                .await
                .unwrap()
        } else {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
                .fetch_one(&mut c)
                .await
                .unwrap()
        };
        assert_eq!(n, 0);
    }
}

#[tokio::test]
async fn a_second_process_on_one_sqlite_file_refuses_to_start() {
    let db = TestDb::new(Db::Sqlite).await;
    let _first = Server::start(&db.url, &[]);
    let second = Server::try_start(&db.url, &[]);
    let out = match second {
        Ok(_) => panic!("a second node started on the same SQLite file"),
        Err(out) => out,
    };
    assert!(
        out.contains("another cronhook process is using the SQLite database"),
        "{out}"
    );
}

#[test]
fn a_database_setting_that_cannot_work_exits_2_naming_the_path_once() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_db = dir.path().join("hosts");
    std::fs::write(&not_a_db, "127.0.0.1 localhost\n").unwrap();
    let missing_dir = dir.path().join("no/such/dir/x.db");
    for path in [&not_a_db, &missing_dir] {
        let out = cronhook()
            .args(["serve"])
            .env("DATABASE_URL", format!("sqlite://{}", path.display()))
            .env("PORT", "0")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert_eq!(err.matches("error:").count(), 1, "said once: {err}");
    }
    // No lock file was made beside a file that is not a database.
    assert!(!dir.path().join("hosts.lock").exists());
}

#[test]
fn an_unreachable_postgres_is_waited_for_then_exits_1_naming_host_port_and_database() {
    let started = Instant::now();
    let out = cronhook()
        .args(["serve"])
        .env("DATABASE_URL", "postgres://u:secretpw@127.0.0.1:1/jobsdb")
        .env("PORT", "0")
        .env("DB_CONNECT_TIMEOUT_MS", "1500")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("127.0.0.1:1/jobsdb")
            && err.contains("DATABASE_URL")
            && err.contains("DB_CONNECT_TIMEOUT_MS"),
        "{err}"
    );
    assert!(!err.contains("secretpw"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "said once: {err}");
    // Each attempt was logged while it waited, about 1.5 s.
    let log = String::from_utf8(out.stdout).unwrap();
    assert!(
        log.matches("the database does not answer yet").count() >= 1,
        "{log}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
}
