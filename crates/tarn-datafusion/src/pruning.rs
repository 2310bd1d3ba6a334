//! DataFusion predicates over tarn's manifest statistics: the one `PruningStatistics`
//! implementation, used for both manifest lists and manifests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{Field as ArrowField, Schema as ArrowSchema, SchemaRef};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::pruning::PruningPredicate;
use tarn_core::arrow_convert::parquet_column;
use tarn_core::{CompareOp, FilePredicate, Predicate, StatsView};
use tarn_spec::{Schema, Transform};

use crate::convert::from_scalar;

/// Manifest (or manifest-list) rows seen as DataFusion pruning containers.
struct ManifestStats<'a> {
    stats: &'a StatsView<'a>,
}

impl ManifestStats<'_> {
    /// A column, or a struct field named by its path (see [`struct_fields_as_columns`]).
    fn field(&self, column: &Column) -> Option<tarn_spec::FieldId> {
        self.stats
            .schema()
            .field_by_path(&column.name)
            .map(|f| f.id)
    }
}

/// `filters` with every access to a primitive field of a struct column
/// (`get_field(s, 'a', 'b')`, which SQL writes `s.a.b`) replaced by a column named by
/// its path (`s.a.b`), and `schema` with those columns added: manifests keep statistics
/// per such field, and DataFusion's pruning reads statistics of columns only.
pub fn struct_fields_as_columns(
    filters: &[Expr],
    table: &Schema,
    schema: &SchemaRef,
) -> datafusion::error::Result<(Vec<Expr>, SchemaRef)> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let mut added: Vec<ArrowField> = Vec::new();
    let rewritten = filters
        .iter()
        .map(|filter| {
            filter
                .clone()
                .transform_down(|e| {
                    let Expr::ScalarFunction(f) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    if f.name() != "get_field" {
                        return Ok(Transformed::no(e));
                    }
                    let Some(Expr::Column(column)) = f.args.first() else {
                        return Ok(Transformed::no(e));
                    };
                    let mut path = column.name.clone();
                    for arg in &f.args[1..] {
                        match arg {
                            Expr::Literal(
                                ScalarValue::Utf8(Some(n)) | ScalarValue::Utf8View(Some(n)),
                                _,
                            ) => {
                                path.push('.');
                                path.push_str(n);
                            }
                            _ => return Ok(Transformed::no(e)),
                        }
                    }
                    let Some(leaf) = table
                        .field_by_path(&path)
                        .filter(|f| table.leaf(f.id).is_some())
                    else {
                        return Ok(Transformed::no(e));
                    };
                    let ty = crate::convert::df_type(leaf.primitive().expect("a leaf"));
                    if !added.iter().any(|a| a.name() == &path) {
                        added.push(ArrowField::new(&path, ty, true));
                    }
                    Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                        path,
                    ))))
                })
                .map(|t| t.data)
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    if added.is_empty() {
        return Ok((rewritten, schema.clone()));
    }
    let mut fields: Vec<ArrowField> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(added);
    Ok((rewritten, Arc::new(ArrowSchema::new(fields))))
}

impl PruningStatistics for ManifestStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.stats.min(self.field(column)?)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.stats.max(self.field(column)?)
    }

    fn num_containers(&self) -> usize {
        self.stats.num_rows()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.stats
            .null_counts(self.field(column)?)
            .map(|a| Arc::new(a.clone()) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(self.stats.row_counts().clone()))
    }

    #[allow(clippy::mutable_key_type)]
    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// A DataFusion [`PruningPredicate`] as a tarn [`FilePredicate`].
#[derive(Debug)]
pub struct DataFusionPredicate {
    pruning: Arc<PruningPredicate>,
}

impl DataFusionPredicate {
    pub fn new(pruning: Arc<PruningPredicate>) -> Self {
        DataFusionPredicate { pruning }
    }
}

