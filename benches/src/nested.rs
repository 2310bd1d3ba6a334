//! The `nested` suite: a feature table with an embedding column (`REAL[128]`), written
//! through tarn and scanned through tarn and through DataFusion's ListingTable over the same
//! files (the engine's floor: the same Parquet, no table format in between).

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tarn_datafusion::TarnContext;

use crate::report::Report;
use crate::tpch::{Side, median, run};

const DIMENSIONS: i32 = 128;
const BATCH_ROWS: usize = 65_536;

/// Rows `start..start + len`: an id and a deterministic embedding whose values hash the
/// row and position, so that they compress about as badly as real embeddings do.
fn batch(start: usize, len: usize) -> Result<RecordBatch, String> {
    let ids = Int64Array::from_iter_values((start..start + len).map(|i| i as i64));
    let values = Float32Array::from_iter_values((start..start + len).flat_map(|i| {
        (0..DIMENSIONS as usize).map(move |j| {
            let h = (i as u64 * 128 + j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (h >> 40) as f32 / (1u64 << 24) as f32
        })
    }));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let embeddings = FixedSizeListArray::try_new(item.clone(), DIMENSIONS, Arc::new(values), None)
        .map_err(|e| e.to_string())?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("emb", DataType::FixedSizeList(item, DIMENSIONS), true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(ids) as ArrayRef, Arc::new(embeddings) as ArrayRef],
    )
    .map_err(|e| e.to_string())
}

pub async fn nested(report: &mut Report, rows: usize, runs: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tarn = TarnContext::open(dir.path().to_str().ok_or("a non-UTF-8 temp dir")?)
        .await
        .map_err(|e| e.to_string())?;
    run(&tarn, "CREATE TABLE features (id BIGINT, emb REAL[128])").await?;
    let table = tarn
        .warehouse()
        .load_table("default", "features")
        .await
        .map_err(|e| e.to_string())?;
    let batches = (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| batch(start, BATCH_ROWS.min(rows - start)))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let table = table
        .append_batches(batches)
        .await
        .map_err(|e| e.to_string())?;
    let written = started.elapsed().as_secs_f64();
    let files = table
        .plan_files(&tarn_core::Predicate::True)
        .await
        .map_err(|e| e.to_string())?;
    let bytes: u64 = files.data_files().iter().map(|f| f.file_size).sum();
    report.add(
        format!("write {rows} rows with a REAL[{DIMENSIONS}] column (one append)"),
        rows as f64 / written,
        "rows/s",
        format!(
            "{written:.2} s, {} files, {:.0} MB",
            files.data_files().len(),
            bytes as f64 / 1e6
        ),
    );

    let listing = SessionContext::new();
    let data = dir.path().join("default/features/data");
    listing
        .register_parquet(
            "features",
            data.to_str().ok_or("a non-UTF-8 data dir")?,
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let (tarn_side, listing_side) = (Side::Tarn(&tarn), Side::Listing(&listing));
    for (what, sql) in [
        (
            "every embedding",
            "SELECT max(emb[1] + emb[128]), count(emb) FROM features",
        ),
        (
            "one element of each",
            "SELECT max(emb[64]) FROM features WHERE id % 2 = 0",
        ),
        ("ids only", "SELECT sum(id) FROM features"),
    ] {
        let shown = |batches: &[RecordBatch]| {
            datafusion::arrow::util::pretty::pretty_format_batches(batches)
                .map(|t| t.to_string())
                .map_err(|e| e.to_string())
        };
        let expected = shown(&listing_side.execute(sql).await?.batches)?;
        let got = shown(&tarn_side.execute(sql).await?.batches)?;
        if got != expected {
            return Err(format!("{sql}: tarn and ListingTable disagree"));
        }
        let (mut tarn_s, mut listing_s) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            listing_s.push(listing_side.execute(sql).await?.elapsed.as_secs_f64());
            tarn_s.push(tarn_side.execute(sql).await?.elapsed.as_secs_f64());
        }
        let (t, l) = (median(&mut tarn_s), median(&mut listing_s));
        report.add(
            format!("scan of {what} ({rows} rows, REAL[{DIMENSIONS}]) / ListingTable: time"),
            t / l,
            "ratio",
            format!("{:.1} ms against {:.1} ms: `{sql}`", t * 1e3, l * 1e3),
        );
    }
    Ok(())
}
