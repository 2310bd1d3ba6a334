//! Runs every `sql-tests/**/*.slt` file against a fresh warehouse (a new local directory)
//! through tarn's SQL entry point.
//!
//! ```sh
//! cargo test -p tarn-datafusion --test sqllogictests               # all files
//! cargo test -p tarn-datafusion --test sqllogictests -- time_travel # files whose path contains it
//! cargo test -p tarn-datafusion --test sqllogictests -- --complete  # rewrite expected output
//! ```
//!
//! Every file runs twice: with row-level DML in merge-on-read mode (deletion vectors, the
//! default) and in copy-on-write mode (tables created with `write.*-mode` set so). Records
//! whose results differ between the modes say so with `onlyif merge-on-read` or
//! `onlyif copy-on-write`. When `TARN_TEST_S3` names a bucket (`scripts/with-s3.sh` sets
//! it), every file runs a third time in merge-on-read mode on a warehouse in that bucket,
//! labelled `s3`.
//!
//! Variables available with `control substitution on`: `$TESTDATA` (the `sql-tests/data`
//! folder) and `$WAREHOUSE` (this file's warehouse directory). Output values are rendered
//! as DataFusion prints them, NULL as `NULL`, the empty string as `(empty)`, and every UUID
//! as `<uuid>` so that file names are stable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{DBOutput, DefaultColumnType};
use tarn_datafusion::TarnContext;

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

struct Tarn {
    ctx: TarnContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for Tarn {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| SqlError(e.to_string()))?;
        let batches = df.collect().await.map_err(|e| SqlError(e.to_string()))?;
        let columns = batches.first().map(|b| b.num_columns()).unwrap_or(0);
        if columns == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        let rows = render(&batches).map_err(SqlError)?;
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tarn"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await
    }
}

fn render(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| {
                    let s = f.value(row).to_string();
                    if s.is_empty() {
                        "(empty)".to_string()
                    } else {
                        // A warehouse in a bucket sits under a prefix of its own.
                        mask_uuids(&s).replace("slt-<uuid>/", "")
                    }
                })
                .collect();
            // A multi-line value (an EXPLAIN plan) continues on rows of its own, one per line.
            let mut extra = Vec::new();
            let first: Vec<String> = cells
                .into_iter()
                .map(|cell| {
                    let mut lines = cell.lines().map(str::to_string);
                    let head = lines.next().unwrap_or_default();
                    extra.extend(lines);
                    head
                })
                .collect();
            rows.push(first);
            rows.extend(extra.into_iter().map(|line| vec![line]));
        }
    }
    Ok(rows)
}

/// Replaces every UUID (8-4-4-4-12 hex digits) with `<uuid>`.
fn mask_uuids(s: &str) -> String {
    let bytes = s.as_bytes();
    let shape = [8usize, 4, 4, 4, 12];
    let is_uuid_at = |start: usize| -> bool {
        let mut i = start;
        for (n, len) in shape.iter().enumerate() {
            if i + len > bytes.len() || !bytes[i..i + len].iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            i += len;
            if n < 4 {
                if bytes.get(i) != Some(&b'-') {
                    return false;
                }
                i += 1;
            }
        }
        true
    };
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if is_uuid_at(i) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = s[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

/// How a run writes row-level changes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    MergeOnRead,
    CopyOnWrite,
    /// Merge-on-read, on a warehouse in the S3 bucket `TARN_TEST_S3`.
    S3,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::MergeOnRead => "merge-on-read",
            Mode::CopyOnWrite => "copy-on-write",
            Mode::S3 => "s3",
        }
    }
}

async fn run_file(path: &Path, root: &Path, complete: bool, mode: Mode) -> Result<(), String> {
    let warehouse = tempfile::tempdir().map_err(|e| e.to_string())?;
    let location = match mode {
        Mode::S3 => {
            let bucket = std::env::var("TARN_TEST_S3").map_err(|e| e.to_string())?;
            format!("{bucket}/slt-{}", tarn_core::Env::default().next_id())
        }
        _ => warehouse
            .path()
            .to_str()
            .ok_or("non-UTF-8 temp path")?
            .to_string(),
    };
    let mut ctx = TarnContext::open(&location)
        .await
        .map_err(|e| e.to_string())?;
    if mode == Mode::CopyOnWrite {
        ctx = ctx
            .with_table_defaults(
                ["write.delete-mode", "write.update-mode", "write.merge-mode"]
                    .map(|k| (k.to_string(), "copy-on-write".to_string())),
            )
            .map_err(|e| e.to_string())?;
    }
    let mut runner = sqllogictest::Runner::new(move || {
        let ctx = ctx.clone();
        async move { Ok::<_, SqlError>(Tarn { ctx }) }
    });
    runner.add_label("tarn");
    runner.add_label(mode.label());
    if mode == Mode::S3 {
        runner.add_label("merge-on-read");
    }
    runner.set_var("TESTDATA".into(), root.join("data").display().to_string());
    runner.set_var("WAREHOUSE".into(), location);
    if complete {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .map_err(|e| e.to_string())
    } else {
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(false).to_string())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql-tests");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    files.sort();
    files.retain(|f| {
        filters.is_empty()
            || filters
                .iter()
                .any(|pat| f.to_string_lossy().contains(pat.as_str()))
    });
    let (mut passed, mut failed) = (0, 0);
    // --complete rewrites expected output from the default mode only.
    let on_s3 = std::env::var_os("TARN_TEST_S3").is_some();
    let modes: &[Mode] = if complete {
        &[Mode::MergeOnRead]
    } else if on_s3 {
        &[Mode::MergeOnRead, Mode::CopyOnWrite, Mode::S3]
    } else {
        println!("TARN_TEST_S3 is unset: the s3 runs are left out (see scripts/with-s3.sh)");
        &[Mode::MergeOnRead, Mode::CopyOnWrite]
    };
    for (file, &mode) in files.iter().flat_map(|f| modes.iter().map(move |m| (f, m))) {
        let name = format!(
            "{} [{}]",
            file.strip_prefix(&root).unwrap_or(file).display(),
            mode.label()
        );
        match run_file(file, &root, complete, mode).await {
            Ok(()) => {
                passed += 1;
                println!("ok      {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAILED  {name}\n{e}\n");
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if files.is_empty() {
        println!("no .slt files found under {}", root.display());
        return ExitCode::FAILURE;
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
