//! A table at one version: its metadata, how to read its manifests, and the entry points for
//! writing and committing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use roaring::RoaringTreemap;
use tarn_spec::{Field, PartitionField, Schema, Snapshot, TableMetadata, Version};

use crate::deletes::{self, DeletionVector};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::TableLocation;
use crate::log;
use crate::manifest::Manifest;
use crate::manifest_list::ManifestList;
use crate::scan::{self, FilePredicate, ScanPlan};
use crate::transaction::RetryPolicy;
use crate::writer::{DataFileWriter, WriterOptions};

/// What CREATE TABLE needs.
#[derive(Debug, Clone, Default)]
pub struct TableDefinition {
    pub fields: Vec<Field>,
    pub partition_fields: Vec<PartitionField>,
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Manifests and manifest lists are immutable and their names unique, so they are cached by
/// store path: for the life of a table handle and every handle derived from it, and across
/// all tables a [`crate::Warehouse`] loads (each query loads the newest version of a table
/// afresh, but need not decode its manifests again).
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    manifests: Mutex<HashMap<String, Arc<Manifest>>>,
    lists: Mutex<HashMap<String, Arc<ManifestList>>>,
    vectors: Mutex<HashMap<String, Arc<RoaringTreemap>>>,
    /// The newest version committed through this cache's handles, by table location: a
    /// handle loaded before that commit reloads to it with two HEADs, not a read.
    committed: Mutex<HashMap<String, Committed>>,
}

/// A version a handle committed, as [`MetadataCache`] remembers it.
#[derive(Debug, Clone)]
struct Committed {
    metadata: Arc<TableMetadata>,
    tag: Option<String>,
}

/// Entries kept per cache before it is cleared; bounds memory on long-lived handles.
const CACHE_LIMIT: usize = 4096;

fn cache_get<T>(map: &Mutex<HashMap<String, Arc<T>>>, key: &str) -> Option<Arc<T>> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .cloned()
}

fn cache_put<T>(map: &Mutex<HashMap<String, Arc<T>>>, key: &str, value: Arc<T>) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= CACHE_LIMIT {
        map.clear();
    }
    map.insert(key.to_string(), value);
}

/// What a replacement (see [`Table::replacement`]) replaces.
#[derive(Debug)]
pub(crate) struct Replaced {
    /// The table as the replacement was made from it: its commit builds on this version.
    pub(crate) base: Table,
    pub(crate) updates: Vec<tarn_spec::MetadataUpdate>,
}

/// A table at one version. Cheap to clone. Reading never changes it; a commit returns a new
/// `Table` at the committed version.
#[derive(Debug, Clone)]
pub struct Table {
    location: TableLocation,
    metadata: Arc<TableMetadata>,
    /// The entity tag of this version's file, when known: a commit on top of this version
    /// checks that the file is still this one (see `transaction`).
    version_tag: Option<String>,
    /// Not written yet: the first commit creates version 0 (see [`Table::stage`]).
    staged: bool,
    /// The table this handle's definition replaces, when it is a replacement (see
    /// [`Table::replacement`]).
    replaces: Option<Arc<Replaced>>,
    env: Env,
    retry: RetryPolicy,
    cache: Arc<MetadataCache>,
}

impl Table {
    /// Creates version 0 of a new table at `location`.
    pub async fn create(
        location: TableLocation,
        definition: TableDefinition,
        env: Env,
    ) -> Result<Table> {
        Table::version_zero(location, definition, env)?
            .create_staged()
            .await
    }

    /// A new table at `location` staged for creation: nothing is written until its first
    /// commit, which creates version 0 and then commits on it, so a CREATE TABLE AS that
    /// fails or is killed while it writes its rows leaves no table behind (Iceberg's staged
    /// create). Fails if a table exists there now; one created there meanwhile makes the
    /// first commit fail instead.
    pub async fn stage(
        location: TableLocation,
        definition: TableDefinition,
        env: Env,
    ) -> Result<Table> {
        let staged = Table::version_zero(location, definition, env)?;
        if log::latest_version(&staged.location).await?.is_some() {
            return Err(Error::AlreadyExists {
                what: "table",
                name: staged.location.url().to_string(),
            });
        }
        Ok(staged)
    }

