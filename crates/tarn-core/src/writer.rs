//! The data-file writer: a stream of Arrow batches in, partitioned Parquet files of a target
//! size out, each described by a [`DataFile`] with statistics collected as it was written.
//!
//! ```text
//! batch ──conform──▶ batch with field ids ──partition──▶ rows per partition tuple
//!                                                      ──▶ open file of that tuple (rolls at target size)
//!                                                      ──▶ StatsCollector per column
//! ```

use std::collections::{BTreeMap, HashMap};

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tarn_spec::{PartitionSpec, Schema, SpecId, TableMetadata, Value};

use crate::arrow_convert::{arrow_schema, arrow_type, primitive_type, value_at};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::TableLocation;
use crate::manifest::DataFile;
use crate::stats::StatsCollector;

/// Table property: the size at which the writer starts a new data file.
pub const TARGET_FILE_SIZE_PROPERTY: &str = "write.target-file-size-bytes";
/// Table property: the most rows in one Parquet row group.
pub const ROW_GROUP_ROWS_PROPERTY: &str = "write.parquet.row-group-rows";

/// How the writer sizes its output.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// A file is closed once its encoded size reaches this many bytes.
    pub target_file_size: u64,
    /// The most rows in one row group.
    pub row_group_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            target_file_size: 128 * 1024 * 1024,
            row_group_rows: 1024 * 1024,
        }
    }
}

impl WriterOptions {
    /// Defaults overridden by the table's properties.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        let mut options = WriterOptions::default();
        let parse = |key: &str| -> Result<Option<u64>> {
            properties
                .get(key)
                .map(|v| {
                    v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::invalid(
                            "table property",
                            format!("{key} must be a positive integer, not '{v}'"),
                        )
                    })
                })
                .transpose()
        };
        if let Some(n) = parse(TARGET_FILE_SIZE_PROPERTY)? {
            options.target_file_size = n;
        }
        if let Some(n) = parse(ROW_GROUP_ROWS_PROPERTY)? {
            options.row_group_rows = n as usize;
        }
        Ok(options)
    }
}

struct OpenFile {
    path: String,
    writer: AsyncArrowWriter<BufWriter>,
    partition: Vec<Option<Value>>,
    stats: Vec<StatsCollector>,
    rows: u64,
}

/// Writes data files for one table version's schema and default partition spec.
pub struct DataFileWriter {
    location: TableLocation,
    schema: Schema,
    spec: PartitionSpec,
    arrow_schema: SchemaRef,
    options: WriterOptions,
    env: Env,
    open: HashMap<String, OpenFile>,
    done: Vec<DataFile>,
}

impl DataFileWriter {
    pub fn new(
        location: TableLocation,
        metadata: &TableMetadata,
        options: WriterOptions,
        env: Env,
    ) -> Self {
        let schema = metadata.current_schema().clone();
        DataFileWriter {
            arrow_schema: arrow_schema(&schema),
            spec: metadata.default_spec().clone(),
            schema,
            location,
            options,
            env,
            open: HashMap::new(),
            done: Vec::new(),
        }
    }

