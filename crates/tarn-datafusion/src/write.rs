//! The write step of INSERT, INSERT OVERWRITE and CREATE TABLE AS: one writer per input
//! partition, so a large load encodes Parquet on every core; the commit node above turns
//! what they wrote into one version.
//!
//! ```text
//! TarnCommitExec            one Append or Overwrite commit
//!   CoalescePartitionsExec  (added by DataFusion: the commit takes one input partition)
//!     TarnWriteExec         partition i: rows ─▶ data files of the table's spec ─▶ one fragment
//!       SortExec            (partitioned tables with `write.fanout.enabled` = false: each
//!                            writer's rows on the partition key, so it keeps one file open;
//!                            and the table's sort order, if it has one)
//!         RepartitionExec   (partitioned tables: hashed on the partition key, so each table
//!                            partition is written by one writer, into one file per target size;
//!                            none when `write.distribution-mode` is `none`)
//!           input           N partitions
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema as ArrowSchema};
use datafusion::common::internal_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::ColumnarValue;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, PhysicalSortExpr,
};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use futures::StreamExt;
use tarn_core::properties::DistributionMode;
use tarn_core::{DataFileWriter, OverwriteScope, Table, WriterOptions, partition_keys};
use tarn_spec::Transform;

use crate::commit::{CommitExec, CommitKind, Fragment, Handoff, fragment_schema};
use crate::error::to_df;

/// Whether a write may hash its rows across writers with DataFusion's `RepartitionExec`
/// under `pool`. Under a bounded pool, RepartitionExec 55.2 spills, and its spill pool can
/// deadlock (two open spill files, the reader waiting on the older one: apache/datafusion
/// #24883, fixed after 55.2), so bounded sessions keep every writer on its own input
/// partition; the writers' own memory gate still bounds them.
pub(crate) fn may_hash_across_writers(pool: &dyn MemoryPool) -> bool {
    matches!(pool.memory_limit(), MemoryLimit::Infinite)
}

/// Whether the writers of `table` sort their rows on its partition key before writing them:
/// when its [`tarn_core::properties::FANOUT_PROPERTY`] is `false`.
pub(crate) fn clusters(table: &Table) -> Result<bool> {
    let fanout = tarn_core::properties::fanout(table.metadata().properties()).map_err(to_df)?;
    Ok(!fanout)
}

/// The order a writer's rows are sorted in: on the partition key `cluster` first (see
/// [`clusters`]), then in `ordering`; `None` when neither is given.
pub(crate) fn write_ordering(
    cluster: Option<&[Arc<dyn PhysicalExpr>]>,
    ordering: Option<&LexOrdering>,
) -> Option<LexOrdering> {
    let partition = cluster
        .into_iter()
        .flatten()
        .map(|key| PhysicalSortExpr::new_default(Arc::clone(key)));
    let ordering = ordering.into_iter().flat_map(|o| o.iter().cloned());
    LexOrdering::new(partition.chain(ordering))
}

/// What an INSERT of `op` into `table` commits: an append, or an overwrite of what the
/// session's `tarn.overwrite_mode` (`session`) says, else of what the table's
/// `write.overwrite-mode` says.
pub(crate) fn insert_kind(
    op: InsertOp,
    table: &Table,
    session: Option<OverwriteScope>,
) -> Result<CommitKind> {
    match op {
        InsertOp::Append => Ok(CommitKind::Append),
        InsertOp::Overwrite => Ok(CommitKind::Overwrite(match session {
            Some(scope) => scope,
            None => {
                OverwriteScope::from_properties(table.metadata().properties()).map_err(to_df)?
            }
        })),
        InsertOp::Replace => Err(DataFusionError::NotImplemented(
            "REPLACE INTO is not supported on tarn tables; use MERGE INTO".into(),
        )),
    }
}

