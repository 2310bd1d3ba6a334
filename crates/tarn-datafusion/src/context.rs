//! `TarnContext`: tarn's SQL entry point, and [`register`], which wires a warehouse into
//! any DataFusion session.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
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
//!
//! What runs where:
//!
//! | statement | runs |
//! |---|---|
//! | CREATE/DROP TABLE, CREATE/DROP SCHEMA, ALTER TABLE | in [`TarnContext::sql`], before it returns |
//! | SELECT, INSERT, DELETE, UPDATE, MERGE (and EXPLAIN of them) | when the returned frame is collected: they are DataFusion plans |

use std::sync::Arc;

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::common::SchemaError;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{DataFrame, SessionConfig};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    DescribeAlias, Expr as SqlExpr, Ident, ObjectName, SetExpr, Statement, TableFactor,
    TableObject, Update,
};
use tarn_core::Warehouse;
use tarn_core::storage::StoreOptions;

use crate::catalog::TarnCatalog;
use crate::checked_arithmetic::CheckedArithmeticRule;
use crate::commit::Cleanups;
use crate::dml::{DmlRule, TarnQueryPlanner};
use crate::error::to_df;
use crate::external::TarnTableFactory;
use crate::in_subquery::NullAwareInSubquery;
use crate::insert_shape::InsertShape;
use crate::literal_keys::LiteralJoinKeys;
use crate::metadata_tables::MetadataTable;
use crate::names::{QualifiedName, parts};
use crate::parse::{ParsedStatement, parse};
use crate::provider::TarnTable;
use crate::replace::StaticValues;
use crate::time_travel::{TimeTravelFunction, TimeTravelPlanner};

/// The catalog name a warehouse gets in a [`TarnContext`].
pub const CATALOG: &str = "tarn";
/// The namespace unqualified table names refer to.
pub const DEFAULT_NAMESPACE: &str = "default";

/// tarn's SQL entry point: a DataFusion session with a warehouse registered as a catalog,
/// and tarn's parser for the statements DataFusion's cannot read (`PARTITIONED BY`,
/// ALTER TABLE, time travel).
#[derive(Clone)]
pub struct TarnContext {
    ctx: SessionContext,
    catalog: Arc<TarnCatalog>,
    catalog_name: String,
    /// Properties tables created through this context get unless CREATE TABLE sets them.
    table_defaults: Arc<std::collections::BTreeMap<String, String>>,
    /// Clean-ups of cancelled statements (a CREATE TABLE AS taking its table back out, the
    /// files of a write deleted), finished before the next statement runs.
    pub(crate) cleanups: Arc<Cleanups>,
}

impl std::fmt::Debug for TarnContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarnContext")
            .field("warehouse", &self.catalog.warehouse().url())
            .field("catalog", &self.catalog_name)
            .finish()
    }
}

