//! `CREATE EXTERNAL TABLE t STORED AS TARN LOCATION 'url'`: a tarn table that lives outside
//! the warehouse, known to this session by a name. The session keeps its location, not a
//! loaded version: every statement reads the table afresh, and it takes every statement a
//! warehouse table takes (DML, time travel, metadata tables).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory, UrlTableFactory};
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::CreateExternalTable;
use datafusion_session::SessionStore;
use tarn_core::{Table, TableLocation};

use crate::error::to_df;
use crate::provider::TarnTable;

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
            return Ok(Some(table));
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
