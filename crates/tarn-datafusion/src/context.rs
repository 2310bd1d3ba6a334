//! `TarnContext`: tarn's SQL entry point, a DataFusion `SessionContext` with a warehouse as
//! its default catalog and tarn's DDL, DML and time travel wired in.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> datafusion::error::Result<()> {
//! use tarn_datafusion::TarnContext;
//!
//! let tarn = TarnContext::open("memory://docs-context").await?;
//! tarn.sql("CREATE TABLE events (id BIGINT NOT NULL, region VARCHAR) PARTITIONED BY (region)").await?.collect().await?;
//! tarn.sql("INSERT INTO events VALUES (1, 'eu'), (2, 'us')").await?.collect().await?;
//! tarn.sql("INSERT INTO events VALUES (3, 'eu')").await?.collect().await?;
//! let rows = tarn.sql("SELECT count(*) FROM events VERSION AS OF 1").await?.collect().await?;
//! assert_eq!(rows[0].num_rows(), 1);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::CreateExternalTable;
use datafusion::prelude::{DataFrame, SessionConfig};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AlterTable, Expr as SqlExpr, ObjectType, SchemaName, Statement,
};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};
use tarn_core::{Table, TableLocation, Warehouse};

use crate::alter::TarnAlter;
use crate::catalog::TarnCatalog;
use crate::ddl;
use crate::dialect::TarnDialect;
use crate::dml::DmlKind;
use crate::error::to_df;
use crate::names::{QualifiedName, parts};
use crate::provider::TarnTable;
use crate::time_travel::{TimeTravel, TimeTravelFunction, TimeTravelPlanner};

/// The catalog name a warehouse gets in a [`TarnContext`].
pub const CATALOG: &str = "tarn";
/// The namespace unqualified table names refer to.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One parsed statement, with the `PARTITIONED BY` clause tarn reads itself.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    statement: DFStatement,
    partition_by: Vec<SqlExpr>,
    alter: Option<TarnAlter>,
}

impl ParsedStatement {
    pub fn statement(&self) -> &DFStatement {
        &self.statement
    }
}

/// tarn's SQL entry point.
#[derive(Clone)]
pub struct TarnContext {
    ctx: SessionContext,
    catalog: Arc<TarnCatalog>,
    travel: Arc<TimeTravel>,
}

impl std::fmt::Debug for TarnContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarnContext")
            .field("warehouse", &self.catalog.warehouse().url())
            .finish()
    }
}

impl TarnContext {
    /// Opens (creating if needed) the warehouse at a local path or URL.
    pub async fn open(location: &str) -> Result<Self> {
        Self::new(
            Warehouse::open(location).map_err(to_df)?,
            SessionConfig::new(),
        )
        .await
    }

    /// A context over `warehouse`, with `config` for everything DataFusion configures.
    pub async fn new(warehouse: Warehouse, config: SessionConfig) -> Result<Self> {
        Self::new_with_runtime(warehouse, config, Arc::new(RuntimeEnv::default())).await
    }

    /// [`TarnContext::new`] with a runtime of your own (memory limit, spill directory, ...).
    pub async fn new_with_runtime(
        warehouse: Warehouse,
        config: SessionConfig,
        runtime: Arc<RuntimeEnv>,
    ) -> Result<Self> {
        let config = config
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(false);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state).enable_url_table();
        if !warehouse
            .namespace_exists(DEFAULT_NAMESPACE)
            .await
            .map_err(to_df)?
        {
            match warehouse.create_namespace(DEFAULT_NAMESPACE).await {
                Ok(()) | Err(tarn_core::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(to_df(e)),
            }
        }
        let (catalog, travel) = register(&ctx, warehouse, CATALOG).await?;
        Ok(TarnContext {
            ctx,
            catalog,
            travel,
        })
    }

    /// The DataFusion session underneath (for registering functions, reading files, ...).
    pub fn session_context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn catalog(&self) -> &Arc<TarnCatalog> {
        &self.catalog
    }

    pub fn warehouse(&self) -> &Warehouse {
        self.catalog.warehouse()
    }

