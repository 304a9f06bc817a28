//! `credtrail sql`: ad-hoc DuckDB SQL over the store, printed as a table, CSV or JSON. The named
//! investigations (`investigation`) print their rows through the same code.
//!
//! DuckDB renders the values: the last statement is wrapped in a `SELECT` that turns each column,
//! by its DuckDB type (from `DESCRIBE`), into a boolean, an integer, a double or text (timestamps
//! as RFC 3339 UTC, nested values and JSON as JSON text, blobs as hex). Statements that cannot be
//! wrapped (`PRAGMA`, `EXPLAIN`, `SET`, …) run as they are and their values are converted here.
//! Values from logs are untrusted: the table escapes control characters; CSV and JSON are escaped
//! by their writers.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use duckdb::types::{TimeUnit, Value};

use crate::store::Store;
use crate::terminal::escape_control;

/// Output formats of `sql` and `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a person (control characters escaped; NULL printed as `NULL`).
    Table,
    /// RFC 4180 CSV with a header row (NULL is an empty field).
    Csv,
    /// One JSON array of objects, one object per row, values typed (NULL is `null`).
    Json,
}

/// `credtrail sql`.
#[derive(Debug, Args)]
#[command(
    after_help = "Views for people's SQL: fetches (credential requests with task, family, \
role), calls (CloudTrail events with task, role_kind, action), task_addresses (who held which \
address when), tasks, task_session_calls; every table of the store too. Columns: \
queries/README.md. Example: credtrail sql \"SELECT action, count(*) FROM calls WHERE denied \
GROUP BY ALL ORDER BY 2 DESC\""
)]
pub struct SqlArgs {
    /// DuckDB SQL. Several statements separated by `;` run in order; the last one's rows are
    /// printed.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub query: Option<String>,
    /// Read the SQL from this file (`-`: standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Set a DuckDB variable the SQL reads with `getvariable('name')` (a string): `name=value`.
    /// Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: want name=value"))?;
    let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!("{k:?} is not a variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Run `credtrail sql` against an open store.
pub fn command(store: &Store, a: &SqlArgs, out: &mut dyn Write) -> Result<()> {
    let text = match (&a.query, &a.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) if f.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading SQL from standard input")?
        }
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read SQL from {}", f.display()))?,
        (None, None) => anyhow::bail!("give a query or --file"),
    };
    for (name, value) in &a.params {
        store.conn().execute_batch(&format!(
            "SET VARIABLE \"{name}\" = {}",
            crate::store::sql_string(value)
        ))?;
    }
    run(store, &text, a.format, out)
}

/// Run `text` (one or more statements) and print the last statement's rows. Every statement
/// is checked first (`statement::check_all`): one that could write a file runs none of them.
pub fn run(store: &Store, text: &str, format: Format, out: &mut dyn Write) -> Result<()> {
    let statements = split_statements(text);
    let Some((last, before)) = statements.split_last() else {
        anyhow::bail!("no SQL statement given");
    };
    let conn = store.conn();
    crate::statement::check_all(conn, &statements)?;
    for (i, s) in before.iter().enumerate() {
        conn.execute_batch(s)
            .map_err(|e| sql_error(&e))
            .with_context(|| format!("statement {} failed", i + 1))?;
    }
    match describe(store, last) {
        Some(columns) => run_wrapped(store, last, columns, format, out),
        None => run_plain(store, last, format, out),
    }
}

/// How a column's values travel from DuckDB to the writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    /// An exact number kept as text (HUGEINT, UBIGINT, DECIMAL, BIGNUM): a JSON number when it fits.
    Number,
    /// A timestamp of any precision, as RFC 3339 UTC.
    Timestamp,
    TimestampTz,
    Blob,
    /// JSON text: a `JSON` column, or a list, array, struct, map or union.
    Json,
    Text,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

/// One value, ready for every writer.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Number(String),
    Text(String),
    Json(String),
}

