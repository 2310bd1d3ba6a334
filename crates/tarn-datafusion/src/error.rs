//! The one place tarn's errors become DataFusion's.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// A tarn-core error as a DataFusion error. The original stays reachable through
/// `DataFusionError::External` (for `ErrorKind` checks such as retryable conflicts).
pub fn to_df(e: tarn_core::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A tarn-spec error as a DataFusion planning error.
pub fn spec_to_df(e: tarn_spec::SpecError) -> DataFusionError {
    DataFusionError::Plan(e.to_string())
}

/// The tarn-core error inside a DataFusion error, if there is one.
pub fn tarn_error(e: &DataFusionError) -> Option<&tarn_core::Error> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<tarn_core::Error>(),
        DataFusionError::Context(_, inner) => tarn_error(inner),
        DataFusionError::Shared(inner) => tarn_error(inner),
        _ => None,
    }
}

/// Whether `e` is a metadata or data object missing from storage: snapshot expiry removed
/// the version a statement had loaded, and planning again loads a newer one.
pub(crate) fn is_missing_file(e: &DataFusionError) -> bool {
    matches!(
        tarn_error(e.find_root()),
        Some(tarn_core::Error::MissingFile { .. })
    )
}

/// The message of an error, as one line: the innermost error (without the names of the
/// DataFusion rules that passed it on), without DataFusion's category prefixes.
pub fn message_of(e: &DataFusionError) -> String {
    match e.find_root() {
        // DataFusion prints the parser's error with `Debug`: `SQL error: ParserError("...")`.
        DataFusionError::SQL(error, _) => match error.as_ref() {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
                clean(&format!("syntax error: {m}"))
            }
            other => clean(&other.to_string()),
        },
        root => clean(&root.to_string()),
    }
}

/// A message as one line, without DataFusion's prefixes.
pub fn clean(message: &str) -> String {
    let mut message = message.trim();
    for prefix in [
        "External error: ",
        "Error during planning: ",
        "Execution error: ",
        "Arrow error: ",
        "Invalid argument error: ",
    ] {
        while let Some(rest) = message.strip_prefix(prefix) {
            message = rest;
        }
    }
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            clean("External error: table 'x' does not exist\nmore"),
            "table 'x' does not exist more"
        );
        let wrapped = DataFusionError::Context(
            "tarn_dml".into(),
            Box::new(DataFusionError::Plan("a clause is wrong".into())),
        );
        assert_eq!(message_of(&wrapped), "a clause is wrong");
    }

    #[test]
    fn syntax_errors_read_as_such() {
        let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
            "SELEC 1",
        )
        .expect_err("not SQL");
        let error = DataFusionError::SQL(Box::new(parsed), None);
        assert_eq!(
            message_of(&error),
            "syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1"
        );
    }
}
