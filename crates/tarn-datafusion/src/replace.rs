//! Writes that replace the rows a condition picks, run as the MERGE that does it in one
//! version:
//!
//! - Delta's `INSERT INTO t [(columns)] REPLACE WHERE condition query`;
//! - Hive's and Spark's static partition values, `INSERT [OVERWRITE] [TABLE] t [(columns)]
//!   PARTITION (k = v, ...) query`: the query gives the other columns and every row takes the
//!   given values; an OVERWRITE replaces the rows with those values (whatever the table's
//!   overwrite mode, as in Spark), as `REPLACE WHERE k = v` does.
//!
//! ```text
//! INSERT INTO t REPLACE WHERE c query
//!   ⇒ MERGE INTO t USING (SELECT ... FROM (query) WHERE assert_true(c, '...') IS NULL) s
//!     ON FALSE WHEN NOT MATCHED BY SOURCE AND c THEN DELETE WHEN NOT MATCHED THEN INSERT ...
//! ```
//!
//! `ON FALSE` pairs no rows, and pass 1 plans it without a join (see `dml::pass1`): the
//! target files `c` does not prune beside the new rows. Every new row must satisfy `c`, as
//! Delta checks by default: `assert_true` fails the statement, which changes nothing.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Ident, Insert, ObjectName, Query, SetExpr, Value,
};
use tarn_spec::Schema;

use crate::context::quote;
use crate::parse::parse;

/// The alias of the rows a replace inserts, by which DML planning knows the MERGE for one.
pub(crate) const SOURCE: &str = "__tarn_replace";

/// The static partition values of an INSERT: the columns they go to, and the columns the
/// query gives.
pub(crate) struct StaticValues {
    /// Each given column (the table's name for it) and its value.
    fixed: Vec<(String, SqlExpr)>,
    /// The columns the query gives, quoted or as written in the column list.
    listed: Vec<String>,
}

impl StaticValues {
    /// The values of `insert`'s `PARTITION (...)` into a table of `schema`, named `name` in
    /// messages; `None` without the clause.
    pub(crate) fn of(insert: &Insert, schema: &Schema, name: &ObjectName) -> Result<Option<Self>> {
        let Some(items) = &insert.partitioned else {
            return Ok(None);
        };
        let mut fixed: Vec<(String, SqlExpr)> = Vec::new();
        for item in items {
            let SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = item
            else {
                return refuse(format!(
                    "takes column = value; '{item}' has no value (a dynamic partition column): \
                     give its values in the query, as for any column, and leave it out of \
                     PARTITION; SET tarn.overwrite_mode = 'dynamic' makes an INSERT OVERWRITE \
                     replace only the partitions its rows fall in"
                ));
            };
            let SqlExpr::Identifier(column) = left.as_ref() else {
                return refuse(format!("takes column = value, not '{item}'"));
            };
            let found = schema
                .fields()
                .iter()
                .find(|f| match column.quote_style {
                    Some(_) => f.name == column.value,
                    None => f.name.eq_ignore_ascii_case(&column.value),
                })
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "INSERT ... PARTITION (...): {name} has no column {column}"
                    ))
                })?;
            if fixed.iter().any(|(c, _)| *c == found.name) {
                return refuse(format!("gives {} twice", found.name));
            }
            fixed.push((found.name.clone(), right.as_ref().clone()));
        }
        let listed = match (&insert.columns[..], &insert.after_columns[..]) {
            ([], []) => schema
                .fields()
                .iter()
                .filter(|f| fixed.iter().all(|(c, _)| *c != f.name))
                .map(|f| quote(&f.name))
                .collect(),
            (columns, []) => columns.iter().map(ToString::to_string).collect(),
            (_, columns) => columns.iter().map(ToString::to_string).collect(),
        };
        Ok(Some(StaticValues { fixed, listed }))
    }

    /// Refuses a query that gives `width` columns where it should give the others.
    pub(crate) fn check_width(&self, width: usize) -> Result<()> {
        if width == self.listed.len() {
            return Ok(());
        }
        let given: Vec<&str> = self.fixed.iter().map(|(c, _)| c.as_str()).collect();
        refuse(format!(
            "gives {}; the query gives the other {} columns ({}), not {width}",
            given.join(", "),
            self.listed.len(),
            self.listed.join(", "),
        ))
    }

    /// The INSERT INTO `name` of `query`'s rows with the values after their columns.
    pub(crate) fn insert(&self, name: &ObjectName, query: &Query) -> Result<DFStatement> {
        let columns: Vec<String> = (self.listed.iter().cloned())
            .chain(self.fixed.iter().map(|(c, _)| quote(c)))
            .collect();
        let columns = columns.join(", ");
        let sql = match query.body.as_ref() {
            // Rows of VALUES take the values at their ends: DataFusion types the VALUES of an
            // INSERT, however deep, by the INSERT's columns.
            SetExpr::Values(rows) => {
                let mut query = query.clone();
                let mut rows = rows.clone();
                for row in rows.rows.iter_mut() {
                    row.extend(self.fixed.iter().map(|(_, v)| v.clone()));
                }
                *query.body = SetExpr::Values(rows);
                format!("INSERT INTO {name} ({columns}) {query}")
            }
            _ => {
                let values: Vec<String> = self.fixed.iter().map(|(_, v)| v.to_string()).collect();
                format!(
                    "INSERT INTO {name} ({columns}) SELECT __tarn_static.*, {values} FROM \
                     ({query}) AS __tarn_static",
                    values = values.join(", "),
                )
            }
        };
        parse_one(&sql)
    }

    /// The condition that picks the rows with the values (`k = NULL` picks the NULLs).
    pub(crate) fn condition(&self) -> Option<SqlExpr> {
        let picks = self.fixed.iter().map(|(column, value)| {
            let column = Box::new(SqlExpr::Identifier(Ident::with_quote('"', column)));
            match value {
                SqlExpr::Value(v) if v.value == Value::Null => SqlExpr::IsNull(column),
                value => SqlExpr::BinaryOp {
                    left: column,
                    op: BinaryOperator::Eq,
                    right: Box::new(value.clone()),
                },
            }
        });
        picks.reduce(|a, b| SqlExpr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })
    }
}

