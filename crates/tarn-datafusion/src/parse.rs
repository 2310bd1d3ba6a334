//! tarn's SQL parser: sqlparser with tarn's dialect, plus the clauses sqlparser cannot read
//! in that dialect, lifted out of the token stream: `PARTITIONED BY (transforms)` in CREATE
//! TABLE, and ALTER TABLE's `SET/RESET PARTITIONED BY` and `UNSET TBLPROPERTIES`.
//!
//! Literals are normalised on the way: a number with an exponent (`1e300`) is a DOUBLE, any
//! other number with a fraction an exact DECIMAL (the session parses those as decimals).

use std::ops::ControlFlow;

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::parser::{CopyToSource, DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AlterTable, Assignment, AssignmentTarget, CommentObject, DataType as SqlType, Delete,
    ExactNumberInfo, Expr as SqlExpr, FromTable, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, MergeAction, ObjectName, ObjectNamePart, Query,
    SetExpr, Statement, TableAlias, TableFactor, TableSampleKind, TableSampleUnit, TableVersion,
    TableWithJoins, TypedString, UpdateTableFromKind, Value as SqlValue, ValueWithSpan, VisitMut,
    VisitorMut, visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace, Word};

use crate::alter::TarnAlter;
use crate::dialect::TarnDialect;
use crate::maintenance::Optimize;
use crate::names::{QualifiedName, normalize};

/// One parsed statement, with the `PARTITIONED BY` clause tarn reads itself.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub(crate) statement: DFStatement,
    pub(crate) partition_by: Vec<SqlExpr>,
    pub(crate) alter: Option<TarnAlter>,
    pub(crate) optimize: Option<Optimize>,
    /// DuckDB's `INSERT INTO t BY NAME query`: the query's columns go to the table's
    /// columns of the same names (the statement holds the INSERT without `BY NAME`).
    pub(crate) insert_by_name: bool,
    /// Delta's `INSERT INTO t [(columns)] REPLACE WHERE condition query`: the condition (the
    /// statement holds the INSERT without it).
    pub(crate) replace_where: Option<SqlExpr>,
}

impl ParsedStatement {
    pub fn statement(&self) -> &DFStatement {
        &self.statement
    }
}

