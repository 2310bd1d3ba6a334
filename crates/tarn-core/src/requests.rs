//! Counting the requests a store serves, so that what a statement costs on S3 can be seen.
//!
//! Every store tarn opens is wrapped in a [`CountingStore`]. The counts are of requests as an
//! HTTP store would send them: a ranged read after coalescing (ranges closer than
//! [`OBJECT_STORE_COALESCE_DEFAULT`] share a request), a LIST per page of 1,000 objects, a
//! multipart upload as its creation, its parts and its completion. Deletes count objects
//! (S3 deletes up to 1,000 in one request).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, OBJECT_STORE_COALESCE_DEFAULT,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart,
};

/// Requests by kind, counted since the store was opened.
#[derive(Debug, Default)]
pub struct RequestCounter {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
    read_bytes: AtomicU64,
}

/// A reading of a [`RequestCounter`]; subtract two to get what happened between them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub head: u64,
    pub put: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
    /// Bytes the GET requests returned.
    pub read_bytes: u64,
}

impl RequestCounter {
    pub fn read(&self) -> RequestCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestCounts {
            get: load(&self.get),
            head: load(&self.head),
            put: load(&self.put),
            list: load(&self.list),
            delete: load(&self.delete),
            copy: load(&self.copy),
            read_bytes: load(&self.read_bytes),
        }
    }

    /// Adds `counts` (another counter's, when figures are merged).
    pub fn add_counts(&self, counts: RequestCounts) {
        Self::add(&self.get, counts.get);
        Self::add(&self.head, counts.head);
        Self::add(&self.put, counts.put);
        Self::add(&self.list, counts.list);
        Self::add(&self.delete, counts.delete);
        Self::add(&self.copy, counts.copy);
        Self::add(&self.read_bytes, counts.read_bytes);
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl RequestCounts {
    /// The requests made since `earlier`.
    pub fn since(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get.saturating_sub(earlier.get),
            head: self.head.saturating_sub(earlier.head),
            put: self.put.saturating_sub(earlier.put),
            list: self.list.saturating_sub(earlier.list),
            delete: self.delete.saturating_sub(earlier.delete),
            copy: self.copy.saturating_sub(earlier.copy),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
        }
    }

    /// Requests of every kind.
    pub fn total(self) -> u64 {
        self.get + self.head + self.put + self.list + self.delete + self.copy
    }
}

impl std::ops::Add for RequestCounts {
    type Output = RequestCounts;

    fn add(self, other: RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get + other.get,
            head: self.head + other.head,
            put: self.put + other.put,
            list: self.list + other.list,
            delete: self.delete + other.delete,
            copy: self.copy + other.copy,
            read_bytes: self.read_bytes + other.read_bytes,
        }
    }
}

impl std::iter::Sum for RequestCounts {
    fn sum<I: Iterator<Item = RequestCounts>>(iter: I) -> RequestCounts {
        iter.fold(RequestCounts::default(), |a, b| a + b)
    }
}

impl fmt::Display for RequestCounts {
    /// `12 GET, 3 HEAD, 2 PUT, 0 LIST`, plus deletes and copies when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} GET, {} HEAD, {} PUT, {} LIST",
            self.get, self.head, self.put, self.list
        )?;
        if self.delete > 0 {
            write!(f, ", {} DELETE", self.delete)?;
        }
        if self.copy > 0 {
            write!(f, ", {} COPY", self.copy)?;
        }
        Ok(())
    }
}

