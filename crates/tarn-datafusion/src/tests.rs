//! Behaviour that SQL files cannot express: plain DataFusion sessions, exact commit times,
//! the read-only rule of time-travel providers.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use datafusion::catalog::TableProvider;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::empty::EmptyExec;
use futures::StreamExt;
use tarn_core::Warehouse;

use crate::{TarnContext, register};

pub(crate) async fn run(ctx: &TarnContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn version_of(ctx: &TarnContext, table: &str) -> u64 {
    let provider = ctx.catalog().load("default", table).await.unwrap().unwrap();
    provider.table().version().get()
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
async fn time_travel_by_name_works_in_a_plain_session() {
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
    let sql = |q: &'static str| {
        let ctx = ctx.clone();
        async move { ctx.sql(q).await?.collect().await }
    };
    assert_eq!(
        ids(&sql("SELECT id FROM lake.default.t").await.unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        ids(&sql("SELECT id FROM lake.default.t@v1").await.unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        ids(&sql("SELECT id FROM lake.default.\"t@v2\"").await.unwrap()),
        vec![1, 2, 3]
    );
    // Both versions in one statement are two relations.
    let both = sql(
        "SELECT (SELECT count(*) FROM lake.default.t@v1) * 10 + (SELECT count(*) FROM lake.default.t)",
    )
    .await
    .unwrap();
    assert_eq!(ids(&both), vec![23]);
    let err = sql("SELECT id FROM lake.default.t@v7").await.unwrap_err();
    assert!(
        err.to_string().contains("version 7 does not exist"),
        "{err}"
    );
    // A time written as an expression, through the session's own time-travel planner, in
    // a dialect that parses the clause.
    let bigquery = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new()
            .set_str("datafusion.sql_parser.dialect", "BigQuery"),
    );
    register(
        &bigquery,
        Warehouse::open("memory://plain-session").unwrap(),
        "lake",
    )
    .await
    .unwrap();
    let at = "SELECT id FROM lake.default.t FOR SYSTEM_TIME AS OF now() + INTERVAL 1 DAY";
    let rows = bigquery.sql(at).await.unwrap().collect().await.unwrap();
    assert_eq!(ids(&rows), vec![1, 2, 3]);
    // The table functions are tarn's SQL; here they say what to write instead.
    let err = sql("SELECT id FROM tarn_version('lake.default.t', 1)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("t@v3"), "{err}");
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

/// A timestamp written as an expression is evaluated as the statement is planned, and reads
/// as far back as a literal: past the 50 versions of the newest version's recent log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_as_of_an_expression_reads_as_far_back_as_a_literal() {
    let tarn = TarnContext::open("memory://expression-times")
        .await
        .unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (1)").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for id in 2..=60 {
        run(&tarn, &format!("INSERT INTO t VALUES ({id})")).await;
    }
    let log = run(
        &tarn,
        "SELECT CAST(committed_at AS BIGINT) FROM \"t$snapshots\" WHERE version = 1",
    )
    .await;
    let v1 = ids(&log)[0];
    let at_v1 = format!(
        "SELECT id FROM t TIMESTAMP AS OF to_timestamp_millis({v1}) + INTERVAL '2 milliseconds' \
         - INTERVAL '2 milliseconds'"
    );
    assert_eq!(ids(&run(&tarn, &at_v1).await), vec![1]);
    let now = "SELECT id FROM t FOR SYSTEM_TIME AS OF now()";
    assert_eq!(ids(&run(&tarn, now).await), (1..=60).collect::<Vec<_>>());
    // A change feed ending before the recent log reads its end as time travel does: by
    // version, by a timestamp literal, and by a time written as an expression.
    let v1_text = chrono::DateTime::from_timestamp_millis(v1)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S%.3f");
    for (feed, expected) in [
        ("table_changes('t', 1, 3)".to_string(), vec![1, 2, 3]),
        ("table_insertions('t', 0, (3))".to_string(), vec![1, 2, 3]),
        (
            format!("table_changes('t', 1, TIMESTAMP '{v1_text}')"),
            vec![1],
        ),
        (
            format!("table_changes('t', 0, to_timestamp_millis({v1}) + INTERVAL '0 seconds')"),
            vec![1],
        ),
    ] {
        let rows = run(&tarn, &format!("SELECT id FROM {feed} ORDER BY id")).await;
        assert_eq!(ids(&rows), expected, "{feed}");
    }
    for (sql, error) in [
        (
            "SELECT id FROM table_changes('t', 1, 61)",
            "version 61 does not exist: the table's versions run from 0 to 60",
        ),
        (
            "SELECT id FROM t VERSION AS OF 99",
            "version 99 does not exist: the table's versions run from 0 to 60",
        ),
    ]
    .into_iter()
    .chain([
        (
            "SELECT id FROM t TIMESTAMP AS OF now() - INTERVAL '100 years'",
            "no version of the table exists at or before",
        ),
        (
            "SELECT id FROM t TIMESTAMP AS OF 41 + 1",
            "41 + 1 cannot be a time-travel timestamp: it is of type Int64, not a time",
        ),
        (
            "SELECT id FROM t TIMESTAMP AS OF to_timestamp(random())",
            "to_timestamp(random()) cannot be a time-travel timestamp: it is not a constant",
        ),
        (
            "SELECT id FROM t TIMESTAMP AS OF CAST(NULL AS TIMESTAMP)",
            "it is NULL",
        ),
    ]) {
        let result = match tarn.sql(sql).await {
            Ok(frame) => frame.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let message = result.expect_err(sql).to_string();
        assert!(message.contains(error), "{sql}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_travel_provider_is_read_only() {
    let tarn = TarnContext::open("memory://read-only").await.unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (1)").await;
    let current = tarn.catalog().load("default", "t").await.unwrap().unwrap();
    let old = current.at(crate::AsOf::Version(0)).unwrap();
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

/// UPDATEs and a MERGE increment the same row concurrently while a DELETE removes other
/// rows of the same file and appends add rows, in both row-level modes: every increment
/// survives (a statement whose rows were changed meanwhile conflicts and re-runs), disjoint
/// deletes of one file both land, and appends are rebased, never duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_lose_nothing() {
    concurrent_updates(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn concurrent_updates_lose_nothing_on_s3() {
    concurrent_updates(true).await
}

/// The URL of a race test's warehouse: in memory, or in the S3 bucket `TARN_TEST_S3` that
/// `scripts/with-s3.sh` makes.
fn race_url(on_s3: bool, name: &str) -> String {
    if on_s3 {
        let bucket = std::env::var("TARN_TEST_S3")
            .expect("TARN_TEST_S3 is unset: run the S3 tests through scripts/with-s3.sh");
        format!("{bucket}/{name}-{}", tarn_core::Env::default().next_id())
    } else {
        format!("memory://{name}")
    }
}

#[tokio::test]
async fn a_statement_whose_version_expires_before_its_scan_is_planned_runs_on_the_newest() {
    for mode in ["merge-on-read", "copy-on-write"] {
        let url = format!("memory://expired-before-scan-{mode}");
        let a = TarnContext::open(&url).await.unwrap();
        run(
            &a,
            &format!("CREATE TABLE e (id BIGINT, v BIGINT) WITH ('write.update-mode' = '{mode}')"),
        )
        .await;
        run(&a, "INSERT INTO e VALUES (1, 0), (2, 0)").await;
        // Planned on version 1 by a session that has not read its manifests, its scan not
        // yet.
        let a = TarnContext::open(&url).await.unwrap();
        let update = a.sql("UPDATE e SET v = v + 1 WHERE id = 1").await.unwrap();
        let b = TarnContext::open(&url).await.unwrap();
        run(&b, "INSERT INTO e VALUES (3, 0)").await;
        let expire = "CALL tarn.expire_snapshots('e', older_than => '2999-01-01 00:00:00', \
                      retain_last => 1)";
        run(&b, expire).await;
        update
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{mode}: the UPDATE runs on the newest version: {e}"));
        let rows = run(&a, "SELECT id * 10 + v FROM e").await;
        assert_eq!(ids(&rows), vec![11, 20, 30], "{mode}");
    }
}

async fn concurrent_updates(on_s3: bool) {
    for mode in ["merge-on-read", "copy-on-write"] {
        let url = race_url(on_s3, &format!("concurrent-updates-{mode}"));
        let a = TarnContext::open(&url).await.unwrap();
        run(
            &a,
            &format!(
                "CREATE TABLE c (id BIGINT, v BIGINT) WITH ('write.delete-mode' = '{mode}', \
                 'write.update-mode' = '{mode}', 'write.merge-mode' = '{mode}')"
            ),
        )
        .await;
        run(
            &a,
            "INSERT INTO c SELECT value, 0 FROM generate_series(1, 20)",
        )
        .await;
        let mut statements: Vec<Vec<String>> = vec![
            vec!["UPDATE c SET v = v + 1 WHERE id = 1".to_string(); 6],
            vec!["UPDATE c SET v = v + 1 WHERE id = 1".to_string(); 6],
            vec![
                "MERGE INTO c USING (VALUES (1)) AS s(id) ON c.id = s.id \
                 WHEN MATCHED THEN UPDATE SET v = c.v + 1"
                    .to_string();
                6
            ],
        ];
        // Rows 11..16 of the same file, one per statement.
        statements.push(
            (11..17)
                .map(|id| format!("DELETE FROM c WHERE id = {id}"))
                .collect(),
        );
        statements.push(
            (0..6)
                .map(|i| format!("INSERT INTO c VALUES ({}, 0)", 100 + i))
                .collect(),
        );
        // Maintenance racing all of it: compaction gives way to the statements, and expiry
        // removes the versions committed before the race, which no statement reads.
        statements.push(vec!["OPTIMIZE c".to_string(); 4]);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let cutoff = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        statements.push(vec![
            format!(
                "CALL tarn.expire_snapshots('c', older_than => '{cutoff}', retain_last => 1)"
            );
            3
        ]);
        let mut tasks = Vec::new();
        for list in statements {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let ctx = TarnContext::open(&url).await.unwrap();
                if list[0].starts_with("CALL") {
                    // Expiry's age guard protects statements running on the versions it
                    // removes; here, it starts with the race, and a statement whose version
                    // it removes runs again on the newest one.
                    while version_of(&ctx, "c").await < 4 {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                for sql in list {
                    run(&ctx, &sql).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let v = run(&a, "SELECT v FROM c WHERE id = 1").await;
        assert_eq!(ids(&v), vec![18], "{mode}: every increment is there");
        run(
            &a,
            &format!("CALL tarn.expire_snapshots('c', older_than => '{cutoff}', retain_last => 1)"),
        )
        .await;
        let oldest = run(
            &a,
            "SELECT CAST(min(version) AS BIGINT) FROM \"c$snapshots\"",
        )
        .await;
        assert_eq!(
            ids(&oldest),
            vec![2],
            "{mode}: the versions before the race expired"
        );
        let rows = run(&a, "SELECT id FROM c ORDER BY id").await;
        let mut expected: Vec<i64> = (1..11).chain(17..21).chain(100..106).collect();
        expected.sort();
        assert_eq!(ids(&rows), expected, "{mode}");
        // The rows deleted by vectors in any retained version: the race's OPTIMIZE may run
        // last and compact every vector away, so the newest version alone cannot tell.
        let versions = run(&a, "SELECT CAST(version AS BIGINT) FROM \"c$snapshots\"").await;
        let mut deleted = 0;
        for version in ids(&versions) {
            let sql = format!(
                "SELECT CAST(coalesce(sum(deleted_rows), 0) AS BIGINT) FROM \"c@v{version}$files\""
            );
            let rows = run(&a, &sql).await;
            deleted += rows[0].column(0).as_primitive::<Int64Type>().value(0);
        }
        match mode {
            "merge-on-read" => assert!(deleted > 0, "deletes were written as vectors"),
            _ => assert_eq!(deleted, 0, "copy-on-write leaves no vector"),
        }
        // A statement that planned again after a conflict stored nothing of its earlier
        // plan: its small files go to the store with its commit, or not at all.
        let orphans = orphans(&a, "c").await;
        assert!(
            orphans.is_empty(),
            "{mode}: objects no version references: {orphans:?}"
        );
    }
}

/// Writers appending one row at a time to a table that compacts itself after every second
/// small file, while other statements delete and update rows: the compactions race the
/// appends (rebased) and the row-level changes (the compaction is dropped or the statement
/// re-runs), and no row is lost, duplicated or brought back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_compaction_racing_writes_loses_nothing() {
    for mode in ["merge-on-read", "copy-on-write"] {
        let url = format!("memory://auto-compaction-race-{mode}");
        let a = TarnContext::open(&url).await.unwrap();
        run(
            &a,
            &format!(
                "CREATE TABLE r (id BIGINT, v BIGINT) WITH ('write.auto-compact.min-files' = '2', \
                 'write.delete-mode' = '{mode}', 'write.update-mode' = '{mode}')"
            ),
        )
        .await;
        let mut statements: Vec<Vec<String>> = (0..3)
            .map(|w| {
                (0..8)
                    .map(|i| format!("INSERT INTO r VALUES ({}, 0)", w * 100 + i))
                    .collect()
            })
            .collect();
        // Each deletes or updates a row its writer inserted long before.
        statements.push(
            (0..3)
                .map(|w| format!("DELETE FROM r WHERE id = {}", w * 100))
                .collect(),
        );
        statements.push(
            (0..3)
                .map(|w| format!("UPDATE r SET v = v + 1 WHERE id = {}", w * 100 + 1))
                .collect(),
        );
        let mut tasks = Vec::new();
        for list in statements {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let ctx = TarnContext::open(&url).await.unwrap();
                for sql in list {
                    if sql.starts_with("INSERT") {
                        run(&ctx, &sql).await;
                        continue;
                    }
                    // A row-level change waits for the row it changes.
                    let id = sql.rsplit(' ').next().unwrap().to_string();
                    loop {
                        let n = run(&ctx, &format!("SELECT count(*) FROM r WHERE id = {id}")).await;
                        if n[0].column(0).as_primitive::<Int64Type>().value(0) > 0 {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    }
                    run(&ctx, &sql).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rows = run(&a, "SELECT id FROM r ORDER BY id").await;
        let expected: Vec<i64> = (0..3)
            .flat_map(|w| (1..8).map(move |i| w * 100 + i))
            .collect();
        assert_eq!(ids(&rows), expected, "{mode}");
        let updated = run(&a, "SELECT id FROM r WHERE v = 1 ORDER BY id").await;
        assert_eq!(ids(&updated), vec![1, 101, 201], "{mode}");
        let compactions = run(
            &a,
            "SELECT CAST(count(*) AS BIGINT) FROM \"r$snapshots\" \
             WHERE summary = 'maintenance=auto-compact'",
        )
        .await;
        let compactions = compactions[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        assert!(compactions > 0, "{mode}: the appends compacted the table");
        let files = run(&a, "SELECT CAST(count(*) AS BIGINT) FROM \"r$files\"").await;
        let files = files[0].column(0).as_primitive::<Int64Type>().value(0);
        assert!(files < 21, "{mode}: {files} files for 21 rows");
    }
}

/// DELETEs of whole partitions, decided from metadata, racing appends into other partitions,
/// REPLACE WHERE of another partition and compactions of all of them: every partition
/// deleted is gone, every row appended is there once, the replaced partition holds the
/// replacement alone, and the change feed of the race deletes each deleted row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_partition_deletes_racing_writes_lose_nothing() {
    for mode in ["merge-on-read", "copy-on-write"] {
        let url = format!("memory://partition-delete-race-{mode}");
        let a = TarnContext::open(&url).await.unwrap();
        run(
            &a,
            &format!(
                "CREATE TABLE r (p BIGINT, id BIGINT) PARTITIONED BY (p) WITH \
                 ('write.delete-mode' = '{mode}', 'write.merge-mode' = '{mode}')"
            ),
        )
        .await;
        // Partitions 10..14 to delete, each in two files; 20 to replace.
        for _ in 0..2 {
            run(
                &a,
                "INSERT INTO r SELECT 10 + value % 4, 1000 + value FROM generate_series(0, 7)",
            )
            .await;
        }
        run(&a, "INSERT INTO r VALUES (20, 2000), (20, 2001)").await;
        let before = version_of(&a, "r").await;
        let mut statements: Vec<Vec<String>> = (0..3)
            .map(|w| {
                (0..6)
                    .map(|i| format!("INSERT INTO r VALUES ({w}, {})", w * 100 + i))
                    .collect()
            })
            .collect();
        statements.push(
            (10..14)
                .map(|p| format!("DELETE FROM r WHERE p = {p}"))
                .collect(),
        );
        statements.push(vec![
            "INSERT INTO r REPLACE WHERE p = 20 VALUES (20, 3000)".to_string(),
        ]);
        statements.push(vec!["OPTIMIZE r".to_string(); 3]);
        let mut tasks = Vec::new();
        for list in statements {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let ctx = TarnContext::open(&url).await.unwrap();
                for sql in list {
                    run(&ctx, &sql).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rows = run(&a, "SELECT id FROM r").await;
        let mut expected: Vec<i64> = (0..3).flat_map(|w| w * 100..w * 100 + 6).collect();
        expected.push(3000);
        expected.sort();
        assert_eq!(ids(&rows), expected, "{mode}");
        let deleted = run(
            &a,
            &format!(
                "SELECT id FROM table_changes('r', {}) WHERE _change_type = 'delete'",
                before + 1
            ),
        )
        .await;
        let mut expected: Vec<i64> = (1000..1008).chain(1000..1008).collect();
        expected.extend([2000, 2001]);
        expected.sort();
        assert_eq!(ids(&deleted), expected, "{mode}");
    }
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

/// Rows `ids` for a table whose columns are all BIGINT, in the table's own schema.
fn long_rows(table: &tarn_core::Table, ids: &[i64]) -> RecordBatch {
    let schema = tarn_core::arrow_convert::arrow_schema(table.schema());
    let columns = schema
        .fields()
        .iter()
        .map(|_| {
            Arc::new(datafusion::arrow::array::Int64Array::from(ids.to_vec()))
                as datafusion::arrow::array::ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

fn add_column(name: &str, base: &tarn_core::Table) -> tarn_core::Change {
    let fields = base
        .metadata()
        .evolve_schema(&[tarn_spec::SchemaChange::AddColumn {
            name: name.into(),
            field_type: tarn_spec::PrimitiveType::Long.into(),
            required: false,
            default: None,
            doc: None,
        }])
        .unwrap();
    tarn_core::Change::Metadata {
        updates: vec![tarn_spec::MetadataUpdate::SetSchema(fields)],
        data_dependent: false,
    }
}

/// Each pair of a schema change and a write, in both orders: the second committer works
/// from the version before the first one's commit, and the outcome follows the conflict
/// matrix of `tarn_core::transaction`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_racing_writes_follow_the_conflict_matrix() {
    let ctx = TarnContext::open("memory://schema-races").await.unwrap();
    let stale = |name: &'static str| {
        let ctx = ctx.clone();
        async move {
            ctx.catalog()
                .load("default", name)
                .await
                .unwrap()
                .unwrap()
                .table()
                .clone()
        }
    };
    let count = |name: &'static str| {
        let ctx = ctx.clone();
        async move {
            let rows = run(&ctx, &format!("SELECT count(*) FROM {name}")).await;
            rows[0].column(0).as_primitive::<Int64Type>().value(0)
        }
    };
    for name in ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"] {
        run(&ctx, &format!("CREATE TABLE {name} (id BIGINT, v BIGINT)")).await;
        run(&ctx, &format!("INSERT INTO {name} VALUES (1, 1), (2, 2)")).await;
    }

    // An append whose files were written for the old schema conflicts with the change.
    let base = stale("r1").await;
    run(&ctx, "ALTER TABLE r1 ADD COLUMN c BIGINT").await;
    let err = base
        .append_batches([long_rows(&base, &[3])])
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        tarn_core::ErrorKind::Conflict { retryable: true },
        "{err}"
    );
    assert_eq!(count("r1").await, 2);

    // A schema change rebases over an append committed meanwhile.
    let base = stale("r2").await;
    run(&ctx, "INSERT INTO r2 VALUES (3, 3)").await;
    base.commit(add_column("c", &base)).await.unwrap();
    assert_eq!(
        ids(&run(&ctx, "SELECT id FROM r2 WHERE c IS NULL").await),
        vec![1, 2, 3]
    );

    // A DELETE/UPDATE/MERGE rewrite based on the old schema conflicts (and, from SQL, the
    // statement re-runs on the new schema: see the race test below).
    let base = stale("r3").await;
    let files = base
        .plan_files(&tarn_core::Predicate::True)
        .await
        .unwrap()
        .data_files();
    run(&ctx, "ALTER TABLE r3 RENAME COLUMN v TO w").await;
    let err = base
        .commit(tarn_core::Change::Rewrite {
            removed: files,
            added: vec![],
            operation: tarn_spec::Operation::Delete,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("schema or partition spec changed"),
        "{err}"
    );
    assert_eq!(count("r3").await, 2);

    // A schema change rebases over a rewrite committed meanwhile.
    let base = stale("r4").await;
    run(&ctx, "DELETE FROM r4 WHERE id = 1").await;
    base.commit(add_column("c", &base)).await.unwrap();
    assert_eq!(ids(&run(&ctx, "SELECT id FROM r4").await), vec![2]);

    // Two schema changes from the same version: the second conflicts.
    let base = stale("r5").await;
    run(&ctx, "ALTER TABLE r5 ADD COLUMN a BIGINT").await;
    let err = base.commit(add_column("b", &base)).await.unwrap_err();
    assert!(err.to_string().contains("changed concurrently"), "{err}");

    // SET NOT NULL was checked against the data of its base: a concurrent append (which
    // may hold NULLs) makes it conflict.
    let base = stale("r6").await;
    run(&ctx, "INSERT INTO r6 VALUES (3, NULL)").await;
    let fields = base
        .metadata()
        .evolve_schema(&[tarn_spec::SchemaChange::SetRequired {
            name: "v".into(),
            required: true,
        }])
        .unwrap();
    let err = base
        .commit(tarn_core::Change::Metadata {
            updates: vec![tarn_spec::MetadataUpdate::SetSchema(fields)],
            data_dependent: true,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checked against changed"), "{err}");
    run(&ctx, "INSERT INTO r6 VALUES (4, NULL)").await;

    // A rename first seals the old table with a last commit; a writer that loses the race
    // to that commit stops instead of committing to the old name.
    let base = stale("r7").await;
    base.commit(tarn_core::Change::Metadata {
        updates: vec![tarn_spec::MetadataUpdate::SetProperties(
            [(
                tarn_core::RENAMED_TO_PROPERTY.to_string(),
                "default.r7b".to_string(),
            )]
            .into(),
        )],
        data_dependent: false,
    })
    .await
    .unwrap();
    let err = base
        .append_batches([long_rows(&base, &[3])])
        .await
        .unwrap_err();
    assert!(
        matches!(err, tarn_core::Error::TableRenamed { ref to } if to == "default.r7b"),
        "{err}"
    );
    // After a complete rename, a writer of the old name commits nothing anywhere, even
    // when everything it needs to build its commit is still cached.
    let base = stale("r8").await;
    run(&ctx, "ALTER TABLE r8 RENAME TO r8b").await;
    let err = base
        .append_batches([long_rows(&base, &[3])])
        .await
        .unwrap_err();
    assert!(matches!(err, tarn_core::Error::TableGone { .. }), "{err}");
    assert_eq!(count("r8b").await, 2);
    let old = ctx
        .warehouse()
        .load_table("default", "r8")
        .await
        .unwrap_err();
    assert!(
        matches!(old, tarn_core::Error::TableNotFound { .. }),
        "{old}"
    );
}

/// ALTER TABLE ADD COLUMN, UPDATE and INSERT from three sessions at once: the ALTERs and
/// UPDATEs all land (an UPDATE that loses to a schema change re-runs on the new schema),
/// an INSERT either lands once or fails with a retryable conflict, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_schema_changes_and_writes_lose_nothing() {
    schema_changes_and_writes(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs an S3 server: scripts/with-s3.sh cargo test -- --include-ignored"]
async fn concurrent_schema_changes_and_writes_lose_nothing_on_s3() {
    schema_changes_and_writes(true).await
}

async fn schema_changes_and_writes(on_s3: bool) {
    let url = race_url(on_s3, "schema-write-race");
    let a = TarnContext::open(&url).await.unwrap();
    run(&a, "CREATE TABLE s (id BIGINT, v BIGINT)").await;
    run(&a, "INSERT INTO s VALUES (1, 0)").await;
    let alters = tokio::spawn({
        let url = url.clone();
        async move {
            let ctx = TarnContext::open(&url).await.unwrap();
            for i in 0..6 {
                run(&ctx, &format!("ALTER TABLE s ADD COLUMN c{i} BIGINT")).await;
            }
        }
    });
    let updates = tokio::spawn({
        let url = url.clone();
        async move {
            let ctx = TarnContext::open(&url).await.unwrap();
            for _ in 0..6 {
                run(&ctx, "UPDATE s SET v = v + 1 WHERE id = 1").await;
            }
        }
    });
    let inserts = tokio::spawn({
        let url = url.clone();
        async move {
            let ctx = TarnContext::open(&url).await.unwrap();
            let mut landed = Vec::new();
            for i in 0..6 {
                let id = 100 + i;
                let result = match ctx
                    .sql(&format!("INSERT INTO s (id, v) VALUES ({id}, 0)"))
                    .await
                {
                    Ok(df) => df.collect().await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(_) => landed.push(id),
                    Err(e) => assert!(
                        crate::error::tarn_error(&e).is_some_and(
                            |t| t.kind() == tarn_core::ErrorKind::Conflict { retryable: true }
                        ),
                        "an INSERT failed with something else than a conflict: {e}"
                    ),
                }
            }
            landed
        }
    });
    alters.await.unwrap();
    updates.await.unwrap();
    let landed = inserts.await.unwrap();
    assert_eq!(ids(&run(&a, "SELECT v FROM s WHERE id = 1").await), vec![6]);
    let mut expected = vec![1];
    expected.extend(landed);
    assert_eq!(ids(&run(&a, "SELECT id FROM s").await), expected);
    let columns = run(&a, "SELECT c0, c1, c2, c3, c4, c5 FROM s").await;
    assert_eq!(columns[0].num_columns(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_partition_values_round_trip_in_memory() {
    // The same escaping as on local disk (sql-tests/partition_values.slt), on an in-memory
    // store, which keeps object names exactly as given.
    let tarn = TarnContext::open("memory://awkward-partitions")
        .await
        .unwrap();
    run(
        &tarn,
        "CREATE TABLE p (id BIGINT, v VARCHAR, ts TIMESTAMP) PARTITIONED BY (v, hour(ts))",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO p VALUES (1, 'us east', TIMESTAMP '2026-11-25 10:30:00'), (2, 'a/b%20=:', NULL), \
         (3, 'ü', TIMESTAMP '1969-12-31 23:00:00'), (4, '', NULL), (5, NULL, NULL), (6, 'null', NULL)",
    )
    .await;
    assert_eq!(
        ids(&run(&tarn, "SELECT id FROM p").await),
        vec![1, 2, 3, 4, 5, 6]
    );
    for (filter, expected) in [
        ("v = 'us east'", vec![1]),
        ("v = 'a/b%20=:'", vec![2]),
        ("v = 'ü'", vec![3]),
        ("v = ''", vec![4]),
        ("v IS NULL", vec![5]),
        ("v = 'null'", vec![6]),
    ] {
        let sql = format!("SELECT id FROM p WHERE {filter}");
        assert_eq!(ids(&run(&tarn, &sql).await), expected, "{sql}");
    }
    run(&tarn, "DELETE FROM p WHERE v = 'a/b%20=:' OR v = 'ü'").await;
    run(&tarn, "UPDATE p SET id = id * 10 WHERE v = 'us east'").await;
    assert_eq!(
        ids(&run(&tarn, "SELECT id FROM p").await),
        vec![4, 5, 6, 10]
    );
}

/// 16 statements at once on one context, each reading another version of one table and
/// joining it with a second version: every statement sees exactly its own versions.
async fn readers_see_their_own_versions() {
    let name = format!(
        "memory://versions-{:?}",
        tokio::runtime::Handle::current().runtime_flavor()
    );
    let tarn = TarnContext::open(&name).await.unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    for v in 1..=16 {
        run(&tarn, &format!("INSERT INTO t VALUES ({v})")).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for v in 1..=16i64 {
        let tarn = tarn.clone();
        tasks.spawn(async move {
            let half = (v / 2).max(1);
            let sql = format!(
                "SELECT (SELECT count(*) FROM t VERSION AS OF {v}) * 1000000 \
                 + (SELECT sum(id) FROM t VERSION AS OF {v}) * 1000 \
                 + (SELECT count(*) FROM t VERSION AS OF {v} AS a JOIN t VERSION AS OF {half} AS b ON a.id = b.id)"
            );
            let got = ids(&run(&tarn, &sql).await);
            let expected = v * 1_000_000 + v * (v + 1) / 2 * 1000 + half;
            assert_eq!(got, vec![expected], "version {v}");
            // The same through a versioned name in the session itself.
            let batches = tarn
                .session_context()
                .sql(&format!("SELECT sum(id) FROM t@v{v}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert_eq!(ids(&batches), vec![v * (v + 1) / 2], "t@v{v}");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_time_travel_on_a_current_thread_runtime() {
    readers_see_their_own_versions().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_time_travel_on_a_multi_thread_runtime() {
    readers_see_their_own_versions().await;
}

/// A store that holds every version-file create (the commit point) until it is given a
/// permit, and says when one arrives: the moment a statement is about to commit.
#[derive(Debug)]
struct GatedStore {
    inner: Arc<dyn datafusion::object_store::ObjectStore>,
    reached: Arc<tokio::sync::Notify>,
    /// One permit per create let through; none at first.
    open: Arc<tokio::sync::Semaphore>,
}

impl GatedStore {
    fn new() -> Self {
        GatedStore {
            inner: Arc::new(datafusion::object_store::memory::InMemory::new()),
            reached: Arc::default(),
            open: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

impl std::fmt::Display for GatedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatedStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl datafusion::object_store::ObjectStore for GatedStore {
    async fn put_opts(
        &self,
        location: &datafusion::object_store::path::Path,
        payload: datafusion::object_store::PutPayload,
        opts: datafusion::object_store::PutOptions,
    ) -> datafusion::object_store::Result<datafusion::object_store::PutResult> {
        let version_file = matches!(opts.mode, datafusion::object_store::PutMode::Create)
            && location.as_ref().ends_with(".json");
        if version_file {
            self.reached.notify_one();
            self.open.acquire().await.expect("never closed").forget();
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &datafusion::object_store::path::Path,
        opts: datafusion::object_store::PutMultipartOptions,
    ) -> datafusion::object_store::Result<Box<dyn datafusion::object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &datafusion::object_store::path::Path,
        options: datafusion::object_store::GetOptions,
    ) -> datafusion::object_store::Result<datafusion::object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            datafusion::object_store::Result<datafusion::object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<
        'static,
        datafusion::object_store::Result<datafusion::object_store::path::Path>,
    > {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&datafusion::object_store::path::Path>,
    ) -> futures::stream::BoxStream<
        'static,
        datafusion::object_store::Result<datafusion::object_store::ObjectMeta>,
    > {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&datafusion::object_store::path::Path>,
    ) -> datafusion::object_store::Result<datafusion::object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &datafusion::object_store::path::Path,
        to: &datafusion::object_store::path::Path,
        options: datafusion::object_store::CopyOptions,
    ) -> datafusion::object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A statement whose stream is dropped before it ends commits nothing, however late: even
/// while its version file is on its way to the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_dropped_halfway_commits_nothing() {
    let store = Arc::new(GatedStore::new());
    let reached = store.reached.clone();
    let setup = TarnContext::new(
        Warehouse::from_store(store.inner.clone(), Default::default(), "memory://gated"),
        datafusion::prelude::SessionConfig::new(),
    )
    .await
    .unwrap();
    run(&setup, "CREATE TABLE t (id BIGINT)").await;
    run(
        &setup,
        "INSERT INTO t SELECT value FROM generate_series(1, 1000)",
    )
    .await;
    let tarn = TarnContext::new(
        Warehouse::from_store(store, Default::default(), "memory://gated"),
        datafusion::prelude::SessionConfig::new(),
    )
    .await
    .unwrap();
    for sql in [
        "UPDATE t SET id = id + 1",
        "INSERT INTO t SELECT value FROM generate_series(1, 3000)",
        "DELETE FROM t WHERE id % 2 = 0",
        "MERGE INTO t USING (SELECT value AS id FROM generate_series(1, 10) AS g) AS s \
         ON t.id = s.id WHEN MATCHED THEN DELETE",
    ] {
        let df = tarn.sql(sql).await.unwrap();
        let mut stream = df.execute_stream().await.unwrap();
        tokio::select! {
            done = stream.next() => panic!("{sql} finished past the gate: {done:?}"),
            _ = reached.notified() => {}
        }
        // About to commit: dropped now, it must commit nothing.
        drop(stream);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let t = setup.catalog().load("default", "t").await.unwrap().unwrap();
    assert_eq!(t.table().version(), tarn_spec::Version(1));
    assert_eq!(
        ids(&run(&setup, "SELECT count(*) FROM t").await),
        vec![1000]
    );
}

/// A statement that loses its commit to a concurrent one and runs again deletes the files
/// its first run stored (large files are stored as writers close them, before the commit):
/// an UPDATE held at its commit while another UPDATE of the same rows lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_run_again_after_a_conflict_leaves_no_file_behind() {
    let store = Arc::new(GatedStore::new());
    let open = |store: Arc<dyn datafusion::object_store::ObjectStore>| async move {
        TarnContext::new(
            Warehouse::from_store(store, Default::default(), "memory://held"),
            datafusion::prelude::SessionConfig::new(),
        )
        .await
        .unwrap()
    };
    let other = open(store.inner.clone()).await;
    // Files close at 64 KB; past the first 4 MiB a writer keeps for the commit to store,
    // each is stored as it closes.
    run(
        &other,
        "CREATE TABLE t (id BIGINT, v BIGINT) \
         WITH ('write.target-file-size-bytes' = '65536')",
    )
    .await;
    run(
        &other,
        "INSERT INTO t SELECT value, 0 FROM generate_series(1, 1000000)",
    )
    .await;
    let held = open(store.clone()).await;
    let update = tokio::spawn(async move {
        let df = held.sql("UPDATE t SET v = v + 1").await?;
        df.collect().await
    });
    store.reached.notified().await;
    run(&other, "UPDATE t SET v = v + 10").await;
    store.open.add_permits(1_000);
    update.await.unwrap().unwrap();

    let sums = run(&other, "SELECT CAST(sum(v) AS BIGINT) FROM t").await;
    assert_eq!(
        ids(&sums),
        vec![11 * 1_000_000],
        "both updates applied once"
    );
    let orphans = orphans(&other, "t").await;
    assert!(
        orphans.is_empty(),
        "objects no version references: {orphans:?}"
    );
}

/// A write that fails, or is cancelled (its future dropped, as Ctrl-C in the shell does),
/// after its writers stored files leaves none of them: the failed statement deletes them
/// before it reports, the cancelled one before the session's next statement runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_cancelled_write_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = TarnContext::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    run(
        &ctx,
        "CREATE TABLE t (id BIGINT NOT NULL, v BIGINT) \
         WITH ('write.target-file-size-bytes' = '65536')",
    )
    .await;
    run(&ctx, "INSERT INTO t VALUES (0, 0)").await;

    // The last row breaks NOT NULL, after about 16 MB of rows were written.
    let failing = "INSERT INTO t SELECT CASE WHEN value = 1000000 THEN NULL ELSE value END, value \
                   FROM generate_series(1, 1000000)";
    let err = match ctx.sql(failing).await {
        Ok(df) => df.collect().await.unwrap_err(),
        Err(e) => e,
    };
    assert!(err.to_string().contains("NULL"), "{err}");
    assert_eq!(
        orphans(&ctx, "t").await,
        Vec::<String>::new(),
        "after the failure"
    );

    let big = "INSERT INTO t SELECT value, value * 2 FROM generate_series(1, 50000000)";
    let insert = async {
        let df = ctx.sql(big).await?;
        df.collect().await
    };
    let cancelled = tokio::time::timeout(std::time::Duration::from_secs(3), insert).await;
    assert!(
        cancelled.is_err(),
        "the statement ended before it was cancelled: {cancelled:?}"
    );
    assert_eq!(
        orphans(&ctx, "t").await,
        Vec::<String>::new(),
        "after the cancel"
    );
    assert_eq!(ids(&run(&ctx, "SELECT count(*) FROM t").await), vec![1]);
}

/// One table whose newest version file is damaged: the warehouse still lists every table,
/// the error names that table's file, and its older versions stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_newest_version_stays_local() {
    let dir = tempfile::tempdir().unwrap();
    let tarn = TarnContext::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    run(&tarn, "CREATE TABLE a (id BIGINT)").await;
    run(&tarn, "CREATE TABLE b (id BIGINT)").await;
    run(&tarn, "INSERT INTO b VALUES (1)").await;
    run(&tarn, "INSERT INTO b VALUES (2)").await;
    std::fs::write(
        dir.path()
            .join("default/b/metadata/00000000000000000002.json"),
        b"{ damaged",
    )
    .unwrap();
    let fresh = TarnContext::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let listed = run(
        &fresh,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'default' ORDER BY 1",
    )
    .await;
    let names = datafusion::arrow::util::pretty::pretty_format_batches(&listed)
        .unwrap()
        .to_string();
    assert!(names.contains("| a ") && names.contains("| b "), "{names}");
    let err = fresh.sql("SELECT * FROM b").await.unwrap_err().to_string();
    assert!(
        err.contains("default/b/metadata/00000000000000000002.json"),
        "the error names the damaged file: {err}"
    );
    assert_eq!(
        ids(&run(&fresh, "SELECT id FROM b VERSION AS OF 1").await),
        vec![1]
    );
    assert_eq!(ids(&run(&fresh, "SELECT id FROM \"b@v1\"").await), vec![1]);
    let log = run(
        &fresh,
        "SELECT CAST(version AS BIGINT) FROM \"b$snapshots\"",
    )
    .await;
    assert_eq!(ids(&log), vec![0, 1], "the log as far as it can be read");
    assert_eq!(ids(&run(&fresh, "SELECT count(*) FROM a").await), vec![0]);
}

/// A data file cut short outside tarn fails the query with an error naming it, whether it is
/// read whole (no larger than the footer read) or by ranges; it does not panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_cut_short_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let tarn = TarnContext::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (1), (2)").await;
    let data = dir.path().join("default/t/data");
    let file = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    for hint in [None, Some(64)] {
        let fresh = TarnContext::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        if let Some(hint) = hint {
            run(
                &fresh,
                &format!("SET datafusion.execution.parquet.metadata_size_hint = {hint}"),
            )
            .await;
        }
        let result = match fresh.sql("SELECT sum(id) FROM t").await {
            Ok(frame) => frame.collect().await.map(drop),
            Err(e) => Err(e),
        };
        let err = result
            .expect_err("a short file fails the query")
            .to_string();
        assert!(
            err.contains(&name),
            "hint {hint:?}: the error names the file: {err}"
        );
    }
}

/// A partitioned load under a memory pool far smaller than its data: the writers close row
/// groups and files early instead of failing, and every row lands in its partition. Under a
/// bounded pool the rows are not hashed across writers: DataFusion 55.2's RepartitionExec
/// can deadlock when it spills (apache/datafusion#24883), and this load hung on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_loads_run_under_a_small_memory_pool() {
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(4 << 20, 1.0)
        .build_arc()
        .unwrap();
    let tarn = TarnContext::new_with_runtime(
        Warehouse::open("memory://small-pool").unwrap(),
        datafusion::prelude::SessionConfig::new(),
        runtime,
    )
    .await
    .unwrap();
    run(
        &tarn,
        "CREATE TABLE t PARTITIONED BY (bucket(32, id)) AS \
         SELECT value AS id, repeat('x', 40) || CAST(value AS VARCHAR) AS payload \
         FROM generate_series(1, 300000)",
    )
    .await;
    let plan = run(&tarn, "EXPLAIN INSERT INTO t SELECT * FROM t").await;
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("TarnWriteExec"), "{plan}");
    assert!(
        !plan.contains("RepartitionExec: partitioning=Hash"),
        "{plan}"
    );
    let batches = run(
        &tarn,
        "SELECT CAST(count(*) AS BIGINT), CAST(sum(id) AS BIGINT), \
                CAST(sum(id * id) AS BIGINT), CAST(min(length(payload)) AS BIGINT) FROM t",
    )
    .await;
    let row = first_row(&batches);
    let n: i64 = 300_000;
    assert_eq!(
        row,
        vec![n, n * (n + 1) / 2, n * (n + 1) * (2 * n + 1) / 6, 41]
    );
    let files = run(
        &tarn,
        "SELECT CAST(count(*) AS BIGINT), CAST(count(DISTINCT partition) AS BIGINT) FROM \"t$files\"",
    )
    .await;
    let files = first_row(&files);
    assert_eq!(files[1], 32, "one partition per bucket");
    assert!(files[0] > 32, "the pool closed no file early: {files:?}");
}

/// With `write.fanout.enabled` = 'false', each writer first sorts its rows on the partition
/// key, spilling them to disk when they outgrow the memory pool, and then writes one
/// partition after another with one file open: a partition gets a file from each writer,
/// where a file open per partition would hold a row group and an upload buffer in every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_fanout_sort_on_the_partition_key() {
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(crate::memory_pool(96 << 20))
        .build_arc()
        .unwrap();
    let tarn = TarnContext::new_with_runtime(
        Warehouse::open("memory://sorted-writes").unwrap(),
        datafusion::prelude::SessionConfig::new().with_target_partitions(2),
        runtime,
    )
    .await
    .unwrap();
    let pretty = |batches: Vec<RecordBatch>| {
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    };
    run(
        &tarn,
        "CREATE TABLE t (id BIGINT, payload VARCHAR) PARTITIONED BY (bucket(64, id)) \
         WITH ('write.fanout.enabled' = 'false')",
    )
    .await;
    // About 100 MB of rows: more than the pool holds.
    let insert = "INSERT INTO t SELECT value, repeat('x', 80) || CAST(value AS VARCHAR) \
                  FROM generate_series(1, 1000000)";
    let plan = pretty(run(&tarn, &format!("EXPLAIN ANALYZE {insert}")).await);
    assert!(plan.contains("SortExec: expr=[bucket[64](id@0)"), "{plan}");
    let spills = plan
        .split("spill_count=")
        .skip(1)
        .filter_map(|rest| rest.split([',', ' ', ']']).next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(spills > 0, "the sort did not spill: {plan}");
    let [files, partitions, rows] = file_counts(&tarn, "t").await;
    assert_eq!((partitions, rows), (64, 1_000_000));
    assert!(
        files <= 2 * 64,
        "{files} files: more than one per writer and partition"
    );
    let sums = run(
        &tarn,
        "SELECT CAST(sum(id) AS BIGINT), CAST(count(DISTINCT payload) AS BIGINT) FROM t",
    )
    .await;
    let sums = first_row(&sums);
    assert_eq!(sums, [500_000_500_000, 1_000_000]);

    // Compaction sorts the same way: one writer under a bounded pool, one file per partition.
    run(&tarn, "OPTIMIZE t").await;
    assert_eq!(file_counts(&tarn, "t").await, [64, 64, 1_000_000]);

    // With fanout (the default), there is no sort.
    run(
        &tarn,
        "CREATE TABLE u (id BIGINT) PARTITIONED BY (bucket(64, id))",
    )
    .await;
    let plan = pretty(run(&tarn, "EXPLAIN INSERT INTO u SELECT id FROM t").await);
    assert!(
        plan.contains("TarnWriteExec") && !plan.contains("SortExec"),
        "{plan}"
    );
}

/// The data files of `table`, the partitions they are in, and the rows they hold.
async fn file_counts(tarn: &TarnContext, table: &str) -> [i64; 3] {
    let counts = run(
        tarn,
        &format!(
            "SELECT CAST(count(*) AS BIGINT), CAST(count(DISTINCT partition) AS BIGINT), \
                    CAST(sum(record_count) AS BIGINT) FROM \"{table}$files\""
        ),
    )
    .await;
    first_row(&counts).try_into().expect("three columns")
}

/// The BIGINT columns of the first row of a result.
fn first_row(batches: &[RecordBatch]) -> Vec<i64> {
    batches[0]
        .columns()
        .iter()
        .map(|column| column.as_primitive::<Int64Type>().value(0))
        .collect()
}

/// Rows are hashed on the partition key across the writers: however many writers a
/// statement has, each partition gets one file (not one per writer), unless the table's
/// `write.distribution-mode` is `none`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partition_is_written_by_one_writer() {
    let tarn = with_partitions("memory://one-writer-per-partition", 4).await;
    run(
        &tarn,
        "CREATE TABLE t (id BIGINT, ts TIMESTAMP) PARTITIONED BY (day(ts), bucket(8, id))",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO t SELECT value, to_timestamp(1700000000 + value * 60) \
         FROM generate_series(1, 20000)",
    )
    .await;
    let files = file_counts(&tarn, "t").await;
    assert_eq!(
        files[0], files[1],
        "files {} for {} partitions",
        files[0], files[1]
    );
    assert!(files[1] >= 8 * 14, "{files:?}");
    assert_eq!(files[2], 20_000);

    // With `write.distribution-mode` = 'none', each writer writes the rows it reads: no
    // hashing, and a partition gets a file from each writer its rows reached.
    run(
        &tarn,
        "CREATE TABLE u (id BIGINT, ts TIMESTAMP) PARTITIONED BY (day(ts), bucket(8, id)) \
         WITH ('write.distribution-mode' = 'none')",
    )
    .await;
    let insert = "INSERT INTO u SELECT value, to_timestamp(1700000000 + value * 60) \
                  FROM generate_series(1, 20000)";
    let plan = run(&tarn, &format!("EXPLAIN {insert}")).await;
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("TarnWriteExec"), "{plan}");
    assert!(!plan.contains("partitioning=Hash"), "{plan}");
    run(&tarn, insert).await;
    let counts = file_counts(&tarn, "u").await;
    assert_eq!(counts[1], files[1], "the same partitions: {counts:?}");
    assert!(counts[0] > counts[1], "a file per writer: {counts:?}");
    assert_eq!(counts[2], 20_000);
    let same = run(
        &tarn,
        "SELECT CAST(count(*) AS BIGINT) FROM (SELECT * FROM t EXCEPT ALL SELECT * FROM u)",
    )
    .await;
    assert_eq!(same[0].column(0).as_primitive::<Int64Type>().value(0), 0);
}

/// A CREATE TABLE AS cancelled while it writes (its future dropped, as Ctrl-C in the shell
/// does) leaves no table behind: the session's next statement finds none, and the same
/// statement then runs to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_create_table_as_leaves_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = TarnContext::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let big = "CREATE TABLE big AS SELECT value AS id, value * 2 AS v \
               FROM generate_series(1, 50000000)";
    let ctas = async {
        let df = ctx.sql(big).await?;
        df.collect().await
    };
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(500), ctas).await;
    assert!(
        cancelled.is_err(),
        "the statement ended before it was cancelled"
    );
    let Err(err) = ctx.sql("SELECT count(*) FROM big").await else {
        panic!("the cancelled statement's table is still there");
    };
    assert!(err.to_string().contains("does not exist"), "{err}");
    let gone = ctx
        .warehouse()
        .load_table("default", "big")
        .await
        .unwrap_err();
    assert_eq!(gone.kind(), tarn_core::ErrorKind::NotFound, "{gone}");
    run(
        &ctx,
        "CREATE TABLE big AS SELECT value AS id FROM generate_series(1, 10)",
    )
    .await;
    assert_eq!(ids(&run(&ctx, "SELECT count(*) FROM big").await), vec![10]);
}

/// A job commits batch 5 and dies before it hears so; a new process runs batch 5 again.
/// The retry is refused before it writes a data file, the rows are there once, and the
/// table tells the new process to go on with batch 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamped_batch_run_again_after_a_crash_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let batch = "INSERT INTO events SELECT value, 'batch' FROM generate_series(1, 5000)";
    let first = TarnContext::open(&url).await.unwrap();
    run(&first, "CREATE TABLE events (id BIGINT, src VARCHAR)").await;
    run(&first, "SET tarn.app_id = 'ingest'").await;
    run(&first, "SET tarn.app_sequence = 5").await;
    run(&first, batch).await;
    drop(first);

    let data_files = || {
        std::fs::read_dir(dir.path().join("default/events/data"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let files = data_files();
    let again = TarnContext::open(&url).await.unwrap();
    run(&again, "SET tarn.app_id = 'ingest'").await;
    run(&again, "SET tarn.app_sequence = 5").await;
    let err = match again.sql(batch).await {
        Ok(df) => df.collect().await.unwrap_err(),
        Err(e) => e,
    };
    let refused = crate::error::tarn_error(&err).expect("a tarn error");
    assert!(
        matches!(refused, tarn_core::Error::AlreadyCommitted { last: 5, .. }),
        "{err}"
    );
    assert_eq!(
        data_files(),
        files,
        "the refused statement wrote no data file"
    );
    assert_eq!(
        ids(&run(&again, "SELECT count(*) FROM events").await),
        vec![5000]
    );
    let table = again
        .catalog()
        .load("default", "events")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(table.table().app_sequence("ingest"), Some(5));
    run(&again, "SET tarn.app_sequence = 6").await;
    run(&again, batch).await;
    assert_eq!(
        ids(&run(&again, "SELECT count(*) FROM events").await),
        vec![10000]
    );
}

/// A follower sees each version's changes as it lands, one item per version (a version that
/// changes no row comes with no rows), and stops with an error when the table is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_follower_yields_each_version_as_it_lands() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let reader = TarnContext::open(&url).await.unwrap();
    run(&reader, "CREATE TABLE events (id BIGINT, v VARCHAR)").await;
    run(&reader, "INSERT INTO events VALUES (1, 'a'), (2, 'b')").await;
    let poll = tarn_core::FollowPoll {
        min: std::time::Duration::from_millis(10),
        max: std::time::Duration::from_millis(50),
    };
    // Following from version 0: version 1 is already there.
    let mut feed = Box::pin(
        reader
            .follow_changes("events", tarn_spec::Version(0), poll)
            .await
            .unwrap(),
    );
    let first = feed.next().await.unwrap().unwrap();
    assert_eq!(first.version, tarn_spec::Version(1));
    let rows = |c: &crate::VersionChanges| -> Vec<(i64, String)> {
        let mut out = Vec::new();
        for b in &c.batches {
            let id = b.column(0).as_primitive::<Int64Type>();
            let kind = b.column(2).as_string::<i32>();
            out.extend((0..b.num_rows()).map(|i| (id.value(i), kind.value(i).to_string())));
        }
        out.sort();
        out
    };
    assert_eq!(
        rows(&first),
        vec![(1, "insert".to_string()), (2, "insert".to_string())]
    );

    // Each change, then what the follower makes of it (within a deadline: it polls).
    let writer = TarnContext::open(&url).await.unwrap();
    let deadline = std::time::Duration::from_secs(30);
    run(&writer, "UPDATE events SET v = 'bb' WHERE id = 2").await;
    let update = tokio::time::timeout(deadline, feed.next()).await.unwrap();
    let update = update.unwrap().unwrap();
    run(&writer, "ALTER TABLE events ADD COLUMN w INT").await;
    let alter = tokio::time::timeout(deadline, feed.next()).await.unwrap();
    let alter = alter.unwrap().unwrap();
    run(&writer, "DROP TABLE events").await;
    let dropped = tokio::time::timeout(deadline, feed.next()).await.unwrap();
    let dropped = dropped.unwrap();
    assert_eq!(update.version, tarn_spec::Version(2));
    assert_eq!(
        rows(&update),
        vec![
            (2, "update_postimage".to_string()),
            (2, "update_preimage".to_string())
        ]
    );
    assert_eq!(alter.version, tarn_spec::Version(3));
    assert!(alter.batches.iter().all(|b| b.num_rows() == 0));
    // Seen as sealed, or as already gone.
    let err = dropped.unwrap_err().to_string();
    assert!(
        err.contains("was dropped") || err.contains("does not exist"),
        "{err}"
    );
}

/// Data files with nested columns are plain Parquet: DataFusion's own Parquet reading (no
/// tarn in between) returns exactly what tarn does, and every nested field (struct fields,
/// list elements, map keys and values) carries its field id in the Parquet schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_data_files_read_back_as_plain_parquet() {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().unwrap();
    let tarn = TarnContext::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    run(
        &tarn,
        "CREATE TABLE f (id BIGINT, s STRUCT<a INT, b STRUCT<c VARCHAR>>, tags INT[], \
         emb REAL[3], m MAP<VARCHAR, BIGINT>)",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO f VALUES \
         (1, named_struct('a', 1, 'b', named_struct('c', 'x')), make_array(1, 2), \
             make_array(0.5, 0.25, 1.0), map(['k'], [10])), \
         (2, NULL, make_array(), NULL, map(['j', 'k'], [1, NULL]))",
    )
    .await;
    let query = "SELECT id, s, s.b.c AS c, tags, emb, m FROM f ORDER BY id";
    let through_tarn = pretty_format_batches(&run(&tarn, query).await)
        .unwrap()
        .to_string();

    let data = dir.path().join("default/f/data");
    let plain = SessionContext::new();
    plain
        .register_parquet(
            "f",
            data.to_str().unwrap(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    let batches = plain.sql(query).await.unwrap().collect().await.unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        through_tarn
    );

    let file = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema_ptr();
    fn ids(t: &datafusion::parquet::schema::types::Type, out: &mut Vec<(String, i32)>) {
        for f in t.get_fields() {
            let info = f.get_basic_info();
            // The groups Parquet adds for lists and maps (`list`, `key_value`) have none.
            if info.has_id() {
                out.push((info.name().to_string(), info.id()));
            }
            if f.is_group() {
                ids(f, out);
            }
        }
    }
    let mut found = Vec::new();
    ids(&root, &mut found);
    found.sort_by_key(|(_, id)| *id);
    let ids_only: Vec<i32> = found.iter().map(|(_, id)| *id).collect();
    // 5 columns, then s.a, s.b, s.b.c, the list element, the fixed-size list element,
    // the map key and value.
    assert_eq!(ids_only, (1..=12).collect::<Vec<_>>(), "{found:?}");
}

/// A query's result and a metric of its Parquet scans, summed.
async fn scan_metric(
    ctx: &TarnContext,
    sql: &str,
    metric: fn(&datafusion::physical_plan::metrics::MetricsSet) -> usize,
) -> (Vec<RecordBatch>, usize) {
    use datafusion::physical_plan::{ExecutionPlan, collect};
    let frame = ctx.sql(sql).await.unwrap();
    let task = Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await.unwrap();
    let batches = collect(plan.clone(), task).await.unwrap();
    fn scanned(
        plan: &Arc<dyn ExecutionPlan>,
        metric: fn(&datafusion::physical_plan::metrics::MetricsSet) -> usize,
    ) -> usize {
        let own = match plan.metrics() {
            Some(m) if plan.name() == "DataSourceExec" => metric(&m),
            _ => 0,
        };
        own + plan
            .children()
            .into_iter()
            .map(|c| scanned(c, metric))
            .sum::<usize>()
    }
    let value = scanned(&plan, metric);
    (batches, value)
}

/// Rows a query's Parquet scans produced: what was read after pruning row groups.
async fn rows_scanned(ctx: &TarnContext, sql: &str) -> (Vec<RecordBatch>, usize) {
    scan_metric(ctx, sql, |m| m.output_rows().unwrap_or(0)).await
}

/// Bytes a query's Parquet scans read from data files.
async fn bytes_scanned(ctx: &TarnContext, sql: &str) -> usize {
    scan_metric(ctx, sql, |m| {
        m.sum_by_name("bytes_scanned").map_or(0, |v| v.as_usize())
    })
    .await
    .1
}

/// Reading a field of a struct reads that field's column chunks only, and still after
/// the field is renamed (the read is translated to the file's name by field id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_struct_field_is_read_alone() {
    let tarn = TarnContext::open("memory://leaf-projection").await.unwrap();
    run(
        &tarn,
        "CREATE TABLE t (id BIGINT, s STRUCT<a BIGINT, big VARCHAR>)",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO t SELECT value, named_struct('a', value, 'big', \
         md5(CAST(value AS VARCHAR)) || md5(CAST(value * 7 AS VARCHAR))) \
         FROM generate_series(1, 5000)",
    )
    .await;
    let whole = bytes_scanned(&tarn, "SELECT count(s) FROM t").await;
    let leaf = bytes_scanned(&tarn, "SELECT sum(s.a) FROM t").await;
    assert!(leaf * 5 < whole, "s.a read {leaf} bytes, all of s {whole}");
    run(&tarn, "ALTER TABLE t RENAME COLUMN \"s.a\" TO x").await;
    let renamed = bytes_scanned(&tarn, "SELECT sum(s.x) FROM t").await;
    assert_eq!(renamed, leaf);
    let sum = run(&tarn, "SELECT sum(s.x) FROM t").await;
    assert_eq!(ids(&sum), vec![5000 * 5001 / 2]);
}

/// A filter on a field of a struct skips the row groups whose statistics for that field
/// rule it out, as one on a column does (DataFusion's own row-group pruning reads only
/// top-level columns), and still after the field is renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn struct_field_filters_skip_row_groups() {
    let tarn = TarnContext::open("memory://leaf-row-groups").await.unwrap();
    run(
        &tarn,
        "CREATE TABLE t (id BIGINT, s STRUCT<a BIGINT, b VARCHAR>) \
         WITH ('write.parquet.row-group-rows' = '100')",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO t SELECT value, named_struct('a', value, 'b', CAST(value AS VARCHAR)) \
         FROM generate_series(0, 999)",
    )
    .await;
    let (batches, rows) = rows_scanned(&tarn, "SELECT id FROM t WHERE s.a = 555").await;
    assert_eq!(ids(&batches), vec![555]);
    assert_eq!(rows, 100, "one row group of ten is read");
    // A column filter, for comparison, is pruned by DataFusion itself.
    let (_, rows) = rows_scanned(&tarn, "SELECT id FROM t WHERE id = 555").await;
    assert_eq!(rows, 100);

    run(&tarn, "ALTER TABLE t RENAME COLUMN \"s.a\" TO x").await;
    let (batches, rows) = rows_scanned(&tarn, "SELECT id FROM t WHERE s.x >= 950").await;
    assert_eq!(ids(&batches), (950..1000).collect::<Vec<_>>());
    assert_eq!(rows, 100);
    // A predicate the statistics cannot decide reads everything.
    let (batches, rows) = rows_scanned(&tarn, "SELECT id FROM t WHERE s.x % 100 = 1").await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10);
    assert_eq!(rows, 1000);
}

/// A store whose HEAD requests take a while, recording the most that were in flight at once.
#[derive(Debug)]
struct SlowHeads {
    inner: Arc<dyn object_store::ObjectStore>,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Display for SlowHeads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlowHeads({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for SlowHeads {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        use std::sync::atomic::Ordering;
        if !options.head {
            return self.inner.get_opts(location, options).await;
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let result = self.inner.get_opts(location, options).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A statement over several tables probes their freshness together, not one table after
/// another, and still sees a commit made between two statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_probes_its_tables_together() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(SlowHeads {
        inner: Arc::new(object_store::memory::InMemory::new()),
        in_flight: Default::default(),
        most: Default::default(),
    });
    let warehouse = Warehouse::from_store(
        store.clone(),
        object_store::path::Path::default(),
        "memory://slow-heads",
    );
    warehouse.create_namespace("default").await.unwrap();
    let ctx = TarnContext::new(warehouse, Default::default())
        .await
        .unwrap();
    for t in ["a", "b", "c"] {
        run(&ctx, &format!("CREATE TABLE {t} (id BIGINT)")).await;
        run(&ctx, &format!("INSERT INTO {t} VALUES (1), (2)")).await;
    }
    let join = "SELECT count(*) FROM a JOIN b ON a.id = b.id JOIN c ON b.id = c.id";
    run(&ctx, join).await;
    store.most.store(0, Ordering::SeqCst);
    let rows = run(&ctx, join).await;
    assert_eq!(ids(&rows), vec![2]);
    assert!(
        store.most.load(Ordering::SeqCst) >= 3,
        "the three tables' probes overlap: at most {} HEAD at a time",
        store.most.load(Ordering::SeqCst)
    );
    // Another session's commit between two statements is seen.
    let other = Warehouse::from_store(
        store.clone(),
        object_store::path::Path::default(),
        "memory://slow-heads",
    );
    let other = TarnContext::new(other, Default::default()).await.unwrap();
    run(&other, "INSERT INTO c VALUES (2)").await;
    let rows = run(&ctx, join).await;
    assert_eq!(ids(&rows), vec![3]);
}

/// The physical plan of `sql`, as EXPLAIN indents it.
async fn physical_plan_text(ctx: &TarnContext, sql: &str) -> String {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string()
}

/// A DELETE by the source column of a transform partition (a retention DELETE on a table
/// partitioned by `day(ts)`) takes out the files whose bounds lie wholly inside its
/// condition without reading them, and reads the files it cuts through, those with a NULL,
/// and all of them when the condition is of a shape that may be NULL for values that are
/// not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_delete_decides_files_by_their_bounds() {
    let tarn = TarnContext::open("memory://retention-delete")
        .await
        .unwrap();
    run(
        &tarn,
        "CREATE TABLE t (ts TIMESTAMP, id BIGINT) PARTITIONED BY (day(ts))",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO t SELECT to_timestamp_seconds(1704067200 + 3600 * value), value \
         FROM generate_series(0, 71)",
    )
    .await;
    run(&tarn, "INSERT INTO t VALUES (NULL, 100)").await;
    let scans = |plan: &str| plan.matches("file_type=parquet").count();
    for (condition, read) in [
        // Days 1 and 2 lie inside; day 3 and the NULL are pruned.
        ("ts < TIMESTAMP '2024-01-03 00:00:00'", false),
        ("NOT (ts >= TIMESTAMP '2024-01-03 00:00:00')", false),
        // Bounds of two columns: every point within them passes.
        (
            "ts < TIMESTAMP '2024-01-03 00:00:00' AND id BETWEEN 0 AND 47",
            false,
        ),
        ("ts < TIMESTAMP '2024-01-03 00:00:00' AND id < 47", true),
        // Day 2 is cut through.
        ("ts < TIMESTAMP '2024-01-02 12:00:00'", true),
        // A function may be NULL where its argument is not.
        (
            "nullif(ts, TIMESTAMP '2024-01-01 05:00:00') < TIMESTAMP '2024-01-03 00:00:00'",
            true,
        ),
    ] {
        let plan = physical_plan_text(&tarn, &format!("DELETE FROM t WHERE {condition}")).await;
        assert_eq!(scans(&plan) > 0, read, "{condition}: {plan}");
    }
    // The NULL's own file alone is read for a condition that picks NULLs too.
    let plan = physical_plan_text(
        &tarn,
        "DELETE FROM t WHERE ts < TIMESTAMP '2024-01-03 00:00:00' OR ts IS NULL",
    )
    .await;
    assert_eq!(scans(&plan), 1, "{plan}");
    assert_eq!(plan.matches("ts_day=").count(), 1, "{plan}");
    assert!(plan.contains("ts_day=null/"), "{plan}");
    let affected = run(
        &tarn,
        "DELETE FROM t WHERE ts < TIMESTAMP '2024-01-03 00:00:00'",
    )
    .await;
    assert_eq!(affected_rows(&affected), 48);
    let rows = run(&tarn, "SELECT id FROM t").await;
    assert_eq!(ids(&rows), (48..72).chain([100]).collect::<Vec<_>>());
}

/// The rows a DML statement reports it affected.
fn affected_rows(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .map(|b| b.column(0).as_primitive::<UInt64Type>().value(0))
        .sum()
}

/// The Parquet objects under `table`'s location, data and change logs alike.
async fn parquet_objects(ctx: &TarnContext, table: &str) -> Vec<String> {
    let provider = ctx.catalog().load("default", table).await.unwrap().unwrap();
    let location = provider.table().location();
    let mut objects: Vec<String> = location
        .store()
        .list(Some(location.root()))
        .map(|o| o.unwrap().location.to_string())
        .filter(|p| std::future::ready(p.ends_with(".parquet")))
        .collect()
        .await;
    objects.sort();
    objects
}

/// A session over a new warehouse at `url`, planning `partitions` partitions per scan.
async fn with_partitions(url: &str, partitions: usize) -> TarnContext {
    TarnContext::new(
        Warehouse::open(url).unwrap(),
        datafusion::prelude::SessionConfig::new().with_target_partitions(partitions),
    )
    .await
    .unwrap()
}

/// What `remove_orphan_files` would delete from `table` now: objects under its location
/// that no retained version refers to.
async fn orphans(ctx: &TarnContext, table: &str) -> Vec<String> {
    let sql =
        format!("CALL tarn.remove_orphan_files('{table}', older_than => now(), dry_run => true)");
    let listed = run(ctx, &sql).await;
    listed
        .iter()
        .flat_map(|b| texts(std::slice::from_ref(b)))
        .collect()
}

/// The text of every row of the first column of a result.
fn texts(batches: &[RecordBatch]) -> Vec<String> {
    column_texts(batches, 0)
}

/// The text of every row of column `i` of a result.
fn column_texts(batches: &[RecordBatch], i: usize) -> Vec<String> {
    let column = datafusion::arrow::compute::concat(
        &batches
            .iter()
            .map(|b| b.column(i).as_ref())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let column =
        datafusion::arrow::compute::cast(&column, &datafusion::arrow::datatypes::DataType::Utf8)
            .unwrap();
    column
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap_or("NULL").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_create_table_makes_the_same_table() {
    let ctx = TarnContext::open("memory://show-create").await.unwrap();
    run(
        &ctx,
        "CREATE TABLE src (id BIGINT NOT NULL COMMENT 'the id''s', \"odd name\" VARCHAR DEFAULT 'x', \
         ctx STRUCT<ts TIMESTAMP, tags VARCHAR[]>, m MAP<VARCHAR, DOUBLE>, d DECIMAL(10,2), day DATE, \
         at TIMESTAMP DEFAULT TIMESTAMP '2026-11-30 10:00:00.25', \
         atz TIMESTAMPTZ DEFAULT TIMESTAMPTZ '2026-11-30 10:00:00+01:00') \
         PARTITIONED BY (bucket(4, id), day(ctx.ts), truncate(3, \"odd name\"), month(day)) \
         WITH ('write.target-file-size-bytes' = '1000000')",
    )
    .await;
    let definition = column_texts(&run(&ctx, "SHOW CREATE TABLE src").await, 3);
    let copy = definition[0].replace("\"default\".\"src\"", "\"default\".\"copy\"");
    assert_ne!(copy, definition[0]);
    run(&ctx, &copy).await;
    let describe = |t: &str| {
        format!(
            "SELECT \"column\" || ' ' || type || ' ' || CAST(nullable AS VARCHAR) || ' ' || \
             coalesce(\"default\", '-') || ' ' || coalesce(comment, '-') FROM \"{t}$columns\""
        )
    };
    let columns = texts(&run(&ctx, &describe("src")).await);
    assert_eq!(columns.len(), 8);
    assert_eq!(columns[0], "id BIGINT false - the id's");
    assert_eq!(
        columns[6..],
        [
            "at TIMESTAMP true TIMESTAMP '2026-11-30T10:00:00.250' -",
            "atz TIMESTAMPTZ true TIMESTAMPTZ '2026-11-30T09:00:00Z' -"
        ]
    );
    assert_eq!(columns, texts(&run(&ctx, &describe("copy")).await));
    let properties = "SELECT key || '=' || value FROM \"{t}$properties\" ORDER BY key";
    assert_eq!(
        texts(&run(&ctx, &properties.replace("{t}", "src")).await),
        texts(&run(&ctx, &properties.replace("{t}", "copy")).await)
    );
    // The same partitioning: the same rows land in partitions of the same values.
    let rows = "VALUES (7, 'abcdef', named_struct('ts', TIMESTAMP '2026-11-30 10:00:00', \
                'tags', ['a']), MAP {'k': 1.0}, 1.50, DATE '2026-02-03', DEFAULT, DEFAULT)";
    run(&ctx, &format!("INSERT INTO src {rows}")).await;
    run(&ctx, &format!("INSERT INTO copy {rows}")).await;
    let partitions = "SELECT concat_ws(' ', partition['id_bucket'], partition['ctx_ts_day'], \
                      partition['odd name_trunc'], partition['day_month']) FROM \"{t}$partitions\"";
    let of_src = texts(&run(&ctx, &partitions.replace("{t}", "src")).await);
    assert_eq!(of_src, ["3 2026-11-30 abc 2026-02"]);
    assert_eq!(
        of_src,
        texts(&run(&ctx, &partitions.replace("{t}", "copy")).await)
    );
    // The same defaults written.
    let defaults = "SELECT CAST(at AS VARCHAR) || ' ' || CAST(atz AS VARCHAR) FROM {t}";
    let of_src = texts(&run(&ctx, &defaults.replace("{t}", "src")).await);
    assert_eq!(of_src, ["2026-11-30T10:00:00.250 2026-11-30T09:00:00Z"]);
    assert_eq!(
        of_src,
        texts(&run(&ctx, &defaults.replace("{t}", "copy")).await)
    );
}

/// A write whose table is dropped between its planning and its commit commits nothing and
/// says so by the table's name, as the statement named it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_table_dropped_meanwhile_names_it() {
    let ctx = TarnContext::open("memory://dropped-under-a-write")
        .await
        .unwrap();
    run(&ctx, "CREATE TABLE gone (id BIGINT)").await;
    let insert = ctx.sql("INSERT INTO gone VALUES (1)").await.unwrap();
    run(&ctx, "DROP TABLE gone").await;
    let err = insert.collect().await.unwrap_err().to_string();
    assert!(
        err.contains("table 'default.gone' was dropped") && err.contains("nothing was committed"),
        "{err}"
    );
}

/// Checked `+` keeps its operand's order, as DataFusion's operator does, so a sort on
/// `id + 1` above rows sorted by `id` is dropped; `id * 2` may change sign, so its sort stays.
#[tokio::test]
async fn checked_addition_keeps_the_order_of_its_operand() {
    let tarn = with_partitions("memory://checked-order", 1).await;
    run(&tarn, "CREATE TABLE t (id BIGINT)").await;
    run(&tarn, "INSERT INTO t VALUES (3), (1), (2)").await;
    let sorts = |op: &'static str| {
        let tarn = &tarn;
        async move {
            let sql = format!(
                "SELECT x FROM (SELECT id {op} AS x FROM (SELECT id FROM t ORDER BY id LIMIT 10)) \
                 ORDER BY x"
            );
            let text = physical_plan_text(tarn, &sql).await;
            assert!(text.contains("checked_"), "{text}");
            text.matches("SortExec").count()
        }
    };
    assert_eq!(sorts("+ 1").await, 1);
    assert_eq!(sorts("* 2").await, 2);
}

/// A table of one file of several row groups, under the size DataFusion splits across cores,
/// is read on every core, each row once: with rows deleted by a vector too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_of_many_row_groups_is_read_on_every_core() {
    let tarn = with_partitions("memory://row-group-split", 4).await;
    run(
        &tarn,
        "CREATE TABLE t (id BIGINT NOT NULL) WITH ('write.parquet.row-group-rows' = '20000', \
         'write.delete-mode' = 'merge-on-read')",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO t SELECT value FROM generate_series(0, 49999)",
    )
    .await;
    run(
        &tarn,
        "INSERT INTO t SELECT value FROM generate_series(50000, 99999)",
    )
    .await;
    run(&tarn, "OPTIMIZE t").await;
    let files = run(&tarn, "SELECT CAST(file_size AS BIGINT) FROM \"t$files\"").await;
    let sizes = ids(&files);
    assert_eq!(sizes.len(), 1, "one file after OPTIMIZE");
    assert!(
        sizes[0] < 1024 * 1024,
        "under DataFusion's split size: {sizes:?}"
    );

    let query = "SELECT sum(id), count(*) FROM t WHERE id % 3 <> 1";
    let scan_groups = |sql: &'static str| {
        let tarn = &tarn;
        async move {
            let text = physical_plan_text(tarn, sql).await;
            text.split("file_groups={")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_else(|| panic!("{text}"))
                .to_string()
        }
    };
    assert_eq!(scan_groups(query).await, "4");
    let sum_count = |batches: Vec<RecordBatch>| {
        let b = &batches[0];
        (
            b.column(0).as_primitive::<Int64Type>().value(0),
            b.column(1).as_primitive::<Int64Type>().value(0),
        )
    };
    let kept = |deleted: fn(i64) -> bool| {
        let ids = (0..100_000).filter(|i| i % 3 != 1 && !deleted(*i));
        ids.fold((0, 0), |(sum, count), i| (sum + i, count + 1))
    };
    assert_eq!(sum_count(run(&tarn, query).await), kept(|_| false));

    run(
        &tarn,
        "DELETE FROM t WHERE id % 10 = 0 OR id BETWEEN 39990 AND 40010",
    )
    .await;
    let deleted = |i: i64| i % 10 == 0 || (39_990..=40_010).contains(&i);
    assert_eq!(
        ids(&run(
            &tarn,
            "SELECT CAST(sum(deleted_rows) AS BIGINT) FROM \"t$files\""
        )
        .await),
        vec![(0..100_000).filter(|i| deleted(*i)).count() as i64],
        "the rows were deleted by a vector"
    );
    assert_eq!(scan_groups(query).await, "4");
    assert_eq!(sum_count(run(&tarn, query).await), kept(deleted));
}

/// A CREATE TABLE AS whose name another statement takes while it writes its rows fails at
/// its commit, naming the table as the statement did, and leaves the other table as it was.
#[tokio::test]
async fn a_create_table_as_losing_its_name_says_so() {
    use tarn_spec::{Field, PrimitiveType};
    let ctx = TarnContext::open("memory://ctas-race").await.unwrap();
    let definition = tarn_core::TableDefinition {
        fields: vec![Field::optional(1, "x", PrimitiveType::Int)],
        ..Default::default()
    };
    let staged = ctx
        .warehouse()
        .stage_table("default", "t", definition)
        .await
        .unwrap();
    run(&ctx, "CREATE TABLE t (x INT)").await;
    run(&ctx, "INSERT INTO t VALUES (7)").await;
    // What CREATE TABLE t AS SELECT 1 AS x does once its table is staged.
    let rows = ctx.sql("SELECT CAST(1 AS INT) AS x").await.unwrap();
    let write = rows.write_table(
        "tarn.default.t",
        datafusion::dataframe::DataFrameWriteOptions::new(),
    );
    let err = crate::catalog::with_staged("default", "t", staged, write)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("table 'default.t' already exists"),
        "{err}"
    );
    let batches = run(&ctx, "SELECT CAST(x AS BIGINT) AS x FROM t").await;
    assert_eq!(ids(&batches), [7]);
    assert_eq!(version_of(&ctx, "t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_history_and_show_tblproperties_read_metadata_tables() {
    let tarn = TarnContext::open("memory://describe-history")
        .await
        .unwrap();
    run(&tarn, "CREATE TABLE \"History\" (h BIGINT)").await;
    run(&tarn, "INSERT INTO \"History\" VALUES (1)").await;
    run(&tarn, "DELETE FROM \"History\"").await;
    let versions = |batches: Vec<RecordBatch>| -> Vec<(u64, String)> {
        batches
            .iter()
            .flat_map(|b| {
                let version = b
                    .column_by_name("version")
                    .unwrap()
                    .as_primitive::<UInt64Type>();
                let operation = b.column_by_name("operation").unwrap().as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| (version.value(i), operation.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let all = versions(run(&tarn, "DESCRIBE HISTORY \"History\"").await);
    let expected = [(2, "delete"), (1, "append"), (0, "create")];
    let expected: Vec<(u64, String)> = expected.iter().map(|(v, o)| (*v, o.to_string())).collect();
    assert_eq!(all, expected);
    let newest = versions(run(&tarn, "desc history default.\"History\" limit 1").await);
    assert_eq!(newest, expected[..1]);
    // Without a name after it, HISTORY is a table's name.
    run(&tarn, "CREATE TABLE history (a INT)").await;
    let described = run(&tarn, "DESCRIBE history").await;
    assert_eq!(described[0].num_rows(), 1);
    run(
        &tarn,
        "ALTER TABLE \"History\" SET TBLPROPERTIES ('b' = '2', 'a' = '1')",
    )
    .await;
    let properties = run(&tarn, "SHOW TBLPROPERTIES \"History\"").await;
    let keys = properties[0].column(0).as_string::<i32>();
    assert_eq!((keys.value(0), keys.value(1)), ("a", "b"));
    let error = tarn
        .sql("DESCRIBE HISTORY \"History\" LIMIT x")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("usage: DESCRIBE HISTORY table [LIMIT n]"),
        "{error}"
    );
}

/// A MERGE `ON FALSE` (replace what the NOT MATCHED BY SOURCE condition picks by the source)
/// pairs no rows: its plan reads the source and, of the target, only the files that
/// condition keeps, with no join holding the target in memory.
#[tokio::test]
async fn a_merge_on_false_reads_only_the_target_files_it_replaces() {
    let tarn = with_partitions("memory://merge-on-false", 2).await;
    run(
        &tarn,
        "CREATE TABLE t (day DATE, id BIGINT, v VARCHAR) PARTITIONED BY (day)",
    )
    .await;
    for day in 1..=3 {
        run(
            &tarn,
            &format!("INSERT INTO t VALUES (DATE '2024-01-0{day}', {day}, 'old')"),
        )
        .await;
    }
    let merge = "MERGE INTO t USING (VALUES (DATE '2024-01-02', 20, 'new')) AS s(day, id, v) \
                 ON FALSE \
                 WHEN NOT MATCHED BY SOURCE AND t.day = DATE '2024-01-02' THEN DELETE \
                 WHEN NOT MATCHED THEN INSERT *";
    // The condition names only the partition column: the files it picks are found in the
    // manifests, and none is read.
    let plan = physical_plan_text(&tarn, merge).await;
    assert!(!plan.contains("Join"), "{plan}");
    assert!(!plan.contains("file_type=parquet"), "{plan}");
    run(&tarn, merge).await;
    let rows = run(&tarn, "SELECT id FROM t ORDER BY id").await;
    assert_eq!(ids(&rows), vec![1, 3, 20]);
    // A condition whose shape the bounds cannot decide (LIKE) reads the files its statistics
    // do not prune.
    let by_id = "MERGE INTO t USING (VALUES (DATE '2024-01-03', 30, 'new')) AS s(day, id, v) \
                 ON FALSE \
                 WHEN NOT MATCHED BY SOURCE AND t.id = 3 AND t.v LIKE 'o%' THEN DELETE \
                 WHEN NOT MATCHED THEN INSERT *";
    let plan = physical_plan_text(&tarn, by_id).await;
    assert!(!plan.contains("Join"), "{plan}");
    assert_eq!(plan.matches("day=").count(), 1, "{plan}");
    assert!(plan.contains("day=2024-01-03/"), "{plan}");
    run(&tarn, by_id).await;
    let rows = run(&tarn, "SELECT id FROM t ORDER BY id").await;
    assert_eq!(ids(&rows), vec![1, 20, 30]);
    // So does any ON that is false whatever the rows.
    for on in ["1 = 0", "NULL", "NOT TRUE"] {
        let merge = format!(
            "MERGE INTO t USING (VALUES (DATE '2024-01-02', 20, 'new')) AS s(day, id, v) \
             ON {on} WHEN NOT MATCHED BY SOURCE AND t.id = 1 THEN DELETE"
        );
        let plan = physical_plan_text(&tarn, &merge).await;
        assert!(!plan.contains("Join"), "{on}: {plan}");
    }
    let merge = "MERGE INTO t USING (VALUES (DATE '2024-01-02', 20, 'new')) AS s(day, id, v) \
                 ON t.id = 0 WHEN NOT MATCHED BY SOURCE AND t.id = 1 THEN DELETE";
    assert!(physical_plan_text(&tarn, merge).await.contains("Join"));
}

/// A DELETE whose condition names only identity partition columns takes whole files out of
/// the table from the manifests, without reading them, in either mode: the rows a deletion
/// vector already deleted are not counted again, and the change feed shows the rows that
/// went (in copy-on-write, the removed file is its own change log: no file is written).
/// Files of a spec that does not partition by those columns are still read row by row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_of_whole_partitions_reads_no_data_file() {
    for mode in ["merge-on-read", "copy-on-write"] {
        let tarn = TarnContext::open(&format!("memory://whole-partitions-{mode}"))
            .await
            .unwrap();
        run(&tarn, "CREATE TABLE t (day DATE, id BIGINT)").await;
        run(
            &tarn,
            "INSERT INTO t VALUES (DATE '2024-01-01', 0), (NULL, 10)",
        )
        .await;
        run(&tarn, "ALTER TABLE t SET PARTITIONED BY (day)").await;
        for day in 1..=3 {
            run(
                &tarn,
                &format!(
                    "INSERT INTO t VALUES (DATE '2024-01-0{day}', {}), (DATE '2024-01-0{day}', {})",
                    2 * day - 1,
                    2 * day
                ),
            )
            .await;
        }
        // A deletion vector on the first day's file: 1 goes, 2 stays.
        run(&tarn, "DELETE FROM t WHERE id = 1").await;
        run(
            &tarn,
            &format!("ALTER TABLE t SET TBLPROPERTIES ('write.delete-mode' = '{mode}')"),
        )
        .await;
        let files_before = parquet_objects(&tarn, "t").await;

        let delete = "DELETE FROM t WHERE day >= DATE '2024-01-02'";
        let plan = physical_plan_text(&tarn, delete).await;
        assert!(!plan.contains("file_type=parquet"), "{mode}: {plan}");
        let affected = run(&tarn, delete).await;
        assert_eq!(affected_rows(&affected), 4, "{mode}");
        let version = version_of(&tarn, "t").await;
        let gone = run(
            &tarn,
            &format!("SELECT id FROM table_changes('t', {version}) WHERE _change_type = 'delete'"),
        )
        .await;
        assert_eq!(ids(&gone), vec![3, 4, 5, 6], "{mode}");
        assert_eq!(parquet_objects(&tarn, "t").await, files_before, "{mode}");

        // The unpartitioned file holds a row of the first day and a NULL: it is read.
        let delete = "DELETE FROM t WHERE day = DATE '2024-01-01'";
        let plan = physical_plan_text(&tarn, delete).await;
        assert_eq!(
            plan.matches("file_type=parquet").count(),
            1,
            "{mode}: {plan}"
        );
        assert!(!plan.contains("day=2024-01-01/"), "{mode}: {plan}");
        let affected = run(&tarn, delete).await;
        assert_eq!(affected_rows(&affected), 2, "{mode}");
        let rows = run(&tarn, "SELECT id FROM t").await;
        assert_eq!(ids(&rows), vec![10], "{mode}");
        let rows = run(&tarn, &format!("SELECT id FROM t VERSION AS OF {version}")).await;
        assert_eq!(ids(&rows), vec![0, 2, 10], "{mode}");
    }
}

/// A MERGE from a table held in memory (a micro-batch a pipeline registered, grouped by key
/// as the change-feed example does) filters the target by the batch's keys while planning:
/// the target's manifests keep only the files that may hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_from_an_in_memory_table_prunes_the_target_by_its_keys() {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::catalog::{
        CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
    };
    use datafusion::datasource::MemTable;

    let tarn = TarnContext::open("memory://in-memory-merge-source")
        .await
        .unwrap();
    run(&tarn, "CREATE TABLE t (id BIGINT, v BIGINT)").await;
    for file in 0..40 {
        let first = file * 10;
        run(
            &tarn,
            &format!(
                "INSERT INTO t SELECT value, 0 FROM generate_series({first}, {})",
                first + 9
            ),
        )
        .await;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Int64, false),
    ]));
    let batch = |ids: Vec<Option<i64>>| {
        let v = Int64Array::from(vec![1; ids.len()]);
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(v)],
        )
        .unwrap()
    };
    // Key 17 twice (summed by the GROUP BY), 255, a NULL key, and 1000, a new row.
    let updates = Arc::new(
        MemTable::try_new(
            schema.clone(),
            vec![
                vec![batch(vec![Some(17), Some(255)])],
                vec![batch(vec![Some(17), None, Some(1000)])],
            ],
        )
        .unwrap(),
    );
    let scratch = Arc::new(MemorySchemaProvider::new());
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("public", scratch.clone()).unwrap();
    tarn.session_context()
        .register_catalog("pipeline", Arc::new(catalog));
    scratch
        .register_table("updates".into(), updates.clone())
        .unwrap();
    let merge = "MERGE INTO t USING (SELECT id, sum(v) AS v FROM pipeline.public.updates \
                 GROUP BY id) s ON t.id = s.id \
                 WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)";

    let explained = run(&tarn, &format!("EXPLAIN ANALYZE {merge}")).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    assert!(
        text.contains("tarn_files_kept=2, tarn_files_total=40"),
        "the target is not pruned by the source's keys:\n{text}"
    );
    let changed = run(
        &tarn,
        "SELECT id, v FROM t WHERE v <> 0 AND id IS NOT NULL ORDER BY id",
    )
    .await;
    let pairs: Vec<(i64, i64)> = changed
        .iter()
        .flat_map(|b| {
            let id = b.column(0).as_primitive::<Int64Type>();
            let v = b.column(1).as_primitive::<Int64Type>();
            (0..b.num_rows())
                .map(|i| (id.value(i), v.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    // The NULL key matches nothing and is inserted as a row of its own.
    assert_eq!(pairs, vec![(17, 2), (255, 1), (1000, 1)]);
    let nulls = run(&tarn, "SELECT count(*) FROM t WHERE id IS NULL").await;
    assert_eq!(nulls[0].column(0).as_primitive::<Int64Type>().value(0), 1);
}
