//! Row-level DML on tarn tables: DELETE, UPDATE and MERGE INTO, copy-on-write.
//!
//! DataFusion's `delete_from`/`update` hooks receive only the filters it could extract, and
//! lose subqueries; tarn does not use them. Each statement instead runs in two passes:
//!
//! ```text
//! 1. affected rows   an ordinary query over the target with row identities (_file, _pos):
//!                    DELETE  SELECT _file, _pos FROM t WHERE <p>
//!                    UPDATE  SELECT _file, _pos, <new row> FROM t WHERE <p>
//!                    MERGE   target (with identities) JOIN source, the first true WHEN clause
//!                            per row as an action, new rows for UPDATE and INSERT actions
//! 2. rewrite         every file holding an affected row is read again and written without
//!                    the affected positions; new rows are written alongside; files without
//!                    affected rows are not touched
//! 3. commit          one Rewrite change (removed files, added files), by the conflict matrix
//! ```
//!
//! Subqueries, correlated predicates and joins are planned by DataFusion like any query.
//! A row's fate is decided once, in pass 1, so volatile functions cannot make it
//! inconsistent. Nothing is written before execution: EXPLAIN shows pass 1 and changes
//! nothing. A statement that affects no row commits no version and returns 0.
//!
//! The seam for merge-on-read is pass 2: with deletion vectors it would record the affected
//! positions per file instead of rewriting the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::SchemaProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Delete, Expr as SqlExpr, FromTable, Merge, MergeAction, MergeClauseKind,
    MergeInsertKind, ObjectName, TableFactor, TableWithJoins, Update,
};
use futures::StreamExt;
use tarn_core::{Change, DataFile, Predicate};
use tarn_spec::Operation;

use crate::context::TarnContext;
use crate::error::to_df;
use crate::names::{QualifiedName, normalize, parts};
use crate::provider::{FILE_COLUMN, POS_COLUMN, TarnTable};

const ACTION_COLUMN: &str = "__tarn_action";
const SOURCE_MARKER: &str = "__tarn_source";

