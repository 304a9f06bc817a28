//! Follows every audit file in the directory: finds them (rescan is the source of truth),
//! recognises each by identity (device, inode, fingerprint), reads complete lines from the
//! committed offset onwards into a [`Batch`], and notices truncation, rewrites, deletion,
//! copies and rolls that vanished before they were read.
//!
//! Every file is held open while it is tracked, so a roll deleted or renamed over while it still
//! has unread bytes is drained from the open descriptor.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};
use xxhash_rust::xxh3::xxh3_64;

use crate::coverage::Reach;
use crate::parse::parse_line;
use crate::source::{
    FileName, Fingerprint, check_hash, fingerprint, fingerprint_matches, read_full_at,
};
use crate::store::{Batch, Event, Gap, Provenance, SourceState, SourceStatus, now_us};

const CHUNK: usize = 1 << 20;

/// IDs of ended sources remembered, so a file truncated and rewritten with the same first line
/// gets a new ID (the agent never truncates; this bounds the memory of those that do).
const RETIRED_KEPT: usize = 1024;

/// Scans in a row that must miss a file (still linked somewhere) before it counts as gone.
pub const ABSENT_SCANS_GONE: u32 = 3;

/// Limits the tailer needs from the configuration.
#[derive(Debug, Clone)]
pub struct TailLimits {
    pub max_line_bytes: usize,
    pub batch_rows: usize,
    /// A batch is full once it holds this many bytes ([`Batch::bytes`]).
    pub batch_bytes: usize,
    /// Text fields longer than this are stored cut to it, flagged `truncated`.
    pub max_field_bytes: usize,
    /// Raw bytes kept of one line at most (in `raw` of a request, or of a rejected line); a
    /// longer line keeps its first bytes, flagged `truncated`.
    pub max_raw_bytes: usize,
    pub incomplete_grace: Duration,
}

impl TailLimits {
    fn cuts(&self) -> Cuts {
        Cuts {
            field: self.max_field_bytes,
            raw: self.max_raw_bytes,
        }
    }
}

/// How much of a line's text and raw bytes is stored.
#[derive(Debug, Clone, Copy)]
struct Cuts {
    field: usize,
    raw: usize,
}

/// Why reading stopped before every file was at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Every tracked file was read up to its last complete line.
    CaughtUp,
    /// The batch is full: commit it and read again.
    BatchFull,
}

struct Tracked {
    /// As last committed (or as loaded at startup).
    committed: SourceState,
    /// What the uncommitted batch would make of it; `None` when the batch holds nothing of it.
    next: Option<SourceState>,
    file: File,
    path: PathBuf,
    name: Option<FileName>,
    present: bool,
    /// Consecutive scans that did not list the file. A rename between listing the directory and
    /// stat-ing a name hides a file from one scan, so absence alone counts only after several.
    absent_scans: u32,
    last_size: u64,
    last_change: Instant,
    /// Set once a reading pass found no complete line left to read.
    at_end: bool,
    /// First seen by this process (not resumed from an earlier run's state).
    new_in_run: bool,
    /// A gap lies just before this file's first line (rolls missing before it).
    gap_before: bool,
    /// The next reading pass checks the file's identity even when its size did not change (set
    /// at every rescan: an in-place rewrite to the same size changes no size).
    recheck: bool,
}

impl Tracked {
    fn view(&self) -> &SourceState {
        self.next.as_ref().unwrap_or(&self.committed)
    }

    fn view_mut(&mut self) -> &mut SourceState {
        self.next.get_or_insert_with(|| self.committed.clone())
    }
}

/// A file that is open but whose first line is not complete yet, so it has no identity.
struct Unidentified {
    file: File,
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Opened before the directory listing that names it (held while the store was unavailable,
    /// or again after a failed commit): the next scan counts it as newly found.
    fresh: bool,
}

/// What one batch handed to a commit held of the tailer's files ([`Tailer::handoff`]).
#[derive(Debug)]
pub struct Handoff {
    /// The uncommitted state of every touched file, as staged in the batch.
    states: Vec<SourceState>,
    reach: Reach,
    max_numbered: Option<u64>,
    /// Vanished files held when it was handed off (their gaps are in it).
    vanished: usize,
}

pub struct Tailer {
    dir: PathBuf,
    limits: TailLimits,
    tracked: Vec<Tracked>,
    unidentified: Vec<Unidentified>,
    /// States loaded at startup that no file has claimed yet, with the scans that missed them.
    orphans: Vec<(SourceState, u32)>,
    max_numbered_seen: Option<u64>,
    /// `max_numbered_seen` as of the last commit.
    max_numbered_committed: Option<u64>,
    unreadable: HashMap<PathBuf, Instant>,
    buf: Vec<u8>,
    /// Files that vanished before their first line was complete, held until the batch recording
    /// their gap commits (a failed commit finds them again).
    vanished: Vec<Unidentified>,
    /// Sources being read, each with whether this process saw it first (which a source resumed
    /// after a failed commit keeps); and the IDs of the latest sources that ended, never handed
    /// out again while remembered.
    seen_in_run: HashMap<String, bool>,
    retired: VecDeque<String>,
    /// Size-mode roll indices right after missing ones: a gap lies before their first line.
    gap_before_numbered: Vec<u64>,
    /// What was read since coverage was last recorded, and as of the last commit.
    reach: Reach,
    reach_committed: Reach,
    /// The directory was listed at least once.
    scanned: bool,
    /// The directory was missing at the last scan (warned once).
    dir_missing: bool,
}

impl Tailer {
    pub fn new(dir: PathBuf, limits: TailLimits, states: Vec<SourceState>) -> Tailer {
        let max_numbered_seen = states
            .iter()
            .filter_map(|s| match file_name_of(Path::new(&s.path)) {
                Some(FileName::Numbered(n)) => Some(n),
                _ => None,
            })
            .max();
        Tailer {
            dir,
            limits,
            tracked: Vec::new(),
            unidentified: Vec::new(),
            orphans: states
                .into_iter()
                .filter(|s| s.status == SourceStatus::Active)
                .map(|s| (s, 0))
                .collect(),
            max_numbered_seen,
            max_numbered_committed: max_numbered_seen,
            unreadable: HashMap::new(),
            buf: vec![0; CHUNK],
            vanished: Vec::new(),
            seen_in_run: HashMap::new(),
            retired: VecDeque::new(),
            gap_before_numbered: Vec::new(),
            reach: Reach::default(),
            reach_committed: Reach::default(),
            scanned: false,
            dir_missing: false,
        }
    }

