//! Where `cloudtrail_events` lives: immutable Parquet files ("parts") in the store's parts
//! directory, listed in `cloudtrail_parts`, and a view over the listed ones.
//!
//! Why not a DuckDB table: DuckDB compresses a table's row groups on the one thread that
//! appends, and for CloudTrail's ~1.4 kB of JSON per record that serial step cost more than
//! all the parsing (see the ingest benchmark's notes in `mod.rs`). Parts are written and
//! compressed by the parse threads themselves, in parallel; DuckDB reads them natively, with
//! the same column types (JSON columns carry Parquet's JSON logical type).
//!
//! Invariants:
//! - A file is part of the store exactly when its row in `cloudtrail_parts` is committed. Files
//!   are written and synced before that commit; files no row names (a crash between the two)
//!   are deleted by the next read-write open.
//! - Parts are never changed: removing duplicates from a new part, or merging small parts,
//!   writes a new file and swaps the rows in one transaction.
//! - The view names its files by absolute path, so any DuckDB client, started in any directory
//!   and with no settings, reads it. Every read-write open writes the view again for where the
//!   store is now, and a read-only open shadows it with a temporary view of its own: a store
//!   moved with its parts directory still opens. (The view named files relative to the store's
//!   directory, found through `file_search_path`, until a stock `duckdb` shell started
//!   elsewhere could not read it.)

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use duckdb::Connection;
use duckdb::arrow::array::{Array, TimestampMicrosecondArray};
use duckdb::arrow::datatypes::Schema;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::params;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::seen::Coverage;
use crate::store::{now_us, sql_string, ts};

/// The table the parts hold (the view's name, and the directory's under the parts root).
pub const TABLE: &str = "cloudtrail_events";
/// A parse thread closes its part at this many rows; a crash loses at most the open parts
/// (the next run adds them again: eventID dedupe). 7/8 of 2^20: the most a hash set of 2^20
/// slots holds (the parse thread's set of the part's event IDs, 16 MiB).
pub const PART_ROWS: u64 = 917_504;
/// Rows per Parquet row group: DuckDB's own row-group size, its unit of parallel scan and of
/// pruning by `event_time` statistics.
const ROW_GROUP_ROWS: usize = 122_880;
/// Rows per row group in parts DuckDB writes (rewrites without duplicates, merges).
const COPY_ROW_GROUP_ROWS: usize = 16_384;
/// Parts smaller than this are merged once there are [`COMPACT_AT`] of them (every LookupEvents
/// run writes a small part; the view should not list thousands of files). Small enough that an
/// ingest's own parts are never rewritten: at 131,072 rows a million records read from S3 by
/// eight threads made eight "small" parts, and merging them doubled the ingest's time.
const SMALL_PART_ROWS: u64 = 16_384;
const COMPACT_AT: usize = 16;

/// Columns whose values repeat (service, region, role, user agent …): dictionary-encoded.
/// Everything else (IDs, JSON) is plain-encoded: a dictionary there is hashed and then thrown
/// away.
const PLAIN_COLUMNS: [&str; 5] = [
    "event_id",
    "request_parameters",
    "response_elements",
    "resources",
    "record",
];
/// Columns with min/max statistics (what queries filter on); none on the JSON text.
const STATS_COLUMNS: [&str; 6] = [
    "event_time",
    "session_created",
    "event_source",
    "event_name",
    "aws_region",
    "ingested_at",
];

/// The writer settings of every part: zstd level 1. In a one-off trial on 200,000 records
/// shaped like the ingest benchmark's (record column only, dictionaries off), zstd 1 wrote
/// 1.25 GB/s into 6.3 MB and LZ4 1.0 GB/s into 16.6 MB.
fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_created_by(format!("credtrail {}", env!("CARGO_PKG_VERSION")));
    for c in PLAIN_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for c in STATS_COLUMNS {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::Chunk);
    }
    b.build()
}

/// A part that has been written and synced, not yet registered.
#[derive(Debug)]
pub struct Part {
    pub path: PathBuf,
    pub rows: u64,
    pub min_us: i64,
    pub max_us: i64,
    /// Whether every event ID of the part went through the run's shared set (set by the parse
    /// thread that wrote it).
    pub coverage: Coverage,
}

/// The parts one ingest registered whose coverage was [`Coverage::Complete`]: no such part
/// holds an event ID another one holds, so they are not looked up against each other.
#[derive(Debug, Default)]
pub struct RunParts {
    complete: std::collections::HashSet<String>,
}

