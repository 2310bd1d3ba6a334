//! Rendering results: aligned tables cut to the terminal width, CSV, TSV, JSON, NDJSON.

use std::str::FromStr;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::Result;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Tsv,
    Json,
    Ndjson,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            "json" => Format::Json,
            "ndjson" => Format::Ndjson,
            other => {
                return Err(format!(
                    "unknown format '{other}'; use table, csv, tsv, json or ndjson"
                ));
            }
        })
    }
}

/// Renders batches. `max_rows` limits table output (other formats print every row);
/// `width` is the terminal width to fit tables into, if there is a terminal.
pub fn render(
    batches: &[RecordBatch],
    format: Format,
    max_rows: usize,
    width: Option<usize>,
) -> Result<String> {
    match format {
        Format::Table => table(batches, max_rows, width),
        Format::Csv | Format::Tsv => {
            let mut out = Vec::new();
            {
                let delimiter = if format == Format::Csv { b',' } else { b'\t' };
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_delimiter(delimiter)
                    .build(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            let mut s = String::from_utf8_lossy(&out).into_owned();
            if s.is_empty() {
                s.push_str("[]");
            }
            s.push('\n');
            Ok(s)
        }
        Format::Ndjson => {
            let mut out = Vec::new();
            {
                let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

fn table(batches: &[RecordBatch], max_rows: usize, width: Option<usize>) -> Result<String> {
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(String::new());
    };
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows: Vec<Vec<String>> = Vec::new();
    'batches: for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if rows.len() == max_rows {
                break 'batches;
            }
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string().replace('\n', "\\n"))
                    .collect(),
            );
        }
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    if let Some(total) = width {
        // Borders take 3 characters per column plus one; shrink the widest columns first.
        let budget = total
            .saturating_sub(3 * widths.len() + 1)
            .max(widths.len() * 3);
        while widths.iter().sum::<usize>() > budget {
            let widest = widths
                .iter()
                .enumerate()
                .max_by_key(|(_, w)| **w)
                .map(|(i, _)| i)
                .unwrap_or(0);
            if widths[widest] <= 3 {
                break;
            }
            widths[widest] -= 1;
        }
    }
    let line = |out: &mut String| {
        out.push('+');
        for w in &widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('+');
        }
        out.push('\n');
    };
    let cells = |out: &mut String, values: &[String]| {
        out.push('|');
        for (value, w) in values.iter().zip(&widths) {
            let shown = fit(value, *w);
            out.push(' ');
            out.push_str(&shown);
            out.push_str(&" ".repeat(w - shown.chars().count()));
            out.push_str(" |");
        }
        out.push('\n');
    };
    let mut out = String::new();
    line(&mut out);
    cells(&mut out, &headers);
    line(&mut out);
    for row in &rows {
        cells(&mut out, row);
    }
    line(&mut out);
    Ok(out)
}

/// `s` cut to `width` characters, ending in `…` when cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec!["a rather long value", "b"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn tables_align_and_cut() {
        let out = render(&[batch()], Format::Table, 10, None).unwrap();
        assert_eq!(
            out,
            "+------+---------------------+\n| id   | name                |\n+------+---------------------+\n| 1    | a rather long value |\n| NULL | b                   |\n+------+---------------------+\n"
        );
        let narrow = render(&[batch()], Format::Table, 10, Some(20)).unwrap();
        assert!(narrow.lines().all(|l| l.chars().count() <= 20), "{narrow}");
        assert!(narrow.contains('…'));
        let limited = render(&[batch()], Format::Table, 1, None).unwrap();
        assert_eq!(limited.lines().count(), 5);
    }

    #[test]
    fn other_formats() {
        assert_eq!(
            render(&[batch()], Format::Csv, 1, None).unwrap(),
            "id,name\n1,a rather long value\n,b\n"
        );
        assert_eq!(
            render(&[batch()], Format::Ndjson, 1, None).unwrap(),
            "{\"id\":1,\"name\":\"a rather long value\"}\n{\"name\":\"b\"}\n"
        );
    }
}