/// Parses SQL in tarn's dialect, lifting each CREATE TABLE's `PARTITIONED BY (...)` clause
/// out of the token stream (its items are transforms, which the generic dialect cannot read
/// there).
pub(crate) fn parse(sql: &str) -> Result<Vec<ParsedStatement>> {
    let dialect = TarnDialect;
    let spanned = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::SQL(Box::new(e.into()), None))?;
    let spanned = split_closing_angle_brackets(spanned);
    let mut out = Vec::new();
    for statement in spanned.split(|t| t.token == Token::SemiColon) {
        if let Some(parsed) = parse_statement(statement)? {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// One statement's tokens (no semicolon): tarn's own ALTER TABLE forms, or sqlparser's
/// statement with the `PARTITIONED BY` clause lifted out. `None` for an empty statement.
fn parse_statement(spanned: &[TokenWithSpan]) -> Result<Option<ParsedStatement>> {
    let dialect = TarnDialect;
    let tokens: Vec<Token> = spanned.iter().map(|t| t.token.clone()).collect();
    refuse_long_chains(&tokens)?;
    refuse_negative_versions(&tokens)?;
    if let Some((statement, alter)) = parse_tarn_alter(&tokens)? {
        return Ok(Some(ParsedStatement {
            statement,
            partition_by: Vec::new(),
            alter: Some(alter),
            optimize: None,
            insert_by_name: false,
            replace_where: None,
        }));
    }
    if let Some((statement, optimize)) = parse_optimize(&tokens)? {
        return Ok(Some(ParsedStatement {
            statement,
            partition_by: Vec::new(),
            alter: None,
            optimize: Some(optimize),
            insert_by_name: false,
            replace_where: None,
        }));
    }
    // Statements of other systems that tarn runs as statements of its own.
    let rewritten = match parse_restore(&tokens)? {
        Some(statement) => Some(statement),
        None => parse_metadata_shortcut(&tokens)?,
    };
    if let Some(statement) = rewritten {
        return Ok(Some(ParsedStatement {
            statement,
            partition_by: Vec::new(),
            alter: None,
            optimize: None,
            insert_by_name: false,
            replace_where: None,
        }));
    }
    let mut kept: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut partition_by = Vec::new();
    let datafusions = partitioned_by_is_datafusions(&tokens);
    let by_name = insert_by_name(&tokens);
    let replace = replace_where(&tokens);
    let replace_where = match replace {
        Some((_, condition, query)) => Some(
            parse_items(&tokens[condition..query], "REPLACE WHERE").and_then(|mut items| {
                match items.len() {
                    1 => Ok(items.remove(0)),
                    _ => Err(DataFusionError::Plan(
                        "REPLACE WHERE takes one condition, then the query of the rows".into(),
                    )),
                }
            })?,
        ),
        None => None,
    };
    let mut i = 0;
    while i < tokens.len() {
        if let Some((by, name)) = by_name
            && (i == by || i == name)
        {
            i += 1;
            continue;
        }
        if let Some((start, _, query)) = replace
            && (start..query).contains(&i)
        {
            i = query;
            continue;
        }
        if is_keyword(&tokens[i], Keyword::FOR) && is_trino_time_travel(&tokens, i) {
            i += 1;
            continue;
        }
        if !datafusions
            && is_keyword(&tokens[i], Keyword::PARTITIONED)
            && let Some(by) = next_significant(&tokens, i + 1)
            && is_keyword(&tokens[by], Keyword::BY)
            && let Some(open) = next_significant(&tokens, by + 1)
            && tokens[open] == Token::LParen
        {
            let close = matching_paren(&tokens, open)
                .ok_or_else(|| DataFusionError::Plan("PARTITIONED BY ( is never closed".into()))?;
            partition_by = parse_items(&tokens[open + 1..close], "PARTITIONED BY")?;
            i = close + 1;
            continue;
        }
        kept.push(spanned[i].clone());
        i += 1;
    }
    if explained_start(&tokens).is_some_and(|i| is_keyword(&tokens[i], Keyword::MERGE)) {
        crate::merge_star::mark(&mut kept);
    }
    if next_significant(&tokens, 0).is_some_and(|i| is_keyword(&tokens[i], Keyword::ALTER)) {
        add_columns_as_add_column(&mut kept)?;
    }
    let mut parser = DFParserBuilder::new(kept)
        .with_dialect(&dialect as &dyn Dialect)
        .build()?;
    // Most statements sample nothing: only these walk the statement for sampled tables.
    let samples = tokens
        .iter()
        .any(|t| is_keyword(t, Keyword::TABLESAMPLE) || is_keyword(t, Keyword::SAMPLE));
    let mut statements = parser.parse_statements()?;
    for statement in statements.iter_mut() {
        // EXPLAIN shows the plan of the statement it wraps, as the statement would run.
        let mut statement = statement;
        while let DFStatement::Explain(explain) = statement {
            statement = explain.statement.as_mut();
        }
        if let DFStatement::CopyTo(copy) = statement
            && let CopyToSource::Query(query) = &mut copy.source
            && samples
        {
            samples_as_filters(query.as_mut())?;
        }
        if let DFStatement::Statement(s) = statement {
            if let Some(inlined) = dml_with_ctes_inlined(s)? {
                **s = inlined;
            }
            if let Some(standard) = joined_dml_as_standard(s)? {
                **s = standard;
            }
            if samples {
                samples_as_filters(s)?;
            }
            exponent_numbers_are_doubles(s);
            time_travel_functions_are_versions(s)?;
            refuse_versioned_targets(s)?;
            refuse_repeated_assignments(s)?;
            refuse_other_dialects_dml(s)?;
            versions_are_names(s);
        }
    }
    match (statements.pop_front(), statements.is_empty()) {
        (None, _) if partition_by.is_empty() => Ok(None),
        (Some(statement), true)
            if !partition_by.is_empty()
                && !matches!(&statement, DFStatement::Statement(s)
                    if matches!(s.as_ref(), Statement::CreateTable(_))) =>
        {
            Err(DataFusionError::Plan(
                "PARTITIONED BY belongs to CREATE TABLE (and, naming columns, to COPY and \
                 CREATE EXTERNAL TABLE); a table's partitioning changes with ALTER TABLE ... \
                 SET PARTITIONED BY"
                    .into(),
            ))
        }
        (Some(statement), true) => {
            let (statement, alter) = match comment_as_alter(&statement)? {
                Some((alter_table, alter)) => (alter_table, Some(alter)),
                None => (statement, None),
            };
            Ok(Some(ParsedStatement {
                statement,
                partition_by,
                alter,
                optimize: None,
                insert_by_name: by_name.is_some(),
                replace_where,
            }))
        }
        _ => Err(DataFusionError::Plan(
            "PARTITIONED BY outside a statement".into(),
        )),
    }
}

/// `OPTIMIZE [TABLE] name [WHERE predicate] [ORDER BY column, ... | ORDER BY (column, ...)]`,
/// with `CALL tarn.optimize(name)` standing for it where a statement is shown.
fn parse_optimize(tokens: &[Token]) -> Result<Option<(DFStatement, Optimize)>> {
    let Some(first) = next_significant(tokens, 0) else {
        return Ok(None);
    };
    let is_optimize =
        |i: usize| matches!(&tokens[i], Token::Word(w) if w.value.eq_ignore_ascii_case("optimize"));
    let explained = explained_start(tokens).filter(|&start| start != first);
    if explained.is_some_and(is_optimize) {
        return Err(DataFusionError::Plan(
            "EXPLAIN cannot show OPTIMIZE, which plans each partition's rewrite as it runs; \
             \"t$files\" shows the files it would compact"
                .into(),
        ));
    }
    if !is_optimize(first) {
        return Ok(None);
    }
    let error = |e: datafusion::sql::sqlparser::parser::ParserError| {
        DataFusionError::Plan(format!(
            "{e}; usage: OPTIMIZE table [WHERE partition predicate] [ORDER BY column, ...]"
        ))
    };
    let mut parser = Parser::new(&TarnDialect).with_tokens(tokens[first + 1..].to_vec());
    let _optional = parser.parse_keyword(Keyword::TABLE);
    let table = parser.parse_object_name(false).map_err(error)?;
    let filter = if parser.parse_keyword(Keyword::WHERE) {
        Some(parser.parse_expr().map_err(error)?)
    } else {
        None
    };
    let mut order_by = Vec::new();
    if parser.parse_keywords(&[Keyword::ORDER, Keyword::BY]) {
        let items = parser
            .parse_comma_separated(Parser::parse_expr)
            .map_err(error)?;
        for item in items {
            match item {
                SqlExpr::Nested(inner) => order_by.push(*inner),
                SqlExpr::Tuple(inner) => order_by.extend(inner),
                other => order_by.push(other),
            }
        }
    }
    if parser.peek_token().token != Token::EOF {
        return Err(DataFusionError::Plan(format!(
            "unexpected '{}' in OPTIMIZE; usage: OPTIMIZE table [WHERE partition predicate] [ORDER BY column, ...]",
            parser.peek_token().token
        )));
    }
    let shown = format!("CALL tarn.optimize('{table}')");
    let statement = DFParserBuilder::new(shown.as_str())
        .with_dialect(&TarnDialect as &dyn Dialect)
        .build()?
        .parse_statement()?;
    Ok(Some((
        statement,
        Optimize {
            table,
            filter,
            order_by,
        },
    )))
}

/// Delta's and Spark's statements that read a metadata table, as that query:
/// `DESCRIBE HISTORY t [LIMIT n]` is `SELECT * FROM "t$snapshots" ORDER BY version DESC [LIMIT
/// n]` (newest first), `SHOW TBLPROPERTIES t [LIMIT n]` is `SELECT * FROM "t$properties" ORDER
/// BY key [LIMIT n]`, `SHOW PARTITIONS t [LIMIT n]` is `SELECT * FROM "t$partitions" ORDER BY
/// spec_id, partition [LIMIT n]`, Delta's `DESCRIBE DETAIL t` is `SELECT * FROM "t$detail"`.
/// Without a name after it, `DESCRIBE history` describes a table named `history`.
fn parse_metadata_shortcut(tokens: &[Token]) -> Result<Option<DFStatement>> {
    let Some(first) = next_significant(tokens, 0) else {
        return Ok(None);
    };
    let Some(second) = next_significant(tokens, first + 1) else {
        return Ok(None);
    };
    let is = |i: usize, word: &str| {
        matches!(&tokens[i], Token::Word(w) if w.quote_style.is_none()
            && w.value.eq_ignore_ascii_case(word))
    };
    let (statement, metadata_table, order) =
        if (is(first, "describe") || is(first, "desc")) && is(second, "history") {
            ("DESCRIBE HISTORY", "snapshots", "version DESC")
        } else if is(first, "show") && is(second, "tblproperties") {
            ("SHOW TBLPROPERTIES", "properties", "key")
        } else if is(first, "show") && is(second, "partitions") {
            ("SHOW PARTITIONS", "partitions", "spec_id, partition")
        } else if (is(first, "describe") || is(first, "desc")) && is(second, "detail") {
            ("DESCRIBE DETAIL", "detail", "version")
        } else {
            return Ok(None);
        };
    let usage = format!("usage: {statement} table [LIMIT n]");
    if next_significant(tokens, second + 1).is_none() {
        // `DESCRIBE history` describes a table of that name; SHOW names no table.
        return match statement.starts_with("SHOW") {
            true => Err(DataFusionError::Plan(format!(
                "{statement} needs a table; {usage}"
            ))),
            false => Ok(None),
        };
    }
    let error = |e: datafusion::sql::sqlparser::parser::ParserError| {
        DataFusionError::Plan(format!("{e}; {usage}"))
    };
    let mut parser = Parser::new(&TarnDialect).with_tokens(tokens[second + 1..].to_vec());
    let mut table = parser.parse_object_name(false).map_err(error)?;
    let limit = if parser.parse_keyword(Keyword::LIMIT) {
        Some(parser.parse_literal_uint().map_err(error)?)
    } else {
        None
    };
    if parser.peek_token().token != Token::EOF {
        return Err(DataFusionError::Plan(format!(
            "unexpected '{}' in {statement}; {usage}",
            parser.peek_token().token
        )));
    }
    let Some(ObjectNamePart::Identifier(last)) = table.0.last_mut() else {
        return Err(DataFusionError::Plan(usage));
    };
    let name = normalize(last);
    *last = Ident::with_quote('"', format!("{name}${metadata_table}"));
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let query = format!("SELECT * FROM {table} ORDER BY {order}{limit}");
    Ok(Some(
        DFParserBuilder::new(query.as_str())
            .with_dialect(&TarnDialect as &dyn Dialect)
            .build()?
            .parse_statement()?,
    ))
}

/// Delta's `RESTORE [TABLE] t [TO] VERSION AS OF n | TIMESTAMP AS OF time`, as the procedure
/// call it is: `CALL tarn.rollback_to_snapshot(t, n)` or `CALL tarn.rollback_to_timestamp(t,
/// time)` (Iceberg's names).
fn parse_restore(tokens: &[Token]) -> Result<Option<DFStatement>> {
    let Some(first) = next_significant(tokens, 0) else {
        return Ok(None);
    };
    if !matches!(&tokens[first], Token::Word(w) if w.quote_style.is_none()
        && w.value.eq_ignore_ascii_case("restore"))
    {
        return Ok(None);
    }
    const USAGE: &str =
        "usage: RESTORE [TABLE] table [TO] VERSION AS OF version | TIMESTAMP AS OF time";
    let error = |e: datafusion::sql::sqlparser::parser::ParserError| {
        DataFusionError::Plan(format!("{e}; {USAGE}"))
    };
    let mut parser = Parser::new(&TarnDialect).with_tokens(tokens[first + 1..].to_vec());
    let _optional = parser.parse_keyword(Keyword::TABLE);
    let table = parser.parse_object_name(false).map_err(error)?;
    let _optional = parser.parse_keyword(Keyword::TO);
    let call = if parser.parse_keywords(&[Keyword::VERSION, Keyword::AS, Keyword::OF]) {
        let version = parser.parse_literal_uint().map_err(error)?;
        format!("CALL tarn.rollback_to_snapshot({table}, {version})")
    } else if parser.parse_keywords(&[Keyword::TIMESTAMP, Keyword::AS, Keyword::OF]) {
        let time = parser.parse_expr().map_err(error)?;
        format!("CALL tarn.rollback_to_timestamp({table}, {time})")
    } else {
        return Err(DataFusionError::Plan(format!(
            "RESTORE needs the version to go back to; {USAGE}"
        )));
    };
    if parser.peek_token().token != Token::EOF {
        return Err(DataFusionError::Plan(format!(
            "unexpected '{}' in RESTORE; {USAGE}",
            parser.peek_token().token
        )));
    }
    Ok(Some(
        DFParserBuilder::new(call.as_str())
            .with_dialect(&TarnDialect as &dyn Dialect)
            .build()?
            .parse_statement()?,
    ))
}

fn parse_items(tokens: &[Token], clause: &str) -> Result<Vec<SqlExpr>> {
    Parser::new(&TarnDialect)
        .with_tokens(tokens.to_vec())
        .parse_comma_separated(Parser::parse_expr)
        .map_err(|e| DataFusionError::Plan(format!("in {clause}: {e}")))
}

/// `ALTER TABLE [IF EXISTS] name` followed by `SET PARTITIONED BY (...)`,
/// `RESET PARTITIONED BY` or `UNSET TBLPROPERTIES [IF EXISTS] (...)`.
fn parse_tarn_alter(tokens: &[Token]) -> Result<Option<(DFStatement, TarnAlter)>> {
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&j| !matches!(tokens[j], Token::Whitespace(_)))
        .collect();
    let at = |k: usize, keyword: Keyword| {
        words
            .get(k)
            .is_some_and(|&j| is_keyword(&tokens[j], keyword))
    };
    if !(at(0, Keyword::ALTER) && at(1, Keyword::TABLE)) {
        return Ok(None);
    }
    let if_exists = at(2, Keyword::IF) && at(3, Keyword::EXISTS);
    let name_start = if if_exists { 4 } else { 2 };
    if let Some(statement) = parse_column_comment(tokens, &words, name_start, if_exists)? {
        return Ok(Some(statement));
    }
    // The name runs until the first keyword of tarn's forms.
    let Some(op) = (name_start..words.len()).find(|&k| {
        (at(k, Keyword::SET) || at(k, Keyword::RESET)) && at(k + 1, Keyword::PARTITIONED)
            || at(k, Keyword::UNSET) && at(k + 1, Keyword::TBLPROPERTIES)
    }) else {
        return Ok(None);
    };
    let name = alter_table_name(tokens, &words[name_start..op])?;
    let rest = &tokens[words[op]..];
    let parenthesized = |from: usize| -> Result<&[Token]> {
        let open = next_significant(rest, from)
            .filter(|&o| rest[o] == Token::LParen)
            .ok_or_else(|| {
                DataFusionError::Plan(
                    "expected ( after ALTER TABLE ... SET PARTITIONED BY or UNSET TBLPROPERTIES"
                        .into(),
                )
            })?;
        let close = matching_paren(rest, open)
            .ok_or_else(|| DataFusionError::Plan("( is never closed".into()))?;
        if next_significant(rest, close + 1).is_some() {
            return Err(DataFusionError::Plan(format!(
                "unexpected text after ): {}",
                rest[close + 1..]
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<String>()
                    .trim()
            )));
        }
        Ok(&rest[open + 1..close])
    };
    let alter = if at(op, Keyword::UNSET) {
        let if_exists = at(op + 2, Keyword::IF) && at(op + 3, Keyword::EXISTS);
        let after = words
            .get(op + if if_exists { 4 } else { 2 })
            .map_or(rest.len(), |&w| w - words[op]);
        let keys = Parser::new(&TarnDialect)
            .with_tokens(parenthesized(after)?.to_vec())
            .parse_comma_separated(Parser::parse_literal_string)
            .map_err(|e| DataFusionError::Plan(format!("in UNSET TBLPROPERTIES: {e}")))?;
        TarnAlter::UnsetProperties { keys, if_exists }
    } else {
        if !at(op + 2, Keyword::BY) {
            return Err(DataFusionError::Plan("expected PARTITIONED BY".into()));
        }
        let after = words[op + 2] - words[op] + 1;
        if at(op, Keyword::RESET) {
            if next_significant(rest, after).is_some() {
                return Err(DataFusionError::Plan(
                    "RESET PARTITIONED BY takes nothing after it".into(),
                ));
            }
            TarnAlter::ResetPartitionedBy
        } else {
            TarnAlter::SetPartitionedBy(parse_items(parenthesized(after)?, "SET PARTITIONED BY")?)
        }
    };
    Ok(Some((tarn_alter_statement(name, if_exists), alter)))
}

/// The table an ALTER TABLE names, in the tokens at positions `name`.
fn alter_table_name(tokens: &[Token], name: &[usize]) -> Result<ObjectName> {
    Parser::new(&TarnDialect)
        .with_tokens(name.iter().map(|&j| tokens[j].clone()).collect())
        .parse_object_name(false)
        .map_err(|e| DataFusionError::Plan(format!("in ALTER TABLE: {e}")))
}

/// Spark's and Delta's `ALTER TABLE t ALTER [COLUMN] c COMMENT '...'`, as `COMMENT ON COLUMN
/// t.c IS '...'`; `words` are the positions of the statement's significant tokens and the
/// table's name starts at `words[name_start]`. `None` for any other ALTER.
fn parse_column_comment(
    tokens: &[Token],
    words: &[usize],
    name_start: usize,
    if_exists: bool,
) -> Result<Option<(DFStatement, TarnAlter)>> {
    let at = |k: usize, keyword: Keyword| {
        words
            .get(k)
            .is_some_and(|&j| is_keyword(&tokens[j], keyword))
    };
    let n = words.len();
    // ... ALTER [COLUMN] c COMMENT 'text', the column one word or a quoted path.
    let Some(Token::SingleQuotedString(comment)) = words.last().map(|&j| &tokens[j]) else {
        return Ok(None);
    };
    if n < name_start + 5 || !at(n - 2, Keyword::COMMENT) {
        return Ok(None);
    }
    let Token::Word(column) = &tokens[words[n - 3]] else {
        return Ok(None);
    };
    let alter = if at(n - 4, Keyword::COLUMN) {
        n - 5
    } else {
        n - 4
    };
    if alter <= name_start || !at(alter, Keyword::ALTER) {
        return Ok(None);
    }
    let name = alter_table_name(tokens, &words[name_start..alter])?;
    let alter = TarnAlter::Comment {
        column: Some(match column.quote_style {
            Some(_) => column.value.clone(),
            None => column.value.to_ascii_lowercase(),
        }),
        comment: Some(comment.clone()),
    };
    Ok(Some((tarn_alter_statement(name, if_exists), alter)))
}

/// The ALTER TABLE statement that carries one of tarn's own forms ([`TarnAlter`]).
fn tarn_alter_statement(name: ObjectName, if_exists: bool) -> DFStatement {
    DFStatement::Statement(Box::new(Statement::AlterTable(AlterTable {
        name,
        if_exists,
        only: false,
        operations: Vec::new(),
        location: None,
        on_cluster: None,
        table_type: None,
        end_token: AttachedToken::empty(),
    })))
}

/// `COMMENT ON TABLE t IS '...'` and `COMMENT ON COLUMN t.c IS '...'` (`IS NULL` removes it),
/// which DataFusion does not run, as the ALTER TABLE that sets the comment.
fn comment_as_alter(statement: &DFStatement) -> Result<Option<(DFStatement, TarnAlter)>> {
    let DFStatement::Statement(statement) = statement else {
        return Ok(None);
    };
    let Statement::Comment {
        object_type,
        object_name,
        comment,
        if_exists,
    } = statement.as_ref()
    else {
        return Ok(None);
    };
    let (table, column) = match object_type {
        CommentObject::Table => (object_name.clone(), None),
        CommentObject::Column => {
            let mut parts = object_name.0.clone();
            let column = parts.pop().and_then(|p| p.as_ident().map(normalize));
            match (column, parts.is_empty()) {
                (Some(column), false) => (ObjectName(parts), Some(column)),
                _ => {
                    return Err(DataFusionError::Plan(format!(
                        "COMMENT ON COLUMN takes the table and the column: COMMENT ON COLUMN \
                         t.c IS '...', not {object_name}"
                    )));
                }
            }
        }
        other => {
            return Err(DataFusionError::Plan(format!(
                "COMMENT ON {other} is not supported: tarn keeps comments on tables and columns"
            )));
        }
    };
    let alter = TarnAlter::Comment {
        column,
        comment: comment.clone(),
    };
    Ok(Some((tarn_alter_statement(table, *if_exists), alter)))
}

/// sqlparser reads the `>>` that closes two nested types as one token, and then gives a `[]`
/// after it to the inner type: `STRUCT<a STRUCT<b INT>>[]` would be read as a struct
/// holding a list. A `>>` followed by `[` is split into two `>`, which sqlparser reads as
/// written (no expression has a `[` right after a shift).
fn split_closing_angle_brackets(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let before_bracket = || {
            tokens[i + 1..]
                .iter()
                .find(|t| !matches!(t.token, Token::Whitespace(_)))
                .is_some_and(|t| t.token == Token::LBracket)
        };
        if token.token == Token::ShiftRight && before_bracket() {
            out.push(TokenWithSpan::new(Token::Gt, token.span));
            out.push(TokenWithSpan::new(Token::Gt, token.span));
        } else {
            out.push(token.clone());
        }
    }
    out
}

