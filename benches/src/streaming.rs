//! The `streaming` suite: a table fed by a long stream of small commits must cost the same
//! to commit to and to read on day 100 as on day 1.
//!
//! Part 1, the Rust API: `commits` sequential appends of 100 rows. Per window of 1,000
//! commits (or a tenth of the run, when shorter): commit rate, p50 and p99 latency, and the
//! metadata bytes a commit writes (version file, manifest list, the manifests it wrote).
//! Then a query over all of it before compaction (against the same query after the first
//! window, and as the first query of a new session, no footer cached), OPTIMIZE, and the
//! query again against the same rows written by one CTAS.
//!
//! Part 2, SQL: one `INSERT ... VALUES` statement per commit through one `TarnContext`, as a
//! `tarn` process fed on stdin runs them, with its rate per window.
//!
//! Part 3, SQL into a table with `write.auto-compact.min-files` = 10: the rows of part 1, one
//! `INSERT` of 100 rows per commit; the rate, and the query after the first window and after
//! the last (no OPTIMIZE), against the same rows written by one CTAS; and the same INSERTs
//! into a plain table, for the rate without compaction.

use std::path::Path;
use std::time::{Duration, Instant};

use tarn_core::{Change, CommitOptions, Table};
use tarn_datafusion::TarnContext;

use crate::report::{Report, median_ms, percentile_ms};
use crate::suites::{definition, ids, local_warehouse};

const ROWS: i64 = 100;
const QUERY: &str = "SELECT count(*), sum(id), max(id) FROM bench.s";