    /// Version 0 of a new table at `location`, not yet written.
    fn version_zero(
        location: TableLocation,
        definition: TableDefinition,
        env: Env,
    ) -> Result<Table> {
        let metadata = TableMetadata::create(
            env.next_id(),
            definition.fields,
            definition.partition_fields,
            definition.properties,
            env.now_ms(),
        )
        .map_err(Error::InvalidMetadata)?;
        crate::properties::validate(metadata.properties())?;
        Ok(Table {
            staged: true,
            ..Table::from_parts(location, Arc::new(metadata), None, env)
        })
    }

    /// A new definition for this table (CREATE OR REPLACE TABLE): a handle with the new
    /// schema, partition spec and properties, to write the new data with. Its commit, of an
    /// append of that data (or of no files), replaces the definition and every data file in
    /// one version ([`crate::Change::Replace`]), keeping the history; a commit to the table
    /// meanwhile makes it conflict. Columns that keep their name and shape keep their field
    /// ids; properties only tarn sets stay.
    pub fn replacement(&self, definition: TableDefinition) -> Result<Table> {
        if self.staged || self.replaces.is_some() {
            return Err(Error::invalid(
                "replacement",
                "only a table that exists can be replaced",
            ));
        }
        let metadata = self.metadata();
        let updates = metadata
            .replacement(
                definition.fields,
                definition.partition_fields,
                &definition.properties,
                crate::properties::set_by_tarn,
            )
            .map_err(Error::InvalidMetadata)?;
        let next = metadata
            .with_updates(&updates)
            .map_err(Error::InvalidMetadata)?;
        crate::properties::validate(next.properties())?;
        Ok(Table {
            metadata: Arc::new(next),
            replaces: Some(Arc::new(Replaced {
                base: self.clone(),
                updates,
            })),
            ..self.clone()
        })
    }

    /// Whether this handle is a replacement (see [`Table::replacement`]).
    pub fn is_replacement(&self) -> bool {
        self.replaces.is_some()
    }

    /// For a replacement: the table it replaces and the updates that replace its definition.
    pub(crate) fn replaced(&self) -> Option<&Replaced> {
        self.replaces.as_deref()
    }

    /// Whether this table is staged: its version 0 not written yet (see [`Table::stage`]).
    pub fn is_staged(&self) -> bool {
        self.staged
    }

    /// The table once created: this staged table's version 0 written (put-if-absent), or,
    /// if an earlier attempt wrote it (the same table id), the table as it is now. Fails if
    /// another table took the location.
    pub async fn create_staged(&self) -> Result<Table> {
        if !self.staged {
            return Ok(self.clone());
        }
        let path = log::version_file(Version(0));
        match self
            .location
            .put_if_absent(&path, self.metadata.to_json().into())
            .await?
        {
            Some(tag) => {
                log::write_hint(&self.location, Version(0)).await;
                Ok(self.with_metadata((*self.metadata).clone(), tag))
            }
            None => match self.created_meanwhile().await? {
                Some(created) => Ok(created),
                None => Err(Error::AlreadyExists {
                    what: "table",
                    name: self.location.url().to_string(),
                }),
            },
        }
    }

