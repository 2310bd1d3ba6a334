//! The write step of row-level DML: from the rows pass 1 returns to a commit fragment.
//!
//! Pass 1 returns, per affected row, its identity (`_file`, `_pos`), for MERGE the clause
//! that runs, and only the values the statement assigns. The old values of the columns an
//! updated row keeps are read afterwards from the files, by position: a Parquet access plan
//! selects just the updated rows (late materialization), so an UPDATE of one column of 1% of
//! the rows does not decode the other columns of the other 99%.
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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch, interleave};
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
use tarn_core::{DataFile, DataFileWriter, RoaringTreemap, Table, UnstoredFile};
use tarn_spec::ChangeType;

use super::{ClauseAction, DmlKind};
use crate::commit::{Fragment, Handoff, files_with_paths};
use crate::error::to_df;
use crate::provider::{RowsOf, TarnTable};
use crate::write::writer_for;

/// Affected files larger than this in all are copied by one writer per scan partition.
const PARALLEL_REWRITE_BYTES: u64 = 32 * 1024 * 1024;

/// What pass 1 decided.
struct Outcome {
    /// Positions of the deleted and updated rows, per table-relative data file path.
    removed: HashMap<String, RoaringTreemap>,
    /// Rows MERGE inserts: every column, in the table's order.
    inserted: Inserted,
    /// Updated rows as pass 1 returns them: identity, action, assigned values.
    updated: Vec<RecordBatch>,
    /// Positions of the deleted rows alone, per file.
    deleted: HashMap<String, RoaringTreemap>,
    /// The files of `removed`, as the base version lists them and in its order: resolved
    /// once, from one walk of its manifests, for every step that reads or drops them.
    files: AffectedFiles,
    affected: u64,
}

/// Affected data files, in the order the table's manifests list them.
#[derive(Default)]
struct AffectedFiles(Vec<DataFile>);

impl AffectedFiles {
    /// The files of `table`'s version with these paths; an error if one is missing.
    async fn resolve(target: &TarnTable, paths: &HashSet<String>) -> Result<Self> {
        let table = target.table();
        let files = files_with_paths(table, paths).await?;
        if files.len() != paths.len() {
            return internal_err!(
                "affected files of {} are missing from version {}",
                target.name(),
                table.version()
            );
        }
        Ok(AffectedFiles(files))
    }

    /// The files with a key in `wanted`, in order.
    fn of<V>(&self, wanted: &HashMap<String, V>) -> Vec<DataFile> {
        (self.0.iter())
            .filter(|f| wanted.contains_key(&f.path))
            .cloned()
            .collect()
    }
}

/// The rows a MERGE inserts, in the table's schema: held until they pass an eighth of the
/// table's `write.buffer-bytes`, so that a small statement's new rows can share a file with
/// the rows it keeps (copy-on-write), then written as they come, to files of their own, so
/// that a statement inserting more rows than memory holds (a REPLACE WHERE backfill) runs.
enum Inserted {
    Held {
        rows: Vec<RecordBatch>,
        bytes: usize,
        limit: usize,
    },
    Streamed(Box<DataFileWriter>),
}

impl Inserted {
    fn new(table: &Table) -> Result<Self> {
        let options = tarn_core::WriterOptions::from_properties(table.metadata().properties())
            .map_err(to_df)?;
        Ok(Inserted::Held {
            rows: Vec::new(),
            bytes: 0,
            limit: options.buffer_bytes / 8,
        })
    }

    async fn push(
        &mut self,
        rows: RecordBatch,
        table: &Table,
        context: &Arc<TaskContext>,
        handoff: &Handoff,
    ) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        match self {
            Inserted::Streamed(writer) => writer.write(&rows).await.map_err(to_df),
            Inserted::Held {
                rows: held,
                bytes,
                limit,
            } => {
                *bytes += rows.get_array_memory_size();
                held.push(rows);
                if *bytes <= *limit {
                    return Ok(());
                }
                let mut writer = writer_for(table, context, 1, Some(handoff))?;
                for batch in held.drain(..) {
                    writer.write(&batch).await.map_err(to_df)?;
                }
                *self = Inserted::Streamed(Box::new(writer));
                Ok(())
            }
        }
    }
}

