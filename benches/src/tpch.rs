//! TPC-H data generated in-process, loaded as tarn tables, and the same Parquet files
//! registered as DataFusion `ListingTable`s: the two sides every comparison runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatchReader;
use datafusion::catalog::memory::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext};
use tarn_core::{ROW_GROUP_ROWS_PROPERTY, TARGET_FILE_SIZE_PROPERTY, Warehouse};
use tarn_datafusion::TarnContext;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

pub const TABLES: [&str; 8] = [
    "lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region",
];

/// The 22 TPC-H queries (validation parameters; Q15's view is a CTE).
pub const QUERIES: [&str; 22] = [
    include_str!("../queries/q01.sql"),
    include_str!("../queries/q02.sql"),
    include_str!("../queries/q03.sql"),
    include_str!("../queries/q04.sql"),
    include_str!("../queries/q05.sql"),
    include_str!("../queries/q06.sql"),
    include_str!("../queries/q07.sql"),
    include_str!("../queries/q08.sql"),
    include_str!("../queries/q09.sql"),
    include_str!("../queries/q10.sql"),
    include_str!("../queries/q11.sql"),
    include_str!("../queries/q12.sql"),
    include_str!("../queries/q13.sql"),
    include_str!("../queries/q14.sql"),
    include_str!("../queries/q15.sql"),
    include_str!("../queries/q16.sql"),
    include_str!("../queries/q17.sql"),
    include_str!("../queries/q18.sql"),
    include_str!("../queries/q19.sql"),
    include_str!("../queries/q20.sql"),
    include_str!("../queries/q21.sql"),
    include_str!("../queries/q22.sql"),
];

type Reader = Box<dyn RecordBatchReader + Send>;

/// A generator of one TPC-H table: `part` of `parts` at scale factor `sf`.
fn reader(table: &str, sf: f64, part: i32, parts: i32) -> Reader {
    match table {
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, part, parts))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, part, parts))),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, part, parts))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, part, parts))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, part, parts))),
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, part, parts))),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, part, parts))),
        other => unreachable!("not a TPC-H table: {other}"),
    }
}

/// One part of a generated table, as a DataFusion partition stream.
#[derive(Debug)]
struct GeneratedPart {
    table: &'static str,
    schema: SchemaRef,
    sf: f64,
    part: i32,
    parts: i32,
}

impl PartitionStream for GeneratedPart {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = reader(self.table, self.sf, self.part, self.parts)
            .map(|batch| batch.map_err(DataFusionError::from));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches),
        ))
    }
}