/// The plan of an INSERT into `table` (named `name` in messages) that commits as `kind`:
/// writers under a commit. `layout` says what the session allows: a partitioned table's rows
/// are hashed on the partition key across the writers (see [`may_hash_across_writers`])
/// unless the table's `write.distribution-mode` is `none`.
pub(crate) fn insert_plan(
    input: Arc<dyn ExecutionPlan>,
    table: Table,
    name: String,
    kind: CommitKind,
    layout: Layout,
    store_url: ObjectStoreUrl,
    write_id: Option<String>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let ordering = table_ordering(&input.schema(), &table)?;
    let hash = layout.hash
        && DistributionMode::from_properties(table.metadata().properties()).map_err(to_df)?
            == DistributionMode::Hash;
    let key = partition_key(&input.schema(), &table);
    let write = Arc::new(WriteExec::new(
        input,
        table.clone(),
        name.clone(),
        ordering,
        key,
        Layout { hash, ..layout },
        Some(Arc::new(Handoff::new(&table))),
    ));
    let statement = match table.is_replacement() {
        true => REPLACE_STATEMENT,
        false => "insert",
    };
    let mut summary = BTreeMap::from([("statement".to_string(), statement.to_string())]);
    if let Some(id) = write_id {
        summary.insert(crate::commit::WRITE_ID_KEY.to_string(), id);
    }
    Ok(Arc::new(
        CommitExec::new(write, table, name, kind, summary, None).with_auto_compaction(store_url),
    ))
}

/// The `statement` a CREATE OR REPLACE TABLE records in its snapshot's summary.
pub(crate) const REPLACE_STATEMENT: &str = "replace-table";

/// The table's `write.sort-order` over `schema`, when it has one.
pub(crate) fn table_ordering(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    table: &Table,
) -> Result<Option<LexOrdering>> {
    let columns =
        tarn_core::properties::sort_order(table.metadata().properties()).map_err(to_df)?;
    let mut keys = Vec::new();
    for column in &columns {
        let index = schema
            .fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(column))
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "the table's {} names '{column}', which is not a column; change it with ALTER TABLE ... SET TBLPROPERTIES",
                    tarn_core::properties::SORT_ORDER_PROPERTY
                ))
            })?;
        keys.push(PhysicalSortExpr::new_default(Arc::new(Column::new(
            schema.field(index).name(),
            index,
        ))));
    }
    Ok(LexOrdering::new(keys))
}

/// A writer of new data files for `table`, one of `writers` running at once in a
/// statement: it holds at most its share of the table's `write.buffer-bytes`, counted
/// against the session's memory pool, and writes rows out early rather than exceed either.
/// The files it stores are kept in `handoff`, when given, until a commit takes them on.
pub(crate) fn writer_for(
    table: &Table,
    context: &TaskContext,
    writers: usize,
    handoff: Option<&Handoff>,
) -> Result<DataFileWriter> {
    let options = WriterOptions::from_properties(table.metadata().properties()).map_err(to_df)?;
    let reservation = MemoryConsumer::new("TarnWriter").register(context.memory_pool());
    let writer = table
        .writer()
        .map_err(to_df)?
        .with_buffer_bytes(options.buffer_bytes / writers.max(1))
        .with_memory_gate(Box::new(move |bytes| reservation.try_resize(bytes).is_ok()));
    Ok(match handoff {
        Some(handoff) => writer.on_stored(handoff.stored_hook()),
        None => writer,
    })
}

/// One field of a table's partition key, computed from the rows to be written: the
/// transform of the source column, cast to the column's table type first.
#[derive(Debug)]
struct PartitionKeyExpr {
    source: Arc<dyn PhysicalExpr>,
    source_type: DataType,
    transform: Transform,
}

impl PartialEq for PartitionKeyExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source.as_ref() == other.source.as_ref()
            && self.source_type == other.source_type
            && self.transform == other.transform
    }
}

impl Eq for PartitionKeyExpr {}

