//! Building the next version's metadata on top of the current one: conflict checks, manifest
//! rewrites, the new manifest list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use bytes::Bytes;
use roaring::RoaringTreemap;
use tarn_spec::{
    ChangeType, Changes, MetadataUpdate, NewSnapshot, Snapshot, SpecId, Summary, TableMetadata,
    Version,
};

use super::{Change, OverwriteScope};
use crate::deletes::{self, DeletionVector};
use crate::error::{Error, Result};
use crate::ipc;
use crate::manifest::{DataFile, Manifest};
use crate::manifest_list::{ManifestList, ManifestSummary};
use crate::properties::ManifestMerge;
use crate::table::Table;
use crate::writer::UnstoredFile;

/// A manifest this commit writes.
struct WrittenManifest {
    path: String,
    size: u64,
    manifest: Manifest,
}

/// Objects a commit built and has not stored yet. Nothing refers to them until the commit's
/// version file does, so they need not be stored one after another: an attempt stores them
/// together, once all are built and before it creates the version file. On an object store
/// each is a round trip: one after another, a small append's manifest and manifest list
/// took two.
#[derive(Default)]
pub(super) struct Staged {
    objects: Vec<(String, Bytes)>,
    /// Objects of the change the attempt's version does not refer to after all (the
    /// prepared delete file, when every vector in it was rebased on a concurrent commit's).
    superseded: Vec<String>,
}

impl Staged {
    fn add(&mut self, path: String, bytes: Bytes) {
        self.objects.push((path, bytes));
    }

    fn paths(&self) -> Vec<String> {
        self.objects.iter().map(|(path, _)| path.clone()).collect()
    }
}

/// Objects that do not depend on the version a commit lands on: built once, stored by the
/// first attempt that gets as far as storing its own, reused by every attempt.
pub(super) struct Prepared {
    /// Built and not stored yet.
    unstored: Staged,
    /// Stored by an attempt: nothing refers to them unless the commit lands.
    stored: Vec<String>,
    added: Vec<WrittenManifest>,
    added_rows: u64,
    /// For a rewrite: the removed files' paths and the object listing them.
    removed_paths: HashSet<String>,
    removed_object: Option<String>,
    /// For a partition overwrite: the partitions (of the default spec) the new files fall in.
    touched: HashSet<String>,
    /// For a rewrite: the deletion vector each removed file had in the base version.
    removed_vectors: HashMap<String, Option<DeletionVector>>,
    /// For a row delta: what it deletes from each file.
    deletes: HashMap<String, FileDeletes>,
    /// For a row delta: the delete file of the merged vectors.
    delete_file: Option<String>,
    /// The manifests of the change log, by kind of change.
    change_log: BTreeMap<ChangeType, String>,
}

/// A row delta's deletes from one data file.
struct FileDeletes {
    /// The file's vector in the base version.
    base: Option<DeletionVector>,
    /// The positions this change deletes.
    new: RoaringTreemap,
    /// The base vector and the new positions together, written when the change was prepared;
    /// `None` when they are every row of the file, which then leaves the table.
    merged: Option<DeletionVector>,
    /// The rows the file holds, deleted or not.
    record_count: u64,
}

