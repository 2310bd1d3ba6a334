//! The change feed from SQL and Rust: `table_changes('t', from, to)` and its shortcuts
//! `table_insertions` and `table_deletions`, [`ChangeFeed`] as a table provider, and
//! [`TarnContext::follow_changes`] for pipelines that tail a table.
//!
//! tarn-core finds the changed rows of each version as data files and positions
//! ([`Table::change_plan`]); this module reads them with the row-identity scan DML uses, in
//! the schema of the range's last version (columns bound by field id, so renamed and
//! re-added columns keep their data), and adds `_change_type`, `_commit_version` and
//! `_commit_timestamp`. One scan per version and kind of change, in a union.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator,
    Value as SqlValue,
};
use futures::{Stream, TryStreamExt};
use tarn_core::{ChangeSlice, DataFile, FollowPoll, RoaringTreemap};
use tarn_spec::{ChangeType, Version};

use crate::context::TarnContext;
use crate::error::to_df;
use crate::provider::{RowsOf, TarnTable};
use crate::time_travel::AsOf;

/// The SQL functions of the change feed, as tarn's parser knows them.
pub(crate) const FUNCTIONS: [&str; 3] = ["table_changes", "table_insertions", "table_deletions"];

/// The columns the change feed adds after the table's.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";
pub const COMMIT_VERSION_COLUMN: &str = "_commit_version";
pub const COMMIT_TIMESTAMP_COLUMN: &str = "_commit_timestamp";

pub(crate) fn feed_fields() -> [Field; 3] {
    [
        Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, false),
        Field::new(COMMIT_VERSION_COLUMN, DataType::Int64, false),
        Field::new(
            COMMIT_TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]
}

/// The changed rows of a table between two versions (both included), as a table.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    /// The table at the range's last version.
    last: TarnTable,
    from: AsOf,
    /// Only rows of this kind (`table_insertions`, `table_deletions`).
    only: Option<ChangeType>,
    /// No end was given: `last` is the newest version, and a range starting right after it
    /// is empty rather than wrong (a reader tailing the table asks for the version after
    /// the last one it read, which may not exist yet).
    open_end: bool,
    /// The table's columns in the schema of the last version, then the feed's.
    schema: SchemaRef,
}

