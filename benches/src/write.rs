//! Bulk writes: CREATE TABLE AS and INSERT of TPC-H lineitem read from one Parquet file,
//! against DataFusion's own `COPY ... TO` Parquet with the same compression (the engine's
//! floor: the same read, the same encoder, no table). A partitioned table's floor is
//! `COPY ... PARTITIONED BY` its partition key computed as a column: the engine's own
//! partitioned write into hive-style directories, whose files hold the same columns.

use std::path::Path;
use std::time::Instant;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use tarn_core::Warehouse;
use tarn_datafusion::TarnContext;

use crate::report::{Report, peak_rss, reset_peak_rss};
use crate::tpch::{generated_table, median, run, session_config, tarn_context};

/// The compression tarn writes data files with, given to `COPY` too.
const COMPRESSION: &str = "zstd(1)";

/// An events table over lineitem's rows: a timestamp spread over 30 days and an id, for the
/// `day(ts), bucket(16, id)` layout (480 partitions).
const EVENTS: &str = "SELECT l_orderkey AS id, \
     to_timestamp_micros(1793491200000000 + (l_orderkey % 30) * 86400000000 + l_linenumber * 1000000) AS ts, \
     l_partkey, l_suppkey, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, \
     l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, l_comment";

/// One write measured on tarn and on `COPY`.
struct Case {
    label: &'static str,
    /// Run before the timed statement, on a fresh table name `{t}`.
    setup: Option<&'static str>,
    /// The timed tarn statement; `{t}` is the table, `{src}` the source file.
    tarn: &'static str,
    /// The query `COPY` writes for the floor, over `{src}`.
    floor: &'static str,
    /// The columns of `floor` that `COPY` partitions by, when the table is partitioned:
    /// they stand for the table's partition key and are not written into the files.
    floor_partitioned_by: Option<&'static str>,
    /// The memory pool both sides run under (tarn's shell pool, `--memory-limit`), or none.
    pool_bytes: Option<usize>,
}

const CASES: [Case; 8] = [
    Case {
        label: "CTAS lineitem, unpartitioned",
        setup: None,
        tarn: "CREATE TABLE {t} AS SELECT * FROM '{src}'",
        floor: "SELECT * FROM '{src}'",
        floor_partitioned_by: None,
        pool_bytes: None,
    },
    Case {
        label: "CTAS lineitem, PARTITIONED BY (month(l_shipdate))",
        setup: None,
        tarn: "CREATE TABLE {t} PARTITIONED BY (month(l_shipdate)) AS SELECT * FROM '{src}'",
        floor: "SELECT *, CAST(date_trunc('month', l_shipdate) AS DATE) AS p_month FROM '{src}'",
        floor_partitioned_by: Some("p_month"),
        pool_bytes: None,
    },
    Case {
        label: "CTAS events, unpartitioned",
        setup: None,
        tarn: "CREATE TABLE {t} AS {events}",
        floor: "{events}",
        floor_partitioned_by: None,
        pool_bytes: None,
    },
    Case {
        label: "CTAS events, PARTITIONED BY (day(ts), bucket(16, id))",
        setup: None,
        tarn: "CREATE TABLE {t} PARTITIONED BY (day(ts), bucket(16, id)) AS {events}",
        floor: "SELECT *, CAST(date_trunc('day', ts) AS DATE) AS p_day, id % 16 AS p_bucket FROM ({events})",
        floor_partitioned_by: Some("p_day, p_bucket"),
        pool_bytes: None,
    },
    Case {
        label: "INSERT 1/6 of lineitem into an existing table",
        setup: Some("CREATE TABLE {t} AS SELECT * FROM '{src}' WHERE false"),
        tarn: "INSERT INTO {t} SELECT * FROM '{src}' WHERE l_orderkey % 6 = 0",
        floor: "SELECT * FROM '{src}' WHERE l_orderkey % 6 = 0",
        floor_partitioned_by: None,
        pool_bytes: None,
    },
    Case {
        label: "INSERT one year into a table PARTITIONED BY (year(l_shipdate))",
        setup: Some(
            "CREATE TABLE {t} PARTITIONED BY (year(l_shipdate)) AS SELECT * FROM '{src}' WHERE false",
        ),
        tarn: "INSERT INTO {t} {one year}",
        floor: "{one year}",
        floor_partitioned_by: None,
        pool_bytes: None,
    },
    Case {
        label: "INSERT one year into a table PARTITIONED BY (year(l_shipdate)), write.distribution-mode 'none'",
        setup: Some(
            "CREATE TABLE {t} PARTITIONED BY (year(l_shipdate)) \
             WITH ('write.distribution-mode' = 'none') AS SELECT * FROM '{src}' WHERE false",
        ),
        tarn: "INSERT INTO {t} {one year}",
        floor: "{one year}",
        floor_partitioned_by: None,
        pool_bytes: None,
    },
    Case {
        label: "CTAS lineitem, PARTITIONED BY (month(l_shipdate)), write.fanout.enabled 'false', 512 MiB pool",
        setup: None,
        tarn: "CREATE TABLE {t} PARTITIONED BY (month(l_shipdate)) \
               WITH ('write.fanout.enabled' = 'false') AS SELECT * FROM '{src}'",
        // DataFusion 55.2's own partitioned COPY runs out of a 512 MiB pool (a file writer
        // per partition, none of which can spill), so the floor is its unpartitioned COPY.
        floor: "SELECT * FROM '{src}'",
        floor_partitioned_by: None,
        pool_bytes: Some(512 << 20),
    },
];

