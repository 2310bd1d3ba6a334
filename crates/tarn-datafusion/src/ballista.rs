//! tarn tables on an Apache DataFusion Ballista cluster (the `ballista` feature).
//!
//! Ballista sends the client's logical plan to its scheduler, which plans it and sends each
//! stage's physical plan to the executors: every tarn object in those plans crosses a
//! process boundary through the codecs here, composed with Ballista's own.
//!
//! ```text
//! client ── logical plan ──▶ scheduler ── stage plans ──▶ executors
//!           TarnTable:                    TarnScanExec: the pinned table, the Parquet scan
//!           location + the pinned         (DataFusion's encoding) and what that encoding
//!           version's metadata            drops: field-id binding, deletion vectors' row
//!                                         selections, the table's own store
//!                                         TarnWriteExec, TarnCommitExec: the pinned table
//! ```
//!
//! Nothing is decoded by guess: tarn's bytes start with [`MAGIC`] and a kind, anything else
//! goes to Ballista's codec. A decoded table is the version the client pinned, read from
//! the bytes rather than loaded again, so the scheduler plans and the executors read exactly
//! what the client saw. The store comes from the table's location, opened in the decoding
//! process (object store settings from its environment: `AWS_*`, ...), and is registered in
//! that process's runtime under a URL named after the location.
//!
//! A write is planned on the scheduler with an id in its snapshot summary; a commit task
//! that Ballista runs again after its first attempt committed finds that commit and
//! returns its count instead of committing the rows twice.
//!
//! Row-level DML (DELETE, UPDATE, MERGE) is planned and run by the client session itself,
//! like tarn's DDL; metadata tables and the change feed cannot be sent to a cluster and
//! are refused with an error saying so.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::config::BallistaConfig;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{
    BallistaCodec, BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Statistics, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::object_store::{
    DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};
use tarn_core::storage::open_location;
use tarn_core::{Env, Table, TableLocation, Warehouse};
use tarn_spec::Version;
use url::Url;

use crate::TarnContext;
use crate::changes::ChangeFeed;
use crate::commit::{CommitExec, CommitKind};
use crate::error::to_df;
use crate::field_ids::FieldIdAdapterFactory;
use crate::metadata_tables::MetadataProvider;
use crate::provider::TarnTable;
use crate::reader::{NanFields, read_through_tarn};
use crate::write::WriteExec;

/// The first bytes of everything tarn's codecs encode.
pub const MAGIC: &[u8; 4] = b"TARN";

/// What tarn's bytes hold, after [`MAGIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Table = 1,
    Scan = 2,
    Write = 3,
    Commit = 4,
}

impl Kind {
    fn of(byte: u8) -> Result<Kind> {
        Ok(match byte {
            1 => Kind::Table,
            2 => Kind::Scan,
            3 => Kind::Write,
            4 => Kind::Commit,
            other => {
                return Err(DataFusionError::Internal(format!(
                    "tarn plan bytes of unknown kind {other}: client, scheduler and executors \
                     must run the same tarn version"
                )));
            }
        })
    }
}

/// Whether a session plans for a Ballista cluster (its configuration has Ballista's).
pub fn is_distributed(options: &ConfigOptions) -> bool {
    options.extensions.get::<BallistaConfig>().is_some()
}

/// A session configuration for a Ballista cluster that carries tarn tables: Ballista's
/// settings, tarn's (`tarn.app_id`, ..., which a task's settings then carry to the executor
/// that commits) and tarn's codecs. The client, the scheduler and the executors use the same.
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_option_extension(crate::commit::TarnOptions::default())
        .with_ballista_logical_extension_codec(Arc::new(TarnLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(TarnPhysicalCodec::default()))
}

/// tarn's codecs for a Ballista scheduler or executor built by hand.
pub fn codec() -> BallistaCodec {
    BallistaCodec::new(
        Arc::new(TarnLogicalCodec::default()),
        Arc::new(TarnPhysicalCodec::default()),
    )
}

/// A tarn context on `warehouse` whose queries the Ballista scheduler at `url`
/// (`df://host:port`) plans and its executors run. DDL, row-level DML and metadata reads
/// run in this process, as in a local session; see the module documentation.
pub async fn connect(url: &str, warehouse: Warehouse) -> Result<TarnContext> {
    let state = SessionStateBuilder::new()
        .with_config(session_config())
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(url, state).await?;
    TarnContext::new_with_state(warehouse, ctx.state()).await
}