/// `SELECT * FROM t AS x WHERE ...` for `DELETE FROM t AS x WHERE ...`: the rows it
/// deletes, read under the alias. DataFusion 55 plans a DELETE without its table's alias, so
/// a predicate naming `x` would not plan. `None` for a DELETE without an alias, or with a
/// clause beyond a single table and WHERE (left to DataFusion's own refusal).
pub(crate) fn aliased_delete_query(delete: &Delete) -> Option<Statement> {
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    let [table] = from.as_slice() else {
        return None;
    };
    let aliased = matches!(&table.relation, TableFactor::Table { alias: Some(_), .. });
    let plain = delete.tables.is_empty()
        && delete.using.is_none()
        && delete.returning.is_none()
        && delete.output.is_none()
        && delete.order_by.is_empty()
        && delete.limit.is_none();
    if !(aliased && plain && table.joins.is_empty()) {
        return None;
    }
    let mut query = Parser::new(&TarnDialect)
        .try_with_sql("SELECT * FROM t")
        .and_then(|mut p| p.parse_query())
        .expect("a constant query parses");
    let SetExpr::Select(select) = query.body.as_mut() else {
        unreachable!("a constant SELECT");
    };
    select.from = vec![table.clone()];
    select.selection = delete.selection.clone();
    Some(Statement::Query(query))
}

