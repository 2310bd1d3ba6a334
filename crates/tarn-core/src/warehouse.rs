//! A warehouse: a root location holding namespaces, each holding tables.
//!
//! ```text
//! <root>/<namespace>/_namespace          marker object: the namespace exists
//! <root>/<namespace>/<table>/metadata/   the table's version files and manifests
//! <root>/<namespace>/<table>/data/       its data files
//! ```

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::local_disk;
use crate::location::TableLocation;
use crate::log;
use crate::requests::RequestCounts;
use crate::storage::{StoreOptions, StoreRoot, open_location_with};
use crate::table::{DROPPED_PROPERTY, MetadataCache, Table, TableDefinition};
use crate::transaction::{Change, RENAMED_TO_PROPERTY};
use tarn_spec::MetadataUpdate;

const NAMESPACE_MARKER: &str = "_namespace";

/// Every object under a table's root: its version files and version hint, then the rest.
async fn table_objects(location: &TableLocation) -> Result<(Vec<ObjectMeta>, Vec<Path>)> {
    // A local directory removed while it is listed (by a writer taking back a version it
    // created during a drop) ends the listing with NotFound: list again.
    let mut attempts = 0;
    let all: Vec<ObjectMeta> = loop {
        let listed: std::result::Result<Vec<ObjectMeta>, _> = location
            .store()
            .list(Some(location.root()))
            .try_collect()
            .await;
        match listed {
            Ok(all) => break all,
            Err(object_store::Error::NotFound { .. }) if attempts < 3 => attempts += 1,
            Err(e) => return Err(Error::store(location.describe(""), e)),
        }
    };
    let (versions, rest): (Vec<ObjectMeta>, Vec<ObjectMeta>) = all
        .into_iter()
        .partition(|object| is_version_object(location, &object.location));
    Ok((versions, rest.into_iter().map(|m| m.location).collect()))
}

/// Whether `path` is one of a table's version files or its version hint.
fn is_version_object(location: &TableLocation, path: &Path) -> bool {
    path.prefix_matches(&location.path(log::METADATA_DIR))
        && path
            .filename()
            .is_some_and(|f| f.ends_with(".json") || f == "version-hint")
}

/// What a namespace holds (see [`Warehouse::list_locations`]).
#[derive(Debug, Default)]
pub struct NamespaceLocations {
    /// Table names, sorted.
    pub tables: Vec<String>,
    /// Locations that hold objects but no table, by the name they would have.
    pub without_table: Vec<(String, TableLocation)>,
}

/// A collection of namespaces and tables under one root location.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: StoreRoot,
    env: Env,
    /// Decoded manifests and manifest lists of every table loaded through this warehouse.
    cache: Arc<MetadataCache>,
}

