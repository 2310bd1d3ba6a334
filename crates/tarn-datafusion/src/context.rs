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
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, ObjectType, SchemaName, Statement};
use tarn_core::{Table, TableLocation, Warehouse};

use crate::catalog::TarnCatalog;
use crate::ddl;
use crate::dml::DmlKind;
use crate::error::to_df;
use crate::names::{QualifiedName, parts};
use crate::parse::{ParsedStatement, parse};
use crate::provider::TarnTable;
use crate::time_travel::{TimeTravel, TimeTravelFunction, TimeTravelPlanner};

/// The catalog name a warehouse gets in a [`TarnContext`].
pub const CATALOG: &str = "tarn";
/// The namespace unqualified table names refer to.
pub const DEFAULT_NAMESPACE: &str = "default";

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
        // Numeric literals with a fraction are decimals, so that they reach DECIMAL columns
        // exactly (a float literal would change 12345678901234567.89 on the way).
        let mut config = config;
        config.options_mut().sql_parser.parse_float_as_decimal = true;
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