/// A DML statement resolved to its target.
#[derive(Clone, Copy)]
pub(crate) enum DmlKind<'a> {
    Delete(&'a Delete),
    Update(&'a Update),
    Merge(&'a Merge),
}

/// What pass 1 decided for the target.
struct Outcome {
    /// Positions to drop, per table-relative data file path.
    removed: HashMap<String, HashSet<i64>>,
    /// New rows (UPDATE results and INSERTs), in the table's column order.
    new_rows: Vec<RecordBatch>,
    affected: u64,
}

static TEMP_NAMES: AtomicU64 = AtomicU64::new(0);

/// Affected files larger than this in all are copied by one writer per scan partition.
const PARALLEL_REWRITE_BYTES: u64 = 32 * 1024 * 1024;

/// How many times a DML statement runs before a conflict is reported.
const DML_ATTEMPTS: u32 = 10;

fn is_retryable_conflict(e: &DataFusionError) -> bool {
    crate::error::tarn_error(e)
        .is_some_and(|t| t.kind() == tarn_core::ErrorKind::Conflict { retryable: true })
}

impl TarnContext {
    /// The target table of a DML statement, if it is a tarn table.
    pub(crate) async fn dml_target(
        &self,
        name: &ObjectName,
    ) -> Result<Option<(QualifiedName, TarnTable)>> {
        let qualified =
            QualifiedName::resolve(&parts(name)?, crate::CATALOG, &self.default_namespace())?;
        if qualified.catalog != crate::CATALOG {
            return Ok(None);
        }
        match self
            .catalog()
            .load(&qualified.namespace, &qualified.table)
            .await?
        {
            Some(t) => Ok(Some((qualified, t))),
            None => Err(DataFusionError::Plan(format!(
                "table '{}' does not exist",
                qualified.short()
            ))),
        }
    }

    /// Runs a DML statement (or, with `explain`, shows its pass-1 plan). A statement whose
    /// files were changed by a concurrent commit runs again on the new version: nothing of
    /// the failed attempt was committed, so this is safe.
    pub(crate) async fn dml(
        &self,
        kind: DmlKind<'_>,
        explain: Option<&str>,
    ) -> Result<Option<DataFrame>> {
        let backoff = tarn_core::RetryPolicy {
            min_backoff: std::time::Duration::from_millis(5),
            ..Default::default()
        };
        for attempt in 1.. {
            match self.dml_once(kind, explain).await {
                Err(e) if attempt < DML_ATTEMPTS && is_retryable_conflict(&e) => {
                    tokio::time::sleep(backoff.backoff(attempt)).await;
                }
                outcome => return outcome,
            }
        }
        unreachable!("the loop returns")
    }

    async fn dml_once(
        &self,
        kind: DmlKind<'_>,
        explain: Option<&str>,
    ) -> Result<Option<DataFrame>> {
        let name = match &kind {
            DmlKind::Delete(d) => delete_target(d)?,
            DmlKind::Update(u) => table_name(&u.table)?,
            DmlKind::Merge(m) => match &m.table {
                TableFactor::Table { name, .. } => name.clone(),
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "MERGE INTO needs a table, not {other}"
                    )));
                }
            },
        };
        let Some((qualified, target)) = self.dml_target(&name).await? else {
            return Ok(None);
        };
        let temp = format!("__tarn_dml_{}", TEMP_NAMES.fetch_add(1, Ordering::Relaxed));
        let schema = self
            .catalog()
            .tarn_schema(&self.default_namespace())
            .ok_or_else(|| DataFusionError::Plan("the default namespace is missing".into()))?;
        schema.register_table(temp.clone(), Arc::new(target.with_identity(None)))?;
        // The temporary name only lives while pass 1 is planned; the plan keeps the provider.
        let planned = async {
            let (sql, operation, merge) = self
                .plan_affected(&kind, &qualified, &target, &temp)
                .await?;
            let sql = match explain {
                Some(prefix) => format!("{prefix} {sql}"),
                None => sql,
            };
            let df = self.plan_generated(&sql).await?;
            Ok::<_, DataFusionError>((df, operation, merge))
        }
        .await;
        schema.deregister_table(&temp)?;
        let (df, operation, merge) = planned?;
        if explain.is_some() {
            return Ok(Some(df));
        }
        let outcome = collect_outcome(df, &target, merge.as_ref()).await?;
        let affected = outcome.affected;
        if affected > 0 {
            self.rewrite(&target, outcome, operation).await?;
        }
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "count",
                DataType::UInt64,
                false,
            )])),
            vec![Arc::new(UInt64Array::from(vec![affected]))],
        )?;
        self.session_context().read_batch(batch).map(Some)
    }

    /// The SQL of pass 1, the operation, and for MERGE the action of each clause.
    async fn plan_affected(
        &self,
        kind: &DmlKind<'_>,
        name: &QualifiedName,
        target: &TarnTable,
        temp: &str,
    ) -> Result<(String, Operation, Option<Vec<ClauseAction>>)> {
        let columns: Vec<String> = target
            .table()
            .schema()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        match kind {
            DmlKind::Delete(d) => {
                if d.using.is_some()
                    || d.returning.is_some()
                    || d.limit.is_some()
                    || !d.order_by.is_empty()
                {
                    return Err(DataFusionError::NotImplemented(
                        "DELETE with USING, RETURNING, ORDER BY or LIMIT".into(),
                    ));
                }
                let alias =
                    table_alias(from_tables(&d.from).first()).unwrap_or_else(|| quote(&name.table));
                let filter = d
                    .selection
                    .as_ref()
                    .map(|p| format!(" WHERE {p}"))
                    .unwrap_or_default();
                Ok((
                    format!(
                        "SELECT {alias}.{}, {alias}.{} FROM {} AS {alias}{filter}",
                        quote(FILE_COLUMN),
                        quote(POS_COLUMN),
                        quote(temp)
                    ),
                    Operation::Delete,
                    None,
                ))
            }
            DmlKind::Update(u) => {
                if u.from.is_some() || u.returning.is_some() || u.limit.is_some() {
                    return Err(DataFusionError::NotImplemented(
                        "UPDATE with FROM, RETURNING or LIMIT; use MERGE INTO".into(),
                    ));
                }
                let alias = table_alias(Some(&u.table)).unwrap_or_else(|| quote(&name.table));
                let mut set: BTreeMap<String, &SqlExpr> = BTreeMap::new();
                for a in &u.assignments {
                    let AssignmentTarget::ColumnName(col) = &a.target else {
                        return Err(DataFusionError::NotImplemented(
                            "UPDATE of a column tuple".into(),
                        ));
                    };
                    let col = parts(col)?.pop().unwrap_or_default();
                    if !columns.iter().any(|c| c == &col) {
                        return Err(DataFusionError::Plan(format!(
                            "UPDATE: table '{}' has no column '{col}'",
                            name.short()
                        )));
                    }
                    if set.insert(col.clone(), &a.value).is_some() {
                        return Err(DataFusionError::Plan(format!(
                            "UPDATE sets column '{col}' more than once"
                        )));
                    }
                }
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| match set.get(c) {
                        Some(e) => format!("{e} AS {}", quote(c)),
                        None => format!("{alias}.{}", quote(c)),
                    })
                    .collect();
                let filter = u
                    .selection
                    .as_ref()
                    .map(|p| format!(" WHERE {p}"))
                    .unwrap_or_default();
                let sql = format!(
                    "SELECT {alias}.{}, {alias}.{}, {} FROM {} AS {alias}{filter}",
                    quote(FILE_COLUMN),
                    quote(POS_COLUMN),
                    values.join(", "),
                    quote(temp)
                );
                Ok((sql, Operation::Update, None))
            }
            DmlKind::Merge(m) => {
                let (sql, actions) = self.merge_sql(m, name, &columns, temp).await?;
                Ok((sql, Operation::Merge, Some(actions)))
            }
        }
    }

    /// Pass 2 and the commit.
    async fn rewrite(
        &self,
        target: &TarnTable,
        outcome: Outcome,
        operation: Operation,
    ) -> Result<()> {
        let table = target.table();
        let all: HashMap<String, DataFile> = table
            .plan_files(&Predicate::True)
            .await
            .map_err(to_df)?
            .data_files()
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let data_schema = crate::convert::df_schema(table.schema());
        let mut removed = Vec::new();
        for path in outcome.removed.keys() {
            removed.push(all.get(path).cloned().ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "affected file {path} is not in the table version"
                ))
            })?);
        }
        // New rows are written after the kept rows of the first copy, so that a small
        // statement makes one file. Large rewrites copy each partition of the scan with its
        // own writer, so the files are encoded on every core at once.
        let mut new_rows: Vec<RecordBatch> = outcome
            .new_rows
            .iter()
            .map(|b| conform(b, &data_schema))
            .collect::<Result<_>>()?;
        let mut copies = tokio::task::JoinSet::new();
        if !outcome.removed.is_empty() {
            let only: HashSet<String> = outcome.removed.keys().cloned().collect();
            let scan = self
                .session_context()
                .read_table(Arc::new(target.with_identity(Some(only))))?;
            let affected_bytes: u64 = removed.iter().map(|f| f.file_size).sum();
            let streams = if affected_bytes >= PARALLEL_REWRITE_BYTES {
                scan.execute_stream_partitioned().await?
            } else {
                vec![scan.execute_stream().await?]
            };
            let dropped = Arc::new(outcome.removed);
            for stream in streams {
                copies.spawn(copy_kept_rows(
                    stream,
                    table.writer().map_err(to_df)?,
                    Arc::clone(&dropped),
                    data_schema.fields().len(),
                    std::mem::take(&mut new_rows),
                ));
            }
        }
        let mut added = Vec::new();
        if !new_rows.is_empty() {
            let mut writer = table.writer().map_err(to_df)?;
            for batch in &new_rows {
                writer.write(batch).await.map_err(to_df)?;
            }
            added = writer.finish().await.map_err(to_df)?;
        }
        while let Some(copied) = copies.join_next().await {
            let files = copied.map_err(|e| DataFusionError::External(Box::new(e)))??;
            added.extend(files);
        }
        let extra = BTreeMap::from([("affected-rows".to_string(), outcome.affected.to_string())]);
        table
            .commit_with_summary(
                Change::Rewrite {
                    removed,
                    added,
                    operation,
                },
                extra,
            )
            .await
            .map_err(to_df)?;
        Ok(())
    }
}

