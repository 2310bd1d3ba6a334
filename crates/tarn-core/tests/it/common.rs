//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field as ArrowField, Int64Type, Schema as ArrowSchema, TimeUnit};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tarn_core::{Predicate, Table, TableDefinition, Warehouse};
use tarn_spec::{FieldId, PartitionField, PrimitiveType, Transform};

pub fn events_definition(partitioned: bool) -> TableDefinition {
    use tarn_spec::Field;
    TableDefinition {
        fields: vec![
            Field::required(1, "id", PrimitiveType::Long),
            Field::optional(2, "ts", PrimitiveType::Timestamp),
            Field::optional(3, "region", PrimitiveType::String),
        ],
        partition_fields: if partitioned {
            vec![
                PartitionField {
                    source_id: FieldId(2),
                    field_id: FieldId(1000),
                    name: "ts_day".into(),
                    transform: Transform::Day,
                },
                PartitionField {
                    source_id: FieldId(3),
                    field_id: FieldId(1001),
                    name: "region".into(),
                    transform: Transform::Identity,
                },
            ]
        } else {
            vec![]
        },
        properties: BTreeMap::new(),
    }
}

pub const DAY_MICROS: i64 = 86_400_000_000;

/// Rows `ids`, with `ts` on day `id % days` and region `eu`/`us` by parity.
pub fn events(ids: Range<i64>, days: i64) -> RecordBatch {
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("id", DataType::Int64, false),
        ArrowField::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ArrowField::new("region", DataType::Utf8, true),
    ]));
    let id: Vec<i64> = ids.collect();
    let ts: Vec<i64> = id.iter().map(|i| (i % days) * DAY_MICROS + 1_000).collect();
    let region: Vec<&str> = id
        .iter()
        .map(|i| if i % 2 == 0 { "eu" } else { "us" })
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(TimestampMicrosecondArray::from(ts)),
            Arc::new(StringArray::from(region)),
        ],
    )
    .expect("valid batch")
}

/// Every object under the table's location, relative to it.
pub async fn objects_under(t: &Table) -> std::collections::BTreeSet<String> {
    let root = t.location().root().clone();
    let listed: Vec<ObjectMeta> = t
        .location()
        .store()
        .list(Some(&root))
        .try_collect()
        .await
        .unwrap();
    listed
        .into_iter()
        .map(|o| {
            o.location
                .prefix_match(&root)
                .unwrap()
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

pub async fn memory_warehouse(name: &str) -> Warehouse {
    let w = Warehouse::from_store(
        Arc::new(object_store::memory::InMemory::new()),
        Path::default(),
        format!("memory://{name}"),
    );
    w.create_namespace("ns").await.expect("namespace");
    w
}

/// The same warehouse (rooted at the store's root) opened anew, as another process would:
/// nothing cached.
pub fn reopened(w: &Warehouse) -> Warehouse {
    Warehouse::from_store(w.store().clone(), Path::default(), w.url())
}

/// Where a test's warehouse lives: the tests that prove the commit protocol run on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Local,
    /// The S3-compatible server `scripts/with-s3.sh` starts (see `s3.rs`).
    S3,
}

/// A fresh warehouse with namespace `ns` on `backend`, and the directory to keep while it
/// is used (local disk only).
pub async fn warehouse_on(backend: Backend, name: &str) -> (Option<tempfile::TempDir>, Warehouse) {
    match backend {
        Backend::Memory => (None, memory_warehouse(name).await),
        Backend::Local => {
            let (dir, w) = local_warehouse().await;
            (Some(dir), w)
        }
        Backend::S3 => (None, crate::s3::s3_warehouse().await),
    }
}

pub async fn local_warehouse() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().expect("temp dir");
    let w = Warehouse::open(dir.path().to_str().expect("utf-8 path")).expect("open warehouse");
    w.create_namespace("ns").await.expect("namespace");
    (dir, w)
}

/// Every `id` in the table at its version, sorted, read from the Parquet files themselves.
pub async fn read_ids(table: &Table) -> Vec<i64> {
    let plan = table.plan_files(&Predicate::True).await.expect("plan");
    let mut ids = Vec::new();
    for file in plan.data_files() {
        ids.extend(read_file_ids(table, &file).await);
    }
    ids.sort_unstable();
    ids
}

/// The bytes of one data file.
pub async fn data_file_bytes(table: &Table, file: &tarn_core::DataFile) -> Bytes {
    table
        .location()
        .store()
        .get(&table.location().path(&file.path))
        .await
        .expect("data file exists")
        .bytes()
        .await
        .expect("data file readable")
}

/// The `id` column of one data file, checking the manifest's record count against it.
pub async fn read_file_ids(table: &Table, file: &tarn_core::DataFile) -> Vec<i64> {
    let bytes = data_file_bytes(table, file).await;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let column = batch.column_by_name("id").expect("id column");
        ids.extend(column.as_primitive::<Int64Type>().iter().flatten());
    }
    assert_eq!(
        ids.len() as u64,
        file.record_count,
        "{}: record count in the manifest",
        file.path
    );
    // Rows deleted by the file's deletion vector are not the table's.
    if let Some(dv) = &file.deletion_vector {
        let deleted = table.deletion_vector(dv).await.expect("deletion vector");
        ids = ids
            .into_iter()
            .enumerate()
            .filter(|(pos, _)| !deleted.contains(*pos as u64))
            .map(|(_, id)| id)
            .collect();
    }
    ids
}

