//! A pipeline that tails a table: it follows `events` version by version as commits land,
//! turns each version's changes (inserts, deletes, update pre- and post-images) into
//! per-user deltas, and merges them into `totals`, stamping each MERGE with the version it
//! consumed. Stopped and started again at any point, it resumes after the last version it
//! committed, and a version it committed but did not hear of is refused, not counted twice.
//!
//! ```sh
//! cargo run -p tarn-datafusion --example tail
//! ```

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use futures::StreamExt;
use tarn_core::FollowPoll;
use tarn_datafusion::TarnContext;
use tarn_spec::Version;

/// The application id the pipeline stamps its commits with.
const APP: &str = "events-to-totals";

async fn run(tarn: &TarnContext, sql: &str) -> Result<Vec<RecordBatch>> {
    tarn.sql(sql).await?.collect().await
}

/// Per user, the rows of a query's first two BIGINT columns.
async fn pairs(tarn: &TarnContext, sql: &str) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for batch in run(tarn, sql).await? {
        let (a, b) = (batch.column(0), batch.column(1));
        let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
        out.extend((0..batch.num_rows()).map(|i| (a.value(i), b.value(i))));
    }
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tarn = TarnContext::open(dir.path().to_str().expect("a UTF-8 path")).await?;
    run(&tarn, "CREATE TABLE events (user_id BIGINT, amount BIGINT)").await?;
    run(&tarn, "CREATE TABLE totals (user_id BIGINT, total BIGINT)").await?;
    // Where the pipeline keeps each version's changes while it merges them.
    let scratch = Arc::new(MemorySchemaProvider::new());
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("public", scratch.clone())?;
    tarn.session_context()
        .register_catalog("pipeline", Arc::new(catalog));

    // A producer, in a session of its own: appends, a correction and a retraction, a commit
    // every 50 ms.
    let producer = {
        let tarn = TarnContext::open(dir.path().to_str().expect("a UTF-8 path")).await?;
        tokio::spawn(async move {
            for sql in [
                "INSERT INTO events VALUES (1, 10), (2, 5)",
                "INSERT INTO events VALUES (1, 7), (3, 1)",
                "UPDATE events SET amount = 6 WHERE user_id = 2",
                "DELETE FROM events WHERE user_id = 3",
                "INSERT INTO events VALUES (3, 4), (2, 1)",
            ] {
                run(&tarn, sql).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, datafusion::error::DataFusionError>(())
        })
    };

    // The consumer resumes after the last version it committed (none yet: version 0, the
    // empty table).
    let totals = tarn
        .catalog()
        .load("default", "totals")
        .await?
        .expect("totals exists");
    let resume = totals.table().app_sequence(APP).unwrap_or(0);
    let poll = FollowPoll {
        min: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let mut feed = Box::pin(tarn.follow_changes("events", Version(resume), poll).await?);
    run(&tarn, &format!("SET tarn.app_id = '{APP}'")).await?;
    while let Some(changes) = feed.next().await {
        let changes = changes?;
        let rows: usize = changes.batches.iter().map(|b| b.num_rows()).sum();
        println!("version {}: {rows} changed rows", changes.version);
        if rows > 0 {
            let schema = changes.batches[0].schema();
            let batches = MemTable::try_new(schema, vec![changes.batches])?;
            scratch.register_table("changes".into(), Arc::new(batches))?;
            run(
                &tarn,
                &format!("SET tarn.app_sequence = {}", changes.version),
            )
            .await?;
            run(
                &tarn,
                "MERGE INTO totals t USING (
                   SELECT user_id, sum(CASE WHEN _change_type IN ('insert', 'update_postimage')
                                            THEN amount ELSE -amount END) AS delta
                   FROM pipeline.public.changes GROUP BY user_id) d
                 ON t.user_id = d.user_id
                 WHEN MATCHED THEN UPDATE SET total = t.total + d.delta
                 WHEN NOT MATCHED THEN INSERT VALUES (d.user_id, d.delta)",
            )
            .await?;
            scratch.deregister_table("changes")?;
        }
        if changes.version == Version(5) {
            break;
        }
    }
    producer.await.expect("the producer ran")?;

    // What the pipeline built equals what it summarises.
    let built = pairs(&tarn, "SELECT user_id, total FROM totals ORDER BY user_id").await?;
    let expected = pairs(
        &tarn,
        "SELECT user_id, sum(amount) FROM events GROUP BY user_id ORDER BY user_id",
    )
    .await?;
    println!("totals: {built:?}");
    assert_eq!(built, expected);
    assert_eq!(built, vec![(1, 17), (2, 7), (3, 4)]);

    // A restart that re-reads version 5 (as if its commit had not been heard of) is refused.
    run(&tarn, "SET tarn.app_sequence = 5").await?;
    let again = run(&tarn, "DELETE FROM totals WHERE user_id = 1").await;
    assert!(again.is_err(), "version 5 was already committed");
    Ok(())
}
