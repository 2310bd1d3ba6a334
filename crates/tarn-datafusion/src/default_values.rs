//! SQL's `DEFAULT` in a write: `INSERT INTO t VALUES (1, DEFAULT)`, `INSERT INTO t DEFAULT
//! VALUES`, `UPDATE t SET c = DEFAULT`, and MERGE's `UPDATE SET c = DEFAULT` and `INSERT
//! ... VALUES (..., DEFAULT)`.
//!
//! DataFusion 55.2 reads such a `DEFAULT` as a column named `default` ("No field named
//! default") and refuses an INSERT without a source. Before the statement is planned, each
//! `DEFAULT` becomes the literal of its column's default (NULL for a column without one, so
//! a NOT NULL column without a default is refused as for any NULL), and `DEFAULT VALUES` one
//! VALUES row of them. A `DEFAULT` anywhere else (inside an expression, in a SELECT) is left
//! to the planner's error.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr as SqlExpr, Insert, MergeAction, MergeInsertKind,
    ObjectName, Query, SetExpr, Statement, TableFactor, TableObject, Values,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use tarn_spec::Schema;

/// The table whose column defaults `statement` asks for, if it asks for any.
pub(crate) fn target(statement: &Statement) -> Option<&ObjectName> {
    match statement {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return None;
            };
            let asks = match insert.source.as_deref() {
                None => is_default_values(insert),
                Some(source) => match source.body.as_ref() {
                    SetExpr::Values(values) => has_default(values),
                    _ => false,
                },
            };
            asks.then_some(name)
        }
        Statement::Update(update) => {
            let TableFactor::Table { name, .. } = &update.table.relation else {
                return None;
            };
            update
                .assignments
                .iter()
                .any(assigns_default)
                .then_some(name)
        }
        Statement::Merge(merge) => {
            let TableFactor::Table { name, .. } = &merge.table else {
                return None;
            };
            let asks = merge.clauses.iter().any(|clause| match &clause.action {
                MergeAction::Update(update) => update.assignments.iter().any(assigns_default),
                MergeAction::Insert(insert) => match &insert.kind {
                    MergeInsertKind::Values(values) => has_default(values),
                    _ => false,
                },
                MergeAction::Delete { .. } => false,
            });
            asks.then_some(name)
        }
        _ => None,
    }
}

/// Puts the defaults of `schema`'s columns in place of the `DEFAULT`s of `statement` (one
/// [`target`] found), and a row of them in place of `DEFAULT VALUES`.
pub(crate) fn fill(statement: &mut Statement, schema: &Schema) -> Result<()> {
    match statement {
        Statement::Insert(insert) => {
            if insert.source.is_none() && is_default_values(insert) {
                insert.source = Some(Box::new(default_row(schema.fields().len())?));
            }
            let columns = targets(&insert.columns, schema);
            if let Some(SetExpr::Values(values)) = insert.source.as_mut().map(|s| s.body.as_mut()) {
                fill_rows(values, &columns, schema)?;
            }
        }
        Statement::Update(update) => fill_assignments(&mut update.assignments, schema)?,
        Statement::Merge(merge) => {
            for clause in &mut merge.clauses {
                match &mut clause.action {
                    MergeAction::Update(update) => {
                        fill_assignments(&mut update.assignments, schema)?
                    }
                    MergeAction::Insert(insert) => {
                        let columns = targets(&insert.columns, schema);
                        if let MergeInsertKind::Values(values) = &mut insert.kind {
                            fill_rows(values, &columns, schema)?;
                        }
                    }
                    MergeAction::Delete { .. } => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// `INSERT INTO t DEFAULT VALUES`, as sqlparser reads it: no source, columns or SET.
fn is_default_values(insert: &Insert) -> bool {
    insert.source.is_none()
        && insert.columns.is_empty()
        && insert.assignments.is_empty()
        && insert.format_clause.is_none()
}

/// The bare keyword, not a column quoted as `"default"`.
fn is_default(expr: &SqlExpr) -> bool {
    matches!(expr, SqlExpr::Identifier(ident)
        if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("default"))
}

fn has_default(values: &Values) -> bool {
    values
        .rows
        .iter()
        .flat_map(|row| row.iter())
        .any(is_default)
}

fn assigns_default(assignment: &Assignment) -> bool {
    is_default(&assignment.value)
}

/// The columns the values of a VALUES row go to, by position: those listed, or all of the
/// table's in order. A listed name the table lacks is `None` (planning reports it).
fn targets(listed: &[ObjectName], schema: &Schema) -> Vec<Option<String>> {
    if listed.is_empty() {
        return schema
            .fields()
            .iter()
            .map(|f| Some(f.name.clone()))
            .collect();
    }
    (listed.iter())
        .map(|name| crate::names::parts(name).ok()?.pop())
        .collect()
}

fn fill_rows(values: &mut Values, columns: &[Option<String>], schema: &Schema) -> Result<()> {
    for row in &mut values.rows {
        for (value, column) in row.iter_mut().zip(columns) {
            if let Some(column) = column
                && is_default(value)
            {
                *value = default_of(schema, column)?;
            }
        }
    }
    Ok(())
}

fn fill_assignments(assignments: &mut [Assignment], schema: &Schema) -> Result<()> {
    for assignment in assignments {
        if !is_default(&assignment.value) {
            continue;
        }
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            continue;
        };
        if let Some(column) = crate::names::parts(name)?.pop() {
            assignment.value = default_of(schema, &column)?;
        }
    }
    Ok(())
}

/// The literal of `column`'s default: the value an INSERT that leaves the column out writes.
/// A column the table lacks keeps its `DEFAULT` for the planner to report the column.
fn default_of(schema: &Schema, column: &str) -> Result<SqlExpr> {
    let Some(field) = schema.field_by_name(column) else {
        return Ok(SqlExpr::Identifier("DEFAULT".into()));
    };
    let text = match (field.primitive(), &field.write_default) {
        (Some(ty), Some(value)) => crate::convert::sql_literal(ty, value),
        _ => "NULL".to_string(),
    };
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| {
            DataFusionError::Internal(format!(
                "the default of column '{column}' ({text}) does not read back as SQL: {e}"
            ))
        })
}

/// `VALUES (DEFAULT, ...)`, one `DEFAULT` for each of `columns` columns.
fn default_row(columns: usize) -> Result<Query> {
    let text = format!("VALUES ({})", vec!["DEFAULT"; columns].join(", "));
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_query())
        .map(|query| *query)
        .map_err(|e| DataFusionError::Plan(format!("INSERT ... DEFAULT VALUES: {e}")))
}
