//! Concurrent commits: every cell of the conflict matrix, and many writers at once.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use tarn_core::{Change, ErrorKind, OverwriteScope, Predicate, Table};
use tarn_spec::{Field, MetadataUpdate, Operation, PrimitiveType, Value, Version};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_commit_twenty_five_appends_each() {
    eight_writers(Backend::Local).await
}

pub async fn eight_writers(backend: Backend) {
    let (_dir, w) = warehouse_on(backend, "eight-writers").await;
    w.create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for writer in 0..8i64 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            for commit in 0..25i64 {
                let t = w.load_table("ns", "events").await.unwrap();
                let first = (writer * 25 + commit) * 4;
                t.append_batches([events(first..first + 4, 2)])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let t = w.load_table("ns", "events").await.unwrap();
    assert_eq!(t.version(), Version(200));
    let appends = t
        .history()
        .await
        .unwrap()
        .iter()
        .filter(|s| s.operation == Operation::Append)
        .count();
    assert_eq!(appends, 200);
    assert_eq!(
        read_ids(&t).await,
        (0..800).collect::<Vec<_>>(),
        "every row exactly once"
    );
    assert_eq!(t.snapshot().summary.total_rows, 800);
}

/// The kinds of change in the conflict matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Append,
    OverwriteTable,
    /// Overwrites the `eu` partition of day 0.
    OverwriteEu,
    /// Rewrites the file holding the `eu` rows.
    RewriteEu,
    /// Deletes rows of the `eu` file by deletion vector (which rows: by `salt`).
    DeleteEu,
    Schema,
    Property,
    /// A new definition (the same columns, unpartitioned) with new rows.
    Replace,
}

const KINDS: [Kind; 8] = [
    Kind::Append,
    Kind::OverwriteTable,
    Kind::OverwriteEu,
    Kind::RewriteEu,
    Kind::DeleteEu,
    Kind::Schema,
    Kind::Property,
    Kind::Replace,
];

/// Base: one file of `eu` rows (even ids 0..20) and one of `us` rows, all on day 0.
async fn base(name: &str) -> Table {
    base_on(Backend::Memory, name).await
}

async fn base_on(backend: Backend, name: &str) -> Table {
    let (_, w) = warehouse_on(backend, name).await;
    let t = w
        .create_table("ns", "events", events_definition(true))
        .await
        .unwrap();
    t.append_batches([events(0..20, 1)]).await.unwrap()
}

async fn write(t: &Table, ids: std::ops::Range<i64>) -> Vec<tarn_core::DataFile> {
    let mut writer = t.writer().unwrap();
    writer.write(&events(ids, 1)).await.unwrap();
    writer.finish().await.unwrap()
}

async fn file_in(t: &Table, region: &str) -> tarn_core::DataFile {
    t.plan_files(&Predicate::True)
        .await
        .unwrap()
        .data_files()
        .into_iter()
        .find(|f| f.partition[1] == Some(Value::String(region.into())))
        .expect("a file in the region")
}

