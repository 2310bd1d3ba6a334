//! Opening object stores from URLs.
//!
//! | location | store |
//! |---|---|
//! | `/abs/path`, `rel/path`, `file:///abs/path` | local filesystem (the directory is created) |
//! | `memory://name/prefix` | an in-memory store shared by every opener of `name` in this process |
//! | `s3://bucket/prefix` | Amazon S3 or an S3-compatible server, configured from `AWS_*` variables |
//! | `gs://bucket/prefix` | Google Cloud Storage, configured from `GOOGLE_*` variables |
//! | `az://container/prefix`, `abfs[s]://...` | Azure Blob Storage, configured from `AZURE_*` variables |

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use url::Url;

use crate::error::{Error, Result};

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

/// An opened location: the store, the root prefix inside it, and the canonical URL.
#[derive(Clone)]
pub struct StoreRoot {
    pub store: Arc<dyn ObjectStore>,
    pub root: Path,
    pub url: String,
}

impl std::fmt::Debug for StoreRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRoot").field("url", &self.url).finish()
    }
}

/// Opens the store a location string names.
pub fn open_location(location: &str) -> Result<StoreRoot> {
    let bad = |reason: String| Error::invalid("location", format!("'{location}': {reason}"));
    let url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // No scheme (or a Windows drive letter): a local path.
        _ => return open_local(std::path::Path::new(location)),
    };
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|_| bad("not a local file path".into()))?;
            open_local(&path)
        }
        "memory" => {
            let name = url.host_str().unwrap_or_default().to_string();
            let store = MEMORY_STORES
                .lock()
                .expect("memory store registry is not poisoned")
                .entry(name)
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            Ok(StoreRoot {
                store,
                root: url_root(&url),
                url: url.to_string(),
            })
        }
        "s3" | "s3a" => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok(StoreRoot {
                store: Arc::new(store),
                root: url_root(&url),
                url: url.to_string(),
            })
        }
        "gs" => {
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok(StoreRoot {
                store: Arc::new(store),
                root: url_root(&url),
                url: url.to_string(),
            })
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok(StoreRoot {
                store: Arc::new(store),
                root: url_root(&url),
                url: url.to_string(),
            })
        }
        other => Err(bad(format!(
            "unknown scheme '{other}'; use a local path, file://, memory://, s3://, gs:// or az://"
        ))),
    }
}

fn url_root(url: &Url) -> Path {
    Path::from_iter(url.path().split('/').filter(|p| !p.is_empty()))
}

fn open_local(path: &std::path::Path) -> Result<StoreRoot> {
    let bad =
        |reason: String| Error::invalid("location", format!("'{}': {reason}", path.display()));
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| bad(e.to_string()))?
            .join(path)
    };
    std::fs::create_dir_all(&absolute)
        .map_err(|e| bad(format!("cannot create the directory: {e}")))?;
    let absolute = absolute.canonicalize().map_err(|e| bad(e.to_string()))?;
    let store = LocalFileSystem::new_with_prefix(&absolute).map_err(|e| bad(e.to_string()))?;
    let url =
        Url::from_directory_path(&absolute).map_err(|_| bad("not an absolute path".into()))?;
    Ok(StoreRoot {
        store: Arc::new(store),
        root: Path::default(),
        url: url.to_string(),
    })
}
