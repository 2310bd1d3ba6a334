//! Manifests: the data files of a table, one Arrow row per file, statistics as typed columns.
//!
//! ```text
//! path | file_size | record_count | partition.<pid>... | min.<fid> | max.<fid> | nulls.<fid> ...
//! ```
//!
//! Columns are named by field id, never by column name, so renames cannot bind the wrong
//! statistics. Pruning evaluates predicates over these columns directly (see `scan`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, UInt64Type};
use bytes::Bytes;
use tarn_spec::{FieldId, PartitionSpec, Schema, SpecId, Value};

use crate::arrow_convert::{arrow_type, value_at, values_to_array};
use crate::error::{Error, Result};
use crate::ipc;
use crate::stats::ColumnStats;

pub(crate) const PATH: &str = "path";
pub(crate) const FILE_SIZE: &str = "file_size";
pub(crate) const RECORD_COUNT: &str = "record_count";
const SPEC_ID_KEY: &str = "tarn.spec-id";

pub(crate) fn partition_column(id: FieldId) -> String {
    format!("partition.{id}")
}
pub(crate) fn min_column(key: &str) -> String {
    format!("min.{key}")
}
pub(crate) fn max_column(key: &str) -> String {
    format!("max.{key}")
}
pub(crate) fn nulls_column(key: &str) -> String {
    format!("nulls.{key}")
}

/// One data file of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Path relative to the table root.
    pub path: String,
    pub file_size: u64,
    pub record_count: u64,
    pub spec_id: SpecId,
    /// One value per field of the file's partition spec.
    pub partition: Vec<Option<Value>>,
    /// Statistics by column field id.
    pub column_stats: BTreeMap<FieldId, ColumnStats>,
}

/// The data files of one partition spec, as one Arrow batch.
#[derive(Debug, Clone)]
pub struct Manifest {
    spec_id: SpecId,
    batch: RecordBatch,
}

impl Manifest {
    /// A manifest of `files`, all of partition spec `spec`, with statistics for the columns
    /// of `schema`.
    pub fn from_data_files(
        spec: &PartitionSpec,
        schema: &Schema,
        files: &[DataFile],
    ) -> Result<Self> {
        let mut fields = vec![
            ArrowField::new(PATH, DataType::Utf8, false),
            ArrowField::new(FILE_SIZE, DataType::UInt64, false),
            ArrowField::new(RECORD_COUNT, DataType::UInt64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                files.iter().map(|f| f.path.as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(
                files.iter().map(|f| f.file_size),
            )),
            Arc::new(UInt64Array::from_iter_values(
                files.iter().map(|f| f.record_count),
            )),
        ];
        let partition_types = spec
            .partition_types(schema)
            .map_err(Error::InvalidMetadata)?;
        for (i, (pf, ty)) in spec.fields().iter().zip(partition_types).enumerate() {
            let values: Vec<Option<Value>> = files
                .iter()
                .map(|f| {
                    if f.spec_id != spec.id() || f.partition.len() != spec.fields().len() {
                        return Err(Error::invalid(
                            "data file",
                            format!(
                                "'{}' does not belong to partition spec {}",
                                f.path,
                                spec.id()
                            ),
                        ));
                    }
                    Ok(f.partition[i].clone())
                })
                .collect::<Result<_>>()?;
            fields.push(ArrowField::new(
                partition_column(pf.field_id),
                arrow_type(ty),
                true,
            ));
            columns.push(values_to_array(ty, &values)?);
        }
        for field in schema.fields() {
            let key = field.id.to_string();
            let stats: Vec<Option<&ColumnStats>> = files
                .iter()
                .map(|f| f.column_stats.get(&field.id))
                .collect();
            let bound = |pick: fn(&ColumnStats) -> &Option<Value>| -> Vec<Option<Value>> {
                stats
                    .iter()
                    .map(|s| {
                        s.and_then(|s| pick(s).clone())
                            .filter(|v| v.fits(field.field_type))
                    })
                    .collect()
            };
            let ty = arrow_type(field.field_type);
            fields.push(ArrowField::new(min_column(&key), ty.clone(), true));
            columns.push(values_to_array(field.field_type, &bound(|s| &s.min))?);
            fields.push(ArrowField::new(max_column(&key), ty, true));
            columns.push(values_to_array(field.field_type, &bound(|s| &s.max))?);
            fields.push(ArrowField::new(nulls_column(&key), DataType::UInt64, true));
            columns.push(Arc::new(
                stats
                    .iter()
                    .map(|s| s.and_then(|s| s.null_count))
                    .collect::<UInt64Array>(),
            ));
        }
        let schema = ArrowSchema::new(fields).with_metadata(HashMap::from([(
            SPEC_ID_KEY.to_string(),
            spec.id().to_string(),
        )]));
        let batch = RecordBatch::try_new(Arc::new(schema), columns)
            .map_err(|e| Error::arrow("building a manifest", e))?;
        Ok(Manifest {
            spec_id: spec.id(),
            batch,
        })
    }

    pub fn spec_id(&self) -> SpecId {
        self.spec_id
    }

    /// The manifest's rows, for vectorized pruning.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn paths(&self) -> &StringArray {
        self.batch.column(0).as_string::<i32>()
    }

