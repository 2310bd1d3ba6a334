//! The shell on a warehouse in an S3 bucket: the server `scripts/with-s3.sh` starts, reached
//! through `--option`s rather than the environment. Ignored unless run through that script.

use std::process::{Command, Output};

use crate::text;

fn tarn_s3(warehouse: &str, args: &[&str]) -> Output {
    let endpoint = std::env::var("AWS_ENDPOINT").expect("run through scripts/with-s3.sh");
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(["--warehouse", warehouse])
        .args([
            "-o",
            &format!("endpoint={endpoint}"),
            "-o",
            "allow_http=true",
        ])
        .args(args)
        .env_remove("TARN_WAREHOUSE")
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_ALLOW_HTTP")
        .output()
        .expect("tarn runs")
}

fn fresh_warehouse() -> String {
    let bucket = std::env::var("TARN_TEST_S3").expect("run through scripts/with-s3.sh");
    format!("{bucket}/cli-{}", tarn_core::Env::default().next_id())
}

#[test]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
fn the_shell_writes_reads_and_time_travels_on_s3() {
    let w = fresh_warehouse();
    let out = tarn_s3(
        &w,
        &[
            "--timing",
            "-c",
            "CREATE TABLE t (id BIGINT, name VARCHAR) PARTITIONED BY (name)",
            "-c",
            "INSERT INTO t VALUES (1, 'a b'), (2, 'c/d'), (3, '')",
            "-c",
            "UPDATE t SET id = id * 10 WHERE name = 'c/d'",
            "-c",
            "DELETE FROM t WHERE id = 3",
        ],
    );
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{all}");
    // Every statement reports its requests, and none of them lists the bucket.
    let timings: Vec<&str> = all.lines().filter(|l| l.starts_with("Time: ")).collect();
    assert_eq!(timings.len(), 4, "{all}");
    assert!(timings.iter().all(|l| l.ends_with(", 0 LIST")), "{all}");

    // Another process reads the newest version, and the one before the UPDATE.
    let out = tarn_s3(
        &w,
        &[
            "--format",
            "csv",
            "-c",
            "SELECT id, name FROM t ORDER BY id",
            "-c",
            "SELECT id FROM t VERSION AS OF 1 ORDER BY id",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "id,name\n1,a b\n20,c/d\nid\n1\n2\n3\n");

    // A session on local disk takes the table as an external one, its store configured by
    // OPTIONS alone, and writes to it.
    let endpoint = std::env::var("AWS_ENDPOINT").unwrap();
    let local = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .arg("--warehouse")
        .arg(local.path())
        .args(["--format", "csv", "-c"])
        .arg(format!(
            "CREATE EXTERNAL TABLE e STORED AS TARN LOCATION '{w}/default/t' \
             OPTIONS ('endpoint' '{endpoint}', 'allow_http' 'true')"
        ))
        .args(["-c", "INSERT INTO e VALUES (5, 'e')"])
        .args(["-c", "SELECT id FROM e ORDER BY id"])
        .env_remove("TARN_WAREHOUSE")
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_ALLOW_HTTP")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "id\n1\n5\n20\n");
}

#[test]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
fn a_missing_bucket_and_an_unknown_option_are_named() {
    let out = tarn_s3("s3://tarn-no-such-bucket/w", &["-c", "SELECT 1"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("does not exist; create it first"), "{err}");

    let out = tarn_s3(&fresh_warehouse(), &["-o", "colour=blue", "-c", "SELECT 1"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("unknown option 'colour'"), "{err}");
}
