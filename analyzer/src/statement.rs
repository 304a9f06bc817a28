//! Which statements a person's SQL may run. The store is evidence: `sql` and `query` open it
//! read-only, which stops every change to the database file, but DuckDB can still write other
//! files (`COPY … TO` over the store or a part, `EXPORT DATABASE`, `ATTACH` of a new file, a
//! profiling or query log named by `SET`, `LOAD` of an extension). So each statement is checked
//! before it runs:
//!
//! - DuckDB's own parser must read it as exactly one statement (so text our splitter misreads,
//!   such as a `;` after a backslash-escaped quote in `E'…'`, cannot carry a second statement
//!   past the check): `json_serialize_sql` counts queries, DuckDB's statement splitter the rest;
//! - a query (`SELECT`, `WITH`, `FROM …`, `VALUES`, `DESCRIBE`, `SHOW`, `SUMMARIZE`, `PIVOT … IN
//!   (…)`, `UNPIVOT`: what DuckDB's `json_serialize_sql` accepts) runs;
//! - so do `EXPLAIN [ANALYZE]` of a query, `SET VARIABLE`, a few settings and pragmas that
//!   only read or tune the session, temporary objects (`CREATE TEMP …`), the DML and DDL the
//!   read-only store itself refuses for its own tables, and transaction control;
//! - anything else is refused, with the statement's number and start.

#![allow(unsafe_code)] // reason: DuckDB's statement splitter (duckdb_extract_statements) has no safe binding

use std::ffi::{CStr, CString};
use std::ptr;

use duckdb::{Connection, ffi};

/// Why a statement was not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "statement {index} is read by DuckDB as {count} statements; separate them with `;` outside \
         quotes and comments"
    )]
    Several { index: usize, count: usize },
    #[error(
        "statement {index} is a PIVOT without `IN (…)`, which DuckDB runs as two statements; list \
         the values, e.g. `PIVOT calls ON role_kind IN ('task', 'execution') USING count(*)`"
    )]
    DynamicPivot { index: usize },
    #[error(
        "statement {index} (`{start}`) is refused: `credtrail sql` runs queries and writes no file \
         (COPY, EXPORT, ATTACH, LOAD, PREPARE and settings or pragmas that name files are refused); \
         to keep rows, print them with --format csv or json and redirect the output"
    )]
    NotAllowed { index: usize, start: String },
}

/// Settings a session may change: none names a file or opens access to one.
const SETTINGS: [&str; 10] = [
    "threads",
    "memory_limit",
    "max_memory",
    "timezone",
    "default_order",
    "default_null_order",
    "preserve_insertion_order",
    "explain_output",
    "schema",
    "search_path",
];

/// Pragmas that only read.
const PRAGMAS: [&str; 13] = [
    "table_info",
    "show",
    "show_tables",
    "show_tables_expanded",
    "show_databases",
    "database_list",
    "database_size",
    "storage_info",
    "metadata_info",
    "version",
    "platform",
    "functions",
    "collations",
];

/// Checks every statement (1-based `index` in messages) before any runs.
pub fn check_all(conn: &Connection, statements: &[String]) -> anyhow::Result<()> {
    // Opened only for a statement that is not a query: `json_serialize_sql` counts a query's
    // statements itself, so the usual SQL costs no second database.
    let mut parser = None;
    for (i, s) in statements.iter().enumerate() {
        check(conn, &mut parser, i + 1, s)?;
    }
    Ok(())
}

