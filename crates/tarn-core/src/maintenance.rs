//! Keeping a table's storage to what its retained snapshots need: snapshot expiry and orphan
//! cleanup. (Compaction rewrites data, so it lives where data is read: in tarn-datafusion.)
//!
//! Why neither removes anything a reader or writer can still reach (FORMAT.md §12):
//!
//! - Expiry keeps every snapshot from the oldest retained one to the newest, and deletes only
//!   objects that no retained snapshot refers to: through its manifest list, the manifests in
//!   it, their data files and delete files, and its `changes` (the objects conflict checks
//!   read, and the change log with its files, which the change feed reads). It deletes the expired version files first, oldest first, so the versions still
//!   present are always a contiguous range ending at the newest one.
//! - A commit in flight builds its version on the newest version it loaded. If that version is
//!   retained, everything it reuses is retained. If it has expired, a newer version exists, so
//!   the commit loses the put-if-absent race, reloads, and rebuilds on the newest version (and
//!   when the versions since its base have expired, it stops with a retryable conflict). The
//!   objects it wrote itself are referenced by no snapshot at all, so expiry never considers
//!   them; orphan cleanup leaves them alone because they are younger than its safety interval.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tarn_spec::{Snapshot, Version};

use crate::error::{Error, Result};
use crate::local_disk;
use crate::log;
use crate::manifest::Manifest;
use crate::properties::Retention;
use crate::table::Table;

/// What to expire. Unset fields come from the table's retention properties.
#[derive(Debug, Clone, Default)]
pub struct ExpireOptions {
    /// Snapshots committed before this time (ms since the epoch) expire...
    pub older_than_ms: Option<i64>,
    /// ...unless they are among this many newest ones.
    pub retain_last: Option<u64>,
    /// Report what would be deleted without deleting it.
    pub dry_run: bool,
}

/// What an expiry removed (or would remove, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpireReport {
    /// Versions whose snapshots expired.
    pub expired_versions: u64,
    /// The oldest version still readable afterwards.
    pub oldest_retained: Version,
    pub deleted_data_files: u64,
    pub deleted_delete_files: u64,
    pub deleted_metadata_files: u64,
}

/// What to treat as orphaned.
#[derive(Debug, Clone)]
pub struct OrphanOptions {
    /// Only objects last modified before this time (ms since the epoch) are removed: younger
    /// ones may belong to a commit in flight.
    pub older_than_ms: i64,
    /// List what would be deleted without deleting it.
    pub dry_run: bool,
}

/// The default safety interval of orphan cleanup: a day, far longer than any commit runs.
pub const DEFAULT_ORPHAN_AGE_MS: i64 = 24 * 3600 * 1000;

/// The objects orphan cleanup removed (or would remove), as table-relative paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    pub orphans: Vec<String>,
    pub bytes: u64,
}

/// Table-relative paths of every object the given snapshots need.
async fn referenced(table: &Table, snapshots: &[Snapshot]) -> Result<HashSet<String>> {
    let mut objects = HashSet::new();
    let mut manifests_seen = HashSet::new();
    for snapshot in snapshots {
        objects.extend(snapshot.changes.added_manifests.iter().cloned());
        objects.extend(snapshot.changes.removed_files.iter().cloned());
        for manifest in snapshot.changes.change_log.values() {
            objects.insert(manifest.clone());
            // A file the version removed whole can log its own rows, read through its
            // deletion vector of the version before.
            listed_objects(&*table.manifest(manifest).await?, &mut objects)?;
        }
        let Some(list_path) = &snapshot.manifest_list else {
            continue;
        };
        if !objects.insert(list_path.clone()) {
            continue;
        }
        let list = table.manifest_list_at(list_path).await?;
        for i in 0..list.len() {
            let path = list.path(i);
            if !manifests_seen.insert(path.to_string()) {
                continue;
            }
            objects.insert(path.to_string());
            listed_objects(&*table.manifest(path).await?, &mut objects)?;
        }
    }
    // Manifests named only in `changes` are read by conflict checks, never their files.
    Ok(objects)
}

/// Adds the data files `manifest` lists, and the delete files of their deletion vectors,
/// to `objects`.
fn listed_objects(manifest: &Manifest, objects: &mut HashSet<String>) -> Result<()> {
    objects.extend(manifest.paths().iter().flatten().map(str::to_string));
    for row in 0..manifest.len() {
        if let Some(dv) = manifest.deletion_vector(row)? {
            objects.insert(dv.path);
        }
    }
    Ok(())
}

