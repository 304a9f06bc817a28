//! `credtrail ingest cloudtrail`: CloudTrail records from files and directories (S3 delivery's
//! `.json.gz`, plain `.json` arrays or wrappers, JSON lines) into `cloudtrail_events`, exactly
//! once per `eventID`, with every record that cannot be stored kept in `cloudtrail_rejects`.
//!
//! Pipeline: worker threads each take a whole file, stream it through gzip and the
//! [`split::Splitter`] (never more than one record plus a read buffer in memory), parse each
//! record with serde borrowing from the buffer, and fill Arrow columns; full column chunks go
//! over a bounded channel to the writer thread, which owns its DuckDB connection, removes event
//! IDs already stored (or repeated in the chunk) and appends the rest, committing every
//! [`COMMIT_ROWS`] rows. The per-file counts go to `cloudtrail_files` at the end.

pub mod lookup;
pub mod record;
pub mod split;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use duckdb::Connection;
use duckdb::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use duckdb::arrow::compute::filter_record_batch;
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::params;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::{Store, now_us, ts};
use record::RecordError;
use split::{Piece, Splitter};

/// A chunk is sent when it holds this many rows …
const CHUNK_ROWS: usize = 16_384;
/// … or this many bytes of record text.
const CHUNK_BYTES: usize = 24 << 20;
/// The writer commits once its open transaction holds this many new rows (and at the end): a
/// crash loses at most that much, which the next run adds again (eventID dedupe). Measured on
/// 1–2 M records: smaller transactions (131 k, 250 k rows) were slower *and* used more memory;
/// the writer also raises DuckDB's checkpoint threshold to 512 MB of WAL (default 16 MB, which
/// re-compressed the table after every commit and halved throughput).
const COMMIT_ROWS: usize = 500_000;

/// One input: a file on disk, or bytes already fetched (S3 objects, tests).
pub struct Input {
    /// Recorded as `source_file`.
    pub name: String,
    /// Bytes as stored (compressed size for gzip), for progress.
    pub size: u64,
    pub body: Body,
}

pub enum Body {
    Path(PathBuf),
    Bytes(Vec<u8>),
    /// Opened by the worker that reads it (an S3 object streamed while it is parsed), so only
    /// as many inputs are open as there are parse threads.
    Open(Opener),
}

/// Opens an input's byte stream (compressed or not: gzip is recognised by its magic bytes).
pub type Opener = Box<dyn FnOnce() -> std::io::Result<Box<dyn Read + Send>> + Send>;

/// Options of one ingest.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parse threads (0: one per CPU).
    pub threads: usize,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 0,
            progress: true,
        }
    }
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    /// Digest files (by path or content) skipped.
    pub digests_skipped: u64,
    /// Files in walked directories that are not CloudTrail JSON (skipped).
    pub other_skipped: u64,
    /// Records read (stored + duplicates + rejects).
    pub records: u64,
    /// Records stored as new events.
    pub stored: u64,
    /// Records whose event ID was already stored (or repeated in this run).
    pub duplicates: u64,
    pub rejects: u64,
    /// `get-event-selectors` documents stored in `cloudtrail_event_selectors`.
    pub event_selectors: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "cloudtrail: {} files ({} digest files skipped, {} event selector documents), {} records: {} new, {} duplicates skipped, {} rejected; {:.1} MB in {:.2} s ({:.0} records/s)",
            self.files,
            self.digests_skipped,
            self.event_selectors,
            self.records,
            self.stored,
            self.duplicates,
            self.rejects,
            self.bytes as f64 / 1e6,
            secs,
            self.records as f64 / secs
        )
    }
}

/// True for paths of CloudTrail digest files (`…/CloudTrail-Digest/…`, `…_CloudTrail-Digest_…`).
pub fn is_digest_path(path: &str) -> bool {
    path.contains("CloudTrail-Digest")
}

/// Names the directory walk (and the S3 listing) takes as CloudTrail JSON.
pub fn is_json_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.strip_suffix(".gz").unwrap_or(&n);
    !name.starts_with('.')
        && (n.ends_with(".json") || n.ends_with(".jsonl") || n.ends_with(".ndjson"))
}

