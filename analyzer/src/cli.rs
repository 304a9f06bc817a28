//! The `credtrail` command line: the clap derive structs are the configuration (style.md #6).
//! Adding a subcommand is one `Command` variant and one arm in [`run`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::demo::{self, DemoOptions};
use crate::terminal::thousands;
use credtrail_sim::{self as simulate, Attack, SimConfig};

/// Tells ECS operators who used their tasks' IAM credentials, from where, and which
/// permissions nobody needs.
#[derive(Debug, Parser)]
#[command(name = "credtrail", version, long_version = long_version(), about)]
pub struct Cli {
    /// The analyzer's DuckDB store.
    #[arg(long, global = true, default_value = "credtrail.duckdb")]
    pub store: PathBuf,

    /// credtrail.toml: thresholds, expected egress, severity overrides, suppressions (default:
    /// /etc/credtrail/credtrail.toml when it exists).
    #[arg(long, global = true, env = crate::config::ENV)]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate an ECS fleet: audit logs, agent snapshots, describe-tasks, CloudTrail and IAM
    /// files in AWS's own formats, with labelled attacks (truth.jsonl).
    Simulate(SimulateArgs),
    /// Simulate a small fleet, collect it, and print a one-screen summary. Needs nothing else.
    Demo(DemoArgs),
    /// Load CloudTrail, IAM, ECS, audit-log and network-inventory data into the store (`--store`).
    Ingest(crate::ingest::IngestArgs),
    /// Print the built-in IAM action catalog's version, source and counts.
    Catalog,
    /// What the store can and cannot judge: each host's covered intervals, tasks on no covered
    /// host, host names shared by several container instances, missing inputs, and CloudTrail's
    /// time range against the audit log's. Opens the store read-only.
    Coverage(crate::coverage::CoverageArgs),
    /// Run the detections over the store and print findings; exit status 3 with `--fail-on`.
    Analyze(crate::analyze::AnalyzeArgs),
    /// Least privilege per task and execution role: granted vs used vs unverifiable actions,
    /// per-family use, and a recommended policy (written with `--out`).
    Recommend(crate::privilege::RecommendArgs),
    /// Run DuckDB SQL over the store, opened read-only, and print the rows as a table, CSV or
    /// JSON. Statements that would write files (COPY, EXPORT, ATTACH, …) are refused.
    Sql(crate::sql::SqlArgs),
    /// Run a named investigation over the store, opened read-only (`--list` shows them).
    Query(crate::investigation::QueryArgs),
    /// Write DIR/report.md and DIR/report.html: findings, least privilege per role, and
    /// timelines, as one self-contained page (no script, no external resource).
    Report(crate::report::ReportArgs),
    /// The scheduled analysis of the configuration's [schedule]: ingest CloudTrail and the
    /// collectors' segments, write (and upload) the report, print the findings; exit status 3
    /// on findings at or above [analyze] fail_on.
    RunSchedule(crate::schedule::RunScheduleArgs),
    /// Write the detections for another engine: `--engine spark` (the generated Spark SQL, a
    /// PySpark driver and the store's tables as Parquet) or `--engine athena` (CREATE EXTERNAL
    /// TABLE DDL with partition projection over the segments and the CloudTrail bucket).
    ExportSql(crate::export_sql::ExportSqlArgs),
}