impl FilePredicate for DataFusionPredicate {
    fn may_match(&self, stats: &StatsView<'_>) -> tarn_core::Result<BooleanArray> {
        match self.pruning.prune(&ManifestStats { stats }) {
            Ok(keep) => Ok(BooleanArray::from(keep)),
            // A predicate the statistics cannot evaluate prunes nothing.
            Err(_) => Ok(BooleanArray::from(vec![true; stats.num_rows()])),
        }
    }
}

/// Every row must pass all predicates.
#[derive(Debug)]
pub struct AllOf(pub Vec<Box<dyn FilePredicate>>);

impl FilePredicate for AllOf {
    fn may_match(&self, stats: &StatsView<'_>) -> tarn_core::Result<BooleanArray> {
        let mut result = BooleanArray::from(vec![true; stats.num_rows()]);
        for p in &self.0 {
            let next = p.may_match(stats)?;
            result = datafusion::arrow::compute::and(&result, &next).map_err(|e| {
                tarn_core::Error::InvalidArgument {
                    what: "predicate",
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(result)
    }
}

/// `column = literal` conjuncts on columns that a bucket transform partitions, as tarn
/// predicates (DataFusion's pruning does not know bucket transforms).
pub fn bucket_equalities(
    filters: &[Expr],
    schema: &Schema,
    spec: &tarn_spec::PartitionSpec,
) -> Vec<Predicate> {
    let bucketed: HashSet<tarn_spec::FieldId> = spec
        .fields()
        .iter()
        .filter(|f| matches!(f.transform, Transform::Bucket(_)))
        .map(|f| f.source_id)
        .collect();
    if bucketed.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for filter in filters.iter().flat_map(split_conjunction) {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = filter
        else {
            continue;
        };
        let (column, literal) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                (c, v)
            }
            _ => continue,
        };
        let Some(field) = schema.field_by_name(&column.name) else {
            continue;
        };
        if !bucketed.contains(&field.id) {
            continue;
        }
        let Some(field_type) = field.primitive() else {
            continue;
        };
        if let Some(value) = from_scalar(field_type, literal) {
            out.push(Predicate::Compare {
                field: field.id,
                field_type,
                op: CompareOp::Eq,
                value,
            });
        }
    }
    out
}

fn split_conjunction(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = split_conjunction(left);
            v.extend(split_conjunction(right));
            v
        }
        e => vec![e],
    }
}

/// The row groups of one data file as pruning containers, for struct fields named by their
/// paths (see [`struct_fields_as_columns`]): each found in the file by its field id, so a
/// renamed field still finds its statistics. Every other column has none here (DataFusion
/// prunes row groups by those itself).
pub struct LeafRowGroups<'a> {
    metadata: &'a ParquetMetaData,
    /// By path: the Parquet leaf column and the Arrow field to read its statistics as.
    leaves: HashMap<String, (usize, &'a ArrowField)>,
}

impl<'a> LeafRowGroups<'a> {
    pub fn new(metadata: &'a ParquetMetaData, table: &Schema, leaves: &'a [ArrowField]) -> Self {
        let columns = metadata.file_metadata().schema_descr();
        let leaves = leaves
            .iter()
            .filter_map(|field| {
                let id = table.field_by_path(field.name())?.id;
                let column = parquet_column(columns, id)?;
                Some((field.name().clone(), (column, field)))
            })
            .collect();
        LeafRowGroups { metadata, leaves }
    }

    fn converter(&self, column: &Column) -> Option<StatisticsConverter<'a>> {
        let (index, field) = self.leaves.get(&column.name)?;
        StatisticsConverter::from_column_index(
            *index,
            field,
            self.metadata.file_metadata().schema_descr(),
        )
        .ok()
    }
}

impl PruningStatistics for LeafRowGroups<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_mins(self.metadata.row_groups())
            .ok()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_maxes(self.metadata.row_groups())
            .ok()
    }

    fn num_containers(&self) -> usize {
        self.metadata.num_row_groups()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_null_counts(self.metadata.row_groups())
            .ok()
            .map(|a| Arc::new(a) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(
            self.metadata
                .row_groups()
                .iter()
                .map(|g| g.num_rows() as u64),
        )))
    }

    #[allow(clippy::mutable_key_type)]
    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