/// A tarn scan as the cluster receives it; see [`TarnScanExec`].
pub(crate) fn distributed_scan(
    table: &Table,
    scan: Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    Arc::new(TarnScanExec {
        table: table.clone(),
        scan,
    })
}

/// The URL a distributed scan of `table` names its store by, registered in `runtime` (as
/// every process that decodes the scan registers it, through [`TarnObjectStoreRegistry`]).
pub(crate) fn portable_store_url(table: &Table, runtime: &RuntimeEnv) -> Result<ObjectStoreUrl> {
    let url = location_store_url(table.location().url())?;
    if runtime.object_store(&url).is_err() {
        runtime.register_object_store(url.as_ref(), table.location().store().clone());
    }
    Ok(url)
}

/// A table version as the bytes carry it.
#[derive(Debug, Serialize, Deserialize)]
struct PinnedTable {
    /// The table's location URL.
    location: String,
    /// The loaded version's metadata (its version file).
    metadata: String,
    name: String,
    /// The version read, when it is not the loaded one (time travel).
    read_version: Option<u64>,
    /// A table CREATE TABLE AS is creating: its first commit writes version 0.
    #[serde(default)]
    staged: bool,
}

impl PinnedTable {
    fn of(table: &Table, name: &str, read_version: Option<Version>) -> Result<Self> {
        if table.is_replacement() {
            return Err(DataFusionError::NotImplemented(format!(
                "CREATE OR REPLACE TABLE {name} AS runs in a local session only; in a \
                 distributed one, write the rows with INSERT OVERWRITE"
            )));
        }
        if table.location().url().starts_with("memory://") {
            return Err(DataFusionError::NotImplemented(format!(
                "table {name} lives in an in-memory store, which other processes cannot \
                 read; a distributed session needs tables on a shared store (a path every \
                 node mounts, or s3://, gs://, az://)"
            )));
        }
        Ok(PinnedTable {
            location: table.location().url().to_string(),
            metadata: String::from_utf8(table.metadata().to_json())
                .map_err(|e| DataFusionError::Internal(e.to_string()))?,
            name: name.to_string(),
            read_version: read_version.map(Version::get),
            staged: table.is_staged(),
        })
    }

    /// The table, its store opened in this process and registered in `context`'s runtime;
    /// and the URL it is registered under.
    fn open(&self, context: &TaskContext) -> Result<(Table, ObjectStoreUrl)> {
        let store_url = location_store_url(&self.location)?;
        let root = open_location(&self.location).map_err(to_df)?;
        let runtime = context.runtime_env();
        if runtime.object_store(&store_url).is_err() {
            runtime.register_object_store(store_url.as_ref(), root.store.clone());
        }
        let location = TableLocation::new(root.store, root.root, root.url);
        let table = Table::pinned(
            location,
            self.metadata.as_bytes(),
            self.staged,
            Env::default(),
        )
        .map_err(to_df)?;
        Ok((table, store_url))
    }
}

/// The URL every process finds a table location's store under: the location itself, in
/// hexadecimal, so that a process that never saw the table can open its store from the URL
/// alone ([`TarnObjectStoreRegistry`]).
fn location_store_url(location: &str) -> Result<ObjectStoreUrl> {
    let hex: String = location.bytes().map(|b| format!("{b:02x}")).collect();
    ObjectStoreUrl::parse(format!("tarn://{LOCATION_HOST_PREFIX}{hex}"))
}

const LOCATION_HOST_PREFIX: &str = "location-";

/// The table location a [`location_store_url`] names.
fn location_of(url: &Url) -> Option<String> {
    if url.scheme() != "tarn" {
        return None;
    }
    let hex = url.host_str()?.strip_prefix(LOCATION_HOST_PREFIX)?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// An object store registry that opens the store of a tarn table location the first time a
/// plan names it (by [`location_store_url`]): what an executor's runtime needs to run tarn
/// scans and writes it did not plan. Everything else is DataFusion's default registry.
#[derive(Debug, Default)]
pub struct TarnObjectStoreRegistry {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for TarnObjectStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(e) => {
                let Some(location) = location_of(url) else {
                    return Err(e);
                };
                let store = open_location(&location).map_err(to_df)?.store;
                self.inner.register_store(url, store.clone());
                Ok(store)
            }
        }
    }
}

