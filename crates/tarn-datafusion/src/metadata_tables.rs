//! Metadata tables: a table's snapshot log, data files, manifests, partitions, schemas,
//! properties and a one-row summary, queryable with SQL as `"<table>$snapshots"`,
//! `"<table>$files"`, `"<table>$manifests"`, `"<table>$partitions"`, `"<table>$schemas"`,
//! `"<table>$properties"` and `"<table>$detail"`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use tarn_core::{Predicate, Table};

use crate::convert::{sql_column_type, sql_literal};
use crate::error::to_df;

/// Which metadata table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataTable {
    Snapshots,
    Files,
    Manifests,
    Partitions,
    Schemas,
    /// The columns of the version's schema, in SQL's words.
    Columns,
    Properties,
    /// One row: where the table is, its version, partitioning, and how much data it holds.
    Detail,
}

impl MetadataTable {
    /// Each kind by the suffix that names it.
    pub const SUFFIXES: [(&'static str, MetadataTable); 8] = [
        ("snapshots", MetadataTable::Snapshots),
        ("files", MetadataTable::Files),
        ("manifests", MetadataTable::Manifests),
        ("partitions", MetadataTable::Partitions),
        ("schemas", MetadataTable::Schemas),
        ("columns", MetadataTable::Columns),
        ("properties", MetadataTable::Properties),
        ("detail", MetadataTable::Detail),
    ];

    /// Splits `events$files` into `("events", Files)`.
    pub fn parse_name(name: &str) -> Option<(&str, MetadataTable)> {
        let (base, suffix) = name.rsplit_once('$')?;
        let (_, kind) = Self::SUFFIXES.iter().find(|(s, _)| *s == suffix)?;
        Some((base, *kind))
    }
}

/// The metadata table of `kind` for `table` at its version.
pub async fn provider(table: &Table, kind: MetadataTable) -> Result<Arc<dyn TableProvider>> {
    let batch = match kind {
        MetadataTable::Snapshots => snapshots(table).await?,
        MetadataTable::Files => files(table).await?,
        MetadataTable::Manifests => manifests(table).await?,
        MetadataTable::Partitions => partitions(table).await?,
        MetadataTable::Schemas => schemas(table)?,
        MetadataTable::Columns => columns(table)?,
        MetadataTable::Properties => unzip(vec![
            strings("key", table.metadata().properties().keys().cloned()),
            strings("value", table.metadata().properties().values().cloned()),
        ])?,
        MetadataTable::Detail => detail(table).await?,
    };
    Ok(Arc::new(MetadataProvider { batch }))
}

/// A metadata table: rows computed when the statement resolved it; read-only.
#[derive(Debug)]
pub(crate) struct MetadataProvider {
    batch: RecordBatch,
}

#[async_trait]
impl TableProvider for MetadataProvider {
    fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![self.batch.clone()]],
            self.batch.schema(),
            projection.cloned(),
        )?)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(read_only())
    }

    async fn delete_from(
        &self,
        _state: &dyn Session,
        _filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(read_only())
    }

    async fn update(
        &self,
        _state: &dyn Session,
        _assignments: Vec<(String, Expr)>,
        _filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(read_only())
    }

    async fn truncate(&self, _state: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        Err(read_only())
    }
}

fn read_only() -> DataFusionError {
    DataFusionError::Plan(
        "metadata tables are read-only: they show a table's state; change the table itself".into(),
    )
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn u64s(name: &str, values: impl IntoIterator<Item = u64>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::UInt64, false),
        Arc::new(UInt64Array::from_iter_values(values)),
    )
}

fn strings(name: &str, values: impl IntoIterator<Item = String>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Utf8, false),
        Arc::new(StringArray::from_iter_values(values)),
    )
}

