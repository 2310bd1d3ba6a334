//! Behaviour that SQL files cannot express: plain DataFusion sessions, exact commit times,
//! the read-only rule of time-travel providers.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::empty::EmptyExec;
use tarn_core::Warehouse;

use crate::{TarnContext, register};

async fn run(ctx: &TarnContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_functions_work_in_a_plain_session() {
    let tarn = TarnContext::open("memory://plain-session").await.unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (1), (2)").await;
    run(&tarn, "INSERT INTO t VALUES (3)").await;

    let ctx = SessionContext::new();
    register(
        &ctx,
        Warehouse::open("memory://plain-session").unwrap(),
        "lake",
    )
    .await
    .unwrap();
    let current = ctx
        .sql("SELECT id FROM lake.default.t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(ids(&current), vec![1, 2, 3]);
    let old = ctx
        .sql("SELECT id FROM tarn_version('lake.default.t', 1)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(ids(&old), vec![1, 2]);
    let err = ctx
        .sql("SELECT id FROM tarn_version('lake.default.t', 7)")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("version 7 does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_as_of_picks_the_version_committed_at_or_before() {
    let tarn = TarnContext::open("memory://exact-times").await.unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (1)").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    run(&tarn, "INSERT INTO t VALUES (2)").await;
    let log = run(
        &tarn,
        "SELECT CAST(CAST(committed_at AS BIGINT) AS BIGINT) FROM \"t$snapshots\" ORDER BY version",
    )
    .await;
    let times = ids(&log);
    let (v1, v2) = (times[1], times[2]);
    assert!(v2 > v1);
    let at = |ms: i64| {
        let t = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ");
        format!("SELECT id FROM t TIMESTAMP AS OF '{t}'")
    };
    assert_eq!(ids(&run(&tarn, &at(v1)).await), vec![1]);
    assert_eq!(ids(&run(&tarn, &at(v2 - 1)).await), vec![1]);
    assert_eq!(ids(&run(&tarn, &at(v2)).await), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_travel_provider_is_read_only() {
    let tarn = TarnContext::open("memory://read-only").await.unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (1)").await;
    let current = tarn.catalog().load("default", "t").await.unwrap().unwrap();
    let old = current.pinned(
        current
            .table()
            .at_version(tarn_spec::Version(0))
            .await
            .unwrap(),
    );
    let input = Arc::new(EmptyExec::new(old.schema()));
    let state = tarn.session_context().state();
    let err = old
        .insert_into(&state, input, InsertOp::Append)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("a time-travel read is read-only"),
        "{err}"
    );
}

/// An UPDATE and a MERGE increment the same row concurrently: every increment survives (no
/// lost update), because a statement whose file was rewritten meanwhile conflicts and re-runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_lose_nothing() {
    let a = TarnContext::open("memory://concurrent-updates")
        .await
        .unwrap();
    run(&a, "CREATE TABLE c (id BIGINT, v BIGINT)").await;
    run(&a, "INSERT INTO c VALUES (1, 0), (2, 0)").await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(tokio::spawn(async move {
            let ctx = TarnContext::open("memory://concurrent-updates")
                .await
                .unwrap();
            for _ in 0..8 {
                run(&ctx, "UPDATE c SET v = v + 1 WHERE id = 1").await;
            }
        }));
    }
    // Meanwhile, appends of unrelated rows are rebased, never duplicated.
    tasks.push(tokio::spawn(async move {
        let ctx = TarnContext::open("memory://concurrent-updates")
            .await
            .unwrap();
        for i in 0..8 {
            run(&ctx, &format!("INSERT INTO c VALUES ({}, 0)", 100 + i)).await;
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
    let v = run(&a, "SELECT v FROM c WHERE id = 1").await;
    assert_eq!(
        ids(&v),
        vec![16],
        "every increment of both sessions is there"
    );
    let count = run(&a, "SELECT count(*) FROM c").await;
    assert_eq!(count[0].column(0).as_primitive::<Int64Type>().value(0), 10);
}

/// A MERGE whose target file is rewritten by a concurrent DELETE after it read the table
/// fails with a retryable conflict at the storage layer and commits nothing itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_of_a_file_removed_meanwhile_conflicts() {
    let ctx = TarnContext::open("memory://merge-conflict").await.unwrap();
    run(&ctx, "CREATE TABLE m (id BIGINT, v BIGINT)").await;
    run(&ctx, "INSERT INTO m VALUES (1, 1), (2, 2)").await;
    let stale = ctx.catalog().load("default", "m").await.unwrap().unwrap();
    run(&ctx, "DELETE FROM m WHERE id = 2").await;
    let file = stale
        .table()
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap()
        .data_files();
    let change = tarn_core::Change::Rewrite {
        removed: file,
        added: vec![],
        operation: tarn_spec::Operation::Merge,
    };
    let err = stale.table().commit(change).await.unwrap_err();
    assert_eq!(
        err.kind(),
        tarn_core::ErrorKind::Conflict { retryable: true }
    );
    let rows = run(&ctx, "SELECT id FROM m").await;
    assert_eq!(ids(&rows), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_created_elsewhere_are_found() {
    let a = TarnContext::open("memory://two-sessions").await.unwrap();
    let b = TarnContext::open("memory://two-sessions").await.unwrap();
    run(&a, "CREATE SCHEMA feeds").await;
    run(&a, "CREATE TABLE feeds.t (id BIGINT)").await;
    run(&a, "INSERT INTO feeds.t VALUES (5)").await;
    assert_eq!(ids(&run(&b, "SELECT id FROM feeds.t").await), vec![5]);
}
