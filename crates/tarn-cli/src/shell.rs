//! The shell's state and how it runs statements and meta commands.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, Statement, TableFactor, TableObject};
use futures::StreamExt;
use tarn_datafusion::{ParsedStatement, TarnContext};

use crate::command::{Command, HELP};
use crate::print::{Format, render};

/// Whether the shell goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Shell {
    ctx: TarnContext,
    pub format: Format,
    pub timing: bool,
    pub max_rows: usize,
    /// Interactive: Ctrl-C cancels a statement, progress is shown, tables fit the terminal.
    pub interactive: bool,
    output: Option<File>,
}

impl Shell {
    pub fn new(ctx: TarnContext, format: Format, max_rows: usize) -> Self {
        Shell {
            ctx,
            format,
            timing: false,
            max_rows,
            interactive: false,
            output: None,
        }
    }

    pub fn context(&self) -> &TarnContext {
        &self.ctx
    }

    fn emit(&mut self, text: &str) {
        match &mut self.output {
            Some(file) => {
                let _ = file.write_all(text.as_bytes());
            }
            None => {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
        }
    }

    /// Runs a script: SQL statements ending with `;` and meta commands on lines of their own.
    /// Stops at the first error unless `keep_going`; returns whether any statement failed.
    pub async fn run_script(&mut self, text: &str, keep_going: bool) -> (Flow, bool) {
        let mut failed = false;
        let mut buffer = String::new();
        for line in text.lines() {
            if buffer.trim().is_empty() && line.trim_start().starts_with('\\') {
                match self.run_command_line(line).await {
                    Ok(Flow::Quit) => return (Flow::Quit, failed),
                    Ok(Flow::Continue) => {}
                    Err(e) => {
                        report(&e);
                        failed = true;
                        if !keep_going {
                            return (Flow::Continue, true);
                        }
                    }
                }
                continue;
            }
            buffer.push_str(line);
            buffer.push('\n');
            if statement_complete(&buffer) {
                let sql = std::mem::take(&mut buffer);
                if let Err(e) = self.run_sql(&sql).await {
                    report(&e);
                    failed = true;
                    if !keep_going {
                        return (Flow::Continue, true);
                    }
                }
            }
        }
        if !buffer.trim().is_empty()
            && let Err(e) = self.run_sql(&buffer).await
        {
            report(&e);
            failed = true;
        }
        (Flow::Continue, failed)
    }

    pub async fn run_command_line(&mut self, line: &str) -> Result<Flow, String> {
        let command: Command = line.parse()?;
        self.run_command(command).await
    }

    /// Runs one or more SQL statements, stopping at the first error.
    pub async fn run_sql(&mut self, sql: &str) -> Result<(), String> {
        let statements = self.ctx.parse(sql).map_err(|e| clean(&e.to_string()))?;
        for statement in statements {
            let started = Instant::now();
            let outcome = if self.interactive {
                tokio::select! {
                    r = self.execute(statement) => r,
                    _ = tokio::signal::ctrl_c() => Err("statement cancelled".to_string()),
                }
            } else {
                self.execute(statement).await
            };
            let message = outcome?;
            let timing = if self.timing {
                format!(" Time: {:.3} s", started.elapsed().as_secs_f64())
            } else {
                String::new()
            };
            self.emit(&format!("{message}{timing}\n"));
        }
        Ok(())
    }

    /// Runs one statement, prints its result, and returns the line that follows it.
    async fn execute(&mut self, statement: ParsedStatement) -> Result<String, String> {
        let written = written_table(statement.statement());
        let df = self
            .ctx
            .execute(statement)
            .await
            .map_err(|e| clean(&e.to_string()))?;
        let rows = Arc::new(AtomicU64::new(0));
        let spinner = (self.interactive && std::io::stderr().is_terminal())
            .then(|| spawn_spinner(rows.clone()));
        let collected = async {
            let mut stream = df.execute_stream().await?;
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                batches.push(batch);
            }
            Ok::<_, datafusion::error::DataFusionError>(batches)
        }
        .await;
        if let Some(spinner) = spinner {
            spinner.abort();
            eprint!("\r\x1b[K");
        }
        let batches = collected.map_err(|e| clean(&e.to_string()))?;
        let columns = batches.first().map(|b| b.num_columns()).unwrap_or(0);
        if columns == 0 {
            return Ok("OK".into());
        }
        if let Some(name) = written
            && let Some(count) = count_of(&batches)
        {
            let version = self
                .version_of(&name)
                .await
                .map(|v| format!("; {name} is now at version {v}"))
                .unwrap_or_default();
            return Ok(format!(
                "{count} {} affected{version}",
                plural(count, "row")
            ));
        }
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        let width = if self.interactive && self.output.is_none() {
            terminal_width()
        } else {
            None
        };
        let text = render(&batches, self.format, self.max_rows, width)
            .map_err(|e| clean(&e.to_string()))?;
        self.emit(&text);
        // Only tables are cut to `max_rows`.
        if self.format == Format::Table && total > self.max_rows {
            Ok(format!(
                "{total} rows (showing the first {}; use --max-rows to see more)",
                self.max_rows
            ))
        } else {
            Ok(format!("{total} {}", plural(total as u64, "row")))
        }
    }