/// A change of `kind` prepared against `t`. `salt` keeps ids and keys of two changes apart.
async fn change(t: &Table, kind: Kind, salt: i64) -> Change {
    match kind {
        Kind::Append => Change::Append {
            files: write(t, 1000 * salt..1000 * salt + 2).await,
        },
        Kind::OverwriteTable => Change::Overwrite {
            files: write(t, 1000 * salt..1000 * salt + 2).await,
            scope: OverwriteScope::Table,
        },
        // Even ids are eu rows.
        Kind::OverwriteEu => Change::Overwrite {
            files: write(t, 1000 * salt..1000 * salt + 1).await,
            scope: OverwriteScope::Partitions,
        },
        Kind::RewriteEu => {
            let removed = file_in(t, "eu").await;
            let added = write(t, 2..3).await;
            Change::Rewrite {
                removed: vec![removed],
                added,
                operation: Operation::Delete,
            }
        }
        // Two deletes of one file with different salts delete different rows.
        Kind::DeleteEu => Change::RowDelta {
            deletes: vec![(
                file_in(t, "eu").await,
                tarn_core::RoaringTreemap::from_iter([salt as u64]),
            )],
            added: Vec::new(),
            operation: Operation::Delete,
        },
        Kind::Schema => {
            let mut fields = t.schema().fields().to_vec();
            fields.push(Field::optional(
                10 + salt as i32,
                format!("c{salt}"),
                PrimitiveType::Int,
            ));
            Change::Metadata {
                updates: vec![MetadataUpdate::SetSchema(fields)],
                data_dependent: false,
            }
        }
        Kind::Property => Change::Metadata {
            updates: vec![MetadataUpdate::SetProperties(BTreeMap::from([(
                "k".to_string(),
                salt.to_string(),
            )]))],
            data_dependent: false,
        },
        Kind::Replace => {
            let definition = events_definition(false);
            let updates = (t.metadata())
                .replacement(
                    definition.fields.clone(),
                    definition.partition_fields.clone(),
                    &definition.properties,
                    tarn_core::properties::set_by_tarn,
                )
                .unwrap();
            let mut writer = t.replacement(definition).unwrap().writer().unwrap();
            writer
                .write(&events(1000 * salt..1000 * salt + 2, 1))
                .await
                .unwrap();
            let files = writer.finish().await.unwrap();
            Change::Replace { updates, files }
        }
    }
}

/// Whether `mine`, prepared on the same base as `theirs`, may commit after it.
fn rebases(mine: Kind, theirs: Kind) -> bool {
    use Kind::*;
    match (mine, theirs) {
        // A replacement builds on exactly the version it read.
        (Replace, _) => false,
        (_, Schema | Replace) => matches!(mine, Property),
        (Append, _) => true,
        (OverwriteTable, Property) => true,
        (OverwriteTable, _) => false,
        (OverwriteEu, Property) => true,
        (OverwriteEu, _) => false,
        (RewriteEu | DeleteEu, Append | Property) => true,
        (RewriteEu, _) => false,
        // Different rows of one file: both deletes stand.
        (DeleteEu, DeleteEu) => true,
        (DeleteEu, _) => false,
        (Schema, _) => true,
        (Property, Property) => false,
        (Property, _) => true,
    }
}

#[tokio::test]
async fn conflict_matrix_every_cell() {
    conflict_matrix(Backend::Memory).await
}

pub async fn conflict_matrix(backend: Backend) {
    for mine in KINDS {
        for theirs in KINDS {
            let t = base_on(backend, &format!("matrix-{mine:?}-{theirs:?}")).await;
            let their_change = change(&t, theirs, 1).await;
            let my_change = change(&t, mine, 2).await;
            let after_theirs = t.commit(their_change).await.unwrap();
            let result = t.commit(my_change).await;
            let cell = format!("mine {mine:?} vs theirs {theirs:?}");
            if rebases(mine, theirs) {
                let committed =
                    result.unwrap_or_else(|e| panic!("{cell}: expected a rebase, got {e}"));
                assert_eq!(committed.version(), Version(3), "{cell}");
            } else {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{cell}: expected a conflict"));
                assert_eq!(
                    err.kind(),
                    ErrorKind::Conflict { retryable: true },
                    "{cell}: {err}"
                );
                let latest = after_theirs.refresh().await.unwrap();
                assert_eq!(
                    latest.version(),
                    Version(2),
                    "{cell}: a conflict commits nothing"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_racing_appends_lose_no_row_and_bring_none_back() {
    let w = memory_warehouse("restore-race").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    t.append_batches([events(0..10, 1)]).await.unwrap();
    let appender = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut appended = Vec::new();
            for i in 0..40i64 {
                let t = w.load_table("ns", "events").await.unwrap();
                let ids = 100 + 2 * i..102 + 2 * i;
                let after = t.append_batches([events(ids.clone(), 1)]).await.unwrap();
                appended.push((after.version(), ids));
            }
            appended
        })
    };
    let restorer = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut restored = Vec::new();
            for _ in 0..8 {
                loop {
                    let t = w.load_table("ns", "events").await.unwrap();
                    match t.restore(Version(1), BTreeMap::new()).await {
                        Ok(after) => {
                            restored.push(after.version());
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::Conflict { retryable: true } => {}
                        Err(e) => panic!("restore failed: {e}"),
                    }
                }
            }
            restored
        })
    };
    let appended = appender.await.unwrap();
    let restored = restorer.await.unwrap();
    // The table holds version 1's rows and the rows of every append after the last restore.
    let last_restore = restored.into_iter().max().unwrap();
    let mut expected: Vec<i64> = (0..10).collect();
    for (version, ids) in appended {
        if version > last_restore {
            expected.extend(ids);
        }
    }
    let t = w.load_table("ns", "events").await.unwrap();
    assert_eq!(read_ids(&t).await, expected);
}

