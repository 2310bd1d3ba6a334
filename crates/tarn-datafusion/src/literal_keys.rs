//! Join keys known while planning, turned into a filter on the other side of the join.
//!
//! `MERGE INTO t USING (VALUES (7, ...), (9, ...)) AS s ON t.id = s.id`, `UPDATE t ... FROM
//! (VALUES ...)`, `DELETE FROM t WHERE id IN (SELECT k FROM (VALUES ...))`, a MERGE from a
//! micro-batch a program registered as an in-memory table, and a query's join with either
//! all join a table with keys the planner can read without running anything. DataFusion
//! learns them only once the join has read its build side (its dynamic filter), after every
//! file of the table was listed and handed to the scan, to be tested one by one as it is
//! opened. This optimizer rule writes them as a filter on the other side while planning:
//!
//! ```text
//! Inner Join: t.id = s.id                      Inner Join: t.id = s.id
//!   TableScan: t                        ⇒        Filter: t.id IN (7, 9)
//!   SubqueryAlias: s                               TableScan: t
//!     Projection: column1 AS id, ...             SubqueryAlias: s ...
//!       Values: (7, ...), (9, ...)
//! ```
//!
//! The optimizer pushes the filter into the scan, where a tarn table skips by its manifests
//! the files that cannot hold a key, unread, as it does for `WHERE id IN (7, 9)`. Many keys
//! become the range between the least and the greatest (pruning tests IN lists of up to
//! [`MAX_LISTED`] values). Keys are read through aliases, projections, filters, sorts, limits,
//! `DISTINCT`, `UNION ALL` and `GROUP BY` keys (each gives a subset of its input's keys, so
//! the input's are a superset), from a VALUES list or from a snapshot of an in-memory table,
//! which the join then reads in its place (see [`Snapshot`]).
//!
//! The filter is only a necessary condition for a row to find a partner, so it is added only
//! to a side whose unpartnered rows the join drops: the target of a MERGE without `WHEN NOT
//! MATCHED BY SOURCE` (an inner or right join), never the preserved side of an outer join,
//! the rows an anti join keeps, or a null-aware `NOT IN`. Keys that can be NULL-equal (`IS
//! NOT DISTINCT FROM` joins) and float keys (NaN and -0.0 compare differently in a hash join
//! and in a filter) are left alone.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality, Result, ScalarValue};
use datafusion::datasource::{DefaultTableSource, MemTable, provider_as_source};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    Distinct, Expr, ExprSchemable, Filter, JoinType, LogicalPlan, TableScan, lit,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The most keys written as an IN list: DataFusion's pruning rewrites lists of up to 20
/// values into ranges and gives up on longer ones.
const MAX_LISTED: usize = 20;

/// The most rows of a VALUES list, or of the in-memory tables a side scans, read for its keys
/// while planning.
const MAX_ROWS: usize = 100_000;

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct LiteralJoinKeys;

