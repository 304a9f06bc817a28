//! Immutable Parquet segments: how the analyzer (which never opens the live store) and S3 get
//! the data.
//!
//! A segment is a range of `seq` values, one file per table and hour:
//! `<table>/date=YYYY-MM-DD/hour=HH/<host>-<store_id>-<from>-<to>.parquet` ([`segment_name`]); the
//! store ID (created with the store) keeps a rebuilt store, whose seq starts again, from
//! replacing what an earlier store published. Rows are written from what each
//! commit stored ([`Published`]): the [`Publisher`] keeps a *spool*, open Parquet files (under
//! temporary names) that every commit appends to, and publication closes them, syncs them and
//! renames them into place. A thread of its own owns the spool and encodes each commit's rows
//! while the thread owning the store reads and commits the next batch (it never touches DuckDB). The store is only read back for rows no spool holds: rows committed
//! by an earlier process that stopped before publishing them, or by a commit whose outcome was
//! unsure. Those are read in bounded pieces of `seq`.
//!
//! A range is recorded (`pending_export`) *before* any file of it gets its final name, so a crash
//! halfway re-exports exactly the same range under exactly the same names, from the store,
//! replacing rather than duplicating. Files are written under a temporary name, synced, and
//! renamed; every directory created on the way is synced too, with its parent.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use duckdb::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use duckdb::arrow::compute::{cast, filter_record_batch};
use duckdb::arrow::datatypes::{Field, Schema, TimestampMicrosecondType};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tracing::warn;

use crate::coverage::CoverageRow;
use crate::store::{Published, RequestColumns, Store};

/// The tables published, each with the timestamp column that partitions it.
/// `collector_coverage` rows are extended in place under a new seq: an interval is published
/// again with every extension (under the hour of its `covered_until`), and readers keep its row
/// with the latest `covered_until`.
pub const TABLES: [(&str, &str); 4] = [
    ("credential_requests", "event_time"),
    ("rejected_lines", "ingested_at"),
    ("task_inventory", "observed_at"),
    ("collector_coverage", "covered_until"),
];

const REQUESTS: usize = 0;
const REJECTED: usize = 1;
const INVENTORY: usize = 2;
const COVERAGE: usize = 3;

const EXPORTED_UPTO: &str = "exported_upto";
const PENDING_EXPORT: &str = "pending_export";

/// DuckDB's memory limit (MiB) while rows are read back from the store, when
/// `--store-memory-mb` is lower: what the store had for everything before ingest needed less.
const READ_BACK_MEMORY_MB: u64 = 128;

/// Rows per Parquet row group (DuckDB's row group size).
const ROW_GROUP_ROWS: usize = 122_880;

/// The file name of one segment: `prefix` (the host and the store's ID, [`name_prefix`]) and the
/// `seq` range it holds.
fn segment_name(prefix: &str, from: i64, to: i64) -> String {
    format!("{prefix}-{from:012}-{to:012}.parquet")
}

/// The temporary name of a segment being written, whose range starts at `from`.
fn temporary_name(prefix: &str, from: i64) -> String {
    format!(".{prefix}-{from:012}.parquet.tmp")
}

/// What every segment name of one store starts with: its host and its ID.
fn name_prefix(host: &str, store_id: &str) -> String {
    format!("{}-{}", sanitize(host), sanitize(store_id))
}

fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".parquet.tmp")
}

/// How much memory publication may use.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    /// Bytes of encoded rows the open files may buffer before their row groups are written out.
    pub buffer_bytes: usize,
    /// Bytes of lines read back from the store at a time (rows committed but in no spool).
    pub read_bytes: usize,
    /// Rows read back from the store at a time.
    pub read_rows: usize,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        SegmentLimits {
            buffer_bytes: 2 << 20,
            read_bytes: 2 << 20,
            read_rows: ROW_GROUP_ROWS,
        }
    }
}

/// Publishes committed rows as segments; see the module documentation.
pub struct Publisher {
    /// Where and how the spool's files are written (shared with the spool's thread).
    target: Arc<SpoolTarget>,
    /// The thread appending commits to the spool (started at the first commit).
    writer: Option<SpoolWriter>,
}