fn kind_of(duckdb_type: &str) -> Kind {
    let t = duckdb_type.trim();
    if t.ends_with(']')
        || ["STRUCT(", "MAP(", "UNION("]
            .iter()
            .any(|p| t.starts_with(p))
    {
        return Kind::Json;
    }
    match t {
        "BOOLEAN" => Kind::Bool,
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "UTINYINT" | "USMALLINT" | "UINTEGER" => {
            Kind::Int
        }
        "FLOAT" | "DOUBLE" => Kind::Float,
        "UBIGINT" | "HUGEINT" | "UHUGEINT" | "BIGNUM" | "VARINT" => Kind::Number,
        "TIMESTAMP" | "TIMESTAMP_S" | "TIMESTAMP_MS" | "TIMESTAMP_NS" => Kind::Timestamp,
        "TIMESTAMP WITH TIME ZONE" => Kind::TimestampTz,
        "BLOB" => Kind::Blob,
        "JSON" => Kind::Json,
        _ if t.starts_with("DECIMAL") => Kind::Number,
        _ => Kind::Text,
    }
}

/// The statement inside the wrapper; the newline ends a trailing `--` comment.
fn inner(statement: &str) -> String {
    format!("(\n{statement}\n)")
}

/// Column names and kinds of a statement that can be wrapped; None when it cannot (not a query,
/// or an error, which running it plainly then reports in the user's own terms).
fn describe(store: &Store, statement: &str) -> Option<Vec<Column>> {
    let sql = format!("DESCRIBE SELECT * FROM {} AS q", inner(statement));
    let mut stmt = store.conn().prepare(&sql).ok()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .ok()?;
    let mut columns = Vec::new();
    for row in rows {
        let (name, ty) = row.ok()?;
        columns.push(Column {
            name,
            kind: kind_of(&ty),
        });
    }
    Some(columns)
}

fn expression(i: usize, kind: Kind) -> String {
    let c = format!("q.c{i}");
    match kind {
        Kind::Bool => c,
        Kind::Int => format!("{c}::BIGINT"),
        Kind::Float => format!("{c}::DOUBLE"),
        Kind::Timestamp => format!("strftime({c}::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%fZ')"),
        // Without the ICU extension (never loaded: no network), through epoch microseconds.
        Kind::TimestampTz => format!(
            "CASE WHEN isinf({c}) THEN {c}::VARCHAR \
             ELSE strftime(make_timestamp(epoch_us({c})), '%Y-%m-%dT%H:%M:%S.%fZ') END"
        ),
        Kind::Blob => format!("lower(hex({c}))"),
        Kind::Json => format!("to_json({c})::VARCHAR"),
        Kind::Number | Kind::Text => format!("{c}::VARCHAR"),
    }
}

fn run_wrapped(
    store: &Store,
    statement: &str,
    columns: Vec<Column>,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| expression(i, c.kind))
        .collect();
    let sql = if columns.is_empty() {
        format!("SELECT * FROM {}", inner(statement))
    } else {
        format!(
            "SELECT {} FROM {} AS q({})",
            select.join(", "),
            inner(statement),
            aliases.join(", ")
        )
    };
    let mut stmt = store.conn().prepare(&sql).map_err(|e| sql_error(&e))?;
    let mut rows = stmt.query([]).map_err(|e| sql_error(&e))?;
    let mut writer = Writer::new(format, &columns, out)?;
    while let Some(r) = rows.next().map_err(|e| sql_error(&e))? {
        let mut cells = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let cell = match c.kind {
                Kind::Bool => r.get::<_, Option<bool>>(i)?.map(Cell::Bool),
                Kind::Int => r.get::<_, Option<i64>>(i)?.map(Cell::Int),
                Kind::Float => r.get::<_, Option<f64>>(i)?.map(Cell::Float),
                Kind::Number => r.get::<_, Option<String>>(i)?.map(Cell::Number),
                Kind::Timestamp | Kind::TimestampTz => r
                    .get::<_, Option<String>>(i)?
                    .map(|s| Cell::Text(trim_fraction(s))),
                Kind::Json => r.get::<_, Option<String>>(i)?.map(Cell::Json),
                Kind::Blob | Kind::Text => r.get::<_, Option<String>>(i)?.map(Cell::Text),
            };
            cells.push(cell.unwrap_or(Cell::Null));
        }
        writer.row(cells)?;
    }
    writer.finish()
}

