//! Manifests: the data files of a table, one Arrow row per file, statistics as typed columns.
//!
//! ```text
//! path | file_size | record_count | partition.<pid>... | min.<fid> | max.<fid> | nulls.<fid> ...
//!      | row_group_rows | dv_path | dv_offset | dv_length | dv_cardinality
//! ```
//!
//! Columns are named by field id, never by column name, so renames cannot bind the wrong
//! statistics. Pruning evaluates predicates over these columns directly (see `scan`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, UInt64Type};
use bytes::Bytes;
use tarn_spec::{FieldId, PartitionSpec, Schema, SpecId, Value};

use crate::arrow_convert::{arrow_type, value_at, values_to_array};
use crate::deletes::DeletionVector;
use crate::error::{Error, Result};
use crate::ipc;
use crate::stats::ColumnStats;

pub(crate) const PATH: &str = "path";
pub(crate) const FILE_SIZE: &str = "file_size";
pub(crate) const RECORD_COUNT: &str = "record_count";
const ROW_GROUP_ROWS: &str = "row_group_rows";
const DV_PATH: &str = "dv_path";
const DV_OFFSET: &str = "dv_offset";
const DV_LENGTH: &str = "dv_length";
const DV_CARDINALITY: &str = "dv_cardinality";
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
const NULLS_PREFIX: &str = "nulls.";

pub(crate) fn nulls_column(key: &str) -> String {
    format!("{NULLS_PREFIX}{key}")
}

/// Appends the deletion-vector columns for `dvs`, one per file.
fn push_deletion_vectors(
    fields: &mut Vec<ArrowField>,
    columns: &mut Vec<ArrayRef>,
    dvs: &[Option<&DeletionVector>],
) {
    fields.push(ArrowField::new(DV_PATH, DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from_iter(
        dvs.iter().map(|d| d.map(|d| d.path.clone())),
    )));
    for (name, pick) in [
        (
            DV_OFFSET,
            (|d: &DeletionVector| d.offset) as fn(&DeletionVector) -> u64,
        ),
        (DV_LENGTH, |d: &DeletionVector| d.length),
        (DV_CARDINALITY, |d: &DeletionVector| d.cardinality),
    ] {
        fields.push(ArrowField::new(name, DataType::UInt64, true));
        columns.push(Arc::new(
            dvs.iter().map(|d| d.map(pick)).collect::<UInt64Array>(),
        ));
    }
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
    /// Statistics by column field id, over all the file's rows (deleted ones included).
    pub column_stats: BTreeMap<FieldId, ColumnStats>,
    /// Rows in each Parquet row group, in order; empty when not recorded.
    pub row_group_rows: Vec<u64>,
    /// The positions of the file's deleted rows, if any were deleted by vector.
    pub deletion_vector: Option<DeletionVector>,
}

impl DataFile {
    /// Rows not deleted by the file's deletion vector.
    pub fn live_rows(&self) -> u64 {
        self.record_count
            - self
                .deletion_vector
                .as_ref()
                .map_or(0, |dv| dv.cardinality.min(self.record_count))
    }
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
        for leaf in schema.leaves() {
            let field = leaf.field;
            let ty = field.primitive().expect("leaves are primitive");
            let key = field.id.to_string();
            let stats: Vec<Option<&ColumnStats>> = files
                .iter()
                .map(|f| f.column_stats.get(&field.id))
                .collect();
            let bound = |pick: fn(&ColumnStats) -> &Option<Value>| -> Vec<Option<Value>> {
                stats
                    .iter()
                    .map(|s| s.and_then(|s| pick(s).clone()).filter(|v| v.fits(ty)))
                    .collect()
            };
            let arrow = arrow_type(ty);
            fields.push(ArrowField::new(min_column(&key), arrow.clone(), true));
            columns.push(values_to_array(ty, &bound(|s| &s.min))?);
            fields.push(ArrowField::new(max_column(&key), arrow, true));
            columns.push(values_to_array(ty, &bound(|s| &s.max))?);
            fields.push(ArrowField::new(nulls_column(&key), DataType::UInt64, true));
            columns.push(Arc::new(
                stats
                    .iter()
                    .map(|s| s.and_then(|s| s.null_count))
                    .collect::<UInt64Array>(),
            ));
        }
        let groups = files.iter().map(|f| {
            (!f.row_group_rows.is_empty()).then(|| {
                f.row_group_rows
                    .iter()
                    .map(|n| Some(*n))
                    .collect::<Vec<_>>()
            })
        });
        fields.push(ArrowField::new(
            ROW_GROUP_ROWS,
            DataType::List(Arc::new(ArrowField::new_list_field(DataType::UInt64, true))),
            true,
        ));
        columns.push(Arc::new(
            ListArray::from_iter_primitive::<UInt64Type, _, _>(groups),
        ));
        let dvs: Vec<Option<&DeletionVector>> =
            files.iter().map(|f| f.deletion_vector.as_ref()).collect();
        push_deletion_vectors(&mut fields, &mut columns, &dvs);
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

    pub fn file_sizes(&self) -> &UInt64Array {
        self.batch.column(1).as_primitive::<UInt64Type>()
    }

    pub fn record_counts(&self) -> &UInt64Array {
        self.batch.column(2).as_primitive::<UInt64Type>()
    }

    pub fn total_records(&self) -> u64 {
        self.record_counts().values().iter().sum()
    }

