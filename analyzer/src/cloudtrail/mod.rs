//! `credtrail ingest cloudtrail`: CloudTrail records from files and directories (S3 delivery's
//! `.json.gz`, plain `.json` arrays or wrappers, JSON lines) into `cloudtrail_events`, exactly
//! once per `eventID`, with every record that cannot be stored kept in `cloudtrail_rejects`.
//! Files are taken by what they hold, not by their names ([`sniff`]); every file not read is
//! named in the [`Summary`] with why.
//!
//! Pipeline: parse threads (one per core) each take a whole file, stream it through gzip and
//! the [`split::Splitter`] (never more than one record plus a read buffer in memory), parse
//! each record with serde borrowing from the buffer, drop the copies of records the run already
//! took ([`seen`], shared by the threads: CloudTrail delivers some records twice, in files that
//! different threads read), fill Arrow columns, and write them to a Parquet part of their own
//! ([`part`]), compressing as they go. A closed part goes over a bounded channel to the thread
//! that owns the store's connection, which removes the events already stored by earlier runs
//! (by `eventID`, among the parts of the same time range), registers the part in
//! the same transaction as the view over all parts, and stores rejects and event selectors. The
//! per-file counts go to `cloudtrail_files` at the end.
//!
//! Why parts: the earlier design appended to a DuckDB table from one writer thread, and
//! DuckDB's compression of the record text on that thread bounded the whole ingest at about
//! 0.6x the speed of DuckDB's own `read_json` on two cores (1 M records: appender flush ~6.7 s,
//! parsing 3.6 s). Compression now runs on every parse thread.

pub mod lookup;
pub mod part;
pub mod queue;
pub mod record;
pub mod seen;
pub mod sniff;
pub mod split;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use duckdb::Connection;
use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::params;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::{Store, now_us, ts};
use part::{Namer, PART_ROWS, Part, PartWriter, RunParts};
use queue::Queue;
use record::RecordError;
use seen::{Coverage, Seen, SeenIds};
use sniff::{HEAD_BYTES, SkipReason};
use split::{Piece, Splitter};

/// A parse thread writes its columns to its part when they hold this many rows …
const BATCH_ROWS: usize = 16_384;
/// … or this many bytes of record text.
const BATCH_BYTES: usize = 4 << 20;

/// One input: a file on disk, or bytes already fetched (S3 objects, tests).
pub struct Input {
    /// Recorded as `source_file`.
    pub name: String,
    /// Bytes as stored (compressed size for gzip), for progress.
    pub size: u64,
    pub body: Body,
    /// Named by the user (not found in a directory or a listing): when it does not hold
    /// CloudTrail, the ingest fails instead of skipping it.
    pub named: bool,
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
    /// Threads that open and read network inputs ([`Body::Open`]) ahead of the parse threads
    /// (0: each parse thread opens its own, see [`queue`]).
    pub fetchers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 0,
            progress: true,
            fetchers: 0,
        }
    }
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Inputs read.
    pub files: u64,
    /// Inputs not read, and why, in name order once the ingest is done.
    pub skipped: Vec<Skipped>,
    /// Records read (stored + duplicates + rejects).
    pub records: u64,
    /// Records stored as new events.
    pub stored: u64,
    /// Records whose event ID was already stored (or repeated in this run).
    pub duplicates: u64,
    pub rejects: u64,
    /// `get-event-selectors` documents stored in `cloudtrail_event_selectors`.
    pub event_selectors: u64,
    /// `describe-trails` documents stored in `cloudtrail_trails`.
    pub trail_lists: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Summary {
    /// Adds another ingest's counts (not its time).
    pub fn add(&mut self, o: &Summary) {
        self.files += o.files;
        self.skipped.extend(o.skipped.iter().cloned());
        self.records += o.records;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.rejects += o.rejects;
        self.event_selectors += o.event_selectors;
        self.trail_lists += o.trail_lists;
        self.bytes += o.bytes;
    }
}

/// An input that was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: SkipReason,
}

/// The summary names at most this many skipped inputs (then counts the rest by reason).
const SKIPPED_SHOWN: usize = 20;

impl Summary {
    /// Skipped inputs with this reason.
    pub fn skipped_for(&self, reason: SkipReason) -> usize {
        self.skipped.iter().filter(|s| s.reason == reason).count()
    }

