//! The warehouse as a DataFusion catalog: namespaces are schemas, tables are tarn tables.
//!
//! Listing names (`schema_names`, `table_names`) is synchronous in DataFusion, so names are
//! cached and refreshed by [`TarnCatalog::refresh`] (the tarn SQL entry point refreshes
//! before statements that list). Resolving a table is asynchronous and always reads storage,
//! so a query sees the newest version of every table it names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use tarn_core::{Table, Warehouse};

use crate::error::to_df;
use crate::metadata_tables::{self, MetadataTable};
use crate::provider::TarnTable;

/// A warehouse registered as a DataFusion catalog.
#[derive(Debug)]
pub struct TarnCatalog {
    warehouse: Warehouse,
    store_url: ObjectStoreUrl,
    schemas: RwLock<BTreeMap<String, Arc<TarnSchema>>>,
}

impl TarnCatalog {
    /// A catalog over `warehouse`, whose object store the session knows as `store_url`.
    pub async fn try_new(warehouse: Warehouse, store_url: ObjectStoreUrl) -> Result<Arc<Self>> {
        let catalog = Arc::new(TarnCatalog {
            warehouse,
            store_url,
            schemas: RwLock::default(),
        });
        catalog.refresh().await?;
        Ok(catalog)
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    /// Re-reads namespace and table names from storage.
    pub async fn refresh(&self) -> Result<()> {
        let namespaces = self.warehouse.list_namespaces().await.map_err(to_df)?;
        let mut fresh = BTreeMap::new();
        for ns in namespaces {
            let names: BTreeSet<String> = self
                .warehouse
                .list_tables(&ns)
                .await
                .map_err(to_df)?
                .into_iter()
                .collect();
            let schema = self.schema_entry(&ns);
            *schema.tables.write().expect("lock") = names;
            fresh.insert(ns, schema);
        }
        *self.schemas.write().expect("lock") = fresh;
        Ok(())
    }

    /// Makes sure a namespace that exists on storage is known (after another process
    /// created it); `false` if it does not exist.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
        if self.schemas.read().expect("lock").contains_key(namespace) {
            return Ok(true);
        }
        if !self
            .warehouse
            .namespace_exists(namespace)
            .await
            .unwrap_or(false)
        {
            return Ok(false);
        }
        let tables = self.warehouse.list_tables(namespace).await.map_err(to_df)?;
        let schema = self.schema_entry(namespace);
        *schema.tables.write().expect("lock") = tables.into_iter().collect();
        self.schemas
            .write()
            .expect("lock")
            .insert(namespace.to_string(), schema);
        Ok(true)
    }

    fn schema_entry(&self, namespace: &str) -> Arc<TarnSchema> {
        self.schemas
            .read()
            .expect("lock")
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(TarnSchema {
                    warehouse: self.warehouse.clone(),
                    namespace: namespace.to_string(),
                    store_url: self.store_url.clone(),
                    tables: RwLock::default(),
                    external: RwLock::default(),
                })
            })
    }

    pub async fn create_namespace(&self, namespace: &str, if_not_exists: bool) -> Result<()> {
        match self.warehouse.create_namespace(namespace).await {
            Ok(()) => {}
            Err(tarn_core::Error::AlreadyExists { .. }) if if_not_exists => {}
            Err(e) => return Err(to_df(e)),
        }
        self.ensure_namespace(namespace).await?;
        Ok(())
    }

    pub async fn drop_namespace(&self, namespace: &str, if_exists: bool) -> Result<()> {
        match self.warehouse.drop_namespace(namespace).await {
            Ok(()) => {}
            Err(tarn_core::Error::NamespaceNotFound { .. }) if if_exists => {}
            Err(e) => return Err(to_df(e)),
        }
        self.schemas.write().expect("lock").remove(namespace);
        Ok(())
    }

    pub(crate) fn tarn_schema(&self, namespace: &str) -> Option<Arc<TarnSchema>> {
        self.schemas.read().expect("lock").get(namespace).cloned()
    }

    /// A table as a provider, at its newest version.
    pub async fn load(&self, namespace: &str, table: &str) -> Result<Option<TarnTable>> {
        match self.warehouse.load_table(namespace, table).await {
            Ok(t) => Ok(Some(TarnTable::new(
                t,
                format!("{namespace}.{table}"),
                self.store_url.clone(),
            ))),
            Err(
                tarn_core::Error::TableNotFound { .. } | tarn_core::Error::InvalidArgument { .. },
            ) => Ok(None),
            Err(e) => Err(to_df(e)),
        }
    }
}

