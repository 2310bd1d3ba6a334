//! The shell's state and how it runs statements and meta commands.
//!
//! Results go to standard output (or the file of `\o`); status lines ("3 rows", "OK", "2
//! rows affected; t is now at version 4") go with them in table format, to standard error in
//! the formats programs read (CSV, TSV, JSON), and nowhere with `--quiet`. A closed standard
//! output (`tarn ... | head -1`) ends the shell quietly; any other failure to write is an
//! error.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
use tarn_datafusion::{ParsedStatement, TABLE_METADATA_KEY, TarnContext, VERSION_METADATA_KEY};

use crate::command::{Command, HELP};
use crate::print::{Format, Printer, Style};

/// Ctrl-C while a script runs.
#[derive(Default)]
struct Interrupt {
    /// Cancels the running statement; kept as a permit if it arrives just as one ends.
    cancel: tokio::sync::Notify,
    /// Whether a statement is running.
    running: std::sync::Mutex<bool>,
}

impl Interrupt {
    /// Marks a statement as running until the guard is dropped.
    fn running(&self) -> impl Drop + '_ {
        struct Running<'a>(&'a Interrupt);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) = false;
            }
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Running(self)
    }

    /// Ends tarn if Ctrl-C came while the statement that has just ended was finishing: it
    /// found nothing left to cancel, so it counts as Ctrl-C between statements, which ends
    /// tarn. (Called once the statement no longer counts as running.)
    fn end_if_it_came(&self) {
        if self.cancel.notified().now_or_never().is_some() {
            std::process::exit(130);
        }
    }
}

/// How deep `\i` may nest.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Whether the shell goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// Why a statement or command stopped.
#[derive(Debug)]
pub enum Stop {
    /// It failed; the message says why.
    Failed(String),
    /// Standard output was closed by its reader: the shell ends quietly.
    Closed,
    /// Ctrl-C cancelled a statement of a script: the script ends.
    Interrupted,
    /// A script included by another one failed, and its error has been printed.
    Reported,
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Failed(message)
    }
}

/// What NULL prints as in `format` unless `--null` says: `NULL` in tables, nothing in CSV
/// and TSV (where an empty string prints as `""`).
fn default_null(format: Format) -> String {
    match format {
        Format::Table => "NULL".into(),
        _ => String::new(),
    }
}

impl From<DataFusionError> for Stop {
    fn from(e: DataFusionError) -> Self {
        let message = tarn_datafusion::error::message_of(&e);
        if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
            // DataFusion's account of the pool comes after what to do about it.
            return Stop::Failed(format!(
                "the statement needs more memory than --memory-limit allows: raise the limit, \
                 or run it on fewer partitions (SET datafusion.execution.target_partitions = \
                 1). {message}"
            ));
        }
        Stop::Failed(message)
    }
}

pub struct Shell {
    ctx: TarnContext,
    pub format: Format,
    pub style: Style,
    pub timing: bool,
    pub max_rows: usize,
    /// Interactive: Ctrl-C cancels a statement, progress is shown, tables fit the terminal.
    pub interactive: bool,
    /// No status lines.
    pub quiet: bool,
    /// `--null`: what NULL prints as whatever the format; without it, each format's own.
    null: Option<String>,
    /// `\o`: results go to this file instead of standard output.
    output: Option<(PathBuf, File)>,
    /// How many `\i` files are being run inside each other.
    depth: usize,
    /// The SQL run last, for `\watch`.
    last_sql: Option<String>,
    /// Ctrl-C while a script runs (see [`Shell::cancel_on_interrupt`]).
    interrupt: Option<Arc<Interrupt>>,
    /// Whether Ctrl-C cancelled a statement of a script.
    pub interrupted: bool,
}

impl Shell {
    pub fn new(ctx: TarnContext, format: Format, max_rows: usize) -> Self {
        Shell {
            ctx,
            format,
            style: Style {
                null: default_null(format),
            },
            timing: false,
            max_rows,
            interactive: false,
            quiet: false,
            null: None,
            output: None,
            depth: 0,
            last_sql: None,
            interrupt: None,
            interrupted: false,
        }
    }

    /// What NULL prints as in every format (`--null`).
    pub fn set_null(&mut self, null: String) {
        self.style.null = null.clone();
        self.null = Some(null);
    }

