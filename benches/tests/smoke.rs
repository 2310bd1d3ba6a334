//! Runs every benchmark suite at a tiny size (the `smoke` suite), so the suites keep
//! working; part of `cargo test --workspace`.

#[test]
fn every_suite_runs_at_a_tiny_size() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("smoke.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarn-bench"))
        .args(["smoke", "--json"])
        .arg(&json)
        .output()
        .expect("tarn-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| append 1 file to a 200-file table: new metadata objects | 3.000 |"),
        "{stdout}"
    );
    assert!(stdout.contains("no commit lost (checked)"), "{stdout}");
    assert!(
        stdout.contains("MERGE 1000 into 20000 rows, merge-on-read"),
        "{stdout}"
    );
    assert!(
        stdout.contains("MERGE 1000 into 20000 rows, copy-on-write"),
        "{stdout}"
    );
    for figure in [
        "| Q22 tarn / ListingTable |",
        "| geometric mean of the 22 ratios |",
        "| cluster / local, geometric mean of the 22 ratios |",
        "tarn, partitioned by month(l_shipdate): one-month query",
        "| MERGE upsert, spread (1% updated, 0.1% inserted), merge-on-read: time |",
        "| MERGE upsert, spread (1% updated, 0.1% inserted), copy-on-write: time |",
        "| Q6 with 10% of lineitem deleted: vectors / compacted |",
        "| Q1: version 3 commits old / latest |",
        "| 1000 files, point query on the partition key: planning, new session |",
        "| 30 sequential appends of 100 rows (Rust API): throughput |",
        "| after OPTIMIZE / the same rows written by one CTAS |",
        "| 20 INSERT ... VALUES statements (3 rows each) through SQL: throughput |",
    ] {
        assert!(stdout.contains(figure), "no '{figure}' in\n{stdout}");
    }
    let written = std::fs::read_to_string(&json).unwrap();
    assert!(written.contains("\"suite\": \"smoke\""), "{written}");
}
