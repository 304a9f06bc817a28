//! Shipping the published segments to S3, exactly once (`--s3-url`).
//!
//! The [`Publisher`](crate::segment::Publisher) writes segments into the local segments
//! directory; the [`Shipper`], a thread of its own with a single-threaded tokio runtime and the
//! S3 client (both exist only when `--s3-url` is set, so follow mode without S3 pays nothing),
//! uploads each one as
//! `<prefix><table>/cluster=<cluster>/date=YYYY-MM-DD/hour=HH/<host>-<store id>-<from>-<to>.parquet`.
//!
//! Exactly once:
//! - A segment's key is fixed before its first upload: an `intent` line of the ledger
//!   (`<segments dir>/.s3-ledger`, appended and synced) names it, so an upload retried after a
//!   crash, or after the agent named another cluster, goes to the same key, and S3 replaces the
//!   object with the same bytes.
//! - A segment counts as shipped when a `shipped` line follows, appended (and synced) only after
//!   S3 confirmed the PutObject (or CompleteMultipartUpload), each body sent with its
//!   Content-MD5, which S3 checks before it stores anything.
//! - Segments of at least `--s3-part-mb` go up in parts of that size (memory: one part); a
//!   failed multipart upload is aborted.
//! - A local segment is deleted only once shipped, and only when its hour is older than
//!   `--retain-days` (0 keeps every file).
//!
//! Failed uploads are retried with exponential backoff up to `--s3-retry-max-secs`, on top of
//! the SDK's own retries. While S3 is unreachable the unshipped segments are the backlog
//! ([`Shipper::backlog_bytes`]); at `--max-backlog-mb` the collector publishes nothing new (its
//! rows stay in its store, and are published from it once the backlog shipped).

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use md5::{Digest, Md5};
use tracing::{debug, info, warn};

use crate::segment::TABLES;

/// The ledger's file name in the segments directory (not a segment: `files_of` lists only
/// `.parquet` files under the table directories).
pub const LEDGER: &str = ".s3-ledger";

/// S3 takes parts of at least 5 MiB (but the last).
const MIN_PART_BYTES: u64 = 5 << 20;

/// While uploads keep failing, the warning is repeated this often.
const FAILURE_WARNING_EVERY: Duration = Duration::from_secs(300);

