//! `credtrail analyze`: runs the detections (detect.rs), applies the configuration
//! (config.rs: thresholds, severity overrides, suppressions), and prints the findings as a table,
//! Markdown, JSON, JSON lines, OCSF (ocsf.rs) or ASFF (asff.rs).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::detect::{
    Finding, RESERVED_PARAMS, RunOptions, Severity, builtin, check_params, is_ident, load_dir, run,
};
use crate::store::Store;
use crate::terminal::escape_control;

/// Output formats of `analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Json,
    Markdown,
    /// OCSF Detection Finding (class 2004), one JSON object per line.
    Ocsf,
    /// AWS Security Hub findings (ASFF), a JSON array as `BatchImportFindings` takes it.
    Asff,
}

/// `credtrail analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Only events at or after this time (e.g. 2026-11-20T13:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only findings at or above this severity (default: the configuration's, else low).
    #[arg(long, value_enum)]
    pub min_severity: Option<Severity>,
    /// Exit with status 3 when a printed finding that is not suppressed is at or above this
    /// severity (default: the configuration's `[analyze] fail_on`).
    #[arg(long, value_enum)]
    pub fail_on: Option<Severity>,
    /// Override a detection parameter: `name=value` (every detection declaring it) or
    /// `detection_id.name=value`. Repeatable.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Load detections from this directory instead of the built-in ones.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Print only what changed since the previous recorded run: new findings, resolved ones,
    /// and ongoing ones whose severity changed (each with its `change`). Every run without
    /// `--since`/`--until` is recorded in the store, with or without this flag.
    #[arg(long, conflicts_with_all = ["since", "until"])]
    pub since_last_run: bool,
    /// Judge the whole history, not only what changed since the previous recorded run
    /// (incremental runs judge the events since its data watermark less `[analyze]
    /// horizon_hours`, and the findings they touch).
    #[arg(long, conflicts_with_all = ["since", "until"])]
    pub full: bool,
}

/// A recorded run's outcome: every current finding (after the configuration), and the record.
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub failed: Vec<(String, String)>,
    pub expired: Vec<crate::config::Expired>,
    pub recorded: crate::findings::Recorded,
}

/// A recorded run over the whole store: full or incremental (increment.rs), recorded in the
/// store (findings.rs); the current findings come back with the configuration applied afresh,
/// also to those this run did not judge again.
pub fn recorded(
    store: &Store,
    dets: &[crate::detect::Detection],
    opts: &RunOptions,
    config: &crate::config::Config,
    command: &str,
    full: bool,
) -> Result<Outcome> {
    let started = crate::store::now_us();
    let horizon = config
        .horizon_hours
        .unwrap_or(crate::increment::DEFAULT_HORIZON_HOURS);
    let plan = crate::increment::plan(store, dets, opts, full, horizon)?;
    if let crate::increment::Mode::Full(why) = &plan.mode {
        tracing::info!("full analysis: {why}");
    }
    let (mut report, run) = crate::increment::run(store, dets, opts, &plan, command, started)?;
    for (step, secs) in &report.timings {
        tracing::info!("{step}: {secs:.2} s");
    }
    let today = crate::config::today();
    config.apply(&mut report.findings, today);
    let failed: Vec<String> = report.failed.iter().map(|(f, _)| f.clone()).collect();
    let recorded = crate::findings::record(store, &run, dets, &report.findings, &failed)?;
    let mut findings = recorded.current.clone();
    for f in &mut findings {
        config.unapply(f);
    }
    let expired = config.apply(&mut findings, today);
    Ok(Outcome {
        findings,
        failed: report.failed,
        expired,
        recorded,
    })
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: want name=value"))?;
    let k = k.trim();
    let ok = match k.split_once('.') {
        Some((a, b)) => is_ident(a) && is_ident(b),
        None => is_ident(k),
    };
    if !ok || RESERVED_PARAMS.contains(&k) {
        return Err(format!("{k:?} is not a parameter name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Run `analyze`; returns whether a finding reached `--fail-on` (the caller exits with 3).
pub fn analyze(
    store: &Store,
    a: &AnalyzeArgs,
    config: &crate::config::Config,
    out: &mut dyn Write,
) -> Result<bool> {
    let loaded = match &a.queries {
        Some(dir) => load_dir(dir)?,
        None => builtin(),
    };
    for e in &loaded.errors {
        tracing::error!("skipped detection: {e}");
        eprintln!("warning: skipped detection: {e}");
    }
    let flags = RunOptions {
        params: a.params.iter().cloned().collect(),
        ..RunOptions::default()
    };
    check_params(&loaded.detections, &flags)?;
    config.check(&loaded.detections)?;
    let opts = RunOptions {
        since: a.since.clone(),
        until: a.until.clone(),
        params: config.run_params(&a.params),
    };
    store.check_time("--since", opts.since.as_deref())?;
    store.check_time("--until", opts.until.as_deref())?;
    // A run over a chosen slice of time is not the store's state: only whole runs are recorded.
    let (findings, failed, expired, recorded) = if opts.since.is_none() && opts.until.is_none() {
        let o = recorded(store, &loaded.detections, &opts, config, "analyze", a.full)?;
        (o.findings, o.failed, o.expired, Some(o.recorded))
    } else {
        let mut report = run(store, &loaded.detections, &opts);
        let expired = config.apply(&mut report.findings, crate::config::today());
        (report.findings, report.failed, expired, None)
    };
    for (file, e) in &failed {
        eprintln!("warning: detection failed and was skipped: {file}: {e}");
    }
    for e in &expired {
        eprintln!("warning: {}", escape_control(&e.to_string()));
    }
    let min = a
        .min_severity
        .or(config.min_severity)
        .unwrap_or(Severity::Low);
    let shown = match &recorded {
        Some(r) if a.since_last_run => {
            if a.format == Format::Table {
                writeln!(out, "{}", r.summary())?;
            }
            r.changes()
        }
        _ => findings,
    };
    let findings: Vec<Finding> = shown.into_iter().filter(|f| f.severity >= min).collect();
    let defaults =
        crate::asff::Defaults::new(config.aws_region.clone(), config.aws_account_id.clone());
    render(&findings, a.format, &defaults, out)?;
    // A resolved finding is not there any more: it never fails the run.
    Ok(a.fail_on.or(config.fail_on).is_some_and(|s| {
        findings.iter().any(|f| {
            f.suppressed.is_none()
                && f.severity >= s
                && f.change
                    .as_ref()
                    .is_none_or(|c| c.state != crate::findings::State::Resolved)
        })
    }))
}

/// Print findings in one of the formats (`asff`: the region and account for findings whose ARNs
/// name none).
pub fn render(
    findings: &[Finding],
    format: Format,
    asff: &crate::asff::Defaults,
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        Format::Jsonl => {
            for f in findings {
                writeln!(out, "{}", serde_json::to_string(f)?)?;
            }
        }
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(findings)?)?,
        Format::Table => table(findings, out)?,
        Format::Markdown => markdown(findings, out)?,
        Format::Ocsf => {
            let now = crate::store::now_us().div_euclid(1000);
            for f in findings {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&crate::ocsf::finding(f, now))?
                )?;
            }
        }
        Format::Asff => {
            let now = crate::store::now_us().div_euclid(1_000_000);
            let all = findings
                .iter()
                .map(|f| crate::asff::finding(f, now, asff))
                .collect::<Result<Vec<_>>>()?;
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        }
    }
    Ok(())
}