impl std::hash::Hash for PartitionKeyExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.as_ref().hash(state);
        self.source_type.hash(state);
        self.transform.hash(state);
    }
}

impl fmt::Display for PartitionKeyExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.transform, self.source)
    }
}

impl PhysicalExpr for PartitionKeyExpr {
    fn data_type(&self, _input_schema: &ArrowSchema) -> Result<DataType> {
        let empty = datafusion::arrow::array::new_empty_array(&self.source_type);
        Ok(partition_keys(self.transform, &empty)
            .map_err(to_df)?
            .data_type()
            .clone())
    }

    fn nullable(&self, _input_schema: &ArrowSchema) -> Result<bool> {
        Ok(true)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let source = self.source.evaluate(batch)?.into_array(batch.num_rows())?;
        let source = if source.data_type() == &self.source_type {
            source
        } else {
            datafusion::arrow::compute::cast(&source, &self.source_type)?
        };
        Ok(ColumnarValue::Array(
            partition_keys(self.transform, &source).map_err(to_df)?,
        ))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.source]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let [source] = children.try_into().map_err(|_| {
            DataFusionError::Internal("a partition key has one source column".into())
        })?;
        Ok(Arc::new(PartitionKeyExpr {
            source,
            source_type: self.source_type.clone(),
            transform: self.transform,
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The table's partition key over the columns of `schema` (matched by name, as the writer
/// matches them), when the table is partitioned and every source column is there.
pub(crate) fn partition_key(
    schema: &ArrowSchema,
    table: &Table,
) -> Option<Vec<Arc<dyn PhysicalExpr>>> {
    let metadata = table.metadata();
    let columns = metadata.current_schema();
    let spec = metadata.default_spec();
    if spec.is_unpartitioned() {
        return None;
    }
    spec.fields()
        .iter()
        .map(|pf| {
            let field = columns.fields().iter().find(|f| f.id == pf.source_id)?;
            let index = schema
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(&field.name))?;
            Some(Arc::new(PartitionKeyExpr {
                source: Arc::new(Column::new(schema.field(index).name(), index)),
                source_type: tarn_core::arrow_convert::arrow_type(field.primitive()?),
                transform: pf.transform,
            }) as Arc<dyn PhysicalExpr>)
        })
        .collect()
}

/// How a write's rows reach its writers, when the table is partitioned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Hashed on the partition key across the writers.
    pub hash: bool,
    /// Sorted on the partition key within each writer (see [`clusters`]).
    pub cluster: bool,
}

/// Writes each input partition as data files; see the module documentation.
#[derive(Debug)]
pub(crate) struct WriteExec {
    input: Arc<dyn ExecutionPlan>,
    table: Table,
    name: String,
    /// The table's partition key over the input, when the table is partitioned and the input
    /// has its source columns.
    partition_key: Option<Vec<Arc<dyn PhysicalExpr>>>,
    /// What is done with the partition key, when there is one.
    layout: Layout,
    /// The table's sort order: the rows are written in it, by one writer, so each file
    /// covers a narrow range of it (what min/max pruning needs).
    ordering: Option<LexOrdering>,
    /// Where the fragments go when the commit node runs in this process: `None` for a
    /// write node rebuilt in another one.
    handoff: Option<Arc<Handoff>>,
    properties: Arc<PlanProperties>,
}

impl WriteExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        table: Table,
        name: String,
        ordering: Option<LexOrdering>,
        partition_key: Option<Vec<Arc<dyn PhysicalExpr>>>,
        layout: Layout,
        handoff: Option<Arc<Handoff>>,
    ) -> Self {
        let partitions = input.output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(fragment_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        WriteExec {
            partition_key,
            layout,
            input,
            table,
            name,
            ordering,
            handoff,
            properties,
        }
    }

    pub(crate) fn handoff(&self) -> Option<&Arc<Handoff>> {
        self.handoff.as_ref()
    }

    /// The partition key, when the input is hashed on it.
    fn hash_key(&self) -> Option<&Vec<Arc<dyn PhysicalExpr>>> {
        self.partition_key.as_ref().filter(|_| self.layout.hash)
    }

    /// The partition key, when each writer's rows are sorted on it.
    fn cluster_key(&self) -> Option<&Vec<Arc<dyn PhysicalExpr>>> {
        self.partition_key.as_ref().filter(|_| self.layout.cluster)
    }
}

impl WriteExec {
    /// A writer of `table` over `input`, as [`insert_plan`] makes one, in a process that
    /// did not plan it: hashed on the partition key when `keyed`, in the table's sort order
    /// when `ordered`, its fragments sent as Arrow rows. Its rows are not sorted on the
    /// partition key: that expression is tarn's own, and plans that cross processes carry
    /// only DataFusion's.
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn rebuilt(
        input: Arc<dyn ExecutionPlan>,
        table: Table,
        name: String,
        ordered: bool,
        keyed: bool,
    ) -> Result<Self> {
        let ordering = if ordered {
            table_ordering(&input.schema(), &table)?
        } else {
            None
        };
        let key = partition_key(&input.schema(), &table);
        let layout = Layout {
            hash: keyed,
            cluster: false,
        };
        Ok(WriteExec::new(
            input, table, name, ordering, key, layout, None,
        ))
    }

