//! Delta's `MERGE ... WHEN MATCHED THEN UPDATE SET * ... WHEN NOT MATCHED THEN INSERT *`: every
//! column of the target set from, or inserted as, the source's column of the same name.
//!
//! sqlparser reads neither clause, and which columns a star means is known only once the
//! target table is loaded. So the parser writes each star as a clause on one placeholder
//! column (`SET "<placeholder>" = "<placeholder>"`, `INSERT ("<placeholder>") VALUES
//! ("<placeholder>")`), and before the statement is planned [`expand`] puts the table's
//! columns in its place.

use datafusion::common::SchemaError;
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr as SqlExpr, Ident, Merge, MergeAction, MergeInsertKind,
    ObjectName, ObjectNamePart, TableFactor,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::parse::is_keyword;

/// The column a star stands for until the statement's target is known.
const PLACEHOLDER: &str = "tarn:every column";

/// In the tokens of a MERGE statement, writes each `UPDATE SET *` and `INSERT *` as a clause
/// on the placeholder column.
pub(crate) fn mark(tokens: &mut Vec<TokenWithSpan>) {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let is = |i: usize, keyword: Keyword| is_keyword(&tokens[i].token, keyword);
    // The stars, last first, so that replacing one leaves the positions of the others.
    let stars: Vec<(usize, bool)> = significant
        .windows(2)
        .filter(|pair| tokens[pair[1]].token == Token::Mul)
        .filter_map(|pair| {
            let insert = is(pair[0], Keyword::INSERT);
            (insert || is(pair[0], Keyword::SET)).then_some((pair[1], insert))
        })
        .collect();
    for &(star, insert) in stars.iter().rev() {
        let column = || Token::make_word(PLACEHOLDER, Some('"'));
        let space = || Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space);
        let clause = match insert {
            true => vec![
                Token::LParen,
                column(),
                Token::RParen,
                space(),
                Token::make_keyword("VALUES"),
                Token::LParen,
                column(),
                Token::RParen,
            ],
            false => vec![column(), space(), Token::Eq, space(), column()],
        };
        tokens.splice(star..=star, clause.into_iter().map(TokenWithSpan::wrap));
    }
}

/// Whether `merge` has a clause [`mark`] wrote for a star.
pub(crate) fn has_stars(merge: &Merge) -> bool {
    merge.clauses.iter().any(|clause| match &clause.action {
        MergeAction::Update(update) => update.assignments.iter().any(is_placeholder_assignment),
        MergeAction::Insert(insert) => insert.columns.iter().any(is_placeholder_name),
        MergeAction::Delete { .. } => false,
    })
}

/// Puts `columns`, the target table's, in place of the stars of `merge`: `UPDATE SET *` sets
/// each column to the source's column of its name, `INSERT *` inserts every column from it.
/// Returns the name the columns are taken from, the source's.
pub(crate) fn expand(merge: &mut Merge, columns: &[String]) -> Result<Ident> {
    let source = source_name(&merge.source).ok_or_else(|| {
        DataFusionError::Plan(
            "MERGE INTO ... UPDATE SET * and INSERT * take the source's columns by its name: \
             give the source an alias (USING (...) AS s)"
                .into(),
        )
    })?;
    let column = |name: &str| Ident::with_quote('"', name);
    let from_source = |name: &str| SqlExpr::CompoundIdentifier(vec![source.clone(), column(name)]);
    for clause in &mut merge.clauses {
        match &mut clause.action {
            MergeAction::Update(update)
                if update.assignments.iter().any(is_placeholder_assignment) =>
            {
                if update.assignments.len() > 1 {
                    return Err(DataFusionError::Plan(
                        "MERGE INTO ... UPDATE SET * sets every column; it takes no other \
                         assignment"
                            .into(),
                    ));
                }
                update.assignments = (columns.iter())
                    .map(|name| Assignment {
                        target: AssignmentTarget::ColumnName(ObjectName::from(vec![column(name)])),
                        value: from_source(name),
                    })
                    .collect();
            }
            MergeAction::Insert(insert) if insert.columns.iter().any(is_placeholder_name) => {
                insert.columns = (columns.iter())
                    .map(|name| ObjectName::from(vec![column(name)]))
                    .collect();
                if let MergeInsertKind::Values(values) = &mut insert.kind
                    && let [row] = values.rows.as_mut_slice()
                {
                    row.content = columns.iter().map(|name| from_source(name)).collect();
                }
            }
            _ => {}
        }
    }
    Ok(source)
}

/// DataFusion's "No field named s.x" for a column a star took from `source`, said as the
/// star's mistake: the source lacks `x`, one of the target's `columns`.
pub(crate) fn missing_source_column(
    e: DataFusionError,
    source: &Ident,
    columns: &[String],
) -> DataFusionError {
    let DataFusionError::SchemaError(error, _) = e.find_root() else {
        return e;
    };
    let SchemaError::FieldNotFound { field, .. } = error.as_ref() else {
        return e;
    };
    let source = crate::names::normalize(source);
    if field.relation.as_ref().is_none_or(|r| r.table() != source) || !columns.contains(&field.name)
    {
        return e;
    }
    DataFusionError::Plan(format!(
        "MERGE INTO ... UPDATE SET * and INSERT * take each column of the target from the \
         source's column of its name, and the source {source} has no column '{column}': name \
         the columns instead (UPDATE SET c = {source}.c, ... or INSERT (c, ...) VALUES \
         ({source}.c, ...))",
        column = field.name
    ))
}

fn is_placeholder_name(name: &ObjectName) -> bool {
    matches!(name.0.as_slice(), [ObjectNamePart::Identifier(ident)]
        if ident.value == PLACEHOLDER && ident.quote_style == Some('"'))
}

fn is_placeholder_assignment(assignment: &Assignment) -> bool {
    matches!(&assignment.target, AssignmentTarget::ColumnName(name) if is_placeholder_name(name))
}

/// The name the statement gives the MERGE source: its alias, or a table's own name.
fn source_name(source: &TableFactor) -> Option<Ident> {
    match source {
        TableFactor::Table {
            alias: Some(alias), ..
        }
        | TableFactor::Derived {
            alias: Some(alias), ..
        } => Some(alias.name.clone()),
        TableFactor::Table {
            name, alias: None, ..
        } => name.0.last()?.as_ident().cloned(),
        _ => None,
    }
}
