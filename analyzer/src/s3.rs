//! `credtrail ingest cloudtrail s3://BUCKET/PREFIX` and `credtrail ingest audit s3://…`: the
//! same ingest paths as local files, fed from S3 (ListObjectsV2, GetObject).
//!
//! - **CloudTrail.** Keys are listed (paginated) and filtered as the directory walk filters
//!   names (digests skipped, only `.json[l][.gz]`); each object becomes an input that the parse
//!   worker opens when it takes it up, streaming the body (gzip or plain) through the same
//!   reader as a local file. So at most one object per parse thread is open, and none is held
//!   in memory whole. With `--since` and a CloudTrail layout
//!   (`…/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`), only the day prefixes from that
//!   date on are listed: the tree is walked with `/` as delimiter down to each region, then
//!   one listing per day. (Digest trees are not walked.)
//! - **Audit segments.** Objects are downloaded in batches into a temporary directory under
//!   their key's path (the table comes from it) and loaded by [`crate::audit::ingest`].
//!   With `--since`, only the `date=` partitions from that date on are listed
//!   ([`S3::audit_keys`]; the collector ships to `<table>/cluster=<cluster>/date=…/hour=…/`).
//! - Requests are path-style (`force_path_style`), so S3-compatible local servers work with
//!   `--endpoint-url`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_sdk_s3::primitives::ByteStream;
use tokio::runtime::{Handle, Runtime};

use crate::cloudtrail::sniff::SkipReason;
use crate::cloudtrail::{self, Body, Input, is_digest_path, is_json_name};
use crate::store::Store;
use crate::timestamp::civil_from_days;
use crate::{audit, aws};