/// Writes the rows of a row-identity scan of affected files, less the dropped positions,
/// then the rows of `then`, as new data files.
async fn copy_kept_rows(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    mut writer: tarn_core::DataFileWriter,
    dropped: Arc<HashMap<String, HashSet<i64>>>,
    columns: usize,
    then: Vec<RecordBatch>,
) -> Result<Vec<DataFile>> {
    let table_columns: Vec<usize> = (0..columns).collect();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let files = batch.column(columns).as_string::<i32>();
        let positions = batch.column(columns + 1).as_primitive::<Int64Type>();
        // Rows of one batch come from one file: look the file up once, not per row.
        let mut current: Option<(&str, Option<&HashSet<i64>>)> = None;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let file = files.value(i);
                let dropped_here = match current {
                    Some((f, d)) if f == file => d,
                    _ => {
                        let d = dropped.get(file);
                        current = Some((file, d));
                        d
                    }
                };
                Some(!dropped_here.is_some_and(|d| d.contains(&positions.value(i))))
            })
            .collect();
        let kept = filter_record_batch(&batch.project(&table_columns)?, &keep)?;
        writer.write(&kept).await.map_err(to_df)?;
    }
    for batch in &then {
        writer.write(batch).await.map_err(to_df)?;
    }
    writer.finish().await.map_err(to_df)
}