    /// Rows deleted by vector, per file (NULL where a file has no vector); `None` for a
    /// manifest written before deletion vectors existed.
    pub fn deleted_counts(&self) -> Option<&UInt64Array> {
        self.batch
            .column_by_name(DV_CARDINALITY)
            .map(|c| c.as_primitive::<UInt64Type>())
    }

    /// Rows deleted by vector in all the manifest's files.
    pub fn total_deleted(&self) -> u64 {
        self.deleted_counts()
            .map_or(0, |c| c.iter().flatten().sum())
    }

    /// This manifest with the deletion vectors of some files replaced (by table-relative
    /// path); every other column is kept as it is.
    pub fn with_deletion_vectors(
        &self,
        vectors: &HashMap<String, DeletionVector>,
    ) -> Result<Manifest> {
        let current: Vec<Option<DeletionVector>> = (0..self.len())
            .map(|i| self.deletion_vector(i))
            .collect::<Result<_>>()?;
        let dvs: Vec<Option<&DeletionVector>> = self
            .paths()
            .iter()
            .zip(&current)
            .map(|(p, dv)| p.and_then(|p| vectors.get(p)).or(dv.as_ref()))
            .collect();
        let schema = self.batch.schema();
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (field, column) in schema.fields().iter().zip(self.batch.columns()) {
            if ![DV_PATH, DV_OFFSET, DV_LENGTH, DV_CARDINALITY].contains(&field.name().as_str()) {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
        push_deletion_vectors(&mut fields, &mut columns, &dvs);
        let batch = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(fields).with_metadata(schema.metadata().clone())),
            columns,
        )
        .map_err(|e| Error::arrow("replacing deletion vectors in a manifest", e))?;
        Ok(Manifest {
            spec_id: self.spec_id,
            batch,
        })
    }

    /// The deletion vector of row `i`, if its file has one.
    pub fn deletion_vector(&self, i: usize) -> Result<Option<DeletionVector>> {
        let Some(path) = self.batch.column_by_name(DV_PATH) else {
            return Ok(None);
        };
        let path = path.as_string::<i32>();
        if path.is_null(i) {
            return Ok(None);
        }
        let number = |name: &str| {
            self.batch
                .column_by_name(name)
                .map(|c| c.as_primitive::<UInt64Type>())
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
        };
        match (number(DV_OFFSET), number(DV_LENGTH), number(DV_CARDINALITY)) {
            (Some(offset), Some(length), Some(cardinality)) => Ok(Some(DeletionVector {
                path: path.value(i).to_string(),
                offset,
                length,
                cardinality,
            })),
            _ => Err(Error::CorruptManifest {
                path: self.paths().value(i).to_string(),
                reason: "a deletion vector has no offset, length or cardinality".into(),
            }),
        }
    }

    /// The rows of `manifests`, which share this spec and Arrow schema, in one manifest.
    pub(crate) fn concat(manifests: &[Arc<Manifest>]) -> Result<Manifest> {
        let first = manifests.first().ok_or_else(|| {
            Error::invalid("manifest merge", "there must be at least one manifest")
        })?;
        let batches: Vec<&RecordBatch> = manifests.iter().map(|m| &m.batch).collect();
        let batch = arrow::compute::concat_batches(&first.batch.schema(), batches)
            .map_err(|e| Error::arrow("merging manifests", e))?;
        Ok(Manifest {
            spec_id: first.spec_id,
            batch,
        })
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
        let row_group_rows = self
            .batch
            .column_by_name(ROW_GROUP_ROWS)
            .map(|c| c.as_list::<i32>())
            .filter(|c| c.is_valid(i))
            .map(|c| {
                c.value(i)
                    .as_primitive::<UInt64Type>()
                    .iter()
                    .flatten()
                    .collect()
            })
            .unwrap_or_default();
        DataFile {
            path: self.paths().value(i).to_string(),
            file_size: u64_at(FILE_SIZE),
            record_count: u64_at(RECORD_COUNT),
            spec_id: self.spec_id,
            partition,
            column_stats,
            row_group_rows,
            // Checked when the manifest was decoded.
            deletion_vector: self.deletion_vector(i).unwrap_or_default(),
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
        // The optional columns, when present, must have their types: they are read with
        // typed accessors.
        for (name, ty) in [
            (DV_PATH, DataType::Utf8),
            (DV_OFFSET, DataType::UInt64),
            (DV_LENGTH, DataType::UInt64),
            (DV_CARDINALITY, DataType::UInt64),
        ] {
            if let Some(c) = batch.column_by_name(name)
                && c.data_type() != &ty
            {
                return Err(corrupt(&format!("column '{name}' is not {ty}")));
            }
        }
        if let Some(c) = batch.column_by_name(ROW_GROUP_ROWS)
            && !matches!(c.data_type(), DataType::List(f) if f.data_type() == &DataType::UInt64)
        {
            return Err(corrupt("column 'row_group_rows' is not a list of UInt64"));
        }
        let schema = batch.schema();
        for field in schema.fields() {
            if field.name().starts_with(NULLS_PREFIX) && field.data_type() != &DataType::UInt64 {
                return Err(corrupt(&format!("column '{}' is not UInt64", field.name())));
            }
        }
        let manifest = Manifest { spec_id, batch };
        for i in 0..manifest.len() {
            manifest.deletion_vector(i)?;
        }
        Ok(manifest)
    }
}
