//! The collector's DuckDB store: the only module (with `segment`, which it hands its connection)
//! that talks to DuckDB. One thread owns the [`Store`]; every batch is one transaction holding
//! the rows *and* the per-file checkpoints, so stored rows and file offsets always agree.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use duckdb::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::types::{TimeUnit as DuckTimeUnit, Value};
use duckdb::{Connection, params};

use crate::agent::InventoryRow;
use crate::parse::AuditLine;

const SCHEMA: &str = include_str!("schema.sql");

/// Why the store could not be opened; the caller matches on `Locked`.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store {path} is locked by another process: {message}")]
    Locked { path: PathBuf, message: String },
    #[error("cannot open store {path}")]
    Other {
        path: PathBuf,
        #[source]
        source: duckdb::Error,
    },
}

/// Durable state of one audit file, as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub source_id: String,
    pub dev: u64,
    pub ino: u64,
    pub fp_len: u32,
    pub fp_hash: u64,
    pub check_hash: Option<u64>,
    pub path: String,
    pub committed_offset: u64,
    pub size_seen: u64,
    pub lines: u64,
    pub rejected: u64,
    pub lossy: u64,
    pub incomplete: u64,
    pub status: SourceStatus,
    pub first_seen_us: i64,
    pub last_event_us: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// Present (or still held open) and possibly growing.
    Active,
    /// Gone and fully accounted for (read to the end, or its loss recorded as a gap).
    Done,
}

impl SourceStatus {
    fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Active => "active",
            SourceStatus::Done => "done",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Gap {
    pub kind: &'static str,
    pub source_id: Option<String>,
    pub path: Option<String>,
    pub from_offset: Option<u64>,
    pub to_offset: Option<u64>,
    pub from_time_us: Option<i64>,
    pub to_time_us: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub source_id: Option<String>,
    pub path: Option<String>,
    pub detail: String,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    pub source_file: &'a str,
    pub source_id: &'a str,
    pub byte_offset: u64,
    pub line_len: u64,
    pub incomplete: bool,
}

/// Everything one transaction commits.
pub struct Batch {
    host: String,
    requests: RequestColumns,
    rejected: Vec<RejectedRow>,
    inventory: Vec<(i64, i64, InventoryRow)>,
    pub states: Vec<SourceState>,
    pub gaps: Vec<Gap>,
    pub events: Vec<Event>,
    next_seq: i64,
    raw_bytes: usize,
}

struct RejectedRow {
    source_file: String,
    source_id: String,
    byte_offset: u64,
    line_len: u64,
    raw: Vec<u8>,
    reason: String,
    ingested_at_us: i64,
    seq: i64,
    incomplete: bool,
    truncated: bool,
}

/// Arrow columns of `credential_requests`, filled line by line (also used by the analyzer when it
/// reads raw audit files, so both programs store a line the same way).
#[derive(Default)]
pub struct RequestColumns {
    event_time: TimestampMicrosecondBuilder,
    status: Int32Builder,
    source_ip: StringBuilder,
    source_port: Int32Builder,
    request_path: StringBuilder,
    user_agent: StringBuilder,
    task_arn: StringBuilder,
    event_type: StringBuilder,
    log_version: Int32Builder,
    cluster: StringBuilder,
    container_instance_arn: StringBuilder,
    host: StringBuilder,
    source_file: StringBuilder,
    source_id: StringBuilder,
    byte_offset: Int64Builder,
    line_len: Int64Builder,
    seq: Int64Builder,
    incomplete: BooleanBuilder,
    raw: BinaryBuilder,
    rows: usize,
}

impl RequestColumns {
    pub fn new() -> Self {
        RequestColumns {
            event_time: TimestampMicrosecondBuilder::new(),
            status: Int32Builder::new(),
            source_ip: StringBuilder::new(),
            source_port: Int32Builder::new(),
            request_path: StringBuilder::new(),
            user_agent: StringBuilder::new(),
            task_arn: StringBuilder::new(),
            event_type: StringBuilder::new(),
            log_version: Int32Builder::new(),
            cluster: StringBuilder::new(),
            container_instance_arn: StringBuilder::new(),
            host: StringBuilder::new(),
            source_file: StringBuilder::new(),
            source_id: StringBuilder::new(),
            byte_offset: Int64Builder::new(),
            line_len: Int64Builder::new(),
            seq: Int64Builder::new(),
            incomplete: BooleanBuilder::new(),
            raw: BinaryBuilder::new(),
            rows: 0,
        }
    }

