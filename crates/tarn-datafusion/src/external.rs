//! `CREATE EXTERNAL TABLE t STORED AS TARN LOCATION 'url'`: a tarn table that lives outside
//! the warehouse, known to this session by a name. The session keeps its location, not a
//! loaded version: every statement reads the table afresh, and it takes every statement a
//! warehouse table takes (DML, time travel, metadata tables).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory, UrlTableFactory};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::datasource::physical_plan::{FileScanConfig, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_session::SessionStore;
use tarn_core::{Table, TableLocation};

use crate::error::to_df;
use crate::provider::TarnTable;
use crate::reader::{NanFields, read_through_tarn};

/// The `STORED AS TARN` table factory.
#[derive(Debug)]
pub(crate) struct TarnTableFactory;

#[async_trait]
impl TableProviderFactory for TarnTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let [location] = cmd.locations.as_slice() else {
            return Err(DataFusionError::Plan(
                "STORED AS TARN takes exactly one LOCATION".into(),
            ));
        };
        if !cmd.schema.fields().is_empty() {
            return Err(DataFusionError::Plan(
                "CREATE EXTERNAL TABLE ... STORED AS TARN takes its columns from the table; \
                 drop the column list"
                    .into(),
            ));
        }
        if !cmd.table_partition_cols.is_empty() {
            return Err(DataFusionError::Plan(
                "CREATE EXTERNAL TABLE ... STORED AS TARN takes its partitioning from the \
                 table; drop PARTITIONED BY"
                    .into(),
            ));
        }
        // OPTIONS ('endpoint' '...', ...) configure the table's store (see StoreOptions).
        // DataFusion files keys it does not know under `format.`.
        let options: tarn_core::storage::StoreOptions = cmd
            .options
            .iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("format.").unwrap_or(k).to_string(),
                    v.clone(),
                )
            })
            .collect();
        let root = tarn_core::storage::open_location_with(location, &options).map_err(to_df)?;
        root.check_conditional_writes(&tarn_core::Env::default().next_id())
            .await
            .map_err(to_df)?;
        let location = TableLocation::new(root.store.clone(), root.root.clone(), root.url.clone());
        // Loaded once to check that a table is there; the catalog keeps only the location.
        let table = Table::load(location, tarn_core::Env::default())
            .await
            .map_err(to_df)?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = ObjectStoreUrl::parse(format!("tarn://external-{id}"))?;
        state
            .runtime_env()
            .register_object_store(url.as_ref(), root.store);
        Ok(Arc::new(TarnTable::new(table, cmd.name.to_string(), url)))
    }
}

/// `SELECT * FROM 'path/to/file.parquet'`: files read by URL, as DataFusion's
/// `enable_url_table` does, except that a name that looks like a file and names none is an
/// error saying so (DataFusion reports it as a table that was not found).
#[derive(Debug)]
pub(crate) struct UrlTables {
    inner: Arc<DynamicListTableFactory>,
}

#[async_trait]
impl UrlTableFactory for UrlTables {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.inner.try_new(url).await? {
            return Ok(Some(NanSafeFiles::wrap(table)));
        }
        let file_like = url.contains('/')
            || [".parquet", ".csv", ".json", ".ndjson", ".arrow", ".avro"]
                .iter()
                .any(|ext| url.to_ascii_lowercase().ends_with(ext));
        if !file_like {
            return Ok(None);
        }
        let local = !url.contains("://") || url.starts_with("file://");
        let exists = local && std::path::Path::new(url.trim_start_matches("file://")).exists();
        Err(DataFusionError::Plan(if exists {
            format!(
                "'{url}' exists, but no table could be read from it (is it empty, or of another format?)"
            )
        } else {
            format!("'{url}' is neither a table nor a file that exists")
        }))
    }
}

/// Files readable by URL in `ctx`'s tarn catalog, through [`UrlTables`].
pub(crate) fn url_tables(ctx: &SessionContext) -> Arc<dyn UrlTableFactory> {
    let inner = Arc::new(DynamicListTableFactory::new(SessionStore::new()));
    inner.session_store().with_state(ctx.state_weak_ref());
    Arc::new(UrlTables { inner })
}

/// A file read by URL whose schema has float columns. Parquet leaves NaN out of a float
/// column's bounds, and DataFusion 55.2 takes those bounds for exact (apache/datafusion#15812):
/// a column whose other values are all equal is read as that value, NaN rows included, and
/// row groups are pruned as if no NaN were there. An import (`CREATE TABLE t AS SELECT * FROM
/// 'f.parquet'`) would store the wrong values, and a filter on a float column, or one a join
/// pushes down, would skip NaN rows. Here float columns have no bounds, neither the file's
/// statistics nor its footer's as the reader hands it on (see [`crate::reader`]).
#[derive(Debug)]
struct NanSafeFiles {
    inner: Arc<dyn TableProvider>,
}

impl NanSafeFiles {
    fn wrap(inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        if inner
            .schema()
            .fields()
            .iter()
            .any(|f| f.data_type().is_floating())
        {
            Arc::new(NanSafeFiles { inner })
        } else {
            inner
        }
    }
}

#[async_trait]
impl TableProvider for NanSafeFiles {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.inner.schema();
        let floats: Vec<bool> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().is_floating())
            .collect();
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let runtime = state.runtime_env();
        plan.transform_up(|node| {
            let Some(config) = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
            else {
                return Ok(Transformed::no(node));
            };
            let mut config = config.clone();
            for group in &mut config.file_groups {
                for i in 0..group.len() {
                    let file = &mut group[i];
                    if let Some(stats) = &file.statistics {
                        let mut stats = stats.as_ref().clone();
                        for (column, _) in stats
                            .column_statistics
                            .iter_mut()
                            .zip(&floats)
                            .filter(|(_, float)| **float)
                        {
                            column.min_value = Precision::Absent;
                            column.max_value = Precision::Absent;
                        }
                        file.statistics = Some(Arc::new(stats));
                    }
                    file.extensions.insert(NanFields::AllFloats);
                }
            }
            if let Some(parquet) = config.file_source.downcast_ref::<ParquetSource>() {
                let store = runtime.object_store(&config.object_store_url)?;
                let cache = runtime.cache_manager.get_file_metadata_cache();
                config.file_source = Arc::new(read_through_tarn(parquet.clone(), store, cache));
            }
            Ok(Transformed::yes(DataSourceExec::from_data_source(config)))
        })
        .map(|t| t.data)
    }
}
