//! tarn on Ballista: the codecs' round trip into a process-fresh runtime, a retried commit
//! task, and a scheduler with two executors over loopback, each executor with a runtime of
//! its own (no store registered by the client, as on a real cluster).

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use tarn_core::Warehouse;

use super::{
    TarnPhysicalCodec, TarnScanExec, connect, loopback_cluster, runtime_env, session_config,
};
use crate::TarnContext;
use crate::tests::run;

/// The one value a `SELECT count(*)` returns.
async fn count(ctx: &TarnContext, sql: &str) -> i64 {
    let batches = run(ctx, sql).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// The message of the error a query that must fail fails with.
async fn error(ctx: &TarnContext, sql: &str) -> String {
    let result = ctx.sql(sql).await.unwrap().collect().await;
    result.expect_err(sql).to_string()
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

async fn physical_plan(ctx: &TarnContext, sql: &str) -> Arc<dyn ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.is::<TarnScanExec>() {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(find_scan)
}

/// `plan` through tarn's codec into an executor: a runtime that has never heard of the
/// warehouse's store.
fn on_an_executor(plan: Arc<dyn ExecutionPlan>) -> (Arc<dyn ExecutionPlan>, Arc<TaskContext>) {
    let codec = TarnPhysicalCodec::default();
    let bytes = PhysicalPlanNode::try_from_physical_plan(plan, &codec).unwrap();
    let fresh = TaskContext::default().with_runtime(runtime_env().unwrap());
    let decoded = bytes.try_into_physical_plan(&fresh, &codec).unwrap();
    (decoded, Arc::new(fresh))
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
    let plan = physical_plan(&planner, sql).await;
    let scan = find_scan(&plan).expect("the plan scans through a TarnScanExec");

    let (decoded, fresh) = on_an_executor(scan.clone());
    assert!(decoded.is::<TarnScanExec>());
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

/// An executor's scan, as the scan of the session that planned it, hides from pruning the
/// bounds Parquet leaves NaN out of: a row group whose bounds rule it out still holds a NaN
/// row that `x > 5` keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_decoded_in_a_fresh_runtime_keeps_row_groups_holding_nan() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    run(&local, "CREATE TABLE f (id INT, x DOUBLE)").await;
    run(&local, "INSERT INTO f VALUES (1, 'NaN'::double), (2, 1.0)").await;
    let planner = TarnContext::new(Warehouse::open(warehouse).unwrap(), session_config())
        .await
        .unwrap();
    let plan = physical_plan(&planner, "SELECT id FROM f WHERE x > 5").await;
    let scan = find_scan(&plan).expect("the plan scans through a TarnScanExec");
    let (decoded, fresh) = on_an_executor(scan);
    let shown = datafusion::physical_plan::displayable(decoded.as_ref())
        .indent(true)
        .to_string();
    assert!(shown.contains("predicate=x@1 > 5"), "{shown}");
    let rows: usize = (collect(decoded, fresh).await.unwrap().iter())
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 2, "the row group holding the NaN row was pruned");
}

/// What sits right below each TarnScanExec in `plan`.
fn scan_inputs(plan: &Arc<dyn ExecutionPlan>, found: &mut Vec<String>) {
    if plan.is::<TarnScanExec>() {
        found.push(plan.children()[0].name().to_string());
    }
    for child in plan.children() {
        scan_inputs(child, found);
    }
}

/// The optimizer pushes sorts below nodes that keep their input's order; the scan node
/// must stay right on the Parquet scan its codec encodes, and give its input's statistics
/// whatever is below it (a scheduler whose planning panics never finishes the query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_stays_above_the_scan_node() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    awkward_table(&local).await;
    let planner = TarnContext::new(Warehouse::open(warehouse).unwrap(), session_config())
        .await
        .unwrap();
    let codec = TarnPhysicalCodec::default();
    for sql in [
        "SELECT id, label FROM t ORDER BY id",
        "SELECT id, label FROM t ORDER BY label DESC, id LIMIT 5",
        "SELECT a.id FROM t a JOIN t b ON a.id = b.id ORDER BY a.id",
    ] {
        let plan = physical_plan(&planner, sql).await;
        let mut inputs = Vec::new();
        scan_inputs(&plan, &mut inputs);
        assert!(!inputs.is_empty(), "{sql}");
        assert!(
            inputs.iter().all(|i| i == "DataSourceExec"),
            "{sql}: {inputs:?}"
        );
        PhysicalPlanNode::try_from_physical_plan(plan, &codec).unwrap();
    }

    // Statistics through the scan node with a sort below it, as the scheduler's planner
    // asks for them.
    let plan = physical_plan(&planner, "SELECT id FROM t").await;
    let scan = find_scan(&plan).unwrap();
    let sorted = Arc::new(SortExec::new(
        [PhysicalSortExpr::new_default(Arc::new(Column::new(
            "id", 0,
        )))]
        .into(),
        scan.children()[0].clone(),
    ));
    let table = &scan.downcast_ref::<TarnScanExec>().unwrap().table;
    let over_sort = super::distributed_scan(table, sorted.clone());
    let stats = |plan: &dyn ExecutionPlan| {
        StatisticsContext::default()
            .compute(plan, &StatisticsArgs::new())
            .unwrap()
    };
    assert_eq!(stats(over_sort.as_ref()), stats(sorted.as_ref()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_reads_and_writes_tarn_tables() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    awkward_table(&local).await;
    let url = loopback_cluster(2, 2).await.unwrap();
    let distributed = connect(&url, Warehouse::open(warehouse).unwrap())
        .await
        .unwrap();

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

    // Grouped MIN and MAX of floats are tarn's on the executors too: a group of +inf has
    // MIN inf (DataFusion's own answers 1.7976931348623157e308).
    let sql = "SELECT label, min(CAST(id AS DOUBLE) * CAST('1e308' AS DOUBLE)), \
               max(CAST(id AS DOUBLE) * CAST('-1e308' AS DOUBLE)) FROM t GROUP BY label";
    let expected = lines(&run(&local, sql).await);
    assert!(
        expected.iter().any(|l| l.contains("| n0    | inf ")),
        "{expected:?}"
    );
    assert!(
        !expected
            .iter()
            .any(|l| l.contains("1.7976931348623157e308")),
        "{expected:?}"
    );
    assert_eq!(lines(&run(&distributed, sql).await), expected, "{sql}");

    // So is SUM, which fails on overflow (DataFusion's own wraps around to a negative sum).
    let sql = "SELECT label, sum(CASE WHEN id > 0 THEN 9223372036854775807 END) FROM t \
               GROUP BY label";
    let err = error(&distributed, sql).await;
    assert!(err.contains("no longer fits in BIGINT"), "{err}");
    // And so are `+`, `-` and `*`, which the executors compute checked too.
    let err = error(
        &distributed,
        "SELECT label, id + 9223372036854775807 FROM t",
    )
    .await;
    assert!(err.contains("integer overflow"), "{err}");

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

    // A partitioned INSERT: each executor writes the partitions of the rows it reads.
    run(
        &local,
        "CREATE TABLE p (id BIGINT, label VARCHAR) PARTITIONED BY (bucket(4, id))",
    )
    .await;
    let inserted = run(&distributed, "INSERT INTO p SELECT id, label FROM t").await;
    assert_eq!(
        inserted[0].column(0).as_primitive::<UInt64Type>().value(0),
        1882
    );
    assert!(count(&local, "SELECT count(*) FROM \"p$files\"").await >= 4);
    let rows = "SELECT id, label FROM p WHERE id % 3 = 0";
    assert_eq!(
        lines(&run(&distributed, rows).await),
        lines(&run(&local, "SELECT id, label FROM t WHERE id % 3 = 0").await)
    );

    // What cannot run on a cluster says so.
    let err = error(&distributed, "SELECT * FROM \"t$snapshots\"").await;
    assert!(
        err.contains("not supported on a distributed session"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_task_run_again_finds_its_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    run(&local, "CREATE TABLE t (id BIGINT)").await;
    // Planned as the scheduler plans it: with a write id.
    let planner = TarnContext::new(Warehouse::open(warehouse).unwrap(), session_config())
        .await
        .unwrap();
    let plan = planner
        .sql("INSERT INTO t VALUES (1), (2), (3)")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let task = planner.session_context().task_ctx();
    let version = || async {
        let table = local.catalog().load("default", "t").await.unwrap().unwrap();
        table.table().version().get()
    };
    let before = version().await;
    // Ballista runs a task again when it lost the first attempt's result.
    for _ in 0..2 {
        let result = collect(plan.clone(), task.clone()).await.unwrap();
        assert_eq!(result[0].column(0).as_primitive::<UInt64Type>().value(0), 3);
    }
    assert_eq!(version().await, before + 1);
    assert_eq!(count(&local, "SELECT count(*) FROM t").await, 3);
}

/// The session's tarn.* settings reach what runs on the executors: an application's stamp
/// the commit task, so that a batch run twice lands once, and the overwrite mode the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_commit_carries_the_session_settings() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let local = TarnContext::open(warehouse).await.unwrap();
    run(
        &local,
        "CREATE TABLE p (id BIGINT, label VARCHAR) PARTITIONED BY (label)",
    )
    .await;
    run(&local, "INSERT INTO p VALUES (1, 'a'), (2, 'b')").await;
    let url = loopback_cluster(2, 2).await.unwrap();
    let distributed = connect(&url, Warehouse::open(warehouse).unwrap())
        .await
        .unwrap();

    run(&distributed, "SET tarn.app_id = 'loader'").await;
    run(&distributed, "SET tarn.app_sequence = 7").await;
    run(&distributed, "INSERT INTO p SELECT 3, 'c'").await;
    // Refused on the executor; Ballista carries the error in its Debug form.
    let err = error(&distributed, "INSERT INTO p SELECT 3, 'c'").await;
    assert!(
        err.contains("AlreadyCommitted") && err.contains("sequence: 7"),
        "{err}"
    );
    assert_eq!(count(&local, "SELECT count(*) FROM p").await, 3);

    run(&distributed, "RESET tarn.app_id").await;
    run(&distributed, "RESET tarn.app_sequence").await;
    run(&distributed, "SET tarn.overwrite_mode = 'dynamic'").await;
    run(&distributed, "INSERT OVERWRITE p SELECT 10, 'a'").await;
    // Partition 'a' replaced, 'b' and 'c' kept.
    let rows = lines(&run(&local, "SELECT id, label FROM p ORDER BY id").await);
    assert_eq!(
        rows,
        ["| 10 | a     |", "| 2  | b     |", "| 3  | c     |"],
        "{rows:?}"
    );
}
