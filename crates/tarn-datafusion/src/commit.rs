//! The commit step of a write: an execution plan node that gathers what the write nodes
//! below it wrote and commits it as one version, when the plan runs.
//!
//! ```text
//! CommitExec ── one Change, one commit ──▶ `count` (and the new version in the schema metadata)
//!   └─ write node(s) ── one fragment per writer: rows, files added, files removed
//! ```
//!
//! Fragments are Arrow rows (added files as an encoded manifest), so they can cross a
//! process boundary (Ballista). Within one process a write node hands its fragment over as
//! it is ([`Handoff`]) and sends only a marker row, so a small INSERT does not encode and
//! decode a manifest on its way to the commit. A retryable conflict (a file this statement
//! rewrites was changed by a concurrent commit) runs the statement again on the newest
//! version when the write knows how ([`Rerun`]): nothing of the failed attempt was
//! committed, so that is safe.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, RecordBatch, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::internal_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricType, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Set, Statement, Value as SqlValue};
use futures::StreamExt;
use tarn_core::transaction::MAX_APP_ID_CHARS;
use tarn_core::{
    AppCommit, Change, CommitOptions, DataFile, Manifest, OverwriteScope, RoaringTreemap,
    StoredHook, Table, TableLocation, UnstoredFile,
};
use tarn_spec::{ChangeType, Operation};
use tokio::sync::mpsc;

use crate::error::{tarn_error, to_df};
use crate::provider::TarnTable;

/// Schema metadata key on a commit's `count` batch: the version the commit made.
pub const VERSION_METADATA_KEY: &str = "tarn.version";
/// Schema metadata key on a commit's `count` batch: the table committed to.
pub const TABLE_METADATA_KEY: &str = "tarn.table";

/// The snapshot summary key of a write planned in one process and committed in another (a
/// Ballista executor): an id fixed at planning, so that a retried commit task finds the
/// commit an earlier attempt made instead of committing the same rows again.
pub(crate) const WRITE_ID_KEY: &str = "write-id";

/// What one writer wrote.
#[derive(Debug, Default)]
pub(crate) struct Fragment {
    /// Rows the statement counts (inserted, or affected by DML).
    pub rows: u64,
    pub added: Vec<DataFile>,
    /// Table-relative paths of the data files the write replaces.
    pub removed: Vec<String>,
    /// Positions the write deletes, per table-relative data file path (merge-on-read).
    pub deletes: BTreeMap<String, RoaringTreemap>,
    /// The changed rows the write recorded for the change feed, by kind of change.
    pub change_log: Vec<(ChangeType, DataFile)>,
    /// Added files not stored yet, for the commit to store with its metadata (only in a
    /// fragment handed over in this process).
    pub unstored: Vec<UnstoredFile>,
}

/// Fragments a write node hands to the commit node of its plan in the same process, as they
/// are. Each write node planned in this process has one; a write node rebuilt in another
/// process (a Ballista executor) has none and sends its fragment as Arrow rows.
///
/// It also keeps the paths of the files the node's writers store, until the commit takes
/// them on. A statement that fails before that deletes them ([`Handoff::discard`]), once its
/// writers are gone: a writer whose task is being stopped may still be storing a file. A
/// cancelled statement (its future dropped, as Ctrl-C in the shell does) leaves the same to
/// a clean-up the session finishes before its next statement ([`DiscardOnDrop`]).
#[derive(Debug)]
pub(crate) struct Handoff {
    fragments: Mutex<Vec<Fragment>>,
    location: TableLocation,
    stored: Arc<Mutex<Vec<String>>>,
    /// Cloned into each writer's hook and dropped with the writer: once this one is taken
    /// too, `writers_gone` answers when the last writer is gone.
    writers: Mutex<Option<mpsc::Sender<()>>>,
    writers_gone: Mutex<Option<mpsc::Receiver<()>>>,
}

/// How long a failed statement waits for its writers' tasks to stop before it deletes what
/// they stored.
const WRITERS_STOP: std::time::Duration = std::time::Duration::from_secs(30);

impl Handoff {
    pub(crate) fn new(table: &Table) -> Self {
        let (writers, writers_gone) = mpsc::channel(1);
        Handoff {
            fragments: Mutex::default(),
            location: table.location().clone(),
            stored: Arc::default(),
            writers: Mutex::new(Some(writers)),
            writers_gone: Mutex::new(Some(writers_gone)),
        }
    }

    fn put(&self, fragment: Fragment) {
        lock(&self.fragments).push(fragment);
    }

    fn take(&self) -> Vec<Fragment> {
        std::mem::take(&mut *lock(&self.fragments))
    }