/// A column of UTC times, from milliseconds since the epoch.
fn timestamps(name: &str, values: impl IntoIterator<Item = i64>) -> (Field, ArrayRef) {
    (
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Arc::new(TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC")),
    )
}

fn unzip(columns: Vec<(Field, ArrayRef)>) -> Result<RecordBatch> {
    let (fields, arrays) = columns.into_iter().unzip();
    batch(fields, arrays)
}

async fn snapshots(table: &Table) -> Result<RecordBatch> {
    let log = table.history().await.map_err(to_df)?;
    unzip(vec![
        u64s("version", log.iter().map(|s| s.version.get())),
        timestamps("committed_at", log.iter().map(|s| s.timestamp_ms)),
        strings(
            "operation",
            log.iter().map(|s| s.operation.as_str().to_string()),
        ),
        u64s("added_files", log.iter().map(|s| s.summary.added_files)),
        u64s("removed_files", log.iter().map(|s| s.summary.removed_files)),
        u64s("added_rows", log.iter().map(|s| s.summary.added_rows)),
        u64s("removed_rows", log.iter().map(|s| s.summary.removed_rows)),
        u64s("total_files", log.iter().map(|s| s.summary.total_files)),
        u64s("total_rows", log.iter().map(|s| s.summary.total_rows)),
        (
            Field::new("schema_id", DataType::Int32, false),
            Arc::new(Int32Array::from_iter_values(
                log.iter().map(|s| s.schema_id.get()),
            )),
        ),
        strings(
            "summary",
            log.iter().map(|s| {
                s.summary
                    .extra
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ),
    ])
}

/// Delta's `DESCRIBE DETAIL`: one row saying what the table is (format, location, id), where
/// its history stands (version, last commit), how it is laid out (partitioning, sort order)
/// and how much it holds (data files, rows, bytes).
async fn detail(table: &Table) -> Result<RecordBatch> {
    let metadata = table.metadata();
    let files = table
        .plan_files(&Predicate::True)
        .await
        .map_err(to_df)?
        .data_files();
    let deleted: u64 = (files.iter())
        .map(|f| f.deletion_vector.as_ref().map_or(0, |dv| dv.cardinality))
        .sum();
    let records: u64 = files.iter().map(|f| f.record_count).sum();
    let optional = |name: &str, value: Option<String>| -> (Field, ArrayRef) {
        (
            Field::new(name, DataType::Utf8, true),
            Arc::new(StringArray::from(vec![value])),
        )
    };
    let sorted_by = tarn_core::properties::sort_order(metadata.properties()).map_err(to_df)?;
    unzip(vec![
        strings("format", ["tarn".to_string()]),
        u64s("format_version", [u64::from(metadata.format_version())]),
        strings("table_uuid", [metadata.table_uuid().to_string()]),
        strings("location", [table.location().url().to_string()]),
        u64s("version", [table.version().get()]),
        timestamps("last_modified", [table.snapshot().timestamp_ms]),
        strings(
            "partitioning",
            [crate::ddl::partition_items(metadata).join(", ")],
        ),
        strings("sorted_by", [sorted_by.join(", ")]),
        optional("comment", metadata.properties().get("comment").cloned()),
        u64s("num_files", [files.len() as u64]),
        u64s("num_rows", [records - deleted]),
        u64s("deleted_rows", [deleted]),
        u64s("size_in_bytes", [files.iter().map(|f| f.file_size).sum()]),
    ])
}

/// Every column of every schema the table has had, with its field id.
fn columns(table: &Table) -> Result<RecordBatch> {
    let fields = table.schema().fields();
    unzip(vec![
        strings("column", fields.iter().map(|f| f.name.clone())),
        strings(
            "type",
            fields.iter().map(|f| sql_column_type(&f.field_type)),
        ),
        (
            Field::new("nullable", DataType::Boolean, false),
            Arc::new(BooleanArray::from_iter(
                fields.iter().map(|f| Some(!f.required)),
            )),
        ),
        (
            Field::new("default", DataType::Utf8, true),
            Arc::new(StringArray::from_iter(fields.iter().map(|f| {
                Some(sql_literal(f.primitive()?, f.write_default.as_ref()?))
            }))),
        ),
        (
            Field::new("field_id", DataType::Int32, false),
            Arc::new(Int32Array::from_iter_values(
                fields.iter().map(|f| f.id.get()),
            )),
        ),
        (
            Field::new("comment", DataType::Utf8, true),
            Arc::new(StringArray::from_iter(fields.iter().map(|f| f.doc.clone()))),
        ),
    ])
}

fn schemas(table: &Table) -> Result<RecordBatch> {
    let metadata = table.metadata();
    let current = metadata.current_schema().id();
    let rows: Vec<(&tarn_spec::Schema, &tarn_spec::Field)> = metadata
        .schemas()
        .iter()
        .flat_map(|s| s.fields().iter().map(move |f| (s, f)))
        .collect();
    let int32s = |name: &str, values: Vec<i32>| -> (Field, ArrayRef) {
        (
            Field::new(name, DataType::Int32, false),
            Arc::new(Int32Array::from(values)),
        )
    };
    unzip(vec![
        int32s(
            "schema_id",
            rows.iter().map(|(s, _)| s.id().get()).collect(),
        ),
        (
            Field::new("current", DataType::Boolean, false),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(s, _)| Some(s.id() == current)),
            )),
        ),
        int32s("field_id", rows.iter().map(|(_, f)| f.id.get()).collect()),
        strings("name", rows.iter().map(|(_, f)| f.name.clone())),
        strings("type", rows.iter().map(|(_, f)| f.field_type.to_string())),
        (
            Field::new("required", DataType::Boolean, false),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(_, f)| Some(f.required)),
            )),
        ),
        (
            Field::new("initial_default", DataType::Utf8, true),
            Arc::new(StringArray::from_iter(rows.iter().map(|(_, f)| {
                Some(
                    f.initial_default
                        .as_ref()?
                        .to_json(f.primitive()?)
                        .to_string(),
                )
            }))),
        ),
        (
            Field::new("write_default", DataType::Utf8, true),
            Arc::new(StringArray::from_iter(rows.iter().map(|(_, f)| {
                Some(
                    f.write_default
                        .as_ref()?
                        .to_json(f.primitive()?)
                        .to_string(),
                )
            }))),
        ),
    ])
}