    /// Parses SQL text into statements (tarn's dialect, with `PARTITIONED BY`).
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        parse(sql)
    }

    /// Runs one SQL statement. DDL runs now; queries and DML run when the returned frame is
    /// collected.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(DataFusionError::Plan(format!(
                "expected one SQL statement, found {}; run them one at a time",
                statements.len()
            )));
        }
        self.execute(statements.remove(0)).await
    }

    /// Runs one parsed statement.
    pub async fn execute(&self, parsed: ParsedStatement) -> Result<DataFrame> {
        let ParsedStatement {
            statement,
            partition_by,
            alter,
        } = parsed;
        if let DFStatement::Statement(s) = &statement
            && let Statement::AlterTable(a) = s.as_ref()
        {
            let name = self.qualify(&a.name)?;
            if name.catalog == CATALOG {
                return self.alter_table(a, alter.as_ref(), &name).await;
            }
        }
        if let Some(df) = self.row_level_dml(&statement).await? {
            return Ok(df);
        }
        if let DFStatement::Statement(s) = &statement {
            if let Some(df) = self.ddl(s, &partition_by).await? {
                return Ok(df);
            }
            if lists_names(s) {
                self.catalog.refresh().await?;
            }
        } else if !partition_by.is_empty() {
            return Err(DataFusionError::Plan(
                "PARTITIONED BY belongs to CREATE TABLE".into(),
            ));
        }
        self.plan(statement).await
    }

    /// Plans a statement with DataFusion, time-travel references resolved first.
    pub(crate) async fn plan(&self, statement: DFStatement) -> Result<DataFrame> {
        // Namespaces another process created since this context listed them.
        let state = self.ctx.state();
        if let Ok(references) = state.resolve_table_references(&statement) {
            for reference in references {
                if reference.catalog().is_none_or(|c| c == CATALOG)
                    && let Some(namespace) = reference.schema()
                {
                    self.catalog.ensure_namespace(namespace).await?;
                }
            }
        }
        if let DFStatement::Statement(s) = &statement {
            self.travel.prepare(s, &self.default_namespace()).await?;
        }
        let state = self.ctx.state();
        let planned = state.statement_to_plan(statement).await;
        self.travel.clear();
        self.ctx.execute_logical_plan(planned?).await
    }

    /// Plans one generated query (tarn's own SQL, never DDL or DML).
    pub(crate) async fn plan_generated(&self, sql: &str) -> Result<DataFrame> {
        let mut statements = parse(sql)?;
        if statements.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "generated SQL is not one statement: {sql}"
            )));
        }
        self.plan(statements.remove(0).statement).await
    }

    /// DELETE, UPDATE and MERGE on tarn tables (and EXPLAIN of them); `None` otherwise.
    async fn row_level_dml(&self, statement: &DFStatement) -> Result<Option<DataFrame>> {
        let (inner, explain) = match statement {
            DFStatement::Statement(s) => (s.as_ref(), None),
            DFStatement::Explain(e) => match e.statement.as_ref() {
                DFStatement::Statement(s) => {
                    let full = e.to_string();
                    let prefix = full[..full.len().saturating_sub(s.to_string().len())]
                        .trim()
                        .to_string();
                    (s.as_ref(), Some(prefix))
                }
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let kind = match inner {
            Statement::Delete(d) => DmlKind::Delete(d),
            Statement::Update(u) => DmlKind::Update(u),
            Statement::Merge(m) => DmlKind::Merge(m),
            _ => return Ok(None),
        };
        self.dml(kind, explain.as_deref()).await
    }

    pub(crate) fn default_namespace(&self) -> String {
        self.ctx
            .state()
            .config()
            .options()
            .catalog
            .default_schema
            .clone()
    }

    pub(crate) fn qualify(
        &self,
        name: &datafusion::sql::sqlparser::ast::ObjectName,
    ) -> Result<QualifiedName> {
        QualifiedName::resolve(&parts(name)?, CATALOG, &self.default_namespace())
    }

    /// Handles DDL on tarn objects; `None` for everything else.
    async fn ddl(
        &self,
        statement: &Statement,
        partition_by: &[SqlExpr],
    ) -> Result<Option<DataFrame>> {
        match statement {
            Statement::CreateTable(create) => {
                let name = self.qualify(&create.name)?;
                if name.catalog != CATALOG {
                    return Ok(None);
                }
                let mut items = partition_by.to_vec();
                if let Some(expr) = &create.partition_by {
                    items.extend(flatten_tuple(expr));
                }
                self.create_table(create, &name, &items).await.map(Some)
            }
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let SchemaName::Simple(name) = schema_name else {
                    return Err(DataFusionError::NotImplemented(
                        "CREATE SCHEMA ... AUTHORIZATION".into(),
                    ));
                };
                let p = parts(name)?;
                let namespace = match p.as_slice() {
                    [ns] => ns.clone(),
                    [c, ns] if c == CATALOG => ns.clone(),
                    _ => return Ok(None),
                };
                self.catalog
                    .create_namespace(&namespace, *if_not_exists)
                    .await?;
                self.done().await.map(Some)
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                for n in names {
                    let name = self.qualify(n)?;
                    if name.catalog != CATALOG {
                        return Ok(None);
                    }
                    self.drop_table(&name, *if_exists).await?;
                }
                self.done().await.map(Some)
            }
            Statement::Drop {
                object_type: ObjectType::Schema,
                if_exists,
                names,
                ..
            } => {
                for n in names {
                    let p = parts(n)?;
                    let ns = p.last().cloned().unwrap_or_default();
                    self.catalog.drop_namespace(&ns, *if_exists).await?;
                }
                self.done().await.map(Some)
            }
            _ => Ok(None),
        }
    }

    pub(crate) async fn done(&self) -> Result<DataFrame> {
        // An empty result: DDL returns no rows.
        self.ctx.read_empty()
    }

    async fn create_table(
        &self,
        create: &datafusion::sql::sqlparser::ast::CreateTable,
        name: &QualifiedName,
        partition_by: &[SqlExpr],
    ) -> Result<DataFrame> {
        if create.or_replace {
            return Err(DataFusionError::NotImplemented(
                "CREATE OR REPLACE TABLE: drop the table first, or use INSERT OVERWRITE".into(),
            ));
        }
        if !self.catalog.ensure_namespace(&name.namespace).await? {
            return Err(DataFusionError::Plan(format!(
                "namespace '{}' does not exist; create it with CREATE SCHEMA {}",
                name.namespace, name.namespace
            )));
        }
        let warehouse = self.catalog.warehouse();
        let query = match &create.query {
            None => None,
            Some(query) => {
                let plan = self
                    .ctx
                    .state()
                    .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(
                        query.clone(),
                    ))))
                    .await?;
                Some(self.ctx.execute_logical_plan(plan).await?)
            }
        };
        let definition = match &query {
            None => ddl::definition(create, partition_by)?,
            Some(df) => {
                if !create.columns.is_empty() {
                    return Err(DataFusionError::Plan("CREATE TABLE ... AS SELECT takes its columns from the query; drop the column list".into()));
                }
                let fields = ddl::fields_of(df.schema().as_arrow())?;
                let partition_fields = ddl::partition_fields(partition_by, &fields)?;
                tarn_core::TableDefinition {
                    fields,
                    partition_fields,
                    properties: ddl::properties(&create.table_options)?,
                }
            }
        };
        let created = warehouse
            .create_table(&name.namespace, &name.table, definition)
            .await;
        match created {
            Ok(_) => {}
            // The create is the existence check: put-if-absent of version 0.
            Err(tarn_core::Error::AlreadyExists { .. }) if create.if_not_exists => {
                return self.done().await;
            }
            Err(e) => return Err(to_df(e)),
        }
        if let Some(schema) = self.catalog.tarn_schema(&name.namespace) {
            schema.note_created(&name.table);
        }
        let Some(df) = query else {
            return self.done().await;
        };
        let target = format!(
            "{CATALOG}.{}.{}",
            quote(&name.namespace),
            quote(&name.table)
        );
        match df.write_table(&target, DataFrameWriteOptions::new()).await {
            Ok(batches) => Ok(self.ctx.read_batches(batches)?),
            Err(e) => {
                // The statement failed: take the table back out.
                let _ = warehouse.drop_table(&name.namespace, &name.table).await;
                if let Some(schema) = self.catalog.tarn_schema(&name.namespace) {
                    schema.note_dropped(&name.table);
                }
                Err(e)
            }
        }
    }

    async fn drop_table(&self, name: &QualifiedName, if_exists: bool) -> Result<()> {
        let schema = self.catalog.tarn_schema(&name.namespace);
        if let Some(schema) = &schema
            && schema.external(&name.table).is_some()
        {
            use datafusion::catalog::SchemaProvider;
            schema.deregister_table(&name.table)?;
            return Ok(());
        }
        match self
            .catalog
            .warehouse()
            .drop_table(&name.namespace, &name.table)
            .await
        {
            Ok(()) => {}
            Err(
                tarn_core::Error::TableNotFound { .. } | tarn_core::Error::NamespaceNotFound { .. },
            ) if if_exists => {}
            Err(e) => return Err(to_df(e)),
        }
        if let Some(schema) = schema {
            schema.note_dropped(&name.table);
        }
        Ok(())
    }
}

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn flatten_tuple(expr: &SqlExpr) -> Vec<SqlExpr> {
    match expr {
        SqlExpr::Tuple(items) => items.clone(),
        SqlExpr::Nested(inner) => flatten_tuple(inner),
        other => vec![other.clone()],
    }
}

