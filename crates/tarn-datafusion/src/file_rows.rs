//! Whole files a row-level statement decides from metadata alone (see
//! [`TarnTable::with_file_rows`](crate::provider::TarnTable::with_file_rows)).
//!
//! A statement whose condition names some columns decides a data file whole when every row
//! of the file gives the condition the same answer, and the answer is known without reading
//! the file:
//!
//! - **by partition**: the file's partition spec partitions by the identity of each column,
//!   so every row has the file's partition values (`day = DATE '2024-01-02'` on a table
//!   partitioned by `day`);
//! - **by bounds**: the file's bounds of the other columns, with no NULL in any column named,
//!   leave no row for which the condition is not true (`ts < TIMESTAMP '2024-01-01'` on a
//!   table partitioned by `day(ts)`, for a file whose `ts` all lie before): DataFusion's
//!   pruning of the negated condition rules out every point within the bounds.
//!
//! Such a file is read as one row that stands for all its live rows: the partition values,
//! and, for the columns decided by bounds, their lower bounds (a point within the bounds,
//! where the condition is true as everywhere there), so that the statement's own filter
//! keeps the row. Everything else is read row by row.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::new_null_array;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, not};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_optimizer::pruning::{
    PruningPredicate, PruningPredicateBuilder, PruningStatistics,
};
use tarn_core::{DataFile, Table};
use tarn_spec::{FieldId, Transform};

use crate::convert::to_scalar;

/// What [`TarnTable::with_file_rows`](crate::provider::TarnTable::with_file_rows) decides
/// files by.
#[derive(Debug)]
pub(crate) struct FileRows {
    /// The columns the condition names.
    pub columns: Vec<String>,
    /// The condition (which rows the statement acts on), when files may be decided by their
    /// statistics.
    pub condition: Option<Expr>,
}

/// The files of `files` read as one row each, as those rows in `schema` (the table's columns
/// and row identities), and the other files.
pub(crate) fn file_rows_of(
    state: &dyn Session,
    table: &Table,
    files: Vec<DataFile>,
    decide: &FileRows,
    schema: &SchemaRef,
) -> Result<(Option<RecordBatch>, Vec<DataFile>)> {
    // Per column: its index in `schema` and its field id.
    let mut columns: Vec<(usize, FieldId)> = Vec::new();
    for name in &decide.columns {
        let (Some(field), Ok(index)) = (table.schema().field_by_name(name), schema.index_of(name))
        else {
            return Ok((None, files));
        };
        columns.push((index, field.id));
    }
    let metadata = table.metadata();
    // Per file, its value of each column when its spec partitions by the column itself.
    let partition_values = |file: &DataFile| -> Vec<Option<ScalarValue>> {
        (columns.iter())
            .map(|&(index, id)| {
                let spec = metadata.spec(file.spec_id)?;
                let k = (spec.fields().iter())
                    .position(|p| p.source_id == id && p.transform == Transform::Identity)?;
                let value = to_scalar(spec.types()[k], file.partition[k].as_ref());
                value.cast_to(schema.field(index).data_type()).ok()
            })
            .collect()
    };
    let mut whole: Vec<(DataFile, Vec<ScalarValue>)> = Vec::new();
    // Files some columns short of being decided by partition, with the values they have.
    let mut by_bounds: Vec<(DataFile, Vec<Option<ScalarValue>>)> = Vec::new();
    let mut rest = Vec::new();
    for file in files {
        let values = partition_values(&file);
        match values.iter().all(Option::is_some) {
            true => whole.push((file, values.into_iter().flatten().collect())),
            false if decide.condition.is_some() => by_bounds.push((file, values)),
            false => rest.push(file),
        }
    }
    if let Some(condition) = &decide.condition
        && !by_bounds.is_empty()
    {
        let never_false = never_false(state, condition, schema)?;
        let candidates: Vec<&DataFile> = by_bounds.iter().map(|(f, _)| f).collect();
        let stats = FileStats {
            table,
            files: &candidates,
        };
        // Files where a row may fail the condition (a NULL the bounds do not show counts).
        let may_fail = match &never_false {
            Some(predicate) => predicate.prune(&stats)?,
            None => vec![true; candidates.len()],
        };
        for ((file, mut values), may_fail) in by_bounds.into_iter().zip(may_fail) {
            let no_nulls = columns.iter().all(|(_, id)| {
                (file.column_stats.get(id)).is_some_and(|s| s.null_count == Some(0))
            });
            // The lower bound of each column the partition does not give: together, a
            // point within the bounds, where the condition holds as it does everywhere there.
            for (value, &(index, id)) in values.iter_mut().zip(&columns) {
                if value.is_none() {
                    *value = lower_bound(table, &file, id, schema.field(index).data_type());
                }
            }
            match (may_fail, no_nulls, values.iter().all(Option::is_some)) {
                (false, true, true) => whole.push((file, values.into_iter().flatten().collect())),
                _ => rest.push(file),
            }
        }
    } else {
        rest.extend(by_bounds.into_iter().map(|(f, _)| f));
    }
    if whole.is_empty() {
        return Ok((None, rest));
    }
    let rows = whole.len();
    let mut arrays: Vec<ArrayRef> = (schema.fields().iter())
        .map(|f| new_null_array(f.data_type(), rows))
        .collect();
    for (c, &(index, _)) in columns.iter().enumerate() {
        arrays[index] = ScalarValue::iter_to_array(whole.iter().map(|(_, v)| v[c].clone()))?;
    }
    let width = schema.fields().len();
    let paths = whole.into_iter().map(|(f, _)| f.path);
    arrays[width - 2] = Arc::new(StringArray::from_iter_values(paths));
    Ok((Some(RecordBatch::try_new(schema.clone(), arrays)?), rest))
}