async fn files(table: &Table) -> Result<RecordBatch> {
    let files = table
        .plan_files(&Predicate::True)
        .await
        .map_err(to_df)?
        .data_files();
    let tuples: Vec<_> = files
        .iter()
        .map(|f| (f.spec_id, f.partition.as_slice()))
        .collect();
    let mut columns = vec![
        strings("path", files.iter().map(|f| f.path.clone())),
        partition_column(table.metadata(), &tuples)?,
        (
            Field::new("spec_id", DataType::Int32, false),
            Arc::new(Int32Array::from_iter_values(
                files.iter().map(|f| f.spec_id.get()),
            )) as ArrayRef,
        ),
        u64s("record_count", files.iter().map(|f| f.record_count)),
        u64s(
            "deleted_rows",
            files
                .iter()
                .map(|f| f.deletion_vector.as_ref().map_or(0, |dv| dv.cardinality)),
        ),
        u64s("file_size", files.iter().map(|f| f.file_size)),
    ];
    let schema = table.schema();
    for leaf in schema.leaves() {
        let field = leaf.field;
        let ty = field.primitive().expect("leaves are primitive");
        let name = schema
            .path_name(field.id)
            .unwrap_or_else(|| field.name.clone());
        let stats: Vec<Option<&tarn_core::ColumnStats>> = files
            .iter()
            .map(|f| f.column_stats.get(&field.id))
            .collect();
        for (suffix, pick) in [
            (
                "min",
                (|s| &s.min) as fn(&tarn_core::ColumnStats) -> &Option<tarn_spec::Value>,
            ),
            ("max", |s| &s.max),
        ] {
            let values: Vec<Option<tarn_spec::Value>> = stats
                .iter()
                .map(|s| s.and_then(|s| pick(s).clone()).filter(|v| v.fits(ty)))
                .collect();
            // Typed even when the table has no file.
            let array = tarn_core::arrow_convert::values_to_array(ty, &values).map_err(to_df)?;
            columns.push((
                Field::new(format!("{name}_{suffix}"), array.data_type().clone(), true),
                array,
            ));
        }
        let nulls: UInt64Array = stats.iter().map(|s| s.and_then(|s| s.null_count)).collect();
        columns.push((
            Field::new(format!("{name}_nulls"), DataType::UInt64, true),
            Arc::new(nulls),
        ));
    }
    unzip(columns)
}

