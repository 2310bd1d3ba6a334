//! The `changes` suite: the change feed costs the change, not the table.
//!
//! lineitem is appended to an empty table in `appends` commits of equal size (through the
//! Rust API); then the same aggregate runs over the whole table and over
//! `table_changes` of the last 10 versions: time (median of `runs`), bytes read from the
//! store, and the bytes of the files those 10 appends wrote, which is all the feed should
//! read besides metadata.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::concat_batches;

use crate::report::Report;
use crate::tpch::{Side, Tpch, median, run};

const AGGREGATE: &str = "count(*), sum(l_extendedprice * (1 - l_discount))";

pub async fn changes(
    report: &mut Report,
    data: &Tpch,
    appends: usize,
    runs: usize,
) -> Result<(), String> {
    let tarn = &data.tarn;
    run(
        tarn,
        "CREATE TABLE lineitem_feed AS SELECT * FROM lineitem LIMIT 0",
    )
    .await?;
    // In key order, so that a filter on the key can select exactly the last appends.
    let rows = run(
        tarn,
        "SELECT * FROM lineitem ORDER BY l_orderkey, l_linenumber",
    )
    .await?;
    let schema = rows.first().ok_or("lineitem is empty")?.schema();
    let rows = concat_batches(&schema, &rows).map_err(|e| e.to_string())?;
    let mut table = tarn
        .warehouse()
        .load_table("default", "lineitem_feed")
        .await
        .map_err(|e| e.to_string())?;
    let chunk = rows.num_rows().div_ceil(appends);
    for i in 0..appends {
        let start = (i * chunk).min(rows.num_rows());
        let len = chunk.min(rows.num_rows() - start);
        table = table
            .append_batches([rows.slice(start, len)])
            .await
            .map_err(|e| e.to_string())?;
    }
    let last = table.version().get();
    let first = last - 9;
    // What the last 10 appends wrote: the feed reads these files and nothing else of the data.
    let mut appended_bytes = 0;
    for version in first..=last {
        let at = table
            .at_version(tarn_spec::Version(version))
            .await
            .map_err(|e| e.to_string())?;
        for path in &at.snapshot().changes.added_manifests {
            let manifest = at.manifest(path).await.map_err(|e| e.to_string())?;
            appended_bytes += manifest
                .data_files()
                .iter()
                .map(|f| f.file_size)
                .sum::<u64>();
        }
    }
    let table_bytes: u64 = table
        .plan_files(&tarn_core::Predicate::True)
        .await
        .map_err(|e| e.to_string())?
        .data_files()
        .iter()
        .map(|f| f.file_size)
        .sum();

    // The same rows by a filter: the appends come in key order, so the last 10 hold the
    // highest keys, and their files' statistics prune the rest.
    let last_ten_from = (appends - 10) * chunk;
    let keys = rows
        .column_by_name("l_orderkey")
        .ok_or("lineitem has no l_orderkey")?
        .slice(last_ten_from, rows.num_rows() - last_ten_from);
    let lowest = datafusion::arrow::compute::min(
        keys.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()
            .ok_or("l_orderkey is not BIGINT")?,
    )
    .ok_or("no keys")?;
    let pruned = format!("SELECT {AGGREGATE} FROM lineitem_feed WHERE l_orderkey >= {lowest}");
    let full = format!("SELECT {AGGREGATE} FROM lineitem_feed");
    let feed = format!("SELECT {AGGREGATE} FROM table_changes('lineitem_feed', {first}, {last})");
    let side = Side::Tarn(tarn);
    let (warm_full, warm_feed) = (side.execute(&full).await?, side.execute(&feed).await?);
    let count = |e: &crate::tpch::Executed| {
        e.batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    };
    let last_ten = rows.num_rows() - (appends - 10) * chunk;
    if count(&warm_full) != rows.num_rows() as i64 || count(&warm_feed) != last_ten as i64 {
        return Err(format!(
            "unexpected row counts: {} in the table, {} in the feed of the last 10 appends \
             (expected {last_ten})",
            count(&warm_full),
            count(&warm_feed)
        ));
    }
    let warm_pruned = side.execute(&pruned).await?;
    let (mut full_s, mut feed_s, mut feed_plan_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut pruned_s = Vec::new();
    let (mut full_bytes, mut feed_bytes) = (0, 0);
    for _ in 0..runs {
        let before = tarn.warehouse().requests();
        full_s.push(side.execute(&full).await?.elapsed.as_secs_f64());
        let between = tarn.warehouse().requests();
        let feed_run = side.execute(&feed).await?;
        feed_s.push(feed_run.elapsed.as_secs_f64());
        feed_plan_s.push(feed_run.planned.as_secs_f64());
        let after = tarn.warehouse().requests();
        pruned_s.push(side.execute(&pruned).await?.elapsed.as_secs_f64());
        full_bytes = between.since(before).read_bytes;
        feed_bytes = after.since(between).read_bytes;
    }
    let (full_t, feed_t) = (median(&mut full_s), median(&mut feed_s));
    let feed_plan = median(&mut feed_plan_s);
    report.add(
        format!("table_changes of the last 10 of {appends} appends / a full scan: time"),
        feed_t / full_t,
        "ratio",
        format!(
            "{:.1} ms ({:.1} ms of it planning) against {:.1} ms ({} of {} rows)",
            feed_t * 1e3,
            feed_plan * 1e3,
            full_t * 1e3,
            last_ten,
            rows.num_rows()
        ),
    );
    let pruned_t = median(&mut pruned_s);
    report.add(
        "table_changes of the last 10 appends / a query filtered to the same rows: time",
        feed_t / pruned_t,
        "ratio",
        format!(
            "{:.1} ms against {:.1} ms (`l_orderkey >= {lowest}`: {} rows)",
            feed_t * 1e3,
            pruned_t * 1e3,
            count(&warm_pruned)
        ),
    );
    report.add(
        "table_changes of the last 10 appends: bytes read",
        feed_bytes as f64 / 1e6,
        "MB",
        format!(
            "the 10 appends' files: {:.2} MB; a full scan read {:.1} MB of {:.1} MB",
            appended_bytes as f64 / 1e6,
            full_bytes as f64 / 1e6,
            table_bytes as f64 / 1e6
        ),
    );

    // Every column of every row, as a full scan reads them, against every column of the
    // feed's rows.
    let every_row = "SELECT * FROM lineitem_feed";
    let every_change = format!("SELECT * FROM table_changes('lineitem_feed', {first}, {last})");
    side.execute(&every_change).await?;
    let (mut all_s, mut changes_s) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        all_s.push(side.execute(every_row).await?.elapsed.as_secs_f64());
        changes_s.push(side.execute(&every_change).await?.elapsed.as_secs_f64());
    }
    let (all_t, changes_t) = (median(&mut all_s), median(&mut changes_s));
    report.add(
        "SELECT * of the feed of the last 10 appends / SELECT * of the table: time",
        changes_t / all_t,
        "ratio",
        format!("{:.1} ms against {:.1} ms", changes_t * 1e3, all_t * 1e3),
    );
    Ok(())
}
