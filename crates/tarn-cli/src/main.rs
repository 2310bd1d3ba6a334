//! `tarn`: an interactive SQL shell on a tarn warehouse, and a one-shot runner for scripts.

mod command;
mod maintain;
mod print;
mod repl;
mod shell;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use print::Format;
use shell::{Flow, Shell, report};
use tarn_datafusion::TarnContext;

/// The directory used when no warehouse is given.
const DEFAULT_WAREHOUSE: &str = "tarn-warehouse";

#[derive(Debug, Parser)]
#[command(name = "tarn", version, about = "SQL on tarn lakehouse tables")]
struct Args {
    /// The warehouse: a local path, file://, memory://, s3://, gs:// or az:// URL.
    #[arg(short, long, env = "TARN_WAREHOUSE", default_value = DEFAULT_WAREHOUSE)]
    warehouse: String,
    /// Run this SQL (or meta command) and exit; may be repeated.
    #[arg(short = 'c', long = "command", allow_hyphen_values = true)]
    commands: Vec<String>,
    /// Run the statements in this file and exit; may be repeated.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Output format: table, csv, tsv, json or ndjson.
    #[arg(long, default_value = "table", value_parser = |s: &str| s.parse::<Format>())]
    format: Format,
    /// Keep going after a failed statement (the exit status still reports the failure).
    #[arg(long = "continue")]
    keep_going: bool,
    /// The most rows a table shows.
    #[arg(long, default_value_t = 40)]
    max_rows: usize,
    /// Show how long each statement takes.
    #[arg(long)]
    timing: bool,
    /// Print results only: no status lines ("3 rows", "OK", ...).
    #[arg(short, long)]
    quiet: bool,
    /// The most memory statements may use (e.g. 512M, 4G): operators that can spill do,
    /// writers close row groups early, and others fail with a clear error. Unlimited
    /// without it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,
    /// A store option for an s3://, gs:// or az:// warehouse, over the AWS_*, GOOGLE_* and
    /// AZURE_* variables: endpoint=http://127.0.0.1:9000, region=..., allow_http=true,
    /// access_key_id=..., max_retries=3, retry_timeout=30s, ... May be repeated.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE", value_parser = parse_option)]
    options: Vec<(String, String)>,
    /// What NULL prints as (default: NULL in tables, nothing in CSV and TSV, where an empty
    /// string prints as "").
    #[arg(long, value_name = "STRING")]
    null: Option<String>,
    #[command(subcommand)]
    command: Option<Subcommand>,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Apply every table's retention across the warehouse (for cron): expire snapshots by
    /// the tables' history.expire.* properties, then remove orphaned files.
    Maintain {
        /// Compact small files and fold deletion vectors first (OPTIMIZE).
        #[arg(long)]
        optimize: bool,
        /// Report what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove only orphaned files older than this: 1d, 12h, 30m...
        #[arg(long, default_value = "1d", value_parser = parse_duration)]
        orphan_age: i64,
    },
}

fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => u32::MAX,
    };
    number
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && shift != u32::MAX)
        .and_then(|n| n.checked_mul(1usize.checked_shl(shift)?))
        .ok_or_else(|| format!("'{text}' is not a size; write e.g. 512M or 4G"))
}

fn parse_duration(text: &str) -> Result<i64, String> {
    tarn_datafusion::parse_duration_ms(text)
        .and_then(|ms| i64::try_from(ms).ok())
        .ok_or_else(|| format!("'{text}' is not a duration; write e.g. 1d, 12h, 30m or 90s"))
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "'{text}' is not an option; write KEY=VALUE, e.g. region=eu-west-1"
        )),
    }
}

/// The context over `warehouse` with store `options`, with a memory pool of `limit` bytes
/// when given.
async fn open(
    warehouse: &str,
    options: &tarn_core::storage::StoreOptions,
    limit: Option<usize>,
) -> datafusion::error::Result<TarnContext> {
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
    if let Some(limit) = limit {
        runtime = runtime.with_memory_pool(tarn_datafusion::memory_pool(limit));
    }
    let runtime = runtime.build_arc()?;
    let warehouse = tarn_core::Warehouse::open_with(warehouse, options)
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    TarnContext::new_with_runtime(
        warehouse,
        datafusion::prelude::SessionConfig::new(),
        runtime,
    )
    .await
}

/// Whether `warehouse` holds a warehouse already: at least one namespace. A local path that
/// does not exist is not opened (opening it would create the folder).
async fn warehouse_exists(
    warehouse: &str,
    options: &tarn_core::storage::StoreOptions,
) -> tarn_core::Result<bool> {
    let local = match warehouse.strip_prefix("file://") {
        Some(path) => Some(path),
        None if !warehouse.contains("://") => Some(warehouse),
        None => None,
    };
    if local.is_some_and(|path| !std::path::Path::new(path).exists()) {
        return Ok(false);
    }
    let warehouse = tarn_core::Warehouse::open_with(warehouse, options)?;
    Ok(!warehouse.list_namespaces().await?.is_empty())
}

/// A `-c` or `-f` argument.
enum Source {
    Command(String),
    File(PathBuf),
}

/// The stack statements are parsed and planned on. A generated statement can chain thousands
/// of conditions (`id = 1 OR id = 2 OR ...`), and parsing, copying and planning it recurse
/// once per link: the default 8 MiB ends such a statement, and the shell with it, by a stack
/// overflow. Only the pages a statement touches are ever allocated.
const MAIN_STACK: usize = 512 << 20;
/// The stack of the runtime's threads, which evaluate what was planned.
const WORKER_STACK: usize = 64 << 20;