/// The title, with the suppression that covers the finding (or the severity it was detected at).
pub fn shown_title(f: &Finding) -> String {
    let mut t = f.title.clone();
    if let Some(c) = &f.change {
        t = format!("[{c}] {t}");
    }
    if let Some(d) = f.detected_severity {
        t.push_str(&format!(" [detected as {}]", d.as_str()));
    }
    if let Some(s) = &f.suppressed {
        t.push_str(&format!(" [{s}]"));
    }
    t
}

fn subject(f: &Finding) -> String {
    f.task_arn
        .clone()
        .or_else(|| f.role_arn.clone())
        .or_else(|| f.host.clone())
        .unwrap_or_default()
}

fn table_rows(findings: &[Finding]) -> Vec<[String; 7]> {
    findings
        .iter()
        .map(|f| {
            [
                f.severity.as_str().to_string(),
                f.kind.clone(),
                f.first_seen.clone().unwrap_or_default(),
                f.count.to_string(),
                escape_control(&subject(f)).into_owned(),
                escape_control(f.source_ip.as_deref().unwrap_or("")).into_owned(),
                escape_control(&shown_title(f)).into_owned(),
            ]
        })
        .collect()
}

const HEADERS: [&str; 7] = [
    "SEVERITY",
    "KIND",
    "FIRST SEEN",
    "COUNT",
    "TASK / ROLE / HOST",
    "SOURCE IP",
    "TITLE",
];

fn table(findings: &[Finding], out: &mut dyn Write) -> Result<()> {
    if findings.is_empty() {
        writeln!(out, "no findings")?;
        return Ok(());
    }
    let rows = table_rows(findings);
    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == cells.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(&HEADERS.map(String::from)))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    writeln!(out, "{} findings", findings.len())?;
    Ok(())
}

fn md_cell(s: &str) -> String {
    escape_control(s)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "\\`")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn markdown(findings: &[Finding], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "| {} |", HEADERS.join(" | ").to_lowercase())?;
    writeln!(out, "|{}", "---|".repeat(HEADERS.len()))?;
    for f in findings {
        let cells = [
            f.severity.as_str().to_string(),
            f.kind.clone(),
            f.first_seen.clone().unwrap_or_default(),
            f.count.to_string(),
            subject(f),
            f.source_ip.clone().unwrap_or_default(),
            shown_title(f),
        ];
        let cells: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    Ok(())
}
