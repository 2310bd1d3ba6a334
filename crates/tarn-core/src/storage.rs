//! Opening object stores from URLs.
//!
//! | location | store |
//! |---|---|
//! | `/abs/path`, `rel/path`, `file:///abs/path` | local filesystem (the directory is created) |
//! | `memory://name/prefix` | an in-memory store shared by every opener of `name` in this process |
//! | `s3://bucket/prefix` | Amazon S3 or an S3-compatible server, configured from `AWS_*` variables |
//! | `gs://bucket/prefix` | Google Cloud Storage, configured from `GOOGLE_*` variables |
//! | `az://container/prefix`, `abfs[s]://...` | Azure Blob Storage, configured from `AZURE_*` variables |

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, RetryConfig};
use url::Url;

use crate::error::{Error, Result};
use crate::requests::{CountingStore, RequestCounter};

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

/// Options for the store of an `s3://`, `gs://` or `az://` location, on top of what the
/// environment gives (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Keys are object_store's configuration
/// keys, with or without their `aws_`/`google_`/`azure_` prefix and in any case (`endpoint`,
/// `region`, `access_key_id`, `allow_http`, `virtual_hosted_style_request`, `timeout`, ...),
/// and tarn's retry keys: `max_retries` (default 10), `retry_timeout` (default 3m),
/// `backoff_initial` (100ms), `backoff_max` (15s) and `backoff_base` (2). Durations are
/// written `250ms`, `30s` or `2m`.
pub type StoreOptions = BTreeMap<String, String>;

/// An opened location: the store, the root prefix inside it, and the canonical URL.
#[derive(Clone)]
pub struct StoreRoot {
    pub store: Arc<dyn ObjectStore>,
    pub root: Path,
    pub url: String,
    /// The requests made through `store` since it was opened.
    pub requests: Arc<RequestCounter>,
}

impl std::fmt::Debug for StoreRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRoot").field("url", &self.url).finish()
    }
}

impl StoreRoot {
    /// `store` under `root`, its requests counted.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, url: impl Into<String>) -> Self {
        let counting = CountingStore::new(store);
        StoreRoot {
            requests: counting.counter(),
            store: Arc::new(counting),
            root,
            url: url.into(),
        }
    }

    /// Checks, for a store reached over the network, that it refuses to create an object
    /// twice: tarn's commits depend on it. Writes and deletes one object under
    /// `_tarn_probe/`. A missing bucket, refused credentials and a store that creates
    /// twice are errors saying so. Credentials that may read but not write pass: their
    /// writes fail on their own. `probe_id` names the object (unique per check).
    pub async fn check_conditional_writes(&self, probe_id: &str) -> Result<()> {
        if !is_remote(&self.url) {
            return Ok(());
        }
        let path = self.root.clone().join("_tarn_probe").join(probe_id);
        let create = PutOptions::from(PutMode::Create);
        let first = self
            .store
            .put_opts(&path, "probe".into(), create.clone())
            .await;
        match first {
            Ok(_) => {}
            // Unknown or mistyped credentials are refused for everything.
            Err(e @ object_store::Error::PermissionDenied { .. })
                if ["InvalidAccessKeyId", "SignatureDoesNotMatch"]
                    .iter()
                    .any(|code| e.to_string().contains(code)) =>
            {
                return Err(Error::store(&self.url, e));
            }
            // Credentials that may read but not write: their writes fail on their own.
            Err(object_store::Error::PermissionDenied { .. }) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::invalid(
                    "location",
                    format!(
                        "the bucket or container of '{}' does not exist; create it first",
                        self.url
                    ),
                ));
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                return Err(Error::UnsupportedStore {
                    url: self.url.clone(),
                    reason: "conditional puts are turned off (conditional_put=disabled)".into(),
                });
            }
            Err(e) => return Err(Error::store(&self.url, e)),
        }
        let second = self.store.put_opts(&path, "probe".into(), create).await;
        let _ = self.store.delete(&path).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(()),
            Ok(_) => Err(Error::UnsupportedStore {
                url: self.url.clone(),
                reason: "a second create of the same object succeeded (the server ignores \
                         If-None-Match: *)"
                    .into(),
            }),
            Err(e) => Err(Error::store(&self.url, e)),
        }
    }
}