/// A streaming table generating `table` in `parts` parallel parts (parts are numbered from 1).
pub fn generated_table(table: &'static str, sf: f64, parts: i32) -> Result<StreamingTable, String> {
    let schema = reader(table, sf, 1, 1).schema();
    let streams = (1..=parts)
        .map(|part| {
            Arc::new(GeneratedPart {
                table,
                schema: Arc::clone(&schema),
                sf,
                part,
                parts,
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    StreamingTable::try_new(schema, streams).map_err(|e| e.to_string())
}

/// Rows per row group of the TPC-H tables. Row groups are the unit a scan is split into
/// across cores; row groups of 1M rows (the default) leave one core idle for part of a scan
/// depending on where the splits fall, which swamps what the comparisons measure.
const ROW_GROUP_ROWS: usize = 131_072;

/// Target data file size of the TPC-H tables: one file per table up to SF 5 or so. DataFusion
/// splits a scan into byte ranges over the files in the order the table lists them, and
/// tarn and `ListingTable` list files in different orders; with one file both sides get the
/// same splits, so a ratio measures tarn's overhead rather than which side drew the more
/// even split. Both sides read the same files, so this favours neither.
const FILE_SIZE: u64 = 1 << 30;

/// TPC-H at one scale factor: tarn tables in a fresh local warehouse, and the very same
/// Parquet files as `ListingTable`s in a plain DataFusion session.
pub struct Tpch {
    pub sf: f64,
    /// The warehouse directory, removed when this is dropped.
    _dir: tempfile::TempDir,
    pub tarn: TarnContext,
    pub listing: SessionContext,
}

impl Tpch {
    /// Generates every table (two generator parts each, in parallel) straight into tarn
    /// tables with CREATE TABLE AS, then registers their data directories as plain Parquet.
    pub async fn load(sf: f64) -> Result<(Tpch, Duration), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let tarn = tarn_context(dir.path()).await?;
        let generated = MemorySchemaProvider::new();
        for table in TABLES {
            let parts = if table == "nation" || table == "region" {
                1
            } else {
                2
            };
            generated
                .register_table(table.into(), Arc::new(generated_table(table, sf, parts)?))
                .map_err(|e| e.to_string())?;
        }
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema("tpch", Arc::new(generated))
            .map_err(|e| e.to_string())?;
        tarn.session_context()
            .register_catalog("generated", Arc::new(catalog));
        let start = Instant::now();
        for table in TABLES {
            run(
                &tarn,
                &format!(
                    "CREATE TABLE {table} WITH ('{ROW_GROUP_ROWS_PROPERTY}' = '{ROW_GROUP_ROWS}', \
                     '{TARGET_FILE_SIZE_PROPERTY}' = '{FILE_SIZE}') \
                     AS SELECT * FROM generated.tpch.{table}"
                ),
            )
            .await?;
        }
        let load = start.elapsed();
        let listing = SessionContext::new_with_config(session_config());
        for table in TABLES {
            register_listing(&listing, dir.path(), table, table).await?;
        }
        Ok((
            Tpch {
                sf,
                _dir: dir,
                tarn,
                listing,
            },
            load,
        ))
    }
}

impl Tpch {
    /// The warehouse directory the tables are in.
    pub fn warehouse(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// The session configuration both sides share.
pub fn session_config() -> SessionConfig {
    SessionConfig::new()
}

/// A tarn context over the warehouse in `dir`.
pub async fn tarn_context(dir: &std::path::Path) -> Result<TarnContext, String> {
    let warehouse =
        Warehouse::open(dir.to_str().ok_or("non-UTF-8 path")?).map_err(|e| e.to_string())?;
    TarnContext::new(warehouse, session_config())
        .await
        .map_err(|e| e.to_string())
}

/// Registers the data files of tarn table `table` (namespace `default`) in `ctx` as a
/// plain Parquet `ListingTable` called `name`.
pub async fn register_listing(
    ctx: &SessionContext,
    warehouse: &std::path::Path,
    table: &str,
    name: &str,
) -> Result<(), String> {
    let data = warehouse.join("default").join(table).join("data");
    let url = format!("{}/", data.to_str().ok_or("non-UTF-8 path")?);
    ctx.register_parquet(name, &url, ParquetReadOptions::default())
        .await
        .map_err(|e| format!("registering {url}: {e}"))
}

/// Runs a statement on tarn and returns its result.
pub async fn run(ctx: &TarnContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    ctx.sql(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("{sql}: {e}"))
}

/// Either side of a comparison.
pub enum Side<'a> {
    Tarn(&'a TarnContext),
    Listing(&'a SessionContext),
}

/// A query's physical plan and what running it returned.
pub struct Executed {
    pub elapsed: Duration,
    /// Of `elapsed`, the time to the physical plan.
    pub planned: Duration,
    pub plan: Arc<dyn ExecutionPlan>,
    pub batches: Vec<RecordBatch>,
}

impl Executed {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl Side<'_> {
    /// The logical plan of `sql` on this side.
    pub async fn frame(&self, sql: &str) -> Result<DataFrame, String> {
        match self {
            Side::Tarn(ctx) => ctx.sql(sql).await,
            Side::Listing(ctx) => ctx.sql(sql).await,
        }
        .map_err(|e| format!("{sql}: {e}"))
    }

    /// Plans and runs `sql` (planning included in the time, as a user sees it).
    pub async fn execute(&self, sql: &str) -> Result<Executed, String> {
        let start = Instant::now();
        let frame = self.frame(sql).await?;
        let task = Arc::new(frame.task_ctx());
        let plan = frame
            .create_physical_plan()
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        let planned = start.elapsed();
        let batches = collect(Arc::clone(&plan), task)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        Ok(Executed {
            elapsed: start.elapsed(),
            planned,
            plan,
            batches,
        })
    }
}

/// The sum of a metric over every node of an executed plan.
pub fn metric_sum(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
    let own = plan
        .metrics()
        .and_then(|m| m.sum_by_name(name))
        .map_or(0, |v| v.as_usize());
    own + plan
        .children()
        .into_iter()
        .map(|child| metric_sum(child, name))
        .sum::<usize>()
}

/// The number of distinct files the scans of a plan read (a file split into byte ranges
/// counts once).
pub fn files_scanned(plan: &Arc<dyn ExecutionPlan>) -> usize {
    fn collect_paths(plan: &Arc<dyn ExecutionPlan>, paths: &mut HashSet<String>) {
        let config = plan
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>());
        if let Some(config) = config {
            for file in config.file_groups.iter().flat_map(|g| g.iter()) {
                paths.insert(file.object_meta.location.to_string());
            }
        }
        for child in plan.children() {
            collect_paths(child, paths);
        }
    }
    let mut paths = HashSet::new();
    collect_paths(plan, &mut paths);
    paths.len()
}

/// The median of some samples.
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
