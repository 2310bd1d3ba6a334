//! Maintenance from SQL: `OPTIMIZE` (compaction) and the procedures
//! `CALL tarn.expire_snapshots(...)` and `CALL tarn.remove_orphan_files(...)`.
//!
//! Compaction reads the chosen files' live rows (deletion vectors applied), optionally sorts
//! them, writes them as files of the table's target size per partition, and commits one
//! rewrite. A rewrite rebases over concurrent appends; when a concurrent DELETE, UPDATE or
//! MERGE changed or removed one of its files first, compaction is the one that gives way: it
//! plans again on the newest version (and a statement that loses to a compaction re-runs
//! itself, see `commit.rs`), so maintenance never fails a user's write.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, SessionState, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::Column};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName,
    Value as SqlValue,
};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tarn_core::Change;
use tarn_core::maintenance::{
    CompactionPolicy, ExpireOptions, OrphanOptions, compaction_groups, expire_snapshots,
    remove_orphan_files,
};
use tarn_spec::Operation;

use crate::context::TarnContext;
use crate::error::to_df;
use crate::provider::{RowsOf, TarnTable};

/// `OPTIMIZE t [WHERE predicate] [ORDER BY columns]`, as parsed.
#[derive(Debug, Clone)]
pub(crate) struct Optimize {
    pub table: ObjectName,
    pub filter: Option<SqlExpr>,
    pub order_by: Vec<SqlExpr>,
}

/// The procedures `CALL` runs.
const PROCEDURES: [&str; 5] = [
    "expire_snapshots",
    "remove_orphan_files",
    "optimize",
    "rollback_to_snapshot",
    "rollback_to_timestamp",
];

/// The argument each rollback procedure takes after the table, by name or second in place.
const ROLLBACK_TARGETS: [(&str, &str); 2] = [
    ("rollback_to_snapshot", "snapshot_id"),
    ("rollback_to_timestamp", "timestamp"),
];

/// How many times compaction plans again after losing to a concurrent change.
const COMPACTION_ATTEMPTS: u32 = 5;

/// What a compaction did.
#[derive(Debug, Default)]
pub(crate) struct Compacted {
    removed: u64,
    added: u64,
    rows: u64,
    version: Option<u64>,
}

