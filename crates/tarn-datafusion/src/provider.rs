//! `TarnTable`: a tarn table as a DataFusion `TableProvider`.
//!
//! ```text
//! scan(filters) ── PruningPredicate + bucket equalities ──▶ tarn_core::Table::plan_files
//!               ── kept files, with per-file Statistics ──▶ DataSourceExec(ParquetSource)
//! insert_into   ── TarnCommitExec(TarnWriteExec): write files, commit once, in execute()
//! ```
//!
//! A provider reads the newest version it was loaded at, or, for time travel, one older
//! version: its schema comes from the table's snapshot log when the provider is made
//! (planning needs it and cannot wait for storage), and its version file is read when the
//! scan is planned. Time-travel providers are read-only.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, DFSchema, SchemaExt, Statistics};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::object_store::ObjectMeta;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{CustomMetricValue, MetricBuilder, MetricValue};
use datafusion::physical_plan::union::UnionExec;
use futures::{StreamExt, TryStreamExt};
use tarn_core::{DataFile, FilePredicate, Predicate, RoaringTreemap, ScanMetrics, ScanPlan, Table};
use tarn_spec::{PrimitiveType, Schema, Version};

use crate::convert::{df_scalar, df_schema, to_scalar};
use crate::error::to_df;
use crate::field_ids::FieldIdAdapterFactory;
use crate::file_rows::{FileRows, file_rows_of};
use crate::pruning::{AllOf, DataFusionPredicate, bucket_equalities};
use crate::reader::read_through_tarn;
use crate::time_travel::AsOf;

/// The column holding a row's data file path (table-relative) in an identity scan.
pub const FILE_COLUMN: &str = "_file";
/// The column holding a row's position in its data file in an identity scan.
pub const POS_COLUMN: &str = "_pos";

/// A tarn table, readable (and, unless it is a time-travel read, writable) from DataFusion.
#[derive(Debug, Clone)]
pub struct TarnTable {
    /// The table as loaded: its newest version when the provider was made.
    table: Table,
    name: String,
    store_url: ObjectStoreUrl,
    /// The columns DataFusion sees: the read version's schema (and the identity columns).
    schema: SchemaRef,
    /// The version a time-travel read shows; `None` for the loaded version.
    read_version: Option<Version>,
    /// The read version's schema.
    read_schema: Arc<Schema>,
    /// What an INSERT writes into a column it does not name, by column name.
    write_defaults: Arc<HashMap<String, Expr>>,
    /// Row identity columns (`_file`, `_pos`) after the table's columns, for row-level DML.
    identity: bool,
    /// In an identity scan, what decides a statement's fate for whole files, each then read
    /// as one row (see [`TarnTable::with_file_rows`]).
    file_rows: Option<Arc<FileRows>>,
    /// The only data to read, when a reader splits the table among workers.
    shards: Option<Arc<ShardFiles>>,
}

/// The row groups to read by data file path (`None`: the whole file).
type ShardFiles = HashMap<String, Option<Vec<Range<usize>>>>;

/// A piece of a table's data that one reader of many reads whole: a data file, or a run of
/// its row groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The data file's path, as the manifests give it.
    pub path: String,
    /// The row groups of the file this shard is; `None` for the whole file.
    pub row_groups: Option<Range<usize>>,
    /// Rows the shard holds, without those its file's deletion vector deletes.
    pub rows: u64,
}

fn write_defaults(schema: &Schema) -> Arc<HashMap<String, Expr>> {
    Arc::new(
        schema
            .fields()
            .iter()
            .filter_map(|f| {
                let value = f.write_default.as_ref()?;
                Some((
                    f.name.clone(),
                    Expr::Literal(to_scalar(f.primitive()?, Some(value)), None),
                ))
            })
            .collect(),
    )
}

fn identity_fields() -> [Field; 2] {
    [
        Field::new(FILE_COLUMN, DataType::Utf8, false),
        Field::new(POS_COLUMN, DataType::Int64, false),
    ]
}

impl TarnTable {
    /// `table` under the display name `name`, its store registered in the session under
    /// `store_url`.
    pub fn new(table: Table, name: impl Into<String>, store_url: ObjectStoreUrl) -> Self {
        let read_schema = Arc::new(table.schema().clone());
        TarnTable {
            schema: df_schema(&read_schema),
            write_defaults: write_defaults(&read_schema),
            read_schema,
            table,
            name: name.into(),
            store_url,
            read_version: None,
            identity: false,
            file_rows: None,
            shards: None,
        }
    }

