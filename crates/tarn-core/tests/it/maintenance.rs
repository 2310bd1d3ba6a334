//! Snapshot expiry and orphan cleanup: what stays is exactly what the retained snapshots
//! reference, every retained version reads as before, and a failure at any step leaves a
//! readable table.

use std::collections::BTreeSet;
use std::sync::Arc;

use tarn_core::maintenance::{
    ExpireOptions, OrphanOptions, expire_snapshots, remove_abandoned_files, remove_orphan_files,
};
use tarn_core::{Change, Error, Predicate, RoaringTreemap, Table};
use tarn_spec::{Operation, Version};

use crate::common::*;

/// A table with 30 versions: appends, a copy-on-write rewrite, row deltas, more appends.
async fn table_with_history(t: Table) -> (Table, Vec<Vec<i64>>) {
    let mut t = t;
    let mut rows_at = vec![Vec::new()];
    append_tens(&mut t, &mut rows_at, 0..12).await;
    // Rewrite the first file without its first 5 rows.
    let first = t.plan_files(&Predicate::True).await.unwrap().data_files()[0].clone();
    let kept: Vec<i64> = read_file_ids(&t, &first)
        .await
        .into_iter()
        .skip(5)
        .collect();
    let mut writer = t.writer().unwrap();
    writer.write(&events_of(&kept)).await.unwrap();
    t = t
        .commit(Change::Rewrite {
            removed: vec![first],
            added: writer.finish().await.unwrap(),
            operation: Operation::Delete,
        })
        .await
        .unwrap();
    rows_at.push(read_ids(&t).await);
    for round in 0..3u64 {
        let file = t.plan_files(&Predicate::True).await.unwrap().data_files()[1].clone();
        t = t
            .commit(Change::RowDelta {
                deletes: vec![(file, RoaringTreemap::from_iter([round]))],
                added: Vec::new(),
                operation: Operation::Delete,
            })
            .await
            .unwrap();
        rows_at.push(read_ids(&t).await);
    }
    append_tens(&mut t, &mut rows_at, 12..26).await;
    assert_eq!(t.version(), Version(30));
    (t, rows_at)
}

/// Appends ids `10 i .. 10 i + 10` for each `i` in `tens`, one commit each, recording what
/// every new version reads.
async fn append_tens(t: &mut Table, rows_at: &mut Vec<Vec<i64>>, tens: std::ops::Range<i64>) {
    for i in tens {
        *t = t
            .append_batches([events(i * 10..i * 10 + 10, 2)])
            .await
            .unwrap();
        rows_at.push(read_ids(t).await);
    }
}

/// A failed commit's leftovers: data files nothing references.
async fn stray_files(t: &Table) -> Vec<tarn_core::DataFile> {
    let mut writer = t.writer().unwrap();
    writer.write(&events(5000..5010, 1)).await.unwrap();
    writer.finish().await.unwrap()
}

/// A batch of events with these ids (one day).
fn events_of(ids: &[i64]) -> arrow::array::RecordBatch {
    let all = events(0..1000, 2);
    let id_column = all
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    let keep: arrow::array::BooleanArray = id_column
        .iter()
        .map(|v| Some(ids.contains(&v.unwrap())))
        .collect();
    arrow::compute::filter_record_batch(&all, &keep).unwrap()
}

/// Every object the retained snapshots reference, plus their version files and the hint.
async fn expected_objects(t: &Table) -> BTreeSet<String> {
    let mut expected = BTreeSet::from(["metadata/version-hint".to_string()]);
    for snapshot in t.history().await.unwrap() {
        expected.insert(tarn_core::version_file(snapshot.version));
        expected.extend(snapshot.changes.added_manifests.iter().cloned());
        expected.extend(snapshot.changes.removed_files.iter().cloned());
        let at = t.at_version(snapshot.version).await.unwrap();
        if let Some(list) = &snapshot.manifest_list {
            expected.insert(list.clone());
        }
        let manifests = at.manifest_list().await.unwrap();
        for i in 0..manifests.len() {
            expected.insert(manifests.path(i).to_string());
        }
        for file in at.plan_files(&Predicate::True).await.unwrap().data_files() {
            expected.insert(file.path.clone());
            if let Some(dv) = &file.deletion_vector {
                expected.insert(dv.path.clone());
            }
        }
    }
    expected
}