#[tokio::test]
async fn rewrite_rebases_over_a_concurrent_append_and_keeps_its_rows() {
    let t = base("rewrite-append").await;
    let rewrite = change(&t, Kind::RewriteEu, 0).await; // keeps only id 2 of the eu rows
    t.commit(change(&t, Kind::Append, 5).await).await.unwrap();
    let t = t.commit(rewrite).await.unwrap();
    let mut expected: Vec<i64> = (0..20).filter(|i| i % 2 == 1).collect();
    expected.extend([2, 5000, 5001]);
    expected.sort_unstable();
    assert_eq!(read_ids(&t).await, expected);
}

#[tokio::test]
async fn two_rewrites_of_one_file_commit_once() {
    let t = base("rewrite-rewrite").await;
    let first = change(&t, Kind::RewriteEu, 0).await;
    let second = change(&t, Kind::RewriteEu, 0).await;
    let after = t.commit(first).await.unwrap();
    let err = t.commit(second).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true });
    assert!(
        err.to_string()
            .contains("was removed by a concurrent commit"),
        "{err}"
    );
    let latest = after.refresh().await.unwrap();
    assert_eq!(latest.version(), Version(2));
    let ids = read_ids(&latest).await;
    assert_eq!(
        ids.iter().filter(|&&i| i == 2).count(),
        1,
        "the rewritten row is not duplicated"
    );
}

#[tokio::test]
async fn compatible_variants_rebase() {
    // Rewrites of different files.
    let t = base("rewrite-other-file").await;
    let eu = change(&t, Kind::RewriteEu, 0).await;
    let us = Change::Rewrite {
        removed: vec![file_in(&t, "us").await],
        added: vec![],
        operation: Operation::Delete,
    };
    t.commit(us).await.unwrap();
    let t2 = t.commit(eu).await.unwrap();
    assert_eq!(read_ids(&t2).await, vec![2]);

    // Overwriting us while eu gets an append.
    let t = base("overwrite-other-partition").await;
    let overwrite_us = Change::Overwrite {
        files: write(&t, 1001..1002).await,
        scope: OverwriteScope::Partitions,
    };
    t.commit(change(&t, Kind::Append, 3).await).await.unwrap(); // ids 3000, 3001: eu and us!
    assert!(
        t.commit(overwrite_us).await.is_err(),
        "3001 landed in us, which is being overwritten"
    );

    let t = base("overwrite-other-partition-2").await;
    let overwrite_us = Change::Overwrite {
        files: write(&t, 1001..1002).await,
        scope: OverwriteScope::Partitions,
    };
    t.commit(Change::Append {
        files: write(&t, 4000..4001).await,
    })
    .await
    .unwrap(); // eu only
    let t2 = t.commit(overwrite_us).await.unwrap();
    let mut expected: Vec<i64> = (0..20).filter(|i| i % 2 == 0).collect();
    expected.extend([1001, 4000]);
    expected.sort_unstable();
    assert_eq!(read_ids(&t2).await, expected);

    // Properties with different keys.
    let t = base("property-keys").await;
    let mine = Change::Metadata {
        updates: vec![MetadataUpdate::SetProperties(BTreeMap::from([(
            "other".to_string(),
            "x".to_string(),
        )]))],
        data_dependent: false,
    };
    t.commit(change(&t, Kind::Property, 1).await).await.unwrap();
    let t2 = t.commit(mine).await.unwrap();
    assert_eq!(t2.metadata().properties().len(), 2);
}