/// Threads fetching S3 objects ahead of the parse threads (so objects in flight at once):
/// fetching is mostly waiting on the network.
pub const FETCH_THREADS: usize = 8;
/// Audit objects downloaded (and stored) per batch.
const AUDIT_BATCH: usize = 256;

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`; `None` for anything else.
    pub fn parse(s: &str) -> Option<S3Url> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Options of an S3 ingest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub endpoint_url: Option<String>,
    /// The bucket's region (default: the credential chain's region, else us-east-1).
    pub region: Option<String>,
    /// Only CloudTrail day prefixes from this time's date on (µs), where the layout allows.
    pub since_us: Option<i64>,
    /// Keys per ListObjectsV2 page (default: the service's, 1000).
    pub page_size: Option<i32>,
}

/// An object's key and size.
pub type Key = (String, u64);

/// An S3 client and the runtime its futures run on.
pub struct S3 {
    runtime: Runtime,
    client: aws_sdk_s3::Client,
    page_size: Option<i32>,
    /// ListObjectsV2 requests sent (pages).
    pub list_requests: u64,
}

impl S3 {
    pub fn connect(opts: &Options) -> Result<S3> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let base = runtime.block_on(aws::load(
            opts.endpoint_url.as_deref(),
            opts.region.as_deref(),
            aws::Retries::Standard,
        ));
        // Bodies the analyzer sends (reports) carry their own Content-MD5; the SDK adds no
        // checksum of its own, so S3-compatible servers need not know the newer ones.
        let conf = aws_sdk_s3::config::Builder::from(&base)
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build();
        Ok(S3 {
            runtime,
            client: aws_sdk_s3::Client::from_conf(conf),
            page_size: opts.page_size,
            list_requests: 0,
        })
    }

    /// Keys (with sizes) under `prefix`, and the common prefixes one level down when
    /// `delimiter` is set.
    fn list(
        &mut self,
        bucket: &str,
        prefix: &str,
        delimiter: bool,
    ) -> Result<(Vec<Key>, Vec<String>)> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.then(|| "/".to_string()))
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
        let mut requests = 0;
        self.runtime.block_on(async {
            while let Some(page) = pages.next().await {
                requests += 1;
                let page = page.map_err(|e| {
                    anyhow::anyhow!(
                        "listing s3://{bucket}/{prefix}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )
                })?;
                for o in page.contents() {
                    if let Some(k) = o.key() {
                        keys.push((k.to_string(), o.size().unwrap_or(0).max(0) as u64));
                    }
                }
                for p in page.common_prefixes() {
                    if let Some(p) = p.prefix() {
                        prefixes.push(p.to_string());
                    }
                }
            }
            anyhow::Ok(())
        })?;
        self.list_requests += requests;
        Ok((keys, prefixes))
    }

    /// Keys under `url` (with sizes) of the collector's layout
    /// (`<table>/cluster=<cluster>/date=YYYY-MM-DD/hour=HH/…`, or without `cluster=`), skipping
    /// `date=` folders before `since_us`'s date: the tree is walked with `/` as delimiter and
    /// only the `date=` folders kept are listed whole. Keys outside any `date=` folder (raw
    /// audit files) are all kept. Sorted.
    pub fn audit_keys(&mut self, url: &S3Url, since_us: i64) -> Result<Vec<Key>> {
        let (y, m, d) = civil_from_days(since_us.div_euclid(86_400_000_000));
        let first = format!("{y:04}-{m:02}-{d:02}");
        let mut out = Vec::new();
        let mut stack = vec![url.prefix.clone()];
        while let Some(prefix) = stack.pop() {
            let (keys, prefixes) = self.list(&url.bucket, &prefix, true)?;
            out.extend(keys);
            for p in prefixes.into_iter().rev() {
                let name = p.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                match name.strip_prefix("date=") {
                    Some(date) if is_iso_date(date) => {
                        if date >= first.as_str() {
                            out.extend(self.list(&url.bucket, &p, false)?.0);
                        }
                    }
                    _ => stack.push(p),
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every key under `url` (with sizes), pruned to the days from `since_us` on where the
    /// CloudTrail layout allows; sorted.
    pub fn keys(&mut self, url: &S3Url, since_us: Option<i64>) -> Result<Vec<Key>> {
        let mut out = Vec::new();
        match since_us {
            None => out = self.list(&url.bucket, &url.prefix, false)?.0,
            Some(since) => {
                let today = crate::store::now_us().div_euclid(86_400_000_000);
                let first = since.div_euclid(86_400_000_000);
                let mut stack = vec![url.prefix.clone()];
                while let Some(prefix) = stack.pop() {
                    match level(&prefix) {
                        Level::Region => {
                            for day in first..=today {
                                let (y, m, d) = civil_from_days(day);
                                let p = format!("{prefix}{y:04}/{m:02}/{d:02}/");
                                out.extend(self.list(&url.bucket, &p, false)?.0);
                            }
                        }
                        Level::Inside => out.extend(self.list(&url.bucket, &prefix, false)?.0),
                        Level::Above => {
                            let (keys, prefixes) = self.list(&url.bucket, &prefix, true)?;
                            out.extend(keys);
                            stack.extend(prefixes.into_iter().filter(|p| !is_digest_path(p)).rev());
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Opens an object's body as a blocking reader (for a parse worker thread, outside the
    /// runtime): chunks are pulled from the network as the reader is read.
    pub fn open(&self, bucket: &str, key: &str) -> std::io::Result<ObjectReader> {
        let handle = self.runtime.handle().clone();
        let got = handle.block_on(self.client.get_object().bucket(bucket).key(key).send());
        let out = got.map_err(|e| {
            std::io::Error::other(format!(
                "GetObject s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ))
        })?;
        Ok(ObjectReader {
            handle,
            body: out.body,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    /// Uploads `body` as `bucket`/`key` (PutObject with its Content-MD5, so S3 refuses a body
    /// that arrived damaged); returns once S3 confirmed the object.
    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>, content_type: &str) -> Result<()> {
        use base64::Engine as _;
        use md5::Digest as _;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_md5(md5)
                    .content_type(content_type)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "PutObject s3://{bucket}/{key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(())
    }

    /// Downloads an object to `path` (streamed, never whole in memory).
    pub fn download(&self, bucket: &str, key: &str, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut r = self.open(bucket, key)?;
        let mut f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::copy(&mut r, &mut f)
            .with_context(|| format!("downloading s3://{bucket}/{key}"))?;
        Ok(())
    }
}

/// An S3 object body read as a blocking stream.
pub struct ObjectReader {
    handle: Handle,
    body: ByteStream,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.handle.block_on(self.body.next()) {
                None => self.done = true,
                Some(Ok(chunk)) => {
                    self.buf.clear();
                    self.buf.extend_from_slice(&chunk);
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `YYYY-MM-DD`, by shape (so it compares with another as text).
fn is_iso_date(s: &str) -> bool {
    s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// Where a prefix sits in CloudTrail's S3 layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Above the region folders (or not in the layout): walk down with a delimiter.
    Above,
    /// `…/AWSLogs/<account>/CloudTrail/<region>/`: list day by day.
    Region,
    /// Inside a region's dated folders, or a partial name: list as is.
    Inside,
}

fn level(prefix: &str) -> Level {
    if !prefix.is_empty() && !prefix.ends_with('/') {
        return Level::Inside;
    }
    let Some(at) = prefix.rfind("AWSLogs/") else {
        // A trail's own prefix (or the bucket root): AWSLogs/ is further down.
        return Level::Above;
    };
    let segs: Vec<&str> = prefix[at + "AWSLogs/".len()..]
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.iter().position(|s| *s == "CloudTrail") {
        Some(i) if segs.len() == i + 1 => Level::Above,
        Some(i) if segs.len() == i + 2 => Level::Region,
        Some(_) => Level::Inside,
        // AWSLogs/, AWSLogs/<account>/, AWSLogs/<org>/<account>/
        None if segs.len() <= 2 => Level::Above,
        None => Level::Inside,
    }
}

/// `ingest cloudtrail s3://…`: every CloudTrail object under each URL.
pub fn ingest_cloudtrail(
    store: &Store,
    urls: &[S3Url],
    opts: &Options,
    ct: &cloudtrail::Options,
) -> Result<(cloudtrail::Summary, u64)> {
    let start = Instant::now();
    let mut s3 = S3::connect(opts)?;
    let mut summary = cloudtrail::Summary::default();
    let mut objects = Vec::new();
    for url in urls {
        for (key, size) in s3.keys(url, opts.since_us)? {
            let name = key.rsplit('/').next().unwrap_or(&key);
            if is_digest_path(&key) {
                summary.skip(format!("s3://{}/{key}", url.bucket), SkipReason::Digest);
            } else if is_json_name(name) {
                objects.push((url.bucket.clone(), key, size));
            } else {
                summary.skip(format!("s3://{}/{key}", url.bucket), SkipReason::NotLogName);
            }
        }
    }
    let s3 = std::sync::Arc::new(s3);
    let inputs: Vec<Input> = objects
        .into_iter()
        .map(|(bucket, key, size)| {
            let s3 = s3.clone();
            Input {
                name: format!("s3://{bucket}/{key}"),
                size,
                body: Body::Open(Box::new(move || {
                    Ok(Box::new(s3.open(&bucket, &key)?) as Box<dyn Read + Send>)
                })),
                named: false,
            }
        })
        .collect();
    let ct = cloudtrail::Options {
        fetchers: FETCH_THREADS,
        ..ct.clone()
    };
    cloudtrail::ingest_inputs(store, inputs, &ct, &mut summary)?;
    summary.elapsed = start.elapsed();
    let requests = s3.list_requests;
    Ok((summary, requests))
}