/// What a [`FaultStore`] call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Head,
    List,
    Delete,
}

#[derive(Debug)]
struct Fault {
    op: Op,
    path_contains: String,
    remaining: usize,
    /// Perform the call, then report failure (an ambiguous outcome).
    after: bool,
}

/// Whether a [`FaultStore`] timeline entry is a call starting or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Start,
    End,
}

/// Work to run before a create-if-absent, as another writer racing the caller would.
pub type BeforeCreate = Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// An object store that fails chosen calls and records every call.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Mutex<Vec<Fault>>>,
    calls: Arc<Mutex<Vec<(Op, String)>>>,
    refuse_create: bool,
    /// Run before each of the next creates of a version file, while the count lasts.
    before_version_create: Mutex<Option<(usize, BeforeCreate)>>,
    /// When each put, GET and HEAD started and ended, in order.
    timeline: Mutex<Vec<(Moment, Op, String)>>,
    /// How long each put, GET and HEAD waits before it reaches the inner store, as a
    /// request to a remote store would.
    latency: Mutex<std::time::Duration>,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({:?})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FaultStore {
            inner,
            faults: Arc::default(),
            calls: Arc::default(),
            refuse_create: false,
            before_version_create: Mutex::default(),
            timeline: Mutex::default(),
            latency: Mutex::default(),
        })
    }

    /// A store that, like a plain HTTP server, cannot do put-if-absent.
    pub fn without_conditional_put(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FaultStore {
            inner,
            faults: Arc::default(),
            calls: Arc::default(),
            refuse_create: true,
            before_version_create: Mutex::default(),
            timeline: Mutex::default(),
            latency: Mutex::default(),
        })
    }

    /// Fail the next `times` calls of `op` on a path containing `path_contains`.
    pub fn fail(&self, op: Op, path_contains: &str, times: usize) {
        self.faults.lock().unwrap().push(Fault {
            op,
            path_contains: path_contains.into(),
            remaining: times,
            after: false,
        });
    }

    /// Perform the next such call but report that it failed.
    pub fn fail_after(&self, op: Op, path_contains: &str) {
        self.faults.lock().unwrap().push(Fault {
            op,
            path_contains: path_contains.into(),
            remaining: 1,
            after: true,
        });
    }

    /// Runs `work` before each of the next `times` creates of a version file through this
    /// store (work done on the inner store directly does not count).
    pub fn before_version_create(&self, times: usize, work: BeforeCreate) {
        *self.before_version_create.lock().unwrap() = Some((times, work));
    }

    /// Puts, GETs and HEADs from now on take `latency` each.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    /// When each put, GET and HEAD since the last [`FaultStore::clear_calls`] started and
    /// ended.
    pub fn timeline(&self) -> Vec<(Moment, Op, String)> {
        self.timeline.lock().unwrap().clone()
    }

    /// Runs `call` (a put, GET or HEAD of `path`) after the store's latency, recording its
    /// start and end in the timeline.
    async fn timed<T>(&self, op: Op, path: &Path, call: impl std::future::Future<Output = T>) -> T {
        let latency = *self.latency.lock().unwrap();
        let record = |moment| {
            let entry = (moment, op, path.to_string());
            self.timeline.lock().unwrap().push(entry);
        };
        record(Moment::Start);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let result = call.await;
        record(Moment::End);
        result
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub fn calls(&self) -> Vec<(Op, String)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
        self.timeline.lock().unwrap().clear();
    }

    /// `Some(after)` if this call is to fail.
    fn check(&self, op: Op, path: &Path) -> Option<bool> {
        check_fault(&self.calls, &self.faults, op, path)
    }
}