    /// The same table as it was at `as_of`: read-only, with that version's schema. Resolved
    /// from the snapshot log of the loaded version, without reading storage; an unknown
    /// version or a time before the table existed is an error.
    pub fn at(&self, as_of: AsOf) -> Result<Self> {
        let metadata = self.table.metadata();
        if !self.log_reaches(as_of) {
            let (what, suffix) = match as_of {
                AsOf::Version(v) => (format!("version {v}"), format!("v{v}")),
                AsOf::Timestamp(ms) => {
                    let at = crate::time_travel::format_ms(ms);
                    (format!("the version at {at}"), at)
                }
            };
            return Err(DataFusionError::Plan(format!(
                "{what} of {} is older than the {} versions the newest version's log holds, \
                 which is all this session can resolve while planning; read it by name \
                 instead: \"{}@{suffix}\"",
                self.name,
                metadata.snapshots().len(),
                self.name.rsplit('.').next().unwrap_or(&self.name),
            )));
        }
        let snapshot = match as_of {
            AsOf::Version(v) => metadata.snapshot(Version(v)).ok_or_else(|| {
                let oldest = metadata.snapshots()[0].version;
                if oldest.get() > 0 {
                    // Versions before the recent log may exist; only the newest is known.
                    return DataFusionError::Plan(format!(
                        "version {v} of {} does not exist: its newest version is {}",
                        self.name,
                        metadata.version()
                    ));
                }
                to_df(tarn_core::Error::VersionNotFound {
                    requested: Version(v),
                    oldest,
                    latest: metadata.version(),
                })
            })?,
            AsOf::Timestamp(ms) => metadata.snapshot_at(ms).ok_or_else(|| {
                let oldest = metadata.snapshots().first().map_or(0, |s| s.timestamp_ms);
                to_df(tarn_core::Error::TimestampBeforeTable {
                    requested: crate::time_travel::format_ms(ms),
                    oldest: crate::time_travel::format_ms(oldest),
                })
            })?,
        };
        let schema = metadata.schema(snapshot.schema_id).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "version {} of {} names schema {}, which the table does not have",
                snapshot.version, self.name, snapshot.schema_id
            ))
        })?;
        let read_schema = Arc::new(schema.clone());
        Ok(TarnTable {
            schema: df_schema(&read_schema),
            write_defaults: write_defaults(&read_schema),
            read_schema,
            read_version: Some(snapshot.version),
            identity: false,
            file_rows: None,
            ..self.clone()
        })
    }

    /// Whether the loaded version's recent log resolves `as_of` (to a snapshot or to a
    /// definite error) without reading older version files.
    fn log_reaches(&self, as_of: AsOf) -> bool {
        let log = self.table.metadata().snapshots();
        let first = &log[0];
        first.version.get() == 0
            || match as_of {
                AsOf::Version(v) => v >= first.version.get(),
                AsOf::Timestamp(ms) => ms >= first.timestamp_ms,
            }
    }

    /// The same table as it was at `as_of`, like [`TarnTable::at`], but reading older
    /// version files when the loaded version's recent log does not reach back that far.
    pub async fn at_any(&self, as_of: AsOf) -> Result<Self> {
        // A version after the loaded one may have been committed since; storage says, and
        // names the versions that exist if it was not.
        let newer = matches!(as_of, AsOf::Version(v) if v > self.table.version().get());
        if self.log_reaches(as_of) && !newer {
            return self.at(as_of);
        }
        let old = match as_of {
            AsOf::Version(v) => self.table.at_version(Version(v)).await,
            AsOf::Timestamp(ms) => self.table.at_timestamp(ms).await,
        }
        .map_err(to_df)?;
        let version = old.version();
        let mut pinned = TarnTable::new(old, self.name.clone(), self.store_url.clone());
        pinned.read_version = Some(version);
        Ok(pinned)
    }

    /// What another process needs to read the same version: the loaded table and the
    /// version read, when it is not the loaded one. Row-identity scans and shards belong to
    /// the process that made them: `None`.
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn pinned_parts(&self) -> Option<(&Table, Option<Version>)> {
        (!self.identity && self.shards.is_none()).then_some((&self.table, self.read_version))
    }

    /// The provider [`TarnTable::pinned_parts`] describes, its store registered under
    /// `store_url`.
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn from_pinned(
        table: Table,
        name: String,
        store_url: ObjectStoreUrl,
        read_version: Option<Version>,
    ) -> Result<Self> {
        let loaded = table.version();
        let provider = TarnTable::new(table, name, store_url);
        match read_version {
            None => Ok(provider),
            Some(v) if v == loaded => Ok(TarnTable {
                read_version: Some(v),
                ..provider
            }),
            Some(v) => provider.at(AsOf::Version(v.get())),
        }
    }

    /// This table with row identity columns `_file` and `_pos` after its own columns.
    pub fn with_identity(&self) -> Self {
        let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
        fields.extend(identity_fields().map(Arc::new));
        TarnTable {
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            identity: true,
            ..self.clone()
        }
    }

    /// This table with row identities, where a data file that `decide` decides whole (see
    /// [`crate::file_rows`]) is read as one row: values of the deciding columns for which
    /// the statement's condition is what it is for every row of the file, its path as
    /// `_file`, and a NULL `_pos`, which stands for all its live rows; the other columns are
    /// NULL (so every column may be). A statement whose fate for a row depends on those
    /// columns alone decides it for whole files this way, from the manifests, without
    /// reading them. Other files are read row by row, as by [`TarnTable::with_identity`].
    pub(crate) fn with_file_rows(&self, decide: FileRows) -> Self {
        let identity = self.with_identity();
        let fields: Vec<Field> = (identity.schema.fields().iter())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        TarnTable {
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            file_rows: Some(Arc::new(decide)),
            ..identity
        }
    }

    /// The data of the read version as shards, in manifest order: one per data file, or,
    /// with `split_row_groups`, one per row group.
    pub async fn shards(&self, split_row_groups: bool) -> Result<Vec<Shard>> {
        let table = self.read_table().await?;
        let plan = table.plan_files(&Predicate::True).await.map_err(to_df)?;
        let mut shards = Vec::new();
        for file in plan
            .manifests
            .iter()
            .flat_map(|m| (0..m.len()).map(move |i| m.data_file(i)))
        {
            if !split_row_groups {
                shards.push(Shard {
                    rows: file.live_rows(),
                    path: file.path,
                    row_groups: None,
                });
                continue;
            }
            let deleted = match &file.deletion_vector {
                Some(dv) => table.deletion_vector(dv).await.map_err(to_df)?,
                None => Arc::default(),
            };
            // Deleted positions below `p`.
            let deleted_below = |p: u64| p.checked_sub(1).map_or(0, |last| deleted.rank(last));
            let mut start = 0u64;
            for (i, rows) in row_group_rows(&table, &file).await?.into_iter().enumerate() {
                let end = start + rows;
                shards.push(Shard {
                    path: file.path.clone(),
                    row_groups: Some(i..i + 1),
                    rows: rows - (deleted_below(end) - deleted_below(start)),
                });
                start = end;
            }
        }
        Ok(shards)
    }

    /// The same table, reading only `shards` of the read version (for a reader that
    /// splits the table among workers; see [`TarnTable::shards`]).
    pub fn with_shards(&self, shards: &[Shard]) -> Self {
        let mut by_file = ShardFiles::new();
        for shard in shards {
            let entry = by_file
                .entry(shard.path.clone())
                .or_insert_with(|| Some(Vec::new()));
            match (&shard.row_groups, entry) {
                (Some(groups), Some(ranges)) => ranges.push(groups.clone()),
                (None, entry) => *entry = None,
                (Some(_), None) => {}
            }
        }
        TarnTable {
            shards: Some(Arc::new(by_file)),
            ..self.clone()
        }
    }

    /// The table as loaded (its newest version when the provider was made).
    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    /// Whether this is a time-travel read (read-only).
    pub fn is_pinned(&self) -> bool {
        self.read_version.is_some()
    }

    /// The version this provider reads.
    pub fn version(&self) -> Version {
        self.read_version.unwrap_or_else(|| self.table.version())
    }

    /// The schema of the version this provider reads.
    pub fn read_schema(&self) -> &Schema {
        &self.read_schema
    }

    /// The table at the version this provider reads (reads its version file if that is not
    /// the loaded one).
    pub async fn read_table(&self) -> Result<Table> {
        match self.read_version {
            Some(v) if v != self.table.version() => self.table.at_version(v).await.map_err(to_df),
            _ => Ok(self.table.clone()),
        }
    }

    /// The files a scan under `filters` reads.
    pub async fn plan(&self, state: &dyn Session, filters: &[Expr]) -> Result<(Table, ScanPlan)> {
        let (table, plan, _) = self.plan_pruned(state, filters).await?;
        Ok((table, plan))
    }

    /// [`TarnTable::plan`], and the pruning of row groups by struct fields, when `filters`
    /// filter on any.
    async fn plan_pruned(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<(Table, ScanPlan, Option<LeafPruning>)> {
        let table = self.read_table().await?;
        // Struct fields filtered on (`s.a = 5`) become columns of their own, named by
        // path, which the manifests have statistics for.
        let (filters, stats_schema) =
            crate::pruning::struct_fields_as_columns(filters, &self.read_schema, &self.schema)?;
        let df_schema = DFSchema::try_from(stats_schema.clone())?;
        let physical = conjunction(filters.iter().cloned())
            .map(|e| state.create_physical_expr(e, &df_schema))
            .transpose()?;
        let mut predicates: Vec<Box<dyn FilePredicate>> = Vec::new();
        let mut leaf_pruning = None;
        if let Some(p) = &physical
            && let Ok(pruning) = PruningPredicateBuilder::new()
                .with_file_schema(stats_schema.clone())
                .try_build(p.clone())
            && !pruning.always_true()
        {
            let pruning = Arc::new(pruning);
            let leaves: Vec<Field> = stats_schema.fields()[self.schema.fields().len()..]
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            if !leaves.is_empty() {
                leaf_pruning = Some(LeafPruning {
                    predicate: pruning.clone(),
                    leaves,
                });
            }
            predicates.push(Box::new(DataFusionPredicate::new(pruning)));
        }
        for spec in table.metadata().specs() {
            for p in bucket_equalities(&filters, table.schema(), spec) {
                predicates.push(Box::new(p));
            }
        }
        let plan = if predicates.is_empty() {
            table.plan_files(&Predicate::True).await
        } else {
            table.plan_files(&AllOf(predicates)).await
        }
        .map_err(to_df)?;
        Ok((table, plan, leaf_pruning))
    }

    /// A scan of some data files of `table` with row identities, outside any session: for
    /// the write step of row-level DML, which learns the files while it runs. `columns` are
    /// indexes of the table's columns; `_file` and `_pos` follow them.
    pub(crate) async fn identity_scan_of_files(
        &self,
        table: &Table,
        files: &[DataFile],
        rows: RowsOf<'_>,
        columns: &[usize],
        context: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitioned = partitioned_files(table, files, true, rows).await?;
        self.scan_of_files(
            table,
            partitioned,
            files,
            rows,
            Extra::Identity,
            columns,
            context,
        )
    }

    /// A scan of some data files of `table` for the change feed: `columns` (indexes of the
    /// table's columns), then each file's `_commit_version` and `_commit_timestamp` as
    /// `commits` gives them (version, milliseconds), one per file.
    pub(crate) async fn commit_scan_of_files(
        &self,
        table: &Table,
        files: &[DataFile],
        commits: &[(i64, i64)],
        rows: RowsOf<'_>,
        columns: &[usize],
        context: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitioned = partitioned_files(table, files, true, rows)
            .await?
            .into_iter()
            .zip(commits)
            .map(|(file, &(version, ms))| {
                file.with_partition_values(vec![
                    datafusion::common::ScalarValue::Int64(Some(version)),
                    datafusion::common::ScalarValue::TimestampMillisecond(
                        Some(ms),
                        Some("UTC".into()),
                    ),
                ])
            })
            .collect();
        self.scan_of_files(
            table,
            partitioned,
            files,
            rows,
            Extra::Commit,
            columns,
            context,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_of_files(
        &self,
        table: &Table,
        partitioned: Vec<PartitionedFile>,
        files: &[DataFile],
        rows: RowsOf<'_>,
        extra: Extra,
        columns: &[usize],
        context: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = context.session_config().options();
        let runtime = context.runtime_env();
        let rows = match rows {
            RowsOf::Live => files.iter().map(|f| f.live_rows()).sum(),
            RowsOf::Positions(positions) => positions.values().map(|p| p.len()).sum(),
        };
        let scan = FileScan {
            table,
            store_url: &self.store_url,
            extra,
            rows,
            files: partitioned,
            // Row-identity scans keep DataFusion's own splitting.
            row_groups: Vec::new(),
            metrics: ScanMetrics::default(),
            parquet: TableParquetOptions {
                global: options.execution.parquet.clone(),
                ..Default::default()
            },
            target_partitions: options.execution.target_partitions,
            runtime: runtime.as_ref(),
        };
        let width = table.schema().fields().len();
        let projection = columns.iter().copied().chain([width, width + 1]).collect();
        scan.build(Some(projection), None)
    }
}

/// Columns a scan adds after the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    None,
    /// `_file` and `_pos`: row identities, for row-level DML.
    Identity,
    /// `_commit_version` and `_commit_timestamp` of each file: for the change feed.
    Commit,
}

impl Extra {
    fn fields(self) -> Vec<Field> {
        match self {
            Extra::None => Vec::new(),
            Extra::Identity => identity_fields().to_vec(),
            Extra::Commit => crate::changes::feed_fields()[1..].to_vec(),
        }
    }
}

/// Which rows of its data files a row identity scan reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowsOf<'a> {
    /// The live rows: all but those deleted by the file's deletion vector.
    Live,
    /// Only these positions, per table-relative file path (positions of live rows).
    Positions(&'a HashMap<String, RoaringTreemap>),
}

/// Data files as DataFusion scans them: with their statistics, or, in an identity scan,
/// with their paths as the value of the `_file` column; rows not read (deleted by the
/// file's deletion vector, or not among the positions asked for) are left out by a Parquet
/// access plan, so they are never decoded.
async fn partitioned_files(
    table: &Table,
    files: &[DataFile],
    identity: bool,
    rows: RowsOf<'_>,
) -> Result<Vec<PartitionedFile>> {
    let mut out = Vec::with_capacity(files.len());
    let floats = float_fields(table.schema());
    for file in files {
        let mut partitioned = partitioned_file(table, file, identity, &floats);
        match rows {
            RowsOf::Live => {
                if let Some(dv) = &file.deletion_vector {
                    let deleted = table.deletion_vector(dv).await.map_err(to_df)?;
                    let row_groups = row_group_rows(table, file).await?;
                    partitioned =
                        partitioned.with_extension(access_plan(&row_groups, &deleted, false));
                }
            }
            RowsOf::Positions(positions) => {
                let empty = RoaringTreemap::new();
                let wanted = positions.get(&file.path).unwrap_or(&empty);
                let row_groups = row_group_rows(table, file).await?;
                partitioned = partitioned.with_extension(access_plan(&row_groups, wanted, true));
            }
        }
        out.push(partitioned);
    }
    Ok(out)
}

/// `floats`: the table's float fields ([`float_fields`]).
fn partitioned_file(
    table: &Table,
    file: &DataFile,
    identity: bool,
    floats: &[tarn_spec::FieldId],
) -> PartitionedFile {
    // The store path as it is: a string would be escaped once more on the way back.
    let partitioned = PartitionedFile::new_from_meta(ObjectMeta {
        location: table.location().path(&file.path),
        last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        size: file.file_size,
        e_tag: None,
        version: None,
    });
    let partitioned = match nan_fields(floats, file) {
        Some(fields) => partitioned.with_extension(fields),
        None => partitioned,
    };
    if identity {
        return partitioned.with_partition_values(vec![datafusion::common::ScalarValue::Utf8(
            Some(file.path.clone()),
        )]);
    }
    partitioned.with_statistics(Arc::new(file_statistics(table.schema(), file)))
}

/// Footers a scan reads at once while planning (struct-field pruning).
const FOOTER_READS_IN_FLIGHT: usize = 16;

/// A scan's pruning of the row groups of each file by the statistics of struct fields, which
/// DataFusion's own row-group pruning cannot read (it reads those of top-level columns).
struct LeafPruning {
    /// The scan's pruning predicate, over the table's columns and `leaves`.
    predicate: Arc<datafusion::physical_optimizer::pruning::PruningPredicate>,
    /// The struct fields the filters name, as columns named by their paths.
    leaves: Vec<Field>,
}

impl LeafPruning {
    /// Leaves out of `file`'s access plan the row groups whose statistics for the struct
    /// fields rule the predicate out, as `metadata` (the file's footer) gives them, and
    /// returns how many.
    fn skip_row_groups(
        &self,
        table: &Table,
        file: &mut PartitionedFile,
        metadata: &ParquetMetaData,
    ) -> usize {
        let stats = crate::pruning::LeafRowGroups::new(metadata, table.schema(), &self.leaves);
        let keep = match self.predicate.prune(&stats) {
            Ok(keep) => keep,
            // Statistics the predicate cannot use prune nothing.
            Err(_) => return 0,
        };
        let skipped = keep.iter().filter(|k| !**k).count();
        if skipped == 0 {
            return 0;
        }
        // Over the plan of the file's deletion vector, if it has one.
        let mut plan = file
            .extension::<ParquetAccessPlan>()
            .cloned()
            .unwrap_or_else(|| ParquetAccessPlan::new_all(keep.len()));
        for (i, _) in keep.iter().enumerate().filter(|(_, k)| !**k) {
            plan.skip(i);
        }
        file.extensions.insert(plan);
        skipped
    }
}

/// Whether a filter names a column with a float field (the column, or a field of its structs)
/// that one of `files` may hold NaN in: its bounds there are unknown while it has values.
fn may_hold_nan(schema: &tarn_spec::Schema, filters: &[Expr], files: &[DataFile]) -> bool {
    let floats: Vec<tarn_spec::FieldId> = filters
        .iter()
        .flat_map(|f| f.column_refs())
        .filter_map(|c| schema.field_by_name(&c.name))
        .flat_map(|column| column.walk())
        .filter(|f| is_float(f))
        .map(|f| f.id)
        .collect();
    !floats.is_empty()
        && files
            .iter()
            .any(|file| floats.iter().any(|&id| bounds_may_miss_nan(file, id)))
}

fn is_float(field: &tarn_spec::Field) -> bool {
    use tarn_spec::PrimitiveType::{Double, Float};
    matches!(field.primitive(), Some(Float | Double))
}

/// Whether float field `id` may hold NaN in `file`: tarn leaves its bounds unknown then.
fn bounds_may_miss_nan(file: &DataFile, id: tarn_spec::FieldId) -> bool {
    match file.column_stats.get(&id) {
        Some(stats) => {
            (stats.min.is_none() || stats.max.is_none())
                && stats.null_count != Some(file.record_count)
        }
        None => true,
    }
}

/// The float fields of a data file whose Parquet bounds its reader hides (see
/// [`crate::reader`]): Parquet leaves NaN out of them, and DataFusion 55.2 prunes row groups
/// and pages by them as if they covered every value (apache/datafusion#15812), for a filter
/// as for the filters a join or a top-k pushes down while the scan runs (`a.x = b.x`
/// would lose the NaN rows of `a`).
fn nan_fields(floats: &[tarn_spec::FieldId], file: &DataFile) -> Option<crate::reader::NanFields> {
    let ids: HashSet<i32> = (floats.iter())
        .filter(|&&id| bounds_may_miss_nan(file, id))
        .map(|id| id.0)
        .collect();
    (!ids.is_empty()).then(|| crate::reader::NanFields::Ids(Arc::new(ids)))
}

/// The float fields of `schema`, its columns' and their structs'.
fn float_fields(schema: &Schema) -> Vec<tarn_spec::FieldId> {
    (schema.fields().iter())
        .flat_map(|column| column.walk())
        .filter(|f| is_float(f))
        .map(|f| f.id)
        .collect()
}

/// Rows in each row group of a data file: from its manifest entry, or, for a file written
/// before entries recorded them, from its Parquet footer.
async fn row_group_rows(table: &Table, file: &DataFile) -> Result<Vec<u64>> {
    if !file.row_group_rows.is_empty() {
        return Ok(file.row_group_rows.clone());
    }
    let meta = ObjectMeta {
        location: table.location().path(&file.path),
        last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        size: file.file_size,
        e_tag: None,
        version: None,
    };
    let metadata = DFParquetMetadata::new(table.location().store().as_ref(), &meta)
        .fetch_metadata()
        .await?;
    Ok(metadata
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as u64)
        .collect())
}

