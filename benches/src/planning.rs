//! `planning`: how long planning takes on tables of many files.
//!
//! The tables are metadata only: data files are described (path, size, partition, column
//! bounds) and committed without being written, since planning never opens them. Files
//! arrive in commits of 1,000, each covering its own range of the partition key, as data
//! arriving over time would.

use std::collections::BTreeMap;
use std::time::Instant;

use tarn_core::{ColumnStats, DataFile, TableDefinition, Warehouse};
use tarn_spec::{Field, FieldId, PartitionField, PrimitiveType, Transform, Value};

use crate::report::Report;
use crate::tpch::{files_scanned, median, tarn_context};

const FILES_PER_COMMIT: usize = 1_000;

fn definition() -> TableDefinition {
    TableDefinition {
        fields: vec![
            Field::required(1, "id", PrimitiveType::Long),
            Field::optional(2, "v", PrimitiveType::Long),
        ],
        partition_fields: vec![PartitionField {
            source_id: FieldId(1),
            field_id: FieldId(1000),
            name: "id".into(),
            transform: Transform::Identity,
        }],
        properties: BTreeMap::new(),
    }
}

fn described_file(spec_id: tarn_spec::SpecId, id: i64) -> DataFile {
    let bounds = |min: i64, max: i64| ColumnStats {
        min: Some(Value::Long(min)),
        max: Some(Value::Long(max)),
        null_count: Some(0),
    };
    DataFile {
        path: format!("data/id={id}/part-{id:08}.parquet"),
        file_size: 4096,
        record_count: 100,
        spec_id,
        partition: vec![Some(Value::Long(id))],
        column_stats: BTreeMap::from([(FieldId(1), bounds(id, id)), (FieldId(2), bounds(0, 99))]),
        row_group_rows: Vec::new(),
        deletion_vector: None,
    }
}

/// Plans a point query on the partition key and a full scan on tables of each size.
pub async fn planning(report: &mut Report, sizes: &[usize], runs: usize) -> Result<(), String> {
    for &files in sizes {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let warehouse = Warehouse::open(dir.path().to_str().ok_or("non-UTF-8 path")?)
            .map_err(|e| e.to_string())?;
        warehouse
            .create_namespace("default")
            .await
            .map_err(|e| e.to_string())?;
        let mut table = warehouse
            .create_table("default", "many", definition())
            .await
            .map_err(|e| e.to_string())?;
        let spec_id = table.metadata().default_spec().id();
        let build = Instant::now();
        for first in (0..files).step_by(FILES_PER_COMMIT) {
            let last = (first + FILES_PER_COMMIT).min(files);
            let batch = (first..last)
                .map(|id| described_file(spec_id, id as i64))
                .collect();
            table = table.append(batch).await.map_err(|e| e.to_string())?;
        }
        let build_s = build.elapsed().as_secs_f64();
        let target = files as i64 * 3 / 4;
        let point = format!("SELECT * FROM many WHERE id = {target}");
        for (label, sql, expect) in [
            ("point query on the partition key", point.as_str(), 1),
            ("full scan", "SELECT * FROM many", files),
        ] {
            let (mut cold, mut warm) = (Vec::new(), Vec::new());
            for _ in 0..runs.max(1) {
                // Cold: a new context loads the table's metadata from storage.
                let ctx = tarn_context(dir.path()).await?;
                for samples in [&mut cold, &mut warm] {
                    let start = Instant::now();
                    let plan = ctx
                        .sql(sql)
                        .await
                        .map_err(|e| e.to_string())?
                        .create_physical_plan()
                        .await
                        .map_err(|e| e.to_string())?;
                    samples.push(start.elapsed().as_secs_f64() * 1e3);
                    let planned = files_scanned(&plan);
                    if planned != expect {
                        return Err(format!("{sql} planned {planned} files, not {expect}"));
                    }
                }
            }
            report.add(
                format!("{files} files, {label}: planning, new session"),
                median(&mut cold),
                "ms",
                format!("loads metadata from local disk; {expect} files planned"),
            );
            report.add(
                format!("{files} files, {label}: planning, warm session"),
                median(&mut warm),
                "ms",
                format!("metadata cached; table built in {build_s:.1} s"),
            );
        }
    }
    Ok(())
}