/// `…T12:30:00.000000Z` → `…T12:30:00Z`, `…T12:30:07.711000Z` → `…T12:30:07.711Z`.
fn trim_fraction(s: String) -> String {
    match s.strip_suffix('Z').and_then(|t| t.rsplit_once('.')) {
        Some((whole, frac)) if frac.bytes().all(|b| b.is_ascii_digit()) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{frac}Z")
            }
        }
        _ => s,
    }
}

/// A DuckDB error as the user should see it: DuckDB's own message.
fn sql_error(e: &duckdb::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", e.to_string().trim_end())
}

/// A statement that cannot be wrapped: run it as it is and convert DuckDB's values here.
fn run_plain(store: &Store, statement: &str, format: Format, out: &mut dyn Write) -> Result<()> {
    let mut stmt = store.conn().prepare(statement).map_err(|e| sql_error(&e))?;
    let mut rows = stmt.query([]).map_err(|e| sql_error(&e))?;
    let mut buffered = Vec::new();
    while let Some(r) = rows.next().map_err(|e| sql_error(&e))? {
        let n = r.as_ref().column_count();
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(value_cell(r.get::<_, Value>(i)?));
        }
        buffered.push(cells);
    }
    drop(rows);
    let columns: Vec<Column> = stmt
        .column_names()
        .into_iter()
        .enumerate()
        .map(|(i, name)| Column {
            name,
            kind: buffered
                .iter()
                .find_map(|r: &Vec<Cell>| match r.get(i) {
                    Some(Cell::Json(_)) => Some(Kind::Json),
                    _ => None,
                })
                .unwrap_or(Kind::Text),
        })
        .collect();
    let mut writer = Writer::new(format, &columns, out)?;
    for r in buffered {
        writer.row(r)?;
    }
    writer.finish()
}

fn value_cell(v: Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Boolean(b) => Cell::Bool(b),
        Value::TinyInt(n) => Cell::Int(n.into()),
        Value::SmallInt(n) => Cell::Int(n.into()),
        Value::Int(n) => Cell::Int(n.into()),
        Value::BigInt(n) => Cell::Int(n),
        Value::UTinyInt(n) => Cell::Int(n.into()),
        Value::USmallInt(n) => Cell::Int(n.into()),
        Value::UInt(n) => Cell::Int(n.into()),
        Value::UBigInt(n) => Cell::Number(n.to_string()),
        Value::HugeInt(n) => Cell::Number(n.to_string()),
        Value::UHugeInt(n) => Cell::Number(n.to_string()),
        Value::Float(f) => Cell::Float(f.into()),
        Value::Double(f) => Cell::Float(f),
        Value::Text(s) | Value::Enum(s) => Cell::Text(s),
        Value::Blob(b) | Value::Geometry(b) => Cell::Text(hex(&b)),
        Value::Timestamp(unit, n) => Cell::Text(rfc3339_us(unit.to_micros(n))),
        Value::Date32(days) => {
            let (y, m, d) = civil_from_days(i64::from(days));
            Cell::Text(format!("{y:04}-{m:02}-{d:02}"))
        }
        v @ (Value::List(_)
        | Value::Array(_)
        | Value::Struct(_)
        | Value::Map(_)
        | Value::Union(_)) => Cell::Json(value_json(&v).to_string()),
        other => Cell::Text(format!("{other:?}")),
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::List(items) | Value::Array(items) => {
            J::Array(items.iter().map(value_json).collect())
        }
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v)))
                .collect(),
        ),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (cell_text(&value_cell(k.clone())), value_json(v)))
                .collect(),
        ),
        Value::Union(inner) => value_json(inner),
        other => cell_json(value_cell(other.clone())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Microseconds since the epoch as RFC 3339 UTC (`2026-11-20T12:30:00Z`; a fraction only when
/// not zero, without trailing zeros).
pub fn rfc3339_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    trim_fraction(format!("{base}.{frac:06}Z"))
}

trait ToMicros {
    fn to_micros(self, n: i64) -> i64;
}

impl ToMicros for TimeUnit {
    fn to_micros(self, n: i64) -> i64 {
        match self {
            TimeUnit::Second => n.saturating_mul(1_000_000),
            TimeUnit::Millisecond => n.saturating_mul(1_000),
            TimeUnit::Microsecond => n,
            TimeUnit::Nanosecond => n.div_euclid(1_000),
        }
    }
}

/// A cell as text (table and CSV); NULL is the caller's to show.
fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Null => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::Int(n) => n.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Number(s) | Cell::Text(s) | Cell::Json(s) => s.clone(),
    }
}

