//! The warehouse as a DataFusion catalog: namespaces are schemas, tables are tarn tables.
//!
//! Listing names (`schema_names`, `table_names`) is synchronous in DataFusion, so names are
//! cached and refreshed by [`TarnCatalog::refresh`] (the tarn SQL entry point refreshes
//! before statements that list). Resolving a table is asynchronous and always reads storage,
//! so every statement sees the newest version of every table it names, external tables
//! included: a table loaded by an earlier statement costs a freshness probe, and the tables
//! of one statement are probed together before it is planned ([`preloaded`]).
//!
//! Besides plain names a schema resolves `t$snapshots` (and the other metadata tables),
//! `t@v3` and `t@2026-11-25 10:00:00` (time travel), and both together: `t@v3$files`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider, UrlTableFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use tarn_core::{Table, TableLocation, Warehouse};

use crate::error::to_df;
use crate::metadata_tables::{self, MetadataTable};
use crate::provider::TarnTable;
use crate::time_travel::{AsOf, versioned_name};

/// Whether an error says that a table's metadata could not be read as tarn metadata.
fn is_damaged(e: &DataFusionError) -> bool {
    crate::error::tarn_error(e).is_some_and(|t| {
        matches!(
            t.kind(),
            tarn_core::ErrorKind::CorruptData | tarn_core::ErrorKind::Unsupported
        )
    })
}

