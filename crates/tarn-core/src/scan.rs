//! File planning: which data files of a snapshot may hold rows matching a predicate.
//!
//! ```text
//! manifest list ──FilePredicate over manifest summaries──▶ kept manifests (read concurrently)
//!               ──FilePredicate over file statistics────▶ kept files (as filtered manifests)
//! ```
//!
//! Both levels are Arrow batches with the same column naming (`min.<id>`, `max.<id>`,
//! `nulls.<id>`), so one predicate implementation prunes both, vectorized.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, Scalar, UInt64Array};
use arrow::compute::kernels::{boolean, cmp};
use arrow::datatypes::UInt64Type;
use futures::{StreamExt, TryStreamExt};
use tarn_spec::{FieldId, PartitionSpec, PrimitiveType, Schema, Transform, Value};

use crate::arrow_convert::{arrow_type, scalar_array};
use crate::error::{Error, Result};
use crate::manifest::{
    DataFile, Manifest, RECORD_COUNT, max_column, min_column, nulls_column, partition_column,
};

/// How many manifests are fetched at once while planning.
const MANIFEST_READ_CONCURRENCY: usize = 16;

/// Which level of metadata a [`StatsView`] shows.
#[derive(Debug, Clone, Copy)]
pub enum StatsLevel<'a> {
    /// One row per manifest of a manifest list.
    Manifests,
    /// One row per data file of a manifest written with this partition spec.
    Files(&'a PartitionSpec),
}

/// Per-row statistics of manifests or data files, as Arrow arrays.
#[derive(Debug, Clone, Copy)]
pub struct StatsView<'a> {
    batch: &'a RecordBatch,
    level: StatsLevel<'a>,
    schema: &'a Schema,
}

impl<'a> StatsView<'a> {
    pub fn new(batch: &'a RecordBatch, level: StatsLevel<'a>, schema: &'a Schema) -> Self {
        StatsView {
            batch,
            level,
            schema,
        }
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn level(&self) -> StatsLevel<'a> {
        self.level
    }

    /// The schema predicates are written against (the snapshot's).
    pub fn schema(&self) -> &'a Schema {
        self.schema
    }

    /// Rows per file (or per manifest).
    pub fn row_counts(&self) -> &'a UInt64Array {
        self.batch
            .column_by_name(RECORD_COUNT)
            .expect("manifests and manifest lists have record_count")
            .as_primitive::<UInt64Type>()
    }

    /// Lower bounds of a column, cast to the column's current type; `None` if not recorded.
    pub fn min(&self, field: FieldId) -> Option<ArrayRef> {
        self.bound(&min_column(&field.to_string()), field)
    }

    /// Upper bounds of a column, cast to the column's current type; `None` if not recorded.
    pub fn max(&self, field: FieldId) -> Option<ArrayRef> {
        self.bound(&max_column(&field.to_string()), field)
    }

    pub fn null_counts(&self, field: FieldId) -> Option<&'a UInt64Array> {
        self.batch
            .column_by_name(&nulls_column(&field.to_string()))
            .map(|c| c.as_primitive::<UInt64Type>())
    }

    fn bound(&self, name: &str, field: FieldId) -> Option<ArrayRef> {
        let column = self.batch.column_by_name(name)?;
        let ty = arrow_type(self.schema.field_by_id(field)?.primitive()?);
        if column.data_type() == &ty {
            Some(column.clone())
        } else {
            arrow::compute::cast(column, &ty).ok()
        }
    }

    /// Lower and upper bounds of a partition field's values.
    pub fn partition_bounds(&self, partition_field: FieldId) -> Option<(ArrayRef, ArrayRef)> {
        match self.level {
            StatsLevel::Files(_) => {
                let c = self
                    .batch
                    .column_by_name(&partition_column(partition_field))?;
                Some((c.clone(), c.clone()))
            }
            StatsLevel::Manifests => {
                let key = format!("p{partition_field}");
                let lo = self.batch.column_by_name(&min_column(&key))?;
                let hi = self.batch.column_by_name(&max_column(&key))?;
                Some((lo.clone(), hi.clone()))
            }
        }
    }
}