/// Where a spool's files go: the segments directory, the host, the [`name_prefix`] of the store
/// the rows come from, and the memory limits.
struct SpoolTarget {
    dir: PathBuf,
    host: String,
    prefix: String,
    limits: SegmentLimits,
}

/// What the spool's thread is asked to do, in commit order.
enum SpoolRequest {
    /// Append what one commit stored (starting a spool, for `target`, if none is open).
    Append(Box<Published>, Arc<SpoolTarget>),
    /// Hand the spool over (for publication), leaving none.
    Take(std::sync::mpsc::Sender<Option<Spool>>),
    /// Forget the spool, removing its temporary files.
    Discard,
}

/// The thread that owns the spool: Parquet encoding of one commit's rows runs there while the
/// thread owning the store reads and commits the next batch. Requests go through a rendezvous
/// channel, so at most one commit waits for the thread while it writes another: the memory of
/// the rows in flight stays one batch.
struct SpoolWriter {
    requests: std::sync::mpsc::SyncSender<SpoolRequest>,
    thread: std::thread::JoinHandle<()>,
}

impl SpoolWriter {
    fn start() -> Result<SpoolWriter> {
        let (requests, incoming) = std::sync::mpsc::sync_channel::<SpoolRequest>(0);
        let thread = std::thread::Builder::new()
            .name("segment-spool".into())
            .spawn(move || {
                let mut spool: Option<Spool> = None;
                for request in incoming {
                    match request {
                        SpoolRequest::Append(p, target) => {
                            if let Err(e) = Spool::append(&mut spool, &p, &target) {
                                warn!(error = %format!("{e:#}"), "cannot write the segment spool; its rows are read back from the store when published");
                                if let Some(s) = spool.take() {
                                    s.files.abandon();
                                }
                            }
                        }
                        SpoolRequest::Take(reply) => {
                            // A caller that went away leaves the spool to be dropped here.
                            let _ = reply.send(spool.take());
                        }
                        SpoolRequest::Discard => {
                            if let Some(s) = spool.take() {
                                s.files.abandon();
                            }
                        }
                    }
                }
                if let Some(s) = spool.take() {
                    s.files.abandon();
                }
            })
            .context("starting the segment spool thread")?;
        Ok(SpoolWriter { requests, thread })
    }
}

/// Open files holding every row committed from `from` to `upto` (inclusive).
struct Spool {
    from: i64,
    upto: i64,
    files: Files,
    /// The latest row of each coverage interval (run id, interval number): written when the
    /// spool is published.
    coverage: BTreeMap<(String, i32), (i64, CoverageRow, i64)>,
}

impl Publisher {
    /// A publisher into `dir` (created if needed); removes files a stopped process left half
    /// written.
    pub fn new(dir: &Path, host: &str, store_id: &str, limits: SegmentLimits) -> Result<Publisher> {
        create_dirs(dir)?;
        let prefix = name_prefix(host, store_id);
        let host = sanitize(host);
        remove_temporaries(dir)?;
        Ok(Publisher {
            target: Arc::new(SpoolTarget {
                dir: dir.to_path_buf(),
                host,
                prefix,
                limits,
            }),
            writer: None,
        })
    }

    /// The store was opened again (it may have been rebuilt, with a new ID): names follow it.
    pub fn set_store(&mut self, host: &str, store_id: &str) {
        let prefix = name_prefix(host, store_id);
        if prefix != self.target.prefix {
            self.discard_spool();
            self.target = Arc::new(SpoolTarget {
                dir: self.target.dir.clone(),
                host: self.target.host.clone(),
                prefix,
                limits: self.target.limits,
            });
        }
    }