/// The `partition` column of `t$files` and `t$partitions`: a struct with a field per
/// partition field of any of the table's specs (Iceberg's union by field id), NULL where a
/// row's spec has no such field. Years, months and hours read as text (`2026`, `2026-11`,
/// `2026-11-30-10`), days as dates, other values in their own type; a NULL partition value
/// is NULL, apart from the string 'null'.
fn partition_column(
    metadata: &tarn_spec::TableMetadata,
    rows: &[(tarn_spec::SpecId, &[Option<tarn_spec::Value>])],
) -> Result<(Field, ArrayRef)> {
    use tarn_spec::{PrimitiveType, Transform, Value};
    // (name, transform, value type), by name, in order of first appearance.
    let mut union: Vec<(&str, Transform, PrimitiveType)> = Vec::new();
    for spec in metadata.specs() {
        for (field, ty) in spec.fields().iter().zip(spec.types()) {
            if !union.iter().any(|(name, ..)| *name == field.name) {
                union.push((&field.name, field.transform, *ty));
            }
        }
    }
    let mut fields = Vec::with_capacity(union.len());
    let mut arrays = Vec::with_capacity(union.len());
    for (name, transform, ty) in union {
        // A field of the same name and another transform or type stays NULL here.
        let values: Vec<Option<Value>> =
            rows.iter()
                .map(|(spec_id, tuple)| {
                    let spec = metadata.spec(*spec_id)?;
                    let at = spec.fields().iter().zip(spec.types()).position(|(f, t)| {
                        f.name == name && f.transform == transform && *t == ty
                    })?;
                    tuple.get(at).cloned().flatten()
                })
                .collect();
        let array: ArrayRef = match transform {
            Transform::Year | Transform::Month | Transform::Hour => {
                Arc::new(StringArray::from_iter(
                    values
                        .iter()
                        .map(|v| v.as_ref().map(|v| transform.render(ty, Some(v)))),
                ))
            }
            _ => tarn_core::arrow_convert::values_to_array(ty, &values).map_err(to_df)?,
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let array = if fields.is_empty() {
        StructArray::new_empty_fields(rows.len(), None)
    } else {
        StructArray::try_new(fields.into(), arrays, None)?
    };
    Ok((
        Field::new("partition", array.data_type().clone(), false),
        Arc::new(array),
    ))
}

async fn manifests(table: &Table) -> Result<RecordBatch> {
    let list = table.manifest_list().await.map_err(to_df)?;
    let n = list.len();
    unzip(vec![
        strings("path", (0..n).map(|i| list.path(i).to_string())),
        (
            Field::new("spec_id", DataType::Int32, false),
            Arc::new(Int32Array::from_iter_values(
                (0..n).map(|i| list.spec_id(i).get()),
            )) as ArrayRef,
        ),
        u64s("added_version", (0..n).map(|i| list.added_version(i).get())),
        u64s("file_count", list.file_counts().values().iter().copied()),
        u64s(
            "record_count",
            list.record_counts().values().iter().copied(),
        ),
    ])
}

async fn partitions(table: &Table) -> Result<RecordBatch> {
    let files = table
        .plan_files(&Predicate::True)
        .await
        .map_err(to_df)?
        .data_files();
    let metadata = table.metadata();
    // (spec, partition key) -> (partition tuple, files, rows, bytes)
    type Group<'a> = (&'a [Option<tarn_spec::Value>], u64, u64, u64);
    let mut groups: BTreeMap<(i32, String), Group> = BTreeMap::new();
    for f in &files {
        let key = metadata
            .spec(f.spec_id)
            .map(|s| s.partition_key(&f.partition))
            .unwrap_or_default();
        let entry = groups
            .entry((f.spec_id.get(), key))
            .or_insert_with(|| (f.partition.as_slice(), 0, 0, 0));
        entry.1 += 1;
        entry.2 += f.live_rows();
        entry.3 += f.file_size;
    }
    let tuples: Vec<_> = groups
        .iter()
        .map(|((spec, _), v)| (tarn_spec::SpecId(*spec), v.0))
        .collect();
    unzip(vec![
        partition_column(metadata, &tuples)?,
        (
            Field::new("spec_id", DataType::Int32, false),
            Arc::new(Int32Array::from_iter_values(groups.keys().map(|k| k.0))) as ArrayRef,
        ),
        u64s("file_count", groups.values().map(|v| v.1)),
        u64s("record_count", groups.values().map(|v| v.2)),
        u64s("total_size", groups.values().map(|v| v.3)),
    ])
}
