//! Row-level DML: on lineitem, under a memory limit, and small upserts into many files.

use std::time::Instant;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use tarn_core::Warehouse;
use tarn_datafusion::TarnContext;

use crate::report::{Report, peak_rss, reset_peak_rss};
use crate::tpch::{QUERIES, Side, Tpch, median, run as run_batches};

async fn run(ctx: &TarnContext, sql: &str) -> Result<u64, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(batches
        .first()
        .filter(|b| b.num_columns() == 1 && b.num_rows() == 1)
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|c| c.value(0))
        })
        .unwrap_or(0))
}

/// MERGE of a `source_rows` source (90% updates, 10% inserts) into a `target_rows` target,
/// with DataFusion's memory pool limited to `limit_bytes`, in both row-level modes.
pub async fn merge_under_memory_limit(
    report: &mut Report,
    target_rows: u64,
    source_rows: u64,
    limit_bytes: usize,
) -> Result<(), String> {
    for mode in MODES {
        merge_in_mode(report, target_rows, source_rows, limit_bytes, mode).await?;
    }
    Ok(())
}

async fn merge_in_mode(
    report: &mut Report,
    target_rows: u64,
    source_rows: u64,
    limit_bytes: usize,
    mode: &str,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let warehouse =
        Warehouse::open(dir.path().to_str().ok_or("non-UTF-8 path")?).map_err(|e| e.to_string())?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(tarn_datafusion::memory_pool(limit_bytes))
        .build_arc()
        .map_err(|e| e.to_string())?;
    let ctx = TarnContext::new_with_runtime(warehouse, SessionConfig::new(), runtime)
        .await
        .map_err(|e| e.to_string())?;
    run(
        &ctx,
        &format!(
            "CREATE TABLE target (id BIGINT NOT NULL, v BIGINT, pad VARCHAR) WITH \
         ('write.target-file-size-bytes' = '33554432', 'write.merge-mode' = '{mode}')"
        ),
    )
    .await?;
    let load = Instant::now();
    run(&ctx, &format!("INSERT INTO target SELECT value, value % 1000, 'padding-' || value FROM generate_series(0, {})", target_rows - 1)).await?;
    let load_s = load.elapsed().as_secs_f64();
    // Every key of the source is unique; 90% hit existing rows spread over the target.
    let updates = source_rows * 9 / 10;
    let stride = (target_rows / updates.max(1)).max(1);
    run(&ctx, "CREATE TABLE source (id BIGINT, v BIGINT)").await?;
    run(&ctx, &format!(
        "INSERT INTO source SELECT value * {stride}, -1 FROM generate_series(0, {}) UNION ALL SELECT {target_rows} + value, -2 FROM generate_series(0, {})",
        updates - 1,
        source_rows - updates - 1
    ))
    .await?;
    let files_before = run(
        &ctx,
        "SELECT CAST(count(*) AS BIGINT UNSIGNED) FROM \"target$files\"",
    )
    .await?;
    reset_peak_rss();
    let start = Instant::now();
    let affected = run(
        &ctx,
        "MERGE INTO target t USING source s ON t.id = s.id \
         WHEN MATCHED THEN UPDATE SET v = s.v \
         WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v, 'new')",
    )
    .await?;
    let elapsed = start.elapsed().as_secs_f64();
    let peak = peak_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    if affected != source_rows {
        return Err(format!(
            "MERGE affected {affected} rows, expected {source_rows}"
        ));
    }
    let rewritten = run(
        &ctx,
        "SELECT removed_files FROM \"target$snapshots\" ORDER BY version DESC LIMIT 1",
    )
    .await?;
    let total = run(&ctx, "SELECT CAST(count(*) AS BIGINT UNSIGNED) FROM target").await?;
    if total != target_rows + (source_rows - updates) {
        return Err(format!("the target has {total} rows after the MERGE"));
    }
    let label = format!(
        "MERGE {source_rows} into {target_rows} rows, {mode}, memory pool {} MiB",
        limit_bytes >> 20
    );
    report.add(
        format!("{label}: time"),
        elapsed,
        "s",
        format!("target loaded in {load_s:.1} s"),
    );
    report.add(
        format!("{label}: peak RSS of the process during the MERGE"),
        peak,
        "MiB",
        "VmHWM after a reset",
    );
    report.add(
        format!("{label}: files rewritten"),
        rewritten as f64,
        "files",
        format!("of {files_before}"),
    );
    Ok(())
}