/// A Parquet access plan over row groups of the given sizes that reads only the `marked`
/// positions (`read_marked`), or every row but them. Row groups with nothing to read are
/// skipped; the others get a row selection.
pub(crate) fn access_plan(
    row_groups: &[u64],
    marked: &RoaringTreemap,
    read_marked: bool,
) -> ParquetAccessPlan {
    let (on_marked, on_rest) = if read_marked {
        (
            RowSelector::select as fn(usize) -> RowSelector,
            RowSelector::skip as fn(usize) -> _,
        )
    } else {
        (
            RowSelector::skip as fn(usize) -> RowSelector,
            RowSelector::select as fn(usize) -> _,
        )
    };
    let mut plan = ParquetAccessPlan::new_all(row_groups.len());
    let mut positions = marked.iter().peekable();
    let mut start = 0u64;
    for (i, &rows) in row_groups.iter().enumerate() {
        let end = start + rows;
        let mut selectors = Vec::new();
        let mut at = start;
        let mut hits = 0u64;
        while let Some(&p) = positions.peek() {
            if p >= end {
                break;
            }
            positions.next();
            if p > at {
                selectors.push(on_rest((p - at) as usize));
            }
            selectors.push(on_marked(1));
            hits += 1;
            at = p + 1;
        }
        if at < end {
            selectors.push(on_rest((end - at) as usize));
        }
        let reads_nothing = if read_marked { hits == 0 } else { hits == rows };
        let reads_all = if read_marked { hits == rows } else { hits == 0 };
        if reads_nothing {
            plan.skip(i);
        } else if !reads_all {
            plan.scan_selection(i, RowSelection::from(selectors));
        }
        start = end;
    }
    plan
}