    /// What was read (line times, gaps) since coverage was last recorded.
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// True once every file known to an earlier run is found again or its loss recorded: only
    /// then is it known whether a gap lies before what was read (an absent file counts as gone
    /// only after several scans).
    pub fn settled(&self) -> bool {
        self.scanned && self.orphans.iter().all(|(_, misses)| *misses == 0)
    }

    /// Coverage up to now was recorded (and committed): start over.
    pub fn clear_reach(&mut self) {
        self.reach = Reach::default();
        self.reach_committed = Reach::default();
    }

    /// Files currently held open (tracked plus not yet identified).
    pub fn open_files(&self) -> usize {
        self.tracked.len() + self.unidentified.len()
    }

    /// What the batch being handed to a commit holds of each file, taken when its states are
    /// staged: reading may go on into the next batch while it commits, and only this much
    /// becomes committed when it succeeds ([`Tailer::committed_to`]).
    pub fn handoff(&self) -> Handoff {
        Handoff {
            states: self.tracked.iter().filter_map(|t| t.next.clone()).collect(),
            reach: self.reach.clone(),
            max_numbered: self.max_numbered_seen,
            vanished: self.vanished.len(),
        }
    }

    /// The batch handed off as `handoff` committed while later lines were read into the next
    /// one: what it held of each file is now durable; what was read after it is not.
    pub fn committed_to(&mut self, handoff: Handoff) {
        self.reach_committed = handoff.reach;
        self.max_numbered_committed = handoff.max_numbered;
        let vanished = handoff.vanished.min(self.vanished.len());
        self.vanished.drain(..vanished);
        for state in handoff.states {
            if let Some(t) = self
                .tracked
                .iter_mut()
                .find(|t| t.committed.source_id == state.source_id)
            {
                if t.next.as_ref() == Some(&state) {
                    t.next = None;
                }
                t.committed = state;
            }
        }
        self.forget_ended();
    }

    /// The batch committed: what it held of each file is now durable.
    pub fn committed(&mut self) {
        self.reach_committed = self.reach.clone();
        self.max_numbered_committed = self.max_numbered_seen;
        self.vanished.clear();
        for t in &mut self.tracked {
            if let Some(next) = t.next.take() {
                t.committed = next;
            }
        }
        self.forget_ended();
    }

    /// Drops the files whose committed source ended, remembering their IDs.
    fn forget_ended(&mut self) {
        let mut ended = Vec::new();
        self.tracked.retain(|t| {
            let active = t.committed.status == SourceStatus::Active;
            if !active {
                ended.push(t.committed.source_id.clone());
            }
            active
        });
        for id in ended {
            self.retire(id);
        }
        let tracked = &self.tracked;
        self.seen_in_run
            .retain(|id, _| tracked.iter().any(|t| t.committed.source_id == *id));
    }

    /// Remembers the ID of a source that ended (a bounded number of them).
    fn retire(&mut self, id: String) {
        if self.retired.len() >= RETIRED_KEPT {
            self.retired.pop_front();
        }
        self.retired.push_back(id);
    }

    /// Holds a file opened before the store was available (so its bytes survive deletion).
    pub fn hold(&mut self, path: PathBuf, file: File) -> io::Result<()> {
        let meta = file.metadata()?;
        self.unidentified.push(Unidentified {
            file,
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            fresh: true,
        });
        Ok(())
    }

