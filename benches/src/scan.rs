//! Suites reading TPC-H: `scan` (tarn against `ListingTable` on the same files), `pruning`
//! (a one-month query on partitioned, sorted and plain lineitem) and `time-travel`.

use crate::report::Report;
use crate::tpch::{QUERIES, Side, Tpch, files_scanned, median, metric_sum, run};

/// Runs `sql` on both sides once to warm up, then `runs` times alternating, and returns
/// the median seconds of each side.
async fn compare(a: &Side<'_>, b: &Side<'_>, sql: &str, runs: usize) -> Result<(f64, f64), String> {
    let (wa, wb) = (a.execute(sql).await?, b.execute(sql).await?);
    if wa.rows() != wb.rows() {
        return Err(format!(
            "the two sides disagree: {} rows against {} rows for\n{sql}",
            wa.rows(),
            wb.rows()
        ));
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ta.push(a.execute(sql).await?.elapsed.as_secs_f64());
        tb.push(b.execute(sql).await?.elapsed.as_secs_f64());
    }
    Ok((median(&mut ta), median(&mut tb)))
}

/// The 22 TPC-H queries on tarn tables against `ListingTable` over the same Parquet files.
pub async fn scan(report: &mut Report, data: &Tpch, runs: usize) -> Result<(), String> {
    let tarn = Side::Tarn(&data.tarn);
    let listing = Side::Listing(&data.listing);
    let mut log_ratio_sum = 0.0;
    let mut worst = (0, 0.0);
    for (i, sql) in QUERIES.iter().enumerate() {
        let (t, l) = compare(&tarn, &listing, sql, runs).await?;
        let ratio = t / l;
        log_ratio_sum += ratio.ln();
        if ratio > worst.1 {
            worst = (i + 1, ratio);
        }
        report.add(
            format!("Q{:02} tarn / ListingTable", i + 1),
            ratio,
            "ratio",
            format!("tarn {:.1} ms, ListingTable {:.1} ms", t * 1e3, l * 1e3),
        );
    }
    report.add(
        "geometric mean of the 22 ratios",
        (log_ratio_sum / QUERIES.len() as f64).exp(),
        "ratio",
        format!(
            "SF {}, median of {runs} runs each; worst Q{:02} at {:.3}",
            data.sf, worst.0, worst.1
        ),
    );
    Ok(())
}

const ONE_MONTH: &str = "SELECT sum(l_extendedprice * l_discount) AS revenue, count(*) AS n \
     FROM {table} WHERE l_shipdate >= DATE '1995-03-01' AND l_shipdate < DATE '1995-04-01'";

/// A one-month query on lineitem partitioned by `month(l_shipdate)`, on a copy sorted by
/// `l_shipdate` (smaller files and row groups so statistics can skip them), and on the plain
/// unsorted Parquet files (generation order, `l_orderkey`).
pub async fn pruning(report: &mut Report, data: &Tpch, runs: usize) -> Result<(), String> {
    run(
        &data.tarn,
        "CREATE TABLE lineitem_by_month PARTITIONED BY (month(l_shipdate)) \
         AS SELECT * FROM lineitem",
    )
    .await?;
    run(
        &data.tarn,
        "CREATE TABLE lineitem_sorted \
         WITH ('write.target-file-size-bytes' = '8388608', 'write.parquet.row-group-rows' = '131072') \
         AS SELECT * FROM lineitem ORDER BY l_shipdate",
    )
    .await?;
    let baseline = Side::Listing(&data.listing);
    let baseline_sql = ONE_MONTH.replace("{table}", "lineitem");
    let base = measure(&baseline, &baseline_sql, runs).await?;
    report.add(
        "plain Parquet (unsorted): one-month query",
        base.seconds * 1e3,
        "ms",
        format!("{} files, {} bytes read", base.files, base.bytes),
    );
    for (table, label) in [
        (
            "lineitem_by_month",
            "tarn, partitioned by month(l_shipdate)",
        ),
        ("lineitem_sorted", "tarn, sorted by l_shipdate"),
        ("lineitem", "tarn, unsorted"),
    ] {
        let tarn = Side::Tarn(&data.tarn);
        let sql = ONE_MONTH.replace("{table}", table);
        let m = measure(&tarn, &sql, runs).await?;
        if m.result != base.result {
            return Err(format!(
                "{table} answers {:?}, plain Parquet {:?}",
                m.result, base.result
            ));
        }
        report.add(
            format!("{label}: one-month query"),
            m.seconds * 1e3,
            "ms",
            format!(
                "{} files, {} bytes read; {:.1}x less data and {:.2}x the time of plain Parquet",
                m.files,
                m.bytes,
                base.bytes as f64 / m.bytes.max(1) as f64,
                m.seconds / base.seconds
            ),
        );
    }
    Ok(())
}