/// One part being written by one thread.
pub struct PartWriter {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    rows: u64,
    min_us: i64,
    max_us: i64,
}

impl PartWriter {
    pub fn create(path: PathBuf, schema: Arc<Schema>) -> Result<PartWriter> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema,
            Some(properties()),
        )?;
        Ok(PartWriter {
            path,
            writer,
            rows: 0,
            min_us: i64::MAX,
            max_us: i64::MIN,
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a batch of `cloudtrail_events` rows (column 1 is `event_time`).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(times) = batch
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
        {
            for t in times.values().iter() {
                self.min_us = self.min_us.min(*t);
                self.max_us = self.max_us.max(*t);
            }
        }
        self.writer
            .write(batch)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes the file and syncs it to disk.
    pub fn finish(self) -> Result<Part> {
        let path = self.path;
        let buf = self
            .writer
            .into_inner()
            .with_context(|| format!("closing {}", path.display()))?;
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
        Ok(Part {
            path,
            rows: self.rows,
            min_us: self.min_us,
            max_us: self.max_us,
            coverage: Coverage::Partial,
        })
    }
}

/// The parts directory of one store, and the registry and view over it.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Absolute directory of the files.
    dir: PathBuf,
}

/// Names new part files: `<run start µs>-<thread>-<n>.parquet`, unique within the store
/// (one read-write process at a time holds it).
pub struct Namer {
    dir: PathBuf,
    run: i64,
    next: AtomicU32,
}

impl Namer {
    pub fn next(&self, thread: usize) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{:016x}-{thread}-{n:05}.parquet", self.run))
    }
}

