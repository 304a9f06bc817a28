//! The analyzer's own DuckDB store (`--store`, default `./credtrail.duckdb`). One thread owns a
//! [`Store`]; every ingest path writes through it in transactions, so a failed batch leaves
//! nothing half-written.
//!
//! The audit tables (`credential_requests`, `rejected_lines`, `task_inventory`) are created from
//! the collector's own `schema.sql`, so their columns are the segment schema by construction.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use duckdb::Connection;
use duckdb::types::{TimeUnit, Value};

use crate::cloudtrail::part::Parts;

const SCHEMA: &str = include_str!("schema.sql");
pub(crate) const VIEWS: &str = include_str!("views.sql");
/// The collector's DDL: the contract between its segments and this store (`credential_requests`
/// is a view in the collector's store; its published columns are in `segments.sql`).
const COLLECTOR_SCHEMA: &str = concat!(
    include_str!("../../collector/src/schema.sql"),
    include_str!("../../collector/src/segments.sql")
);
/// The collector tables the analyzer holds (the ones the collector publishes as segments).
pub const AUDIT_TABLES: [&str; 4] = [
    "credential_requests",
    "rejected_lines",
    "task_inventory",
    "collector_coverage",
];

/// Why the store could not be opened; the caller matches on `Locked`.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store {path} is in use by another process: {message}")]
    Locked { path: PathBuf, message: String },
    /// The reason is part of the message, with its whole chain, and is not a `source` too:
    /// callers print `{:#}`, which would say it twice.
    #[error("cannot open store {path}: {reason:#}")]
    Other {
        path: PathBuf,
        reason: anyhow::Error,
    },
}

pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// Where `cloudtrail_events` is kept (see `cloudtrail::part`).
    parts: Parts,
    /// The parts directory of an in-memory store, removed with it.
    _scratch: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens (creating if needed) the store file and its schema.
    pub fn open(path: &Path) -> Result<Store, OpenError> {
        let other = |reason: anyhow::Error| OpenError::Other {
            path: path.to_path_buf(),
            reason,
        };
        let config = duckdb::Config::default()
            .max_memory("256MB")
            .map_err(|e| other(e.into()))?;
        let conn = Connection::open_with_flags(path, config).map_err(|source| {
            let message = source.to_string();
            if message.contains("lock") {
                OpenError::Locked {
                    path: path.to_path_buf(),
                    message,
                }
            } else {
                // DuckDB's own message; its error code adds nothing ("Unknown error code").
                other(anyhow::anyhow!("{}", message.trim_end()))
            }
        })?;
        let parts = Parts::beside(path).map_err(other)?;
        let store = Store {
            conn,
            path: Some(path.to_path_buf()),
            parts,
            _scratch: None,
        };
        store.init().map_err(other)?;
        Ok(store)
    }

    /// Opens an existing store read-only, for investigations (`sql`, `query`): nothing run through
    /// it can change the evidence. The file cannot be written, so this version's views are
    /// created as temporary views that shadow the stored ones for this connection, over the
    /// parts where they are now. Extensions are never auto-installed (no network).
    pub fn open_read_only(path: &Path) -> Result<Store, OpenError> {
        let other = |reason: anyhow::Error| OpenError::Other {
            path: path.to_path_buf(),
            reason,
        };
        if !path.exists() {
            return Err(other(anyhow::anyhow!(
                "no such file: load data with `credtrail ingest` first, or give --store"
            )));
        }
        let config = duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .and_then(|c| c.max_memory("256MB"))
            .and_then(|c| c.enable_autoload_extension(false))
            .and_then(|c| c.with("autoinstall_known_extensions", "false"))
            .map_err(|e| other(e.into()))?;
        let conn = Connection::open_with_flags(path, config).map_err(|source| {
            let message = source.to_string();
            if message.contains("lock") {
                OpenError::Locked {
                    path: path.to_path_buf(),
                    message,
                }
            } else {
                // DuckDB's own message; its error code adds nothing ("Unknown error code").
                other(anyhow::anyhow!("{}", message.trim_end()))
            }
        })?;
        let parts = Parts::beside(path).map_err(other)?;
        // The stored view names the parts where the store was last opened read-write; it may
        // have moved since.
        let shadowed = store_has_parts_table(&conn);
        if shadowed {
            parts.check_present(&conn).map_err(other)?;
            parts.shadow_view(&conn).map_err(other)?;
        }
        let store = Store {
            conn,
            path: Some(path.to_path_buf()),
            parts,
            _scratch: None,
        };
        let current = store.meta(VIEWS_KEY).ok().flatten() == Some(views_stamp());
        if !current {
            // A store from an older version: missing tables (an audit table such as
            // `collector_coverage` included) and columns get temporary stand-ins.
            store
                .conn
                .execute_batch(&schema_stand_ins(&store.conn).map_err(other)?)
                .context("standing in for tables and columns this version adds")
                .map_err(other)?;
        }
        // A stored view reads what it names from its own schema first: the stored views would
        // read the stored `cloudtrail_events`, not its shadow. Temporary ones read the shadow.
        if shadowed || !current {
            store
                .conn
                .execute_batch(&temporary_views())
                .context("creating this version's views (temporary, the store is read-only)")
                .map_err(other)?;
        }
        Ok(store)
    }

    /// An in-memory store (tests, one-shot runs).
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        let scratch = tempfile::Builder::new()
            .prefix("credtrail-parts-")
            .tempdir()
            .context("creating the in-memory store's parts directory")?;
        let store = Store {
            conn,
            path: None,
            parts: Parts::in_dir(scratch.path()),
            _scratch: Some(scratch),
        };
        store.init()?;
        Ok(store)
    }

    fn init(&self) -> Result<()> {
        for stmt in collector_tables() {
            self.conn
                .execute_batch(&stmt)
                .context("creating the audit tables from the collector's schema")?;
        }
        self.conn
            .execute_batch(SCHEMA)
            .context("creating the analyzer schema")?;
        self.parts.check_present(&self.conn)?;
        self.parts.migrate_table(&self.conn)?;
        self.parts.remove_orphans(&self.conn)?;
        self.parts.refresh_view(&self.conn)?;
        self.conn
            .execute_batch(VIEWS)
            .context("creating the analyzer views")?;
        if self.meta(VIEWS_KEY)?.as_deref() != Some(views_stamp().as_str()) {
            Store::set_meta(&self.conn, VIEWS_KEY, &views_stamp())?;
        }
        Ok(())
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The Parquet parts that hold `cloudtrail_events`.
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        in_transaction(&self.conn, f)
    }

    /// `SELECT count(*)` of a table or any query returning one integer.
    pub fn count(&self, sql: &str) -> Result<i64> {
        Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
    }

    /// Checks that a `--since`/`--until` value is a time DuckDB reads (`flag` names it in the
    /// error).
    pub fn check_time(&self, flag: &str, value: Option<&str>) -> Result<()> {
        if let Some(v) = value {
            self.conn
                .query_row(&format!("SELECT {}::TIMESTAMP", sql_string(v)), [], |_| {
                    Ok(())
                })
                .with_context(|| format!("{flag} {v:?} is not a time"))?;
        }
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT value FROM analyzer_meta WHERE key = ?")?;
        let mut rows = stmt.query([key])?;
        Ok(match rows.next()? {
            Some(r) => r.get(0)?,
            None => None,
        })
    }

    pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
        conn.execute("DELETE FROM analyzer_meta WHERE key = ?", [key])?;
        conn.execute("INSERT INTO analyzer_meta VALUES (?, ?)", [key, value])?;
        Ok(())
    }
}

/// True when the store was written by a version that keeps CloudTrail events in parts.
fn store_has_parts_table(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'cloudtrail_parts'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

/// Runs `f` in one transaction on `conn`: committed when it returns `Ok`, rolled back otherwise.
pub fn in_transaction<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    match f(conn) {
        Ok(v) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e).context("committing")
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `analyzer_meta` key: which `views.sql` the store's views were created from.
const VIEWS_KEY: &str = "views_version";

fn views_stamp() -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(VIEWS.as_bytes()))
}

/// `views.sql` with every view temporary (for a store opened read-only).
fn temporary_views() -> String {
    VIEWS
        .replace("CREATE OR REPLACE VIEW ", "CREATE OR REPLACE TEMP VIEW ")
        .replace("CREATE OR REPLACE MACRO ", "CREATE OR REPLACE TEMP MACRO ")
}

