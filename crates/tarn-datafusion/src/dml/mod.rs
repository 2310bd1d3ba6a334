//! Row-level DML on tarn tables, DELETE, UPDATE and MERGE INTO, as DataFusion plans.
//!
//! DataFusion plans each statement into a `LogicalPlan::Dml`; its `delete_from`/`update`
//! hooks would receive only the filters it could extract, and lose subqueries, so tarn does
//! not use them. Instead an analyzer rule ([`DmlRule`]) replaces every DML statement on a
//! tarn table, before the optimizer runs, by a [`TarnDml`] node over an ordinary query:
//!
//! ```text
//! TarnDml                       → TarnCommitExec       one RowDelta (merge-on-read) or Rewrite
//!   │                                │                 (copy-on-write) commit, by the conflict
//!   │                                │                 matrix; on a retryable conflict, the
//!   │                                │                 statement runs again on the newest version
//!   │                           → TarnDmlWriteExec     affected positions as deletion vectors (or
//!   │                                │                 copies of their files without them); the
//!   │                                │                 old values of updated rows read by
//!   │                                │                 position; new rows into new files
//!   └─ pass 1 (LogicalPlan)     → physical plan:       the target with row identities (_file, _pos)
//!        DELETE  project(_file, _pos) ∘ filter(p) ∘ scan(t)
//!        UPDATE  project(_file, _pos, assigned values) ∘ filter(p) ∘ scan(t) [⋈ FROM]
//!        MERGE   the first true WHEN clause per row as an action, and the values it
//!                assigns ∘ scan(t) ⋈ source
//! ```
//!
//! Subqueries, correlated predicates and joins are planned by DataFusion like any query, and
//! pass 1 reads only the columns it needs. Where deterministic conditions pick the rows to
//! delete by the target's columns alone (a DELETE's WHERE, a MERGE ON FALSE's NOT MATCHED BY
//! SOURCE ... DELETE), pass 1 reads a file that the partition values or bounds in its
//! manifest decide as one row with a NULL `_pos`, standing for all its live rows
//! ([`crate::file_rows`]): whole partitions leave the table from its manifests, unread, and
//! a file that loses every row is its own change log. A row's fate is decided once, in pass 1, so
//! volatile functions cannot make it inconsistent. Nothing happens before the plan runs:
//! EXPLAIN shows the whole plan and changes nothing, and a plan dropped before it finishes
//! commits nothing (the files it wrote are orphans, removed by maintenance). A statement
//! that affects no row commits no version and returns 0.

mod pass1;
pub(crate) mod write;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::datasource::{DefaultTableSource, provider_as_source};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    DmlStatement, Expr, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder,
    TableScanBuilder, TableSource, UserDefinedLogicalNode, UserDefinedLogicalNodeCore, WriteOp,
    dml::InsertOp,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use tarn_core::Table;
use tarn_core::properties::{
    DELETE_MODE_PROPERTY, MERGE_MODE_PROPERTY, RowLevelMode, UPDATE_MODE_PROPERTY,
};
use tarn_spec::Operation;

use crate::commit::{CommitExec, CommitKind, Rerun};
use crate::provider::TarnTable;

pub(crate) use write::DmlWriteExec;

/// What a DML statement does with the rows pass 1 returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) enum DmlKind {
    /// Pass 1 returns `_file, _pos` of rows to delete.
    Delete,
    /// Pass 1 returns `_file, _pos` and the new values of the assigned columns of each
    /// updated row.
    Update,
    /// Pass 1 returns `_file, _pos, action` (the index of the clause that runs) and the
    /// values the clauses assign, per column any clause assigns; `_file` and `_pos` are NULL
    /// for inserted rows.
    Merge(Vec<MergeClause>),
}

impl DmlKind {
    fn operation(&self) -> Operation {
        match self {
            DmlKind::Delete => Operation::Delete,
            DmlKind::Update => Operation::Update,
            DmlKind::Merge(_) => Operation::Merge,
        }
    }