    /// Records an input not read.
    pub fn skip(&mut self, name: String, reason: SkipReason) {
        self.skipped.push(Skipped { name, reason });
    }

    /// The first line of the summary: the counts.
    pub fn headline(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "cloudtrail: {} files read, {} skipped, {} event selector documents, {} records: {} new, {} duplicates skipped, {} rejected; {:.1} MB in {:.2} s ({:.0} records/s)",
            self.files,
            self.skipped.len(),
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

    /// One line per skipped input, `skipped NAME (REASON)` (names escaped for terminals),
    /// at most [`SKIPPED_SHOWN`], then the rest counted by reason.
    pub fn skipped_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .skipped
            .iter()
            .take(SKIPPED_SHOWN)
            .map(|s| {
                format!(
                    "skipped {} ({})",
                    crate::terminal::escape_control(&s.name),
                    s.reason
                )
            })
            .collect();
        let rest = &self.skipped[self.skipped.len().min(SKIPPED_SHOWN)..];
        if !rest.is_empty() {
            let mut by_reason = std::collections::BTreeMap::<SkipReason, usize>::new();
            for s in rest {
                *by_reason.entry(s.reason).or_default() += 1;
            }
            let counts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            lines.push(format!(
                "skipped {} more ({})",
                rest.len(),
                counts.join(", ")
            ));
        }
        lines
    }
}

/// The headline, then a line per skipped input.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.headline())?;
        for line in self.skipped_lines() {
            write!(f, "\n{line}")?;
        }
        Ok(())
    }
}

/// True for paths of CloudTrail digest files (`…/CloudTrail-Digest/…`, `…_CloudTrail-Digest_…`).
pub fn is_digest_path(path: &str) -> bool {
    path.contains("CloudTrail-Digest")
}

/// Names the S3 listing takes as CloudTrail JSON (objects are not fetched to be sniffed: in a
/// trail's bucket every log is `.json.gz`).
pub fn is_json_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.strip_suffix(".gz").unwrap_or(&n);
    !name.starts_with('.')
        && (n.ends_with(".json") || n.ends_with(".jsonl") || n.ends_with(".ndjson"))
}