/// Updated rows before and after the change, row for row.
struct Images {
    /// Every column as the rows had them; empty unless asked for.
    before: Vec<RecordBatch>,
    after: Vec<RecordBatch>,
}

/// The write node of row-level DML; see the module documentation.
#[derive(Debug)]
pub(crate) struct DmlWriteExec {
    input: Arc<dyn ExecutionPlan>,
    target: Arc<TarnTable>,
    kind: DmlKind,
    mode: RowLevelMode,
    /// Where the fragment goes: row-level DML is always committed in the process that
    /// planned it.
    handoff: Arc<Handoff>,
    properties: Arc<PlanProperties>,
}

impl DmlWriteExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        target: Arc<TarnTable>,
        kind: DmlKind,
        mode: RowLevelMode,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(crate::commit::fragment_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DmlWriteExec {
            handoff: Arc::new(Handoff::new(target.table())),
            input,
            target,
            kind,
            mode,
            properties,
        }
    }

    pub(crate) fn handoff(&self) -> Option<&Arc<Handoff>> {
        Some(&self.handoff)
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
        let handoff = self.handoff.clone();
        let write = async move {
            let outcome = collect_outcome(input, &target, &kind, &context, &handoff).await?;
            // A merge-on-read DELETE needs no log: its deletion vectors tell the change feed
            // which rows went.
            let record = !(kind == DmlKind::Delete && mode == RowLevelMode::MergeOnRead);
            let (inserted, (streamed, streamed_bytes)): (_, Written) = match outcome.inserted {
                Inserted::Held { rows, .. } => (rows, Written::default()),
                Inserted::Streamed(writer) => {
                    (Vec::new(), writer.finish_unstored().await.map_err(to_df)?)
                }
            };
            let files = &outcome.files;
            let images =
                materialize(&target, &kind, outcome.updated, files, record, &context).await?;
            let table = target.table();
            let mut change_log = Vec::new();
            let mut unstored = Vec::new();
            let mut log = |change, (files, bytes): Written| {
                change_log.extend(files.into_iter().map(|f| (change, f)));
                unstored.extend(bytes);
            };
            log(
                ChangeType::UpdatePreimage,
                write_rows(table, &images.before, &context, &handoff).await?,
            );
            // Streamed rows are in files of their own, which the log names as they are.
            log(ChangeType::Insert, (streamed.clone(), streamed_bytes));
            let deleted = record.then_some(&outcome.deleted);
            let fragment = match mode {
                RowLevelMode::CopyOnWrite => {
                    // The new rows follow the kept rows of the first copy, so that a small
                    // statement leaves as many files as it found; the log keeps its own
                    // copy of them.
                    log(
                        ChangeType::UpdatePostimage,
                        write_rows(table, &images.after, &context, &handoff).await?,
                    );
                    log(
                        ChangeType::Insert,
                        write_rows(table, &inserted, &context, &handoff).await?,
                    );
                    let new_rows = [inserted, images.after].concat();
                    let fragment = rewrite(
                        &target,
                        outcome.removed,
                        files,
                        new_rows,
                        deleted,
                        &context,
                        &handoff,
                    )
                    .await?;
                    Fragment {
                        added: [fragment.added, streamed].concat(),
                        ..fragment
                    }
                }
                RowLevelMode::MergeOnRead => {
                    // The new rows go to files of their own, which the log names as they are.
                    let (after, bytes) =
                        write_rows(table, &images.after, &context, &handoff).await?;
                    log(ChangeType::UpdatePostimage, (after.clone(), bytes));
                    let (inserted, bytes) =
                        write_rows(table, &inserted, &context, &handoff).await?;
                    log(ChangeType::Insert, (inserted.clone(), bytes));
                    let fragment =
                        row_delta(&target, files, outcome.removed, deleted, &context, &handoff)
                            .await?;
                    Fragment {
                        added: [after, inserted, streamed].concat(),
                        ..fragment
                    }
                }
            };
            change_log.extend(fragment.change_log);
            unstored.extend(fragment.unstored);
            Fragment {
                rows: outcome.affected,
                change_log,
                unstored,
                ..fragment
            }
            .into_batch(target.table(), Some(&handoff))
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            futures::stream::once(write),
        )))
    }
}

/// Where pass 1's values start: after `_file`, `_pos` and, for MERGE, the action.
fn values_from(kind: &DmlKind) -> usize {
    match kind {
        DmlKind::Merge(_) => 3,
        _ => 2,
    }
}

