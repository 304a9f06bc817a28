//! One collector run: owns the instance lock, the store, the tailer and the open batch.
//!
//! The store is the truth. Every batch is committed with the file offsets it advances; after
//! any failed commit the store is reopened and the tailer is re-synchronised from what it says,
//! so a commit that failed after all (or half-way) can neither lose nor duplicate a line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tracing::{error, info, warn};

use crate::agent::{AgentMetadata, InventoryRow};
use crate::config::Config;
use crate::coverage::{Coverage, Pending};
use crate::segment::{Publisher, SegmentLimits};
use crate::ship::{ShipSettings, Shipper};
use crate::store::{Batch, OpenError, Published, Store};
use crate::sys;
use crate::tail::{Handoff, ReadOutcome, TailLimits, Tailer};

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Audit files tracked at the end.
    pub files: u64,
    /// Lines stored in `credential_requests`.
    pub lines: u64,
    /// Lines stored in `rejected_lines`.
    pub rejected: u64,
    /// Gaps recorded (bytes gone before they could be read).
    pub gaps: u64,
    /// Parquet files published.
    pub segment_files: u64,
    /// Inventory rows stored.
    pub inventory_rows: u64,
    /// Segments shipped to S3 (with `--s3-url`).
    pub segments_shipped: u64,
    /// Publications held back because the unshipped backlog was at `--max-backlog-mb`.
    pub publications_held: u64,
}

/// Another collector owns the store; the caller exits with a distinct message.
#[derive(Debug, thiserror::Error)]
#[error(
    "another credtrail-collector ({holder}) is already running on store {}; stop it first or give this one another --store",
    .store.display()
)]
pub struct AlreadyRunning {
    pub store: PathBuf,
    pub holder: String,
}

pub struct Collector {
    config: Config,
    host: String,
    store: Option<Store>,
    /// Writes segments from committed rows (with `--segments-dir`).
    publisher: Option<Publisher>,
    /// Ships the segments to S3 (with `--s3-url`).
    shipper: Option<Shipper>,
    /// Publication is held: the unshipped backlog is at `--max-backlog-mb`.
    backlog_full: bool,
    _lock: File,
    tailer: Tailer,
    batch: Batch,
    batch_since: Option<Instant>,
    paused_since: Option<Instant>,
    last_pause_warning: Option<Instant>,
    last_rescan: Option<Instant>,
    last_publish: Instant,
    last_checkpoint: Instant,
    /// The last commit failed (its lines are read again from the files next time).
    commit_failed: bool,
    /// A large batch was committed since free memory was last handed back.
    holding_memory: bool,
    /// This run's coverage intervals, as committed.
    coverage: Coverage,
    /// Coverage rows in the open batch, applied when it commits.
    coverage_pending: Option<Pending>,
    /// When the last directory scan started (µs since the epoch).
    scanned_at_us: Option<i64>,
    summary: RunSummary,
    /// Set when the process is asked to stop: reading stops at the next commit.
    stop: crate::Stop,
    /// The thread that commits a full batch while the next one is read (started at the first
    /// full batch; `None` until then or when it cannot be started).
    committer: Option<Committer>,
    /// The full batch being committed by `committer`, if any. Only while `poll` reads a backlog:
    /// every other use of the store waits for it first.
    in_flight: Option<InFlight>,
}

/// A batch being committed on the committer's thread, and what it holds.
struct InFlight {
    handoff: Handoff,
    rows: usize,
    counts: (usize, usize, usize),
    gaps: usize,
}

/// The store's connection moves to this thread with a full batch and comes back with the
/// outcome, so that reading and parsing the next batch overlaps the commit (DuckDB's commit and
/// checkpoint are half of a backlog's time). One batch at most is in flight.
struct Committer {
    to: std::sync::mpsc::SyncSender<(Store, Batch)>,
    from: std::sync::mpsc::Receiver<(Store, Batch, Result<Published>)>,
}

