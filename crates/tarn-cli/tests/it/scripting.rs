//! What a script or another program sees: output that parses, status on standard error,
//! no panics on closed or full outputs, clear errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::{tarn, text};

fn command(warehouse: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarn"));
    cmd.arg("--warehouse")
        .arg(warehouse)
        .env_remove("TARN_WAREHOUSE");
    cmd
}

#[test]
fn a_closed_pipe_ends_the_shell_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .args(["-c", "SELECT * FROM generate_series(1, 200000);"])
        .args(["--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "value\n");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn a_full_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = command(dir.path())
        .args(["-c", "SELECT * FROM generate_series(1, 1000);"])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the output") && stderr.contains("No space left"),
        "{stderr}"
    );

    // \o to a full file: reported, failing exit status.
    let out = tarn(
        dir.path(),
        &["-c", "\\o /dev/full", "-c", "SELECT 1 AS one;"],
        None,
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write to /dev/full") && stderr.contains("No space left"),
        "{stderr}"
    );
}

#[test]
fn a_script_that_includes_itself_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("loop.sql");
    std::fs::write(&script, format!("SELECT 1;\n\\i {}\n", script.display())).unwrap();
    let out = tarn(
        &dir.path().join("wh"),
        &["-q", "-f", script.to_str().unwrap()],
        None,
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("overflow"), "{stderr}");
    // The innermost error, then the outermost file's word that it stopped: not one line
    // per level.
    let script = script.display();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "Error: {script}:2: \\i {script} goes deeper than 16 files; does a file \
                 include itself?"
            ),
            format!("Error: {script}:2: {script} stopped at its first error"),
        ],
        "{stderr}"
    );
}

