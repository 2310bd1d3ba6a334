//! Manifest lists: the manifests of one snapshot, one Arrow row per manifest, with partition
//! and column bounds summarised so that whole manifests are skipped before they are read.
//!
//! ```text
//! path | file_size | spec_id | added_version | file_count | record_count | deleted_count
//!      | min.p<pid> | max.p<pid> | nulls.p<pid> ...    partition value bounds
//!      | min.<fid>  | max.<fid>  | nulls.<fid>  ...    column bounds
//! ```
//!
//! A commit that adds data appends rows to its parent's list; existing manifests are reused
//! by reference, so an append writes a constant number of new objects.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field as ArrowField, Int32Type, Schema as ArrowSchema, UInt64Type,
};
use bytes::Bytes;
use tarn_spec::{SpecId, Value, Version};

use crate::arrow_convert::{concat_union, primitive_type, values_to_array};
use crate::error::{Error, Result};
use crate::ipc;
use crate::manifest::{Manifest, RECORD_COUNT, max_column, min_column, nulls_column};
use crate::stats::StatsCollector;

const SPEC_ID: &str = "spec_id";
const ADDED_VERSION: &str = "added_version";
const FILE_COUNT: &str = "file_count";
/// Rows the manifest's files have deleted by vector (absent in lists from before vectors).
const DELETED_COUNT: &str = "deleted_count";

/// The columns every manifest list has, before the bounds columns.
fn fixed_fields() -> Vec<ArrowField> {
    vec![
        ArrowField::new("path", DataType::Utf8, false),
        ArrowField::new("file_size", DataType::UInt64, false),
        ArrowField::new(SPEC_ID, DataType::Int32, false),
        ArrowField::new(ADDED_VERSION, DataType::UInt64, false),
        ArrowField::new(FILE_COUNT, DataType::UInt64, false),
        ArrowField::new(RECORD_COUNT, DataType::UInt64, false),
    ]
}

/// The summary row of one manifest.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    batch: RecordBatch,
}

impl ManifestSummary {
    /// Summarises `manifest`, stored at `path` (`file_size` bytes), written by the commit that
    /// creates `added_version`.
    pub fn of(
        manifest: &Manifest,
        path: &str,
        file_size: u64,
        added_version: Version,
    ) -> Result<Self> {
        let batch = manifest.batch();
        let mut fields = fixed_fields();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![path])),
            Arc::new(UInt64Array::from(vec![file_size])),
            Arc::new(Int32Array::from(vec![manifest.spec_id().get()])),
            Arc::new(UInt64Array::from(vec![added_version.get()])),
            Arc::new(UInt64Array::from(vec![manifest.len() as u64])),
            Arc::new(UInt64Array::from(vec![manifest.total_records()])),
        ];
        fields.push(ArrowField::new(DELETED_COUNT, DataType::UInt64, true));
        columns.push(Arc::new(UInt64Array::from(vec![manifest.total_deleted()])));
        let records = manifest.record_counts();
        let schema = batch.schema();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name();
            if let Some(pid) = name.strip_prefix("partition.") {
                let mut c = StatsCollector::default();
                c.update(column.as_ref());
                let key = format!("p{pid}");
                push_bounds(
                    &mut fields,
                    &mut columns,
                    &key,
                    column,
                    c.min(),
                    c.max(),
                    Some(column.null_count() as u64),
                )?;
            } else if let Some(fid) = name.strip_prefix("min.") {
                let (Some(max), Some(nulls)) = (
                    batch.column_by_name(&max_column(fid)),
                    batch.column_by_name(&nulls_column(fid)),
                ) else {
                    continue;
                };
                let nulls = nulls.as_primitive::<UInt64Type>();
                // A row with no bound but some non-null values has an unknown bound, which
                // makes the manifest's bound unknown too.
                let unknown = |bounds: &ArrayRef| {
                    (0..bounds.len()).any(|i| {
                        bounds.is_null(i) && (nulls.is_null(i) || nulls.value(i) < records.value(i))
                    })
                };
                let mut lo = StatsCollector::default();
                lo.update(column.as_ref());
                let mut hi = StatsCollector::default();
                hi.update(max.as_ref());
                let min = if unknown(column) { None } else { lo.min() };
                let max_bound = if unknown(max) { None } else { hi.max() };
                let null_total = if nulls.null_count() > 0 {
                    None
                } else {
                    Some(nulls.values().iter().sum())
                };
                push_bounds(
                    &mut fields,
                    &mut columns,
                    fid,
                    column,
                    min,
                    max_bound,
                    null_total,
                )?;
            }
        }
        let batch = RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), columns)
            .map_err(|e| Error::arrow("summarising a manifest", e))?;
        Ok(ManifestSummary { batch })
    }
}