/// The MERGE that replaces the rows of `name` that `condition` picks by `query`'s rows, which
/// go to `columns` (quoted or as written) and must all satisfy `condition`.
pub(crate) fn as_merge(
    name: &ObjectName,
    columns: &[String],
    query: &Query,
    condition: &SqlExpr,
) -> Result<DFStatement> {
    let hidden: Vec<String> = (0..columns.len())
        .map(|i| format!("__tarn_replace_{i}"))
        .collect();
    let renamed: Vec<String> = columns
        .iter()
        .zip(&hidden)
        .map(|(c, h)| format!("{c} AS {h}"))
        .collect();
    let message = format!(
        "INSERT INTO {name} REPLACE WHERE {condition}: a row to insert does not satisfy the \
         condition (every row inserted must be one it picks); nothing was changed"
    )
    .replace('\'', "''");
    // The rows keep the table's column names (and its name, for a condition that qualifies
    // them) where the condition checks them, and are renamed for the MERGE, where those names
    // are the target's.
    let rows = match name.0.last().and_then(|part| part.as_ident()) {
        Some(table) => table.to_string(),
        None => "__tarn_rows".to_string(),
    };
    parse_one(&format!(
        "MERGE INTO {name} USING (SELECT {renamed} FROM ({query}) AS {rows}({columns}) \
         WHERE assert_true({condition}, '{message}') IS NULL) AS {SOURCE} ON FALSE \
         WHEN NOT MATCHED BY SOURCE AND ({condition}) THEN DELETE \
         WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({hidden})",
        renamed = renamed.join(", "),
        columns = columns.join(", "),
        hidden = hidden.join(", "),
    ))
}

/// The one statement `sql` (written here) holds.
fn parse_one(sql: &str) -> Result<DFStatement> {
    let mut parsed = parse(sql)?;
    match (parsed.pop(), parsed.is_empty()) {
        (Some(one), true) => Ok(one.statement),
        _ => Err(DataFusionError::Internal(format!(
            "expected one statement: {sql}"
        ))),
    }
}

fn refuse<T>(what: String) -> Result<T> {
    Err(DataFusionError::Plan(format!(
        "INSERT ... PARTITION (...) {what}"
    )))
}
