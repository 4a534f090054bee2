//! The `cronhook` release binary as a child process, with its CPU time and memory read
//! from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running service.
pub struct Service {
    /// The child process.
    child: Child,
    /// Base URL of its API.
    pub base: String,
    /// When the process was spawned.
    pub spawned: Instant,
}

/// The `cronhook` binary beside this one (`target/release/cronhook` next to the bench).
pub fn default_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("cronhook")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Service {
    /// Spawns the service on `db_url` and waits until `/health` answers 200.
    pub async fn start(
        bin: &Path,
        db_url: &str,
        log: &Path,
        workers: usize,
    ) -> anyhow::Result<Service> {
        let port = free_port()?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .env("LOG_FORMAT", "json")
            .env("WORKER_CONCURRENCY", workers.to_string())
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let spawned = Instant::now();
        let mut svc = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            spawned,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = client.get(format!("{}/health", svc.base)).send().await
                && r.status().is_success()
            {
                return Ok(svc);
            }
            if let Ok(Some(status)) = svc.child.try_wait() {
                bail!("cronhook exited with {status}; see {}", log.display());
            }
            if Instant::now() > deadline {
                let _ = svc.child.kill();
                bail!("cronhook not healthy within 300 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        stat_cpu_seconds(&self.proc_file("stat"))
    }

    fn status_kib(&self, key: &str) -> f64 {
        self.proc_file("status")
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    /// Resident memory now, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// Peak resident memory, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// SIGTERM and wait for the exit.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User + system CPU seconds in the text of a `/proc/PID/stat`.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// User + system CPU seconds used so far by this process: the bench's target, which answers
/// every call, and its bookkeeping.
pub fn own_cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// User + system CPU seconds used so far by every process named `postgres` on this machine:
/// the backends serving the service's connections and the server's own writers
/// (WAL writer, background writer, checkpointer), which do work for each fire too. A backend
/// that exits inside a window takes its time with it, so a window should see the same
/// connections throughout (the service keeps its pool open).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux this runs on.
    100.0
}
