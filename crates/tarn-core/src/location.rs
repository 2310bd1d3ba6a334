//! Where a table lives, and the few object-store calls tarn makes on it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// How many objects [`TableLocation::put_all`] writes at once.
const PUTS_IN_FLIGHT: usize = 16;

/// A table's object store and root prefix. Every path tarn stores is relative to the root,
/// so a table can be copied or moved as a whole.
#[derive(Clone)]
pub struct TableLocation {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
}

impl fmt::Debug for TableLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableLocation")
            .field("url", &self.url)
            .finish()
    }
}

impl TableLocation {
    /// A table at `root` in `store`; `url` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, url: impl Into<String>) -> Self {
        TableLocation {
            store,
            root,
            url: url.into(),
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The absolute store path of a table-relative path.
    ///
    /// Table-relative paths are stored exactly as the objects are named: tarn escapes
    /// partition values itself (see `PartitionSpec::partition_path`), so the segments are
    /// taken as they are, never escaped a second time. A segment the store could not hold
    /// as it is (only possible in a corrupt manifest) is escaped, so it names no other object.
    pub fn path(&self, relative: &str) -> Path {
        let mut path = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = match PathPart::parse(part) {
                Ok(raw) => path.join(raw),
                Err(_) => path.join(part),
            };
        }
        path
    }

    /// A table-relative path as messages show it: under the table's URL.
    pub fn describe(&self, relative: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), relative)
    }

    pub(crate) async fn get(&self, relative: &str) -> Result<Bytes> {
        self.get_tagged(relative).await.map(|(bytes, _)| bytes)
    }

    /// An object's bytes and its entity tag (where the store gives one).
    pub(crate) async fn get_tagged(&self, relative: &str) -> Result<(Bytes, Option<String>)> {
        let path = self.path(relative);
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::store(self.describe(relative), e))?;
        let tag = result.meta.e_tag.clone();
        let bytes = result
            .bytes()
            .await
            .map_err(|e| Error::store(self.describe(relative), e))?;
        Ok((bytes, tag))
    }

    /// Some bytes of an object.
    pub(crate) async fn get_range(
        &self,
        relative: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        self.store
            .get_range(&self.path(relative), range)
            .await
            .map_err(|e| Error::store(self.describe(relative), e))
    }

    /// An object's entity tag: `None` if the object does not exist, `Some(None)` if it
    /// exists and the store gives no tag.
    pub(crate) async fn head_tag(&self, relative: &str) -> Result<Option<Option<String>>> {
        match self.store.head(&self.path(relative)).await {
            Ok(meta) => Ok(Some(meta.e_tag)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(self.describe(relative), e)),
        }
    }

    pub(crate) async fn exists(&self, relative: &str) -> Result<bool> {
        match self.store.head(&self.path(relative)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(self.describe(relative), e)),
        }
    }

    /// Writes an object, replacing any previous one. Only for immutable objects with unique
    /// names, and for the non-authoritative version hint.
    pub(crate) async fn put(&self, relative: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&self.path(relative), PutPayload::from(bytes))
            .await
            .map_err(|e| Error::store(self.describe(relative), e))?;
        Ok(())
    }

    /// Best effort: deletes the objects at these table-relative paths through the store's
    /// bulk delete (concurrent on local disk, batched on S3); a missing one is no error.
    pub async fn remove_all(&self, paths: &[String]) {
        if paths.is_empty() {
            return;
        }
        let paths: Vec<_> = paths.iter().map(|path| Ok(self.path(path))).collect();
        let deleted = self
            .store()
            .delete_stream(futures::stream::iter(paths).boxed());
        deleted.for_each(|_| async {}).await;
    }

    /// Writes objects as [`Self::put`] does, [`PUTS_IN_FLIGHT`] at a time: on an object store
    /// each is a round trip. Every put has ended when this returns, failed or not, so that
    /// none lands after the caller removed what was stored; the error is the first one.
    pub(crate) async fn put_all(
        &self,
        objects: impl IntoIterator<Item = (String, Bytes)>,
    ) -> Result<()> {
        let puts: Vec<_> = objects
            .into_iter()
            .map(|(relative, bytes)| async move { self.put(&relative, bytes).await })
            .collect();
        let results: Vec<Result<()>> = futures::stream::iter(puts)
            .buffer_unordered(PUTS_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Creates an object only if none exists at the path: the commit point. `Ok(None)` when
    /// another writer created it first, else the new object's entity tag (if the store
    /// gives one).
    pub(crate) async fn put_if_absent(
        &self,
        relative: &str,
        bytes: Bytes,
    ) -> Result<Option<Option<String>>> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(relative), PutPayload::from(bytes), options)
            .await
        {
            Ok(put) => Ok(Some(put.e_tag)),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(object_store::Error::NotImplemented { .. }) => Err(Error::UnsupportedStore {
                url: self.url.clone(),
                reason: "the store does not implement PutMode::Create".into(),
            }),
            Err(e) => Err(Error::store(self.describe(relative), e)),
        }
    }
}