/// `ingest audit s3://…`: the collector's segments (and raw audit files) under each URL.
pub fn ingest_audit(
    store: &Store,
    urls: &[S3Url],
    opts: &Options,
    audit_opts: &audit::Options,
) -> Result<audit::Summary> {
    let mut s3 = S3::connect(opts)?;
    let mut summary = audit::Summary::default();
    for url in urls {
        let keys = match opts.since_us {
            Some(since) => s3.audit_keys(url, since)?,
            None => s3.keys(url, None)?,
        };
        for batch in keys.chunks(AUDIT_BATCH) {
            let tmp = tempfile::tempdir().context("creating a download directory")?;
            let mut paths = Vec::new();
            for (key, _) in batch {
                if key.ends_with('/') {
                    continue;
                }
                let path = local_path(tmp.path(), key)?;
                s3.download(&url.bucket, key, &path)?;
                paths.push(path);
            }
            if paths.is_empty() {
                continue;
            }
            // Directories, so raw files are picked by name as in a local directory walk; raw
            // files are recorded under their s3:// URL, not the download path.
            let opts = audit::Options {
                origin: Some((tmp.path().to_path_buf(), format!("s3://{}/", url.bucket))),
                ..audit_opts.clone()
            };
            let s = audit::ingest(store, &[tmp.path().to_path_buf()], &opts)
                .with_context(|| format!("loading objects from {url}"))?;
            summary.segment_files += s.segment_files;
            summary.raw_files += s.raw_files;
            for (t, a) in summary.added.iter_mut().zip(s.added) {
                *t += a;
            }
            summary.duplicates += s.duplicates;
            summary.rejected += s.rejected;
        }
    }
    Ok(summary)
}