    /// What a writer of the node tells of each file it stores.
    pub(crate) fn stored_hook(&self) -> StoredHook {
        let stored = Arc::clone(&self.stored);
        // Held by the hook, so dropped with the writer.
        let alive = lock(&self.writers).clone();
        Arc::new(move |path: &str| {
            let _alive = &alive;
            lock(&stored).push(path.to_string());
        })
    }

    /// The commit has taken the stored files on: from here on a failed commit deletes them
    /// itself unless its version may have landed ([`CommitOptions::owns_files`]).
    fn release(&self) {
        lock(&self.stored).clear();
    }

    /// Deletes the stored files no commit took on, once the node's writers are gone.
    async fn discard(&self) {
        drop(lock(&self.writers).take());
        let writers_gone = lock(&self.writers_gone).take();
        if let Some(mut writers_gone) = writers_gone {
            let _ = tokio::time::timeout(WRITERS_STOP, writers_gone.recv()).await;
        }
        let paths = std::mem::take(&mut *lock(&self.stored));
        self.location.remove_all(&paths).await;
    }
}

/// Discards the handoffs of a statement whose commit node is dropped before it finished
/// ([`Handoff::discard`]), in a task the session finishes before its next statement.
struct DiscardOnDrop {
    handoffs: Vec<Arc<Handoff>>,
    cleanups: Option<Arc<Cleanups>>,
}

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        let handoffs = std::mem::take(&mut self.handoffs);
        if handoffs.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cleanup = runtime.spawn(async move {
            for handoff in handoffs {
                handoff.discard().await;
            }
        });
        if let Some(cleanups) = &self.cleanups {
            cleanups.push(cleanup);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clean-ups of a session's cancelled statements, finished before its next statement runs
/// ([`crate::TarnContext::finish_cancelled`]). A session config extension, so that the plan
/// nodes of its statements find it.
#[derive(Debug, Default)]
pub(crate) struct Cleanups(Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Cleanups {
    pub(crate) fn push(&self, cleanup: tokio::task::JoinHandle<()>) {
        lock(&self.0).push(cleanup);
    }

    pub(crate) fn take(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// The handoffs of the write nodes in `plan`, where the commit node above finds the
/// fragments whose marker rows reach it.
fn handoffs(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<Handoff>> {
    let own = if let Some(write) = plan.downcast_ref::<crate::write::WriteExec>() {
        write.handoff()
    } else if let Some(write) = plan.downcast_ref::<crate::dml::write::DmlWriteExec>() {
        write.handoff()
    } else {
        None
    };
    own.cloned()
        .into_iter()
        .chain(plan.children().into_iter().flat_map(handoffs))
        .collect()
}

/// The schema of the rows write nodes produce: one per fragment.
pub(crate) fn fragment_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        // A fragment handed over in this process (see [`Handoff`]) is a row with only this
        // column set.
        Field::new("handed_over", DataType::Boolean, false),
        Field::new("rows", DataType::UInt64, false),
        // The files added, as a manifest of the table's default partition spec.
        Field::new("added", DataType::Binary, true),
    ]))
}

impl Fragment {
    /// The one-row batch a write node produces of the fragment: a marker when the commit
    /// node takes it from `handoff`, the fragment's rows and files otherwise.
    pub fn into_batch(self, table: &Table, handoff: Option<&Handoff>) -> Result<RecordBatch> {
        let Some(handoff) = handoff else {
            return self.to_batch(table);
        };
        handoff.put(self);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![true])),
            Arc::new(UInt64Array::from(vec![0])),
            Arc::new(BinaryArray::from_opt_vec(vec![None])),
        ];
        Ok(RecordBatch::try_new(fragment_schema(), columns)?)
    }

    /// The fragment as a row that can cross a process boundary: what an INSERT's writer
    /// makes, rows and added files. Row-level DML, whose fragments also remove files and
    /// delete rows, is committed in the process that planned it.
    fn to_batch(&self, table: &Table) -> Result<RecordBatch> {
        if !(self.removed.is_empty() && self.deletes.is_empty() && self.change_log.is_empty()) {
            return internal_err!(
                "a fragment that removes files or rows is only handed over in its process"
            );
        }
        if !self.unstored.is_empty() {
            return internal_err!(
                "a fragment with files not stored is only handed over in its process"
            );
        }
        let added = if self.added.is_empty() {
            None
        } else {
            let manifest = Manifest::from_data_files(
                table.metadata().default_spec(),
                table.schema(),
                &self.added,
            )
            .map_err(to_df)?;
            Some(manifest.encode().map_err(to_df)?)
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![false])),
            Arc::new(UInt64Array::from(vec![self.rows])),
            Arc::new(BinaryArray::from_opt_vec(vec![added.as_deref()])),
        ];
        Ok(RecordBatch::try_new(fragment_schema(), columns)?)
    }

    /// Adds the fragments of a batch of write node rows; returns how many of them were
    /// handed over in this process instead (see [`Handoff`]).
    fn absorb(&mut self, batch: &RecordBatch) -> Result<usize> {
        let bad = || DataFusionError::Internal("a write fragment has an unexpected shape".into());
        let handed_over = batch.column(0).as_boolean_opt().ok_or_else(bad)?;
        let rows = batch
            .column(1)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(bad)?;
        let added = batch.column(2).as_binary_opt::<i32>().ok_or_else(bad)?;
        let mut markers = 0;
        for i in 0..batch.num_rows() {
            if handed_over.value(i) {
                markers += 1;
                continue;
            }
            self.rows += rows.value(i);
            if added.is_valid(i) {
                let bytes = added.value(i).to_vec().into();
                let manifest = Manifest::decode("(a write fragment)", bytes).map_err(to_df)?;
                self.added.extend(manifest.data_files());
            }
        }
        Ok(markers)
    }

    /// Adds what another writer of the statement wrote.
    fn merge(&mut self, other: Fragment) {
        self.rows += other.rows;
        self.added.extend(other.added);
        self.removed.extend(other.removed);
        for (path, positions) in other.deletes {
            *self.deletes.entry(path).or_default() |= positions;
        }
        self.change_log.extend(other.change_log);
        self.unstored.extend(other.unstored);
    }
}