    /// Hands what a commit stored to the spool's thread, which appends it to the open files
    /// while the caller goes on. A failure there loses nothing: the spool is dropped, and
    /// publication reads its rows back from the store.
    pub fn spool(&mut self, p: Published) {
        if p.last_seq < p.first_seq {
            return;
        }
        if self.writer.is_none() {
            match SpoolWriter::start() {
                Ok(w) => self.writer = Some(w),
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "no segment spool; committed rows are read back from the store when published");
                    return;
                }
            }
        }
        let request = SpoolRequest::Append(Box::new(p), self.target.clone());
        if self.send(request).is_err() {
            // The thread is gone (it panicked): this commit's rows are in no spool any more.
            self.writer = None;
        }
    }

    fn send(&self, request: SpoolRequest) -> Result<()> {
        let Some(w) = &self.writer else {
            bail!("no spool thread");
        };
        w.requests
            .send(request)
            .map_err(|_| anyhow::anyhow!("the segment spool thread stopped"))
    }

    /// The spool, with every commit handed to it so far appended; none is left open.
    fn take_spool(&mut self) -> Option<Spool> {
        self.writer.as_ref()?;
        let (reply, answer) = std::sync::mpsc::channel();
        let taken = self
            .send(SpoolRequest::Take(reply))
            .ok()
            .and_then(|()| answer.recv().ok());
        match taken {
            Some(spool) => spool,
            None => {
                warn!("the segment spool thread stopped; its rows are read back from the store");
                self.writer = None;
                None
            }
        }
    }

    /// Forgets the spool (after a commit whose outcome is unsure): its rows, and the rows of
    /// that commit if it was stored after all, are read back from the store when published.
    pub fn discard_spool(&mut self) {
        if self.writer.is_some() && self.send(SpoolRequest::Discard).is_err() {
            self.writer = None;
        }
    }

    /// Publishes every committed row not yet published. Returns the number of files written.
    pub fn publish(&mut self, store: &Store) -> Result<u64> {
        self.publish_within(store, &mut || true)
    }

    /// [`Publisher::publish`], asking `may_continue` before each new range (a range whose
    /// publication was interrupted is always finished): when it says no, publication stops
    /// there and the spool is dropped (its rows are read back from the store next time).
    pub fn publish_within(
        &mut self,
        store: &Store,
        may_continue: &mut dyn FnMut() -> bool,
    ) -> Result<u64> {
        let mut files = 0;
        if let Some(range) = store.meta(PENDING_EXPORT)? {
            // A publication that did not finish: the same range again, under the same names.
            let (from, to) = parse_range(&range)?;
            files += self.read_back(store, from, to)?;
            mark_exported(store, to)?;
        }
        let mut done = exported_upto(store)?;
        let last = store.next_seq()? - 1;
        if let Some(spool) = self.take_spool() {
            if spool.from <= done || spool.upto > last {
                // Rows already published, or a spool that does not match the store: the store
                // is the truth.
                spool.files.abandon();
            } else {
                for (a, b) in pieces(store, done + 1, spool.from - 1, self.target.limits)? {
                    if !may_continue() {
                        spool.files.abandon();
                        return Ok(files);
                    }
                    set_pending(store, a, b)?;
                    files += self.read_back(store, a, b)?;
                    mark_exported(store, b)?;
                }
                if !may_continue() {
                    spool.files.abandon();
                    return Ok(files);
                }
                let upto = spool.upto;
                set_pending(store, spool.from, upto)?;
                files += spool.publish()?;
                mark_exported(store, upto)?;
                done = upto;
            }
        }
        for (a, b) in pieces(store, done + 1, last, self.target.limits)? {
            if !may_continue() {
                return Ok(files);
            }
            set_pending(store, a, b)?;
            files += self.read_back(store, a, b)?;
            mark_exported(store, b)?;
        }
        Ok(files)
    }

    /// Writes the rows with `seq` in `from..=to` read back from the store, in pieces that fit
    /// the limits, into one file per table and hour named by the whole range.
    fn read_back(&self, store: &Store, from: i64, to: i64) -> Result<u64> {
        let t = &self.target;
        let mut files = Files::new(&t.dir, &t.host, &t.prefix, from, t.limits);
        // DuckDB's joins with the dictionaries need more than ingest does (48 MB ran out after
        // many crashes in `tests/binary.rs`); this path runs only for rows no spool holds.
        store.set_memory_limit(store.memory_mb().max(READ_BACK_MEMORY_MB))?;
        let written = (|| -> Result<()> {
            for (a, b) in pieces(store, from, to, t.limits)? {
                for (table, (name, _)) in TABLES.iter().enumerate() {
                    let sql = if table == REQUESTS {
                        REQUESTS_IN_RANGE.to_string()
                    } else {
                        format!("SELECT * FROM {name} WHERE seq BETWEEN ? AND ? ORDER BY seq")
                    };
                    let mut stmt = store.conn().prepare(&sql)?;
                    for rb in stmt.query_arrow([a, b])? {
                        files.write(table, &rb)?;
                    }
                }
            }
            Ok(())
        })();
        let written = written.and_then(|()| store.set_memory_limit(store.memory_mb()));
        match written {
            Ok(()) => files.finish(to),
            Err(e) => {
                files.abandon();
                let _ = store.set_memory_limit(store.memory_mb());
                Err(e).with_context(|| format!("publishing rows {from}..={to} from the store"))
            }
        }
    }
}

