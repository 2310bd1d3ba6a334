//! Meta commands: backslash commands of the shell, parsed into a typed enum.

use std::path::PathBuf;
use std::str::FromStr;

use crate::print::Format;

/// A backslash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `\?`: help.
    Help,
    /// `\q`: quit.
    Quit,
    /// `\dt [namespace]`: tables.
    Tables(Option<String>),
    /// `\d table`: columns, partition spec and properties of a table.
    Describe(String),
    /// `\dn`: namespaces.
    Namespaces,
    /// `\snapshots table`: the snapshot log.
    Snapshots(String),
    /// `\timing [on|off]`: show elapsed time after each statement (toggles without argument).
    Timing(Option<bool>),
    /// `\format table|csv|tsv|json|ndjson`.
    Format(Format),
    /// `\i file`: run the statements in a file.
    Include(PathBuf),
    /// `\o [file]`: send results to a file, or back to standard output without argument.
    Output(Option<PathBuf>),
    /// `\changes table from [to]`: the table's change feed; bounds are versions or quoted
    /// timestamps, as SQL literals.
    Changes {
        table: String,
        from: String,
        to: Option<String>,
    },
    /// `\watch [seconds] [count]`: run the last SQL again every `seconds` (default 2),
    /// `count` times or until Ctrl-C.
    Watch {
        interval: std::time::Duration,
        count: Option<u64>,
    },
}

pub const HELP: &str = "\
Meta commands:
  \\?                 this help
  \\q                 quit (or Ctrl-D)
  \\dt [namespace]    list tables
  \\d table           describe a table: columns, partition spec, properties
  \\dn                list namespaces
  \\snapshots table   the table's snapshot log
  \\changes table FROM [TO]
                     the rows versions FROM to TO (default: the newest) changed; FROM
                     and TO are versions or quoted times ('2026-11-30 10:00:00')
  \\timing [on|off]   show the time and storage requests each statement takes
  \\format FORMAT     table, csv, tsv, json or ndjson
  \\i file            run the SQL statements in a file
  \\o [file]          write results to a file (no argument: back to the screen)
  \\watch [SEC] [N]   run the last SQL again every SEC seconds (default 2), N times or
                     until Ctrl-C
SQL statements end with ';' and may span lines. Ctrl-C cancels a running statement.";

impl FromStr for Command {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        // A `--` comment may follow a command.
        let line = line.split_once("--").map_or(line, |(command, _)| command);
        let line = line.trim().trim_end_matches(';').trim();
        let (name, arg) = match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n, Some(a.trim()).filter(|a| !a.is_empty())),
            None => (line, None),
        };
        let need = |what: &str| {
            arg.map(str::to_string)
                .ok_or_else(|| format!("{name} needs {what}; type \\? for help"))
        };
        Ok(match name {
            "\\?" | "\\h" | "\\help" => Command::Help,
            "\\q" | "\\quit" => Command::Quit,
            "\\dt" => Command::Tables(arg.map(str::to_string)),
            "\\d" => Command::Describe(need("a table name")?),
            "\\dn" => Command::Namespaces,
            "\\snapshots" => Command::Snapshots(need("a table name")?),
            "\\timing" => Command::Timing(match arg {
                None => None,
                Some("on") => Some(true),
                Some("off") => Some(false),
                Some(other) => return Err(format!("\\timing takes on or off, not '{other}'")),
            }),
            "\\format" => {
                Command::Format(need("a format (table, csv, tsv, json, ndjson)")?.parse()?)
            }
            "\\i" => Command::Include(PathBuf::from(need("a file name")?)),
            "\\o" => Command::Output(arg.map(PathBuf::from)),
            "\\changes" => {
                let usage = || {
                    "usage: \\changes table FROM [TO], FROM and TO being versions or quoted \
                     times such as '2026-11-30 10:00:00'"
                        .to_string()
                };
                let words = sql_words(&need("a table name")?).ok_or_else(usage)?;
                let bound = |w: &String| {
                    let version = w.bytes().all(|b| b.is_ascii_digit());
                    let time = w.len() >= 2 && w.starts_with('\'') && w.ends_with('\'');
                    (version || time).then(|| w.clone()).ok_or_else(usage)
                };
                match words.as_slice() {
                    [table, from] => Command::Changes {
                        table: table.clone(),
                        from: bound(from)?,
                        to: None,
                    },
                    [table, from, to] => Command::Changes {
                        table: table.clone(),
                        from: bound(from)?,
                        to: Some(bound(to)?),
                    },
                    _ => return Err(usage()),
                }
            }
            "\\watch" => {
                let mut words = arg.unwrap_or_default().split_whitespace();
                let seconds = match words.next() {
                    None => 2.0,
                    Some(s) => s
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.01 && *s <= 86_400.0)
                        .ok_or_else(|| {
                            format!("\\watch takes seconds between 0.01 and 86400, not '{s}'")
                        })?,
                };
                let count = match words.next() {
                    None => None,
                    Some(n) => Some(n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("\\watch takes a positive number of runs, not '{n}'")
                    })?),
                };
                if let Some(extra) = words.next() {
                    return Err(format!(
                        "\\watch takes seconds and a count, not '{extra}' besides"
                    ));
                }
                Command::Watch {
                    interval: std::time::Duration::from_secs_f64(seconds),
                    count,
                }
            }
            other => {
                return Err(format!(
                    "unknown command '{other}'; type \\? for the list of commands"
                ));
            }
        })
    }
}

