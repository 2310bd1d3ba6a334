//! tarn on an S3-compatible server over real HTTP: the commit races of `concurrency.rs`,
//! large files by multipart upload, the requests a commit and a read make, and faults
//! between client and server injected by a proxy (`FaultProxy`) on the wire.
//!
//! The server is moto's, started by `scripts/with-s3.sh`, which sets `TARN_TEST_S3` (the
//! bucket) and the `AWS_*` variables that reach it. These tests are ignored otherwise:
//!
//! ```sh
//! scripts/with-s3.sh cargo test -p tarn-core --test it -- --include-ignored s3
//! ```

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use tarn_core::storage::StoreOptions;
use tarn_core::{ErrorKind, Predicate, TableDefinition, Warehouse};
use tarn_fault_proxy::{Fault, FaultProxy};
use tarn_spec::{Field, PrimitiveType, Version};

use crate::common::*;
use crate::concurrency;

/// The bucket URL `scripts/with-s3.sh` made.
fn bucket() -> String {
    std::env::var("TARN_TEST_S3")
        .expect("TARN_TEST_S3 is unset: run the S3 tests through scripts/with-s3.sh")
}

fn fresh_url() -> String {
    format!("{}/{}", bucket(), tarn_core::Env::default().next_id())
}

/// A fresh warehouse in the test bucket, checked as the shell checks one, with `ns`.
pub async fn s3_warehouse() -> Warehouse {
    warehouse_with(&StoreOptions::new()).await
}