#[tokio::test]
async fn a_data_dependent_schema_change_conflicts_with_concurrent_data() {
    let t = base("not-null").await;
    let mut fields = t.schema().fields().to_vec();
    fields[1].required = true;
    let set_not_null = Change::Metadata {
        updates: vec![MetadataUpdate::SetSchema(fields)],
        data_dependent: true,
    };
    t.commit(change(&t, Kind::Append, 1).await).await.unwrap();
    let err = t.commit(set_not_null).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true });
}

/// DROP TABLE while a writer appends in a loop, then a new table under the same name: the
/// writer never has a write acknowledged after the DROP returned, no version of the old
/// table stays behind, and the new table never sees the old one's data or versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_table_racing_a_writer_leaves_nothing_of_it() {
    drop_racing_a_writer(Backend::Local).await
}

pub async fn drop_racing_a_writer(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    for round in 0..4u64 {
        let (_dir, w) = warehouse_on(backend, "drop-race").await;
        let first = w
            .create_table("ns", "events", events_definition(false))
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let first_ack = Arc::new(tokio::sync::Notify::new());
        let writer = tokio::spawn({
            let stop = stop.clone();
            let first_ack = first_ack.clone();
            async move {
                let mut acks = Vec::new();
                let uuid = first.metadata().table_uuid().to_string();
                let mut table = first;
                let mut next = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match table.append_batches([events(next..next + 1, 1)]).await {
                        Ok(t) => {
                            acks.push(started);
                            first_ack.notify_one();
                            table = t;
                            next += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
                            // Loaded afresh: no table, or the new one, which is not ours.
                            match w_reload(&table).await {
                                Some(t) if t.metadata().table_uuid() == uuid => table = t,
                                Some(_) => break,
                                None => tokio::time::sleep(Duration::from_millis(1)).await,
                            }
                        }
                    }
                }
                acks
            }
        });
        // The DROP lands at a different point of the writer's commit each round.
        first_ack.notified().await;
        tokio::time::sleep(Duration::from_millis(10 * round)).await;
        w.drop_table("ns", "events").await.unwrap();
        let dropped_at = Instant::now();
        let second = w
            .create_table(
                "ns",
                "events",
                tarn_core::TableDefinition {
                    fields: vec![Field::optional(1, "name", PrimitiveType::String)],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let name = arrow::array::RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("name", arrow::datatypes::DataType::Utf8, true),
            ])),
            vec![std::sync::Arc::new(arrow::array::StringArray::from(vec![
                "new",
            ]))],
        )
        .unwrap();
        second.append_batches([name]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, Ordering::Relaxed);
        let acks = writer.await.unwrap();
        assert!(
            !acks.is_empty(),
            "round {round}: the writer committed before the drop"
        );
        // When an append that started before the DROP returned is acknowledged cannot be
        // told from the outside (the task may be descheduled between its commit landing and
        // its caller reading a clock); one that started after the DROP returned must fail.
        // A late acknowledgement of a commit that landed after the DROP's would leave a
        // version of the old table behind, which the checks below rule out.
        assert!(
            acks.iter().all(|started| *started < dropped_at),
            "round {round}: a write begun after DROP TABLE returned was acknowledged"
        );
        // The name now holds only the new table: its schema, its row, its versions.
        let t = w.load_table("ns", "events").await.unwrap();
        assert_eq!(t.version(), Version(1), "round {round}");
        assert_eq!(t.schema().fields()[0].name, "name");
        assert_eq!(t.snapshot().summary.total_rows, 1);
        let uuid = t.metadata().table_uuid().to_string();
        for v in 0..=1 {
            let old = t.at_version(Version(v)).await.unwrap();
            assert_eq!(old.metadata().table_uuid(), uuid);
        }
        assert!(t.at_version(Version(2)).await.is_err());
    }
}

/// The newest table at `old`'s location, if there is one.
async fn w_reload(old: &Table) -> Option<Table> {
    Table::load(old.location().clone(), old.env().clone())
        .await
        .ok()
}