/// Expands files and directories (recursively) into inputs, sorted by name.
pub fn walk(paths: &[PathBuf], summary: &mut Summary) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let rd = std::fs::read_dir(&dir)
                    .with_context(|| format!("cannot list {}", dir.display()))?;
                for entry in rd {
                    let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
                    let path = entry.path();
                    let ft = entry.file_type()?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if ft.is_dir() {
                        if !name.starts_with('.') {
                            stack.push(path);
                        }
                        continue;
                    }
                    let text = path.to_string_lossy();
                    if is_digest_path(&text) {
                        summary.digests_skipped += 1;
                    } else if is_json_name(&name) {
                        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        out.push(input_of(path, size));
                    } else {
                        summary.other_skipped += 1;
                    }
                }
            }
        } else if is_digest_path(&p.to_string_lossy()) {
            summary.digests_skipped += 1;
        } else {
            out.push(input_of(p.clone(), meta.len()));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

fn input_of(path: PathBuf, size: u64) -> Input {
    Input {
        name: path.display().to_string(),
        size,
        body: Body::Path(path),
    }
}

/// Ingests files and directories.
pub fn ingest_paths(store: &Store, paths: &[PathBuf], opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    let mut summary = Summary::default();
    let inputs = walk(paths, &mut summary)?;
    ingest_inputs(store, inputs, opts, &mut summary)?;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// A record the store could not take, with why.
#[derive(Debug, Clone)]
pub struct Reject {
    pub file: u32,
    pub index: Option<u64>,
    pub offset: Option<u64>,
    pub raw: Vec<u8>,
    pub reason: String,
}

/// What a worker sends to one writer.
struct Chunk {
    batch: Option<RecordBatch>,
    /// Runs of rows by file: (file index, rows), in row order.
    runs: Vec<(u32, u32)>,
    rejects: Vec<Reject>,
    digests: u64,
    /// Records read (stored, duplicate or rejected) that this chunk accounts for.
    records: u64,
    /// (file, document) of `get-event-selectors` output.
    selectors: Vec<(u32, String)>,
}

/// Writers, each on its own DuckDB connection; a record goes to the writer its event ID hashes
/// to, so every copy of an ID meets the same writer, which sees all earlier copies (its own
/// commits and its open transaction): dedupe stays exact without a run-wide set of IDs in
/// memory. One, because two concurrent appenders to the same table measured slower on two
/// cores (DuckDB serialises much of the append and commit; see the benchmark notes).
const WRITERS: usize = 1;

fn partition(event_id: &str, writers: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(event_id.as_bytes()) % writers as u64) as usize
}

/// Ingests prepared inputs; adds to `summary`.
pub fn ingest_inputs(
    store: &Store,
    inputs: Vec<Input>,
    opts: &Options,
    summary: &mut Summary,
) -> Result<()> {
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    let bar = progress_bar(opts.progress, total);
    // The writer thread is the bottleneck (DuckDB's append and commit): by default it keeps a
    // core of its own and the parsers share the rest.
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
    } else {
        opts.threads
    }
    .min(inputs.len().max(1));
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let sizes: Vec<u64> = inputs.iter().map(|i| i.size).collect();
    // Inputs are taken in the order given: by name, which in CloudTrail's layout
    // (`…/YYYY/MM/DD/…_YYYYMMDDTHHmmZ_…`) is time order. Each chunk then covers a short stretch
    // of event time, and the dedupe lookup reads only the few row groups of that stretch.
    // (Largest-first, for load balance, made every chunk span the whole input: at 10 M records
    // the lookups scanned the whole table each time, ingest slowed to 55,654 records/s and peak
    // RSS reached 1,130 MB.)
    let inputs: Vec<std::sync::Mutex<Option<Input>>> = inputs
        .into_iter()
        .map(|i| std::sync::Mutex::new(Some(i)))
        .collect();
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let _threads = OneDuckdbThread::set(store.conn())?;
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (tx, rx) = sync_channel::<Chunk>(2);
        senders.push(tx);
        let conn = store
            .conn()
            .try_clone()
            .context("opening a writer connection")?;
        writers.push((Writer::new(conn, &names)?, rx));
    }
    let results: Vec<Result<Writer<'_>>> = std::thread::scope(|scope| {
        for _ in 0..threads {
            let senders = senders.clone();
            let (inputs, next, abort, bar) = (&inputs, &next, &abort, bar.clone());
            scope.spawn(move || {
                let mut w = Worker::new(senders);
                loop {
                    if abort.load(Ordering::Relaxed) {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = inputs.get(k) else { break };
                    let Some(input) = slot.lock().ok().and_then(|mut g| g.take()) else {
                        continue;
                    };
                    if w.file(k as u32, input, &bar).is_err() {
                        return; // a writer hung up
                    }
                }
                let _ = w.flush();
            });
        }
        drop(senders);
        let handles: Vec<_> = writers
            .into_iter()
            .map(|(mut writer, rx)| {
                let abort = &abort;
                scope.spawn(move || {
                    let r = writer.run(rx);
                    if r.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    r.map(|()| writer)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a writer panicked")))
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut stats: HashMap<u32, FileStat> = HashMap::new();
    for r in results {
        let w = r?;
        let s = &w.summary;
        summary.records += s.records;
        summary.digests_skipped += s.digests_skipped;
        summary.stored += s.stored;
        summary.duplicates += s.duplicates;
        summary.rejects += s.rejects;
        summary.event_selectors += s.event_selectors;
        for (f, st) in w.stats {
            let e = stats.entry(f).or_default();
            e.stored += st.stored;
            e.duplicates += st.duplicates;
            e.rejects += st.rejects;
        }
    }
    summary.files += names.len() as u64;
    summary.bytes += sizes.iter().sum::<u64>();
    let now = now_us();
    store.transaction(|conn| {
        let mut app = conn.appender("cloudtrail_files")?;
        for (i, name) in names.iter().enumerate() {
            let st = stats.get(&(i as u32)).copied().unwrap_or_default();
            app.append_row(params![
                name,
                sizes[i] as i64,
                st.stored as i64,
                st.duplicates as i64,
                st.rejects as i64,
                ts(now)
            ])?;
        }
        app.flush()?;
        Ok(())
    })
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Counts compressed bytes into the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Opens an input, decompressing gzip (recognised by its magic bytes, whatever the name).
fn open(input: Input, bar: &ProgressBar) -> std::io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match input.body {
        Body::Path(p) => Box::new(File::open(p)?),
        Body::Bytes(b) => Box::new(std::io::Cursor::new(b)),
        Body::Open(f) => f()?,
    };
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: raw,
            bar: bar.clone(),
        },
    );
    let gz = {
        let head = buffered.fill_buf()?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    Ok(if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

struct Worker {
    senders: Vec<SyncSender<Chunk>>,
    /// Per writer: the columns being filled and the chunk they belong to.
    cols: Vec<Columns>,
    chunks: Vec<Chunk>,
}

fn empty_chunk() -> Chunk {
    Chunk {
        batch: None,
        runs: Vec::new(),
        rejects: Vec::new(),
        digests: 0,
        records: 0,
        selectors: Vec::new(),
    }
}

struct Hangup;

impl Worker {
    fn new(senders: Vec<SyncSender<Chunk>>) -> Worker {
        let n = senders.len();
        Worker {
            senders,
            cols: (0..n).map(|_| Columns::new()).collect(),
            chunks: (0..n).map(|_| empty_chunk()).collect(),
        }
    }

    fn reject(&mut self, r: Reject) {
        self.chunks[0].rejects.push(r);
    }

    fn file(&mut self, file: u32, input: Input, bar: &ProgressBar) -> Result<(), Hangup> {
        let name = input.name.clone();
        match open(input, bar) {
            Ok(reader) => {
                let mut split = Splitter::new(reader);
                loop {
                    let piece = match split.next_piece() {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            let offset = split.offset();
                            self.reject(Reject {
                                file,
                                index: None,
                                offset: Some(offset),
                                raw: Vec::new(),
                                reason: format!("cannot read further (after {offset} bytes): {e}"),
                            });
                            break;
                        }
                    };
                    if let Some(p) = self.piece(file, &name, piece) {
                        let c = &self.cols[p];
                        if c.rows >= CHUNK_ROWS || c.bytes >= CHUNK_BYTES {
                            self.send(p)?;
                        }
                    }
                }
            }
            Err(e) => self.reject(Reject {
                file,
                index: None,
                offset: None,
                raw: Vec::new(),
                reason: format!("cannot open: {e}"),
            }),
        }
        if self.chunks[0].rejects.len() >= 4096 {
            self.send(0)?;
        }
        Ok(())
    }

    /// Takes one piece; returns the writer whose columns grew.
    fn piece(&mut self, file: u32, name: &str, piece: Piece<'_>) -> Option<usize> {
        match piece {
            Piece::Record {
                index,
                offset,
                top_level,
                bytes,
            } => match record::parse(bytes) {
                Ok(event) => {
                    let p = partition(&event.event_id, self.cols.len());
                    let chunk = &mut self.chunks[p];
                    chunk.records += 1;
                    self.cols[p].push(&event, name);
                    match chunk.runs.last_mut() {
                        Some((f, n)) if *f == file => *n += 1,
                        _ => chunk.runs.push((file, 1)),
                    }
                    Some(p)
                }
                Err(RecordError::Digest) if top_level => {
                    self.chunks[0].digests += 1;
                    None
                }
                Err(RecordError::EventSelectors) if top_level => {
                    self.chunks[0]
                        .selectors
                        .push((file, String::from_utf8_lossy(bytes).into_owned()));
                    None
                }
                Err(e) => {
                    self.chunks[0].records += 1;
                    self.reject(Reject {
                        file,
                        index: Some(index),
                        offset: Some(offset),
                        raw: bytes.to_vec(),
                        reason: e.to_string(),
                    });
                    None
                }
            },
            Piece::Junk {
                index,
                offset,
                bytes,
                reason,
            } => {
                if index.is_some() {
                    self.chunks[0].records += 1;
                }
                self.reject(Reject {
                    file,
                    index,
                    offset: Some(offset),
                    raw: bytes.to_vec(),
                    reason: reason.to_string(),
                });
                None
            }
        }
    }

    fn send(&mut self, p: usize) -> Result<(), Hangup> {
        let mut chunk = std::mem::replace(&mut self.chunks[p], empty_chunk());
        if self.cols[p].rows > 0 {
            chunk.batch = Some(self.cols[p].finish());
        }
        self.senders[p].send(chunk).map_err(|_| Hangup)
    }

    fn flush(&mut self) -> Result<(), Hangup> {
        for p in 0..self.senders.len() {
            let c = &self.chunks[p];
            if self.cols[p].rows > 0
                || !c.rejects.is_empty()
                || c.digests > 0
                || c.records > 0
                || !c.selectors.is_empty()
            {
                self.send(p)?;
            }
        }
        Ok(())
    }
}

/// Arrow builders for `cloudtrail_events`, in table order.
pub struct Columns {
    event_id: StringBuilder,
    event_time: TimestampMicrosecondBuilder,
    strs1: [StringBuilder; 7], // event_source .. error_message
    read_only: BooleanBuilder,
    event_type: StringBuilder,
    event_category: StringBuilder,
    management_event: BooleanBuilder,
    strs2: [StringBuilder; 7], // identity_type .. session_name
    session_created: TimestampMicrosecondBuilder,
    strs3: [StringBuilder; 7], // invoked_by .. record
    source_file: StringBuilder,
    pub rows: usize,
    pub bytes: usize,
}

impl Default for Columns {
    fn default() -> Self {
        Self::new()
    }
}

impl Columns {
    pub fn new() -> Columns {
        Columns {
            event_id: StringBuilder::new(),
            event_time: TimestampMicrosecondBuilder::new(),
            strs1: std::array::from_fn(|_| StringBuilder::new()),
            read_only: BooleanBuilder::new(),
            event_type: StringBuilder::new(),
            event_category: StringBuilder::new(),
            management_event: BooleanBuilder::new(),
            strs2: std::array::from_fn(|_| StringBuilder::new()),
            session_created: TimestampMicrosecondBuilder::new(),
            strs3: std::array::from_fn(|_| StringBuilder::new()),
            source_file: StringBuilder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    pub fn schema() -> Arc<Schema> {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        let t =
            |n: &str, null| Field::new(n, DataType::Timestamp(TimeUnit::Microsecond, None), null);
        let b = |n: &str| Field::new(n, DataType::Boolean, true);
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            t("event_time", false),
            s("event_source"),
            s("event_name"),
            s("aws_region"),
            s("source_ip"),
            s("user_agent"),
            s("error_code"),
            s("error_message"),
            b("read_only"),
            s("event_type"),
            s("event_category"),
            b("management_event"),
            s("identity_type"),
            s("principal_id"),
            s("principal_arn"),
            s("account_id"),
            s("access_key_id"),
            s("session_issuer_arn"),
            s("session_name"),
            t("session_created", true),
            s("invoked_by"),
            s("vpc_endpoint_id"),
            s("recipient_account_id"),
            s("request_parameters"),
            s("response_elements"),
            s("resources"),
            Field::new("record", DataType::Utf8, false),
            Field::new("source_file", DataType::Utf8, false),
            t("ingested_at", false),
        ]))
    }

    pub fn push(&mut self, e: &record::Event<'_>, source_file: &str) {
        self.event_id.append_value(&e.event_id);
        self.event_time.append_value(e.event_time_us);
        let s1 = [
            &e.event_source,
            &e.event_name,
            &e.aws_region,
            &e.source_ip,
            &e.user_agent,
            &e.error_code,
            &e.error_message,
        ];
        for (b, v) in self.strs1.iter_mut().zip(s1) {
            b.append_option(v.as_deref());
        }
        self.read_only.append_option(e.read_only);
        self.event_type.append_option(e.event_type.as_deref());
        self.event_category
            .append_option(e.event_category.as_deref());
        self.management_event.append_option(e.management_event);
        let s2 = [
            &e.identity_type,
            &e.principal_id,
            &e.principal_arn,
            &e.account_id,
            &e.access_key_id,
            &e.session_issuer_arn,
            &e.session_name,
        ];
        for (b, v) in self.strs2.iter_mut().zip(s2) {
            b.append_option(v.as_deref());
        }
        self.session_created.append_option(e.session_created_us);
        let s3 = [
            e.invoked_by.as_deref(),
            e.vpc_endpoint_id.as_deref(),
            e.recipient_account_id.as_deref(),
            e.request_parameters,
            e.response_elements,
            e.resources,
            Some(e.record),
        ];
        for (b, v) in self.strs3.iter_mut().zip(s3) {
            b.append_option(v);
        }
        self.source_file.append_value(source_file);
        self.rows += 1;
        self.bytes += e.record.len();
    }

    pub fn finish(&mut self) -> RecordBatch {
        let rows = self.rows;
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(30);
        cols.push(Arc::new(self.event_id.finish()));
        cols.push(Arc::new(self.event_time.finish()));
        for b in &mut self.strs1 {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.read_only.finish()));
        cols.push(Arc::new(self.event_type.finish()));
        cols.push(Arc::new(self.event_category.finish()));
        cols.push(Arc::new(self.management_event.finish()));
        for b in &mut self.strs2 {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.session_created.finish()));
        for b in &mut self.strs3 {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.source_file.finish()));
        cols.push(Arc::new(TimestampMicrosecondArray::from_value(
            now_us(),
            rows,
        )));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(Self::schema(), cols).expect("columns match the schema")
    }
}