    /// From now on, Ctrl-C cancels the running statement of a script (`tarn -c`, `-f`,
    /// standard input) and ends the script, instead of killing the process mid-statement:
    /// what a cancelled statement leaves to undo (the table of a CREATE TABLE AS whose rows
    /// never committed) is undone by [`TarnContext::finish_cancelled`]. Between statements,
    /// such as while tarn waits for the next line on standard input, Ctrl-C ends tarn at
    /// once. Call it inside the runtime.
    pub fn cancel_on_interrupt(&mut self) {
        let interrupt = Arc::new(Interrupt::default());
        // Listening from here on, not from when the task first runs.
        #[cfg(unix)]
        let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        else {
            return;
        };
        let listener = interrupt.clone();
        tokio::spawn(async move {
            loop {
                #[cfg(unix)]
                let received = signal.recv().await.is_some();
                #[cfg(not(unix))]
                let received = tokio::signal::ctrl_c().await.is_ok();
                if !received {
                    return;
                }
                let running = listener.running.lock().unwrap_or_else(|e| e.into_inner());
                if !*running {
                    // Nothing to cancel; no statement starts while this is held. (A second
                    // Ctrl-C while a cancelled statement is being undone ends tarn too.)
                    std::process::exit(130);
                }
                listener.cancel.notify_one();
            }
        });
        self.interrupt = Some(interrupt);
    }

    /// Resolves at Ctrl-C while a script runs; never without [`Shell::cancel_on_interrupt`].
    async fn script_interrupted(interrupt: Option<Arc<Interrupt>>) {
        match interrupt {
            Some(interrupt) => interrupt.cancel.notified().await,
            None => std::future::pending().await,
        }
    }

    pub fn context(&self) -> &TarnContext {
        &self.ctx
    }

