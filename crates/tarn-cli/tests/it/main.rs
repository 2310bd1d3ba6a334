//! The `tarn` binary driven end to end.

mod interactive;
mod maintain;
mod one_shot;
mod quickstart;
mod s3;
mod scripting;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tarn` on `warehouse` with `args` (and `stdin`), returning its output.
pub fn tarn(warehouse: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarn"));
    cmd.arg("--warehouse")
        .arg(warehouse)
        .args(args)
        .env_remove("TARN_WAREHOUSE");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("tarn starts");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("tarn finishes")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