/// `file`'s lower bound of column `id`, as a value of type `ty`.
fn lower_bound(table: &Table, file: &DataFile, id: FieldId, ty: &DataType) -> Option<ScalarValue> {
    let min = file.column_stats.get(&id)?.min.as_ref()?;
    let primitive = table.schema().field_by_id(id)?.primitive()?;
    let lower = to_scalar(primitive, Some(min)).cast_to(ty).ok()?;
    (!lower.is_null()).then_some(lower)
}

/// A pruning predicate that keeps the files where some row may not satisfy `condition`
/// (its negation, over statistics), when the condition is of a shape that is never NULL
/// for values that are not: comparisons of columns and literals, AND, OR, NOT, IN lists,
/// BETWEEN, IS [NOT] NULL and casts. `None` for another shape.
fn never_false(
    state: &dyn Session,
    condition: &Expr,
    schema: &SchemaRef,
) -> Result<Option<PruningPredicate>> {
    let mut plain = true;
    condition.apply(|e| {
        plain &= match e {
            Expr::Column(_) | Expr::Not(_) | Expr::Between(_) | Expr::Cast(_) => true,
            Expr::IsNull(_) | Expr::IsNotNull(_) => true,
            Expr::Literal(value, _) => !value.is_null(),
            Expr::InList(list) => list.list.iter().all(|v| matches!(v, Expr::Literal(..))),
            Expr::BinaryExpr(binary) => {
                binary.op.is_logic_operator() || crate::float_literals::is_comparison(binary.op)
            }
            _ => false,
        };
        Ok(match plain {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    })?;
    if !plain {
        return Ok(None);
    }
    // The table's columns are unqualified here.
    let unqualified = condition
        .clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            e => Ok(Transformed::no(e)),
        })?
        .data;
    // A condition this cannot plan is left to the statement's own filter, which reads.
    let df_schema = Arc::new(DFSchema::try_from(schema.as_ref().clone())?);
    let context = SimplifyContext::builder()
        .with_schema(df_schema.clone())
        .build();
    let negated = ExprSimplifier::new(context).simplify(not(unqualified));
    let Ok(physical) = negated.and_then(|n| state.create_physical_expr(n, &df_schema)) else {
        return Ok(None);
    };
    Ok(PruningPredicateBuilder::new()
        .with_file_schema(schema.clone())
        .try_build(physical)
        .ok())
}

/// Data files as pruning containers, by the statistics their manifests keep.
struct FileStats<'a> {
    table: &'a Table,
    files: &'a [&'a DataFile],
}

impl FileStats<'_> {
    /// Each file's statistic `of` for `column`.
    fn values(
        &self,
        column: &Column,
        of: impl Fn(&tarn_core::ColumnStats) -> Option<&tarn_spec::Value>,
    ) -> Option<ArrayRef> {
        let field = self.table.schema().field_by_name(&column.name)?;
        let ty = field.primitive()?;
        let values = self.files.iter().map(|f| {
            let value = f.column_stats.get(&field.id).and_then(&of);
            to_scalar(ty, value)
        });
        ScalarValue::iter_to_array(values).ok()
    }
}

impl PruningStatistics for FileStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.values(column, |s| s.min.as_ref())
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.values(column, |s| s.max.as_ref())
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let field = self.table.schema().field_by_name(&column.name)?;
        let counts =
            (self.files.iter()).map(|f| f.column_stats.get(&field.id).and_then(|s| s.null_count));
        Some(Arc::new(UInt64Array::from_iter(counts)))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts = self.files.iter().map(|f| f.record_count);
        Some(Arc::new(UInt64Array::from_iter_values(counts)))
    }

    #[allow(clippy::mutable_key_type)]
    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