#[derive(Default, Clone, Copy)]
struct FileStat {
    stored: u64,
    duplicates: u64,
    rejects: u64,
}

/// DuckDB runs its own work on one thread while records are written, and goes back to its
/// previous setting afterwards (the setting is the database's, not the connection's). The
/// writer's only queries are the dedupe lookups over a few row groups; DuckDB's worker threads
/// for them competed with the parse threads for the cores and each held buffers of its own.
/// Measured on 3 M records (two cores): 867 MB peak RSS and 39.5 CPU s with one thread, 975 MB
/// and 43.5 CPU s with DuckDB's default of one per core.
struct OneDuckdbThread<'c> {
    conn: &'c Connection,
    before: i64,
}

impl<'c> OneDuckdbThread<'c> {
    fn set(conn: &'c Connection) -> Result<OneDuckdbThread<'c>> {
        let before = conn.query_row("SELECT current_setting('threads')", [], |r| {
            r.get::<_, i64>(0)
        })?;
        conn.execute_batch("SET threads = 1")?;
        Ok(OneDuckdbThread { conn, before })
    }
}

impl Drop for OneDuckdbThread<'_> {
    fn drop(&mut self) {
        let _ = self
            .conn
            .execute_batch(&format!("SET threads = {}", self.before));
    }
}