/// The kind of action each MERGE clause takes, in written order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClauseAction {
    Update,
    Delete,
    Insert,
}

impl TarnContext {
    async fn merge_sql(
        &self,
        m: &Merge,
        name: &QualifiedName,
        columns: &[String],
        temp: &str,
    ) -> Result<(String, Vec<ClauseAction>)> {
        if m.output.is_some() {
            return Err(DataFusionError::NotImplemented(
                "MERGE ... OUTPUT/RETURNING".into(),
            ));
        }
        // DataFusion binds the statement: it resolves names and types, and checks the
        // clauses' shapes. Its plan is only used for checks; tarn builds its own.
        let bound = self
            .session_context()
            .state()
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                datafusion::sql::sqlparser::ast::Statement::Merge(m.clone()),
            )))
            .await?;
        check_merge_scopes(&bound, m)?;

        let TableFactor::Table {
            alias: target_alias,
            ..
        } = &m.table
        else {
            unreachable!("checked by dml()")
        };
        let t = target_alias
            .as_ref()
            .map(|a| quote_ident(&a.name))
            .unwrap_or_else(|| quote(&name.table));
        let (source_sql, s) = source_relation(&m.source)?;
        let mut matched = Vec::new();
        let mut not_matched = Vec::new();
        let mut by_source = Vec::new();
        let mut actions = Vec::new();
        // Per column: the value it takes under each UPDATE or INSERT clause.
        let mut value_cases: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
        for (i, clause) in m.clauses.iter().enumerate() {
            let condition = clause
                .predicate
                .as_ref()
                .map(|p| format!("({p})"))
                .unwrap_or_else(|| "TRUE".into());
            let when = format!("WHEN {condition} THEN {i}");
            match clause.clause_kind {
                MergeClauseKind::Matched => matched.push(when),
                MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget => {
                    not_matched.push(when)
                }
                MergeClauseKind::NotMatchedBySource => by_source.push(when),
            }
            match &clause.action {
                MergeAction::Delete { .. } => actions.push(ClauseAction::Delete),
                MergeAction::Update(update) => {
                    if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                        return Err(DataFusionError::NotImplemented(
                            "UPDATE ... WHERE in MERGE; put the condition in WHEN ... AND".into(),
                        ));
                    }
                    for a in &update.assignments {
                        let AssignmentTarget::ColumnName(col) = &a.target else {
                            return Err(DataFusionError::NotImplemented(
                                "MERGE UPDATE of a column tuple".into(),
                            ));
                        };
                        let col = parts(col)?.pop().unwrap_or_default();
                        let index = columns.iter().position(|c| c == &col).ok_or_else(|| {
                            DataFusionError::Plan(format!(
                                "MERGE UPDATE: table '{}' has no column '{col}'",
                                name.short()
                            ))
                        })?;
                        value_cases[index].push(format!("WHEN {i} THEN {}", a.value));
                    }
                    actions.push(ClauseAction::Update);
                }
                MergeAction::Insert(insert) => {
                    let MergeInsertKind::Values(values) = &insert.kind else {
                        return Err(DataFusionError::NotImplemented("MERGE INSERT ROW".into()));
                    };
                    let [row] = values.rows.as_slice() else {
                        return Err(DataFusionError::Plan(
                            "MERGE INSERT takes one row of VALUES".into(),
                        ));
                    };
                    let row = &row.content;
                    let targets: Vec<String> = if insert.columns.is_empty() {
                        columns.to_vec()
                    } else {
                        insert
                            .columns
                            .iter()
                            .map(|c| parts(c).map(|mut p| p.pop().unwrap_or_default()))
                            .collect::<Result<_>>()?
                    };
                    if targets.len() != row.len() {
                        return Err(DataFusionError::Plan(format!(
                            "MERGE INSERT names {} columns but gives {} values",
                            targets.len(),
                            row.len()
                        )));
                    }
                    for (col, value) in targets.iter().zip(row) {
                        let index = columns.iter().position(|c| c == col).ok_or_else(|| {
                            DataFusionError::Plan(format!(
                                "MERGE INSERT: table '{}' has no column '{col}'",
                                name.short()
                            ))
                        })?;
                        value_cases[index].push(format!("WHEN {i} THEN {value}"));
                    }
                    actions.push(ClauseAction::Insert);
                }
            }
        }
        let case = |whens: &[String]| {
            if whens.is_empty() {
                "NULL".to_string()
            } else {
                format!("CASE {} END", whens.join(" "))
            }
        };
        let action = format!(
            "CASE WHEN {t}.{pos} IS NOT NULL AND {s}.{marker} IS NOT NULL THEN {m} \
                  WHEN {t}.{pos} IS NULL THEN {nm} \
                  ELSE {bs} END",
            pos = quote(POS_COLUMN),
            marker = quote(SOURCE_MARKER),
            m = case(&matched),
            nm = case(&not_matched),
            bs = case(&by_source),
        );
        let join = match (not_matched.is_empty(), by_source.is_empty()) {
            (true, true) => "JOIN",
            (false, true) => "RIGHT JOIN",
            (true, false) => "LEFT JOIN",
            (false, false) => "FULL JOIN",
        };
        // DataFusion computes the repeated action expression once (common subexpressions).
        let values: Vec<String> = columns
            .iter()
            .zip(&value_cases)
            .map(|(c, whens)| {
                let current = format!("{t}.{}", quote(c));
                if whens.is_empty() {
                    format!("{current} AS {}", quote(c))
                } else {
                    format!(
                        "CASE {action} {} ELSE {current} END AS {}",
                        whens.join(" "),
                        quote(c)
                    )
                }
            })
            .collect();
        let sql = format!(
            "SELECT {t}.{file}, {t}.{pos}, {action} AS {ACTION_COLUMN}, {values} \
             FROM {temp_name} AS {t} {join} {source_sql} ON {on} \
             WHERE ({action}) IS NOT NULL",
            file = quote(FILE_COLUMN),
            pos = quote(POS_COLUMN),
            values = values.join(", "),
            temp_name = quote(temp),
            on = m.on,
        );
        Ok((sql, actions))
    }
}

