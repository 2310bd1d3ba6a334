//! Row-level DML under a memory limit.

use std::time::Instant;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use tarn_core::Warehouse;
use tarn_datafusion::TarnContext;

use crate::report::Report;

/// Peak resident memory of this process since the last reset, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident memory counter (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

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
/// with DataFusion's memory pool limited to `limit_bytes`.
pub async fn merge_under_memory_limit(
    report: &mut Report,
    target_rows: u64,
    source_rows: u64,
    limit_bytes: usize,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let warehouse =
        Warehouse::open(dir.path().to_str().ok_or("non-UTF-8 path")?).map_err(|e| e.to_string())?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limit_bytes, 1.0)
        .build_arc()
        .map_err(|e| e.to_string())?;
    let ctx = TarnContext::new_with_runtime(warehouse, SessionConfig::new(), runtime)
        .await
        .map_err(|e| e.to_string())?;
    run(&ctx, "CREATE TABLE target (id BIGINT NOT NULL, v BIGINT, pad VARCHAR) WITH ('write.target-file-size-bytes' = '33554432')").await?;
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
        "MERGE {source_rows} into {target_rows} rows, memory pool {} MiB",
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
