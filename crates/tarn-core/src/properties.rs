//! Table properties: the one list of those tarn reads, and their validation, applied
//! whenever properties are set (CREATE TABLE, ALTER TABLE) rather than when they are used.
//!
//! Keys under `write.`, `history.` and `tarn.` are tarn's: an unknown one is an error (a misspelt
//! setting would otherwise be ignored silently). Other keys are kept as they are, for the
//! table's users.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::transaction::{OverwriteScope, RENAMED_TO_PROPERTY};
use crate::writer::{
    COMPRESSION_CODEC_PROPERTY, COMPRESSION_LEVEL_PROPERTY, ROW_GROUP_ROWS_PROPERTY,
    TARGET_FILE_SIZE_PROPERTY, WRITE_BUFFER_PROPERTY, WriterOptions,
};

/// What INSERT OVERWRITE replaces: `static` (the whole table, the default) or `dynamic`
/// (only the partitions the new rows fall in).
pub const OVERWRITE_MODE_PROPERTY: &str = "write.overwrite-mode";

/// How an INSERT into a partitioned table spreads its rows over its writers (Iceberg's
/// name): `hash` (the default) hashes them on the partition key, so each partition is
/// written by one writer, into as few files as its size needs; `none` keeps each writer on
/// the rows it reads, so every core encodes however the rows spread over partitions (a load
/// of one day into a table partitioned by day), and a partition gets up to one file per
/// writer. See [`DistributionMode`].
pub const DISTRIBUTION_MODE_PROPERTY: &str = "write.distribution-mode";

/// The values of [`DISTRIBUTION_MODE_PROPERTY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistributionMode {
    /// Rows hashed on the partition key across the writers.
    Hash,
    /// Each writer writes the rows it reads, to every partition they fall in.
    None,
}

impl DistributionMode {
    /// The mode these properties ask for (`hash` when unset).
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        match properties
            .get(DISTRIBUTION_MODE_PROPERTY)
            .map(String::as_str)
        {
            None | Some("hash") => Ok(DistributionMode::Hash),
            Some("none") => Ok(DistributionMode::None),
            Some(other) => Err(Error::invalid(
                "table property",
                format!(
                    "{DISTRIBUTION_MODE_PROPERTY} is '{other}'; it must be 'hash' (each \
                     partition written by one writer) or 'none' (every writer writes the rows \
                     it reads)"
                ),
            )),
        }
    }
}

/// Whether a writer of a partitioned table keeps a file open for every partition its rows
/// fall in (`true`, the default: Iceberg's fanout writer, no sort) or first sorts its rows on
/// the partition key (`false`: Spark's and Iceberg's default), so that it writes one
/// partition after another with one file open. Fanout holds a row group, its codecs and an
/// upload buffer per partition, and is the faster while they fit in memory; the sort spills
/// to disk under a memory limit, which bounds a load over any number of partitions.
pub const FANOUT_PROPERTY: &str = "write.fanout.enabled";

/// What [`FANOUT_PROPERTY`] says (`true` when unset).
pub fn fanout(properties: &BTreeMap<String, String>) -> Result<bool> {
    match properties.get(FANOUT_PROPERTY) {
        None => Ok(true),
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::invalid(
                "table property",
                format!(
                    "{FANOUT_PROPERTY} is '{text}'; it must be 'true' (a file open per \
                     partition) or 'false' (rows sorted on the partition key first)"
                ),
            )),
        },
    }
}

/// How DELETE changes rows: `merge-on-read` (deletion vectors, the default) or
/// `copy-on-write` (rewriting the files that hold them).
pub const DELETE_MODE_PROPERTY: &str = "write.delete-mode";
/// How UPDATE changes rows; as [`DELETE_MODE_PROPERTY`].
pub const UPDATE_MODE_PROPERTY: &str = "write.update-mode";
/// How MERGE changes rows; as [`DELETE_MODE_PROPERTY`].
pub const MERGE_MODE_PROPERTY: &str = "write.merge-mode";

/// Once a table's manifest list holds this many manifests smaller than
/// [`MANIFEST_TARGET_SIZE_PROPERTY`], a commit merges them (Iceberg's
/// `commit.manifest.min-count-to-merge`), so the list stays short under streams of appends.
pub const MANIFEST_MIN_COUNT_TO_MERGE_PROPERTY: &str = "write.manifest.min-count-to-merge";
/// The size merged manifests are packed to; larger manifests are left alone.
pub const MANIFEST_TARGET_SIZE_PROPERTY: &str = "write.manifest.target-size-bytes";
/// The order INSERT writes each statement's rows in and OPTIMIZE rewrites files in, so that
/// clustered layouts stay clustered: column names, comma-separated (DuckLake's
/// `SET SORTED BY`, Iceberg's sort order).
pub const SORT_ORDER_PROPERTY: &str = "write.sort-order";