    /// Writes results.
    fn emit(&mut self, text: &str) -> Result<(), Stop> {
        match &mut self.output {
            Some((path, file)) => file
                .write_all(text.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|e| Stop::Failed(format!("cannot write to {}: {e}", path.display()))),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::BrokenPipe => Stop::Closed,
                        _ => Stop::Failed(format!("cannot write the output: {e}")),
                    })
            }
        }
    }

    /// Writes a status line: with the results in table format, to standard error otherwise.
    fn status(&mut self, line: &str) -> Result<(), Stop> {
        if self.quiet {
            return Ok(());
        }
        if self.format == Format::Table {
            self.emit(&format!("{line}\n"))
        } else {
            let _ = writeln!(std::io::stderr(), "{line}");
            Ok(())
        }
    }

    /// Runs a script: SQL statements ending with `;` and meta commands on lines of their own.
    /// Stops at the first error unless `keep_going`; returns whether any statement failed.
    /// `origin` names the script (a file) in its errors, with the line each failed statement
    /// starts on.
    pub async fn run_script(
        &mut self,
        text: &str,
        origin: Option<&str>,
        keep_going: bool,
    ) -> (Flow, bool) {
        let lines = text.lines().map(|line| Ok(line.to_string()));
        self.run_lines(lines, origin, keep_going).await
    }

    /// Runs a script as its lines arrive (standard input fed by another program): each
    /// statement runs once its `;` has been read, not when the input ends.
    pub async fn run_lines(
        &mut self,
        lines: impl Iterator<Item = std::io::Result<String>>,
        origin: Option<&str>,
        keep_going: bool,
    ) -> (Flow, bool) {
        let mut failed = false;
        let mut buffer = String::new();
        // The line of the script the buffer starts on, counting from 1.
        let mut buffer_start = 1;
        let stopped = |stop: Stop, failed: &mut bool, at: Place| -> Option<(Flow, bool)> {
            match stop {
                Stop::Closed => Some((Flow::Quit, *failed)),
                Stop::Interrupted => {
                    report("statement cancelled");
                    Some((Flow::Quit, true))
                }
                Stop::Failed(e) => {
                    report(&at.locate(origin, &e));
                    *failed = true;
                    (!keep_going).then_some((Flow::Continue, true))
                }
                Stop::Reported => {
                    *failed = true;
                    (!keep_going).then_some((Flow::Continue, true))
                }
            }
        };
        // The end of the input ends the last statement, with its `;` or without.
        let lines = lines.map(Some).chain(std::iter::once(None));
        for (number, line) in (1..).zip(lines) {
            let (at_end, line) = match line {
                None => (true, String::new()),
                Some(Ok(line)) => (false, line),
                Some(Err(e)) => {
                    report(&format!("cannot read standard input: {e}"));
                    return (Flow::Quit, true);
                }
            };
            if buffer.is_empty() {
                buffer_start = number;
            }
            if buffer.trim().is_empty() && line.trim_start().starts_with('\\') {
                buffer.clear();
                match self.run_command_line(&line).await {
                    Ok(Flow::Quit) => return (Flow::Quit, failed),
                    Ok(Flow::Continue) => {}
                    Err(stop) => {
                        if let Some(end) = stopped(stop, &mut failed, Place::line(number)) {
                            return end;
                        }
                    }
                }
                continue;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if at_end || statement_complete(&buffer) {
                let sql = std::mem::take(&mut buffer);
                if !sql.trim().is_empty() {
                    self.last_sql = Some(sql.clone());
                }
                for (line, statement) in split_statements(&sql) {
                    if let Err(stop) = self.run_statements(&statement).await
                        && let Some(end) = stopped(
                            stop,
                            &mut failed,
                            Place::of(&statement, buffer_start + line),
                        )
                    {
                        return end;
                    }
                }
            }
        }
        (Flow::Continue, failed)
    }

    pub async fn run_command_line(&mut self, line: &str) -> Result<Flow, Stop> {
        let command: Command = line.parse()?;
        self.run_command(command).await
    }

    /// Runs one or more SQL statements, one after another, stopping at the first error (the
    /// statements before it have run).
    pub async fn run_sql(&mut self, sql: &str) -> Result<(), Stop> {
        self.last_sql = Some(sql.to_string());
        for (_, statement) in split_statements(sql) {
            self.run_statements(&statement).await?;
        }
        Ok(())
    }

    /// Runs the statements of `sql`, parsed together.
    async fn run_statements(&mut self, sql: &str) -> Result<(), Stop> {
        let statements = self.ctx.parse(sql)?;
        for statement in statements {
            let started = Instant::now();
            let requests = self.ctx.warehouse().requests();
            if self.interactive {
                tokio::select! {
                    r = Box::pin(self.execute(statement)) => r?,
                    _ = tokio::signal::ctrl_c() => {
                        return Err(Stop::Failed("statement cancelled".into()));
                    }
                }
            } else {
                let interrupt = self.interrupt.clone();
                let running = interrupt.as_deref().map(Interrupt::running);
                tokio::select! {
                    r = Box::pin(self.execute(statement)) => r?,
                    _ = Self::script_interrupted(interrupt.clone()) => {
                        self.interrupted = true;
                        return Err(Stop::Interrupted);
                    }
                }
                drop(running);
                if let Some(interrupt) = interrupt {
                    interrupt.end_if_it_came();
                }
            }
            if self.timing {
                let requests = self.ctx.warehouse().requests().since(requests);
                self.status(&format!(
                    "Time: {:.3} s; requests: {requests}",
                    started.elapsed().as_secs_f64()
                ))?;
            }
        }
        Ok(())
    }

    /// Runs one statement and prints its result and status line. Rows are printed as they
    /// arrive (a table, once its rows to show are in), so that memory stays bounded.
    async fn execute(&mut self, statement: ParsedStatement) -> Result<(), Stop> {
        let df = self.ctx.execute(statement).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let rows = Arc::new(AtomicU64::new(0));
        let mut spinner = (self.interactive && std::io::stderr().is_terminal())
            .then(|| Spinner::start(rows.clone()));
        let mut stream = df.execute_stream().await?;
        if schema.fields().is_empty() {
            while let Some(batch) = stream.next().await {
                batch?;
            }
            drop(spinner);
            return self.status("OK");
        }
        if Written::is_count(&schema) {
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                batches.push(batch?);
            }
            drop(spinner);
            if let Some(written) = Written::of(&batches) {
                return self.status(&written.to_string());
            }
            return self
                .print(schema.clone(), stream_of(schema, batches), None)
                .await;
        }
        self.print(schema, stream, spinner.take().map(|s| (s, rows)))
            .await
    }

    /// Prints a result's rows and the status line after them.
    async fn print(
        &mut self,
        schema: SchemaRef,
        mut stream: SendableRecordBatchStream,
        mut spinner: Option<(Spinner, Arc<AtomicU64>)>,
    ) -> Result<(), Stop> {
        let width = if self.interactive && self.output.is_none() {
            terminal_width()
        } else {
            None
        };
        let mut printer = Printer::new(
            schema,
            self.format,
            self.style.clone(),
            self.max_rows,
            width,
        );
        let mut pending = printer.start();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if let Some((_, rows)) = &spinner {
                rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            }
            pending.push_str(&printer.batch(&batch)?);
            if !pending.is_empty() {
                // The spinner and the rows would share the terminal.
                spinner = None;
                self.emit(&std::mem::take(&mut pending))?;
            }
        }
        drop(spinner);
        pending.push_str(&printer.finish()?);
        self.emit(&pending)?;
        let total = printer.rows();
        // Only tables are cut to `max_rows`.
        if self.format == Format::Table && total > self.max_rows {
            self.status(&format!(
                "{total} rows (showing the first {}; use --max-rows to see more)",
                self.max_rows
            ))
        } else {
            self.status(&format!("{total} {}", plural(total as u64, "row")))
        }
    }

    pub async fn run_command(&mut self, command: Command) -> Result<Flow, Stop> {
        let catalog = self.ctx.catalog_name().to_string();
        match command {
            Command::Help => self.emit(&format!("{HELP}\n"))?,
            Command::Quit => return Ok(Flow::Quit),
            Command::Tables(ns) => {
                let filter = ns
                    .map(|n| format!(" AND table_schema = {}", literal(&n)))
                    .unwrap_or_default();
                self.run_sql(&format!(
                    "SELECT table_schema AS namespace, table_name AS \"table\" FROM information_schema.tables \
                     WHERE table_catalog = {} AND table_schema <> 'information_schema'{filter} ORDER BY 1, 2;",
                    literal(&catalog)
                ))
                .await?;
            }
            Command::Namespaces => self.run_sql("SHOW SCHEMAS;").await?,
            Command::Describe(name) => {
                let (ns, table) = split_name(&name);
                let Some(t) = self.ctx.catalog().load(&ns, &table).await? else {
                    // A view, or no such relation: DataFusion's description or its error.
                    return self
                        .run_sql(&format!("DESCRIBE {};", quoted_table(&ns, &table)))
                        .await
                        .map(|()| Flow::Continue);
                };
                self.run_sql(&format!(
                    "SELECT \"column\", type, nullable, \"default\", field_id FROM {};",
                    quoted_table(&ns, &format!("{table}$columns"))
                ))
                .await?;
                let metadata = t.table().metadata();
                let spec = metadata.default_spec();
                let schema = metadata.current_schema();
                let parts: Vec<String> = spec
                    .fields()
                    .iter()
                    .map(|f| {
                        let source = schema
                            .field_by_id(f.source_id)
                            .map(|c| c.name.clone())
                            .unwrap_or_default();
                        format!("{}({source})", f.transform)
                    })
                    .collect();
                let mut text = format!(
                    "Partitioned by: {}\nVersion: {}\n",
                    if parts.is_empty() {
                        "(not partitioned)".into()
                    } else {
                        parts.join(", ")
                    },
                    t.table().version()
                );
                for (k, v) in metadata.properties() {
                    text.push_str(&format!("Property: {k} = {v}\n"));
                }
                if !self.quiet {
                    self.emit(&text)?;
                }
            }
            Command::Snapshots(name) => {
                let (ns, table) = split_name(&name);
                self.run_sql(&format!(
                    "SELECT version, committed_at, operation, added_rows, removed_rows, total_rows, total_files \
                     FROM {} ORDER BY version;",
                    quoted_table(&ns, &format!("{table}$snapshots"))
                ))
                .await?;
            }
            Command::Changes { table, from, to } => {
                let (ns, table) = split_name(&table);
                let name = format!("{ns}.{table}").replace('\'', "''");
                let to = to.map(|to| format!(", {to}")).unwrap_or_default();
                // Within a version: what went, then each update's before and after, then
                // what came.
                self.run_sql(&format!(
                    "SELECT * FROM table_changes('{name}', {from}{to}) \
                     ORDER BY _commit_version, CASE _change_type WHEN 'delete' THEN 0 \
                     WHEN 'update_preimage' THEN 1 WHEN 'update_postimage' THEN 2 ELSE 3 END;"
                ))
                .await?;
            }
            Command::Timing(on) => {
                self.timing = on.unwrap_or(!self.timing);
                let state = if self.timing { "on" } else { "off" };
                self.status(&format!("Timing is {state}."))?;
            }
            Command::Format(format) => {
                self.format = format;
                if self.null.is_none() {
                    self.style.null = default_null(format);
                }
                let name = format!("{format:?}").to_lowercase();
                self.status(&format!("Output format is {name}."))?;
            }
            Command::Include(path) => {
                if self.depth >= MAX_INCLUDE_DEPTH {
                    return Err(Stop::Failed(format!(
                        "\\i {} goes deeper than {MAX_INCLUDE_DEPTH} files; does a file include itself?",
                        path.display()
                    )));
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                self.depth += 1;
                let origin = path.display().to_string();
                let (flow, failed) = Box::pin(self.run_script(&text, Some(&origin), false)).await;
                self.depth -= 1;
                if self.interrupted {
                    return Err(Stop::Interrupted);
                }
                // Said once, by the outermost file that includes it: a file that includes
                // itself would otherwise say it at each level.
                if failed && self.depth > 0 {
                    return Err(Stop::Reported);
                }
                if failed {
                    return Err(Stop::Failed(format!(
                        "{} stopped at its first error",
                        path.display()
                    )));
                }
                return Ok(flow);
            }
            Command::Watch { interval, count } => {
                let Some(sql) = self.last_sql.clone() else {
                    return Err(Stop::Failed(
                        "\\watch runs the last SQL again, and none has run yet".into(),
                    ));
                };
                let mut runs = 0;
                loop {
                    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
                    self.status(&format!("Every {} s: {now} UTC", interval.as_secs_f64()))?;
                    self.run_sql(&sql).await?;
                    runs += 1;
                    if count.is_some_and(|count| runs >= count) {
                        break;
                    }
                    if self.interactive {
                        tokio::select! {
                            _ = tokio::time::sleep(interval) => {}
                            _ = tokio::signal::ctrl_c() => break,
                        }
                    } else {
                        tokio::time::sleep(interval).await;
                    }
                }
            }
            Command::Output(None) => {
                self.output = None;
                self.status("Output goes to the screen.")?;
            }
            Command::Output(Some(path)) => {
                let file = File::create(&path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                self.status(&format!("Output goes to {}.", path.display()))?;
                self.output = Some((path, file));
            }
        }
        Ok(Flow::Continue)
    }
}

/// What a write statement reports: its count, and the table and version it committed.
struct Written {
    rows: u64,
    table: Option<String>,
    version: Option<String>,
}

impl Written {
    /// Whether a result with `schema` may be a write's: one `count` column.
    fn is_count(schema: &SchemaRef) -> bool {
        schema.fields().len() == 1
            && schema.field(0).name() == "count"
            && schema.field(0).data_type() == &DataType::UInt64
    }

    /// The result of a write: one `count` row (tarn's commits add the table and version to
    /// the batch's schema metadata).
    fn of(batches: &[RecordBatch]) -> Option<Written> {
        let batch = batches.first()?;
        if batches.len() != 1
            || batch.num_columns() != 1
            || batch.num_rows() != 1
            || batch.schema().field(0).name() != "count"
        {
            return None;
        }
        let rows = batch.column(0).as_primitive_opt::<UInt64Type>()?.value(0);
        let metadata = batch.schema().metadata().clone();
        Some(Written {
            rows,
            table: metadata.get(TABLE_METADATA_KEY).map(|t| {
                t.strip_prefix(&format!("{}.", tarn_datafusion::DEFAULT_NAMESPACE))
                    .unwrap_or(t)
                    .to_string()
            }),
            version: metadata.get(VERSION_METADATA_KEY).cloned(),
        })
    }
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} affected", self.rows, plural(self.rows, "row"))?;
        match (&self.table, &self.version) {
            (Some(table), Some(version)) => write!(f, "; {table} is now at version {version}"),
            (Some(table), None) => write!(f, "; {table} is unchanged"),
            _ => Ok(()),
        }
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// A string as a SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `ns.table` as a quoted SQL name.
fn quoted_table(ns: &str, table: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        ns.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

fn split_name(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((ns, t)) => (
            ns.trim_matches('"').to_string(),
            t.trim_matches('"').to_string(),
        ),
        None => (
            tarn_datafusion::DEFAULT_NAMESPACE.to_string(),
            name.trim_matches('"').to_string(),
        ),
    }
}

/// Walks `text` outside comments as the SQL parser reads it: each character with its byte
/// offset and whether it is inside quotes (a closing quote is not). Comments are `--` to the
/// end of the line and `/* */`, which nest; a string is `'...'` (`''` inside is a quote) or
/// `E'...'`, where a backslash escapes the next character.
fn scan(text: &str, mut visit: impl FnMut(usize, char, bool)) {
    #[derive(PartialEq)]
    enum State {
        Plain,
        Single { escapes: bool },
        Double,
    }
    let mut state = State::Plain;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, c)| *c);
        match state {
            State::Plain => match c {
                '\'' => {
                    // `E'` opens an escaped string; `name'` or `1E'` do not.
                    let mut before = text[..i].chars().rev();
                    let escapes = matches!(before.next(), Some('e' | 'E'))
                        && !before
                            .next()
                            .is_some_and(|p| p.is_alphanumeric() || p == '_');
                    state = State::Single { escapes };
                }
                '"' => state = State::Double,
                '-' if next == Some('-') => {
                    for (_, c) in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
                '/' if next == Some('*') => {
                    chars.next();
                    let mut depth = 1;
                    while depth > 0 {
                        match chars.next() {
                            Some((_, '*')) if chars.peek().map(|(_, c)| *c) == Some('/') => {
                                chars.next();
                                depth -= 1;
                            }
                            Some((_, '/')) if chars.peek().map(|(_, c)| *c) == Some('*') => {
                                chars.next();
                                depth += 1;
                            }
                            Some(_) => {}
                            None => return,
                        }
                    }
                    continue;
                }
                _ => {}
            },
            State::Single { escapes } => {
                if escapes && c == '\\' {
                    visit(i, c, true);
                    if let Some((j, escaped)) = chars.next() {
                        visit(j, escaped, true);
                    }
                    continue;
                }
                if c == '\'' {
                    if next == Some('\'') {
                        visit(i, c, true);
                        let (j, quote) = chars.next().expect("peeked");
                        visit(j, quote, true);
                        continue;
                    }
                    state = State::Plain;
                }
            }
            State::Double => {
                if c == '"' {
                    state = State::Plain;
                }
            }
        }
        visit(i, c, state != State::Plain);
    }
}