impl OptimizerRule for LiteralJoinKeys {
    fn name(&self) -> &str {
        "tarn_literal_join_keys"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(mut join) = plan else {
            return Ok(Transformed::no(plan));
        };
        if join.null_equality == NullEquality::NullEqualsNull || join.null_aware {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        // A side's keys are read only to filter the other side, from a snapshot of the
        // in-memory tables it scans; if a filter comes from them, the join reads that same
        // snapshot.
        let (filter_left, filter_right) = (
            drops_unpartnered(join.join_type, Side::Left),
            drops_unpartnered(join.join_type, Side::Right),
        );
        let keys_of = |side: &LogicalPlan, wanted: bool| match wanted {
            true => snapshot(side),
            false => Ok(Snapshot::Refused),
        };
        let left_keys = keys_of(&join.left, filter_right)?;
        let right_keys = keys_of(&join.right, filter_left)?;
        let mut left = Vec::new();
        let mut right = Vec::new();
        for (l, r) in &join.on {
            if let Some(keys) = right_keys.plan(&join.right)
                && let Some(filter) = key_filter(l, &join.left, r, keys)?
            {
                left.push(filter);
            }
            if let Some(keys) = left_keys.plan(&join.left)
                && let Some(filter) = key_filter(r, &join.right, l, keys)?
            {
                right.push(filter);
            }
        }
        if left.is_empty() && right.is_empty() {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        if !right.is_empty()
            && let Snapshot::Taken(plan) = left_keys
        {
            join.left = Arc::new(plan);
        }
        if !left.is_empty()
            && let Snapshot::Taken(plan) = right_keys
        {
            join.right = Arc::new(plan);
        }
        if let Some(predicate) = conjunction(left) {
            join.left = Arc::new(LogicalPlan::Filter(Filter::try_new(predicate, join.left)?));
        }
        if let Some(predicate) = conjunction(right) {
            join.right = Arc::new(LogicalPlan::Filter(Filter::try_new(predicate, join.right)?));
        }
        Ok(Transformed::yes(LogicalPlan::Join(join)))
    }
}

/// A side of a join as its keys are read.
enum Snapshot {
    /// It scans no in-memory table: its keys are read from the plan itself.
    Unneeded,
    /// The plan with each in-memory table it scans replaced by a table of the batches it held
    /// when the snapshot was taken: the keys read from it are those the join will see, even
    /// if the table changes before the statement runs.
    Taken(LogicalPlan),
    /// Its keys are not wanted (they would filter a side the join must keep whole), or an
    /// in-memory table it scans holds more than [`MAX_ROWS`] rows or is being written.
    Refused,
}

impl Snapshot {
    /// The plan to read `side`'s keys from, if any.
    fn plan<'a>(&'a self, side: &'a LogicalPlan) -> Option<&'a LogicalPlan> {
        match self {
            Snapshot::Unneeded => Some(side),
            Snapshot::Taken(plan) => Some(plan),
            Snapshot::Refused => None,
        }
    }
}

fn snapshot(plan: &LogicalPlan) -> Result<Snapshot> {
    // Most joins scan no in-memory table: nothing to copy.
    let scans_memory = plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::TableScan(scan) if in_memory(scan).is_some()))
    })?;
    if !scans_memory {
        return Ok(Snapshot::Unneeded);
    }
    let mut taken = false;
    let mut refused = false;
    let pinned = plan
        .clone()
        .transform_up(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(table) = in_memory(scan) else {
                return Ok(Transformed::no(node));
            };
            let mut batches = Vec::with_capacity(table.batches.len());
            let mut rows = 0;
            for partition in &table.batches {
                let Ok(partition) = partition.try_read() else {
                    refused = true;
                    return Ok(Transformed::no(node));
                };
                rows += partition.iter().map(RecordBatch::num_rows).sum::<usize>();
                batches.push(partition.clone());
            }
            if rows > MAX_ROWS {
                refused = true;
                return Ok(Transformed::no(node));
            }
            let copy = MemTable::try_new(TableProvider::schema(table), batches)?;
            let mut scan = scan.clone();
            scan.source = provider_as_source(Arc::new(copy));
            taken = true;
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })?
        .data;
    Ok(match (refused, taken) {
        (true, _) => Snapshot::Refused,
        (false, true) => Snapshot::Taken(pinned),
        (false, false) => Snapshot::Unneeded,
    })
}

fn in_memory(scan: &TableScan) -> Option<&MemTable> {
    scan.source
        .downcast_ref::<DefaultTableSource>()?
        .table_provider
        .downcast_ref::<MemTable>()
}

#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

/// Whether a join of `join_type` drops the rows of `side` that find no partner, whatever else
/// it outputs: only then may a condition every partnered row meets filter that side first.
fn drops_unpartnered(join_type: JoinType, side: Side) -> bool {
    use JoinType::*;
    match side {
        Side::Left => matches!(join_type, Inner | Right | LeftSemi | RightSemi | RightAnti),
        Side::Right => matches!(join_type, Inner | Left | LeftSemi | RightSemi | LeftAnti),
    }
}