/// What the commit makes of the fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitKind {
    Append,
    Overwrite(OverwriteScope),
    /// Row-level DML, copy-on-write: removed files replaced by added ones.
    Rewrite(Operation),
    /// Row-level DML, merge-on-read: rows deleted by position, files added.
    RowDelta(Operation),
}

impl CommitKind {
    /// The statement that makes a commit of this kind, as its user wrote it.
    fn statement(&self) -> &'static str {
        match self {
            CommitKind::Append => "INSERT INTO",
            CommitKind::Overwrite(_) => "INSERT OVERWRITE",
            CommitKind::Rewrite(operation) | CommitKind::RowDelta(operation) => match operation {
                Operation::Delete => "DELETE FROM",
                Operation::Update => "UPDATE",
                Operation::Merge => "MERGE INTO",
                Operation::Overwrite => crate::dml::REPLACING,
                _ => "writing",
            },
        }
    }
}

/// A write that can run again on a newer version of the table after a retryable conflict.
#[async_trait]
pub(crate) trait Rerun: fmt::Debug + Send + Sync {
    /// The write node for the newest version of the table, and the table it is based on.
    async fn plan_again(&self) -> Result<(Arc<dyn ExecutionPlan>, Table)>;
}

/// How many times a statement runs before a conflict is reported. Statements that change
/// the same rows from several sessions each win about one round in as many as there are
/// sessions, and a round on an object store takes as long as the statement's reads and
/// writes: 30 rounds (with backoff up to half a second) keep a hot row writable from a few
/// sessions at once.
const ATTEMPTS: u32 = 30;

/// The commit node; see the module documentation.
#[derive(Debug)]
pub(crate) struct CommitExec {
    input: Arc<dyn ExecutionPlan>,
    table: Table,
    name: String,
    kind: CommitKind,
    summary: BTreeMap<String, String>,
    rerun: Option<Arc<dyn Rerun>>,
    /// Where the table's files are registered in the session, when an append is followed by
    /// auto compaction (`write.auto-compact.min-files`).
    auto_compact: Option<ObjectStoreUrl>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl CommitExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        table: Table,
        name: String,
        kind: CommitKind,
        summary: BTreeMap<String, String>,
        rerun: Option<Arc<dyn Rerun>>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        CommitExec {
            input,
            table,
            name,
            kind,
            summary,
            rerun,
            auto_compact: None,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// After its commit, an append compacts the small files of the partitions it wrote
    /// to when the table asks for it; the scans that does go through `store_url`.
    pub fn with_auto_compaction(mut self, store_url: ObjectStoreUrl) -> Self {
        self.auto_compact = Some(store_url);
        self
    }

    /// What a process that did not plan the commit needs to run it. `None` for a
    /// row-level DML commit, which re-plans itself on a conflict in the planning process.
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn portable(&self) -> Option<PortableCommit<'_>> {
        if self.rerun.is_some()
            || !matches!(self.kind, CommitKind::Append | CommitKind::Overwrite(_))
        {
            return None;
        }
        Some(PortableCommit {
            table: &self.table,
            name: &self.name,
            kind: self.kind,
            summary: &self.summary,
            auto_compact: self.auto_compact.is_some(),
        })
    }