fn main() -> ExitCode {
    let shell = std::thread::Builder::new()
        .name("tarn".into())
        .stack_size(MAIN_STACK)
        .spawn(run);
    match shell.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // A panic has already said what happened.
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            report(&format!("cannot start: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    // -c and -f run in the order they were given.
    let mut sources: Vec<(usize, Source)> = Vec::new();
    if let Some(indices) = matches.indices_of("commands") {
        sources.extend(
            indices
                .zip(args.commands.iter())
                .map(|(i, c)| (i, Source::Command(c.clone()))),
        );
    }
    if let Some(indices) = matches.indices_of("files") {
        sources.extend(
            indices
                .zip(args.files.iter())
                .map(|(i, f)| (i, Source::File(f.clone()))),
        );
    }
    sources.sort_by_key(|(i, _)| *i);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report(&format!("cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if args.warehouse.trim().is_empty() {
        report("--warehouse is empty; give a path or URL (without it, tarn uses ./tarn-warehouse)");
        return ExitCode::FAILURE;
    }
    let store_options: tarn_core::storage::StoreOptions = args.options.iter().cloned().collect();
    if matches!(args.command, Some(Subcommand::Maintain { .. })) {
        // Opening a warehouse creates it: from cron, a mistyped path would "succeed" with
        // nothing maintained, and leave an empty warehouse behind.
        match runtime.block_on(warehouse_exists(&args.warehouse, &store_options)) {
            Ok(true) => {}
            Ok(false) => {
                report(&format!(
                    "there is no warehouse at '{}', so there is nothing to maintain; check \
                     --warehouse (or TARN_WAREHOUSE)",
                    args.warehouse
                ));
                return ExitCode::FAILURE;
            }
            Err(e) => {
                report(&format!("cannot open warehouse '{}': {e}", args.warehouse));
                return ExitCode::FAILURE;
            }
        }
    }
    let ctx = match runtime.block_on(open(&args.warehouse, &store_options, args.memory_limit)) {
        Ok(ctx) => ctx,
        Err(e) => {
            report(&format!(
                "cannot open warehouse '{}': {}",
                args.warehouse,
                tarn_datafusion::error::message_of(&e)
            ));
            return ExitCode::FAILURE;
        }
    };
    if let Some(Subcommand::Maintain {
        optimize,
        dry_run,
        orphan_age,
    }) = args.command
    {
        let options = maintain::MaintainOptions {
            optimize,
            dry_run,
            orphan_age_ms: orphan_age,
        };
        return match runtime.block_on(maintain::run(&ctx, &options)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                report(&e);
                ExitCode::FAILURE
            }
        };
    }
    let mut shell = Shell::new(ctx, args.format, args.max_rows);
    shell.timing = args.timing;
    shell.quiet = args.quiet;
    if let Some(null) = args.null {
        shell.set_null(null);
    }

    let one_shot = !args.commands.is_empty() || !args.files.is_empty();
    if one_shot || !std::io::stdin().is_terminal() {
        // Each script with the name its errors give it (a command's are its own).
        let mut scripts: Vec<(String, Option<String>)> = Vec::new();
        for (_, source) in sources {
            match source {
                Source::Command(c) => scripts.push((format!("{c}\n"), None)),
                Source::File(file) => match std::fs::read_to_string(&file) {
                    Ok(text) => scripts.push((text, Some(file.display().to_string()))),
                    Err(e) => {
                        report(&format!("cannot read {}: {e}", file.display()));
                        return ExitCode::FAILURE;
                    }
                },
            }
        }
        runtime.block_on(async { shell.cancel_on_interrupt() });
        let mut failed = false;
        for (script, origin) in scripts {
            let (flow, script_failed) =
                runtime.block_on(shell.run_script(&script, origin.as_deref(), args.keep_going));
            failed |= script_failed;
            if flow == Flow::Quit || (script_failed && !args.keep_going) {
                break;
            }
        }
        if !one_shot {
            // Statement by statement as they arrive, so that a program feeding tarn sees
            // each one committed before it sends the next, not at the end of its input.
            let lines = std::io::stdin().lock().lines();
            let (_, stdin_failed) =
                runtime.block_on(shell.run_lines(lines, Some("<stdin>"), args.keep_going));
            failed |= stdin_failed;
        }
        runtime.block_on(shell.context().finish_cancelled());
        if shell.interrupted {
            // As a shell reports a process Ctrl-C ended: 128 + SIGINT.
            return ExitCode::from(130);
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }

    shell.interactive = true;
    // From here on Ctrl-C is tarn's: it cancels a running statement instead of ending the
    // process, even when it arrives between statements.
    #[cfg(unix)]
    runtime.block_on(async {
        let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    });
    let location = shell.context().warehouse().url().to_string();
    let banner = format!(
        "tarn {} - warehouse {location}{}\nType \\? for help, \\q to quit. Statements end with ';'.",
        env!("CARGO_PKG_VERSION"),
        if args.warehouse == DEFAULT_WAREHOUSE {
            " (the default, in the current directory)"
        } else {
            ""
        }
    );
    let outcome = repl::run(&runtime, &mut shell, &banner);
    // A statement cancelled just before `\q` may still be taking its table back out.
    runtime.block_on(shell.context().finish_cancelled());
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&format!("the line editor failed: {e}"));
            ExitCode::FAILURE
        }
    }
}
