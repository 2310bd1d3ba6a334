//! `struct(...)` values in an INSERT's VALUES, given to a struct column by position.
//!
//! DataFusion names the fields of `struct(a, b)` `c0`, `c1`, ... and converts one struct
//! type to another by field name, so `INSERT INTO t VALUES (struct(1, 'x'))` into a
//! `STRUCT<a INT, b VARCHAR>` column fails to plan. A struct written by position means the
//! column's fields in order (as in Spark and DuckDB): such calls become
//! `named_struct('a', 1, 'b', 'x')` before planning, at any depth.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, Insert, ObjectName, ObjectNamePart, SetExpr, Value,
};
use tarn_spec::{Field, Schema, Type};

/// Names the positional `struct(...)` values of `insert`'s VALUES after the fields of the
/// struct columns they go to; `schema` is the target table's. A `named_struct(...)` value
/// naming a field the column does not have is an error (DataFusion's conversion would drop
/// that value without a word).
pub(crate) fn name_struct_values(insert: &mut Insert, schema: &Schema) -> Result<()> {
    let Some(source) = insert.source.as_mut() else {
        return Ok(());
    };
    let SetExpr::Values(values) = source.body.as_mut() else {
        return Ok(());
    };
    // The columns the values go to: those listed, or all of them in order.
    let targets: Vec<Option<&Field>> = if insert.columns.is_empty() {
        schema.fields().iter().map(Some).collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| {
                let name = crate::names::parts(c).ok()?.pop()?;
                schema.field_by_name(&name)
            })
            .collect()
    };
    for row in &mut values.rows {
        for (value, target) in row.iter_mut().zip(&targets) {
            if let Some(field) = target {
                name_fields(value, field, &field.name)?;
            }
        }
    }
    Ok(())
}

/// Whether `insert` has a struct value for [`name_struct_values`] to look at: a VALUES row
/// with a `struct(...)` or `named_struct(...)` call or a struct literal as one of its values.
/// Other INSERTs need not read the target table's schema for it.
pub(crate) fn has_struct_values(insert: &Insert) -> bool {
    let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|s| s.body.as_ref()) else {
        return false;
    };
    values
        .rows
        .iter()
        .flat_map(|row| row.iter())
        .any(|value| match value {
            SqlExpr::Struct { .. } => true,
            SqlExpr::Function(f) => {
                is_named(&f.name, "struct") || is_named(&f.name, "named_struct")
            }
            _ => false,
        })
}

/// `value` for a column or field of `field`'s type; `path` names it, for messages.
fn name_fields(value: &mut SqlExpr, field: &Field, path: &str) -> Result<()> {
    let Type::Struct(parts) = &field.field_type else {
        return Ok(());
    };
    if let Some(named) = named_struct_fields(value) {
        for (name, expr) in named {
            let Some(part) = parts.iter().find(|p| p.name.eq_ignore_ascii_case(&name)) else {
                let known: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
                return Err(DataFusionError::Plan(format!(
                    "struct column '{path}' has no field '{name}' (its fields are {})",
                    known.join(", ")
                )));
            };
            name_fields(expr, part, &format!("{path}.{}", part.name))?;
        }
        return Ok(());
    }
    let Some(values) = positional_struct(value, parts.len()) else {
        return Ok(());
    };
    let mut args = Vec::with_capacity(2 * parts.len());
    for (mut expr, part) in values.into_iter().zip(parts) {
        name_fields(&mut expr, part, &format!("{path}.{}", part.name))?;
        args.push(unnamed(SqlExpr::value(Value::SingleQuotedString(
            part.name.clone(),
        ))));
        args.push(unnamed(expr));
    }
    *value = SqlExpr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new("named_struct"))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    });
    Ok(())
}

/// The `(name, value)` pairs of `named_struct('a', x, ...)` whose names are literals.
fn named_struct_fields(value: &mut SqlExpr) -> Option<Vec<(String, &mut SqlExpr)>> {
    let SqlExpr::Function(f) = value else {
        return None;
    };
    if !is_named(&f.name, "named_struct") {
        return None;
    }
    let FunctionArguments::List(list) = &mut f.args else {
        return None;
    };
    let mut pairs = Vec::new();
    let mut args = list.args.iter_mut();
    while let (Some(name), Some(expr)) = (args.next(), args.next()) {
        let (
            FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(name))),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)),
        ) = (name, expr)
        else {
            return None;
        };
        let Value::SingleQuotedString(name) = &name.value else {
            return None;
        };
        pairs.push((name.clone(), expr));
    }
    Some(pairs)
}

/// The values of `struct(v1, ..., vn)` (a function call or a struct literal) that gives
/// `fields` values by position alone; `None` for anything else, such as
/// `struct(x AS a, ...)`, which names its own fields.
fn positional_struct(value: &SqlExpr, fields: usize) -> Option<Vec<SqlExpr>> {
    let values: Vec<SqlExpr> = match value {
        SqlExpr::Struct { values, fields } if fields.is_empty() => values.clone(),
        SqlExpr::Function(f) if is_named(&f.name, "struct") => match &f.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect::<Option<_>>()?,
            _ => return None,
        },
        _ => return None,
    };
    let named = values.iter().any(|v| matches!(v, SqlExpr::Named { .. }));
    (values.len() == fields && !named).then_some(values)
}

fn unnamed(expr: SqlExpr) -> FunctionArg {
    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))
}

fn is_named(name: &ObjectName, wanted: &str) -> bool {
    matches!(name.0.as_slice(), [ObjectNamePart::Identifier(i)] if i.value.eq_ignore_ascii_case(wanted))
}