    /// The write node below and the table it writes; for re-planning.
    pub fn parts(&self) -> (&Arc<dyn ExecutionPlan>, &Table) {
        (&self.input, &self.table)
    }
}

impl DisplayAs for CommitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            CommitKind::Append => "append".to_string(),
            CommitKind::Overwrite(OverwriteScope::Table) => "overwrite".to_string(),
            CommitKind::Overwrite(OverwriteScope::Partitions) => "overwrite partitions".to_string(),
            CommitKind::Rewrite(op) => format!("{} (copy-on-write)", op.as_str()),
            CommitKind::RowDelta(op) => format!("{} (merge-on-read)", op.as_str()),
        };
        write!(
            f,
            "TarnCommitExec: table={} operation={what} base_version={}",
            self.name,
            self.table.version()
        )
    }
}

impl ExecutionPlan for CommitExec {
    fn name(&self) -> &str {
        "TarnCommitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("TarnCommitExec takes one input".into()))?;
        let mut exec = CommitExec::new(
            input,
            self.table.clone(),
            self.name.clone(),
            self.kind,
            self.summary.clone(),
            self.rerun.clone(),
        );
        exec.auto_compact = self.auto_compact.clone();
        Ok(Arc::new(exec))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("TarnCommitExec has one partition, not {partition}");
        }
        let commit = Commit {
            input: self.input.clone(),
            table: self.table.clone(),
            name: self.name.clone(),
            kind: self.kind,
            summary: self.summary.clone(),
            rerun: self.rerun.clone(),
            auto_compact: self.auto_compact.clone(),
            metrics: CommitMetrics::new(&self.metrics),
        };
        let stream = futures::stream::once(commit.run(context));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// What EXPLAIN ANALYZE shows of a commit, which it runs: the statement's rows, the version
/// it made, how many times it ran (more than once after a conflict), and the files it
/// added, replaced and deleted rows from.
#[derive(Debug)]
struct CommitMetrics {
    set: ExecutionPlanMetricsSet,
    rows: Count,
    attempts: Count,
    files_added: Count,
    files_removed: Count,
    files_with_deletes: Count,
}

impl CommitMetrics {
    fn new(set: &ExecutionPlanMetricsSet) -> Self {
        let summary = || MetricBuilder::new(set).with_type(MetricType::Summary);
        CommitMetrics {
            set: set.clone(),
            rows: summary().output_rows(0),
            attempts: summary().global_counter("attempts"),
            files_added: MetricBuilder::new(set).global_counter("files_added"),
            files_removed: MetricBuilder::new(set).global_counter("files_removed"),
            files_with_deletes: MetricBuilder::new(set).global_counter("files_with_deletes"),
        }
    }

    /// The version the statement made; a statement that changed nothing shows none.
    fn committed(&self, version: u64) {
        MetricBuilder::new(&self.set)
            .with_type(MetricType::Summary)
            .global_gauge("committed_version")
            .set(version as usize);
    }
}

/// An append or overwrite commit as another process runs it; see [`CommitExec::portable`].
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
pub(crate) struct PortableCommit<'a> {
    pub table: &'a Table,
    pub name: &'a str,
    pub kind: CommitKind,
    pub summary: &'a BTreeMap<String, String>,
    /// Whether the commit compacts the partitions it wrote to afterwards.
    pub auto_compact: bool,
}

/// The one-row result of a write: rows written, with the table and the committed version
/// in the schema's metadata.
fn count_batch(name: &str, rows: u64, version: Option<u64>) -> Result<RecordBatch> {
    let mut metadata = HashMap::from([(TABLE_METADATA_KEY.to_string(), name.to_string())]);
    if let Some(version) = version {
        metadata.insert(VERSION_METADATA_KEY.to_string(), version.to_string());
    }
    let schema = Arc::new(count_schema().as_ref().clone().with_metadata(metadata));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    )?)
}

/// The statement planned again on the newest version. Expiry may remove the version it
/// loads before its manifests are read (a version committed before expiry's cutoff, newest
/// a moment ago); planning once more loads the one after it, as a statement's first
/// planning does.
async fn plan_again(rerun: &dyn Rerun) -> Result<(Arc<dyn ExecutionPlan>, Table)> {
    let mut attempts = 0;
    loop {
        match rerun.plan_again().await {
            Err(e) if attempts < 3 && crate::error::is_missing_file(&e) => attempts += 1,
            planned => return planned,
        }
    }
}

