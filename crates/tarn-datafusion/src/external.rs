//! `CREATE EXTERNAL TABLE t STORED AS TARN LOCATION 'url'`: a tarn table that lives outside
//! the warehouse, known to this session by a name. The session keeps its location, not a
//! loaded version: every statement reads the table afresh, and it takes every statement a
//! warehouse table takes (DML, time travel, metadata tables).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::CreateExternalTable;
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
        let root = tarn_core::storage::open_location(location).map_err(to_df)?;
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