    /// The Arrow schema data is written with (with field ids).
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Writes one batch. Columns are matched to the table by name (ignoring ASCII case);
    /// types must be the column's type or widen to it.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, &self.schema, &self.arrow_schema)?;
        for (key, (partition, rows)) in self.partition_rows(&batch)? {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                let indices = UInt32Array::from(rows);
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::take(c, &indices, None))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::arrow("splitting a batch by partition", e))?;
                RecordBatch::try_new(self.arrow_schema.clone(), columns)
                    .map_err(|e| Error::arrow("splitting a batch by partition", e))?
            };
            self.write_partition(key, partition, &part).await?;
        }
        Ok(())
    }

    /// Row indices of `batch` grouped by partition tuple, keyed by a string that is unique
    /// per tuple.
    #[allow(clippy::type_complexity)]
    fn partition_rows(
        &self,
        batch: &RecordBatch,
    ) -> Result<Vec<(String, (Vec<Option<Value>>, Vec<u32>))>> {
        if self.spec.is_unpartitioned() {
            let rows = (0..batch.num_rows() as u32).collect();
            return Ok(vec![(String::new(), (Vec::new(), rows))]);
        }
        let sources: Vec<(ArrayRef, _, _)> = self
            .spec
            .fields()
            .iter()
            .map(|pf| {
                let index = self
                    .schema
                    .fields()
                    .iter()
                    .position(|f| f.id == pf.source_id)
                    .ok_or_else(|| {
                        Error::invalid(
                            "partition spec",
                            format!(
                                "source column {} of '{}' is not in the schema",
                                pf.source_id, pf.name
                            ),
                        )
                    })?;
                Ok((
                    batch.column(index).clone(),
                    self.schema.fields()[index].field_type,
                    pf.transform,
                ))
            })
            .collect::<Result<_>>()?;
        let mut groups: HashMap<String, (Vec<Option<Value>>, Vec<u32>)> = HashMap::new();
        let mut order = Vec::new();
        for row in 0..batch.num_rows() {
            let tuple = sources
                .iter()
                .map(|(array, ty, transform)| {
                    transform
                        .apply(*ty, value_at(array.as_ref(), row).as_ref())
                        .map_err(Error::InvalidMetadata)
                })
                .collect::<Result<Vec<_>>>()?;
            let key = format!("{tuple:?}");
            let entry = groups.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                (tuple, Vec::new())
            });
            entry.1.push(row as u32);
        }
        Ok(order
            .into_iter()
            .map(|k| {
                let group = groups.remove(&k).expect("every key in order has a group");
                (k, group)
            })
            .collect())
    }

    async fn write_partition(
        &mut self,
        key: String,
        partition: Vec<Option<Value>>,
        batch: &RecordBatch,
    ) -> Result<()> {
        if !self.open.contains_key(&key) {
            let file = self.open_file(partition)?;
            self.open.insert(key.clone(), file);
        }
        let file = self.open.get_mut(&key).expect("opened above");
        file.writer
            .write(batch)
            .await
            .map_err(|source| Error::Parquet {
                path: file.path.clone(),
                source,
            })?;
        for (collector, column) in file.stats.iter_mut().zip(batch.columns()) {
            collector.update(column.as_ref());
        }
        file.rows += batch.num_rows() as u64;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
        if size >= self.options.target_file_size {
            let file = self.open.remove(&key).expect("present");
            let data_file = close_file(&self.schema, self.spec.id(), file).await?;
            self.done.push(data_file);
        }
        Ok(())
    }

    fn open_file(&self, partition: Vec<Option<Value>>) -> Result<OpenFile> {
        let dir = self.spec.partition_path(&partition);
        let name = format!("{}.parquet", self.env.next_id());
        let path = if dir.is_empty() {
            format!("data/{name}")
        } else {
            format!("data/{dir}/{name}")
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).expect("level 1 is valid"),
            ))
            .set_max_row_group_row_count(Some(self.options.row_group_rows))
            .build();
        let sink = BufWriter::new(self.location.store().clone(), self.location.path(&path));
        let writer = AsyncArrowWriter::try_new(sink, self.arrow_schema.clone(), Some(props))
            .map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        Ok(OpenFile {
            path,
            writer,
            partition,
            stats: vec![StatsCollector::default(); self.schema.fields().len()],
            rows: 0,
        })
    }

    /// Closes every open file and returns all files written, in the order they were closed.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, file) in open {
            let data_file = close_file(&self.schema, self.spec.id(), file).await?;
            self.done.push(data_file);
        }
        Ok(self.done)
    }
}

/// Finishes a file (the writer is not `Sync`, so this borrows only what it needs).
async fn close_file(schema: &Schema, spec_id: SpecId, mut file: OpenFile) -> Result<DataFile> {
    let metadata = file
        .writer
        .finish()
        .await
        .map_err(|source| Error::Parquet {
            path: file.path.clone(),
            source,
        })?;
    let column_stats = schema
        .fields()
        .iter()
        .zip(&file.stats)
        .map(|(field, collector)| (field.id, collector.finish()))
        .collect();
    Ok(DataFile {
        file_size: file.writer.bytes_written() as u64,
        path: file.path,
        record_count: file.rows,
        spec_id,
        partition: file.partition,
        column_stats,
        row_group_rows: metadata
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as u64)
            .collect(),
        deletion_vector: None,
    })
}

/// `batch` with the table's Arrow schema: columns matched by name, cast to the column type,
/// NOT NULL checked.
fn conform(batch: &RecordBatch, schema: &Schema, target: &SchemaRef) -> Result<RecordBatch> {
    let input = batch.schema();
    for field in input.fields() {
        if schema.field_by_name(field.name()).is_none() {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
            return Err(Error::SchemaMismatch {
                reason: format!(
                    "column '{}' is not in the table (its columns are {})",
                    field.name(),
                    known.join(", ")
                ),
            });
        }
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let index = input
            .fields()
            .iter()
            .position(|f| f.name() == &field.name)
            .or_else(|| {
                input
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(&field.name))
            });
        let Some(index) = index else {
            return Err(Error::SchemaMismatch {
                reason: format!("column '{}' is missing from the data", field.name),
            });
        };
        let column = batch.column(index);
        let source_type =
            primitive_type(column.data_type()).map_err(|_| Error::SchemaMismatch {
                reason: format!(
                    "column '{}' has Arrow type {}, which tarn cannot store",
                    field.name,
                    column.data_type()
                ),
            })?;
        if !source_type.can_widen_to(field.field_type) {
            return Err(Error::SchemaMismatch {
                reason: format!(
                    "column '{}' is {} in the table but {} in the data",
                    field.name, field.field_type, source_type
                ),
            });
        }
        let column = if column.data_type() == &arrow_type(field.field_type) {
            column.clone()
        } else {
            arrow::compute::cast(column, &arrow_type(field.field_type))
                .map_err(|e| Error::arrow(format!("converting column '{}'", field.name), e))?
        };
        if field.required && column.null_count() > 0 {
            let nulls = column.null_count();
            return Err(Error::SchemaMismatch {
                reason: format!(
                    "column '{}' is NOT NULL, but {nulls} {} NULL in it",
                    field.name,
                    if nulls == 1 { "row has" } else { "rows have" }
                ),
            });
        }
        columns.push(column);
    }
    RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| Error::arrow("conforming a batch to the table schema", e))
}
