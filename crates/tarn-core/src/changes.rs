//! The change feed: which rows the commits of a range of versions inserted, deleted and
//! updated, found at the cost of the change rather than of the table (FORMAT.md §8.8).
//!
//! Per version, from what its commit recorded:
//!
//! | the commit | its rows in the feed |
//! |---|---|
//! | a change log (UPDATE and MERGE in either mode, DELETE in copy-on-write) | the log's files, by kind of change (a file the version removed whole can be its own log: its live rows at the parent) |
//! | an append | inserts: the live rows of the files in its added manifests |
//! | any other data change (overwrite, DELETE in merge-on-read, a restore) | the difference of its manifest list and its parent's: files only in the new list are inserts, files only in the old one deletes (their live rows in the parent), and a file in both whose deletion vector changed gives the positions it gained as deletes and those it lost (a restore) as inserts |
//! | compaction, schema and property changes, version 0 | nothing: no row changed |
//!
//! Only the manifests that differ between two versions are read, and only the data of the
//! changed files (of a file that lost rows to a deletion vector, only those positions).

use std::collections::{BTreeMap, HashMap, HashSet};

use roaring::RoaringTreemap;
use tarn_spec::{ChangeType, Operation, Snapshot, Version};

use crate::error::{Error, Result};
use crate::log;
use crate::manifest::DataFile;
use crate::table::Table;

/// Rows of one kind of change of one version, in some data files.
#[derive(Debug, Clone)]
pub struct ChangeSlice {
    pub version: Version,
    pub timestamp_ms: i64,
    pub change_type: ChangeType,
    /// The files holding the rows, as the version that has them lists them.
    pub files: Vec<DataFile>,
    /// `None`: the live rows of the files (their deletion vectors applied). Otherwise only
    /// these positions, per table-relative file path.
    pub positions: Option<HashMap<String, RoaringTreemap>>,
}

impl Table {
    /// The change feed of versions `first..=last` (both included; `last` at most this
    /// version), as the data files and positions to read, oldest version first.
    ///
    /// Each version's changes are read against its parent, so the range must start after
    /// the oldest version snapshot expiry kept (or at version 0); otherwise the error names
    /// the first version whose changes can still be read.
    pub async fn change_plan(&self, first: Version, last: Version) -> Result<Vec<ChangeSlice>> {
        if first > last {
            return Err(Error::invalid(
                "change range",
                format!("it starts at version {first}, after its end at version {last}"),
            ));
        }
        if last > self.version() {
            return Err(Error::VersionNotFound {
                requested: last,
                oldest: Version(0),
                latest: self.version(),
            });
        }
        let parent = Version(first.get().max(1) - 1);
        if !self.location().exists(&log::version_file(parent)).await? {
            let oldest = log::oldest_version(self.location())
                .await?
                .unwrap_or(self.version());
            return Err(Error::ChangesExpired {
                requested: first,
                first_readable: oldest.next(),
            });
        }
        let last_table = self.at_version(last).await?;
        let snapshots = last_table.snapshots_from(parent).await?;
        let mut slices = Vec::new();
        for pair in snapshots.windows(2) {
            let (before, snapshot) = (&pair[0], &pair[1]);
            if snapshot.version < first {
                continue;
            }
            slices.extend(self.changes_of(before, snapshot).await?);
        }
        Ok(slices)
    }

    /// The change feed of one commit: `snapshot`, made on top of `before`.
    async fn changes_of(&self, before: &Snapshot, snapshot: &Snapshot) -> Result<Vec<ChangeSlice>> {
        let slice = |change_type, files: Vec<DataFile>, positions| ChangeSlice {
            version: snapshot.version,
            timestamp_ms: snapshot.timestamp_ms,
            change_type,
            files,
            positions,
        };
        let changes = &snapshot.changes;
        if !changes.change_log.is_empty() {
            let mut slices = Vec::new();
            for (kind, path) in &changes.change_log {
                let files = self.manifest(path).await?.data_files();
                slices.push(slice(*kind, files, None));
            }
            return Ok(slices);
        }
        match snapshot.operation {
            Operation::Create
            | Operation::Rewrite
            | Operation::SchemaChange
            | Operation::SetProperties => return Ok(Vec::new()),
            Operation::Append => {
                let mut files = Vec::new();
                for path in &changes.added_manifests {
                    files.extend(self.manifest(path).await?.data_files());
                }
                return Ok(non_empty(vec![slice(ChangeType::Insert, files, None)]));
            }
            Operation::Overwrite | Operation::Delete | Operation::Update | Operation::Merge => {}
        }
        let old = self.files_not_in(before, snapshot).await?;
        let new = self.files_not_in(snapshot, before).await?;
        let inserted: Vec<DataFile> = new
            .values()
            .filter(|f| !old.contains_key(&f.path))
            .cloned()
            .collect();
        let removed: Vec<DataFile> = old
            .values()
            .filter(|f| !new.contains_key(&f.path))
            .cloned()
            .collect();
        // Files in both whose deletion vector changed: positions it gained were deleted, and
        // positions it lost (a restore of an earlier version) came back.
        let (mut deleted, mut shrunk) = (HashMap::new(), Vec::new());
        let (mut restored, mut grown) = (HashMap::new(), Vec::new());
        for (path, now) in &new {
            let Some(was) = old.get(path) else { continue };
            if now.deletion_vector == was.deletion_vector {
                continue;
            }
            let now_deleted = self.deleted_positions(now).await?;
            let was_deleted = self.deleted_positions(was).await?;
            let gained = &now_deleted - &was_deleted;
            if !gained.is_empty() {
                deleted.insert(path.clone(), gained);
                shrunk.push(now.clone());
            }
            let lost = &was_deleted - &now_deleted;
            if !lost.is_empty() {
                restored.insert(path.clone(), lost);
                grown.push(now.clone());
            }
        }
        Ok(non_empty(vec![
            slice(ChangeType::Delete, removed, None),
            slice(ChangeType::Delete, shrunk, Some(deleted)),
            slice(ChangeType::Insert, inserted, None),
            slice(ChangeType::Insert, grown, Some(restored)),
        ]))
    }

    /// The positions `file`'s deletion vector deletes.
    async fn deleted_positions(&self, file: &DataFile) -> Result<RoaringTreemap> {
        Ok(match &file.deletion_vector {
            Some(dv) => self.deletion_vector(dv).await?.as_ref().clone(),
            None => RoaringTreemap::new(),
        })
    }

    /// The data files of the manifests in `snapshot`'s list that are not in `other`'s, by
    /// path: with manifests reused by reference, these are where the two versions differ.
    async fn files_not_in(
        &self,
        snapshot: &Snapshot,
        other: &Snapshot,
    ) -> Result<BTreeMap<String, DataFile>> {
        let Some(list) = &snapshot.manifest_list else {
            return Ok(BTreeMap::new());
        };
        let list = self.manifest_list_at(list).await?;
        let shared: HashSet<String> = match &other.manifest_list {
            Some(path) => {
                let other = self.manifest_list_at(path).await?;
                other.paths().iter().flatten().map(str::to_string).collect()
            }
            None => HashSet::new(),
        };
        let mut files = BTreeMap::new();
        for path in list.paths().iter().flatten() {
            if shared.contains(path) {
                continue;
            }
            for file in self.manifest(path).await?.data_files() {
                files.insert(file.path.clone(), file);
            }
        }
        Ok(files)
    }
}

fn non_empty(slices: Vec<ChangeSlice>) -> Vec<ChangeSlice> {
    slices.into_iter().filter(|s| !s.files.is_empty()).collect()
}