impl TarnContext {
    /// Opens (creating if needed) the warehouse at a local path or URL.
    pub async fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &StoreOptions::new()).await
    }

    /// [`TarnContext::open`] with store options: an S3 endpoint, region, credentials,
    /// retries (see [`StoreOptions`]).
    pub async fn open_with(location: &str, options: &StoreOptions) -> Result<Self> {
        Self::new(
            Warehouse::open_with(location, options).map_err(to_df)?,
            SessionConfig::new(),
        )
        .await
    }

    /// A context over `warehouse`, with `config` for everything DataFusion configures.
    pub async fn new(warehouse: Warehouse, config: SessionConfig) -> Result<Self> {
        Self::new_with_runtime(warehouse, config, Arc::new(RuntimeEnv::default())).await
    }

    /// [`TarnContext::new`] with a runtime of your own (memory limit, spill directory, ...).
    /// The warehouse is the default catalog (`tarn`), its namespace `default` the default
    /// schema. For a memory limit, [`memory_pool`] is the pool tarn's shell uses.
    pub async fn new_with_runtime(
        warehouse: Warehouse,
        config: SessionConfig,
        runtime: Arc<RuntimeEnv>,
    ) -> Result<Self> {
        let state = SessionStateBuilder::new()
            .with_config(config.with_create_default_catalog_and_schema(false))
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        Self::new_with_state(warehouse, state).await
    }

    /// [`TarnContext::new`] in a session of your own making: one planned and run by a
    /// Ballista cluster (see `tarn_datafusion::ballista`), or with planners and rules of your
    /// own. tarn's settings are added to the session's configuration, and the warehouse
    /// becomes the default catalog in place of DataFusion's empty one.
    pub async fn new_with_state(warehouse: Warehouse, state: SessionState) -> Result<Self> {
        let mut config = state.config().clone();
        let catalogs = without_empty_catalog(
            state.catalog_list().as_ref(),
            &config.options().catalog.default_catalog,
        );
        // Numeric literals with a fraction are decimals, so that they reach DECIMAL columns
        // exactly (a float literal would change 12345678901234567.89 on the way).
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        // `SET tarn.app_id = ...` and the other tarn.* session settings.
        if config
            .options()
            .extensions
            .get::<crate::commit::TarnOptions>()
            .is_none()
        {
            config
                .options_mut()
                .extensions
                .insert(crate::commit::TarnOptions::default());
        }
        let config = config
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(false);
        // Before DataFusion's type coercion: a float compared with one of those decimal
        // literals compares as a float.
        let mut analyzer_rules = state.analyzer().rules.clone();
        let coercion = analyzer_rules
            .iter()
            .position(|rule| rule.name() == "type_coercion")
            .unwrap_or(0);
        analyzer_rules.insert(coercion, Arc::new(crate::float_literals::FloatLiterals));
        let state = SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .with_catalog_list(catalogs)
            .with_analyzer_rules(analyzer_rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        warehouse.check_store().await.map_err(to_df)?;
        // Files beside the tables (`SELECT * FROM 's3://bucket/file.parquet'`, COPY TO)
        // are read and written through the warehouse's store and its options.
        if let Some(bucket) = tarn_core::storage::bucket_of(warehouse.url()) {
            ctx.runtime_env()
                .register_object_store(&bucket, warehouse.store().clone());
        }
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
        let tarn = register(&ctx, warehouse, CATALOG).await?;
        tarn.catalog
            .set_url_tables(crate::external::url_tables(&ctx));
        Ok(tarn)
    }

    /// The DataFusion session underneath (for registering functions, reading files, ...).
    pub fn session_context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn catalog(&self) -> &Arc<TarnCatalog> {
        &self.catalog
    }

    /// This context with properties that tables created through it get unless CREATE TABLE
    /// sets them, for example `write.delete-mode = copy-on-write` for a session's tables.
    pub fn with_table_defaults(
        mut self,
        defaults: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let defaults: std::collections::BTreeMap<String, String> = defaults.into_iter().collect();
        crate::ddl::refuse_internal_properties(defaults.keys())?;
        tarn_core::properties::validate(&defaults).map_err(to_df)?;
        self.table_defaults = Arc::new(defaults);
        Ok(self)
    }

    /// A new table's properties: `given`, over this context's defaults.
    pub(crate) fn table_properties(
        &self,
        given: std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let mut properties = self.table_defaults.as_ref().clone();
        properties.extend(given);
        properties
    }

    /// The name the warehouse has as a catalog in the session.
    pub fn catalog_name(&self) -> &str {
        &self.catalog_name
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

    /// Finishes what statements cancelled by dropping their futures left to undo: a CREATE
    /// TABLE AS cancelled before its rows committed takes its table back out, and a write
    /// deletes the data files it stored. Each statement does this before it runs; a program
    /// that cancels one and then ends calls it last.
    pub async fn finish_cancelled(&self) {
        for cleanup in self.cleanups.take() {
            let _ = cleanup.await;
        }
    }

    /// DuckDB's `INSERT INTO t BY NAME query` (`statement` is the INSERT without `BY NAME`,
    /// or an EXPLAIN of it): the query's column names become the INSERT's column list, so
    /// each column goes to the table's column of its name and the others take their defaults.
    async fn name_inserted_columns(&self, statement: &mut DFStatement) -> Result<()> {
        let DFStatement::Statement(s) = explained(statement) else {
            return Err(DataFusionError::Plan("BY NAME belongs to INSERT".into()));
        };
        let Statement::Insert(insert) = s.as_mut() else {
            return Err(DataFusionError::Plan("BY NAME belongs to INSERT".into()));
        };
        if !insert.columns.is_empty() {
            return Err(DataFusionError::Plan(
                "INSERT ... BY NAME takes its columns from the query's names; drop the column \
                 list"
                    .into(),
            ));
        }
        let Some(source) = &insert.source else {
            return Err(DataFusionError::Plan(
                "INSERT ... BY NAME takes a query".into(),
            ));
        };
        if matches!(source.body.as_ref(), SetExpr::Values(_)) {
            return Err(DataFusionError::Plan(
                "INSERT ... BY NAME matches the query's column names, and VALUES names none: \
                 name them (SELECT 1 AS a, ...) or list the columns (INSERT INTO t (a, ...) \
                 VALUES ...)"
                    .into(),
            ));
        }
        let query = DFStatement::Statement(Box::new(Statement::Query(source.clone())));
        let plan = self.ctx.state().statement_to_plan(query).await?;
        // As in DuckDB, a name matches a column in any case, unless the table has a column
        // of exactly that name.
        let table = match &insert.table {
            TableObject::TableName(name) => self.named_table(name).await?,
            _ => None,
        };
        let columns: Vec<String> = table.map_or_else(Vec::new, |table| {
            let fields = table.table().schema().fields().iter();
            fields.map(|field| field.name.clone()).collect()
        });
        let column_of = |name: &str| -> String {
            let mut folded = columns.iter().filter(|c| c.eq_ignore_ascii_case(name));
            match (
                columns.iter().any(|c| c == name),
                folded.next(),
                folded.next(),
            ) {
                (false, Some(only), None) => only.clone(),
                _ => name.to_string(),
            }
        };
        insert.columns = (plan.schema().fields().iter())
            .map(|field| ObjectName::from(vec![Ident::with_quote('"', column_of(field.name()))]))
            .collect();
        Ok(())
    }

    /// The tarn table `name` names, as the statement naming it would find it; `None` for a
    /// table of another catalog, or none at all.
    async fn named_table(&self, name: &ObjectName) -> Result<Option<TarnTable>> {
        let name = self.qualify(name)?;
        if name.catalog != self.catalog_name {
            return Ok(None);
        }
        self.catalog.load(&name.namespace, &name.table).await
    }

    /// Hive's and Spark's static partition values (see [`crate::replace`]; `statement` may be
    /// an EXPLAIN of the INSERT): the INSERT becomes one with a column list and the values
    /// after the query's columns. For an OVERWRITE, returns the condition that picks the rows
    /// it replaces, for [`Self::replace_where_as_merge`].
    async fn static_partition_values(
        &self,
        statement: &mut DFStatement,
    ) -> Result<Option<SqlExpr>> {
        let inner = explained(statement);
        let DFStatement::Statement(s) = &*inner else {
            return Ok(None);
        };
        let Statement::Insert(insert) = s.as_ref() else {
            return Ok(None);
        };
        if insert.partitioned.is_none() {
            return Ok(None);
        }
        let (TableObject::TableName(name), Some(query)) = (&insert.table, &insert.source) else {
            return Err(DataFusionError::Plan(
                "INSERT ... PARTITION (...) needs a table and the query of its rows".into(),
            ));
        };
        let Some(table) = self.named_table(name).await? else {
            return Err(DataFusionError::Plan(format!(
                "INSERT ... PARTITION (...) writes tarn tables; {name} is not one"
            )));
        };
        let Some(values) = StaticValues::of(insert, table.table().schema(), name)? else {
            return Ok(None);
        };
        match query.body.as_ref() {
            SetExpr::Values(rows) => {
                for row in &rows.rows {
                    values.check_width(row.len())?;
                }
            }
            _ => {
                let query = Statement::Query(query.clone());
                let planned = self.plan(DFStatement::Statement(Box::new(query))).await?;
                values.check_width(planned.schema().fields().len())?;
            }
        }
        let overwrite = insert.overwrite;
        *inner = values.insert(name, query)?;
        Ok(overwrite.then(|| values.condition()).flatten())
    }

    /// Delta's `INSERT INTO t [(columns)] REPLACE WHERE condition query` (`statement` is the
    /// INSERT without `REPLACE WHERE`, or an EXPLAIN of it) as the MERGE that does it: see
    /// [`crate::replace`].
    async fn replace_where_as_merge(
        &self,
        statement: &mut DFStatement,
        condition: &SqlExpr,
    ) -> Result<()> {
        let refuse = |what: &str| {
            Err(DataFusionError::Plan(format!(
                "INSERT ... REPLACE WHERE {what}; write INSERT INTO t [(columns)] REPLACE WHERE \
                 condition SELECT ..."
            )))
        };
        let inner = explained(statement);
        let DFStatement::Statement(s) = &*inner else {
            return refuse("belongs to an INSERT");
        };
        let Statement::Insert(insert) = s.as_ref() else {
            return refuse("belongs to an INSERT");
        };
        if insert.overwrite {
            return refuse(
                "replaces the rows its condition picks: it takes INSERT INTO, not INSERT OVERWRITE",
            );
        }
        let (TableObject::TableName(name), Some(query)) = (&insert.table, &insert.source) else {
            return refuse("needs a table and the query of its rows");
        };
        let Some(table) = self.named_table(name).await? else {
            return Err(DataFusionError::Plan(format!(
                "INSERT ... REPLACE WHERE: {name} is not a tarn table"
            )));
        };
        let columns: Vec<String> = match insert.columns.is_empty() {
            true => table
                .read_schema()
                .fields()
                .iter()
                .map(|f| quote(&f.name))
                .collect(),
            false => insert.columns.iter().map(ToString::to_string).collect(),
        };
        *inner = crate::replace::as_merge(name, &columns, query, condition)?;
        Ok(())
    }

    /// A MERGE's `UPDATE SET *` and `INSERT *` (see [`crate::merge_star`]) as the target
    /// table's columns. When there are stars, returns the name of the source they take the
    /// columns from, and the columns.
    async fn expand_merge_stars(
        &self,
        statement: &mut DFStatement,
    ) -> Result<Option<(Ident, Vec<String>)>> {
        let DFStatement::Statement(s) = explained(statement) else {
            return Ok(None);
        };
        let Statement::Merge(merge) = s.as_mut() else {
            return Ok(None);
        };
        if !crate::merge_star::has_stars(merge) {
            return Ok(None);
        }
        let table = match &merge.table {
            TableFactor::Table { name, .. } => self.named_table(name).await?,
            _ => None,
        };
        let Some(table) = table else {
            return Err(DataFusionError::Plan(format!(
                "MERGE INTO {} ... UPDATE SET * and INSERT * set the columns of a tarn table",
                merge.table
            )));
        };
        let columns: Vec<String> = (table.table().schema().fields().iter())
            .map(|field| field.name.clone())
            .collect();
        let source = crate::merge_star::expand(merge, &columns)?;
        Ok(Some((source, columns)))
    }

    /// The `DEFAULT`s of an INSERT, UPDATE or MERGE into a tarn table (or an EXPLAIN of one)
    /// as its columns' defaults (see [`crate::default_values`]).
    async fn fill_defaults(&self, statement: &mut DFStatement) -> Result<()> {
        let DFStatement::Statement(s) = explained(statement) else {
            return Ok(());
        };
        let Some(name) = crate::default_values::target(s) else {
            return Ok(());
        };
        if let Some(table) = self.named_table(name).await? {
            crate::default_values::fill(s, table.table().schema())?;
        }
        Ok(())
    }

    /// Runs one parsed statement.
    pub async fn execute(&self, parsed: ParsedStatement) -> Result<DataFrame> {
        self.finish_cancelled().await;
        let ParsedStatement {
            mut statement,
            partition_by,
            alter,
            optimize,
            insert_by_name,
            replace_where,
        } = parsed;
        if insert_by_name {
            self.name_inserted_columns(&mut statement).await?;
        }
        let replace_where = match self.static_partition_values(&mut statement).await? {
            Some(_) if replace_where.is_some() => {
                return Err(DataFusionError::Plan(
                    "INSERT ... REPLACE WHERE takes no PARTITION (...): its condition picks the \
                     rows it replaces"
                        .into(),
                ));
            }
            Some(values) => Some(values),
            None => replace_where,
        };
        if let Some(condition) = &replace_where {
            // DEFAULT is filled in the rows of the INSERT: the MERGE's are in its source.
            self.fill_defaults(&mut statement).await?;
            self.replace_where_as_merge(&mut statement, condition)
                .await?;
        }
        let star_source = self.expand_merge_stars(&mut statement).await?;
        self.fill_defaults(&mut statement).await?;
        if let DFStatement::Statement(s) = &mut statement
            && let Statement::Insert(insert) = s.as_mut()
            && let TableObject::TableName(name) = &insert.table
            && crate::struct_values::has_struct_values(insert)
            && let Some(table) = self.named_table(name).await?
        {
            crate::struct_values::name_struct_values(insert, table.read_schema())?;
        }
        if let Some(optimize) = &optimize {
            return self.optimize(optimize).await;
        }
        if let DFStatement::Reset(datafusion::sql::parser::ResetStatement::Variable(name)) =
            &statement
            && self.reset_tarn_option(&name.to_string())
        {
            return self.done().await;
        }
        if let DFStatement::Statement(s) = &statement {
            crate::commit::check_setting(s)?;
            if let Statement::Call(function) = s.as_ref()
                && let Some(df) = self.call(function).await?
            {
                return Ok(df);
            }
            if let Statement::ExplainTable {
                describe_alias: DescribeAlias::Describe | DescribeAlias::Desc,
                hive_format: None,
                table_name,
                ..
            } = s.as_ref()
                && let Some(df) = self.describe(table_name).await?
            {
                return Ok(df);
            }
            if let Statement::Vacuum(vacuum) = s.as_ref() {
                // Delta's VACUUM: say what does its work here.
                let table = vacuum
                    .table_name
                    .as_ref()
                    .map_or_else(|| "t".to_string(), ToString::to_string);
                return Err(DataFusionError::Plan(format!(
                    "tarn has no VACUUM: CALL tarn.expire_snapshots('{table}') expires the \
                     versions past the table's retention and deletes the files only they \
                     reference, and CALL tarn.remove_orphan_files('{table}') deletes files no \
                     version references (of failed writes); `tarn maintain` runs both for \
                     every table"
                )));
            }
            if let Statement::AlterTable(a) = s.as_ref() {
                let name = self.qualify(&a.name)?;
                if name.catalog == self.catalog_name {
                    return self.alter_table(a, alter.as_ref(), &name).await;
                }
            }
            if let Some(df) = self.ddl(s, &partition_by).await? {
                return Ok(df);
            }
            if lists_names(s) {
                self.catalog.refresh().await?;
            }
            if let Statement::Delete(delete) = s.as_ref()
                && let Some(query) = crate::parse::aliased_delete_query(delete)
            {
                return self.plan_aliased_delete(query).await;
            }
        } else if let DFStatement::Explain(explain) = &statement
            && let DFStatement::Statement(s) = explain.statement.as_ref()
            && let Statement::Delete(delete) = s.as_ref()
            && let Some(query) = crate::parse::aliased_delete_query(delete)
        {
            let options = &explain.options;
            if options.format.is_some()
                || options.analyze_level.is_some()
                || options.analyze_categories.is_some()
                || options.show_statistics.is_some()
            {
                return Err(DataFusionError::Plan(
                    "EXPLAIN of a DELETE whose table has an alias takes no options but \
                     VERBOSE and ANALYZE; write the DELETE without the alias for the others"
                        .into(),
                ));
            }
            let (state, plan) = self.plan_aliased_delete(query).await?.into_parts();
            let plan = datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                .explain(options.verbose, options.analyze)?
                .build()?;
            if options.analyze {
                return self.analyze(plan).await;
            }
            return Ok(DataFrame::new(state, plan));
        }
        let insert = match &statement {
            DFStatement::Statement(s) => match s.as_ref() {
                Statement::Insert(insert) => InsertShape::of(insert),
                _ => None,
            },
            _ => None,
        };
        let update = match &statement {
            DFStatement::Statement(s) => match s.as_ref() {
                Statement::Update(update) => Some(assigned_columns(update)),
                _ => None,
            },
            _ => None,
        };
        match self.plan(statement).await {
            Err(e) if let Some(insert) = insert => Err(self.insert_error(e, insert).await),
            Err(e) if let Some((table, assigned)) = update => {
                Err(self.unknown_assignment(e, &table, &assigned))
            }
            Err(e) if let Some((source, columns)) = star_source => Err(
                crate::merge_star::missing_source_column(e, &source, &columns),
            ),
            planned => planned,
        }
    }

    /// DataFusion's "No field named zz" for `UPDATE t SET zz = ...`, said as the UPDATE's
    /// mistake, in the words `insert_shape` uses for an INSERT's unknown column.
    fn unknown_assignment(
        &self,
        e: DataFusionError,
        table: &ObjectName,
        assigned: &[String],
    ) -> DataFusionError {
        let DataFusionError::SchemaError(error, _) = e.find_root() else {
            return e;
        };
        let SchemaError::FieldNotFound {
            field,
            valid_fields,
        } = error.as_ref()
        else {
            return e;
        };
        if !assigned.contains(&field.name) {
            return e;
        }
        let table = match self.qualify(table) {
            Ok(name) => name.short(),
            Err(_) => table.to_string(),
        };
        let columns: Vec<&str> = valid_fields.iter().map(|c| c.name.as_str()).collect();
        DataFusionError::Plan(format!(
            "UPDATE {table}: the table has no column '{}' to SET; its columns are {}",
            field.name,
            columns.join(", ")
        ))
    }

    /// A failed INSERT's error, in the table's terms when it is about the INSERT's shape
    /// (see [`crate::insert_shape`]).
    async fn insert_error(&self, e: DataFusionError, mut insert: InsertShape) -> DataFusionError {
        let message = crate::error::message_of(&e);
        let message = message.trim_start_matches("Schema error: ");
        let Ok(name) = self.qualify(&insert.table) else {
            return e;
        };
        if name.catalog != self.catalog_name {
            return e;
        }
        let Ok(Some(table)) = self.catalog.load(&name.namespace, &name.table).await else {
            return e;
        };
        let columns: Vec<String> = table
            .read_schema()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let mut query_width = None;
        if let Some(query) = insert.query.take() {
            let query = DFStatement::Statement(Box::new(Statement::Query(query)));
            if let Ok(df) = self.plan(query).await {
                query_width = Some(df.schema().fields().len());
            }
        }
        let display = format!("{}.{}", name.namespace, name.table);
        match crate::insert_shape::shape_error(&insert, message, &display, &columns, query_width) {
            Some(said) => DataFusionError::Plan(said),
            None => e,
        }
    }

    /// `DELETE FROM t AS x WHERE p`, planned from the query of the rows it deletes
    /// ([`crate::parse::aliased_delete_query`]): its filter over the aliased scan of `t` is
    /// the DELETE's input, as DataFusion's own DELETE plans are without an alias.
    async fn plan_aliased_delete(&self, query: Statement) -> Result<DataFrame> {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
        let (state, plan) = self
            .plan(DFStatement::Statement(Box::new(query)))
            .await?
            .into_parts();
        let LogicalPlan::Projection(projection) = plan else {
            return Err(DataFusionError::Internal(
                "the rows of a DELETE are planned as a projection".into(),
            ));
        };
        let mut target = None;
        projection.input.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                target = Some((scan.table_name.clone(), scan.source.clone()));
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let Some((name, source)) = target else {
            return Err(DataFusionError::Plan("DELETE FROM needs a table".into()));
        };
        let delete = DmlStatement::new(name, source, WriteOp::Delete, projection.input);
        Ok(DataFrame::new(state, LogicalPlan::Dml(delete)))
    }

    /// DataFusion's `table 'tarn.ns.t' not found` for a name in tarn's catalog, said as tarn
    /// says it everywhere else, with where to look.
    fn missing_table(&self, e: DataFusionError) -> DataFusionError {
        let DataFusionError::Plan(message) = e.find_root() else {
            return e;
        };
        let Some(name) = message
            .strip_prefix(&format!("table '{}.", self.catalog_name))
            .and_then(|rest| rest.strip_suffix("' not found"))
        else {
            return e;
        };
        if let Some((_, suffix)) = name.rsplit_once('$')
            && MetadataTable::parse_name(name).is_none()
        {
            let kinds: Vec<String> = MetadataTable::SUFFIXES
                .iter()
                .map(|(s, _)| format!("${s}"))
                .collect();
            return DataFusionError::Plan(format!(
                "table '{name}' does not exist: '${suffix}' is not a metadata table; a table's \
                 metadata tables are {}",
                kinds.join(", ")
            ));
        }
        // `t$snapshots` and `t@v3` name a table that does not exist: say which.
        let table = MetadataTable::parse_name(name)
            .map(|(table, _)| table)
            .or_else(|| crate::time_travel::versioned_name(name).map(|(table, _)| table))
            .unwrap_or(name);
        DataFusionError::Plan(format!(
            "table '{table}' does not exist; SHOW TABLES lists the tables there are"
        ))
    }

    /// Plans a statement with DataFusion, as a frame that runs when collected.
    pub(crate) async fn plan(&self, mut statement: DFStatement) -> Result<DataFrame> {
        let state = self.ctx.state();
        crate::parse::constant_times_are_names(&mut statement, |at| {
            crate::time_travel::evaluate_timestamp(&state, at, "a time-travel timestamp")
        })?;
        // Namespaces another process created since this context listed them.
        let mut names = Vec::new();
        if let Ok(references) = state.resolve_table_references(&statement) {
            let default_catalog = self.default_catalog();
            for reference in references {
                let catalog = reference.catalog().unwrap_or(&default_catalog);
                if catalog != self.catalog_name {
                    continue;
                }
                let namespace = match reference.schema() {
                    Some(namespace) => {
                        self.catalog.ensure_namespace(namespace).await?;
                        namespace.to_string()
                    }
                    None => self.default_namespace(),
                };
                names.push((namespace, reference.table().to_string()));
            }
        }
        // The tables the statement names are loaded together first; if planning fails for
        // a missing object, the attempts after it load the tables afresh.
        let first = crate::catalog::preloaded(
            &self.catalog,
            names,
            state.statement_to_plan(statement.clone()),
        )
        .await;
        // A metadata object missing while planning: snapshot expiry removed the version
        // this statement loaded a moment ago. Planning again loads the newest one.
        let mut attempts = 0;
        let mut outcome = Some(first);
        let plan = loop {
            let planned = match outcome.take() {
                Some(first) => first,
                None => state.statement_to_plan(statement.clone()).await,
            };
            match planned {
                Err(e) if attempts < 3 && crate::error::is_missing_file(&e) => {
                    attempts += 1;
                }
                outcome => break outcome.map_err(|e| self.missing_table(e))?,
            }
        };
        use datafusion::logical_expr::LogicalPlan;
        match plan {
            LogicalPlan::Analyze(_) => self.analyze(plan).await,
            LogicalPlan::Statement(datafusion::logical_expr::Statement::Execute(_)) => {
                // The prepared plan holds the versions of the moment it was prepared.
                let (state, prepared) = self.ctx.execute_logical_plan(plan).await?.into_parts();
                let plan =
                    crate::view::bind_again(&prepared, &state, crate::view::Kept::Prepared).await?;
                Ok(DataFrame::new(state, plan))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
                self.ctx.execute_logical_plan(plan).await
            }
            // What `execute_logical_plan` does with a query or DML, on the copy of the
            // session this statement was planned with, rather than a second copy.
            plan => Ok(DataFrame::new(state, plan)),
        }
    }

    /// EXPLAIN ANALYZE, run now, with one more row: the requests the warehouse's store
    /// served while the statement ran (planning, reads, writes and the commit; other
    /// statements of the process running meanwhile count too).
    async fn analyze(&self, plan: datafusion::logical_expr::LogicalPlan) -> Result<DataFrame> {
        use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
        let before = self.warehouse().requests();
        let mut batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        let requests = self.warehouse().requests().since(before);
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return self.ctx.read_batches(batches);
        };
        let row: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["Storage requests"])),
            Arc::new(StringArray::from(vec![requests.to_string()])),
        ];
        batches.push(RecordBatch::try_new(schema, row)?);
        self.ctx.read_batches(batches)
    }

    // Both read the session's configuration in place: `SessionContext::state()` would copy
    // the whole session (its function registries and options) for one string.
    pub(crate) fn default_namespace(&self) -> String {
        let state = self.ctx.state_ref();
        let state = state.read();
        state.config().options().catalog.default_schema.clone()
    }

    fn default_catalog(&self) -> String {
        let state = self.ctx.state_ref();
        let state = state.read();
        state.config().options().catalog.default_catalog.clone()
    }

    /// `DESCRIBE t` of a tarn table: DataFusion's columns (`column_name`, `data_type`,
    /// `is_nullable`) with the SQL types of `t$columns` (`VARCHAR`, not `Utf8View`); `None`
    /// for any other table.
    async fn describe(
        &self,
        table_name: &datafusion::sql::sqlparser::ast::ObjectName,
    ) -> Result<Option<DataFrame>> {
        let name = self.qualify(table_name)?;
        if name.catalog != self.catalog_name || name.table.contains('$') {
            return Ok(None);
        }
        // `t@v3` describes that version; a table that is not there gets DataFusion's error.
        let base = name.table.split('@').next().unwrap_or_default();
        if self.catalog.load(&name.namespace, base).await?.is_none() {
            return Ok(None);
        }
        let columns = format!("{}$columns", name.table);
        let sql = format!(
            "SELECT \"column\" AS column_name, type AS data_type, \
             CASE WHEN nullable THEN 'YES' ELSE 'NO' END AS is_nullable FROM {}.{}.{}",
            quote(&name.catalog),
            quote(&name.namespace),
            quote(&columns)
        );
        Box::pin(self.sql(&sql)).await.map(Some)
    }

    pub(crate) fn qualify(
        &self,
        name: &datafusion::sql::sqlparser::ast::ObjectName,
    ) -> Result<QualifiedName> {
        QualifiedName::resolve(
            &parts(name)?,
            &self.default_catalog(),
            &self.default_namespace(),
        )
    }

    /// `RESET tarn.<name>`, which DataFusion 55 does not do for extension settings:
    /// returns whether `name` was one of tarn's.
    fn reset_tarn_option(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let Some(options) = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<crate::commit::TarnOptions>()
        else {
            return false;
        };
        match name.as_str() {
            "tarn.app_id" => options.app_id = None,
            "tarn.app_sequence" => options.app_sequence = None,
            "tarn.overwrite_mode" => options.overwrite_mode = None,
            _ => return false,
        }
        true
    }

    pub(crate) async fn done(&self) -> Result<DataFrame> {
        // An empty result: DDL returns no rows.
        self.ctx.read_empty()
    }
}