pub(super) async fn prepare(
    base: &Table,
    change: &Change,
    written_for: &TableMetadata,
    change_log: &[(ChangeType, DataFile)],
    data_files: Vec<UnstoredFile>,
) -> Result<Prepared> {
    let metadata = base.metadata();
    let mut unstored = Staged::default();
    for file in data_files {
        unstored.add(file.path, file.bytes);
    }
    let mut logged = BTreeMap::new();
    for kind in ChangeType::ALL {
        let files: Vec<DataFile> = change_log
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, f)| f.clone())
            .collect();
        if !files.is_empty() {
            let manifest =
                Manifest::from_data_files(metadata.default_spec(), base.schema(), &files)?;
            logged.insert(kind, stage_manifest(base, manifest, &mut unstored)?.path);
        }
    }
    let affected: Vec<DataFile>;
    let (added, removed): (&[DataFile], &[DataFile]) = match change {
        Change::Append { files }
        | Change::Overwrite { files, .. }
        | Change::Replace { files, .. } => (files, &[]),
        Change::Rewrite { removed, added, .. } => (added, removed),
        Change::RowDelta { deletes, added, .. } => {
            affected = deletes.iter().map(|(f, _)| f.clone()).collect();
            (added, &affected)
        }
        Change::Metadata { .. } => (&[], &[]),
    };
    // A manifest per partition spec: one, but for a replacement that brings back files of
    // several specs (a restore).
    let mut manifests = Vec::new();
    let mut specs: Vec<SpecId> = added.iter().map(|f| f.spec_id).collect();
    specs.sort_unstable();
    specs.dedup();
    for &id in &specs {
        let spec = written_for.spec(id).ok_or_else(|| {
            Error::invalid("data file", format!("the table has no partition spec {id}"))
        })?;
        let schema = written_for.current_schema();
        let manifest = match specs.len() {
            1 => Manifest::from_data_files(spec, schema, added)?,
            _ => {
                let files: Vec<DataFile> =
                    (added.iter().filter(|f| f.spec_id == id).cloned()).collect();
                Manifest::from_data_files(spec, schema, &files)?
            }
        };
        manifests.push(stage_manifest(base, manifest, &mut unstored)?);
    }
    let removed_object = if removed.is_empty() {
        None
    } else {
        Some(stage_file_set(
            base,
            removed.iter().map(|f| file_set_row(metadata, f)).collect(),
            &mut unstored,
        )?)
    };
    let spec = metadata.default_spec();
    let touched = match change {
        Change::Overwrite {
            scope: OverwriteScope::Partitions,
            files,
        } => files
            .iter()
            .map(|f| partition_key(spec.id(), &spec.partition_key(&f.partition)))
            .collect(),
        _ => HashSet::new(),
    };
    let mut deletes = HashMap::new();
    let mut delete_file = None;
    if let Change::RowDelta { deletes: files, .. } = change {
        let mut merged = BTreeMap::new();
        for (file, new) in files {
            let mut all = match &file.deletion_vector {
                Some(dv) => base.deletion_vector(dv).await?.as_ref().clone(),
                None => RoaringTreemap::new(),
            };
            all |= new;
            if all.len() < file.record_count {
                merged.insert(file.path.clone(), all);
            }
        }
        let refs = match deletes::encode_delete_file(base.env(), &merged)? {
            Some(file) => {
                delete_file = Some(file.path.clone());
                unstored.add(file.path, file.bytes);
                file.vectors
            }
            None => BTreeMap::new(),
        };
        for (file, new) in files {
            deletes.insert(
                file.path.clone(),
                FileDeletes {
                    base: file.deletion_vector.clone(),
                    new: new.clone(),
                    merged: refs.get(&file.path).cloned(),
                    record_count: file.record_count,
                },
            );
        }
    }
    let removed_vectors = match change {
        Change::Rewrite { removed, .. } => removed
            .iter()
            .map(|f| (f.path.clone(), f.deletion_vector.clone()))
            .collect(),
        _ => HashMap::new(),
    };
    Ok(Prepared {
        unstored,
        stored: Vec::new(),
        added_rows: added.iter().map(|f| f.record_count).sum(),
        added: manifests,
        removed_paths: match change {
            Change::RowDelta { .. } => HashSet::new(),
            _ => removed.iter().map(|f| f.path.clone()).collect(),
        },
        removed_object,
        touched,
        removed_vectors,
        deletes,
        delete_file,
        change_log: logged,
    })
}

/// The deletion vector each of `paths` has in `list`'s manifests (`None` inside: no vector);
/// files not in the list are absent.
async fn current_vectors(
    table: &Table,
    list: &ManifestList,
    paths: &HashSet<&str>,
) -> Result<HashMap<String, Option<DeletionVector>>> {
    let mut found = HashMap::new();
    for i in 0..list.len() {
        let manifest = table.manifest(list.path(i)).await?;
        for (row, path) in manifest.paths().iter().enumerate() {
            if let Some(path) = path.filter(|p| paths.contains(p)) {
                found.insert(path.to_string(), manifest.deletion_vector(row)?);
            }
        }
    }
    Ok(found)
}

fn partition_key(spec: SpecId, path: &str) -> String {
    format!("{spec}/{path}")
}

/// A new path for a metadata object of `kind` (`m` manifest, `ml` manifest list, `r`
/// removed files) encoded as `bytes`: compressed objects are named `.arrow.lz4`.
fn metadata_object_path(table: &Table, kind: &str, bytes: &[u8]) -> String {
    format!(
        "metadata/{kind}-{}.{}",
        table.env().next_id(),
        ipc::extension(bytes)
    )
}