/// Whether `buffer` holds complete statements: it ends with `;` outside quotes and comments.
pub fn statement_complete(buffer: &str) -> bool {
    let mut last_significant = None;
    scan(buffer, |_, c, quoted| {
        if !c.is_whitespace() {
            last_significant = Some((c, quoted));
        }
    });
    matches!(last_significant, Some((';', false)))
}

/// The statements of `text`, split at each `;` outside quotes and comments, so that each
/// runs (or fails) on its own, in order, as in psql. Each comes with the line of `text` it
/// starts on (from 0), and is indented as far as it starts into that line, so that the SQL
/// parser's line and column count from there. Text after the last `;` is a statement too.
pub fn split_statements(text: &str) -> Vec<(usize, String)> {
    let mut ends = Vec::new();
    scan(text, |i, c, quoted| {
        if c == ';' && !quoted {
            ends.push(i + 1);
        }
    });
    if ends.last() != Some(&text.len()) {
        ends.push(text.len());
    }
    let mut start = 0;
    let mut out = Vec::new();
    for end in ends {
        let piece = &text[start..end];
        if !piece.trim().is_empty() {
            let before = &text[..start];
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let indent = " ".repeat(before[line_start..].chars().count());
            out.push((before.matches('\n').count(), format!("{indent}{piece}")));
        }
        start = end;
    }
    out
}

