//! `credtrail demo`: simulate a small fleet into a temporary directory, run the collector over
//! every host once, and print a one-screen summary of what exists so far.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use credtrail_collector::Config;

use crate::terminal::{escape_control, thousands};
use credtrail_sim::{self as simulate, Attack, SimConfig};

/// What the demo simulates and where it keeps its files.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep everything here; `None` uses a temporary directory removed at the end.
    pub out: Option<PathBuf>,
    pub seed: u64,
    pub hosts: usize,
    pub hours: u32,
    pub clusters: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            out: None,
            seed: 7,
            hosts: 6,
            hours: 6,
            clusters: 2,
        }
    }
}

/// What the collector stored, read back from its Parquet segments.
#[derive(Debug, Default)]
struct Collected {
    files: u64,
    rejected: u64,
    gaps: u64,
    segments: u64,
    stored_rows: u64,
    stored_rejected: u64,
    hosts: u64,
    by_status: Vec<(String, u64)>,
    by_type: Vec<(String, u64)>,
    clients: Vec<(String, u64)>,
}

fn has_parquet(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_parquet(&p)
        } else {
            p.extension().is_some_and(|x| x == "parquet")
        }
    })
}

fn sql_quote(p: &Path) -> String {
    p.display().to_string().replace('\'', "''")
}

