//! Bad input gets a typed error with a clear message, never a panic.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tarn_core::{DataFile, Error, ErrorKind, Table, Warehouse};
use tarn_spec::Version;

use crate::common::*;

#[tokio::test]
async fn a_missing_table_is_not_found() {
    let w = memory_warehouse("missing").await;
    let err = w.load_table("ns", "nope").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "table 'ns.nope' does not exist");
    let err = w
        .create_table("absent", "t", events_definition(false))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "namespace 'absent' does not exist; create it first with create_namespace"
    );
}

#[tokio::test]
async fn corrupt_metadata_is_reported_with_its_path() {
    let w = memory_warehouse("corrupt").await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let path = t.location().path("metadata/00000000000000000001.json");
    t.location()
        .store()
        .put(&path, PutPayload::from_static(b"{ not json"))
        .await
        .unwrap();
    let err = w.load_table("ns", "t").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert!(
        err.to_string().starts_with(
            "corrupt metadata in 'memory://corrupt/ns/t/metadata/00000000000000000001.json': \
             malformed table metadata"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_manifest_is_reported() {
    let w = memory_warehouse("missing-manifest").await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..3, 1)]).await.unwrap();
    let list = t.snapshot().manifest_list.clone().unwrap();
    t.location()
        .store()
        .delete(&t.location().path(&list))
        .await
        .unwrap();
    let fresh = reopened(&w).load_table("ns", "t").await.unwrap();
    let err = fresh
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert_eq!(
        err.to_string(),
        format!(
            "'memory://missing-manifest/ns/t/{list}' is missing: the table refers to it but \
             storage does not have it"
        )
    );
}

#[tokio::test]
async fn a_newer_format_version_is_refused() {
    let w = memory_warehouse("future").await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let bytes = t.metadata().to_json();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replace("\"format-version\":1", "\"format-version\":7");
    let path = t.location().path("metadata/00000000000000000001.json");
    t.location()
        .store()
        .put(&path, PutPayload::from(text.into_bytes()))
        .await
        .unwrap();
    let err = w.load_table("ns", "t").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string().contains(
            "unsupported format version 7: this reader understands up to 4; upgrade tarn"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn appending_batches_of_another_schema_fails_and_commits_nothing() {
    let w = memory_warehouse("mismatch").await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let batch = events(0..3, 1);

    let renamed = arrow::array::RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("identifier", arrow::datatypes::DataType::Int64, false),
            batch.schema().field(1).clone(),
            batch.schema().field(2).clone(),
        ])),
        batch.columns().to_vec(),
    )
    .unwrap();
    let err = t.append_batches([renamed]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "the data does not match the table schema: column 'identifier' is not in the table (its columns are id, ts, region)"
    );

    let wrong_type = arrow::array::RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Utf8, false),
            batch.schema().field(1).clone(),
            batch.schema().field(2).clone(),
        ])),
        vec![
            Arc::new(arrow::array::StringArray::from(vec!["a", "b", "c"])),
            batch.column(1).clone(),
            batch.column(2).clone(),
        ],
    )
    .unwrap();
    let err = t.append_batches([wrong_type]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the data does not match the table schema: column 'id' is long in the table but string in the data"
    );

    let nulls = arrow::array::RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
            batch.schema().field(1).clone(),
            batch.schema().field(2).clone(),
        ])),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![Some(1), None, None])),
            batch.column(1).clone(),
            batch.column(2).clone(),
        ],
    )
    .unwrap();
    let err = t.append_batches([nulls]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the data does not match the table schema: column 'id' is NOT NULL, but 2 rows have NULL in it"
    );

    assert_eq!(w.load_table("ns", "t").await.unwrap().version(), Version(0));
}