/// The statistics of one data file, as DataFusion uses them for pruning and planning.
fn file_statistics(schema: &Schema, file: &DataFile) -> Statistics {
    let column_statistics = schema
        .fields()
        .iter()
        .map(|field| {
            // Nested columns have statistics per leaf only, which DataFusion does not use.
            let (Some(ty), Some(stats)) = (field.primitive(), file.column_stats.get(&field.id))
            else {
                return ColumnStatistics::new_unknown();
            };
            // String and binary bounds may be truncated: usable for pruning, not as values.
            let exact = !matches!(ty, PrimitiveType::String | PrimitiveType::Binary);
            // Bounds and null counts cover deleted rows too: still bounds, no longer exact.
            let exact = exact && file.deletion_vector.is_none();
            let bound = |v: &Option<tarn_spec::Value>| match v {
                Some(v) if exact => Precision::Exact(df_scalar(ty, v)),
                Some(v) => Precision::Inexact(df_scalar(ty, v)),
                None => Precision::Absent,
            };
            let mut c = ColumnStatistics::new_unknown();
            c.min_value = bound(&stats.min);
            c.max_value = bound(&stats.max);
            c.null_count = match stats.null_count {
                Some(n) if file.deletion_vector.is_none() => Precision::Exact(n as usize),
                Some(n) => Precision::Inexact(n as usize),
                None => Precision::Absent,
            };
            c
        })
        .collect();
    Statistics {
        num_rows: Precision::Exact(file.live_rows() as usize),
        // The file's size is the compressed size of every column, not the size of what a
        // scan of some of them returns, and DataFusion would take it for the latter (a join
        // side it thinks too large for one partition is hashed across all of them). Like
        // ListingTable's, the estimate is left to the row count.
        total_byte_size: Precision::Absent,
        column_statistics,
    }
}