/// Where an object is downloaded: its key under `dir`, refusing keys that would escape it.
fn local_path(dir: &Path, key: &str) -> Result<PathBuf> {
    let mut p = dir.to_path_buf();
    for seg in key.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            bail!("object key {key:?} has a . or .. segment");
        }
        p.push(seg);
    }
    Ok(p)
}

/// Splits ingest arguments into S3 URLs and local paths.
pub fn split_urls(paths: &[PathBuf]) -> Result<(Vec<S3Url>, Vec<PathBuf>)> {
    let (mut urls, mut local) = (Vec::new(), Vec::new());
    for p in paths {
        let text = p.to_string_lossy();
        if text.starts_with("s3://") {
            urls.push(
                S3Url::parse(&text).with_context(|| format!("{text}: not s3://BUCKET/PREFIX"))?,
            );
        } else {
            local.push(p.clone());
        }
    }
    Ok((urls, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dates_are_recognised_by_shape() {
        assert!(is_iso_date("2026-11-20"));
        assert!(!is_iso_date("2026-11-2"));
        assert!(!is_iso_date("2026/11/20"));
        assert!(!is_iso_date("latest"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            S3Url::parse("s3://b/AWSLogs/1/"),
            Some(S3Url {
                bucket: "b".into(),
                prefix: "AWSLogs/1/".into()
            })
        );
        assert_eq!(
            S3Url::parse("s3://b"),
            Some(S3Url {
                bucket: "b".into(),
                prefix: String::new()
            })
        );
        assert_eq!(S3Url::parse("s3:///x"), None);
        assert_eq!(S3Url::parse("/tmp/x"), None);
    }

    #[test]
    fn layout_levels() {
        assert_eq!(level(""), Level::Above);
        assert_eq!(level("trail/"), Level::Above);
        assert_eq!(level("trail/AWSLogs/"), Level::Above);
        assert_eq!(level("AWSLogs/111122223333/"), Level::Above);
        assert_eq!(level("AWSLogs/o-abc/111122223333/"), Level::Above);
        assert_eq!(level("AWSLogs/111122223333/CloudTrail/"), Level::Above);
        assert_eq!(
            level("AWSLogs/111122223333/CloudTrail/us-east-1/"),
            Level::Region
        );
        assert_eq!(
            level("x/AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/"),
            Level::Region
        );
        assert_eq!(
            level("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/"),
            Level::Inside
        );
        assert_eq!(level("AWSLogs/1111"), Level::Inside);
    }

    #[test]
    fn keys_stay_inside_the_download_directory() {
        let d = Path::new("/tmp/x");
        assert_eq!(
            local_path(d, "a/b//c.parquet").unwrap(),
            Path::new("/tmp/x/a/b/c.parquet")
        );
        assert!(local_path(d, "a/../../etc/passwd").is_err());
    }
}