/// The snapshot a write with `write_id` planned on `base` committed, if an earlier attempt
/// of it did.
async fn committed_as(base: &Table, write_id: &str) -> Result<Option<tarn_spec::Snapshot>> {
    let newest = base.reload().await.map_err(to_df)?;
    if newest.version() == base.version() {
        return Ok(None);
    }
    let after = newest
        .snapshots_after(base.version())
        .await
        .map_err(to_df)?;
    Ok(after
        .into_iter()
        .find(|s| s.summary.extra.get(WRITE_ID_KEY).map(String::as_str) == Some(write_id)))
}

/// One run of a commit node.
struct Commit {
    input: Arc<dyn ExecutionPlan>,
    table: Table,
    name: String,
    kind: CommitKind,
    summary: BTreeMap<String, String>,
    rerun: Option<Arc<dyn Rerun>>,
    auto_compact: Option<ObjectStoreUrl>,
    metrics: CommitMetrics,
}

impl Commit {
    async fn run(self, context: Arc<TaskContext>) -> Result<RecordBatch> {
        let backoff = tarn_core::RetryPolicy {
            min_backoff: std::time::Duration::from_millis(5),
            ..Default::default()
        };
        let (mut input, mut table) = (self.input.clone(), self.table.clone());
        if let Some(write_id) = self.summary.get(WRITE_ID_KEY)
            && let Some(snapshot) = committed_as(&table, write_id).await?
        {
            self.metrics.rows.add(snapshot.summary.added_rows as usize);
            self.metrics.committed(snapshot.version.get());
            return count_batch(
                &self.name,
                snapshot.summary.added_rows,
                Some(snapshot.version.get()),
            );
        }
        // A stamp already committed is refused before the statement writes anything.
        let app = app_commit(&context)?;
        if let Some(app) = &app {
            app.check(&table).map_err(to_df)?;
        }
        for attempt in 1.. {
            self.metrics.attempts.add(1);
            match self.once(&input, &table, &context, app.as_ref()).await {
                // A statement whose version expired under it (snapshot expiry ran with a
                // retention shorter than the statement) may have lost files it was reading;
                // running it again on the newest version is as correct as a conflict's re-run.
                Err(e)
                    if attempt < ATTEMPTS
                        && (is_retryable_conflict(&e)
                            || table.is_expired().await.unwrap_or(false)) =>
                {
                    let Some(rerun) = &self.rerun else {
                        return Err(e);
                    };
                    tokio::time::sleep(backoff.backoff(attempt)).await;
                    (input, table) = plan_again(rerun.as_ref()).await?;
                }
                outcome => return outcome,
            }
        }
        unreachable!("the loop returns")
    }

    async fn once(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        table: &Table,
        context: &Arc<TaskContext>,
        app: Option<&AppCommit>,
    ) -> Result<RecordBatch> {
        let handoffs = handoffs(input);
        let mut on_drop = DiscardOnDrop {
            handoffs: handoffs.clone(),
            cleanups: context.session_config().get_extension::<Cleanups>(),
        };
        let outcome = self
            .write_and_commit(input, table, context, app, &handoffs)
            .await;
        // What the writers of a failed statement stored is not part of the table. (A
        // statement that succeeded handed every file it stored to its commit.)
        if outcome.is_err() {
            for handoff in &handoffs {
                handoff.discard().await;
            }
        }
        on_drop.handoffs.clear();
        let committed = outcome?;
        self.metrics.rows.add(committed.rows as usize);
        if let Some(version) = committed.version {
            self.metrics.committed(version);
        }
        if let (Some(store_url), Some((table, added))) = (&self.auto_compact, &committed.appended) {
            self.compact_after(store_url, table, added, context).await;
        }
        count_batch(&self.name, committed.rows, committed.version)
    }

