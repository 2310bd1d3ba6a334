//! The version log: `metadata/<20-digit version>.json`, one immutable file per commit, and
//! how the newest one is found.
//!
//! Finding the newest version costs O(1) requests in the common case: the writer of each
//! version records it in `metadata/version-hint` (overwritten, non-authoritative). A reader
//! starts from the hint and probes upward with HEAD requests at distances 1, 2, 4, ... until
//! one is missing, then bisects. Versions are dense, so the last existing one is the newest.
//! Only when the hint is missing or names a version that does not exist does a reader LIST
//! the metadata prefix.

use futures::TryStreamExt;
use tarn_spec::{SpecError, TableMetadata, Version};

use crate::error::{Error, Result};
use crate::location::TableLocation;

pub(crate) const METADATA_DIR: &str = "metadata";
pub(crate) const HINT: &str = "metadata/version-hint";

/// The table-relative path of a version file.
pub fn version_file(version: Version) -> String {
    format!("{METADATA_DIR}/{:020}.json", version.get())
}

fn parse_version_file(name: &str) -> Option<Version> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(Version))
        .flatten()
}

/// The newest committed version, or `None` if the location holds no table.
pub(crate) async fn latest_version(location: &TableLocation) -> Result<Option<Version>> {
    let hinted = read_hint(location).await?;
    let start = match hinted {
        Some(v) if location.exists(&version_file(v)).await? => v,
        _ => match list_latest(location).await? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    probe_upward(location, start).await.map(Some)
}

/// The metadata of the newest version, or `None` if the location holds no table. Trusts the
/// hint's version to exist rather than checking it, since the read of the version file finds
/// out anyway: one request fewer than [`latest_version`] and a read, and one round trip fewer,
/// as the read goes out with the probe.
pub(crate) async fn read_latest(location: &TableLocation) -> Result<Option<VersionFile>> {
    if let Some(hinted) = read_hint(location).await? {
        // The hint usually names the newest version: its file is read while the probe looks
        // for the next, one round trip for both, and read again only if the hint was behind.
        let next = hinted.next();
        let next_file = version_file(next);
        let (next_exists, hinted_file) =
            futures::join!(location.exists(&next_file), read_version(location, hinted));
        let read = if next_exists? {
            let latest = probe_upward(location, next).await?;
            read_version(location, latest).await
        } else {
            hinted_file
        };
        match read {
            Ok(file) => return Ok(Some(file)),
            // A hint left by a dropped table: find the versions by listing.
            Err(Error::MissingFile { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // A version found by listing can still vanish before it is read, while DROP TABLE
    // deletes the versions; list again until the table is gone or a read succeeds.
    let mut attempts = 0;
    loop {
        let Some(listed) = list_latest(location).await? else {
            return Ok(None);
        };
        let latest = probe_upward(location, listed).await?;
        match read_version(location, latest).await {
            Err(Error::MissingFile { .. }) if attempts < 3 => attempts += 1,
            other => return other.map(Some),
        }
    }
}

async fn read_hint(location: &TableLocation) -> Result<Option<Version>> {
    match location.get(HINT).await {
        Ok(bytes) => Ok(std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Version)),
        Err(Error::MissingFile { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Given an existing version, the newest one.
async fn probe_upward(location: &TableLocation, known: Version) -> Result<Version> {
    let mut low = known.get(); // exists
    let mut step = 1u64;
    let high = loop {
        let candidate = low + step;
        if !location.exists(&version_file(Version(candidate))).await? {
            break candidate; // missing
        }
        low = candidate;
        step *= 2;
    };
    let (mut low, mut high) = (low, high);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if location.exists(&version_file(Version(mid))).await? {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(Version(low))
}

/// Every version file present, by LIST (the fallback; O(number of versions)).
async fn list_versions(location: &TableLocation) -> Result<Vec<Version>> {
    let prefix = location.path(METADATA_DIR);
    let objects: Vec<_> = location
        .store()
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store(METADATA_DIR, e))?;
    Ok(objects
        .iter()
        .filter_map(|o| o.location.filename().and_then(parse_version_file))
        .collect())
}

async fn list_latest(location: &TableLocation) -> Result<Option<Version>> {
    Ok(list_versions(location).await?.into_iter().max())
}

/// The oldest version file still present (versions below it were expired).
pub(crate) async fn oldest_version(location: &TableLocation) -> Result<Option<Version>> {
    Ok(list_versions(location).await?.into_iter().min())
}

/// A version file as read: its metadata and the object's entity tag, which tells this file
/// apart from a file of the same name written later (after the table was dropped and
/// created again).
#[derive(Debug)]
pub(crate) struct VersionFile {
    pub metadata: TableMetadata,
    pub tag: Option<String>,
}

/// Reads and validates one version file.
pub(crate) async fn read_version(
    location: &TableLocation,
    version: Version,
) -> Result<VersionFile> {
    let path = version_file(version);
    let (bytes, tag) = location.get_tagged(&path).await?;
    let shown = location.describe(&path);
    let metadata = TableMetadata::from_json(&bytes).map_err(|source| match source {
        SpecError::UnsupportedFormatVersion { .. } => Error::UnsupportedFormat {
            path: shown.clone(),
            source,
        },
        source => Error::CorruptMetadata {
            path: shown.clone(),
            source,
        },
    })?;
    if metadata.version() != version {
        return Err(Error::CorruptMetadata {
            path: shown,
            source: SpecError::Invalid(format!(
                "the file describes version {}, but its name says version {version}",
                metadata.version()
            )),
        });
    }
    Ok(VersionFile { metadata, tag })
}

/// Records `version` as the newest known. Best effort: the hint only saves requests.
pub(crate) async fn write_hint(location: &TableLocation, version: Version) {
    let _ = location.put(HINT, version.get().to_string().into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_file_names_sort_numerically() {
        assert_eq!(
            version_file(Version(42)),
            "metadata/00000000000000000042.json"
        );
        assert_eq!(
            parse_version_file("00000000000000000042.json"),
            Some(Version(42))
        );
        assert_eq!(parse_version_file("42.json"), None);
        assert_eq!(parse_version_file("version-hint"), None);
        assert!(version_file(Version(9)) < version_file(Version(10)));
    }
}