impl Drop for Publisher {
    /// Waits for the spool's thread to finish what it was handed (its files stay temporary:
    /// the next start removes them and publishes the rows from the store).
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            drop(w.requests);
            let _ = w.thread.join();
        }
    }
}

impl Spool {
    /// Appends what a commit stored to `spool`, opening one for `target` if there is none.
    fn append(spool: &mut Option<Spool>, p: &Published, target: &SpoolTarget) -> Result<()> {
        let spool = match spool {
            Some(s) => s,
            None => spool.insert(Spool {
                from: p.first_seq,
                upto: p.first_seq - 1,
                files: Files::new(
                    &target.dir,
                    &target.host,
                    &target.prefix,
                    p.first_seq,
                    target.limits,
                ),
                coverage: BTreeMap::new(),
            }),
        };
        for (table, rb) in [
            (REQUESTS, &p.requests),
            (REJECTED, &p.rejected),
            (INVENTORY, &p.inventory),
        ] {
            if let Some(rb) = rb {
                spool.files.write(table, rb)?;
            }
        }
        for (seq, row) in &p.coverage {
            spool.coverage.insert(
                (row.run_id.clone(), row.interval_no),
                (*seq, row.clone(), p.committed_at_us),
            );
        }
        spool.upto = spool.upto.max(p.last_seq);
        Ok(())
    }

    fn publish(mut self) -> Result<u64> {
        let rows: Vec<(i64, CoverageRow, i64)> =
            std::mem::take(&mut self.coverage).into_values().collect();
        if !rows.is_empty() {
            let host = self.files.host.clone();
            let rb = crate::store::coverage_batch(&host, &rows)?;
            if let Err(e) = self.files.write(COVERAGE, &rb) {
                self.files.abandon();
                return Err(e);
            }
        }
        self.files.finish(self.upto)
    }
}

/// The rows of the `credential_requests` view (schema.sql) with `seq` in `$1..=$2`, joined only
/// with the dictionary entries they use: joining whole dictionaries (a million tasks, or user
/// agents chosen by containers) would make the memory of reading back a small range grow with
/// the store. A test checks that it gives what the view gives.
const REQUESTS_IN_RANGE: &str = "
    WITH r AS (SELECT * FROM request_rows WHERE seq BETWEEN $1 AND $2)
    SELECT r.event_time, k.status, a.source_ip, r.source_port, k.request_path, k.user_agent,
           t.task_arn, k.event_type, k.log_version, k.cluster, k.container_instance_arn,
           s.host, s.source_file, s.source_id, r.byte_offset, r.line_len, r.seq, r.incomplete,
           r.ingested_at, w.raw, coalesce(r.truncated, false) AS truncated
    FROM r
    LEFT JOIN (SELECT * FROM request_kinds WHERE id IN (SELECT kind FROM r)) k ON k.id = r.kind
    LEFT JOIN (SELECT * FROM request_sources WHERE id IN (SELECT source FROM r)) s
           ON s.id = r.source
    LEFT JOIN (SELECT * FROM request_tasks WHERE id IN (SELECT task FROM r)) t ON t.id = r.task
    LEFT JOIN (SELECT * FROM request_addresses WHERE id IN (SELECT address FROM r)) a
           ON a.id = r.address
    LEFT JOIN (SELECT * FROM request_raw WHERE seq BETWEEN $1 AND $2) w ON w.seq = r.seq
    ORDER BY r.seq";

