//! Long histories: version files keep a bounded log, and everything that needs older
//! snapshots (time travel, the full history, conflict checks of a stale writer) reads them
//! from older version files.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use tarn_core::{Change, Env, Error, Warehouse};
use tarn_spec::{
    BOUNDED_LOG_FORMAT_VERSION, COMPRESSED_OBJECTS_FORMAT_VERSION, RECENT_SNAPSHOTS, Version,
};

use crate::common::*;

const COMMITS: u64 = 2 * RECENT_SNAPSHOTS as u64 + 17;

#[tokio::test]
async fn version_files_stay_small_while_every_version_stays_readable() {
    let clock = Arc::new(ManualClock::default());
    let env = Env {
        clock: clock.clone(),
        ..Env::default()
    };
    let w = memory_warehouse("long-history").await.with_env(env);
    clock.set(1_000);
    let mut t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let mut sizes = Vec::new();
    for i in 0..COMMITS as i64 {
        clock.set(10_000 + i * 1_000);
        t = t.append_batches([events(i..i + 1, 1)]).await.unwrap();
        sizes.push(t.metadata().to_json().len());
    }
    assert_eq!(t.version(), Version(COMMITS));
    assert_eq!(t.metadata().snapshots().len(), RECENT_SNAPSHOTS);
    // The table moved to the bounded log with the commit that first dropped an entry, and
    // to compressed objects with the one that first wrote a compressed manifest list (once
    // it held 64 manifests); every version reads.
    assert_eq!(
        t.metadata().format_version(),
        COMPRESSED_OBJECTS_FORMAT_VERSION
    );
    let mut compressed_from = None;
    for version in 1..=COMMITS {
        let at = t.at_version(Version(version)).await.unwrap();
        let list = at
            .metadata()
            .current_snapshot()
            .manifest_list
            .clone()
            .unwrap();
        let compressed = list.ends_with(".arrow.lz4");
        assert!(compressed || list.ends_with(".arrow"), "{list}");
        if compressed {
            compressed_from.get_or_insert(version);
        }
        let expected = if compressed_from.is_some() {
            COMPRESSED_OBJECTS_FORMAT_VERSION
        } else if version >= RECENT_SNAPSHOTS as u64 {
            BOUNDED_LOG_FORMAT_VERSION
        } else {
            1
        };
        assert_eq!(
            at.metadata().format_version(),
            expected,
            "version {version}"
        );
        assert_eq!(
            read_ids(&at).await.len() as u64,
            version,
            "version {version}"
        );
    }
    assert!(compressed_from.is_some());
    // The version file stops growing once the log is full.
    let full = sizes[RECENT_SNAPSHOTS + 5];
    assert!(
        *sizes.last().unwrap() <= full + full / 20,
        "version file grew from {full} to {} bytes",
        sizes.last().unwrap()
    );

    let history = t.history().await.unwrap();
    let versions: Vec<u64> = history.iter().map(|s| s.version.get()).collect();
    assert_eq!(versions, (0..=COMMITS).collect::<Vec<_>>());

    // Versions and times far older than the recent log.
    let v3 = t.at_version(Version(3)).await.unwrap();
    assert_eq!(read_ids(&v3).await, vec![0, 1, 2]);
    for (ms, expected) in [
        (12_500, 3),
        (12_000, 3),
        (11_999, 2),
        (10_000, 1),
        (1_000, 0),
    ] {
        assert_eq!(
            t.at_timestamp(ms).await.unwrap().version(),
            Version(expected),
            "at {ms} ms"
        );
    }
    let last_ms = 10_000 + (COMMITS as i64 - 1) * 1_000;
    assert_eq!(
        t.at_timestamp(last_ms + 5).await.unwrap().version(),
        Version(COMMITS)
    );
    assert!(matches!(
        t.at_timestamp(999).await.unwrap_err(),
        Error::TimestampBeforeTable { .. }
    ));
}