async fn warehouse_with(options: &StoreOptions) -> Warehouse {
    let w = Warehouse::open_with(&fresh_url(), options).expect("open the S3 warehouse");
    w.check_store()
        .await
        .expect("the server takes conditional writes");
    w.create_namespace("ns").await.expect("namespace");
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn eight_writers_on_s3() {
    concurrency::eight_writers(Backend::S3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn conflict_matrix_on_s3() {
    concurrency::conflict_matrix(Backend::S3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn drop_racing_a_writer_on_s3() {
    concurrency::drop_racing_a_writer(Backend::S3).await
}

fn ids_definition() -> TableDefinition {
    TableDefinition {
        fields: vec![Field::optional(1, "id", PrimitiveType::Long)],
        ..Default::default()
    }
}

/// `n` ids that do not compress: 8 bytes each in the file. (A multiple of a counter would:
/// its values step by the same difference, which delta encoding stores in no bits.)
fn scattered_ids(n: i64) -> RecordBatch {
    // splitmix64's finalizer.
    let ids = (0..n as u64).map(|i| {
        let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) as i64
    });
    RecordBatch::try_new(
        tarn_core::arrow_convert::arrow_schema(
            &tarn_spec::Schema::new(tarn_spec::SchemaId(0), ids_definition().fields).unwrap(),
        ),
        vec![Arc::new(Int64Array::from_iter_values(ids))],
    )
    .unwrap()
}

/// A data file above the upload buffer (5 MiB) goes up as a multipart upload: a creation,
/// parts and a completion; the table reads it back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn a_large_file_goes_up_in_parts() {
    let w = s3_warehouse().await;
    let t = w.create_table("ns", "big", ids_definition()).await.unwrap();
    let batch = scattered_ids(1_500_000);
    let before = w.requests();
    let mut writer = t.writer().unwrap();
    writer.write(&batch).await.unwrap();
    let files = writer.finish().await.unwrap();
    let puts = w.requests().since(before).put;
    assert_eq!(files.len(), 1);
    assert!(
        files[0].file_size > 10 * 1024 * 1024,
        "{}",
        files[0].file_size
    );
    assert!(
        puts >= 4,
        "creation, at least two parts, completion: {puts} PUTs"
    );
    let t = t.append(files).await.unwrap();
    let mut expected: Vec<i64> = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    expected.sort();
    let reopened = Warehouse::open(w.url()).unwrap();
    let read = reopened.load_table("ns", "big").await.unwrap();
    assert_eq!(read.version(), t.version());
    assert_eq!(read_ids(&read).await, expected);
}

/// A writer dropped in the middle of a large file (its statement failed or was cancelled)
/// aborts the file's multipart upload: the server keeps no parts of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn a_dropped_writer_aborts_its_upload() {
    let w = s3_warehouse().await;
    let t = w.create_table("ns", "big", ids_definition()).await.unwrap();
    let prefix = t.location().root().to_string();
    let mut writer = t.writer().unwrap();
    // A row group of 1M rows, 8 MB encoded, has gone to the upload buffer: the upload is
    // under way with its first part.
    writer.write(&scattered_ids(1_500_000)).await.unwrap();
    assert_eq!(uploads_under_way(&prefix).await, 1);
    drop(writer);
    let mut left = 1;
    for _ in 0..100 {
        left = uploads_under_way(&prefix).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the upload was not aborted");
}

/// The multipart uploads under way in the test bucket under `prefix`, as the server lists
/// them (`GET /<bucket>?uploads`; object_store has no call for it). The test server takes
/// unsigned requests.
async fn uploads_under_way(prefix: &str) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = std::env::var("AWS_ENDPOINT").expect("set by scripts/with-s3.sh");
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let bucket_name = bucket().trim_start_matches("s3://").to_string();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET /{bucket_name}?uploads&prefix={prefix} HTTP/1.1\r\nHost: {host}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.matches("<UploadId>").count()
}

/// A commit and a point read cost a handful of requests and never a LIST: the newest
/// version is found from the hint with HEAD requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn no_list_on_the_path_of_a_commit_or_a_read() {
    let w = s3_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let mut t = t.append_batches([events(0..10, 2)]).await.unwrap();
    for i in 1..5 {
        t = t
            .append_batches([events(10 * i..10 * i + 10, 2)])
            .await
            .unwrap();
    }
    // Another process: nothing cached.
    let other = Warehouse::open(w.url()).unwrap();
    let before = other.requests();
    let t = other.load_table("ns", "events").await.unwrap();
    t.append_batches([events(50..60, 2)]).await.unwrap();
    let commit = other.requests().since(before);
    assert_eq!(commit.list, 0, "a commit lists nothing: {commit}");
    let before = other.requests();
    let t = other.load_table("ns", "events").await.unwrap();
    let files = t
        .plan_files(
            &Predicate::compare(
                t.schema(),
                "id",
                tarn_core::CompareOp::Eq,
                tarn_spec::Value::Long(55),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .data_files();
    let mut rows = 0;
    for file in &files {
        rows += read_file_ids(&t, file).await.len();
    }
    let read = other.requests().since(before);
    assert!(rows > 0);
    assert_eq!(read.list, 0, "a read lists nothing: {read}");
    assert_eq!(t.version(), Version(6));
    println!("on S3: a commit made {commit}; a point read {read}");
}

// ---------------------------------------------------------------------------------------
// Faults on the wire.

/// Store options that send a store through `proxy`, with quick retries.
fn through(proxy: &FaultProxy) -> StoreOptions {
    proxy.options().into_iter().collect()
}

/// The table at `w`'s `ns.events`, read afresh, with every row it refers to readable.
async fn reread(w: &Warehouse) -> (Version, Vec<i64>) {
    let fresh = Warehouse::open(w.url()).unwrap();
    let t = fresh.load_table("ns", "events").await.unwrap();
    (t.version(), read_ids(&t).await)
}

async fn proxied_events() -> (FaultProxy, Warehouse, tarn_core::Table) {
    let proxy = FaultProxy::start().await;
    let w = warehouse_with(&through(&proxy)).await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..4, 1)]).await.unwrap();
    (proxy, w, t)
}