/// Metadata bytes the commit that made `table`'s version wrote.
fn metadata_bytes(root: &Path, table: &Table, list: &tarn_core::ManifestList) -> u64 {
    let size = |relative: &str| {
        std::fs::metadata(root.join(relative))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let version = table.version();
    let mut bytes = size(&tarn_core::version_file(version));
    if let Some(path) = &table.snapshot().manifest_list {
        bytes += size(path);
    }
    for i in 0..list.len() {
        if list.added_version(i) == version {
            bytes += list.file_size(i);
        }
    }
    bytes
}

/// A temporary warehouse with the table `bench.<name>` made through the Rust API, and a SQL
/// session on the warehouse.
async fn bench_table(name: &str) -> Result<(tempfile::TempDir, Table, TarnContext), String> {
    let (dir, w) = local_warehouse().await?;
    let table = w
        .create_table("bench", name, definition(false))
        .await
        .map_err(|e| e.to_string())?;
    let ctx = TarnContext::open(dir.path().to_str().ok_or("non-UTF-8 temp path")?)
        .await
        .map_err(|e| e.to_string())?;
    Ok((dir, table, ctx))
}

/// What `append_batches` does with the ids `range`, timed in two parts: encoding the data
/// file, then the commit, which stores it with its metadata.
async fn append_timed(
    table: &Table,
    range: std::ops::Range<i64>,
) -> Result<(Table, Duration, Duration), String> {
    let start = Instant::now();
    let mut writer = table.writer().map_err(|e| e.to_string())?;
    writer.write(&ids(range)).await.map_err(|e| e.to_string())?;
    let (files, unstored) = writer.finish_unstored().await.map_err(|e| e.to_string())?;
    let encoded = Instant::now();
    let options = CommitOptions {
        unstored,
        ..CommitOptions::default()
    };
    let committed = table
        .commit_with(Change::Append { files }, options)
        .await
        .map_err(|e| e.to_string())?;
    Ok((committed, encoded - start, encoded.elapsed()))
}

struct Window {
    first: usize,
    latencies: Vec<Duration>,
    bytes: Vec<u64>,
    elapsed: Duration,
}

pub async fn streaming(
    report: &mut Report,
    commits: usize,
    sql_commits: usize,
    runs: usize,
) -> Result<(), String> {
    let window = (commits / 10).clamp(1, 1_000);
    let (dir, mut t, ctx) = bench_table("s").await?;
    let root = dir.path().join("bench").join("s");
    let mut windows: Vec<Window> = Vec::new();
    let mut early_query = None;
    let mut data_file_time = Duration::ZERO;
    let start = Instant::now();
    for i in 0..commits {
        if i % window == 0 {
            windows.push(Window {
                first: i + 1,
                latencies: Vec::new(),
                bytes: Vec::new(),
                elapsed: Duration::ZERO,
            });
        }
        let first = i as i64 * ROWS;
        let (committed, data_file, commit) = append_timed(&t, first..first + ROWS).await?;
        t = committed;
        data_file_time += data_file;
        let took = data_file + commit;
        let list = t.manifest_list().await.map_err(|e| e.to_string())?;
        let current = windows.last_mut().expect("a window");
        current.latencies.push(took);
        current.elapsed += took;
        current.bytes.push(metadata_bytes(&root, &t, &list));
        if i + 1 == window {
            early_query = Some(query_ms(&ctx, runs).await?);
        }
    }
    let total = start.elapsed().as_secs_f64();
    report.add(
        format!("{commits} sequential appends of {ROWS} rows (Rust API): throughput"),
        commits as f64 / total,
        "commits/s",
        "whole run, local disk, includes reading the new manifest list for the byte count",
    );
    let busy: Duration = windows.iter().map(|w| w.elapsed).sum();
    report.add(
        "share of an append's time spent encoding its data file",
        data_file_time.as_secs_f64() / busy.as_secs_f64(),
        "ratio",
        "encoding the 100-row Parquet file, against the whole append (the commit stores it \
         with its metadata): the most that carrying small appends inside the commit's \
         metadata could save",
    );
    for w in windows.iter_mut() {
        let n = w.latencies.len();
        let mut bytes = w.bytes.clone();
        bytes.sort_unstable();
        report.add(
            format!("commits {}..{}: rate", w.first, w.first + n - 1),
            n as f64 / w.elapsed.as_secs_f64(),
            "commits/s",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, metadata written per commit: median {} B, max {} B",
                median_ms(&mut w.latencies.clone()),
                percentile_ms(&mut w.latencies.clone(), 0.99),
                bytes[bytes.len() / 2],
                bytes[bytes.len() - 1]
            ),
        );
    }
    if let (Some(first), Some(last)) = (windows.first(), windows.last()) {
        let p = |w: &Window, q: f64| percentile_ms(&mut w.latencies.clone(), q);
        report.add(
            "last window / first window: p50 latency",
            p(last, 0.5) / p(first, 0.5),
            "ratio",
            "target ≤ 1.2",
        );
        report.add(
            "last window / first window: p99 latency",
            p(last, 0.99) / p(first, 0.99),
            "ratio",
            "target ≤ 1.2",
        );
        let median = |w: &Window| {
            let mut b = w.bytes.clone();
            b.sort_unstable();
            b[b.len() / 2] as f64
        };
        report.add(
            "last window / first window: metadata bytes per commit (median)",
            median(last) / median(first),
            "ratio",
            "target ≤ 1.2",
        );
    }
    let late_query = query_ms(&ctx, runs).await?;
    if let Some(early) = early_query {
        report.add(
            format!("`{QUERY}` after {commits} commits / after {window}"),
            late_query / early,
            "ratio",
            format!("{late_query:.1} ms against {early:.1} ms, before compaction"),
        );
    }
    // The same query as a new process runs it: a new session, no footer cached yet.
    let warehouse = dir.path().to_str().ok_or("non-UTF-8 temp path")?;
    let mut first_queries = Vec::new();
    for _ in 0..runs.max(1) {
        let fresh = TarnContext::open(warehouse)
            .await
            .map_err(|e| e.to_string())?;
        let s = Instant::now();
        run(&fresh, QUERY).await?;
        first_queries.push(s.elapsed());
    }
    let first_query = median_ms(&mut first_queries);
    report.add(
        format!("`{QUERY}` after {commits} commits, the first in a new session"),
        first_query,
        "ms",
        format!("{late_query:.1} ms in a session that read the files' footers before"),
    );
    let s = Instant::now();
    run(&ctx, "OPTIMIZE bench.s").await?;
    let optimize_s = s.elapsed().as_secs_f64();
    run(&ctx, "CREATE TABLE bench.one AS SELECT * FROM bench.s").await?;
    let compacted = query_ms(&ctx, runs).await?;
    let one = query_on_ms(
        &ctx,
        "SELECT count(*), sum(id), max(id) FROM bench.one",
        runs,
    )
    .await?;
    report.add(
        "after OPTIMIZE / the same rows written by one CTAS",
        compacted / one,
        "ratio",
        format!("{compacted:.1} ms against {one:.1} ms; OPTIMIZE took {optimize_s:.1} s"),
    );

    // SQL, one statement per commit.
    run(&ctx, "CREATE TABLE bench.q (id BIGINT NOT NULL)").await?;
    let sql = sql_appends(&ctx, "bench.q", sql_commits, 3, None, runs).await?;
    report.add(
        format!("{sql_commits} INSERT ... VALUES statements (3 rows each) through SQL: throughput"),
        sql.rate,
        "commits/s",
        "one TarnContext, one statement per commit",
    );
    if let (Some(first), Some(last)) = (sql.rates.first(), sql.rates.last()) {
        report.add(
            "SQL: last window / first window rate",
            last.1 / first.1,
            "ratio",
            format!(
                "{:.0} commits/s at commit {} against {:.0} at commit {}",
                last.1, last.0, first.1, first.0
            ),
        );
    }

    // SQL again, the rows of part 1, into a plain table and into one that compacts itself
    // after each INSERT.
    run(&ctx, "CREATE TABLE bench.plain (id BIGINT NOT NULL)").await?;
    let plain = sql_appends(&ctx, "bench.plain", sql_commits, ROWS as usize, None, runs).await?;
    report.add(
        format!("{sql_commits} INSERTs of {ROWS} rows: throughput"),
        plain.rate,
        "commits/s",
        "one TarnContext, one statement per commit, no compaction",
    );
    run(
        &ctx,
        "CREATE TABLE bench.ac (id BIGINT NOT NULL) WITH ('write.auto-compact.min-files' = '10')",
    )
    .await?;
    let query = "SELECT count(*), sum(id), max(id) FROM bench.ac";
    let auto = sql_appends(
        &ctx,
        "bench.ac",
        sql_commits,
        ROWS as usize,
        Some(query),
        runs,
    )
    .await?;
    report.add(
        format!(
            "{sql_commits} INSERTs of {ROWS} rows with 'write.auto-compact.min-files' = 10: throughput"
        ),
        auto.rate,
        "commits/s",
        format!(
            "one TarnContext; the compactions run inside the INSERTs that trigger them: {:.2}x \
             the time of the same INSERTs without",
            plain.rate / auto.rate
        ),
    );
    let late = query_on_ms(&ctx, query, runs).await?;
    if let Some(early) = auto.early_query_ms {
        let files = count(&ctx, "SELECT count(*) FROM bench.\"ac$files\"").await?;
        report.add(
            format!(
                "auto compaction: `{query}` after {sql_commits} commits / after {}",
                (sql_commits / 10).clamp(1, 1_000)
            ),
            late / early,
            "ratio",
            format!("{late:.1} ms against {early:.1} ms; {files} files at the end"),
        );
    }
    report.add(
        "auto compaction: query after the last commit / the same rows written by one CTAS",
        late / one,
        "ratio",
        format!("{late:.1} ms against {one:.1} ms"),
    );
    drop(dir);
    Ok(())
}

