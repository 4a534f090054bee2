//! The benchmark's quick mode as a smoke test: the real service under a small load on both
//! stores. It fails on missed or duplicate fires, never on a time.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the service binary and returns its path.
///
/// The service is another package of the workspace, so Cargo does not build it for this
/// test nor name it in `CARGO_BIN_EXE_*`; Cargo itself reports where the binary is, which
/// holds whatever the target directory is (default, `CARGO_TARGET_DIR` or configuration).
fn service_binary() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--message-format=json-render-diagnostics"])
        .args(["-p", "cronhook", "--bin", "cronhook", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p cronhook failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "cronhook")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo build reported no cronhook executable")
}

#[test]
fn quick_benchmark_misses_and_duplicates_no_fire() {
    let service = service_binary();
    let out = Command::new(env!("CARGO_BIN_EXE_cronhook-bench"))
        .arg("quick")
        .arg("--binary")
        .arg(&service)
        .output()
        .expect("run cronhook-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quick benchmark failed:\n{stdout}\n{stderr}"
    );
    // Both stores were measured, each with its precision, scale and API rows.
    for table in [
        "fires expected",
        "restart to first fire",
        "POST /jobs req/s",
    ] {
        assert!(stdout.contains(table), "{table} table missing:\n{stdout}");
    }
    // Columns are found by their header, so a new column cannot shift what is checked.
    let header: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("| backend | jobs (fires/s)"))
        .expect("precision header")
        .split('|')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name:?} column in {header:?}"))
    };
    let (expected, missed, duplicates) = (col("fires expected"), col("missed"), col("duplicates"));
    let precision_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| PostgreSQL | 500 |") || l.starts_with("| SQLite | 500 |"))
        .collect();
    assert_eq!(precision_rows.len(), 2, "{stdout}");
    for row in precision_rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[missed], "0", "missed fires: {row}");
        assert_eq!(cells[duplicates], "0", "duplicate fires: {row}");
        assert!(
            cells[expected].parse::<u64>().unwrap() > 0,
            "fires expected: {row}"
        );
    }
}