/// A writer: owns a connection, dedupes its partition of event IDs, commits in large
/// transactions.
struct Writer<'n> {
    conn: Connection,
    names: &'n [String],
    stats: HashMap<u32, FileStat>,
    summary: Summary,
    open_tx: bool,
    tx_rows: usize,
}

impl<'n> Writer<'n> {
    fn new(conn: Connection, names: &'n [String]) -> Result<Writer<'n>> {
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS ct_batch_ids (event_id VARCHAR, event_time TIMESTAMP);
             SET checkpoint_threshold = '512MB';",
        )?;
        Ok(Writer {
            conn,
            names,
            stats: HashMap::new(),
            summary: Summary::default(),
            open_tx: false,
            tx_rows: 0,
        })
    }

    fn run(&mut self, rx: Receiver<Chunk>) -> Result<()> {
        for chunk in rx {
            self.write(chunk)?;
        }
        self.commit()
    }

    fn write(&mut self, chunk: Chunk) -> Result<()> {
        if !self.open_tx {
            self.conn.execute_batch("BEGIN TRANSACTION")?;
            self.open_tx = true;
        }
        match self.write_in_tx(chunk) {
            Ok(rows) => {
                self.tx_rows += rows;
                if self.tx_rows >= COMMIT_ROWS {
                    self.commit()?;
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.open_tx = false;
                self.tx_rows = 0;
                Err(e)
            }
        }
    }

    /// Writes one chunk into the open transaction; returns the rows it stored.
    fn write_in_tx(&mut self, chunk: Chunk) -> Result<usize> {
        let conn = &self.conn;
        let mut stored = 0usize;
        if let Some(batch) = chunk.batch {
            let keep = new_rows(conn, &batch)?;
            let mut row = 0usize;
            for (file, n) in &chunk.runs {
                let st = self.stats.entry(*file).or_default();
                for k in row..row + *n as usize {
                    if keep.value(k) {
                        st.stored += 1;
                    } else {
                        st.duplicates += 1;
                    }
                }
                row += *n as usize;
            }
            stored = keep.true_count();
            self.summary.stored += stored as u64;
            self.summary.duplicates += (batch.num_rows() - stored) as u64;
            if stored > 0 {
                let batch = if stored == batch.num_rows() {
                    batch
                } else {
                    filter_record_batch(&batch, &keep)?
                };
                let mut app = conn.appender("cloudtrail_events")?;
                app.append_record_batch(batch)
                    .context("appending CloudTrail events")?;
                app.flush()?;
            }
        }
        for r in &chunk.rejects {
            self.stats.entry(r.file).or_default().rejects += 1;
            insert_reject(conn, &self.names[r.file as usize], r)?;
        }
        self.summary.rejects += chunk.rejects.len() as u64;
        self.summary.records += chunk.records;
        self.summary.digests_skipped += chunk.digests;
        for (f, doc) in &chunk.selectors {
            insert_selectors(conn, &self.names[*f as usize], doc, now_us())?;
            self.summary.event_selectors += 1;
        }
        Ok(stored)
    }

    /// Commits what the open transaction holds.
    fn commit(&mut self) -> Result<()> {
        if self.open_tx {
            self.open_tx = false;
            self.tx_rows = 0;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e).context("committing CloudTrail events");
            }
        }
        Ok(())
    }
}