    /// After a failed commit, with the states the store holds: every decision taken since the
    /// last commit (offsets, new sources, truncations, files found gone, gaps, events) is
    /// forgotten, and taken again from the store's word as at a start, with every file that was
    /// open still held (so a file deleted meanwhile is still read). Nothing in memory can then
    /// disagree with the store.
    pub fn rebuild(&mut self, states: Vec<SourceState>) {
        let known: HashSet<(u64, u64)> = states
            .iter()
            .filter(|s| s.status == SourceStatus::Active)
            .map(|s| (s.dev, s.ino))
            .collect();
        let mut held: Vec<Unidentified> = Vec::new();
        for t in self.tracked.drain(..) {
            held.push(Unidentified {
                file: t.file,
                path: t.path,
                dev: t.committed.dev,
                ino: t.committed.ino,
                fresh: true,
            });
        }
        held.append(&mut self.unidentified);
        held.append(&mut self.vanished);
        // Files the store knows first, so each resumes before a copy of it is identified.
        held.sort_by_key(|u| !known.contains(&(u.dev, u.ino)));
        let mut seen = HashSet::new();
        held.retain(|u| seen.insert((u.dev, u.ino)));
        for u in &mut held {
            u.fresh = true;
        }
        let mut reach = std::mem::take(&mut self.reach);
        reach.rolled_back(&self.reach_committed);
        let mut fresh = Tailer::new(self.dir.clone(), self.limits.clone(), states);
        fresh.max_numbered_seen = fresh.max_numbered_seen.max(self.max_numbered_committed);
        fresh.max_numbered_committed = fresh.max_numbered_seen;
        fresh.unidentified = held;
        fresh.reach = reach;
        fresh.reach_committed = std::mem::take(&mut self.reach_committed);
        fresh.seen_in_run = std::mem::take(&mut self.seen_in_run);
        fresh.retired = std::mem::take(&mut self.retired);
        *self = fresh;
    }

    /// True when some file's state changed since the last commit (a rename, a size seen).
    pub fn has_pending(&self) -> bool {
        self.tracked.iter().any(|t| t.next.is_some())
    }

    /// Puts the uncommitted state of every touched file into the batch.
    pub fn stage_states(&self, batch: &mut Batch) {
        for t in &self.tracked {
            if let Some(next) = &t.next {
                batch.set_state(next.clone());
            }
        }
    }