impl TarnContext {
    /// Runs `OPTIMIZE`.
    pub(crate) async fn optimize(&self, optimize: &Optimize) -> Result<DataFrame> {
        let provider = self.tarn_table(&optimize.table).await?;
        let columns: Vec<String> = provider
            .table()
            .schema()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let filter = match &optimize.filter {
            None => None,
            Some(sql) => Some(self.filter_on_partition_columns(&provider, sql)?),
        };
        let order_by = optimize
            .order_by
            .iter()
            .map(|e| match e {
                SqlExpr::Identifier(id) => column_index(&columns, &id.value),
                SqlExpr::CompoundIdentifier(parts) if parts.len() == 1 => {
                    column_index(&columns, &parts[0].value)
                }
                other => Err(DataFusionError::Plan(format!(
                    "OPTIMIZE ... ORDER BY takes column names, not '{other}'"
                ))),
            })
            .collect::<Result<Vec<usize>>>()?;
        let mut provider = provider;
        let mut attempt = 1;
        let done = loop {
            match self
                .compact_once(&provider, filter.as_ref(), &order_by)
                .await
            {
                // Files that concurrent statements keep changing are left for a quieter
                // moment: compaction never wins over a user's write.
                Err(e)
                    if attempt == COMPACTION_ATTEMPTS
                        && crate::commit::is_retryable_conflict(&e) =>
                {
                    break Compacted::default();
                }
                Err(e) if crate::commit::is_retryable_conflict(&e) => {
                    attempt += 1;
                    let fresh = provider.table().refresh().await.map_err(to_df)?;
                    provider = TarnTable::new(
                        fresh,
                        provider.name().to_string(),
                        self.catalog().store_url().clone(),
                    );
                }
                outcome => break outcome?,
            }
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("removed_files", DataType::UInt64, false),
            Field::new("added_files", DataType::UInt64, false),
            Field::new("rewritten_rows", DataType::UInt64, false),
            Field::new("version", DataType::UInt64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![done.removed])),
            Arc::new(UInt64Array::from(vec![done.added])),
            Arc::new(UInt64Array::from(vec![done.rows])),
            Arc::new(UInt64Array::from(vec![done.version])),
        ];
        self.session_context()
            .read_batch(RecordBatch::try_new(schema, columns)?)
    }

    /// One compaction of the loaded version: choose, rewrite, commit.
    async fn compact_once(
        &self,
        provider: &TarnTable,
        filter: Option<&Expr>,
        order_by: &[usize],
    ) -> Result<Compacted> {
        let state = self.session_context().state();
        let (table, plan) = provider
            .plan(&state, filter.map(std::slice::from_ref).unwrap_or(&[]))
            .await?;
        let mut policy = CompactionPolicy::for_table(&table).map_err(to_df)?;
        policy.rewrite_all = !order_by.is_empty();
        let groups = compaction_groups(&table, &plan.data_files(), &policy);
        let files: Vec<tarn_core::DataFile> = groups.into_iter().flatten().collect();
        rewrite_files(
            provider,
            &table,
            files,
            order_by,
            state.task_ctx(),
            "optimize",
        )
        .await
    }

    /// OPTIMIZE's WHERE selects files by partition: only partition source columns may appear.
    fn filter_on_partition_columns(&self, provider: &TarnTable, sql: &SqlExpr) -> Result<Expr> {
        let table = provider.table();
        let metadata = table.metadata();
        let sources: Vec<&str> = metadata
            .default_spec()
            .fields()
            .iter()
            .filter_map(|p| {
                table
                    .schema()
                    .fields()
                    .iter()
                    .find(|f| f.id == p.source_id)
                    .map(|f| f.name.as_str())
            })
            .collect();
        let df_schema = datafusion::common::DFSchema::try_from(
            datafusion::catalog::TableProvider::schema(provider)
                .as_ref()
                .clone(),
        )?;
        let expr = self
            .session_context()
            .parse_sql_expr(&sql.to_string(), &df_schema)?;
        if let Some(column) = expr
            .column_refs()
            .into_iter()
            .find(|c| !sources.contains(&c.name.as_str()))
        {
            return Err(DataFusionError::Plan(format!(
                "OPTIMIZE ... WHERE selects partitions, so it may only name partition columns ({}); '{}' is not one",
                if sources.is_empty() {
                    "this table has none".to_string()
                } else {
                    sources.join(", ")
                },
                column.name
            )));
        }
        Ok(expr)
    }

    /// The tarn table named by a string such as `'ns.t'` (each part as written).
    pub(crate) async fn tarn_table_named(&self, name: &str) -> Result<TarnTable> {
        let parts = crate::names::QualifiedName::split(name)
            .into_iter()
            .map(|p| datafusion::sql::sqlparser::ast::Ident::with_quote('"', p))
            .collect::<Vec<_>>();
        self.tarn_table(&ObjectName::from(parts)).await
    }

    /// The tarn table a maintenance statement names.
    pub(crate) async fn tarn_table(&self, name: &ObjectName) -> Result<TarnTable> {
        let name = self.qualify(name)?;
        if name.catalog != self.catalog_name() {
            return Err(DataFusionError::Plan(format!(
                "'{}.{}.{}' is not a tarn table: this runs on tables of the '{}' catalog only",
                name.catalog,
                name.namespace,
                name.table,
                self.catalog_name()
            )));
        }
        self.catalog()
            .load(&name.namespace, &name.table)
            .await?
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "table '{}.{}' does not exist",
                    name.namespace, name.table
                ))
            })
    }

    /// `CALL tarn.expire_snapshots(...)`, `CALL tarn.remove_orphan_files(...)` and
    /// `CALL tarn.optimize('t')` (OPTIMIZE as Iceberg's procedures are called); any other
    /// procedure is an error that lists these.
    pub(crate) async fn call(&self, function: &Function) -> Result<Option<DataFrame>> {
        let procedure = function
            .name
            .0
            .last()
            .map(|p| p.to_string().to_ascii_lowercase())
            .unwrap_or_default();
        if !PROCEDURES.contains(&procedure.as_str()) {
            let hint = if ["rollback", "restore"]
                .iter()
                .any(|w| procedure.contains(w))
            {
                "; to bring a table back to an earlier version: RESTORE TABLE t TO VERSION AS \
                 OF n (or TIMESTAMP AS OF 'time')"
            } else {
                ""
            };
            return Err(DataFusionError::Plan(format!(
                "tarn has no procedure '{procedure}'; its procedures are {}{hint}",
                PROCEDURES
                    .iter()
                    .map(|p| format!("tarn.{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let args = ProcedureArgs::of(&procedure, function)?;
        if procedure == "optimize" {
            args.allow(&[])?;
            let optimize = Optimize {
                table: args.table()?,
                filter: None,
                order_by: Vec::new(),
            };
            return self.optimize(&optimize).await.map(Some);
        }
        let state = self.session_context().state();
        let table_name = args.table()?;
        let provider = self.tarn_table(&table_name).await?;
        let table = provider.table();
        if let Some(&(_, target)) = ROLLBACK_TARGETS.iter().find(|(p, _)| *p == procedure) {
            args.allow(&[target])?;
            let version = match target {
                "snapshot_id" => args.version(target)?,
                _ => {
                    let Some(ms) = args.timestamp(target, &state)? else {
                        return Err(args.usage());
                    };
                    table.at_timestamp(ms).await.map_err(to_df)?.version()
                }
            };
            return self.restore(table, version).await.map(Some);
        }
        let batch = if procedure == "expire_snapshots" {
            args.allow(&["older_than", "retain_last", "dry_run"])?;
            let options = ExpireOptions {
                older_than_ms: args.timestamp("older_than", &state)?,
                retain_last: args.count("retain_last")?,
                dry_run: args.flag("dry_run")?,
            };
            let report = expire_snapshots(table, &options).await.map_err(to_df)?;
            let schema = Arc::new(Schema::new(vec![
                Field::new("expired_versions", DataType::UInt64, false),
                Field::new("oldest_version", DataType::UInt64, false),
                Field::new("deleted_data_files", DataType::UInt64, false),
                Field::new("deleted_delete_files", DataType::UInt64, false),
                Field::new("deleted_metadata_files", DataType::UInt64, false),
            ]));
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(UInt64Array::from(vec![report.expired_versions])),
                    Arc::new(UInt64Array::from(vec![report.oldest_retained.get()])),
                    Arc::new(UInt64Array::from(vec![report.deleted_data_files])),
                    Arc::new(UInt64Array::from(vec![report.deleted_delete_files])),
                    Arc::new(UInt64Array::from(vec![report.deleted_metadata_files])),
                ],
            )?
        } else {
            args.allow(&["older_than", "dry_run"])?;
            let older_than_ms = args.timestamp("older_than", &state)?.unwrap_or_else(|| {
                table.env().now_ms() - tarn_core::maintenance::DEFAULT_ORPHAN_AGE_MS
            });
            let options = OrphanOptions {
                older_than_ms,
                dry_run: args.flag("dry_run")?,
            };
            let report = remove_orphan_files(table, &options).await.map_err(to_df)?;
            let schema = Arc::new(Schema::new(vec![Field::new("path", DataType::Utf8, false)]));
            RecordBatch::try_new(
                schema,
                vec![Arc::new(StringArray::from_iter_values(report.orphans))],
            )?
        };
        self.session_context().read_batch(batch).map(Some)
    }
}

impl TarnContext {
    /// Brings `table` back to `version` in a new version ([`tarn_core::Table::restore`]),
    /// returning the version before, the new one and the one restored.
    async fn restore(
        &self,
        table: &tarn_core::Table,
        version: tarn_spec::Version,
    ) -> Result<DataFrame> {
        let extra = BTreeMap::from([
            ("statement".to_string(), "restore".to_string()),
            ("restored-version".to_string(), version.get().to_string()),
        ]);
        let restored = table.restore(version, extra).await.map_err(to_df)?;
        let column = |v: tarn_spec::Version| Arc::new(UInt64Array::from(vec![v.get()])) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            ("previous_version", column(table.version())),
            ("version", column(restored.version())),
            ("restored_version", column(version)),
        ])?;
        self.session_context().read_batch(batch)
    }
}

fn column_index(columns: &[String], name: &str) -> Result<usize> {
    columns
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "OPTIMIZE ... ORDER BY names '{name}', which is not a column; the columns are {}",
                columns.join(", ")
            ))
        })
}