/// What [`sql_appends`] measured.
struct SqlAppends {
    /// Commits per second over the whole run.
    rate: f64,
    /// (commits so far, commits per second in the window that ended there).
    rates: Vec<(usize, f64)>,
    /// The query's median time after the first window, when one was given.
    early_query_ms: Option<f64>,
}

/// `commits` `INSERT ... VALUES` statements of `rows` rows each into `table`, ids counting
/// up from 0, as a `tarn` process fed on stdin runs them.
async fn sql_appends(
    ctx: &TarnContext,
    table: &str,
    commits: usize,
    rows: usize,
    query: Option<&str>,
    runs: usize,
) -> Result<SqlAppends, String> {
    let window = (commits / 10).clamp(1, 1_000);
    let mut rates = Vec::new();
    let mut early_query_ms = None;
    let mut busy = Duration::ZERO;
    let mut in_window = Duration::ZERO;
    for i in 0..commits {
        let values: Vec<String> = (0..rows).map(|k| format!("({})", i * rows + k)).collect();
        let s = Instant::now();
        run(
            ctx,
            &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
        )
        .await?;
        busy += s.elapsed();
        in_window += s.elapsed();
        if (i + 1) % window == 0 {
            rates.push((i + 1, window as f64 / in_window.as_secs_f64()));
            in_window = Duration::ZERO;
            if let (Some(query), None) = (query, early_query_ms) {
                early_query_ms = Some(query_on_ms(ctx, query, runs).await?);
            }
        }
    }
    Ok(SqlAppends {
        rate: commits as f64 / busy.as_secs_f64(),
        rates,
        early_query_ms,
    })
}