fn push_bounds(
    fields: &mut Vec<ArrowField>,
    columns: &mut Vec<ArrayRef>,
    key: &str,
    like: &ArrayRef,
    min: Option<Value>,
    max: Option<Value>,
    nulls: Option<u64>,
) -> Result<()> {
    let ty = like.data_type().clone();
    // Manifest columns are always of a tarn type's Arrow form, so this maps back exactly.
    let tarn_type = primitive_type(&ty)?;
    let one = |v: Option<Value>| values_to_array(tarn_type, &[v]);
    fields.push(ArrowField::new(min_column(key), ty.clone(), true));
    columns.push(one(min)?);
    fields.push(ArrowField::new(max_column(key), ty.clone(), true));
    columns.push(one(max)?);
    fields.push(ArrowField::new(nulls_column(key), DataType::UInt64, true));
    columns.push(Arc::new(UInt64Array::from(vec![nulls])));
    Ok(())
}

/// The manifests of a snapshot.
#[derive(Debug, Clone)]
pub struct ManifestList {
    batch: RecordBatch,
}

impl ManifestList {
    pub fn empty() -> Self {
        let schema = ArrowSchema::new(fixed_fields());
        ManifestList {
            batch: RecordBatch::new_empty(Arc::new(schema)),
        }
    }

    /// The manifest rows, for vectorized pruning.
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

    pub fn path(&self, i: usize) -> &str {
        self.paths().value(i)
    }

    /// The size in bytes of manifest `i`.
    pub fn file_size(&self, i: usize) -> u64 {
        self.batch.column(1).as_primitive::<UInt64Type>().value(i)
    }

    pub fn spec_id(&self, i: usize) -> SpecId {
        SpecId(self.batch.column(2).as_primitive::<Int32Type>().value(i))
    }

    pub fn added_version(&self, i: usize) -> Version {
        Version(self.batch.column(3).as_primitive::<UInt64Type>().value(i))
    }

    pub fn file_counts(&self) -> &UInt64Array {
        self.batch.column(4).as_primitive::<UInt64Type>()
    }

    pub fn record_counts(&self) -> &UInt64Array {
        self.batch.column(5).as_primitive::<UInt64Type>()
    }

    pub fn total_files(&self) -> u64 {
        self.file_counts().values().iter().sum()
    }

    /// Rows in the files, deleted ones included.
    pub fn total_records(&self) -> u64 {
        self.record_counts().values().iter().sum()
    }

    /// Rows deleted by vector.
    pub fn total_deleted(&self) -> u64 {
        self.batch
            .column_by_name(DELETED_COUNT)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .map_or(0, |c| c.iter().flatten().sum())
    }

    /// Rows a scan returns: the files' rows less those deleted by vector.
    pub fn live_records(&self) -> u64 {
        self.total_records() - self.total_deleted().min(self.total_records())
    }

    /// This list with `summaries` added after the existing rows.
    pub fn with_added(&self, summaries: &[ManifestSummary]) -> Result<Self> {
        let mut batches = vec![self.batch.clone()];
        batches.extend(summaries.iter().map(|s| s.batch.clone()));
        Ok(ManifestList {
            batch: concat_union(&batches)?,
        })
    }

    /// This list without the manifests at `paths`.
    pub fn without(&self, paths: &HashSet<&str>) -> Result<Self> {
        let keep: BooleanArray = self
            .paths()
            .iter()
            .map(|p| Some(!paths.contains(p.unwrap_or_default())))
            .collect();
        self.filter(&keep)
    }

    /// The rows where `keep` is true.
    pub fn filter(&self, keep: &BooleanArray) -> Result<Self> {
        let batch = arrow::compute::filter_record_batch(&self.batch, keep)
            .map_err(|e| Error::arrow("filtering a manifest list", e))?;
        Ok(ManifestList { batch })
    }

    pub fn encode(&self) -> Result<Bytes> {
        ipc::encode(&self.batch)
    }

    pub fn decode(path: &str, bytes: Bytes) -> Result<Self> {
        let batch = ipc::decode(path, bytes)?;
        ipc::check_leading_columns(path, &batch, &fixed_fields())?;
        Ok(ManifestList { batch })
    }
}
