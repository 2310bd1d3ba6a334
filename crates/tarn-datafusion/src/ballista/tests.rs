//! tarn on Ballista: the codecs' round trip into a process-fresh runtime, and a scheduler
//! with two executors over loopback, each executor with a runtime of its own (no store
//! registered by the client, as on a real cluster).

use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::{ConfigProducer, RuntimeProducer};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use tarn_core::Warehouse;

use super::{TarnPhysicalCodec, TarnScanExec, codec, runtime_env, session_config};
use crate::TarnContext;

async fn run(ctx: &TarnContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The one value a `SELECT count(*)` returns.
async fn count(ctx: &TarnContext, sql: &str) -> i64 {
    let batches = run(ctx, sql).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// Batches as sorted lines of text, for comparing results whatever their order.
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut rows: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

/// A table whose data needs what DataFusion's own scan encoding drops: a renamed column
/// (bound by field id) and deleted rows (a deletion vector).
async fn awkward_table(local: &TarnContext) {
    run(
        local,
        "CREATE TABLE t (id BIGINT, name VARCHAR, v DOUBLE) \
         TBLPROPERTIES ('write.delete-mode' = 'merge-on-read')",
    )
    .await;
    run(
        local,
        "INSERT INTO t SELECT value, 'n' || CAST(value % 7 AS VARCHAR), value * 0.5 \
         FROM generate_series(1, 2000)",
    )
    .await;
    run(local, "DELETE FROM t WHERE id % 10 = 0").await;
    run(local, "ALTER TABLE t RENAME COLUMN name TO label").await;
    // A column dropped and added again under its old name is a new column: NULL in the
    // old files.
    run(local, "ALTER TABLE t DROP COLUMN v").await;
    run(local, "ALTER TABLE t ADD COLUMN v DOUBLE").await;
    run(local, "INSERT INTO t VALUES (5000, 'new', 1.5)").await;
}

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.is::<TarnScanExec>() {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(find_scan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_decoded_in_a_fresh_runtime_binds_by_field_id_and_applies_deletion_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    awkward_table(&local).await;
    let sql = "SELECT id, label, v FROM t WHERE id > 1500 OR id < 25";
    let expected = lines(&run(&local, sql).await);
    assert_eq!(expected.len(), 500 - 50 + 1 + 24 - 2);

    // A session configured for a cluster plans the scan as a TarnScanExec.
    let planner = TarnContext::new(Warehouse::open(warehouse).unwrap(), session_config())
        .await
        .unwrap();
    let plan = planner
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let scan = find_scan(&plan).expect("the plan scans through a TarnScanExec");

    let codec = TarnPhysicalCodec::default();
    let bytes = PhysicalPlanNode::try_from_physical_plan(scan.clone(), &codec).unwrap();
    // An executor: a runtime that has never heard of the warehouse's store.
    let fresh = TaskContext::default().with_runtime(runtime_env().unwrap());
    let decoded = bytes.try_into_physical_plan(&fresh, &codec).unwrap();
    assert!(decoded.is::<TarnScanExec>());
    let fresh = Arc::new(fresh);
    let decoded_rows = collect(decoded, fresh).await.unwrap();
    let original_rows = collect(scan, planner.session_context().task_ctx())
        .await
        .unwrap();
    let rows = |batches: &[RecordBatch]| batches.iter().map(|b| b.num_rows()).sum::<usize>();
    // The scan (without the filter above it) reads every live row, renamed column by id.
    assert_eq!(rows(&decoded_rows), 2000 - 200 + 1);
    assert_eq!(lines(&decoded_rows), lines(&original_rows));
    assert!(
        lines(&decoded_rows)
            .iter()
            .any(|l| l.contains("| 7    | n0    |"))
    );
}

/// A scheduler and two executors over loopback; the URL a client connects to.
async fn cluster() -> String {
    let config_producer: ConfigProducer = Arc::new(session_config);
    let session_builder = Arc::new(|config: SessionConfig| {
        Ok(SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_env()?)
            .with_default_features()
            .build())
    });
    let address = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        session_builder,
        config_producer.clone(),
        codec(),
    )
    .await
    .unwrap();
    let url = format!("http://localhost:{}", address.port());
    let scheduler = loop {
        match SchedulerGrpcClient::connect(url.clone()).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    for _ in 0..2 {
        let runtime = runtime_env().unwrap();
        let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
        let state = SessionStateBuilder::new().with_default_features().build();
        ballista_executor::new_standalone_executor_from_builder(
            scheduler.clone(),
            2,
            config_producer.clone(),
            runtime_producer,
            codec(),
            (&state).into(),
        )
        .await
        .unwrap();
    }
    format!("df://localhost:{}", address.port())
}

/// A tarn context whose queries the cluster at `url` plans and runs.
async fn remote(url: &str, warehouse: &str) -> TarnContext {
    let state = SessionStateBuilder::new()
        .with_config(session_config())
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(url, state).await.unwrap();
    TarnContext::new_with_state(Warehouse::open(warehouse).unwrap(), ctx.state())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_reads_and_writes_tarn_tables() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    awkward_table(&local).await;
    let url = cluster().await;
    let distributed = remote(&url, warehouse).await;

    // The same answers as a local session: filters, a GROUP BY on a string column across
    // a shuffle, a join, after RENAME COLUMN and DROP + ADD.
    for sql in [
        "SELECT id, label, v FROM t WHERE id > 1500 OR id < 25",
        "SELECT label, count(*), sum(id), count(v) FROM t GROUP BY label",
        "SELECT a.label, count(*) FROM t a JOIN t b ON a.id = b.id + 1 GROUP BY a.label",
        "SELECT count(*) FROM t",
    ] {
        let expected = lines(&run(&local, sql).await);
        assert_eq!(lines(&run(&distributed, sql).await), expected, "{sql}");
    }

    // INSERT ... SELECT through the cluster: one snapshot, the previous version readable.
    let before = local.catalog().load("default", "t").await.unwrap().unwrap();
    let before = before.table().version().get();
    let inserted = run(
        &distributed,
        "INSERT INTO t SELECT id + 10000, label, v FROM t WHERE id <= 100",
    )
    .await;
    assert_eq!(
        inserted[0].column(0).as_primitive::<UInt64Type>().value(0),
        90
    );
    let after = local.catalog().load("default", "t").await.unwrap().unwrap();
    assert_eq!(after.table().version().get(), before + 1);
    assert_eq!(count(&local, "SELECT count(*) FROM t").await, 1891);
    let then = format!("SELECT count(*) FROM t VERSION AS OF {before}");
    assert_eq!(count(&local, &then).await, 1801);
    assert_eq!(count(&distributed, &then).await, 1801);
    assert_eq!(
        count(&distributed, "SELECT count(*) FROM t WHERE id > 10000").await,
        90
    );

    // Row-level DML is planned and run by the client session itself.
    run(
        &distributed,
        "DELETE FROM t WHERE id > 10000 AND id < 10010",
    )
    .await;
    // 10001..=10009: the copies of ids 1..=9.
    assert_eq!(count(&local, "SELECT count(*) FROM t").await, 1891 - 9);

    // What cannot run on a cluster says so.
    let err = distributed
        .sql("SELECT * FROM \"t$snapshots\"")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not supported on a distributed session"),
        "{err}"
    );
}
