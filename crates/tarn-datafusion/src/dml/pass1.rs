//! Pass 1 of a DML statement: the rows it affects, as a query over the target with row
//! identities, built from the statement DataFusion planned.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::{
    MergeIntoAction, MergeIntoClause, MergeIntoClauseKind, MergeIntoOp,
};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{
    DmlStatement, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Projection, TableScanBuilder,
    TableSource, WriteOp, case, col, lit, not, when,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

use super::{ClauseAction, DmlKind, MergeClause};
use crate::file_rows::FileRows;
use crate::provider::{FILE_COLUMN, POS_COLUMN, TarnTable};

/// Pass 1's MERGE action column: the index of the clause that runs for the row.
pub(super) const ACTION_COLUMN: &str = "__tarn_action";
/// Marks source rows after the MERGE join (NULL where a target row has no source row).
const SOURCE_MARKER: &str = "__tarn_source";

/// What `dml` does and its pass 1.
pub(super) fn plan(
    dml: &DmlStatement,
    target: &TarnTable,
    config: &ConfigOptions,
) -> Result<(DmlKind, LogicalPlan)> {
    let statement = match &dml.op {
        WriteOp::Delete => "DELETE FROM",
        WriteOp::Update => "UPDATE",
        _ => "MERGE INTO",
    };
    target.check_writable(statement)?;
    let (kind, plan) = match &dml.op {
        WriteOp::Delete => (DmlKind::Delete, delete(dml, target)?),
        WriteOp::Update => (DmlKind::Update, update(dml, target)?),
        WriteOp::MergeInto(op) => merge(dml, op, target)?,
        other => {
            return Err(DataFusionError::Internal(format!(
                "{other} is not row-level DML"
            )));
        }
    };
    // The expressions built here are typed by the same rules as the rest of the statement.
    let plan = TypeCoercion::new().analyze(plan, config)?;
    Ok((kind, plan))
}

/// `input` with the scan of the DML target replaced by one with row identity columns.
fn with_identity(dml: &DmlStatement, identity: Arc<dyn TableSource>) -> Result<LogicalPlan> {
    let mut scans = 0;
    let plan = dml
        .input
        .as_ref()
        .clone()
        .transform_up(|plan| match plan {
            LogicalPlan::TableScan(scan) if Arc::ptr_eq(&scan.source, &dml.target) => {
                scans += 1;
                let scan = TableScanBuilder::new(scan.table_name, identity.clone())
                    .with_filters(scan.filters)
                    .with_fetch(scan.fetch)
                    .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::yes(other.recompute_schema()?)),
        })?
        .data;
    if scans != 1 {
        return Err(DataFusionError::NotImplemented(format!(
            "{} reads the table it changes {scans} times; name it once",
            dml.op
        )));
    }
    Ok(plan)
}

/// The identity column `name` of the target in `schema` (under its name or alias).
fn identity_column(schema: &DFSchema, name: &str) -> Result<Expr> {
    let fields = schema.qualified_fields_with_unqualified_name(name);
    match fields.as_slice() {
        [(qualifier, field)] => Ok(Expr::Column(Column::from((*qualifier, *field)))),
        _ => Err(DataFusionError::Plan(format!(
            "column name '{name}' is reserved for tarn's row identities; rename the other \
             column of that name in this statement"
        ))),
    }
}

/// How a DELETE may decide whole files: when it removes the rows of the target's scan that
/// deterministic conditions on the target's own columns keep (no subquery), by those
/// conditions; `None` otherwise.
fn deciding_delete(dml: &DmlStatement) -> Option<FileRows> {
    let mut conditions = Vec::new();
    let mut plan = dml.input.as_ref();
    loop {
        match plan {
            LogicalPlan::Filter(filter) => {
                conditions.push(&filter.predicate);
                plan = filter.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(alias) => plan = alias.input.as_ref(),
            LogicalPlan::TableScan(scan) if Arc::ptr_eq(&scan.source, &dml.target) => {
                conditions.extend(&scan.filters);
                return Some(FileRows {
                    columns: columns_deciding_alone(conditions.iter().copied())?,
                    condition: conditions.into_iter().cloned().reduce(Expr::and),
                });
            }
            _ => return None,
        }
    }
}

/// The columns `conditions` name, when a row's values of them alone decide the conditions:
/// they are deterministic and hold no subquery.
fn columns_deciding_alone<'a>(
    conditions: impl IntoIterator<Item = &'a Expr>,
) -> Option<Vec<String>> {
    let mut columns = Vec::new();
    for condition in conditions {
        let subquery = condition.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::OuterReferenceColumn(..)
            ))
        });
        if condition.is_volatile() || subquery.unwrap_or(true) {
            return None;
        }
        columns.extend(condition.column_refs().into_iter().map(|c| c.name.clone()));
    }
    columns.sort();
    columns.dedup();
    Some(columns)
}