#[tokio::test]
async fn unknown_versions_and_early_timestamps_are_errors() {
    let w = memory_warehouse("versions").await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..3, 1)]).await.unwrap();
    let err = t.at_version(Version(9)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "version 9 does not exist: the table's versions run from 0 to 1"
    );
    let err = t.at_timestamp(0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with("no version of the table exists at or before 1970-01-01 00:00:00.000 UTC"),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_without_conditional_put_is_refused() {
    let store =
        FaultStore::without_conditional_put(Arc::new(object_store::memory::InMemory::new()));
    let w = Warehouse::from_store(store, Path::default(), "http://example/wh");
    let err = w.create_namespace("ns").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.to_string()
            .contains("cannot create objects atomically (put-if-absent)"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_names_and_locations_are_refused() {
    let w = memory_warehouse("names").await;
    let err = w
        .create_table("ns", "../escape", events_definition(false))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(matches!(
        Warehouse::open("ftp://host/x"),
        Err(Error::InvalidArgument { .. })
    ));
    let err = w
        .create_table(
            "ns",
            "t",
            tarn_core::TableDefinition {
                fields: vec![
                    tarn_spec::Field::optional(1, "a", tarn_spec::PrimitiveType::Long),
                    tarn_spec::Field::optional(1, "b", tarn_spec::PrimitiveType::Long),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid table metadata change: invalid table metadata: schema 0: field id 1 is used more than once"
    );
}

/// Something in the way of the next version file that is not another writer's commit: the
/// commit says so at once instead of retrying as if it had lost a race, and takes back the
/// manifest lists of its attempts.
#[tokio::test]
async fn a_blocked_version_is_reported_not_retried() {
    let (dir, w) = local_warehouse().await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..3, 1)]).await.unwrap();
    let metadata = dir.path().join("ns/t/metadata");
    std::fs::create_dir(metadata.join("00000000000000000002.json")).unwrap();
    let lists = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("ml-")
            })
            .count()
    };
    let before = lists(&metadata);
    let started = std::time::Instant::now();
    let err = t.append_batches([events(3..6, 1)]).await.unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, Error::VersionBlocked { .. }),
        "{err} ({:?})",
        err.kind()
    );
    assert!(
        err.to_string().contains("00000000000000000002.json"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        lists(&metadata),
        before,
        "the attempt's manifest list was removed"
    );
    // The table is still at its previous version and readable.
    let reloaded = w.load_table("ns", "t").await.unwrap();
    assert_eq!(reloaded.version(), Version(1));
    assert_eq!(read_ids(&reloaded).await, vec![0, 1, 2]);
}

/// Only conflicts and transient failures are worth running again.
#[test]
fn retryable_means_it_may_work_next_time() {
    let arrow = Error::Arrow {
        context: "converting column 'a'".into(),
        source: arrow::error::ArrowError::CastError("Cannot cast string 'abc'".into()),
    };
    assert_eq!(arrow.kind(), ErrorKind::InvalidInput);
    assert!(!arrow.is_retryable());
    let outage = Error::ObjectStore {
        path: "s3://b/t/metadata/x".into(),
        source: object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        },
    };
    assert_eq!(outage.kind(), ErrorKind::Unavailable);
    assert!(outage.is_retryable());
    let unsupported = Error::ObjectStore {
        path: "x".into(),
        source: object_store::Error::NotImplemented {
            operation: "put_opts".into(),
            implementer: "HttpStore".into(),
        },
    };
    assert!(!unsupported.is_retryable());
    let corrupt = Error::Parquet {
        path: "data/x.parquet".into(),
        source: parquet::errors::ParquetError::General("bad footer".into()),
    };
    assert_eq!(corrupt.kind(), ErrorKind::CorruptData);
    assert!(!corrupt.is_retryable());
}

/// A commit stores the unstored data files it is given only when its change adds them, so
/// that it never stores an object that nothing refers to; the writer's own files are kept in
/// memory until then, and the table is unchanged by a refusal.
#[tokio::test]
async fn an_unstored_file_the_change_does_not_add_is_refused() {
    let w = memory_warehouse("unstored").await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let mut writer = t.writer().unwrap();
    writer.write(&events(0..3, 1)).await.unwrap();
    let (files, unstored) = writer.finish_unstored().await.unwrap();
    assert_eq!((files.len(), unstored.len()), (1, 1));
    assert_eq!(unstored[0].path, files[0].path);
    assert_eq!(unstored[0].bytes.len() as u64, files[0].file_size);
    let stored = t.location().path(&files[0].path);
    assert!(
        t.location().store().head(&stored).await.is_err(),
        "not stored yet"
    );

    let err = t
        .commit_with(
            tarn_core::Change::Append { files: Vec::new() },
            tarn_core::CommitOptions {
                unstored: unstored.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("is not a file the change adds"),
        "{err}"
    );
    assert!(t.location().store().head(&stored).await.is_err());
    assert_eq!(t.reload().await.unwrap().version(), t.version());

    let t = t
        .commit_with(
            tarn_core::Change::Append { files },
            tarn_core::CommitOptions {
                unstored,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read_ids(&t).await, vec![0, 1, 2]);
}

/// A table holding one data file, that file, and the table after a concurrent commit
/// deleted it: a rewrite of the file based on the first conflicts.
async fn file_deleted_meanwhile(warehouse: &str) -> (Table, Vec<DataFile>, Table) {
    let w = memory_warehouse(warehouse).await;
    let t = w
        .create_table("ns", "t", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..3, 1)]).await.unwrap();
    let file = t
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap()
        .data_files();
    let deleted = t
        .commit(tarn_core::Change::Rewrite {
            removed: file.clone(),
            added: Vec::new(),
            operation: tarn_spec::Operation::Delete,
        })
        .await
        .unwrap();
    (t, file, deleted)
}

