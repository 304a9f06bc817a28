//! `credtrail ingest cloudtrail --lookup`: CloudTrail's event history (LookupEvents) per region,
//! through the same record path as files ([`super::ingest_records`]), so normalisation, the
//! `eventID` dedupe and rejects are identical.
//!
//! - **Pacing.** LookupEvents allows 2 requests/s per account and region. Each region has a
//!   [`Pacer`] that spaces *every* request it sends, retries included, at least
//!   [`MIN_INTERVAL`] apart; the SDK's own retries are off so nothing bypasses it.
//! - **Throttling.** A `ThrottlingException` (or HTTP 429) is retried after an exponential
//!   backoff with jitter, on top of the pacing; so are 5xx answers and transport errors. After
//!   `--max-attempts` (default [`MAX_ATTEMPTS`]) the region fails.
//! - **Regions in parallel.** One tokio task per region; pages go over a bounded channel to the
//!   calling thread, which owns the store and writes them.
//! - **Watermark.** `cloudtrail_watermarks` holds, per region, the newest event time fetched by
//!   a run that read every page, and (`updated_at`) when that run ended, so the next run's first
//!   request is paced against the last one too. The next run asks from that time minus [`OVERLAP`] (events
//!   reach the history minutes late; the dedupe absorbs the overlap). Without a watermark it
//!   asks from `--since`, by default 90 days back (the history's limit). A region that fails
//!   keeps its old watermark, so nothing is skipped.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_config::retry::RetryConfig;
use aws_sdk_cloudtrail::config::http::HttpResponse;
use aws_sdk_cloudtrail::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsError;
use aws_sdk_cloudtrail::primitives::DateTime;
use aws_sdk_cloudtrail::types::Event;
use duckdb::params;
use tokio::sync::mpsc;

use super::Summary;
use crate::store::{Store, now_us, ts};

/// Least time between two requests to one region (LookupEvents: 2 requests/s per region).
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// How far before the watermark a run starts again, for events that reached the history late.
pub const OVERLAP: Duration = Duration::from_secs(15 * 60);
/// The event history's reach.
pub const HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Attempts per request (first try included) before a region fails, by default.
pub const MAX_ATTEMPTS: u32 = 8;
/// LookupEvents' page size limit.
const PAGE_SIZE: i32 = 50;
/// Records a region gathers before they are written.
const WRITE_RECORDS: usize = 1000;

/// Options of one LookupEvents ingest.
#[derive(Debug, Clone)]
pub struct Options {
    pub regions: Vec<String>,
    /// Start (µs since the epoch) for regions without a watermark; default: [`HISTORY`] back.
    pub since_us: Option<i64>,
    /// Another endpoint (a local stand-in, a VPC endpoint).
    pub endpoint_url: Option<String>,
    pub min_interval: Duration,
    pub overlap: Duration,
    /// First backoff after a throttle; doubles per attempt, capped at [`Options::max_backoff`].
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per request (first try included).
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            regions: Vec::new(),
            since_us: None,
            endpoint_url: None,
            min_interval: MIN_INTERVAL,
            overlap: OVERLAP,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            max_attempts: MAX_ATTEMPTS,
        }
    }
}

/// What one LookupEvents ingest did.
#[derive(Debug, Clone, Default)]
pub struct LookupSummary {
    /// The record path's counts, all regions together.
    pub records: Summary,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Throttling answers received.
    pub throttles: u64,
    pub regions: Vec<RegionSummary>,
}

#[derive(Debug, Clone, Default)]
pub struct RegionSummary {
    pub region: String,
    /// The StartTime asked for (µs).
    pub start_us: i64,
    pub pages: u64,
    pub events: u64,
    /// The watermark after the run (µs), if the region has one.
    pub watermark_us: Option<i64>,
}

impl std::fmt::Display for LookupSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; lookup: {} regions, {} requests, {} throttled",
            self.records.headline(),
            self.regions.len(),
            self.requests,
            self.throttles
        )
    }
}

/// Spaces one region's requests at least `interval` apart, whoever sends them.
pub struct Pacer {
    interval: Duration,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Pacer {
        Pacer {
            interval,
            next: None,
        }
    }

