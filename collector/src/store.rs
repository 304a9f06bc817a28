//! The collector's DuckDB store: the only module (with `segment`, which it hands its connection)
//! that talks to DuckDB. One thread owns the [`Store`]; every batch is one transaction holding
//! the rows *and* the per-file checkpoints, so stored rows and file offsets always agree.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use duckdb::arrow::array::{
    ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Int32Array, Int32Builder,
    Int64Array, Int64Builder, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::types::{TimeUnit as DuckTimeUnit, Value};
use duckdb::{Connection, params};
use xxhash_rust::xxh3::xxh3_64;

use crate::agent::InventoryRow;
use crate::coverage::CoverageRow;
use crate::parse::AuditLine;

const SCHEMA: &str = include_str!("schema.sql");
/// The columns of `credential_requests` as published (the view's, the segments', the analyzer's).
pub const PUBLISHED_SCHEMA: &str = include_str!("segments.sql");

/// Why the store could not be opened; the caller waits on `Locked` and `NoSpace`.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store {path} is locked by another process: {message}")]
    Locked { path: PathBuf, message: String },
    #[error("store {path} cannot be written: its file system is full ({message})")]
    NoSpace { path: PathBuf, message: String },
    #[error(
        "store {path} is corrupt or not a DuckDB database ({message}); move it aside to start a new store \
         (published segments are kept, and the audit files still on disk are read again)"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot open store {path}")]
    Other {
        path: PathBuf,
        #[source]
        source: duckdb::Error,
    },
    #[error("cannot move store {path} to the current schema")]
    Migrate {
        path: PathBuf,
        #[source]
        source: anyhow::Error,
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
    requests: RowColumns,
    /// The same requests in their published columns, for the segments.
    published: RequestColumns,
    dicts: Dictionaries,
    /// The dictionary ids of its rows were read from the store (its `dicts` may since have
    /// moved on to the next batch: [`Batch::successor`]).
    ids_loaded: bool,
    /// (seq, exact bytes) of the requests that keep them.
    raw: Vec<(i64, Vec<u8>)>,
    new_kinds: Vec<KindRow>,
    new_tasks: NewValues,
    new_addresses: NewValues,
    new_sources: Vec<(i64, String, String)>,
    rejected: Vec<RejectedRow>,
    inventory: Vec<(i64, i64, InventoryRow)>,
    /// (seq, row): coverage intervals recorded or extended by this batch.
    coverage: Vec<(i64, CoverageRow)>,
    pub states: Vec<SourceState>,
    pub gaps: Vec<Gap>,
    pub events: Vec<Event>,
    first_seq: i64,
    next_seq: i64,
    raw_bytes: usize,
    /// Bytes of dictionary entries first used in this batch.
    kind_bytes: usize,
}

/// What one commit stored, in the columns of the published tables: the segments are written
/// from these (`segment::Spool`), not read back from the store.
pub struct Published {
    /// The batch's seq range, `first..=last` (empty when `last < first`).
    pub first_seq: i64,
    pub last_seq: i64,
    pub requests: Option<RecordBatch>,
    pub rejected: Option<RecordBatch>,
    pub inventory: Option<RecordBatch>,
    /// (seq, row) of each coverage interval recorded or extended, and when (`updated_at`).
    pub coverage: Vec<(i64, CoverageRow)>,
    pub committed_at_us: i64,
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

/// Arrow columns of `credential_requests` as published (`segments.sql`), filled line by line: the
/// analyzer stores raw audit files with them. The collector stores the same values as integer
/// rows and dictionary entries ([`Batch::push_request`]); a test checks that both give the same
/// row for the same line.
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
    truncated: BooleanBuilder,
    rows: usize,
    /// Bytes of text and raw lines held (what the columns cost in memory, roughly).
    bytes: usize,
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
            truncated: BooleanBuilder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    /// The Arrow schema of `credential_requests` as published.
    pub fn schema() -> Arc<Schema> {
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
            Field::new("truncated", DataType::Boolean, false),
        ]))
    }

    /// Bytes of text held since the last `finish`.
    pub fn bytes(&self) -> usize {
        self.bytes
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
        if keeps_raw(line) {
            self.raw.append_value(raw);
            self.bytes += raw.len();
        } else {
            self.raw.append_null();
        }
        self.truncated.append_value(line.truncated);
        self.rows += 1;
        self.bytes += raw.len() + host.len() + at.source_file.len() + at.source_id.len() + 64;
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
            Arc::new(self.truncated.finish()),
        ];
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(Self::schema(), columns).context("building the request batch")
    }
}

/// Whether a stored line keeps its exact bytes next to the parsed text: when the text is not the
/// whole truth (replaced invalid UTF-8, a user agent holding `"`, whose end the parser chose, or
/// a field cut to the field limit).
pub fn keeps_raw(line: &AuditLine<'_>) -> bool {
    line.lossy || line.truncated || line.user_agent.contains('"')
}

/// Bytes of keys one [`Interner`] remembers before it starts over (a host has a few hundred kinds
/// of request and tasks; this bounds the four caches to about 4 MiB when every line is new).
const MAX_INTERNED_BYTES: usize = 1 << 20;

/// The `Hasher` of maps keyed by an xxh3 hash already (here, and the analyzer's set of event
/// IDs): the key's low 64 bits are used as they are.
#[derive(Default)]
pub struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Ids of the values of one dictionary table that this process has stored or used, keyed by the
/// value's encoding. A cache, not the truth: when it has grown past [`MAX_INTERNED_BYTES`] it
/// starts over, and a value seen again gets a new id (the dictionary then holds the value twice,
/// which is harmless: an id never names two values).
#[derive(Default)]
struct Interner {
    /// hash of a key → (where the key lies in `keys`, its id).
    ids: HashMap<u64, (std::ops::Range<usize>, i64), BuildHasherDefault<PassHasher>>,
    /// The keys, end to end: one buffer, not an allocation per key (when every line names a new
    /// task, allocating and freeing its key was a tenth of reading).
    keys: Vec<u8>,
    /// Bytes held: the keys plus 32 per entry.
    bytes: usize,
    next: i64,
}