/// The target with row identities; for a statement whose conditions alone pick the rows it
/// deletes (`deciding`), files it decides whole are read as one row each (see
/// [`TarnTable::with_file_rows`]).
fn identity_source(target: &TarnTable, deciding: Option<FileRows>) -> Arc<dyn TableSource> {
    match deciding {
        Some(deciding) => provider_as_source(Arc::new(target.with_file_rows(deciding))),
        None => provider_as_source(Arc::new(target.with_identity())),
    }
}

fn delete(dml: &DmlStatement, target: &TarnTable) -> Result<LogicalPlan> {
    let identity = identity_source(target, deciding_delete(dml));
    let input = with_identity(dml, identity)?;
    let columns = vec![
        identity_column(input.schema(), FILE_COLUMN)?,
        identity_column(input.schema(), POS_COLUMN)?,
    ];
    LogicalPlanBuilder::from(input).project(columns)?.build()
}

fn update(dml: &DmlStatement, target: &TarnTable) -> Result<LogicalPlan> {
    let input = with_identity(dml, identity_source(target, None))?;
    // DataFusion plans UPDATE as a projection of the new rows, assigned columns replaced.
    let LogicalPlan::Projection(projection) = input else {
        return Err(DataFusionError::Internal(
            "an UPDATE is planned as a projection of its new rows".into(),
        ));
    };
    let below = projection.input.schema();
    let file = identity_column(below, FILE_COLUMN)?;
    // The target's columns under the name the statement gave it (its alias, or its name).
    let qualifier = match &file {
        Expr::Column(c) => c.relation.clone(),
        _ => None,
    };
    let mut exprs = vec![file, identity_column(below, POS_COLUMN)?];
    // The assigned columns' new values in the table's column order. The columns an UPDATE
    // leaves alone (planned as themselves) are not read here: the write step reads them
    // for the updated rows only, by position.
    let mut assigned: HashMap<String, Expr> = projection
        .expr
        .into_iter()
        .map(|e| {
            let name = e.schema_name().to_string();
            (name, e)
        })
        .collect();
    for field in target.read_schema().fields() {
        let Some(value) = assigned.remove(&field.name) else {
            continue;
        };
        let unchanged = matches!(
            value.clone().unalias(),
            Expr::Column(c) if c.name == field.name && c.relation == qualifier
        );
        if !unchanged {
            exprs.push(value);
        }
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        projection.input,
    )?))
}