/// A runtime for a Ballista executor (or scheduler) that runs tarn plans: DataFusion's
/// defaults, with a [`TarnObjectStoreRegistry`].
pub fn runtime_env() -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(TarnObjectStoreRegistry::default()))
        .build_arc()
}

/// Frames tarn's bytes: magic, kind, then the JSON header.
fn frame(kind: Kind, header: &impl Serialize, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(MAGIC);
    buf.push(kind as u8);
    serde_json::to_writer(buf, header).map_err(|e| DataFusionError::Internal(e.to_string()))
}

/// tarn's bytes, unframed.
struct Framed<'a> {
    kind: Kind,
    header: &'a [u8],
}

/// The kind and header of tarn's bytes; `None` for bytes tarn did not encode.
fn unframe(buf: &[u8]) -> Result<Option<Framed<'_>>> {
    let Some(rest) = buf.strip_prefix(MAGIC.as_slice()) else {
        return Ok(None);
    };
    let (&kind, header) = rest
        .split_first()
        .ok_or_else(|| DataFusionError::Internal("truncated tarn plan bytes".into()))?;
    Ok(Some(Framed {
        kind: Kind::of(kind)?,
        header,
    }))
}

fn parse<'a, H: Deserialize<'a>>(header: &'a [u8]) -> Result<H> {
    serde_json::from_slice(header)
        .map_err(|e| DataFusionError::Internal(format!("malformed tarn plan header: {e}")))
}

fn not_distributed(what: &str) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "{what} is not supported on a distributed session; run it in a local tarn session \
         (TarnContext::open) on the same warehouse"
    ))
}

/// The hooks for functions, which both codec traits have: tarn's MIN, MAX and SUM and its
/// checked arithmetic go as tarn's, the rest is left to the codec it wraps.
macro_rules! forward_function_hooks {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
            match crate::checked_arithmetic::decode(buf) {
                Some(f) => Ok(f),
                None => self.inner.try_decode_udf(name, buf),
            }
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
            match crate::checked_arithmetic::encode(node) {
                Some(bytes) => {
                    buf.extend(bytes);
                    Ok(())
                }
                None => self.inner.try_encode_udf(node, buf),
            }
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
            match crate::aggregates::decode(buf) {
                Some(f) => Ok(f),
                None => self.inner.try_decode_udaf(name, buf),
            }
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
            match crate::aggregates::encode(node) {
                Some(bytes) => {
                    buf.extend(bytes);
                    Ok(())
                }
                None => self.inner.try_encode_udaf(node, buf),
            }
        }

        fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
            self.inner.try_decode_udwf(name, buf)
        }

        fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
            self.inner.try_encode_udwf(node, buf)
        }
    };
}

/// The logical codec: tarn tables (scanned, or the target of an INSERT).
#[derive(Debug)]
pub struct TarnLogicalCodec {
    inner: Arc<dyn LogicalExtensionCodec>,
}

impl Default for TarnLogicalCodec {
    fn default() -> Self {
        TarnLogicalCodec {
            inner: Arc::new(BallistaLogicalExtensionCodec::default()),
        }
    }
}

