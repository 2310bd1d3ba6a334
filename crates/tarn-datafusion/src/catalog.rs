//! The warehouse as a DataFusion catalog: namespaces are schemas, tables are tarn tables.
//!
//! Listing names (`schema_names`, `table_names`) is synchronous in DataFusion, so names are
//! cached and refreshed by [`TarnCatalog::refresh`] (the tarn SQL entry point refreshes
//! before statements that list). Resolving a table is asynchronous and always reads storage,
//! so every statement sees the newest version of every table it names, external tables
//! included.
//!
//! Besides plain names a schema resolves `t$snapshots` (and the other metadata tables),
//! `t@v3` and `t@2026-11-25 10:00:00` (time travel), and both together: `t@v3$files`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use tarn_core::{Table, TableLocation, Warehouse};

use crate::error::to_df;
use crate::metadata_tables::{self, MetadataTable};
use crate::provider::TarnTable;
use crate::time_travel::versioned_name;

/// A warehouse registered as a DataFusion catalog.
#[derive(Debug)]
pub struct TarnCatalog {
    warehouse: Warehouse,
    store_url: ObjectStoreUrl,
    schemas: RwLock<BTreeMap<String, Arc<TarnSchema>>>,
}

/// Reads a lock that a panic elsewhere may have poisoned: the guarded maps hold names only,
/// which stay consistent whatever a panicking thread was doing.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
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
            *write(&schema.tables) = names;
            fresh.insert(ns, schema);
        }
        *write(&self.schemas) = fresh;
        Ok(())
    }

    /// Makes sure a namespace that exists on storage is known (after another process
    /// created it); `false` if it does not exist.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
        if read(&self.schemas).contains_key(namespace) {
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
        *write(&schema.tables) = tables.into_iter().collect();
        write(&self.schemas).insert(namespace.to_string(), schema);
        Ok(true)
    }

    fn schema_entry(&self, namespace: &str) -> Arc<TarnSchema> {
        read(&self.schemas)
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
        write(&self.schemas).remove(namespace);
        Ok(())
    }

    pub(crate) fn tarn_schema(&self, namespace: &str) -> Option<Arc<TarnSchema>> {
        read(&self.schemas).get(namespace).cloned()
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
        read(&self.schemas).keys().cloned().collect()
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

/// A table this session knows by a name of its own.
#[derive(Debug, Clone)]
enum External {
    /// A tarn table elsewhere (`CREATE EXTERNAL TABLE ... STORED AS TARN`): loaded afresh
    /// for every statement, like the warehouse's own tables.
    Tarn {
        location: TableLocation,
        store_url: ObjectStoreUrl,
    },
    /// A view, or anything else DataFusion registers.
    Provider(Arc<dyn TableProvider>),
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
    external: RwLock<HashMap<String, External>>,
}

impl TarnSchema {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn note_created(&self, table: &str) {
        write(&self.tables).insert(table.to_string());
    }

    pub(crate) fn note_dropped(&self, table: &str) {
        write(&self.tables).remove(table);
    }

    /// Whether `table` is a name this session registered (not a warehouse table).
    pub(crate) fn is_external(&self, table: &str) -> bool {
        read(&self.external).contains_key(table)
    }

    /// A tarn table by its name in this namespace, at its newest version.
    async fn load(&self, name: &str) -> Result<Option<TarnTable>> {
        let external = read(&self.external).get(name).cloned();
        let display = format!("{}.{name}", self.namespace);
        let (loaded, store_url) = match external {
            Some(External::Provider(_)) => return Ok(None),
            Some(External::Tarn {
                location,
                store_url,
            }) => (Table::load(location, self.warehouse_env()).await, store_url),
            None => (
                self.warehouse.load_table(&self.namespace, name).await,
                self.store_url.clone(),
            ),
        };
        match loaded {
            Ok(t) => Ok(Some(TarnTable::new(t, display, store_url))),
            Err(
                tarn_core::Error::TableNotFound { .. } | tarn_core::Error::InvalidArgument { .. },
            ) => Ok(None),
            Err(e) => Err(to_df(e)),
        }
    }

    fn warehouse_env(&self) -> tarn_core::Env {
        tarn_core::Env::default()
    }
}

#[async_trait]
impl SchemaProvider for TarnSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.tables).iter().cloned().collect();
        names.extend(read(&self.external).keys().cloned());
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(External::Provider(p)) = read(&self.external).get(name) {
            return Ok(Some(p.clone()));
        }
        let (base, metadata) = match MetadataTable::parse_name(name) {
            Some((base, kind)) => (base, Some(kind)),
            None => (name, None),
        };
        let (base, as_of) = match versioned_name(base) {
            Some((table, as_of)) => (table, Some(as_of?)),
            None => (base, None),
        };
        let Some(mut table) = self.load(base).await? else {
            return Ok(None);
        };
        if let Some(as_of) = as_of {
            table = table.at(as_of)?;
        }
        match metadata {
            Some(kind) => {
                let at = table.read_table().await?;
                metadata_tables::provider(&at, kind).await.map(Some)
            }
            None => Ok(Some(Arc::new(table))),
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        // Views and external tarn tables live for the session; anything else would be an
        // in-memory table posing as a tarn one.
        let entry = if let Some(tarn) = table.downcast_ref::<TarnTable>() {
            tarn.check_writable("registering")?;
            External::Tarn {
                location: tarn.table().location().clone(),
                store_url: tarn.store_url().clone(),
            }
        } else if table.table_type() == datafusion::logical_expr::TableType::View {
            External::Provider(table)
        } else {
            return Err(DataFusionError::Plan(format!(
                "'{name}' would be an in-memory table; tables in a tarn namespace are tarn tables: \
                 create them with CREATE TABLE through tarn, or register existing ones with \
                 CREATE EXTERNAL TABLE {name} STORED AS TARN LOCATION '<url>'"
            )));
        };
        if read(&self.tables).contains(&name) {
            return Err(DataFusionError::Plan(format!(
                "table '{}.{name}' already exists",
                self.namespace
            )));
        }
        let previous = write(&self.external).insert(name, entry);
        Ok(previous.and_then(|p| match p {
            External::Provider(p) => Some(p),
            External::Tarn { .. } => None,
        }))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = write(&self.external).remove(name) {
            return Ok(match t {
                External::Provider(p) => Some(p),
                External::Tarn { .. } => None,
            });
        }
        Err(DataFusionError::Plan(format!(
            "dropping '{}.{name}' deletes its data; run DROP TABLE through tarn's SQL entry point",
            self.namespace
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        read(&self.tables).contains(name) || read(&self.external).contains_key(name)
    }
}
