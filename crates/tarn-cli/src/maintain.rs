//! `tarn maintain`: for cron. Applies every table's retention to a whole warehouse: expires
//! snapshots by the table's `history.expire.*` properties, removes orphaned files older than
//! the safety interval, and (with `--optimize`) compacts first. One progress line per table
//! on stderr, then a summary.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use tarn_datafusion::TarnContext;

/// What `tarn maintain` was asked to do.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    pub optimize: bool,
    pub dry_run: bool,
    /// Orphans must be older than this many milliseconds.
    pub orphan_age_ms: i64,
}

#[derive(Debug, Default)]
struct Totals {
    tables: u64,
    failed: u64,
    compacted_files: u64,
    expired_versions: u64,
    deleted_files: u64,
    orphans: u64,
}

/// Runs maintenance on every table of the warehouse; `Err` with a message when any table
/// failed (the others are still maintained).
pub async fn run(ctx: &TarnContext, options: &MaintainOptions) -> Result<(), String> {
    let warehouse = ctx.warehouse();
    let mut tables = Vec::new();
    let mut abandoned = Vec::new();
    let namespaces = warehouse
        .list_namespaces()
        .await
        .map_err(|e| format!("cannot list namespaces: {e}"))?;
    for namespace in namespaces {
        let found = warehouse
            .list_locations(&namespace)
            .await
            .map_err(|e| format!("cannot list the tables of '{namespace}': {e}"))?;
        tables.extend(found.tables.into_iter().map(|t| (namespace.clone(), t)));
        abandoned.extend(
            found
                .without_table
                .into_iter()
                .map(|(t, location)| (format!("{namespace}.{t}"), location)),
        );
    }
    let mut totals = Totals::default();
    let count = tables.len();
    for (i, (namespace, table)) in tables.into_iter().enumerate() {
        let name = format!("{namespace}.{table}");
        totals.tables += 1;
        match maintain_table(ctx, &name, options, &mut totals).await {
            Ok(line) => eprintln!("[{}/{count}] {name}: {line}", i + 1),
            Err(e) => {
                totals.failed += 1;
                eprintln!("[{}/{count}] {name}: failed: {e}", i + 1);
            }
        }
    }
    remove_abandoned(abandoned, options, &mut totals).await;
    let (expired, deleted) = if options.dry_run {
        ("would expire", "would delete")
    } else {
        ("expired", "deleted")
    };
    eprintln!(
        "{}: {expired} {}, {deleted} {} of expired versions and {}{}{}",
        counted(totals.tables, "table"),
        counted(totals.expired_versions, "version"),
        counted(totals.deleted_files, "file"),
        counted(totals.orphans, "orphaned file"),
        if options.optimize && !options.dry_run {
            format!(", {} compacted", counted(totals.compacted_files, "file"))
        } else {
            String::new()
        },
        if totals.failed > 0 {
            format!("; {} failed", counted(totals.failed, "table"))
        } else {
            String::new()
        }
    );
    if totals.failed > 0 {
        Err(format!(
            "maintenance failed on {}",
            counted(totals.failed, "table")
        ))
    } else {
        Ok(())
    }
}

async fn maintain_table(
    ctx: &TarnContext,
    name: &str,
    options: &MaintainOptions,
    totals: &mut Totals,
) -> Result<String, String> {
    let quoted = name.replace('\'', "''");
    let mut parts = Vec::new();
    if options.optimize && !options.dry_run {
        let batches = query(ctx, &format!("OPTIMIZE {}", quote_name(name))).await?;
        let removed = u64_at(&batches, 0);
        totals.compacted_files += removed;
        parts.push(format!("compacted {}", counted(removed, "file")));
    } else if options.optimize {
        parts.push("not compacted (a dry run does not OPTIMIZE)".to_string());
    }
    let batches = query(
        ctx,
        &format!(
            "CALL tarn.expire_snapshots('{quoted}', dry_run => {})",
            options.dry_run
        ),
    )
    .await?;
    let expired = u64_at(&batches, 0);
    let oldest = u64_at(&batches, 1);
    let deleted = u64_at(&batches, 2) + u64_at(&batches, 3) + u64_at(&batches, 4);
    totals.expired_versions += expired;
    totals.deleted_files += deleted;
    let (expire, oldest_is, delete) = if options.dry_run {
        ("would expire", "oldest would be", "would delete")
    } else {
        ("expired", "oldest now", "deleted")
    };
    parts.push(format!(
        "{expire} {} ({oldest_is} {oldest}), {delete} {}",
        counted(expired, "version"),
        counted(deleted, "file")
    ));
    let cutoff = chrono::Utc::now().timestamp_millis() - options.orphan_age_ms;
    let cutoff = chrono::DateTime::from_timestamp_millis(cutoff)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let batches = query(
        ctx,
        &format!(
            "CALL tarn.remove_orphan_files('{quoted}', older_than => '{cutoff}', dry_run => {})",
            options.dry_run
        ),
    )
    .await?;
    let orphans: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    totals.orphans += orphans;
    parts.push(counted(orphans, "orphaned file"));
    Ok(parts.join(", "))
}

/// Removes what the table locations without a table (`name`, location) hold, under the
/// orphans' safety interval: the files of a CREATE TABLE AS that failed or was killed before
/// it created its table. One line for each location that held any.
async fn remove_abandoned(
    locations: Vec<(String, tarn_core::TableLocation)>,
    options: &MaintainOptions,
    totals: &mut Totals,
) {
    let cleanup = tarn_core::maintenance::OrphanOptions {
        older_than_ms: chrono::Utc::now().timestamp_millis() - options.orphan_age_ms,
        dry_run: options.dry_run,
    };
    let delete = if options.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (name, location) in locations {
        match tarn_core::maintenance::remove_abandoned_files(&location, &cleanup).await {
            Ok(report) if report.orphans.is_empty() => {}
            Ok(report) => {
                totals.orphans += report.orphans.len() as u64;
                eprintln!(
                    "{name} (no table): {delete} {}",
                    counted(report.orphans.len() as u64, "orphaned file")
                );
            }
            Err(e) => {
                totals.failed += 1;
                eprintln!("{name} (no table): failed: {e}");
            }
        }
    }
}

async fn query(ctx: &TarnContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let frame = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    frame.collect().await.map_err(|e| e.to_string())
}

fn u64_at(batches: &[RecordBatch], column: usize) -> u64 {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| {
            let values = b.column(column).as_primitive::<UInt64Type>();
            if values.is_null(0) {
                0
            } else {
                values.value(0)
            }
        })
        .unwrap_or(0)
}

/// `n` things: "1 table", "2 tables".
fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn quote_name(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}