fn stage_manifest(
    table: &Table,
    manifest: Manifest,
    staged: &mut Staged,
) -> Result<WrittenManifest> {
    let bytes = manifest.encode()?;
    let path = metadata_object_path(table, "m", &bytes);
    let size = bytes.len() as u64;
    staged.add(path.clone(), bytes);
    table.remember_manifest(&path, manifest.clone());
    Ok(WrittenManifest {
        path,
        size,
        manifest,
    })
}

/// Stages a manifest that replaces existing ones in the list of `next_version` (which alone
/// refers to it, so it is among the objects removed if the attempt does not land), and
/// returns its summary row.
fn rewrite_manifest(
    table: &Table,
    manifest: Manifest,
    next_version: Version,
    staged: &mut Staged,
) -> Result<ManifestSummary> {
    let new = stage_manifest(table, manifest, staged)?;
    ManifestSummary::of(&new.manifest, &new.path, new.size, next_version)
}

/// A row of a removed-files object: path, spec id, partition key, record count.
type FileSetRow = (String, SpecId, String, u64);

fn file_set_row(metadata: &TableMetadata, file: &DataFile) -> FileSetRow {
    let partition = metadata
        .spec(file.spec_id)
        .map(|s| s.partition_key(&file.partition))
        .unwrap_or_default();
    (
        file.path.clone(),
        file.spec_id,
        partition_key(file.spec_id, &partition),
        file.live_rows(),
    )
}

/// Stages a removed-files object, an Arrow IPC file of `path, spec_id, partition,
/// record_count`, and returns its path.
fn stage_file_set(table: &Table, rows: Vec<FileSetRow>, staged: &mut Staged) -> Result<String> {
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("path", DataType::Utf8, false),
        ArrowField::new("spec_id", DataType::Int32, false),
        ArrowField::new("partition", DataType::Utf8, false),
        ArrowField::new("record_count", DataType::UInt64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1.get()))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.2.as_str()),
        )),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.3))),
    ];
    let batch = RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::arrow("building a removed-files object", e))?;
    let bytes = ipc::encode(&batch)?;
    let path = metadata_object_path(table, "r", &bytes);
    staged.add(path.clone(), bytes);
    Ok(path)
}

/// The partition keys of a removed-files object.
async fn read_file_set_partitions(table: &Table, path: &str) -> Result<Vec<String>> {
    let batch = ipc::decode(path, table.location().get(path).await?)?;
    let column = batch
        .column_by_name("partition")
        .ok_or_else(|| Error::CorruptManifest {
            path: path.to_string(),
            reason: "a removed-files object must have a 'partition' column".into(),
        })?;
    Ok(column
        .as_string::<i32>()
        .iter()
        .flatten()
        .map(str::to_string)
        .collect())
}

/// The partition keys of the files in a manifest.
fn manifest_partitions(metadata: &TableMetadata, manifest: &Manifest) -> Vec<String> {
    let Some(spec) = metadata.spec(manifest.spec_id()) else {
        return Vec::new();
    };
    (0..manifest.len())
        .map(|i| {
            partition_key(
                spec.id(),
                &spec.partition_key(&manifest.data_file(i).partition),
            )
        })
        .collect()
}

fn conflict(snapshot: &Snapshot, reason: impl Into<String>) -> Error {
    Error::Conflict {
        version: snapshot.version,
        reason: reason.into(),
        retryable: true,
    }
}

/// One attempt's next version: its metadata, and the objects written for it alone (a
/// manifest list, rewritten manifests), which are removed if the attempt does not land.
/// Every object the version refers to is stored.
pub(super) struct Attempt {
    pub metadata: TableMetadata,
    pub written: Vec<String>,
    /// Stored objects of the change that the version does not refer to: removed once the
    /// version lands.
    pub superseded: Vec<String>,
}

