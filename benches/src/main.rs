//! `tarn-bench <suite> [--sf N] [--runs N] [--json PATH]`: runs a benchmark suite, prints a
//! markdown table and writes the figures as JSON.
//!
//! Suites on TPC-H generated in-process at scale factor `--sf` (default 1):
//! - `scan`: the 22 TPC-H queries on tarn tables against DataFusion's `ListingTable` over the
//!   same Parquet files; per-query ratio and geometric mean.
//! - `pruning`: a one-month query on lineitem partitioned by `month(l_shipdate)`, on a copy
//!   sorted by `l_shipdate`, and on the unsorted plain Parquet: time, files, bytes read.
//! - `dml`: DELETE 0.1%, UPDATE 1% and MERGE upserts of about 1% on lineitem, each on a
//!   fresh copy, merge-on-read and copy-on-write: time, files rewritten, peak memory; then Q1
//!   and Q6 with 10% of lineitem deleted by deletion vectors against a compacted copy.
//! - `time-travel`: the same queries on the latest version and 100 commits back.
//! - `write`: CREATE TABLE AS of lineitem from one Parquet file, unpartitioned and
//!   partitioned by `month(l_shipdate)`, an events table by `day(ts), bucket(16, id)`, and
//!   INSERT of a sixth of lineitem into an existing table, each against DataFusion's
//!   `COPY ... TO` of the same query: time, rows/s, files, peak RSS.
//!
//! Suites on synthetic tables:
//! - `planning`: planning a point query and a full scan on tables of 1,000, 10,000 and
//!   100,000 files.
//! - `commit`: 1,000 sequential appends of 1,000 rows (commits/s, p50/p99 latency), then 4
//!   concurrent writers (throughput, and a check that no commit was lost).
//! - `streaming`: 20,000 sequential appends of 100 rows through the Rust API (rate, p50/p99
//!   and metadata bytes per commit for every 1,000, first against last), a query before
//!   (also as a new session's first) and after OPTIMIZE against the same rows written by one
//!   CTAS, then 20,000 `INSERT ... VALUES`
//!   statements through SQL (rate per 1,000), and 20,000 INSERTs of 100 rows into a table
//!   with auto compaction (rate, the query after 1,000 and after 20,000 commits).
//! - `sql-path`: 2,000 `INSERT ... VALUES` statements of 3 rows, each timed in phases (parse,
//!   plan, physical plan, run), against appends of the same rows through the Rust API.
//! - `append-large`: appending one file to a table of 10,000 files: metadata objects written
//!   and commit latency.
//! - `object-store`: 200 sequential appends and 20 point queries through SQL (each from a
//!   fresh session) on local disk and on the S3 server of `TARN_TEST_S3`: commits/s, query
//!   time, and requests per commit and per query (run it through `scripts/with-s3.sh`).
//! - `merge-memory`: MERGE of 10,000 source rows into 10,000,000 target rows with a 1 GiB
//!   DataFusion memory limit, in both row-level modes: time, peak memory, files rewritten.
//! - `upsert`: upserts of 10 keys into a table of 5,000 small files, merge-on-read: MERGE from
//!   a VALUES list against the same MERGE from a table and an UPDATE of the same keys.
//!
//! - `changes`: lineitem appended in 1,000 commits, then an aggregate over the whole table
//!   against the same aggregate over `table_changes` of the last 10: time and bytes read.
//!
//! `all` runs every suite; `smoke` runs every suite at a tiny size, once, for CI;
//! `write --case N` runs only the suite's Nth case; `explain --query N` prints `EXPLAIN ANALYZE` of TPC-H query N on both sides.

mod changes;
mod cluster;
mod dml;
mod nested;
mod planning;
mod report;
mod scan;
mod stores;
mod streaming;
mod suites;
mod tpch;
mod write;

use std::process::ExitCode;

use report::Report;
use tpch::Tpch;

const USAGE: &str = "usage: tarn-bench <scan|cluster|pruning|write|commit|streaming|sql-path|planning|dml|time-travel|changes|nested|\
                     append-large|object-store|merge-memory|upsert|all|smoke|explain> [--sf N] [--runs N] [--query N] [--case N] [--partitions N] [--json PATH]";

struct Args {
    suite: String,
    sf: f64,
    runs: usize,
    query: usize,
    /// Only this case of the `write` suite (1-based).
    case: Option<usize>,
    /// The `cluster` suite's partitions per query (default: one per task slot).
    partitions: Option<usize>,
    json: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let suite = args.next().ok_or(USAGE)?;
    let mut parsed = Args {
        suite,
        sf: 1.0,
        runs: 5,
        query: 1,
        case: None,
        partitions: None,
        json: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |what: &str| format!("{flag} takes {what}, not '{value}'");
        match flag.as_str() {
            "--runs" => {
                parsed.runs = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(number("a positive number"))?
            }
            "--sf" => {
                parsed.sf = value
                    .parse()
                    .ok()
                    .filter(|n: &f64| *n > 0.0)
                    .ok_or(number("a positive scale factor"))?
            }
            "--query" => parsed.query = value.parse().ok().ok_or(number("a TPC-H query number"))?,
            "--case" => parsed.case = Some(value.parse().ok().ok_or(number("a case number"))?),
            "--partitions" => {
                parsed.partitions = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(number("a positive number"))?,
                )
            }
            "--json" => parsed.json = Some(value),
            other => return Err(format!("unknown option '{other}'\n{USAGE}")),
        }
    }
    Ok(parsed)
}