    /// Lists the directory and reconciles it with what is tracked.
    pub fn scan(&mut self, batch: &mut Batch) -> io::Result<()> {
        let mut entries = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.dir_missing {
                    warn!(dir = %self.dir.display(), "audit directory does not exist (yet)");
                }
                self.dir_missing = true;
                for t in &mut self.tracked {
                    t.present = false;
                }
                return Ok(());
            }
            Err(e) => {
                self.unreadable_dir(&e);
                return Ok(());
            }
        };
        self.dir_missing = false;
        for entry in rd {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.unreadable_dir(&e);
                    return Ok(());
                }
            };
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                continue;
            };
            if let Some(class) = FileName::classify(name_str) {
                entries.push((class, entry.path()));
            }
        }
        entries.sort_by(|a, b| a.0.roll_order(&b.0).then_with(|| a.1.cmp(&b.1)));

        for t in &mut self.tracked {
            t.present = false;
        }
        let mut present_ids: BTreeSet<(u64, u64)> = BTreeSet::new();
        let mut new_numbered: Vec<u64> = Vec::new();
        for (class, path) in entries {
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.unreadable_file(batch, &path, &e);
                    continue;
                }
            };
            if !meta.is_file() {
                continue;
            }
            let key = (meta.dev(), meta.ino());
            present_ids.insert(key);
            if let Some(t) = self.tracked.iter_mut().find(|t| {
                t.committed.dev == key.0
                    && t.committed.ino == key.1
                    && t.view().status == SourceStatus::Active
            }) {
                t.present = true;
                t.absent_scans = 0;
                t.recheck = true;
                if t.path != path {
                    t.path.clone_from(&path);
                    t.name = Some(class.clone());
                    let p = path.display().to_string();
                    t.view_mut().path = p;
                }
                continue;
            }
            if let Some(u) = self
                .unidentified
                .iter_mut()
                .find(|u| u.dev == key.0 && u.ino == key.1)
            {
                u.path.clone_from(&path);
                if std::mem::take(&mut u.fresh)
                    && let FileName::Numbered(n) = class
                {
                    new_numbered.push(n);
                }
                continue;
            }
            match File::open(&path) {
                Ok(file) => {
                    let fmeta = match file.metadata() {
                        Ok(m) => m,
                        Err(e) => {
                            self.unreadable_file(batch, &path, &e);
                            continue;
                        }
                    };
                    if (fmeta.dev(), fmeta.ino()) != key {
                        continue; // replaced between stat and open: the next scan sees it
                    }
                    self.unreadable.remove(&path);
                    if let FileName::Numbered(n) = class {
                        new_numbered.push(n);
                    }
                    self.unidentified.push(Unidentified {
                        file,
                        path,
                        dev: key.0,
                        ino: key.1,
                        fresh: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => self.unreadable_file(batch, &path, &e),
            }
        }
        self.note_missing_rolls(batch, &mut new_numbered);
        self.identify(batch)?;
        self.drop_vanished_unidentified(batch, &present_ids)?;

        for t in &mut self.tracked {
            if !t.present {
                t.absent_scans += 1;
            }
        }
        self.resolve_orphans(batch, &present_ids);
        self.tracked.sort_by_key(order_key);
        self.scanned = true;
        Ok(())
    }

    /// Size-mode rolls are numbered without reuse: indices that were never seen between the
    /// highest one seen and a new one were deleted before they could be read.
    fn note_missing_rolls(&mut self, batch: &mut Batch, new_numbered: &mut [u64]) {
        new_numbered.sort_unstable();
        for t in &self.tracked {
            if let Some(FileName::Numbered(n)) = t.name {
                self.max_numbered_seen = Some(self.max_numbered_seen.map_or(n, |m| m.max(n)));
            }
        }
        for &n in new_numbered.iter() {
            if let Some(max) = self.max_numbered_seen
                && n > max + 1
            {
                let detail = format!(
                    "size-mode rolls audit.log.{}..audit.log.{} were deleted before the collector read them \
                     (more rolls than ECS_LOG_MAX_ROLL_COUNT while it was stopped or behind)",
                    max + 1,
                    n - 1
                );
                warn!(gap = %detail, "lines lost before collection");
                self.gap_before_numbered.push(n);
                batch.gaps.push(Gap {
                    kind: "missing_rolls",
                    source_id: None,
                    path: Some(self.dir.display().to_string()),
                    from_offset: None,
                    to_offset: None,
                    from_time_us: None,
                    to_time_us: None,
                    detail,
                });
            }
            self.max_numbered_seen = Some(self.max_numbered_seen.map_or(n, |m| m.max(n)));
        }
    }

    /// The directory could not be listed (permissions, an I/O error): nothing is concluded from
    /// this scan (no file counts as absent), and the next one tries again.
    fn unreadable_dir(&mut self, e: &io::Error) {
        let due = self
            .unreadable
            .get(&self.dir)
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(300));
        if due {
            self.unreadable.insert(self.dir.clone(), Instant::now());
            warn!(dir = %self.dir.display(), error = %e, "cannot list the audit directory; will retry");
        }
    }

    fn unreadable_file(&mut self, batch: &mut Batch, path: &Path, e: &io::Error) {
        let due = self
            .unreadable
            .get(path)
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(300));
        if due {
            self.unreadable.insert(path.to_path_buf(), Instant::now());
            warn!(path = %path.display(), error = %e, "cannot read audit file; will retry");
            batch.events.push(Event {
                kind: "unreadable",
                source_id: None,
                path: Some(path.display().to_string()),
                detail: format!("cannot open: {e}; retrying"),
            });
        }
    }

    /// A file deleted before its first line was complete has no identity: record what it held.
    fn drop_vanished_unidentified(
        &mut self,
        batch: &mut Batch,
        present: &BTreeSet<(u64, u64)>,
    ) -> io::Result<()> {
        let mut kept = Vec::with_capacity(self.unidentified.len());
        for u in std::mem::take(&mut self.unidentified) {
            if present.contains(&(u.dev, u.ino)) {
                kept.push(u);
                continue;
            }
            let size = match u.file.metadata() {
                Ok(m) => m.len(),
                Err(_) => {
                    kept.push(u); // looked at again by the next scan
                    continue;
                }
            };
            if size > 0 {
                let detail = format!(
                    "{} vanished before its first line was complete; its {size} bytes hold no complete line",
                    u.path.display()
                );
                warn!("{detail}");
                self.reach.lost();
                batch.gaps.push(Gap {
                    kind: "unterminated_file",
                    source_id: None,
                    path: Some(u.path.display().to_string()),
                    from_offset: Some(0),
                    to_offset: Some(size),
                    from_time_us: None,
                    to_time_us: None,
                    detail,
                });
            }
            self.vanished.push(u);
        }
        self.unidentified = kept;
        Ok(())
    }

    /// Gives an identity to open files whose first line is now complete.
    fn identify(&mut self, batch: &mut Batch) -> io::Result<()> {
        let mut i = 0;
        while i < self.unidentified.len() {
            let fp = match fingerprint(&self.unidentified[i].file) {
                Ok(Some(fp)) => fp,
                Ok(None) => {
                    i += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let u = self.unidentified.swap_remove(i);
            self.adopt(batch, u.file, u.path, u.dev, u.ino, fp)?;
        }
        Ok(())
    }

    fn adopt(
        &mut self,
        batch: &mut Batch,
        file: File,
        path: PathBuf,
        dev: u64,
        ino: u64,
        fp: Fingerprint,
    ) -> io::Result<()> {
        let size = file.metadata()?.len();
        // Resume a source committed earlier, if this is still the same content. Every other
        // state of the same (device, inode) has ended: the store keeps one active source per file.
        let mut resumed: Option<SourceState> = None;
        while let Some(pos) = self
            .orphans
            .iter()
            .position(|(s, _)| s.dev == dev && s.ino == ino)
        {
            let (state, _) = self.orphans.swap_remove(pos);
            let same_start = state.fp_len == fp.len && state.fp_hash == fp.hash;
            let still_same = resumed.is_none()
                && same_start
                && size >= state.committed_offset
                && match state.check_hash {
                    Some(h) => check_hash(&file, state.committed_offset)? == Some(h),
                    None => true,
                };
            if still_same {
                resumed = Some(state);
                continue;
            }
            if self.seen_in_run.contains_key(&state.source_id) {
                // Read by this process before a failed commit: what it found then is found again.
                self.record_truncation(batch, &state, &path, size);
            } else if let Some(gap) = lost_while_stopped(&state, "was replaced or rewritten") {
                self.reach.lost();
                batch.gaps.push(gap);
            }
            let mut done = state;
            done.status = SourceStatus::Done;
            done.size_seen = size;
            self.retire(done.source_id.clone());
            batch.set_state(done);
        }
        if let Some(state) = resumed {
            info!(path = %path.display(), offset = state.committed_offset, "resuming");
            let new_in_run = *self
                .seen_in_run
                .entry(state.source_id.clone())
                .or_insert(false);
            if let Some(t) = state.last_event_us {
                // Every line after it is read now: coverage continues from it.
                self.reach.line(t, new_in_run);
            }
            let name = file_name_of(&path);
            self.tracked.push(Tracked {
                committed: state,
                next: None,
                last_change: changed_at(&file),
                file,
                path,
                name,
                present: true,
                absent_scans: 0,
                last_size: size,
                at_end: false,
                new_in_run,
                gap_before: false,
                recheck: false,
            });
            return Ok(());
        }
        if let Some(other) = self.tracked.iter().find(|t| {
            t.committed.fp_hash == fp.hash
                && t.committed.fp_len == fp.len
                && (t.committed.dev, t.committed.ino) != (dev, ino)
        }) {
            let detail = format!(
                "starts with the same first line as {} (another inode): a copy; ingested as its own source",
                other.path.display()
            );
            warn!(path = %path.display(), "{detail}");
            batch.events.push(Event {
                kind: "duplicate_fingerprint",
                source_id: Some(other.committed.source_id.clone()),
                path: Some(path.display().to_string()),
                detail,
            });
        }
        self.track_new(file, path, dev, ino, fp, size);
        Ok(())
    }

    fn track_new(
        &mut self,
        file: File,
        path: PathBuf,
        dev: u64,
        ino: u64,
        fp: Fingerprint,
        size: u64,
    ) {
        let first_seen_us = now_us();
        let source_id = self.source_id_for(&file, dev, ino, fp);
        self.seen_in_run.insert(source_id.clone(), true);
        let state = SourceState {
            source_id,
            dev,
            ino,
            fp_len: fp.len,
            fp_hash: fp.hash,
            check_hash: None,
            path: path.display().to_string(),
            committed_offset: 0,
            size_seen: size,
            lines: 0,
            rejected: 0,
            lossy: 0,
            incomplete: 0,
            status: SourceStatus::Active,
            first_seen_us,
            last_event_us: None,
        };
        info!(path = %path.display(), source_id = %state.source_id, "new audit file");
        let name = file_name_of(&path);
        let last_change = changed_at(&file);
        let gap_before = match name {
            Some(FileName::Numbered(n)) => {
                let found = self.gap_before_numbered.contains(&n);
                self.gap_before_numbered.retain(|m| *m != n);
                found
            }
            _ => false,
        };
        self.tracked.push(Tracked {
            committed: state.clone(),
            next: Some(state),
            file,
            path,
            name,
            present: true,
            absent_scans: 0,
            last_size: size,
            last_change,
            at_end: false,
            new_in_run: true,
            gap_before,
            recheck: false,
        });
    }

    /// A source's ID: a hash of what identifies the file (device, inode, the inode's birth time
    /// where the file system keeps one, the fingerprint), never of when or by which store it was
    /// first read, so a store rebuilt from nothing names a line as the earlier store did and
    /// readers that dedupe on (host, source_id, byte_offset) keep it once. A file whose new
    /// content starts as its old one did (truncated and rewritten alike) gets the next
    /// generation while this process knows the old ID.
    fn source_id_for(&self, file: &File, dev: u64, ino: u64, fp: Fingerprint) -> String {
        let born = file
            .metadata()
            .and_then(|m| m.created())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let in_use = |id: &str| {
            self.retired.iter().any(|r| r == id)
                || self.tracked.iter().any(|t| t.committed.source_id == id)
                || self.orphans.iter().any(|(s, _)| s.source_id == id)
        };
        let mut generation = 0u32;
        loop {
            let id = format!(
                "{:016x}",
                xxh3_64(
                    format!("{dev}:{ino}:{born}:{}:{}:{generation}", fp.len, fp.hash).as_bytes()
                )
            );
            if !in_use(&id) {
                return id;
            }
            generation += 1;
        }
    }

    /// Records that a file read by this process was truncated or rewritten in place.
    fn record_truncation(&mut self, batch: &mut Batch, old: &SourceState, path: &Path, size: u64) {
        let detail = format!(
            "{} was truncated or rewritten in place (size {size}, read up to byte {}); \
             its new content is read as a new source",
            path.display(),
            old.committed_offset
        );
        warn!("{detail}");
        // Bytes written between the last read and the truncation are gone, unseen.
        self.reach.lost();
        batch.events.push(Event {
            kind: "truncated",
            source_id: Some(old.source_id.clone()),
            path: Some(path.display().to_string()),
            detail,
        });
    }

    /// States from an earlier run that no present file claimed: their unread bytes are gone.
    fn resolve_orphans(&mut self, batch: &mut Batch, present: &BTreeSet<(u64, u64)>) {
        let orphans = std::mem::take(&mut self.orphans);
        for (mut s, misses) in orphans {
            if present.contains(&(s.dev, s.ino)) {
                // Still there (unreadable for now, or not identified yet): it resumes or is
                // resolved once it can be opened.
                self.orphans.push((s, 0));
                continue;
            }
            if misses + 1 < ABSENT_SCANS_GONE {
                // Perhaps renamed between listing and stat: look again before calling it lost.
                self.orphans.push((s, misses + 1));
                continue;
            }
            if let Some(gap) = lost_while_stopped(&s, "was rolled away and deleted") {
                self.reach.lost();
                batch.gaps.push(gap);
            }
            s.status = SourceStatus::Done;
            batch.set_state(s);
        }
    }

    /// Reads complete lines from every tracked file into the batch.
    pub fn read(&mut self, batch: &mut Batch, flush_incomplete: bool) -> io::Result<ReadOutcome> {
        // Pre-1.36 agents write the live file under a dated name: only the newest is not rolled.
        let newest_dated = self
            .tracked
            .iter()
            .filter(|t| t.present && matches!(t.name, Some(FileName::Dated { .. })))
            .filter_map(|t| t.name.clone())
            .max_by(|a, b| a.roll_order(b));
        let has_live = self
            .tracked
            .iter()
            .any(|t| t.present && t.name == Some(FileName::Live));
        let mut i = 0;
        while i < self.tracked.len() {
            if self.tracked[i].view().status != SourceStatus::Active {
                i += 1;
                continue;
            }
            match self.read_file(batch, i, flush_incomplete, has_live, newest_dated.as_ref()) {
                Ok(ReadOutcome::BatchFull) => return Ok(ReadOutcome::BatchFull),
                Ok(ReadOutcome::CaughtUp) => {}
                Err(e) => {
                    // One file's I/O error stops neither the others nor the next attempt.
                    let path = self.tracked[i].path.clone();
                    let due = self
                        .unreadable
                        .get(&path)
                        .is_none_or(|at| at.elapsed() >= Duration::from_secs(300));
                    if due {
                        self.unreadable.insert(path.clone(), Instant::now());
                        warn!(path = %path.display(), error = %e, "cannot read audit file; will retry");
                    }
                }
            }
            i += 1;
        }
        Ok(ReadOutcome::CaughtUp)
    }

    /// Reads what is new in one tracked file (the `i`th).
    fn read_file(
        &mut self,
        batch: &mut Batch,
        i: usize,
        flush_incomplete: bool,
        has_live: bool,
        newest_dated: Option<&FileName>,
    ) -> io::Result<ReadOutcome> {
        {
            let meta = self.tracked[i].file.metadata()?;
            let size = meta.len();
            {
                let t = &mut self.tracked[i];
                if size != t.last_size {
                    t.last_size = size;
                    t.last_change = Instant::now();
                    t.at_end = false;
                }
            }
            if !self.verify_identity(batch, i, size)? {
                return Ok(ReadOutcome::CaughtUp);
            }
            let gone = meta.nlink() == 0 || self.tracked[i].absent_scans >= ABSENT_SCANS_GONE;
            let rolled = {
                let t = &self.tracked[i];
                gone || match &t.name {
                    Some(FileName::Numbered(_)) => true,
                    Some(d @ FileName::Dated { .. }) => {
                        has_live || newest_dated.is_some_and(|n| n != d)
                    }
                    Some(FileName::Live) | None => false,
                }
            };
            if self.read_one(batch, i, size)? == ReadOutcome::BatchFull {
                return Ok(ReadOutcome::BatchFull);
            }
            let t = &mut self.tracked[i];
            let offset = t.view().committed_offset;
            let quiet = t.last_change.elapsed() >= self.limits.incomplete_grace;
            if rolled && offset < size && (quiet || flush_incomplete) {
                self.flush_tail(batch, i, size)?;
            }
            let t = &mut self.tracked[i];
            let offset = t.view().committed_offset;
            if gone && offset >= size {
                info!(path = %t.path.display(), "audit file gone and fully read");
                let v = t.view_mut();
                v.status = SourceStatus::Done;
                v.size_seen = size;
            }
        }
        Ok(ReadOutcome::CaughtUp)
    }

    /// A file shorter than what was read, or whose prefix or last committed bytes changed, was
    /// truncated or rewritten in place: the old source ends, the content is a new source.
    fn verify_identity(&mut self, batch: &mut Batch, i: usize, size: u64) -> io::Result<bool> {
        let t = &mut self.tracked[i];
        if t.at_end && size == t.view().size_seen && !std::mem::take(&mut t.recheck) {
            return Ok(true);
        }
        let t = &self.tracked[i];
        let v = t.view();
        let fp = Fingerprint {
            len: v.fp_len,
            hash: v.fp_hash,
        };
        let shrunk = size < v.committed_offset;
        let same = !shrunk
            && fingerprint_matches(&t.file, fp)?
            && match v.check_hash {
                Some(h) if v.committed_offset > 0 => {
                    check_hash(&t.file, v.committed_offset)? == Some(h)
                }
                _ => true,
            };
        if same {
            return Ok(true);
        }
        let (old, path) = (self.tracked[i].view().clone(), self.tracked[i].path.clone());
        self.record_truncation(batch, &old, &path, size);
        let t = &mut self.tracked[i];
        let v = t.view_mut();
        v.status = SourceStatus::Done;
        v.size_seen = size;
        let dup = t.file.try_clone()?;
        let (path, dev, ino) = (t.path.clone(), t.committed.dev, t.committed.ino);
        self.unidentified.push(Unidentified {
            file: dup,
            path,
            dev,
            ino,
            fresh: false,
        });
        // The old entry leaves `tracked` when the batch commits; until then it must not match
        // the inode again, which `view().status == Done` ensures.
        self.identify(batch)?;
        Ok(false)
    }

    fn read_one(&mut self, batch: &mut Batch, i: usize, size: u64) -> io::Result<ReadOutcome> {
        let Tailer {
            tracked,
            buf,
            limits,
            reach,
            ..
        } = self;
        let t = &mut tracked[i];
        if t.view().status != SourceStatus::Active {
            return Ok(ReadOutcome::CaughtUp);
        }
        let mut offset = t.view().committed_offset;
        if t.gap_before && offset == 0 {
            reach.gap_before_next();
        }
        let new_source = t.new_in_run;
        let source_file = t.path.display().to_string();
        let source_id = t.committed.source_id.clone();
        let mut read_any = false;
        while offset < size {
            if batch.rows() >= limits.batch_rows || batch.bytes() >= limits.batch_bytes {
                finish_pass(t, offset, size, read_any, false)?;
                return Ok(ReadOutcome::BatchFull);
            }
            let n = read_full_at(&t.file, buf, offset)?;
            if n == 0 {
                break;
            }
            let data = &buf[..n];
            let mut pos = 0;
            while let Some(nl) = memchr(b'\n', &data[pos..]) {
                let line = &data[pos..pos + nl];
                emit(
                    batch,
                    t.view_mut(),
                    (&mut *reach, new_source),
                    line,
                    Provenance {
                        source_file: &source_file,
                        source_id: &source_id,
                        byte_offset: offset + pos as u64,
                        line_len: nl as u64,
                        incomplete: false,
                    },
                    None,
                    limits.cuts(),
                );
                read_any = true;
                pos += nl + 1;
                if batch.rows() >= limits.batch_rows || batch.bytes() >= limits.batch_bytes {
                    break;
                }
            }
            if pos == 0 {
                // No newline in a whole chunk: a line longer than the chunk.
                match long_line(&t.file, offset, limits.max_line_bytes)? {
                    LongLine::Complete {
                        kept,
                        line_len,
                        truncated,
                    } => {
                        emit(
                            batch,
                            t.view_mut(),
                            (&mut *reach, new_source),
                            &kept,
                            Provenance {
                                source_file: &source_file,
                                source_id: &source_id,
                                byte_offset: offset,
                                line_len,
                                incomplete: false,
                            },
                            truncated.then_some(limits.max_line_bytes),
                            limits.cuts(),
                        );
                        read_any = true;
                        offset += line_len + 1;
                        t.view_mut().committed_offset = offset;
                        continue;
                    }
                    LongLine::Partial => break,
                }
            }
            offset += pos as u64;
            t.view_mut().committed_offset = offset;
            if batch.rows() >= limits.batch_rows || batch.bytes() >= limits.batch_bytes {
                finish_pass(t, offset, size, read_any, false)?;
                return Ok(ReadOutcome::BatchFull);
            }
            if pos < n && n < buf.len() {
                break; // a partial line at the end of the file
            }
        }
        finish_pass(t, offset, size, read_any, true)?;
        Ok(ReadOutcome::CaughtUp)
    }

    /// Stores the bytes after the last newline of a rolled file as one line flagged incomplete.
    fn flush_tail(&mut self, batch: &mut Batch, i: usize, size: u64) -> io::Result<()> {
        let max = self.limits.max_line_bytes;
        let reach = &mut self.reach;
        let t = &mut self.tracked[i];
        let offset = t.view().committed_offset;
        let len = size - offset;
        let keep = (len as usize).min(max);
        let mut raw = vec![0u8; keep];
        let n = read_full_at(&t.file, &mut raw, offset)?;
        raw.truncate(n);
        let source_file = t.path.display().to_string();
        let source_id = t.committed.source_id.clone();
        warn!(path = %source_file, offset, "storing the unterminated last line of a rolled file, flagged incomplete");
        let new_source = t.new_in_run;
        emit(
            batch,
            t.view_mut(),
            (reach, new_source),
            &raw,
            Provenance {
                source_file: &source_file,
                source_id: &source_id,
                byte_offset: offset,
                line_len: len,
                incomplete: true,
            },
            (len as usize > max).then_some(max),
            self.limits.cuts(),
        );
        let check = check_hash(&t.file, size)?;
        let v = t.view_mut();
        v.committed_offset = size;
        v.incomplete += 1;
        v.check_hash = check;
        v.size_seen = size;
        Ok(())
    }
}

/// The gap left by a file known to an earlier run that is gone (or holds other content) now;
/// `None` when it was a roll already read to its end.
fn lost_while_stopped(s: &SourceState, what_happened: &str) -> Option<Gap> {
    let was_live = matches!(file_name_of(Path::new(&s.path)), Some(FileName::Live));
    if !was_live && s.committed_offset >= s.size_seen {
        return None;
    }
    let detail = if was_live {
        format!(
            "{} (the live file when last seen) {what_happened} while the collector was stopped; \
             lines written after byte {} were never read",
            s.path, s.committed_offset
        )
    } else {
        format!(
            "{} {what_happened} while the collector was stopped; bytes {}..{} (at least) were never read",
            s.path, s.committed_offset, s.size_seen
        )
    };
    warn!(gap = %detail, "lines lost before collection");
    Some(Gap {
        kind: "source_lost",
        source_id: Some(s.source_id.clone()),
        path: Some(s.path.clone()),
        from_offset: Some(s.committed_offset),
        to_offset: (!was_live).then_some(s.size_seen),
        from_time_us: s.last_event_us,
        to_time_us: None,
        detail,
    })
}

fn finish_pass(
    t: &mut Tracked,
    offset: u64,
    size: u64,
    read_any: bool,
    at_end: bool,
) -> io::Result<()> {
    if read_any {
        let h = check_hash(&t.file, offset)?;
        let v = t.view_mut();
        v.check_hash = h;
        v.size_seen = size;
    } else if t.view().size_seen != size {
        t.view_mut().size_seen = size;
    }
    t.at_end = at_end;
    Ok(())
}

enum LongLine {
    Complete {
        kept: Vec<u8>,
        line_len: u64,
        truncated: bool,
    },
    Partial,
}

/// Reads a line that starts at `offset` and is longer than one chunk, keeping at most `max`
/// bytes of it.
fn long_line(file: &File, offset: u64, max: usize) -> io::Result<LongLine> {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut at = offset;
    loop {
        let n = read_full_at(file, &mut chunk, at)?;
        if n == 0 {
            return Ok(LongLine::Partial);
        }
        let data = &chunk[..n];
        let end = memchr(b'\n', data);
        let part = &data[..end.unwrap_or(n)];
        if kept.len() < max {
            let room = max - kept.len();
            kept.extend_from_slice(&part[..part.len().min(room)]);
        }
        at += part.len() as u64;
        if end.is_some() {
            let line_len = at - offset;
            return Ok(LongLine::Complete {
                truncated: line_len as usize > max,
                kept,
                line_len,
            });
        }
    }
}

/// Parses one line into the batch and updates the file's uncommitted state.
fn emit(
    batch: &mut Batch,
    state: &mut SourceState,
    (reach, new_source): (&mut Reach, bool),
    line: &[u8],
    at: Provenance<'_>,
    truncated_to: Option<usize>,
    cuts: Cuts,
) {
    let raw = &line[..line.len().min(cuts.raw)];
    let raw_cut = raw.len() < line.len();
    if let Some(max) = truncated_to {
        let kept = raw.len();
        batch.push_rejected(
            raw,
            format!(
                "line of {} bytes is longer than the {max}-byte limit; its first {kept} bytes are kept",
                at.line_len
            ),
            at,
            true,
        );
        state.rejected += 1;
        return;
    }
    match parse_line(line) {
        Ok(mut parsed) => {
            parsed.truncate_fields(cuts.field);
            // Only lines that keep their raw bytes need them cut.
            if raw_cut && crate::store::keeps_raw(&parsed) {
                parsed.truncated = true;
            }
            let us = parsed.event_time * 1_000_000;
            state.last_event_us = Some(state.last_event_us.map_or(us, |l| l.max(us)));
            reach.line(us, new_source);
            if parsed.lossy {
                state.lossy += 1;
            }
            batch.push_request(&parsed, raw, at);
            state.lines += 1;
        }
        Err(e) => {
            let reason = if at.incomplete {
                format!("incomplete line (no newline at the end of a rolled file): {e}")
            } else {
                e.to_string()
            };
            batch.push_rejected(raw, reason, at, raw_cut);
            state.rejected += 1;
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

fn file_name_of(path: &Path) -> Option<FileName> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(FileName::classify)
}

fn order_key(t: &Tracked) -> ((u8, u64), i64) {
    (
        t.name.as_ref().map_or((2, 0), FileName::rank),
        t.committed.first_seen_us,
    )
}

/// When a file last changed, as an `Instant`, so files found at startup get their grace period
/// counted from their modification time.
fn changed_at(file: &File) -> Instant {
    let age = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}