    /// A pacer whose first request waits `delay` (the previous run's last request was less
    /// than an interval ago).
    pub fn after(interval: Duration, delay: Duration) -> Pacer {
        Pacer {
            interval,
            next: Some(tokio::time::Instant::now() + delay),
        }
    }

    /// Waits until a request may be sent, and books the slot.
    pub async fn wait(&mut self) {
        if let Some(at) = self.next {
            tokio::time::sleep_until(at).await;
        }
        self.next = Some(tokio::time::Instant::now() + self.interval);
    }
}

/// The watermark of `region` (µs), if a complete run set one.
pub fn watermark(store: &Store, region: &str) -> Result<Option<i64>> {
    let mut stmt = store.conn().prepare(
        "SELECT epoch_us(max(last_event_time)) FROM cloudtrail_watermarks WHERE region = ?",
    )?;
    Ok(stmt.query_row([region], |r| r.get::<_, Option<i64>>(0))?)
}

/// When the last run that sent `region` a request ended (µs), so the next run's first request
/// waits an interval from then. Runs record it in `cloudtrail_lookup_requests` whether they
/// found events or failed; the watermark's `updated_at` counts too (stores from before that
/// table).
fn last_run_end(store: &Store, region: &str) -> Result<Option<i64>> {
    let mut stmt = store.conn().prepare(
        "SELECT epoch_us(max(t)) FROM (
             SELECT updated_at AS t FROM cloudtrail_watermarks WHERE region = $1
             UNION ALL
             SELECT last_request_at FROM cloudtrail_lookup_requests WHERE region = $1)",
    )?;
    Ok(stmt.query_row([region], |r| r.get::<_, Option<i64>>(0))?)
}

/// Records that this run's requests to `region` are done (now).
fn set_last_request(store: &Store, region: &str) -> Result<()> {
    store.transaction(|conn| {
        conn.execute(
            "DELETE FROM cloudtrail_lookup_requests WHERE region = ?",
            [region],
        )?;
        conn.execute(
            "INSERT INTO cloudtrail_lookup_requests VALUES (?, ?)",
            params![region, ts(now_us())],
        )?;
        Ok(())
    })
}

fn set_watermark(store: &Store, region: &str, us: i64) -> Result<()> {
    store.transaction(|conn| {
        conn.execute(
            "DELETE FROM cloudtrail_watermarks WHERE region = ?",
            [region],
        )?;
        conn.execute(
            "INSERT INTO cloudtrail_watermarks VALUES (?, ?, ?)",
            params![region, ts(us), ts(now_us())],
        )?;
        Ok(())
    })
}

/// What a region's task sends to the writer.
enum Msg {
    Records {
        region: String,
        records: Vec<String>,
    },
    Done {
        region: String,
        newest_us: Option<i64>,
        pages: u64,
        events: u64,
    },
    Failed {
        region: String,
        error: anyhow::Error,
    },
}

/// Counters shared by the region tasks.
#[derive(Default)]
struct Counters {
    requests: std::sync::atomic::AtomicU64,
    throttles: std::sync::atomic::AtomicU64,
}

