//! `credtrail export-sql`: the detections for another engine. `--engine spark` writes the Spark
//! job (spark.rs), `--engine athena` the Athena DDL over the segments and the CloudTrail bucket
//! (athena.rs).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::store::Store;

/// Engines `export-sql` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Apache Spark: the generated SQL, a PySpark driver and the store's tables as Parquet.
    Spark,
    /// Amazon Athena: CREATE EXTERNAL TABLE with partition projection.
    Athena,
}

/// `credtrail export-sql`.
#[derive(Debug, Args)]
pub struct ExportSqlArgs {
    #[arg(long, value_enum)]
    pub engine: Engine,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Athena: the segments' s3://bucket/prefix/ (the collector's --s3-url).
    #[arg(long, required_if_eq("engine", "athena"))]
    pub segments_url: Option<String>,
    /// Athena: the s3://bucket/prefix/ holding the trail's AWSLogs/.
    #[arg(long, required_if_eq("engine", "athena"))]
    pub cloudtrail_url: Option<String>,
    /// Athena: the database the tables are created in.
    #[arg(long, default_value = "credtrail")]
    pub database: String,
    /// Athena: the first day partition projection lists (YYYY-MM-DD).
    #[arg(long, default_value = "2026-01-01")]
    pub since: String,
    /// Athena: a cluster name of the segment keys (repeatable; none: queries name the cluster).
    #[arg(long = "cluster")]
    pub clusters: Vec<String>,
    /// Athena: a region of the trail (repeatable; none: queries name the region).
    #[arg(long = "region")]
    pub regions: Vec<String>,
}

/// Runs `export-sql`. Spark reads the store (`store` opens it); Athena's DDL needs only the schema.
pub fn run(store: impl FnOnce() -> Result<Store>, a: &ExportSqlArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    match a.engine {
        Engine::Spark => crate::spark::export(&store()?, &a.out),
        Engine::Athena => {
            let layout = crate::athena::Layout {
                segments_url: crate::athena::s3_url(
                    "--segments-url",
                    a.segments_url.as_deref().unwrap_or_default(),
                )?,
                cloudtrail_url: crate::athena::s3_url(
                    "--cloudtrail-url",
                    a.cloudtrail_url.as_deref().unwrap_or_default(),
                )?,
                database: a.database.clone(),
                since: a.since.clone(),
                clusters: a.clusters.clone(),
                regions: a.regions.clone(),
            };
            let ddl = crate::athena::ddl(&Store::open_in_memory()?, &layout)?;
            let path = a.out.join("athena.sql");
            std::fs::write(&path, ddl).with_context(|| format!("writing {}", path.display()))
        }
    }
}