/// Longest one segment's upload may take before it counts as failed (and is retried).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// `s3://bucket/prefix/`: where segments go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix[/]]`; the prefix gets a trailing `/`.
    pub fn parse(s: &str) -> Result<S3Url, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not an s3://bucket/prefix/ URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = !bucket.is_empty()
            && bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !bucket_ok {
            return Err(format!("{s:?}: {bucket:?} is not a bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            && !prefix.is_empty()
        {
            return Err(format!("{s:?}: the prefix has an empty, . or .. component"));
        }
        if prefix.chars().any(|c| c.is_control()) {
            return Err(format!("{s:?}: the prefix has control characters"));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    /// The object key of a segment at `rel` (its path under the segments directory,
    /// `<table>/date=…/hour=…/<name>`) for `cluster`.
    pub fn key(&self, rel: &str, cluster: &str) -> Option<String> {
        let (table, rest) = rel.split_once('/')?;
        Some(format!(
            "{}{table}/cluster={}/{rest}",
            self.prefix,
            sanitize_cluster(cluster)
        ))
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A cluster's name as a key component: the name of an ARN (`…:cluster/NAME`), limited to
/// ECS's alphabet (letters, digits, `-`, `_`); the agent's answer is not trusted further.
pub fn sanitize_cluster(cluster: &str) -> String {
    let name = cluster.rsplit_once(":cluster/").map_or(cluster, |(_, n)| n);
    let s: String = name
        .chars()
        .take(255)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "unknown".into() } else { s }
}

/// How the shipper reaches S3 and paces itself.
#[derive(Debug, Clone)]
pub struct ShipSettings {
    pub url: S3Url,
    /// The bucket's region (default: the credential chain's, else us-east-1).
    pub region: Option<String>,
    /// Path-style requests (`http://host/bucket/key`), for S3-compatible servers.
    pub force_path_style: bool,
    /// Segments of at least this many bytes are uploaded in parts of this size.
    pub part_bytes: u64,
    /// Longest wait between two attempts after failures.
    pub retry_max: Duration,
    /// Shipped local segments whose hour is older than this are deleted (None: kept).
    pub retain: Option<Duration>,
    /// Seconds between two scans of the directory when nothing wakes the shipper.
    pub rescan: Duration,
}

impl ShipSettings {
    pub fn from_config(config: &crate::Config, url: S3Url) -> ShipSettings {
        ShipSettings {
            url,
            region: config.s3_region.clone(),
            force_path_style: config.s3_force_path_style,
            part_bytes: (config.s3_part_mb << 20).max(MIN_PART_BYTES),
            retry_max: Duration::from_secs(config.s3_retry_max_secs.max(1)),
            retain: (config.retain_days > 0)
                .then(|| Duration::from_secs(config.retain_days.saturating_mul(86_400))),
            rescan: config.segment_interval().min(Duration::from_secs(60)),
        }
    }
}

/// Why one upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The local file is gone (replaced by a re-publication, or deleted): nothing to send.
    #[error("{} vanished before it was uploaded", .0.display())]
    Vanished(PathBuf),
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// S3 (or the way to it) failed; retried later.
    #[error("S3 {operation} of s3://{bucket}/{key}: {message}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("uploading s3://{bucket}/{key} took longer than {secs} s")]
    TimedOut {
        bucket: String,
        key: String,
        secs: u64,
    },
}

/// An S3 client and the runtime its futures run on.
pub struct Uploader {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    part_bytes: u64,
}

impl Uploader {
    /// The standard credential chain (environment, profile, web identity, the ECS container
    /// provider, instance metadata); `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` override the
    /// endpoint. The SDK adds no checksum of its own: every body carries its Content-MD5.
    pub fn new(settings: &ShipSettings) -> Result<Uploader> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime of the S3 shipper")?;
        let region = aws_config::meta::region::RegionProviderChain::first_try(
            settings.region.clone().map(aws_config::Region::new),
        )
        .or_default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build();
        let base = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(region)
                .timeout_config(timeouts)
                .load(),
        );
        let conf = aws_sdk_s3::config::Builder::from(&base)
            .force_path_style(settings.force_path_style)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build();
        Ok(Uploader {
            runtime,
            client: aws_sdk_s3::Client::from_conf(conf),
            part_bytes: settings.part_bytes.max(1),
        })
    }

    /// Uploads the file at `path` as `bucket`/`key`, in parts when it is large; returns its
    /// size. Returns only once S3 confirmed the object.
    pub fn upload(&self, path: &Path, bucket: &str, key: &str) -> Result<u64, UploadError> {
        self.runtime.block_on(async {
            match tokio::time::timeout(UPLOAD_TIMEOUT, self.upload_async(path, bucket, key)).await {
                Ok(r) => r,
                Err(_) => Err(UploadError::TimedOut {
                    bucket: bucket.into(),
                    key: key.into(),
                    secs: UPLOAD_TIMEOUT.as_secs(),
                }),
            }
        })
    }

    async fn upload_async(&self, path: &Path, bucket: &str, key: &str) -> Result<u64, UploadError> {
        let read_err = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                UploadError::Vanished(path.to_path_buf())
            } else {
                UploadError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        let mut file = File::open(path).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();
        if len < self.part_bytes {
            let mut body = Vec::with_capacity(len as usize);
            file.read_to_end(&mut body).map_err(read_err)?;
            let md5 = content_md5(&body);
            let client = &self.client;
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_md5(md5)
                .content_type("application/vnd.apache.parquet")
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", bucket, key, e))?;
            return Ok(len);
        }
        let client = &self.client;
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/vnd.apache.parquet")
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", bucket, key, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(UploadError::S3 {
                operation: "CreateMultipartUpload",
                bucket: bucket.into(),
                key: key.into(),
                message: "no upload ID in the answer".into(),
            });
        };
        let parts = self
            .upload_parts(&mut file, path, bucket, key, &upload_id, len)
            .await;
        let done = match parts {
            Ok(parts) => client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| len)
                .map_err(|e| s3_error("CompleteMultipartUpload", bucket, key, e)),
            Err(e) => Err(e),
        };
        if done.is_err() {
            // Parts of an upload never completed are billed until aborted (a lifecycle rule
            // catches those of a process killed here).
            let aborted = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                debug!(error = %DisplayErrorContext(&e), key, "aborting the multipart upload failed");
            }
        }
        done
    }

    async fn upload_parts(
        &self,
        file: &mut File,
        path: &Path,
        bucket: &str,
        key: &str,
        upload_id: &str,
        len: u64,
    ) -> Result<Vec<CompletedPart>, UploadError> {
        let mut parts = Vec::new();
        let mut sent = 0u64;
        let mut number = 1i32;
        while sent < len {
            let size = self.part_bytes.min(len - sent) as usize;
            let mut chunk = vec![0u8; size];
            file.read_exact(&mut chunk)
                .map_err(|source| UploadError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            let md5 = content_md5(&chunk);
            let client = &self.client;
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_md5(md5)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| s3_error("UploadPart", bucket, key, e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .part_number(number)
                    .build(),
            );
            sent += size as u64;
            number += 1;
        }
        Ok(parts)
    }
}

