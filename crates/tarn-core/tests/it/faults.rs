//! Failures injected at each step of a commit leave the table at its previous version, and
//! trying again succeeds.

use std::sync::Arc;

use tarn_core::{ErrorKind, RetryPolicy};
use tarn_spec::Version;

use crate::common::*;

/// The object-store writes of an append, in order: (step, path fragment).
const STEPS: [(&str, &str); 4] = [
    ("data file", "/data/"),
    ("manifest", "/metadata/m-"),
    ("manifest list", "/metadata/ml-"),
    ("version file", "/metadata/000"),
];

#[tokio::test]
async fn a_failure_at_each_step_leaves_the_previous_version() {
    for (step, fragment) in STEPS {
        let (store, w) = fault_warehouse().await;
        let t = w
            .create_table("ns", "events", events_definition(false))
            .await
            .unwrap();
        let t = t.append_batches([events(0..10, 1)]).await.unwrap();
        let t = t.with_retry_policy(RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        });

        store.fail(Op::Put, fragment, usize::MAX);
        let err = t.append_batches([events(10..20, 1)]).await.expect_err(step);
        // An unanswered create of the version may have landed: the committer cannot tell.
        let expected = match step {
            "version file" => ErrorKind::CommitStateUnknown,
            _ => ErrorKind::Unavailable,
        };
        assert_eq!(err.kind(), expected, "{step}: {err}");

        store.clear_faults();
        let reloaded = w.load_table("ns", "events").await.unwrap();
        assert_eq!(
            reloaded.version(),
            Version(1),
            "{step}: nothing was committed"
        );
        assert_eq!(
            read_ids(&reloaded).await,
            (0..10).collect::<Vec<_>>(),
            "{step}"
        );

        let retried = reloaded.append_batches([events(10..20, 1)]).await.unwrap();
        assert_eq!(retried.version(), Version(2), "{step}");
        assert_eq!(
            read_ids(&retried).await,
            (0..20).collect::<Vec<_>>(),
            "{step}"
        );
    }
}

#[tokio::test]
async fn a_failed_hint_write_does_not_fail_the_commit() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    store.fail(Op::Put, "version-hint", 1);
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    assert_eq!(t.version(), Version(1));
    // The stale hint says 0; readers probe past it.
    assert_eq!(
        w.load_table("ns", "events").await.unwrap().version(),
        Version(1)
    );
}

#[tokio::test]
async fn a_transient_failure_of_the_version_write_is_retried() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    store.fail(Op::Put, "/metadata/000", 1);
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    assert_eq!(t.version(), Version(1));
}

#[tokio::test]
async fn a_commit_that_landed_but_reported_failure_is_not_repeated() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    store.fail_after(Op::Put, "/metadata/00000000000000000001.json");
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    assert_eq!(t.version(), Version(1));
    let latest = w.load_table("ns", "events").await.unwrap();
    assert_eq!(latest.version(), Version(1), "one commit, not two");
    assert_eq!(read_ids(&latest).await, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn reads_fail_cleanly_when_the_store_does() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    store.fail(Op::Get, "/metadata/ml-", 1);
    let fresh = reopened(&w).load_table("ns", "events").await.unwrap();
    let err = fresh
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(read_ids(&t).await.len(), 10, "the next read succeeds");
}