/// Statements that list catalog contents, for which cached names are refreshed first.
fn lists_names(statement: &Statement) -> bool {
    match statement {
        Statement::ShowTables { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowColumns { .. } => true,
        Statement::Query(q) => q
            .to_string()
            .to_ascii_lowercase()
            .contains("information_schema"),
        _ => false,
    }
}

/// Registers a warehouse as catalog `catalog_name` in any DataFusion session: its object
/// store, the `STORED AS TARN` table factory, time-travel syntax and table functions.
pub async fn register(
    ctx: &SessionContext,
    warehouse: Warehouse,
    catalog_name: &str,
) -> Result<(Arc<TarnCatalog>, Arc<TimeTravel>)> {
    let store_url = register_store(ctx, warehouse.store().clone())?;
    let catalog = TarnCatalog::try_new(warehouse, store_url).await?;
    ctx.register_catalog(catalog_name, catalog.clone());
    let travel = TimeTravel::new(catalog.clone(), catalog_name);
    ctx.register_relation_planner(Arc::new(TimeTravelPlanner::new(travel.clone())))?;
    for f in [
        TimeTravelFunction::version(travel.clone()),
        TimeTravelFunction::as_of(travel.clone()),
    ] {
        ctx.register_udtf(f.name(), Arc::new(f));
    }
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        state
            .table_factories_mut()
            .insert("TARN".into(), Arc::new(TarnTableFactory));
    }
    Ok((catalog, travel))
}