/// Which rows of `batch` are new: not repeated earlier in the batch, and not stored already.
/// Stored copies are looked up only within the batch's event-time range (a duplicate is the
/// same record, so it has the same time), which keeps the scan to a few row groups.
fn new_rows(conn: &Connection, batch: &RecordBatch) -> Result<BooleanArray> {
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .context("event_id column")?;
    let times = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .context("event_time column")?;
    let mut keep = vec![true; ids.len()];
    let mut seen = HashSet::with_capacity(ids.len());
    for (i, k) in keep.iter_mut().enumerate() {
        if !seen.insert(ids.value(i)) {
            *k = false;
        }
    }
    let (lo, hi) = (0..times.len())
        .map(|i| times.value(i))
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if !ids.is_empty() {
        conn.execute_batch("DELETE FROM ct_batch_ids")?;
        let pair = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("event_id", DataType::Utf8, false),
                Field::new(
                    "event_time",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    false,
                ),
            ])),
            vec![batch.column(0).clone(), batch.column(1).clone()],
        )?;
        {
            let mut app = conn.appender("ct_batch_ids")?;
            app.append_record_batch(pair)?;
            app.flush()?;
        }
        let mut stmt = conn.prepare(
            "SELECT DISTINCT e.event_id FROM cloudtrail_events e
             WHERE e.event_time BETWEEN ? AND ?
               AND e.event_id IN (SELECT event_id FROM ct_batch_ids)",
        )?;
        let stored: HashSet<String> = stmt
            .query_map(params![ts(lo), ts(hi)], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        if !stored.is_empty() {
            for (i, k) in keep.iter_mut().enumerate() {
                if stored.contains(ids.value(i)) {
                    *k = false;
                }
            }
        }
    }
    Ok(BooleanArray::from(keep))
}