/// The session's catalogs without `name` if it holds no table: a session built with
/// DataFusion's defaults has an empty `datafusion` catalog, which would only clutter
/// `SHOW TABLES` beside the warehouse.
fn without_empty_catalog(
    catalogs: &dyn CatalogProviderList,
    name: &str,
) -> Arc<dyn CatalogProviderList> {
    let kept = MemoryCatalogProviderList::new();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        let empty = catalog.schema_names().iter().all(|schema| {
            catalog
                .schema(schema)
                .is_none_or(|schema| schema.table_names().is_empty())
        });
        if catalog_name != name || !empty {
            kept.register_catalog(catalog_name, catalog);
        }
    }
    Arc::new(kept)
}

/// The statement an EXPLAIN (or several) wraps, or `statement` itself.
fn explained(statement: &mut DFStatement) -> &mut DFStatement {
    let mut inner = statement;
    while let DFStatement::Explain(explain) = inner {
        inner = explain.statement.as_mut();
    }
    inner
}

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
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

/// A memory pool of `bytes` for a session's [`RuntimeEnv`], as `tarn --memory-limit` makes
/// it: each spilling operator gets a fair share of what the others do not hold (DataFusion's
/// `FairSpillPool`), and running out names the largest consumers. DataFusion's default pool
/// for a limit (`RuntimeEnvBuilder::with_memory_limit`) is first come, first served: there one
/// sort can fill the pool before another has reserved the memory it merges with, which then
/// fails the statement. Partitioned writes under a memory limit sort a writer's rows each (see
/// [`tarn_core::properties::FANOUT_PROPERTY`]).
pub fn memory_pool(bytes: usize) -> Arc<dyn MemoryPool> {
    Arc::new(TrackConsumersPool::new(
        FairSpillPool::new(bytes),
        std::num::NonZeroUsize::new(5).expect("not zero"),
    ))
}