fn s3_error<E: std::error::Error>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    e: E,
) -> UploadError {
    UploadError::S3 {
        operation,
        bucket: bucket.into(),
        key: key.into(),
        message: DisplayErrorContext(&e).to_string(),
    }
}

/// The Content-MD5 header of a body: base64 of its MD5.
fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

/// What the shipper has done, for the run's summary and the status line.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Segments S3 confirmed (this run).
    pub shipped: AtomicU64,
    pub shipped_bytes: AtomicU64,
    /// Failed attempts (each retried).
    pub failures: AtomicU64,
    /// Shipped local segments deleted past retention.
    pub deleted: AtomicU64,
    /// Time spent in uploads that succeeded, in µs (throughput = bytes / this).
    pub upload_us: AtomicU64,
}

enum Msg {
    /// Segments were published.
    Wake,
    /// The agent named the cluster.
    Cluster(String),
    /// Ship what is left, then stop (or stop at the deadline).
    Drain(Instant),
}

/// The shipping thread's handle; see the module documentation.
pub struct Shipper {
    dir: PathBuf,
    shipped: Arc<Mutex<HashSet<String>>>,
    stats: Arc<ShipStats>,
    tx: Sender<Msg>,
    done: Receiver<()>,
    /// Deleting past retention waits for the first publication of this run: a range whose
    /// publication a crash interrupted is published again then, under the same names.
    publications: Arc<AtomicU64>,
}