/// The most binary operators one expression may chain (`a OR b OR ...`, `x + y + ...`).
/// sqlparser reads such a chain without recursing, into a tree as deep as the chain is long,
/// and everything after it (copying, rewriting, planning, dropping the tree) recurses once
/// per operator: a chain far longer than any hand-written one would overflow the stack and
/// abort the process. The shell's stack holds this many with room to spare.
const MAX_OPERATOR_CHAIN: usize = 10_000;

/// Refuses a statement with a chain of more than [`MAX_OPERATOR_CHAIN`] operators, counted
/// on the tokens, before anything recurses over its tree. A chain is the operators of one
/// precedence between the same parentheses with no comma between them: `id = 1 OR id = 2
/// OR id = 3` counts 2 ORs and 3 `=`, not 5 operators, as its tree is about 3 deep.
fn refuse_long_chains(tokens: &[Token]) -> Result<()> {
    // Operators so far at each level of parentheses (or brackets) now open, by precedence.
    let mut levels: Vec<[usize; PRECEDENCES]> = vec![[0; PRECEDENCES]];
    for token in tokens {
        match token {
            Token::LParen | Token::LBracket => levels.push([0; PRECEDENCES]),
            Token::RParen | Token::RBracket if levels.len() > 1 => {
                levels.pop();
            }
            Token::Comma => {
                *levels.last_mut().expect("one level is always open") = [0; PRECEDENCES]
            }
            _ => {
                let Some(precedence) = precedence(token) else {
                    continue;
                };
                let count = &mut levels.last_mut().expect("one level is always open")[precedence];
                *count += 1;
                if *count > MAX_OPERATOR_CHAIN {
                    return Err(DataFusionError::Plan(format!(
                        "an expression in this statement chains more than {MAX_OPERATOR_CHAIN} \
                         operators (such as `a = 1 OR a = 2 OR ...`), more than tarn plans; \
                         write a long list of values as `IN (1, 2, ...)`, or join it as a table"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `VERSION AS OF -1`: sqlparser reads only a literal there and would say "Expected: a value,
/// found: -", which says nothing about versions.
fn refuse_negative_versions(tokens: &[Token]) -> Result<()> {
    let after = |i: usize, keyword: Keyword| {
        next_significant(tokens, i + 1).filter(|&j| is_keyword(&tokens[j], keyword))
    };
    for (i, token) in tokens.iter().enumerate() {
        if is_keyword(token, Keyword::VERSION)
            && let Some(of) = after(i, Keyword::AS).and_then(|as_| after(as_, Keyword::OF))
            && let Some(value) = next_significant(tokens, of + 1)
            && tokens[value] == Token::Minus
        {
            return Err(DataFusionError::Plan(
                "VERSION AS OF takes a version number, 0 or more; a table's versions are \
                 listed in \"t$snapshots\""
                    .into(),
            ));
        }
    }
    Ok(())
}

const PRECEDENCES: usize = 6;

/// Which of [`PRECEDENCES`] levels a binary operator binds at; `None` for other tokens.
fn precedence(token: &Token) -> Option<usize> {
    Some(match token {
        _ if is_keyword(token, Keyword::OR) => 0,
        _ if is_keyword(token, Keyword::AND) => 1,
        Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq => 2,
        Token::Ampersand | Token::Pipe | Token::Caret => 3,
        Token::Plus | Token::Minus | Token::StringConcat => 4,
        Token::Mul | Token::Div | Token::Mod => 5,
        _ => return None,
    })
}

/// Whether the statement is a `COPY` or a `CREATE [UNBOUNDED] EXTERNAL TABLE`, or an
/// `EXPLAIN [ANALYZE] [VERBOSE]` of one: their `PARTITIONED BY (columns)` is DataFusion's
/// own (hive-style directories), not a table's transforms, so it stays in the statement.
fn partitioned_by_is_datafusions(tokens: &[Token]) -> bool {
    let explained = [Keyword::EXPLAIN, Keyword::ANALYZE, Keyword::VERBOSE];
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .skip_while(|t| explained.iter().any(|&k| is_keyword(t, k)));
    match words.next() {
        Some(t) if is_keyword(t, Keyword::COPY) => true,
        Some(t) if is_keyword(t, Keyword::CREATE) => {
            words.take(2).any(|t| is_keyword(t, Keyword::EXTERNAL))
        }
        _ => false,
    }
}

/// Where DuckDB's `BY NAME` stands in `INSERT [OR ...] INTO t BY NAME query` (the positions of
/// its two words), when the statement is such an INSERT.
fn insert_by_name(tokens: &[Token]) -> Option<(usize, usize)> {
    let mut words = insert_words(tokens)?;
    let by =
        words.find(|&j| is_keyword(&tokens[j], Keyword::BY) || starts_query(&tokens[j], false))?;
    let name = words.next()?;
    (is_keyword(&tokens[by], Keyword::BY) && is_keyword(&tokens[name], Keyword::NAME))
        .then_some((by, name))
}

/// Where Delta's `REPLACE WHERE condition` stands in `INSERT INTO [TABLE] t [(columns)] REPLACE
/// WHERE condition query`: its first token, the condition's and the query's (a SELECT, VALUES,
/// WITH, FROM or TABLE outside the condition's parentheses), when the statement is such an
/// INSERT.
fn replace_where(tokens: &[Token]) -> Option<(usize, usize, usize)> {
    let mut words = insert_words(tokens)?;
    let replace = words
        .find(|&j| is_keyword(&tokens[j], Keyword::REPLACE) || starts_query(&tokens[j], false))?;
    let word = words.next()?;
    if !(is_keyword(&tokens[replace], Keyword::REPLACE)
        && is_keyword(&tokens[word], Keyword::WHERE))
    {
        return None;
    }
    let query = words.find(|&j| starts_query(&tokens[j], true))?;
    Some((replace, word + 1, query))
}

/// The words of an INSERT (or an EXPLAIN of one) after `INSERT`, outside parentheses; `None`
/// for another statement.
fn insert_words(tokens: &[Token]) -> Option<impl Iterator<Item = usize> + '_> {
    let first = explained_start(tokens)?;
    if !is_keyword(&tokens[first], Keyword::INSERT) {
        return None;
    }
    let mut depth = 0usize;
    Some((first + 1..tokens.len()).filter(move |&j| match tokens[j] {
        Token::Whitespace(_) => false,
        Token::LParen => {
            depth += 1;
            false
        }
        Token::RParen => {
            depth = depth.saturating_sub(1);
            false
        }
        _ => depth == 0,
    }))
}

/// Whether an INSERT's query may start at `token`; with `TABLE` only where `table` (before the
/// table's name, `INSERT INTO TABLE t` is Hive's form of `INSERT INTO t`).
fn starts_query(token: &Token, table: bool) -> bool {
    [
        Keyword::SELECT,
        Keyword::VALUES,
        Keyword::WITH,
        Keyword::FROM,
    ]
    .iter()
    .any(|k| is_keyword(token, *k))
        || (table && is_keyword(token, Keyword::TABLE))
}

/// Spark's and Delta's `ALTER TABLE t ADD COLUMNS (a INT, b VARCHAR COMMENT '...')`, in the
/// tokens of an ALTER statement, as the `ADD COLUMN a INT, ADD COLUMN b VARCHAR COMMENT '...'`
/// that sqlparser reads. The definitions are split at the commas outside parentheses and
/// outside the angle brackets of nested types (`STRUCT<a INT, b INT>`).
fn add_columns_as_add_column(tokens: &mut Vec<TokenWithSpan>) -> Result<()> {
    let plain: Vec<Token> = tokens.iter().map(|t| t.token.clone()).collect();
    let significant: Vec<usize> = (0..plain.len())
        .filter(|&j| !matches!(plain[j], Token::Whitespace(_)))
        .collect();
    // Each `ADD COLUMNS (`, last first, so that rewriting one keeps the others' positions.
    let lists: Vec<(usize, usize)> = significant
        .windows(3)
        .filter(|w| {
            is_keyword(&plain[w[0]], Keyword::ADD)
                && is_keyword(&plain[w[1]], Keyword::COLUMNS)
                && plain[w[2]] == Token::LParen
        })
        .map(|w| (w[1], w[2]))
        .collect();
    for &(columns, open) in lists.iter().rev() {
        let close = matching_paren(&plain, open).ok_or_else(|| {
            DataFusionError::Plan("ALTER TABLE ... ADD COLUMNS ( is never closed".into())
        })?;
        if next_significant(&plain[..close], open + 1).is_none() {
            return Err(DataFusionError::Plan(
                "ALTER TABLE ... ADD COLUMNS () names no column: ADD COLUMNS (c type, ...)".into(),
            ));
        }
        let (mut parens, mut angles) = (0usize, 0usize);
        let mut splits = Vec::new();
        for (j, token) in plain.iter().enumerate().take(close).skip(open + 1) {
            match token {
                Token::LParen => parens += 1,
                Token::RParen => parens = parens.saturating_sub(1),
                Token::Lt => angles += 1,
                Token::Gt => angles = angles.saturating_sub(1),
                Token::ShiftRight => angles = angles.saturating_sub(2),
                Token::Comma if parens == 0 && angles == 0 => splits.push(j),
                _ => {}
            }
        }
        let add_column = || {
            [
                Token::Whitespace(Whitespace::Space),
                Token::make_keyword("ADD"),
                Token::Whitespace(Whitespace::Space),
                Token::make_keyword("COLUMN"),
            ]
            .map(TokenWithSpan::wrap)
        };
        tokens[close] = TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space));
        for &comma in splits.iter().rev() {
            tokens.splice(comma + 1..comma + 1, add_column());
        }
        tokens[open] = TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space));
        tokens[columns] = TokenWithSpan::wrap(Token::make_keyword("COLUMN"));
    }
    Ok(())
}

/// Whether the `FOR` at `at` starts Trino's `FOR VERSION AS OF n` or `FOR TIMESTAMP AS OF t`,
/// which read as Spark's `VERSION AS OF` and `TIMESTAMP AS OF` once the `FOR` is dropped.
fn is_trino_time_travel(tokens: &[Token], at: usize) -> bool {
    let Some(kind) = next_significant(tokens, at + 1) else {
        return false;
    };
    let Some(as_) = next_significant(tokens, kind + 1) else {
        return false;
    };
    let of = next_significant(tokens, as_ + 1);
    (is_keyword(&tokens[kind], Keyword::VERSION) || is_keyword(&tokens[kind], Keyword::TIMESTAMP))
        && is_keyword(&tokens[as_], Keyword::AS)
        && of.is_some_and(|of| is_keyword(&tokens[of], Keyword::OF))
}

/// Where the statement proper starts: its first token, or the one after EXPLAIN [ANALYZE]
/// [VERBOSE] when it shows the plan of another.
fn explained_start(tokens: &[Token]) -> Option<usize> {
    let mut first = next_significant(tokens, 0)?;
    while [Keyword::EXPLAIN, Keyword::ANALYZE, Keyword::VERBOSE]
        .iter()
        .any(|k| is_keyword(&tokens[first], *k))
    {
        first = next_significant(tokens, first + 1)?;
    }
    Some(first)
}

pub(crate) fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(Word { keyword: k, quote_style: None, .. }) if *k == keyword)
}

fn next_significant(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
}

fn matching_paren(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Rewrites every number literal with an exponent (`1e300`, `2.5E-3`) into `DOUBLE '...'`:
/// the session reads numbers with a fraction as exact decimals, which is right for
/// `12345678901234567.89` but cannot hold `1e300`. DuckDB types literals the same way.
fn exponent_numbers_are_doubles(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let SqlExpr::Value(ValueWithSpan {
            value: SqlValue::Number(n, _),
            span,
        }) = expr
            && n.contains(['e', 'E'])
        {
            *expr = SqlExpr::TypedString(TypedString {
                data_type: SqlType::Double(ExactNumberInfo::None),
                value: ValueWithSpan {
                    value: SqlValue::SingleQuotedString(n.clone()),
                    span: *span,
                },
                uses_odbc_syntax: false,
            });
        }
        ControlFlow::<()>::Continue(())
    });
}