impl ChangeFeed {
    /// The feed from `from` to the version `last` reads (a time-travel provider, or the
    /// loaded version), in that version's columns.
    pub fn new(last: &TarnTable, from: AsOf, only: Option<ChangeType>) -> Self {
        let mut fields: Vec<Field> = last
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(feed_fields());
        ChangeFeed {
            last: last.clone(),
            from,
            only,
            open_end: false,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The same feed, its end left open (see `open_end`).
    fn open_ended(mut self) -> Self {
        self.open_end = true;
        self
    }

    /// The first version of the range: `from` a time means the first version committed at
    /// or after it. `None` when no version was committed from that time to the last one.
    async fn first_version(&self) -> Result<Option<Version>> {
        let first = match self.from {
            AsOf::Version(v) if self.open_end && Version(v) == self.last.version().next() => {
                return Ok(None);
            }
            AsOf::Version(v) => Version(v),
            AsOf::Timestamp(ms) => match self.last.table().at_timestamp(ms).await {
                Ok(at) if at.snapshot().timestamp_ms == ms => at.version(),
                Ok(at) if at.version() >= self.last.version() => return Ok(None),
                Ok(at) => at.version().next(),
                // Before the table existed: from its start.
                Err(tarn_core::Error::TimestampBeforeTable { .. }) => Version(0),
                Err(e) => return Err(to_df(e)),
            },
        };
        Ok(Some(first))
    }

    /// What the feed reads: the changed files and positions of each version.
    pub async fn plan(&self) -> Result<Vec<ChangeSlice>> {
        let Some(first) = self.first_version().await? else {
            return Ok(Vec::new());
        };
        let slices = self
            .last
            .table()
            .change_plan(first, self.last.version())
            .await
            .map_err(to_df)?;
        Ok(slices
            .into_iter()
            .filter(|s| self.only.is_none_or(|only| s.change_type == only))
            .collect())
    }
}

#[async_trait]
impl TableProvider for ChangeFeed {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let output: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let projected = Arc::new(self.schema.project(&output)?);
        let slices = self.plan().await?;
        if slices.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let last = self.last.read_table().await?;
        let width = last.schema().fields().len();
        // The table's columns the output needs, in the order it needs them.
        let columns: Vec<usize> = output.iter().copied().filter(|&i| i < width).collect();
        let context = state.task_ctx();
        let mut scans = Vec::new();
        for group in scan_groups(&slices) {
            let files: Vec<DataFile> = group.iter().flat_map(|s| s.files.iter().cloned()).collect();
            let positions: Option<HashMap<String, RoaringTreemap>> =
                group[0].positions.as_ref().map(|_| {
                    group
                        .iter()
                        .flat_map(|s| s.positions.iter().flatten())
                        .map(|(path, p)| (path.clone(), p.clone()))
                        .collect()
                });
            let rows = match &positions {
                Some(positions) => RowsOf::Positions(positions),
                None => RowsOf::Live,
            };
            let commits: Vec<(i64, i64)> = group
                .iter()
                .flat_map(|s| {
                    let commit = (s.version.get() as i64, s.timestamp_ms);
                    s.files.iter().map(move |_| commit)
                })
                .collect();
            let scan = self
                .last
                .commit_scan_of_files(&last, &files, &commits, rows, &columns, &context)
                .await?;
            scans.push(feed_projection(
                scan,
                group[0].change_type,
                &output,
                width,
                &projected,
            )?);
        }
        UnionExec::try_new(scans)
    }
}

/// A group being filled: its slices, and the paths of their files.
type OpenGroup<'a> = (Vec<&'a ChangeSlice>, HashSet<&'a str>);

/// The slices read by one scan each: those of one kind of change and one way of selecting
/// rows (live rows, or positions), as long as no file comes twice (a file whose rows two
/// versions deleted by vector, or a file added and later removed, is read once per version).
fn scan_groups(slices: &[ChangeSlice]) -> Vec<Vec<&ChangeSlice>> {
    let mut done = Vec::new();
    let mut open: HashMap<(ChangeType, bool), OpenGroup<'_>> = HashMap::new();
    for slice in slices {
        let key = (slice.change_type, slice.positions.is_some());
        let (group, paths) = open.entry(key).or_default();
        if slice.files.iter().any(|f| paths.contains(f.path.as_str())) {
            done.push(std::mem::take(group));
            paths.clear();
        }
        paths.extend(slice.files.iter().map(|f| f.path.as_str()));
        group.push(slice);
    }
    done.extend(open.into_values().map(|(group, _)| group));
    done.retain(|g| !g.is_empty());
    done
}

/// The feed's columns over a scan of some slices (the table's columns asked for, then
/// `_commit_version` and `_commit_timestamp`).
fn feed_projection(
    scan: Arc<dyn ExecutionPlan>,
    change_type: ChangeType,
    output: &[usize],
    width: usize,
    projected: &SchemaRef,
) -> Result<Arc<dyn ExecutionPlan>> {
    let columns = output.iter().filter(|&&i| i < width).count();
    let mut next_column = 0;
    let exprs = output
        .iter()
        .zip(projected.fields())
        .map(|(&i, field)| {
            let expr: Arc<dyn PhysicalExpr> = if i < width {
                next_column += 1;
                Arc::new(Column::new(field.name(), next_column - 1))
            } else if i == width {
                Arc::new(Literal::new(ScalarValue::Utf8(Some(
                    change_type.as_str().to_string(),
                ))))
            } else {
                // The scan's commit columns, after the table's.
                let at = columns + (i - width - 1);
                Arc::new(Column::new(field.name(), at))
            };
            (expr, field.name().clone())
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
}

/// The function of a change-feed relation (`table_changes` & co.) and its bounds, as tarn's
/// parser leaves them in the table reference: `None` for any other relation. A bound that is
/// neither a version nor a timestamp literal is a time `evaluate` gives the instant of.
pub(crate) fn feed_of(
    function: &SqlExpr,
    table: &TarnTable,
    mut evaluate: impl FnMut(&SqlExpr) -> Result<i64>,
) -> Result<Option<ChangeFeed>> {
    let SqlExpr::Function(function) = function else {
        return Ok(None);
    };
    let name = function.name.to_string().to_ascii_lowercase();
    let only = match name.as_str() {
        "table_changes" => None,
        "table_insertions" => Some(ChangeType::Insert),
        "table_deletions" => Some(ChangeType::Delete),
        _ => return Ok(None),
    };
    let FunctionArguments::List(list) = &function.args else {
        return Ok(None);
    };
    let mut bound = |arg: &FunctionArg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => bound_of(expr, &mut evaluate),
        other => Err(DataFusionError::Plan(format!(
            "{name}: a bound must be a version or a timestamp, not {other}"
        ))),
    };
    let from = bound(&list.args[0])?;
    Ok(Some(match list.args.get(1).map(bound).transpose()? {
        Some(to) => ChangeFeed::new(&table.at(to)?, from, only),
        None => ChangeFeed::new(table, from, only).open_ended(),
    }))
}

/// A range bound: a version number or a timestamp.
fn bound_of(expr: &SqlExpr, evaluate: &mut dyn FnMut(&SqlExpr) -> Result<i64>) -> Result<AsOf> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse::<u64>().map(AsOf::Version).map_err(|_| {
                DataFusionError::Plan(format!(
                    "a change range bound must be a non-negative version number or a timestamp, not {n}"
                ))
            }),
            _ => crate::time_travel::timestamp_of_sql(expr).map(AsOf::Timestamp),
        },
        SqlExpr::Nested(inner) => bound_of(inner, evaluate),
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            ..
        } => Err(DataFusionError::Plan(format!(
            "a change range bound must be a non-negative version number or a timestamp, not {expr}"
        ))),
        SqlExpr::TypedString(_) => crate::time_travel::timestamp_of_sql(expr).map(AsOf::Timestamp),
        _ => evaluate(expr).map(AsOf::Timestamp),
    }
}

