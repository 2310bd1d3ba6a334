//! The README's quickstart, run as written: it must keep working.

use crate::text;

#[test]
fn the_readme_quickstart_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = &readme[readme.find("## Quickstart").expect("a quickstart section")..];
    let block = |fence: &str| -> String {
        let start = section
            .find(fence)
            .unwrap_or_else(|| panic!("no {fence} block"))
            + fence.len();
        let end = section[start..].find("```").unwrap() + start;
        section[start..end].to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    // The shell block that makes the CSV file (the second ```sh block).
    let setup = section
        .split("```sh")
        .nth(2)
        .and_then(|b| b.split("```").next())
        .expect("the CSV setup block");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(setup)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let sql = block("```sql");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tarn"));
    cmd.current_dir(dir.path()).env_remove("TARN_WAREHOUSE");
    let out = {
        use std::io::Write;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(
        stdout.contains("3 rows affected; purchases is now at version 1"),
        "{stdout}"
    );
    assert!(stdout.contains("purchases is now at version 3"), "{stdout}");
    assert!(stdout.contains("| merge"), "{stdout}");
    assert!(
        stdout.contains("| amount ") && stdout.contains("| web "),
        "the renamed column and the added column's default: {stdout}"
    );
    assert!(
        stdout.contains("| restored_version |") && stdout.contains("| 6       | 1 "),
        "the restore: {stdout}"
    );
    assert!(
        dir.path().join("tarn-warehouse").is_dir(),
        "the default warehouse is created in the current directory"
    );
}