/// `Some(after)` if this call is to fail.
fn check_fault(
    calls: &Mutex<Vec<(Op, String)>>,
    faults: &Mutex<Vec<Fault>>,
    op: Op,
    path: &Path,
) -> Option<bool> {
    calls.lock().unwrap().push((op, path.to_string()));
    {
        let mut faults = faults.lock().unwrap();
        let fault = faults
            .iter_mut()
            .find(|f| f.op == op && f.remaining > 0 && path.as_ref().contains(&f.path_contains))?;
        fault.remaining -= 1;
        Some(fault.after)
    }
}

fn injected(path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("injected failure on {path}").into(),
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.refuse_create && matches!(opts.mode, object_store::PutMode::Create) {
            return Err(object_store::Error::NotImplemented {
                operation: "put_opts(Create)".into(),
                implementer: "FaultStore".into(),
            });
        }
        if matches!(opts.mode, object_store::PutMode::Create)
            && location.as_ref().contains("/metadata/000")
        {
            let work = {
                let mut hook = self.before_version_create.lock().unwrap();
                match hook.as_mut() {
                    Some((remaining, work)) if *remaining > 0 => {
                        *remaining -= 1;
                        Some(work.clone())
                    }
                    _ => None,
                }
            };
            if let Some(work) = work {
                work().await;
            }
        }
        let put = async {
            match self.check(Op::Put, location) {
                Some(false) => Err(injected(location)),
                Some(true) => {
                    self.inner.put_opts(location, payload, opts).await?;
                    Err(injected(location))
                }
                None => self.inner.put_opts(location, payload, opts).await,
            }
        };
        self.timed(Op::Put, location, put).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.check(Op::Put, location).is_some() {
            return Err(injected(location));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        if self.check(op, location).is_some() {
            return Err(injected(location));
        }
        self.timed(op, location, self.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if self.check(Op::Get, location).is_some() {
            return Err(injected(location));
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let (calls, faults, inner) = (self.calls.clone(), self.faults.clone(), self.inner.clone());
        locations
            .then(move |location| {
                let (calls, faults, inner) = (calls.clone(), faults.clone(), inner.clone());
                async move {
                    let location = location?;
                    let decision = check_fault(&calls, &faults, Op::Delete, &location);
                    if decision == Some(false) {
                        return Err(injected(&location));
                    }
                    let single = futures::stream::iter([Ok(location.clone())]).boxed();
                    let done = inner.delete_stream(single).next().await;
                    match (decision, done) {
                        (Some(true), _) => Err(injected(&location)),
                        (_, Some(result)) => result,
                        (_, None) => Ok(location),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.calls
            .lock()
            .unwrap()
            .push((Op::List, prefix.map(|p| p.to_string()).unwrap_or_default()));
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.calls
            .lock()
            .unwrap()
            .push((Op::List, prefix.map(|p| p.to_string()).unwrap_or_default()));
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A warehouse over a [`FaultStore`] wrapping a fresh in-memory store.
pub async fn fault_warehouse() -> (Arc<FaultStore>, Warehouse) {
    let (store, w, _) = fault_warehouse_and_bypass().await;
    (store, w)
}

/// [`fault_warehouse`], and a warehouse over the same objects that bypasses the
/// [`FaultStore`] (for another writer whose calls are not to be counted or hooked).
pub async fn fault_warehouse_and_bypass() -> (Arc<FaultStore>, Warehouse, Warehouse) {
    let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let store = FaultStore::new(inner.clone());
    let w = Warehouse::from_store(store.clone(), Path::default(), "memory://faults");
    w.create_namespace("ns").await.expect("namespace");
    let bypass = Warehouse::from_store(inner, Path::default(), "memory://faults-bypass");
    (store, w, bypass)
}

/// A clock the test sets by hand.
#[derive(Debug, Default)]
pub struct ManualClock(pub std::sync::atomic::AtomicI64);

impl tarn_core::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ManualClock {
    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}