/// `credtrail --version`: the program's version and the built-in catalog's.
pub fn long_version() -> String {
    let (actions, operations) = crate::catalog::versions();
    format!(
        "{}\nIAM action catalog {actions}; API operations from {operations}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The configuration file of this run: `--config`, `CREDTRAIL_CONFIG` (clap reads both into
/// `path`), else the default location when it exists.
fn config(path: Option<&std::path::Path>) -> Result<crate::config::Config> {
    match crate::config::Config::locate(path) {
        Some(p) => Ok(crate::config::Config::load(&p)?),
        None => Ok(crate::config::Config::default()),
    }
}

fn parse_attacks(s: &str) -> Result<std::collections::BTreeSet<Attack>, String> {
    Attack::parse_list(s).map_err(|e| e.to_string())
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output directory (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: same seed and options, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Container instances (EC2 hosts running the ECS agent).
    #[arg(long, default_value_t = 6)]
    pub hosts: usize,
    /// Simulated hours, from 2026-11-16T00:00:00Z.
    #[arg(long, default_value_t = 6)]
    pub hours: u32,
    /// ECS clusters the hosts are spread over (at most 8).
    #[arg(long, default_value_t = 2)]
    pub clusters: usize,
    /// Comma-separated attack scenarios, `all` or `none`: credential-guessing, shell-curl,
    /// fetch-foreign, fetch-burst, stolen-outside, stolen-other-task, use-after-stop,
    /// use-without-fetch, denied-burst, unused-permissions, unused-role.
    #[arg(long, default_value = "all", value_parser = parse_attacks)]
    pub attacks: std::collections::BTreeSet<Attack>,
    /// Threads writing CloudTrail (the output does not depend on it).
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the simulated and collected files in this directory (default: a temporary one).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Run one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(a) => simulate_command(&a),
        Command::Ingest(a) => crate::ingest::run(&cli.store, &a, &mut std::io::stdout().lock()),
        Command::Analyze(a) => {
            let store = crate::store::Store::open(&cli.store)?;
            let mut out = std::io::stdout().lock();
            let config = config(cli.config.as_deref())?;
            let fail = crate::analyze::analyze(&store, &a, &config, &mut out)?;
            out.flush()?;
            if fail {
                std::process::exit(3);
            }
            Ok(())
        }
        Command::Recommend(a) => {
            let store = crate::store::Store::open(&cli.store)?;
            let mut out = std::io::stdout().lock();
            crate::privilege::recommend(&store, &a, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Sql(a) => {
            let store = crate::store::Store::open_read_only(&cli.store)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::sql::command(&store, &a, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Query(a) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::investigation::command(&cli.store, &a, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Report(a) => {
            let store = crate::store::Store::open(&cli.store)?;
            let config = config(cli.config.as_deref())?;
            crate::report::run(&store, &a, &config, &mut std::io::stdout().lock())
        }
        Command::RunSchedule(a) => crate::schedule::run(
            &cli.store,
            cli.config.as_deref(),
            &a,
            &mut std::io::stdout().lock(),
        ),
        Command::Coverage(a) => {
            let store = crate::store::Store::open_read_only(&cli.store)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::coverage::command(&store, &a, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::ExportSql(a) => {
            let store = || Ok(crate::store::Store::open(&cli.store)?);
            crate::export_sql::run(store, &a)
        }
        Command::Catalog => {
            writeln!(
                std::io::stdout().lock(),
                "{}",
                crate::catalog::get().describe()
            )?;
            Ok(())
        }
        Command::Demo(a) => {
            let opts = DemoOptions {
                out: a.out,
                seed: a.seed,
                ..DemoOptions::default()
            };
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            demo::run(&opts, &mut lock)?;
            lock.flush()?;
            Ok(())
        }
    }
}

fn simulate_command(a: &SimulateArgs) -> Result<()> {
    let cfg = SimConfig {
        seed: a.seed,
        hosts: a.hosts,
        hours: a.hours,
        clusters: a.clusters,
        attacks: a.attacks.clone(),
        threads: a.threads.max(1),
    };
    let s = simulate::run(&cfg, &a.out)?;
    let ct = &s.cloudtrail;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "simulated {} hosts in {} clusters, {} tasks, {} → {} (seed {})",
        s.hosts.len(),
        s.clusters,
        thousands(s.tasks as u64),
        s.start,
        s.end,
        a.seed
    )?;
    writeln!(
        out,
        "audit logs: {} lines in {} files; agent snapshots: {}; describe-tasks files: {}; task definitions: {}",
        thousands(s.audit.lines),
        thousands(s.audit.files),
        thousands(s.snapshots),
        thousands(s.ecs.describe_tasks_files),
        thousands(s.ecs.task_definition_files)
    )?;
    writeln!(
        out,
        "cloudtrail: {} records ({} duplicate, {} late deliveries) in {} files, {} MB gzip",
        thousands(ct.records),
        thousands(ct.duplicates),
        thousands(ct.late),
        thousands(ct.files),
        thousands(ct.bytes / 1_000_000)
    )?;
    writeln!(
        out,
        "network inventory: {} hourly snapshots ({} files, {} ENI entries) under network/<time>/; ingest each with --taken-at <time>",
        s.network.snapshots.len(),
        thousands(s.network.files),
        thousands(s.network.interfaces)
    )?;
    writeln!(
        out,
        "truth: {} planted findings in truth.jsonl",
        s.truth.len()
    )?;
    let rate = ct.records as f64 / s.total_seconds.max(1e-9);
    writeln!(
        out,
        "took {:.1} s ({:.1} s CloudTrail): {} CloudTrail records/s overall, {} records/s while writing CloudTrail, {} threads",
        s.total_seconds,
        s.cloudtrail_seconds,
        thousands(rate as u64),
        thousands((ct.records as f64 / s.cloudtrail_seconds.max(1e-9)) as u64),
        cfg.threads
    )?;
    writeln!(out, "wrote {}", a.out.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn store_is_global() {
        let a = Cli::try_parse_from(["credtrail", "--store", "a.duckdb", "demo"]).unwrap();
        assert_eq!(a.store, PathBuf::from("a.duckdb"));
        let b = Cli::try_parse_from(["credtrail", "demo", "--store", "b.duckdb"]).unwrap();
        assert_eq!(b.store, PathBuf::from("b.duckdb"));
    }

    #[test]
    fn attack_lists_are_checked() {
        let ok = Cli::try_parse_from([
            "credtrail",
            "simulate",
            "--out",
            "x",
            "--attacks",
            "shell-curl,unused-role",
        ]);
        match ok.unwrap().command {
            Command::Simulate(a) => assert_eq!(a.attacks.len(), 2),
            _ => panic!("wrong command"),
        }
        let err = Cli::try_parse_from([
            "credtrail",
            "simulate",
            "--out",
            "x",
            "--attacks",
            "shell-curly",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown attack \"shell-curly\""), "{err}");
    }
}