impl Warehouse {
    /// Opens the warehouse at a local path or URL (see [`crate::storage`]).
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &StoreOptions::new())
    }

    /// Opens the warehouse at a URL with store options, such as an S3 endpoint and
    /// credentials (see [`StoreOptions`]).
    pub fn open_with(location: &str, options: &StoreOptions) -> Result<Self> {
        Ok(Warehouse {
            root: open_location_with(location, options)?,
            env: Env::default(),
            cache: Arc::default(),
        })
    }

    /// A warehouse at `root` inside `store`; `url` names it in messages.
    pub fn from_store(store: Arc<dyn ObjectStore>, root: Path, url: impl Into<String>) -> Self {
        Warehouse {
            root: StoreRoot::new(store, root, url),
            env: Env::default(),
            cache: Arc::default(),
        }
    }

    /// This warehouse with another clock and id generator.
    pub fn with_env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    pub fn url(&self) -> &str {
        &self.root.url
    }

    /// The requests made to the warehouse's store so far (read twice and subtract to see
    /// what an operation cost).
    pub fn requests(&self) -> RequestCounts {
        self.root.requests.read()
    }

    /// Checks that the warehouse's store can take tarn's commits (see
    /// [`StoreRoot::check_conditional_writes`]): a missing bucket, refused credentials or a
    /// store without conditional writes is found here, before anything is written.
    pub async fn check_store(&self) -> Result<()> {
        self.root
            .check_conditional_writes(&self.env.next_id())
            .await
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.root.store
    }

    fn path(&self, parts: &[&str]) -> Path {
        parts
            .iter()
            .fold(self.root.root.clone(), |p, part| p.join(*part))
    }

    pub async fn create_namespace(&self, namespace: &str) -> Result<()> {
        check_name("namespace", namespace)?;
        if RESERVED_NAMESPACES.contains(&namespace.to_ascii_lowercase().as_str()) {
            return Err(Error::invalid(
                "namespace",
                format!(
                    "'{namespace}' is reserved for the SQL engine's own tables; choose another name"
                ),
            ));
        }
        let url = format!("{}/{namespace}", self.root.url.trim_end_matches('/'));
        let location = TableLocation::new(self.root.store.clone(), self.path(&[namespace]), url);
        if location
            .put_if_absent(NAMESPACE_MARKER, bytes::Bytes::from_static(b"{}"))
            .await?
            .is_some()
        {
            Ok(())
        } else {
            Err(Error::AlreadyExists {
                what: "namespace",
                name: namespace.to_string(),
            })
        }
    }

    pub async fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        check_name("namespace", namespace)?;
        let marker = self.path(&[namespace, NAMESPACE_MARKER]);
        match self.root.store.head(&marker).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(marker, e)),
        }
    }

    /// Namespace names, sorted.
    pub async fn list_namespaces(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for candidate in self.child_names(&self.root.root).await? {
            // Folders whose names no namespace can have (`_tarn_probe`) are not one.
            if check_name("namespace", &candidate).is_ok()
                && self.namespace_exists(&candidate).await?
            {
                names.push(candidate);
            }
        }
        Ok(names)
    }

    /// Drops an empty namespace.
    pub async fn drop_namespace(&self, namespace: &str) -> Result<()> {
        self.require_namespace(namespace).await?;
        let tables = self.list_tables(namespace).await?;
        if !tables.is_empty() {
            return Err(Error::invalid(
                "drop",
                format!(
                    "namespace '{namespace}' still holds tables ({}); drop them first (DROP SCHEMA \
                     ... CASCADE drops them with it)",
                    tables.join(", ")
                ),
            ));
        }
        let marker = self.path(&[namespace, NAMESPACE_MARKER]);
        self.root
            .store
            .delete(&marker)
            .await
            .map_err(|e| Error::store(marker, e))
    }

    /// Table names in a namespace, sorted.
    pub async fn list_tables(&self, namespace: &str) -> Result<Vec<String>> {
        Ok(self.list_locations(namespace).await?.tables)
    }

    /// What a namespace holds, in one pass: its tables, and the locations named as a table
    /// could be that hold objects but no table (what a CREATE TABLE AS that failed or was
    /// killed before its commit created the table left, see
    /// [`crate::maintenance::remove_abandoned_files`]).
    pub async fn list_locations(&self, namespace: &str) -> Result<NamespaceLocations> {
        self.require_namespace(namespace).await?;
        let mut found = NamespaceLocations::default();
        for candidate in self.child_names(&self.path(&[namespace])).await? {
            if check_name("table", &candidate).is_err() {
                continue;
            }
            let location = self.table_location(namespace, &candidate)?;
            if log::latest_version(&location).await?.is_some() {
                found.tables.push(candidate);
            } else {
                found.without_table.push((candidate, location));
            }
        }
        Ok(found)
    }

    async fn child_names(&self, prefix: &Path) -> Result<Vec<String>> {
        let listing = self
            .root
            .store
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| Error::store(prefix, e))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn require_namespace(&self, namespace: &str) -> Result<()> {
        if self.namespace_exists(namespace).await? {
            Ok(())
        } else {
            Err(Error::NamespaceNotFound {
                namespace: namespace.to_string(),
            })
        }
    }

    /// Where a table of this warehouse lives (whether or not it exists).
    pub fn table_location(&self, namespace: &str, table: &str) -> Result<TableLocation> {
        check_name("namespace", namespace)?;
        check_name("table", table)?;
        let url = format!(
            "{}/{namespace}/{table}",
            self.root.url.trim_end_matches('/')
        );
        Ok(TableLocation::new(
            self.root.store.clone(),
            self.path(&[namespace, table]),
            url,
        ))
    }

    pub async fn create_table(
        &self,
        namespace: &str,
        table: &str,
        definition: TableDefinition,
    ) -> Result<Table> {
        self.new_table(namespace, table, definition, false).await
    }

    /// A new table staged for creation by its first commit (see [`Table::stage`]): what
    /// CREATE TABLE AS writes its rows to.
    pub async fn stage_table(
        &self,
        namespace: &str,
        table: &str,
        definition: TableDefinition,
    ) -> Result<Table> {
        self.new_table(namespace, table, definition, true).await
    }

    /// A new table in an existing namespace, created or (with `staged`) staged; a name
    /// taken is named as the user wrote it.
    async fn new_table(
        &self,
        namespace: &str,
        table: &str,
        definition: TableDefinition,
        staged: bool,
    ) -> Result<Table> {
        self.require_namespace(namespace).await?;
        let location = self.table_location(namespace, table)?;
        let env = self.env.clone();
        let made = match staged {
            true => Table::stage(location, definition, env).await,
            false => Table::create(location, definition, env).await,
        };
        made.map(|t| t.with_cache(self.cache.clone()))
            .map_err(|e| match e {
                Error::AlreadyExists { what, .. } => Error::AlreadyExists {
                    what,
                    name: format!("{namespace}.{table}"),
                },
                e => e,
            })
    }

    pub async fn load_table(&self, namespace: &str, table: &str) -> Result<Table> {
        let location = self.table_location(namespace, table)?;
        Table::load(location, self.env.clone())
            .await
            .map(|t| t.with_cache(self.cache.clone()))
            .map_err(|e| match e {
                Error::TableNotFound { .. } => Error::TableNotFound {
                    table: format!("{namespace}.{table}"),
                },
                e => e,
            })
    }

    /// Renames a table, possibly into another namespace.
    ///
    /// Object stores have no rename of a prefix, so this runs in three steps, each safe to
    /// repeat:
    /// 1. The old table takes one last commit setting [`RENAMED_TO_PROPERTY`]; from then on
    ///    every tarn writer of the old name stops with [`Error::TableRenamed`] instead of
    ///    committing (one racing this commit loses the put-if-absent and then finds it).
    /// 2. Every object but the version files is copied to the new location (a hard link on
    ///    local disk, a server-side copy on cloud stores), then the version files up to the
    ///    sealing one, oldest first: the new name exists only once it is complete.
    /// 3. The old location is deleted, version files first.
    ///
    /// A reader of the old name during step 3 may fail on a missing file. After a crash,
    /// running the same rename again finishes it.
    pub async fn rename_table(
        &self,
        namespace: &str,
        table: &str,
        to_namespace: &str,
        to_table: &str,
    ) -> Result<()> {
        let target = self.table_location(to_namespace, to_table)?;
        let to = format!("{to_namespace}.{to_table}");
        self.require_namespace(to_namespace).await?;
        if log::latest_version(&target).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: "table",
                name: to,
            });
        }
        let old = self.load_table(namespace, table).await?;
        let sealed = match old.metadata().properties().get(RENAMED_TO_PROPERTY) {
            Some(already) if *already == to => old,
            Some(other) => return Err(Error::TableRenamed { to: other.clone() }),
            None => {
                old.commit(Change::Metadata {
                    updates: vec![MetadataUpdate::SetProperties(
                        [(RENAMED_TO_PROPERTY.to_string(), to.clone())].into(),
                    )],
                    data_dependent: false,
                })
                .await?
            }
        };
        let store = self.root.store.clone();
        let source = sealed.location();
        let (_, rest) = table_objects(source).await?;
        let relative = |p: &Path| -> String {
            p.prefix_match(source.root())
                .map(|parts| {
                    parts
                        .map(|x| x.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .unwrap_or_default()
        };
        // Data files, manifests and manifest lists have unique names: a plain copy. Stores
        // without copy-if-not-exists (S3 unless configured) take these too.
        let copy = |from: &Path| {
            let to = target.path(&relative(from));
            let store = store.clone();
            let from = from.clone();
            async move {
                store
                    .copy(&from, &to)
                    .await
                    .map_err(|e| Error::store(&from, e))
            }
        };
        futures::stream::iter(rest.iter().map(copy))
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        // Version files are created, never overwritten: a table created at the new name
        // meanwhile keeps its versions. One copied already is a rename repeated.
        // The sealing version stays behind: the new table ends at the version before it.
        let last = sealed.version().get().saturating_sub(1);
        for version in 0..=last {
            let file = log::version_file(tarn_spec::Version(version));
            let bytes = source.get(&file).await?;
            target.put_if_absent(&file, bytes).await?;
        }
        log::write_hint(&target, tarn_spec::Version(last)).await;
        delete_table_objects(source).await
    }

    /// Drops `table` only if nothing was committed to it since the version given, as
    /// [`Warehouse::drop_table`] does otherwise. For taking back a table a failed or
    /// cancelled statement created: a table made again under the name, or written to by
    /// another session meanwhile, stays, and this returns a conflict.
    pub async fn drop_table_at(&self, table: &Table) -> Result<()> {
        // Data-dependent: a concurrent commit of data conflicts instead of rebasing.
        table.commit(seal_dropped(true)).await?;
        delete_table_objects(table.location()).await
    }

    /// Deletes a table and all its files, in three steps, each safe to repeat:
    /// 1. The table takes one last commit setting [`DROPPED_PROPERTY`]: from then on readers
    ///    see no table and every tarn writer stops with [`Error::TableDropped`] (one racing
    ///    this commit loses the put-if-absent and then finds it).
    /// 2. Version files are deleted one at a time, oldest first. A writer that could still
    ///    create a version (because its number was deleted) then finds its base version gone
    ///    and takes its version back (see `transaction`), so no write is acknowledged for a
    ///    dropped table and no version of it is left behind.
    /// 3. Everything else under the table's location is deleted.
    pub async fn drop_table(&self, namespace: &str, table: &str) -> Result<()> {
        let location = self.table_location(namespace, table)?;
        let not_found = || Error::TableNotFound {
            table: format!("{namespace}.{table}"),
        };
        let latest = match Table::load(location.clone(), self.env.clone()).await {
            Ok(t) => Some(t.with_cache(self.cache.clone())),
            // Sealed already: a DROP that stopped half way is finished.
            Err(Error::TableNotFound { .. }) if log::latest_version(&location).await?.is_some() => {
                None
            }
            Err(Error::TableNotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e),
        };
        if let Some(table) = latest {
            if let Some(to) = table.metadata().properties().get(RENAMED_TO_PROPERTY) {
                return Err(Error::TableRenamed { to: to.clone() });
            }
            table.commit(seal_dropped(false)).await?;
        }
        delete_table_objects(&location).await
    }
}

/// The last commit a dropped table takes: [`DROPPED_PROPERTY`] set.
fn seal_dropped(data_dependent: bool) -> Change {
    Change::Metadata {
        updates: vec![MetadataUpdate::SetProperties(
            [(DROPPED_PROPERTY.to_string(), "true".to_string())].into(),
        )],
        data_dependent,
    }
}

/// Deletes everything under a table's location: version files one at a time and oldest
/// first (see [`Warehouse::drop_table`]), then the rest.
async fn delete_table_objects(location: &TableLocation) -> Result<()> {
    let store = location.store().clone();
    let (mut versions, rest) = table_objects(location).await?;
    // The newest of them is the version that sealed the table (or the hint written after it).
    let sealed_at_ms = versions
        .iter()
        .map(|v| v.last_modified.timestamp_millis())
        .max();
    versions.sort_by(|a, b| a.location.cmp(&b.location));
    for version in versions {
        match store.delete(&version.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(&version.location, e)),
        }
    }
    let stream = futures::stream::iter(rest.into_iter().map(Ok)).boxed();
    let mut deleted = store.delete_stream(stream);
    while let Some(result) = deleted.next().await {
        match result {
            // Gone already (a writer took its own objects back meanwhile).
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(location.describe(""), e)),
        }
    }
    // On local disk, what killed writers were writing when the table was sealed: last
    // written before the seal, so no write to a table created again under the name since
    // (whose files are all younger) loses its file. A drop resumed after its version files
    // were deleted has no seal to compare with and leaves them.
    if let Some(sealed_at_ms) = sealed_at_ms {
        let staging = local_disk::staging_files(location, sealed_at_ms).await?;
        local_disk::remove(location, &staging).await?;
    }
    Ok(())
}

/// Names are path segments: letters, digits, `_` and `-`, not starting with `_`.
fn check_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('_')
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

/// Namespace names SQL engines keep for themselves.
const RESERVED_NAMESPACES: &[&str] = &["information_schema", "pg_catalog"];