/// For a store an older version wrote, opened read-only (its tables cannot change): temporary
/// stand-ins for what this version's schema adds, so this version's views prepare. A missing
/// table becomes an empty temporary table; a table without some columns is shadowed by a
/// temporary view over it that adds them as NULL (added columns come last in `schema.sql`, so
/// the order is the current one).
fn schema_stand_ins(conn: &Connection) -> Result<String> {
    let current = Connection::open_in_memory()?;
    for stmt in collector_tables() {
        current.execute_batch(&stmt)?;
    }
    current.execute_batch(SCHEMA)?;
    let columns = |c: &Connection| -> Result<Vec<(String, String, String)>> {
        let mut stmt = c.prepare(
            "SELECT table_name, column_name, data_type FROM duckdb_columns()
             WHERE database_name = current_database() AND schema_name = 'main'
             ORDER BY table_name, column_index",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let want = columns(&current)?;
    let have: std::collections::HashSet<(String, String)> =
        columns(conn)?.into_iter().map(|(t, c, _)| (t, c)).collect();
    let tables: std::collections::HashSet<&str> = have.iter().map(|(t, _)| t.as_str()).collect();
    let db: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
    let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut sql = String::new();
    let mut i = 0;
    while i < want.len() {
        let table = want[i].0.clone();
        let mut j = i;
        while j < want.len() && want[j].0 == table {
            j += 1;
        }
        let cols = &want[i..j];
        if !tables.contains(table.as_str()) {
            let defs: Vec<String> = cols
                .iter()
                .map(|(_, c, ty)| format!("{} {ty}", ident(c)))
                .collect();
            sql.push_str(&format!(
                "CREATE TEMP TABLE {} ({});\n",
                ident(&table),
                defs.join(", ")
            ));
        } else {
            let missing: Vec<String> = cols
                .iter()
                .filter(|(t, c, _)| !have.contains(&(t.clone(), c.clone())))
                .map(|(_, c, ty)| format!("NULL::{ty} AS {}", ident(c)))
                .collect();
            if !missing.is_empty() {
                sql.push_str(&format!(
                    "CREATE TEMP VIEW {} AS SELECT *, {} FROM {}.main.{};\n",
                    ident(&table),
                    missing.join(", "),
                    ident(&db),
                    ident(&table)
                ));
            }
        }
        i = j;
    }
    Ok(sql)
}

/// The `CREATE TABLE` statements of the collector's schema for [`AUDIT_TABLES`], in its order.
fn collector_tables() -> Vec<String> {
    let without_comments: String = COLLECTOR_SCHEMA
        .lines()
        .map(|l| l.split_once("--").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<&str> = without_comments.split(';').map(str::trim).collect();
    AUDIT_TABLES
        .iter()
        .filter_map(|t| {
            statements.iter().find(|s| {
                s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {t} "))
                    || s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {t}("))
            })
        })
        .map(|s| format!("{s};"))
        .collect()
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A DuckDB timestamp parameter.
pub fn ts(us: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, us)
}

pub fn opt_ts(us: Option<i64>) -> Value {
    us.map_or(Value::Null, ts)
}

/// A string as a single-quoted SQL literal (for table functions that take no parameters).
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_tables_are_found_in_its_schema() {
        let stmts = collector_tables();
        assert_eq!(stmts.len(), AUDIT_TABLES.len(), "{stmts:#?}");
        let store = Store::open_in_memory().unwrap();
        for t in AUDIT_TABLES {
            assert_eq!(
                store.count(&format!("SELECT count(*) FROM {t}")).unwrap(),
                0
            );
        }
        // The collector-internal tables stay out of the analyzer's store.
        assert!(store.count("SELECT count(*) FROM ingest_state").is_err());
    }

    #[test]
    fn read_only_stores_cannot_be_changed_and_get_current_views() {
        let views = VIEWS.matches("CREATE OR REPLACE VIEW ").count();
        assert!(views >= 2);
        assert_eq!(
            temporary_views()
                .matches("CREATE OR REPLACE TEMP VIEW ")
                .count(),
            views
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.duckdb");
        assert!(Store::open_read_only(&path).is_err(), "must exist");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.meta(VIEWS_KEY).unwrap(), Some(views_stamp()));
            // As if an older version had written the store: its views are stale.
            store
                .conn()
                .execute_batch("DROP VIEW calls; DROP TABLE collector_coverage; UPDATE analyzer_meta SET value = 'old' WHERE key = 'views_version'")
                .unwrap();
        }
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(store.count("SELECT count(*) FROM calls").unwrap(), 0);
        // A store from before collector_coverage existed: the coverage views read it as empty.
        assert_eq!(
            store.count("SELECT count(*) FROM task_coverage").unwrap(),
            0
        );
        let err = store
            .conn()
            .execute_batch("DELETE FROM credential_requests")
            .unwrap_err()
            .to_string();
        assert!(err.contains("read-only"), "{err}");
    }
}