/// Splits `from..=to` into consecutive ranges each holding at most about the limits' rows and
/// bytes of committed rows (one range when they fit; none when `to < from`).
fn pieces(store: &Store, from: i64, to: i64, limits: SegmentLimits) -> Result<Vec<(i64, i64)>> {
    if to < from {
        return Ok(Vec::new());
    }
    let mut stmt = store.conn().prepare(
        "SELECT max(seq) FROM (
            SELECT seq,
                   sum(w) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) // $1
                   + row_number() OVER (ORDER BY seq) // $2 AS piece
            FROM (SELECT seq, 2 * line_len + 256 AS w FROM request_rows WHERE seq BETWEEN $3 AND $4
                  UNION ALL SELECT seq, octet_length(raw) + 256 FROM rejected_lines
                            WHERE seq BETWEEN $3 AND $4
                  UNION ALL SELECT seq, 512 FROM task_inventory WHERE seq BETWEEN $3 AND $4
                  UNION ALL SELECT seq, 512 FROM collector_coverage WHERE seq BETWEEN $3 AND $4))
         GROUP BY piece ORDER BY 1",
    )?;
    let ends: Vec<i64> = stmt
        .query_map(
            duckdb::params![
                limits.read_bytes.max(1) as i64,
                limits.read_rows.max(1) as i64,
                from,
                to
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ends.len().max(1));
    let mut start = from;
    for end in ends {
        if end >= start && end < to {
            out.push((start, end));
            start = end + 1;
        }
    }
    out.push((start, to));
    Ok(out)
}

/// One Parquet file per (table, hour) for one range, under temporary names until `finish`.
struct Files {
    dir: PathBuf,
    host: String,
    /// [`name_prefix`]: what the files' names start with.
    prefix: String,
    from: i64,
    limits: SegmentLimits,
    open: HashMap<(usize, i64), HourFile>,
}

struct HourFile {
    part: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
}

impl Files {
    fn new(dir: &Path, host: &str, prefix: &str, from: i64, limits: SegmentLimits) -> Files {
        Files {
            dir: dir.to_path_buf(),
            host: host.to_string(),
            prefix: prefix.to_string(),
            from,
            limits,
            open: HashMap::new(),
        }
    }

    /// Appends rows of `table` (in its published columns), each to the file of its hour.
    fn write(&mut self, table: usize, rb: &RecordBatch) -> Result<()> {
        if rb.num_rows() == 0 {
            return Ok(());
        }
        let schema = schema_of(table);
        let rb = conform(rb, &schema)?;
        let (_, time_col) = TABLES[table];
        let times = rb
            .column_by_name(time_col)
            .with_context(|| format!("no column {time_col}"))?
            .as_primitive::<TimestampMicrosecondType>();
        let hour_of = |us: i64| us.div_euclid(3_600_000_000);
        let mut hours: Vec<i64> = times.values().iter().map(|&us| hour_of(us)).collect();
        hours.sort_unstable();
        hours.dedup();
        for &hour in &hours {
            let rows = if hours_single(times, hour) {
                rb.clone()
            } else {
                let mask: BooleanArray = times
                    .values()
                    .iter()
                    .map(|&us| Some(hour_of(us) == hour))
                    .collect();
                filter_record_batch(&rb, &mask)?
            };
            let file = self.file(table, hour, &schema)?;
            file.writer
                .write(&rows)
                .with_context(|| format!("writing {}", file.tmp.display()))?;
        }
        // Each open row group holds a page and an encoder per column: write out those of the
        // hours of this table that this batch did not reach (a log is written in time order, so
        // they are done), and every one past the buffer limit.
        let buffered: usize = self
            .open
            .values()
            .map(|f| f.writer.in_progress_size())
            .sum();
        let all = buffered > self.limits.buffer_bytes;
        for ((t, hour), f) in self.open.iter_mut() {
            let idle = *t == table && hours.binary_search(hour).is_err();
            if f.writer.in_progress_rows() > 0 && (all || idle) {
                f.writer
                    .flush()
                    .with_context(|| format!("writing {}", f.tmp.display()))?;
            }
        }
        Ok(())
    }

