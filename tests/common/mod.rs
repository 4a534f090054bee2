//! Test support shared by the integration suites: fresh databases, the real binary as a
//! child process, and a real HTTP target on loopback that counts calls per fire.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// The PostgreSQL the tests create their databases in.
pub fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// A fresh, empty database; dropped (PostgreSQL) or deleted (SQLite) with this value.
pub struct TestDb {
    pub url: String,
    pub kind: Db,
    pg_name: Option<String>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn new(kind: Db) -> TestDb {
        match kind {
            Db::Postgres => {
                let name = format!("cronhook_t_{}", uuid::Uuid::now_v7().simple());
                let admin = pg_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("PostgreSQL for tests is reachable (set DATABASE_URL_TEST_PG)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    kind,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("cronhook.db").display());
                TestDb {
                    url,
                    kind,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            let _ = Command::new("psql")
                .arg(pg_admin_url())
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The real `cronhook` binary running as a child process.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub base: String,
}

/// Settings that make tests fast: short lease and look-ahead, quick polls.
pub fn fast_env() -> Vec<(&'static str, String)> {
    vec![
        ("LEASE_MS", "3000".into()),
        ("CLAIM_INTERVAL_MS", "100".into()),
        ("LOOKAHEAD_MS", "1000".into()),
        ("SHUTDOWN_GRACE_MS", "5000".into()),
    ]
}

impl Server {
    /// Starts the binary on port 0 against `url` and waits until it listens.
    pub fn start(url: &str, env: &[(&str, String)]) -> Server {
        Self::try_start(url, env).expect("server starts")
    }

    /// Starts the binary; `Err` holds its output when it exits instead of listening.
    pub fn try_start(url: &str, env: &[(&str, String)]) -> Result<Server, String> {
        Self::try_start_in(url, env, None)
    }

    /// Starts the binary with at most `nofile` open descriptors (`ulimit -n`, soft and hard).
    pub fn start_with_fd_limit(url: &str, env: &[(&str, String)], nofile: u32) -> Server {
        Self::try_start_in(url, env, Some(nofile)).expect("server starts")
    }

    fn try_start_in(
        url: &str,
        env: &[(&str, String)],
        nofile: Option<u32>,
    ) -> Result<Server, String> {
        let bin = binary();
        let mut cmd = match nofile {
            None => Command::new(&bin),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), &bin]);
                c
            }
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
            // Tests read each call's line; the default lists failed calls only.
            .env("LOG_CALLS", "all")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A .env in the working directory must not leak into tests.
        cmd.current_dir(std::env::temp_dir());
        for (k, v) in fast_env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cronhook");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    // Listening once serving, or while it waits for its database.
                    if (line.contains("cronhook listening")
                        || line.contains("the database does not answer yet"))
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let Some(addr) = v["addr"].as_str()
                        && let Some(port) =
                            addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
                    {
                        let _ = port_tx.send(port);
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(port) = port_rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Server {
                    child,
                    port,
                    logs,
                    base: format!("http://127.0.0.1:{port}"),
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(logs.lock().unwrap().join("\n"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "not listening after 30 s:\n{}",
                    logs.lock().unwrap().join("\n")
                ));
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGTERM, then waits for the exit (up to `within`); returns whether it exited cleanly.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One call the target received.
#[derive(Debug, Clone)]
pub struct Call {
    pub key: String,
    pub job_id: String,
    pub execution_id: String,
    pub attempt: u32,
    pub scheduled_at: String,
    pub at: Instant,
    pub body: serde_json::Value,
    pub method: String,
    pub raw_body: String,
    pub headers: HeaderMap,
}

/// How the target answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Status answered.
    pub status: u16,
    /// Delay before answering.
    pub delay: Duration,
    /// The first N calls of each fire get 500.
    pub fail_first: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            delay: Duration::ZERO,
            fail_first: 0,
        }
    }
}

#[derive(Clone)]
struct TargetState {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Calls so far per fire, so a call finds its predecessors without reading them all.
    seen: Arc<Mutex<HashMap<String, u32>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    max_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// A real HTTP target on loopback.
pub struct Target {
    pub base: String,
    state: TargetState,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    pub async fn start(behaviour: Behaviour) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = TargetState {
            calls: Arc::default(),
            seen: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", any(hook))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Target {
            base: format!("http://127.0.0.1:{port}"),
            state,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/hook", self.base)
    }

    pub fn set(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn calls_of(&self, job_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.job_id == job_id)
            .collect()
    }

    /// Calls per fire (idempotency key).
    pub fn per_fire(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for c in self.calls() {
            *m.entry(c.key).or_insert(0) += 1;
        }
        m
    }

    pub fn max_in_flight(&self) -> usize {
        self.state
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(
    State(s): State<TargetState>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    use std::sync::atomic::Ordering;
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let call = Call {
        key: h("idempotency-key"),
        job_id: h("x-cronhook-job-id"),
        execution_id: h("x-cronhook-execution-id"),
        attempt: h("x-cronhook-attempt").parse().unwrap_or(0),
        scheduled_at: h("x-cronhook-scheduled-at"),
        at: Instant::now(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        method: method.to_string(),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
        headers: headers.clone(),
    };
    let b = s.behaviour.lock().unwrap().clone();
    let earlier = {
        let mut seen = s.seen.lock().unwrap();
        let n = seen.entry(call.key.clone()).or_insert(0);
        *n += 1;
        let earlier = *n - 1;
        s.calls.lock().unwrap().push(call);
        earlier
    };
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    if earlier < b.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::from_u16(b.status).unwrap_or(StatusCode::OK)
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub async fn eventually<F: FnMut() -> bool>(within: Duration, mut check: F) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP client for the API.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Creates a job and returns its id.
pub async fn create_job(server: &Server, body: serde_json::Value) -> String {
    let resp = client()
        .post(server.url("/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "create job: {v}");
    v["jobId"].as_str().unwrap().to_owned()
}

/// Awaits `check` every 200 ms until it holds or `within` passes.
pub async fn eventually_async<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /jobs/{job}/executions`, expecting 200.
pub async fn executions_of(server: &Server, job: &str) -> Vec<serde_json::Value> {
    let resp = client()
        .get(server.url(&format!("/jobs/{job}/executions")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The binary under test: this build's, or the one `CRONHOOK_TEST_BIN` names (to run the
/// end-to-end tests against another build, such as one from before a fix).
pub fn binary() -> String {
    std::env::var("CRONHOOK_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cronhook").to_owned())
}

/// One number a query counts (`SELECT count(*) ...`).
pub async fn count(url: &str, sql: &'static str) -> i64 {
    if url.starts_with("sqlite:") {
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

/// Runs one statement straight on the database (to put it in a state the API cannot).
pub async fn exec(url: &str, sql: &'static str) {
    if url.starts_with("sqlite:") {
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}
