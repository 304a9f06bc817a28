//! `credtrail ingest …`: fills the analyzer's store from every source the findings need. Each
//! source has its own module; this one holds the flags and prints the summary line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::store::Store;
use crate::{audit, catalog, cloudtrail, ecs, iam};

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(subcommand)]
    pub source: Source,
}

#[derive(Debug, Subcommand)]
pub enum Source {
    /// CloudTrail records: files and directories (recursively) of S3-delivered `.json.gz`,
    /// `.json` (`{"Records":[…]}` or a plain array) and JSON lines. Digest files are skipped;
    /// records already stored (same eventID) are not added again.
    Cloudtrail(CloudtrailArgs),
    /// `aws iam get-account-authorization-details` output: roles, policies, expanded grants.
    Iam(IamArgs),
    /// `aws ecs describe-tasks` / `describe-task-definition` output (files or directories).
    Ecs(EcsArgs),
    /// The collector's Parquet segments and raw ECS agent audit log files (or directories).
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct CloudtrailArgs {
    /// Files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Parse threads (default: one per CPU).
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
pub struct AuditArgs {
    /// Segment files, raw audit log files, or directories holding either.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// `host` recorded for rows from raw files (default: the container instance ARN the
    /// file's lines name).
    #[arg(long)]
    pub host: Option<String>,
}

/// Runs one ingest against the store at `store_path`; prints the summary line to stdout.
pub fn run(store_path: &Path, args: &IngestArgs, out: &mut dyn Write) -> Result<()> {
    let store = Store::open(store_path)?;
    catalog::get().install(&store)?;
    let line = match &args.source {
        Source::Cloudtrail(a) => {
            for p in &a.paths {
                if p.to_string_lossy().starts_with("s3://") {
                    bail!(
                        "{}: reading CloudTrail from S3 is not built in this version; copy the files locally (aws s3 sync) and ingest the directory",
                        p.display()
                    );
                }
            }
            let opts = cloudtrail::Options {
                threads: a.threads,
                progress: !a.no_progress,
            };
            cloudtrail::ingest_paths(&store, &a.paths, &opts)?.to_string()
        }
        Source::Iam(a) => iam::ingest(&store, &a.file)?.to_string(),
        Source::Ecs(a) => ecs::ingest(&store, &a.paths)?.to_string(),
        Source::Audit(a) => {
            let opts = audit::Options {
                host: a.host.clone(),
            };
            audit::ingest(&store, &a.paths, &opts)?.to_string()
        }
    };
    writeln!(out, "{line}")?;
    Ok(())
}