impl LogicalExtensionCodec for TarnLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(Framed { kind, header }) = unframe(buf)? else {
            return self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        if kind != Kind::Table {
            return Err(DataFusionError::Internal(format!(
                "tarn bytes of kind {kind:?} where a table was expected"
            )));
        }
        let pinned: PinnedTable = parse(header)?;
        let (table, store_url) = pinned.open(ctx)?;
        let provider = TarnTable::from_pinned(
            table,
            pinned.name,
            store_url,
            pinned.read_version.map(Version),
        )?;
        Ok(Arc::new(provider))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<TarnTable>() {
            let (loaded, read_version) = table
                .pinned_parts()
                .ok_or_else(|| not_distributed("a row-identity or sharded tarn scan"))?;
            let pinned = PinnedTable::of(loaded, table.name(), read_version)?;
            return frame(Kind::Table, &pinned, buf);
        }
        if node.is::<MetadataProvider>() {
            return Err(not_distributed(&format!("the metadata table {table_ref}")));
        }
        if node.is::<ChangeFeed>() {
            return Err(not_distributed("the change feed (table_changes)"));
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    forward_function_hooks!();
}

/// The physical codec: tarn's scan, writers and commit.
#[derive(Debug)]
pub struct TarnPhysicalCodec {
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl Default for TarnPhysicalCodec {
    fn default() -> Self {
        TarnPhysicalCodec {
            inner: Arc::new(BallistaPhysicalExtensionCodec::default()),
        }
    }
}

/// The header of a scan: the table, where its files were relative to, and the rows each
/// file reads where not all of them.
#[derive(Debug, Serialize, Deserialize)]
struct ScanHeader {
    table: PinnedTable,
    /// The table's root in the encoding process's store: the scan's file paths start with it.
    root: String,
    /// `(path under the table, start of the file's byte range, access per row group)`.
    access: Vec<(String, u64, Vec<RowGroupWire>)>,
    /// `(path under the table, field ids)`: the float columns whose bounds the reader hides
    /// ([`NanFields`]).
    #[serde(default)]
    nan_fields: Vec<(String, Vec<i32>)>,
}

/// One row group of a file's Parquet access plan.
#[derive(Debug, Serialize, Deserialize)]
enum RowGroupWire {
    Skip,
    Scan,
    /// Runs of rows: `(skip, count)`.
    Select(Vec<(bool, usize)>),
}

#[derive(Debug, Serialize, Deserialize)]
struct WriteHeader {
    table: PinnedTable,
    ordered: bool,
    keyed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitHeader {
    table: PinnedTable,
    /// `append`, `overwrite` or `overwrite-partitions`.
    kind: String,
    summary: std::collections::BTreeMap<String, String>,
    auto_compact: bool,
}

impl TarnPhysicalCodec {
    fn encode_scan(&self, scan: &TarnScanExec, buf: &mut Vec<u8>) -> Result<()> {
        let root = scan.table.location().root();
        let mut access = Vec::new();
        let mut nan_fields = Vec::new();
        for file in file_scan_config(&scan.scan)?
            .file_groups
            .iter()
            .flat_map(|g| g.iter())
        {
            if let Some(NanFields::Ids(ids)) = file.extension::<NanFields>() {
                let path = relative_path(&file.object_meta.location, root)?;
                nan_fields.push((path, ids.iter().copied().collect()));
            }
            if let Some(plan) = file.extension::<ParquetAccessPlan>() {
                access.push((
                    relative_path(&file.object_meta.location, root)?,
                    file.range.as_ref().map_or(0, |r| r.start as u64),
                    plan.inner().iter().map(row_group_wire).collect(),
                ));
            }
        }
        let header = ScanHeader {
            table: PinnedTable::of(&scan.table, "", None)?,
            root: root.to_string(),
            access,
            nan_fields,
        };
        frame(Kind::Scan, &header, buf)
    }