/// The metadata of the version after `current`, carrying `change` made against `base`. The
/// commits up to version `checked` were found not to conflict by an earlier attempt: only
/// those after it are checked, so that a commit retrying behind a busy writer does not read
/// more on every attempt.
#[allow(clippy::too_many_arguments)]
pub(super) async fn next_metadata(
    base: &Table,
    checked: Version,
    current: &Table,
    change: &Change,
    prepared: &mut Prepared,
    commit_id: &str,
    extra: &BTreeMap<String, String>,
    app: Option<&super::AppCommit>,
) -> Result<Attempt> {
    let mut staged = Staged::default();
    let metadata = next_metadata_staging(
        base,
        checked,
        current,
        change,
        prepared,
        commit_id,
        extra,
        app,
        &mut staged,
    )
    .await?;
    // The change's own objects (until an attempt has stored them) go with the attempt's.
    let objects: Vec<(String, Bytes)> = (prepared.unstored.objects.iter())
        .chain(&staged.objects)
        .cloned()
        .collect();
    if let Err(e) = current.location().put_all(objects).await {
        let paths = prepared.unstored.paths().into_iter().chain(staged.paths());
        remove_objects(current, &paths.collect::<Vec<_>>()).await;
        return Err(e);
    }
    prepared
        .stored
        .extend(std::mem::take(&mut prepared.unstored).paths());
    Ok(Attempt {
        metadata,
        written: staged.paths(),
        superseded: staged.superseded,
    })
}

impl Prepared {
    /// Best effort: deletes what attempts stored of the change, once it is known that the
    /// commit did not land.
    pub(super) async fn remove_stored(self, table: &Table) {
        remove_objects(table, &self.stored).await;
    }
}

/// Best effort: deletes objects an attempt wrote that nothing refers to.
pub(super) async fn remove_objects(table: &Table, paths: &[String]) {
    table.location().remove_all(paths).await;
}