/// A procedure's arguments: the table first (or as `table => 'ns.t'`), then named ones
/// (`name => value`).
struct ProcedureArgs<'a> {
    procedure: String,
    positional: Vec<&'a SqlExpr>,
    named: Vec<(String, &'a SqlExpr)>,
}

impl<'a> ProcedureArgs<'a> {
    fn of(procedure: &str, function: &'a Function) -> Result<Self> {
        let mut args = ProcedureArgs {
            procedure: procedure.to_string(),
            positional: Vec::new(),
            named: Vec::new(),
        };
        let list = match &function.args {
            FunctionArguments::List(list) => &list.args,
            FunctionArguments::None => return Ok(args),
            FunctionArguments::Subquery(_) => return Err(args.usage()),
        };
        for arg in list {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.positional.push(e),
                FunctionArg::Named {
                    name,
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => args.named.push((name.value.to_ascii_lowercase(), e)),
                _ => return Err(args.usage()),
            }
        }
        // Iceberg's procedures name the table too: `CALL ...(table => 'ns.t', ...)`.
        if let Some(i) = args.named.iter().position(|(n, _)| n == "table") {
            if !args.positional.is_empty() {
                return Err(args.usage());
            }
            let (_, table) = args.named.remove(i);
            args.positional.push(table);
        }
        // A rollback's target may follow the table in place: `rollback_to_snapshot('t', 3)`.
        if let Some(&(_, target)) = ROLLBACK_TARGETS.iter().find(|(p, _)| *p == procedure)
            && args.positional.len() == 2
            && !args.named.iter().any(|(n, _)| n == target)
        {
            let value = args.positional.pop().expect("two positional arguments");
            args.named.push((target.to_string(), value));
        }
        Ok(args)
    }