/// A warehouse registered as a DataFusion catalog.
#[derive(Debug)]
pub struct TarnCatalog {
    warehouse: Warehouse,
    store_url: ObjectStoreUrl,
    schemas: RwLock<BTreeMap<String, Arc<TarnSchema>>>,
    /// Files read by URL (`SELECT * FROM 'x.parquet'`), where the session wants them.
    url_tables: Arc<OnceLock<Arc<dyn UrlTableFactory>>>,
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
            url_tables: Arc::default(),
        });
        catalog.refresh().await?;
        Ok(catalog)
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// Lets the catalog's namespaces resolve names that are not tables as files by URL.
    pub(crate) fn set_url_tables(&self, factory: Arc<dyn UrlTableFactory>) {
        let _ = self.url_tables.set(factory);
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
        match self.warehouse.namespace_exists(namespace).await {
            Ok(true) => {}
            Ok(false) | Err(tarn_core::Error::InvalidName { .. }) => return Ok(false),
            Err(e) => return Err(to_df(e)),
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
                    loaded: RwLock::default(),
                    url_tables: self.url_tables.clone(),
                })
            })
    }

    /// [`Self::ensure_namespace`] for a statement that puts a table in `namespace`: when it
    /// does not exist, an error that says how to create it, or why it cannot be created.
    pub async fn require_namespace(&self, namespace: &str) -> Result<()> {
        if self.ensure_namespace(namespace).await? {
            return Ok(());
        }
        self.warehouse
            .namespace_exists(namespace)
            .await
            .map_err(to_df)?;
        Err(DataFusionError::Plan(format!(
            "namespace '{namespace}' does not exist; create it with CREATE SCHEMA {}",
            crate::names::sql_identifier(namespace)
        )))
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
            Err(tarn_core::Error::TableNotFound { .. } | tarn_core::Error::InvalidName { .. }) => {
                Ok(None)
            }
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

tokio::task_local! {
    /// The tables a statement names, loaded all at once before it is planned (see
    /// [`preloaded`]), by (namespace, table): planning then takes them from here instead of
    /// probing each table's freshness in turn. Local to the planning task, so no other
    /// statement can be handed a table loaded for this one.
    static PRELOADED: HashMap<(String, String), Table>;
}

/// Runs `work` with `table`, which CREATE TABLE AS staged (see
/// [`tarn_core::Table::stage`]), found under its name though the warehouse has no such table
/// yet.
pub(crate) async fn with_staged<T>(
    namespace: &str,
    name: &str,
    table: Table,
    work: impl std::future::Future<Output = T>,
) -> T {
    let key = (namespace.to_string(), name.to_string());
    PRELOADED.scope(HashMap::from([(key, table)]), work).await
}

/// Runs `planning` with the warehouse tables of `names` ((namespace, table) pairs) loaded
/// at their newest versions first, concurrently: a statement over several tables waits for
/// one round of freshness probes (two HEADs each) instead of one per table in turn, which
/// on an object store is one round trip instead of several. Names that are not tables, or
/// fail to load, are left for planning to resolve and report.
pub(crate) async fn preloaded<T>(
    catalog: &TarnCatalog,
    names: Vec<(String, String)>,
    planning: impl std::future::Future<Output = T>,
) -> T {
    let loads = names.into_iter().filter_map(|(namespace, name)| {
        let schema = catalog.tarn_schema(&namespace)?;
        let plain = MetadataTable::parse_name(&name).is_none()
            && versioned_name(&name).is_none()
            && !schema.is_external(&name);
        plain.then_some(async move {
            let loaded = schema.load(&name).await.ok().flatten()?;
            Some(((namespace, name), loaded.table().clone()))
        })
    });
    let tables: HashMap<(String, String), Table> = futures::future::join_all(loads)
        .await
        .into_iter()
        .flatten()
        .collect();
    PRELOADED.scope(tables, planning).await
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
    /// The version each table was last loaded at, so that the next statement only probes
    /// for a newer one.
    loaded: RwLock<HashMap<String, Table>>,
    url_tables: Arc<OnceLock<Arc<dyn UrlTableFactory>>>,
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

    /// Whether `table` is a view this session created.
    pub(crate) fn is_view(&self, table: &str) -> bool {
        matches!(
            read(&self.external).get(table),
            Some(External::Provider(p)) if p.table_type() == datafusion::logical_expr::TableType::View
        )
    }

    /// Where a tarn table of this namespace is: an external table's location, or the
    /// warehouse's; `None` for a name that cannot be a table or is a view.
    fn locate(&self, name: &str) -> Result<Option<(TableLocation, ObjectStoreUrl)>> {
        match read(&self.external).get(name).cloned() {
            Some(External::Provider(_)) => Ok(None),
            Some(External::Tarn {
                location,
                store_url,
            }) => Ok(Some((location, store_url))),
            None => match self.warehouse.table_location(&self.namespace, name) {
                Ok(location) => Ok(Some((location, self.store_url.clone()))),
                Err(tarn_core::Error::InvalidName { .. }) => Ok(None),
                Err(e) => Err(to_df(e)),
            },
        }
    }

    /// A tarn table by its name in this namespace, at its newest version.
    async fn load(&self, name: &str) -> Result<Option<TarnTable>> {
        let Some((location, store_url)) = self.locate(name)? else {
            return Ok(None);
        };
        let display = format!("{}.{name}", self.namespace);
        let key = (self.namespace.clone(), name.to_string());
        if let Ok(Some(table)) = PRELOADED.try_with(|tables| tables.get(&key).cloned())
            && table.location().url() == location.url()
        {
            return Ok(Some(TarnTable::new(table, display, store_url)));
        }
        let external = read(&self.external).contains_key(name);
        // A table loaded by an earlier statement costs a freshness probe, not a reload.
        let cached = read(&self.loaded).get(name).cloned();
        let loaded = match cached {
            Some(table) if table.location().url() == location.url() => table.reload().await,
            _ if external => Table::load(location, tarn_core::Env::default()).await,
            _ => self.warehouse.load_table(&self.namespace, name).await,
        };
        match loaded {
            Ok(t) => {
                write(&self.loaded).insert(name.to_string(), t.clone());
                Ok(Some(TarnTable::new(t, display, store_url)))
            }
            Err(tarn_core::Error::TableNotFound { .. } | tarn_core::Error::InvalidName { .. }) => {
                write(&self.loaded).remove(name);
                Ok(None)
            }
            Err(e) => {
                write(&self.loaded).remove(name);
                Err(to_df(e))
            }
        }
    }

    /// When the newest version of `name` cannot be read: the table as an older version
    /// (or, for the snapshot log, the newest readable one) shows it, from that version's
    /// own file.
    async fn load_despite_damage(
        &self,
        name: &str,
        as_of: Option<AsOf>,
        metadata: Option<MetadataTable>,
    ) -> Result<Option<TarnTable>> {
        let Some((location, store_url)) = self.locate(name)? else {
            return Ok(None);
        };
        let display = format!("{}.{name}", self.namespace);
        let env = tarn_core::Env::default();
        let table = match (as_of, metadata) {
            (Some(AsOf::Version(v)), _) => {
                Some(Table::load_version(location, env, tarn_spec::Version(v)).await)
            }
            (None, Some(MetadataTable::Snapshots)) => {
                Table::load_readable(location, env).await.transpose()
            }
            _ => None,
        };
        match table {
            Some(t) => Ok(Some(TarnTable::new(t.map_err(to_df)?, display, store_url))),
            None => Ok(None),
        }
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
        if as_of.is_some() && matches!(read(&self.external).get(base), Some(External::Provider(_)))
        {
            return Err(DataFusionError::Plan(format!(
                "time travel needs a tarn table, and '{}.{base}' is not one",
                self.namespace
            )));
        }
        let mut table = match self.load(base).await {
            Ok(Some(t)) => t,
            Ok(None) if as_of.is_none() && metadata.is_none() => {
                return match self.url_tables.get() {
                    Some(files) => files.try_new(name).await,
                    None => Ok(None),
                };
            }
            // `t@v3` of a table that does not exist says so, by the table's name.
            Ok(None) if as_of.is_some() => {
                return Err(DataFusionError::Plan(format!(
                    "table '{}.{base}' does not exist",
                    self.namespace
                )));
            }
            Ok(None) => return Ok(None),
            // A damaged newest version hides nothing the older ones can show.
            Err(e) if is_damaged(&e) => {
                match self.load_despite_damage(base, as_of, metadata).await? {
                    Some(t) => t,
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        if let Some(as_of) = as_of {
            table = table.at_any(as_of).await?;
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
        } else if let Some(view) = table.downcast_ref::<datafusion::catalog::view::ViewTable>() {
            External::Provider(Arc::new(crate::view::LiveView::new(view)))
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

    async fn table_type(&self, name: &str) -> Result<Option<datafusion::logical_expr::TableType>> {
        // Listing tables reads no metadata: one damaged table must not hide the others.
        if let Some(External::Provider(p)) = read(&self.external).get(name) {
            return Ok(Some(p.table_type()));
        }
        Ok(self
            .table_exist(name)
            .then_some(datafusion::logical_expr::TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        read(&self.tables).contains(name) || read(&self.external).contains_key(name)
    }
}