const LINEITEM_COLUMNS: [&str; 16] = [
    "l_orderkey",
    "l_partkey",
    "l_suppkey",
    "l_linenumber",
    "l_quantity",
    "l_extendedprice",
    "l_discount",
    "l_tax",
    "l_returnflag",
    "l_linestatus",
    "l_shipdate",
    "l_commitdate",
    "l_receiptdate",
    "l_shipinstruct",
    "l_shipmode",
    "l_comment",
];

/// A MERGE source as the peer benchmarks build it (`../shared/peers/bench_delta.py`): the
/// rows matching `updated` with a new price and comment, plus 0.1% of rows under new keys.
fn merge_source_sql(name: &str, updated: &str) -> String {
    let changed = LINEITEM_COLUMNS.map(|c| match c {
        "l_extendedprice" => "CAST(l_extendedprice + 1 AS DECIMAL(15, 2)) AS l_extendedprice",
        "l_comment" => "'merged' AS l_comment",
        other => other,
    });
    let inserted = LINEITEM_COLUMNS.map(|c| match c {
        "l_orderkey" => "l_orderkey + 100000000 AS l_orderkey",
        "l_comment" => "'inserted' AS l_comment",
        other => other,
    });
    format!(
        "CREATE TABLE {name} AS \
         SELECT {} FROM lineitem WHERE {updated} \
         UNION ALL SELECT {} FROM lineitem WHERE l_orderkey % 1000 = 3",
        changed.join(", "),
        inserted.join(", ")
    )
}

fn merge_sql(source: &str) -> String {
    format!(
        "MERGE INTO target t USING {source} s \
         ON t.l_orderkey = s.l_orderkey AND t.l_linenumber = s.l_linenumber \
         WHEN MATCHED THEN UPDATE SET l_extendedprice = s.l_extendedprice, l_comment = s.l_comment \
         WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        LINEITEM_COLUMNS.join(", "),
        LINEITEM_COLUMNS.map(|c| format!("s.{c}")).join(", ")
    )
}

/// `WITH (...)` setting every row-level statement of a table to `mode`.
fn mode_properties(mode: &str) -> String {
    format!(
        "WITH ('write.delete-mode' = '{mode}', 'write.update-mode' = '{mode}', \
         'write.merge-mode' = '{mode}')"
    )
}

const MODES: [&str; 2] = ["merge-on-read", "copy-on-write"];