impl Parts {
    /// The parts of the store file at `store` (`<store>.parts/cloudtrail_events/`).
    pub fn beside(store: &Path) -> Result<Parts> {
        let store =
            std::path::absolute(store).with_context(|| format!("resolving {}", store.display()))?;
        let parent = store
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let file_name = store
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "store".into());
        Ok(Parts {
            dir: parent.join(format!("{file_name}.parts")).join(TABLE),
        })
    }

    /// Parts in a directory of their own (in-memory stores).
    pub fn in_dir(dir: &Path) -> Parts {
        Parts {
            dir: dir.join(TABLE),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn namer(&self) -> Result<Namer> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        Ok(Namer {
            dir: self.dir.clone(),
            run: now_us(),
            next: AtomicU32::new(0),
        })
    }

    /// Absolute path of a registered file name.
    fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn file_name(path: &Path) -> String {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `read_parquet` over these absolute paths, as SQL.
    fn scan(paths: &[PathBuf]) -> String {
        let list: Vec<String> = paths
            .iter()
            .map(|p| sql_string(&p.to_string_lossy()))
            .collect();
        format!("read_parquet([{}])", list.join(", "))
    }

    /// (Re)creates the view `cloudtrail_events` over the registered parts, named by absolute
    /// path; before the first part it shows the empty `cloudtrail_event_columns`.
    pub fn refresh_view(&self, conn: &Connection) -> Result<()> {
        let body = self.view_body(conn)?;
        conn.execute_batch(&format!("CREATE OR REPLACE VIEW {TABLE} AS {body}"))
            .context("creating the cloudtrail_events view")?;
        Ok(())
    }

    /// A temporary `cloudtrail_events` over the parts where they are now, shadowing the
    /// stored view for this connection (a read-only store moved since it was last written).
    pub fn shadow_view(&self, conn: &Connection) -> Result<()> {
        let body = self.view_body(conn)?;
        conn.execute_batch(&format!("CREATE OR REPLACE TEMP VIEW {TABLE} AS {body}"))
            .context("creating a temporary cloudtrail_events view")?;
        Ok(())
    }

    /// The query of the view over the registered parts.
    fn view_body(&self, conn: &Connection) -> Result<String> {
        let files: Vec<String> = strings(
            conn,
            "SELECT file FROM cloudtrail_parts ORDER BY min_time, file",
            [],
        )?;
        let columns: Vec<String> = strings(
            conn,
            "SELECT column_name FROM information_schema.columns
                 WHERE table_name = 'cloudtrail_event_columns' AND table_schema = 'main'
                 ORDER BY ordinal_position",
            [],
        )?;
        Ok(if files.is_empty() {
            "SELECT * FROM cloudtrail_event_columns".to_string()
        } else {
            let list: Vec<String> = files
                .iter()
                .map(|f| sql_string(&self.path_of(f).to_string_lossy()))
                .collect();
            format!(
                "SELECT {} FROM read_parquet([{}], union_by_name = true)",
                columns.join(", "),
                list.join(", ")
            )
        })
    }

    /// Fails when registered parts are missing (the store was copied or moved without its
    /// parts directory): every query of `cloudtrail_events` would fail, and new parts would be
    /// registered beside a hole.
    pub fn check_present(&self, conn: &Connection) -> Result<()> {
        let files: Vec<String> =
            strings(conn, "SELECT file FROM cloudtrail_parts ORDER BY file", [])?;
        let missing = files.iter().filter(|f| !self.path_of(f).is_file()).count();
        if missing > 0 {
            anyhow::bail!(
                "{missing} of the store's {} CloudTrail part files are not in {} (copy or move \
                 the store's .parts directory together with it)",
                files.len(),
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Deletes files in the parts directory that no committed row names (left by a crash
    /// between writing a part and registering it).
    pub fn remove_orphans(&self, conn: &Connection) -> Result<u64> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let known: std::collections::HashSet<String> =
            strings(conn, "SELECT file FROM cloudtrail_parts", [])?
                .into_iter()
                .collect();
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %self.dir.display(), "removed unregistered part files");
        }
        Ok(removed)
    }

    /// Registered parts whose time range meets `[lo, hi]`.
    fn overlapping(&self, conn: &Connection, lo: i64, hi: i64) -> Result<Vec<PathBuf>> {
        let files = strings(
            conn,
            "SELECT file FROM cloudtrail_parts WHERE min_time <= ? AND max_time >= ? ORDER BY file",
            params![ts(hi), ts(lo)],
        )?;
        Ok(files.iter().map(|f| self.path_of(f)).collect())
    }

    /// Removes from `part` the events already stored (same `event_id`; a copy of a record has
    /// its time, so only parts overlapping its time range are read, and of the parts this run
    /// registered, only those the run's shared set does not vouch for: see [`RunParts`]), then
    /// registers what is left. Returns the duplicates found per `source_file`. The part must
    /// hold no event ID twice (its writer saw to that).
    pub fn register(
        &self,
        conn: &Connection,
        part: Part,
        run: &mut RunParts,
    ) -> Result<Vec<(String, u64)>> {
        let coverage = part.coverage;
        let name = Parts::file_name(&part.path);
        let duplicates = self.dedupe_and_insert(conn, part, run)?;
        if coverage == Coverage::Complete {
            run.complete.insert(name);
        }
        Ok(duplicates)
    }

    fn dedupe_and_insert(
        &self,
        conn: &Connection,
        part: Part,
        run: &RunParts,
    ) -> Result<Vec<(String, u64)>> {
        let mut part = part;
        let mut duplicates = Vec::new();
        if part.rows == 0 {
            remove(&part.path)?;
            return Ok(duplicates);
        }
        let mut stored = self.overlapping(conn, part.min_us, part.max_us)?;
        if part.coverage == Coverage::Complete {
            stored.retain(|p| !run.complete.contains(&Parts::file_name(p)));
        }
        if !stored.is_empty() {
            let new = Parts::scan(std::slice::from_ref(&part.path));
            // The new part's IDs are the hash table (IN's right side is what DuckDB builds);
            // the stored parts, which can hold several times as many, stream past it.
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE ct_duplicate_ids AS
                 SELECT DISTINCT event_id FROM {old}
                 WHERE event_time BETWEEN {lo} AND {hi}
                   AND event_id IN (SELECT event_id FROM {new})",
                old = Parts::scan(&stored),
                lo = timestamp_sql(part.min_us),
                hi = timestamp_sql(part.max_us),
            ))
            .context("looking up stored event IDs")?;
            // Usually none: then the new part is not read again.
            if conn.query_row("SELECT count(*) FROM ct_duplicate_ids", [], |r| {
                r.get::<_, i64>(0)
            })? == 0
            {
                return self.insert(conn, part).map(|()| duplicates);
            }
            let mut stmt = conn.prepare(&format!(
                "SELECT source_file, count(*) FROM {new}
                 WHERE event_id IN (SELECT event_id FROM ct_duplicate_ids) GROUP BY ALL"
            ))?;
            duplicates = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<_, _>>()?;
            let removed: u64 = duplicates.iter().map(|d| d.1).sum();
            if removed == part.rows {
                remove(&part.path)?;
                return Ok(duplicates);
            }
            if removed > 0 {
                part = self.rewrite(
                    conn,
                    &part,
                    &format!(
                        "SELECT * FROM {new} WHERE event_id NOT IN (SELECT event_id FROM ct_duplicate_ids)"
                    ),
                )?;
            }
        }
        self.insert(conn, part)?;
        Ok(duplicates)
    }

    /// Registers a part and recreates the view over all of them, in one transaction.
    fn insert(&self, conn: &Connection, part: Part) -> Result<()> {
        crate::store::in_transaction(conn, |conn| {
            insert_part(conn, &part)?;
            self.refresh_view(conn)
        })
    }

    /// Writes the rows of `query` (over `part`'s file) as a new part and deletes the old file.
    fn rewrite(&self, conn: &Connection, part: &Part, query: &str) -> Result<Part> {
        let out = part.path.with_extension("rewrite.parquet");
        copy_to(conn, query, &out)?;
        std::fs::rename(&out, &part.path)
            .with_context(|| format!("replacing {}", part.path.display()))?;
        let mut new = stat_part(conn, &part.path)?;
        // Fewer rows, the same IDs otherwise.
        new.coverage = part.coverage;
        Ok(new)
    }

    /// Merges small parts into one once there are [`COMPACT_AT`] of them. Returns how many
    /// parts were merged (0 when nothing was to do).
    pub fn compact(&self, conn: &Connection, namer: &Namer) -> Result<usize> {
        let small: Vec<String> = strings(
            conn,
            "SELECT file FROM cloudtrail_parts WHERE rows < ? ORDER BY min_time, file",
            [SMALL_PART_ROWS as i64],
        )?;
        if small.len() < COMPACT_AT {
            return Ok(0);
        }
        let paths: Vec<PathBuf> = small.iter().map(|f| self.path_of(f)).collect();
        let out = namer.next(0);
        copy_to(
            conn,
            &format!("SELECT * FROM {}", Parts::scan(&paths)),
            &out,
        )?;
        let part = stat_part(conn, &out)?;
        crate::store::in_transaction(conn, |conn| {
            for f in &small {
                conn.execute("DELETE FROM cloudtrail_parts WHERE file = ?", [f])?;
            }
            insert_part(conn, &part)?;
            self.refresh_view(conn)
        })?;
        for p in &paths {
            remove(p)?;
        }
        Ok(small.len())
    }

    /// A store written before events were kept in parts has a `cloudtrail_events` table: its
    /// rows become the first part, and the table makes way for the view, in one transaction.
    pub fn migrate_table(&self, conn: &Connection) -> Result<bool> {
        let is_table = conn.query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'
               AND database_name = current_database()",
            [TABLE],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if !is_table {
            return Ok(false);
        }
        let rows = conn.query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| {
            r.get::<_, i64>(0)
        })?;
        let part = if rows > 0 {
            let out = self.namer()?.next(0);
            copy_to(conn, &format!("SELECT * FROM {TABLE}"), &out)?;
            Some(stat_part(conn, &out)?)
        } else {
            None
        };
        crate::store::in_transaction(conn, |conn| {
            conn.execute_batch(&format!("DROP TABLE {TABLE}"))?;
            if let Some(part) = &part {
                insert_part(conn, part)?;
            }
            self.refresh_view(conn)
        })
        .context("converting the cloudtrail_events table into parts")?;
        tracing::info!(rows, "converted the cloudtrail_events table into a part");
        Ok(true)
    }
}