/// The metadata of [`next_metadata`], the objects it refers to that this attempt builds
/// staged in `staged`.
#[allow(clippy::too_many_arguments)]
async fn next_metadata_staging(
    base: &Table,
    checked: Version,
    current: &Table,
    change: &Change,
    prepared: &Prepared,
    commit_id: &str,
    extra: &BTreeMap<String, String>,
    app: Option<&super::AppCommit>,
    staged: &mut Staged,
) -> Result<TableMetadata> {
    let metadata = current.metadata();
    let next_version = metadata.version().next();
    let since_checked = snapshots_since(checked, current).await?;
    let intervening: Vec<&Snapshot> = since_checked.iter().collect();
    // The commit a conflict found by comparing file states is reported against.
    let by = intervening
        .last()
        .copied()
        .unwrap_or(metadata.current_snapshot());
    check_conflicts(base, current, change, prepared, &intervening).await?;

    let list = current.manifest_list().await?;
    let mut summary = Summary {
        extra: extra.clone(),
        ..Summary::default()
    };
    let mut changes = Changes {
        change_log: prepared.change_log.clone(),
        ..Changes::default()
    };
    let mut added_summaries = Vec::new();
    for written in &prepared.added {
        added_summaries.push(ManifestSummary::of(
            &written.manifest,
            &written.path,
            written.size,
            next_version,
        )?);
        changes.added_manifests.push(written.path.clone());
        summary.added_files += written.manifest.len() as u64;
    }
    summary.added_rows = prepared.added_rows;

    let new_list: Option<ManifestList> = match change {
        Change::Metadata { .. } => None,
        Change::Append { files } if files.is_empty() => None,
        Change::Append { .. } => Some(list.with_added(&added_summaries)?),
        Change::Overwrite {
            scope: OverwriteScope::Table,
            ..
        }
        | Change::Replace { .. } => {
            summary.removed_files = list.total_files();
            summary.removed_rows = list.live_records();
            changes.removed_all = summary.removed_files > 0;
            Some(ManifestList::empty().with_added(&added_summaries)?)
        }
        Change::Overwrite {
            scope: OverwriteScope::Partitions,
            ..
        } => {
            let default_spec = metadata.default_spec().id();
            let mut removed = Vec::new();
            let rewritten = rewrite_manifests(
                current,
                &list,
                next_version,
                staged,
                |manifest| {
                    if manifest.spec_id() != default_spec {
                        return None;
                    }
                    let keys = manifest_partitions(metadata, manifest);
                    Some(
                        keys.iter()
                            .map(|k| Some(prepared.touched.contains(k)))
                            .collect(),
                    )
                },
                &mut removed,
            )
            .await?;
            summary.removed_files = removed.len() as u64;
            summary.removed_rows = removed.iter().map(|r| r.3).sum();
            if !removed.is_empty() {
                changes.removed_files = Some(stage_file_set(current, removed, staged)?);
            }
            Some(rewritten.without_and_with(added_summaries)?)
        }
        Change::RowDelta { .. } => {
            let paths: HashSet<&str> = prepared.deletes.keys().map(String::as_str).collect();
            let found = current_vectors(current, &list, &paths).await?;
            let mut vectors: HashMap<String, DeletionVector> = HashMap::new();
            let mut again: BTreeMap<String, RoaringTreemap> = BTreeMap::new();
            // Files whose every row is now deleted: they leave the table, as a rewrite would
            // remove them, instead of staying with a vector that hides all their rows.
            let mut emptied: HashSet<&str> = HashSet::new();
            for (path, deletes) in &prepared.deletes {
                match found.get(path) {
                    None => {
                        return Err(conflict(
                            by,
                            format!(
                                "data file '{path}', whose rows this commit deletes, was removed by a concurrent commit"
                            ),
                        ));
                    }
                    Some(now) if *now == deletes.base => match &deletes.merged {
                        Some(merged) => {
                            vectors.insert(path.clone(), merged.clone());
                        }
                        None => {
                            emptied.insert(path.as_str());
                        }
                    },
                    Some(now) => {
                        // Another row delta on this file committed meanwhile: both stand,
                        // unless they deleted a row in common.
                        let theirs = match now {
                            Some(dv) => current.deletion_vector(dv).await?.as_ref().clone(),
                            None => RoaringTreemap::new(),
                        };
                        if !theirs.is_disjoint(&deletes.new) {
                            return Err(conflict(
                                by,
                                format!(
                                    "rows of data file '{path}' that this commit deletes were deleted or updated by a concurrent commit"
                                ),
                            ));
                        }
                        let all = theirs | &deletes.new;
                        if all.len() < deletes.record_count {
                            again.insert(path.clone(), all);
                        } else {
                            emptied.insert(path.as_str());
                        }
                    }
                }
            }
            if let Some(prepared_file) = &prepared.delete_file
                && !vectors.values().any(|dv| dv.path == *prepared_file)
            {
                staged.superseded.push(prepared_file.clone());
            }
            if let Some(file) = deletes::encode_delete_file(current.env(), &again)? {
                staged.add(file.path, file.bytes);
                vectors.extend(file.vectors);
            }
            let mut dropped = HashSet::new();
            let mut replaced = Vec::new();
            for i in 0..list.len() {
                let path = list.path(i).to_string();
                let manifest = current.manifest(&path).await?;
                let paths = manifest.paths();
                if !paths
                    .iter()
                    .flatten()
                    .any(|p| vectors.contains_key(p) || emptied.contains(p))
                {
                    continue;
                }
                let keep: BooleanArray = paths
                    .iter()
                    .map(|p| Some(!p.is_some_and(|p| emptied.contains(p))))
                    .collect();
                let updated = manifest.with_deletion_vectors(&vectors)?.filter(&keep)?;
                if !updated.is_empty() {
                    replaced.push(rewrite_manifest(current, updated, next_version, staged)?);
                }
                dropped.insert(path);
            }
            summary.removed_files = emptied.len() as u64;
            summary.removed_rows = prepared.deletes.values().map(|d| d.new.len()).sum();
            changes.removed_files = prepared.removed_object.clone();
            let dropped: HashSet<&str> = dropped.iter().map(String::as_str).collect();
            replaced.extend(added_summaries);
            Some(list.without(&dropped)?.with_added(&replaced)?)
        }
        Change::Rewrite { removed: files, .. } => {
            // A file whose deletion vector changed since the base holds fewer rows than the
            // rewrite read: rewriting it would bring deleted rows back.
            let paths: HashSet<&str> = prepared.removed_paths.iter().map(String::as_str).collect();
            let found = current_vectors(current, &list, &paths).await?;
            if let Some((path, _)) = found
                .iter()
                .find(|(path, now)| prepared.removed_vectors.get(*path) != Some(*now))
            {
                return Err(conflict(
                    by,
                    format!(
                        "rows of data file '{path}', which this commit replaces, were deleted by a concurrent commit"
                    ),
                ));
            }
            let mut removed = Vec::new();
            let rewritten = rewrite_manifests(
                current,
                &list,
                next_version,
                staged,
                |manifest| {
                    let paths = manifest.paths();
                    let mask: BooleanArray = paths
                        .iter()
                        .map(|p| Some(p.is_some_and(|p| prepared.removed_paths.contains(p))))
                        .collect();
                    (mask.true_count() > 0).then_some(mask)
                },
                &mut removed,
            )
            .await?;
            if removed.len() != files.len() {
                let found: HashSet<&str> = removed.iter().map(|r| r.0.as_str()).collect();
                let missing = files
                    .iter()
                    .find(|f| !found.contains(f.path.as_str()))
                    .map(|f| f.path.as_str())
                    .unwrap_or("?");
                return Err(conflict(
                    by,
                    format!(
                        "data file '{missing}', which this commit replaces, was removed by a concurrent commit"
                    ),
                ));
            }
            summary.removed_files = removed.len() as u64;
            summary.removed_rows = removed.iter().map(|r| r.3).sum();
            changes.removed_files = prepared.removed_object.clone();
            Some(rewritten.without_and_with(added_summaries)?)
        }
    };

    let manifest_list = match new_list {
        None => {
            summary.total_files = current.snapshot().summary.total_files;
            summary.total_rows = current.snapshot().summary.total_rows;
            current.snapshot().manifest_list.clone()
        }
        Some(list) if list.is_empty() => None,
        Some(list) => {
            let list = merge_small_manifests(
                current,
                list,
                &changes.added_manifests,
                next_version,
                staged,
            )
            .await?;
            let bytes = list.encode()?;
            let path = metadata_object_path(current, "ml", &bytes);
            staged.add(path.clone(), bytes);
            summary.total_files = list.total_files();
            summary.total_rows = list.live_records();
            current.remember_list(&path, list);
            Some(path)
        }
    };
    // Readers that do not apply deletion vectors must refuse the table from its first one.
    let upgrade = [MetadataUpdate::UpgradeFormatVersion(
        tarn_spec::DELETION_VECTORS_FORMAT_VERSION,
    )];
    let mut updates: Vec<MetadataUpdate> = match change {
        Change::Metadata { updates, .. } | Change::Replace { updates, .. } => updates.clone(),
        Change::RowDelta { .. } => upgrade.to_vec(),
        _ => Vec::new(),
    };
    // Readers that take only plain Arrow IPC objects must refuse the table from its first
    // compressed one.
    let staged_paths = staged.paths();
    let mut new_objects = staged_paths
        .iter()
        .chain(&changes.added_manifests)
        .chain(&changes.removed_files)
        .chain(changes.change_log.values());
    if new_objects.any(|path| ipc::is_compressed_object(path)) {
        updates.push(MetadataUpdate::UpgradeFormatVersion(
            tarn_spec::COMPRESSED_OBJECTS_FORMAT_VERSION,
        ));
    }
    if let Some(app) = app {
        updates.push(MetadataUpdate::SetProperties(
            [(
                super::app_sequence_property(&app.app_id),
                app.sequence.to_string(),
            )]
            .into(),
        ));
    }
    // Commit times never go backwards, so "the newest version at or before t" is well defined
    // even when writers' clocks disagree.
    let timestamp_ms = current.env().now_ms().max(metadata.last_updated_ms());
    metadata
        .commit(
            &updates,
            NewSnapshot {
                timestamp_ms,
                operation: change.operation(),
                manifest_list,
                summary,
                changes,
                commit_id: Some(commit_id.to_string()),
            },
        )
        .map_err(Error::InvalidMetadata)
}