/// An expression as the user wrote it, for messages: numbers that the parser turned into
/// `DOUBLE '...'` shown as the numbers they were.
pub(crate) fn as_written(expr: &SqlExpr) -> String {
    let mut expr = expr.clone();
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let SqlExpr::TypedString(TypedString {
            data_type: SqlType::Double(ExactNumberInfo::None),
            value:
                ValueWithSpan {
                    value: SqlValue::SingleQuotedString(n),
                    span,
                },
            ..
        }) = e
            && n.contains(['e', 'E'])
            && n.parse::<f64>().is_ok()
        {
            *e = SqlExpr::Value(ValueWithSpan {
                value: SqlValue::Number(n.clone(), false),
                span: *span,
            });
        }
        ControlFlow::<()>::Continue(())
    });
    expr.to_string()
}

/// Rewrites `tarn_version('ns.t', 3)` into `ns.t VERSION AS OF 3` and `tarn_as_of('ns.t',
/// '...')` into `ns.t TIMESTAMP AS OF '...'`, so that DataFusion resolves the table by name
/// before planning, as for any other reference (see `time_travel`).
fn time_travel_functions_are_versions(statement: &mut Statement) -> Result<()> {
    rewrite_table_factors(statement, |factor| {
        let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = factor
        else {
            return Ok(None);
        };
        let function = name.to_string().to_ascii_lowercase();
        if function != "tarn_version"
            && function != "tarn_as_of"
            && !crate::changes::FUNCTIONS.contains(&function.as_str())
        {
            return Ok(None);
        }
        versioned_factor(&function, &args.args, alias.clone()).map(Some)
    })
}

/// Puts in place of each table factor of `node` the one `rewrite` gives for it, if any,
/// before visiting what the factor holds; the first error stops the walk.
fn rewrite_table_factors<F>(node: &mut impl VisitMut, rewrite: F) -> Result<()>
where
    F: FnMut(&TableFactor) -> Result<Option<TableFactor>>,
{
    struct Rewriter<F> {
        rewrite: F,
        error: Option<DataFusionError>,
    }
    impl<F: FnMut(&TableFactor) -> Result<Option<TableFactor>>> VisitorMut for Rewriter<F> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            match (self.rewrite)(factor) {
                Ok(Some(rewritten)) => *factor = rewritten,
                Ok(None) => {}
                Err(e) => {
                    self.error = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut rewriter = Rewriter {
        rewrite,
        error: None,
    };
    let _ = node.visit(&mut rewriter);
    rewriter.error.map_or(Ok(()), Err)
}

fn versioned_factor(
    function: &str,
    args: &[FunctionArg],
    alias: Option<datafusion::sql::sqlparser::ast::TableAlias>,
) -> Result<TableFactor> {
    let usage = || {
        DataFusionError::Plan(format!(
            "usage: {function}('namespace.table', {})",
            match function {
                "tarn_version" => "version",
                "tarn_as_of" => "'timestamp'",
                _ => "from[, to]), from and to being versions or 'timestamps' (both included",
            }
        ))
    };
    let literal = |arg: Option<&FunctionArg>| match arg {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v)))) => {
            Some(v.value.clone())
        }
        _ => None,
    };
    let is_change_feed = crate::changes::FUNCTIONS.contains(&function);
    let arity = if is_change_feed { 2..=3 } else { 2..=2 };
    let (Some(SqlValue::SingleQuotedString(table)), Some(at), true) = (
        literal(args.first()),
        args.get(1),
        arity.contains(&args.len()),
    ) else {
        return Err(usage());
    };
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(at)) = at else {
        return Err(usage());
    };
    let version = match (function, at) {
        _ if is_change_feed => TableVersion::Function(SqlExpr::Function(Function {
            name: ObjectName::from(vec![Ident::new(function)]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: args[1..].to_vec(),
                clauses: Vec::new(),
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: Vec::new(),
        })),
        (
            "tarn_version",
            SqlExpr::Value(ValueWithSpan {
                value: SqlValue::Number(..),
                ..
            }),
        ) => TableVersion::VersionAsOf(at.clone()),
        ("tarn_as_of", _) => TableVersion::TimestampAsOf(at.clone()),
        _ => return Err(usage()),
    };
    // The name as a string: each part as written, never case-folded.
    let parts = QualifiedName::split(&table);
    let name = ObjectName::from(
        parts
            .into_iter()
            .map(|p| Ident::with_quote('"', p))
            .collect::<Vec<_>>(),
    );
    Ok(TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints: Vec::new(),
        version: Some(version),
        with_ordinality: false,
        partitions: Vec::new(),
        json_path: None,
        sample: None,
        index_hints: Vec::new(),
    })
}

