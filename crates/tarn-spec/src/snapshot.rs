//! Snapshots: the table's state at one version, and what the commit that made it changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{SchemaId, Version};

/// What a commit did, in the words a user would use. Informational: conflict detection
/// reads [`Changes`], not this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Version 0: the empty table.
    Create,
    Append,
    Overwrite,
    Delete,
    Update,
    Merge,
    /// Files replaced by others holding the same rows (compaction).
    Rewrite,
    SchemaChange,
    SetProperties,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Append => "append",
            Operation::Overwrite => "overwrite",
            Operation::Delete => "delete",
            Operation::Update => "update",
            Operation::Merge => "merge",
            Operation::Rewrite => "rewrite",
            Operation::SchemaChange => "schema-change",
            Operation::SetProperties => "set-properties",
        }
    }
}

/// Counts describing a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    pub added_files: u64,
    pub removed_files: u64,
    pub added_rows: u64,
    pub removed_rows: u64,
    pub total_files: u64,
    pub total_rows: u64,
    /// Free-form details an engine wants to record (e.g. the statement's kind).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// What a commit changed in the set of live data files, by reference to small immutable
/// objects. Concurrent committers read these to decide whether they conflict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Changes {
    /// Manifests holding exactly the data files this commit added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_manifests: Vec<String>,
    /// A manifest listing the data files this commit removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_files: Option<String>,
    /// The commit removed every data file of its parent (a whole-table overwrite), so no
    /// `removed-files` manifest is needed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed_all: bool,
    /// The rows this commit changed, recorded by its writer where the files it added and
    /// removed cannot tell them (an update from a delete and an insert, or which rows of a
    /// rewritten file went): per kind of change, a manifest of data files holding exactly
    /// those rows. When present, it is the whole of the commit's change feed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub change_log: BTreeMap<ChangeType, String>,
}

/// The kind of a row in a table's change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Insert,
    Delete,
    /// A row as it was before an UPDATE (or a MERGE's WHEN MATCHED THEN UPDATE) changed it.
    UpdatePreimage,
    /// The same row as the change left it.
    UpdatePostimage,
}

impl ChangeType {
    pub const ALL: [ChangeType; 4] = [
        ChangeType::Insert,
        ChangeType::Delete,
        ChangeType::UpdatePreimage,
        ChangeType::UpdatePostimage,
    ];

    /// The name the change feed shows in `_change_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Insert => "insert",
            ChangeType::Delete => "delete",
            ChangeType::UpdatePreimage => "update_preimage",
            ChangeType::UpdatePostimage => "update_postimage",
        }
    }
}

impl std::str::FromStr for ChangeType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ChangeType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a change type"))
    }
}

/// One entry of the snapshot log.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: Version,
    /// Commit time, milliseconds since the epoch (UTC).
    pub timestamp_ms: i64,
    pub operation: Operation,
    /// The schema data written by this commit uses; the schema a time-travel read at this
    /// version sees.
    pub schema_id: SchemaId,
    /// Path (relative to the table root) of the manifest list; `None` when the table held no
    /// data file at this version.
    pub manifest_list: Option<String>,
    pub summary: Summary,
    pub changes: Changes,
    /// A unique id the committer chose for this commit, so that a committer whose write
    /// succeeded but reported an error can recognise its own commit when it retries.
    pub commit_id: Option<String>,
}