/// Checks MERGE's scoping rules on DataFusion's binding: NOT MATCHED clauses see only the
/// source, NOT MATCHED BY SOURCE clauses only the target.
fn check_merge_scopes(bound: &datafusion::logical_expr::LogicalPlan, merge: &Merge) -> Result<()> {
    use datafusion::logical_expr::dml::{MergeIntoAction, MergeIntoClauseKind};
    use datafusion::logical_expr::{LogicalPlan, WriteOp};
    let LogicalPlan::Dml(dml) = bound else {
        return Ok(());
    };
    let WriteOp::MergeInto(op) = &dml.op else {
        return Ok(());
    };
    let target = dml.table_name.table().to_string();
    for (clause, original) in op.clauses.iter().zip(&merge.clauses) {
        let mut exprs: Vec<&datafusion::logical_expr::Expr> = clause.predicate.iter().collect();
        match &clause.action {
            MergeIntoAction::Update(set) => exprs.extend(set.iter().map(|(_, e)| e)),
            MergeIntoAction::Insert { values, .. } => exprs.extend(values.iter()),
            MergeIntoAction::Delete => {}
        }
        let columns: Vec<datafusion::common::Column> = exprs
            .iter()
            .flat_map(|e| e.column_refs().into_iter().cloned().collect::<Vec<_>>())
            .collect();
        let is_target = |c: &datafusion::common::Column| {
            c.relation.as_ref().is_some_and(|r| r.table() == target)
        };
        let wrong = match clause.kind.canonical() {
            MergeIntoClauseKind::NotMatchedByTarget => columns.iter().find(|c| is_target(c)),
            MergeIntoClauseKind::NotMatchedBySource => columns
                .iter()
                .find(|c| !is_target(c) && c.relation.is_some()),
            _ => None,
        };
        if let Some(column) = wrong {
            let side = if clause.kind.canonical() == MergeIntoClauseKind::NotMatchedBySource {
                "source"
            } else {
                "target"
            };
            return Err(DataFusionError::Plan(format!(
                "'{original}' refers to {column}, a {side} column; a WHEN NOT MATCHED{} clause has no {side} row",
                if side == "source" { " BY SOURCE" } else { "" }
            )));
        }
    }
    Ok(())
}