/// Reads pass 1 and gathers its outcome, enforcing that a target row receives one action.
async fn collect_outcome(
    mut stream: SendableRecordBatchStream,
    target: &TarnTable,
    kind: &DmlKind,
    context: &Arc<TaskContext>,
    handoff: &Handoff,
) -> Result<Outcome> {
    let table = target.table();
    let data_schema = crate::convert::df_schema(table.schema());
    let mut outcome = Outcome {
        removed: HashMap::new(),
        inserted: Inserted::new(table)?,
        updated: Vec::new(),
        deleted: HashMap::new(),
        files: AffectedFiles::default(),
        affected: 0,
    };
    let values_from = values_from(kind);
    let mut whole_files = HashSet::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let files = batch.column(0).as_string::<i32>();
        let positions = batch.column(1).as_primitive::<Int64Type>();
        let actions = match kind {
            DmlKind::Merge(_) => Some(clause_indexes(&batch)?),
            _ => None,
        };
        let mut inserts = Vec::with_capacity(batch.num_rows());
        let mut updates = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let action = match (kind, &actions) {
                (DmlKind::Merge(clauses), Some(a)) => clauses[a.value(row) as usize].action,
                (DmlKind::Delete, _) => ClauseAction::Delete,
                _ => ClauseAction::Update,
            };
            if action != ClauseAction::Insert && positions.is_null(row) {
                // A row that stands for all the live rows of its file (see
                // `TarnTable::with_file_rows`), which only a delete decides that way.
                if action != ClauseAction::Delete {
                    return internal_err!("a whole file of {} was updated", target.name());
                }
                whole_files.insert(files.value(row).to_string());
                inserts.push(false);
                updates.push(false);
                continue;
            }
            if action != ClauseAction::Insert {
                let file = files.value(row);
                let position = positions.value(row) as u64;
                let first = match outcome.removed.get_mut(file) {
                    Some(removed) => removed.insert(position),
                    None => {
                        let removed = RoaringTreemap::from_iter([position]);
                        outcome.removed.insert(file.to_string(), removed);
                        true
                    }
                };
                if !first {
                    return Err(cardinality_error(target, kind, file, position, context).await);
                }
                if action == ClauseAction::Delete {
                    outcome
                        .deleted
                        .entry(file.to_string())
                        .or_default()
                        .insert(position);
                }
            }
            inserts.push(action == ClauseAction::Insert);
            updates.push(action == ClauseAction::Update);
            outcome.affected += 1;
        }
        if inserts.iter().any(|i| *i) {
            let values = batch.project(&(values_from..batch.num_columns()).collect::<Vec<_>>())?;
            let rows = filter_record_batch(&values, &BooleanArray::from(inserts))?;
            outcome
                .inserted
                .push(conform(&rows, &data_schema)?, table, context, handoff)
                .await?;
        }
        if updates.iter().any(|u| *u) {
            outcome
                .updated
                .push(filter_record_batch(&batch, &BooleanArray::from(updates))?);
        }
    }
    let paths: HashSet<String> = (outcome.removed.keys().cloned())
        .chain(whole_files.iter().cloned())
        .collect();
    outcome.files = AffectedFiles::resolve(target, &paths).await?;
    for file in outcome
        .files
        .0
        .iter()
        .filter(|f| whole_files.contains(&f.path))
    {
        let mut live = RoaringTreemap::new();
        live.insert_range(0..file.record_count);
        if let Some(dv) = &file.deletion_vector {
            live -= table.deletion_vector(dv).await.map_err(to_df)?.as_ref();
        }
        if outcome.removed.contains_key(&file.path) {
            return internal_err!("{} was deleted whole and row by row", file.path);
        }
        outcome.affected += live.len();
        outcome.deleted.insert(file.path.clone(), live.clone());
        outcome.removed.insert(file.path.clone(), live);
    }
    Ok(outcome)
}

/// Whether the rows of `file` at `positions` are all its live rows, so that the file, as
/// the base version has it, is itself the change log of their deletion: nothing to read or
/// copy. (A change log's files are of the table's default partition spec.)
fn logs_itself(table: &Table, file: &DataFile, positions: Option<&RoaringTreemap>) -> bool {
    positions.is_some_and(|p| p.len() == file.live_rows())
        && file.spec_id == table.metadata().default_spec().id()
}