/// Registers a warehouse as catalog `catalog_name` in any DataFusion session, and returns
/// a [`TarnContext`] over that same session (its config, runtime and other tables).
///
/// The session itself then plans SELECT, INSERT, DELETE, UPDATE and MERGE on tarn tables,
/// metadata tables (`"t$snapshots"`) and time travel by name (`t@v3`); the returned context
/// adds tarn's DDL, ALTER TABLE and `VERSION AS OF`. Installed in the session: the catalog
/// and its object store, the `STORED AS TARN` table factory, the analyzer rules for DML and
/// for `NOT IN` subqueries, a query planner for tarn's DML nodes (plans without them go to
/// the session's own planner), the time-travel relation planner, the change-feed table
/// functions, `min`, `max` and `sum` in place of DataFusion's (see `aggregates`), the
/// analyzer rule that makes `+`, `-` and `*` of integers and decimals fail on overflow, and
/// the optimizer rule that filters a join's other side by the keys of a VALUES list (see
/// `literal_keys`).
pub async fn register(
    ctx: &SessionContext,
    warehouse: Warehouse,
    catalog_name: &str,
) -> Result<TarnContext> {
    let store_url = register_store(ctx, warehouse.store().clone())?;
    let catalog = TarnCatalog::try_new(warehouse, store_url).await?;
    ctx.register_catalog(catalog_name, catalog.clone());
    // DML first: the IN rewrite then sees DML's first passes too.
    ctx.add_analyzer_rule(Arc::new(DmlRule));
    ctx.add_analyzer_rule(Arc::new(NullAwareInSubquery));
    // Last: it checks the arithmetic of the plans the rules before it make, too.
    ctx.add_analyzer_rule(Arc::new(CheckedArithmeticRule));
    ctx.add_optimizer_rule(Arc::new(LiteralJoinKeys));
    ctx.register_relation_planner(Arc::new(TimeTravelPlanner))?;
    for f in [TimeTravelFunction::version(), TimeTravelFunction::as_of()] {
        ctx.register_udtf(f.name(), Arc::new(f));
    }
    for f in crate::changes::ChangeFeedFunction::all() {
        ctx.register_udtf(f.name(), Arc::new(f));
    }
    for f in crate::aggregates::amended() {
        ctx.register_udaf(f);
    }
    ctx.register_udf(crate::assert_true::udf());
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        state
            .table_factories_mut()
            .insert("TARN".into(), Arc::new(TarnTableFactory));
    }
    // tarn's query planner wraps the session's own, once.
    let planner = ctx.state().query_planner().clone();
    if !(planner.as_ref() as &dyn std::any::Any).is::<TarnQueryPlanner>() {
        let state = SessionStateBuilder::new_from_existing(ctx.state())
            .with_query_planner(Arc::new(TarnQueryPlanner::new(planner)))
            .build();
        *ctx.state_ref().write() = state;
    }
    // The session's plan nodes find where to leave the clean-ups of cancelled statements.
    let cleanups = match ctx.state().config().get_extension::<Cleanups>() {
        Some(cleanups) => cleanups,
        None => {
            let cleanups = Arc::new(Cleanups::default());
            ctx.state_ref()
                .write()
                .config_mut()
                .set_extension(Arc::clone(&cleanups));
            cleanups
        }
    };
    Ok(TarnContext {
        ctx: ctx.clone(),
        catalog,
        catalog_name: catalog_name.to_string(),
        table_defaults: Arc::default(),
        cleanups,
    })
}

/// Registers `store` in the session under a fresh `tarn://` URL.
pub(crate) fn register_store(
    ctx: &SessionContext,
    store: Arc<dyn object_store::ObjectStore>,
) -> Result<ObjectStoreUrl> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let url = ObjectStoreUrl::parse(format!("tarn://store-{id}"))?;
    ctx.runtime_env().register_object_store(url.as_ref(), store);
    Ok(url)
}

/// The table an UPDATE writes and the columns its SET assigns, as DataFusion names them.
fn assigned_columns(update: &Update) -> (ObjectName, Vec<String>) {
    use datafusion::sql::sqlparser::ast::{AssignmentTarget, TableFactor};
    let table = match &update.table.relation {
        TableFactor::Table { name, .. } => name.clone(),
        _ => ObjectName(Vec::new()),
    };
    let assigned = update
        .assignments
        .iter()
        .flat_map(|a| match &a.target {
            AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
            AssignmentTarget::Tuple(names) => names.as_slice(),
        })
        .filter_map(|name| name.0.last()?.as_ident().map(crate::names::normalize))
        .collect();
    (table, assigned)
}