/// The single Int64 value `sql` returns, such as a `count(*)`.
async fn count(ctx: &TarnContext, sql: &str) -> Result<i64, String> {
    crate::tpch::run(ctx, sql)
        .await?
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
        })
        .map(|c| c.value(0))
        .ok_or_else(|| format!("{sql}: no count"))
}

async fn run(ctx: &TarnContext, sql: &str) -> Result<(), String> {
    crate::tpch::run(ctx, sql).await.map(drop)
}

async fn query_ms(ctx: &TarnContext, runs: usize) -> Result<f64, String> {
    query_on_ms(ctx, QUERY, runs).await
}

/// Median of `runs` runs after a warm-up run.
async fn query_on_ms(ctx: &TarnContext, sql: &str, runs: usize) -> Result<f64, String> {
    run(ctx, sql).await?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let s = Instant::now();
        run(ctx, sql).await?;
        times.push(s.elapsed());
    }
    Ok(median_ms(&mut times))
}

/// The phases of a SQL statement, timed: parse, plan (SQL to a logical plan, with the tables
/// it names), physical plan (optimizers and the physical planner), run.
const PHASES: [&str; 4] = ["parse", "plan", "physical plan", "run (write, commit)"];

/// One statement's time in each of [`PHASES`].
type Phases = [Duration; 4];

/// Runs `sql` on a tarn session, timing its phases.
async fn tarn_phases(ctx: &TarnContext, sql: &str) -> Result<Phases, String> {
    let e = |e: datafusion::error::DataFusionError| format!("{sql}: {e}");
    let start = Instant::now();
    let mut parsed = ctx.parse(sql).map_err(e)?;
    let parsed_at = Instant::now();
    let frame = ctx.execute(parsed.remove(0)).await.map_err(e)?;
    finish_phases(frame, start, parsed_at, sql).await
}