/// MERGE: the target with identities joined with the source, each candidate row's first
/// true clause (in written order) as its action, the rows with an action, and their new
/// values.
fn merge(
    dml: &DmlStatement,
    op: &MergeIntoOp,
    target: &TarnTable,
) -> Result<(DmlKind, LogicalPlan)> {
    check_scopes(op, &dml.table_name)?;
    let never_matches = never_matches(&op.on);
    // A MERGE ON FALSE acts on target rows only by its NOT MATCHED BY SOURCE clauses: when
    // they only delete, their conditions alone decide which rows go.
    let target_clauses: Vec<&MergeIntoClause> = (op.clauses.iter())
        .filter(|c| c.kind.canonical() == MergeIntoClauseKind::NotMatchedBySource)
        .collect();
    let only_deletes = (target_clauses.iter()).all(|c| matches!(c.action, MergeIntoAction::Delete));
    let conditions = target_clauses.iter().flat_map(|c| c.predicate.as_ref());
    let deciding = match never_matches && only_deletes {
        true => columns_deciding_alone(conditions).map(|columns| FileRows {
            columns,
            // A clause without a condition deletes every row.
            condition: (target_clauses.iter())
                .map(|c| c.predicate.clone().unwrap_or(lit(true)))
                .reduce(Expr::or),
        }),
        false => None,
    };
    let identity = identity_source(target, deciding);
    let t = &dml.table_name;
    let target_column = |name: &str| Expr::Column(Column::new(Some(t.clone()), name));
    let scan = LogicalPlanBuilder::scan(t.clone(), identity, None)?.build()?;
    let source = dml.input.as_ref().clone();
    let mut source_columns: Vec<Expr> = source
        .schema()
        .iter()
        .map(|(q, f)| Expr::Column(Column::from((q, f))))
        .collect();
    source_columns.push(lit(true).alias(SOURCE_MARKER));
    let source = LogicalPlanBuilder::from(source)
        .project(source_columns)?
        .build()?;

    let columns: Vec<String> = target
        .read_schema()
        .fields()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let mut matched = Vec::new();
    let mut not_matched = Vec::new();
    let mut by_source = Vec::new();
    let mut clauses = Vec::new();
    // Per column: the value it takes under each UPDATE or INSERT clause.
    let mut values: Vec<Vec<(i32, Expr)>> = vec![Vec::new(); columns.len()];
    let index = |column: &str| {
        columns.iter().position(|c| c == column).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "MERGE INTO {}: the table has no column '{column}'",
                target.name()
            ))
        })
    };
    for (i, clause) in op.clauses.iter().enumerate() {
        let i = i as i32;
        let condition = clause.predicate.clone().unwrap_or(lit(true));
        match clause.kind.canonical() {
            MergeIntoClauseKind::Matched => matched.push((condition, lit(i))),
            MergeIntoClauseKind::NotMatchedBySource => by_source.push((condition, lit(i))),
            _ => not_matched.push((condition, lit(i))),
        }
        match &clause.action {
            MergeIntoAction::Delete => clauses.push(MergeClause {
                action: ClauseAction::Delete,
                assigns: Vec::new(),
            }),
            MergeIntoAction::Update(assignments) => {
                for (column, value) in assignments {
                    values[index(column)?].push((i, value.clone()));
                }
                clauses.push(MergeClause {
                    action: ClauseAction::Update,
                    assigns: assignments.iter().map(|(c, _)| c.clone()).collect(),
                });
            }
            MergeIntoAction::Insert {
                columns: named,
                values: given,
            } => {
                let named: Vec<&str> = if named.is_empty() {
                    columns.iter().map(String::as_str).collect()
                } else {
                    named.iter().map(String::as_str).collect()
                };
                for (c, column) in columns.iter().enumerate() {
                    let value = match named.iter().position(|n| n == column) {
                        Some(k) => given[k].clone(),
                        // An omitted column takes its default, else NULL.
                        None => target
                            .get_column_default(column)
                            .cloned()
                            .unwrap_or(Expr::Literal(ScalarValue::Null, None)),
                    };
                    values[c].push((i, value));
                }
                clauses.push(MergeClause {
                    action: ClauseAction::Insert,
                    assigns: columns.clone(),
                });
            }
        }
    }
    let first_true = |whens: Vec<(Expr, Expr)>| -> Result<Expr> {
        let mut iter = whens.into_iter();
        match iter.next() {
            None => Ok(lit(ScalarValue::Int32(None))),
            Some((w, then)) => {
                let mut builder = when(w, then);
                for (w, then) in iter {
                    builder = builder.when(w, then);
                }
                builder.end()
            }
        }
    };
    let source_present = Expr::Column(Column::new_unqualified(SOURCE_MARKER)).is_not_null();
    // `_pos` is NULL in a row that stands for a whole file.
    let target_present = target_column(FILE_COLUMN).is_not_null();
    let action = when(
        target_present.clone().and(source_present),
        first_true(matched)?,
    )
    .when(not(target_present), first_true(not_matched.clone())?)
    .otherwise(first_true(by_source.clone())?)?;

    let join = match (not_matched.is_empty(), by_source.is_empty()) {
        (true, true) => JoinType::Inner,
        (false, true) => JoinType::Right,
        (true, false) => JoinType::Left,
        (false, false) => JoinType::Full,
    };
    let joined = match never_matches {
        true => side_by_side(scan, source, &by_source, !not_matched.is_empty())?,
        false => LogicalPlanBuilder::from(scan)
            .join_on(source, join, vec![op.on.clone()])?
            .build()?,
    };

    let mut projection = vec![
        target_column(FILE_COLUMN),
        target_column(POS_COLUMN),
        action.clone().alias(ACTION_COLUMN),
    ];
    // The value each clause assigns to a column; NULL under the clauses that leave the
    // column alone, whose rows keep their value (read by the write step, by position).
    // Columns no clause assigns are not read here at all.
    for (column, cases) in columns.iter().zip(values) {
        let mut cases = cases.into_iter();
        let Some((i, v)) = cases.next() else {
            continue;
        };
        let mut builder = case(action.clone()).when(lit(i), v);
        for (i, v) in cases {
            builder = builder.when(lit(i), v);
        }
        projection.push(builder.end()?.alias(column));
    }
    let plan = LogicalPlanBuilder::from(joined)
        .project(projection)?
        .filter(col(ACTION_COLUMN).is_not_null())?
        .build()?;
    Ok((DmlKind::Merge(clauses), plan))
}

