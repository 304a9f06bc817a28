//! `credtrail run-schedule`: the scheduled analysis (the weekly systemd timer's service) as the
//! configuration's `[schedule]` describes it — ingest CloudTrail and the collectors' segments,
//! write the report (uploaded when `[report] s3_url` is set), then print the findings and exit
//! 3 when one is at or above `[analyze] fail_on`.
//!
//! Each step is a command line of this program ([`steps`]), parsed by the same `Cli` and run
//! in this process one after the other: what the schedule does is exactly what a person would
//! type, `--dry-run` prints it, and the ECS scheduled task
//! (`deploy/cloudformation/credtrail-analyzer-schedule.json`) runs the same command lines as
//! its containers (`analyzer/tests/deploy.rs` checks both). The first step that fails stops
//! the run with its error; the store keeps what the earlier steps committed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};

use crate::config::Schedule;

#[derive(Debug, Args)]
pub struct RunScheduleArgs {
    /// Print each step's command line and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The command lines of the schedule, in order (each starting with `credtrail`). `store` is the
/// store when the schedule names none; `config` is passed to every step when given; `upload`:
/// whether the report step uploads (`[report] s3_url`), which then gets the schedule's region.
pub fn steps(
    schedule: &Schedule,
    store: &Path,
    config: Option<&Path>,
    upload: bool,
) -> Vec<Vec<String>> {
    let store = schedule.store.as_deref().unwrap_or(store);
    let mut head = vec![
        "credtrail".to_string(),
        "--store".to_string(),
        store.display().to_string(),
    ];
    if let Some(c) = config {
        head.extend(["--config".to_string(), c.display().to_string()]);
    }
    let step = |args: &[&str], rest: &[String]| -> Vec<String> {
        let mut v = head.clone();
        v.extend(args.iter().map(|a| a.to_string()));
        v.extend(rest.iter().cloned());
        v
    };
    let mut out = Vec::new();
    let options = |since: bool| {
        let mut o = Vec::new();
        if let (true, Some(s)) = (since, &schedule.since) {
            o.extend(["--since".to_string(), s.clone()]);
        }
        if let Some(r) = &schedule.region {
            o.extend(["--region".to_string(), r.clone()]);
        }
        o
    };
    if !schedule.cloudtrail.is_empty() {
        let mut rest = options(true);
        rest.extend(schedule.cloudtrail.iter().cloned());
        out.push(step(&["ingest", "cloudtrail", "--no-progress"], &rest));
    }
    if !schedule.segments.is_empty() {
        // `ingest audit --since` lists S3 partitions; local directories are read whole.
        let all_s3 = schedule.segments.iter().all(|s| s.starts_with("s3://"));
        let mut rest = options(all_s3);
        rest.extend(schedule.segments.iter().cloned());
        out.push(step(&["ingest", "audit"], &rest));
    }
    let report_dir = schedule.report_dir.clone().unwrap_or_else(|| {
        store
            .parent()
            .map_or_else(|| PathBuf::from("report"), |d| d.join("report"))
    });
    let mut rest = vec![report_dir.display().to_string()];
    if upload {
        rest.extend(options(false));
    }
    out.push(step(&["report", "--out"], &rest));
    out.push(step(&["analyze", "--format", "jsonl"], &[]));
    out
}

/// Runs the schedule of the configuration at `config_path` (located as every command does).
pub fn run(
    store: &Path,
    config_path: Option<&Path>,
    args: &RunScheduleArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let Some(path) = crate::config::Config::locate(config_path) else {
        bail!(
            "run-schedule needs a configuration file with a [schedule] section (--config, {}, or {})",
            crate::config::ENV,
            crate::config::DEFAULT_PATH
        );
    };
    let config = crate::config::Config::load(&path)?;
    let Some(schedule) = &config.schedule else {
        bail!("{}: no [schedule] section", path.display());
    };
    let steps = steps(schedule, store, Some(&path), config.report_s3_url.is_some());
    let count = steps.len();
    for (i, argv) in steps.into_iter().enumerate() {
        let shown: Vec<String> = argv
            .iter()
            .map(|a| crate::terminal::escape_control(a).into_owned())
            .collect();
        writeln!(out, "step {}/{count}: {}", i + 1, shown.join(" "))?;
        out.flush()?;
        if args.dry_run {
            continue;
        }
        let cli = crate::cli::Cli::try_parse_from(argv)
            .with_context(|| format!("step {}: {}", i + 1, shown.join(" ")))?;
        crate::cli::run(cli).with_context(|| format!("step {}/{count} failed", i + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            store: Some("/var/lib/x/credtrail.duckdb".into()),
            cloudtrail: vec!["s3://trail/AWSLogs/".into()],
            segments: vec!["s3://seg/prefix/".into()],
            since: Some("8d".into()),
            region: None,
            report_dir: None,
        }
    }

    #[test]
    fn every_step_parses_and_the_store_and_since_reach_them() {
        let steps = steps(&schedule(), Path::new("ignored.duckdb"), None, false);
        assert_eq!(steps.len(), 4);
        for s in &steps {
            let cli = crate::cli::Cli::try_parse_from(s).unwrap();
            assert_eq!(cli.store, PathBuf::from("/var/lib/x/credtrail.duckdb"));
        }
        assert_eq!(
            steps[0][3..],
            [
                "ingest",
                "cloudtrail",
                "--no-progress",
                "--since",
                "8d",
                "s3://trail/AWSLogs/"
            ]
        );
        assert_eq!(
            steps[1][3..],
            ["ingest", "audit", "--since", "8d", "s3://seg/prefix/"]
        );
        assert_eq!(steps[2][3..], ["report", "--out", "/var/lib/x/report"]);
        assert_eq!(steps[3][3..], ["analyze", "--format", "jsonl"]);
    }

    #[test]
    fn local_segments_are_read_whole_and_the_config_is_passed_on() {
        let mut s = schedule();
        s.store = None;
        s.cloudtrail.clear();
        s.segments = vec!["/srv/segments".into(), "s3://seg/p/".into()];
        s.region = Some("eu-west-1".into());
        let steps = steps(
            &s,
            Path::new("/data/c.duckdb"),
            Some(Path::new("/etc/c.toml")),
            true,
        );
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[1][5..],
            ["report", "--out", "/data/report", "--region", "eu-west-1"]
        );
        assert_eq!(
            steps[0],
            [
                "credtrail",
                "--store",
                "/data/c.duckdb",
                "--config",
                "/etc/c.toml",
                "ingest",
                "audit",
                "--region",
                "eu-west-1",
                "/srv/segments",
                "s3://seg/p/"
            ]
        );
        crate::cli::Cli::try_parse_from(&steps[0]).unwrap();
    }
}