    /// How the target's properties say this kind of statement is written.
    fn mode(&self, target: &TarnTable) -> Result<RowLevelMode> {
        let property = match self {
            DmlKind::Delete => DELETE_MODE_PROPERTY,
            DmlKind::Update => UPDATE_MODE_PROPERTY,
            DmlKind::Merge(_) => MERGE_MODE_PROPERTY,
        };
        RowLevelMode::from_properties(target.table().metadata().properties(), property)
            .map_err(crate::error::to_df)
    }
}

/// The kind of action a row-level change takes on a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) enum ClauseAction {
    Update,
    Delete,
    Insert,
}

/// A MERGE clause as the write step sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub(crate) struct MergeClause {
    pub action: ClauseAction,
    /// The columns it assigns: the SET columns of an UPDATE, every column for an INSERT.
    pub assigns: Vec<String>,
}

/// How messages name a write that replaces the rows a condition picks (REPLACE WHERE, a
/// static partition overwrite), which runs as a MERGE.
pub(crate) const REPLACING: &str = "replacing rows of";

/// A DML statement on a tarn table: pass 1 as its input; see the module documentation.
#[derive(Debug, Clone)]
pub struct TarnDml {
    kind: DmlKind,
    /// What its version records: the kind's operation, or `overwrite` for a replace.
    operation: Operation,
    target: Arc<TarnTable>,
    input: LogicalPlan,
    /// The statement as DataFusion planned it, to plan again after a conflict.
    statement: Arc<LogicalPlan>,
    schema: DFSchemaRef,
}

impl TarnDml {
    fn key(&self) -> (&DmlKind, &str, u64, &LogicalPlan) {
        (
            &self.kind,
            self.target.name(),
            self.target.version().get(),
            &self.input,
        )
    }
}

impl PartialEq for TarnDml {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for TarnDml {}

impl Hash for TarnDml {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl PartialOrd for TarnDml {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let (a, b) = (self.key(), other.key());
        (a.0, a.1, a.2)
            .partial_cmp(&(b.0, b.1, b.2))
            .filter(|o| *o != Ordering::Equal)
            .or_else(|| a.3.partial_cmp(b.3))
    }
}

impl UserDefinedLogicalNodeCore for TarnDml {
    fn name(&self) -> &str {
        "TarnDml"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "TarnDml: op={} table={} version={}",
            self.operation.as_str(),
            self.target.name(),
            self.target.version()
        )
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        if !exprs.is_empty() || inputs.len() != 1 {
            return Err(DataFusionError::Internal(
                "TarnDml takes no expressions and one input".into(),
            ));
        }
        Ok(TarnDml {
            input: inputs.remove(0),
            ..self.clone()
        })
    }

    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        // Every column of pass 1 is used.
        Some(vec![(0..self.input.schema().fields().len()).collect()])
    }
}

/// The tarn table a DML statement targets, if it is one.
fn tarn_target(target: &Arc<dyn TableSource>) -> Option<Arc<TarnTable>> {
    let source = target.downcast_ref::<DefaultTableSource>()?;
    source
        .table_provider
        .downcast_ref::<TarnTable>()
        .map(|t| Arc::new(t.clone()))
}

/// The analyzer rule that plans DML on tarn tables; see the module documentation.
#[derive(Debug, Default)]
pub struct DmlRule;

impl AnalyzerRule for DmlRule {
    fn name(&self) -> &str {
        "tarn_dml"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(|plan| {
            let LogicalPlan::Dml(dml) = plan else {
                return Ok(Transformed::no(plan));
            };
            let dml = truncate_as_delete(dml)?;
            let row_level = matches!(
                dml.op,
                WriteOp::Delete | WriteOp::Update | WriteOp::MergeInto(_)
            );
            // A table CREATE [OR REPLACE] TABLE AS is creating has the query's own columns:
            // nothing to check (a value its query cannot convert fails as the query's error).
            if let (WriteOp::Insert(_), Some(target)) = (&dml.op, tarn_target(&dml.target))
                && !target.table().is_staged()
                && !target.table().is_replacement()
            {
                check_omitted_columns(&dml, &target)?;
                check_inserted_values(&dml, &target)?;
                check_conversions(&dml, &target, dml.input.as_ref())?;
                check_inserted_types(&dml, &target)?;
            }
            match tarn_target(&dml.target) {
                Some(target) if row_level => {
                    let node = plan_dml(dml, target, config)?;
                    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(node),
                    })))
                }
                _ => Ok(Transformed::no(LogicalPlan::Dml(dml))),
            }
        })
        .map(|t| t.data)
    }
}