/// Expands files and directories (recursively) into inputs, sorted by name (time order in S3's
/// layout). Every file in a directory is an input, whatever its name: what it holds decides
/// whether it is read ([`sniff`]). Digests (by path), hidden directories and special files are
/// skipped, each named in `summary`. A regular file named in `paths` that is not CloudTrail
/// is an error, reported with every other such file before anything is read.
pub fn walk(paths: &[PathBuf], summary: &mut Summary) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    let mut not_cloudtrail = Vec::new();
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
                    let text = path.display().to_string();
                    if entry.file_type()?.is_dir() {
                        if entry.file_name().to_string_lossy().starts_with('.') {
                            summary.skip(text, SkipReason::HiddenDirectory);
                        } else {
                            stack.push(path);
                        }
                    } else if is_digest_path(&text) {
                        summary.skip(text, SkipReason::Digest);
                    } else {
                        // Links are followed to files, not to directories (which could loop).
                        match std::fs::metadata(&path) {
                            Ok(m) if m.is_file() => out.push(input_of(path, m.len(), false)),
                            Ok(_) => summary.skip(text, SkipReason::NotRegularFile),
                            // Reading it says why it cannot be (a dangling link, no permission).
                            Err(_) => out.push(input_of(path, 0, false)),
                        }
                    }
                }
            }
        } else if is_digest_path(&p.to_string_lossy()) {
            summary.skip(p.display().to_string(), SkipReason::Digest);
        } else {
            // Only regular files are looked at here: the head of a pipe would be consumed.
            if meta.is_file()
                && let Ok(Err(reason)) = sniff_path(p)
                && reason.is_error_when_named()
            {
                not_cloudtrail.push(format!("{}: {reason}", p.display()));
            }
            out.push(input_of(p.clone(), meta.len(), true));
        }
    }
    if !not_cloudtrail.is_empty() {
        anyhow::bail!(
            "not CloudTrail JSON: {} (give their directory instead to skip files that are not \
             CloudTrail)",
            not_cloudtrail.join("; ")
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

fn input_of(path: PathBuf, size: u64, named: bool) -> Input {
    Input {
        name: path.display().to_string(),
        size,
        body: Body::Path(path),
        named,
    }
}

/// What [`sniff`] says of a file's first bytes.
fn sniff_path(path: &Path) -> std::io::Result<Result<(), SkipReason>> {
    let mut r = open(
        input_of(path.to_path_buf(), 0, true),
        &ProgressBar::hidden(),
    )?;
    let mut head = Vec::new();
    let complete = read_head(&mut r, &mut head)?;
    Ok(sniff::sniff(&head, complete))
}

/// Reads the first [`HEAD_BYTES`] of `r` into `head`; true when that was all of it. After an
/// error, `head` holds what was read before it.
fn read_head(r: &mut dyn Read, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let n = r.take(HEAD_BYTES as u64).read_to_end(head)?;
    Ok(n < HEAD_BYTES)
}

/// Gives the error that stopped an earlier read, once.
struct Failed(Option<std::io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        self.0.take().map_or(Ok(0), Err)
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

/// What a parse thread sends to the thread that owns the store.
#[derive(Default)]
struct Chunk {
    /// A closed part file.
    part: Option<Part>,
    /// Per input file, the rows `part` holds and the copies left out of it as duplicates.
    stats: Vec<(u32, FileStat)>,
    rejects: Vec<Reject>,
    /// Inputs not read, and why.
    skipped: Vec<(u32, SkipReason)>,
    /// Records read (stored, duplicate or rejected) that this chunk accounts for.
    records: u64,
    /// (file, document) of `get-event-selectors` output.
    selectors: Vec<(u32, String)>,
    /// (file, document) of `describe-trails` output.
    trails: Vec<(u32, String)>,
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
    // Every core parses: the thread that owns the store only dedupes and registers parts.
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .min(inputs.len().max(1));
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let sizes: Vec<u64> = inputs.iter().map(|i| i.size).collect();
    // Inputs are taken in the order given: by name, which in CloudTrail's layout
    // (`…/YYYY/MM/DD/…_YYYYMMDDTHHmmZ_…`) is time order. Each part then covers a short stretch
    // of event time, so a part's dedupe reads only the few parts (and row groups) of that
    // stretch. (Largest-first, for load balance, made every chunk span the whole input: at
    // 10 M records the dedupe lookups scanned everything each time.)
    let queue = Queue::new(inputs, opts.fetchers);
    let w = std::thread::scope(|scope| {
        for _ in 0..opts.fetchers {
            scope.spawn(|| queue.fetch());
        }
        let w = run(store, &names, threads, |worker, abort| {
            while !abort.load(Ordering::Relaxed) {
                let Some((k, input)) = queue.take() else {
                    break;
                };
                worker.file(k as u32, input, &bar)?;
            }
            Ok(())
        });
        queue.stop();
        w
    });
    bar.finish_and_clear();
    let w = w?;
    summary.add(&w.summary);
    let read = |i: &usize| !w.skipped.contains(&(*i as u32));
    summary.files += (0..names.len()).filter(read).count() as u64;
    summary.bytes += (0..names.len()).filter(read).map(|i| sizes[i]).sum::<u64>();
    summary.skipped.sort_by(|a, b| a.name.cmp(&b.name));
    let now = now_us();
    store.transaction(|conn| {
        let mut app = conn.appender("cloudtrail_files")?;
        for (i, name) in names.iter().enumerate().filter(|(i, _)| read(i)) {
            let st = w.stats.get(&(i as u32)).copied().unwrap_or_default();
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

/// Ingests records already in memory (e.g. from LookupEvents' `CloudTrailEvent` strings),
/// all under one source name, through the same parse, part and dedupe path as files.
pub fn ingest_records(store: &Store, source: &str, records: &[String]) -> Result<Summary> {
    ingest_records_with(store, source, records, SeenIds::default())
}

/// [`ingest_records`] with the run's set of IDs given (a small one, to test what happens
/// once it is full).
pub(crate) fn ingest_records_with(
    store: &Store,
    source: &str,
    records: &[String],
    ids: SeenIds,
) -> Result<Summary> {
    let start = Instant::now();
    let names = vec![source.to_string()];
    let w = run_with(store, &names, 1, ids, |worker, _| {
        for (i, rec) in records.iter().enumerate() {
            worker.record(0, source, i as u64, None, false, rec.as_bytes())?;
        }
        Ok(())
    })?;
    let mut s = w.summary;
    s.files = 1;
    s.elapsed = start.elapsed();
    Ok(s)
}

/// Runs `work` on `threads` parse threads while this thread, which owns the store's
/// connection, takes what they send: rejects as they come, parts as they close (deduped
/// against what is stored, then registered). Small parts are merged at the end.
fn run<'n, F>(store: &Store, names: &'n [String], threads: usize, work: F) -> Result<Writer<'n>>
where
    F: Fn(&mut Worker<'_>, &AtomicBool) -> Result<()> + Sync,
{
    run_with(store, names, threads, SeenIds::default(), work)
}

/// [`run`] with the set of event IDs the parse threads share.
fn run_with<'n, F>(
    store: &Store,
    names: &'n [String],
    threads: usize,
    ids: SeenIds,
    work: F,
) -> Result<Writer<'n>>
where
    F: Fn(&mut Worker<'_>, &AtomicBool) -> Result<()> + Sync,
{
    let namer = store.parts().namer()?;
    let _threads = OneDuckdbThread::set(store.conn())?;
    let mut writer = Writer::new(names);
    let abort = AtomicBool::new(false);
    let (taken, worked) = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Chunk>(2 * threads.max(1));
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (tx, namer, ids, abort, work) = (tx.clone(), &namer, &ids, &abort, &work);
                scope.spawn(move || {
                    let mut w = Worker::new(t, tx, namer, ids);
                    let r = work(&mut w, abort).and_then(|()| w.finish());
                    if r.is_err() {
                        abort.store(true, Ordering::Relaxed);
                        w.discard();
                    }
                    r
                })
            })
            .collect();
        drop(tx);
        let mut taken = Ok(());
        for chunk in rx {
            if taken.is_ok() {
                taken = writer.take(store, chunk);
                if taken.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
            } else if let Some(p) = chunk.part {
                let _ = std::fs::remove_file(&p.path);
            }
        }
        let worked = handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a parse thread panicked")))
        });
        (taken, worked)
    });
    taken?;
    worked?;
    store
        .parts()
        .compact(store.conn(), &namer)
        .context("merging small parts")?;
    Ok(writer)
}

/// One parse thread: reads whole inputs, fills Arrow columns, writes them to its own part.
struct Worker<'r> {
    thread: usize,
    tx: SyncSender<Chunk>,
    namer: &'r Namer,
    cols: Columns,
    part: Option<PartWriter>,
    /// xxh3-128 of every event ID this run took, shared by the parse threads: a copy is counted
    /// as a duplicate, not written.
    ids: &'r SeenIds,
    /// Whether every ID of the open part went into `ids`.
    coverage: Coverage,
    /// Once `ids` is full, the IDs of the open part it does not hold, so that a part never
    /// holds an event ID twice (copies in other parts are found when a part is registered).
    seen: HashSet<u128, IdHash>,
    /// Per input file, for the open part.
    stats: HashMap<u32, FileStat>,
    /// Rejects, digests, selectors and record counts not sent yet.
    notes: Chunk,
}