    fn file(&mut self, table: usize, hour: i64, schema: &Arc<Schema>) -> Result<&mut HourFile> {
        if !self.open.contains_key(&(table, hour)) {
            let (date, hh) = date_and_hour(hour * 3_600_000_000);
            let part = self
                .dir
                .join(TABLES[table].0)
                .join(format!("date={date}"))
                .join(format!("hour={hh}"));
            create_dirs(&part)?;
            let tmp = part.join(temporary_name(&self.prefix, self.from));
            let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let writer = ArrowWriter::try_new(
                BufWriter::with_capacity(256 << 10, f),
                schema.clone(),
                Some(properties(table)),
            )?;
            self.open
                .insert((table, hour), HourFile { part, tmp, writer });
        }
        Ok(self.open.get_mut(&(table, hour)).expect("inserted above"))
    }

    /// Closes every file, syncs it and renames it to its segment name for `from..=to`.
    fn finish(self, to: i64) -> Result<u64> {
        let name = segment_name(&self.prefix, self.from, to);
        let mut files = 0;
        let mut open: Vec<HourFile> = self.open.into_values().collect();
        open.sort_by(|a, b| a.part.cmp(&b.part));
        let mut failed = None;
        for f in open {
            if failed.is_some() {
                let _ = std::fs::remove_file(&f.tmp);
                continue;
            }
            let r = (|| -> Result<()> {
                let out = f
                    .writer
                    .into_inner()
                    .with_context(|| format!("closing {}", f.tmp.display()))?;
                let file = out
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("writing {}", f.tmp.display()))?;
                file.sync_all()
                    .with_context(|| format!("syncing {}", f.tmp.display()))?;
                let final_path = f.part.join(&name);
                std::fs::rename(&f.tmp, &final_path)
                    .with_context(|| format!("renaming into {}", final_path.display()))?;
                sync_dir(&f.part)
            })();
            match r {
                Ok(()) => files += 1,
                Err(e) => {
                    let _ = std::fs::remove_file(&f.tmp);
                    failed = Some(e);
                }
            }
        }
        match failed {
            None => Ok(files),
            Some(e) => Err(e),
        }
    }

    /// Removes the temporary files.
    fn abandon(self) {
        for f in self.open.into_values() {
            drop(f.writer);
            let _ = std::fs::remove_file(&f.tmp);
        }
    }
}

/// Whether every row of `times` is in `hour`.
fn hours_single(times: &duckdb::arrow::array::TimestampMicrosecondArray, hour: i64) -> bool {
    times
        .values()
        .iter()
        .all(|&us| us.div_euclid(3_600_000_000) == hour)
}

