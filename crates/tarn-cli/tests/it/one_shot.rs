//! One-shot use: -c, -f, piped stdin, formats, exit status.

#[cfg(unix)]
use crate::interrupt;
use crate::{spawn_tarn, tarn, text};

#[test]
fn commands_run_in_order_and_print_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE t (id BIGINT, name VARCHAR) PARTITIONED BY (name);",
            "-c",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b');",
            "-c",
            "SELECT * FROM t ORDER BY id;",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "OK\n2 rows affected; t is now at version 1\n+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 2  | b    |\n+----+------+\n2 rows\n"
    );
}

#[test]
fn formats_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        "CREATE TABLE t (id BIGINT);\nINSERT INTO t\n  VALUES (1), (2);\n\\timing off\n",
    )
    .unwrap();
    let warehouse = dir.path().join("wh");
    let out = tarn(
        &warehouse,
        &[
            "-f",
            script.to_str().unwrap(),
            "--format",
            "csv",
            "-c",
            "SELECT id FROM t ORDER BY id;",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Results on standard output, status lines on standard error.
    assert_eq!(text(&out.stdout), "id\n1\n2\n");
    assert_eq!(
        text(&out.stderr),
        "OK\n2 rows affected; t is now at version 1\nTiming is off.\n2 rows\n"
    );
    let out = tarn(
        &warehouse,
        &["--format", "ndjson", "-c", "SELECT id FROM t WHERE id = 2;"],
        None,
    );
    assert_eq!(text(&out.stdout), "{\"id\":2}\n");
    assert_eq!(text(&out.stderr), "1 row\n");
}

#[test]
fn changes_show_each_update_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let setup = [
        "CREATE TABLE t (id INT, v VARCHAR);",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b');",
        "UPDATE t SET v = 'c' WHERE id = 1;",
        "DELETE FROM t WHERE id = 2;",
    ];
    let args: Vec<&str> = setup.iter().flat_map(|sql| ["-c", *sql]).collect();
    assert!(tarn(dir.path(), &args, None).status.success());
    let out = tarn(
        dir.path(),
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            "\\changes t 1",
            "-c",
            "\\changes t 2 2",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("id,"))
        .map(|l| l.splitn(5, ',').take(4).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        rows,
        [
            "1,a,insert,1",
            "2,b,insert,1",
            "1,a,update_preimage,2",
            "1,c,update_postimage,2",
            "2,b,delete,3",
            "1,a,update_preimage,2",
            "1,c,update_postimage,2",
        ]
    );
}

#[test]
fn piped_stdin_is_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[],
        Some("CREATE TABLE t (id BIGINT);\nINSERT INTO t VALUES (7);\n\\snapshots t\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("| 0       |") && stdout.contains("| create"),
        "{stdout}"
    );
    assert!(stdout.contains("| append"), "{stdout}");
}

#[test]
fn the_first_error_stops_with_a_failing_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &["-c", "SELECT * FROM missing;", "-c", "SELECT 1;"],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.starts_with("Error: ") && stderr.contains("missing"),
        "{stderr}"
    );

    let out = tarn(
        dir.path(),
        &[
            "--continue",
            "-c",
            "SELECT * FROM missing;",
            "-c",
            "SELECT 1 AS one;",
        ],
        None,
    );
    assert!(!out.status.success(), "a failure is still reported");
    assert!(text(&out.stdout).contains("| one |"));

    let out = tarn(dir.path(), &["-c", "SELEC 1"], None);
    assert_eq!(
        text(&out.stderr),
        "Error: syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\n"
    );

    let out = tarn(dir.path(), &["-c", "\\nope"], None);
    assert_eq!(
        text(&out.stderr),
        "Error: unknown command '\\nope'; type \\? for the list of commands\n"
    );
}

#[test]
fn describe_shows_partitioning_and_properties() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE e (id BIGINT NOT NULL, ts TIMESTAMP) PARTITIONED BY (day(ts), bucket(4, id)) WITH ('write.overwrite-mode' = 'dynamic');",
            "-c",
            "\\d e",
            "-c",
            "\\dt",
            "-c",
            "\\dn",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Partitioned by: day(ts), bucket[4](id)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Property: write.overwrite-mode = dynamic"),
        "{stdout}"
    );
    assert!(stdout.contains("| default   | e     |"), "{stdout}");
    assert!(stdout.contains("| default   |"), "{stdout}");
}