/// A predicate over per-file statistics. Engines implement it with their own expression
/// language; [`Predicate`] is a small built-in one.
pub trait FilePredicate: Debug + Send + Sync {
    /// For each row of `stats`: `false` only if no row of that manifest or file can match.
    fn may_match(&self, stats: &StatsView<'_>) -> Result<BooleanArray>;
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A simple predicate over columns, resolved to field ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    True,
    Compare {
        field: FieldId,
        field_type: PrimitiveType,
        op: CompareOp,
        value: Value,
    },
    IsNull {
        field: FieldId,
    },
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
}

impl Predicate {
    /// `column <op> value`, with the column looked up by name in `schema`.
    pub fn compare(
        schema: &Schema,
        column: &str,
        op: CompareOp,
        value: Value,
    ) -> Result<Predicate> {
        let field = schema.field_by_path(column).ok_or_else(|| {
            Error::invalid("predicate", format!("column '{column}' does not exist"))
        })?;
        let field_type = schema
            .leaf(field.id)
            .and_then(|l| l.field.primitive())
            .ok_or_else(|| {
                Error::invalid(
                    "predicate",
                    format!(
                        "column '{column}' is a {}, not a primitive value",
                        field.field_type
                    ),
                )
            })?;
        if !value.fits(field_type) {
            return Err(Error::invalid(
                "predicate",
                format!(
                    "{value} cannot be compared with column '{column}' of type {}",
                    field.field_type
                ),
            ));
        }
        Ok(Predicate::Compare {
            field: field.id,
            field_type,
            op,
            value,
        })
    }

    pub fn and(self, other: Predicate) -> Predicate {
        Predicate::And(Box::new(self), Box::new(other))
    }

    pub fn or(self, other: Predicate) -> Predicate {
        Predicate::Or(Box::new(self), Box::new(other))
    }
}

fn all_true(n: usize) -> BooleanArray {
    BooleanArray::from(vec![true; n])
}

/// `null` (unknown) counts as a possible match.
fn unknown_is_true(a: &BooleanArray) -> BooleanArray {
    a.iter().map(|v| Some(v.unwrap_or(true))).collect()
}

impl FilePredicate for Predicate {
    fn may_match(&self, stats: &StatsView<'_>) -> Result<BooleanArray> {
        let n = stats.num_rows();
        let context = "evaluating a predicate over statistics";
        Ok(match self {
            Predicate::True => all_true(n),
            Predicate::IsNull { field } => match stats.null_counts(*field) {
                Some(nulls) => nulls
                    .iter()
                    .map(|c| Some(c.is_none_or(|c| c > 0)))
                    .collect(),
                None => all_true(n),
            },
            Predicate::And(a, b) => boolean::and(&a.may_match(stats)?, &b.may_match(stats)?)
                .map_err(|e| Error::arrow(context, e))?,
            Predicate::Or(a, b) => boolean::or(&a.may_match(stats)?, &b.may_match(stats)?)
                .map_err(|e| Error::arrow(context, e))?,
            Predicate::Compare {
                field,
                field_type,
                op,
                value,
            } => {
                let scalar = Scalar::new(scalar_array(*field_type, Some(value))?);
                let test = |array: Option<ArrayRef>,
                            f: fn(
                    &dyn arrow::array::Datum,
                    &dyn arrow::array::Datum,
                )
                    -> Result<BooleanArray, arrow::error::ArrowError>|
                 -> Result<BooleanArray> {
                    match array {
                        Some(a) => Ok(unknown_is_true(
                            &f(&a, &scalar).map_err(|e| Error::arrow(context, e))?,
                        )),
                        None => Ok(all_true(n)),
                    }
                };
                let by_columns = match op {
                    CompareOp::Eq => boolean::and(
                        &test(stats.min(*field), cmp::lt_eq)?,
                        &test(stats.max(*field), cmp::gt_eq)?,
                    )
                    .map_err(|e| Error::arrow(context, e))?,
                    CompareOp::Lt => test(stats.min(*field), cmp::lt)?,
                    CompareOp::LtEq => test(stats.min(*field), cmp::lt_eq)?,
                    CompareOp::Gt => test(stats.max(*field), cmp::gt)?,
                    CompareOp::GtEq => test(stats.max(*field), cmp::gt_eq)?,
                    CompareOp::NotEq => {
                        // Only a file whose every value equals `value` is ruled out.
                        let lo = test(stats.min(*field), cmp::neq)?;
                        let hi = test(stats.max(*field), cmp::neq)?;
                        boolean::or(&lo, &hi).map_err(|e| Error::arrow(context, e))?
                    }
                };
                let with_partitions = match op {
                    CompareOp::Eq => boolean::and(
                        &by_columns,
                        &bucket_match(stats, *field, *field_type, value)?,
                    )
                    .map_err(|e| Error::arrow(context, e))?,
                    _ => by_columns,
                };
                // A file whose values are all null matches no comparison.
                match stats.null_counts(*field) {
                    Some(nulls) => {
                        let rows = stats.row_counts();
                        let has_values: BooleanArray = nulls
                            .iter()
                            .zip(rows.iter())
                            .map(|(nulls, rows)| Some(nulls.is_none_or(|c| Some(c) != rows)))
                            .collect();
                        boolean::and(&with_partitions, &has_values)
                            .map_err(|e| Error::arrow(context, e))?
                    }
                    None => with_partitions,
                }
            }
        })
    }
}

/// For `field = value`: rows whose `bucket[N](field)` partition cannot hold `value`'s bucket
/// are ruled out.
fn bucket_match(
    stats: &StatsView<'_>,
    field: FieldId,
    field_type: PrimitiveType,
    value: &Value,
) -> Result<BooleanArray> {
    let n = stats.num_rows();
    let mut result = all_true(n);
    let specs: Vec<&PartitionSpec> = match stats.level() {
        StatsLevel::Files(spec) => vec![spec],
        // Partition summary columns are keyed by partition field id, which is unique across
        // specs, so any spec's bucket field can be looked up.
        StatsLevel::Manifests => return Ok(result),
    };
    for spec in specs {
        for pf in spec.fields().iter().filter(|pf| pf.source_id == field) {
            let Transform::Bucket(_) = pf.transform else {
                continue;
            };
            let Some(bucket) = pf
                .transform
                .apply(field_type, Some(value))
                .map_err(Error::InvalidMetadata)?
            else {
                continue;
            };
            let Some((lo, hi)) = stats.partition_bounds(pf.field_id) else {
                continue;
            };
            let scalar = Scalar::new(scalar_array(PrimitiveType::Int, Some(&bucket))?);
            let context = "evaluating a bucket predicate";
            let ok_lo =
                unknown_is_true(&cmp::lt_eq(&lo, &scalar).map_err(|e| Error::arrow(context, e))?);
            let ok_hi =
                unknown_is_true(&cmp::gt_eq(&hi, &scalar).map_err(|e| Error::arrow(context, e))?);
            let both = boolean::and(&ok_lo, &ok_hi).map_err(|e| Error::arrow(context, e))?;
            result = boolean::and(&result, &both).map_err(|e| Error::arrow(context, e))?;
        }
    }
    Ok(result)
}

/// What planning considered and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanMetrics {
    pub manifests_total: usize,
    pub manifests_kept: usize,
    pub files_total: u64,
    pub files_kept: u64,
    /// Row groups of the kept files left out by statistics a scan reads itself (those of
    /// struct fields, which DataFusion's own row-group pruning cannot read).
    pub row_groups_skipped: usize,
}