/// The published Arrow schema of a table, every column nullable (as DuckDB's own Parquet
/// writer marks them).
fn schema_of(table: usize) -> Arc<Schema> {
    let schema = match table {
        REQUESTS => RequestColumns::schema(),
        REJECTED => crate::store::rejected_schema(),
        INVENTORY => crate::store::inventory_schema(),
        _ => crate::store::coverage_schema(),
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The batch in exactly `schema`'s columns: by name, cast where the store's Arrow types differ.
fn conform(rb: &RecordBatch, schema: &Arc<Schema>) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let col = rb
                .column_by_name(f.name())
                .with_context(|| format!("rows to publish have no column {}", f.name()))?;
            Ok(if col.data_type() == f.data_type() {
                col.clone()
            } else {
                cast(col, f.data_type())
                    .with_context(|| format!("converting column {}", f.name()))?
            })
        })
        .collect::<Result<_>>()?;
    if columns.iter().any(|c| c.len() != rb.num_rows()) {
        bail!("columns of unequal length");
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// zstd level 1 (as the analyzer's CloudTrail parts); no dictionary on columns that never
/// repeat; statistics per column chunk.
fn properties(table: usize) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("credtrail-collector {}", env!("CARGO_PKG_VERSION")));
    let plain: &[&str] = match table {
        REQUESTS => &["raw", "seq", "byte_offset", "source_port"],
        REJECTED => &["raw", "seq", "byte_offset"],
        _ => &["seq"],
    };
    for c in plain {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    b.build()
}

/// `YYYY-MM-DD` and `HH` of an instant (µs since the epoch, UTC).
fn date_and_hour(us: i64) -> (String, String) {
    let mut out = Vec::new();
    crate::parse::format_rfc3339_seconds(us.div_euclid(1_000_000), &mut out);
    let s = String::from_utf8_lossy(&out);
    (s[..10].to_string(), s[11..13].to_string())
}

fn exported_upto(store: &Store) -> Result<i64> {
    Ok(store
        .meta(EXPORTED_UPTO)?
        .map(|v| v.parse())
        .transpose()
        .context("collector_meta.exported_upto is not a number")?
        .unwrap_or(0))
}

fn set_pending(store: &Store, from: i64, to: i64) -> Result<()> {
    store.set_meta(&[(PENDING_EXPORT, Some(&format!("{from}-{to}")))])
}

fn mark_exported(store: &Store, to: i64) -> Result<()> {
    let upto = to.to_string();
    store.set_meta(&[(EXPORTED_UPTO, Some(&upto)), (PENDING_EXPORT, None)])
}

fn parse_range(s: &str) -> Result<(i64, i64)> {
    let Some((a, b)) = s.split_once('-') else {
        bail!("collector_meta.pending_export {s:?} is not FROM-TO");
    };
    Ok((a.parse()?, b.parse()?))
}

/// Host names become part of file names: keep them to a safe alphabet.
fn sanitize(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "host".into() } else { s }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Creates `dir` and its missing ancestors, syncing each new directory and its parent, so a
/// file renamed into it after a crash is not in a directory that was never recorded.
fn create_dirs(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
        sync_dir(d)?;
        let parent = d
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent)?;
    }
    Ok(())
}

/// Removes temporary segment files left by a process that stopped while writing them.
fn remove_temporaries(dir: &Path) -> Result<()> {
    for (table, _) in TABLES {
        let mut stack = vec![dir.join(table)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                } else if e.file_name().to_str().is_some_and(is_temporary) {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("removing {}", p.display()))?;
                }
            }
        }
    }
    Ok(())
}

/// Every segment file under `dir` for one table (for tests and tools).
pub fn files_of(dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(table)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_safe_in_file_names() {
        assert_eq!(
            sanitize("ip-10-0-1-2.ec2.internal"),
            "ip-10-0-1-2.ec2.internal"
        );
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize("../../etc"), ".._.._etc");
        assert_eq!(sanitize(""), "host");
    }

    #[test]
    fn ranges_round_trip() {
        assert_eq!(parse_range("5-17").unwrap(), (5, 17));
        assert!(parse_range("5").is_err());
    }

    #[test]
    fn temporary_names_are_never_segment_names() {
        let tmp = temporary_name("h", 7);
        assert!(is_temporary(&tmp));
        assert!(!is_temporary(&segment_name("h", 7, 9)));
        assert!(!tmp.ends_with(".parquet"), "files_of must not list it");
    }

    #[test]
    fn hours_are_named_in_utc() {
        assert_eq!(
            date_and_hour(1_763_629_200_000_000 + 3_599_999_999),
            ("2025-11-20".to_string(), "09".to_string())
        );
    }
}
