//! Rendering results: aligned tables cut to the terminal width, CSV, TSV, JSON, NDJSON.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, FieldRef, Float16Type, Float32Type, Float64Type, SchemaRef,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, JsonArray, JsonFormat, LineDelimited, NullableEncoder,
    WriterBuilder, make_encoder,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::Result;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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

/// How values are shown: NULL's text, and timestamps as SQL writes them.
#[derive(Debug, Clone)]
pub struct Style {
    /// What a NULL prints as in tables, CSV and TSV (JSON has `null`).
    pub null: String,
}

impl Style {
    fn options(&self) -> FormatOptions<'_> {
        FormatOptions::default()
            .with_null(&self.null)
            .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
            .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"))
            .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
    }
}

/// Renders batches with the columns of `schema` (the header is printed even without rows).
/// `max_rows` limits table output (other formats print every row); `width` is the terminal
/// width to fit tables into, if there is a terminal.
#[cfg(test)]
pub fn render(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    style: &Style,
    max_rows: usize,
    width: Option<usize>,
) -> Result<String> {
    let mut printer = Printer::new(schema.clone(), format, style.clone(), max_rows, width);
    let mut out = printer.start();
    for batch in batches {
        out.push_str(&printer.batch(batch)?);
    }
    out.push_str(&printer.finish()?);
    Ok(out)
}

/// Prints a result as its batches arrive, so that a result of any size is printed in
/// bounded memory: CSV, TSV and NDJSON a batch at a time, JSON as one array written as it
/// grows. A table needs its column widths first, so it keeps only the rows it shows.
pub struct Printer {
    schema: SchemaRef,
    format: Format,
    style: Style,
    max_rows: usize,
    width: Option<usize>,
    /// The rows a table shows (at most `max_rows`).
    shown: Vec<RecordBatch>,
    shown_rows: usize,
    /// Rows seen so far.
    rows: usize,
}

impl Printer {
    /// `max_rows` limits table output (other formats print every row); `width` is the
    /// terminal width to fit tables into, if there is a terminal.
    pub fn new(
        schema: SchemaRef,
        format: Format,
        style: Style,
        max_rows: usize,
        width: Option<usize>,
    ) -> Self {
        Printer {
            schema,
            format,
            style,
            max_rows,
            width,
            shown: Vec::new(),
            shown_rows: 0,
            rows: 0,
        }
    }

    /// What comes before the rows: the header of CSV and TSV.
    pub fn start(&self) -> String {
        match self.format {
            Format::Csv => delimited_header(&self.schema, &self.style, ','),
            Format::Tsv => delimited_header(&self.schema, &self.style, '\t'),
            Format::Table | Format::Json | Format::Ndjson => String::new(),
        }
    }

    /// What to print for `batch` now.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<String> {
        let first = self.rows == 0;
        self.rows += batch.num_rows();
        if batch.num_rows() == 0 {
            return Ok(String::new());
        }
        match self.format {
            Format::Table => {
                let keep = (self.max_rows - self.shown_rows).min(batch.num_rows());
                if keep > 0 {
                    self.shown.push(batch.slice(0, keep));
                    self.shown_rows += keep;
                }
                Ok(String::new())
            }
            Format::Csv => delimited_rows(batch, &self.style, ','),
            Format::Tsv => delimited_rows(batch, &self.style, '\t'),
            Format::Ndjson => json::<LineDelimited>(batch),
            Format::Json => {
                // One array across batches: `[` before the first row, `,` between batches.
                let array = json::<JsonArray>(batch)?;
                let rows = array
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .unwrap_or(&array);
                Ok(format!("{}{rows}", if first { '[' } else { ',' }))
            }
        }
    }

    /// What comes after the rows: a whole table, or the end of the JSON array.
    pub fn finish(&mut self) -> Result<String> {
        match self.format {
            Format::Table => table(
                &self.schema,
                &self.shown,
                &self.style,
                self.max_rows,
                self.width,
            ),
            Format::Json if self.rows == 0 => Ok("[]\n".into()),
            Format::Json => Ok("]\n".into()),
            Format::Csv | Format::Tsv | Format::Ndjson => Ok(String::new()),
        }
    }

    /// The rows seen so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// JSON objects, one per row, with every column a key: a NULL is `null` rather than a