    fn usage(&self) -> DataFusionError {
        DataFusionError::Plan(format!("usage: {}", self.usage_text()))
    }

    fn usage_text(&self) -> &'static str {
        match self.procedure.as_str() {
            "expire_snapshots" => {
                "CALL tarn.expire_snapshots('namespace.table' [, older_than => 'timestamp'] \
                 [, retain_last => n] [, dry_run => true])"
            }
            "optimize" => {
                "CALL tarn.optimize('namespace.table'), or OPTIMIZE namespace.table \
                 [WHERE partition predicate] [ORDER BY column, ...]"
            }
            "rollback_to_snapshot" => {
                "CALL tarn.rollback_to_snapshot('namespace.table', version), or RESTORE \
                 TABLE namespace.table TO VERSION AS OF version"
            }
            "rollback_to_timestamp" => {
                "CALL tarn.rollback_to_timestamp('namespace.table', TIMESTAMP 'time'), or \
                 RESTORE TABLE namespace.table TO TIMESTAMP AS OF 'time'"
            }
            _ => {
                "CALL tarn.remove_orphan_files('namespace.table' [, older_than => 'timestamp'] \
                 [, dry_run => true])"
            }
        }
    }

    /// The table: a string (`'ns.t'`, Iceberg's way) or a name (`ns."My Table"`).
    fn table(&self) -> Result<ObjectName> {
        match self.positional.as_slice() {
            [SqlExpr::Identifier(name)] => Ok(ObjectName::from(vec![name.clone()])),
            [SqlExpr::CompoundIdentifier(parts)] => Ok(ObjectName::from(parts.clone())),
            [SqlExpr::Value(v)] => match &v.value {
                SqlValue::SingleQuotedString(s) => Ok(ObjectName::from(
                    crate::names::QualifiedName::split(s)
                        .into_iter()
                        .map(|p| datafusion::sql::sqlparser::ast::Ident::with_quote('"', p))
                        .collect::<Vec<_>>(),
                )),
                _ => Err(self.usage()),
            },
            _ => Err(self.usage()),
        }
    }

    fn allow(&self, names: &[&str]) -> Result<()> {
        match self
            .named
            .iter()
            .find(|(n, _)| !names.contains(&n.as_str()))
        {
            Some((name, _)) => Err(DataFusionError::Plan(format!(
                "tarn.{} has no argument '{name}'; usage: {}",
                self.procedure,
                self.usage_text()
            ))),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&'a SqlExpr> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, e)| *e)
    }

    /// A time argument: a literal, or a constant expression such as
    /// `now() - INTERVAL '7 days'`, evaluated now.
    fn timestamp(&self, name: &str, state: &SessionState) -> Result<Option<i64>> {
        self.get(name)
            .map(|expr| {
                crate::time_travel::evaluate_timestamp(state, expr, &format!("the {name} time"))
            })
            .transpose()
    }

    /// A version number (a snapshot id), which must be given.
    fn version(&self, name: &str) -> Result<tarn_spec::Version> {
        (self.whole_number(name, 0, "a version number (0 or more)")?)
            .map(tarn_spec::Version)
            .ok_or_else(|| self.usage())
    }

    fn count(&self, name: &str) -> Result<Option<u64>> {
        self.whole_number(name, 1, "a positive whole number")
    }

    /// A whole-number argument of at least `least`, if given; `kind` names what it takes.
    fn whole_number(&self, name: &str, least: u64, kind: &str) -> Result<Option<u64>> {
        let Some(expr) = self.get(name) else {
            return Ok(None);
        };
        let number = match expr {
            SqlExpr::Value(v) => match &v.value {
                SqlValue::Number(n, _) => n.parse::<u64>().ok(),
                _ => None,
            },
            _ => None,
        };
        match number.filter(|&n| n >= least) {
            Some(n) => Ok(Some(n)),
            None => Err(DataFusionError::Plan(format!(
                "{name} takes {kind}, not {expr}"
            ))),
        }
    }

    fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(SqlExpr::Value(v)) => match &v.value {
                SqlValue::Boolean(b) => Ok(*b),
                other => Err(DataFusionError::Plan(format!(
                    "{name} takes true or false, not {other}"
                ))),
            },
            Some(other) => Err(DataFusionError::Plan(format!(
                "{name} takes true or false, not {other}"
            ))),
        }
    }
}