/// One tarn case against another, by case number (as `--case` gives them).
struct Ratio {
    of: usize,
    to: usize,
    label: &'static str,
    note: &'static str,
    /// Whether the two cases' `COPY` floors make the same ratio worth giving.
    with_floor: bool,
}

const RATIOS: [Ratio; 4] = [
    Ratio {
        of: 2,
        to: 1,
        label: "CTAS lineitem, PARTITIONED BY (month(l_shipdate)) / unpartitioned",
        note: "tarn against tarn",
        with_floor: true,
    },
    Ratio {
        of: 4,
        to: 3,
        label: "CTAS events, PARTITIONED BY (day(ts), bucket(16, id)) / unpartitioned",
        note: "tarn against tarn",
        with_floor: true,
    },
    Ratio {
        of: 8,
        to: 2,
        label: "CTAS by month, sorted under a 512 MiB pool / fanout without a pool",
        note: "tarn against tarn: what bounded memory costs",
        with_floor: false,
    },
    Ratio {
        of: 7,
        to: 6,
        label: "INSERT one year, write.distribution-mode 'none' / 'hash'",
        note: "tarn against tarn: hashed on the partition key, one partition is one writer",
        with_floor: false,
    },
];

/// The rows of one year of lineitem: all in one partition of a table partitioned by year.
const ONE_YEAR: &str = "SELECT * FROM '{src}' \
     WHERE l_shipdate >= DATE '1995-01-01' AND l_shipdate < DATE '1996-01-01'";

fn fill(sql: &str, table: &str, src: &Path) -> String {
    sql.replace("{events}", &format!("{EVENTS} FROM '{{src}}'"))
        .replace("{one year}", ONE_YEAR)
        .replace("{t}", table)
        .replace("{src}", &src.display().to_string())
}

/// The files (not directories) under `dir` with a `.parquet` name: how many, and their bytes.
fn parquet_files(dir: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries.flatten().fold((0, 0), |(files, bytes), e| {
        let path = e.path();
        let (more_files, more_bytes) = if path.is_dir() {
            parquet_files(&path)
        } else if path.extension().is_some_and(|x| x == "parquet") {
            (1, e.metadata().map_or(0, |m| m.len()))
        } else {
            (0, 0)
        };
        (files + more_files, bytes + more_bytes)
    })
}

/// Writes lineitem at `sf` to one Parquet file as tpchgen does (snappy, row groups of
/// about 120k rows), the source of every case.
async fn source_file(dir: &Path, sf: f64) -> Result<std::path::PathBuf, String> {
    let ctx = SessionContext::new_with_config(session_config());
    ctx.register_table(
        "generated",
        std::sync::Arc::new(generated_table("lineitem", sf, 2)?),
    )
    .map_err(|e| e.to_string())?;
    let path = dir.join("lineitem.parquet");
    let sql = format!(
        "COPY (SELECT * FROM generated) TO '{}' STORED AS PARQUET \
         OPTIONS ('format.compression' 'snappy', 'format.max_row_group_size' '122880')",
        path.display()
    );
    ctx.sql(&sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(path)
}

/// A tarn context and a plain session over `warehouse` whose runtimes each hold a memory
/// pool of `bytes`, the pool tarn's shell gives `--memory-limit`.
async fn pooled_contexts(
    warehouse: &Path,
    bytes: usize,
) -> Result<(TarnContext, SessionContext), String> {
    let runtime = || {
        RuntimeEnvBuilder::new()
            .with_memory_pool(tarn_datafusion::memory_pool(bytes))
            .build_arc()
            .map_err(|e| e.to_string())
    };
    let warehouse =
        Warehouse::open(warehouse.to_str().ok_or("non-UTF-8 path")?).map_err(|e| e.to_string())?;
    let tarn = TarnContext::new_with_runtime(warehouse, session_config(), runtime()?)
        .await
        .map_err(|e| e.to_string())?;
    let floor = SessionContext::new_with_config_rt(session_config(), runtime()?).enable_url_table();
    Ok((tarn, floor))
}

/// Time and peak RSS of one statement's execution.
async fn timed<F>(run: F) -> Result<(f64, f64), String>
where
    F: std::future::Future<Output = Result<(), String>>,
{
    reset_peak_rss();
    let start = Instant::now();
    run.await?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok((elapsed, peak_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0)))
}