/// The columns of [`SORT_ORDER_PROPERTY`], in order; empty when unset.
pub fn sort_order(properties: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let Some(text) = properties.get(SORT_ORDER_PROPERTY) else {
        return Ok(Vec::new());
    };
    let columns: Vec<String> = text.split(',').map(|c| c.trim().to_string()).collect();
    if columns.iter().any(|c| c.is_empty()) {
        return Err(Error::invalid(
            "table property",
            format!(
                "{SORT_ORDER_PROPERTY} is '{text}'; it must be column names separated by commas, \
                 such as 'user_id, ts'"
            ),
        ));
    }
    Ok(columns)
}

/// After an INSERT, a partition holding this many small files of about the same size has
/// them compacted into one, in a `rewrite` snapshot of its own (Delta's auto compaction,
/// size-tiered as an LSM tree is): unset, files stay as written until OPTIMIZE.
pub const AUTO_COMPACT_MIN_FILES_PROPERTY: &str = "write.auto-compact.min-files";

/// The number of files [`AUTO_COMPACT_MIN_FILES_PROPERTY`] asks for, if set.
pub fn auto_compact_min_files(properties: &BTreeMap<String, String>) -> Result<Option<u64>> {
    match properties.get(AUTO_COMPACT_MIN_FILES_PROPERTY) {
        None => Ok(None),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n >= 2 => Ok(Some(n)),
            _ => Err(Error::invalid(
                "table property",
                format!(
                    "{AUTO_COMPACT_MIN_FILES_PROPERTY} is '{text}'; it must be a whole number of \
                     files, 2 or more (10 is a good start)"
                ),
            )),
        },
    }
}

/// Snapshot expiry removes snapshots older than this (a duration: `7d`, `12h`, `30m`, `90s`).
pub const MAX_SNAPSHOT_AGE_PROPERTY: &str = "history.expire.max-snapshot-age";
/// Snapshot expiry always keeps at least this many of the newest snapshots.
pub const MIN_SNAPSHOTS_TO_KEEP_PROPERTY: &str = "history.expire.min-snapshots-to-keep";

const DEFAULT_MIN_COUNT_TO_MERGE: u64 = 100;
const DEFAULT_MANIFEST_TARGET_SIZE: u64 = 8 << 20;
const DEFAULT_MAX_SNAPSHOT_AGE_MS: u64 = 5 * 24 * 3600 * 1000;
const DEFAULT_MIN_SNAPSHOTS_TO_KEEP: u64 = 1;

/// How commits keep the manifest list short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestMerge {
    pub min_count: u64,
    pub target_size: u64,
}

impl ManifestMerge {
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        Ok(ManifestMerge {
            min_count: positive(
                properties,
                MANIFEST_MIN_COUNT_TO_MERGE_PROPERTY,
                DEFAULT_MIN_COUNT_TO_MERGE,
            )?
            .max(2),
            target_size: positive(
                properties,
                MANIFEST_TARGET_SIZE_PROPERTY,
                DEFAULT_MANIFEST_TARGET_SIZE,
            )?,
        })
    }
}

/// The retention a table asks snapshot expiry for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Snapshots committed longer ago than this expire...
    pub max_snapshot_age_ms: u64,
    /// ...unless they are among this many newest ones.
    pub min_snapshots_to_keep: u64,
}

impl Retention {
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        let max_snapshot_age_ms = match properties.get(MAX_SNAPSHOT_AGE_PROPERTY) {
            None => DEFAULT_MAX_SNAPSHOT_AGE_MS,
            Some(text) => parse_duration_ms(text).ok_or_else(|| {
                Error::invalid(
                    "table property",
                    format!(
                        "{MAX_SNAPSHOT_AGE_PROPERTY} is '{text}'; it must be a duration such as \
                         '7d', '12h', '30m' or '90s'"
                    ),
                )
            })?,
        };
        Ok(Retention {
            max_snapshot_age_ms,
            min_snapshots_to_keep: positive(
                properties,
                MIN_SNAPSHOTS_TO_KEEP_PROPERTY,
                DEFAULT_MIN_SNAPSHOTS_TO_KEEP,
            )?,
        })
    }
}

/// A duration as tarn's properties and maintenance options write it: a number and a unit
/// (`d`, `h`, `m`, `s`, `ms`), in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