/// Whether `url` names a store reached over the network.
fn is_remote(url: &str) -> bool {
    bucket_of(url).is_some()
}

/// `scheme://bucket` of a location in a bucket or container (S3, GCS, Azure): where its
/// store is rooted. `None` for local paths and memory stores.
pub fn bucket_of(location: &str) -> Option<Url> {
    let url = Url::parse(location).ok()?;
    let remote = matches!(
        url.scheme(),
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss"
    );
    let host = url.host_str().filter(|h| remote && !h.is_empty())?;
    Url::parse(&format!("{}://{host}", url.scheme())).ok()
}

/// Opens the store a location string names, configured from the environment.
pub fn open_location(location: &str) -> Result<StoreRoot> {
    open_location_with(location, &StoreOptions::new())
}

/// Opens the store a location string names, configured from the environment and `options`
/// (which win).
pub fn open_location_with(location: &str, options: &StoreOptions) -> Result<StoreRoot> {
    let bad = |reason: String| Error::invalid("location", format!("'{location}': {reason}"));
    let url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // No scheme (or a Windows drive letter): a local path.
        _ => {
            no_options(location, options)?;
            return open_local(std::path::Path::new(location));
        }
    };
    let remote = |store: Arc<dyn ObjectStore>| StoreRoot::new(store, url_root(&url), url.as_str());
    // A cloud store from the environment, then `options` (builder keys and retries).
    macro_rules! cloud_store {
        ($builder:ty, $key:ty, $prefix:literal) => {{
            let (retry, rest) = split_retry(options).map_err(bad)?;
            let mut builder = <$builder>::from_env().with_url(url.as_str());
            for (key, value) in rest {
                builder =
                    builder.with_config(config_key::<$key>(&key, $prefix).map_err(bad)?, value);
            }
            let store = builder
                .with_retry(retry)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok(remote(Arc::new(store)))
        }};
    }
    match url.scheme() {
        "file" => {
            no_options(location, options)?;
            let path = url
                .to_file_path()
                .map_err(|_| bad("not a local file path".into()))?;
            open_local(&path)
        }
        "memory" => {
            no_options(location, options)?;
            let name = url.host_str().unwrap_or_default().to_string();
            let store = MEMORY_STORES
                .lock()
                .expect("memory store registry is not poisoned")
                .entry(name)
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            Ok(StoreRoot::new(store, url_root(&url), url.as_str()))
        }
        "s3" | "s3a" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            cloud_store!(AmazonS3Builder, AmazonS3ConfigKey, "aws_")
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            cloud_store!(GoogleCloudStorageBuilder, GoogleConfigKey, "google_")
        }
        "az" | "azure" | "abfs" | "abfss" => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            cloud_store!(MicrosoftAzureBuilder, AzureConfigKey, "azure_")
        }
        other => Err(bad(format!(
            "unknown scheme '{other}'; use a local path, file://, memory://, s3://, gs:// or az://"
        ))),
    }
}

fn no_options(location: &str, options: &StoreOptions) -> Result<()> {
    match options.keys().next() {
        None => Ok(()),
        Some(key) => Err(Error::invalid(
            "location",
            format!(
                "'{location}': option '{key}' applies to s3://, gs:// and az:// locations only"
            ),
        )),
    }
}

/// A builder's configuration key, looked up with and without its prefix.
fn config_key<K: FromStr>(key: &str, prefix: &str) -> std::result::Result<K, String> {
    let key = key.to_ascii_lowercase();
    key.parse()
        .or_else(|_| format!("{prefix}{key}").parse())
        .map_err(|_| {
            format!(
                "unknown option '{key}'; use object_store's configuration keys for this store \
                 (their {prefix}* names, with or without the prefix: endpoint, region, \
                 access_key_id, allow_http, ...) or tarn's max_retries, retry_timeout, \
                 backoff_initial, backoff_max, backoff_base"
            )
        })
}