/// The filter on `side` that the keys of `other` imply for the key pair (`key`, `other_key`),
/// unless `side` has it already; `None` when the planner cannot read `other_key`'s values
/// (see [`literal_values`]), or `key` does not come straight from a table's column.
fn key_filter(
    key: &Expr,
    side: &LogicalPlan,
    other_key: &Expr,
    other: &LogicalPlan,
) -> Result<Option<Expr>> {
    let Some((column, cast_from)) = plain_column(key, side.schema())? else {
        return Ok(None);
    };
    let key_type = key.get_type(side.schema())?;
    if !keyable(&key_type) || other_key.get_type(other.schema())? != key_type {
        return Ok(None);
    }
    let Some(base) = table_column(side, &column) else {
        return Ok(None);
    };
    let Some(values) = literal_values(other, other_key) else {
        return Ok(None);
    };
    let mut keys: Vec<ScalarValue> = Vec::with_capacity(values.len());
    for value in values.into_iter().filter(|v| !v.is_null()) {
        match cast_from.as_ref() {
            None => keys.push(value),
            // `CAST(c AS wider) = v`: only values the column's own type holds can match.
            Some(narrow) => {
                if let Ok(v) = value.cast_to(narrow)
                    && v.cast_to(&key_type).ok().as_ref() == Some(&value)
                {
                    keys.push(v);
                }
            }
        }
    }
    keys.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    keys.dedup();
    let column_expr = Expr::Column(column.clone());
    let filter = match keys.as_slice() {
        // No key can find a partner (all NULL, or none the column's type holds).
        [] => lit(false),
        list if list.len() <= MAX_LISTED => {
            column_expr.in_list(list.iter().cloned().map(lit).collect(), false)
        }
        // Sorted above: the least and the greatest.
        list => column_expr
            .clone()
            .gt_eq(lit(list[0].clone()))
            .and(column_expr.lt_eq(lit(list[list.len() - 1].clone()))),
    };
    // In the form the optimizer keeps it in (a short IN list becomes `=`s), so that a later
    // pass finds it.
    let context = SimplifyContext::builder()
        .with_schema(Arc::clone(side.schema()))
        .build();
    let filter = ExprSimplifier::new(context).simplify(filter)?;
    if has_filter(side, &as_scanned(&filter, &column.name, &base)) {
        return Ok(None);
    }
    Ok(Some(filter))
}

/// `key` as a column of `schema`, and the column's type when the key casts it losslessly to a
/// wider one (`CAST(int_column AS BIGINT)`, as type coercion writes a join of an INT column
/// with BIGINT literals).
fn plain_column(key: &Expr, schema: &DFSchema) -> Result<Option<(Column, Option<DataType>)>> {
    match key {
        Expr::Column(c) => Ok(Some((c.clone(), None))),
        Expr::Cast(Cast { expr, field }) => {
            let data_type = field.data_type();
            let Expr::Column(c) = expr.as_ref() else {
                return Ok(None);
            };
            let from = expr.get_type(schema)?;
            let widens =
                widens_integer(&from, data_type) || (is_string(&from) && is_string(data_type));
            Ok(widens.then(|| (c.clone(), Some(from))))
        }
        _ => Ok(None),
    }
}

/// Whether every value of integer type `from` is one of integer type `to`.
fn widens_integer(from: &DataType, to: &DataType) -> bool {
    let (Some(from_width), Some(to_width)) = (from.primitive_width(), to.primitive_width()) else {
        return false;
    };
    from.is_integer()
        && to.is_integer()
        && match (from.is_signed_integer(), to.is_signed_integer()) {
            (false, true) => to_width > from_width,
            (true, false) => false,
            _ => to_width >= from_width,
        }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Key types whose filter compares as the join does. Floats are not: a hash join pairs NaN
/// with NaN and tells -0.0 from 0.0, a filter the other way round. Nor are intervals, whose
/// order (a month against 30 days) is not the join's field-by-field equality.
fn keyable(data_type: &DataType) -> bool {
    data_type.is_integer()
        || is_string(data_type)
        || matches!(
            data_type,
            DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Duration(_)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Boolean
        )
}

/// The name of the table column `column` of `plan` reads, through aliases, projections that
/// pass columns on and filters; `None` for anything else (a computed key, or one from below a
/// join or an aggregate, where a filter might not reach a scan).
fn table_column(plan: &LogicalPlan, column: &Column) -> Option<String> {
    let index = plan.schema().index_of_column(column).ok()?;
    match plan {
        LogicalPlan::TableScan(_) => Some(column.name.clone()),
        LogicalPlan::SubqueryAlias(alias) => {
            table_column(&alias.input, &column_at(&alias.input, index))
        }
        LogicalPlan::Filter(filter) => table_column(&filter.input, column),
        LogicalPlan::Projection(projection) => match unaliased(&projection.expr[index]) {
            Expr::Column(c) => table_column(&projection.input, c),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `plan`, down to its table scan, filters by `wanted` (with unqualified columns)
/// already: the filter this rule added in an earlier pass of the optimizer, pushed into the
/// scan or not.
fn has_filter(plan: &LogicalPlan, wanted: &Expr) -> bool {
    let conjuncts = split_conjunction(wanted);
    let found = |filters: &[&Expr]| {
        let filters: Vec<Expr> = filters.iter().map(|f| unqualified(f)).collect();
        conjuncts.iter().all(|c| filters.contains(c))
    };
    match plan {
        LogicalPlan::TableScan(scan) => found(&scan.filters.iter().collect::<Vec<_>>()),
        LogicalPlan::Filter(filter) => {
            found(&split_conjunction(&filter.predicate)) || has_filter(&filter.input, wanted)
        }
        LogicalPlan::SubqueryAlias(_) | LogicalPlan::Projection(_) => {
            plan.inputs().iter().any(|input| has_filter(input, wanted))
        }
        _ => false,
    }
}

/// `filter` as a scan holds it once pushed down: columns unqualified, `column` under the
/// table's name for it.
fn as_scanned(filter: &Expr, column: &str, base: &str) -> Expr {
    unqualified(filter)
        .transform(|e| match e {
            Expr::Column(c) if c.name == column => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(base),
            ))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| filter.clone())
}

fn unqualified(expr: &Expr) -> Expr {
    expr.clone()
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(c.name),
            ))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| expr.clone())
}