/// DELETE, UPDATE, MERGE and INSERT write the current table; a time-travel target would be
/// read as the current one by DataFusion, so it is refused here.
/// `UPDATE t SET a = 1, a = 2` (or the same in a MERGE clause) is an error, as in
/// PostgreSQL: DataFusion would keep one of the values without a word.
fn refuse_repeated_assignments(statement: &Statement) -> Result<()> {
    let lists: Vec<&[Assignment]> = match statement {
        Statement::Update(u) => vec![u.assignments.as_slice()],
        Statement::Merge(m) => m
            .clauses
            .iter()
            .filter_map(|c| match &c.action {
                MergeAction::Update(update) => Some(update.assignments.as_slice()),
                _ => None,
            })
            .collect(),
        _ => return Ok(()),
    };
    for assignments in lists {
        let mut seen = std::collections::HashSet::new();
        let columns = assignments.iter().flat_map(|a| match &a.target {
            AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
            AssignmentTarget::Tuple(names) => names.as_slice(),
        });
        for name in columns {
            let Some(column) = name.0.last().and_then(ObjectNamePart::as_ident) else {
                continue;
            };
            let column = normalize(column);
            if !seen.insert(column.clone()) {
                return Err(DataFusionError::Plan(format!(
                    "column '{column}' is assigned more than once in one SET; give it one value"
                )));
            }
        }
    }
    Ok(())
}

/// `WITH x AS (...) DELETE | UPDATE | MERGE | INSERT ...`, which DataFusion 55 does not
/// plan: the statement alone, each table reference naming a CTE replaced by the CTE's query
/// as a derived table (`(query) AS x`). A CTE reads the tables and the CTEs before it under
/// its name; the statement's target is always a table, also where a CTE has its name.
/// `None` for any other statement.
fn dml_with_ctes_inlined(statement: &Statement) -> Result<Option<Statement>> {
    let Statement::Query(query) = statement else {
        return Ok(None);
    };
    let (
        Some(with),
        SetExpr::Insert(dml) | SetExpr::Update(dml) | SetExpr::Delete(dml) | SetExpr::Merge(dml),
    ) = (&query.with, query.body.as_ref())
    else {
        return Ok(None);
    };
    if with.recursive {
        return Err(DataFusionError::Plan(
            "WITH RECURSIVE before a DELETE, UPDATE, MERGE or INSERT is not supported; \
             write the recursive query as a subquery of the statement"
                .into(),
        ));
    }
    let mut inliner = CteInliner::default();
    for cte in &with.cte_tables {
        let mut cte_query = cte.query.clone();
        let _ = cte_query.visit(&mut inliner);
        inliner.ctes.push((cte.alias.clone(), cte_query));
    }
    let mut dml = dml.clone();
    let target = dml_target(&mut dml).map(|t| t.clone());
    let _ = dml.visit(&mut inliner);
    if let (Some(target), Some(slot)) = (target, dml_target(&mut dml)) {
        *slot = target;
    }
    Ok(Some(dml))
}

/// The table a DELETE, UPDATE or MERGE writes.
fn dml_target(statement: &mut Statement) -> Option<&mut TableFactor> {
    match statement {
        Statement::Update(update) => Some(&mut update.table.relation),
        Statement::Merge(merge) => Some(&mut merge.table),
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                &mut delete.from;
            from.first_mut().map(|t| &mut t.relation)
        }
        _ => None,
    }
}

/// Replaces table references to the CTEs it holds by their queries (see
/// [`dml_with_ctes_inlined`]). After the children of a reference are visited, so that a
/// query put in is not visited again.
#[derive(Default)]
struct CteInliner {
    ctes: Vec<(TableAlias, Box<Query>)>,
    /// The CTE names of the queries being visited, innermost last: a query's own CTE hides
    /// one of the statement's with the same name.
    shadowed: Vec<Vec<String>>,
}

impl VisitorMut for CteInliner {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let names = query.with.iter().flat_map(|w| &w.cte_tables);
        let names = names.map(|cte| normalize(&cte.alias.name));
        self.shadowed.push(names.collect());
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.shadowed.pop();
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            version: None,
            sample,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        let named = normalize(ident);
        if self.shadowed.iter().flatten().any(|n| *n == named) {
            return ControlFlow::Continue(());
        }
        let Some((cte_alias, query)) = self
            .ctes
            .iter()
            .rev()
            .find(|(a, _)| normalize(&a.name) == named)
        else {
            return ControlFlow::Continue(());
        };
        let alias = match alias.take() {
            Some(alias) if alias.columns.is_empty() => TableAlias {
                columns: cte_alias.columns.clone(),
                ..alias
            },
            Some(alias) => alias,
            None => cte_alias.clone(),
        };
        // A sample of the CTE stays with it, to be refused as a sampled subquery is.
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: query.clone(),
            alias: Some(alias),
            sample: sample.take(),
        };
        ControlFlow::Continue(())
    }
}

/// `t TABLESAMPLE [BERNOULLI | SYSTEM] (p [PERCENT])` as `(SELECT * FROM t WHERE random() *
/// 100 < p) AS t`: each row is kept with probability p%, whichever method is named (SYSTEM
/// allows any way of sampling about p%). `TABLESAMPLE (n ROWS)` is `(SELECT * FROM t ORDER BY
/// random() LIMIT n) AS t`. DataFusion 55 reads the whole table without a word for either.
fn samples_as_filters(node: &mut impl VisitMut) -> Result<()> {
    rewrite_table_factors(node, sampled)
}

/// A sampled table factor as the derived table that samples it (see [`samples_as_filters`]).
fn sampled(factor: &TableFactor) -> Result<Option<TableFactor>> {
    let refuse = |why: String| Err(DataFusionError::Plan(why));
    let usage = "write TABLESAMPLE (p PERCENT) or TABLESAMPLE (n ROWS)";
    let (name, alias, sample) = match factor {
        TableFactor::Table {
            name,
            alias,
            sample: Some(kind),
            ..
        } => (name, alias, kind),
        TableFactor::Derived {
            sample: Some(_), ..
        } => {
            return refuse(
                "TABLESAMPLE samples a table, not a subquery: sample the table inside it".into(),
            );
        }
        _ => return Ok(None),
    };
    let (TableSampleKind::BeforeTableAlias(sample) | TableSampleKind::AfterTableAlias(sample)) =
        sample;
    if sample.seed.is_some() {
        return refuse(format!(
            "TABLESAMPLE ... REPEATABLE is not supported: rows are sampled with random(), which \
             takes no seed; {usage}"
        ));
    }
    let Some(quantity) = sample
        .quantity
        .as_ref()
        .filter(|_| sample.bucket.is_none() && sample.offset.is_none())
    else {
        return refuse(format!("TABLESAMPLE takes a size: {usage}"));
    };
    let rows = matches!(quantity.unit, Some(TableSampleUnit::Rows));
    let size = match &quantity.value {
        SqlExpr::Value(ValueWithSpan {
            value: SqlValue::Number(n, _),
            ..
        }) if rows && n.parse::<u64>().is_ok() => Some(n),
        SqlExpr::Value(ValueWithSpan {
            value: SqlValue::Number(n, _),
            ..
        }) if !rows && n.parse::<f64>().is_ok_and(|p| (0.0..=100.0).contains(&p)) => Some(n),
        _ => None,
    };
    let Some(size) = size else {
        return refuse(format!(
            "TABLESAMPLE of {quantity}: the size is a percentage from 0 to 100, or a whole \
             number of ROWS"
        ));
    };
    let mut table = factor.clone();
    if let TableFactor::Table { alias, sample, .. } = &mut table {
        *alias = None;
        *sample = None;
    }
    let query = match rows {
        true => format!("SELECT * FROM {table} ORDER BY random() LIMIT {size}"),
        false => format!("SELECT * FROM {table} WHERE random() * 100 < {size}"),
    };
    let subquery = Parser::new(&TarnDialect)
        .try_with_sql(&query)?
        .parse_query()?;
    let alias = alias.clone().unwrap_or_else(|| TableAlias {
        explicit: true,
        name: name
            .0
            .last()
            .and_then(ObjectNamePart::as_ident)
            .cloned()
            .unwrap_or_else(|| Ident::new("sample")),
        columns: Vec::new(),
        at: None,
    });
    Ok(Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias),
        sample: None,
    }))
}