/// Everything a Parquet scan of some of a table's files needs.
struct FileScan<'a> {
    table: &'a Table,
    store_url: &'a ObjectStoreUrl,
    extra: Extra,
    /// Rows in `files`.
    rows: u64,
    files: Vec<PartitionedFile>,
    /// The rows of each row group of each of `files`, where known and the scan may split
    /// files by row groups (see [`split_by_row_groups`]); empty otherwise.
    row_groups: Vec<Vec<u64>>,
    metrics: ScanMetrics,
    parquet: TableParquetOptions,
    target_partitions: usize,
    runtime: &'a RuntimeEnv,
}

impl FileScan<'_> {
    fn build(
        self,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let data_schema = df_schema(self.table.schema());
        let table_stats = if self.extra != Extra::None {
            // Row identity scans carry no per-file column statistics, but their size still
            // decides join order (a small MERGE source must be the build side).
            let mut fields: Vec<_> = data_schema.fields().iter().cloned().collect();
            fields.extend(self.extra.fields().into_iter().map(Arc::new));
            let mut s = Statistics::new_unknown(&datafusion::arrow::datatypes::Schema::new(fields));
            s.num_rows = Precision::Exact(self.rows as usize);
            s.total_byte_size =
                Precision::Inexact(self.files.iter().map(|f| f.object_meta.size as usize).sum());
            s
        } else if self.files.is_empty() {
            let mut s = Statistics::new_unknown(&data_schema);
            s.num_rows = Precision::Exact(0);
            s
        } else {
            Statistics::try_merge_iter(
                self.files.iter().filter_map(|f| f.statistics.as_deref()),
                &data_schema,
            )?
        };
        // The predicate reaches the Parquet reader (row groups, pages) through DataFusion's
        // physical filter pushdown from the FilterExec kept above this scan, as with
        // ListingTable; setting it here as well would evaluate it twice.
        let table_schema = match self.extra {
            Extra::Identity => {
                let [file, pos] = identity_fields();
                TableSchema::builder(data_schema)
                    .with_table_partition_cols(vec![Arc::new(file)])
                    .with_virtual_columns(vec![Arc::new(
                        pos.with_extension_type(datafusion::parquet::arrow::RowNumber),
                    )])
                    .build()
            }
            Extra::Commit => TableSchema::builder(data_schema)
                .with_table_partition_cols(
                    self.extra
                        .fields()
                        .into_iter()
                        .map(Arc::new)
                        .collect::<Vec<_>>(),
                )
                .build(),
            Extra::None => TableSchema::from(data_schema),
        };
        // Data files never change once written, so their footers can be kept in the
        // session's file metadata cache across queries, as ListingTable keeps them.
        // The scan's own reads, counted for EXPLAIN ANALYZE (`tarn_requests`), through
        // the table's own store: a foreign session's runtime may not have it registered.
        let requests = Arc::new(tarn_core::requests::RequestCounter::default());
        let store = tarn_core::requests::CountingStore::with_counter(
            self.table.location().store().clone(),
            requests.clone(),
        );
        // A footer is read with one request of the file's last `metadata_size_hint` bytes,
        // and a file no larger than that whole (see `reader`).
        let source = read_through_tarn(
            ParquetSource::new(table_schema).with_table_parquet_options(self.parquet),
            Arc::new(store),
            self.runtime.cache_manager.get_file_metadata_cache(),
        );
        // Planning figures, reported by EXPLAIN ANALYZE on the scan.
        let m = self.metrics;
        for (name, value) in [
            ("tarn_manifests_total", m.manifests_total),
            ("tarn_manifests_kept", m.manifests_kept),
            ("tarn_files_total", m.files_total as usize),
            ("tarn_files_kept", m.files_kept as usize),
            ("tarn_row_groups_skipped", m.row_groups_skipped),
        ] {
            MetricBuilder::new(source.metrics())
                .global_counter(name)
                .add(value);
        }
        MetricBuilder::new(source.metrics()).build(MetricValue::Custom {
            name: "tarn_requests".into(),
            value: Arc::new(ScanRequests(requests)),
        });
        // A scan pruned to no file is still a scan: one empty partition, so that every
        // operator above it (aggregates, sorts, joins, sinks) gets the input it requires.
        // Split after the statistics above, which count each file once.
        let files = split_by_row_groups(self.files, &self.row_groups, self.target_partitions);
        let mut groups = balance(files, self.target_partitions);
        if groups.is_empty() {
            groups.push(FileGroup::new(Vec::new()));
        }
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection)?
            .with_limit(limit)
            .with_statistics(table_stats)
            .with_expr_adapter(Some(Arc::new(FieldIdAdapterFactory::new(
                self.table.schema(),
            ))))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// The requests a scan's reads of data files made (planning's reads of manifests are the