/// The snapshots committed after version `base` up to `current`. When the version files
/// between them have expired meanwhile, nothing can be checked: running the change again is
/// safe.
pub(super) async fn snapshots_since(base: Version, current: &Table) -> Result<Vec<Snapshot>> {
    current.snapshots_after(base).await.map_err(|e| match e {
        Error::MissingFile { .. } => Error::Conflict {
            version: current.version(),
            reason: format!("the versions committed since version {base} have expired"),
            retryable: true,
        },
        e => e,
    })
}

/// Keeps the manifest list short under streams of small commits: once it holds
/// `min-count-to-merge` manifests of one size tier (below the target size), they are packed
/// into manifests of the next tier (those of one partition spec and one manifest layout
/// together). The manifests this commit added stay as they are, since conflict checks read
/// them as exactly its files (§8.3 of the format).
async fn merge_small_manifests(
    table: &Table,
    list: ManifestList,
    own: &[String],
    next_version: Version,
    staged: &mut Staged,
) -> Result<ManifestList> {
    let options = ManifestMerge::from_properties(table.metadata().properties())?;
    // Manifests are merged in tiers by how many files they hold (fewer than min-count,
    // fewer than min-count², ...), and a tier only once it holds min-count manifests: each
    // file entry is rewritten once per tier, so the bytes a commit writes stay flat on
    // average and its worst case grows only every min-count-th merge.
    let tier = |i: usize| {
        let (mut files, mut tier) = (list.file_counts().value(i).max(1), 0u32);
        while files >= options.min_count {
            files /= options.min_count;
            tier += 1;
        }
        tier
    };
    let mut tiers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in (0..list.len())
        .filter(|&i| list.file_size(i) < options.target_size)
        .filter(|&i| !own.iter().any(|p| p == list.path(i)))
    {
        tiers.entry(tier(i)).or_default().push(i);
    }
    let small: Vec<usize> = tiers
        .into_values()
        .filter(|members| members.len() as u64 >= options.min_count)
        .flatten()
        .collect();
    if small.is_empty() {
        return Ok(list);
    }
    // Manifests of one spec and Arrow schema, with their rows in the list.
    type Group = Vec<(usize, Arc<Manifest>)>;
    let mut groups: Vec<(Arc<arrow::datatypes::Schema>, Group)> = Vec::new();
    for i in small {
        let manifest = table.manifest(list.path(i)).await?;
        let schema = manifest.batch().schema();
        match groups
            .iter_mut()
            .find(|(s, g)| *s == schema && g[0].1.spec_id() == manifest.spec_id())
        {
            Some((_, group)) => group.push((i, manifest)),
            None => groups.push((schema, vec![(i, manifest)])),
        }
    }
    let mut dropped = HashSet::new();
    let mut merged = Vec::new();
    for (_, group) in groups {
        // Pack in list order (oldest first) into bins of about the target size.
        let mut bins: Vec<Group> = vec![Vec::new()];
        let mut bin_size = 0;
        for (i, manifest) in group {
            if bin_size >= options.target_size {
                bins.push(Vec::new());
                bin_size = 0;
            }
            bin_size += list.file_size(i);
            bins.last_mut()
                .expect("one bin at least")
                .push((i, manifest));
        }
        for bin in bins.into_iter().filter(|b| b.len() > 1) {
            let manifests: Vec<Arc<Manifest>> = bin.iter().map(|(_, m)| m.clone()).collect();
            let concatenated = Manifest::concat(&manifests)?;
            merged.push(rewrite_manifest(table, concatenated, next_version, staged)?);
            dropped.extend(bin.iter().map(|(i, _)| list.path(*i).to_string()));
        }
    }
    let dropped: HashSet<&str> = dropped.iter().map(String::as_str).collect();
    list.without(&dropped)?.with_added(&merged)
}