impl Interner {
    fn starting_at(next: i64) -> Interner {
        Interner {
            next,
            ..Interner::default()
        }
    }

    /// The id of `key`, and whether it is new (its row must be inserted with the batch).
    fn id(&mut self, key: &[u8]) -> (i64, bool) {
        let hash = xxh3_64(key);
        if let Some((at, id)) = self.ids.get(&hash)
            && self.keys[at.clone()] == *key
        {
            return (*id, false);
        }
        let id = self.next;
        self.next += 1;
        if self.bytes + key.len() + 32 > MAX_INTERNED_BYTES {
            self.clear();
        }
        // Two keys with one hash: the newer replaces the older (which then gets a new id if it
        // comes again; its bytes stay counted until the cache starts over).
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.ids.insert(hash, (start..self.keys.len(), id));
        self.bytes += key.len() + 32;
        (id, true)
    }

    /// Forgets every key and hands their memory back.
    fn clear(&mut self) {
        self.ids = HashMap::default();
        self.keys = Vec::new();
        self.bytes = 0;
    }
}

/// The collector's side of the dictionary tables (`request_kinds`, `request_tasks`,
/// `request_addresses`, `request_sources`): the next free id of each and a bounded cache of the ids in use. Handed
/// from batch to batch; loaded again from the store after a failed commit.
#[derive(Default)]
pub struct Dictionaries {
    kinds: Interner,
    tasks: Interner,
    addresses: Interner,
    sources: Interner,
    /// The source of the previous line and its id (lines come file by file).
    last_source: Option<(String, String, i64)>,
    key: Vec<u8>,
    /// False for the placeholder a batch holds until the store could be read.
    loaded: bool,
}

impl Dictionaries {
    /// Forgets every cached id (after dictionary rows were deleted). Ids are still never reused.
    fn clear_cache(&mut self) {
        self.kinds.clear();
        self.tasks.clear();
        self.addresses.clear();
        self.sources.clear();
        self.last_source = None;
    }
}

/// A `request_kinds` row first used in this batch.
struct KindRow {
    id: i64,
    status: i32,
    request_path: String,
    user_agent: String,
    event_type: Option<String>,
    log_version: Option<i32>,
    cluster: Option<String>,
    container_instance_arn: Option<String>,
}

/// Arrow columns of `request_rows`, filled line by line.
#[derive(Default)]
struct RowColumns {
    event_time: TimestampMicrosecondBuilder,
    kind: Int64Builder,
    task: Int64Builder,
    address: Int64Builder,
    source_port: Int32Builder,
    source: Int64Builder,
    byte_offset: Int64Builder,
    line_len: Int64Builder,
    seq: Int64Builder,
    incomplete: BooleanBuilder,
    truncated: BooleanBuilder,
    rows: usize,
}

impl RowColumns {
    fn schema() -> Arc<Schema> {
        let ts = |n: &str| Field::new(n, DataType::Timestamp(TimeUnit::Microsecond, None), false);
        let i64f = |n: &str| Field::new(n, DataType::Int64, false);
        Arc::new(Schema::new(vec![
            ts("event_time"),
            i64f("kind"),
            Field::new("task", DataType::Int64, true),
            Field::new("address", DataType::Int64, true),
            Field::new("source_port", DataType::Int32, true),
            i64f("source"),
            i64f("byte_offset"),
            i64f("line_len"),
            i64f("seq"),
            Field::new("incomplete", DataType::Boolean, false),
            ts("ingested_at"),
            Field::new("truncated", DataType::Boolean, false),
        ]))
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn finish(&mut self, ingested_at_us: i64) -> Result<RecordBatch> {
        let ingested_at = TimestampMicrosecondArray::from_value(ingested_at_us, self.rows);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_time.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.task.finish()),
            Arc::new(self.address.finish()),
            Arc::new(self.source_port.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.byte_offset.finish()),
            Arc::new(self.line_len.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.incomplete.finish()),
            Arc::new(ingested_at),
            Arc::new(self.truncated.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(Self::schema(), columns).context("building the request batch")
    }
}

/// Appends `v` to a dictionary key, length-prefixed, or a marker for `None`.
fn put_key(key: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => key.push(0),
        Some(s) => {
            key.push(1);
            key.extend_from_slice(&(s.len() as u32).to_le_bytes());
            key.extend_from_slice(s.as_bytes());
        }
    }
}

impl Batch {
    /// An empty batch whose rows get seq numbers from `next_seq` and dictionary ids from `dicts`
    /// (from [`Store::dictionaries`] or the previous batch's [`Batch::take_dictionaries`]).
    pub fn new(host: String, next_seq: i64, dicts: Dictionaries) -> Batch {
        Batch {
            host,
            ids_loaded: dicts.loaded,
            requests: RowColumns::default(),
            published: RequestColumns::new(),
            dicts,
            raw: Vec::new(),
            new_kinds: Vec::new(),
            new_tasks: NewValues::default(),
            new_addresses: NewValues::default(),
            new_sources: Vec::new(),
            rejected: Vec::new(),
            inventory: Vec::new(),
            coverage: Vec::new(),
            states: Vec::new(),
            gaps: Vec::new(),
            events: Vec::new(),
            first_seq: next_seq,
            next_seq,
            raw_bytes: 0,
            kind_bytes: 0,
        }
    }