/// The retry configuration `options` give, and the options left for the store's builder.
fn split_retry(
    options: &StoreOptions,
) -> std::result::Result<(RetryConfig, Vec<(String, String)>), String> {
    let mut retry = RetryConfig::default();
    let mut backoff = BackoffConfig::default();
    let mut rest = Vec::new();
    for (key, value) in options {
        let number = |what: &str| {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("option '{key}' takes {what}, not '{value}'"))
        };
        let duration = || {
            parse_duration(value).ok_or_else(|| {
                format!("option '{key}' takes a duration such as 250ms, 30s or 2m, not '{value}'")
            })
        };
        match key.to_ascii_lowercase().as_str() {
            "max_retries" => retry.max_retries = number("a number of retries")? as usize,
            "retry_timeout" => retry.retry_timeout = duration()?,
            "backoff_initial" => backoff.init_backoff = duration()?,
            "backoff_max" => backoff.max_backoff = duration()?,
            "backoff_base" => backoff.base = number("a number")?.max(1.0),
            _ => rest.push((key.clone(), value.clone())),
        }
    }
    retry.backoff = backoff;
    Ok((retry, rest))
}

/// `250ms`, `30s`, `2m`, or a number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
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
    // Deleting an object removes the directories it leaves empty (up to the root): a
    // partition's directory once compaction or expiry has taken its files, a dropped table's.
    // A put into a directory removed meanwhile creates it again.
    let store = LocalFileSystem::new_with_prefix(&absolute)
        .map_err(|e| bad(e.to_string()))?
        .with_automatic_cleanup(true);
    let url =
        Url::from_directory_path(&absolute).map_err(|_| bad("not an absolute path".into()))?;
    Ok(StoreRoot::new(Arc::new(store), Path::default(), url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> StoreOptions {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cloud_stores_take_their_builders_keys_with_or_without_prefix() {
        let gs = open_location_with(
            "gs://bucket/some/prefix",
            &options(&[
                ("skip_signature", "true"),
                ("GOOGLE_BUCKET", "bucket"),
                ("timeout", "5s"),
                ("max_retries", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(gs.root.as_ref(), "some/prefix");
        assert_eq!(gs.url, "gs://bucket/some/prefix");
        let az = open_location_with(
            "az://container/p",
            &options(&[
                ("account_name", "devstoreaccount1"),
                ("azure_storage_use_emulator", "true"),
                ("retry_timeout", "30s"),
            ]),
        )
        .unwrap();
        assert_eq!(az.root.as_ref(), "p");
        let s3 = open_location_with(
            "s3://bucket/w",
            &options(&[
                ("endpoint", "http://127.0.0.1:9000"),
                ("AWS_REGION", "eu-west-1"),
                ("allow_http", "true"),
                ("backoff_initial", "250ms"),
            ]),
        )
        .unwrap();
        assert_eq!(s3.root.as_ref(), "w");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        for url in ["s3://b/w", "gs://b/w", "az://c/w"] {
            let err = open_location_with(url, &options(&[("colour", "blue")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("unknown option 'colour'"), "{url}: {err}");
        }
        let err = open_location_with("s3://b/w", &options(&[("retry_timeout", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a duration such as"), "{err}");
        let err = open_location_with("memory://m/w", &options(&[("region", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s3://, gs:// and az:// locations only"),
            "{err}"
        );
    }

    #[test]
    fn buckets_of_locations() {
        let bucket = |l: &str| bucket_of(l).map(|u| u.to_string());
        assert_eq!(bucket("s3://lake/a/b").as_deref(), Some("s3://lake"));
        assert_eq!(bucket("gs://lake").as_deref(), Some("gs://lake"));
        assert_eq!(
            bucket("az://container/w").as_deref(),
            Some("az://container")
        );
        for local in [
            "file:///tmp/w",
            "memory://m/w",
            "/tmp/w",
            "w",
            "s3:///no-bucket",
        ] {
            assert_eq!(bucket(local), None, "{local}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 2m "), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        for bad in ["", "soon", "-1s", "3h", "NaN"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