#[tokio::test]
async fn a_writer_older_than_the_log_still_sees_every_conflict() {
    let w = memory_warehouse("stale-writer").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let stale = t.append_batches([events(0..10, 1)]).await.unwrap();
    let file = stale
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap()
        .data_files()[0]
        .clone();
    // Another writer removes the file, then commits more than a log's worth on top.
    let mut writer = stale.writer().unwrap();
    writer.write(&events(0..5, 1)).await.unwrap();
    let mut t = stale
        .commit(Change::Rewrite {
            removed: vec![file.clone()],
            added: writer.finish().await.unwrap(),
            operation: tarn_spec::Operation::Delete,
        })
        .await
        .unwrap();
    for i in 0..RECENT_SNAPSHOTS as i64 + 3 {
        t = t
            .append_batches([events(100 + i..101 + i, 1)])
            .await
            .unwrap();
    }
    assert!(
        t.metadata().snapshot(Version(2)).is_none(),
        "the rewrite left the log"
    );

    // The stale writer rewrites the same file: the removal is found in an older version file.
    let mut writer = stale.writer().unwrap();
    writer.write(&events(0..3, 1)).await.unwrap();
    let err = stale
        .commit(Change::Rewrite {
            removed: vec![file],
            added: writer.finish().await.unwrap(),
            operation: tarn_spec::Operation::Delete,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }) && err.to_string().contains("was removed"),
        "{err}"
    );
    // An append from the stale writer rebases over all of it.
    let appended = stale.append_batches([events(1000..1001, 1)]).await.unwrap();
    assert_eq!(appended.version(), t.version().next());
    assert_eq!(
        read_ids(&appended).await.len(),
        5 + RECENT_SNAPSHOTS + 3 + 1
    );
}

#[tokio::test]
async fn small_manifests_are_merged_so_the_list_stays_short() {
    let w = memory_warehouse("merge-manifests").await;
    let mut definition = events_definition(true);
    definition.properties.insert(
        tarn_core::properties::MANIFEST_MIN_COUNT_TO_MERGE_PROPERTY.to_string(),
        "8".to_string(),
    );
    let mut t = w.create_table("ns", "events", definition).await.unwrap();
    let mut longest = 0;
    for i in 0..60 {
        t = t
            .append_batches([events(i * 3..i * 3 + 3, 2)])
            .await
            .unwrap();
        longest = longest.max(t.manifest_list().await.unwrap().len());
    }
    // At most 7 manifests of each tier (1 file, 8 files) and the commit's own.
    assert!(longest <= 15, "the list grew to {longest} manifests");
    assert_eq!(read_ids(&t).await, (0..180).collect::<Vec<_>>());
    assert_eq!(
        t.snapshot().summary.total_files,
        t.plan_files(&tarn_core::Predicate::True)
            .await
            .unwrap()
            .data_files()
            .len() as u64
    );
    // The newest commit's own manifest still lists exactly its files.
    let own = &t.snapshot().changes.added_manifests;
    assert_eq!(own.len(), 1);
    assert_eq!(
        t.manifest(&own[0]).await.unwrap().len() as u64,
        t.snapshot().summary.added_files
    );
}

#[tokio::test]
async fn reloading_an_unchanged_table_reads_no_object() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..3, 1)]).await.unwrap();
    store.clear_calls();
    let same = t.reload().await.unwrap();
    assert_eq!(same.version(), t.version());
    let calls = store.calls();
    assert!(
        calls.iter().all(|(op, _)| *op == Op::Head) && calls.len() == 2,
        "a freshness probe is two HEADs: {calls:?}"
    );
    // Another writer's commit is seen.
    let other = w.load_table("ns", "events").await.unwrap();
    other.append_batches([events(3..4, 1)]).await.unwrap();
    assert_eq!(t.reload().await.unwrap().version(), Version(2));
}

/// Loading a table reads the hint, then its version file while probing for the next one:
/// two round trips on an object store. A hint left behind costs a read, not a wrong version.
#[tokio::test]
async fn loading_reads_the_hinted_version_while_it_probes_for_the_next() {
    let (store, w, bypass) = fault_warehouse_and_bypass().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    t.append_batches([events(0..3, 1)]).await.unwrap();
    store.set_latency(std::time::Duration::from_millis(5));
    let fresh = || Warehouse::from_store(store.clone(), Default::default(), "memory://faults");

    store.clear_calls();
    let loaded = fresh().load_table("ns", "events").await.unwrap();
    assert_eq!(loaded.version(), Version(1));
    let timeline = store.timeline();
    let at = |moment: Moment, op: Op, fragment: &str| {
        timeline
            .iter()
            .position(|(m, o, p)| *m == moment && *o == op && p.contains(fragment))
            .unwrap_or_else(|| panic!("no {moment:?} {op:?} of {fragment}: {timeline:#?}"))
    };
    let (probe, read) = (
        at(
            Moment::Start,
            Op::Head,
            "/metadata/00000000000000000002.json",
        ),
        at(
            Moment::Start,
            Op::Get,
            "/metadata/00000000000000000001.json",
        ),
    );
    assert!(at(Moment::End, Op::Get, "version-hint") < probe.min(read));
    assert!(
        probe < at(Moment::End, Op::Get, "/metadata/00000000000000000001.json")
            && read < at(Moment::End, Op::Head, "/metadata/00000000000000000002.json"),
        "the read of the hinted version waited for the probe: {timeline:#?}"
    );

    // Two commits that leave the hint behind (the hint rewritten to version 1 by hand).
    let other = bypass.load_table("ns", "events").await.unwrap();
    let other = other.append_batches([events(3..4, 1)]).await.unwrap();
    other.append_batches([events(4..5, 1)]).await.unwrap();
    let hint = object_store::path::Path::from("ns/events/metadata/version-hint");
    store.put(&hint, "1".into()).await.unwrap();
    let loaded = fresh().load_table("ns", "events").await.unwrap();
    assert_eq!(loaded.version(), Version(3));
    assert_eq!(read_ids(&loaded).await, (0..5).collect::<Vec<_>>());
}