impl Shipper {
    /// Reads the ledger and starts the thread. `cluster` (the flag) names the cluster; without
    /// it the shipper waits for [`Shipper::set_cluster`] (the agent's metadata).
    pub fn start(dir: &Path, settings: ShipSettings, cluster: Option<String>) -> Result<Shipper> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ledger = Ledger::open(&dir.join(LEDGER), &settings.url)?;
        let shipped = Arc::new(Mutex::new(ledger.shipped()));
        let uploader = Uploader::new(&settings)?;
        let stats = Arc::new(ShipStats::default());
        let publications = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let mut worker = Worker {
            dir: dir.to_path_buf(),
            settings,
            uploader,
            ledger,
            shipped: shipped.clone(),
            stats: stats.clone(),
            cluster,
            publications: publications.clone(),
            drain: None,
            failing: false,
            last_warning: None,
        };
        std::thread::Builder::new()
            .name("s3-shipper".into())
            .spawn(move || {
                worker.run(rx);
                let _ = done_tx.send(());
            })
            .context("starting the S3 shipper thread")?;
        Ok(Shipper {
            dir: dir.to_path_buf(),
            shipped,
            stats,
            tx,
            done,
            publications,
        })
    }

    /// Bytes of local segments not yet shipped.
    pub fn backlog_bytes(&self) -> u64 {
        let shipped = self.shipped.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes = 0;
        for (table, _) in TABLES {
            for f in crate::segment::files_of(&self.dir, table) {
                let Some(rel) = relative(&self.dir, &f) else {
                    continue;
                };
                if !shipped.contains(&rel) {
                    bytes += std::fs::metadata(&f).map_or(0, |m| m.len());
                }
            }
        }
        bytes
    }

    /// Waits until the backlog is under `limit` bytes; false when it still is not at `until`.
    pub fn wait_below(&self, limit: u64, until: Instant) -> bool {
        loop {
            if self.backlog_bytes() < limit {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            let _ = self.tx.send(Msg::Wake);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Segments were published: ship them.
    pub fn published(&self) {
        self.publications.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send(Msg::Wake);
    }

    /// The agent named the cluster (used for segments whose key is not fixed yet).
    pub fn set_cluster(&self, cluster: &str) {
        let _ = self.tx.send(Msg::Cluster(cluster.to_string()));
    }

    pub fn stats(&self) -> &ShipStats {
        &self.stats
    }

    /// Ships what is left for at most `within`, then stops the thread; returns the segments
    /// shipped by this run. What is not shipped stays in the directory and the ledger, for the
    /// next run.
    pub fn finish(self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        if self.tx.send(Msg::Drain(deadline)).is_ok() {
            // The thread stops at the deadline, an upload in flight at the latest a connect or
            // read timeout later; the process does not wait longer.
            let _ = self.done.recv_timeout(within + Duration::from_secs(15));
        }
        let (shipped, bytes, us) = (
            self.stats.shipped.load(Ordering::Relaxed),
            self.stats.shipped_bytes.load(Ordering::Relaxed),
            self.stats.upload_us.load(Ordering::Relaxed).max(1),
        );
        if shipped > 0 {
            info!(
                segments = shipped,
                bytes,
                upload_secs = format!("{:.3}", us as f64 / 1e6),
                mb_per_sec = format!("{:.1}", bytes as f64 / us as f64),
                segments_per_sec = format!("{:.1}", shipped as f64 * 1e6 / us as f64),
                failed_attempts = self.stats.failures.load(Ordering::Relaxed),
                "shipped to S3"
            );
        }
        let left = self.backlog_bytes();
        if left > 0 {
            warn!(
                bytes = left,
                "segments not shipped yet stay in the segments directory; they are shipped at the next start"
            );
        }
        self.stats.shipped.load(Ordering::Relaxed)
    }
}

/// The path of `file` under `dir`, with `/` separators; `None` outside it or not UTF-8.
fn relative(dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(dir).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

struct Worker {
    dir: PathBuf,
    settings: ShipSettings,
    uploader: Uploader,
    ledger: Ledger,
    shipped: Arc<Mutex<HashSet<String>>>,
    stats: Arc<ShipStats>,
    cluster: Option<String>,
    publications: Arc<AtomicU64>,
    drain: Option<Instant>,
    /// The last attempt failed (logged at the first failure, then every few minutes until
    /// one succeeds).
    failing: bool,
    last_warning: Option<Instant>,
}

enum Pass {
    /// Every segment is shipped.
    Done,
    /// An upload failed.
    Failed,
    /// A segment needs its key and no cluster is known yet.
    NoCluster,
}

impl Worker {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut backoff = Duration::from_millis(500);
        let mut warned_cluster = false;
        loop {
            let wait = match self.pass() {
                Pass::Done => {
                    backoff = Duration::from_millis(500);
                    if self.drain.is_some() {
                        return;
                    }
                    self.settings.rescan
                }
                Pass::Failed => {
                    let w = backoff;
                    backoff = (backoff * 2).min(self.settings.retry_max);
                    w
                }
                Pass::NoCluster => {
                    if !warned_cluster {
                        warned_cluster = true;
                        warn!(
                            "no cluster name yet (set --cluster, or the agent's metadata names it): segments wait to be shipped"
                        );
                    }
                    Duration::from_secs(1)
                }
            };
            if self.drain.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let wait = match self.drain {
                Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
                None => wait,
            };
            match rx.recv_timeout(wait) {
                Ok(msg) => self.take(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Take every message waiting, so a burst of publications is one pass.
            while let Ok(msg) = rx.try_recv() {
                self.take(msg);
            }
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Wake => {}
            Msg::Cluster(c) => self.cluster = Some(c),
            Msg::Drain(d) => self.drain = Some(d),
        }
    }

    /// Ships every unshipped segment, oldest hour first; then deletes shipped ones past
    /// retention.
    fn pass(&mut self) -> Pass {
        let mut pending = Vec::new();
        {
            let shipped = self.shipped.lock().unwrap_or_else(|e| e.into_inner());
            for (table, _) in TABLES {
                for f in crate::segment::files_of(&self.dir, table) {
                    if let Some(rel) = relative(&self.dir, &f)
                        && !shipped.contains(&rel)
                    {
                        pending.push((hour_of(&rel), rel, f));
                    }
                }
            }
        }
        pending.sort();
        for (_, rel, path) in pending {
            if self.drain.is_some_and(|d| Instant::now() >= d) {
                return Pass::Failed;
            }
            let key = match self.ledger.key(&rel) {
                Some(k) => k.to_string(),
                None => {
                    let Some(cluster) = &self.cluster else {
                        return Pass::NoCluster;
                    };
                    let Some(key) = self.settings.url.key(&rel, cluster) else {
                        continue;
                    };
                    if let Err(e) = self.ledger.append(Kind::Intent, &key, &rel) {
                        warn!(error = %format!("{e:#}"), "cannot write the S3 ledger; retrying");
                        return Pass::Failed;
                    }
                    key
                }
            };
            let bucket = self.settings.url.bucket.clone();
            let started = Instant::now();
            match self.uploader.upload(&path, &bucket, &key) {
                Ok(bytes) => {
                    self.stats
                        .upload_us
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if let Err(e) = self.ledger.append(Kind::Shipped, &key, &rel) {
                        warn!(error = %format!("{e:#}"), "cannot write the S3 ledger; the segment is uploaded again");
                        return Pass::Failed;
                    }
                    self.shipped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(rel);
                    self.stats.shipped.fetch_add(1, Ordering::Relaxed);
                    self.stats.shipped_bytes.fetch_add(bytes, Ordering::Relaxed);
                    if self.failing {
                        self.failing = false;
                        self.last_warning = None;
                        info!("S3 reachable again: shipping the backlog");
                    }
                    debug!(key, bytes, "segment shipped");
                }
                Err(UploadError::Vanished(p)) => {
                    debug!(path = %p.display(), "segment gone before its upload");
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.failing = true;
                    if self
                        .last_warning
                        .is_none_or(|t| t.elapsed() >= FAILURE_WARNING_EVERY)
                    {
                        self.last_warning = Some(Instant::now());
                        warn!(
                            error = %e,
                            failed_attempts = self.stats.failures.load(Ordering::Relaxed),
                            "uploading segments failed; retrying with backoff (segments stay local until S3 confirms them)"
                        );
                    } else {
                        debug!(error = %e, "upload failed again");
                    }
                    return Pass::Failed;
                }
            }
        }
        self.delete_past_retention();
        Pass::Done
    }

    /// Deletes shipped local segments whose hour is older than the retention, and forgets them
    /// in the ledger.
    fn delete_past_retention(&mut self) {
        let Some(retain) = self.settings.retain else {
            return;
        };
        if self.publications.load(Ordering::SeqCst) == 0 {
            return;
        }
        let before = crate::store::now_us() / 1_000_000 - retain.as_secs() as i64;
        let mut deleted = 0u64;
        let shipped: Vec<String> = self
            .shipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for rel in shipped {
            // The hour's end must be past the cut-off.
            if hour_of(&rel).is_none_or(|h| h + 3600 > before) {
                continue;
            }
            let path = self.dir.join(&rel);
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot delete a shipped segment");
                    continue;
                }
            }
            self.shipped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&rel);
        }
        if deleted > 0 {
            self.stats.deleted.fetch_add(deleted, Ordering::Relaxed);
            let dir = self.dir.clone();
            if let Err(e) = self.ledger.compact(|rel| dir.join(rel).exists()) {
                warn!(error = %format!("{e:#}"), "cannot compact the S3 ledger");
            }
            info!(files = deleted, "deleted shipped segments past retention");
        }
    }
}

/// The start of a segment's hour (seconds since the epoch) from its path
/// (`…/date=YYYY-MM-DD/hour=HH/…`).
fn hour_of(rel: &str) -> Option<i64> {
    let date = rel.split('/').find_map(|p| p.strip_prefix("date="))?;
    let hour = rel.split('/').find_map(|p| p.strip_prefix("hour="))?;
    crate::parse::parse_rfc3339_seconds(format!("{date}T{hour}:00:00Z").as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Intent,
    Shipped,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Intent => "intent",
            Kind::Shipped => "shipped",
        }
    }
}