/// PostgreSQL's and DuckDB's DML over a join, as the statements tarn plans:
/// - `UPDATE t SET ... FROM s WHERE p` is `MERGE INTO t USING s ON p WHEN MATCHED THEN UPDATE
///   SET ...`. A target row that two rows of `s` match is an error, as in MERGE, where
///   PostgreSQL would update it with either of them.
/// - `DELETE FROM t USING s, ... WHERE p` is `DELETE FROM t WHERE EXISTS (SELECT 1 FROM s, ...
///   WHERE p)`: a target row goes when it joins at least one row. Inside the subquery an
///   unqualified column would be looked up in `s` first, where PostgreSQL calls a name both
///   tables have ambiguous, so `p` must qualify its columns.
///
/// `None` for other statements, and for forms left to [`refuse_other_dialects_dml`] (an
/// UPDATE from several tables or a join, RETURNING, ...).
fn joined_dml_as_standard(statement: &Statement) -> Result<Option<Statement>> {
    let sql = match statement {
        Statement::Update(update) => {
            let Some(UpdateTableFromKind::AfterSet(from) | UpdateTableFromKind::BeforeSet(from)) =
                &update.from
            else {
                return Ok(None);
            };
            let ([source], []) = (from.as_slice(), update.table.joins.as_slice()) else {
                return Ok(None);
            };
            let plain = source.joins.is_empty()
                && update.returning.is_none()
                && update.output.is_none()
                && update.or.is_none()
                && update.order_by.is_empty()
                && update.limit.is_none();
            if !plain {
                return Ok(None);
            }
            let on = update
                .selection
                .as_ref()
                .map_or_else(|| "TRUE".to_string(), ToString::to_string);
            let set = comma_separated(&update.assignments);
            format!(
                "MERGE INTO {} USING {} ON {on} WHEN MATCHED THEN UPDATE SET {set}",
                update.table.relation, source.relation
            )
        }
        Statement::Delete(delete) => {
            let Some(using) = &delete.using else {
                return Ok(None);
            };
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
            let [target] = from.as_slice() else {
                return Ok(None);
            };
            let plain = target.joins.is_empty()
                && delete.tables.is_empty()
                && delete.returning.is_none()
                && delete.output.is_none()
                && delete.order_by.is_empty()
                && delete.limit.is_none();
            if !plain {
                return Ok(None);
            }
            let filter = match &delete.selection {
                Some(predicate) => {
                    refuse_unqualified_columns(predicate)?;
                    format!(" WHERE {predicate}")
                }
                None => String::new(),
            };
            let using = comma_separated(using);
            format!("DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {using}{filter})")
        }
        _ => return Ok(None),
    };
    Ok(Some(
        Parser::new(&TarnDialect)
            .try_with_sql(&sql)?
            .parse_statement()?,
    ))
}