/// Whether a MERGE's ON condition pairs no rows whatever they hold: it names no column and
/// is false or NULL (`ON FALSE`, `ON 1 = 0`).
fn never_matches(on: &Expr) -> bool {
    if !on.column_refs().is_empty() || on.is_volatile() {
        return false;
    }
    let simplified = ExprSimplifier::new(SimplifyContext::default()).simplify(on.clone());
    matches!(
        simplified,
        Ok(Expr::Literal(
            ScalarValue::Boolean(None | Some(false)) | ScalarValue::Null,
            _
        ))
    )
}

/// The join of a MERGE `ON FALSE` (a replace: delete what the NOT MATCHED BY SOURCE clauses
/// pick, insert the source), which pairs no rows: the target rows one of `by_source` may act
/// on, then the source rows when `inserts`, each padded with NULLs for the other side. A join
/// would hold the whole target in memory to find that nothing matches; this reads only the
/// target files the clauses' conditions do not prune.
fn side_by_side(
    target: LogicalPlan,
    source: LogicalPlan,
    by_source: &[(Expr, Expr)],
    inserts: bool,
) -> Result<LogicalPlan> {
    let nulls = |plan: &LogicalPlan| -> Result<Vec<Expr>> {
        plan.schema()
            .iter()
            .map(|(q, f)| {
                let null = Expr::Literal(ScalarValue::try_from(f.data_type())?, None);
                Ok(null.alias_qualified(q.cloned(), f.name()))
            })
            .collect()
    };
    let columns = |plan: &LogicalPlan| -> Vec<Expr> {
        plan.schema()
            .iter()
            .map(|(q, f)| Expr::Column(Column::from((q, f))))
            .collect()
    };
    let picked = by_source
        .iter()
        .map(|(condition, _)| condition.clone())
        .reduce(Expr::or);
    let targets = match picked {
        Some(picked) => Some(
            LogicalPlanBuilder::from(target.clone())
                .filter(picked)?
                .project(columns(&target).into_iter().chain(nulls(&source)?))?
                .build()?,
        ),
        None => None,
    };
    let sources = match inserts {
        true => Some(
            LogicalPlanBuilder::from(source.clone())
                .project(nulls(&target)?.into_iter().chain(columns(&source)))?
                .build()?,
        ),
        false => None,
    };
    match (targets, sources) {
        (Some(targets), Some(sources)) => {
            // A union names its columns without qualifiers (and renames the repeated ones):
            // give them back the join's names, by position.
            let names = Arc::clone(targets.schema());
            let union = LogicalPlanBuilder::from(targets).union(sources)?.build()?;
            let renamed: Vec<Expr> = union
                .schema()
                .iter()
                .zip(names.iter())
                .map(|(column, (q, f))| {
                    Expr::Column(Column::from(column)).alias_qualified(q.cloned(), f.name())
                })
                .collect();
            LogicalPlanBuilder::from(union).project(renamed)?.build()
        }
        (Some(side), None) | (None, Some(side)) => Ok(side),
        // Only WHEN MATCHED clauses: no row can be acted on.
        (None, None) => LogicalPlanBuilder::from(target)
            .join_on(source, JoinType::Inner, vec![lit(false)])?
            .build(),
    }
}

/// MERGE's scoping rules: NOT MATCHED clauses see only the source, NOT MATCHED BY SOURCE
/// clauses only the target.
fn check_scopes(op: &MergeIntoOp, target: &TableReference) -> Result<()> {
    for clause in &op.clauses {
        let mut exprs: Vec<&Expr> = clause.predicate.iter().collect();
        match &clause.action {
            MergeIntoAction::Update(set) => exprs.extend(set.iter().map(|(_, e)| e)),
            MergeIntoAction::Insert { values, .. } => exprs.extend(values.iter()),
            MergeIntoAction::Delete => {}
        }
        let columns: Vec<&Column> = exprs.iter().flat_map(|e| e.column_refs()).collect();
        let is_target = |c: &Column| c.relation.as_ref().is_some_and(|r| r == target);
        let by_source = clause.kind.canonical() == MergeIntoClauseKind::NotMatchedBySource;
        let wrong = match clause.kind.canonical() {
            MergeIntoClauseKind::NotMatchedByTarget => columns.iter().find(|c| is_target(c)),
            MergeIntoClauseKind::NotMatchedBySource => columns
                .iter()
                .find(|c| !is_target(c) && c.relation.is_some()),
            _ => None,
        };
        if let Some(column) = wrong {
            let side = if by_source { "source" } else { "target" };
            return Err(DataFusionError::Plan(format!(
                "a WHEN NOT MATCHED{} clause refers to {column}, a {side} column; it has no \
                 {side} row",
                if by_source { " BY SOURCE" } else { "" }
            )));
        }
    }
    Ok(())
}