/// `TRUNCATE [TABLE] t` on a tarn table is `DELETE FROM t`: one version that removes every
/// row, which time travel and the change feed see like any DELETE. (DataFusion would hand it
/// to the provider's `truncate` hook, outside the DML plan and its commit.)
fn truncate_as_delete(dml: DmlStatement) -> Result<DmlStatement> {
    if dml.op != WriteOp::Truncate || tarn_target(&dml.target).is_none() {
        return Ok(dml);
    }
    let scan = LogicalPlanBuilder::scan(dml.table_name.clone(), dml.target.clone(), None)?;
    Ok(DmlStatement::new(
        dml.table_name,
        dml.target,
        WriteOp::Delete,
        Arc::new(scan.build()?),
    ))
}

/// Whether `dml` is the MERGE a write that replaces the rows a condition picks runs as (see
/// [`crate::replace`]).
fn is_replace(dml: &DmlStatement) -> bool {
    matches!(dml.op, WriteOp::MergeInto(_))
        && matches!(dml.input.as_ref(), LogicalPlan::SubqueryAlias(source)
            if source.alias.table() == crate::replace::SOURCE)
}

/// The statement `dml` is written as, for messages.
fn statement(dml: &DmlStatement) -> &'static str {
    if is_replace(dml) {
        return REPLACING;
    }
    match &dml.op {
        WriteOp::Insert(InsertOp::Overwrite) => "INSERT OVERWRITE",
        WriteOp::Insert(InsertOp::Replace) => "REPLACE INTO",
        WriteOp::Insert(InsertOp::Append) => "INSERT INTO",
        WriteOp::Update => "UPDATE",
        WriteOp::Delete => "DELETE FROM",
        WriteOp::Ctas => "CREATE TABLE AS",
        WriteOp::Truncate => "TRUNCATE",
        WriteOp::MergeInto(_) => "MERGE INTO",
        _ => "writing to",
    }
}

/// `INSERT INTO t (cols) ...` that leaves out a NOT NULL column without a default is
/// refused by that column's name (DataFusion fills it with a NULL that would fail only when
/// the rows are written, as "1 row has NULL").
fn check_omitted_columns(dml: &DmlStatement, target: &TarnTable) -> Result<()> {
    let LogicalPlan::Projection(projection) = dml.input.as_ref() else {
        return Ok(());
    };
    for (expr, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let value = match expr.clone().unalias() {
            Expr::Cast(cast) => *cast.expr,
            other => other,
        };
        let Expr::Literal(literal, _) = value else {
            continue;
        };
        let required = target
            .read_schema()
            .field_by_name(field.name())
            .is_some_and(|f| f.required);
        if literal.is_null() && required {
            return Err(DataFusionError::Plan(format!(
                "{} {}: column '{}' is NOT NULL, but the INSERT gives it no value; \
                 name it in the column list with a value",
                statement(dml),
                target.name(),
                field.name(),
            )));
        }
    }
    Ok(())
}