/// A cell as a typed JSON value.
fn cell_json(c: Cell) -> serde_json::Value {
    use serde_json::Value as J;
    match c {
        Cell::Null => J::Null,
        Cell::Bool(b) => J::Bool(b),
        Cell::Int(n) => J::from(n),
        // NaN and infinities have no JSON number: kept as text, distinct from null.
        Cell::Float(f) => {
            serde_json::Number::from_f64(f).map_or_else(|| J::String(f.to_string()), J::Number)
        }
        Cell::Number(s) => {
            if let Ok(n) = s.parse::<i64>() {
                J::from(n)
            } else if let Ok(n) = s.parse::<u64>() {
                J::from(n)
            } else if s.contains('.')
                && let Some(n) = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
            {
                J::Number(n)
            } else {
                J::String(s)
            }
        }
        Cell::Text(s) => J::String(s),
        Cell::Json(s) => serde_json::from_str(&s).unwrap_or(J::String(s)),
    }
}

/// A csv error as the `io::Error` it carries, when it does (a broken pipe stays one).
fn csv_io(e: csv::Error) -> std::io::Error {
    if e.is_io_error() {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => io,
            other => std::io::Error::other(format!("{other:?}")),
        }
    } else {
        std::io::Error::other(e)
    }
}

/// The output of one result: the table is buffered (column widths), CSV and JSON stream.
enum Writer<'a> {
    Table {
        out: &'a mut dyn Write,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Csv {
        csv: Box<csv::Writer<&'a mut dyn Write>>,
    },
    Json {
        out: &'a mut dyn Write,
        names: Vec<String>,
        first: bool,
    },
}