/// Expires snapshots of `table` (its newest version is loaded first) and deletes what only
/// they referenced.
pub async fn expire_snapshots(table: &Table, options: &ExpireOptions) -> Result<ExpireReport> {
    let table = table.refresh().await?;
    let retention = Retention::from_properties(table.metadata().properties())?;
    let older_than = options.older_than_ms.unwrap_or_else(|| {
        table.env().now_ms() - i64::try_from(retention.max_snapshot_age_ms).unwrap_or(i64::MAX)
    });
    let retain_last = options
        .retain_last
        .unwrap_or(retention.min_snapshots_to_keep)
        .max(1);
    let history = table.history().await?;
    let newest = history.len() as u64;
    // Expire a prefix of the history: everything before the first snapshot to keep.
    let keep_from = history
        .iter()
        .enumerate()
        .position(|(i, s)| s.timestamp_ms >= older_than || newest - (i as u64) <= retain_last)
        .unwrap_or(history.len() - 1);
    let (expired, retained) = history.split_at(keep_from);
    let mut report = ExpireReport {
        expired_versions: expired.len() as u64,
        oldest_retained: retained[0].version,
        deleted_data_files: 0,
        deleted_delete_files: 0,
        deleted_metadata_files: 0,
    };
    if expired.is_empty() {
        return Ok(report);
    }
    let keep = referenced(&table, retained).await?;
    let mut candidates: Vec<String> = referenced(&table, expired)
        .await?
        .into_iter()
        .filter(|p| !keep.contains(p))
        .collect();
    candidates.sort();
    for path in &candidates {
        if path.starts_with("data/deletes-") {
            report.deleted_delete_files += 1;
        } else if path.starts_with("data/") {
            report.deleted_data_files += 1;
        } else {
            report.deleted_metadata_files += 1;
        }
    }
    if options.dry_run {
        return Ok(report);
    }
    // Version files first, oldest first: the versions present stay a contiguous range.
    for snapshot in expired {
        delete(&table, &log::version_file(snapshot.version)).await?;
    }
    for path in &candidates {
        delete(&table, path).await?;
    }
    Ok(report)
}

/// Deletes the objects under `table`'s location that no readable snapshot references and that
/// are older than `options.older_than_ms`: files of failed or abandoned commits, and what
/// an interrupted expiry left behind.
pub async fn remove_orphan_files(table: &Table, options: &OrphanOptions) -> Result<OrphanReport> {
    let table = table.refresh().await?;
    let history = table.history().await?;
    let keep = referenced(&table, &history).await?;
    let is_orphan = |relative: &str| {
        // Version files and the hint are the table's log, never orphans.
        let log = relative.starts_with("metadata/")
            && (relative.ends_with(".json") || relative == log::HINT);
        !log && !keep.contains(relative)
    };
    remove_old_objects(table.location(), options, is_orphan).await
}

/// Deletes what a table location without a table holds, last modified before
/// `options.older_than_ms`: the files of a CREATE TABLE AS that failed or was killed before
/// its commit created the table (see [`Table::stage`]). Younger objects may be those of one
/// still writing, so the safety interval is orphan cleanup's. Nothing is deleted if a table
/// is there by then.
pub async fn remove_abandoned_files(
    location: &crate::TableLocation,
    options: &OrphanOptions,
) -> Result<OrphanReport> {
    if log::latest_version(location).await?.is_some() {
        return Ok(OrphanReport::default());
    }
    let report = remove_old_objects(location, options, |_| true).await?;
    if !options.dry_run {
        local_disk::remove_empty_directories(location).await?;
    }
    Ok(report)
}

/// Deletes the objects under `location` that `is_orphan` picks and that were last modified
/// before `options.older_than_ms`, with the unfinished writes of local disk under the same
/// interval (see `local_disk`); only lists them on a dry run.
async fn remove_old_objects(
    location: &crate::TableLocation,
    options: &OrphanOptions,
    is_orphan: impl Fn(&str) -> bool,
) -> Result<OrphanReport> {
    let root = location.root().clone();
    let objects: Vec<object_store::ObjectMeta> = location
        .store()
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| Error::store(location.describe(""), e))?;
    let mut report = OrphanReport::default();
    for object in objects {
        let Some(relative) = relative_path(&root, &object.location) else {
            continue;
        };
        if is_orphan(&relative) && object.last_modified.timestamp_millis() < options.older_than_ms {
            report.bytes += object.size;
            report.orphans.push(relative);
        }
    }
    let unfinished = local_disk::staging_files(location, options.older_than_ms).await?;
    if !options.dry_run {
        let paths = report.orphans.iter().map(|p| Ok(location.path(p)));
        let mut deleted = location
            .store()
            .delete_stream(futures::stream::iter(paths.collect::<Vec<_>>()).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(location.describe(""), e)),
            }
        }
        local_disk::remove(location, &unfinished).await?;
    }
    for upload in unfinished {
        report.bytes += upload.size;
        report.orphans.push(upload.relative);
    }
    report.orphans.sort();
    Ok(report)
}

/// `path` relative to `root`, as metadata stores it.
fn relative_path(root: &Path, path: &Path) -> Option<String> {
    let parts: Vec<String> = path
        .prefix_match(root)?
        .map(|part| part.as_ref().to_string())
        .collect();
    Some(parts.join("/"))
}

async fn delete(table: &Table, relative: &str) -> Result<()> {
    let path = table.location().path(relative);
    match table.location().store().delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store(table.location().describe(relative), e)),
    }
}