#[tokio::test]
async fn row_deltas_on_one_file_union_disjoint_rows_and_refuse_shared_ones() {
    let t = base("delta-delta").await;
    let eu = file_in(&t, "eu").await; // ids 0, 2, ..., 18 at positions 0..10
    let delete = |positions: &[u64]| Change::RowDelta {
        deletes: vec![(
            eu.clone(),
            tarn_core::RoaringTreemap::from_iter(positions.iter().copied()),
        )],
        added: Vec::new(),
        operation: Operation::Delete,
    };
    let first = delete(&[0, 1]);
    let disjoint = delete(&[5]);
    let shared = delete(&[1, 9]);
    t.commit(first).await.unwrap();
    let after = t.commit(disjoint).await.unwrap();
    assert_eq!(after.version(), Version(3));
    let ids = read_ids(&after).await;
    for gone in [0, 2, 10] {
        assert!(!ids.contains(&gone), "{gone} deleted: {ids:?}");
    }
    assert_eq!(ids.len(), 20 - 3);
    assert_eq!(after.snapshot().summary.total_rows, 17);
    let err = t.commit(shared).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true });
    assert!(
        err.to_string()
            .contains("deleted or updated by a concurrent commit"),
        "{err}"
    );
    // One vector per file: the second delta wrote the union.
    let files = after
        .plan_files(&Predicate::True)
        .await
        .unwrap()
        .data_files();
    let eu_now = files.iter().find(|f| f.path == eu.path).unwrap();
    assert_eq!(eu_now.deletion_vector.as_ref().unwrap().cardinality, 3);
    assert_eq!(eu_now.live_rows(), 7);
}

#[tokio::test]
async fn a_file_whose_every_row_is_deleted_leaves_the_table() {
    let t = base("delta-empties").await;
    let eu = file_in(&t, "eu").await; // ids 0, 2, ..., 18 at positions 0..10
    let delete = |positions: std::ops::Range<u64>| Change::RowDelta {
        deletes: vec![(eu.clone(), tarn_core::RoaringTreemap::from_iter(positions))],
        added: Vec::new(),
        operation: Operation::Delete,
    };
    // Two deltas from the same base: the second lands after the first and finds the
    // union of both to be the whole file.
    let (first, second) = (delete(0..4), delete(4..10));
    let v1 = t.commit(first).await.unwrap();
    let v2 = t.commit(second).await.unwrap();
    let live = |table: Table| async move {
        table
            .plan_files(&Predicate::True)
            .await
            .unwrap()
            .data_files()
    };
    assert!(
        live(v1.clone()).await.iter().any(|f| f.path == eu.path),
        "the first delta leaves rows in the file"
    );
    let files = live(v2.clone()).await;
    assert!(
        files.iter().all(|f| f.path != eu.path),
        "the emptied file is gone: {files:?}"
    );
    assert!(files.iter().all(|f| f.deletion_vector.is_none()));
    assert_eq!(v2.snapshot().summary.removed_files, 1);
    assert_eq!(v2.snapshot().summary.removed_rows, 6);
    assert_eq!(v2.snapshot().summary.total_rows, 10);
    let ids = read_ids(&v2).await;
    assert_eq!(ids.len(), 10);
    assert!(
        ids.iter().all(|id| id % 2 == 1),
        "only the other file's ids: {ids:?}"
    );
    // The version before still reads the file's remaining rows.
    assert_eq!(read_ids(&v1).await.len(), 16);

    // One delta that deletes every row at once writes no vector at all.
    let t = base("delta-empties-at-once").await;
    let eu = file_in(&t, "eu").await;
    let delete_files = |t: &Table| {
        let location = t.location().clone();
        async move {
            let objects: Vec<_> = location
                .store()
                .list(Some(&location.path("data")))
                .try_collect()
                .await
                .unwrap();
            objects
                .iter()
                .filter(|o| o.location.as_ref().contains("/deletes-"))
                .count()
        }
    };
    let all = Change::RowDelta {
        deletes: vec![(eu.clone(), tarn_core::RoaringTreemap::from_iter(0..10))],
        added: Vec::new(),
        operation: Operation::Delete,
    };
    let after = t.commit(all).await.unwrap();
    assert!(live(after.clone()).await.iter().all(|f| f.path != eu.path));
    assert_eq!(delete_files(&after).await, 0, "no delete file was written");
}