/// The ledger: one line per event, `intent|shipped <TAB> s3://bucket/key <TAB> path`, appended
/// and synced; a line cut by a crash (no newline) is ignored. Only lines of the current
/// destination (bucket and prefix) count.
struct Ledger {
    path: PathBuf,
    /// Open for appending once the ledger was rewritten at start-up.
    file: Option<File>,
    base: String,
    bucket: String,
    /// Per segment path: its key, and whether S3 confirmed it.
    entries: BTreeMap<String, (String, bool)>,
}

impl Ledger {
    fn open(path: &Path, url: &S3Url) -> Result<Ledger> {
        let mut entries: BTreeMap<String, (String, bool)> = BTreeMap::new();
        let base = url.to_string();
        let bucket_base = format!("s3://{}/", url.bucket);
        match File::open(path) {
            Ok(f) => {
                let mut r = BufReader::new(f);
                let mut line = Vec::new();
                let mut no = 0u64;
                loop {
                    line.clear();
                    let n = r
                        .read_until(b'\n', &mut line)
                        .with_context(|| format!("reading {}", path.display()))?;
                    if n == 0 || line.last() != Some(&b'\n') {
                        break;
                    }
                    no += 1;
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                    let fields: Vec<&str> = text.split('\t').collect();
                    let [kind, dest, rel] = fields[..] else {
                        warn!(ledger = %path.display(), line = no, "ignoring a malformed ledger line");
                        continue;
                    };
                    let Some(key) = dest
                        .strip_prefix(bucket_base.as_str())
                        .filter(|k| k.starts_with(&url.prefix))
                    else {
                        continue;
                    };
                    match kind {
                        "intent" => {
                            entries
                                .entry(rel.to_string())
                                .or_insert_with(|| (key.to_string(), false));
                        }
                        "shipped" => {
                            let e = entries
                                .entry(rel.to_string())
                                .or_insert_with(|| (key.to_string(), false));
                            if e.0 == key {
                                e.1 = true;
                            }
                        }
                        _ => {
                            warn!(ledger = %path.display(), line = no, "ignoring a malformed ledger line");
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            file: None,
            base,
            bucket: url.bucket.clone(),
            entries,
        };
        // Rewritten at every start: drops a cut last line (appends would continue it) and the
        // lines of other destinations or vanished files.
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        ledger.compact(|rel| dir.join(rel).exists())?;
        Ok(ledger)
    }

    fn shipped(&self) -> HashSet<String> {
        self.entries
            .iter()
            .filter(|(_, (_, shipped))| *shipped)
            .map(|(rel, _)| rel.clone())
            .collect()
    }

    fn key(&self, rel: &str) -> Option<&str> {
        self.entries.get(rel).map(|(k, _)| k.as_str())
    }

    fn line(&self, kind: Kind, key: &str, rel: &str) -> String {
        format!("{}\ts3://{}/{key}\t{rel}\n", kind.word(), self.bucket)
    }

    fn append(&mut self, kind: Kind, key: &str, rel: &str) -> Result<()> {
        if key.contains(['\t', '\n']) || rel.contains(['\t', '\n']) {
            bail!("{rel:?} -> {key:?}: a tab or newline in a ledger field");
        }
        let line = self.line(kind, key, rel);
        let Some(file) = self.file.as_mut() else {
            bail!("{} is not open", self.path.display());
        };
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        let e = self
            .entries
            .entry(rel.to_string())
            .or_insert_with(|| (key.to_string(), false));
        if kind == Kind::Shipped && e.0 == key {
            e.1 = true;
        }
        Ok(())
    }

    /// Rewrites the ledger with the entries of files `keep` accepts (temporary file, synced,
    /// renamed, directory synced), and appends to it from then on.
    fn compact(&mut self, keep: impl Fn(&str) -> bool) -> Result<()> {
        self.entries.retain(|rel, _| keep(rel));
        let tmp = self.path.with_extension("tmp");
        let mut out = String::new();
        for (rel, (key, shipped)) in &self.entries {
            out.push_str(&self.line(Kind::Intent, key, rel));
            if *shipped {
                out.push_str(&self.line(Kind::Shipped, key, rel));
            }
        }
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(out.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming into {}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing {}", dir.display()))?;
        }
        self.file = Some(
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?,
        );
        debug!(base = %self.base, entries = self.entries.len(), "S3 ledger compacted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_keys_add_the_cluster() {
        let u = S3Url::parse("s3://bkt/audit/ecs/").unwrap();
        assert_eq!(u.bucket, "bkt");
        assert_eq!(u.prefix, "audit/ecs/");
        assert_eq!(
            u.key(
                "credential_requests/date=2026-11-20/hour=10/h-s-000000000001-000000000009.parquet",
                "prod"
            )
            .unwrap(),
            "audit/ecs/credential_requests/cluster=prod/date=2026-11-20/hour=10/h-s-000000000001-000000000009.parquet"
        );
        assert_eq!(S3Url::parse("s3://bkt").unwrap().prefix, "");
        assert_eq!(S3Url::parse("s3://bkt/p").unwrap().prefix, "p/");
        assert!(S3Url::parse("http://bkt/p").is_err());
        assert!(S3Url::parse("s3:///p").is_err());
        assert!(S3Url::parse("s3://bkt/a//b").is_err());
        assert!(S3Url::parse("s3://bkt/a/../b").is_err());
    }

    #[test]
    fn cluster_names_from_the_agent_are_confined_to_one_key_component() {
        assert_eq!(sanitize_cluster("prod"), "prod");
        assert_eq!(
            sanitize_cluster("arn:aws:ecs:us-east-1:111122223333:cluster/prod-1"),
            "prod-1"
        );
        assert_eq!(sanitize_cluster("../x/y"), "___x_y");
        assert_eq!(sanitize_cluster(""), "unknown");
    }

    #[test]
    fn hours_come_from_the_partition_path() {
        assert_eq!(
            hour_of("t/date=1970-01-02/hour=01/x.parquet"),
            Some(86_400 + 3_600)
        );
        assert_eq!(hour_of("t/x.parquet"), None);
    }

    #[test]
    fn the_ledger_keeps_keys_and_ignores_a_cut_line_and_other_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let rel = "credential_requests/date=2026-11-20/hour=10/a.parquet";
        let rel2 = "credential_requests/date=2026-11-20/hour=10/b.parquet";
        for r in [rel, rel2] {
            std::fs::create_dir_all(dir.path().join(r).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(r), b"x").unwrap();
        }
        let path = dir.path().join(LEDGER);
        let url = S3Url::parse("s3://b/p/").unwrap();
        {
            let mut l = Ledger::open(&path, &url).unwrap();
            l.append(Kind::Intent, "p/k1", rel).unwrap();
            l.append(Kind::Shipped, "p/k1", rel).unwrap();
            l.append(Kind::Intent, "p/k2", rel2).unwrap();
        }
        // a crash cut the last line; another destination's lines
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"shipped\ts3://other/p/k2\t").unwrap();
        f.write_all(rel2.as_bytes()).unwrap();
        f.write_all(b"\nshipped\ts3://b/p/k2\tcredential").unwrap();
        drop(f);
        let l = Ledger::open(&path, &url).unwrap();
        assert_eq!(l.key(rel), Some("p/k1"));
        assert_eq!(l.key(rel2), Some("p/k2"));
        assert_eq!(l.shipped(), HashSet::from([rel.to_string()]));
        // another prefix: nothing is known there
        let other = Ledger::open(&path, &S3Url::parse("s3://b/q/").unwrap()).unwrap();
        assert!(other.shipped().is_empty());
        assert_eq!(other.key(rel), None);
    }
}