/// Which files compaction rewrites.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// A file smaller than this is small: worth merging with others of its partition.
    pub small_file_bytes: u64,
    /// A file with at least this share of its rows deleted by its vector is rewritten
    /// without them.
    pub deleted_share: f64,
    /// Rewrite every selected file (to cluster the data by a sort order), small or not.
    pub rewrite_all: bool,
}

impl CompactionPolicy {
    /// Files below three quarters of the table's target size are small; files with a tenth
    /// of their rows deleted are rewritten.
    pub fn for_table(table: &Table) -> Result<Self> {
        let options = crate::writer::WriterOptions::from_properties(table.metadata().properties())?;
        Ok(CompactionPolicy {
            small_file_bytes: options.target_file_size / 4 * 3,
            deleted_share: 0.1,
            rewrite_all: false,
        })
    }
}

/// The groups of `files` (one per partition) that compaction rewrites under `policy`:
/// partitions with two or more small files, files with many deleted rows, files of an older
/// partition spec; with `rewrite_all`, every file.
pub fn compaction_groups(
    table: &Table,
    files: &[crate::manifest::DataFile],
    policy: &CompactionPolicy,
) -> Vec<Vec<crate::manifest::DataFile>> {
    let metadata = table.metadata();
    let default_spec = metadata.default_spec().id();
    let mut by_partition: std::collections::BTreeMap<(i32, String), Vec<&crate::DataFile>> =
        std::collections::BTreeMap::new();
    for file in files {
        let key = metadata
            .spec(file.spec_id)
            .map(|s| s.partition_key(&file.partition))
            .unwrap_or_default();
        by_partition
            .entry((file.spec_id.get(), key))
            .or_default()
            .push(file);
    }
    let heavy = |f: &crate::DataFile| {
        f.record_count > 0
            && (f.record_count - f.live_rows()) as f64
                >= policy.deleted_share * f.record_count as f64
    };
    let mut groups = Vec::new();
    for ((spec, _), files) in by_partition {
        let chosen: Vec<crate::DataFile> = if policy.rewrite_all || spec != default_spec.get() {
            files.into_iter().cloned().collect()
        } else {
            let small: Vec<&crate::DataFile> = files
                .iter()
                .copied()
                .filter(|f| f.file_size < policy.small_file_bytes)
                .collect();
            let mut chosen: Vec<crate::DataFile> = files
                .iter()
                .copied()
                .filter(|f| heavy(f))
                .cloned()
                .collect();
            if small.len() >= 2 {
                for f in small {
                    if !chosen.iter().any(|c| c.path == f.path) {
                        chosen.push(f.clone());
                    }
                }
            }
            chosen
        };
        if !chosen.is_empty() {
            groups.push(chosen);
        }
    }
    groups
}

/// What auto compaction (`write.auto-compact.min-files`) rewrites after a commit that added
/// `added`: in each partition those files went to, once some size tier holds `min_files`
/// small files, every small file of that tier and of the tiers below it.
///
/// A file's tier is the order of magnitude of its live rows in base `min_files`, so each
/// compaction moves its rows up about one tier, as an LSM tree's size-tiered compaction does:
/// a partition keeps fewer than `min_files` small files per tier, and a row is rewritten about
/// log_min_files(rows of a full-size file / rows of a commit) times in its life. Small files
/// are those OPTIMIZE rewrites; a file of an older partition spec is left to OPTIMIZE.
pub async fn auto_compaction_files(
    table: &Table,
    added: &[crate::DataFile],
    min_files: u64,
) -> Result<Vec<crate::DataFile>> {
    let policy = CompactionPolicy::for_table(table)?;
    let spec = table.metadata().default_spec();
    let touched: HashSet<String> = added
        .iter()
        .filter(|f| f.spec_id == spec.id() && f.file_size < policy.small_file_bytes)
        .map(|f| spec.partition_key(&f.partition))
        .collect();
    if touched.is_empty() || min_files < 2 {
        return Ok(Vec::new());
    }
    let plan = table.plan_files(&crate::Predicate::True).await?;
    let mut by_partition: std::collections::BTreeMap<String, Vec<crate::DataFile>> =
        std::collections::BTreeMap::new();
    for manifest in plan.manifests.iter().filter(|m| m.spec_id() == spec.id()) {
        let sizes = manifest.file_sizes();
        for i in (0..manifest.len()).filter(|&i| sizes.value(i) < policy.small_file_bytes) {
            let file = manifest.data_file(i);
            let key = spec.partition_key(&file.partition);
            if touched.contains(&key) {
                by_partition.entry(key).or_default().push(file);
            }
        }
    }
    let tier = |f: &crate::DataFile| f.live_rows().max(1).ilog(min_files);
    let mut chosen = Vec::new();
    for files in by_partition.into_values() {
        let mut per_tier: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        for f in &files {
            *per_tier.entry(tier(f)).or_default() += 1;
        }
        if let Some((&full, _)) = per_tier.iter().find(|(_, n)| **n >= min_files) {
            chosen.extend(files.into_iter().filter(|f| tier(f) <= full));
        }
    }
    Ok(chosen)
}