    fn schema() -> Arc<Schema> {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        let i32f = |n: &str| Field::new(n, DataType::Int32, true);
        let i64f = |n: &str| Field::new(n, DataType::Int64, false);
        Arc::new(Schema::new(vec![
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            i32f("status"),
            s("source_ip"),
            i32f("source_port"),
            s("request_path"),
            s("user_agent"),
            s("task_arn"),
            s("event_type"),
            i32f("log_version"),
            s("cluster"),
            s("container_instance_arn"),
            s("host"),
            s("source_file"),
            s("source_id"),
            i64f("byte_offset"),
            i64f("line_len"),
            i64f("seq"),
            Field::new("incomplete", DataType::Boolean, false),
            Field::new(
                "ingested_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("raw", DataType::Binary, true),
        ]))
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one parsed line. The exact bytes are kept where the parsed text is not the whole
    /// truth: replaced invalid UTF-8, or a user agent holding `"` (whose end the parser chose).
    pub fn push(
        &mut self,
        line: &AuditLine<'_>,
        raw: &[u8],
        host: &str,
        at: Provenance<'_>,
        seq: i64,
    ) {
        self.event_time.append_value(line.event_time * 1_000_000);
        self.status.append_value(i32::from(line.status));
        self.source_ip.append_option(line.source_ip.as_deref());
        self.source_port
            .append_option(line.source_port.map(i32::from));
        self.request_path.append_value(&line.request_path);
        self.user_agent.append_value(&line.user_agent);
        self.task_arn.append_option(line.task_arn.as_deref());
        self.event_type.append_option(line.event_type.as_deref());
        self.log_version
            .append_option(line.log_version.map(i32::from));
        self.cluster.append_option(line.cluster.as_deref());
        self.container_instance_arn
            .append_option(line.container_instance_arn.as_deref());
        self.host.append_value(host);
        self.source_file.append_value(at.source_file);
        self.source_id.append_value(at.source_id);
        self.byte_offset.append_value(at.byte_offset as i64);
        self.line_len.append_value(at.line_len as i64);
        self.seq.append_value(seq);
        self.incomplete.append_value(at.incomplete);
        if line.lossy || line.user_agent.contains('"') {
            self.raw.append_value(raw);
        } else {
            self.raw.append_null();
        }
        self.rows += 1;
    }

    /// The rows as one Arrow batch, every row stamped `ingested_at`; the columns start empty again.
    pub fn finish(&mut self, ingested_at_us: i64) -> Result<RecordBatch> {
        let ingested_at = TimestampMicrosecondArray::from_value(ingested_at_us, self.rows);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_time.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.source_ip.finish()),
            Arc::new(self.source_port.finish()),
            Arc::new(self.request_path.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.task_arn.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.log_version.finish()),
            Arc::new(self.cluster.finish()),
            Arc::new(self.container_instance_arn.finish()),
            Arc::new(self.host.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_id.finish()),
            Arc::new(self.byte_offset.finish()),
            Arc::new(self.line_len.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.incomplete.finish()),
            Arc::new(ingested_at),
            Arc::new(self.raw.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(Self::schema(), columns).context("building the request batch")
    }
}

impl Batch {
    pub fn new(host: String, next_seq: i64) -> Batch {
        Batch {
            host,
            requests: RequestColumns::new(),
            rejected: Vec::new(),
            inventory: Vec::new(),
            states: Vec::new(),
            gaps: Vec::new(),
            events: Vec::new(),
            next_seq,
            raw_bytes: 0,
        }
    }

    /// Rows (requests, rejects, inventory) in the batch.
    pub fn rows(&self) -> usize {
        self.requests.len() + self.rejected.len() + self.inventory.len()
    }

    /// (requests, rejected, inventory) rows in the batch.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.requests.len(),
            self.rejected.len(),
            self.inventory.len(),
        )
    }

    /// Bytes of rejected and lossy raw lines held in memory.
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0 && self.states.is_empty() && self.gaps.is_empty() && self.events.is_empty()
    }

    /// The seq the next row will get (what to start from after this batch commits).
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    fn take_seq(&mut self) -> i64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn push_request(&mut self, line: &AuditLine<'_>, raw: &[u8], at: Provenance<'_>) {
        let seq = self.take_seq();
        if line.lossy || line.user_agent.contains('"') {
            self.raw_bytes += raw.len();
        }
        self.requests.push(line, raw, &self.host, at, seq);
    }