/// Loads TPC-H once for the suites that need it.
async fn tpch(data: &mut Option<Tpch>, report: &mut Report, sf: f64) -> Result<(), String> {
    if data.is_none() {
        let (loaded, took) = Tpch::load(sf).await?;
        report.add(
            format!("load TPC-H SF {sf} into tarn (generate + CREATE TABLE AS)"),
            took.as_secs_f64(),
            "s",
            "8 tables",
        );
        *data = Some(loaded);
    }
    Ok(())
}

async fn run_suite(
    suite: &str,
    report: &mut Report,
    data: &mut Option<Tpch>,
    sf: f64,
    runs: usize,
    case: Option<usize>,
    partitions: Option<usize>,
) -> Result<(), String> {
    match suite {
        "scan" => {
            tpch(data, report, sf).await?;
            scan::scan(report, data.as_ref().expect("loaded"), runs).await
        }
        "cluster" => {
            tpch(data, report, sf).await?;
            cluster::cluster(report, data.as_ref().expect("loaded"), runs, partitions).await
        }
        "pruning" => {
            tpch(data, report, sf).await?;
            scan::pruning(report, data.as_ref().expect("loaded"), runs).await
        }
        "dml" => {
            tpch(data, report, sf).await?;
            dml::lineitem(report, data.as_ref().expect("loaded"), runs).await
        }
        "changes" => {
            tpch(data, report, sf).await?;
            changes::changes(report, data.as_ref().expect("loaded"), 1_000, runs).await
        }
        "time-travel" => {
            tpch(data, report, sf).await?;
            scan::time_travel(report, data.as_ref().expect("loaded"), 100, runs).await
        }
        "write" => write::write(report, sf, runs, case).await,
        "nested" => nested::nested(report, 1_000_000, runs).await,
        "planning" => planning::planning(report, &[1_000, 10_000, 100_000], runs).await,
        "commit" => suites::commit(report, 1_000, 1_000, 4, runs).await,
        "streaming" => streaming::streaming(report, 20_000, 20_000, runs).await,
        "sql-path" => streaming::sql_path(report, 2_000).await,
        "append-large" => suites::append_large(report, 10_000, runs).await,
        "object-store" => stores::object_store(report, 200, 20, runs).await,
        "merge-memory" => dml::merge_under_memory_limit(report, 10_000_000, 10_000, 1 << 30).await,
        "upsert" => dml::upserts(report, 5_000, runs).await,
        other => Err(format!("unknown suite '{other}'\n{USAGE}")),
    }
}

/// Every suite at a tiny size, once.
async fn smoke(report: &mut Report) -> Result<(), String> {
    let (data, _) = Tpch::load(0.01).await?;
    scan::scan(report, &data, 1).await?;
    cluster::cluster(report, &data, 1, None).await?;
    scan::pruning(report, &data, 1).await?;
    dml::lineitem(report, &data, 1).await?;
    scan::time_travel(report, &data, 3, 1).await?;
    changes::changes(report, &data, 20, 1).await?;
    write::write(report, 0.01, 1, None).await?;
    planning::planning(report, &[1_000], 1).await?;
    suites::append_large(report, 200, 1).await?;
    suites::commit(report, 20, 100, 2, 1).await?;
    streaming::streaming(report, 30, 20, 1).await?;
    streaming::sql_path(report, 20).await?;
    // The S3 side needs the server of scripts/with-s3.sh, which the test command starts.
    if std::env::var_os("TARN_TEST_S3").is_some() {
        stores::object_store(report, 5, 2, 1).await?;
    }
    dml::merge_under_memory_limit(report, 20_000, 1_000, 64 << 20).await?;
    dml::upserts(report, 20, 1).await
}

fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tarn-bench: {e}");
            ExitCode::FAILURE
        }
    }
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
        "smoke" => smoke(&mut report).await,
        "explain" => match Tpch::load(args.sf).await {
            Ok((data, _)) => return exit(scan::explain(&data, args.query).await),
            Err(e) => Err(e),
        },
        "all" => {
            let mut data = None;
            let mut result = Ok(());
            for suite in [
                "scan",
                "cluster",
                "pruning",
                "time-travel",
                "changes",
                "nested",
                "write",
                "dml",
                "planning",
                "commit",
                "streaming",
                "append-large",
                "merge-memory",
                "upsert",
            ] {
                eprintln!("tarn-bench: running {suite}");
                result = run_suite(
                    suite,
                    &mut report,
                    &mut data,
                    args.sf,
                    args.runs,
                    None,
                    args.partitions,
                )
                .await;
                if result.is_err() {
                    break;
                }
            }
            result
        }
        suite => {
            run_suite(
                suite,
                &mut report,
                &mut None,
                args.sf,
                args.runs,
                args.case,
                args.partitions,
            )
            .await
        }
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
