//! `credtrail ingest …`: fills the analyzer's store from every source the findings need. Each
//! source has its own module; this one holds the flags and prints the summary line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::store::Store;
use crate::{audit, catalog, cloudtrail, ecs, iam, network, s3};

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(subcommand)]
    pub source: Source,
}

#[derive(Debug, Subcommand)]
pub enum Source {
    /// CloudTrail records: files and directories (recursively) of S3-delivered `.json.gz`,
    /// `.json` (`{"Records":[…]}` or a plain array) and JSON lines; or, with `--lookup`, the
    /// event history of each `--region` (LookupEvents, from the last run's watermark). Digest
    /// files are skipped; records already stored (same eventID) are not added again.
    Cloudtrail(CloudtrailArgs),
    /// `aws iam get-account-authorization-details` output: roles, policies, expanded grants.
    Iam(IamArgs),
    /// `aws ecs describe-tasks` / `describe-task-definition` output (files or directories).
    Ecs(EcsArgs),
    /// The collector's Parquet segments and raw ECS agent audit log files (or directories).
    Audit(AuditArgs),
    /// The network inventory: `aws ec2 describe-network-interfaces`, `describe-vpc-endpoints`
    /// and `describe-subnets` output (files or directories), one snapshot per file.
    Network(NetworkArgs),
}

#[derive(Debug, Args)]
pub struct CloudtrailArgs {
    /// Files, directories, or `s3://BUCKET/PREFIX` (objects streamed from S3).
    #[arg(required_unless_present = "lookup", conflicts_with = "lookup")]
    pub paths: Vec<PathBuf>,
    /// Read the event history through CloudTrail's LookupEvents API instead of files (AWS
    /// credentials from the standard chain: environment, profile, ECS container, instance).
    #[arg(long, requires = "regions")]
    pub lookup: bool,
    /// With `--lookup`, a region to look up (repeat for several; fetched in parallel). For
    /// `s3://` paths, the bucket's region (default: the environment's, else us-east-1).
    #[arg(long = "region", id = "regions", value_name = "REGION")]
    pub regions: Vec<String>,
    /// A time (2026-11-20T00:00:00Z, 2026-11-20) or an age (7d, 12h). With `--lookup`: the
    /// start for regions without a watermark yet (default and limit: 90 days back). For
    /// `s3://` paths in CloudTrail's layout: list only the day folders from that date on.
    #[arg(long)]
    pub since: Option<String>,
    /// Send AWS requests to this endpoint (a VPC endpoint or a local stand-in).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Attempts per LookupEvents request (throttled, 5xx or network errors are retried with
    /// backoff) before the region fails.
    #[arg(long, default_value_t = cloudtrail::lookup::MAX_ATTEMPTS, requires = "lookup")]
    pub max_attempts: u32,
    /// Keys per ListObjectsV2 page for `s3://` paths (tests use small pages).
    #[arg(long, hide = true)]
    pub list_page_size: Option<i32>,
    /// Parse threads (default: one per CPU). `s3://` objects are also fetched ahead by
    /// threads of their own (8), since fetching them is mostly waiting on the network.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct IamArgs {
    /// The JSON file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct EcsArgs {
    /// Files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Files, or directories walked for `.json` files. Each is the CLI's JSON of one call,
    /// recognised by its top-level key (`NetworkInterfaces`, `VpcEndpoints`, `Subnets`).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Region of entries that name none: VPC endpoints (else the region in their service
    /// name), ENIs and subnets without an availability zone.
    #[arg(long)]
    pub region: Option<String>,
    /// Account of entries without an `OwnerId`.
    #[arg(long)]
    pub account: Option<String>,
    /// When the snapshot was taken (RFC 3339, e.g. 2026-11-20T12:00:00Z); default: each
    /// file's modification time.
    #[arg(long, value_name = "RFC3339")]
    pub taken_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Segment files, raw audit log files, or directories holding either; or
    /// `s3://BUCKET/PREFIX` where the collector's segments are published.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Send S3 requests to this endpoint (a VPC endpoint or a local stand-in).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// The bucket's region (default: the environment's, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// `host` recorded for rows from raw files (default: the container instance ARN the
    /// file's lines name).
    #[arg(long)]
    pub host: Option<String>,
    /// A time (2026-11-20T00:00:00Z, 2026-11-20) or an age (7d, 12h): for `s3://` paths, list
    /// only the segments' `date=` partitions from that date on.
    #[arg(long)]
    pub since: Option<String>,
}