impl Committer {
    fn start() -> std::io::Result<Committer> {
        let (to, jobs) = std::sync::mpsc::sync_channel::<(Store, Batch)>(1);
        let (done, from) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || {
                for (mut store, mut batch) in jobs {
                    let outcome = store.commit(&mut batch);
                    if done.send((store, batch, outcome)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Committer { to, from })
    }
}

impl Collector {
    /// Takes the instance lock and opens the store, waiting while another process holds the
    /// store's database lock (up to `wait`, or forever with `None`), holding every audit file
    /// open in the meantime so rolls deleted while waiting are still read.
    pub fn open(config: &Config, wait: Option<Duration>) -> Result<Collector> {
        let mut config = config.clone();
        if config.s3_url.is_some() && config.segments_dir.is_none() {
            config.segments_dir = Some(store_dir(&config.store).join("segments"));
        }
        let config = &config;
        if let Some(parent) = config.store.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let lock = take_instance_lock(&config.store)?;
        let started = Instant::now();
        let mut held: Vec<(PathBuf, File)> = Vec::new();
        let mut delay = Duration::from_millis(100);
        let store = loop {
            match Store::open_with_memory(&config.store, config.store_memory_mb) {
                Ok(store) => break store,
                Err(e @ (OpenError::Locked { .. } | OpenError::NoSpace { .. })) => {
                    if wait.is_some_and(|w| started.elapsed() >= w) {
                        return Err(e).context("the store stayed unavailable");
                    }
                    if matches!(e, OpenError::Locked { .. }) {
                        warn!(store = %config.store.display(), error = %e, "store is locked by another process; retrying");
                    } else {
                        error!(store = %config.store.display(), error = %e, "store file system is full: waiting for free space, nothing is lost");
                    }
                    hold_audit_files(&config.audit_dir, &mut held);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let host = config.host_name();
        let run_started_us = crate::store::now_us();
        let run_id = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(
                format!(
                    "{host}:{}:{run_started_us}:{}",
                    config.store.display(),
                    std::process::id()
                )
                .as_bytes()
            )
        );
        let coverage = Coverage::new(
            run_id,
            if config.once { "once" } else { "follow" },
            run_started_us,
            config.heartbeat(),
        );
        let states = store.load_states()?;
        let next_seq = store.next_seq()?;
        let dicts = store.dictionaries()?;
        let mut tailer = Tailer::new(config.audit_dir.clone(), limits(config), states);
        for (path, file) in held {
            tailer.hold(path, file)?;
        }
        let shipper = match (&config.s3_url, &config.segments_dir) {
            (Some(url), Some(dir)) => {
                if config.cluster.is_none() && config.agent_url.is_none() {
                    bail!(
                        "--s3-url needs the cluster for its keys: give --cluster, or --agent-url (the agent's metadata names it)"
                    );
                }
                Some(Shipper::start(
                    dir,
                    ShipSettings::from_config(config, url.clone()),
                    config.cluster.clone(),
                )?)
            }
            _ => None,
        };
        let publisher = match &config.segments_dir {
            Some(dir) => Some(Publisher::new(
                dir,
                &host,
                &store.store_id()?,
                segment_limits(config),
            )?),
            None => None,
        };
        Ok(Collector {
            publisher,
            shipper,
            backlog_full: false,
            config: config.clone(),
            batch: Batch::new(host.clone(), next_seq, dicts),
            host,
            store: Some(store),
            _lock: lock,
            tailer,
            batch_since: None,
            paused_since: None,
            last_pause_warning: None,
            last_rescan: None,
            last_publish: Instant::now(),
            last_checkpoint: Instant::now(),
            commit_failed: false,
            holding_memory: false,
            coverage,
            coverage_pending: None,
            scanned_at_us: None,
            summary: RunSummary::default(),
            stop: crate::Stop::default(),
            committer: None,
            in_flight: None,
        })
    }

    /// Reading stops between two batches once `stop` is requested.
    pub fn set_stop(&mut self, stop: crate::Stop) {
        self.stop = stop;
    }

    /// Commits what was read (at a requested stop); an error when it could not be.
    pub fn commit_read(&mut self) -> Result<()> {
        if !self.commit() || self.store.is_none() || !self.batch.is_empty() {
            bail!(
                "could not commit to {} (see the errors above); nothing was lost: the files are read again on the next start",
                self.config.store.display()
            );
        }
        Ok(())
    }

    /// This run's id in `collector_coverage`.
    pub fn run_id(&self) -> &str {
        self.coverage.run_id()
    }

    /// The agent's `/v1/metadata` answer: coverage rows name its container instance and cluster.
    pub fn set_agent_metadata(&mut self, meta: &AgentMetadata) {
        self.coverage
            .set_agent(meta.container_instance_arn.clone(), meta.cluster.clone());
        if let (Some(shipper), Some(cluster), None) =
            (&self.shipper, &meta.cluster, &self.config.cluster)
        {
            shipper.set_cluster(cluster);
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn summary(&self) -> &RunSummary {
        &self.summary
    }

    /// True while ingest is paused for lack of free space.
    pub fn paused(&self) -> bool {
        self.paused_since.is_some()
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Rescans when asked or when the rescan interval has passed, reads what is new, and
    /// commits when the batch is full or old enough (or `force_commit`).
    pub fn poll(&mut self, rescan: bool, force_commit: bool) -> Result<()> {
        self.poll_with(rescan, force_commit, false)
    }

    fn poll_with(
        &mut self,
        rescan: bool,
        force_commit: bool,
        flush_incomplete: bool,
    ) -> Result<()> {
        if self.store.is_none() && !self.reopen() {
            return Ok(());
        }
        let due = self
            .last_rescan
            .is_none_or(|t| t.elapsed() >= self.config.rescan_interval());
        // A heartbeat records coverage up to the start of a scan after which everything was read:
        // it rescans, at most once a heartbeat (or a second) while coverage cannot be recorded yet.
        let heartbeat = self.coverage_pending.is_none() && self.coverage.due();
        let scan_for_heartbeat = heartbeat
            && self
                .last_rescan
                .is_none_or(|t| t.elapsed() >= self.config.heartbeat().min(Duration::from_secs(1)));
        if rescan || due || scan_for_heartbeat {
            let started = crate::store::now_us();
            self.last_rescan = Some(Instant::now());
            match self.tailer.scan(&mut self.batch) {
                Ok(()) => self.scanned_at_us = Some(started),
                // An I/O error is never the end: logged, and the next scan tries again.
                Err(e) => {
                    warn!(dir = %self.config.audit_dir.display(), error = %e, "scanning the audit directory failed; retrying at the next scan");
                }
            }
        }
        loop {
            if self.space_is_low() {
                self.settle();
                return Ok(());
            }
            let outcome = match self.tailer.read(&mut self.batch, flush_incomplete) {
                Ok(outcome) => outcome,
                Err(e) => {
                    warn!(dir = %self.config.audit_dir.display(), error = %e, "reading an audit file failed; retrying at the next poll");
                    ReadOutcome::CaughtUp
                }
            };
            if self.batch_since.is_none() && (!self.batch.is_empty() || self.tailer.has_pending()) {
                self.batch_since = Some(Instant::now());
            }
            if outcome == ReadOutcome::BatchFull {
                // A batch with coverage rows commits here and now: applying them starts the
                // reach over, which must not drop lines read meanwhile.
                let committing = if self.coverage_pending.is_none() {
                    self.commit_behind()
                } else {
                    self.commit()
                };
                if !committing || self.stop.requested() {
                    self.settle();
                    return Ok(());
                }
                continue;
            }
            break;
        }
        if !self.settle() {
            return Ok(());
        }
        // Every file is read to its end: the host is covered up to the last scan's start.
        let mut cover = false;
        if (heartbeat || force_commit)
            && self.coverage_pending.is_none()
            && self.tailer.settled()
            && let Some(read_end) = self.scanned_at_us
        {
            let pending = self.coverage.advance(self.tailer.reach(), read_end);
            self.batch.push_coverage(pending.rows.clone());
            self.coverage_pending = Some(pending);
            cover = true;
        }
        let old_enough = self
            .batch_since
            .is_some_and(|t| t.elapsed() >= self.config.commit_interval());
        if force_commit || old_enough || cover {
            self.commit();
        }
        if self.holding_memory && self.batch.is_empty() {
            // Caught up after a backlog: give the batch buffers back.
            self.holding_memory = false;
            sys::release_free_memory();
        }
        Ok(())
    }

    /// Reads everything present and commits it (used by `--once` and at shutdown).
    pub fn drain(&mut self, flush_incomplete: bool) -> Result<()> {
        // Several scans: a file missing from one listing may only have been mid-rename.
        for _ in 0..crate::tail::ABSENT_SCANS_GONE {
            self.poll_with(true, true, flush_incomplete)?;
            if self.commit_failed {
                break;
            }
        }
        if self.commit_failed || self.store.is_none() || self.paused() || !self.batch.is_empty() {
            bail!(
                "could not commit to {} (see the errors above); nothing was lost: the files are read again on the next start",
                self.config.store.display()
            );
        }
        Ok(())
    }

    /// Adds an inventory snapshot to the open batch.
    pub fn add_inventory(&mut self, observed_at_us: i64, rows: Vec<InventoryRow>) {
        if self.batch_since.is_none() {
            self.batch_since = Some(Instant::now());
        }
        self.batch.push_inventory(observed_at_us, rows);
    }

    /// Hands the full open batch to the committer's thread and starts the next one, after the
    /// batch in flight before it committed; false when that one failed (then everything is
    /// rebuilt from the store, as after any failed commit) or this one cannot be committed now.
    /// Without the thread, commits here.
    fn commit_behind(&mut self) -> bool {
        if !self.settle() {
            return false;
        }
        if self.committer.is_none() {
            match Committer::start() {
                Ok(c) => self.committer = Some(c),
                Err(e) => {
                    warn!(error = %e, "cannot start the commit thread; committing on this one");
                    return self.commit();
                }
            }
        }
        if self.batch.is_empty() || self.space_is_low() || self.store.is_none() {
            return self.commit();
        }
        self.tailer.stage_states(&mut self.batch);
        let handoff = self.tailer.handoff();
        let in_flight = InFlight {
            handoff,
            rows: self.batch.rows(),
            counts: self.batch.counts(),
            gaps: self.batch.gaps.len(),
        };
        let next = self.batch.successor();
        let batch = std::mem::replace(&mut self.batch, next);
        let store = self.store.take().expect("checked above");
        let committer = self.committer.as_ref().expect("started above");
        if let Err(std::sync::mpsc::SendError((store, batch))) = committer.to.send((store, batch)) {
            // The thread is gone: commit here, the read-ahead batch is empty still.
            self.committer = None;
            self.store = Some(store);
            self.batch = batch;
            return self.commit();
        }
        self.in_flight = Some(in_flight);
        self.batch_since = None;
        true
    }

    /// Waits for the batch in flight, if any: on success its rows are published and its file
    /// offsets become committed; on failure the store is reopened and every decision, the
    /// batch read meanwhile included, is rebuilt from it. False when it failed.
    fn settle(&mut self) -> bool {
        let Some(in_flight) = self.in_flight.take() else {
            return true;
        };
        let received = self
            .committer
            .as_ref()
            .expect("a batch in flight has a committer")
            .from
            .recv();
        let Ok((store, mut batch, outcome)) = received else {
            // The thread panicked with the store: nothing of the batch is known committed.
            self.committer = None;
            error!("the commit thread ended; reopening the store and reading these lines again");
            return self.fail_commit(&mut Batch::new(self.host.clone(), 0, Default::default()));
        };
        match outcome {
            Ok(published) => {
                self.store = Some(store);
                if let Some(p) = self.publisher.as_mut() {
                    p.spool(published);
                }
                self.commit_failed = false;
                self.holding_memory |= in_flight.rows >= 10_000;
                self.tailer.committed_to(in_flight.handoff);
                let (requests, rejected, inventory) = in_flight.counts;
                self.summary.lines += requests as u64;
                self.summary.rejected += rejected as u64;
                self.summary.inventory_rows += inventory as u64;
                self.summary.gaps += in_flight.gaps as u64;
                true
            }
            Err(e) => {
                // The connection goes before the store is opened again.
                drop(store);
                error!(error = %format!("{e:#}"), rows = in_flight.rows, "commit failed; reopening the store and reading these lines again");
                self.fail_commit(&mut batch)
            }
        }
    }

    /// After a failed commit of `failed` (handed off, no longer the open batch): its inventory
    /// snapshots move to the open batch, and the store is reopened. Always false.
    fn fail_commit(&mut self, failed: &mut Batch) -> bool {
        self.commit_failed = true;
        self.coverage_pending = None;
        if let Some(p) = self.publisher.as_mut() {
            p.discard_spool();
        }
        for (at, row) in failed.take_inventory() {
            self.batch.push_inventory(at, vec![row]);
        }
        self.store = None;
        self.reopen();
        false
    }

    /// Commits the open batch; false when it could not be (the batch is then kept or rebuilt
    /// from the files, never lost).
    pub fn commit(&mut self) -> bool {
        if !self.settle() {
            return false;
        }
        if self.batch.is_empty() {
            self.tailer.stage_states(&mut self.batch);
            if self.batch.is_empty() {
                // Nothing to commit, and the store is open: no failure is pending any more.
                self.commit_failed &= self.store.is_none();
                return true;
            }
        }
        if self.space_is_low() {
            return false;
        }
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        self.tailer.stage_states(&mut self.batch);
        let rows = self.batch.rows();
        let (requests, rejected, inventory) = self.batch.counts();
        match store.commit(&mut self.batch) {
            Ok(published) => {
                if let Some(p) = self.publisher.as_mut() {
                    p.spool(published);
                }
                self.commit_failed = false;
                self.holding_memory |= rows >= 10_000;
                self.tailer.committed();
                if let Some(pending) = self.coverage_pending.take() {
                    self.coverage.applied(pending);
                    self.tailer.clear_reach();
                }
                self.summary.lines += requests as u64;
                self.summary.rejected += rejected as u64;
                self.summary.inventory_rows += inventory as u64;
                self.summary.gaps += self.batch.gaps.len() as u64;
                let dicts = self.batch.take_dictionaries();
                self.batch = Batch::new(self.host.clone(), self.batch.next_seq(), dicts);
                self.batch_since = None;
                true
            }
            Err(e) => {
                self.commit_failed = true;
                self.coverage_pending = None;
                if let Some(p) = self.publisher.as_mut() {
                    p.discard_spool();
                }
                error!(error = %format!("{e:#}"), rows, "commit failed; reopening the store and reading these lines again");
                // Until the store is open again nothing is read, staged or committed; then the
                // batch and every decision in memory are rebuilt from what the store holds.
                self.store = None;
                self.reopen();
                false
            }
        }
    }

    /// Reopens the store after a failure and takes its word for everything: every file offset
    /// and identity (the tailer is rebuilt from its states, so decisions of the failed batch are
    /// taken again, gaps and events recorded again), every dictionary id and the next seq.
    /// Inventory snapshots, which exist only in memory, move to the new batch.
    fn reopen(&mut self) -> bool {
        match Store::open_with_memory(&self.config.store, self.config.store_memory_mb) {
            Ok(store) => match store.load_states().and_then(|s| {
                Ok((
                    s,
                    store.dictionaries()?,
                    store.next_seq()?,
                    store.store_id()?,
                ))
            }) {
                Ok((states, dicts, next_seq, store_id)) => {
                    self.tailer.rebuild(states);
                    if let Some(p) = self.publisher.as_mut() {
                        p.set_store(&self.host, &store_id);
                    }
                    let inventory = self.batch.take_inventory();
                    self.batch = Batch::new(self.host.clone(), next_seq, dicts);
                    for (at, row) in inventory {
                        self.batch.push_inventory(at, vec![row]);
                    }
                    self.batch_since = (!self.batch.is_empty()).then(Instant::now);
                    self.coverage_pending = None;
                    // The next poll lists the directory again: the rebuilt tailer finds its
                    // files there and among those it holds.
                    self.last_rescan = None;
                    self.store = Some(store);
                    info!(store = %self.config.store.display(), "store reopened");
                    true
                }
                Err(e) => {
                    error!(error = %format!("{e:#}"), "cannot read the store's state");
                    false
                }
            },
            Err(e) => {
                error!(error = %e, "cannot reopen the store; retrying");
                false
            }
        }
    }

    /// The free-space guard: pauses ingest before the store's file system fills.
    fn space_is_low(&mut self) -> bool {
        let min = self.config.min_free_mb.saturating_mul(1024 * 1024);
        if min == 0 {
            return false;
        }
        let dir = store_dir(&self.config.store);
        let low = match sys::available_bytes(&dir) {
            Ok(free) => free < min,
            Err(_) => false,
        };
        if low {
            if self.paused_since.is_none() {
                self.paused_since = Some(Instant::now());
            }
            if self
                .last_pause_warning
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                self.last_pause_warning = Some(Instant::now());
                error!(
                    dir = %dir.display(),
                    min_free_mb = self.config.min_free_mb,
                    "store file system is (nearly) full: ingest paused, nothing is lost; it resumes when space is freed"
                );
            }
        } else if let Some(since) = self.paused_since.take() {
            info!(
                paused_secs = since.elapsed().as_secs(),
                "free space is back: ingest resumed"
            );
        }
        low
    }

    /// Publishes segments now if a segments directory is configured.
    pub fn publish(&mut self) -> Result<u64> {
        let Some(publisher) = self.publisher.as_mut() else {
            return Ok(0);
        };
        self.last_publish = Instant::now();
        let Some(store) = self.store.as_ref() else {
            bail!("store is not open");
        };
        let Some(shipper) = &self.shipper else {
            let files = publisher.publish(store)?;
            self.summary.segment_files += files;
            return Ok(files);
        };
        // With S3, a new range is published only while the backlog is under its bound; in
        // `--once` mode the backlog is given time to ship first.
        let limit = self.config.max_backlog_mb.max(1).saturating_mul(1 << 20);
        let patience = self.config.once.then(|| Instant::now() + ONCE_SHIP_WAIT);
        let mut held = None;
        let published = publisher.publish_within(store, &mut || {
            let ok = match patience {
                Some(until) => shipper.wait_below(limit, until),
                None => shipper.backlog_bytes() < limit,
            };
            if !ok {
                held = Some(shipper.backlog_bytes());
            }
            ok
        });
        shipper.published();
        let files = published?;
        self.summary.segment_files += files;
        match held {
            Some(bytes) => {
                self.summary.publications_held += 1;
                if !self.backlog_full {
                    self.backlog_full = true;
                    warn!(
                        backlog_bytes = bytes,
                        max_backlog_mb = self.config.max_backlog_mb,
                        "S3 backlog full: no new segments are published; lines are still stored and are published once the backlog ships"
                    );
                }
                if let Some(p) = self.publisher.as_mut() {
                    p.discard_spool();
                }
            }
            None if self.backlog_full => {
                self.backlog_full = false;
                info!("S3 backlog below its bound: publishing resumed from the store");
            }
            None => {}
        }
        Ok(files)
    }

    pub fn publish_due(&self) -> bool {
        self.config.segments_dir.is_some()
            && self.last_publish.elapsed() >= self.config.segment_interval()
    }

    /// Every ten minutes: removes published rows past retention, then runs a CHECKPOINT
    /// (keeps the WAL short).
    pub fn maintain_if_due(&mut self) {
        if self.last_checkpoint.elapsed() < Duration::from_secs(600) {
            return;
        }
        self.prune();
        self.checkpoint();
    }

    /// Removes rows older than `--retain-days` that segments already hold.
    pub fn prune(&mut self) {
        if self.config.retain_days == 0 || self.config.segments_dir.is_none() {
            return;
        }
        let keep_us = i64::try_from(self.config.retain_days)
            .unwrap_or(i64::MAX / 86_400_000_000)
            .saturating_mul(86_400_000_000);
        let before = crate::store::now_us().saturating_sub(keep_us);
        if let Some(store) = &self.store {
            // Dictionary entries can go only while the open batch uses no cached id.
            let dictionaries = self.batch.counts().0 == 0;
            match store.prune_published(before, dictionaries) {
                Ok(0) => {}
                Ok(n) => info!(rows = n, "removed published rows past retention"),
                Err(e) => warn!(error = %format!("{e:#}"), "pruning failed"),
            }
            if dictionaries {
                self.batch.clear_dictionary_cache();
            }
        }
    }

    pub fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if let Some(store) = &self.store {
            info!("checkpoint: moving the WAL into the store file");
            if let Err(e) = store.checkpoint() {
                warn!(error = %format!("{e:#}"), "checkpoint failed");
            }
        }
    }

    pub fn finish(mut self) -> RunSummary {
        self.summary.files = self.tailer.open_files() as u64;
        self.checkpoint();
        if let Some(shipper) = self.shipper.take() {
            // A service manager kills 30 s after SIGTERM; `--once` may wait longer.
            self.summary.segments_shipped = shipper.finish(if self.config.once {
                ONCE_SHIP_WAIT
            } else {
                Duration::from_secs(10)
            });
        }
        self.summary
    }
}

/// How long `--once` gives a full S3 backlog to ship before it publishes, and its segments to
/// ship before it exits (what is left ships at the next start).
const ONCE_SHIP_WAIT: Duration = Duration::from_secs(120);

fn limits(config: &Config) -> TailLimits {
    TailLimits {
        max_line_bytes: config.max_line_bytes.max(1024),
        batch_rows: config.batch_rows.max(1),
        batch_bytes: config.batch_bytes.max(64 * 1024),
        max_field_bytes: config.max_field_bytes.max(64),
        max_raw_bytes: config.max_raw_bytes.max(1024),
        incomplete_grace: config.incomplete_grace(),
    }
}

fn segment_limits(config: &Config) -> SegmentLimits {
    SegmentLimits {
        buffer_bytes: config.segment_buffer_mb.max(1) << 20,
        read_bytes: config.batch_bytes.max(64 * 1024),
        read_rows: config.batch_rows.max(1),
    }
}

fn store_dir(store: &Path) -> PathBuf {
    match store.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// How long a held instance lock is waited for before the collector says another one runs.
/// A lock can be held for a moment after its owner let go: by a predecessor still exiting
/// (a service restart), or by a child process being spawned, whose copy of the descriptor
/// lives until its `exec`.
const INSTANCE_LOCK_GRACE: Duration = Duration::from_secs(2);

/// `<store>.lock`, locked exclusively for the life of the process, holding the owner's pid.
fn take_instance_lock(store: &Path) -> Result<File> {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let started = Instant::now();
    let mut attempt = file.try_lock();
    while matches!(attempt, Err(std::fs::TryLockError::WouldBlock))
        && started.elapsed() < INSTANCE_LOCK_GRACE
    {
        std::thread::sleep(Duration::from_millis(20));
        attempt = file.try_lock();
    }
    match attempt {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(AlreadyRunning {
                store: store.to_path_buf(),
                holder,
            }
            .into());
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(file)
}

/// Opens every audit file not yet held (by device and inode), so its bytes outlive deletion.
fn hold_audit_files(dir: &Path, held: &mut Vec<(PathBuf, File)>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let is_audit = entry
            .file_name()
            .to_str()
            .and_then(crate::source::FileName::classify)
            .is_some();
        if !is_audit {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        let known = held.iter().any(|(_, f)| {
            f.metadata()
                .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
        });
        if !known {
            held.push((path, file));
        }
    }
}