    /// For a staged table: the table at its newest version if this table's version 0 was
    /// written (by an earlier attempt of its commit); `None` if no table or another one is at
    /// the location.
    async fn created_meanwhile(&self) -> Result<Option<Table>> {
        match Table::load(self.location.clone(), self.env.clone()).await {
            Ok(t) if t.metadata.table_uuid() == self.metadata.table_uuid() => Ok(Some(
                t.with_cache(self.cache.clone())
                    .with_retry_policy(self.retry.clone()),
            )),
            Ok(_) | Err(Error::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest version of the table at `location`. A table whose newest version seals
    /// it as dropped (a DROP TABLE in progress) does not exist.
    pub async fn load(location: TableLocation, env: Env) -> Result<Table> {
        let not_found = || Error::TableNotFound {
            table: location.url().to_string(),
        };
        let file = log::read_latest(&location).await?.ok_or_else(not_found)?;
        if is_dropped(&file.metadata) {
            return Err(not_found());
        }
        Ok(Table::from_parts(
            location,
            Arc::new(file.metadata),
            file.tag,
            env,
        ))
    }

    /// The newest version of this table, as [`Table::load`] finds it, but cheaply when nothing
    /// was committed since this one was loaded: two HEAD requests (the next version is absent,
    /// and this version's file is still the one read, by its entity tag, so a table dropped and
    /// created again under the name is not mistaken for it) instead of reading the hint and
    /// the version file.
    ///
    /// The two requests go out together, so the check costs one round trip. Their order does
    /// not matter: when both pass, this version was the newest at the moment the next one was
    /// seen absent or, if a DROP TABLE sealed and removed it meanwhile, at a moment the
    /// statement overlapped that drop, which it may then be ordered before.
    ///
    /// The version to check is this one, or the newer one a commit through a handle sharing
    /// this one's cache made since (a statement after a write in the same session).
    pub async fn reload(&self) -> Result<Table> {
        if self.staged {
            return self.staged_newest().await;
        }
        let known = self.last_committed().unwrap_or_else(|| self.clone());
        let next = log::version_file(known.version().next());
        let current = log::version_file(known.version());
        let (next_exists, current_tag) = futures::try_join!(
            self.location.exists(&next),
            self.location.head_tag(&current)
        )?;
        if !next_exists
            && let Some(tag) = known.version_tag()
            && let Some(Some(now)) = current_tag
            && tag == now
        {
            return Ok(known);
        }
        Ok(Table::load(self.location.clone(), self.env.clone())
            .await?
            .with_cache(self.cache.clone())
            .with_retry_policy(self.retry.clone()))
    }

    /// The version committed last through this handle's cache, when newer than this one.
    fn last_committed(&self) -> Option<Table> {
        let committed = self
            .cache
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(self.location.url())
            .cloned()?;
        let same_table = committed.metadata.table_uuid() == self.metadata.table_uuid();
        (same_table && committed.metadata.version() > self.version()).then(|| Table {
            metadata: committed.metadata,
            version_tag: committed.tag,
            staged: false,
            replaces: None,
            ..self.clone()
        })
    }

    /// Remembers this version as committed through this handle's cache (see
    /// [`Table::reload`]).
    pub(crate) fn remember_committed(&self) {
        let mut committed = self
            .cache
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = self.location.url().to_string();
        // A table created again under the name replaces the dropped one's version.
        let newer = committed.get(&key).is_none_or(|c| {
            c.metadata.table_uuid() != self.metadata.table_uuid()
                || c.metadata.version() < self.version()
        });
        if newer {
            if committed.len() >= CACHE_LIMIT {
                committed.clear();
            }
            committed.insert(
                key,
                Committed {
                    metadata: self.metadata.clone(),
                    tag: self.version_tag.clone(),
                },
            );
        }
    }

    /// One version of the table at `location`, read from its own version file alone (so it
    /// can be read even when a newer version file is damaged).
    pub async fn load_version(
        location: TableLocation,
        env: Env,
        version: Version,
    ) -> Result<Table> {
        match log::read_version(&location, version).await {
            Ok(file) => Ok(Table::from_parts(
                location,
                Arc::new(file.metadata),
                file.tag,
                env,
            )),
            Err(Error::MissingFile { .. }) => {
                let latest =
                    log::latest_version(&location)
                        .await?
                        .ok_or_else(|| Error::TableNotFound {
                            table: location.url().to_string(),
                        })?;
                let oldest = log::oldest_version(&location).await?.unwrap_or(Version(0));
                Err(Error::VersionNotFound {
                    requested: version,
                    oldest,
                    latest,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The newest version of the table at `location` whose version file can be read: the
    /// newest, unless that one is damaged. `None` if no version can be read.
    pub async fn load_readable(location: TableLocation, env: Env) -> Result<Option<Table>> {
        let Some(latest) = log::latest_version(&location).await? else {
            return Ok(None);
        };
        let mut version = latest.get();
        loop {
            match log::read_version(&location, Version(version)).await {
                Ok(file) => {
                    return Ok(Some(Table::from_parts(
                        location,
                        Arc::new(file.metadata),
                        file.tag,
                        env,
                    )));
                }
                Err(e) if e.kind() == crate::ErrorKind::CorruptData && version > 0 => version -= 1,
                Err(Error::MissingFile { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The table at `location` at the version whose metadata (the version file's bytes,
    /// [`TableMetadata::to_json`]) another process already read: for a process that runs
    /// part of a statement planned elsewhere and must see exactly what the planner saw,
    /// without reading storage. A commit from it checks for conflicts by version, as from
    /// any table whose version file's entity tag is unknown.
    /// `staged` as [`Table::is_staged`] was there.
    pub fn pinned(
        location: TableLocation,
        metadata: &[u8],
        staged: bool,
        env: Env,
    ) -> Result<Table> {
        let metadata = TableMetadata::from_json(metadata).map_err(Error::InvalidMetadata)?;
        Ok(Table {
            staged,
            ..Table::from_parts(location, Arc::new(metadata), None, env)
        })
    }

    fn from_parts(
        location: TableLocation,
        metadata: Arc<TableMetadata>,
        version_tag: Option<String>,
        env: Env,
    ) -> Table {
        Table {
            location,
            metadata,
            version_tag,
            staged: false,
            replaces: None,
            env,
            retry: RetryPolicy::default(),
            cache: Arc::default(),
        }
    }

    /// This handle caching manifests in `cache`.
    pub(crate) fn with_cache(mut self, cache: Arc<MetadataCache>) -> Table {
        self.cache = cache;
        self
    }

    /// The same table at another version, sharing caches and settings.
    pub(crate) fn with_metadata(
        &self,
        metadata: TableMetadata,
        version_tag: Option<String>,
    ) -> Table {
        Table {
            metadata: Arc::new(metadata),
            version_tag,
            staged: false,
            replaces: None,
            ..self.clone()
        }
    }

    fn with_version_file(&self, file: log::VersionFile) -> Table {
        self.with_metadata(file.metadata, file.tag)
    }

    /// The entity tag of this version's file, when known.
    pub(crate) fn version_tag(&self) -> Option<&str> {
        self.version_tag.as_deref()
    }

    /// This handle with another commit retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Table {
        self.retry = retry;
        self
    }

    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// The last sequence number `app_id` committed to this table at this version (see
    /// [`crate::AppCommit`]), where a restarted job resumes from.
    pub fn app_sequence(&self, app_id: &str) -> Option<u64> {
        self.metadata()
            .properties()
            .get(&crate::transaction::app_sequence_property(app_id))
            .and_then(|v| v.parse().ok())
    }

    pub fn metadata(&self) -> &TableMetadata {
        &self.metadata
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn version(&self) -> Version {
        self.metadata.version()
    }

    pub fn snapshot(&self) -> &Snapshot {
        self.metadata.current_snapshot()
    }

    /// The schema of this version.
    pub fn schema(&self) -> &Schema {
        self.metadata.current_schema()
    }

    /// A staged table as [`Table::reload`] and [`Table::refresh`] find it: created by now (by
    /// an earlier attempt of its commit), or still staged.
    async fn staged_newest(&self) -> Result<Table> {
        Ok(self
            .created_meanwhile()
            .await?
            .unwrap_or_else(|| self.clone()))
    }

    /// The newest version of this table.
    pub async fn refresh(&self) -> Result<Table> {
        if self.staged {
            return self.staged_newest().await;
        }
        let latest =
            log::latest_version(&self.location)
                .await?
                .ok_or_else(|| Error::TableNotFound {
                    table: self.location.url().to_string(),
                })?;
        if latest == self.version() {
            return Ok(self.clone());
        }
        match log::read_version(&self.location, latest).await {
            Ok(file) => Ok(self.with_version_file(file)),
            // Found a moment ago and gone now: DROP TABLE is deleting the versions.
            Err(Error::MissingFile { .. }) => Err(Error::TableNotFound {
                table: self.location.url().to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Every version committed after this one, in order, as it lands: a stream that never
    /// ends by itself, for pipelines that tail a table. It looks for a new version every
    /// `poll.min` at first, waits twice as long after each look that finds none (up to
    /// `poll.max`), and goes back to `poll.min` once one lands. Versions that land together
    /// come one by one. A version expired before it was read is an error naming the oldest
    /// one left; so is the table being dropped.
    pub fn follow(&self, poll: FollowPoll) -> impl futures::Stream<Item = Result<Table>> + use<> {
        let state = (self.clone(), poll.min);
        futures::stream::unfold(Some(state), move |state| async move {
            let (mut last, mut wait) = state?;
            loop {
                let newest = match last.refresh().await {
                    Ok(newest) => newest,
                    Err(e) => return Some((Err(e), None)),
                };
                if newest.metadata().table_uuid() != last.metadata().table_uuid()
                    || is_dropped(newest.metadata())
                {
                    let gone = Error::TableDropped {
                        table: last.location().url().to_string(),
                    };
                    return Some((Err(gone), None));
                }
                if newest.version() > last.version() {
                    let next = match newest.at_version(last.version().next()).await {
                        Ok(next) => next,
                        Err(e) => return Some((Err(e), None)),
                    };
                    last = next.clone();
                    return Some((Ok(next), Some((last, poll.min))));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(poll.max);
            }
        })
    }

    /// The table as it was at `version` (time travel), with that version's schema.
    pub async fn at_version(&self, version: Version) -> Result<Table> {
        if version == self.version() {
            return Ok(self.clone());
        }
        match log::read_version(&self.location, version).await {
            Ok(file) => Ok(self.with_version_file(file)),
            Err(Error::MissingFile { .. }) => {
                let latest = log::latest_version(&self.location)
                    .await?
                    .unwrap_or(self.version());
                let oldest = log::oldest_version(&self.location)
                    .await?
                    .unwrap_or(Version(0));
                Err(Error::VersionNotFound {
                    requested: version,
                    oldest,
                    latest,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The table as it was at `timestamp_ms` (milliseconds since the epoch): the newest
    /// version committed at or before it.
    pub async fn at_timestamp(&self, timestamp_ms: i64) -> Result<Table> {
        let latest = self.refresh().await?;
        let version = match latest.metadata.snapshot_at(timestamp_ms) {
            Some(snapshot) => snapshot.version,
            None => latest.version_before_log(timestamp_ms).await?,
        };
        latest.at_version(version).await
    }

    /// The newest version committed at or before `timestamp_ms`, which is older than the
    /// first entry of this version's log: bisects the version files before it, each of
    /// which carries the log of the versions just before it.
    async fn version_before_log(&self, timestamp_ms: i64) -> Result<Version> {
        let first = self.metadata.snapshots()[0].clone();
        let before_table = |oldest: i64| Error::TimestampBeforeTable {
            requested: format_ms(timestamp_ms),
            oldest: format_ms(oldest),
        };
        let Some(oldest) = log::oldest_version(&self.location).await? else {
            return Err(before_table(first.timestamp_ms));
        };
        if oldest >= first.version {
            return Err(before_table(first.timestamp_ms));
        }
        let oldest_file = log::read_version(&self.location, oldest).await?;
        let oldest_ms = oldest_file.metadata.current_snapshot().timestamp_ms;
        if oldest_ms > timestamp_ms {
            return Err(before_table(oldest_ms));
        }
        // Invariant: the answer lies in [low, high]; version `low` was committed at or
        // before the time, and every version above `high` after it.
        let (mut low, mut high) = (oldest.get(), first.version.get() - 1);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            let file = log::read_version(&self.location, Version(mid)).await?;
            let log = file.metadata.snapshots();
            if log.last().is_some_and(|s| s.timestamp_ms <= timestamp_ms) {
                low = mid;
            } else if let Some(found) = file.metadata.snapshot_at(timestamp_ms) {
                return Ok(found.version);
            } else {
                high = log[0].version.get().saturating_sub(1).max(low);
            }
        }
        Ok(Version(low))
    }

    /// Whether this version's file is gone: snapshot expiry removed the version (or DROP TABLE
    /// the table) after it was loaded, and the objects only it referenced may be gone too.
    pub async fn is_expired(&self) -> Result<bool> {
        Ok(!self
            .location
            .exists(&log::version_file(self.version()))
            .await?)
    }

    /// The snapshots committed after `base` up to this version, oldest first. This version's
    /// log holds the recent ones; older ones are read from the version files before it.
    pub async fn snapshots_after(&self, base: Version) -> Result<Vec<Snapshot>> {
        self.snapshots_from(base.next()).await
    }

    /// The snapshots from version `first` up to this version, oldest first (see
    /// [`Table::snapshots_after`]).
    pub async fn snapshots_from(&self, first: Version) -> Result<Vec<Snapshot>> {
        let mut log: Vec<Snapshot> = self
            .metadata
            .snapshots()
            .iter()
            .filter(|s| s.version >= first)
            .cloned()
            .collect();
        while let Some(oldest) = log.first().map(|s| s.version)
            && oldest > first
        {
            let file = log::read_version(&self.location, Version(oldest.get() - 1)).await?;
            let older: Vec<Snapshot> = file
                .metadata
                .snapshots()
                .iter()
                .filter(|s| s.version >= first && s.version < oldest)
                .cloned()
                .collect();
            log.splice(0..0, older);
        }
        Ok(log)
    }

    /// Every snapshot still readable, oldest first: this version's log and the logs of the
    /// version files before it, back to the oldest version file not expired.
    pub async fn history(&self) -> Result<Vec<Snapshot>> {
        let mut log = self.metadata.snapshots().to_vec();
        while let Some(first) = log.first().map(|s| s.version)
            && first.get() > 0
        {
            match log::read_version(&self.location, Version(first.get() - 1)).await {
                Ok(file) => {
                    let older: Vec<Snapshot> = file
                        .metadata
                        .snapshots()
                        .iter()
                        .filter(|s| s.version < first)
                        .cloned()
                        .collect();
                    log.splice(0..0, older);
                }
                // Expired: the history starts here.
                Err(Error::MissingFile { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        // Logs still list versions whose files have expired; the versions present are a
        // contiguous range ending at this one, so bisect for its start.
        let (mut low, mut high) = (0, log.len() - 1);
        while low < high {
            let mid = (low + high) / 2;
            if self
                .location
                .exists(&log::version_file(log[mid].version))
                .await?
            {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        log.drain(..low);
        Ok(log)
    }

    /// The manifest list of this version (empty for a table without data).
    pub async fn manifest_list(&self) -> Result<Arc<ManifestList>> {
        match &self.snapshot().manifest_list {
            Some(path) => self.manifest_list_at(path).await,
            None => Ok(Arc::new(ManifestList::empty())),
        }
    }

    /// One manifest list, by table-relative path.
    pub async fn manifest_list_at(&self, path: &str) -> Result<Arc<ManifestList>> {
        let key = self.cache_key(path);
        if let Some(list) = cache_get(&self.cache.lists, &key) {
            return Ok(list);
        }
        let list = Arc::new(ManifestList::decode(
            &self.location.describe(path),
            self.location.get(path).await?,
        )?);
        cache_put(&self.cache.lists, &key, list.clone());
        Ok(list)
    }

    /// One manifest, by table-relative path.
    pub async fn manifest(&self, path: &str) -> Result<Arc<Manifest>> {
        let key = self.cache_key(path);
        if let Some(manifest) = cache_get(&self.cache.manifests, &key) {
            return Ok(manifest);
        }
        let manifest = Arc::new(Manifest::decode(
            &self.location.describe(path),
            self.location.get(path).await?,
        )?);
        cache_put(&self.cache.manifests, &key, manifest.clone());
        Ok(manifest)
    }

    /// The positions a deletion vector of this table deletes (read once, then cached: vectors
    /// are immutable).
    pub async fn deletion_vector(&self, vector: &DeletionVector) -> Result<Arc<RoaringTreemap>> {
        let key = format!("{}#{}", self.cache_key(&vector.path), vector.offset);
        if let Some(positions) = cache_get(&self.cache.vectors, &key) {
            return Ok(positions);
        }
        let positions = Arc::new(deletes::read_vector(&self.location, vector).await?);
        cache_put(&self.cache.vectors, &key, positions.clone());
        Ok(positions)
    }

    /// Keeps a manifest list this process just wrote, so the next commit need not read it.
    pub(crate) fn remember_list(&self, path: &str, list: ManifestList) {
        cache_put(&self.cache.lists, &self.cache_key(path), Arc::new(list));
    }

    /// Keeps a manifest this process just wrote.
    pub(crate) fn remember_manifest(&self, path: &str, manifest: Manifest) {
        cache_put(
            &self.cache.manifests,
            &self.cache_key(path),
            Arc::new(manifest),
        );
    }

    /// Cache entries are keyed by store path, so tables can share one cache.
    fn cache_key(&self, path: &str) -> String {
        self.location.path(path).to_string()
    }

    /// The data files of this version that may hold rows matching `predicate`.
    pub async fn plan_files(&self, predicate: &dyn FilePredicate) -> Result<ScanPlan> {
        let list = self.manifest_list().await?;
        scan::plan(
            &list,
            &self.metadata,
            self.schema(),
            predicate,
            |path| async move { self.manifest(&path).await },
        )
        .await
    }

    /// A writer for new data files in this version's schema and partition spec.
    pub fn writer(&self) -> Result<DataFileWriter> {
        let options = WriterOptions::from_properties(self.metadata.properties())?;
        DataFileWriter::new(
            self.location.clone(),
            &self.metadata,
            options,
            self.env.clone(),
        )
    }
}

/// Table property set by the last commit a table receives before DROP TABLE deletes it: a
/// writer that finds it stops, and readers see no table.
pub const DROPPED_PROPERTY: &str = "tarn.dropped";

/// Whether this version seals the table as dropped.
pub(crate) fn is_dropped(metadata: &TableMetadata) -> bool {
    metadata.properties().contains_key(DROPPED_PROPERTY)
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// How [`Table::follow`] looks for new versions: every `min` at first, backing off to `max`
/// while none comes.
#[derive(Debug, Clone, Copy)]
pub struct FollowPoll {
    pub min: std::time::Duration,
    pub max: std::time::Duration,
}

impl Default for FollowPoll {
    fn default() -> Self {
        FollowPoll {
            min: std::time::Duration::from_millis(100),
            max: std::time::Duration::from_secs(5),
        }
    }
}