impl<'r> Worker<'r> {
    fn new(thread: usize, tx: SyncSender<Chunk>, namer: &'r Namer, ids: &'r SeenIds) -> Self {
        Worker {
            thread,
            tx,
            namer,
            cols: Columns::new(),
            part: None,
            ids,
            coverage: Coverage::Complete,
            // Used only once `ids` is full.
            seen: HashSet::with_hasher(IdHash::default()),
            stats: HashMap::new(),
            notes: Chunk::default(),
        }
    }

    fn reject(&mut self, r: Reject) -> Result<()> {
        self.notes.rejects.push(r);
        if self.notes.rejects.len() >= 4096 {
            self.send(None)?;
        }
        Ok(())
    }

    fn file(&mut self, file: u32, input: Input, bar: &ProgressBar) -> Result<()> {
        let name = input.name.clone();
        let named = input.named;
        let mut reader = match open(input, bar) {
            Ok(r) => r,
            Err(e) => {
                return self.reject(Reject {
                    file,
                    index: None,
                    offset: None,
                    raw: Vec::new(),
                    reason: format!("cannot open: {e}"),
                });
            }
        };
        // What the first bytes hold decides whether the input is read; they are then read
        // again from memory, so the input is opened once.
        let mut head = Vec::new();
        let rest: Box<dyn Read + Send> = match read_head(&mut reader, &mut head) {
            Ok(complete) => {
                if let Err(reason) = sniff::sniff(&head, complete) {
                    if named && reason.is_error_when_named() {
                        anyhow::bail!("not CloudTrail JSON: {name}: {reason}");
                    }
                    self.notes.skipped.push((file, reason));
                    return Ok(());
                }
                reader
            }
            // What was read is split, then the error is a reject.
            Err(e) => Box::new(Failed(Some(e))),
        };
        let mut split = Splitter::new(std::io::Cursor::new(head).chain(rest));
        loop {
            let piece = match split.next_piece() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let offset = split.offset();
                    return self.reject(Reject {
                        file,
                        index: None,
                        offset: Some(offset),
                        raw: Vec::new(),
                        reason: format!("cannot read further (after {offset} bytes): {e}"),
                    });
                }
            };
            match piece {
                Piece::Record {
                    index,
                    offset,
                    top_level,
                    bytes,
                } => self.record(file, &name, index, Some(offset), top_level, bytes)?,
                Piece::Junk {
                    index,
                    offset,
                    bytes,
                    reason,
                } => {
                    if index.is_some() {
                        self.notes.records += 1;
                    }
                    self.reject(Reject {
                        file,
                        index,
                        offset: Some(offset),
                        raw: bytes.to_vec(),
                        reason: reason.to_string(),
                    })?;
                }
            }
        }
    }

    /// Takes one record (or, at the top level of a file, event selectors).
    fn record(
        &mut self,
        file: u32,
        name: &str,
        index: u64,
        offset: Option<u64>,
        top_level: bool,
        bytes: &[u8],
    ) -> Result<()> {
        match record::parse(bytes) {
            Ok(event) => {
                self.notes.records += 1;
                let st = self.stats.entry(file).or_default();
                let id = xxhash_rust::xxh3::xxh3_128(event.event_id.as_bytes());
                let repeated = match self.ids.insert(id) {
                    Seen::New => false,
                    Seen::Repeated => true,
                    Seen::Full => {
                        self.coverage = Coverage::Partial;
                        if self.seen.capacity() == 0 {
                            // Room for a whole part up front: growing by doubling rehashes.
                            self.seen.reserve(PART_ROWS as usize);
                        }
                        !self.seen.insert(id)
                    }
                };
                if repeated {
                    st.duplicates += 1;
                    return Ok(());
                }
                st.stored += 1;
                self.cols.push(&event, name);
                if self.cols.rows >= BATCH_ROWS || self.cols.bytes >= BATCH_BYTES {
                    self.write_batch()?;
                }
                Ok(())
            }
            Err(e @ (RecordError::EventSelectors | RecordError::Trails)) if top_level => {
                let doc = String::from_utf8_lossy(bytes).into_owned();
                // A document of the trail coverage model that does not read is rejected with
                // why, never half-taken.
                let read = match e {
                    RecordError::EventSelectors => crate::trail::parse_selectors(&doc).map(|_| ()),
                    _ => crate::trail::parse_trails(&doc).map(|_| ()),
                };
                match read {
                    Ok(()) if matches!(e, RecordError::EventSelectors) => {
                        self.notes.selectors.push((file, doc))
                    }
                    Ok(()) => self.notes.trails.push((file, doc)),
                    Err(err) => {
                        self.notes.records += 1;
                        return self.reject(Reject {
                            file,
                            index: Some(index),
                            offset,
                            raw: bytes.to_vec(),
                            reason: format!("{e}: {err:#}"),
                        });
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.notes.records += 1;
                self.reject(Reject {
                    file,
                    index: Some(index),
                    offset,
                    raw: bytes.to_vec(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Writes the filled columns to the open part (opening one if needed); closes the part
    /// when it is full.
    fn write_batch(&mut self) -> Result<()> {
        if self.cols.rows == 0 {
            return Ok(());
        }
        let batch = self.cols.finish();
        let part = match &mut self.part {
            Some(p) => p,
            None => self.part.insert(PartWriter::create(
                self.namer.next(self.thread),
                self.cols.schema.clone(),
            )?),
        };
        part.write(&batch)?;
        // Closed before another batch could take it (and `seen`) past PART_ROWS.
        if part.rows() + BATCH_ROWS as u64 > PART_ROWS {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        let coverage = std::mem::replace(&mut self.coverage, Coverage::Complete);
        let part = self
            .part
            .take()
            .map(|p| {
                p.finish().map(|mut p| {
                    p.coverage = coverage;
                    p
                })
            })
            .transpose()?;
        self.seen.clear();
        self.send(part)
    }

    /// Sends what is pending; with a part, also the counts of its rows.
    fn send(&mut self, part: Option<Part>) -> Result<()> {
        let mut chunk = std::mem::take(&mut self.notes);
        if part.is_some() {
            chunk.stats = self.stats.drain().collect();
        }
        chunk.part = part;
        self.tx
            .send(chunk)
            .map_err(|_| anyhow::anyhow!("the store's thread stopped"))
    }

    /// Writes and closes what is left, and sends the rest.
    fn finish(&mut self) -> Result<()> {
        self.write_batch()?;
        self.close_part()
    }

    /// After a failure: the open part is not going to be registered.
    fn discard(&mut self) {
        if let Some(p) = self.part.take() {
            let _ = std::fs::remove_file(p.path());
        }
    }
}

/// `Worker::seen`'s keys are xxh3-128 hashes already: their low 64 bits are used as they are
/// (SipHash over 1 M keys per part was 5% of an ingest).
type IdHash = std::hash::BuildHasherDefault<credtrail_collector::store::PassHasher>;

/// The store's side of an ingest: registers parts, stores rejects and selectors, counts.
struct Writer<'n> {
    names: &'n [String],
    index: HashMap<&'n str, u32>,
    stats: HashMap<u32, FileStat>,
    /// Inputs not read.
    skipped: HashSet<u32>,
    summary: Summary,
    /// The parts registered so far.
    parts: RunParts,
}

impl<'n> Writer<'n> {
    fn new(names: &'n [String]) -> Writer<'n> {
        Writer {
            names,
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as u32))
                .collect(),
            stats: HashMap::new(),
            skipped: HashSet::new(),
            summary: Summary::default(),
            parts: RunParts::default(),
        }
    }

    fn take(&mut self, store: &Store, chunk: Chunk) -> Result<()> {
        for (f, st) in chunk.stats {
            let e = self.stats.entry(f).or_default();
            e.stored += st.stored;
            e.duplicates += st.duplicates;
            self.summary.stored += st.stored;
            self.summary.duplicates += st.duplicates;
        }
        if let Some(part) = chunk.part {
            let duplicates = store
                .parts()
                .register(store.conn(), part, &mut self.parts)
                .context("storing a part of cloudtrail_events")?;
            for (name, n) in duplicates {
                if let Some(f) = self.index.get(name.as_str()) {
                    let e = self.stats.entry(*f).or_default();
                    e.stored -= n;
                    e.duplicates += n;
                }
                self.summary.stored -= n;
                self.summary.duplicates += n;
            }
        }
        self.summary.records += chunk.records;
        for (f, reason) in chunk.skipped {
            self.skipped.insert(f);
            self.summary.skip(self.names[f as usize].clone(), reason);
        }
        if chunk.rejects.is_empty() && chunk.selectors.is_empty() && chunk.trails.is_empty() {
            return Ok(());
        }
        store.transaction(|conn| {
            if !chunk.rejects.is_empty() {
                insert_rejects(conn, self.names, &chunk.rejects)?;
            }
            for (f, doc) in &chunk.selectors {
                insert_selectors(conn, &self.names[*f as usize], doc, now_us())?;
            }
            for (f, doc) in &chunk.trails {
                crate::trail::insert_trails(conn, &self.names[*f as usize], doc, now_us())?;
            }
            Ok(())
        })?;
        for r in &chunk.rejects {
            self.stats.entry(r.file).or_default().rejects += 1;
        }
        self.summary.rejects += chunk.rejects.len() as u64;
        self.summary.event_selectors += chunk.selectors.len() as u64;
        self.summary.trail_lists += chunk.trails.len() as u64;
        Ok(())
    }
}

#[derive(Default, Clone, Copy)]
struct FileStat {
    stored: u64,
    duplicates: u64,
    rejects: u64,
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
    /// The batches' schema, built once.
    schema: Arc<Schema>,
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
            schema: Self::schema(),
            rows: 0,
            bytes: 0,
        }
    }

    fn schema() -> Arc<Schema> {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        // Arrow's canonical JSON extension type: Parquet's JSON logical type, DuckDB's JSON.
        let j = |n: &str, null| {
            Field::new(n, DataType::Utf8, null).with_metadata(
                [
                    ("ARROW:extension:name".to_string(), "arrow.json".to_string()),
                    ("ARROW:extension:metadata".to_string(), String::new()),
                ]
                .into(),
            )
        };
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
            j("request_parameters", true),
            j("response_elements", true),
            j("resources", true),
            j("record", false),
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
        cols.push(refill(&mut self.event_id));
        cols.push(Arc::new(self.event_time.finish()));
        for b in &mut self.strs1 {
            cols.push(refill(b));
        }
        cols.push(Arc::new(self.read_only.finish()));
        cols.push(refill(&mut self.event_type));
        cols.push(refill(&mut self.event_category));
        cols.push(Arc::new(self.management_event.finish()));
        for b in &mut self.strs2 {
            cols.push(refill(b));
        }
        cols.push(Arc::new(self.session_created.finish()));
        for b in &mut self.strs3 {
            cols.push(refill(b));
        }
        cols.push(refill(&mut self.source_file));
        cols.push(Arc::new(TimestampMicrosecondArray::from_value(
            now_us(),
            rows,
        )));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), cols).expect("columns match the schema")
    }
}

/// Finishes a string column and gives the builder room for a batch like this one, so the next
/// batch fills it without growing (reallocation and its copies cost ~5% of an ingest).
fn refill(b: &mut StringBuilder) -> ArrayRef {
    let (rows, bytes) = (b.offsets_slice().len() - 1, b.values_slice().len());
    let array = Arc::new(b.finish());
    *b = StringBuilder::with_capacity(rows.max(BATCH_ROWS), bytes + bytes / 4 + 64);
    array
}

/// DuckDB runs its own work on one thread while records are written, and goes back to its
/// previous setting afterwards (the setting is the database's, not the connection's). The
/// store thread's queries (stored-ID lookups, rewrites of parts with copies) would otherwise
/// compete with the parse threads for the cores, each DuckDB thread with buffers of its own.
/// Measured with the earlier single table writer on 3 M records (two cores): 867 MB peak RSS
/// and 39.5 CPU s with one thread, 975 MB and 43.5 CPU s with one per core; not measured again
/// with parts.
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

/// Stores rejects, each once across runs (the same bytes at the same place of the same file
/// for the same reason): the chunk's rows go to a scratch table with plain inserts, then into
/// `cloudtrail_rejects` with one anti-join (a lookup per row took minutes for a file of tens
/// of thousands of bad records).
fn insert_rejects(conn: &Connection, names: &[String], rejects: &[Reject]) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS ct_new_rejects AS
             SELECT * FROM cloudtrail_rejects LIMIT 0;
         DELETE FROM ct_new_rejects;",
    )?;
    let now = ts(now_us());
    {
        let mut stmt = conn.prepare("INSERT INTO ct_new_rejects VALUES (?, ?, ?, ?, ?, ?)")?;
        for r in rejects {
            stmt.execute(params![
                names[r.file as usize],
                r.index.map(|i| i as i64),
                r.offset.map(|o| o as i64),
                r.raw,
                r.reason,
                now
            ])?;
        }
    }
    conn.execute_batch(
        "INSERT INTO cloudtrail_rejects
         SELECT n.* FROM ct_new_rejects n
         WHERE NOT EXISTS (SELECT 1 FROM cloudtrail_rejects r
                           WHERE r.source_file = n.source_file
                             AND r.byte_offset IS NOT DISTINCT FROM n.byte_offset
                             AND r.reason = n.reason AND r.raw = n.raw);
         DELETE FROM ct_new_rejects;",
    )?;
    Ok(())
}