/// A manifest list being rebuilt: rows to drop and summaries to add.
struct Rewritten {
    list: Arc<ManifestList>,
    dropped: HashSet<String>,
    added: Vec<ManifestSummary>,
}

impl Rewritten {
    fn without_and_with(self, more: Vec<ManifestSummary>) -> Result<ManifestList> {
        let dropped: HashSet<&str> = self.dropped.iter().map(String::as_str).collect();
        let mut added = self.added;
        added.extend(more);
        self.list.without(&dropped)?.with_added(&added)
    }
}

/// Rewrites every manifest of `list` for which `select` returns a mask of rows to remove,
/// collecting the removed rows.
async fn rewrite_manifests(
    table: &Table,
    list: &Arc<ManifestList>,
    next_version: Version,
    staged: &mut Staged,
    select: impl Fn(&Manifest) -> Option<BooleanArray>,
    removed: &mut Vec<FileSetRow>,
) -> Result<Rewritten> {
    let mut out = Rewritten {
        list: list.clone(),
        dropped: HashSet::new(),
        added: Vec::new(),
    };
    for i in 0..list.len() {
        let path = list.path(i).to_string();
        let manifest = table.manifest(&path).await?;
        let Some(mask) = select(&manifest) else {
            continue;
        };
        if mask.true_count() == 0 {
            continue;
        }
        for row in (0..manifest.len()).filter(|&r| mask.value(r)) {
            removed.push(file_set_row(table.metadata(), &manifest.data_file(row)));
        }
        let keep =
            arrow::compute::not(&mask).map_err(|e| Error::arrow("rewriting a manifest", e))?;
        let kept = manifest.filter(&keep)?;
        out.dropped.insert(path);
        if !kept.is_empty() {
            out.added
                .push(rewrite_manifest(table, kept, next_version, staged)?);
        }
    }
    Ok(out)
}

