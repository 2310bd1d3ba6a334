//! The `object-store` suite: the same commits and point queries on local disk and on an
//! S3-compatible server, with the requests each makes.
//!
//! The S3 side needs `TARN_TEST_S3` (a bucket URL) and the `AWS_*` variables that reach the
//! server; `scripts/with-s3.sh` provides both for a local moto server:
//!
//! ```sh
//! scripts/with-s3.sh $HOME/.cache/tarn/release/release/tarn-bench object-store --runs 3
//! ```

use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use tarn_core::Warehouse;
use tarn_core::requests::RequestCounts;
use tarn_datafusion::TarnContext;

use crate::report::{Report, median_ms};
use crate::suites::{definition, ids};

/// Where a side of the comparison keeps its warehouse.
struct Side {
    label: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

fn sides() -> Result<Vec<Side>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let local = Side {
        label: "local disk",
        url: dir
            .path()
            .to_str()
            .ok_or("non-UTF-8 temp path")?
            .to_string(),
        _dir: Some(dir),
    };
    let bucket = std::env::var("TARN_TEST_S3").map_err(|_| {
        "TARN_TEST_S3 is unset: run the object-store suite through scripts/with-s3.sh".to_string()
    })?;
    let s3 = Side {
        label: "S3 (local moto server)",
        url: format!("{bucket}/bench-{}", tarn_core::Env::default().next_id()),
        _dir: None,
    };
    Ok(vec![local, s3])
}

/// Requests per operation, `total` over `n` operations.
fn per(total: RequestCounts, n: usize) -> String {
    let n = n.max(1) as f64;
    format!(
        "{:.1} GET, {:.1} HEAD, {:.1} PUT, {:.1} LIST",
        total.get as f64 / n,
        total.head as f64 / n,
        total.put as f64 / n,
        total.list as f64 / n
    )
}

/// `commits` sequential appends of 1,000 rows, then `queries` point queries through SQL,
/// each from a fresh session (as a new process would), then `commits` SQL INSERTs of 3 rows
/// through one session (as a `tarn` process fed on stdin runs them), on local disk and on S3.
pub async fn object_store(
    report: &mut Report,
    commits: usize,
    queries: usize,
    runs: usize,
) -> Result<(), String> {
    for side in sides()? {
        let mut rates = Vec::new();
        let mut commit_requests = RequestCounts::default();
        let mut query_times = Vec::new();
        let mut query_requests = RequestCounts::default();
        let mut insert_rates = Vec::new();
        let mut insert_requests = RequestCounts::default();
        for run in 0..runs {
            let url = format!("{}/run-{run}", side.url);
            let w = Warehouse::open(&url).map_err(|e| e.to_string())?;
            w.check_store().await.map_err(|e| e.to_string())?;
            w.create_namespace("default")
                .await
                .map_err(|e| e.to_string())?;
            let mut t = w
                .create_table("default", "events", definition(false))
                .await
                .map_err(|e| e.to_string())?;
            let before = w.requests();
            let start = Instant::now();
            for i in 0..commits as i64 {
                t = t
                    .append_batches([ids(i * 1000..(i + 1) * 1000)])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            rates.push(commits as f64 / start.elapsed().as_secs_f64());
            commit_requests = w.requests().since(before);

            let mut requests = Vec::new();
            for q in 0..queries {
                let ctx = TarnContext::open(&url).await.map_err(|e| e.to_string())?;
                let id = (q * 7919 % (commits * 1000)) as i64;
                let before = ctx.warehouse().requests();
                let start = Instant::now();
                let batches = ctx
                    .sql(&format!("SELECT count(*) FROM events WHERE id = {id}"))
                    .await
                    .map_err(|e| e.to_string())?
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                let took = start.elapsed();
                let found = batches[0].column(0).as_primitive::<Int64Type>().value(0);
                if found != 1 {
                    return Err(format!("point query for id {id} found {found} rows"));
                }
                query_times.push(took);
                requests.push(ctx.warehouse().requests().since(before));
            }
            query_requests = requests.into_iter().sum();

            let ctx = TarnContext::open(&url).await.map_err(|e| e.to_string())?;
            let before = ctx.warehouse().requests();
            let start = Instant::now();
            for i in 0..commits as i64 {
                let id = -3 * (i + 1);
                let insert = format!(
                    "INSERT INTO events VALUES ({id}), ({}), ({})",
                    id + 1,
                    id + 2
                );
                ctx.sql(&insert)
                    .await
                    .map_err(|e| e.to_string())?
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
            }
            insert_rates.push(commits as f64 / start.elapsed().as_secs_f64());
            insert_requests = ctx.warehouse().requests().since(before);
        }
        rates.sort_by(f64::total_cmp);
        report.add(
            format!(
                "{}: {commits} sequential appends of 1,000 rows (median of {runs})",
                side.label
            ),
            rates[rates.len() / 2],
            "commits/s",
            format!("per commit: {}", per(commit_requests, commits)),
        );
        report.add(
            format!(
                "{}: point query by SQL from a fresh session, over {commits} files (median of {})",
                side.label,
                query_times.len()
            ),
            median_ms(&mut query_times),
            "ms",
            format!("per query: {}", per(query_requests, queries)),
        );
        insert_rates.sort_by(f64::total_cmp);
        report.add(
            format!(
                "{}: {commits} SQL `INSERT ... VALUES` of 3 rows, one session (median of {runs})",
                side.label
            ),
            insert_rates[insert_rates.len() / 2],
            "commits/s",
            format!("per statement: {}", per(insert_requests, commits)),
        );
    }
    Ok(())
}