    /// The table, its name, and whether the rows are written in the table's sort order
    /// and hashed on its partition key: what [`WriteExec::rebuilt`] takes.
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (&Table, &str, bool, bool) {
        (
            &self.table,
            &self.name,
            self.ordering.is_some(),
            self.hash_key().is_some(),
        )
    }
}

impl DisplayAs for WriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TarnWriteExec: table={}", self.name)
    }
}

impl ExecutionPlan for WriteExec {
    fn name(&self) -> &str {
        "TarnWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        match (&self.ordering, self.hash_key()) {
            (Some(_), _) => vec![Distribution::SinglePartition],
            (None, Some(key)) => vec![Distribution::KeyPartitioned(key.clone())],
            (None, None) => vec![Distribution::UnspecifiedDistribution],
        }
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let ordering = write_ordering(
            self.cluster_key().map(Vec::as_slice),
            self.ordering.as_ref(),
        );
        vec![ordering.map(|o| OrderingRequirements::new(LexRequirement::from(o)))]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // More writers encode on more cores; sorted input stays in one writer, in order.
        vec![self.input.output_ordering().is_none()]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
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
            .map_err(|_| DataFusionError::Internal("TarnWriteExec takes one input".into()))?;
        Ok(Arc::new(WriteExec::new(
            input,
            self.table.clone(),
            self.name.clone(),
            self.ordering.clone(),
            self.partition_key.clone(),
            self.layout,
            self.handoff.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.properties.partitioning.partition_count() {
            return internal_err!("TarnWriteExec has no partition {partition}");
        }
        let mut writer = writer_for(
            &self.table,
            &context,
            self.properties.partitioning.partition_count(),
            self.handoff.as_deref(),
        )?;
        if self.cluster_key().is_some() {
            writer = writer.with_clustered_input();
        }
        let mut input = self.input.execute(partition, context)?;
        let table = self.table.clone();
        let handoff = self.handoff.clone();
        let write = async move {
            let mut rows = 0u64;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch).await.map_err(to_df)?;
            }
            // Handed over in this process, the small files are stored by the commit, with
            // its metadata: one round trip fewer.
            let (added, unstored) = match &handoff {
                Some(_) => writer.finish_unstored().await.map_err(to_df)?,
                None => (writer.finish().await.map_err(to_df)?, Vec::new()),
            };
            Fragment {
                rows,
                added,
                unstored,
                ..Fragment::default()
            }
            .into_batch(&table, handoff.as_deref())
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            futures::stream::once(write),
        )))
    }
}