    /// The scan over `input`, the Parquet scan as DataFusion decoded it, with what its
    /// encoding drops put back: file paths under this process's root of the table's store,
    /// the deletion vectors' row selections, reads through the table's store, the
    /// field-id binding.
    fn decode_scan(
        &self,
        header: &[u8],
        input: Arc<dyn ExecutionPlan>,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let header: ScanHeader = parse(header)?;
        let (table, store_url) = header.table.open(ctx)?;
        let encoded_root = Path::parse(&header.root)
            .map_err(|e| DataFusionError::Internal(format!("malformed tarn scan root: {e}")))?;
        let mut access: HashMap<(String, u64), Vec<RowGroupWire>> = header
            .access
            .into_iter()
            .map(|(path, start, row_groups)| ((path, start), row_groups))
            .collect();
        let nan_fields: HashMap<String, NanFields> = (header.nan_fields.into_iter())
            .map(|(path, ids)| (path, NanFields::Ids(Arc::new(ids.into_iter().collect()))))
            .collect();
        let mut config = file_scan_config(&input)?.clone();
        config.object_store_url = store_url;
        for group in &mut config.file_groups {
            let files = group
                .iter()
                .map(|file| {
                    let mut file = file.clone();
                    let relative = relative_path(&file.object_meta.location, &encoded_root)?;
                    let start = file.range.as_ref().map_or(0, |r| r.start as u64);
                    if let Some(row_groups) = access.remove(&(relative.clone(), start)) {
                        file.extensions.insert(ParquetAccessPlan::new(
                            row_groups.into_iter().map(row_group_access).collect(),
                        ));
                    }
                    if let Some(fields) = nan_fields.get(&relative) {
                        file.extensions.insert(fields.clone());
                    }
                    file.object_meta.location = table.location().path(&relative);
                    Ok(file)
                })
                .collect::<Result<Vec<_>>>()?;
            let relocated = FileGroup::new(files);
            *group = match group.file_statistics(None) {
                Some(stats) => relocated.with_statistics(Arc::new(stats.clone())),
                None => relocated,
            };
        }
        let source = config
            .file_source()
            .downcast_ref::<ParquetSource>()
            .ok_or_else(|| DataFusionError::Internal("a tarn scan is a Parquet scan".into()))?
            .clone();
        let source = read_through_tarn(
            source,
            table.location().store().clone(),
            ctx.runtime_env().cache_manager.get_file_metadata_cache(),
        );
        let config = FileScanConfigBuilder::from(config)
            .with_source(Arc::new(source))
            .with_expr_adapter(Some(Arc::new(FieldIdAdapterFactory::new(table.schema()))))
            .build();
        Ok(distributed_scan(
            &table,
            DataSourceExec::from_data_source(config),
        ))
    }
}

/// `path` relative to `root`, as table-relative paths are written.
fn relative_path(path: &Path, root: &Path) -> Result<String> {
    let parts = path.prefix_match(root).ok_or_else(|| {
        DataFusionError::Internal(format!(
            "a data file {path} outside its table's root {root}"
        ))
    })?;
    Ok(parts
        .map(|part| part.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("/"))
}

fn file_scan_config(plan: &Arc<dyn ExecutionPlan>) -> Result<&FileScanConfig> {
    plan.downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .ok_or_else(|| DataFusionError::Internal("a tarn scan wraps a file scan".into()))
}

fn row_group_wire(access: &RowGroupAccess) -> RowGroupWire {
    match access {
        RowGroupAccess::Skip => RowGroupWire::Skip,
        RowGroupAccess::Scan => RowGroupWire::Scan,
        RowGroupAccess::Selection(selection) => {
            RowGroupWire::Select(selection.iter().map(|s| (s.skip, s.row_count)).collect())
        }
    }
}

fn row_group_access(wire: RowGroupWire) -> RowGroupAccess {
    match wire {
        RowGroupWire::Skip => RowGroupAccess::Skip,
        RowGroupWire::Scan => RowGroupAccess::Scan,
        RowGroupWire::Select(runs) => RowGroupAccess::Selection(RowSelection::from(
            runs.into_iter()
                .map(|(skip, count)| {
                    if skip {
                        RowSelector::skip(count)
                    } else {
                        RowSelector::select(count)
                    }
                })
                .collect::<Vec<_>>(),
        )),
    }
}

fn commit_kind_name(kind: CommitKind) -> Option<&'static str> {
    use tarn_core::OverwriteScope;
    match kind {
        CommitKind::Append => Some("append"),
        CommitKind::Overwrite(OverwriteScope::Table) => Some("overwrite"),
        CommitKind::Overwrite(OverwriteScope::Partitions) => Some("overwrite-partitions"),
        _ => None,
    }
}

fn commit_kind(name: &str) -> Result<CommitKind> {
    use tarn_core::OverwriteScope;
    match name {
        "append" => Ok(CommitKind::Append),
        "overwrite" => Ok(CommitKind::Overwrite(OverwriteScope::Table)),
        "overwrite-partitions" => Ok(CommitKind::Overwrite(OverwriteScope::Partitions)),
        other => Err(DataFusionError::Internal(format!(
            "tarn commit of unknown kind '{other}'"
        ))),
    }
}

fn one_input(inputs: &[Arc<dyn ExecutionPlan>], node: &str) -> Result<Arc<dyn ExecutionPlan>> {
    match inputs {
        [input] => Ok(input.clone()),
        _ => Err(DataFusionError::Internal(format!(
            "{node} takes one input, got {}",
            inputs.len()
        ))),
    }
}

impl PhysicalExtensionCodec for TarnPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(Framed { kind, header }) = unframe(buf)? else {
            return self.inner.try_decode(buf, inputs, ctx, converter);
        };
        match kind {
            Kind::Scan => self.decode_scan(header, one_input(inputs, "TarnScanExec")?, ctx),
            Kind::Write => {
                let header: WriteHeader = parse(header)?;
                let (table, _) = header.table.open(ctx)?;
                Ok(Arc::new(WriteExec::rebuilt(
                    one_input(inputs, "TarnWriteExec")?,
                    table,
                    header.table.name,
                    header.ordered,
                    header.keyed,
                )?))
            }
            Kind::Commit => {
                let header: CommitHeader = parse(header)?;
                let (table, store_url) = header.table.open(ctx)?;
                let commit = CommitExec::new(
                    one_input(inputs, "TarnCommitExec")?,
                    table,
                    header.table.name,
                    commit_kind(&header.kind)?,
                    header.summary,
                    None,
                );
                Ok(Arc::new(if header.auto_compact {
                    commit.with_auto_compaction(store_url)
                } else {
                    commit
                }))
            }
            Kind::Table => Err(DataFusionError::Internal(
                "tarn table bytes where a plan node was expected".into(),
            )),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(scan) = node.downcast_ref::<TarnScanExec>() {
            return self.encode_scan(scan, buf);
        }
        if let Some(write) = node.downcast_ref::<WriteExec>() {
            let (table, name, ordered, keyed) = write.parts();
            let header = WriteHeader {
                table: PinnedTable::of(table, name, None)?,
                ordered,
                keyed,
            };
            return frame(Kind::Write, &header, buf);
        }
        if let Some(commit) = node.downcast_ref::<CommitExec>() {
            let commit = commit
                .portable()
                .ok_or_else(|| not_distributed("DELETE, UPDATE and MERGE"))?;
            let header = CommitHeader {
                table: PinnedTable::of(commit.table, commit.name, None)?,
                kind: commit_kind_name(commit.kind)
                    .ok_or_else(|| not_distributed("row-level DML"))?
                    .to_string(),
                summary: commit.summary.clone(),
                auto_compact: commit.auto_compact,
            };
            return frame(Kind::Commit, &header, buf);
        }
        if node.name().starts_with("Tarn") {
            return Err(not_distributed(&format!("tarn's {}", node.name())));
        }
        self.inner.try_encode(node, buf, converter)
    }

