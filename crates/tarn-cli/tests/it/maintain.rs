//! `tarn maintain`: retention applied across a warehouse, for cron.

use crate::{tarn, text};

#[test]
fn maintain_applies_each_tables_retention_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let setup = tarn(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE short (id INT, r VARCHAR) PARTITIONED BY (r) \
             WITH ('history.expire.max-snapshot-age' = '1ms')",
            "-c",
            "INSERT INTO short VALUES (1, 'a'), (2, 'b')",
            "-c",
            "INSERT INTO short VALUES (3, 'a')",
            "-c",
            "CREATE TABLE kept (x INT)",
            "-c",
            "INSERT INTO kept VALUES (1)",
        ],
        None,
    );
    assert!(setup.status.success(), "{}", text(&setup.stderr));
    // A file of a failed commit, written long ago.
    let stray = dir.path().join("default/short/data/stray.parquet");
    std::fs::write(&stray, b"left by a crashed writer").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(old)
        .unwrap();

    // What a CREATE TABLE AS killed before it created its table left long ago (a file and
    // a half-written one), and one still writing.
    let abandoned = dir.path().join("default/gone/data");
    std::fs::create_dir_all(&abandoned).unwrap();
    for name in ["a.parquet", "b.parquet#1"] {
        let file = std::fs::File::create(abandoned.join(name)).unwrap();
        file.set_modified(old).unwrap();
    }
    let writing = dir.path().join("default/writing/data/c.parquet");
    std::fs::create_dir_all(writing.parent().unwrap()).unwrap();
    std::fs::write(&writing, b"rows").unwrap();

    let dry = tarn(dir.path(), &["maintain", "--dry-run"], None);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let report = text(&dry.stderr);
    assert!(
        report.contains("default.gone (no table): would delete 2 orphaned files\n"),
        "{report}"
    );
    assert!(!report.contains("default.writing"), "{report}");
    assert!(
        abandoned.join("b.parquet#1").exists(),
        "a dry run deletes nothing"
    );
    assert!(
        report.contains("[1/2] default.kept: would expire 0 versions (oldest would be 0)"),
        "{report}"
    );
    assert!(
        report.contains("default.short: would expire 2 versions (oldest would be 2), would delete"),
        "{report}"
    );
    assert!(report.contains(", 1 orphaned file\n"), "{report}");
    assert!(
        report.contains("2 tables: would expire 2 versions, would delete"),
        "{report}"
    );
    assert!(stray.exists(), "a dry run deletes nothing");
    let dry = tarn(dir.path(), &["maintain", "--dry-run", "--optimize"], None);
    assert!(
        text(&dry.stderr).contains(
            "default.short: not compacted (a dry run does not OPTIMIZE), would expire 2 versions"
        ),
        "{}",
        text(&dry.stderr)
    );
    assert!(text(&dry.stdout).is_empty(), "progress goes to stderr");

    let run = tarn(dir.path(), &["maintain", "--optimize"], None);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let report = text(&run.stderr);
    assert!(
        report.contains("default.short: compacted 2 files, expired 3 versions (oldest now 3)"),
        "{report}"
    );
    assert!(
        report.contains("2 tables: expired 3 versions, deleted"),
        "{report}"
    );
    assert!(!stray.exists(), "the orphan is gone");
    assert!(
        report.contains("default.gone (no table): deleted 2 orphaned files\n"),
        "{report}"
    );
    assert!(!dir.path().join("default/gone").exists(), "{report}");
    assert!(writing.exists(), "a write in flight keeps its files");

    let after = tarn(
        dir.path(),
        &[
            "--format",
            "csv",
            "-q",
            "-c",
            "SELECT id, r FROM short ORDER BY id",
            "-c",
            "SELECT count(*) FROM \"short$snapshots\"",
        ],
        None,
    );
    assert!(after.status.success(), "{}", text(&after.stderr));
    assert_eq!(text(&after.stdout), "id,r\n1,a\n2,b\n3,a\ncount(*)\n1\n");
}

#[test]
fn maintain_refuses_a_bad_duration() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(dir.path(), &["maintain", "--orphan-age", "soon"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("'soon' is not a duration; write e.g. 1d, 12h, 30m or 90s"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn maintain_refuses_a_warehouse_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let out = tarn(&missing, &["maintain"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("there is no warehouse at"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !missing.exists(),
        "maintain created the warehouse it was refusing"
    );
}
