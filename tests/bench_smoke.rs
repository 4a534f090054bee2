//! The benchmark's quick mode as a smoke test: the real service under a small load on both
//! stores. It fails on missed or duplicate fires, never on a time.

use std::process::Command;

#[test]
fn quick_benchmark_misses_and_duplicates_no_fire() {
    let out = Command::new(env!("CARGO_BIN_EXE_cronhook-bench"))
        .arg("quick")
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_cronhook"))
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
    let precision_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| PostgreSQL | 500 |") || l.starts_with("| SQLite | 500 |"))
        .collect();
    assert_eq!(precision_rows.len(), 2, "{stdout}");
    for row in precision_rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | backend | jobs | seconds | expected | missed | duplicates | ...
        assert_eq!(cells[5], "0", "missed fires: {row}");
        assert_eq!(cells[6], "0", "duplicate fires: {row}");
        assert!(
            cells[4].parse::<u64>().unwrap() > 0,
            "fires expected: {row}"
        );
    }
}