    /// Runs the write nodes of `input` and commits what they wrote.
    async fn write_and_commit(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        table: &Table,
        context: &Arc<TaskContext>,
        app: Option<&AppCommit>,
        handoffs: &[Arc<Handoff>],
    ) -> Result<Committed> {
        let mut fragment = Fragment::default();
        let mut markers = 0;
        let mut sent_as_rows = 0;
        for partition in 0..input.output_partitioning().partition_count() {
            let mut stream = input.execute(partition, context.clone())?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| self.refused_rows(e))?;
                let handed_over = fragment.absorb(&batch)?;
                markers += handed_over;
                sent_as_rows += batch.num_rows() - handed_over;
            }
        }
        let handed_over: Vec<Fragment> = handoffs.iter().flat_map(|h| h.take()).collect();
        if handed_over.len() != markers {
            return internal_err!(
                "{} write fragments were handed over for {markers} marker rows",
                handed_over.len()
            );
        }
        for part in handed_over {
            fragment.merge(part);
        }
        // Files written in another process are that process's to clean up.
        let owner = (sent_as_rows == 0).then_some(handoffs);
        self.commit(table, fragment, app, owner).await
    }

    /// A write refused because of the rows it was given (a NULL in a NOT NULL column,
    /// a value of the wrong type, a decimal with more digits than its column holds), told
    /// as the statement's error: the user sees which statement and table, not only the
    /// writer's complaint.
    fn refused_rows(&self, e: DataFusionError) -> DataFusionError {
        let reason = match (tarn_error(&e), e.find_root()) {
            (Some(tarn_core::Error::SchemaMismatch { reason }), _) => reason.clone(),
            (_, DataFusionError::ArrowError(error, _)) => match error.as_ref() {
                ArrowError::CastError(_) => crate::error::message_of(&e),
                // arrow's check of a value cast to its column's decimal type.
                ArrowError::InvalidArgumentError(message)
                    if message.contains("too large to store in a Decimal") =>
                {
                    format!(
                        "a value has more digits than its column holds ({}); round it, or \
                         widen the column with ALTER TABLE ... ALTER COLUMN ... TYPE \
                         DECIMAL(p, s)",
                        crate::error::message_of(&e)
                    )
                }
                _ => return e,
            },
            _ => return e,
        };
        if self.table.is_staged() {
            return DataFusionError::Execution(format!(
                "CREATE TABLE {} AS: {reason}. No table was created",
                self.name
            ));
        }
        if self.table.is_replacement() {
            return DataFusionError::Execution(format!(
                "CREATE OR REPLACE TABLE {} AS: {reason}. The table was not changed",
                self.name
            ));
        }
        DataFusionError::Execution(format!(
            "{} {}: {reason}. Nothing was changed",
            self.kind.statement(),
            self.name
        ))
    }

    /// The core's error about the table gone from under the commit, naming the table as
    /// the statement did rather than by its location.
    fn named(&self, e: tarn_core::Error) -> tarn_core::Error {
        let table = self.name.clone();
        match e {
            tarn_core::Error::TableDropped { .. } => tarn_core::Error::TableDropped { table },
            tarn_core::Error::TableGone { .. } => tarn_core::Error::TableGone { table },
            // A CREATE TABLE AS whose name another statement took while it wrote its rows.
            tarn_core::Error::AlreadyExists { what, .. } => {
                tarn_core::Error::AlreadyExists { what, name: table }
            }
            e => e,
        }
    }

    /// Auto compaction after an append landed as `table`'s version (see
    /// [`tarn_core::maintenance::auto_compaction_files`]). The append has committed whatever
    /// happens here, so a compaction that fails or loses to a concurrent commit is dropped:
    /// the files it wrote are removed, and a later append or OPTIMIZE compacts them.
    async fn compact_after(
        &self,
        store_url: &ObjectStoreUrl,
        table: &Table,
        added: &[DataFile],
        context: &Arc<TaskContext>,
    ) {
        let Ok(Some(min_files)) =
            tarn_core::properties::auto_compact_min_files(table.metadata().properties())
        else {
            return;
        };
        let Ok(files) =
            tarn_core::maintenance::auto_compaction_files(table, added, min_files).await
        else {
            return;
        };
        let provider = TarnTable::new(table.clone(), self.name.clone(), store_url.clone());
        let _ = crate::maintenance::rewrite_files(
            &provider,
            table,
            files,
            &[],
            context.clone(),
            "auto-compact",
        )
        .await;
    }

    /// Commits `fragment`. With `handoffs`, the fragment's files were all written for it
    /// in this process, and the commit takes them on from the handoffs: failing, it deletes
    /// them unless its version may have landed.
    async fn commit(
        &self,
        table: &Table,
        fragment: Fragment,
        app: Option<&AppCommit>,
        handoffs: Option<&[Arc<Handoff>]>,
    ) -> Result<Committed> {
        let Fragment {
            rows,
            mut added,
            removed,
            deletes,
            change_log,
            unstored,
        } = fragment;
        let files_with_deletes = deletes.len();
        // Writers finish in any order: list the files by partition (then in the order each
        // was written), so a statement's manifest does not depend on which writer was faster.
        added.sort_by(|a, b| partition_dir(&a.path).cmp(partition_dir(&b.path)));
        // A statement that changed nothing commits nothing; an overwrite of the table with no
        // rows still replaces its data (a dynamic one replaces only the partitions it wrote,
        // so with no rows it changes nothing).
        let unchanged = added.is_empty() && removed.is_empty() && deletes.is_empty();
        if unchanged && !matches!(self.kind, CommitKind::Overwrite(OverwriteScope::Table)) {
            return Ok(Committed {
                rows,
                version: None,
                appended: None,
            });
        }
        // Kept only for a table that asks for auto compaction: most appends need not copy
        // their file list.
        let compacts = self.auto_compact.is_some()
            && matches!(
                tarn_core::properties::auto_compact_min_files(table.metadata().properties()),
                Ok(Some(_))
            );
        let appended_files = match self.kind {
            CommitKind::Append if compacts => Some(added.clone()),
            _ => None,
        };
        let change = match self.kind {
            CommitKind::Append => Change::Append { files: added },
            CommitKind::Overwrite(scope) => Change::Overwrite {
                files: added,
                scope,
            },
            CommitKind::Rewrite(operation) => {
                let paths: HashSet<String> = removed.into_iter().collect();
                let removed = files_with_paths(table, &paths).await?;
                if removed.len() != paths.len() {
                    return Err(DataFusionError::Internal(format!(
                        "{} of the files this statement rewrites are not in version {} of {}",
                        paths.len() - removed.len(),
                        table.version(),
                        self.name
                    )));
                }
                Change::Rewrite {
                    removed,
                    added,
                    operation,
                }
            }
            CommitKind::RowDelta(operation) => {
                let paths: HashSet<String> = deletes.keys().cloned().collect();
                let files = files_with_paths(table, &paths).await?;
                if files.len() != paths.len() {
                    return Err(DataFusionError::Internal(format!(
                        "{} of the files this statement deletes from are not in version {} of {}",
                        paths.len() - files.len(),
                        table.version(),
                        self.name
                    )));
                }
                let mut deletes = deletes;
                Change::RowDelta {
                    deletes: files
                        .into_iter()
                        .map(|f| {
                            let positions = deletes.remove(&f.path).unwrap_or_default();
                            (f, positions)
                        })
                        .collect(),
                    added,
                    operation,
                }
            }
        };
        let mut summary = self.summary.clone();
        if matches!(self.kind, CommitKind::Rewrite(_) | CommitKind::RowDelta(_)) {
            summary.insert("affected-rows".to_string(), rows.to_string());
        }
        let options = CommitOptions {
            summary,
            app: app.cloned(),
            change_log,
            unstored,
            owns_files: handoffs.is_some(),
        };
        handoffs.into_iter().flatten().for_each(|h| h.release());
        let committed = table
            .commit_with(change, options)
            .await
            .map_err(|e| to_df(self.named(e)))?;
        let made = &committed.snapshot().summary;
        self.metrics.files_added.add(made.added_files as usize);
        self.metrics.files_removed.add(made.removed_files as usize);
        self.metrics.files_with_deletes.add(files_with_deletes);
        Ok(Committed {
            rows,
            version: Some(committed.version().get()),
            appended: appended_files.map(|files| (committed, files)),
        })
    }
}