/// Runs `sql` on a plain DataFusion session, timing its phases as [`tarn_phases`] does.
async fn datafusion_phases(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<Phases, String> {
    let e = |e: datafusion::error::DataFusionError| format!("{sql}: {e}");
    let start = Instant::now();
    let state = ctx.state();
    let statement = state
        .sql_to_statement(sql, &datafusion::config::Dialect::Generic)
        .map_err(e)?;
    let parsed_at = Instant::now();
    let plan = state.statement_to_plan(statement).await.map_err(e)?;
    let frame = ctx.execute_logical_plan(plan).await.map_err(e)?;
    finish_phases(frame, start, parsed_at, sql).await
}

async fn finish_phases(
    frame: datafusion::prelude::DataFrame,
    start: Instant,
    parsed_at: Instant,
    sql: &str,
) -> Result<Phases, String> {
    let e = |e: datafusion::error::DataFusionError| format!("{sql}: {e}");
    let planned_at = Instant::now();
    let task = std::sync::Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await.map_err(e)?;
    let physical_at = Instant::now();
    datafusion::physical_plan::collect(plan, task)
        .await
        .map_err(e)?;
    let done = Instant::now();
    Ok([
        parsed_at - start,
        planned_at - parsed_at,
        physical_at - planned_at,
        done - physical_at,
    ])
}

/// Where one small `INSERT ... VALUES` statement spends its time: `statements` INSERTs of 3
/// rows through tarn's SQL, timed in [`PHASES`], alternating with appends of the same rows
/// through the Rust API (data file, commit) and with the same INSERTs into a DataFusion
/// `MemTable` (the engine's own cost of a statement, with nothing written). Medians.
pub async fn sql_path(report: &mut Report, statements: usize) -> Result<(), String> {
    let (dir, mut t, ctx) = bench_table("api").await?;
    run(&ctx, "CREATE TABLE bench.q (id BIGINT NOT NULL)").await?;
    let engine = datafusion::prelude::SessionContext::new();
    engine
        .register_table(
            "q",
            std::sync::Arc::new(
                datafusion::datasource::MemTable::try_new(ids(0..0).schema(), vec![vec![]])
                    .map_err(|e| e.to_string())?,
            ),
        )
        .map_err(|e| e.to_string())?;
    let (mut tarn, mut floor) = (Vec::new(), Vec::new());
    let (mut api_file, mut api_commit) = (Vec::new(), Vec::new());
    for i in 0..statements as i64 {
        let values = format!("VALUES ({}), ({}), ({})", 3 * i, 3 * i + 1, 3 * i + 2);
        tarn.push(tarn_phases(&ctx, &format!("INSERT INTO bench.q {values}")).await?);
        floor.push(datafusion_phases(&engine, &format!("INSERT INTO q {values}")).await?);

        let (committed, data_file, commit) = append_timed(&t, 3 * i..3 * i + 3).await?;
        t = committed;
        api_file.push(data_file);
        api_commit.push(commit);
    }
    let total =
        |samples: &[Phases]| -> Vec<Duration> { samples.iter().map(|p| p.iter().sum()).collect() };
    let phase = |samples: &[Phases], k: usize| -> f64 {
        median_ms(&mut samples.iter().map(|p| p[k]).collect::<Vec<_>>())
    };
    let mut api: Vec<Duration> = api_file
        .iter()
        .zip(&api_commit)
        .map(|(a, b)| *a + *b)
        .collect();
    let (sql_ms, api_ms) = (median_ms(&mut total(&tarn)), median_ms(&mut api));
    report.add(
        "INSERT of 3 rows through tarn's SQL, whole statement",
        sql_ms,
        "ms",
        format!(
            "median of {statements}; p99 {:.2} ms",
            percentile_ms(&mut total(&tarn), 0.99)
        ),
    );
    for (k, name) in PHASES.iter().enumerate() {
        report.add(
            format!("tarn SQL: {name}"),
            phase(&tarn, k),
            "ms",
            format!("DataFusion into a MemTable: {:.3} ms", phase(&floor, k)),
        );
    }
    report.add(
        "append of 3 rows through the Rust API, whole",
        api_ms,
        "ms",
        format!(
            "median of {statements}; encoding the data file {:.3} ms, commit {:.3} ms",
            median_ms(&mut api_file),
            median_ms(&mut api_commit)
        ),
    );
    let engine_ms: f64 = (0..3).map(|k| phase(&floor, k)).sum();
    report.add(
        "tarn SQL above the Rust API",
        (sql_ms - api_ms) * 1000.0,
        "µs",
        format!(
            "difference of the medians; DataFusion alone takes {:.0} µs to parse and plan \
             the same INSERT into a MemTable",
            engine_ms * 1000.0
        ),
    );
    drop(dir);
    Ok(())
}
