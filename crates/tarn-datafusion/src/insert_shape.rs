//! An INSERT whose values do not line up with its columns, said in the table's terms.
//!
//! DataFusion reports `INSERT INTO t VALUES (1)` into a three-column table as "Inconsistent
//! data length across values list: got 1 values in row 0 but expected 3", and an
//! `INSERT ... SELECT` of the wrong width as "Column count doesn't match insert query!".
//! When planning an INSERT fails so, the statement is looked at again with the table's
//! columns in hand, and the error names the row, the counts and the columns. Only a failed
//! INSERT pays for this.

use datafusion::sql::sqlparser::ast::{Insert, ObjectName, Query, SetExpr, TableObject};

/// What the check needs of an INSERT, taken before planning consumes the statement: the
/// number of values in each row of a VALUES, not the values themselves, so that an INSERT
/// that plans pays only for a count per row.
pub(crate) struct InsertShape {
    pub table: ObjectName,
    overwrite: bool,
    /// The column list, if the INSERT has one.
    listed: Vec<String>,
    /// How many values each row of a VALUES source gives.
    row_widths: Option<Vec<usize>>,
    /// A source that is a query, planned again (alone) to tell its width.
    pub query: Option<Box<Query>>,
}

impl InsertShape {
    /// The shape of an INSERT into a named table.
    pub(crate) fn of(insert: &Insert) -> Option<Self> {
        let TableObject::TableName(table) = &insert.table else {
            return None;
        };
        let (row_widths, query) = match insert.source.as_deref() {
            Some(source) => match source.body.as_ref() {
                SetExpr::Values(values) => (
                    Some(values.rows.iter().map(|row| row.len()).collect()),
                    None,
                ),
                _ => (None, Some(Box::new(source.clone()))),
            },
            None => (None, None),
        };
        Some(InsertShape {
            table: table.clone(),
            overwrite: insert.overwrite,
            listed: insert
                .columns
                .iter()
                .filter_map(|c| crate::names::parts(c).ok()?.pop())
                .collect(),
            row_widths,
            query,
        })
    }
}

/// The error for the INSERT of `shape`, which DataFusion refused with `message`, into
/// table `name` with `columns`; `query_width` is how many columns its query gives, when it
/// is a query that plans. `None` when `message` is not about the INSERT's shape.
pub(crate) fn shape_error(
    shape: &InsertShape,
    message: &str,
    name: &str,
    columns: &[String],
    query_width: Option<usize>,
) -> Option<String> {
    let statement = if shape.overwrite {
        "INSERT OVERWRITE"
    } else {
        "INSERT INTO"
    };
    let listed = &shape.listed;
    if message.starts_with("Schema contains duplicate unqualified field name") {
        let twice = listed
            .iter()
            .enumerate()
            .find(|(i, c)| listed[..*i].contains(c))?;
        return Some(format!(
            "{statement} {name} names column '{}' twice; name each column once",
            twice.1
        ));
    }
    if message.starts_with("No field named ") {
        let unknown = listed.iter().find(|c| !columns.contains(c))?;
        return Some(format!(
            "{statement} {name}: the table has no column '{unknown}'; its columns are {}",
            columns.join(", ")
        ));
    }
    if !message.starts_with("Inconsistent data length across values list")
        && message != "Column count doesn't match insert query!"
    {
        return None;
    }
    let width = if listed.is_empty() {
        columns.len()
    } else {
        listed.len()
    };
    let (gives, given) = match &shape.row_widths {
        Some(rows) => {
            let (row, &values) = rows.iter().enumerate().find(|(_, n)| **n != width)?;
            let gives = format!("row {} gives {}", row + 1, counted(values, "value"));
            (gives, Some(values))
        }
        None => match query_width {
            Some(n) => (format!("the query gives {}", counted(n, "column")), Some(n)),
            None => (
                "the query gives another number of columns".to_string(),
                None,
            ),
        },
    };
    let takes = if listed.is_empty() {
        let mut takes = format!(
            "the table has {} ({})",
            counted(columns.len(), "column"),
            columns.join(", ")
        );
        // Fewer values than columns: most likely meant for the first ones.
        if let Some(given) = given.filter(|g| (1..columns.len()).contains(g)) {
            takes.push_str(&format!(
                "; name the columns the values are for: {statement} {name} ({}) ...",
                columns[..given].join(", ")
            ));
        }
        takes
    } else {
        format!(
            "the INSERT names {} ({})",
            counted(listed.len(), "column"),
            listed.join(", ")
        )
    };
    Some(format!("{statement} {name}: {gives}, but {takes}"))
}

fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn error(sql: &str, message: &str, query_width: Option<usize>) -> Option<String> {
        let Statement::Insert(insert) = Parser::parse_sql(&GenericDialect {}, sql)
            .expect("SQL")
            .remove(0)
        else {
            panic!("not an INSERT: {sql}");
        };
        let columns = ["a", "b", "c"].map(String::from);
        let shape = InsertShape::of(&insert).expect("into a named table");
        shape_error(&shape, message, "default.t", &columns, query_width)
    }

    const VALUES: &str = "Inconsistent data length across values list: got 1 values in row 0";

    #[test]
    fn values_name_the_row_and_the_columns() {
        assert_eq!(
            error("INSERT INTO t VALUES (1, 2, 3), (1)", VALUES, None).as_deref(),
            Some(
                "INSERT INTO default.t: row 2 gives 1 value, but the table has 3 columns \
                 (a, b, c); name the columns the values are for: INSERT INTO default.t (a) ..."
            )
        );
        assert_eq!(
            error("INSERT INTO t (c, a) VALUES (1, 2, 3)", VALUES, None).as_deref(),
            Some(
                "INSERT INTO default.t: row 1 gives 3 values, but the INSERT names 2 columns (c, a)"
            )
        );
    }

    #[test]
    fn queries_say_how_wide_they_are() {
        let message = "Column count doesn't match insert query!";
        assert_eq!(
            error("INSERT OVERWRITE t SELECT 1, 2", message, Some(2)).as_deref(),
            Some(
                "INSERT OVERWRITE default.t: the query gives 2 columns, but the table has 3 \
                 columns (a, b, c); name the columns the values are for: INSERT OVERWRITE \
                 default.t (a, b) ..."
            )
        );
        assert_eq!(
            error("INSERT INTO t SELECT 1, 2, 3, 4", message, Some(4)).as_deref(),
            Some(
                "INSERT INTO default.t: the query gives 4 columns, but the table has 3 columns \
                 (a, b, c)"
            )
        );
    }

    #[test]
    fn a_column_listed_twice_is_named() {
        let message = "Schema contains duplicate unqualified field name a";
        assert_eq!(
            error("INSERT INTO t (a, b, A) VALUES (1, 2, 3)", message, None).as_deref(),
            Some("INSERT INTO default.t names column 'a' twice; name each column once")
        );
    }

    #[test]
    fn an_unknown_column_is_named() {
        let message = "No field named zz. Valid fields are a, b, c.";
        assert_eq!(
            error("INSERT INTO t (a, zz) VALUES (1, 2)", message, None).as_deref(),
            Some("INSERT INTO default.t: the table has no column 'zz'; its columns are a, b, c")
        );
    }

    #[test]
    fn other_errors_are_left_as_they_are() {
        assert_eq!(
            error("INSERT INTO t VALUES (1)", "something else", None),
            None
        );
    }
}