/// shell's `\timing` to show), as EXPLAIN ANALYZE prints them: `tarn_requests=4 GET, 0 HEAD,
/// 0 PUT, 0 LIST`.
#[derive(Debug, Default)]
struct ScanRequests(Arc<tarn_core::requests::RequestCounter>);

impl std::fmt::Display for ScanRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.read().fmt(f)
    }
}

impl CustomMetricValue for ScanRequests {
    fn new_empty(&self) -> Arc<dyn CustomMetricValue> {
        Arc::new(ScanRequests::default())
    }

    fn aggregate(&self, other: Arc<dyn CustomMetricValue + 'static>) {
        if let Some(other) = other.as_any().downcast_ref::<ScanRequests>() {
            self.0.add_counts(other.0.read());
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_usize(&self) -> usize {
        self.0.read().total() as usize
    }

    fn is_eq(&self, other: &Arc<dyn CustomMetricValue>) -> bool {
        other
            .as_any()
            .downcast_ref::<ScanRequests>()
            .is_some_and(|o| o.0.read() == self.0.read())
    }
}

/// `files` with those of several row groups (`row_groups`, the rows of each, by file) cut
/// into byte ranges of about the same rows, at most `n` per file, when there are fewer
/// files than `n` partitions.
///
/// DataFusion splits a scan's files into byte ranges across cores only when they hold at
/// least `repartition_file_min_size` bytes (1 MiB). tarn's files can hold millions of rows
/// in less (delta-encoded ids, dictionary-encoded keys): a compacted table of one such file
/// would be read on one core. The ranges are cut where the row groups are estimated to
/// start, from their rows: the Parquet reader reads a row group in the range holding its
/// start, so ranges that cover the file read each row group once, wherever the cut falls.
/// Callers pass `row_groups` only for scans DataFusion will not split itself.
fn split_by_row_groups(
    files: Vec<PartitionedFile>,
    row_groups: &[Vec<u64>],
    n: usize,
) -> Vec<PartitionedFile> {
    if files.len() >= n || row_groups.len() != files.len() {
        return files;
    }
    let mut out = Vec::with_capacity(n);
    for (file, rows) in files.into_iter().zip(row_groups) {
        let total: u64 = rows.iter().sum();
        if rows.len() < 2 || file.range.is_some() || total == 0 {
            out.push(file);
            continue;
        }
        let size = file.object_meta.size;
        // Where row group `i` starts, were the file's bytes spread as its rows are.
        let mut before = 0;
        let starts: Vec<u64> = rows
            .iter()
            .map(|r| {
                let start = before;
                before += r;
                (u128::from(size) * u128::from(start) / u128::from(total)) as u64
            })
            .collect();
        // Cut before the row group that begins the next n-th of the rows, halfway between
        // its estimated start and the one before it: the footer at the end makes the
        // estimates late, never early.
        let pieces = n.min(rows.len()) as u64;
        let mut cuts = vec![0];
        let mut next = 1;
        let mut seen = 0;
        for (i, r) in rows.iter().enumerate() {
            if i > 0 && next < pieces && seen * pieces >= next * total {
                cuts.push(starts[i - 1] / 2 + starts[i] / 2);
                next += 1;
            }
            seen += r;
        }
        cuts.push(size);
        cuts.dedup();
        if cuts.len() <= 2 {
            out.push(file);
            continue;
        }
        for window in cuts.windows(2) {
            out.push(file.clone().with_range(window[0] as i64, window[1] as i64));
        }
    }
    out
}

/// Splits files into `n` groups of similar total size (largest first, each to the
/// currently smallest group).
fn balance(mut files: Vec<PartitionedFile>, n: usize) -> Vec<FileGroup> {
    let n = n.max(1).min(files.len().max(1));
    files.sort_by(|a, b| {
        b.effective_size()
            .cmp(&a.effective_size())
            .then_with(|| a.object_meta.location.cmp(&b.object_meta.location))
            .then_with(|| a.range().cmp(&b.range()))
    });
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for file in files {
        let smallest = groups
            .iter_mut()
            .min_by_key(|g| g.0)
            .expect("at least one group");
        smallest.0 += file.effective_size();
        smallest.1.push(file);
    }
    groups
        .into_iter()
        .filter(|g| !g.1.is_empty())
        .map(|g| FileGroup::new(g.1))
        .collect()
}

#[async_trait]
impl TableProvider for TarnTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.write_defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        if self.is_pinned() || self.shards.is_some() {
            return None;
        }
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(self.table.snapshot().summary.total_rows as usize);
        Some(stats)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match self.scan_files(state, projection, filters, limit).await {
            // Snapshot expiry removed the version a moment ago: fail when the scan runs,
            // where a row-level statement runs again on the newest version.
            Err(e)
                if crate::error::is_missing_file(&e)
                    && self.read_table().await?.is_expired().await.unwrap_or(false) =>
            {
                let schema = match projection {
                    Some(columns) => Arc::new(self.schema.project(columns)?),
                    None => self.schema.clone(),
                };
                Ok(Arc::new(crate::expired_scan::ExpiredScanExec::new(
                    schema, e,
                )))
            }
            planned => planned,
        }
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.check_writable("INSERT INTO")?;
        self.schema
            .logically_equivalent_names_and_types(&input.schema())?;
        let mut layout = crate::write::Layout {
            hash: crate::write::may_hash_across_writers(state.runtime_env().memory_pool.as_ref()),
            cluster: crate::write::clusters(&self.table)?,
        };
        let mut write_id = None;
        if crate::ballista::is_distributed(state.config_options()) {
            // Each executor writes the rows it has (no hashing or sorting on the partition
            // key, whose expression is tarn's own), and a retried commit task must find its
            // first attempt's commit.
            layout = crate::write::Layout {
                hash: false,
                cluster: false,
            };
            write_id = Some(self.table.env().next_id());
        }
        let session_scope = crate::commit::TarnOptions::overwrite_scope(state.config_options());
        crate::write::insert_plan(
            input,
            self.table.clone(),
            self.name.clone(),
            crate::write::insert_kind(insert_op, &self.table, session_scope)?,
            layout,
            self.store_url.clone(),
            write_id,
        )
    }
}