/// Words separated by white space; a single-quoted word (with `''` for a quote) is kept
/// whole, with its quotes. `None` for an unclosed quote.
fn sql_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '\'' {
            word.push(chars.next()?);
            loop {
                let c = chars.next()?;
                word.push(c);
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        word.push(chars.next()?);
                    } else {
                        break;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace()) {
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_changes() {
        assert_eq!(
            "\\changes feeds.events 5".parse::<Command>().unwrap(),
            Command::Changes {
                table: "feeds.events".into(),
                from: "5".into(),
                to: None
            }
        );
        assert_eq!(
            "\\changes t '2026-11-30 10:00:00'  '2026-11-30 11:00:00'"
                .parse::<Command>()
                .unwrap(),
            Command::Changes {
                table: "t".into(),
                from: "'2026-11-30 10:00:00'".into(),
                to: Some("'2026-11-30 11:00:00'".into())
            }
        );
        for bad in [
            "\\changes",
            "\\changes t",
            "\\changes t x",
            "\\changes t 1 2 3",
            "\\changes t '2026-11-30",
            "\\changes t -1",
        ] {
            assert!(bad.parse::<Command>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_watch() {
        assert_eq!(
            "\\watch".parse::<Command>().unwrap(),
            Command::Watch {
                interval: std::time::Duration::from_secs(2),
                count: None
            }
        );
        assert_eq!(
            "\\watch 0.5 3".parse::<Command>().unwrap(),
            Command::Watch {
                interval: std::time::Duration::from_millis(500),
                count: Some(3)
            }
        );
        for bad in [
            "\\watch 0",
            "\\watch -1",
            "\\watch x",
            "\\watch 1 0",
            "\\watch 1 2 3",
        ] {
            assert!(bad.parse::<Command>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_commands() {
        assert_eq!("\\dt".parse::<Command>().unwrap(), Command::Tables(None));
        assert_eq!(
            "\\dt feeds".parse::<Command>().unwrap(),
            Command::Tables(Some("feeds".into()))
        );
        assert_eq!(
            "\\d  events ".parse::<Command>().unwrap(),
            Command::Describe("events".into())
        );
        assert_eq!(
            "\\timing on".parse::<Command>().unwrap(),
            Command::Timing(Some(true))
        );
        assert_eq!(
            "\\format csv".parse::<Command>().unwrap(),
            Command::Format(Format::Csv)
        );
        assert_eq!("\\o".parse::<Command>().unwrap(), Command::Output(None));
        assert_eq!(
            "\\snapshots t   -- the log".parse::<Command>().unwrap(),
            Command::Snapshots("t".into())
        );
    }

    #[test]
    fn errors_help() {
        assert_eq!(
            "\\x".parse::<Command>().unwrap_err(),
            "unknown command '\\x'; type \\? for the list of commands"
        );
        assert!(
            "\\d"
                .parse::<Command>()
                .unwrap_err()
                .contains("needs a table name")
        );
        assert!("\\format xml".parse::<Command>().is_err());
    }
}