/// `INSERT ... VALUES`: a value that cannot be stored in its column is reported by the
/// column's name, before anything runs (DataFusion would report a cast of an unnamed value,
/// or a NULL in `column1`).
fn check_inserted_values(dml: &DmlStatement, target: &TarnTable) -> Result<()> {
    let LogicalPlan::Projection(projection) = dml.input.as_ref() else {
        return Ok(());
    };
    let LogicalPlan::Values(values) = projection.input.as_ref() else {
        return Ok(());
    };
    for (expr, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let Expr::Column(column) = expr.clone().unalias() else {
            continue;
        };
        let Ok(k) = values.schema.index_of_column(&column) else {
            continue;
        };
        let Some(column_type) = target
            .read_schema()
            .field_by_name(field.name())
            .map(|f| (f.required, f.field_type.clone()))
        else {
            continue;
        };
        for (row, exprs) in values.values.iter().enumerate() {
            let Some(value) = exprs.get(k) else { continue };
            let (literal, to) = match value {
                Expr::Cast(cast) => match cast.expr.as_ref() {
                    Expr::Literal(v, _) => (v, Some(cast.field.data_type())),
                    _ => continue,
                },
                Expr::Literal(v, _) => (v, None),
                _ => continue,
            };
            let (required, ty) = &column_type;
            if literal.is_null() && *required {
                return Err(DataFusionError::Plan(format!(
                    "{} {}: column '{}' is NOT NULL, but row {} gives NULL",
                    statement(dml),
                    target.name(),
                    field.name(),
                    row + 1
                )));
            }
            if let Some(to) = to
                && let Err(e) = literal.cast_to(to)
            {
                return Err(DataFusionError::Plan(format!(
                    "{} {}: row {} gives {} for column '{}', which is {}: {}",
                    statement(dml),
                    target.name(),
                    row + 1,
                    shown_value(literal),
                    field.name(),
                    crate::convert::sql_column_type(ty),
                    crate::error::message_of(&e)
                )));
            }
        }
    }
    Ok(())
}

/// A value as SQL writes it: a string in quotes.
fn shown_value(value: &ScalarValue) -> String {
    match value.try_as_str() {
        Some(Some(text)) => crate::convert::string_literal(text),
        _ => value.to_string(),
    }
}