/// missing key, so each row has the same keys and a column that is NULL throughout still
/// shows. Floats JSON has no number for print as strings (see [`NonFiniteAsStrings`]).
fn json<F: JsonFormat>(batch: &RecordBatch) -> Result<String> {
    let mut out = Vec::new();
    {
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(NonFiniteAsStrings))
            .build::<_, F>(&mut out);
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// JSON has no number for NaN and the infinities. arrow's writer prints them as `null`, which
/// a reader cannot tell from NULL; they print as the strings `"NaN"`, `"Infinity"` and
/// `"-Infinity"` instead, as PostgreSQL's JSON and tarn's metadata write them. Finite floats
/// print as arrow prints them; floats within structs and lists too.
#[derive(Debug)]
struct NonFiniteAsStrings;

/// Options without [`NonFiniteAsStrings`], for the finite values of a float column.
static ARROW_DEFAULTS: LazyLock<EncoderOptions> = LazyLock::new(EncoderOptions::default);

impl EncoderFactory for NonFiniteAsStrings {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let value: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
            DataType::Float16 => {
                let floats = array.as_primitive::<Float16Type>();
                Box::new(move |i| floats.value(i).to_f64())
            }
            DataType::Float32 => {
                let floats = array.as_primitive::<Float32Type>();
                Box::new(move |i| f64::from(floats.value(i)))
            }
            DataType::Float64 => {
                let floats = array.as_primitive::<Float64Type>();
                Box::new(move |i| floats.value(i))
            }
            _ => return Ok(None),
        };
        let finite = make_encoder(field, array, &ARROW_DEFAULTS)?;
        let encoder = FloatEncoder { value, finite };
        Ok(Some(NullableEncoder::new(
            Box::new(encoder),
            array.nulls().cloned(),
        )))
    }
}