#[tokio::test]
async fn expiry_and_orphan_cleanup_leave_exactly_what_retained_snapshots_reference() {
    let w = memory_warehouse("expire").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let (t, rows_at) = table_with_history(t).await;
    let stray = stray_files(&t).await;

    let report = expire_snapshots(
        &t,
        &ExpireOptions {
            older_than_ms: Some(i64::MAX),
            retain_last: Some(10),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.expired_versions, 21);
    assert_eq!(report.oldest_retained, Version(21));
    assert!(report.deleted_data_files >= 1, "{report:?}");

    for v in 21..=30u64 {
        let at = t.at_version(Version(v)).await.unwrap();
        assert_eq!(read_ids(&at).await, rows_at[v as usize], "version {v}");
    }
    let err = t.at_version(Version(3)).await.unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { .. }));
    assert_eq!(
        err.to_string(),
        "version 3 has expired: the table's versions run from 21 to 30"
    );

    // The stray file is younger than the safety interval: kept, unless asked explicitly.
    let now = t.env().now_ms();
    let kept = remove_orphan_files(
        &t,
        &OrphanOptions {
            older_than_ms: now - tarn_core::maintenance::DEFAULT_ORPHAN_AGE_MS,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert!(kept.orphans.is_empty(), "{kept:?}");
    let dry = remove_orphan_files(
        &t,
        &OrphanOptions {
            older_than_ms: now + 1_000,
            dry_run: true,
        },
    )
    .await
    .unwrap();
    let mut stray: Vec<String> = stray.into_iter().map(|f| f.path).collect();
    stray.sort();
    assert_eq!(dry.orphans, stray);
    assert!(
        objects_under(&t).await.contains(&stray[0]),
        "a dry run deletes nothing"
    );
    remove_orphan_files(
        &t,
        &OrphanOptions {
            older_than_ms: now + 1_000,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(objects_under(&t).await, expected_objects(&t).await);
    for v in 21..=30u64 {
        let at = t.at_version(Version(v)).await.unwrap();
        assert_eq!(read_ids(&at).await, rows_at[v as usize], "version {v}");
    }
    // And the table takes commits as before.
    let t = t.append_batches([events(9000..9001, 1)]).await.unwrap();
    assert_eq!(t.version(), Version(31));
}

/// A process killed while it wrote a file to local disk leaves object_store's staging file
/// (`<name>#<n>`), which the store's listings do not show: orphan cleanup finds it all the
/// same, once it is older than the safety interval.
#[tokio::test]
async fn orphan_cleanup_removes_uploads_a_killed_process_left_on_local_disk() {
    let (dir, w) = local_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..100, 1)]).await.unwrap();
    let table_dir = dir.path().join("ns").join("events");
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.env().now_ms() as u64);
    let stage = |relative: &str, age: std::time::Duration| {
        write_file_at(&table_dir.join(relative), 1000, now - age);
    };
    let hour = std::time::Duration::from_secs(3600);
    stage("data/1b2c.parquet#1", 2 * hour);
    stage("data/day=2026-01-01/3d4e.parquet#12", 2 * hour);
    stage("metadata/00000000000000000007.json#3", 2 * hour);
    // Younger than the interval (a write in flight); and a name that is no staging file,
    // an ordinary orphan the listing shows.
    stage("data/5f6a.parquet#2", std::time::Duration::ZERO);
    stage("data/notes#draft", 2 * hour);
    assert!(
        !objects_under(&t).await.contains("data/1b2c.parquet#1"),
        "the store's listing does not show staging files"
    );

    let older_than_ms = t.env().now_ms() - 3_600_000;
    let dry = remove_orphan_files(
        &t,
        &OrphanOptions {
            older_than_ms,
            dry_run: true,
        },
    )
    .await
    .unwrap();
    let staged = vec![
        "data/1b2c.parquet#1".to_string(),
        "data/day=2026-01-01/3d4e.parquet#12".to_string(),
        "data/notes#draft".to_string(),
        "metadata/00000000000000000007.json#3".to_string(),
    ];
    assert_eq!(dry.orphans, staged);
    assert_eq!(dry.bytes, 4000);
    assert!(
        table_dir.join("data/1b2c.parquet#1").exists(),
        "a dry run deletes nothing"
    );

    let done = remove_orphan_files(
        &t,
        &OrphanOptions {
            older_than_ms,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(done, dry);
    for relative in &staged {
        assert!(!table_dir.join(relative).exists(), "{relative} is left");
    }
    assert!(
        table_dir.join("data/5f6a.parquet#2").exists(),
        "a write in flight is kept"
    );
    assert_eq!(objects_under(&t).await, expected_objects(&t).await);
    assert_eq!(read_ids(&t).await, (0..100).collect::<Vec<_>>());
}

/// On local disk, a directory whose files are all deleted goes with them: a partition's once
/// expiry has taken its files, and a dropped table's, with what killed writers left in it.
#[tokio::test]
async fn local_tables_leave_no_empty_directories() {
    let (dir, w) = local_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    let table_dir = dir.path().join("ns").join("events");
    let day = table_dir.join("data").join("ts_day=1970-01-01");
    assert!(day.join("region=eu").is_dir());

    // Every row deleted, then the versions that read them expired.
    let files = t
        .plan_files(&Predicate::True)
        .await
        .unwrap()
        .data_files()
        .to_vec();
    let t = t
        .commit(Change::Rewrite {
            removed: files,
            added: Vec::new(),
            operation: Operation::Delete,
        })
        .await
        .unwrap();
    let report = expire_snapshots(
        &t,
        &ExpireOptions {
            older_than_ms: Some(i64::MAX),
            retain_last: Some(1),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.deleted_data_files, 2, "{report:?}");
    assert!(!day.exists(), "the emptied partition's directory is left");
    let t = t.append_batches([events(10..20, 1)]).await.unwrap();
    assert_eq!(read_ids(&t).await, (10..20).collect::<Vec<_>>());

    // Staging files: one a killed writer left before the drop, one of a write begun after
    // it (by a table created again under the name).
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.env().now_ms() as u64);
    let stage = |relative: &str, modified: std::time::SystemTime| {
        write_file_at(&table_dir.join(relative), 0, modified);
    };
    let hour = std::time::Duration::from_secs(3600);
    stage(
        "data/ts_day=1970-01-01/region=eu/1b2c.parquet#1",
        now - hour,
    );
    stage("data/5f6a.parquet#1", now + hour);
    w.drop_table("ns", "events").await.unwrap();
    let mut left = Vec::new();
    for entry in walk(&table_dir) {
        left.push(entry.strip_prefix(&table_dir).unwrap().to_owned());
    }
    assert_eq!(
        left,
        vec![std::path::PathBuf::from("data/5f6a.parquet#1")],
        "the newer write's file is all that stays"
    );
    assert!(dir.path().join("ns").join("_namespace").exists());
    assert_eq!(w.list_namespaces().await.unwrap(), vec!["ns"]);
    assert!(w.list_tables("ns").await.unwrap().is_empty());
    let again = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let again = again.append_batches([events(0..3, 1)]).await.unwrap();
    assert_eq!(read_ids(&again).await, vec![0, 1, 2]);
}

/// CREATE TABLE AS stages its table: nothing is written until the commit of its rows
/// creates version 0 and commits on it. One stopped before that (a killed process) leaves
/// files but no table, which `remove_abandoned_files` removes once they are old enough.
#[tokio::test]
async fn a_staged_table_exists_once_its_first_commit_lands() {
    let (dir, w) = local_warehouse().await;
    let staged = w
        .stage_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    assert!(staged.is_staged());
    let now = staged.env().now_ms();
    let mut writer = staged.writer().unwrap();
    writer.write(&events(0..10, 1)).await.unwrap();
    let files = writer.finish().await.unwrap();
    // Killed here, before its commit.
    drop(staged);
    assert!(matches!(
        w.load_table("ns", "events").await,
        Err(Error::TableNotFound { .. })
    ));
    assert!(w.list_tables("ns").await.unwrap().is_empty());
    let tableless = w.list_locations("ns").await.unwrap().without_table;
    let names: Vec<&str> = tableless.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["events"]);
    let cleanup = |older_than_ms| OrphanOptions {
        older_than_ms,
        dry_run: false,
    };
    let location = &tableless[0].1;
    let young = remove_abandoned_files(location, &cleanup(now - 3_600_000))
        .await
        .unwrap();
    assert!(young.orphans.is_empty(), "{young:?}");
    let old = remove_abandoned_files(location, &cleanup(now + 1_000))
        .await
        .unwrap();
    assert_eq!(old.orphans.len(), files.len(), "{old:?}");
    assert!(!dir.path().join("ns").join("events").exists());
    // What a cancelled write leaves on local disk once its staging file is gone.
    let emptied = dir.path().join("ns").join("cancelled");
    std::fs::create_dir_all(emptied.join("data").join("day=1")).unwrap();
    let tableless = w.list_locations("ns").await.unwrap().without_table;
    let report = remove_abandoned_files(&tableless[0].1, &cleanup(now - 3_600_000))
        .await
        .unwrap();
    assert!(report.orphans.is_empty(), "{report:?}");
    assert!(!emptied.exists(), "empty directories are left");

    // Staged twice at once: the first commit creates the table, and the other finds the
    // name taken.
    let staged = w
        .stage_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let rival = w
        .stage_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let t = staged.append_batches([events(0..10, 1)]).await.unwrap();
    assert!(!t.is_staged());
    assert_eq!(t.version(), Version(1));
    let operations: Vec<Operation> = t
        .history()
        .await
        .unwrap()
        .iter()
        .map(|s| s.operation)
        .collect();
    assert_eq!(operations, [Operation::Create, Operation::Append]);
    let err = rival
        .append_batches([events(100..110, 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let loaded = w.load_table("ns", "events").await.unwrap();
    assert_eq!(read_ids(&loaded).await, (0..10).collect::<Vec<_>>());
    assert!(matches!(
        w.stage_table("ns", "events", events_definition(true)).await,
        Err(Error::AlreadyExists { .. })
    ));
    // The staged handle finds the table its commit created (as a retried commit must).
    assert_eq!(staged.reload().await.unwrap().version(), Version(1));
    assert!(rival.reload().await.unwrap().is_staged());
}

/// A file of `len` bytes at `path` (its directories made), last modified at `modified`: what
/// a writer left on local disk.
fn write_file_at(path: &std::path::Path, len: u64, modified: std::time::SystemTime) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    file.set_len(len).unwrap();
    file.set_modified(modified).unwrap();
}

/// Every file under `dir`, sorted.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(current) = dirs.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn a_failure_at_any_step_of_expiry_leaves_a_readable_table() {
    for fail_on in ["metadata/0000", "metadata/ml-", "metadata/m-", "data/"] {
        let (store, w) = fault_warehouse().await;
        let t = w
            .create_table("ns", "events", events_definition(true))
            .await
            .unwrap();
        let (t, rows_at) = table_with_history(t).await;
        let options = ExpireOptions {
            older_than_ms: Some(i64::MAX),
            retain_last: Some(5),
            dry_run: false,
        };
        store.fail(Op::Delete, fail_on, 1);
        let outcome = expire_snapshots(&t, &options).await;
        assert!(outcome.is_err(), "a delete of {fail_on} was to fail");
        store.clear_faults();
        let reloaded = w.load_table("ns", "events").await.unwrap();
        assert_eq!(
            read_ids(&reloaded).await,
            rows_at[30],
            "after failing on {fail_on}"
        );
        // Running it again finishes the job.
        expire_snapshots(&t, &options).await.unwrap();
        remove_orphan_files(
            &t,
            &OrphanOptions {
                older_than_ms: i64::MAX,
                dry_run: false,
            },
        )
        .await
        .unwrap();
        for v in 26..=30u64 {
            let at = t.at_version(Version(v)).await.unwrap();
            assert_eq!(
                read_ids(&at).await,
                rows_at[v as usize],
                "version {v} ({fail_on})"
            );
        }
        assert_eq!(
            objects_under(&t).await,
            expected_objects(&t).await,
            "{fail_on}"
        );
        let _ = Arc::clone(&store);
    }
}

#[tokio::test]
async fn a_failure_during_orphan_cleanup_leaves_a_readable_table() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let (t, rows_at) = table_with_history(t).await;
    let stray = stray_files(&t).await;
    let options = OrphanOptions {
        older_than_ms: i64::MAX,
        dry_run: false,
    };
    store.fail(Op::Delete, &stray[0].path, 1);
    assert!(remove_orphan_files(&t, &options).await.is_err());
    store.clear_faults();
    let reloaded = w.load_table("ns", "events").await.unwrap();
    assert_eq!(read_ids(&reloaded).await, rows_at[30]);
    let report = remove_orphan_files(&t, &options).await.unwrap();
    assert!(report.orphans.contains(&stray[0].path), "{report:?}");
    assert_eq!(objects_under(&t).await, expected_objects(&t).await);
    for v in 0..=30u64 {
        let at = t.at_version(Version(v)).await.unwrap();
        assert_eq!(read_ids(&at).await, rows_at[v as usize], "version {v}");
    }
}

#[tokio::test]
async fn a_row_delta_that_only_adds_rows_writes_no_delete_file() {
    let w = memory_warehouse("insert-only-delta").await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    let mut writer = t.writer().unwrap();
    writer.write(&events(0..10, 1)).await.unwrap();
    // What a MERGE whose source matched no target row commits.
    let t = t
        .commit(Change::RowDelta {
            deletes: Vec::new(),
            added: writer.finish().await.unwrap(),
            operation: Operation::Merge,
        })
        .await
        .unwrap();
    assert_eq!(read_ids(&t).await, (0..10).collect::<Vec<_>>());
    let objects = objects_under(&t).await;
    assert!(
        !objects.iter().any(|o| o.starts_with("data/deletes-")),
        "{objects:?}"
    );
    assert_eq!(objects, expected_objects(&t).await);
}