/// DELETE of 0.1%, UPDATE of 1% and MERGE upserts of about 1% on lineitem, each statement
/// on a fresh copy of the table, in both row-level modes: time, files rewritten and peak
/// memory. Then Q1 and Q6 on lineitem with 10% of its rows deleted by deletion vectors,
/// against the same rows compacted into files of their own.
pub async fn lineitem(report: &mut Report, data: &Tpch, runs: usize) -> Result<(), String> {
    let ctx = &data.tarn;
    let max_key = run_batches(ctx, "SELECT max(l_orderkey) FROM lineitem").await?;
    let max_key = max_key
        .first()
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<Int64Type>()
                .map(|c| c.value(0))
        })
        .ok_or("lineitem is empty")?;
    run(
        ctx,
        &merge_source_sql("merge_spread", "l_orderkey % 100 = 7"),
    )
    .await?;
    run(
        ctx,
        &merge_source_sql(
            "merge_clustered",
            &format!("l_orderkey <= {}", max_key / 100),
        ),
    )
    .await?;
    let statements = [
        (
            "DELETE 0.1% (l_orderkey % 1000 = 7)",
            "DELETE FROM target WHERE l_orderkey % 1000 = 7".to_string(),
        ),
        (
            "UPDATE 1% (l_orderkey % 100 = 7)",
            "UPDATE target SET l_comment = 'updated', l_tax = l_tax + 0.01 \
             WHERE l_orderkey % 100 = 7"
                .to_string(),
        ),
        (
            "MERGE upsert, spread (1% updated, 0.1% inserted)",
            merge_sql("merge_spread"),
        ),
        (
            "MERGE upsert, clustered (first 1% of keys updated, 0.1% inserted)",
            merge_sql("merge_clustered"),
        ),
    ];
    for (label, sql) in statements {
        let mut medians = Vec::new();
        for mode in MODES {
            let copy = format!(
                "CREATE TABLE target {} AS SELECT * FROM lineitem",
                mode_properties(mode)
            );
            let label = format!("{label}, {mode}");
            let (time, _) = on_fresh_copies(report, ctx, &label, &copy, &sql, runs).await?;
            medians.push(time);
        }
        report.add(
            format!("{label}: copy-on-write / merge-on-read"),
            medians[1] / medians[0],
            "ratio",
            "times above",
        );
    }
    partition_deletes(report, ctx, runs).await?;
    run(ctx, "DROP TABLE IF EXISTS target").await?;
    scans_after_deletes(report, data, runs).await
}

/// Runs `sql` on `runs` fresh copies of `target`, each made by `copy`, and reports the
/// median time, the peak memory and what the last run's snapshot changed. Returns the
/// median and the rows the last run affected.
async fn on_fresh_copies(
    report: &mut Report,
    ctx: &TarnContext,
    label: &str,
    copy: &str,
    sql: &str,
    runs: usize,
) -> Result<(f64, u64), String> {
    let (mut times, mut peaks) = (Vec::new(), Vec::new());
    let mut summary = (0, 0, 0, 0);
    let mut affected = 0;
    for _ in 0..runs {
        run(ctx, "DROP TABLE IF EXISTS target").await?;
        run(ctx, copy).await?;
        reset_peak_rss();
        let start = Instant::now();
        affected = run(ctx, sql).await?;
        times.push(start.elapsed().as_secs_f64());
        peaks.push(peak_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0));
        let batches = run_batches(
            ctx,
            "SELECT removed_files, added_files, total_files, removed_rows \
             FROM \"target$snapshots\" ORDER BY version DESC LIMIT 1",
        )
        .await?;
        let b = batches.first().ok_or("no snapshot")?;
        let value = |i: usize| b.column(i).as_primitive::<UInt64Type>().value(0);
        summary = (value(0), value(1), value(2), value(3));
    }
    let time = median(&mut times);
    report.add(
        format!("{label}: time"),
        time,
        "s",
        format!(
            "median of {runs}; files removed {}, rows removed {}, files added {}, \
             table now {} files",
            summary.0, summary.3, summary.1, summary.2
        ),
    );
    report.add(
        format!("{label}: peak RSS of the process"),
        median(&mut peaks),
        "MiB",
        "VmHWM after a reset, includes the data already loaded",
    );
    Ok((time, affected))
}