struct FloatEncoder<'a> {
    value: Box<dyn Fn(usize) -> f64 + 'a>,
    finite: NullableEncoder<'a>,
}

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = (self.value)(idx);
        match value {
            v if v.is_nan() => out.extend_from_slice(br#""NaN""#),
            f64::INFINITY => out.extend_from_slice(br#""Infinity""#),
            f64::NEG_INFINITY => out.extend_from_slice(br#""-Infinity""#),
            _ => self.finite.encode(idx, out),
        }
    }
}

/// A CSV (or TSV) field as PostgreSQL's `COPY ... CSV` and `psql --csv` write it: quoted
/// when it holds the delimiter, a quote or a line break, and an empty string is `""`, so it
/// never reads as NULL (which is the `null` text, empty by default).
fn delimited_field(value: &str, style: &Style, delimiter: char, out: &mut String) {
    let needs_quotes =
        value.is_empty() || value == style.null || value.contains([delimiter, '"', '\n', '\r']);
    if needs_quotes {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// The header line of CSV (or TSV): the column names.
fn delimited_header(schema: &SchemaRef, style: &Style, delimiter: char) -> String {
    let mut out = String::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        delimited_field(f.name(), style, delimiter, &mut out);
    }
    out.push('\n');
    out
}

/// The rows of `batch` as CSV (or TSV) lines.
fn delimited_rows(batch: &RecordBatch, style: &Style, delimiter: char) -> Result<String> {
    let options = style.options();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // Logical nulls: an untyped NULL column (`SELECT NULL`) has no null buffer.
    let nulls: Vec<_> = batch.columns().iter().map(|c| c.logical_nulls()).collect();
    let mut out = String::new();
    for row in 0..batch.num_rows() {
        for (i, (f, nulls)) in formatters.iter().zip(&nulls).enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                out.push_str(&style.null);
            } else {
                delimited_field(&f.value(row).to_string(), style, delimiter, &mut out);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    style: &Style,
    max_rows: usize,
    width: Option<usize>,
) -> Result<String> {
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let options = style.options();
    // Each cell as its lines.
    let mut rows: Vec<Vec<Vec<String>>> = Vec::new();
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
                    .map(|f| cell_lines(&f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    let headers: Vec<String> = headers.iter().map(|h| shown_in_a_cell(h)).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = cell.iter().map(|l| l.width()).fold(*w, usize::max);
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
    let cells = |out: &mut String, values: &[Vec<String>]| {
        // A one-line value too wide for its column is cut; the lines of a longer text (a
        // plan, a document) wrap, so that all of it shows.
        let shown: Vec<Vec<String>> = values
            .iter()
            .zip(&widths)
            .map(|(lines, w)| match lines.as_slice() {
                [one] => vec![fit(one, *w)],
                lines => lines.iter().flat_map(|l| wrap(l, *w)).collect(),
            })
            .collect();
        let height = shown.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            out.push('|');
            for (lines, w) in shown.iter().zip(&widths) {
                let text = lines.get(k).map_or("", String::as_str);
                out.push(' ');
                out.push_str(text);
                out.push_str(&" ".repeat(w - text.width()));
                out.push_str(" |");
            }
            out.push('\n');
        }
    };
    let mut out = String::new();
    line(&mut out);
    cells(
        &mut out,
        &headers.into_iter().map(|h| vec![h]).collect::<Vec<_>>(),
    );
    line(&mut out);
    for row in &rows {
        cells(&mut out, row);
    }
    line(&mut out);
    Ok(out)
}

/// A value as the lines of a table cell (a query plan has many), each shown as
/// [`shown_in_a_cell`] shows it; a line break that ends the value ends its last line.
fn cell_lines(value: &str) -> Vec<String> {
    let lines: Vec<String> = value
        .split_inclusive('\n')
        .map(|l| {
            let l = l
                .strip_suffix('\n')
                .map_or(l, |l| l.strip_suffix('\r').unwrap_or(l));
            shown_in_a_cell(l)
        })
        .collect();
    if lines.is_empty() {
        vec![String::new()]
    } else {
        lines
    }
}

/// `line` in pieces of at most `width` terminal columns.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut used = 0;
    for c in line.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width && used > 0 {
            pieces.push(String::new());
            used = 0;
        }
        pieces.last_mut().expect("one piece at least").push(c);
        used += w;
    }
    pieces
}

/// `s` as one line of a table cell: line breaks, tabs and other control characters, which
/// would break the table's lines or move the terminal's cursor, are written as escapes.
fn shown_in_a_cell(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to `width` terminal columns (wide characters take two), ending in `…` when cut.
fn fit(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        cut.push(c);
        used += w;
    }
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn style() -> Style {
        Style {
            null: "NULL".into(),
        }
    }

    /// `b` as a table of at most `max_rows` rows, fitted to `width` when given.
    fn table(b: &RecordBatch, max_rows: usize, width: Option<usize>) -> String {
        render(
            &b.schema(),
            std::slice::from_ref(b),
            Format::Table,
            &style(),
            max_rows,
            width,
        )
        .unwrap()
    }

    fn csv_style() -> Style {
        Style { null: "".into() }
    }

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
        let b = batch();
        let out = table(&b, 10, None);
        assert_eq!(
            out,
            "+------+---------------------+\n| id   | name                |\n+------+---------------------+\n| 1    | a rather long value |\n| NULL | b                   |\n+------+---------------------+\n"
        );
        let narrow = table(&b, 10, Some(20));
        assert!(narrow.lines().all(|l| l.chars().count() <= 20), "{narrow}");
        assert!(narrow.contains('…'));
        let limited = table(&b, 1, None);
        assert_eq!(limited.lines().count(), 5);
    }

    #[test]
    fn a_value_of_several_lines_shows_them_all() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["logical_plan", "x"])),
                Arc::new(StringArray::from(vec![
                    "Filter: id > 2\n  TableScan: t projection=[id, p]\r\n",
                    "one line",
                ])),
            ],
        )
        .unwrap();
        let out = table(&b, 10, None);
        assert_eq!(
            out,
            "+--------------+-----------------------------------+\n\
             | plan_type    | plan                              |\n\
             +--------------+-----------------------------------+\n\
             | logical_plan | Filter: id > 2                    |\n\
             |              |   TableScan: t projection=[id, p] |\n\
             | x            | one line                          |\n\
             +--------------+-----------------------------------+\n"
        );
        // In a narrow terminal the plan's lines wrap: nothing of them is lost.
        let narrow = table(&b, 10, Some(30));
        assert!(narrow.lines().all(|l| l.width() <= 30), "{narrow}");
        assert!(!narrow.contains('…'), "nothing is cut:\n{narrow}");
        assert!(
            narrow.contains("TableScan") && narrow.contains("[id, p]"),
            "{narrow}"
        );
    }

    #[test]
    fn wide_characters_and_tabs_keep_the_columns_aligned() {
        let schema = Arc::new(Schema::new(vec![Field::new("名前", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![
                Some("日本語"),
                Some("a\tb\r"),
                Some("\u{1b}[2J"),
                Some("😀x"),
            ]))],
        )
        .unwrap();
        let out = table(&b, 10, None);
        assert_eq!(
            out,
            "+-----------+\n| 名前      |\n+-----------+\n| 日本語    |\n| a\\tb\\r    |\n| \\u{1b}[2J |\n| 😀x       |\n+-----------+\n"
        );
        let narrow = table(&b, 10, Some(8));
        assert!(
            narrow.lines().all(|l| l.width() == 8),
            "every line is as wide as the terminal:\n{narrow}"
        );
        assert!(narrow.contains("| 日…  |"), "{narrow}");
    }

    #[test]
    fn other_formats() {
        let b = batch();
        assert_eq!(
            render(
                &b.schema(),
                std::slice::from_ref(&b),
                Format::Csv,
                &csv_style(),
                1,
                None
            )
            .unwrap(),
            "id,name\n1,a rather long value\n,b\n"
        );
        assert_eq!(
            render(
                &b.schema(),
                std::slice::from_ref(&b),
                Format::Ndjson,
                &csv_style(),
                1,
                None
            )
            .unwrap(),
            "{\"id\":1,\"name\":\"a rather long value\"}\n{\"id\":null,\"name\":\"b\"}\n"
        );
        assert_eq!(
            render(
                &b.schema(),
                std::slice::from_ref(&b),
                Format::Json,
                &csv_style(),
                1,
                None
            )
            .unwrap(),
            "[{\"id\":1,\"name\":\"a rather long value\"},{\"id\":null,\"name\":\"b\"}]\n"
        );
    }

    #[test]
    fn json_keeps_nan_and_infinities_apart_from_null() {
        use datafusion::arrow::array::{Float32Array, Float64Array, StructArray};
        let doubles: Arc<dyn Array> = Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
            Some(-0.0),
        ]));
        let reals: Arc<dyn Array> = Arc::new(Float32Array::from(vec![
            Some(f32::NAN),
            None,
            Some(f32::NEG_INFINITY),
            Some(0.25),
            Some(f32::INFINITY),
            Some(1e30),
        ]));
        let nested = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Float64, true)),
            doubles.clone(),
        )]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Float64, true),
            Field::new("r", DataType::Float32, true),
            Field::new("s", nested.data_type().clone(), true),
        ]));
        let b = RecordBatch::try_new(schema, vec![doubles, reals, Arc::new(nested)]).unwrap();
        let out = render(&b.schema(), &[b], Format::Ndjson, &csv_style(), 1, None).unwrap();
        assert_eq!(
            out,
            concat!(
                r#"{"d":1.5,"r":"NaN","s":{"x":1.5}}"#,
                "\n",
                r#"{"d":"NaN","r":null,"s":{"x":"NaN"}}"#,
                "\n",
                r#"{"d":"Infinity","r":"-Infinity","s":{"x":"Infinity"}}"#,
                "\n",
                r#"{"d":"-Infinity","r":0.25,"s":{"x":"-Infinity"}}"#,
                "\n",
                r#"{"d":null,"r":"Infinity","s":{"x":null}}"#,
                "\n",
                r#"{"d":-0.0,"r":1.0e30,"s":{"x":-0.0}}"#,
                "\n",
            )
        );
    }

    #[test]
    fn rows_print_as_their_batches_arrive() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let batch = |values: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap()
        };
        let printer = |format| Printer::new(schema.clone(), format, csv_style(), 2, None);

        let mut csv = printer(Format::Csv);
        assert_eq!(csv.start(), "id\n");
        assert_eq!(csv.batch(&batch(vec![1, 2])).unwrap(), "1\n2\n");
        assert_eq!(csv.batch(&batch(vec![])).unwrap(), "");
        assert_eq!(csv.batch(&batch(vec![3])).unwrap(), "3\n");
        assert_eq!(csv.finish().unwrap(), "");
        assert_eq!(csv.rows(), 3);

        // One JSON array over several batches.
        let mut json = printer(Format::Json);
        let mut out = json.start();
        for values in [vec![1, 2], vec![], vec![3]] {
            out.push_str(&json.batch(&batch(values)).unwrap());
        }
        out.push_str(&json.finish().unwrap());
        assert_eq!(out, "[{\"id\":1},{\"id\":2},{\"id\":3}]\n");

        // A table prints at the end, keeping only the rows it shows, and counts the rest.
        let mut table = printer(Format::Table);
        assert_eq!(table.batch(&batch(vec![1, 2, 3])).unwrap(), "");
        assert_eq!(table.batch(&batch(vec![4])).unwrap(), "");
        assert_eq!(table.shown_rows, 2);
        assert_eq!(table.rows(), 4);
        assert_eq!(
            table.finish().unwrap(),
            "+----+\n| id |\n+----+\n| 1  |\n| 2  |\n+----+\n"
        );
    }

    #[test]
    fn csv_tells_null_from_empty_and_quotes_what_needs_it() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![
                Some(""),
                None,
                Some("a,b"),
                Some("say \"hi\""),
                Some("two\nlines"),
                Some("plain"),
            ]))],
        )
        .unwrap();
        assert_eq!(
            render(
                &schema,
                std::slice::from_ref(&b),
                Format::Csv,
                &csv_style(),
                0,
                None
            )
            .unwrap(),
            "s\n\"\"\n\n\"a,b\"\n\"say \"\"hi\"\"\"\n\"two\nlines\"\nplain\n"
        );
        let custom = Style { null: "\\N".into() };
        assert_eq!(
            render(&schema, &[b], Format::Tsv, &custom, 0, None).unwrap(),
            "s\n\"\"\n\\N\na,b\n\"say \"\"hi\"\"\"\n\"two\nlines\"\nplain\n"
        );
        // A header with no rows.
        assert_eq!(
            render(&schema, &[], Format::Csv, &csv_style(), 0, None).unwrap(),
            "s\n"
        );
        let empty = render(&schema, &[], Format::Table, &style(), 10, None).unwrap();
        assert_eq!(empty, "+---+\n| s |\n+---+\n+---+\n");
        // `SELECT NULL, ''`: an untyped NULL is NULL too.
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Null, true),
            Field::new("e", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(datafusion::arrow::array::NullArray::new(1)),
                Arc::new(StringArray::from(vec![""])),
            ],
        )
        .unwrap();
        assert_eq!(
            render(&schema, &[b], Format::Csv, &csv_style(), 0, None).unwrap(),
            "n,e\n,\"\"\n"
        );
    }

    #[test]
    fn timestamps_print_as_sql_writes_them() {
        use datafusion::arrow::array::TimestampMicrosecondArray;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        )]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(TimestampMicrosecondArray::from(vec![
                1_764_058_500_000_000,
            ]))],
        )
        .unwrap();
        assert_eq!(
            render(&schema, &[b], Format::Csv, &csv_style(), 0, None).unwrap(),
            "ts\n2025-11-25 08:15:00\n"
        );
    }
}