fn query_pairs(conn: &duckdb::Connection, sql: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn
        .prepare(sql)
        .with_context(|| format!("preparing {sql}"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .with_context(|| format!("running {sql}"))?;
    let mut out = Vec::new();
    for r in rows {
        let (k, v) = r?;
        out.push((k, u64::try_from(v).unwrap_or(0)));
    }
    Ok(out)
}

fn read_segments(segments: &Path, c: &mut Collected) -> Result<()> {
    let requests = segments.join("credential_requests");
    if !has_parquet(&requests) {
        return Ok(());
    }
    let conn = duckdb::Connection::open_in_memory().context("opening DuckDB in memory")?;
    let src = format!(
        "read_parquet('{}/**/*.parquet', hive_partitioning = true)",
        sql_quote(&requests)
    );
    let (rows, hosts): (i64, i64) = conn
        .query_row(
            &format!("SELECT count(*), count(DISTINCT host) FROM {src}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("counting stored credential requests")?;
    c.stored_rows = u64::try_from(rows).unwrap_or(0);
    let rejected_dir = segments.join("rejected_lines");
    if has_parquet(&rejected_dir) {
        let n: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)",
                    sql_quote(&rejected_dir)
                ),
                [],
                |r| r.get(0),
            )
            .context("counting rejected lines")?;
        c.stored_rejected = u64::try_from(n).unwrap_or(0);
    }
    c.hosts = u64::try_from(hosts).unwrap_or(0);
    c.by_status = query_pairs(
        &conn,
        &format!(
            "SELECT CAST(status AS VARCHAR), count(*) FROM {src} GROUP BY status ORDER BY status"
        ),
    )?;
    c.by_type = query_pairs(
        &conn,
        &format!(
            "SELECT coalesce(event_type, '(error line, no type)'), count(*) FROM {src} GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
    )?;
    c.clients = query_pairs(
        &conn,
        &format!(
            "SELECT split_part(user_agent, ' ', 1), count(*) FROM {src} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
        ),
    )?;
    Ok(())
}

fn pairs(v: &[(String, u64)]) -> String {
    v.iter()
        .map(|(k, n)| format!("{} {}", escape_control(k), thousands(*n)))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn short_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Run the demo, writing the summary to `out`.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<()> {
    let temp;
    let base: PathBuf = match &opts.out {
        Some(p) => p.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("credtrail-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let sim_dir = base.join("simulation");
    let work = base.join("collector");
    let segments = work.join("segments");
    std::fs::create_dir_all(&segments)
        .with_context(|| format!("creating {}", segments.display()))?;
    let cfg = SimConfig {
        seed: opts.seed,
        hosts: opts.hosts,
        hours: opts.hours,
        clusters: opts.clusters,
        attacks: Attack::ALL.into_iter().collect(),
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let s = simulate::run(&cfg, &sim_dir)?;

    let mut c = Collected::default();
    for host in &s.hosts {
        let audit_dir = sim_dir.join("hosts").join(host).join("var/log/ecs");
        let mut config = Config::new(&audit_dir, work.join(format!("{host}.duckdb")));
        config.segments_dir = Some(segments.clone());
        config.host = Some(host.clone());
        config.once = true;
        let r = credtrail_collector::run_once(&config)
            .with_context(|| format!("collecting {}", audit_dir.display()))?;
        c.files += r.files;
        c.rejected += r.rejected;
        c.gaps += r.gaps;
        c.segments += r.segment_files;
    }
    read_segments(&segments, &mut c)?;

    // The analyzer's side: its own store, fed with every input, then the detections.
    let store = crate::store::Store::open(&base.join("credtrail.duckdb"))
        .context("opening the demo's analyzer store")?;
    let audit = crate::audit::ingest(
        &store,
        std::slice::from_ref(&segments),
        &crate::audit::Options::default(),
    )?;
    let trail = crate::cloudtrail::ingest_paths(
        &store,
        &[sim_dir.join("cloudtrail")],
        &crate::cloudtrail::Options {
            threads: 0,
            progress: false,
            fetchers: 0,
        },
    )?;
    let ecs = crate::ecs::ingest(&store, &[sim_dir.join("ecs")])?;
    let network = ingest_network(&store, &s.network.snapshots)?;
    let iam = crate::iam::ingest(
        &store,
        &sim_dir.join("iam").join("authorization-details.json"),
    )?;
    let loaded = crate::detect::builtin();
    let report = crate::detect::run(
        &store,
        &loaded.detections,
        &crate::detect::RunOptions::default(),
    );
    let implemented: std::collections::BTreeSet<&str> =
        loaded.detections.iter().map(|d| d.id.as_str()).collect();

    let ct = &s.cloudtrail;
    writeln!(
        out,
        "credtrail demo: a simulated ECS fleet, collected and summarised"
    )?;
    writeln!(
        out,
        "================================================================"
    )?;
    writeln!(
        out,
        "Simulated   seed {} · {} → {} · account {}",
        opts.seed, s.start, s.end, s.account
    )?;
    writeln!(
        out,
        "            {} clusters · {} hosts · {} tasks · {} CloudTrail records in {} files",
        s.clusters,
        s.hosts.len(),
        thousands(s.tasks as u64),
        thousands(ct.records),
        thousands(ct.files)
    )?;
    writeln!(
        out,
        "            audit logs: {} lines ({} error lines) in {} files · {} agent snapshots · {} describe-tasks files",
        thousands(s.audit.lines),
        thousands(s.audit.errors),
        thousands(s.audit.files),
        thousands(s.snapshots),
        thousands(s.ecs.describe_tasks_files)
    )?;
    writeln!(
        out,
        "Collected   {} hosts with the collector's --once: {} files read, {} Parquet segments, {} gaps",
        s.hosts.len(),
        thousands(c.files),
        thousands(c.segments),
        thousands(c.gaps)
    )?;
    writeln!(
        out,
        "            segments hold {} requests from {} hosts, {} rejected lines",
        thousands(c.stored_rows),
        c.hosts,
        thousands(c.stored_rejected.max(c.rejected))
    )?;
    writeln!(out, "            by status: {}", pairs(&c.by_status))?;
    writeln!(out, "            by type:   {}", pairs(&c.by_type))?;
    writeln!(out, "            clients:   {}", pairs(&c.clients))?;
    writeln!(
        out,
        "Ingested    {} credential requests · {} CloudTrail events ({} duplicate deliveries skipped) · {} ECS task snapshots · {} IAM grants",
        thousands(audit.added[0]),
        thousands(trail.stored),
        thousands(trail.duplicates),
        thousands(ecs.tasks),
        thousands(iam.grants)
    )?;
    writeln!(
        out,
        "            network inventory: {} snapshots, {} ENIs with {} addresses, {} VPC endpoints, {} subnets",
        s.network.snapshots.len(),
        thousands(network.interfaces),
        thousands(network.addresses),
        thousands(network.endpoints),
        thousands(network.subnets)
    )?;
    let scenarios: std::collections::BTreeSet<&str> = s
        .truth
        .iter()
        .filter_map(|t| t.evidence["scenario"].as_str())
        .collect();
    writeln!(
        out,
        "Planted     {} attack scenarios, {} expected findings (truth.jsonl):",
        scenarios.len(),
        s.truth.len()
    )?;
    let mut truth = s.truth.clone();
    truth.sort_by(|a, b| (a.kind, a.key()).cmp(&(b.kind, b.key())));
    let mut found = 0;
    let mut detectable = 0;
    let mut other_severity: Vec<(&str, &str)> = Vec::new();
    for t in &truth {
        let status = if !implemented.contains(t.kind) {
            "not yet detectable"
        } else {
            detectable += 1;
            let hits: Vec<&crate::detect::Finding> = report
                .findings
                .iter()
                .filter(|f| crate::score::matches(t, f))
                .collect();
            if hits.is_empty() {
                "MISSED"
            } else {
                found += 1;
                match hits.iter().find(|f| f.severity.as_str() != t.severity) {
                    Some(f) if hits.iter().all(|g| g.severity.as_str() != t.severity) => {
                        other_severity.push((t.kind, f.severity.as_str()));
                        "found at another severity"
                    }
                    _ => "found",
                }
            }
        };
        let scenario = t.evidence["scenario"].as_str().unwrap_or("");
        let subject = t
            .task_arn
            .as_deref()
            .map(|a| format!("task {}", short_arn(a)))
            .or_else(|| {
                t.role_arn
                    .as_deref()
                    .map(|a| format!("role {}", short_arn(a)))
            })
            .or_else(|| t.source_ip.as_deref().map(|ip| format!("from {ip}")))
            .unwrap_or_default();
        writeln!(
            out,
            "  {:<8} {:<27} {:<19} {:<44} {}",
            t.severity,
            t.kind,
            scenario,
            escape_control(&subject),
            status
        )?;
    }
    let planted: std::collections::BTreeSet<(&str, String)> =
        truth.iter().map(|t| (t.kind, t.key())).collect();
    let unplanted = report
        .findings
        .iter()
        .filter(|f| !truth.iter().any(|t| crate::score::matches(t, f)))
        .count();
    writeln!(
        out,
        "Analyzed    {} detections ran: {found} of {detectable} detectable planted findings found, {} findings in all, {unplanted} matching nothing planted ({} planted keys)",
        loaded.detections.len(),
        report.findings.len(),
        planted.len()
    )?;
    for (kind, severity) in &other_severity {
        writeln!(
            out,
            "            {kind} was found at {severity}, not the severity its truth line states"
        )?;
    }
    for (file, err) in &report.failed {
        writeln!(
            out,
            "            detection {file} failed: {}",
            escape_control(err)
        )?;
    }
    writeln!(
        out,
        "            run `credtrail --store DIR/credtrail.duckdb analyze` on a kept --out DIR for every finding and its evidence"
    )?;
    let missing: Vec<&str> = credtrail_sim::truth::KINDS
        .iter()
        .copied()
        .filter(|k| !implemented.contains(k))
        .collect();
    if !missing.is_empty() {
        writeln!(out, "Not yet detectable: {}", missing.join(", "))?;
    }
    let recs = crate::privilege::recommendations(&store, None, None)?;
    writeln!(
        out,
        "Least privilege ({} task and execution roles; `credtrail recommend --out DIR` writes the policies):",
        recs.len()
    )?;
    for r in &recs {
        let e = &r.evidence;
        let n = |k: &str| e[k].as_array().map_or(0, Vec::len);
        let docs = e["recommended_policy"].as_array().map_or(0, Vec::len);
        writeln!(
            out,
            "  {:<28} granted {:>6} · used {:>3} · unused {:>6} · unverifiable {:>3} · policy {} document{}",
            escape_control(short_arn(r.role_arn.as_deref().unwrap_or_default())),
            e["granted"].as_u64().unwrap_or(0),
            n("used_actions"),
            e["unused_actions_total"].as_u64().unwrap_or(0),
            n("unverifiable_actions"),
            docs,
            if docs == 1 { "" } else { "s" }
        )?;
    }
    // One investigation, on the finding people find hardest to believe.
    if let Some(f) = report
        .findings
        .iter()
        .find(|f| f.kind == "fetch_foreign_source")
        && let Some(task) = f.task_arn.as_deref()
    {
        let loaded = crate::investigation::builtin();
        if let Some(inv) = loaded.investigations.iter().find(|i| i.id == "who-fetched") {
            let mut buf = Vec::new();
            let opts = crate::investigation::RunOptions {
                params: [("task".to_string(), task.to_string())].into(),
                ..Default::default()
            };
            crate::investigation::run(&store, inv, &opts, crate::sql::Format::Json, &mut buf)?;
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&buf)?;
            writeln!(
                out,
                "Investigate credtrail query who-fetched --task {} ({} fetches; the fetch_foreign_source finding):",
                short_arn(task),
                rows.len()
            )?;
            const SHOWN: usize = 6;
            for r in rows.iter().take(SHOWN) {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                let by = match (r["same_task"].as_bool(), r["requester_task_arn"].as_str()) {
                    (Some(true), _) => "the task itself".to_string(),
                    (_, Some(other)) => format!("task {}", short_arn(other)),
                    _ => s("role_kind"),
                };
                let ua: String = s("user_agent").chars().take(40).collect();
                writeln!(
                    out,
                    "  {}  {:<21} {:<28} {:<38} {}",
                    s("time"),
                    escape_control(&s("requester")),
                    s("event_type"),
                    by,
                    escape_control(&ua)
                )?;
            }
            if rows.len() > SHOWN {
                writeln!(out, "  … {} more", rows.len() - SHOWN)?;
            }
        }
    }
    // The weekly report: kept even when the rest of a temporary demo is removed.
    let report_dir = match &opts.out {
        Some(p) => p.join("report"),
        None => std::env::temp_dir().join(format!("credtrail-demo-{}-report", opts.seed)),
    };
    let data = crate::report::collect(&store, None, None)?;
    let written = crate::report::write(&data, &report_dir)?;
    writeln!(
        out,
        "Report      {} (open in a browser) and {}",
        written.html.display(),
        written.markdown.display()
    )?;
    match &opts.out {
        Some(p) => writeln!(out, "Files kept in {}", p.display())?,
        None => writeln!(out, "Temporary files removed; keep them with --out DIR")?,
    }
    Ok(())
}

/// Ingests the simulator's network inventory snapshots, each with the time it was taken.
pub fn ingest_network(
    store: &crate::store::Store,
    snapshots: &[simulate::network::Snapshot],
) -> Result<crate::network::Summary> {
    let mut sum = crate::network::Summary::default();
    for snap in snapshots {
        let opts = crate::network::Options {
            taken_at_us: Some(snap.taken_at * 1_000_000),
            ..crate::network::Options::default()
        };
        let s = crate::network::ingest(store, std::slice::from_ref(&snap.dir), &opts)
            .with_context(|| format!("ingesting the network inventory {}", snap.dir.display()))?;
        sum.files += s.files;
        sum.files_known += s.files_known;
        sum.interfaces += s.interfaces;
        sum.addresses += s.addresses;
        sum.endpoints += s.endpoints;
        sum.subnets += s.subnets;
    }
    Ok(sum)
}