/// A commit that loses its file to a concurrent one fails with a conflict and leaves the
/// store as it found it: the objects its first attempt stored (its small data file, its
/// manifest, the list of files it removes) are removed, since no version refers to them.
#[tokio::test]
async fn a_commit_that_conflicts_leaves_no_object_behind() {
    let (t, file, deleted) = file_deleted_meanwhile("conflict-leaves-nothing").await;
    let before = objects_under(&deleted).await;

    let mut writer = t.writer().unwrap();
    writer.write(&events(10..13, 1)).await.unwrap();
    let (added, unstored) = writer.finish_unstored().await.unwrap();
    let stale = t.commit_with(
        tarn_core::Change::Rewrite {
            removed: file,
            added,
            operation: tarn_spec::Operation::Update,
        },
        tarn_core::CommitOptions {
            unstored,
            ..Default::default()
        },
    );
    let err = stale.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true }, "{err}");
    assert_eq!(objects_under(&deleted).await, before);
    assert_eq!(
        read_ids(&deleted.reload().await.unwrap()).await,
        Vec::<i64>::new()
    );
}

/// A file that loses all its rows can be the change log of their deletion itself. It is
/// the table's, not the commit's: a failed commit that owns its files leaves it in place.
#[tokio::test]
async fn a_failed_commit_keeps_the_removed_file_it_logs() {
    let (t, file, deleted) = file_deleted_meanwhile("logged-removed-file").await;
    let before = objects_under(&deleted).await;
    let stale = t.commit_with(
        tarn_core::Change::Rewrite {
            removed: file.clone(),
            added: Vec::new(),
            operation: tarn_spec::Operation::Delete,
        },
        tarn_core::CommitOptions {
            change_log: vec![(tarn_spec::ChangeType::Delete, file[0].clone())],
            owns_files: true,
            ..Default::default()
        },
    );
    let err = stale.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true }, "{err}");
    assert_eq!(objects_under(&deleted).await, before);
    let version_one = deleted.at_version(tarn_spec::Version(1)).await.unwrap();
    assert_eq!(read_ids(&version_one).await, vec![0, 1, 2]);
}

/// A commit given files written for it alone (`owns_files`) deletes them when it fails on a
/// conflict, as it deletes its own objects; without it, the caller's files stay for the
/// caller to commit again.
#[tokio::test]
async fn a_failed_commit_deletes_the_files_it_owns() {
    let (t, file, deleted) = file_deleted_meanwhile("owned-files").await;
    let before = objects_under(&deleted).await;

    for owns_files in [false, true] {
        let mut writer = t.writer().unwrap();
        writer.write(&events(10..13, 1)).await.unwrap();
        let added = writer.finish().await.unwrap();
        let stale = t.commit_with(
            tarn_core::Change::Rewrite {
                removed: file.clone(),
                added: added.clone(),
                operation: tarn_spec::Operation::Update,
            },
            tarn_core::CommitOptions {
                owns_files,
                ..Default::default()
            },
        );
        let err = stale.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true }, "{err}");
        let left: Vec<String> = objects_under(&deleted)
            .await
            .difference(&before)
            .cloned()
            .collect();
        let expected: Vec<String> = match owns_files {
            true => Vec::new(),
            false => added.iter().map(|f| f.path.clone()).collect(),
        };
        assert_eq!(left, expected, "owns_files = {owns_files}");
        if !owns_files {
            t.location()
                .store()
                .delete(&t.location().path(&added[0].path))
                .await
                .unwrap();
        }
    }
}