/// Where in a script a failed statement or meta command is.
#[derive(Clone, Copy)]
struct Place {
    /// The line it starts on, counting from 1.
    line: usize,
    /// The line its text starts on (blank and comment lines before the statement included),
    /// which is line 1 to the SQL parser.
    text_start: usize,
}

impl Place {
    fn line(line: usize) -> Place {
        Place {
            line,
            text_start: line,
        }
    }

    /// The place of the statements in `text`, which starts on line `text_start`.
    fn of(text: &str, text_start: usize) -> Place {
        let mut first = None;
        scan(text, |i, c, _| {
            if first.is_none() && !c.is_whitespace() {
                first = Some(i);
            }
        });
        let before = text[..first.unwrap_or(0)].matches('\n').count();
        Place {
            line: text_start + before,
            text_start,
        }
    }

    /// `error` named by this place in the script `origin` (`file:line: error`), the SQL
    /// parser's `Line: n` counted from the start of the script; unchanged without an origin.
    fn locate(&self, origin: Option<&str>, error: &str) -> String {
        let Some(origin) = origin else {
            return error.to_string();
        };
        const MARKER: &str = "at Line: ";
        let mut shifted = String::with_capacity(error.len());
        let mut rest = error;
        while let Some(i) = rest.find(MARKER) {
            let (head, tail) = rest.split_at(i + MARKER.len());
            shifted.push_str(head);
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            match tail[..digits].parse::<usize>() {
                Ok(n) => shifted.push_str(&(n + self.text_start - 1).to_string()),
                Err(_) => shifted.push_str(&tail[..digits]),
            }
            rest = &tail[digits..];
        }
        shifted.push_str(rest);
        format!("{origin}:{}: {shifted}", self.line)
    }
}