impl CatalogProvider for TarnCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas.read().expect("lock").keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.tarn_schema(name).map(|s| s as Arc<dyn SchemaProvider>)
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::Plan(format!(
            "cannot register schema '{name}' in a tarn catalog: create namespaces with CREATE SCHEMA through tarn"
        )))
    }
}

/// A namespace as a DataFusion schema.
#[derive(Debug)]
pub struct TarnSchema {
    warehouse: Warehouse,
    namespace: String,
    store_url: ObjectStoreUrl,
    tables: RwLock<BTreeSet<String>>,
    /// Tables registered for this session only: views, and existing tarn tables registered
    /// with CREATE EXTERNAL TABLE ... STORED AS TARN.
    external: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl TarnSchema {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn note_created(&self, table: &str) {
        self.tables.write().expect("lock").insert(table.to_string());
    }

    pub(crate) fn note_dropped(&self, table: &str) {
        self.tables.write().expect("lock").remove(table);
    }

    pub(crate) fn external(&self, table: &str) -> Option<Arc<dyn TableProvider>> {
        self.external.read().expect("lock").get(table).cloned()
    }

    async fn load(&self, table: &str) -> Result<Option<Table>> {
        match self.warehouse.load_table(&self.namespace, table).await {
            Ok(t) => Ok(Some(t)),
            Err(
                tarn_core::Error::TableNotFound { .. } | tarn_core::Error::InvalidArgument { .. },
            ) => Ok(None),
            Err(e) => Err(to_df(e)),
        }
    }
}

#[async_trait]
impl SchemaProvider for TarnSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.read().expect("lock").iter().cloned().collect();
        names.extend(self.external.read().expect("lock").keys().cloned());
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(external) = self.external(name) {
            return Ok(Some(external));
        }
        if let Some((base, kind)) = MetadataTable::parse_name(name) {
            let Some(table) = self.load(base).await? else {
                return Ok(None);
            };
            return metadata_tables::provider(&table, kind).await.map(Some);
        }
        let Some(table) = self.load(name).await? else {
            return Ok(None);
        };
        let provider = TarnTable::new(
            table,
            format!("{}.{name}", self.namespace),
            self.store_url.clone(),
        );
        Ok(Some(Arc::new(provider)))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        // Views and external tarn tables live for the session; anything else would be an
        // in-memory table posing as a tarn one.
        let allowed = table.is::<TarnTable>()
            || table.table_type() == datafusion::logical_expr::TableType::View;
        if !allowed {
            return Err(DataFusionError::Plan(format!(
                "'{name}' would be an in-memory table; tables in a tarn namespace are tarn tables: \
                 create them with CREATE TABLE through tarn, or register existing ones with \
                 CREATE EXTERNAL TABLE {name} STORED AS TARN LOCATION '<url>'"
            )));
        }
        if self.tables.read().expect("lock").contains(&name) {
            return Err(DataFusionError::Plan(format!(
                "table '{}.{name}' already exists",
                self.namespace
            )));
        }
        Ok(self.external.write().expect("lock").insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.external.write().expect("lock").remove(name) {
            return Ok(Some(t));
        }
        Err(DataFusionError::Plan(format!(
            "dropping '{}.{name}' deletes its data; run DROP TABLE through tarn's SQL entry point",
            self.namespace
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.read().expect("lock").contains(name)
            || self.external.read().expect("lock").contains_key(name)
    }
}