/// Fetches every region's events since its watermark and stores them.
pub fn ingest(store: &Store, opts: &Options) -> Result<LookupSummary> {
    anyhow::ensure!(
        !opts.regions.is_empty(),
        "--lookup needs at least one --region"
    );
    let started = Instant::now();
    let now = now_us();
    let mut summary = LookupSummary::default();
    let mut plans = Vec::new();
    let mut regions: Vec<String> = opts.regions.clone();
    regions.sort();
    regions.dedup();
    for region in &regions {
        let start_us = match watermark(store, region)? {
            Some(w) => w - opts.overlap.as_micros() as i64,
            None => opts
                .since_us
                .unwrap_or(now - HISTORY.as_micros() as i64)
                .max(now - HISTORY.as_micros() as i64),
        };
        // Pacing across runs: the previous run's last request counts too.
        let delay = last_run_end(store, region)?
            .map(|end| end + opts.min_interval.as_micros() as i64 - now_us())
            .filter(|d| *d > 0)
            .map_or(Duration::ZERO, |d| Duration::from_micros(d as u64));
        plans.push((region.clone(), start_us, delay));
        summary.regions.push(RegionSummary {
            region: region.clone(),
            start_us,
            ..RegionSummary::default()
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let counters = std::sync::Arc::new(Counters::default());
    let (tx, mut rx) = mpsc::channel::<Msg>(8);
    {
        // The SDK's retries off: every attempt goes through the region's pacer.
        let base = runtime.block_on(crate::aws::load(
            opts.endpoint_url.as_deref(),
            Some(regions[0].as_str()),
            crate::aws::Retries::Off,
        ));
        for (region, start_us, delay) in plans {
            let client = client(&base, &region);
            let (tx, counters, opts) = (tx.clone(), counters.clone(), opts.clone());
            runtime.spawn(async move {
                let pacer = Pacer::after(opts.min_interval, delay);
                let fetched = fetch_region(
                    &client,
                    &region,
                    (start_us, now),
                    pacer,
                    &opts,
                    &counters,
                    &tx,
                )
                .await
                .with_context(|| format!("LookupEvents in {region}"));
                let msg = match fetched {
                    Ok((newest_us, pages, events)) => Msg::Done {
                        region,
                        newest_us,
                        pages,
                        events,
                    },
                    Err(error) => Msg::Failed { region, error },
                };
                let _ = tx.send(msg).await;
            });
        }
    }
    drop(tx);
    let mut failures = Vec::new();
    let mut write = |region: &str, records: &[String]| -> Result<()> {
        let s = super::ingest_records(store, &format!("lookup:{region}"), records)?;
        add(&mut summary.records, &s);
        Ok(())
    };
    let mut write_error = None;
    let mut done: Vec<(String, Option<i64>, u64, u64)> = Vec::new();
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Records { region, records } => {
                if write_error.is_none()
                    && let Err(e) = write(&region, &records)
                {
                    write_error = Some(e);
                }
            }
            Msg::Done {
                region,
                newest_us,
                pages,
                events,
            } => done.push((region, newest_us, pages, events)),
            Msg::Failed { region, error } => failures.push((region, error)),
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    if let Some(e) = write_error {
        return Err(e.context("storing LookupEvents records"));
    }
    for region in done
        .iter()
        .map(|d| &d.0)
        .chain(failures.iter().map(|f| &f.0))
    {
        set_last_request(store, region)?;
    }
    for (region, newest_us, pages, events) in done {
        let old = watermark(store, &region)?;
        let new = newest_us.max(old);
        // Rewritten even when unchanged: updated_at is when this run's last request was done.
        if let Some(w) = new {
            set_watermark(store, &region, w)?;
        }
        if let Some(r) = summary.regions.iter_mut().find(|r| r.region == region) {
            r.pages = pages;
            r.events = events;
            r.watermark_us = new;
        }
    }
    summary.requests = counters.requests.load(std::sync::atomic::Ordering::Relaxed);
    summary.throttles = counters
        .throttles
        .load(std::sync::atomic::Ordering::Relaxed);
    summary.records.files = summary.regions.len() as u64;
    summary.records.elapsed = started.elapsed();
    if !failures.is_empty() {
        let n = failures.len();
        let mut err = anyhow!(
            "{n} of {} regions failed (their watermarks are unchanged; what they fetched is stored): {summary}",
            summary.regions.len()
        );
        for (_, e) in failures.into_iter().rev() {
            err = err.context(format!("{e:#}"));
        }
        return Err(err);
    }
    Ok(summary)
}

fn add(total: &mut Summary, s: &Summary) {
    total.records += s.records;
    total.stored += s.stored;
    total.duplicates += s.duplicates;
    total.rejects += s.rejects;
    total.bytes += s.bytes;
}

fn client(base: &aws_config::SdkConfig, region: &str) -> aws_sdk_cloudtrail::Client {
    let conf = aws_sdk_cloudtrail::config::Builder::from(base)
        .region(aws_config::Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_cloudtrail::Client::from_conf(conf)
}

/// How a failed request is handled.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Throttled,
    Transient,
    Fatal,
}

fn classify(e: &SdkError<LookupEventsError, HttpResponse>) -> Failure {
    const THROTTLES: [&str; 5] = [
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    ];
    let status = e.raw_response().map(|r| r.status().as_u16());
    if e.code().is_some_and(|c| THROTTLES.contains(&c)) || status == Some(429) {
        return Failure::Throttled;
    }
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transient
        }
        SdkError::ServiceError(_) if status.is_some_and(|s| s >= 500) => Failure::Transient,
        _ => Failure::Fatal,
    }
}

/// Backoff before attempt `attempt` (1 = the first retry): exponential, capped, with jitter
/// (half fixed, half random, so retries of parallel regions spread out).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let d = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max);
    let half = d / 2;
    half + half.mul_f64(jitter())
}