async fn check_conflicts(
    base: &Table,
    current: &Table,
    change: &Change,
    prepared: &Prepared,
    intervening: &[&Snapshot],
) -> Result<()> {
    let metadata = current.metadata();
    if let (Change::Replace { .. }, Some(s)) = (change, intervening.first()) {
        return Err(conflict(s, "the table changed while it was being replaced"));
    }
    // The commits since the base that changed the schema or partition spec: schema changes,
    // and replacements of the table's definition.
    let base_schema = base.schema().id();
    let schema_changed = |s: &&&Snapshot| {
        s.operation == tarn_spec::Operation::SchemaChange || s.schema_id != base_schema
    };
    let definition_changed = metadata.current_schema().id() != base_schema
        || metadata.default_spec().id() != base.metadata().default_spec().id();
    if change.writes_data() && definition_changed {
        let by = intervening
            .iter()
            .find(schema_changed)
            .copied()
            .unwrap_or(metadata.current_snapshot());
        return Err(conflict(
            by,
            "the table's schema or partition spec changed; the data was written for the old one",
        ));
    }
    let changed_data = |s: &Snapshot| {
        s.summary.added_files > 0 || s.summary.removed_files > 0 || s.summary.removed_rows > 0
    };
    match change {
        Change::Append { .. }
        | Change::Rewrite { .. }
        | Change::RowDelta { .. }
        | Change::Replace { .. } => {}
        Change::Overwrite {
            scope: OverwriteScope::Table,
            ..
        } => {
            if let Some(s) = intervening.iter().find(|s| changed_data(s)) {
                return Err(conflict(
                    s,
                    "the table's data changed while it was being overwritten",
                ));
            }
        }
        Change::Overwrite {
            scope: OverwriteScope::Partitions,
            ..
        } => {
            for s in intervening {
                if s.changes.removed_all {
                    return Err(conflict(s, "the whole table was overwritten concurrently"));
                }
                for path in &s.changes.added_manifests {
                    let manifest = current.manifest(path).await?;
                    if manifest_partitions(metadata, &manifest)
                        .iter()
                        .any(|k| prepared.touched.contains(k))
                    {
                        return Err(conflict(
                            s,
                            "data was added concurrently to a partition being overwritten",
                        ));
                    }
                }
                if let Some(path) = &s.changes.removed_files
                    && read_file_set_partitions(current, path)
                        .await?
                        .iter()
                        .any(|k| prepared.touched.contains(k))
                {
                    return Err(conflict(
                        s,
                        "data was removed concurrently from a partition being overwritten",
                    ));
                }
            }
        }
        Change::Metadata {
            updates,
            data_dependent,
        } => {
            let touches_schema = updates.iter().any(|u| {
                matches!(
                    u,
                    MetadataUpdate::SetSchema(_)
                        | MetadataUpdate::SetPartitionSpec(_)
                        | MetadataUpdate::SetCurrentSchema(_)
                        | MetadataUpdate::SetDefaultSpec(_)
                )
            });
            if touches_schema {
                if definition_changed || intervening.iter().any(|s| schema_changed(&s)) {
                    let by = (intervening.iter().find(schema_changed).copied())
                        .unwrap_or(metadata.current_snapshot());
                    return Err(conflict(
                        by,
                        "the schema or partition spec was changed concurrently",
                    ));
                }
                if *data_dependent && let Some(s) = intervening.iter().find(|s| changed_data(s)) {
                    return Err(conflict(
                        s,
                        "the data this schema change was checked against changed concurrently",
                    ));
                }
            }
            let base_props = base.metadata().properties();
            for update in updates {
                let keys: Vec<&String> = match update {
                    MetadataUpdate::SetProperties(p) => p.keys().collect(),
                    MetadataUpdate::RemoveProperties(k) => k.iter().collect(),
                    _ => continue,
                };
                if let Some(key) = keys
                    .into_iter()
                    .find(|k| metadata.properties().get(*k) != base_props.get(*k))
                {
                    let by = intervening
                        .iter()
                        .rev()
                        .find(|s| s.operation == tarn_spec::Operation::SetProperties)
                        .copied()
                        .unwrap_or(metadata.current_snapshot());
                    return Err(conflict(
                        by,
                        format!("table property '{key}' was changed concurrently"),
                    ));
                }
            }
        }
    }
    Ok(())
}