    async fn version_of(&self, name: &str) -> Option<u64> {
        let (ns, table) = match name.split_once('.') {
            Some((ns, t)) => (ns.to_string(), t.to_string()),
            None => (
                tarn_datafusion::DEFAULT_NAMESPACE.to_string(),
                name.to_string(),
            ),
        };
        let t = self.ctx.catalog().load(&ns, &table).await.ok()??;
        Some(t.table().version().get())
    }

    pub async fn run_command(&mut self, command: Command) -> Result<Flow, String> {
        match command {
            Command::Help => self.emit(&format!("{HELP}\n")),
            Command::Quit => return Ok(Flow::Quit),
            Command::Tables(ns) => {
                let filter = ns
                    .map(|n| format!(" AND table_schema = '{}'", n.replace('\'', "''")))
                    .unwrap_or_default();
                self.run_sql(&format!(
                    "SELECT table_schema AS namespace, table_name AS \"table\" FROM information_schema.tables \
                     WHERE table_catalog = 'tarn' AND table_schema <> 'information_schema'{filter} ORDER BY 1, 2;"
                ))
                .await?;
            }
            Command::Namespaces => {
                self.run_sql(
                    "SELECT schema_name AS namespace FROM information_schema.schemata \
                     WHERE catalog_name = 'tarn' AND schema_name <> 'information_schema' ORDER BY 1;",
                )
                .await?;
            }
            Command::Describe(name) => {
                self.run_sql(&format!("DESCRIBE {name};")).await?;
                let (ns, table) = split_name(&name);
                if let Ok(Some(t)) = self.ctx.catalog().load(&ns, &table).await {
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
                    self.emit(&text);
                }
            }
            Command::Snapshots(name) => {
                let (ns, table) = split_name(&name);
                self.run_sql(&format!(
                    "SELECT version, committed_at, operation, added_rows, removed_rows, total_rows, total_files \
                     FROM \"{ns}\".\"{table}$snapshots\" ORDER BY version;"
                ))
                .await?;
            }
            Command::Timing(on) => {
                self.timing = on.unwrap_or(!self.timing);
                let state = if self.timing { "on" } else { "off" };
                self.emit(&format!("Timing is {state}.\n"));
            }
            Command::Format(format) => {
                self.format = format;
                self.emit(&format!("Output format is {format:?}.\n").to_lowercase());
            }
            Command::Include(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let (flow, failed) = Box::pin(self.run_script(&text, false)).await;
                if failed {
                    return Err(format!("{} stopped at its first error", path.display()));
                }
                return Ok(flow);
            }
            Command::Output(None) => {
                self.output = None;
                self.emit("Output goes to the screen.\n");
            }
            Command::Output(Some(path)) => {
                let file = File::create(&path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                self.output = Some(file);
                println!("Output goes to {}.", path.display());
            }
        }
        Ok(Flow::Continue)
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
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

/// The single `count` of a write statement's result.
fn count_of(batches: &[RecordBatch]) -> Option<u64> {
    let batch = batches.first()?;
    if batch.num_columns() != 1
        || batch.num_rows() != 1
        || batch.schema().field(0).name() != "count"
    {
        return None;
    }
    batch
        .column(0)
        .as_primitive_opt::<UInt64Type>()
        .map(|c| c.value(0))
}

/// The table a write statement changes, as `ns.table` or `table`.
fn written_table(statement: &DFStatement) -> Option<String> {
    let DFStatement::Statement(s) = statement else {
        return None;
    };
    let name: &ObjectName = match s.as_ref() {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => name,
            _ => return None,
        },
        Statement::Delete(delete) => match &delete.from {
            datafusion::sql::sqlparser::ast::FromTable::WithFromKeyword(t)
            | datafusion::sql::sqlparser::ast::FromTable::WithoutKeyword(t) => {
                match &t.first()?.relation {
                    TableFactor::Table { name, .. } => name,
                    _ => return None,
                }
            }
        },
        Statement::Update(update) => match &update.table.relation {
            TableFactor::Table { name, .. } => name,
            _ => return None,
        },
        Statement::Merge(merge) => match &merge.table {
            TableFactor::Table { name, .. } => name,
            _ => return None,
        },
        _ => return None,
    };
    Some(name.to_string())
}

/// Whether `buffer` holds complete statements: it ends with `;` outside quotes and comments.
pub fn statement_complete(buffer: &str) -> bool {
    let mut in_single = false;
    let mut in_double = false;
    let mut last_significant = None;
    let mut chars = buffer.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '-' if !in_single && !in_double && chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last_significant = Some((c, in_single || in_double));
        }
    }
    matches!(last_significant, Some((';', false)))
}

/// An error as one line, without DataFusion's wrapping of tarn errors.
pub fn clean(message: &str) -> String {
    message
        .replace("External error: ", "")
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn report(error: &str) {
    eprintln!("Error: {error}");
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

fn spawn_spinner(rows: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let frames = ['|', '/', '-', '\\'];
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0usize.. {
            eprint!(
                "\r\x1b[K{} running {:.1} s, {} rows so far (Ctrl-C cancels)",
                frames[i % frames.len()],
                started.elapsed().as_secs_f64(),
                rows.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
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
    fn errors_are_one_line() {
        assert_eq!(
            clean("External error: table 'x' does not exist\nmore"),
            "table 'x' does not exist more"
        );
    }
}
