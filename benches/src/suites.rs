//! The benchmark suites.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use futures::TryStreamExt;
use tarn_core::{Table, TableDefinition, Warehouse};
use tarn_spec::{Field, FieldId, PartitionField, PrimitiveType, Transform};

use crate::report::{Report, median_ms, percentile_ms};

pub(crate) fn ids(range: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(ArrowSchema::new(vec![ArrowField::new(
        "id",
        DataType::Int64,
        false,
    )]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))])
        .expect("valid batch")
}

pub(crate) fn definition(partitioned: bool) -> TableDefinition {
    TableDefinition {
        fields: vec![Field::required(1, "id", PrimitiveType::Long)],
        partition_fields: if partitioned {
            vec![PartitionField {
                source_id: FieldId(1),
                field_id: FieldId(1000),
                name: "id".into(),
                transform: Transform::Identity,
            }]
        } else {
            vec![]
        },
        properties: BTreeMap::new(),
    }
}

pub(crate) async fn local_warehouse() -> Result<(tempfile::TempDir, Warehouse), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let w = Warehouse::open(dir.path().to_str().ok_or("non-UTF-8 temp path")?)
        .map_err(|e| e.to_string())?;
    w.create_namespace("bench")
        .await
        .map_err(|e| e.to_string())?;
    Ok((dir, w))
}

async fn object_names(table: &Table) -> Result<HashSet<String>, String> {
    let store = table.location().store();
    let objects: Vec<_> = store
        .list(Some(table.location().root()))
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(objects
        .into_iter()
        .map(|o| o.location.to_string())
        .collect())
}

/// Appends one file to a table of `files` files, `runs` times (each on top of the last).
pub async fn append_large(report: &mut Report, files: i64, runs: usize) -> Result<(), String> {
    let (_dir, w) = local_warehouse().await?;
    let t = w
        .create_table("bench", "large", definition(true))
        .await
        .map_err(|e| e.to_string())?;
    // One batch with a distinct partition value per row: one data file per row.
    let mut t = t
        .append_batches([ids(0..files)])
        .await
        .map_err(|e| e.to_string())?;
    let mut latencies = Vec::new();
    let mut metadata_objects = Vec::new();
    for run in 0..runs as i64 {
        let before = object_names(&t).await?;
        let start = Instant::now();
        t = t
            .append_batches([ids(files + run..files + run + 1)])
            .await
            .map_err(|e| e.to_string())?;
        latencies.push(start.elapsed());
        let after = object_names(&t).await?;
        let new: Vec<&String> = after.difference(&before).collect();
        metadata_objects.push(new.iter().filter(|p| p.contains("/metadata/")).count());
    }
    let total = t.snapshot().summary.total_files;
    report.add(
        format!("append 1 file to a {files}-file table: new metadata objects"),
        *metadata_objects.iter().max().unwrap_or(&0) as f64,
        "objects",
        "manifest + manifest list + version file (the hint is overwritten, not new)",
    );
    report.add(
        format!("append 1 file to a {files}-file table: commit latency (write + commit), median"),
        median_ms(&mut latencies),
        "ms",
        format!("{runs} runs, local disk, table ends with {total} files"),
    );
    Ok(())
}

/// `commits` sequential appends of `rows` rows, then `writers` concurrent writers sharing
/// the same number of commits.
pub async fn commit(
    report: &mut Report,
    commits: usize,
    rows: i64,
    writers: usize,
    runs: usize,
) -> Result<(), String> {
    let mut rates = Vec::new();
    let mut all_latencies: Vec<Duration> = Vec::new();
    for run in 0..runs {
        let (_dir, w) = local_warehouse().await?;
        let mut t = w
            .create_table("bench", "commits", definition(false))
            .await
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        for i in 0..commits as i64 {
            let s = Instant::now();
            t = t
                .append_batches([ids(i * rows..(i + 1) * rows)])
                .await
                .map_err(|e| e.to_string())?;
            if run == runs - 1 {
                all_latencies.push(s.elapsed());
            }
        }
        rates.push(Duration::from_secs_f64(
            commits as f64 / start.elapsed().as_secs_f64(),
        ));
    }
    let mut rates_s: Vec<f64> = rates.iter().map(|d| d.as_secs_f64()).collect();
    rates_s.sort_by(f64::total_cmp);
    report.add(
        format!("{commits} sequential appends of {rows} rows: throughput (median of {runs})"),
        rates_s[rates_s.len() / 2],
        "commits/s",
        "local disk",
    );
    report.add(
        "sequential append latency p50",
        median_ms(&mut all_latencies),
        "ms",
        "last run",
    );
    report.add(
        "sequential append latency p99",
        percentile_ms(&mut all_latencies, 0.99),
        "ms",
        "last run",
    );

    let (_dir, w) = local_warehouse().await?;
    w.create_table("bench", "concurrent", definition(false))
        .await
        .map_err(|e| e.to_string())?;
    let per_writer = commits / writers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = w
                .load_table("bench", "concurrent")
                .await
                .map_err(|e| e.to_string())?;
            for i in 0..per_writer {
                let first = ((writer * per_writer + i) as i64) * rows;
                t = t
                    .append_batches([ids(first..first + rows)])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let t = w
        .load_table("bench", "concurrent")
        .await
        .map_err(|e| e.to_string())?;
    let expected = (writers * per_writer) as u64;
    if t.version().get() != expected || t.snapshot().summary.total_rows != expected * rows as u64 {
        return Err(format!(
            "lost commits: expected {expected} commits and {} rows, found version {} with {} rows",
            expected * rows as u64,
            t.version(),
            t.snapshot().summary.total_rows
        ));
    }
    report.add(
        format!("{writers} concurrent writers, {expected} appends in all: throughput"),
        expected as f64 / elapsed,
        "commits/s",
        "no commit lost (checked)",
    );
    Ok(())
}