fn check(
    conn: &Connection,
    parser: &mut Option<Parser>,
    index: usize,
    statement: &str,
) -> anyhow::Result<()> {
    let queries = query_count(conn, statement)?;
    let count = match (queries, parser.as_ref()) {
        (Some(n), _) => Some(n),
        (None, Some(p)) => p.count(statement),
        (None, None) => parser.insert(Parser::new()?).count(statement),
    };
    match count {
        // DuckDB cannot parse it: running it reports the same error in the user's terms, and a
        // statement that does not parse runs nothing.
        None | Some(1) => {}
        Some(count) => {
            let pivot = leading_words(statement, 1)
                .first()
                .is_some_and(|(w, _)| w.eq_ignore_ascii_case("PIVOT"));
            return Err(if pivot {
                Refused::DynamicPivot { index }
            } else {
                Refused::Several { index, count }
            }
            .into());
        }
    }
    if queries.is_some() {
        return Ok(());
    }
    let words = leading_words(statement, 6);
    let w: Vec<String> = words.iter().map(|(w, _)| w.to_ascii_uppercase()).collect();
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let allowed = match w.as_slice() {
        ["EXPLAIN", rest @ ..] => {
            let skip = usize::from(rest.first() == Some(&"ANALYZE"));
            let start = words.get(skip).map_or(statement.len(), |(_, end)| *end);
            query_count(conn, &statement[start..])?.is_some()
        }
        ["SET" | "RESET", "VARIABLE", ..] => true,
        ["SET" | "RESET", "SESSION" | "LOCAL", name, ..] | ["SET" | "RESET", name, ..] => {
            SETTINGS.contains(&name.to_ascii_lowercase().as_str())
        }
        ["PRAGMA", name, ..] => PRAGMAS.contains(&name.to_ascii_lowercase().as_str()),
        ["CREATE", rest @ ..] => {
            let rest = match rest {
                ["OR", "REPLACE", more @ ..] => more,
                more => more,
            };
            matches!(
                rest,
                [
                    "TEMP" | "TEMPORARY",
                    "TABLE" | "VIEW" | "MACRO" | "FUNCTION" | "SEQUENCE" | "TYPE",
                    ..
                ] | [
                    "TABLE"
                        | "VIEW"
                        | "MACRO"
                        | "FUNCTION"
                        | "SEQUENCE"
                        | "TYPE"
                        | "SCHEMA"
                        | "INDEX",
                    ..
                ] | ["UNIQUE", "INDEX", ..]
            )
        }
        ["UPDATE", "EXTENSIONS", ..] => false,
        [
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "DROP" | "ALTER" | "TRUNCATE",
            ..,
        ] => true,
        [
            "BEGIN" | "COMMIT" | "ROLLBACK" | "ABORT" | "START" | "END" | "USE",
            ..,
        ] => true,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refused::NotAllowed {
            index,
            start: start_of(statement),
        }
        .into())
    }
}

/// How many statements DuckDB's parser reads in `sql` when they are all queries (what
/// `json_serialize_sql` serialises); None otherwise.
fn query_count(conn: &Connection, sql: &str) -> anyhow::Result<Option<usize>> {
    let json: String = conn.query_row(
        "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR",
        [sql],
        |r| r.get(0),
    )?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    let n = v["statements"].as_array().map_or(0, Vec::len);
    Ok((v["error"] == serde_json::Value::Bool(false) && n > 0).then_some(n))
}

/// The statement's first 60 characters on one line, control characters escaped, for messages.
fn start_of(statement: &str) -> String {
    let line = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut start: String = line.chars().take(60).collect();
    if start.len() < line.len() {
        start.push('…');
    }
    crate::terminal::escape_control(&start).into_owned()
}

/// The first `n` words of a statement, each with the byte offset just past it, skipping
/// whitespace, comments and opening parentheses.
fn leading_words(sql: &str, n: usize) -> Vec<(String, usize)> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() && out.len() < n {
        match b[i] {
            c if c.is_ascii_whitespace() || c == b'(' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push((sql[start..i].to_string(), i));
            }
            // A quoted name or any other token ends the words that decide.
            _ => break,
        }
    }
    out
}

/// DuckDB's own statement splitter, on an in-memory database of its own: it only parses.
struct Parser {
    db: ffi::duckdb_database,
    con: ffi::duckdb_connection,
}

impl Parser {
    fn new() -> anyhow::Result<Parser> {
        let mut db: ffi::duckdb_database = ptr::null_mut();
        // SAFETY: a null path opens an in-memory database; `db` receives its handle.
        if unsafe { ffi::duckdb_open(ptr::null(), &mut db) } != ffi::DuckDBSuccess {
            anyhow::bail!("could not open DuckDB's parser");
        }
        let mut con: ffi::duckdb_connection = ptr::null_mut();
        // SAFETY: `db` is the open database from above.
        if unsafe { ffi::duckdb_connect(db, &mut con) } != ffi::DuckDBSuccess {
            // SAFETY: `db` is open and closed once here.
            unsafe { ffi::duckdb_close(&mut db) };
            anyhow::bail!("could not connect to DuckDB's parser");
        }
        Ok(Parser { db, con })
    }