#[test]
fn csv_is_exactly_csv() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| tarn(dir.path(), args, None);
    let out = run(&[
        "-c",
        "CREATE TABLE t (id INT, s VARCHAR, ts TIMESTAMP);",
        "-c",
        "INSERT INTO t VALUES (1, '', TIMESTAMP '2026-11-25 08:15:00'), (2, NULL, NULL), (3, 'a,\"b\"', NULL);",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let query = "SELECT id, s, ts FROM t ORDER BY id;";
    let out = run(&["--format", "csv", "-c", query]);
    assert_eq!(
        text(&out.stdout),
        "id,s,ts\n1,\"\",2026-11-25 08:15:00\n2,,\n3,\"a,\"\"b\"\"\",\n"
    );
    assert_eq!(text(&out.stderr), "3 rows\n");
    // Quiet: nothing but the results anywhere.
    let out = run(&["-q", "--format", "csv", "-c", query]);
    assert_eq!(text(&out.stderr), "");
    assert!(text(&out.stdout).starts_with("id,s,ts\n"));
    // NULL as the caller wants it.
    let out = run(&["--format", "csv", "--null", "\\N", "-c", query]);
    assert_eq!(
        text(&out.stdout),
        "id,s,ts\n1,\"\",2026-11-25 08:15:00\n2,\\N,\\N\n3,\"a,\"\"b\"\"\",\\N\n"
    );
    // `\format` switches NULL to the new format's way, unless `--null` set it.
    let switch = "SELECT s FROM t WHERE id = 2;";
    let out = run(&["-q", "-c", "\\format csv", "-c", switch]);
    assert_eq!(text(&out.stdout), "s\n\n");
    let out = run(&[
        "-q",
        "--format",
        "csv",
        "-c",
        "\\format table",
        "-c",
        switch,
    ]);
    assert!(
        text(&out.stdout).contains("| NULL |"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["-q", "--null", "-", "-c", "\\format csv", "-c", switch]);
    assert_eq!(text(&out.stdout), "s\n-\n");
    // A table prints timestamps as SQL does too.
    let out = run(&["-c", "SELECT ts FROM t WHERE id = 1;"]);
    assert!(
        text(&out.stdout).contains("| 2026-11-25 08:15:00 |"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn empty_results_print_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE t (id INT, name VARCHAR);",
            "-c",
            "SELECT id, name FROM t;",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "OK\n+----+------+\n| id | name |\n+----+------+\n+----+------+\n0 rows\n"
    );
    let out = tarn(
        dir.path(),
        &["--format", "csv", "-c", "SELECT id, name FROM t;"],
        None,
    );
    assert_eq!(text(&out.stdout), "id,name\n");
}

#[test]
fn writes_report_the_table_and_its_version_however_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE t (id INT);",
            "-c",
            "INSERT INTO \"t\" VALUES (1);",
            "-c",
            "INSERT INTO T VALUES (2);",
            "-c",
            "UPDATE tarn.default.t SET id = id + 1;",
            "-c",
            "DELETE FROM t WHERE id > 100;",
            "-c",
            "CREATE TABLE c AS SELECT id FROM t;",
            "-c",
            "CREATE TABLE e AS SELECT id FROM t WHERE id > 100;",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "OK\n\
         1 row affected; t is now at version 1\n\
         1 row affected; t is now at version 2\n\
         2 rows affected; t is now at version 3\n\
         0 rows affected; t is unchanged\n\
         2 rows affected; c is now at version 1\n\
         0 rows affected; e is now at version 0\n"
    );
}

#[test]
fn describe_shows_sql_types_ids_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR, ts TIMESTAMP, price DECIMAL(10,2));",
            "-c",
            "ALTER TABLE t ADD COLUMN channel VARCHAR DEFAULT 'web';",
            "-c",
            "\\d t",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "| id      | BIGINT        | false    | NULL    | 1        |",
        "| name    | VARCHAR       | true     | NULL    | 2        |",
        "| ts      | TIMESTAMP     | true     | NULL    | 3        |",
        "| price   | DECIMAL(10,2) | true     | NULL    | 4        |",
        "| channel | VARCHAR       | true     | 'web'   | 5        |",
    ] {
        assert!(stdout.contains(line), "{line} in\n{stdout}");
    }
    assert!(!stdout.contains("Utf8"), "{stdout}");

    // DESCRIBE gives the same types; \d of a view describes it, of nothing says so.
    let out = tarn(
        dir.path(),
        &[
            "-c",
            "DESCRIBE t",
            "-c",
            "CREATE VIEW recent AS SELECT id, name FROM t",
            "-c",
            "\\d recent",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("| price       | DECIMAL(10,2) | YES         |"),
        "{stdout}"
    );
    assert!(stdout.contains("| name        |"), "{stdout}");
    let out = tarn(dir.path(), &["-c", "\\d nope"], None);
    assert!(
        text(&out.stderr).contains("table 'default.nope' does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn arguments_that_look_like_flags_are_sql() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &["-c", "-- just a comment", "-c", "SELECT 1 AS one;"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("| one |"));
}

#[test]
fn an_empty_warehouse_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(["--warehouse", "", "-c", "SELECT 1;"])
        .env_remove("TARN_WAREHOUSE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--warehouse is empty"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_cloud_credentials_are_named() {
    // No credentials anywhere: the S3 client asks the instance metadata service, here an
    // address where nothing listens.
    let out = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(["--warehouse", "s3://bucket/prefix", "-c", "SELECT 1;"])
        .env_remove("TARN_WAREHOUSE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refused access") && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );
}

/// `\watch SEC N` runs the last query again every SEC seconds, N times: a session tails a
/// table another process writes to meanwhile.
#[test]
fn watch_runs_the_last_query_again_and_sees_new_commits() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(dir.path(), &["-c", "CREATE TABLE t (id BIGINT)"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let watcher = command(dir.path())
        .args(["--format", "csv", "--quiet"])
        .args(["-c", "SELECT count(*) AS n FROM t", "-c", "\\watch 0.5 8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let out = tarn(dir.path(), &["-c", "INSERT INTO t VALUES (1), (2)"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let counts: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| *l != "n")
        .map(str::to_string)
        .collect();
    assert_eq!(counts.len(), 9, "the query and 8 runs again: {counts:?}");
    assert_eq!(counts[0], "0");
    assert_eq!(counts[8], "2", "{counts:?}");
    let first_two = counts.iter().position(|c| c == "2").unwrap();
    assert!(counts[first_two..].iter().all(|c| c == "2"), "{counts:?}");
}

#[test]
fn a_failed_statement_of_a_script_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = "SELECT 1;\n\n-- the second statement\nSELECT\n  2 +* 3;\nSELECT 3;\n";
    let file = dir.path().join("load.sql");
    std::fs::write(&file, script).unwrap();
    let warehouse = dir.path().join("w");

    // The line the statement starts on, and the parser's line counted in the file, not in
    // the statement's text.
    let expected = "4: syntax error: Expected: an expression, found: * at Line: 5, Column: 6";
    let out = tarn(&warehouse, &["-q", "-f", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Error: {}:{expected}\n", file.display())
    );
    let out = tarn(&warehouse, &["-q"], Some(script));
    assert_eq!(text(&out.stderr), format!("Error: <stdin>:{expected}\n"));

    // Errors past parsing too; a meta command is named by its own line.
    let out = tarn(
        &warehouse,
        &["-q", "--continue"],
        Some("SELECT 1;\n\\nope\n\nINSERT INTO missing\nVALUES (1);\n"),
    );
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("Error: <stdin>:2: unknown command"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("Error: <stdin>:4: ") && lines[1].contains("does not exist"),
        "{stderr}"
    );

    // Block comments hide what looks like a quote or a `;`, and are not the statement's
    // line; the statements around a failed one still run with --continue.
    let out = tarn(
        &warehouse,
        &["-q", "--continue", "--format", "csv"],
        Some(
            "/* it's the setup; */ SELECT 1 AS a;\n/* a note\n   on two lines */\nSELEC 2;\nSELECT E'it\\'s' AS b;\n",
        ),
    );
    assert_eq!(text(&out.stdout), "a\n1\nb\nit's\n");
    assert_eq!(
        text(&out.stderr),
        "Error: <stdin>:4: syntax error: Expected: an SQL statement, found: SELEC at Line: 4, Column: 1\n"
    );

    // A command given with -c is its own script: no place to name.
    let out = tarn(&warehouse, &["-c", "SELEC 1"], None);
    assert_eq!(
        text(&out.stderr),
        "Error: syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\n"
    );
}

#[test]
fn statements_on_one_line_run_one_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w");
    let setup = tarn(&warehouse, &["-c", "CREATE TABLE t (v INT)"], None);
    assert!(setup.status.success(), "{}", text(&setup.stderr));

    // With --continue, the statements around a failed one on its line still run, and the
    // error names the statement's own line and column.
    let out = tarn(
        &warehouse,
        &["-q", "--continue", "--format", "csv"],
        Some(
            "INSERT INTO t VALUES (1); SELEC 2; INSERT INTO t VALUES (3);\nSELECT v FROM t ORDER BY v;\n",
        ),
    );
    assert_eq!(text(&out.stdout), "v\n1\n3\n");
    assert_eq!(
        text(&out.stderr),
        "Error: <stdin>:1: syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 27\n"
    );

    // Without it, the statements before the error have run, and none after it.
    let out = tarn(
        &warehouse,
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            "INSERT INTO t VALUES (4); SELEC 5; INSERT INTO t VALUES (6)",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let out = tarn(
        &warehouse,
        &["--format", "csv", "-c", "SELECT v FROM t ORDER BY v"],
        None,
    );
    assert_eq!(text(&out.stdout), "v\n1\n3\n4\n");
}