struct Measured {
    seconds: f64,
    files: usize,
    bytes: usize,
    result: String,
}

async fn measure(side: &Side<'_>, sql: &str, runs: usize) -> Result<Measured, String> {
    let mut last = side.execute(sql).await?;
    let mut times = Vec::new();
    for _ in 0..runs {
        last = side.execute(sql).await?;
        times.push(last.elapsed.as_secs_f64());
    }
    Ok(Measured {
        seconds: median(&mut times),
        files: files_scanned(&last.plan),
        bytes: metric_sum(&last.plan, "bytes_scanned"),
        result: format_result(last.batches),
    })
}

fn format_result(batches: Vec<datafusion::arrow::array::RecordBatch>) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// The same queries on the latest version and on the version `commits` commits older.
pub async fn time_travel(
    report: &mut Report,
    data: &Tpch,
    commits: usize,
    runs: usize,
) -> Result<(), String> {
    run(
        &data.tarn,
        "CREATE TABLE lineitem_history AS SELECT * FROM lineitem",
    )
    .await?;
    let old_version = data
        .tarn
        .warehouse()
        .load_table("default", "lineitem_history")
        .await
        .map_err(|e| e.to_string())?
        .version()
        .get();
    for i in 0..commits {
        run(
            &data.tarn,
            &format!(
                "INSERT INTO lineitem_history SELECT * FROM lineitem WHERE l_orderkey = {}",
                i * 32 + 1
            ),
        )
        .await?;
    }
    let tarn = Side::Tarn(&data.tarn);
    for (name, query) in [
        ("Q1", QUERIES[0]),
        ("Q6", QUERIES[5]),
        (
            "point lookup",
            "SELECT * FROM lineitem WHERE l_orderkey = 1 ORDER BY l_linenumber",
        ),
    ] {
        let latest = query.replace("FROM lineitem", "FROM lineitem_history");
        let past = query.replace(
            "FROM lineitem",
            &format!("FROM lineitem_history VERSION AS OF {old_version}"),
        );
        tarn.execute(&past).await?;
        tarn.execute(&latest).await?;
        let (mut pasts, mut latests) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            pasts.push(tarn.execute(&past).await?.elapsed.as_secs_f64());
            latests.push(tarn.execute(&latest).await?.elapsed.as_secs_f64());
        }
        let (p, l) = (median(&mut pasts), median(&mut latests));
        report.add(
            format!("{name}: version {commits} commits old / latest"),
            p / l,
            "ratio",
            format!("{:.1} ms against {:.1} ms", p * 1e3, l * 1e3),
        );
    }
    Ok(())
}

/// Prints `EXPLAIN ANALYZE` of TPC-H query `query` (1-22) on both sides, to see where
/// their times differ.
pub async fn explain(data: &Tpch, query: usize) -> Result<(), String> {
    let sql = QUERIES.get(query.wrapping_sub(1)).ok_or(format!(
        "there is no TPC-H query {query}; they run from 1 to 22"
    ))?;
    let explain = format!("EXPLAIN ANALYZE {sql}");
    for (label, side) in [
        ("tarn", Side::Tarn(&data.tarn)),
        ("ListingTable", Side::Listing(&data.listing)),
    ] {
        let batches = side.execute(&explain).await?.batches;
        let mut planning = Vec::new();
        for _ in 0..5 {
            let start = std::time::Instant::now();
            side.frame(sql)
                .await?
                .create_physical_plan()
                .await
                .map_err(|e| e.to_string())?;
            planning.push(start.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "## Q{query:02} on {label}: planning {:.2} ms (median of 5)\n\n{}\n",
            median(&mut planning),
            format_result(batches)
        );
    }
    Ok(())
}