/// A commit that keeps losing its race reads the same small amount on every attempt: it
/// checks only the commits since its previous attempt, not all those since it started.
/// (Reading more each time is a window that grows until a committer behind a busy writer
/// can never win.)
#[tokio::test]
async fn each_retry_reads_only_what_landed_since_the_last_attempt() {
    use std::time::Duration;
    let (store, w, bypass) = fault_warehouse_and_bypass().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_attempts: 100,
            min_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        });
    // Far behind: more commits than a version file's recent log holds.
    let mut other = bypass.load_table("ns", "events").await.unwrap();
    for i in 0..(tarn_spec::RECENT_SNAPSHOTS as i64 + 10) {
        other = other.append_batches([events(i..i + 1, 1)]).await.unwrap();
    }
    // Then another writer lands a commit just before each of this commit's next 40
    // attempts to create its version.
    let losses = 40;
    store.before_version_create(
        losses,
        Arc::new(move || {
            let bypass = bypass.clone();
            Box::pin(async move {
                let t = bypass.load_table("ns", "events").await.unwrap();
                t.append_batches([events(1000..1001, 1)]).await.unwrap();
            })
        }),
    );
    store.clear_calls();
    let committed = t
        .commit(tarn_core::Change::Metadata {
            updates: vec![tarn_spec::MetadataUpdate::SetProperties(
                [("owner".to_string(), "a".to_string())].into(),
            )],
            data_dependent: false,
        })
        .await
        .unwrap();
    assert_eq!(
        committed
            .metadata()
            .properties()
            .get("owner")
            .map(String::as_str),
        Some("a")
    );
    let version_reads = store
        .calls()
        .iter()
        .filter(|(op, path)| *op == Op::Get && path.contains("/metadata/000"))
        .count();
    // One read of the newest version per attempt, and a few older version files once.
    // Re-checking from the start reads older version files on every attempt (over 120).
    assert!(
        version_reads <= losses + 10,
        "{version_reads} version files read over {} attempts",
        losses + 1
    );
}

/// The commit protocol's steps (§8.1 of the format) stay in order while the requests within a
/// step go out together: a small data file and the metadata objects, the version file once all
/// of them are stored, then the check of the base and the hint.
#[tokio::test]
async fn a_commit_sends_each_step_together_and_the_steps_in_order() {
    let (store, w) = fault_warehouse().await;
    let t = w
        .create_table("ns", "events", events_definition(false))
        .await
        .unwrap();
    let t = t.append_batches([events(0..10, 1)]).await.unwrap();
    store.set_latency(std::time::Duration::from_millis(5));

    store.clear_calls();
    let t = t.append_batches([events(10..20, 1)]).await.unwrap();
    let appended = store.timeline();
    let file = t
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap()
        .data_files()
        .into_iter()
        .next()
        .unwrap();
    store.clear_calls();
    let t = t
        .commit(tarn_core::Change::RowDelta {
            deletes: vec![(file, tarn_core::RoaringTreemap::from_iter([0u64, 1]))],
            added: Vec::new(),
            operation: tarn_spec::Operation::Delete,
        })
        .await
        .unwrap();
    assert_eq!(read_ids(&t).await.len(), 18);
    let deleted = store.timeline();

    for (commit, timeline, metadata_objects) in [
        (
            "append",
            appended,
            &["/data/", "/metadata/m-", "/metadata/ml-"][..],
        ),
        (
            "delete",
            deleted,
            &[
                "/data/deletes-",
                "/metadata/r-",
                "/metadata/m-",
                "/metadata/ml-",
            ][..],
        ),
    ] {
        let at = |moment: Moment, op: Op, fragment: &str| {
            timeline
                .iter()
                .position(|(m, o, p)| *m == moment && *o == op && p.contains(fragment))
                .unwrap_or_else(|| {
                    panic!("{commit}: no {moment:?} {op:?} of {fragment}: {timeline:#?}")
                })
        };
        // Each metadata object starts before any of them ends: they go out together.
        let first_end = metadata_objects
            .iter()
            .map(|f| at(Moment::End, Op::Put, f))
            .min()
            .unwrap();
        for fragment in metadata_objects {
            assert!(
                at(Moment::Start, Op::Put, fragment) < first_end,
                "{commit}: {fragment} waited for another metadata object: {timeline:#?}"
            );
        }
        // The version file is created once every object it names is stored.
        let version = at(Moment::Start, Op::Put, "/metadata/000");
        for fragment in metadata_objects {
            assert!(
                at(Moment::End, Op::Put, fragment) < version,
                "{commit}: the version file was created before {fragment} was stored"
            );
        }
        // Then the check of its base and the hint, together.
        let version_end = at(Moment::End, Op::Put, "/metadata/000");
        let (check, hint) = (
            at(Moment::Start, Op::Head, "/metadata/000"),
            at(Moment::Start, Op::Put, "version-hint"),
        );
        assert!(version_end < check && version_end < hint, "{commit}");
        assert!(
            check < at(Moment::End, Op::Put, "version-hint")
                && hint < at(Moment::End, Op::Head, "/metadata/000"),
            "{commit}: the check of the base and the hint went one after the other: {timeline:#?}"
        );
    }
}
