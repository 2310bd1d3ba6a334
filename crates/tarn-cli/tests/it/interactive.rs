//! The interactive shell through a pseudo-terminal.

use rexpect::session::spawn_command;

fn shell(warehouse: &std::path::Path, history: &std::path::Path) -> rexpect::session::PtySession {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tarn"));
    cmd.arg("--warehouse")
        .arg(warehouse)
        .env("TARN_HISTORY", history)
        .env("TERM", "dumb")
        .env_remove("TARN_WAREHOUSE");
    spawn_command(cmd, Some(30_000)).expect("tarn starts in a pty")
}

#[test]
fn multi_line_statements_meta_commands_and_exit() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let mut p = shell(&dir.path().join("wh"), &history);
    p.exp_string("Type \\? for help").unwrap();
    p.exp_string("tarn> ").unwrap();
    p.send_line("CREATE TABLE t (id BIGINT);").unwrap();
    p.exp_string("OK").unwrap();
    // A statement over several lines runs when the ';' arrives.
    p.send_line("INSERT INTO t").unwrap();
    p.send_line("VALUES (41), (42);").unwrap();
    p.exp_string("2 rows affected; t is now at version 1")
        .unwrap();
    p.send_line("\\timing on").unwrap();
    p.exp_string("Timing is on.").unwrap();
    p.send_line("SELECT max(id) AS m FROM t;").unwrap();
    p.exp_string("| 42 |").unwrap();
    p.exp_string("Time: ").unwrap();
    p.send_line("\\bogus").unwrap();
    p.exp_string("unknown command").unwrap();
    // Ctrl-D leaves.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(
        saved.contains("SELECT max(id) AS m FROM t;"),
        "history is saved: {saved}"
    );
}

#[test]
fn ctrl_c_cancels_the_statement_not_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = shell(&dir.path().join("wh"), &dir.path().join("history"));
    p.exp_string("tarn> ").unwrap();
    p.send_line("SELECT count(*) FROM generate_series(1, 10000000000) a;")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    p.send_control('c').unwrap();
    p.exp_string("statement cancelled").unwrap();
    p.exp_string("tarn> ").unwrap();
    // A progress line still running would redraw over what follows.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    p.send_line("SELECT 1 + 1 AS two;").unwrap();
    let before = p.exp_string("| 2   |").unwrap();
    assert!(!before.contains("rows so far"), "{before:?}");
    let after = p.exp_string("tarn> ").unwrap();
    assert!(!after.contains("rows so far"), "{after:?}");
    std::thread::sleep(std::time::Duration::from_millis(800));
    p.send_line("SELECT 3 AS three;").unwrap();
    let before = p.exp_string("| 3     |").unwrap();
    assert!(!before.contains("rows so far"), "{before:?}");
    p.exp_string("tarn> ").unwrap();
    p.send_line("\\q").unwrap();
    p.exp_eof().unwrap();
}

/// Ctrl-C during CREATE TABLE AS takes the half-made table back out: the next statement
/// finds no table, and the statement typed again makes it.
#[test]
fn ctrl_c_during_create_table_as_leaves_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = shell(&dir.path().join("wh"), &dir.path().join("history"));
    p.exp_string("tarn> ").unwrap();
    p.send_line("CREATE TABLE big AS SELECT value AS id FROM generate_series(1, 1000000000);")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    p.send_control('c').unwrap();
    p.exp_string("statement cancelled").unwrap();
    p.exp_string("tarn> ").unwrap();
    p.send_line("SELECT count(*) FROM big;").unwrap();
    p.exp_string("does not exist").unwrap();
    p.exp_string("tarn> ").unwrap();
    p.send_line("CREATE TABLE big AS SELECT value AS id FROM generate_series(1, 5);")
        .unwrap();
    p.exp_string("tarn> ").unwrap();
    p.send_line("SELECT count(*) AS n FROM big;").unwrap();
    p.exp_string("| 5 |").unwrap();
    p.exp_string("tarn> ").unwrap();
    p.send_line("\\q").unwrap();
    p.exp_eof().unwrap();
}