/// Rewrites `files` of `table`'s version (their live rows, sorted by the columns `order_by`
/// or else by the table's sort order) into files of the target size per partition, and
/// commits them as one `rewrite` snapshot whose summary names the `maintenance` that ran.
pub(crate) async fn rewrite_files(
    provider: &TarnTable,
    table: &tarn_core::Table,
    files: Vec<tarn_core::DataFile>,
    order_by: &[usize],
    task: Arc<TaskContext>,
    maintenance: &str,
) -> Result<Compacted> {
    if files.is_empty() {
        return Ok(Compacted::default());
    }
    let width = table.schema().fields().len();
    let columns: Vec<usize> = (0..width).collect();
    let scan = provider
        .identity_scan_of_files(table, &files, RowsOf::Live, &columns, &task)
        .await?;
    // Without ORDER BY, the rewritten files follow the table's sort order, if it has one.
    let schema = scan.schema();
    let ordering = match order_by {
        [] => crate::write::table_ordering(&schema, table)?,
        keys => LexOrdering::new(keys.iter().map(|&i| {
            PhysicalSortExpr::new_default(Arc::new(Column::new(schema.field(i).name(), i)))
        })),
    };
    // Unsorted rewrites of a partitioned table run a writer per core, the rows hashed on
    // the partition key so that each partition is still written by one writer (not under
    // a bounded memory pool: see `may_hash_across_writers`).
    let hash = crate::write::may_hash_across_writers(task.memory_pool().as_ref());
    let writers = if hash {
        task.session_config().target_partitions()
    } else {
        1
    };
    let key = crate::write::partition_key(&schema, table);
    let input: Arc<dyn ExecutionPlan> = match (&ordering, &key) {
        (None, Some(key)) if writers > 1 => Arc::new(RepartitionExec::try_new(
            scan,
            Partitioning::Hash(key.clone(), writers),
        )?),
        _ => Arc::new(CoalescePartitionsExec::new(scan)),
    };
    // Each writer's rows sorted on the partition key first, when the table writes without
    // fanout (see `clusters`), then in the order asked for.
    let clustered = key.is_some() && crate::write::clusters(table)?;
    let cluster_key = key.as_deref().filter(|_| clustered);
    let input = match crate::write::write_ordering(cluster_key, ordering.as_ref()) {
        None => input,
        Some(ordering) => Arc::new(SortExec::new(ordering, input).with_preserve_partitioning(true)),
    };
    let streams = (0..input.properties().partitioning.partition_count())
        .map(|p| input.execute(p, task.clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut writes = tokio::task::JoinSet::new();
    for stream in streams {
        let mut writer = crate::write::writer_for(table, &task, writers, None)?;
        if clustered {
            writer = writer.with_clustered_input();
        }
        writes.spawn(write_all(stream, writer, columns.clone()));
    }
    let (mut added, mut rows) = (Vec::new(), 0);
    while let Some(written) = writes.join_next().await {
        let (files, n) = written.map_err(|e| DataFusionError::External(Box::new(e)))??;
        added.extend(files);
        rows += n;
    }
    let summary = BTreeMap::from([("maintenance".to_string(), maintenance.to_string())]);
    let removed = files.len() as u64;
    let added_count = added.len() as u64;
    let added_paths: Vec<String> = added.iter().map(|f| f.path.clone()).collect();
    match table
        .commit_with_summary(
            Change::Rewrite {
                removed: files,
                added,
                operation: Operation::Rewrite,
            },
            summary,
        )
        .await
    {
        Ok(committed) => Ok(Compacted {
            removed,
            added: added_count,
            rows,
            version: Some(committed.version().get()),
        }),
        Err(e) => {
            // The rewritten files are referenced by nothing: take them back now rather
            // than leave them to orphan cleanup.
            for path in &added_paths {
                let _ = table
                    .location()
                    .store()
                    .delete(&table.location().path(path))
                    .await;
            }
            Err(to_df(e))
        }
    }
}

/// Writes every batch of `stream` (projected to the table's `columns`) with `writer`: the
/// files written and the rows in them.
async fn write_all(
    mut stream: SendableRecordBatchStream,
    mut writer: tarn_core::DataFileWriter,
    columns: Vec<usize>,
) -> Result<(Vec<tarn_core::DataFile>, u64)> {
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?.project(&columns)?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).await.map_err(to_df)?;
    }
    Ok((writer.finish().await.map_err(to_df)?, rows))
}