/// The source of a MERGE as SQL with a presence marker column, and the name it is known by.
fn source_relation(source: &TableFactor) -> Result<(String, String)> {
    // Column aliases (`AS s(a, b)`) stay on the inner relation.
    let inner_alias = |alias: &Option<datafusion::sql::sqlparser::ast::TableAlias>| match alias {
        Some(a) if !a.columns.is_empty() => {
            let columns: Vec<String> = a.columns.iter().map(|c| quote_ident(&c.name)).collect();
            format!("__tarn_inner({})", columns.join(", "))
        }
        _ => "__tarn_inner".to_string(),
    };
    let (inner, alias) = match source {
        TableFactor::Table { name, alias, .. } => {
            let mut bare = source.clone();
            if let TableFactor::Table { alias: a, .. } = &mut bare {
                *a = None;
            }
            let default = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(quote_ident)
                .unwrap_or_default();
            (
                format!("{bare} AS {}", inner_alias(alias)),
                alias
                    .as_ref()
                    .map(|a| quote_ident(&a.name))
                    .unwrap_or(default),
            )
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let name = alias
                .as_ref()
                .map(|a| quote_ident(&a.name))
                .ok_or_else(|| {
                    DataFusionError::Plan("a MERGE source subquery needs an alias".into())
                })?;
            (format!("({subquery}) AS {}", inner_alias(alias)), name)
        }
        other => {
            return Err(DataFusionError::NotImplemented(format!(
                "MERGE source {other}"
            )));
        }
    };
    Ok((
        format!(
            "(SELECT *, TRUE AS {} FROM {inner}) AS {alias}",
            quote(SOURCE_MARKER)
        ),
        alias,
    ))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn quote_ident(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    quote(&normalize(ident))
}

fn table_name(table: &TableWithJoins) -> Result<ObjectName> {
    match &table.relation {
        TableFactor::Table { name, .. } if table.joins.is_empty() => Ok(name.clone()),
        other => Err(DataFusionError::NotImplemented(format!("DML on {other}"))),
    }
}

fn table_alias(table: Option<&TableWithJoins>) -> Option<String> {
    match &table?.relation {
        TableFactor::Table { alias: Some(a), .. } => Some(quote_ident(&a.name)),
        _ => None,
    }
}

fn from_tables(from: &FromTable) -> &[TableWithJoins] {
    match from {
        FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
    }
}

fn delete_target(delete: &Delete) -> Result<ObjectName> {
    if !delete.tables.is_empty() {
        return Err(DataFusionError::NotImplemented("multi-table DELETE".into()));
    }
    match from_tables(&delete.from) {
        [one] => table_name(one),
        _ => Err(DataFusionError::NotImplemented(
            "DELETE from several tables".into(),
        )),
    }
}

/// Runs pass 1 and gathers its outcome, enforcing MERGE's one-action-per-target-row rule.
async fn collect_outcome(
    df: DataFrame,
    target: &TarnTable,
    merge: Option<&Vec<ClauseAction>>,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        removed: HashMap::new(),
        new_rows: Vec::new(),
        affected: 0,
    };
    let mut stream = df.execute_stream().await?;
    let values_from = if merge.is_some() { 3 } else { 2 };
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let files = batch.column(0).as_string::<i32>();
        let positions = batch.column(1).as_primitive::<Int64Type>();
        let actions: Option<ArrayRef> = match merge {
            Some(_) => Some(cast_with_options(
                batch.column(2),
                &DataType::Int32,
                &CastOptions::default(),
            )?),
            None => None,
        };
        let mut takes_new_row = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let action = match (&actions, merge) {
                (Some(a), Some(kinds)) => kinds[a.as_primitive::<Int32Type>().value(row) as usize],
                _ if values_from == 2 && batch.num_columns() == 2 => ClauseAction::Delete,
                _ => ClauseAction::Update,
            };
            if action != ClauseAction::Insert {
                let first = outcome
                    .removed
                    .entry(files.value(row).to_string())
                    .or_default()
                    .insert(positions.value(row));
                if !first {
                    return Err(cardinality_error(target, &batch, row, values_from));
                }
            }
            takes_new_row.push(action != ClauseAction::Delete);
            outcome.affected += 1;
        }
        if batch.num_columns() > values_from && takes_new_row.iter().any(|t| *t) {
            let values = batch.project(&(values_from..batch.num_columns()).collect::<Vec<_>>())?;
            outcome.new_rows.push(filter_record_batch(
                &values,
                &BooleanArray::from(takes_new_row),
            )?);
        }
    }
    Ok(outcome)
}