/// Stores a trail's event selectors, replacing what an earlier snapshot said about that trail.
fn insert_selectors(conn: &Connection, source: &str, doc: &str, now: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM cloudtrail_event_selectors
         WHERE trail_arn = json_extract_string(?::JSON, '$.TrailARN')",
        [doc],
    )?;
    conn.execute(
        "INSERT INTO cloudtrail_event_selectors
         SELECT json_extract_string(d, '$.TrailARN'), json_extract(d, '$.EventSelectors'),
                json_extract(d, '$.AdvancedEventSelectors'), d, ?, ?
         FROM (SELECT ?::JSON AS d)",
        params![source, ts(now), doc],
    )?;
    Ok(())
}

fn insert_reject(conn: &Connection, name: &str, r: &Reject) -> Result<()> {
    conn.execute(
        "INSERT INTO cloudtrail_rejects
         SELECT $1, $2, $3, $4, $5, $6
         WHERE NOT EXISTS (SELECT 1 FROM cloudtrail_rejects
                           WHERE source_file = $1 AND byte_offset IS NOT DISTINCT FROM $3
                             AND reason = $5 AND raw = $4)",
        params![
            name,
            r.index.map(|i| i as i64),
            r.offset.map(|o| o as i64),
            r.raw,
            r.reason,
            ts(now_us())
        ],
    )?;
    Ok(())
}

