//! The `tarn` binary driven end to end.

mod interactive;
mod maintain;
mod one_shot;
mod quickstart;
mod s3;
mod scripting;

use std::path::Path;
use std::process::{Child, Command, Output};

/// Starts `tarn` on `warehouse` with `args`, its standard streams piped.
pub fn spawn_tarn(warehouse: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .arg("--warehouse")
        .arg(warehouse)
        .args(args)
        .env_remove("TARN_WAREHOUSE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tarn starts")
}

/// Runs `tarn` on `warehouse` with `args` (and `stdin`), returning its output.
pub fn tarn(warehouse: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = spawn_tarn(warehouse, args);
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("tarn finishes")
}

/// Sends `child` a SIGINT, as Ctrl-C in its terminal would.
#[cfg(unix)]
pub fn interrupt(child: &Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -INT {} failed", child.id());
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
