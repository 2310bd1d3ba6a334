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

/// A loader stamps its batch with an application id and sequence number, and is killed
/// (SIGKILL) after its commit landed on the server and before the answer reached it: it
/// never printed an acknowledgement. Run again, the batch is refused before anything is
/// written, the rows are there once, and the next batch lands.
#[test]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
fn a_loader_killed_after_its_commit_is_refused_when_it_runs_again() {
    use std::time::{Duration, Instant};
    use tarn_fault_proxy::{Fault, FaultProxy};

    let w = fresh_warehouse();
    let out = tarn_s3(&w, &["-c", "CREATE TABLE t (id BIGINT)"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let batch = |sequence: u64| {
        [
            "-c".to_string(),
            "SET tarn.app_id = 'loader'".to_string(),
            "-c".to_string(),
            format!("SET tarn.app_sequence = {sequence}"),
            "-c".to_string(),
            format!(
                "INSERT INTO t SELECT value + {} FROM generate_series(1, 1000)",
                sequence * 1000
            ),
        ]
    };

    // The server applies the create of version 1; its answer is held back for an hour.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(FaultProxy::start());
    proxy.inject(
        "PUT",
        "/metadata/0000",
        Fault::Stall(Duration::from_secs(3600)),
        1,
    );
    let mut loader = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(["--warehouse", &w])
        .args(["-o", &format!("endpoint={}", proxy.endpoint())])
        .args(["-o", "allow_http=true", "-o", "timeout=3600s"])
        .args(batch(7))
        .env_remove("TARN_WAREHOUSE")
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_ALLOW_HTTP")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tarn starts");
    let warehouse = tarn_core::Warehouse::open(&w).unwrap();
    let version = || {
        runtime.block_on(async {
            let t = warehouse.load_table("default", "t").await.unwrap();
            t.version().get()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while version() < 1 {
        assert!(
            Instant::now() < deadline,
            "the loader's commit never landed"
        );
        assert!(
            loader.try_wait().unwrap().is_none(),
            "the loader ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proxy.pending(), 0, "its answer is held back");
    loader.kill().unwrap();
    let out = loader.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        !text(&out.stdout).contains("affected"),
        "killed before any acknowledgement: {}",
        text(&out.stdout)
    );

    // The job starts again and runs batch 7 again.
    let out = tarn_s3(&w, &batch(7).each_ref().map(String::as_str));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("already committed sequence number 7"), "{err}");
    let count = |w: &str| {
        let out = tarn_s3(
            w,
            &[
                "--format",
                "csv",
                "-q",
                "-c",
                "SELECT count(*), count(DISTINCT id) FROM t",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(count(&w), "count(*),count(DISTINCT t.id)\n1000,1000\n");
    assert_eq!(version(), 1, "the refused run committed nothing");

    // The table says where to resume, and the next batch lands.
    let out = tarn_s3(&w, &batch(8).each_ref().map(String::as_str));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(count(&w), "count(*),count(DISTINCT t.id)\n2000,2000\n");
}