/// The values `key` takes over the rows of `plan`, or a superset of them, when the planner
/// can read them without running anything: a column of a VALUES list or of an in-memory
/// table's snapshot (see [`Snapshot`]), through the nodes [`column_values`] follows, and
/// casts of it.
fn literal_values(plan: &LogicalPlan, key: &Expr) -> Option<Vec<ScalarValue>> {
    match unaliased(key) {
        Expr::Column(column) => column_values(plan, column),
        Expr::Cast(Cast { expr, field }) => literal_values(plan, expr)?
            .into_iter()
            .map(|v| v.cast_to(field.data_type()).ok())
            .collect(),
        _ => None,
    }
}

fn column_values(plan: &LogicalPlan, column: &Column) -> Option<Vec<ScalarValue>> {
    let index = plan.schema().index_of_column(column).ok()?;
    match plan {
        LogicalPlan::Values(values) => {
            if values.values.len() > MAX_ROWS {
                return None;
            }
            let data_type = values.schema.field(index).data_type();
            values
                .values
                .iter()
                .map(|row| match unaliased(row.get(index)?) {
                    Expr::Literal(value, _) => value.cast_to(data_type).ok(),
                    _ => None,
                })
                .collect()
        }
        // Only a snapshot's tables are met here (see `snapshot`).
        LogicalPlan::TableScan(scan) => {
            let table = in_memory(scan)?;
            let at = match &scan.projection {
                Some(projection) => *projection.get(index)?,
                None => index,
            };
            let mut values = Vec::new();
            for partition in &table.batches {
                for batch in partition.try_read().ok()?.iter() {
                    let column = batch.column(at);
                    for row in 0..column.len() {
                        values.push(ScalarValue::try_from_array(column, row).ok()?);
                    }
                }
            }
            Some(values)
        }
        LogicalPlan::SubqueryAlias(alias) => {
            column_values(&alias.input, &column_at(&alias.input, index))
        }
        // Rows among their input's: its keys are a superset of theirs.
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => column_values(plan.inputs()[0], column),
        LogicalPlan::Projection(projection) => {
            literal_values(&projection.input, &projection.expr[index])
        }
        // A grouping key takes the values its expression takes over the input.
        LogicalPlan::Aggregate(aggregate) => {
            literal_values(&aggregate.input, aggregate.group_expr.get(index)?)
        }
        LogicalPlan::Union(union) => {
            let mut values = Vec::new();
            for input in &union.inputs {
                values.extend(column_values(input, &column_at(input, index))?);
            }
            Some(values)
        }
        _ => None,
    }
}

fn column_at(plan: &LogicalPlan, index: usize) -> Column {
    Column::from(plan.schema().qualified_field(index))
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        e => e,
    }
}