impl TarnTable {
    /// [`TableProvider::scan`]: the files of this version the filters keep, as a Parquet
    /// scan.
    async fn scan_files(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (table, mut plan, leaf_pruning) = self.plan_pruned(state, filters).await?;
        let mut data_files: Vec<DataFile> = plan
            .manifests
            .iter()
            .flat_map(|m| (0..m.len()).map(move |i| m.data_file(i)))
            .collect();
        if let Some(shards) = &self.shards {
            data_files.retain(|f| shards.contains_key(&f.path));
        }
        // Files decided whole from metadata, one row each (see `with_file_rows`).
        let mut file_rows: Option<Arc<dyn ExecutionPlan>> = None;
        if let Some(decide) = &self.file_rows
            && !crate::ballista::is_distributed(state.config_options())
        {
            let (batch, rest) = file_rows_of(state, &table, data_files, decide, &self.schema)?;
            data_files = rest;
            if let Some(batch) = batch {
                let schema = self.schema.clone();
                let rows =
                    MemorySourceConfig::try_new_exec(&[vec![batch]], schema, projection.cloned())?;
                if data_files.is_empty() {
                    return Ok(rows);
                }
                file_rows = Some(rows);
            }
        }
        let mut files = partitioned_files(&table, &data_files, self.identity, RowsOf::Live).await?;
        if self.identity {
            // With its statistics a file that a join's dynamic filter rules out (the keys of
            // a small MERGE source, of `IN (SELECT ...)`) is skipped before its footer is read.
            files = (files.into_iter().zip(&data_files))
                .map(|(f, d)| f.with_statistics(Arc::new(file_statistics(table.schema(), d))))
                .collect();
        }
        if let Some(shards) = &self.shards {
            for (file, data_file) in files.iter_mut().zip(&data_files) {
                if let Some(Some(ranges)) = shards.get(&data_file.path) {
                    let row_groups = row_group_rows(&table, data_file).await?.len();
                    let mut access = file
                        .extension::<ParquetAccessPlan>()
                        .cloned()
                        .unwrap_or_else(|| ParquetAccessPlan::new_all(row_groups));
                    for i in (0..row_groups).filter(|i| !ranges.iter().any(|r| r.contains(i))) {
                        access.skip(i);
                    }
                    file.extensions.insert(access);
                }
            }
        }
        // Parquet leaves NaN out of a float column's bounds (see `nan_fields`, which keeps
        // them from DataFusion's pruning): when a filter names a float field that a file to
        // read may hold NaN in, the row groups of struct fields are not pruned by them either.
        let nan_blind = may_hold_nan(table.schema(), filters, &data_files);
        if let Some(pruning) = leaf_pruning.filter(|_| !nan_blind) {
            // The footers are read through the session's metadata cache, where the scan then
            // finds them, several at a time, each with one request as the scan reads it.
            let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
            let hint = state.config_options().execution.parquet.metadata_size_hint;
            let store = table.location().store().clone();
            let metas: Vec<ObjectMeta> = files.iter().map(|f| f.object_meta.clone()).collect();
            let mut footers = futures::stream::iter(metas)
                .map(|meta| {
                    let (store, cache) = (store.clone(), cache.clone());
                    async move {
                        DFParquetMetadata::new(store.as_ref(), &meta)
                            .with_file_metadata_cache(Some(cache))
                            .with_metadata_size_hint(hint)
                            .fetch_metadata()
                            .await
                    }
                })
                .buffered(FOOTER_READS_IN_FLIGHT);
            for file in &mut files {
                let Some(footer) = footers.try_next().await? else {
                    break;
                };
                plan.metrics.row_groups_skipped += pruning.skip_row_groups(&table, file, &footer);
            }
        }
        // A scan a cluster runs names its store by the table's location, which every
        // process can resolve; this session's own URL means nothing on an executor.
        let distributed = crate::ballista::is_distributed(state.config_options());
        let store_url = if distributed {
            crate::ballista::portable_store_url(&table, state.runtime_env())?
        } else {
            self.store_url.clone()
        };
        // Files DataFusion will not split across cores (see `split_by_row_groups`).
        let optimizer = &state.config_options().optimizer;
        let bytes: u64 = files.iter().map(|f| f.object_meta.size).sum();
        let row_groups = if optimizer.repartition_file_scans
            && bytes < optimizer.repartition_file_min_size as u64
            && files.len() < state.config().target_partitions()
            && !self.identity
        {
            data_files
                .iter()
                .map(|f| f.row_group_rows.clone())
                .collect()
        } else {
            Vec::new()
        };
        let scan = FileScan {
            table: &table,
            store_url: &store_url,
            extra: if self.identity {
                Extra::Identity
            } else {
                Extra::None
            },
            rows: match (&self.shards, &self.file_rows) {
                (None, None) => plan.record_count(),
                _ => data_files.iter().map(|f| f.live_rows()).sum(),
            },
            files,
            row_groups,
            metrics: plan.metrics,
            parquet: state.default_table_options().parquet.clone(),
            target_partitions: state.config().target_partitions(),
            runtime: state.runtime_env().as_ref(),
        };
        if distributed {
            return Ok(crate::ballista::distributed_scan(
                &table,
                scan.build(projection.cloned(), limit)?,
            ));
        }
        let scan = scan.build(projection.cloned(), limit)?;
        match file_rows {
            Some(file_rows) => UnionExec::try_new(vec![file_rows, scan]),
            None => Ok(scan),
        }
    }
}