/// A store that counts the requests it forwards to `inner`.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counter: Arc<RequestCounter>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self::with_counter(inner, Arc::default())
    }

    /// A store that counts into `counter`, for figures of one operation (one scan).
    pub fn with_counter(inner: Arc<dyn ObjectStore>, counter: Arc<RequestCounter>) -> Self {
        CountingStore { inner, counter }
    }

    pub fn counter(&self) -> Arc<RequestCounter> {
        self.counter.clone()
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

/// How many requests an HTTP store makes for `ranges`: one per run of ranges whose gaps are
/// under the coalescing distance.
fn coalesced_requests(ranges: &[Range<u64>]) -> u64 {
    let mut sorted: Vec<&Range<u64>> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.start);
    let mut requests = 0;
    let mut end: Option<u64> = None;
    for range in sorted {
        match end {
            Some(e) if range.start <= e.saturating_add(OBJECT_STORE_COALESCE_DEFAULT) => {
                end = Some(e.max(range.end));
            }
            _ => {
                requests += 1;
                end = Some(range.end);
            }
        }
    }
    requests
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        RequestCounter::add(&self.counter.put, 1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        RequestCounter::add(&self.counter.put, 1);
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload {
            upload,
            counter: self.counter.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let kind = if options.head {
            &self.counter.head
        } else {
            &self.counter.get
        };
        RequestCounter::add(kind, 1);
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if !head {
            RequestCounter::add(
                &self.counter.read_bytes,
                result.range.end - result.range.start,
            );
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        RequestCounter::add(&self.counter.get, coalesced_requests(ranges));
        let bytes = ranges.iter().map(|r| r.end - r.start).sum();
        RequestCounter::add(&self.counter.read_bytes, bytes);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let counter = self.counter.clone();
        let counted = locations
            .inspect(move |_| RequestCounter::add(&counter.delete, 1))
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        count_pages(self.counter.clone(), self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        count_pages(
            self.counter.clone(),
            self.inner.list_with_offset(prefix, offset),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        RequestCounter::add(&self.counter.list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        RequestCounter::add(&self.counter.copy, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        // A copy and a delete on object stores (a rename on local disk).
        RequestCounter::add(&self.counter.copy, 1);
        RequestCounter::add(&self.counter.delete, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

/// Counts one LIST request when the listing starts and one more per 1,000 objects after.
fn count_pages(
    counter: Arc<RequestCounter>,
    listing: BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    RequestCounter::add(&counter.list, 1);
    let mut seen = 0u64;
    listing
        .inspect(move |_| {
            seen += 1;
            if seen.is_multiple_of(1000) {
                RequestCounter::add(&counter.list, 1);
            }
        })
        .boxed()
}

#[derive(Debug)]
struct CountingUpload {
    upload: Box<dyn MultipartUpload>,
    counter: Arc<RequestCounter>,
}

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        RequestCounter::add(&self.counter.put, 1);
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        RequestCounter::add(&self.counter.put, 1);
        self.upload.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        RequestCounter::add(&self.counter.delete, 1);
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn near_ranges_share_a_request() {
        let mb = 1024 * 1024;
        assert_eq!(coalesced_requests(&[]), 0);
        assert_eq!(coalesced_requests(&[0..10, 20..30, 5..8]), 1);
        assert_eq!(coalesced_requests(&[0..10, 10 + 2 * mb..11 + 2 * mb]), 2);
        assert_eq!(coalesced_requests(&[2 * mb..3 * mb, 0..10, 10..mb]), 1);
        assert_eq!(coalesced_requests(&[3 * mb..4 * mb, 0..10, 10..mb]), 2);
    }

    #[tokio::test]
    async fn counts_by_kind() {
        let store = CountingStore::new(Arc::new(object_store::memory::InMemory::new()));
        let before = store.counter().read();
        let path = Path::from("a/b");
        store.put(&path, "hello".into()).await.unwrap();
        store.head(&path).await.unwrap();
        store.get(&path).await.unwrap().bytes().await.unwrap();
        store.get_ranges(&path, &[0..1, 2..3]).await.unwrap();
        let listed: Vec<_> = store.list(None).collect().await;
        assert_eq!(listed.len(), 1);
        store.delete(&path).await.unwrap();
        let counts = store.counter().read().since(before);
        assert_eq!(
            counts,
            RequestCounts {
                get: 2,
                head: 1,
                put: 1,
                list: 1,
                delete: 1,
                copy: 0,
                // "hello" whole, then two ranges of one byte.
                read_bytes: 7,
            }
        );
        assert_eq!(counts.to_string(), "2 GET, 1 HEAD, 1 PUT, 1 LIST, 1 DELETE");
    }
}