/// Registers `store` in the session under a fresh `tarn://` URL.
fn register_store(
    ctx: &SessionContext,
    store: Arc<dyn object_store::ObjectStore>,
) -> Result<ObjectStoreUrl> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let url = ObjectStoreUrl::parse(format!("tarn://store-{id}"))?;
    ctx.runtime_env().register_object_store(url.as_ref(), store);
    Ok(url)
}

/// `CREATE EXTERNAL TABLE t STORED AS TARN LOCATION 'url'`: registers an existing tarn table
/// (for this session).
#[derive(Debug)]
struct TarnTableFactory;

#[async_trait]
impl TableProviderFactory for TarnTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let [location] = cmd.locations.as_slice() else {
            return Err(DataFusionError::Plan(
                "STORED AS TARN takes exactly one LOCATION".into(),
            ));
        };
        let root = tarn_core::storage::open_location(location).map_err(to_df)?;
        let location = TableLocation::new(root.store.clone(), root.root.clone(), root.url.clone());
        let table = Table::load(location, tarn_core::Env::default())
            .await
            .map_err(to_df)?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = ObjectStoreUrl::parse(format!("tarn://external-{id}"))?;
        state
            .runtime_env()
            .register_object_store(url.as_ref(), root.store);
        if !cmd.schema.fields().is_empty() {
            return Err(DataFusionError::Plan(
                "CREATE EXTERNAL TABLE ... STORED AS TARN takes its columns from the table; drop the column list".into(),
            ));
        }
        Ok(Arc::new(TarnTable::new(table, cmd.name.to_string(), url)))
    }
}

/// Parses SQL in tarn's dialect, lifting each CREATE TABLE's `PARTITIONED BY (...)` clause
/// out of the token stream (its items are transforms, which the generic dialect cannot read
/// there).
fn parse(sql: &str) -> Result<Vec<ParsedStatement>> {
    let dialect = TarnDialect;
    let spanned = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::SQL(Box::new(e.into()), None))?;
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
    if let Some((statement, alter)) = parse_tarn_alter(&tokens)? {
        return Ok(Some(ParsedStatement {
            statement,
            partition_by: Vec::new(),
            alter: Some(alter),
        }));
    }
    let mut kept: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut partition_by = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if is_keyword(&tokens[i], Keyword::PARTITIONED)
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
    let mut parser = DFParserBuilder::new(kept)
        .with_dialect(&dialect as &dyn Dialect)
        .build()?;
    let mut statements = parser.parse_statements()?;
    match (statements.pop_front(), statements.is_empty()) {
        (None, _) if partition_by.is_empty() => Ok(None),
        (Some(statement), true) => Ok(Some(ParsedStatement {
            statement,
            partition_by,
            alter: None,
        })),
        _ => Err(DataFusionError::Plan(
            "PARTITIONED BY outside a statement".into(),
        )),
    }
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
    // The name runs until the first keyword of tarn's forms.
    let Some(op) = (name_start..words.len()).find(|&k| {
        (at(k, Keyword::SET) || at(k, Keyword::RESET)) && at(k + 1, Keyword::PARTITIONED)
            || at(k, Keyword::UNSET) && at(k + 1, Keyword::TBLPROPERTIES)
    }) else {
        return Ok(None);
    };
    let name_tokens: Vec<Token> = words[name_start..op]
        .iter()
        .map(|&j| tokens[j].clone())
        .collect();
    let name = Parser::new(&TarnDialect)
        .with_tokens(name_tokens)
        .parse_object_name(false)
        .map_err(|e| DataFusionError::Plan(format!("in ALTER TABLE: {e}")))?;
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
    let statement = Statement::AlterTable(AlterTable {
        name,
        if_exists,
        only: false,
        operations: Vec::new(),
        location: None,
        on_cluster: None,
        table_type: None,
        end_token: AttachedToken::empty(),
    });
    Ok(Some((DFStatement::Statement(Box::new(statement)), alter)))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
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