/// A `--since` value as µs since the epoch.
fn since(s: Option<&str>) -> Result<Option<i64>> {
    let now = crate::store::now_us();
    s.map(|s| {
        crate::timestamp::parse_since(s, now)
            .with_context(|| format!("--since {s:?}: not a time, a date or an age like 7d"))
    })
    .transpose()
}

/// Runs one ingest against the store at `store_path`; prints the summary line to stdout.
pub fn run(store_path: &Path, args: &IngestArgs, out: &mut dyn Write) -> Result<()> {
    let store = Store::open(store_path)?;
    catalog::get().install(&store)?;
    let line = match &args.source {
        Source::Cloudtrail(a) if a.lookup => {
            let opts = cloudtrail::lookup::Options {
                regions: a.regions.clone(),
                since_us: since(a.since.as_deref())?,
                endpoint_url: a.endpoint_url.clone(),
                max_attempts: a.max_attempts.max(1),
                ..cloudtrail::lookup::Options::default()
            };
            cloudtrail::lookup::ingest(&store, &opts)?.to_string()
        }
        Source::Cloudtrail(a) => {
            let opts = cloudtrail::Options {
                threads: a.threads,
                progress: !a.no_progress,
                fetchers: 0,
            };
            let (urls, local) = s3::split_urls(&a.paths)?;
            let mut lines = Vec::new();
            if !urls.is_empty() {
                let s3_opts = s3::Options {
                    endpoint_url: a.endpoint_url.clone(),
                    region: a.regions.first().cloned(),
                    since_us: since(a.since.as_deref())?,
                    page_size: a.list_page_size,
                };
                let (summary, lists) = s3::ingest_cloudtrail(&store, &urls, &s3_opts, &opts)?;
                lines.push(format!("{}; s3: {lists} list requests", summary.headline()));
                lines.extend(summary.skipped_lines());
            }
            if !local.is_empty() {
                lines.push(cloudtrail::ingest_paths(&store, &local, &opts)?.to_string());
            }
            lines.join("\n")
        }
        Source::Iam(a) => iam::ingest(&store, &a.file)?.to_string(),
        Source::Ecs(a) => ecs::ingest(&store, &a.paths)?.to_string(),
        Source::Network(a) => {
            let taken_at_us = a
                .taken_at
                .as_deref()
                .map(|t| {
                    crate::timestamp::parse_iso_us(t).with_context(|| {
                        format!("--taken-at {t:?}: not an RFC 3339 time like 2026-11-20T12:00:00Z")
                    })
                })
                .transpose()?;
            let opts = network::Options {
                region: a.region.clone(),
                account: a.account.clone(),
                taken_at_us,
            };
            network::ingest(&store, &a.paths, &opts)?.to_string()
        }
        Source::Audit(a) => {
            let opts = audit::Options {
                host: a.host.clone(),
                origin: None,
            };
            let (urls, local) = s3::split_urls(&a.paths)?;
            if a.since.is_some() && !local.is_empty() {
                bail!(
                    "ingest audit --since applies to s3:// paths only (local files and directories are read whole)"
                );
            }
            let mut lines = Vec::new();
            if !urls.is_empty() {
                let s3_opts = s3::Options {
                    endpoint_url: a.endpoint_url.clone(),
                    region: a.region.clone(),
                    since_us: since(a.since.as_deref())?,
                    page_size: None,
                };
                lines.push(s3::ingest_audit(&store, &urls, &s3_opts, &opts)?.to_string());
            }
            if !local.is_empty() {
                lines.push(audit::ingest(&store, &local, &opts)?.to_string());
            }
            lines.join("\n")
        }
    };
    writeln!(out, "{line}")?;
    Ok(())
}
