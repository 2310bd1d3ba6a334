//! The interactive loop: rustyline editing, multi-line statements, history, completion.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::shell::{Flow, Shell, Stop, report, statement_complete};

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "EXISTS",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "INSERT",
    "INTO",
    "VALUES",
    "OVERWRITE",
    "UPDATE",
    "SET",
    "DELETE",
    "MERGE",
    "USING",
    "MATCHED",
    "SOURCE",
    "TARGET",
    "CREATE",
    "TABLE",
    "SCHEMA",
    "DROP",
    "IF",
    "EXISTS",
    "PARTITIONED",
    "WITH",
    "EXPLAIN",
    "ANALYZE",
    "DESCRIBE",
    "SHOW",
    "TABLES",
    "VERSION",
    "TIMESTAMP",
    "OF",
    "DISTINCT",
    "UNION",
    "ALL",
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "BIGINT",
    "INT",
    "VARCHAR",
    "DOUBLE",
    "DATE",
    "BOOLEAN",
    "DECIMAL",
];

/// Completion, and the rule that a statement is complete once it ends with `;`.
struct TarnHelper {
    names: Arc<Mutex<Vec<String>>>,
}

impl Completer for TarnHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '$'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let lower = word.to_ascii_lowercase();
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let mut candidates: Vec<Pair> = KEYWORDS
            .iter()
            .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
            .map(|k| {
                let text = if word.chars().next().is_some_and(char::is_lowercase) {
                    k.to_ascii_lowercase()
                } else {
                    k.to_string()
                };
                Pair {
                    display: text.clone(),
                    replacement: text,
                }
            })
            .chain(
                names
                    .iter()
                    .filter(|n| n.to_ascii_lowercase().starts_with(&lower))
                    .map(|n| Pair {
                        display: n.clone(),
                        replacement: n.clone(),
                    }),
            )
            .collect();
        candidates.dedup_by(|a, b| a.replacement == b.replacement);
        Ok((start, candidates))
    }
}

impl Hinter for TarnHelper {
    type Hint = String;
}

impl Highlighter for TarnHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for TarnHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.starts_with('\\') || statement_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for TarnHelper {}

/// Where history is kept: `$TARN_HISTORY`, else `~/.tarn_history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TARN_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".tarn_history"))
}

/// Table and column names for completion.
async fn names(shell: &Shell) -> Vec<String> {
    let sql = format!(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns \
         WHERE table_catalog = '{}' AND table_schema <> 'information_schema'",
        shell.context().catalog_name().replace('\'', "''")
    );
    let Ok(df) = shell.context().sql(&sql).await else {
        return Vec::new();
    };
    let Ok(batches) = df.collect().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for batch in batches {
        let get = |i: usize, c: usize| -> String {
            datafusion::arrow::util::display::array_value_to_string(batch.column(c), i)
                .unwrap_or_default()
        };
        for i in 0..batch.num_rows() {
            let (n, t, c) = (get(i, 0), get(i, 1), get(i, 2));
            out.push(t.clone());
            out.push(format!("{n}.{t}"));
            out.push(c);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs the interactive shell until `\q` or Ctrl-D.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    shell: &mut Shell,
    banner: &str,
) -> rustyline::Result<()> {
    let names = Arc::new(Mutex::new(runtime.block_on(names(shell))));
    let mut editor: Editor<TarnHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(TarnHelper {
        names: names.clone(),
    }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{banner}");
    }
    loop {
        match editor.readline("tarn> ") {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                let outcome = if line.trim_start().starts_with('\\') {
                    runtime.block_on(shell.run_command_line(line.trim()))
                } else {
                    runtime
                        .block_on(shell.run_sql(&line))
                        .map(|()| Flow::Continue)
                };
                match outcome {
                    Ok(Flow::Quit) | Err(Stop::Closed) => break,
                    Ok(Flow::Continue) => {}
                    Err(Stop::Failed(e)) => report(&e),
                    Err(Stop::Reported) => {}
                    Err(Stop::Interrupted) => report("statement cancelled"),
                }
                let lower = line.to_ascii_lowercase();
                if lower.contains("create") || lower.contains("drop") {
                    *names.lock().unwrap_or_else(|e| e.into_inner()) =
                        runtime.block_on(self::names(shell));
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