    /// Bytes the batch holds in memory, roughly: lines in their published columns, raw lines,
    /// new dictionary entries. A batch is committed when it reaches the configured limit, so
    /// memory does not grow with the length of lines.
    pub fn bytes(&self) -> usize {
        self.published.bytes() + self.raw_bytes + self.kind_bytes
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
        self.rows() == 0
            && self.states.is_empty()
            && self.gaps.is_empty()
            && self.events.is_empty()
            && self.coverage.is_empty()
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

    /// The dictionaries, for the next batch (this one is done with).
    pub fn take_dictionaries(&mut self) -> Dictionaries {
        std::mem::take(&mut self.dicts)
    }

    /// The next batch, to read into while this one commits: its seqs and dictionary ids
    /// continue this one's, so it may only be committed after this one was, and must be
    /// dropped if this one fails.
    pub fn successor(&mut self) -> Batch {
        let dicts = self.take_dictionaries();
        Batch::new(self.host.clone(), self.next_seq, dicts)
    }

    /// Forgets cached dictionary ids; only while the batch holds no requests.
    pub fn clear_dictionary_cache(&mut self) {
        debug_assert!(self.requests.is_empty());
        self.dicts.clear_cache();
    }

    pub fn push_request(&mut self, line: &AuditLine<'_>, raw: &[u8], at: Provenance<'_>) {
        let seq = self.take_seq();
        if keeps_raw(line) {
            self.raw_bytes += raw.len();
            self.raw.push((seq, raw.to_vec()));
        }
        let kind = self.kind_id(line);
        let task = line.task_arn.as_deref().map(|arn| self.task_id(arn));
        let address = line.source_ip.as_deref().map(|ip| self.address_id(ip));
        let source = self.source_id(at.source_file, at.source_id);
        let r = &mut self.requests;
        r.event_time.append_value(line.event_time * 1_000_000);
        r.kind.append_value(kind);
        r.task.append_option(task);
        r.address.append_option(address);
        r.source_port.append_option(line.source_port.map(i32::from));
        r.source.append_value(source);
        r.byte_offset.append_value(at.byte_offset as i64);
        r.line_len.append_value(at.line_len as i64);
        r.seq.append_value(seq);
        r.incomplete.append_value(at.incomplete);
        r.truncated.append_value(line.truncated);
        r.rows += 1;
        self.published.push(line, raw, &self.host, at, seq);
    }

    fn kind_id(&mut self, line: &AuditLine<'_>) -> i64 {
        let d = &mut self.dicts;
        let key = &mut d.key;
        key.clear();
        key.extend_from_slice(&line.status.to_le_bytes());
        put_key(key, Some(&line.request_path));
        put_key(key, Some(&line.user_agent));
        put_key(key, line.event_type.as_deref());
        match line.log_version {
            None => key.push(0),
            Some(v) => {
                key.push(1);
                key.extend_from_slice(&v.to_le_bytes());
            }
        }
        put_key(key, line.cluster.as_deref());
        put_key(key, line.container_instance_arn.as_deref());
        let (id, new) = d.kinds.id(key);
        if new {
            let owned = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(str::to_string);
            self.kind_bytes += line.request_path.len() + line.user_agent.len() + 64;
            self.new_kinds.push(KindRow {
                id,
                status: i32::from(line.status),
                request_path: line.request_path.to_string(),
                user_agent: line.user_agent.to_string(),
                event_type: owned(&line.event_type),
                log_version: line.log_version.map(i32::from),
                cluster: owned(&line.cluster),
                container_instance_arn: owned(&line.container_instance_arn),
            });
        }
        id
    }

    fn task_id(&mut self, arn: &str) -> i64 {
        let (id, new) = self.dicts.tasks.id(arn.as_bytes());
        if new {
            self.new_tasks.push(id, arn);
        }
        id
    }

    fn address_id(&mut self, ip: &str) -> i64 {
        let (id, new) = self.dicts.addresses.id(ip.as_bytes());
        if new {
            self.new_addresses.push(id, ip);
        }
        id
    }

    fn source_id(&mut self, file: &str, source_id: &str) -> i64 {
        let d = &mut self.dicts;
        if let Some((f, s, id)) = &d.last_source
            && f == file
            && s == source_id
        {
            return *id;
        }
        let key = &mut d.key;
        key.clear();
        put_key(key, Some(file));
        put_key(key, Some(source_id));
        let (id, new) = d.sources.id(key);
        if new {
            self.new_sources
                .push((id, file.to_string(), source_id.to_string()));
        }
        d.last_source = Some((file.to_string(), source_id.to_string(), id));
        id
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

    /// Coverage intervals to record (or extend) with this batch, each under a new seq.
    pub fn push_coverage(&mut self, rows: Vec<CoverageRow>) {
        for row in rows {
            let seq = self.take_seq();
            self.coverage.push((seq, row));
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

fn timestamps(values: impl Iterator<Item = i64>) -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from_iter_values(values)
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> StringArray {
    values.collect()
}

/// Dictionary entries (id, value) as the two columns of `request_tasks` or `request_addresses`.
/// Entries of a dictionary table (`id`, `value`) first used in a batch, in Arrow columns as they
/// come (a backlog can name a new task on every line: no allocation per entry).
#[derive(Default)]
struct NewValues {
    ids: Int64Builder,
    values: StringBuilder,
}

impl NewValues {
    fn push(&mut self, id: i64, value: &str) {
        self.ids.append_value(id);
        self.values.append_value(value);
    }

    fn is_empty(&self) -> bool {
        duckdb::arrow::array::ArrayBuilder::is_empty(&self.ids)
    }

    /// The entries as one Arrow batch; the columns start empty again (a batch is committed
    /// once: after a failure it is read again from the files).
    fn batch(&mut self) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("value", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> =
            vec![Arc::new(self.ids.finish()), Arc::new(self.values.finish())];
        RecordBatch::try_new(schema, columns).context("building dictionary entries")
    }
}

/// `rejected_lines` rows as Arrow columns, in the table's order.
fn rejected_batch(host: &str, rows: &[RejectedRow]) -> Result<RecordBatch> {
    let it = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(strings(it().map(|r| Some(r.source_file.as_str())))),
        Arc::new(strings(it().map(|r| Some(r.source_id.as_str())))),
        Arc::new(Int64Array::from_iter_values(
            it().map(|r| r.byte_offset as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            it().map(|r| r.line_len as i64),
        )),
        Arc::new(BinaryArray::from_iter_values(
            it().map(|r| r.raw.as_slice()),
        )),
        Arc::new(strings(it().map(|r| Some(r.reason.as_str())))),
        Arc::new(timestamps(it().map(|r| r.ingested_at_us))),
        Arc::new(strings(it().map(|_| Some(host)))),
        Arc::new(Int64Array::from_iter_values(it().map(|r| r.seq))),
        Arc::new(BooleanArray::from_iter(it().map(|r| Some(r.incomplete)))),
        Arc::new(BooleanArray::from_iter(it().map(|r| Some(r.truncated)))),
    ];
    RecordBatch::try_new(rejected_schema(), columns).context("building the rejected lines")
}

/// The Arrow schema of `rejected_lines` (schema.sql).
pub fn rejected_schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    let b = |n: &str| Field::new(n, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        s("source_file"),
        s("source_id"),
        i("byte_offset"),
        i("line_len"),
        Field::new("raw", DataType::Binary, true),
        s("reason"),
        Field::new(
            "ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        s("host"),
        i("seq"),
        b("incomplete"),
        b("truncated"),
    ]))
}

/// `task_inventory` rows as Arrow columns, in the table's order.
fn inventory_batch(host: &str, rows: &[(i64, i64, InventoryRow)]) -> Result<RecordBatch> {
    let it = || rows.iter().map(|(_, _, r)| r);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(timestamps(rows.iter().map(|(at, _, _)| *at))),
        Arc::new(strings(it().map(|_| Some(host)))),
        Arc::new(strings(it().map(|r| Some(r.task_arn.as_str())))),
        Arc::new(strings(it().map(|r| Some(r.family.as_str())))),
        Arc::new(strings(it().map(|r| Some(r.revision.as_str())))),
        Arc::new(strings(it().map(|r| Some(r.known_status.as_str())))),
        Arc::new(strings(it().map(|r| Some(r.desired_status.as_str())))),
        Arc::new(strings(it().map(|r| r.container_name.as_deref()))),
        Arc::new(strings(it().map(|r| r.docker_id.as_deref()))),
        Arc::new(strings(it().map(|r| r.network_mode.as_deref()))),
        Arc::new(strings(it().map(|r| r.ipv4_address.as_deref()))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, seq, _)| *seq),
        )),
    ];
    RecordBatch::try_new(inventory_schema(), columns).context("building the inventory rows")
}