struct Committed {
    rows: u64,
    version: Option<u64>,
    /// For auto compaction: the version an append made, and the files it added.
    appended: Option<(Table, Vec<DataFile>)>,
}

/// The data files of `table`'s version with these table-relative paths, in the order its
/// manifests list them.
pub(crate) async fn files_with_paths(
    table: &Table,
    paths: &HashSet<String>,
) -> Result<Vec<DataFile>> {
    // A MERGE that only inserts rewrites or deletes from no file: no manifest to walk.
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let plan = table
        .plan_files(&tarn_core::Predicate::True)
        .await
        .map_err(to_df)?;
    Ok(plan
        .manifests
        .iter()
        .flat_map(|m| {
            m.paths()
                .iter()
                .enumerate()
                .filter(|(_, p)| p.is_some_and(|p| paths.contains(p)))
                .map(|(i, _)| m.data_file(i))
                .collect::<Vec<_>>()
        })
        .collect())
}

pub(crate) fn is_retryable_conflict(e: &DataFusionError) -> bool {
    tarn_error(e).is_some_and(|t| t.kind() == tarn_core::ErrorKind::Conflict { retryable: true })
}

/// The directory of a data file's path: its partition, for data files.
fn partition_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// tarn's session settings, set with `SET tarn.<name> = value` and shown by `SHOW
/// tarn.<name>`. (Written out rather than with DataFusion's `extensions_options!`, whose
/// entries lack the `tarn.` prefix, so that SHOW and `information_schema.df_settings` would
/// know them only as `app_id`, ...)
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TarnOptions {
    /// The application stamping this session's commits, for exactly-once writes (see
    /// `tarn_core::AppCommit`); used with `app_sequence`.
    pub app_id: Option<String>,
    /// The sequence number this session's next commits carry; a commit whose number is not
    /// greater than the application's last committed one is refused.
    pub app_sequence: Option<u64>,
    /// What this session's INSERT OVERWRITE replaces, over the tables'
    /// `write.overwrite-mode`: `static` (the whole table) or `dynamic` (the partitions the
    /// new rows fall in), as Spark's `spark.sql.sources.partitionOverwriteMode`.
    pub overwrite_mode: Option<String>,
}