pub async fn write(
    report: &mut Report,
    sf: f64,
    runs: usize,
    only: Option<usize>,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let src = source_file(dir.path(), sf).await?;
    let warehouse = dir.path().join("warehouse");
    std::fs::create_dir_all(&warehouse).map_err(|e| e.to_string())?;
    let unbounded = (
        tarn_context(&warehouse).await?,
        SessionContext::new_with_config(session_config()).enable_url_table(),
    );
    let mut tarn_medians = vec![f64::NAN; CASES.len()];
    let mut floor_medians = vec![f64::NAN; CASES.len()];
    for (number, case) in CASES.iter().enumerate() {
        if only.is_some_and(|n| n != number + 1) {
            continue;
        }
        let pooled;
        let (tarn, floor_ctx) = match case.pool_bytes {
            None => (&unbounded.0, &unbounded.1),
            Some(bytes) => {
                pooled = pooled_contexts(&warehouse, bytes).await?;
                (&pooled.0, &pooled.1)
            }
        };
        let rows = floor_ctx
            .sql(&fill(case.floor, "", &src))
            .await
            .map_err(|e| e.to_string())?
            .count()
            .await
            .map_err(|e| e.to_string())?;
        let (mut tarn_s, mut floor_s, mut tarn_mb, mut floor_mb) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut files, mut floor_files) = ((0, 0), (0, 0));
        for i in 0..runs {
            let out = dir.path().join(format!("copy{i}"));
            let partitioned_by = case
                .floor_partitioned_by
                .map(|columns| format!(" PARTITIONED BY ({columns})"))
                .unwrap_or_default();
            let sql = format!(
                "COPY ({}) TO '{}/' STORED AS PARQUET{partitioned_by} \
                 OPTIONS ('format.compression' '{COMPRESSION}')",
                fill(case.floor, "", &src),
                out.display()
            );
            let (s, mb) = timed(async {
                floor_ctx
                    .sql(&sql)
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?
                    .collect()
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?;
                Ok(())
            })
            .await?;
            floor_s.push(s);
            floor_mb.push(mb);
            floor_files = parquet_files(&out);
            let _ = std::fs::remove_dir_all(&out);

            let table = format!("w{i}");
            if let Some(setup) = case.setup {
                run(tarn, &fill(setup, &table, &src)).await?;
            }
            let sql = fill(case.tarn, &table, &src);
            let (s, mb) = timed(async { run(tarn, &sql).await.map(|_| ()) }).await?;
            tarn_s.push(s);
            tarn_mb.push(mb);
            files = parquet_files(&warehouse.join("default").join(&table).join("data"));
            run(tarn, &format!("DROP TABLE {table}")).await?;
        }
        let (t, f) = (median(&mut tarn_s), median(&mut floor_s));
        tarn_medians[number] = t;
        floor_medians[number] = f;
        report.add(
            format!("{}: tarn", case.label),
            t,
            "s",
            format!(
                "{:.2}M rows/s, {} files of {:.1} MB, peak RSS {:.0} MiB",
                rows as f64 / t / 1e6,
                files.0,
                files.1 as f64 / 1e6,
                median(&mut tarn_mb)
            ),
        );
        let floor_label = match case.floor_partitioned_by {
            Some(_) => "DataFusion COPY TO ... PARTITIONED BY",
            None => "DataFusion COPY TO",
        };
        report.add(
            format!("{}: {floor_label}", case.label),
            f,
            "s",
            format!(
                "{} files of {:.1} MB, peak RSS {:.0} MiB",
                floor_files.0,
                floor_files.1 as f64 / 1e6,
                median(&mut floor_mb)
            ),
        );
        report.add(format!("{}: tarn / COPY TO", case.label), t / f, "x", "");
    }
    for ratio in RATIOS {
        let (n, d) = (ratio.of - 1, ratio.to - 1);
        if tarn_medians[n].is_nan() || tarn_medians[d].is_nan() {
            continue;
        }
        report.add(
            ratio.label.to_string(),
            tarn_medians[n] / tarn_medians[d],
            "x",
            ratio.note,
        );
        if ratio.with_floor {
            report.add(
                format!("{}, DataFusion COPY TO", ratio.label),
                floor_medians[n] / floor_medians[d],
                "x",
                "the engine's own writes, the same ratio",
            );
        }
    }
    Ok(())
}