/// The Arrow schema of `task_inventory` (schema.sql).
pub fn inventory_schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "observed_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        s("host"),
        s("task_arn"),
        s("family"),
        s("revision"),
        s("known_status"),
        s("desired_status"),
        s("container_name"),
        s("docker_id"),
        s("network_mode"),
        s("ipv4_address"),
        Field::new("seq", DataType::Int64, true),
    ]))
}

/// `collector_coverage` rows as Arrow columns, in the table's order.
pub fn coverage_batch(host: &str, rows: &[(i64, CoverageRow, i64)]) -> Result<RecordBatch> {
    let it = || rows.iter().map(|(_, r, _)| r);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(strings(it().map(|_| Some(host)))),
        Arc::new(strings(it().map(|r| Some(r.run_id.as_str())))),
        Arc::new(Int32Array::from_iter_values(it().map(|r| r.interval_no))),
        Arc::new(strings(it().map(|r| Some(r.mode)))),
        Arc::new(strings(it().map(|r| r.container_instance_arn.as_deref()))),
        Arc::new(strings(it().map(|r| r.cluster.as_deref()))),
        Arc::new(timestamps(it().map(|r| r.covered_from_us))),
        Arc::new(timestamps(it().map(|r| r.covered_until_us))),
        Arc::new(timestamps(it().map(|r| r.run_started_us))),
        Arc::new(timestamps(rows.iter().map(|(_, _, at)| *at))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(seq, _, _)| *seq),
        )),
    ];
    RecordBatch::try_new(coverage_schema(), columns).context("building the coverage rows")
}

/// The Arrow schema of `collector_coverage` (schema.sql).
pub fn coverage_schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let t = |n: &str| Field::new(n, DataType::Timestamp(TimeUnit::Microsecond, None), true);
    Arc::new(Schema::new(vec![
        s("host"),
        s("run_id"),
        Field::new("interval_no", DataType::Int32, true),
        s("mode"),
        s("container_instance_arn"),
        s("cluster"),
        t("covered_from"),
        t("covered_until"),
        t("run_started_at"),
        t("updated_at"),
        Field::new("seq", DataType::Int64, true),
    ]))
}