impl datafusion::config::ExtensionOptions for TarnOptions {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn datafusion::config::ExtensionOptions> {
        Box::new(self.clone())
    }

    /// `key` without the `tarn.` prefix.
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        use datafusion::config::ConfigField;
        match key {
            "app_id" => self.app_id.set("", value),
            "app_sequence" => self.app_sequence.set("", value),
            "overwrite_mode" => self.overwrite_mode.set("", value),
            _ => Err(DataFusionError::Configuration(format!(
                "tarn has no setting tarn.{key}; its settings are tarn.app_id, \
                 tarn.app_sequence and tarn.overwrite_mode"
            ))),
        }
    }

    fn entries(&self) -> Vec<datafusion::config::ConfigEntry> {
        let entry = |key: &str, value: Option<String>, description: &'static str| {
            datafusion::config::ConfigEntry {
                key: format!("tarn.{key}"),
                value,
                description,
            }
        };
        vec![
            entry(
                "app_id",
                self.app_id.clone(),
                "the application stamping this session's commits, for exactly-once writes",
            ),
            entry(
                "app_sequence",
                self.app_sequence.map(|n| n.to_string()),
                "the batch number this session's next commits carry",
            ),
            entry(
                "overwrite_mode",
                self.overwrite_mode.clone(),
                "what INSERT OVERWRITE replaces, over the tables' write.overwrite-mode: \
                 static or dynamic",
            ),
        ]
    }
}

impl TarnOptions {
    /// The overwrite scope this session sets for INSERT OVERWRITE, if it sets one.
    pub(crate) fn overwrite_scope(
        config: &datafusion::config::ConfigOptions,
    ) -> Option<OverwriteScope> {
        let options = config.extensions.get::<TarnOptions>()?;
        OverwriteScope::from_mode(options.overwrite_mode.as_deref()?)
    }
}

impl datafusion::common::config::ConfigExtension for TarnOptions {
    const PREFIX: &'static str = "tarn";
}

/// Refuses `SET tarn.app_sequence` / `SET tarn.app_id` to a value a commit could not carry,
/// saying what the setting takes (DataFusion would answer "invalid digit found in string",
/// and an empty id would pass until the first commit).
pub(crate) fn check_setting(statement: &Statement) -> Result<()> {
    let Statement::Set(Set::SingleAssignment {
        variable, values, ..
    }) = statement
    else {
        return Ok(());
    };
    let [value] = values.as_slice() else {
        return Ok(());
    };
    let text = match value {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    match variable.to_string().to_ascii_lowercase().as_str() {
        "tarn.app_sequence" if text.parse::<u64>().is_err() => Err(DataFusionError::Plan(format!(
            "tarn.app_sequence takes a batch number, a whole number from 0 to {}, not {value}",
            u64::MAX
        ))),
        "tarn.app_id" if !AppCommit::is_valid_id(&text) => Err(DataFusionError::Plan(format!(
            "tarn.app_id takes the application's name, of 1 to {MAX_APP_ID_CHARS} \
                 characters; it was given {} characters",
            text.chars().count()
        ))),
        "tarn.overwrite_mode" if OverwriteScope::from_mode(&text).is_none() => {
            Err(DataFusionError::Plan(format!(
                "tarn.overwrite_mode is 'static' (INSERT OVERWRITE replaces the whole table) or \
                 'dynamic' (only the partitions the new rows fall in), not {value}"
            )))
        }
        _ => Ok(()),
    }
}

/// The application stamp a session's settings give its commits.
fn app_commit(context: &TaskContext) -> Result<Option<AppCommit>> {
    let Some(options) = context
        .session_config()
        .options()
        .extensions
        .get::<TarnOptions>()
    else {
        return Ok(None);
    };
    match (&options.app_id, options.app_sequence) {
        (None, None) => Ok(None),
        (Some(app_id), Some(sequence)) => Ok(Some(AppCommit {
            app_id: app_id.clone(),
            sequence,
        })),
        _ => Err(DataFusionError::Plan(
            "exactly-once writes take both tarn.app_id and tarn.app_sequence; set the other \
             one too (or RESET both)"
                .into(),
        )),
    }
}
