//! The write step of row-level DML: from the rows pass 1 returns to new data files.
//!
//! Merge-on-read: the affected positions of each file become its deletion vector (the
//! commit unions them with the vector the file has), and the new rows (UPDATE results, MERGE
//! updates and inserts) are written as new files. Copy-on-write: every file holding an
//! affected row is read again and written without the affected positions, followed by the
//! new rows. Either way files without affected rows are not touched, and the result is one
//! fragment for the commit.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::internal_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use futures::StreamExt;
use tarn_core::properties::RowLevelMode;
use tarn_core::{DataFile, DataFileWriter, RoaringTreemap};

use super::{ClauseAction, DmlKind};
use crate::commit::{Fragment, files_with_paths};
use crate::error::to_df;
use crate::provider::TarnTable;

/// Affected files larger than this in all are copied by one writer per scan partition.
const PARALLEL_REWRITE_BYTES: u64 = 32 * 1024 * 1024;

/// What pass 1 decided.
struct Outcome {
    /// Positions to drop, per table-relative data file path.
    removed: HashMap<String, HashSet<i64>>,
    /// New rows (UPDATE results and INSERTs), in the table's column order.
    new_rows: Vec<RecordBatch>,
    affected: u64,
}

/// The write node of row-level DML; see the module documentation.
#[derive(Debug)]
pub(crate) struct DmlWriteExec {
    input: Arc<dyn ExecutionPlan>,
    target: Arc<TarnTable>,
    kind: DmlKind,
    mode: RowLevelMode,
    properties: Arc<PlanProperties>,
}

impl DmlWriteExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        target: Arc<TarnTable>,
        kind: DmlKind,
        mode: RowLevelMode,
    ) -> Self {
        let schema = crate::commit::Fragment::default()
            .to_batch(target.table())
            .map(|b| b.schema())
            .expect("an empty fragment always encodes");
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DmlWriteExec {
            input,
            target,
            kind,
            mode,
            properties,
        }
    }
}

impl DisplayAs for DmlWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TarnDmlWriteExec: table={} mode={}",
            self.target.name(),
            self.mode.as_str()
        )
    }
}

impl ExecutionPlan for DmlWriteExec {
    fn name(&self) -> &str {
        "TarnDmlWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        // Every affected position of a file must be known before the file is copied.
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
            .map_err(|_| DataFusionError::Internal("TarnDmlWriteExec takes one input".into()))?;
        Ok(Arc::new(DmlWriteExec::new(
            input,
            self.target.clone(),
            self.kind.clone(),
            self.mode,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("TarnDmlWriteExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, context.clone())?;
        let target = self.target.clone();
        let kind = self.kind.clone();
        let mode = self.mode;
        let write = async move {
            let outcome = collect_outcome(input, &target, &kind).await?;
            let fragment = match mode {
                RowLevelMode::CopyOnWrite => rewrite(&target, outcome, &context).await?,
                RowLevelMode::MergeOnRead => row_delta(&target, outcome).await?,
            };
            fragment.to_batch(target.table())
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            futures::stream::once(write),
        )))
    }
}

/// Reads pass 1 and gathers its outcome, enforcing that a target row receives one action.
async fn collect_outcome(
    mut stream: SendableRecordBatchStream,
    target: &TarnTable,
    kind: &DmlKind,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        removed: HashMap::new(),
        new_rows: Vec::new(),
        affected: 0,
    };
    let (actions, values_from) = match kind {
        DmlKind::Merge(actions) => (Some(actions), 3),
        _ => (None, 2),
    };
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let files = batch.column(0).as_string::<i32>();
        let positions = batch.column(1).as_primitive::<Int64Type>();
        let action_of: Option<ArrayRef> = match actions {
            Some(_) => Some(cast_with_options(
                batch.column(2),
                &DataType::Int32,
                &CastOptions::default(),
            )?),
            None => None,
        };
        let mut takes_new_row = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let action = match (&action_of, actions) {
                (Some(a), Some(kinds)) => kinds[a.as_primitive::<Int32Type>().value(row) as usize],
                _ if *kind == DmlKind::Delete => ClauseAction::Delete,
                _ => ClauseAction::Update,
            };
            if action != ClauseAction::Insert {
                let first = outcome
                    .removed
                    .entry(files.value(row).to_string())
                    .or_default()
                    .insert(positions.value(row));
                if !first {
                    return Err(cardinality_error(target, kind, &batch, row, values_from));
                }
            }
            takes_new_row.push(action != ClauseAction::Delete);
            outcome.affected += 1;
        }
        if batch.num_columns() > values_from && takes_new_row.iter().any(|t| *t) {
            let values = batch.project(&(values_from..batch.num_columns()).collect::<Vec<_>>())?;
            outcome.new_rows.push(filter_record_batch(
                &values,
                &BooleanArray::from(takes_new_row),
            )?);
        }
    }
    Ok(outcome)
}

fn cardinality_error(
    target: &TarnTable,
    kind: &DmlKind,
    batch: &RecordBatch,
    row: usize,
    values_from: usize,
) -> DataFusionError {
    let options = FormatOptions::default().with_null("NULL");
    let shown: Vec<String> = (values_from..batch.num_columns())
        .take(4)
        .filter_map(|i| {
            let formatter = ArrayFormatter::try_new(batch.column(i).as_ref(), &options).ok()?;
            Some(format!(
                "{} = {}",
                batch.schema().field(i).name(),
                formatter.value(row)
            ))
        })
        .collect();
    let (statement, fix) = match kind {
        DmlKind::Merge(_) => (
            "MERGE INTO",
            "make the source unique per key or narrow the WHEN conditions",
        ),
        _ => ("UPDATE", "make the FROM rows unique per target row"),
    };
    DataFusionError::Plan(format!(
        "{statement} {}: a target row matches more than one source row (for example the row \
         with {}); {fix}. Nothing was changed",
        target.name(),
        shown.join(", ")
    ))
}