impl<'a> Writer<'a> {
    fn new(format: Format, columns: &[Column], out: &'a mut dyn Write) -> Result<Writer<'a>> {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        Ok(match format {
            Format::Table => Writer::Table {
                out,
                header: names
                    .iter()
                    .map(|n| escape_control(n).into_owned())
                    .collect(),
                rows: Vec::new(),
            },
            Format::Csv => {
                let mut csv = Box::new(csv::WriterBuilder::new().from_writer(out));
                if !names.is_empty() {
                    csv.write_record(&names).map_err(csv_io)?;
                }
                Writer::Csv { csv }
            }
            Format::Json => {
                write!(out, "[")?;
                Writer::Json {
                    out,
                    names,
                    first: true,
                }
            }
        })
    }

    /// Write errors stay `io::Error`s (not csv's or serde_json's) so `main` sees a broken pipe.
    fn row(&mut self, cells: Vec<Cell>) -> Result<()> {
        match self {
            Writer::Table { rows, .. } => rows.push(
                cells
                    .iter()
                    .map(|c| match c {
                        Cell::Null => "NULL".to_string(),
                        c => escape_control(&cell_text(c)).into_owned(),
                    })
                    .collect(),
            ),
            Writer::Csv { csv } => csv
                .write_record(cells.iter().map(cell_text))
                .map_err(csv_io)?,
            Writer::Json { out, names, first } => {
                // Written by hand so keys keep the column order (serde_json's map sorts them).
                writeln!(out, "{}", if *first { "" } else { "," })?;
                write!(out, "{{")?;
                for (i, (name, cell)) in names.iter().zip(cells).enumerate() {
                    if i > 0 {
                        write!(out, ",")?;
                    }
                    serde_json::to_writer(&mut **out, name).map_err(std::io::Error::from)?;
                    write!(out, ":")?;
                    serde_json::to_writer(&mut **out, &cell_json(cell))
                        .map_err(std::io::Error::from)?;
                }
                write!(out, "}}")?;
                *first = false;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Writer::Table { out, header, rows } => {
                let n = rows.len();
                if !header.is_empty() {
                    let mut b = tabled::builder::Builder::with_capacity(n + 1, header.len());
                    b.push_record(header);
                    for r in rows {
                        b.push_record(r);
                    }
                    let mut table = b.build();
                    table.with(tabled::settings::Style::psql());
                    writeln!(out, "{table}")?;
                }
                writeln!(out, "({n} {})", if n == 1 { "row" } else { "rows" })?;
            }
            Writer::Csv { mut csv } => csv.flush()?,
            Writer::Json { out, first, .. } => {
                writeln!(out, "{}]", if first { "" } else { "\n" })?;
            }
        }
        Ok(())
    }
}

/// Splits SQL text into statements at `;` outside quotes, dollar quotes and comments; drops
/// statements that hold only whitespace and comments.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut has_code = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ';' => {
                if has_code {
                    out.push(current.trim().to_string());
                }
                current.clear();
                has_code = false;
                continue;
            }
            '\'' | '"' => {
                has_code = true;
                current.push(c);
                while let Some((_, d)) = chars.next() {
                    current.push(d);
                    if d == c {
                        // A doubled quote is an escaped one.
                        if chars.peek().is_some_and(|&(_, e)| e == c) {
                            current.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                continue;
            }
            '-' if text[i..].starts_with("--") => {
                current.push(c);
                for (_, d) in chars.by_ref() {
                    current.push(d);
                    if d == '\n' {
                        break;
                    }
                }
                continue;
            }
            '/' if text[i..].starts_with("/*") => {
                current.push(c);
                let mut prev = '\0';
                for (_, d) in chars.by_ref() {
                    current.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                continue;
            }
            '$' => {
                // $tag$ … $tag$ (the tag may be empty); `$1` parameters are not quotes.
                let rest = &text[i + 1..];
                let tag_len = rest
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let tag = &rest[..tag_len];
                if rest[tag_len..].starts_with('$')
                    && !tag.starts_with(|ch: char| ch.is_ascii_digit())
                {
                    let open = format!("${tag}$");
                    let body_start = i + open.len();
                    let end = text[body_start..]
                        .find(&open)
                        .map_or(text.len(), |p| body_start + p + open.len());
                    current.push_str(&text[i..end]);
                    has_code = true;
                    while chars.peek().is_some_and(|&(j, _)| j < end) {
                        chars.next();
                    }
                    continue;
                }
            }
            _ => {}
        }
        if !c.is_whitespace() {
            has_code = true;
        }
        current.push(c);
    }
    if has_code {
        out.push(current.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(sql: &str, format: Format) -> String {
        let store = Store::open_in_memory().unwrap();
        let mut out = Vec::new();
        run(&store, sql, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn splits_statements_outside_quotes_and_comments() {
        assert_eq!(
            split_statements("SELECT 1; SELECT ';' -- a; comment\n, \"x;y\"; /* ; */ ;; $$a;b$$"),
            vec!["SELECT 1", "SELECT ';' -- a; comment\n, \"x;y\"", "$$a;b$$"]
        );
        assert_eq!(
            split_statements("  -- only a comment\n ; "),
            Vec::<String>::new()
        );
        assert_eq!(
            split_statements("SELECT 'it''s; ok'"),
            vec!["SELECT 'it''s; ok'"]
        );
        assert_eq!(
            split_statements("SELECT $1; SELECT 2"),
            vec!["SELECT $1", "SELECT 2"]
        );
    }

    #[test]
    fn kinds_follow_duckdb_types() {
        assert_eq!(kind_of("VARCHAR[]"), Kind::Json);
        assert_eq!(kind_of("STRUCT(a INTEGER)"), Kind::Json);
        assert_eq!(kind_of("INTEGER[2]"), Kind::Json);
        assert_eq!(kind_of("DECIMAL(18,3)"), Kind::Number);
        assert_eq!(kind_of("TIMESTAMP WITH TIME ZONE"), Kind::TimestampTz);
        assert_eq!(kind_of("ENUM('a', 'b')"), Kind::Text);
        assert_eq!(kind_of("UUID"), Kind::Text);
    }

    #[test]
    fn every_type_renders_as_json() {
        let out = render(
            "SELECT 1::TINYINT AS i, 2::UBIGINT AS u, sum(3::BIGINT) AS h, 1.50::DECIMAL(10,2) AS d,
                    0.5::DOUBLE AS f, 'nan'::DOUBLE AS nan, true AS b, NULL AS n, '' AS e,
                    TIMESTAMP '2026-11-20 12:30:00' AS t, TIMESTAMP '2026-11-20 12:30:00.25' AS tf,
                    TIMESTAMPTZ '2026-11-20 14:30:00+02' AS tz, TIMESTAMP_NS '2026-11-20 12:30:00' AS tns,
                    DATE '2026-11-20' AS dt, TIME '10:00:00' AS tm, INTERVAL 90 MINUTE AS iv,
                    '00000000-0000-4000-8000-000000000001'::UUID AS id, 'ab'::BLOB AS bl,
                    [1, 2] AS l, {'k': [TRUE]} AS s, MAP {'m': 1} AS m, '{\"j\": [1]}'::JSON AS j,
                    'a'::ENUM('a', 'b') AS en, '170141183460469231731687303715884105727'::HUGEINT AS big",
            Format::Json,
        );
        let keys: Vec<&str> = out
            .split(['{', ','])
            .filter_map(|p| p.strip_prefix('"')?.split_once("\":").map(|(k, _)| k))
            .collect();
        assert_eq!(keys[..4], ["i", "u", "h", "d"], "column order: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let want = serde_json::json!([{
            "i": 1, "u": 2, "h": 3, "d": 1.5, "f": 0.5, "nan": "NaN", "b": true, "n": null, "e": "",
            "t": "2026-11-20T12:30:00Z", "tf": "2026-11-20T12:30:00.25Z",
            "tz": "2026-11-20T12:30:00Z", "tns": "2026-11-20T12:30:00Z",
            "dt": "2026-11-20", "tm": "10:00:00", "iv": "01:30:00",
            "id": "00000000-0000-4000-8000-000000000001", "bl": "6162",
            "l": [1, 2], "s": {"k": [true]}, "m": {"m": 1}, "j": {"j": [1]},
            "en": "a", "big": "170141183460469231731687303715884105727"
        }]);
        assert_eq!(v, want, "{out}");
    }

    #[test]
    fn table_shows_null_apart_from_empty_and_escapes() {
        let out = render(
            "SELECT NULL AS n, '' AS e, 'a' || chr(27) || '[31m' AS ua FROM range(2)",
            Format::Table,
        );
        assert!(out.contains("NULL"), "{out}");
        assert!(out.contains("a\\x1b[31m"), "{out}");
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.ends_with("(2 rows)\n"), "{out}");
    }

    #[test]
    fn renders_a_table() {
        let out = render(
            "SELECT * FROM (VALUES (TIMESTAMP '2026-11-20 12:30:00', 'curl/8.5.0', 200, NULL),
                                   (TIMESTAMP '2026-11-20 12:31:00', '', 404, ['x']))
                           AS t(time, user_agent, status, tags)",
            Format::Table,
        );
        assert_eq!(
            out,
            " time                 | user_agent | status | tags  \n\
             ----------------------+------------+--------+-------\n \
             2026-11-20T12:30:00Z | curl/8.5.0 | 200    | NULL  \n \
             2026-11-20T12:31:00Z |            | 404    | [\"x\"] \n\
             (2 rows)\n"
        );
    }

    #[test]
    fn csv_and_plain_statements() {
        assert_eq!(
            render("SELECT 'a,b' AS x, NULL AS y, 1 AS z", Format::Csv),
            "x,y,z\n\"a,b\",,1\n"
        );
        // Not wrappable: run as it is.
        let out = render("SET VARIABLE v = 'x'; PRAGMA version", Format::Json);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v[0]["library_version"].is_string(), "{out}");
        assert_eq!(render("SELECT 1 WHERE false", Format::Json), "[]\n");
    }

    #[test]
    fn errors_are_duckdb_s_own() {
        let store = Store::open_in_memory().unwrap();
        let err = run(&store, "SELECT * FROM nope", Format::Table, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Table with name nope does not exist"), "{err}");
        assert!(!err.contains("DESCRIBE"), "{err}");
        let err = run(
            &store,
            "SELECT nope; SELECT 1",
            Format::Table,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            !format!("{err:#}").contains("Unknown error code"),
            "{err:#}"
        );
        assert!(
            format!("{err:#}").starts_with("statement 1 failed: Binder Error"),
            "{err:#}"
        );
    }

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_us(1_795_177_800_000_000), "2026-11-20T12:30:00Z");
        assert_eq!(rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_us(1_711_000), "1970-01-01T00:00:01.711Z");
        assert_eq!(trim_fraction("infinity".into()), "infinity");
    }
}