/// The data files a scan must read, grouped by the manifest that lists them.
#[derive(Debug, Clone, Default)]
pub struct ScanPlan {
    /// Each manifest filtered to its kept files.
    pub manifests: Vec<Manifest>,
    pub metrics: ScanMetrics,
}

impl ScanPlan {
    /// The kept files, decoded. Engines that only need paths and counts can read the
    /// manifests' columns instead.
    pub fn data_files(&self) -> Vec<DataFile> {
        self.manifests.iter().flat_map(|m| m.data_files()).collect()
    }

    /// Rows the kept files hold, less those deleted by vector.
    pub fn record_count(&self) -> u64 {
        self.manifests
            .iter()
            .map(|m| m.total_records() - m.total_deleted())
            .sum()
    }
}

/// Plans a scan of `list` (read with `read_manifest`) under `predicate`.
pub(crate) async fn plan<F, Fut>(
    list: &crate::manifest_list::ManifestList,
    metadata: &tarn_spec::TableMetadata,
    schema: &Schema,
    predicate: &dyn FilePredicate,
    read_manifest: F,
) -> Result<ScanPlan>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Arc<Manifest>>>,
{
    let mut metrics = ScanMetrics {
        manifests_total: list.len(),
        files_total: list.total_files(),
        ..Default::default()
    };
    let keep = predicate.may_match(&StatsView::new(list.batch(), StatsLevel::Manifests, schema))?;
    let kept: Vec<String> = (0..list.len())
        .filter(|&i| keep.value(i))
        .map(|i| list.path(i).to_string())
        .collect();
    metrics.manifests_kept = kept.len();
    let manifests: Vec<Arc<Manifest>> = futures::stream::iter(kept.into_iter().map(read_manifest))
        .buffered(MANIFEST_READ_CONCURRENCY)
        .try_collect()
        .await?;
    let mut out = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let spec = metadata.spec(manifest.spec_id()).ok_or_else(|| {
            Error::invalid(
                "manifest",
                format!(
                    "partition spec {} is not in the table metadata",
                    manifest.spec_id()
                ),
            )
        })?;
        let keep = predicate.may_match(&StatsView::new(
            manifest.batch(),
            StatsLevel::Files(spec),
            schema,
        ))?;
        let filtered = if keep.true_count() == manifest.len() {
            (*manifest).clone()
        } else {
            manifest.filter(&keep)?
        };
        metrics.files_kept += filtered.len() as u64;
        if !filtered.is_empty() {
            out.push(filtered);
        }
    }
    Ok(ScanPlan {
        manifests: out,
        metrics,
    })
}