#[tokio::test]
async fn a_rewrite_of_a_file_with_new_deleted_rows_conflicts() {
    // A copy-on-write rewrite read the file before rows of it were deleted by vector: it
    // would bring them back.
    let t = base("rewrite-after-delta").await;
    let rewrite = change(&t, Kind::RewriteEu, 0).await;
    t.commit(change(&t, Kind::DeleteEu, 3).await).await.unwrap();
    let err = t.commit(rewrite).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: true });
    assert!(
        err.to_string()
            .contains("were deleted by a concurrent commit"),
        "{err}"
    );
}

async fn stamped_append(
    t: &Table,
    ids: std::ops::Range<i64>,
    app: &str,
    sequence: u64,
) -> tarn_core::Result<Table> {
    let files = write(t, ids).await;
    t.commit_stamped(
        Change::Append { files },
        BTreeMap::new(),
        Some(tarn_core::AppCommit {
            app_id: app.to_string(),
            sequence,
        }),
    )
    .await
}

/// A job commits batch 1, crashes before it hears of the commit, restarts from the table
/// it had loaded and commits batch 1 again: the retry is refused, nothing is duplicated,
/// and the table says where to resume. Other applications keep their own numbers, and a
/// number survives the expiry of the snapshots that set it.
#[tokio::test]
async fn a_retried_stamped_commit_is_refused_and_duplicates_nothing() {
    let t = base("exactly-once").await;
    assert_eq!(t.app_sequence("job"), None);
    let committed = stamped_append(&t, 100..104, "job", 1).await.unwrap();
    assert_eq!(committed.app_sequence("job"), Some(1));
    let rows = read_ids(&committed).await.len();

    // The restarted job works from the version it loaded before its commit.
    let err = stamped_append(&t, 100..104, "job", 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            tarn_core::Error::AlreadyCommitted {
                last: 1,
                sequence: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict { retryable: false });
    let latest = committed.refresh().await.unwrap();
    assert_eq!(latest.version(), committed.version(), "nothing committed");
    assert_eq!(read_ids(&latest).await.len(), rows, "nothing duplicated");

    // A lower number is refused too; the next one lands; another application is free.
    assert!(stamped_append(&latest, 0..1, "job", 0).await.is_err());
    let latest = stamped_append(&latest, 104..106, "job", 2).await.unwrap();
    let latest = stamped_append(&latest, 106..108, "other", 1).await.unwrap();
    assert_eq!(latest.app_sequence("job"), Some(2));
    assert_eq!(latest.app_sequence("other"), Some(1));

    // Schema and property changes, and the expiry of every older snapshot, keep the numbers.
    let latest = latest
        .commit(change(&latest, Kind::Property, 3).await)
        .await
        .unwrap();
    tarn_core::maintenance::expire_snapshots(
        &latest,
        &tarn_core::maintenance::ExpireOptions {
            older_than_ms: Some(i64::MAX),
            retain_last: Some(1),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    let latest = latest.refresh().await.unwrap();
    assert_eq!(latest.app_sequence("job"), Some(2));
    assert!(stamped_append(&latest, 0..1, "job", 2).await.is_err());
    stamped_append(&latest, 108..110, "job", 3).await.unwrap();
}

/// Two runs of one job race with the same batch, each from the same base: one lands, the
/// other is refused on its retry after losing the race, and the rows are there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_runs_of_one_batch_land_once() {
    let t = base("exactly-once-race").await;
    let rows = read_ids(&t).await.len();
    let (a, b) = tokio::join!(
        stamped_append(&t, 500..510, "job", 7),
        stamped_append(&t, 500..510, "job", 7)
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one lands: {a:?} / {b:?}");
    let refused = a.err().or(b.err()).unwrap();
    assert!(
        matches!(refused, tarn_core::Error::AlreadyCommitted { .. }),
        "{refused}"
    );
    let latest = t.refresh().await.unwrap();
    assert_eq!(read_ids(&latest).await.len(), rows + 10);
    assert_eq!(latest.app_sequence("job"), Some(7));
}
