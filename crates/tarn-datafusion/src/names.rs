//! Resolving SQL object names against tarn's catalog.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

/// A table name resolved to its catalog, namespace and table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    pub catalog: String,
    pub namespace: String,
    pub table: String,
}

impl QualifiedName {
    /// `catalog.namespace.table`, `namespace.table` or `table`, with the defaults filling in.
    pub fn resolve(
        parts: &[String],
        default_catalog: &str,
        default_namespace: &str,
    ) -> Result<Self> {
        let (catalog, namespace, table) = match parts {
            [t] => (default_catalog, default_namespace, t.as_str()),
            [n, t] => (default_catalog, n.as_str(), t.as_str()),
            [c, n, t] => (c.as_str(), n.as_str(), t.as_str()),
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "'{}' is not a table name; use table, namespace.table or catalog.namespace.table",
                    parts.join(".")
                )));
            }
        };
        Ok(QualifiedName {
            catalog: catalog.into(),
            namespace: namespace.into(),
            table: table.into(),
        })
    }

    /// The parts of a dotted name given as a string, each as written (quotes removed).
    pub fn split(name: &str) -> Vec<String> {
        name.split('.')
            .map(|p| p.trim().trim_matches('"').to_string())
            .collect()
    }

    /// `namespace.table`, as tarn names tables in messages.
    pub fn short(&self) -> String {
        format!("{}.{}", self.namespace, self.table)
    }
}

/// An identifier as DataFusion normalises it: unquoted folds to lower case.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// The parts of an object name, normalised.
pub fn parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(normalize)
                .ok_or_else(|| DataFusionError::Plan(format!("'{name}' is not a plain name")))
        })
        .collect()
}

/// Whether `name` reads back as itself unquoted: lower-case letters, digits and `_`, not
/// starting with a digit (SQL folds other unquoted names to lower case, or splits them).
pub fn is_plain(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `name` as a statement reads it back: as it is when it is [`is_plain`] and no keyword,
/// else double-quoted (upper case, `-`, a keyword).
pub fn sql_identifier(name: &str) -> String {
    let keyword = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
        .binary_search(&name.to_ascii_uppercase().as_str())
        .is_ok();
    if is_plain(name) && !keyword {
        name.to_string()
    } else {
        crate::context::quote(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_where_sql_would_read_them_otherwise() {
        assert_eq!(sql_identifier("sales_2026"), "sales_2026");
        assert_eq!(sql_identifier("my-ns"), "\"my-ns\"");
        assert_eq!(sql_identifier("Sales"), "\"Sales\"");
        assert_eq!(sql_identifier("2026"), "\"2026\"");
        assert_eq!(sql_identifier("select"), "\"select\"");
        assert_eq!(sql_identifier("a\"b"), "\"a\"\"b\"");
    }
}