/// Ctrl-C during a script's CREATE TABLE AS cancels it as the interactive shell does: the
/// half-made table is taken back out before the process ends, the statements after it do
/// not run, and the exit status is a shell's for Ctrl-C (130).
#[cfg(unix)]
#[test]
fn ctrl_c_ends_a_script_and_leaves_no_half_made_table() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let script = dir.path().join("load.sql");
    std::fs::write(
        &script,
        "CREATE TABLE s (a INT);\nINSERT INTO s VALUES (1);\n\
         CREATE TABLE big AS SELECT value AS id, md5(CAST(value AS VARCHAR)) AS h \
         FROM generate_series(1, 1000000000);\n\
         INSERT INTO s VALUES (2);\n",
    )
    .unwrap();
    let child = spawn_tarn(&warehouse, &["-f", script.to_str().unwrap()]);
    // Interrupted once the rows of `big` are being written (the table is created by the
    // commit of its rows, so it does not exist yet).
    let writing = warehouse.join("default/big/data");
    let started = Instant::now();
    while !writing.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "CREATE TABLE AS never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("statement cancelled"),
        "{}",
        text(&out.stderr)
    );

    assert!(
        !warehouse.join("default/big/metadata").exists(),
        "no version of big was written"
    );
    let out = tarn(&warehouse, &["-c", "SELECT count(*) FROM big;"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    let out = tarn(
        &warehouse,
        &["--format", "csv", "-c", "SELECT a FROM s;"],
        None,
    );
    assert_eq!(text(&out.stdout), "a\n1\n", "{}", text(&out.stderr));
    let out = tarn(
        &warehouse,
        &[
            "-c",
            "CREATE TABLE big AS SELECT value AS id FROM generate_series(1, 5);",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Statements piped in by another program run as they arrive: the first INSERT has
/// committed (and said so) while standard input is still open.
#[test]
fn piped_statements_run_before_the_input_ends() {
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_tarn(dir.path(), &[]);
    let mut input = child.stdin.take().unwrap();
    let output = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    input
        .write_all(b"CREATE TABLE t (a INT);\nINSERT INTO t\n  VALUES (1), (2);\n")
        .unwrap();
    input.flush().unwrap();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("t is now at version 1"))
    {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no result while the input is open ({e}); saw {seen:?}"),
        }
    }
    input.write_all(b"SELECT count(*) AS n FROM t;\n").unwrap();
    drop(input);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(received.try_iter());
    assert!(status.success(), "{seen:?}");
    assert_eq!(
        seen,
        [
            "OK",
            "2 rows affected; t is now at version 1",
            "+---+",
            "| n |",
            "+---+",
            "| 2 |",
            "+---+",
            "1 row"
        ]
    );
}

/// Ctrl-C while tarn waits for its next statement on standard input ends it at once.
#[cfg(unix)]
#[test]
fn ctrl_c_while_waiting_for_input_ends_tarn() {
    use std::io::{BufRead, BufReader, Write};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_tarn(dir.path(), &[]);
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"CREATE TABLE t (a INT);\n").unwrap();
    input.flush().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "OK\n");
    interrupt(&child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tarn still waits for input after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(input);
    assert_eq!(status.code(), Some(130));
}

/// A generated statement that chains thousands of conditions is planned, not the end of the
/// shell: 2,500 of them overflowed the default 8 MiB stack. A chain longer than tarn plans
/// is refused with an error that says what to write instead.
#[test]
fn long_generated_conditions_are_planned_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chain = |n: usize| {
        let terms: Vec<String> = (0..n).map(|i| format!("id = {i}")).collect();
        format!("SELECT count(*) FROM t WHERE {}", terms.join(" OR "))
    };
    let long = chain(2_500);
    let out = tarn(
        dir.path(),
        &[
            "--format",
            "csv",
            "-q",
            "-c",
            "CREATE TABLE t (id BIGINT)",
            "-c",
            "INSERT INTO t VALUES (7), (2600)",
            "-c",
            &long,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "count(*)\n1\n");

    let too_long = chain(10_002);
    let out = tarn(dir.path(), &["-c", &too_long], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("chains more than 10000 operators")
            && text(&out.stderr).contains("IN (1, 2, ...)"),
        "{}",
        text(&out.stderr)
    );
}

/// A statement that outgrows `--memory-limit` says so first, with what to do, before
/// DataFusion's account of the pool.
#[test]
fn a_statement_over_the_memory_limit_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = tarn(
        dir.path(),
        &[
            "--memory-limit",
            "1M",
            "-c",
            "SELECT count(*) FROM generate_series(1, 300000) a \
             JOIN generate_series(1, 300000) b ON a.value = b.value",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "Error: the statement needs more memory than --memory-limit allows: raise the \
             limit, or run it on fewer partitions"
        ) && stderr.contains("Resources exhausted"),
        "{stderr}"
    );
}