/// A handle loaded before a commit made through the same warehouse (the next statement of
/// a session that wrote) reloads to that commit with two HEADs; a commit by another process
/// is read from storage.
#[tokio::test]
async fn reloading_after_an_own_commit_reads_no_object() {
    let (store, w, bypass) = fault_warehouse_and_bypass().await;
    w.create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let before = w.load_table("ns", "events").await.unwrap();
    let writer = w.load_table("ns", "events").await.unwrap();
    let committed = writer.append_batches([events(0..3, 1)]).await.unwrap();
    store.clear_calls();
    let reloaded = before.reload().await.unwrap();
    assert_eq!(reloaded.version(), committed.version());
    assert_eq!(reloaded.snapshot().summary.total_rows, 3);
    let calls = store.calls();
    assert!(
        calls.iter().all(|(op, _)| *op == Op::Head) && calls.len() == 2,
        "a reload to an own commit is two HEADs: {calls:?}"
    );
    // Another process commits: the reload reads the new version.
    let other = bypass.load_table("ns", "events").await.unwrap();
    other.append_batches([events(3..5, 1)]).await.unwrap();
    store.clear_calls();
    let fresh = before.reload().await.unwrap();
    assert_eq!(fresh.version(), Version(2));
    assert_eq!(fresh.snapshot().summary.total_rows, 5);
    assert!(store.calls().iter().any(|(op, _)| *op == Op::Get));
    // And the table dropped and created again under the name is not the remembered one.
    w.drop_table("ns", "events").await.unwrap();
    let new = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    new.append_batches([events(0..1, 1)]).await.unwrap();
    let after_drop = before.reload().await.unwrap();
    assert_eq!(
        after_drop.metadata().table_uuid(),
        new.metadata().table_uuid()
    );
    assert_eq!(after_drop.snapshot().summary.total_rows, 1);
}

/// A follower sees every version another writer commits, one by one and in order, even
/// those that land together; it does not spin while nothing lands (its polls back off);
/// and it ends with an error when the table is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_every_new_version_in_order() {
    use futures::StreamExt;
    use std::time::Duration;

    let w = memory_warehouse("follow").await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let poll = tarn_core::FollowPoll {
        min: Duration::from_millis(5),
        max: Duration::from_millis(50),
    };
    let mut follower = Box::pin(t.follow(poll));
    let writer = tokio::spawn(async move {
        let mut t = t;
        for i in 0..6 {
            t = t
                .append_batches([events(i * 2..i * 2 + 2, 1)])
                .await
                .unwrap();
            // Versions 3 and 4 land together.
            if i != 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let next = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .expect("a version within 10 s")
            .expect("the stream goes on")
            .unwrap();
        seen.push((next.version().get(), next.snapshot().summary.total_rows));
    }
    writer.await.unwrap();
    assert_eq!(
        seen,
        (1..=6).map(|v| (v, 2 * v)).collect::<Vec<_>>(),
        "every version once, in order, each as it was"
    );

    // Idle: a follower waiting 500 ms backs off to one look every 50 ms.
    let before = w.requests();
    let idle = tokio::time::timeout(Duration::from_millis(500), follower.next()).await;
    assert!(idle.is_err(), "no version landed");
    let looks = w.requests().since(before).total();
    assert!(looks > 0 && looks < 60, "{looks} requests while idle");

    // The table goes away: the stream says so, then ends.
    w.drop_table("ns", "events").await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Err(_))), "{end:?}");
    assert!(follower.next().await.is_none());
}