/// The MERGE clause index of each row of a pass 1 batch.
fn clause_indexes(batch: &RecordBatch) -> Result<Int32Array> {
    let column = cast_with_options(batch.column(2), &DataType::Int32, &CastOptions::default())?;
    Ok(column.as_primitive::<Int32Type>().clone())
}

/// The error for a target row that two source rows change, showing the row (read again
/// by its position, since pass 1 reads only what the statement needs).
async fn cardinality_error(
    target: &TarnTable,
    kind: &DmlKind,
    file: &str,
    position: u64,
    context: &Arc<TaskContext>,
) -> DataFusionError {
    let (statement, fix) = match kind {
        DmlKind::Merge(_) => (
            "MERGE INTO",
            "make the source unique per key or narrow the WHEN conditions",
        ),
        _ => ("UPDATE", "make the FROM rows unique per target row"),
    };
    let row = match shown_row(target, file, position, context).await {
        Ok(row) => format!(" (for example the row with {row})"),
        Err(_) => String::new(),
    };
    DataFusionError::Plan(format!(
        "{statement} {}: a target row matches more than one source row{row}; {fix}. Nothing \
         was changed",
        target.name(),
    ))
}

/// The first columns of one row of a data file, as `name = value, ...`.
async fn shown_row(
    target: &TarnTable,
    file: &str,
    position: u64,
    context: &Arc<TaskContext>,
) -> Result<String> {
    let table = target.table();
    let files = files_with_paths(table, &HashSet::from([file.to_string()])).await?;
    let wanted = HashMap::from([(file.to_string(), RoaringTreemap::from_iter([position]))]);
    let columns: Vec<usize> = (0..table.schema().fields().len().min(4)).collect();
    let scan = target
        .identity_scan_of_files(table, &files, RowsOf::Positions(&wanted), &columns, context)
        .await?;
    let batches = datafusion::physical_plan::collect(scan, context.clone()).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Internal("the row is gone".into()))?;
    let options = FormatOptions::default().with_null("NULL");
    let shown = columns
        .iter()
        .map(|&i| {
            let formatter = ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?;
            Ok(format!(
                "{} = {}",
                batch.schema().field(i).name(),
                formatter.value(0)
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(shown.join(", "))
}

/// The new rows of the updated rows, in the table's column order: the values their clause
/// assigns, and, for the columns it leaves alone, the values they had, read from the data
/// files by position.
async fn materialize(
    target: &TarnTable,
    kind: &DmlKind,
    updated: Vec<RecordBatch>,
    files: &AffectedFiles,
    with_before: bool,
    context: &Arc<TaskContext>,
) -> Result<Images> {
    let mut images = Images {
        before: Vec::new(),
        after: Vec::new(),
    };
    let Some(first) = updated.first() else {
        return Ok(images);
    };
    let table = target.table();
    let data_schema = crate::convert::df_schema(table.schema());
    let values_from = values_from(kind);
    let pass1 = first.schema();
    // Per table column: its value column in pass 1, if the statement assigns it.
    let value_of: Vec<Option<usize>> = data_schema
        .fields()
        .iter()
        .map(|f| (values_from..pass1.fields().len()).find(|&i| pass1.field(i).name() == f.name()))
        .collect();
    // Per clause and table column: whether the clause assigns the column.
    let assigns: Vec<Vec<bool>> = match kind {
        DmlKind::Merge(clauses) => clauses
            .iter()
            .map(|clause| {
                let assigned = |name: &str| {
                    clause.action == ClauseAction::Update
                        && clause.assigns.iter().any(|a| a == name)
                };
                data_schema
                    .fields()
                    .iter()
                    .map(|f| assigned(f.name()))
                    .collect()
            })
            .collect(),
        _ => vec![value_of.iter().map(Option::is_some).collect()],
    };
    let updates: Vec<usize> = match kind {
        DmlKind::Merge(clauses) => (0..clauses.len())
            .filter(|&k| clauses[k].action == ClauseAction::Update)
            .collect(),
        _ => vec![0],
    };
    // The columns some updated row keeps, read from the files (all of them, for the
    // rows as they were).
    let kept: Vec<usize> = (0..data_schema.fields().len())
        .filter(|&c| updates.iter().any(|&k| !assigns[k][c]))
        .collect();
    let read: Vec<usize> = if with_before {
        (0..data_schema.fields().len()).collect()
    } else {
        kept.clone()
    };
    let clauses: Vec<Option<Int32Array>> = updated
        .iter()
        .map(|b| match kind {
            DmlKind::Merge(_) => clause_indexes(b).map(Some),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    let nullable = nullable_schema(&data_schema);
    let assemble = |indices: &[(usize, usize)], old: Option<&RecordBatch>| -> Result<RecordBatch> {
        let clause_of: Vec<usize> = indices
            .iter()
            .map(|&(b, r)| clauses[b].as_ref().map_or(0, |a| a.value(r) as usize))
            .collect();
        let mut columns = Vec::with_capacity(data_schema.fields().len());
        for (c, field) in data_schema.fields().iter().enumerate() {
            let new = match value_of[c] {
                Some(v) => {
                    let arrays: Vec<&dyn Array> =
                        updated.iter().map(|b| b.column(v).as_ref()).collect();
                    Some(conform_column(&interleave(&arrays, indices)?, field)?)
                }
                None => None,
            };
            let old = match kept.contains(&c) {
                true => read
                    .iter()
                    .position(|&k| k == c)
                    .and_then(|k| old.map(|o| o.column(k).clone())),
                false => None,
            };
            columns.push(match (new, old) {
                (Some(new), None) => new,
                (None, Some(old)) => old,
                (Some(new), Some(old)) => {
                    let mask: BooleanArray =
                        clause_of.iter().map(|&k| Some(assigns[k][c])).collect();
                    zip(&mask, &new, &old)?
                }
                (None, None) => {
                    return internal_err!("no value for column {} of an updated row", field.name());
                }
            });
        }
        Ok(RecordBatch::try_new(nullable.clone(), columns)?)
    };
    let count: usize = updated.iter().map(|b| b.num_rows()).sum();
    if read.is_empty() {
        // Every updated row is assigned every column: nothing to read.
        let indices: Vec<(usize, usize)> = updated
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
            .collect();
        images.after.push(assemble(&indices, None)?);
        return Ok(images);
    }

    // Where each updated row is in pass 1's output, by file and position.
    let mut at: HashMap<String, HashMap<i64, (usize, usize)>> = HashMap::new();
    let mut wanted: HashMap<String, RoaringTreemap> = HashMap::new();
    for (b, batch) in updated.iter().enumerate() {
        let files = batch.column(0).as_string::<i32>();
        let positions = batch.column(1).as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            let (file, position) = (files.value(r), positions.value(r));
            if !at.contains_key(file) {
                at.insert(file.to_string(), HashMap::new());
                wanted.insert(file.to_string(), RoaringTreemap::new());
            }
            at.get_mut(file).expect("inserted").insert(position, (b, r));
            wanted
                .get_mut(file)
                .expect("inserted")
                .insert(position as u64);
        }
    }
    let scan = target
        .identity_scan_of_files(
            table,
            &files.of(&wanted),
            RowsOf::Positions(&wanted),
            &read,
            context,
        )
        .await?;
    let mut stream = datafusion::physical_plan::execute_stream(scan, context.clone())?;
    let mut found = 0;
    while let Some(old) = stream.next().await {
        let old = old?;
        let files = old.column(read.len()).as_string::<i32>();
        let positions = old.column(read.len() + 1).as_primitive::<Int64Type>();
        let indices = (0..old.num_rows())
            .map(|i| {
                at.get(files.value(i))
                    .and_then(|rows| rows.get(&positions.value(i)))
                    .copied()
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "row {} of {} was read but not updated",
                            positions.value(i),
                            files.value(i)
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        found += indices.len();
        images.after.push(assemble(&indices, Some(&old))?);
        if with_before {
            images
                .before
                .push(old.project(&(0..data_schema.fields().len()).collect::<Vec<_>>())?);
        }
    }
    if found != count {
        return internal_err!(
            "{count} rows of {} were updated, but {found} of them were found in its files",
            target.name()
        );
    }
    Ok(images)
}

/// New data files, and the bytes of the small ones, which the commit stores with its
/// metadata (see [`DataFileWriter::finish_unstored`]): a statement that fails before its
/// commit leaves them nowhere.
type Written = (Vec<DataFile>, Vec<UnstoredFile>);

/// Writes rows into new data files of `table`, keeping those it stores in `handoff`.
async fn write_rows(
    table: &Table,
    rows: &[RecordBatch],
    context: &Arc<TaskContext>,
    handoff: &Handoff,
) -> Result<Written> {
    if rows.iter().all(|b| b.num_rows() == 0) {
        return Ok(Written::default());
    }
    let mut writer = writer_for(table, context, 1, Some(handoff))?;
    for batch in rows {
        writer.write(batch).await.map_err(to_df)?;
    }
    writer.finish_unstored().await.map_err(to_df)
}

/// Merge-on-read: the affected positions as deletes. The deleted rows, when asked for
/// (`deleted`), are logged: a file that loses all its live rows as itself, the rest read by
/// position.
async fn row_delta(
    target: &TarnTable,
    files: &AffectedFiles,
    removed: HashMap<String, RoaringTreemap>,
    deleted: Option<&HashMap<String, RoaringTreemap>>,
    context: &Arc<TaskContext>,
    handoff: &Handoff,
) -> Result<Fragment> {
    let mut change_log = Vec::new();
    let mut unstored = Vec::new();
    if let Some(deleted) = deleted.filter(|d| !d.is_empty()) {
        let table = target.table();
        let (whole, files): (Vec<DataFile>, Vec<DataFile>) = (files.of(deleted).into_iter())
            .partition(|f| logs_itself(table, f, deleted.get(&f.path)));
        change_log.extend(whole.into_iter().map(|f| (ChangeType::Delete, f)));
        if !files.is_empty() {
            let columns: Vec<usize> = (0..table.schema().fields().len()).collect();
            let scan = target
                .identity_scan_of_files(
                    table,
                    &files,
                    RowsOf::Positions(deleted),
                    &columns,
                    context,
                )
                .await?;
            let mut stream = datafusion::physical_plan::execute_stream(scan, context.clone())?;
            let mut writer = writer_for(table, context, 1, Some(handoff))?;
            while let Some(batch) = stream.next().await {
                writer
                    .write(&batch?.project(&columns)?)
                    .await
                    .map_err(to_df)?;
            }
            let (logged, bytes) = writer.finish_unstored().await.map_err(to_df)?;
            change_log.extend(logged.into_iter().map(|f| (ChangeType::Delete, f)));
            unstored = bytes;
        }
    }
    Ok(Fragment {
        deletes: removed.into_iter().collect(),
        change_log,
        unstored,
        ..Fragment::default()
    })
}

/// Copy-on-write: copies of the affected files without the affected rows, and the new rows.
/// The deleted rows among those left out, when asked for (`deleted`), are logged as the
/// copies pass them.
async fn rewrite(
    target: &TarnTable,
    dropped: HashMap<String, RoaringTreemap>,
    files: &AffectedFiles,
    mut new_rows: Vec<RecordBatch>,
    deleted: Option<&HashMap<String, RoaringTreemap>>,
    context: &Arc<TaskContext>,
    handoff: &Handoff,
) -> Result<Fragment> {
    let table = target.table();
    let columns: Vec<usize> = (0..table.schema().fields().len()).collect();
    let removed = files.of(&dropped);
    // A file that keeps no row is not copied; its deleted rows, when asked for, are logged
    // by the file itself where they are all its rows, else read with the copies.
    let (logged_whole, copied): (Vec<&DataFile>, Vec<&DataFile>) = removed.iter().partition(|f| {
        dropped[&f.path].len() == f.live_rows()
            && deleted
                .is_none_or(|d| !d.contains_key(&f.path) || logs_itself(table, f, d.get(&f.path)))
    });
    let mut change_log: Vec<(ChangeType, DataFile)> = match deleted {
        Some(deleted) => (logged_whole.into_iter())
            .filter(|f| deleted.contains_key(&f.path))
            .map(|f| (ChangeType::Delete, f.clone()))
            .collect(),
        None => Vec::new(),
    };
    let copied: Vec<DataFile> = copied.into_iter().cloned().collect();
    // New rows are written after the kept rows of the first copy, so that a small
    // statement makes one file. Large rewrites copy each partition of the scan with its
    // own writer, so the files are encoded on every core at once.
    let mut copies = tokio::task::JoinSet::new();
    if !copied.is_empty() {
        let scan = target
            .identity_scan_of_files(table, &copied, RowsOf::Live, &columns, context)
            .await?;
        let affected_bytes: u64 = copied.iter().map(|f| f.file_size).sum();
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
        let dropped = Arc::new(dropped);
        let deleted = deleted.map(|d| Arc::new(d.clone()));
        let writers = streams.len() * if deleted.is_some() { 2 } else { 1 };
        for stream in streams {
            let log = match &deleted {
                Some(deleted) => Some((
                    Arc::clone(deleted),
                    writer_for(table, context, writers, Some(handoff))?,
                )),
                None => None,
            };
            copies.spawn(copy_kept_rows(
                stream,
                writer_for(table, context, writers, Some(handoff))?,
                Arc::clone(&dropped),
                columns.len(),
                std::mem::take(&mut new_rows),
                log,
            ));
        }
    }
    let (mut added, mut unstored) = write_rows(table, &new_rows, context, handoff).await?;
    while let Some(copied) = copies.join_next().await {
        let ((files, bytes), (logged, logged_bytes)) =
            copied.map_err(|e| DataFusionError::External(Box::new(e)))??;
        added.extend(files);
        change_log.extend(logged.into_iter().map(|f| (ChangeType::Delete, f)));
        unstored.extend(bytes.into_iter().chain(logged_bytes));
    }
    Ok(Fragment {
        added,
        removed: removed.into_iter().map(|f| f.path).collect(),
        change_log,
        unstored,
        ..Fragment::default()
    })
}

/// Writes the rows of a row-identity scan of affected files, less the dropped positions,
/// then the rows of `then`, as new data files; with `log`, writes the rows at its positions
/// into files of their own.
async fn copy_kept_rows(
    mut stream: SendableRecordBatchStream,
    mut writer: DataFileWriter,
    dropped: Arc<HashMap<String, RoaringTreemap>>,
    columns: usize,
    then: Vec<RecordBatch>,
    mut log: Option<(Arc<HashMap<String, RoaringTreemap>>, DataFileWriter)>,
) -> Result<(Written, Written)> {
    let table_columns: Vec<usize> = (0..columns).collect();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let files = batch.column(columns).as_string::<i32>();
        let positions = batch.column(columns + 1).as_primitive::<Int64Type>();
        // Rows of one batch come from one file: look the file up once, not per row.
        let mut current: Option<(&str, Option<&RoaringTreemap>)> = None;
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
                Some(!dropped_here.is_some_and(|d| d.contains(positions.value(i) as u64)))
            })
            .collect();
        let rows = batch.project(&table_columns)?;
        writer
            .write(&filter_record_batch(&rows, &keep)?)
            .await
            .map_err(to_df)?;
        if let Some((logged, log_writer)) = &mut log {
            let wanted: BooleanArray = (0..batch.num_rows())
                .map(|i| {
                    Some(
                        logged
                            .get(files.value(i))
                            .is_some_and(|p| p.contains(positions.value(i) as u64)),
                    )
                })
                .collect();
            if wanted.true_count() > 0 {
                log_writer
                    .write(&filter_record_batch(&rows, &wanted)?)
                    .await
                    .map_err(to_df)?;
            }
        }
    }
    for batch in &then {
        writer.write(batch).await.map_err(to_df)?;
    }
    let copies = writer.finish_unstored().await.map_err(to_df)?;
    let logged = match log {
        Some((_, log_writer)) => log_writer.finish_unstored().await.map_err(to_df)?,
        None => Written::default(),
    };
    Ok((copies, logged))
}

/// The table's schema with every column nullable, so that the writer, not the batch,
/// reports NOT NULL violations, by column name.
fn nullable_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// New values of a column cast to its type (an error on overflow, naming the column).
fn conform_column(column: &ArrayRef, field: &Field) -> Result<ArrayRef> {
    if column.data_type() == field.data_type() {
        return Ok(column.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(column, field.data_type(), &options).map_err(|e| {
        DataFusionError::Plan(format!(
            "cannot store the new value of column '{}' as {}: {e}",
            field.name(),
            field.data_type()
        ))
    })
}

/// A batch of new rows, every column of the table in order, cast to the table's types.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| conform_column(column, field))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(nullable_schema(schema), columns)?)
}