    pub fn record_counts(&self) -> &UInt64Array {
        self.batch.column(2).as_primitive::<UInt64Type>()
    }

    pub fn total_records(&self) -> u64 {
        self.record_counts().values().iter().sum()
    }

    /// The rows where `keep` is true.
    pub fn filter(&self, keep: &BooleanArray) -> Result<Manifest> {
        let batch = arrow::compute::filter_record_batch(&self.batch, keep)
            .map_err(|e| Error::arrow("filtering a manifest", e))?;
        Ok(Manifest {
            spec_id: self.spec_id,
            batch,
        })
    }

    /// Row `i` as a [`DataFile`].
    pub fn data_file(&self, i: usize) -> DataFile {
        let schema = self.batch.schema();
        let u64_at = |name: &str| {
            self.batch
                .column_by_name(name)
                .map(|c| c.as_primitive::<UInt64Type>().value(i))
                .unwrap_or(0)
        };
        let mut partition = Vec::new();
        let mut column_stats: BTreeMap<FieldId, ColumnStats> = BTreeMap::new();
        for (field, column) in schema.fields().iter().zip(self.batch.columns()) {
            let name = field.name();
            if let Some(_pid) = name.strip_prefix("partition.") {
                partition.push(value_at(column.as_ref(), i));
            } else if let Some((kind, id)) = name.split_once('.') {
                let Ok(id) = id.parse::<i32>() else { continue };
                let stats = column_stats.entry(FieldId(id)).or_default();
                match kind {
                    "min" => stats.min = value_at(column.as_ref(), i),
                    "max" => stats.max = value_at(column.as_ref(), i),
                    "nulls" => {
                        let c = column.as_primitive::<UInt64Type>();
                        stats.null_count = c.is_valid(i).then(|| c.value(i));
                    }
                    _ => {}
                }
            }
        }
        DataFile {
            path: self.paths().value(i).to_string(),
            file_size: u64_at(FILE_SIZE),
            record_count: u64_at(RECORD_COUNT),
            spec_id: self.spec_id,
            partition,
            column_stats,
        }
    }

    pub fn data_files(&self) -> Vec<DataFile> {
        (0..self.len()).map(|i| self.data_file(i)).collect()
    }

    pub fn encode(&self) -> Result<Bytes> {
        ipc::encode(&self.batch)
    }

    pub fn decode(path: &str, bytes: Bytes) -> Result<Self> {
        let batch = ipc::decode(path, bytes)?;
        let corrupt = |reason: &str| Error::CorruptManifest {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let spec_id = batch
            .schema()
            .metadata()
            .get(SPEC_ID_KEY)
            .and_then(|s| s.parse().ok())
            .map(SpecId)
            .ok_or_else(|| corrupt("no partition spec id in its schema metadata"))?;
        let expect = [
            ArrowField::new(PATH, DataType::Utf8, false),
            ArrowField::new(FILE_SIZE, DataType::UInt64, false),
            ArrowField::new(RECORD_COUNT, DataType::UInt64, false),
        ];
        ipc::check_leading_columns(path, &batch, &expect)?;
        Ok(Manifest { spec_id, batch })
    }
}