    pub fn push_rejected(
        &mut self,
        raw: &[u8],
        reason: String,
        at: Provenance<'_>,
        truncated: bool,
    ) {
        let seq = self.take_seq();
        self.raw_bytes += raw.len();
        self.rejected.push(RejectedRow {
            source_file: at.source_file.to_string(),
            source_id: at.source_id.to_string(),
            byte_offset: at.byte_offset,
            line_len: at.line_len,
            raw: raw.to_vec(),
            reason,
            ingested_at_us: now_us(),
            seq,
            incomplete: at.incomplete,
            truncated,
        });
    }

    pub fn push_inventory(&mut self, observed_at_us: i64, rows: Vec<InventoryRow>) {
        for row in rows {
            let seq = self.take_seq();
            self.inventory.push((observed_at_us, seq, row));
        }
    }

    /// Inventory snapshots exist only in memory: a batch that failed to commit hands them on.
    pub fn take_inventory(&mut self) -> Vec<(i64, InventoryRow)> {
        std::mem::take(&mut self.inventory)
            .into_iter()
            .map(|(at, _, row)| (at, row))
            .collect()
    }

    /// Replaces any earlier state of the same source in this batch.
    pub fn set_state(&mut self, state: SourceState) {
        self.states.retain(|s| s.source_id != state.source_id);
        self.states.push(state);
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn ts(us: i64) -> Value {
    Value::Timestamp(DuckTimeUnit::Microsecond, us)
}

fn opt_ts(us: Option<i64>) -> Value {
    us.map_or(Value::Null, ts)
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store and its schema.
    pub fn open(path: &Path) -> Result<Store, OpenError> {
        let config = duckdb::Config::default()
            .threads(1)
            .and_then(|c| c.max_memory("256MB"))
            .map_err(|source| OpenError::Other {
                path: path.to_path_buf(),
                source,
            })?;
        let conn = Connection::open_with_flags(path, config).map_err(|source| {
            let message = source.to_string();
            if message.contains("lock") {
                OpenError::Locked {
                    path: path.to_path_buf(),
                    message,
                }
            } else {
                OpenError::Other {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        conn.execute_batch(SCHEMA)
            .map_err(|source| OpenError::Other {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The seq the next row gets: one past the highest committed in any table or published
    /// (pruning removes published rows, and a seq must never be handed out twice).
    pub fn next_seq(&self) -> Result<i64> {
        let max: Option<i64> = self.conn.query_row(
            "SELECT max(s) FROM (
                SELECT max(seq) AS s FROM credential_requests
                UNION ALL SELECT max(seq) FROM rejected_lines
                UNION ALL SELECT max(seq) FROM task_inventory
                UNION ALL SELECT TRY_CAST(value AS BIGINT) FROM collector_meta WHERE key = 'exported_upto')",
            [],
            |r| r.get(0),
        )?;
        Ok(max.map_or(1, |m| m + 1))
    }

    /// Deletes rows that are published in segments and older than `before_us`.
    pub fn prune_published(&self, before_us: i64) -> Result<usize> {
        let Some(upto) = self.meta("exported_upto")? else {
            return Ok(0);
        };
        let upto: i64 = upto.parse().context("collector_meta.exported_upto")?;
        let mut removed = 0;
        for (table, col) in crate::segment::TABLES {
            removed += self.conn.execute(
                &format!("DELETE FROM {table} WHERE seq <= ? AND {col} < make_timestamp(?)"),
                params![upto, before_us],
            )?;
        }
        Ok(removed)
    }

    pub fn load_states(&self) -> Result<Vec<SourceState>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_id, dev, ino, fp_len, fp_hash, check_hash, path, committed_offset,
                    size_seen, lines, rejected, lossy, incomplete, status,
                    epoch_us(first_seen), epoch_us(last_event_time)
             FROM ingest_state ORDER BY first_seen, source_id",
        )?;
        let rows = stmt.query_map([], |r| {
            let status: String = r.get(13)?;
            Ok(SourceState {
                source_id: r.get(0)?,
                dev: r.get::<_, i64>(1)? as u64,
                ino: r.get::<_, i64>(2)? as u64,
                fp_len: r.get::<_, i32>(3)? as u32,
                fp_hash: r.get::<_, i64>(4)? as u64,
                check_hash: r.get::<_, Option<i64>>(5)?.map(|h| h as u64),
                path: r.get(6)?,
                committed_offset: r.get::<_, i64>(7)? as u64,
                size_seen: r.get::<_, i64>(8)? as u64,
                lines: r.get::<_, i64>(9)? as u64,
                rejected: r.get::<_, i64>(10)? as u64,
                lossy: r.get::<_, i64>(11)? as u64,
                incomplete: r.get::<_, i64>(12)? as u64,
                status: if status == "done" {
                    SourceStatus::Done
                } else {
                    SourceStatus::Active
                },
                first_seen_us: r.get(14)?,
                last_event_us: r.get(15)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("reading ingest_state")
    }

    /// Commits the batch in one transaction; on error nothing of it is stored.
    pub fn commit(&mut self, batch: &mut Batch) -> Result<()> {
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        match self.write(batch) {
            Ok(()) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(e).context("committing a batch")
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn write(&mut self, batch: &mut Batch) -> Result<()> {
        let now = now_us();
        if !batch.requests.is_empty() {
            let rb = batch.requests.finish(now)?;
            let mut app = self.conn.appender("credential_requests")?;
            app.append_record_batch(rb)
                .context("appending credential requests")?;
            app.flush()?;
        }
        if !batch.rejected.is_empty() {
            let mut app = self.conn.appender("rejected_lines")?;
            for r in &batch.rejected {
                app.append_row(params![
                    r.source_file,
                    r.source_id,
                    r.byte_offset as i64,
                    r.line_len as i64,
                    r.raw,
                    r.reason,
                    ts(r.ingested_at_us),
                    batch.host,
                    r.seq,
                    r.incomplete,
                    r.truncated
                ])?;
            }
            app.flush()?;
        }
        if !batch.inventory.is_empty() {
            let mut app = self.conn.appender("task_inventory")?;
            for (at, seq, row) in &batch.inventory {
                app.append_row(params![
                    ts(*at),
                    batch.host,
                    row.task_arn,
                    row.family,
                    row.revision,
                    row.known_status,
                    row.desired_status,
                    row.container_name,
                    row.docker_id,
                    row.network_mode,
                    row.ipv4_address,
                    seq
                ])?;
            }
            app.flush()?;
        }
        for s in &batch.states {
            self.conn.execute(
                "DELETE FROM ingest_state WHERE source_id = ?",
                params![s.source_id],
            )?;
            self.conn.execute(
                "INSERT INTO ingest_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    s.source_id,
                    s.dev as i64,
                    s.ino as i64,
                    s.fp_len as i32,
                    s.fp_hash as i64,
                    s.check_hash.map(|h| h as i64),
                    s.path,
                    s.committed_offset as i64,
                    s.size_seen as i64,
                    s.lines as i64,
                    s.rejected as i64,
                    s.lossy as i64,
                    s.incomplete as i64,
                    s.status.as_str(),
                    ts(s.first_seen_us),
                    ts(now),
                    opt_ts(s.last_event_us)
                ],
            )?;
        }
        // A source that is done has all its rows committed (or its loss recorded): forget it
        // in the same transaction, so the state table stays bounded.
        self.conn
            .execute("DELETE FROM ingest_state WHERE status = 'done'", [])?;
        for g in &batch.gaps {
            self.conn.execute(
                "INSERT INTO ingest_gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    ts(now),
                    batch.host,
                    g.kind,
                    g.source_id,
                    g.path,
                    g.from_offset.map(|o| o as i64),
                    g.to_offset.map(|o| o as i64),
                    opt_ts(g.from_time_us),
                    opt_ts(g.to_time_us),
                    g.detail
                ],
            )?;
        }
        for e in &batch.events {
            self.conn.execute(
                "INSERT INTO ingest_events VALUES (?, ?, ?, ?, ?, ?)",
                params![ts(now), batch.host, e.kind, e.source_id, e.path, e.detail],
            )?;
        }
        Ok(())
    }

    pub fn checkpoint(&self) -> Result<()> {
        self.conn.execute_batch("CHECKPOINT")?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT value FROM collector_meta WHERE key = ?")?;
        let mut rows = stmt.query(params![key])?;
        Ok(match rows.next()? {
            Some(r) => r.get(0)?,
            None => None,
        })
    }

    /// Sets (or with `None`, clears) meta values in one transaction.
    pub fn set_meta(&self, pairs: &[(&str, Option<&str>)]) -> Result<()> {
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let r = (|| -> Result<()> {
            for (k, v) in pairs {
                self.conn
                    .execute("DELETE FROM collector_meta WHERE key = ?", params![k])?;
                if let Some(v) = v {
                    self.conn
                        .execute("INSERT INTO collector_meta VALUES (?, ?)", params![k, v])?;
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => Ok(self.conn.execute_batch("COMMIT")?),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}