/// Merge-on-read: the affected positions as deletes, the new rows as new files.
async fn row_delta(target: &TarnTable, outcome: Outcome) -> Result<Fragment> {
    let table = target.table();
    let data_schema = crate::convert::df_schema(table.schema());
    let mut added = Vec::new();
    if !outcome.new_rows.is_empty() {
        let mut writer = table.writer().map_err(to_df)?;
        for batch in &outcome.new_rows {
            writer
                .write(&conform(batch, &data_schema)?)
                .await
                .map_err(to_df)?;
        }
        added = writer.finish().await.map_err(to_df)?;
    }
    let deletes = outcome
        .removed
        .into_iter()
        .map(|(path, positions)| {
            let positions: RoaringTreemap = positions.into_iter().map(|p| p as u64).collect();
            (path, positions)
        })
        .collect();
    Ok(Fragment {
        rows: outcome.affected,
        added,
        removed: Vec::new(),
        deletes,
    })
}

/// Copy-on-write: copies of the affected files without the affected rows, and the new rows.
async fn rewrite(
    target: &TarnTable,
    outcome: Outcome,
    context: &Arc<TaskContext>,
) -> Result<Fragment> {
    let table = target.table();
    let data_schema = crate::convert::df_schema(table.schema());
    let paths: HashSet<String> = outcome.removed.keys().cloned().collect();
    let removed = files_with_paths(table, &paths).await?;
    if removed.len() != paths.len() {
        return Err(DataFusionError::Internal(format!(
            "affected files of {} are missing from version {}",
            target.name(),
            table.version()
        )));
    }
    // New rows are written after the kept rows of the first copy, so that a small
    // statement makes one file. Large rewrites copy each partition of the scan with its
    // own writer, so the files are encoded on every core at once.
    let mut new_rows: Vec<RecordBatch> = outcome
        .new_rows
        .iter()
        .map(|b| conform(b, &data_schema))
        .collect::<Result<_>>()?;
    let mut copies = tokio::task::JoinSet::new();
    if !removed.is_empty() {
        let scan = target
            .identity_scan_of_files(table, &removed, context)
            .await?;
        let affected_bytes: u64 = removed.iter().map(|f| f.file_size).sum();
        let streams = if affected_bytes >= PARALLEL_REWRITE_BYTES {
            (0..scan.output_partitioning().partition_count())
                .map(|p| scan.execute(p, context.clone()))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![datafusion::physical_plan::execute_stream(
                scan,
                context.clone(),
            )?]
        };
        let dropped = Arc::new(outcome.removed);
        for stream in streams {
            copies.spawn(copy_kept_rows(
                stream,
                table.writer().map_err(to_df)?,
                Arc::clone(&dropped),
                data_schema.fields().len(),
                std::mem::take(&mut new_rows),
            ));
        }
    }
    let mut added = Vec::new();
    if !new_rows.is_empty() {
        let mut writer = table.writer().map_err(to_df)?;
        for batch in &new_rows {
            writer.write(batch).await.map_err(to_df)?;
        }
        added = writer.finish().await.map_err(to_df)?;
    }
    while let Some(copied) = copies.join_next().await {
        let files = copied.map_err(|e| DataFusionError::External(Box::new(e)))??;
        added.extend(files);
    }
    Ok(Fragment {
        rows: outcome.affected,
        added,
        removed: removed.into_iter().map(|f| f.path).collect(),
        deletes: Default::default(),
    })
}

/// Writes the rows of a row-identity scan of affected files, less the dropped positions,
/// then the rows of `then`, as new data files.
async fn copy_kept_rows(
    mut stream: SendableRecordBatchStream,
    mut writer: DataFileWriter,
    dropped: Arc<HashMap<String, HashSet<i64>>>,
    columns: usize,
    then: Vec<RecordBatch>,
) -> Result<Vec<DataFile>> {
    let table_columns: Vec<usize> = (0..columns).collect();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let files = batch.column(columns).as_string::<i32>();
        let positions = batch.column(columns + 1).as_primitive::<Int64Type>();
        // Rows of one batch come from one file: look the file up once, not per row.
        let mut current: Option<(&str, Option<&HashSet<i64>>)> = None;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let file = files.value(i);
                let dropped_here = match current {
                    Some((f, d)) if f == file => d,
                    _ => {
                        let d = dropped.get(file);
                        current = Some((file, d));
                        d
                    }
                };
                Some(!dropped_here.is_some_and(|d| d.contains(&positions.value(i))))
            })
            .collect();
        let kept = filter_record_batch(&batch.project(&table_columns)?, &keep)?;
        writer.write(&kept).await.map_err(to_df)?;
    }
    for batch in &then {
        writer.write(batch).await.map_err(to_df)?;
    }
    writer.finish().await.map_err(to_df)
}

/// A batch of new rows cast to the table's column types (errors on overflow), with every
/// column nullable so that the writer reports NOT NULL violations by column name.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else {
            cast_with_options(column, field.data_type(), &options).map_err(|e| {
                DataFusionError::Plan(format!(
                    "cannot store the new value of column '{}' as {}: {e}",
                    field.name(),
                    field.data_type()
                ))
            })?
        };
        fields.push(Field::new(field.name(), field.data_type().clone(), true));
        columns.push(column);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