/// A retention DELETE, the first year of lineitem from a copy partitioned by month, in both
/// modes: the files it drops are decided from their manifest entries, against the same rows
/// picked by a condition that must be read row by row (a function of a column, true for
/// every row), as every DELETE was before.
async fn partition_deletes(
    report: &mut Report,
    ctx: &TarnContext,
    runs: usize,
) -> Result<(), String> {
    let retention = "DELETE FROM target WHERE l_shipdate < DATE '1993-01-01'";
    for mode in MODES {
        let copy = format!(
            "CREATE TABLE target PARTITIONED BY (month(l_shipdate)) {} AS SELECT * FROM lineitem",
            mode_properties(mode)
        );
        let label = "DELETE the first year, PARTITIONED BY (month(l_shipdate))";
        let (whole, deleted) = on_fresh_copies(
            report,
            ctx,
            &format!("{label}, {mode}"),
            &copy,
            retention,
            runs,
        )
        .await?;
        let (row_by_row, deleted_row_by_row) = on_fresh_copies(
            report,
            ctx,
            &format!("{label}, read row by row, {mode}"),
            &copy,
            &format!("{retention} AND length(l_comment) >= 0"),
            runs,
        )
        .await?;
        if deleted != deleted_row_by_row {
            return Err(format!(
                "{label}, {mode}: {deleted} rows deleted from manifests, \
                 {deleted_row_by_row} row by row"
            ));
        }
        report.add(
            format!("{label}, {mode}: read row by row / decided from manifests"),
            row_by_row / whole,
            "ratio",
            "times above",
        );
    }
    Ok(())
}

/// Q1 and Q6 on lineitem after a DELETE of 10% of its rows: on a table where the DELETE
/// wrote deletion vectors, against one where it rewrote the files (a compacted table).
async fn scans_after_deletes(report: &mut Report, data: &Tpch, runs: usize) -> Result<(), String> {
    let ctx = &data.tarn;
    for (name, mode) in [("deleted", "merge-on-read"), ("compacted", "copy-on-write")] {
        run(ctx, &format!("DROP TABLE IF EXISTS {name}")).await?;
        run(
            ctx,
            &format!(
                "CREATE TABLE {name} {} AS SELECT * FROM lineitem",
                mode_properties(mode)
            ),
        )
        .await?;
        run(
            ctx,
            &format!("DELETE FROM {name} WHERE l_orderkey % 10 = 3"),
        )
        .await?;
    }
    let tarn = Side::Tarn(ctx);
    for (query, sql) in [("Q1", QUERIES[0]), ("Q6", QUERIES[5])] {
        let deleted = sql.replace("FROM lineitem", "FROM deleted");
        let compacted = sql.replace("FROM lineitem", "FROM compacted");
        let (a, b) = (
            tarn.execute(&deleted).await?,
            tarn.execute(&compacted).await?,
        );
        if a.batches != b.batches {
            return Err(format!("{query} differs between the two tables"));
        }
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(3) {
            ta.push(tarn.execute(&deleted).await?.elapsed.as_secs_f64());
            tb.push(tarn.execute(&compacted).await?.elapsed.as_secs_f64());
        }
        let (a, b) = (median(&mut ta), median(&mut tb));
        report.add(
            format!("{query} with 10% of lineitem deleted: vectors / compacted"),
            a / b,
            "ratio",
            format!("{:.1} ms against {:.1} ms", a * 1e3, b * 1e3),
        );
    }
    for name in ["deleted", "compacted"] {
        run(ctx, &format!("DROP TABLE {name}")).await?;
    }
    Ok(())
}