/// Stores written before `credential_requests` became a view hold it as a table: moves its rows
/// into the dictionary and row tables in one transaction (creating the whole schema). Returns
/// whether it did.
fn migrate_table_to_view(conn: &Connection) -> Result<bool> {
    let is_table: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'credential_requests'",
        [],
        |r| r.get(0),
    )?;
    if is_table == 0 {
        return Ok(false);
    }
    conn.execute_batch("BEGIN TRANSACTION")?;
    let moved = (|| -> Result<()> {
        conn.execute_batch("ALTER TABLE credential_requests RENAME TO credential_requests_v1")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(
            "INSERT INTO request_sources
               SELECT row_number() OVER (), host, source_file, source_id
               FROM (SELECT DISTINCT host, source_file, source_id FROM credential_requests_v1);
             INSERT INTO request_tasks
               SELECT row_number() OVER (), task_arn
               FROM (SELECT DISTINCT task_arn FROM credential_requests_v1
                     WHERE task_arn IS NOT NULL);
             INSERT INTO request_addresses
               SELECT row_number() OVER (), source_ip
               FROM (SELECT DISTINCT source_ip FROM credential_requests_v1
                     WHERE source_ip IS NOT NULL);
             INSERT INTO request_kinds
               SELECT row_number() OVER (), *
               FROM (SELECT DISTINCT status, request_path, user_agent, event_type,
                            log_version, cluster, container_instance_arn
                     FROM credential_requests_v1);
             INSERT INTO request_rows
               SELECT o.event_time, k.id, t.id, a.id, o.source_port, s.id, o.byte_offset, o.line_len,
                      o.seq, o.incomplete, o.ingested_at, false
               FROM credential_requests_v1 o
               JOIN request_kinds k
                 ON k.status = o.status AND k.request_path = o.request_path
                AND k.user_agent = o.user_agent
                AND k.event_type IS NOT DISTINCT FROM o.event_type
                AND k.log_version IS NOT DISTINCT FROM o.log_version
                AND k.cluster IS NOT DISTINCT FROM o.cluster
                AND k.container_instance_arn IS NOT DISTINCT FROM o.container_instance_arn
               JOIN request_sources s
                 ON s.host = o.host AND s.source_file = o.source_file AND s.source_id = o.source_id
               LEFT JOIN request_tasks t ON t.task_arn = o.task_arn
               LEFT JOIN request_addresses a ON a.source_ip = o.source_ip;
             INSERT INTO request_raw SELECT seq, raw FROM credential_requests_v1 WHERE raw IS NOT NULL;",
        )?;
        let (old, new): (i64, i64) = conn.query_row(
            "SELECT (SELECT count(*) FROM credential_requests_v1),
                    (SELECT count(*) FROM credential_requests)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if old != new {
            bail!("credential_requests had {old} rows, the new tables {new}");
        }
        conn.execute_batch("DROP TABLE credential_requests_v1")?;
        Ok(())
    })();
    match moved {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            tracing::info!("moved credential_requests into dictionary and row tables");
            Ok(true)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
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

/// DuckDB's memory limit for the store unless configured (`--store-memory-mb`). With 128 its
/// buffer pool alone took a backlog's peak RSS past 100 MB; below 64, reading back a range for
/// publication after many crashes of a follow process ran out of memory (48 MB was not enough in
/// `tests/binary.rs`).
pub const DEFAULT_MEMORY_MB: u64 = 32;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// DuckDB's memory limit as configured, MiB.
    memory_mb: u64,
    /// (device, inode) of each active source as this connection committed it, after the check
    /// that no other active source names the same file: a batch that writes only these states
    /// again (offsets advanced) cannot make two, so the check's query is not run for it.
    checked: HashMap<String, (u64, u64)>,
}

const STORE_ID: &str = "store_id";

impl OpenError {
    /// Tells a lock held by another process, a full disk and a damaged file apart by DuckDB's
    /// message (its errors carry no code).
    fn classify(path: &Path, source: duckdb::Error) -> OpenError {
        let message = source.to_string();
        let path = path.to_path_buf();
        if message.contains("Could not set lock") || message.contains("Conflicting lock") {
            OpenError::Locked { path, message }
        } else if message.contains("No space left on device") {
            OpenError::NoSpace { path, message }
        } else if message.contains("not a valid DuckDB database")
            || message.contains("Corrupt database")
            || message.contains("checksum")
            || message.contains("Serialization Error")
        {
            OpenError::Corrupt { path, message }
        } else {
            OpenError::Other { path, source }
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store and its schema.
    pub fn open(path: &Path) -> Result<Store, OpenError> {
        Store::open_with_memory(path, DEFAULT_MEMORY_MB)
    }

    /// Opens the store letting DuckDB use at most `memory_mb` MiB (beyond, it spills to disk).
    pub fn open_with_memory(path: &Path, memory_mb: u64) -> Result<Store, OpenError> {
        let memory_mb = memory_mb.max(16);
        let config = duckdb::Config::default()
            .threads(1)
            .and_then(|c| c.max_memory(&format!("{memory_mb}MB")))
            .map_err(|source| OpenError::Other {
                path: path.to_path_buf(),
                source,
            })?;
        let conn = Connection::open_with_flags(path, config)
            .map_err(|source| OpenError::classify(path, source))?;
        if crate::fault::strikes(path, crate::fault::Point::Open) {
            return Err(OpenError::NoSpace {
                path: path.to_path_buf(),
                message: crate::fault::NO_SPACE.to_string(),
            });
        }
        let created = migrate_table_to_view(&conn).map_err(|source| {
            match source.downcast::<duckdb::Error>() {
                Ok(e) => OpenError::classify(path, e),
                Err(source) => OpenError::Migrate {
                    path: path.to_path_buf(),
                    source,
                },
            }
        })?;
        if !created {
            conn.execute_batch(SCHEMA)
                .map_err(|source| OpenError::classify(path, source))?;
        }
        // A line's strings are stored once, in the dictionary tables, whose values are distinct
        // and few on a real host: FSST (which compresses strings by their shared substrings)
        // cost more time at every checkpoint of a backlog than the space it saves is worth.
        conn.execute_batch("SET disabled_compression_methods = 'fsst'")
            .map_err(|source| OpenError::classify(path, source))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            memory_mb,
            checked: HashMap::new(),
        };
        store
            .ensure_store_id()
            .map_err(|source| match source.downcast::<duckdb::Error>() {
                Ok(e) => OpenError::classify(path, e),
                Err(source) => OpenError::Migrate {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        Ok(store)
    }

    /// This store's ID, created with it (`collector_meta.store_id`): segment names carry it, so
    /// a store rebuilt from nothing publishes beside, never over, what an earlier one published.
    pub fn store_id(&self) -> Result<String> {
        self.meta(STORE_ID)?
            .context("collector_meta has no store_id")
    }

    fn ensure_store_id(&self) -> Result<()> {
        if self.meta(STORE_ID)?.is_some() {
            return Ok(());
        }
        let id = format!(
            "{:016x}",
            xxh3_64(
                format!(
                    "{}:{}:{}:{:?}",
                    self.path.display(),
                    now_us(),
                    std::process::id(),
                    std::thread::current().id()
                )
                .as_bytes()
            )
        );
        self.set_meta(&[(STORE_ID, Some(&id))])
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// DuckDB's memory limit as configured (`--store-memory-mb`), MiB.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    /// Sets DuckDB's memory limit for what follows (publication raises it to read rows back,
    /// then sets [`Store::memory_mb`] again).
    pub fn set_memory_limit(&self, mb: u64) -> Result<()> {
        self.conn
            .execute_batch(&format!("SET memory_limit = '{mb}MB'"))
            .with_context(|| format!("setting the store's memory limit to {mb} MB"))
    }

    /// The seq the next row gets: one past the highest committed in any table or published
    /// (pruning removes published rows, and a seq must never be handed out twice).
    pub fn next_seq(&self) -> Result<i64> {
        let max: Option<i64> = self.conn.query_row(
            "SELECT max(s) FROM (
                SELECT max(seq) AS s FROM request_rows
                UNION ALL SELECT max(seq) FROM rejected_lines
                UNION ALL SELECT max(seq) FROM task_inventory
                UNION ALL SELECT max(seq) FROM collector_coverage
                UNION ALL SELECT TRY_CAST(value AS BIGINT) FROM collector_meta WHERE key = 'exported_upto')",
            [],
            |r| r.get(0),
        )?;
        Ok(max.map_or(1, |m| m + 1))
    }

    /// Deletes rows that are published in segments and older than `before_us`; with
    /// `dictionaries`, also the dictionary entries no row uses any more (only while no batch
    /// holds ids from the cache: clear it afterwards).
    pub fn prune_published(&self, before_us: i64, dictionaries: bool) -> Result<usize> {
        let Some(upto) = self.meta("exported_upto")? else {
            return Ok(0);
        };
        let upto: i64 = upto.parse().context("collector_meta.exported_upto")?;
        self.conn.execute(
            "DELETE FROM request_raw WHERE seq IN (
                SELECT seq FROM request_rows WHERE seq <= ? AND event_time < make_timestamp(?))",
            params![upto, before_us],
        )?;
        let mut removed = self.conn.execute(
            "DELETE FROM request_rows WHERE seq <= ? AND event_time < make_timestamp(?)",
            params![upto, before_us],
        )?;
        for (table, col) in crate::segment::TABLES {
            if table == "credential_requests" {
                continue;
            }
            removed += self.conn.execute(
                &format!("DELETE FROM {table} WHERE seq <= ? AND {col} < make_timestamp(?)"),
                params![upto, before_us],
            )?;
        }
        if dictionaries && removed > 0 {
            for (table, col) in [
                ("request_kinds", "kind"),
                ("request_tasks", "task"),
                ("request_addresses", "address"),
                ("request_sources", "source"),
            ] {
                self.conn.execute(
                    &format!(
                        "DELETE FROM {table} WHERE id NOT IN
                           (SELECT {col} FROM request_rows WHERE {col} IS NOT NULL)"
                    ),
                    [],
                )?;
            }
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

    /// Commits the batch in one transaction; on error nothing of it is stored. Returns the
    /// committed rows in their published columns.
    pub fn commit(&mut self, batch: &mut Batch) -> Result<Published> {
        let now = now_us();
        let published = Published {
            first_seq: batch.first_seq,
            last_seq: batch.next_seq - 1,
            requests: (!batch.published.is_empty())
                .then(|| batch.published.finish(now))
                .transpose()?,
            rejected: (!batch.rejected.is_empty())
                .then(|| rejected_batch(&batch.host, &batch.rejected))
                .transpose()?,
            inventory: (!batch.inventory.is_empty())
                .then(|| inventory_batch(&batch.host, &batch.inventory))
                .transpose()?,
            coverage: batch.coverage.clone(),
            committed_at_us: now,
        };
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let written = self.write(batch, &published, now).and_then(|()| {
            if crate::fault::strikes(&self.path, crate::fault::Point::Commit) {
                bail!(crate::fault::NO_SPACE);
            }
            Ok(())
        });
        match written {
            Ok(()) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => {
                    for s in &batch.states {
                        if s.status == SourceStatus::Active {
                            self.checked.insert(s.source_id.clone(), (s.dev, s.ino));
                        } else {
                            self.checked.remove(&s.source_id);
                        }
                    }
                    Ok(published)
                }
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

    /// The statements of every commit are prepared once per connection (`prepare_cached`):
    /// parsing and planning them again cost a fifth of a backlog's CPU time.
    fn write(&mut self, batch: &mut Batch, published: &Published, now: i64) -> Result<()> {
        if !batch.requests.is_empty() {
            if !batch.ids_loaded {
                bail!("the batch's dictionary ids were never read from the store");
            }
            self.write_dictionaries(batch)?;
            let rb = batch.requests.finish(now)?;
            let mut app = self.conn.appender("request_rows")?;
            app.append_record_batch(rb)
                .context("appending credential requests")?;
            app.flush()?;
        }
        if !batch.raw.is_empty() {
            let mut app = self.conn.appender("request_raw")?;
            for (seq, raw) in &batch.raw {
                app.append_row(params![seq, raw])?;
            }
            app.flush()?;
        }
        for (table, rb) in [
            ("rejected_lines", &published.rejected),
            ("task_inventory", &published.inventory),
        ] {
            if let Some(rb) = rb {
                let mut app = self.conn.appender(table)?;
                app.append_record_batch(rb.clone())
                    .with_context(|| format!("appending {table}"))?;
                app.flush()?;
            }
        }
        for (seq, c) in &batch.coverage {
            // An interval is one row: extending it replaces the row, under a new seq.
            self.conn.prepare_cached(
                "DELETE FROM collector_coverage WHERE host = ? AND run_id = ? AND interval_no = ?")?.execute(
                params![batch.host, c.run_id, c.interval_no],
            )?;
            self.conn
                .prepare_cached(
                    "INSERT INTO collector_coverage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    batch.host,
                    c.run_id,
                    c.interval_no,
                    c.mode,
                    c.container_instance_arn,
                    c.cluster,
                    ts(c.covered_from_us),
                    ts(c.covered_until_us),
                    ts(c.run_started_us),
                    ts(now),
                    seq
                ])?;
        }
        for s in &batch.states {
            self.conn
                .prepare_cached("DELETE FROM ingest_state WHERE source_id = ?")?
                .execute(params![s.source_id])?;
            self.conn.prepare_cached(
                "INSERT INTO ingest_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")?.execute(
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
            .prepare_cached("DELETE FROM ingest_state WHERE status = 'done'")?
            .execute([])?;
        // One file (device, inode) has at most one source being read: two would store its lines
        // twice. Refused here, whatever the tailer decided (checked whenever the batch makes a
        // source active or gives one another file).
        let unchecked = batch.states.iter().any(|s| {
            s.status == SourceStatus::Active
                && self.checked.get(&s.source_id) != Some(&(s.dev, s.ino))
        });
        let doubled: Option<String> = if !unchecked {
            None
        } else {
            self.conn
                .prepare_cached(
                    "SELECT string_agg(dev || ':' || ino, ', ') FROM (
                   SELECT dev, ino FROM ingest_state WHERE status = 'active'
                   GROUP BY dev, ino HAVING count(*) > 1)",
                )?
                .query_row([], |r| r.get(0))?
        };
        if let Some(files) = doubled {
            bail!("two active sources for one file (device:inode {files}); the batch is refused");
        }
        for g in &batch.gaps {
            self.conn
                .prepare_cached("INSERT INTO ingest_gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")?
                .execute(params![
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
                ])?;
        }
        for e in &batch.events {
            self.conn
                .prepare_cached("INSERT INTO ingest_events VALUES (?, ?, ?, ?, ?, ?)")?
                .execute(params![
                    ts(now),
                    batch.host,
                    e.kind,
                    e.source_id,
                    e.path,
                    e.detail
                ])?;
        }
        Ok(())
    }

    /// Inserts the dictionary entries the batch's rows are the first to use.
    fn write_dictionaries(&self, batch: &mut Batch) -> Result<()> {
        if !batch.new_kinds.is_empty() {
            let mut app = self.conn.appender("request_kinds")?;
            for k in &batch.new_kinds {
                app.append_row(params![
                    k.id,
                    k.status,
                    k.request_path,
                    k.user_agent,
                    k.event_type,
                    k.log_version,
                    k.cluster,
                    k.container_instance_arn
                ])?;
            }
            app.flush()?;
        }
        // Every line of a backlog can name a task never seen before: appended as one Arrow
        // batch, not row by row (binding each row's values was a tenth of such a backlog's CPU).
        for (table, entries) in [
            ("request_tasks", &mut batch.new_tasks),
            ("request_addresses", &mut batch.new_addresses),
        ] {
            if !entries.is_empty() {
                let mut app = self.conn.appender(table)?;
                app.append_record_batch(entries.batch()?)
                    .with_context(|| format!("appending {table}"))?;
                app.flush()?;
            }
        }
        if !batch.new_sources.is_empty() {
            let mut app = self.conn.appender("request_sources")?;
            for (id, file, source_id) in &batch.new_sources {
                app.append_row(params![id, batch.host, file, source_id])?;
            }
            app.flush()?;
        }
        Ok(())
    }

    /// The dictionaries' next free ids as committed, with empty caches.
    pub fn dictionaries(&self) -> Result<Dictionaries> {
        let next = |table: &str| -> Result<i64> {
            self.conn
                .query_row(
                    &format!("SELECT coalesce(max(id), 0) + 1 FROM {table}"),
                    [],
                    |r| r.get(0),
                )
                .with_context(|| format!("reading the next id of {table}"))
        };
        Ok(Dictionaries {
            kinds: Interner::starting_at(next("request_kinds")?),
            tasks: Interner::starting_at(next("request_tasks")?),
            addresses: Interner::starting_at(next("request_addresses")?),
            sources: Interner::starting_at(next("request_sources")?),
            loaded: true,
            ..Dictionaries::default()
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<(String, String)> {
        let mut stmt = conn.prepare(&format!("DESCRIBE {table}")).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_view_has_the_published_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.duckdb")).unwrap();
        let published = Connection::open_in_memory().unwrap();
        published.execute_batch(PUBLISHED_SCHEMA).unwrap();
        let expected = columns(&published, "credential_requests");
        assert_eq!(expected.len(), 21);
        assert_eq!(columns(store.conn(), "credential_requests"), expected);
    }

    #[test]
    fn a_store_with_the_table_is_moved_to_the_view_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.duckdb");
        let rows = "(TIMESTAMP '2026-11-20 10:00:00', 200, '172.17.0.2', 40000, '/v2/credentials',
                     'ua \"q\"', 'arn:task/1', 'GetCredentials', 2, 'prod', 'arn:ci/1', 'h', 'audit.log',
                     's1', 0, 10, 1, false, TIMESTAMP '2026-11-20 10:00:01', 'raw'::BLOB),
                    (TIMESTAMP '2026-11-20 10:00:00', 200, '172.17.0.2', 40000, '/v2/credentials',
                     'ua', 'arn:task/1', 'GetCredentials', 2, 'prod', 'arn:ci/1', 'h', 'audit.log',
                     's1', 11, 10, 2, false, TIMESTAMP '2026-11-20 10:00:01', NULL),
                    (TIMESTAMP '2026-11-20 10:00:01', 503, NULL, NULL, '/v2/credentials',
                     '', NULL, NULL, NULL, NULL, NULL, 'h', 'audit.log.1',
                     's2', 0, 10, 3, true, TIMESTAMP '2026-11-20 10:00:01', NULL)";
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(PUBLISHED_SCHEMA).unwrap();
            // The table as the versions before the `truncated` column wrote it.
            old.execute_batch("ALTER TABLE credential_requests DROP COLUMN truncated")
                .unwrap();
            old.execute_batch(&format!("INSERT INTO credential_requests VALUES {rows}"))
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let differing: i64 = store
            .conn()
            .query_row(
                &format!(
                    "SELECT count(*) FROM (
                       (SELECT * EXCLUDE (truncated) FROM credential_requests
                        EXCEPT ALL SELECT * FROM (VALUES {rows}))
                       UNION ALL
                       (SELECT * FROM (VALUES {rows})
                        EXCEPT ALL SELECT * EXCLUDE (truncated) FROM credential_requests))"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(differing, 0);
        assert_eq!(store.next_seq().unwrap(), 4);
        let d = store.dictionaries().unwrap();
        assert_eq!(
            (d.kinds.next, d.tasks.next, d.addresses.next, d.sources.next),
            (4, 2, 2, 3)
        );
        drop(store);
        Store::open(&path).unwrap(); // and opens again as it is
    }

    #[test]
    fn the_collector_and_request_columns_store_a_line_the_same_way() {
        let lines: [&[u8]; 4] = [
            b"2026-11-20T10:00:00Z 200 172.17.0.2:40000 \"/v2/credentials\" \"aws-sdk-go-v2/1.30.3\" arn:aws:ecs:us-east-1:1:task/p/1 GetCredentials 2 prod arn:aws:ecs:us-east-1:1:container-instance/p/2",
            b"2026-11-20T10:00:01Z 400 [::1]:80 \"/v2/credentials\" \"ua \"quoted\" x\" - ",
            b"2026-11-20T10:00:02Z 503 - \"/v1/credentials\" \"bad \xff bytes\" - ",
            b"2026-11-20T10:00:00Z 200 172.17.0.2:40000 \"/v2/credentials\" \"aws-sdk-go-v2/1.30.3\" arn:aws:ecs:us-east-1:1:task/p/1 GetCredentials 2 prod arn:aws:ecs:us-east-1:1:container-instance/p/2",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("c.duckdb")).unwrap();
        let mut batch = Batch::new("h".into(), 1, store.dictionaries().unwrap());
        let mut cols = RequestColumns::new();
        let mut offset = 0;
        for (i, raw) in lines.iter().enumerate() {
            let line = crate::parse::parse_line(raw).unwrap();
            let at = Provenance {
                source_file: if i < 2 { "audit.log" } else { "audit.log.1" },
                source_id: "s",
                byte_offset: offset,
                line_len: raw.len() as u64,
                incomplete: i == 3,
            };
            offset += raw.len() as u64 + 1;
            batch.push_request(&line, raw, at);
            cols.push(&line, raw, "h", at, i as i64 + 1);
        }
        store.commit(&mut batch).unwrap();
        let conn = store.conn();
        conn.execute_batch(
            "CREATE TEMP TABLE published AS SELECT * FROM credential_requests WHERE false",
        )
        .unwrap();
        let mut app = conn.appender("published").unwrap();
        app.append_record_batch(cols.finish(0).unwrap()).unwrap();
        app.flush().unwrap();
        drop(app);
        let except = |a: &str, b: &str| -> i64 {
            conn.query_row(
                &format!(
                    "SELECT count(*) FROM (SELECT * EXCLUDE (ingested_at) FROM {a}
                     EXCEPT ALL SELECT * EXCLUDE (ingested_at) FROM {b})"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(except("credential_requests", "published"), 0);
        assert_eq!(except("published", "credential_requests"), 0);
        let kept: i64 = conn
            .query_row("SELECT count(raw) FROM credential_requests", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            kept, 2,
            "the quoted and the lossy user agent keep their bytes"
        );
    }

    #[test]
    fn a_second_active_source_for_one_file_is_refused_also_after_batches_that_skip_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("c.duckdb")).unwrap();
        let state = |id: &str, ino: u64, offset: u64| SourceState {
            source_id: id.into(),
            dev: 1,
            ino,
            fp_len: 10,
            fp_hash: 7,
            check_hash: None,
            path: "/var/log/ecs/audit.log".into(),
            committed_offset: offset,
            size_seen: offset,
            lines: 0,
            rejected: 0,
            lossy: 0,
            incomplete: 0,
            status: SourceStatus::Active,
            first_seen_us: 1,
            last_event_us: None,
        };
        let mut commit = |states: Vec<SourceState>| {
            let mut batch = Batch::new("h".into(), 1, store.dictionaries().unwrap());
            for s in states {
                batch.set_state(s);
            }
            store.commit(&mut batch).map(|_| ())
        };
        commit(vec![state("a", 2, 10)]).unwrap();
        commit(vec![state("a", 2, 20)]).unwrap(); // only advances a checked source
        let err = commit(vec![state("b", 2, 0)]).unwrap_err();
        assert!(err.to_string().contains("two active sources"), "{err:#}");
        commit(vec![state("a", 2, 30)]).unwrap();
        commit(vec![state("b", 3, 0)]).unwrap(); // another inode
        let err = commit(vec![state("a", 3, 40)]).unwrap_err(); // a moved onto b's file
        assert!(err.to_string().contains("two active sources"), "{err:#}");
        let offsets: Vec<(String, i64)> = store
            .conn()
            .prepare("SELECT source_id, committed_offset FROM ingest_state ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(offsets, [("a".to_string(), 30), ("b".to_string(), 0)]);
    }

    #[test]
    fn interned_keys_keep_their_id_until_the_cache_starts_over() {
        let mut i = Interner::starting_at(7);
        assert_eq!(i.id(b"a"), (7, true));
        assert_eq!(i.id(b"b"), (8, true));
        assert_eq!(i.id(b"a"), (7, false));
        i.clear();
        assert_eq!(i.id(b"a"), (9, true), "an id is never handed out twice");
        let big = vec![b'x'; MAX_INTERNED_BYTES / 2];
        let mut big2 = big.clone();
        big2[0] = b'y';
        assert!(i.id(&big).1);
        assert!(i.id(&big2).1);
        assert!(i.bytes <= MAX_INTERNED_BYTES);
        assert_eq!(i.id(&big2), (11, false));
    }
}