/// Ingests records already in memory (e.g. from LookupEvents' `CloudTrailEvent` strings),
/// all under one source name.
pub fn ingest_records(store: &Store, source: &str, records: &[String]) -> Result<Summary> {
    let start = Instant::now();
    let names = vec![source.to_string()];
    let _threads = OneDuckdbThread::set(store.conn())?;
    let mut writer = Writer::new(store.conn().try_clone()?, &names)?;
    for (k, part) in records.chunks(CHUNK_ROWS).enumerate() {
        let mut cols = Columns::new();
        let mut chunk = empty_chunk();
        for (j, rec) in part.iter().enumerate() {
            let i = k * CHUNK_ROWS + j;
            chunk.records += 1;
            match record::parse(rec.as_bytes()) {
                Ok(e) => cols.push(&e, source),
                Err(e) => chunk.rejects.push(Reject {
                    file: 0,
                    index: Some(i as u64),
                    offset: None,
                    raw: rec.as_bytes().to_vec(),
                    reason: e.to_string(),
                }),
            }
        }
        if cols.rows > 0 {
            chunk.runs.push((0, cols.rows as u32));
            chunk.batch = Some(cols.finish());
        }
        writer.write(chunk)?;
    }
    writer.commit()?;
    let mut s = writer.summary;
    s.files = 1;
    s.elapsed = start.elapsed();
    Ok(s)
}