/// A number in [0, 1) that differs per call (no RNG crate for one use).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn to_datetime(us: i64) -> DateTime {
    DateTime::from_secs_and_nanos(
        us.div_euclid(1_000_000),
        (us.rem_euclid(1_000_000) * 1000) as u32,
    )
}

fn event_us(e: &Event) -> Option<i64> {
    e.event_time()
        .map(|t| t.secs() * 1_000_000 + i64::from(t.subsec_nanos() / 1000))
}

/// Reads every page of one region; sends records as they come. Returns (newest event time,
/// pages, events).
async fn fetch_region(
    client: &aws_sdk_cloudtrail::Client,
    region: &str,
    (start_us, end_us): (i64, i64),
    mut pacer: Pacer,
    opts: &Options,
    counters: &Counters,
    tx: &mpsc::Sender<Msg>,
) -> Result<(Option<i64>, u64, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut token: Option<String> = None;
    let mut newest: Option<i64> = None;
    let (mut pages, mut events) = (0u64, 0u64);
    let mut pending: Vec<String> = Vec::new();
    loop {
        let mut attempt = 0u32;
        let out = loop {
            attempt += 1;
            pacer.wait().await;
            counters.requests.fetch_add(1, Relaxed);
            let sent = client
                .lookup_events()
                .start_time(to_datetime(start_us))
                .end_time(to_datetime(end_us))
                .max_results(PAGE_SIZE)
                .set_next_token(token.clone())
                .send()
                .await;
            match sent {
                Ok(out) => break out,
                Err(e) => {
                    let kind = classify(&e);
                    if kind == Failure::Throttled {
                        counters.throttles.fetch_add(1, Relaxed);
                    }
                    if kind == Failure::Fatal || attempt >= opts.max_attempts {
                        return Err(anyhow!(
                            "request failed (attempt {attempt} of {}): {}",
                            opts.max_attempts,
                            DisplayErrorContext(&e)
                        ));
                    }
                    let wait = backoff(attempt, opts.base_backoff, opts.max_backoff);
                    tracing::info!(region, attempt, ?kind, ?wait, "LookupEvents retry");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        pages += 1;
        for e in out.events() {
            events += 1;
            if let Some(t) = event_us(e) {
                newest = newest.max(Some(t));
            }
            match e.cloud_trail_event() {
                Some(rec) => pending.push(rec.to_string()),
                // No record text: still a record read, rejected by the record path.
                None => pending.push(String::new()),
            }
        }
        if pending.len() >= WRITE_RECORDS {
            send_records(tx, region, &mut pending).await?;
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    send_records(tx, region, &mut pending).await?;
    Ok((newest, pages, events))
}

async fn send_records(
    tx: &mpsc::Sender<Msg>,
    region: &str,
    pending: &mut Vec<String>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    tx.send(Msg::Records {
        region: region.to_string(),
        records: std::mem::take(pending),
    })
    .await
    .map_err(|_| anyhow!("the writer stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(20));
        for attempt in 1..12 {
            let full = b.saturating_mul(1 << (attempt - 1).min(16)).min(m);
            let d = backoff(attempt, b, m);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?} of {full:?}");
        }
        let spread: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(3, b, m).as_nanos()).collect();
        assert!(spread.len() > 10, "jitter: {spread:?}");
    }

    #[test]
    fn a_pacer_spaces_requests() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut p = Pacer::new(Duration::from_millis(50));
            let mut last: Option<tokio::time::Instant> = None;
            for _ in 0..5 {
                p.wait().await;
                let now = tokio::time::Instant::now();
                if let Some(l) = last {
                    assert!(now - l >= Duration::from_millis(50));
                }
                last = Some(now);
            }
        });
    }
}
