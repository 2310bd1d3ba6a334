//! The files of a table on local disk that no object-store listing shows.
//!
//! object_store's local store writes an object as `<name>#<n>` and renames it into place
//! once it is written; its listings leave such files out (they are not objects). A process
//! killed during a write, or a large file's multipart upload cut short, leaves one behind:
//! 20 MB for a load killed mid-file. Orphan cleanup and DROP TABLE walk the table's
//! directory for them. Other stores have no such files (an unfinished S3 multipart upload
//! is the bucket's lifecycle rule's to remove).
//!
//! The store removes the directories that deleting an object empties (see
//! `storage::open_local`); a staging file removed here takes its emptied directories, up to
//! the table's own, with it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::location::TableLocation;

/// A file object_store's local store was writing, found by walking a table's directory.
#[derive(Debug)]
pub(crate) struct StagingFile {
    /// Table-relative, as orphans are reported.
    pub relative: String,
    pub path: PathBuf,
    pub size: u64,
}

/// The staging files under `location` last modified before `modified_before_ms`; none
/// unless the table is on local disk.
pub(crate) async fn staging_files(
    location: &TableLocation,
    modified_before_ms: i64,
) -> Result<Vec<StagingFile>> {
    let Some(dir) = directory(location) else {
        return Ok(Vec::new());
    };
    blocking(location, move || {
        let mut found = Vec::new();
        let mut dirs = vec![dir.clone()];
        while let Some(current) = dirs.pop() {
            let entries = match std::fs::read_dir(&current) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let path = entry.path();
                if meta.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Some(relative) = relative(&dir, &path) else {
                    continue;
                };
                let modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(i64::MAX, |d| d.as_millis() as i64);
                if is_staging_file(&relative) && modified_ms < modified_before_ms {
                    found.push(StagingFile {
                        relative,
                        path,
                        size: meta.len(),
                    });
                }
            }
        }
        Ok(found)
    })
    .await
}

/// Removes `files` (gone already is fine), then each directory that leaves empty, up to and
/// including the table's directory. A directory a writer has put a file into meanwhile is
/// not empty, so it stays; one removed just before a writer's put is created again by the
/// store, which creates missing parents whenever a put finds them gone.
pub(crate) async fn remove(location: &TableLocation, files: &[StagingFile]) -> Result<()> {
    let Some(dir) = directory(location) else {
        return Ok(());
    };
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    blocking(location, move || {
        for path in paths {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", path.display()),
                    ));
                }
                _ => {}
            }
            let mut parent = path.parent();
            while let Some(current) = parent.filter(|p| p.starts_with(&dir)) {
                if std::fs::remove_dir(current).is_err() {
                    break;
                }
                parent = current.parent();
            }
        }
        Ok(())
    })
    .await
}

/// Removes the empty directories under a table's directory on local disk, and the table's
/// own if that leaves it empty: what an aborted write leaves once the store has removed its
/// staging file. A directory a writer puts a file into meanwhile is not empty, so it stays.
pub(crate) async fn remove_empty_directories(location: &TableLocation) -> Result<()> {
    let Some(dir) = directory(location) else {
        return Ok(());
    };
    blocking(location, move || {
        prune(&dir);
        Ok(())
    })
    .await
}

/// Removes `dir` if it holds nothing once its empty subdirectories are removed; whether it
/// did.
fn prune(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        empty &= is_dir && prune(&entry.path());
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

/// The directory of a table on local disk.
fn directory(location: &TableLocation) -> Option<PathBuf> {
    url::Url::parse(location.url())
        .ok()
        .filter(|url| url.scheme() == "file")
        .and_then(|url| url.to_file_path().ok())
}

/// Whether `relative` names a file object_store's local store writes an object into before
/// renaming it into place: the object's name, `#` and a number.
fn is_staging_file(relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    name.split_once('#')
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// `path` relative to `dir`, with `/` between segments.
fn relative(dir: &Path, path: &Path) -> Option<String> {
    let segments: Vec<String> = path
        .strip_prefix(dir)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(segments.join("/"))
}

/// Runs `work`, calls to the local file system, off the async workers; its errors are the
/// table's store errors.
async fn blocking<T: Send + 'static>(
    location: &TableLocation,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let result = tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    result.map_err(|e| {
        let source = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        };
        Error::store(location.describe(""), source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_files_are_a_name_then_hash_and_digits() {
        assert!(is_staging_file("data/a.parquet#1"));
        assert!(is_staging_file("data/day=x/a.parquet#12"));
        assert!(!is_staging_file("data/notes#draft"));
        assert!(!is_staging_file("data/a.parquet#"));
        assert!(!is_staging_file("data/a.parquet"));
        assert!(!is_staging_file("data/dir#1/a.parquet"));
    }
}