impl TarnTable {
    /// An error unless this provider may be written: a time-travel read and a row-identity
    /// scan are read-only.
    pub(crate) fn check_writable(&self, statement: &str) -> Result<()> {
        if let Some(v) = self.read_version {
            return Err(DataFusionError::Plan(format!(
                "{statement} {} at version {v}: a time-travel read is read-only; write to the \
                 table by its plain name",
                self.name
            )));
        }
        if self.identity {
            return Err(DataFusionError::Plan(
                "cannot write through a row-identity scan".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranges cover the file once, and each holds the start of the row groups it is
    /// meant to read, also when the footer takes a tenth of the file.
    #[test]
    fn files_split_between_row_groups() {
        let file = |size| PartitionedFile::new("data/f.parquet", size);
        let ranges = |files: Vec<PartitionedFile>| -> Vec<(u64, u64)> {
            files.iter().map(PartitionedFile::range).collect()
        };
        // Five row groups of 20,000 rows in 1,000 bytes, 100 of them footer: they start at
        // 4, 184, 364, 544 and 724.
        let rows = vec![vec![20_000; 5]];
        let split = ranges(split_by_row_groups(vec![file(1_000)], &rows, 4));
        assert_eq!(split, [(0, 300), (300, 500), (500, 700), (700, 1_000)]);
        let read_by = |start: u64| {
            split
                .iter()
                .position(|(from, to)| (*from..*to).contains(&start))
        };
        let pieces: Vec<_> = [4, 184, 364, 544, 724].map(read_by).into();
        assert_eq!(pieces, [Some(0), Some(0), Some(1), Some(2), Some(3)]);
        // Two cores, the last row group shorter (a file of 2,000,000 rows).
        let rows = vec![vec![1_048_576, 951_424]];
        let split = ranges(split_by_row_groups(vec![file(1_000)], &rows, 2));
        assert_eq!(split, [(0, 262), (262, 1_000)]);
        // One row group, as many files as cores, or unknown row groups: left whole.
        for (files, rows, n) in [
            (vec![file(1_000)], vec![vec![100]], 4),
            (vec![file(1_000), file(1_000)], vec![vec![50, 50]; 2], 2),
            (vec![file(1_000)], vec![], 4),
        ] {
            let count = files.len();
            assert_eq!(split_by_row_groups(files, &rows, n).len(), count);
        }
    }
}