/// Appends rows 4..8 to the events table of [`proxied_events`] while `faults` (path, fault,
/// times) act on its PUTs: every fault is met, the commit lands once, and the table, read
/// afresh, holds every row once.
async fn an_append_lands_once_through(faults: &[(&'static str, Fault, usize)]) {
    let (proxy, w, t) = proxied_events().await;
    for &(path, fault, times) in faults {
        proxy.inject("PUT", path, fault, times);
    }
    let t = t.append_batches([events(4..8, 1)]).await.unwrap();
    assert_eq!(proxy.pending(), 0, "every fault was met");
    assert_eq!(t.version(), Version(2));
    assert_eq!(reread(&w).await, (Version(2), (0..8).collect()));
}

/// 503 Slow Down on the version file, the manifest list and a data file: object_store
/// retries each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn slow_down_replies_are_retried() {
    an_append_lands_once_through(&[
        ("/metadata/0000", Fault::SlowDown, 2),
        ("/metadata/ml-", Fault::SlowDown, 1),
        ("/data/", Fault::SlowDown, 1),
    ])
    .await
}

/// The server applies the create of the version file, but the client gets 503 and asks
/// again, and then hears that the object exists. The commit is this one's own: nothing it
/// wrote is removed, and no second version repeats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn an_applied_create_whose_answer_is_lost_commits_once() {
    an_append_lands_once_through(&[("/metadata/0000", Fault::ApplyThenSlowDown, 1)]).await
}

/// The answer to the create of the version file comes after the client's timeout: the
/// create is not retried by object_store (it is not idempotent), and tarn's next attempt
/// finds its own commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn an_answer_after_the_timeout_commits_once() {
    an_append_lands_once_through(&[("/metadata/0000", Fault::Stall(Duration::from_secs(4)), 1)])
        .await
}

/// A connection reset half way through a data file's upload is retried; resets on every
/// retry fail the write with a retryable error, and the table stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn a_reset_mid_upload_is_retried_or_changes_nothing() {
    let (proxy, w, t) = proxied_events().await;
    proxy.inject("PUT", "/data/", Fault::ResetMidBody, 1);
    let t = t.append_batches([events(4..8, 1)]).await.unwrap();
    assert_eq!(proxy.pending(), 0);
    assert_eq!(reread(&w).await, (Version(2), (0..8).collect()));

    proxy.inject("PUT", "/data/", Fault::ResetMidBody, 100);
    let err = t.append_batches([events(8..12, 1)]).await.unwrap_err();
    assert!(err.is_retryable(), "{err} ({:?})", err.kind());
    proxy.clear();
    assert_eq!(reread(&w).await, (Version(2), (0..8).collect()));
    let t = t.append_batches([events(8..12, 1)]).await.unwrap();
    assert_eq!(t.version(), Version(3));
}

/// A server that ignores `If-None-Match: *` is refused when the warehouse is checked,
/// before anything is written; so is a bucket that does not exist, and credentials the
/// server does not know, each with an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn unusable_stores_are_named_before_anything_is_written() {
    let proxy = FaultProxy::start().await;
    proxy.inject("PUT", "/", Fault::DropCondition, usize::MAX);
    let w = Warehouse::open_with(&fresh_url(), &through(&proxy)).unwrap();
    let err = w.check_store().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("If-None-Match"), "{err}");
    proxy.clear();

    proxy.inject("PUT", "/", Fault::WrongCredentials, usize::MAX);
    proxy.inject("GET", "/", Fault::WrongCredentials, usize::MAX);
    proxy.inject("HEAD", "/", Fault::WrongCredentials, usize::MAX);
    let w = Warehouse::open_with(&fresh_url(), &through(&proxy)).unwrap();
    let err = w.check_store().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    proxy.clear();

    // Credentials that may read but not write pass the check (readers need no more), and
    // their first write says what is wrong.
    proxy.inject("PUT", "/", Fault::Denied, usize::MAX);
    let w = Warehouse::open_with(&fresh_url(), &through(&proxy)).unwrap();
    w.check_store().await.unwrap();
    let err = w.create_namespace("ns").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    proxy.clear();

    let missing = format!(
        "s3://tarn-no-such-bucket-{}/w",
        tarn_core::Env::default().next_id()
    );
    let w = Warehouse::open(&missing).unwrap();
    let err = w.check_store().await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