/// `table_changes` & co. belong to tarn's SQL (its parser turns them into a reference to
/// the table); reached from a DataFusion session of the application's own, they say what
/// to use there instead.
#[derive(Debug)]
pub struct ChangeFeedFunction {
    name: &'static str,
}

impl ChangeFeedFunction {
    pub fn all() -> Vec<ChangeFeedFunction> {
        FUNCTIONS
            .into_iter()
            .map(|name| ChangeFeedFunction { name })
            .collect()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl TableFunctionImpl for ChangeFeedFunction {
    fn call_with_args(&self, _args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        Err(DataFusionError::Plan(format!(
            "{}() is part of tarn's SQL (TarnContext::sql); in a DataFusion session of your \
             own, register a ChangeFeed (TarnTable::changes) as a table instead",
            self.name
        )))
    }
}

impl TarnTable {
    /// The change feed of this table from `from` to `to` (both included; `None`: the
    /// loaded version, and a range from the version after it is empty), as a table provider.
    pub async fn changes(&self, from: AsOf, to: Option<AsOf>) -> Result<ChangeFeed> {
        Ok(match to {
            Some(to) => ChangeFeed::new(&self.at_any(to).await?, from, None),
            None => ChangeFeed::new(self, from, None).open_ended(),
        })
    }
}

/// The changes one version made, as [`TarnContext::follow_changes`] yields them.
#[derive(Debug, Clone)]
pub struct VersionChanges {
    pub version: Version,
    pub timestamp_ms: i64,
    /// The changed rows, with the feed's columns; empty for a version that changed no row
    /// (compaction, schema and property changes).
    pub batches: Vec<RecordBatch>,
}

impl TarnContext {
    /// The change feed of the table named `table` from `from` to `to` (both included;
    /// `None`: the newest version), with the columns of `table_changes`.
    pub async fn table_changes(
        &self,
        table: &str,
        from: AsOf,
        to: Option<AsOf>,
    ) -> Result<DataFrame> {
        let feed = self
            .tarn_table_named(table)
            .await?
            .changes(from, to)
            .await?;
        self.session_context().read_table(Arc::new(feed))
    }

    /// Every version of the table named `table` committed after `after`, as it lands, with
    /// the rows it changed: polls with backoff (`poll`), never busy; ends with an error if
    /// the table is dropped or a version expires before it is read. Each item holds one
    /// version's changes in full, so a consumer can checkpoint on version boundaries (for
    /// example by stamping what it writes with [`tarn_core::AppCommit`]).
    pub async fn follow_changes(
        &self,
        table: &str,
        after: Version,
        poll: FollowPoll,
    ) -> Result<impl Stream<Item = Result<VersionChanges>> + use<>> {
        let provider = self.tarn_table_named(table).await?;
        let start = provider.table().at_version(after).await.map_err(to_df)?;
        let session = self.session_context().clone();
        Ok(start.follow(poll).map_err(to_df).and_then(move |table| {
            let version = table.version();
            let timestamp_ms = table.snapshot().timestamp_ms;
            let at = TarnTable::new(table, provider.name(), provider.store_url().clone());
            let feed = ChangeFeed::new(&at, AsOf::Version(version.get()), None);
            let session = session.clone();
            async move {
                let batches = session.read_table(Arc::new(feed))?.collect().await?;
                Ok(VersionChanges {
                    version,
                    timestamp_ms,
                    batches,
                })
            }
        }))
    }
}