    /// How many statements DuckDB reads in `sql`; None when it cannot parse it.
    fn count(&self, sql: &str) -> Option<usize> {
        let text = CString::new(sql).ok()?;
        let mut extracted: ffi::duckdb_extracted_statements = ptr::null_mut();
        // SAFETY: `con` is open for the life of `self`, `text` is NUL-terminated, and the
        // extracted statements are destroyed below whatever the count.
        let n = unsafe { ffi::duckdb_extract_statements(self.con, text.as_ptr(), &mut extracted) };
        let error = if n == 0 && !extracted.is_null() {
            // SAFETY: `extracted` is valid until destroyed; a non-null message is a C string
            // owned by it, copied here before that.
            let e = unsafe { ffi::duckdb_extract_statements_error(extracted) };
            (!e.is_null()).then(|| unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned())
        } else {
            None
        };
        // SAFETY: destroyed once; null is accepted.
        unsafe { ffi::duckdb_destroy_extracted(&mut extracted) };
        match (n, error) {
            (0, _) => None,
            (n, None) => Some(n as usize),
            (_, Some(_)) => None,
        }
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: both handles were opened in `new` and are released once, connection first.
        unsafe {
            ffi::duckdb_disconnect(&mut self.con);
            ffi::duckdb_close(&mut self.db);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(sql: &str) -> Result<(), String> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER)").unwrap();
        check_all(&conn, &[sql.to_string()]).map_err(|e| e.to_string())
    }

    #[test]
    fn queries_and_session_statements_run() {
        for sql in [
            "SELECT 1",
            "  -- why\n(SELECT 1) UNION ALL (SELECT 2)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "FROM t",
            "VALUES (1)",
            "DESCRIBE t",
            "SHOW TABLES",
            "SUMMARIZE t",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE /* c */ SELECT * FROM t",
            "PIVOT t ON a IN (1, 2)",
            "UNPIVOT t ON a",
            "SET VARIABLE v = 'x'",
            "SET threads = 1",
            "set TimeZone = 'UTC'",
            "PRAGMA table_info('t')",
            "PRAGMA version",
            "CREATE TEMP TABLE z AS SELECT 1",
            "create or replace temporary macro m(x) AS x + 1",
            "INSERT INTO t VALUES (1)",
            "BEGIN TRANSACTION",
        ] {
            assert_eq!(verdict(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn statements_that_write_files_are_refused() {
        for sql in [
            "COPY (SELECT 1) TO 'x.csv'",
            "copy t to 'x.parquet'",
            "EXPORT DATABASE 'dir'",
            "IMPORT DATABASE 'dir'",
            "ATTACH 'new.duckdb' AS n",
            "INSTALL httpfs",
            "LOAD 'x.duckdb_extension'",
            "SET profiling_output = 'x.json'",
            "SET log_query_path = 'q.log'",
            "SET enable_external_access = true",
            "PRAGMA enable_profiling = 'json'",
            "PRAGMA profiling_output = 'x'",
            "CALL pragma_version()",
            "PREPARE p AS SELECT 1",
            "EXECUTE p",
            "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
            "CREATE PERSISTENT SECRET s (TYPE s3)",
            "CREATE SECRET s (TYPE s3)",
            "UPDATE EXTENSIONS",
            "CHECKPOINT",
            "VACUUM",
        ] {
            let err = verdict(sql).expect_err(sql);
            assert!(err.contains("is refused"), "{sql}: {err}");
        }
        assert_eq!(
            verdict("COPY (SELECT 1) TO 'x.csv'").unwrap_err(),
            "statement 1 (`COPY (SELECT 1) TO 'x.csv'`) is refused: `credtrail sql` runs queries \
             and writes no file (COPY, EXPORT, ATTACH, LOAD, PREPARE and settings or pragmas that \
             name files are refused); to keep rows, print them with --format csv or json and \
             redirect the output"
        );
    }

    #[test]
    fn a_second_statement_hidden_from_the_splitter_is_refused() {
        // Our splitter reads this as one statement (it knows no backslash escapes, so the
        // string runs on past the `;`); DuckDB reads `E'\''` as a quote, then COPY.
        let sql = r"SELECT E'\''; COPY (SELECT 1) TO 'x.csv'; --'";
        assert_eq!(crate::sql::split_statements(sql).len(), 1);
        assert_eq!(
            verdict(sql),
            Err(
                "statement 1 is read by DuckDB as 2 statements; separate them with `;` outside \
                 quotes and comments"
                    .to_string()
            )
        );
        assert!(
            verdict("PIVOT t ON a")
                .unwrap_err()
                .contains("is a PIVOT without `IN (…)`")
        );
        assert_eq!(Parser::new().unwrap().count("SELECT 1; SELECT 2"), Some(2));
        assert_eq!(Parser::new().unwrap().count("SELEC 1"), None);
    }

    #[test]
    fn words_skip_comments_and_parentheses() {
        let w = leading_words("/* a */ ( -- b\n EXPLAIN analyze SELECT", 3);
        let words: Vec<&str> = w.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["EXPLAIN", "analyze", "SELECT"]);
        assert_eq!(leading_words("\"quoted\" x", 2), []);
    }
}