fn positive(properties: &BTreeMap<String, String>, key: &str, default: u64) -> Result<u64> {
    match properties.get(key) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::invalid(
                "table property",
                format!("{key} is '{text}'; it must be a positive whole number"),
            )),
        },
    }
}

/// How a row-level change is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum RowLevelMode {
    /// Deleted and replaced rows are marked in deletion vectors; their files stay.
    MergeOnRead,
    /// Files holding changed rows are rewritten without them.
    CopyOnWrite,
}

impl RowLevelMode {
    /// The mode `property` names in these properties (merge-on-read when unset).
    pub fn from_properties(properties: &BTreeMap<String, String>, property: &str) -> Result<Self> {
        match properties.get(property).map(String::as_str) {
            None | Some("merge-on-read") => Ok(RowLevelMode::MergeOnRead),
            Some("copy-on-write") => Ok(RowLevelMode::CopyOnWrite),
            Some(other) => Err(Error::invalid(
                "table property",
                format!("{property} is '{other}'; it must be 'merge-on-read' or 'copy-on-write'"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RowLevelMode::MergeOnRead => "merge-on-read",
            RowLevelMode::CopyOnWrite => "copy-on-write",
        }
    }
}

/// Every property tarn reads, with what it takes.
pub const KNOWN_PROPERTIES: &[(&str, &str)] = &[
    (DELETE_MODE_PROPERTY, "'merge-on-read' or 'copy-on-write'"),
    (UPDATE_MODE_PROPERTY, "'merge-on-read' or 'copy-on-write'"),
    (MERGE_MODE_PROPERTY, "'merge-on-read' or 'copy-on-write'"),
    (TARGET_FILE_SIZE_PROPERTY, "a positive number of bytes"),
    (ROW_GROUP_ROWS_PROPERTY, "a positive number of rows"),
    (
        COMPRESSION_CODEC_PROPERTY,
        "'zstd', 'snappy', 'lz4' or 'uncompressed'",
    ),
    (COMPRESSION_LEVEL_PROPERTY, "a zstd level, 1 to 22"),
    (WRITE_BUFFER_PROPERTY, "a positive number of bytes"),
    (OVERWRITE_MODE_PROPERTY, "'static' or 'dynamic'"),
    (DISTRIBUTION_MODE_PROPERTY, "'hash' or 'none'"),
    (FANOUT_PROPERTY, "'true' or 'false'"),
    (SORT_ORDER_PROPERTY, "column names separated by commas"),
    (
        MANIFEST_MIN_COUNT_TO_MERGE_PROPERTY,
        "a positive number of manifests",
    ),
    (MANIFEST_TARGET_SIZE_PROPERTY, "a positive number of bytes"),
    (
        AUTO_COMPACT_MIN_FILES_PROPERTY,
        "a number of files, 2 or more",
    ),
    (
        MAX_SNAPSHOT_AGE_PROPERTY,
        "a duration such as '7d' or '12h'",
    ),
    (
        MIN_SNAPSHOTS_TO_KEEP_PROPERTY,
        "a positive number of snapshots",
    ),
    (RENAMED_TO_PROPERTY, "set by RENAME TO"),
    (crate::table::DROPPED_PROPERTY, "set by DROP TABLE"),
];

/// The prefix of the properties holding applications' last committed sequence numbers
/// (`tarn.app-seq.<app id>`, see [`crate::transaction::AppCommit`]); set by commits only.
pub const APP_SEQUENCE_PREFIX: &str = "tarn.app-seq.";

/// Properties set by tarn itself, never by users.
pub const INTERNAL_PROPERTIES: &[&str] = &[RENAMED_TO_PROPERTY, crate::table::DROPPED_PROPERTY];

/// Whether a table property is one only tarn sets (the internal ones and applications'
/// sequence numbers): statements cannot set or remove it, and a new definition of the
/// table keeps it.
pub fn set_by_tarn(key: &str) -> bool {
    INTERNAL_PROPERTIES.contains(&key) || key.starts_with(APP_SEQUENCE_PREFIX)
}

/// Checks a table's properties: known keys have valid values, and no key under `write.` or
/// `tarn.` is unknown.
pub fn validate(properties: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in properties {
        if key.starts_with(APP_SEQUENCE_PREFIX) {
            if value.parse::<u64>().is_err() {
                return Err(Error::invalid(
                    "table property",
                    format!("'{key}' holds a sequence number, not '{value}'"),
                ));
            }
            continue;
        }
        let ours = ["write.", "tarn.", "history."]
            .iter()
            .any(|prefix| key.starts_with(prefix));
        if ours && !KNOWN_PROPERTIES.iter().any(|(k, _)| k == key) {
            let known: Vec<&str> = KNOWN_PROPERTIES
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| !INTERNAL_PROPERTIES.contains(k))
                .collect();
            return Err(Error::invalid(
                "table property",
                format!(
                    "'{key}' is not a property tarn knows; its properties are {}",
                    known.join(", ")
                ),
            ));
        }
    }
    WriterOptions::from_properties(properties)?;
    OverwriteScope::from_properties(properties)?;
    ManifestMerge::from_properties(properties)?;
    sort_order(properties)?;
    DistributionMode::from_properties(properties)?;
    fanout(properties)?;
    auto_compact_min_files(properties)?;
    Retention::from_properties(properties)?;
    for property in [
        DELETE_MODE_PROPERTY,
        UPDATE_MODE_PROPERTY,
        MERGE_MODE_PROPERTY,
    ] {
        RowLevelMode::from_properties(properties, property)?;
    }
    Ok(())
}

impl OverwriteScope {
    /// The scope INSERT OVERWRITE has under these properties.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self> {
        match properties.get(OVERWRITE_MODE_PROPERTY) {
            None => Ok(OverwriteScope::Table),
            Some(mode) => Self::from_mode(mode).ok_or_else(|| {
                Error::invalid(
                    "table property",
                    format!(
                        "{OVERWRITE_MODE_PROPERTY} is '{mode}'; it must be 'static' or 'dynamic'"
                    ),
                )
            }),
        }
    }

    /// The scope of an overwrite mode's name: `static` (the table) or `dynamic` (the
    /// partitions the new rows fall in), in any case.
    pub fn from_mode(mode: &str) -> Option<Self> {
        match mode.to_ascii_lowercase().as_str() {
            "static" => Some(OverwriteScope::Table),
            "dynamic" => Some(OverwriteScope::Partitions),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use parquet::basic::{Compression, ZstdLevel};

    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn known_values_are_checked_and_unknown_keys_of_ours_refused() {
        assert!(validate(&props(&[("write.overwrite-mode", "dynamic")])).is_ok());
        assert!(validate(&props(&[("owner", "feeds-team"), ("x.y", "z")])).is_ok());
        let bogus = validate(&props(&[("write.overwrite-mode", "bogus")])).unwrap_err();
        assert!(
            bogus.to_string().contains("must be 'static' or 'dynamic'"),
            "{bogus}"
        );
        let typo = validate(&props(&[("write.target-file-size", "1")])).unwrap_err();
        assert!(
            typo.to_string()
                .contains("'write.target-file-size' is not a property tarn knows"),
            "{typo}"
        );
        assert!(validate(&props(&[("write.target-file-size-bytes", "0")])).is_err());
        assert!(validate(&props(&[("tarn.whatever", "1")])).is_err());
        assert!(fanout(&props(&[])).unwrap());
        assert!(!fanout(&props(&[("write.fanout.enabled", "False")])).unwrap());
        let fanout = validate(&props(&[("write.fanout.enabled", "yes")])).unwrap_err();
        assert!(fanout.to_string().contains("must be 'true'"), "{fanout}");
    }

    #[test]
    fn the_compression_codec_and_its_level_are_checked() {
        let codec = |pairs: &[(&str, &str)]| {
            WriterOptions::from_properties(&props(pairs)).map(|o| o.compression)
        };
        let zstd = |level| Compression::ZSTD(ZstdLevel::try_new(level).unwrap());
        assert_eq!(codec(&[]).unwrap(), zstd(1));
        let level = "write.parquet.compression-level";
        assert_eq!(codec(&[(level, "9")]).unwrap(), zstd(9));
        let named = "write.parquet.compression-codec";
        assert_eq!(codec(&[(named, " Snappy ")]).unwrap(), Compression::SNAPPY);
        assert_eq!(codec(&[(named, "lz4")]).unwrap(), Compression::LZ4_RAW);
        assert_eq!(
            codec(&[(named, "uncompressed")]).unwrap(),
            Compression::UNCOMPRESSED
        );
        assert_eq!(codec(&[(named, "zstd"), (level, "3")]).unwrap(), zstd(3));
        for (pairs, says) in [
            (&[(named, "gzip")][..], "it must be 'zstd', 'snappy', 'lz4'"),
            (&[(level, "0")][..], "from 1 (fastest) to 22"),
            (&[(level, "23")][..], "from 1 (fastest) to 22"),
            (&[(level, "high")][..], "is 'high'"),
            (
                &[(named, "snappy"), (level, "3")][..],
                "snappy has no levels",
            ),
        ] {
            let error = validate(&props(pairs)).unwrap_err().to_string();
            assert!(error.contains(says), "{pairs:?}: {error}");
        }
    }
}
