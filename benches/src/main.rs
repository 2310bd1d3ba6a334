//! `tarn-bench <suite> [--runs N] [--json PATH]`: runs a benchmark suite, prints a markdown
//! table and writes the figures as JSON.
//!
//! Suites:
//! - `append-large`: appending one file to a table of 10,000 files: metadata objects written
//!   and commit latency.
//! - `commit`: 1,000 sequential appends of 1,000 rows (commits/s, p50/p99 latency), then 4
//!   concurrent writers (throughput, and a check that no commit was lost).
//! - `merge-memory`: MERGE of 10,000 source rows into 10,000,000 target rows with a 1 GiB
//!   DataFusion memory limit: time, peak memory, files rewritten.
//! - `smoke`: every suite at a tiny size, one run, for CI.

mod dml;
mod report;
mod suites;

use std::process::ExitCode;

use report::Report;

struct Args {
    suite: String,
    runs: usize,
    json: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let suite = args.next().ok_or(
        "usage: tarn-bench <append-large|commit|merge-memory|smoke> [--runs N] [--json PATH]",
    )?;
    let mut parsed = Args {
        suite,
        runs: 5,
        json: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => {
                parsed.runs = value
                    .parse()
                    .map_err(|_| format!("--runs takes a number, not '{value}'"))?
            }
            "--json" => parsed.json = Some(value),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(parsed)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tarn-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report::new(&args.suite);
    let result = match args.suite.as_str() {
        "append-large" => suites::append_large(&mut report, 10_000, args.runs).await,
        "commit" => suites::commit(&mut report, 1_000, 1_000, 4, args.runs).await,
        "merge-memory" => {
            dml::merge_under_memory_limit(&mut report, 10_000_000, 10_000, 1 << 30).await
        }
        "smoke" => {
            let r = suites::append_large(&mut report, 200, 1).await;
            match r {
                Ok(()) => match suites::commit(&mut report, 20, 100, 2, 1).await {
                    Ok(()) => {
                        dml::merge_under_memory_limit(&mut report, 20_000, 1_000, 64 << 20).await
                    }
                    e => e,
                },
                e => e,
            }
        }
        other => Err(format!("unknown suite '{other}'")),
    };
    if let Err(e) = result {
        eprintln!("tarn-bench: {e}");
        return ExitCode::FAILURE;
    }
    print!("{}", report.markdown());
    let path = args
        .json
        .unwrap_or_else(|| format!("target/tarn-bench/{}.json", args.suite));
    if let Err(e) = report.write_json(&path) {
        eprintln!("tarn-bench: writing {path}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