/// The first column of a query's rows, as strings.
fn strings(conn: &Connection, sql: &str, params: impl duckdb::Params) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Registers a written part (inside the caller's transaction).
fn insert_part(conn: &Connection, part: &Part) -> Result<()> {
    let bytes = std::fs::metadata(&part.path).map_or(0, |m| m.len());
    conn.execute(
        "INSERT INTO cloudtrail_parts VALUES (?, ?, ?, ?, ?, ?)",
        params![
            Parts::file_name(&part.path),
            part.rows as i64,
            ts(part.min_us),
            ts(part.max_us),
            bytes as i64,
            ts(now_us())
        ],
    )?;
    Ok(())
}

/// `COPY (query) TO out` as a part: the same compression as the parse threads write (DuckDB
/// keeps the JSON logical type), synced. DuckDB holds a whole row group in memory before it
/// writes it, so its row groups are smaller than the parse threads' (122,880 rows of records
/// ran out of the store's 256 MB memory limit).
fn copy_to(conn: &Connection, query: &str, out: &Path) -> Result<()> {
    conn.execute_batch(&format!(
        "COPY ({query}) TO {} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1,
                               ROW_GROUP_SIZE {COPY_ROW_GROUP_ROWS})",
        sql_string(&out.to_string_lossy())
    ))
    .with_context(|| format!("writing {}", out.display()))?;
    File::open(out)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", out.display()))?;
    Ok(())
}