    forward_function_hooks!();
}

/// tarn's Parquet scan in a distributed plan. DataFusion's encoding of a Parquet scan
/// drops the field-id binding, the deletion vectors' row selections and the table's own
/// store, so a plain scan would read columns by name on the executors (wrong data after a
/// RENAME COLUMN) and bring deleted rows back. This node sits on the scan: Ballista still
/// sees the scan (and gives each task its slice of the files), DataFusion still encodes it,
/// and [`TarnPhysicalCodec`] carries the table beside it and puts back what the encoding
/// dropped when the executor decodes it. Filters pass through to the scan.
#[derive(Debug)]
pub struct TarnScanExec {
    table: Table,
    scan: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for TarnScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TarnScanExec: version={}", self.table.version())
    }
}

impl ExecutionPlan for TarnScanExec {
    fn name(&self) -> &str {
        "TarnScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.scan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.scan]
    }

    /// `false`, though the scan's order is this node's (its properties are the scan's):
    /// the optimizer pushes a sort below a node that maintains its input's order, and
    /// this node must stay right on the Parquet scan that its codec encodes.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([scan]) => Ok(distributed_scan(&self.table, scan)),
            Err(_) => Err(DataFusionError::Internal(
                "TarnScanExec takes one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.scan.execute(partition, context)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// The input's, whatever the optimizer has put below this node (a sort, say).
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        input_stats.first().cloned().ok_or_else(|| {
            DataFusionError::Internal("TarnScanExec's statistics without its input's".into())
        })
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}

#[cfg(feature = "ballista-loopback")]
mod loopback;
#[cfg(feature = "ballista-loopback")]
pub use loopback::loopback_cluster;

#[cfg(all(test, feature = "ballista-loopback"))]
mod tests;