/// `a, b, c`, as SQL lists items.
fn comma_separated(items: &[impl std::fmt::Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The WHERE of `DELETE ... USING` names every column with its table (see
/// [`joined_dml_as_standard`]).
fn refuse_unqualified_columns(predicate: &SqlExpr) -> Result<()> {
    let unqualified = visit_expressions(predicate, |expr| match expr {
        SqlExpr::Identifier(name) => ControlFlow::Break(name.value.clone()),
        _ => ControlFlow::Continue(()),
    });
    match unqualified {
        ControlFlow::Break(column) => Err(DataFusionError::Plan(format!(
            "DELETE ... USING: qualify '{column}' with its table (t.{column} or s.{column}): \
             the WHERE of a DELETE with USING names every column with its table"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// PostgreSQL's forms of DML that DataFusion does not plan, refused with the form that does
/// the same here (DataFusion's own message names only the clause).
fn refuse_other_dialects_dml(statement: &Statement) -> Result<()> {
    let (name, returning, joined) = match statement {
        Statement::Update(u) => ("UPDATE", u.returning.is_some(), u.from.is_some()),
        Statement::Delete(d) => ("DELETE", d.returning.is_some(), d.using.is_some()),
        Statement::Insert(i) => ("INSERT", i.returning.is_some(), false),
        _ => return Ok(()),
    };
    if returning {
        return Err(DataFusionError::Plan(format!(
            "{name} takes no RETURNING: it gives the number of rows it changed; the rows \
             themselves are in the change feed, SELECT * FROM table_changes('t', version) \
             with the version it made"
        )));
    }
    // What [`joined_dml_as_standard`] left as it was.
    match (name, joined) {
        ("UPDATE", true) => Err(DataFusionError::Plan(
            "UPDATE ... FROM takes one table or subquery, with no join; join the tables in a \
             subquery, or write the MERGE: MERGE INTO t USING s ON t.id = s.id WHEN MATCHED \
             THEN UPDATE SET v = s.v"
                .into(),
        )),
        ("DELETE", true) => Err(DataFusionError::Plan(
            "DELETE ... USING deletes from one table, with no ORDER BY or LIMIT; write DELETE \
             FROM t WHERE id IN (SELECT id FROM s ...), or MERGE INTO t USING s ON t.id = s.id \
             WHEN MATCHED THEN DELETE"
                .into(),
        )),
        _ => Ok(()),
    }
}

fn refuse_versioned_targets(statement: &Statement) -> Result<()> {
    let versioned = |factor: &TableFactor| match factor {
        TableFactor::Table {
            name,
            version: Some(v),
            ..
        } => Some(format!("{name} {v}")),
        _ => None,
    };
    let from = |tables: &[TableWithJoins]| tables.iter().find_map(|t| versioned(&t.relation));
    let target = match statement {
        Statement::Delete(d) => match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => from(t),
        },
        Statement::Update(u) => versioned(&u.table.relation),
        Statement::Merge(m) => versioned(&m.table),
        _ => None,
    };
    match target {
        Some(target) => Err(DataFusionError::Plan(format!(
            "cannot write to {target}: a time-travel read is read-only; write to the table by \
             its plain name"
        ))),
        None => Ok(()),
    }
}

/// Rewrites `t VERSION AS OF 3` into the versioned name `"t@v3" AS t`, and `t TIMESTAMP AS
/// OF '...'` (or FOR SYSTEM_TIME) into `"t@<time>" AS t`: the catalog resolves versioned
/// names asynchronously before planning, reading only what the version needs (an older
/// version stays readable when the newest version file is damaged). A change feed with an
/// end (`table_changes('t', 5, 9)`) reads its table by the name of that end, `"t@v9"`, and
/// keeps its bounds. Clauses it cannot name are left to the time-travel relation planner,
/// which reports them.
fn versions_are_names(statement: &mut Statement) {
    struct Rewrite;
    impl VisitorMut for Rewrite {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                alias,
                version: version @ Some(_),
                args: None,
                ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let suffix = match version.as_mut() {
                Some(TableVersion::VersionAsOf(SqlExpr::Value(ValueWithSpan {
                    value: SqlValue::Number(n, _),
                    ..
                }))) if n.bytes().all(|b| b.is_ascii_digit()) => format!("v{n}"),
                Some(TableVersion::TimestampAsOf(at) | TableVersion::ForSystemTimeAsOf(at)) => {
                    match timestamp_text(at) {
                        Some(text) => text,
                        None => return ControlFlow::Continue(()),
                    }
                }
                Some(TableVersion::Function(function)) => {
                    match feed_end(function).and_then(bound_suffix) {
                        Some(suffix) => suffix,
                        None => return ControlFlow::Continue(()),
                    }
                }
                _ => return ControlFlow::Continue(()),
            };
            let is_feed = matches!(version, Some(TableVersion::Function(_)));
            let Some(last) = name.0.last_mut().and_then(|p| p.as_ident().cloned()) else {
                return ControlFlow::Continue(());
            };
            let table = normalize(&last);
            if alias.is_none() {
                *alias = Some(datafusion::sql::sqlparser::ast::TableAlias {
                    explicit: true,
                    name: last,
                    columns: Vec::new(),
                    at: None,
                });
            }
            // A metadata table's version goes before its kind: `"t$files"` at 3 is `"t@v3$files"`.
            let versioned = match crate::metadata_tables::MetadataTable::parse_name(&table) {
                Some((base, _)) => format!("{base}@{suffix}{}", &table[base.len()..]),
                None => format!("{table}@{suffix}"),
            };
            let index = name.0.len() - 1;
            name.0[index] = datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(
                Ident::with_quote('"', versioned),
            );
            if !is_feed {
                *version = None;
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Rewrite);
}

/// The end bound of a change feed (`table_changes('t', 5, 9)`: `9`), if it has one.
fn feed_end(function: &mut SqlExpr) -> Option<&mut SqlExpr> {
    let SqlExpr::Function(function) = function else {
        return None;
    };
    let name = function.name.to_string().to_ascii_lowercase();
    if !crate::changes::FUNCTIONS.contains(&name.as_str()) {
        return None;
    }
    let FunctionArguments::List(list) = &mut function.args else {
        return None;
    };
    match list.args.get_mut(1)? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(end)) => Some(end),
        _ => None,
    }
}

/// The versioned-name suffix of a literal bound: `v9` for a version, the text of a
/// timestamp; `None` for anything else (an expression, a negative number).
fn bound_suffix(bound: &mut SqlExpr) -> Option<String> {
    match bound {
        SqlExpr::Value(ValueWithSpan {
            value: SqlValue::Number(n, _),
            ..
        }) if n.bytes().all(|b| b.is_ascii_digit()) => Some(format!("v{n}")),
        SqlExpr::Nested(inner) => bound_suffix(inner),
        other => timestamp_text(other),
    }
}

/// Evaluates each time-travel timestamp written as an expression (`now() - INTERVAL '1
/// day'`) with `evaluate` and names the version it selects, as [`versions_are_names`] does
/// for literals, so that versions older than the newest version's recent log stay readable.
pub(crate) fn constant_times_are_names(
    statement: &mut DFStatement,
    evaluate: impl FnMut(&SqlExpr) -> Result<i64>,
) -> Result<()> {
    /// The evaluator, and whether it replaced an expression.
    struct Evaluate<F>(F, bool);
    impl<F: FnMut(&SqlExpr) -> Result<i64>> VisitorMut for Evaluate<F> {
        type Break = DataFusionError;
        fn pre_visit_table_factor(
            &mut self,
            factor: &mut TableFactor,
        ) -> ControlFlow<DataFusionError> {
            if let TableFactor::Table {
                version: Some(TableVersion::TimestampAsOf(at) | TableVersion::ForSystemTimeAsOf(at)),
                args: None,
                ..
            } = factor
                && timestamp_text(at).is_none()
            {
                match (self.0)(at) {
                    Ok(ms) => {
                        *at = timestamp_literal(ms);
                        self.1 = true;
                    }
                    Err(e) => return ControlFlow::Break(e),
                }
            }
            if let TableFactor::Table {
                version: Some(TableVersion::Function(function)),
                ..
            } = factor
                && let Some(end) = feed_end(function)
                && is_time_expression(end)
            {
                match (self.0)(end) {
                    Ok(ms) => {
                        *end = timestamp_literal(ms);
                        self.1 = true;
                    }
                    Err(e) => return ControlFlow::Break(e),
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut statement = statement;
    while let DFStatement::Explain(explain) = statement {
        statement = explain.statement.as_mut();
    }
    let DFStatement::Statement(s) = statement else {
        return Ok(());
    };
    let mut visitor = Evaluate(evaluate, false);
    if let ControlFlow::Break(e) = s.visit(&mut visitor) {
        return Err(e);
    }
    if visitor.1 {
        versions_are_names(s);
    }
    Ok(())
}

/// The instant `ms` as a timestamp literal a versioned name takes.
fn timestamp_literal(ms: i64) -> SqlExpr {
    let text = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    SqlExpr::value(SqlValue::SingleQuotedString(text))
}

/// Whether a change feed's bound is a time written as an expression (`now() - INTERVAL '1
/// hour'`), evaluated when the statement is planned, rather than a literal.
fn is_time_expression(bound: &SqlExpr) -> bool {
    match bound {
        SqlExpr::Value(_) | SqlExpr::TypedString(_) | SqlExpr::UnaryOp { .. } => false,
        SqlExpr::Nested(inner) => is_time_expression(inner),
        _ => true,
    }
}

/// The text of a time-travel timestamp literal: `'...'` or `TIMESTAMP '...'`. Anything else
/// is an expression, evaluated when the statement is planned.
pub(crate) fn timestamp_text(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Value(ValueWithSpan {
            value: SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s),
            ..
        }) => Some(s.clone()),
        SqlExpr::TypedString(TypedString {
            data_type: SqlType::Timestamp(..) | SqlType::Date | SqlType::Datetime(_),
            value:
                ValueWithSpan {
                    value: SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s),
                    ..
                },
            ..
        }) => Some(s.clone()),
        SqlExpr::Nested(inner) => timestamp_text(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` numbers joined by `operator`: `n - 1` operators.
    fn chain(n: usize, operator: &str) -> String {
        (0..n)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(operator)
    }

    /// Whether the chain rule lets `sql` through (without parsing it: a chain as long as
    /// the rule allows is deeper than a test thread's stack).
    fn allowed(sql: &str) -> bool {
        let tokens: Vec<Token> = Tokenizer::new(&TarnDialect, sql)
            .tokenize()
            .expect("tokenizes");
        refuse_long_chains(&tokens).is_ok()
    }

    #[test]
    fn a_chain_longer_than_tarn_plans_is_refused_before_it_is_parsed() {
        for operator in [" OR ", " AND ", " + ", " || ", " = "] {
            let sql = format!("SELECT {}", chain(MAX_OPERATOR_CHAIN + 2, operator));
            let error = parse(&sql).unwrap_err().to_string();
            assert!(
                error.contains("chains more than 10000 operators"),
                "{error}"
            );
        }
        // One operator too many, then one fewer in two ways.
        let longest = format!("SELECT {}", chain(MAX_OPERATOR_CHAIN + 2, " OR "));
        assert!(!allowed(&longest));
        assert!(allowed(&longest.replacen(" OR ", ", ", 1)));
        let grouped = format!(
            "SELECT ({}) OR {}",
            chain(2, " OR "),
            chain(MAX_OPERATOR_CHAIN, " OR ")
        );
        assert!(allowed(&grouped));
    }

    /// Empty statements, and statements cut short after each word tarn's own forms start
    /// with, parse or fail with an error: none panics.
    #[test]
    fn empty_and_truncated_statements_do_not_panic() {
        for sql in [
            "",
            ";",
            " ;  ; ",
            "-- only a comment",
            "/* x */;",
            "SELECT 1;",
        ] {
            assert!(parse(sql).is_ok(), "{sql}");
        }
        let starts = [
            "ALTER TABLE t ADD COLUMNS (a INT, b INT)",
            "ALTER TABLE t SET PARTITIONED BY (day(ts))",
            "ALTER TABLE IF EXISTS t ALTER COLUMN c COMMENT 'x'",
            "ALTER TABLE t UNSET TBLPROPERTIES IF EXISTS ('k')",
            "SELECT * FROM t FOR VERSION AS OF 1",
            "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT *",
            "INSERT INTO t BY NAME SELECT 1 AS id",
            "INSERT INTO t (a) REPLACE WHERE (a > 1) AND a < (SELECT 2) SELECT 1",
            "INSERT OVERWRITE TABLE t PARTITION (a = 1, b) (c, d) SELECT 1",
            "OPTIMIZE t WHERE d = 1 ORDER BY (id)",
            "RESTORE TABLE t TO VERSION AS OF 1",
            "SHOW PARTITIONS t LIMIT 1",
            "EXPLAIN ANALYZE VERBOSE DESCRIBE HISTORY t",
            "CREATE TABLE t (a INT) PARTITIONED BY (a)",
        ];
        for statement in starts {
            let words: Vec<&str> = statement.split(' ').collect();
            for n in 0..=words.len() {
                let sql = words[..n].join(" ");
                let _ = parse(&sql);
                let _ = parse(&format!("{sql};"));
            }
        }
    }

    /// Delta's REPLACE WHERE is lifted out of an INSERT, up to the query at its depth; a
    /// `replace` elsewhere is left alone.
    #[test]
    fn replace_where_is_lifted_out_of_an_insert() {
        let parsed = |sql: &str| parse(sql).unwrap().remove(0);
        let replace = parsed(
            "EXPLAIN INSERT INTO TABLE t (a, b) REPLACE WHERE a IN (SELECT 1) AND b <> 'x' \
             WITH q AS (SELECT 1, 'y') SELECT * FROM q",
        );
        assert_eq!(
            replace.replace_where.map(|c| c.to_string()).as_deref(),
            Some("a IN (SELECT 1) AND b <> 'x'")
        );
        assert_eq!(
            replace.statement.to_string(),
            "EXPLAIN INSERT INTO TABLE t (a, b) WITH q AS (SELECT 1, 'y') SELECT * FROM q"
        );
        let table = parsed("INSERT INTO t REPLACE WHERE a = 1 TABLE s");
        assert_eq!(table.replace_where.unwrap().to_string(), "a = 1");
        assert_eq!(table.statement.to_string(), "INSERT INTO t TABLE s");
        for plain in [
            "INSERT INTO t SELECT replace(a, 'x', 'y') FROM s WHERE a = 1",
            "INSERT INTO t VALUES (1)",
            "SELECT 1",
        ] {
            assert!(parsed(plain).replace_where.is_none(), "{plain}");
        }
        assert!(parse("INSERT INTO t REPLACE WHERE a = 1").is_err());
    }

    #[test]
    fn lists_and_parentheses_are_not_chains() {
        let list = chain(3 * MAX_OPERATOR_CHAIN, ", ");
        assert!(allowed(&format!("SELECT * FROM t WHERE id IN ({list})")));
        let rows = (0..MAX_OPERATOR_CHAIN)
            .map(|i| format!("({i} + 1, {i} * 2 - 1)"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(allowed(&format!("INSERT INTO t VALUES {rows}")));
        let pairs = (0..MAX_OPERATOR_CHAIN / 2)
            .map(|i| format!("(a = {i} AND b = {i})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        assert!(allowed(&format!("SELECT * FROM t WHERE {pairs}")));
    }
}