/// Rows and time range of a part file, read back through DuckDB.
fn stat_part(conn: &Connection, path: &Path) -> Result<Part> {
    let (rows, lo, hi) = conn.query_row(
        &format!(
            "SELECT count(*), epoch_us(min(event_time)), epoch_us(max(event_time)) FROM {}",
            Parts::scan(std::slice::from_ref(&path.to_path_buf()))
        ),
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        },
    )?;
    Ok(Part {
        path: path.to_path_buf(),
        rows: rows as u64,
        min_us: lo.unwrap_or(0),
        max_us: hi.unwrap_or(0),
        coverage: Coverage::Partial,
    })
}

fn timestamp_sql(us: i64) -> String {
    format!("make_timestamp({us}::BIGINT)")
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudtrail::ingest_records;
    use crate::store::Store;

    fn rec(id: &str, second: u32) -> String {
        format!(
            r#"{{"eventID":"{id}","eventTime":"2026-11-20T10:00:{second:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","requestParameters":{{"bucketName":"b"}},"resources":[{{"ARN":"arn:aws:s3:::b"}}]}}"#
        )
    }

    fn describe(store: &Store, relation: &str) -> Vec<(String, String)> {
        let mut stmt = store
            .conn()
            .prepare(&format!("DESCRIBE SELECT * FROM {relation}"))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store.count(sql).unwrap()
    }

    #[test]
    fn parts_read_back_with_the_declared_columns_and_types() {
        let store = Store::open_in_memory().unwrap();
        let empty = describe(&store, "cloudtrail_events");
        assert_eq!(empty, describe(&store, "cloudtrail_event_columns"));
        assert!(empty.iter().any(|(n, t)| n == "record" && t == "JSON"));
        ingest_records(&store, "t", &[rec("a", 1)]).unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_parts"), 1);
        assert_eq!(describe(&store, "cloudtrail_events"), empty);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM cloudtrail_events
                 WHERE json_extract_string(record, '$.eventID') = 'a'
                   AND json_extract_string(request_parameters, '$.bucketName') = 'b'"
            ),
            1
        );
    }

    #[test]
    fn copies_already_stored_are_left_out_of_a_new_part() {
        let store = Store::open_in_memory().unwrap();
        let s = ingest_records(&store, "one", &[rec("a", 1), rec("b", 2), rec("a", 1)]).unwrap();
        assert_eq!((s.stored, s.duplicates), (2, 1), "{s}");
        // Overlapping in time: the new part is rewritten without "b".
        let s = ingest_records(&store, "two", &[rec("b", 2), rec("c", 3)]).unwrap();
        assert_eq!((s.stored, s.duplicates), (1, 1), "{s}");
        // Nothing new: no part at all.
        let s = ingest_records(&store, "three", &[rec("c", 3), rec("a", 1)]).unwrap();
        assert_eq!((s.stored, s.duplicates), (0, 2), "{s}");
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_parts"), 2);
        assert_eq!(
            count(
                &store,
                "SELECT count(DISTINCT event_id) FROM cloudtrail_events"
            ),
            3
        );
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_events"), 3);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM cloudtrail_events WHERE event_id = 'b' AND source_file = 'one'"
            ),
            1
        );
        assert_eq!(
            count(&store, "SELECT sum(rows) FROM cloudtrail_parts"),
            3,
            "the registry counts what the files hold"
        );
        // Only registered files are in the directory.
        let files = std::fs::read_dir(store.parts().dir()).unwrap().count();
        assert_eq!(files, 2);
    }

    #[test]
    fn once_the_runs_set_of_ids_is_full_copies_are_still_found() {
        use crate::cloudtrail::ingest_records_with;
        use crate::cloudtrail::seen::SeenIds;
        let store = Store::open_in_memory().unwrap();
        // A set that holds no ID: every part is looked up through DuckDB, and copies within
        // one part are caught by the parse thread's own set.
        let s = ingest_records_with(
            &store,
            "one",
            &[rec("a", 1), rec("b", 2), rec("a", 1)],
            SeenIds::new(0),
        )
        .unwrap();
        assert_eq!((s.stored, s.duplicates), (2, 1), "{s}");
        let s = ingest_records_with(
            &store,
            "two",
            &[rec("b", 2), rec("c", 3), rec("c", 3)],
            SeenIds::new(0),
        )
        .unwrap();
        assert_eq!((s.stored, s.duplicates), (1, 2), "{s}");
        // A run whose set vouches for its own parts still looks up those of earlier runs.
        let s = ingest_records(&store, "three", &[rec("c", 3), rec("d", 4)]).unwrap();
        assert_eq!((s.stored, s.duplicates), (1, 1), "{s}");
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_events"), 4);
        assert_eq!(
            count(
                &store,
                "SELECT count(DISTINCT event_id) FROM cloudtrail_events"
            ),
            4
        );
    }

    #[test]
    fn small_parts_are_merged() {
        let store = Store::open_in_memory().unwrap();
        let n = COMPACT_AT as i64;
        for i in 0..COMPACT_AT as u32 {
            assert_eq!(
                count(&store, "SELECT count(*) FROM cloudtrail_parts"),
                i as i64,
                "one part per run until there are enough to merge"
            );
            ingest_records(&store, "run", &[rec(&format!("e{i}"), i)]).unwrap();
        }
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_parts"), 1);
        assert_eq!(count(&store, "SELECT rows FROM cloudtrail_parts"), n);
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_events"), n);
        let files = std::fs::read_dir(store.parts().dir()).unwrap().count();
        assert_eq!(files, 1);
        // Merged rows keep their columns (JSON stays JSON).
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM cloudtrail_events WHERE json_extract_string(resources, '$[0].ARN') = 'arn:aws:s3:::b'"
            ),
            n
        );
    }

    #[test]
    fn unregistered_files_are_removed_and_a_moved_store_still_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a").join("s.duckdb");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let dir = {
            let store = Store::open(&path).unwrap();
            ingest_records(&store, "t", &[rec("a", 1), rec("b", 2)]).unwrap();
            store.parts().dir().to_path_buf()
        };
        // As if a crash came between writing a part and registering it.
        std::fs::write(dir.join("0000-0-00000.parquet"), b"half written").unwrap();
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
            assert_eq!(
                store
                    .count("SELECT count(*) FROM cloudtrail_events")
                    .unwrap(),
                2
            );
        }
        // Without its parts directory the store says so instead of failing query by query.
        let aside = tmp.path().join("parts-aside");
        std::fs::rename(tmp.path().join("a").join("s.duckdb.parts"), &aside).unwrap();
        let err = Store::open_read_only(&path).err().unwrap().to_string();
        assert!(err.contains("not in"), "{err}");
        let err = format!("{:#}", Store::open(&path).err().unwrap());
        assert!(err.contains("copy or move"), "{err}");
        std::fs::rename(&aside, tmp.path().join("a").join("s.duckdb.parts")).unwrap();
        // The store and its parts directory moved together.
        let moved = tmp.path().join("b");
        std::fs::rename(tmp.path().join("a"), &moved).unwrap();
        let store = Store::open_read_only(&moved.join("s.duckdb")).unwrap();
        assert_eq!(
            store
                .count("SELECT count(*) FROM cloudtrail_events")
                .unwrap(),
            2
        );
    }

    #[test]
    fn a_store_with_the_old_events_table_is_converted() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.duckdb");
        {
            let store = Store::open(&path).unwrap();
            // What an earlier version created: a table under the view's name.
            store
                .conn()
                .execute_batch(
                    "DROP VIEW cloudtrail_events;
                     CREATE TABLE cloudtrail_events AS SELECT * FROM cloudtrail_event_columns;
                     INSERT INTO cloudtrail_events (event_id, event_time, request_parameters, record, source_file, ingested_at)
                     VALUES ('old-1', TIMESTAMP '2026-11-20 10:00:00', '{\"k\":1}', '{\"eventID\":\"old-1\"}', 'f', now()),
                            ('old-2', TIMESTAMP '2026-11-20 11:00:00', NULL, '{\"eventID\":\"old-2\"}', 'f', now());",
                )
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_parts"), 1);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM cloudtrail_events WHERE json_extract_string(request_parameters, '$.k') = '1'"
            ),
            1
        );
        assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_events"), 2);
        assert_eq!(
            describe(&store, "cloudtrail_events"),
            describe(&store, "cloudtrail_event_columns")
        );
        // A copy of an old row is still a duplicate.
        let s = ingest_records(
            &store,
            "again",
            &[r#"{"eventID":"old-1","eventTime":"2026-11-20T10:00:00Z"}"#.to_string()],
        )
        .unwrap();
        assert_eq!(s.duplicates, 1);
    }
}