/// A stream of batches already collected.
fn stream_of(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}

/// Prints an error on standard error (never fails: there is nowhere else to report to).
pub fn report(error: &str) {
    let _ = writeln!(std::io::stderr(), "Error: {error}");
}

fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or(Some(120))
}

/// The progress line of a running statement; stops and clears itself when dropped, however
/// the statement ends (finished, failed or cancelled).
struct Spinner(tokio::task::JoinHandle<()>);

impl Spinner {
    fn start(rows: Arc<AtomicU64>) -> Spinner {
        Spinner(tokio::spawn(async move {
            let frames = ['|', '/', '-', '\\'];
            let started = Instant::now();
            tokio::time::sleep(Duration::from_millis(500)).await;
            for i in 0usize.. {
                let _ = write!(
                    std::io::stderr(),
                    "\r\x1b[K{} running {:.1} s, {} rows so far (Ctrl-C cancels)",
                    frames[i % frames.len()],
                    started.elapsed().as_secs_f64(),
                    rows.load(Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.abort();
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_ignores_quoted_semicolons() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1;\n  "));
        assert!(!statement_complete("SELECT ';'"));
        assert!(!statement_complete("SELECT 1 -- done;"));
        assert!(statement_complete("SELECT 'a;b';"));
        assert!(!statement_complete("SELECT\n  1"));
    }

    #[test]
    fn completeness_reads_block_comments_and_escaped_strings() {
        assert!(statement_complete("/* it's a note */ SELECT 1;"));
        assert!(statement_complete("SELECT 1; /* done */"));
        assert!(!statement_complete("SELECT 1 /* done; */"));
        assert!(!statement_complete("SELECT 1 /* a /* nested */ one; */"));
        assert!(statement_complete("SELECT 1 /* a /* nested */ one */;"));
        assert!(!statement_complete("SELECT 1 /* never closed;"));
        assert!(statement_complete("SELECT E'it\\'s';"));
        assert!(statement_complete("SELECT E'a\\\\';"));
        assert!(statement_complete("SELECT E'a''b\\'c';"));
        assert!(!statement_complete("SELECT 'a\\';'"));
        assert!(statement_complete("SELECT 'a\\';"));
        assert!(statement_complete("SELECT name'x';"));
        assert!(statement_complete("SELECT same'x\\';"));
        assert!(!statement_complete("SELECT E'x\\';"));
    }

    #[test]
    fn statements_split_where_they_end_and_keep_their_place() {
        let text = "SELECT 1; SELEC 2;\n-- a ';' comment\nSELECT 'a;b'\n  ;\n\n";
        assert_eq!(
            split_statements(text),
            vec![
                (0, "SELECT 1;".to_string()),
                (0, format!("{} SELEC 2;", " ".repeat(9))),
                (
                    0,
                    format!("{}\n-- a ';' comment\nSELECT 'a;b'\n  ;", " ".repeat(18))
                ),
            ]
        );
        assert_eq!(
            split_statements("/* it's; */ SELEC 1;\nSELECT /* ; */ 2;"),
            vec![
                (0, "/* it's; */ SELEC 1;".to_string()),
                (0, format!("{}\nSELECT /* ; */ 2;", " ".repeat(20))),
            ]
        );
        assert_eq!(
            split_statements("SELECT 1"),
            vec![(0, "SELECT 1".to_string())]
        );
        assert_eq!(split_statements(" ;\n "), vec![(0, " ;".to_string())]);
        assert_eq!(
            split_statements("SELECT 1;\nSELECT 2;"),
            vec![
                (0, "SELECT 1;".to_string()),
                (0, format!("{}\nSELECT 2;", " ".repeat(9)))
            ]
        );
    }
}