/// Upserts of a few keys into a table of `files` small files (a streamed table before
/// compaction), merge-on-read: a MERGE whose source is a VALUES list or a batch registered as
/// an in-memory table, whose keys prune the target's files through its manifests while
/// planning, against the same MERGE from a tarn table of the same rows, which prunes them
/// only as the scan meets each file (the join's dynamic filter), and against an UPDATE of the
/// same keys by `WHERE id IN (...)`.
pub async fn upserts(report: &mut Report, files: u64, runs: usize) -> Result<(), String> {
    const ROWS: u64 = 100;
    const KEYS: u64 = 10;
    let (_dir, warehouse) = crate::suites::local_warehouse().await?;
    let ctx = TarnContext::new(warehouse, SessionConfig::new())
        .await
        .map_err(|e| e.to_string())?;
    run(
        &ctx,
        &format!(
            "CREATE TABLE bench.target (id BIGINT NOT NULL, v BIGINT) {}",
            mode_properties("merge-on-read")
        ),
    )
    .await?;
    let load = Instant::now();
    for file in 0..files {
        let first = file * ROWS;
        run(
            &ctx,
            &format!(
                "INSERT INTO bench.target SELECT value, 0 FROM generate_series({first}, {})",
                first + ROWS - 1
            ),
        )
        .await?;
    }
    let load_s = load.elapsed().as_secs_f64();
    // Keys spread over the table: each in a file of its own.
    let keys: Vec<u64> = (0..KEYS).map(|k| k * files / KEYS * ROWS + 7).collect();
    let values = |v: usize| {
        keys.iter()
            .map(|k| format!("({k}, {v})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let listed = keys
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let merge = |source: &str| {
        format!(
            "MERGE INTO bench.target t USING {source} ON t.id = s.id \
             WHEN MATCHED THEN UPDATE SET v = s.v \
             WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)"
        )
    };
    // A batch registered by the program, as a pipeline hands each micro-batch to SQL.
    let scratch = Arc::new(MemorySchemaProvider::new());
    let catalog = MemoryCatalogProvider::new();
    catalog
        .register_schema("public", scratch.clone())
        .map_err(|e| e.to_string())?;
    ctx.session_context()
        .register_catalog("pipeline", Arc::new(catalog));
    let (mut literal, mut table, mut memory, mut floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run_no in 1..=runs {
        run(&ctx, "DROP TABLE IF EXISTS bench.source").await?;
        run(
            &ctx,
            &format!(
                "CREATE TABLE bench.source AS SELECT * FROM (VALUES {}) AS s(id, v)",
                values(2 * run_no)
            ),
        )
        .await?;
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("v", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values(keys.iter().map(|&k| k as i64))),
                Arc::new(Int64Array::from(vec![(4 * run_no) as i64; keys.len()])),
            ],
        )
        .map_err(|e| e.to_string())?;
        let batches =
            MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| e.to_string())?;
        scratch
            .deregister_table("updates")
            .and_then(|_| scratch.register_table("updates".into(), Arc::new(batches)))
            .map_err(|e| e.to_string())?;
        let statements = [
            (
                &mut literal,
                merge(&format!("(VALUES {}) AS s(id, v)", values(2 * run_no + 1))),
            ),
            (&mut table, merge("bench.source s")),
            (&mut memory, merge("pipeline.public.updates s")),
            (
                &mut floor,
                format!("UPDATE bench.target SET v = v + 1 WHERE id IN ({listed})"),
            ),
        ];
        for (times, sql) in statements {
            let start = Instant::now();
            let affected = run(&ctx, &sql).await?;
            times.push(start.elapsed().as_secs_f64());
            if affected != KEYS {
                return Err(format!("{sql}: {affected} rows, expected {KEYS}"));
            }
        }
    }
    let (literal, table, memory, floor) = (
        median(&mut literal),
        median(&mut table),
        median(&mut memory),
        median(&mut floor),
    );
    let label = format!("upsert of {KEYS} keys into {files} files of {ROWS} rows");
    let note = format!("median of {runs}; table loaded by {files} INSERTs in {load_s:.1} s");
    report.add(
        format!("{label}: MERGE from VALUES"),
        literal,
        "s",
        note.clone(),
    );
    report.add(
        format!("{label}: MERGE from a table"),
        table,
        "s",
        note.clone(),
    );
    report.add(
        format!("{label}: MERGE from an in-memory table"),
        memory,
        "s",
        note.clone(),
    );
    report.add(
        format!("{label}: UPDATE WHERE id IN (...)"),
        floor,
        "s",
        note,
    );
    report.add(
        format!("{label}: MERGE from a table / from VALUES"),
        table / literal,
        "ratio",
        "times above",
    );
    report.add(
        format!("{label}: MERGE from VALUES / UPDATE WHERE id IN"),
        literal / floor,
        "ratio",
        "times above",
    );
    Ok(())
}
