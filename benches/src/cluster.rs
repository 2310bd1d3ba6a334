//! The `cluster` suite: the 22 TPC-H queries on a local tarn session and on a Ballista
//! cluster of one scheduler and two executors over loopback, on the same tables. Each
//! executor has a runtime of its own, as on separate machines; every answer is checked
//! against the local one.

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use tarn_core::Warehouse;
use tarn_datafusion::ballista::{connect, loopback_cluster};

use crate::report::Report;
use crate::tpch::{QUERIES, Side, Tpch, median};

/// Executors in the loopback cluster, and the tasks each runs at once.
const EXECUTORS: usize = 2;
const EXECUTOR_SLOTS: usize = 2;

/// How long one query may take on the cluster.
const QUERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Rows as text, sorted, numbers rounded to 9 significant digits: a distributed sum adds
/// in another order than a local one.
fn canonical(batches: &[RecordBatch]) -> Result<Vec<String>, String> {
    let text = pretty_format_batches(batches)
        .map_err(|e| e.to_string())?
        .to_string();
    let mut rows: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|line| {
            line.split('|')
                .map(|cell| {
                    let cell = cell.trim();
                    match cell.parse::<f64>() {
                        Ok(x) if cell.contains('.') => format!("{x:.9e}"),
                        _ => cell.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// The 22 TPC-H queries, local against the loopback cluster, whose queries run in
/// `partitions` partitions (default: one per task slot, as the local session has one per
/// core; Ballista's own default is 16 whatever the cluster's size).
pub async fn cluster(
    report: &mut Report,
    data: &Tpch,
    runs: usize,
    partitions: Option<usize>,
) -> Result<(), String> {
    let url = loopback_cluster(EXECUTORS, EXECUTOR_SLOTS)
        .await
        .map_err(|e| e.to_string())?;
    let warehouse = Warehouse::open(data.warehouse().to_str().ok_or("non-UTF-8 path")?)
        .map_err(|e| e.to_string())?;
    let distributed = connect(&url, warehouse).await.map_err(|e| e.to_string())?;
    let partitions = partitions.unwrap_or(EXECUTORS * EXECUTOR_SLOTS);
    distributed
        .sql(&format!(
            "SET datafusion.execution.target_partitions = {partitions}"
        ))
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let (local, distributed) = (Side::Tarn(&data.tarn), Side::Tarn(&distributed));
    // A query the cluster never finishes (a scheduler task that died, say) would otherwise
    // be waited for forever.
    let on_cluster = |i: usize, sql: &'static str| {
        let run = distributed.execute(sql);
        async move {
            tokio::time::timeout(QUERY_LIMIT, run).await.map_err(|_| {
                format!(
                    "Q{:02} did not finish on the cluster within {} s",
                    i + 1,
                    QUERY_LIMIT.as_secs()
                )
            })?
        }
    };
    let mut log_ratio_sum = 0.0;
    for (i, sql) in QUERIES.iter().enumerate() {
        let (l, c) = (local.execute(sql).await?, on_cluster(i, sql).await?);
        let (lines_l, lines_c) = (canonical(&l.batches)?, canonical(&c.batches)?);
        if lines_l != lines_c {
            return Err(format!(
                "Q{:02}: the cluster's answer differs from the local one:\nlocal\n{}\ncluster\n{}",
                i + 1,
                lines_l.join("\n"),
                lines_c.join("\n")
            ));
        }
        let (mut tl, mut tc) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            tl.push(local.execute(sql).await?.elapsed.as_secs_f64());
            tc.push(on_cluster(i, sql).await?.elapsed.as_secs_f64());
        }
        let (tl, tc) = (median(&mut tl), median(&mut tc));
        log_ratio_sum += (tc / tl).ln();
        report.add(
            format!("Q{:02} cluster / local", i + 1),
            tc / tl,
            "ratio",
            format!(
                "cluster {:.1} ms, local {:.1} ms, same answer (checked)",
                tc * 1e3,
                tl * 1e3
            ),
        );
    }
    report.add(
        "cluster / local, geometric mean of the 22 ratios",
        (log_ratio_sum / QUERIES.len() as f64).exp(),
        "ratio",
        format!(
            "SF {}, median of {runs} runs; 1 scheduler, {EXECUTORS} executors x \
             {EXECUTOR_SLOTS} slots over loopback, scheduling by push, {partitions} partitions",
            data.sf
        ),
    );
    Ok(())
}