/// A number assigned to a time column, or a time to a number column, by UPDATE or MERGE is
/// an error, as in PostgreSQL and DuckDB (see [`check_inserted_types`]). So is a struct
/// value with a field its column's type lacks (`SET s = named_struct('a', 1, 'b', 2)` into a
/// `STRUCT<a INT>`): DataFusion converts one struct type to another by
/// field name, so the field's values would be dropped without a word. `plan` computes the
/// new rows: its top projection is where DataFusion casts each value to its column's type,
/// or, for a MERGE, pass 1's (under its filter), which leaves the cast to the write.
fn check_conversions(dml: &DmlStatement, target: &TarnTable, plan: &LogicalPlan) -> Result<()> {
    let plan = match plan {
        LogicalPlan::Filter(filter) => filter.input.as_ref(),
        plan => plan,
    };
    let LogicalPlan::Projection(projection) = plan else {
        return Ok(());
    };
    let columns = datafusion::catalog::TableProvider::schema(target);
    for (expr, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let Ok(column) = columns.field_with_name(field.name()) else {
            continue;
        };
        // The types converted to the column's: the value's own, and those cast to it
        // within (each branch of a MERGE's CASE is).
        let mut from = vec![field.data_type().clone()];
        // A value the statement writes itself that cannot become the column's type.
        let mut unconvertible = None;
        expr.apply(|e| {
            if let Expr::Cast(Cast { expr, field: to }) = e
                && to.data_type() == column.data_type()
                && let Expr::Literal(value, _) = expr.as_ref()
                && let Err(e) = value.cast_to(to.data_type())
            {
                unconvertible = Some((value.clone(), e));
                return Ok(TreeNodeRecursion::Stop);
            }
            if let Expr::Cast(Cast { expr, field: to }) | Expr::TryCast(TryCast { expr, field: to }) = e
                && to.data_type() == column.data_type()
                && let Ok(ty) = expr.get_type(projection.input.schema())
            {
                from.push(ty);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let statement = statement(dml);
        let table = target.name();
        if let Some((value, e)) = unconvertible {
            return Err(DataFusionError::Plan(format!(
                "{statement} {table}: {} cannot be stored in column '{}', which is {}: {}",
                shown_value(&value),
                field.name(),
                column_type_name(target, field.name(), column.data_type()),
                crate::error::message_of(&e)
            )));
        }
        // A number assigned to a time column or a time to a number column (INSERT's own
        // check, [`check_inserted_types`], leaves out the conversions its query writes).
        let mix = from
            .iter()
            .filter(|_| !matches!(dml.op, WriteOp::Insert(_)))
            .find_map(|ty| number_time_mix(ty, column.data_type(), field.name()));
        if let Some((path, from, to)) = mix {
            let to = column_type_name(target, &path, &to);
            return Err(DataFusionError::Plan(format!(
                "{statement} {table}: column '{path}' is {to}, but the value assigned to it is \
                 of type {from}; a number does not become a time, nor a time a number, \
                 without a word: convert it with a function (to_timestamp(x), \
                 to_date(x), extract(epoch FROM t))"
            )));
        }
        let lost = from
            .iter()
            .find_map(|ty| dropped_struct_field(ty, column.data_type(), field.name()));
        if let Some(lost) = lost {
            let LostField {
                struct_path,
                field,
                fields,
                addable,
            } = lost;
            let remedy = if addable {
                format!(
                    "leave it out, or add the field first: ALTER TABLE {table} ADD COLUMN \
                     \"{struct_path}.{field}\" <type>"
                )
            } else {
                "leave it out".to_string()
            };
            return Err(DataFusionError::Plan(format!(
                "{statement} {table}: struct column '{struct_path}' has no field '{field}' (its \
                 fields are {}), so the value's '{field}' would be lost; {remedy}",
                fields.join(", "),
            )));
        }
    }
    Ok(())
}

/// `INSERT ... SELECT` of a number into a time column, or of a time into a number column,
/// is an error, as in PostgreSQL and DuckDB: Arrow would convert it (a DOUBLE 1.5 into a
/// TIMESTAMP is 1970-01-01 00:00:00.000001), and such a value nearly always comes from a
/// query whose columns are in another order than the table's (`INSERT OVERWRITE t SELECT *
/// FROM t VERSION AS OF 3` after a column was dropped and added again). DataFusion casts
/// each column of the query to its column's type in the top projection; a conversion the
/// query writes itself (`CAST(x AS DATE)`) is inside the query and not looked at.
fn check_inserted_types(dml: &DmlStatement, target: &TarnTable) -> Result<()> {
    let plan = dml.input.as_ref();
    let LogicalPlan::Projection(projection) = plan else {
        return Ok(());
    };
    for (expr, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let Expr::Cast(Cast {
            expr: value,
            field: to,
        }) = expr.clone().unalias()
        else {
            continue;
        };
        if !matches!(value.as_ref(), Expr::Column(_)) {
            continue;
        }
        let from = value.get_type(projection.input.schema())?;
        if let Some((path, from, to)) = number_time_mix(&from, to.data_type(), field.name()) {
            let to = column_type_name(target, &path, &to);
            return Err(DataFusionError::Plan(format!(
                "{} {}: column '{path}' is {to}, but the query gives it a value of \
                 type {from}; a \
                 number does not become a time, nor a time a number, without a word. Check \
                 that the query gives the table's columns in the table's order (SELECT \
                 them by name), or convert the value yourself (CAST, to_timestamp)",
                statement(dml),
                target.name(),
            )));
        }
    }
    Ok(())
}

/// The SQL type of the column or field at `path` (Arrow's name of `ty` if not found).
fn column_type_name(target: &TarnTable, path: &str, ty: &DataType) -> String {
    target
        .read_schema()
        .field_by_path(path)
        .map(|f| crate::convert::sql_column_type(&f.field_type))
        .unwrap_or_else(|| ty.to_string())
}

/// The first part (path, value type, column type) where `from` holds a number and `to` a
/// time, or the other way round, at any depth (struct fields matched by name).
fn number_time_mix(
    from: &DataType,
    to: &DataType,
    path: &str,
) -> Option<(String, DataType, DataType)> {
    use DataType::*;
    let time = |t: &DataType| t.is_temporal();
    let number = |t: &DataType| t.is_numeric();
    match (from, to) {
        (Struct(from), Struct(to)) => from.iter().find_map(|f| {
            let t = to.iter().find(|t| t.name() == f.name())?;
            number_time_mix(
                f.data_type(),
                t.data_type(),
                &format!("{path}.{}", f.name()),
            )
        }),
        (
            List(f) | LargeList(f) | FixedSizeList(f, _) | ListView(f) | LargeListView(f),
            List(t) | LargeList(t) | FixedSizeList(t, _) | ListView(t) | LargeListView(t),
        ) => number_time_mix(f.data_type(), t.data_type(), &format!("{path}.element")),
        (from, to) if (number(from) && time(to)) || (time(from) && number(to)) => {
            Some((path.to_string(), from.clone(), to.clone()))
        }
        _ => None,
    }
}

/// A struct field a value has and its column's type lacks.
struct LostField {
    /// The struct's path in the table (`ctx`, `ctx.geo`).
    struct_path: String,
    field: String,
    /// The fields the struct does have.
    fields: Vec<String>,
    /// Whether ALTER TABLE can add the field: the struct is not inside a list or map.
    addable: bool,
}

/// The first struct field that `from` has and `to` lacks, at any depth (through lists and
/// maps too): a field a conversion from `from` to `to` would drop. `path` names `to`.
fn dropped_struct_field(from: &DataType, to: &DataType, path: &str) -> Option<LostField> {
    use DataType::*;
    match (from, to) {
        (Struct(from), Struct(to)) => {
            from.iter()
                .find_map(|f| match to.iter().find(|t| t.name() == f.name()) {
                    None => Some(LostField {
                        struct_path: path.to_string(),
                        field: f.name().clone(),
                        fields: to.iter().map(|t| t.name().clone()).collect(),
                        addable: true,
                    }),
                    Some(t) => dropped_struct_field(
                        f.data_type(),
                        t.data_type(),
                        &format!("{path}.{}", f.name()),
                    ),
                })
        }
        (
            List(f) | LargeList(f) | FixedSizeList(f, _) | ListView(f) | LargeListView(f),
            List(t) | LargeList(t) | FixedSizeList(t, _) | ListView(t) | LargeListView(t),
        ) => dropped_struct_field(f.data_type(), t.data_type(), &format!("{path}.element")).map(
            |lost| LostField {
                addable: false,
                ..lost
            },
        ),
        // A map's entries convert by position: key to key, value to value.
        (Map(f, _), Map(t, _)) => match (f.data_type(), t.data_type()) {
            (Struct(f), Struct(t)) => f.iter().zip(t.iter()).find_map(|(f, t)| {
                dropped_struct_field(
                    f.data_type(),
                    t.data_type(),
                    &format!("{path}.{}", t.name()),
                )
                .map(|lost| LostField {
                    addable: false,
                    ..lost
                })
            }),
            _ => None,
        },
        _ => None,
    }
}

fn plan_dml(dml: DmlStatement, target: Arc<TarnTable>, config: &ConfigOptions) -> Result<TarnDml> {
    let statement = Arc::new(LogicalPlan::Dml(dml.clone()));
    let (kind, input) = pass1::plan(&dml, &target, config)?;
    check_conversions(&dml, &target, &input)?;
    let operation = match is_replace(&dml) {
        true => Operation::Overwrite,
        false => kind.operation(),
    };
    Ok(TarnDml {
        kind,
        operation,
        target,
        input,
        statement,
        schema: Arc::new(DFSchema::try_from(dml.output_schema.as_arrow().clone())?),
    })
}

/// Plans [`TarnDml`] nodes into the commit and write execution nodes.
#[derive(Debug, Default)]
pub struct DmlPlanner;

#[async_trait]
impl ExtensionPlanner for DmlPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(dml) = node.as_any().downcast_ref::<TarnDml>() else {
            return Ok(None);
        };
        let [pass1] = physical_inputs else {
            return Err(DataFusionError::Internal("TarnDml has one input".into()));
        };
        let mode = dml.kind.mode(&dml.target)?;
        let write = Arc::new(DmlWriteExec::new(
            pass1.clone(),
            dml.target.clone(),
            dml.kind.clone(),
            mode,
        ));
        // A session that is a SessionState can plan the statement again after a conflict.
        let rerun = session
            .as_any()
            .downcast_ref::<SessionState>()
            .map(|state| {
                Arc::new(RerunDml {
                    state: state.clone(),
                    statement: dml.statement.clone(),
                }) as Arc<dyn Rerun>
            });
        Ok(Some(Arc::new(CommitExec::new(
            write,
            dml.target.table().clone(),
            dml.target.name().to_string(),
            match mode {
                RowLevelMode::CopyOnWrite => CommitKind::Rewrite(dml.operation),
                RowLevelMode::MergeOnRead => CommitKind::RowDelta(dml.operation),
            },
            BTreeMap::new(),
            rerun,
        ))))
    }
}

/// Plans a DML statement again on the newest versions of the tarn tables it reads.
#[derive(Debug)]
struct RerunDml {
    state: SessionState,
    statement: Arc<LogicalPlan>,
}

#[async_trait]
impl Rerun for RerunDml {
    async fn plan_again(&self) -> Result<(Arc<dyn ExecutionPlan>, Table)> {
        let fresh = refreshed(self.statement.as_ref().clone()).await?;
        let plan = self.state.create_physical_plan(&fresh).await?;
        let commit = plan.downcast_ref::<CommitExec>().ok_or_else(|| {
            DataFusionError::Internal("a DML statement planned again has no commit".into())
        })?;
        let (write, table) = commit.parts();
        Ok((write.clone(), table.clone()))
    }
}

/// `plan` with every tarn table it reads (the target included) at its newest version,
/// bound again by column name, so a statement still runs after a concurrent ADD COLUMN or
/// widening. A change that removes a column the statement names cannot be bound: that is
/// reported as the conflict it is.
async fn refreshed(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut tables: Vec<Arc<TarnTable>> = Vec::new();
    plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p
            && let Some(t) = tarn_target(&scan.source)
            && !t.is_pinned()
        {
            tables.push(t);
        }
        if let LogicalPlan::Dml(dml) = p
            && let Some(t) = tarn_target(&dml.target)
        {
            tables.push(t);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let mut fresh: BTreeMap<String, Arc<dyn TableSource>> = BTreeMap::new();
    for t in tables {
        let url = t.table().location().url().to_string();
        if fresh.contains_key(&url) {
            continue;
        }
        let latest = t.table().refresh().await.map_err(crate::error::to_df)?;
        let provider = TarnTable::new(latest, t.name(), t.store_url().clone());
        fresh.insert(url, provider_as_source(Arc::new(provider)));
    }
    let swap = |source: &Arc<dyn TableSource>| -> Option<Arc<dyn TableSource>> {
        let t = tarn_target(source)?;
        if t.is_pinned() {
            return None;
        }
        fresh.get(t.table().location().url()).cloned()
    };
    let rebound = plan.transform_up_with_subqueries(|p| match p {
        LogicalPlan::TableScan(scan) => match swap(&scan.source) {
            Some(source) => {
                let scan = TableScanBuilder::new(scan.table_name, source)
                    .with_projection(scan.projection)
                    .with_filters(scan.filters)
                    .with_fetch(scan.fetch)
                    .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
        },
        LogicalPlan::Dml(dml) => {
            let target = swap(&dml.target).unwrap_or(dml.target);
            Ok(Transformed::yes(LogicalPlan::Dml(DmlStatement::new(
                dml.table_name,
                target,
                dml.op,
                dml.input,
            ))))
        }
        other => Ok(Transformed::yes(other.recompute_schema()?)),
    });
    rebound.map(|t| t.data).map_err(|e| {
        DataFusionError::Plan(format!(
            "a table this statement reads changed its schema while the statement ran, and \
             the statement no longer fits it ({e}); run it again"
        ))
    })
}

/// The query planner of sessions with tarn: DataFusion's, with an extension planner for
/// tarn's DML nodes ([`TarnDml`]). Plans without them go to the planner the session had
/// before.
#[derive(Debug)]
pub struct TarnQueryPlanner {
    fallback: Arc<dyn QueryPlanner + Send + Sync>,
}

impl TarnQueryPlanner {
    pub fn new(fallback: Arc<dyn QueryPlanner + Send + Sync>) -> Self {
        TarnQueryPlanner { fallback }
    }
}

#[async_trait]
impl QueryPlanner for TarnQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let has_tarn_dml = logical_plan.exists(|p| {
            Ok(matches!(p, LogicalPlan::Extension(e) if e.node.as_any().is::<TarnDml>()))
        })?;
        if has_tarn_dml {
            DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(DmlPlanner)])
                .create_physical_plan(logical_plan, session_state)
                .await
        } else {
            self.fallback
                .create_physical_plan(logical_plan, session_state)
                .await
        }
    }
}