fn cardinality_error(
    target: &TarnTable,
    batch: &RecordBatch,
    row: usize,
    values_from: usize,
) -> DataFusionError {
    let options = FormatOptions::default().with_null("NULL");
    let shown: Vec<String> = (values_from..batch.num_columns())
        .take(4)
        .filter_map(|i| {
            let formatter = ArrayFormatter::try_new(batch.column(i).as_ref(), &options).ok()?;
            Some(format!(
                "{} = {}",
                batch.schema().field(i).name(),
                formatter.value(row)
            ))
        })
        .collect();
    DataFusionError::Plan(format!(
        "MERGE INTO {}: a target row matches more than one source row (for example the row with {}); \
         make the source unique per key or narrow the WHEN conditions. Nothing was changed",
        target.name(),
        shown.join(", ")
    ))
}

/// A batch of new rows cast to the table's column types (errors on overflow), with every
/// column nullable so that the writer reports NOT NULL violations by column name.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else {
            cast_with_options(column, field.data_type(), &options).map_err(|e| {
                DataFusionError::Plan(format!(
                    "cannot store the new value of column '{}' as {}: {e}",
                    field.name(),
                    field.data_type()
                ))
            })?
        };
        fields.push(Field::new(field.name(), field.data_type().clone(), true));
        columns.push(column);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
