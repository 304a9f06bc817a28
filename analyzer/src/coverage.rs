//! `credtrail coverage`: what the store can judge and what it cannot. Per host, when it was
//! covered (detections.md, Terms: its collector running and tailing the audit log, or the span
//! of raw audit files); tasks on no covered host (Fargate, or a host without a collector), whose
//! missing fetches mean nothing; host names shared by several container instances (reported,
//! never merged); the inputs that are missing and what their absence leaves undecided; and
//! CloudTrail's time range against the audit log's; and the trail coverage model (trail.rs):
//! per trail and LookupEvents region, the regions, accounts, management and data events it
//! covers, which decide what can be called unused.
//!
//! The intervals and the matching of tasks to hosts are SQL (`host_coverage`,
//! `host_instances`, `task_host_coverage`, `task_coverage` in `views.sql`); this module reads
//! them and renders them.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::store::Store;
use crate::terminal::escape_control;

#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Tasks listed one by one in the table output, at most (JSON lists every one).
const TABLE_TASKS: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Merged coverage intervals, per (host, container instance).
    pub hosts: Vec<HostInterval>,
    /// Host names that stood for several container instances.
    pub shared_host_names: Vec<SharedHostName>,
    pub tasks: TaskCounts,
    /// Tasks whose host has no coverage at all.
    pub tasks_on_no_covered_host: Vec<UncoveredTask>,
    pub missing_inputs: Vec<MissingInput>,
    pub time_ranges: TimeRanges,
    /// What each source of CloudTrail events covers (trail.rs).
    pub trails: Vec<TrailCoverage>,
}

/// One scope of the trail coverage model, as `credtrail coverage` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TrailCoverage {
    /// The trail's ARN, `LookupEvents <region>`, or `CloudTrail files`.
    pub trail: String,
    /// trail | lookup | files.
    pub origin: &'static str,
    pub home_region: Option<String>,
    /// `None`: every region.
    pub regions: Option<Vec<String>>,
    /// `None`: every account.
    pub accounts: Option<Vec<String>>,
    /// Whether its event selectors are known.
    pub selectors_known: bool,
    /// The management events it logs, one line per selector (empty: none).
    pub management_events: Vec<String>,
    /// The data events it logs, one line per selector: resource type, read/write, ARNs.
    pub data_events: Vec<String>,
    /// Selectors on neither category as such.
    pub other_events: Vec<String>,
    pub notes: Vec<String>,
}

impl TrailCoverage {
    fn of(s: crate::trail::Scope) -> TrailCoverage {
        let (mut management_events, mut data_events, mut other_events) =
            (Vec::new(), Vec::new(), Vec::new());
        match (&s.origin, &s.selectors) {
            (crate::trail::Origin::Lookup, _) => {
                management_events.push(format!(
                    "management events of {} only",
                    s.home_region.as_deref().unwrap_or("its region")
                ));
            }
            (_, None) => {
                management_events.push("assumed: every management event".into());
                data_events.push("judged by their presence in the events read".into());
            }
            (_, Some(sel)) => {
                for x in sel {
                    match x.category().as_str() {
                        "Management" => management_events.push(x.details()),
                        "Data" => data_events.push(x.details()),
                        _ => other_events.push(x.describe()),
                    }
                }
            }
        }
        TrailCoverage {
            trail: s.trail,
            origin: s.origin.as_str(),
            home_region: s.home_region,
            regions: s.regions,
            accounts: s.accounts,
            selectors_known: s.selectors.is_some(),
            management_events,
            data_events,
            other_events,
            notes: s.notes,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostInterval {
    pub host: String,
    pub container_instance_arn: Option<String>,
    pub cluster: Option<String>,
    pub covered_from: String,
    pub covered_until: String,
    /// collector, backlog, raw_file (comma-separated when merged from several).
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SharedHostName {
    pub host: String,
    pub container_instance_arns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskCounts {
    pub total: i64,
    /// With at least one covered stretch (`task_coverage`).
    pub covered: i64,
    /// On a covered host but never covered: ran outside its coverage, or was already running
    /// when it began and fetched nothing inside it.
    pub on_covered_host_never_covered: i64,
    pub on_no_covered_host: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UncoveredTask {
    pub task_arn: String,
    pub family: Option<String>,
    pub launch_type: Option<String>,
    pub host: Option<String>,
    pub container_instance_arn: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingInput {
    pub input: &'static str,
    pub consequence: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeRanges {
    pub cloudtrail: Option<Range>,
    pub audit_log: Option<Range>,
    pub coverage: Option<Range>,
    /// Where one range reaches beyond the other, and what that leaves undecided.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Range {
    pub first: String,
    pub last: String,
    #[serde(skip)]
    first_s: i64,
    #[serde(skip)]
    last_s: i64,
}

const FMT: &str = "'%Y-%m-%dT%H:%M:%SZ'";

fn time_range(store: &Store, sql_from: &str, first: &str, last: &str) -> Result<Option<Range>> {
    let sql = format!(
        "SELECT strftime(min({first}), {FMT}), strftime(max({last}), {FMT}),
                epoch(min({first}))::BIGINT, epoch(max({last}))::BIGINT
         FROM {sql_from}"
    );
    let row: (Option<String>, Option<String>, Option<i64>, Option<i64>) = store
        .conn()
        .query_row(&sql, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .with_context(|| format!("reading the time range of {sql_from}"))?;
    Ok(match row {
        (Some(first), Some(last), Some(first_s), Some(last_s)) => Some(Range {
            first,
            last,
            first_s,
            last_s,
        }),
        _ => None,
    })
}

fn table_exists(store: &Store, name: &str) -> Result<bool> {
    let n: i64 = store.conn().query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
        [name],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Reads everything `credtrail coverage` shows.
pub fn read(store: &Store) -> Result<Coverage> {
    let conn = store.conn();
    let mut stmt = conn.prepare(&format!(
        "SELECT host, container_instance_arn, cluster, strftime(covered_from, {FMT}),
                strftime(covered_until, {FMT}), source
         FROM host_coverage ORDER BY host, container_instance_arn NULLS LAST, covered_from"
    ))?;
    let hosts = stmt
        .query_map([], |r| {
            Ok(HostInterval {
                host: r.get(0)?,
                container_instance_arn: r.get(1)?,
                cluster: r.get(2)?,
                covered_from: r.get(3)?,
                covered_until: r.get(4)?,
                source: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()
        .context("reading host_coverage")?;

    let mut stmt = conn.prepare(
        "SELECT host, to_json(container_instance_arns)::VARCHAR
         FROM host_instances WHERE instances > 1 ORDER BY host",
    )?;
    let shared_host_names = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .map(|row| {
            let (host, arns) = row?;
            Ok(SharedHostName {
                host,
                container_instance_arns: serde_json::from_str(&arns)?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .context("reading host_instances")?;

    let tasks = conn
        .query_row(
            "WITH covered AS (SELECT DISTINCT task_arn FROM task_coverage),
                  on_covered_host AS (SELECT DISTINCT task_arn FROM task_host_coverage)
             SELECT count(*),
                    count(*) FILTER (WHERE task_arn IN (SELECT task_arn FROM covered)),
                    count(*) FILTER (WHERE task_arn IN (SELECT task_arn FROM on_covered_host)
                                       AND task_arn NOT IN (SELECT task_arn FROM covered)),
                    count(*) FILTER (WHERE task_arn NOT IN (SELECT task_arn FROM on_covered_host))
             FROM tasks",
            [],
            |r| {
                Ok(TaskCounts {
                    total: r.get(0)?,
                    covered: r.get(1)?,
                    on_covered_host_never_covered: r.get(2)?,
                    on_no_covered_host: r.get(3)?,
                })
            },
        )
        .context("counting covered tasks")?;

    let mut stmt = conn.prepare(
        "SELECT task_arn, family, launch_type, host, container_instance_arn,
                CASE WHEN launch_type = 'FARGATE' THEN 'Fargate: no container instance, no audit log'
                     WHEN host IS NULL AND container_instance_arn IS NULL
                       THEN 'no container instance known'
                     WHEN container_instance_arn IS NULL
                          AND host IN (SELECT host FROM host_instances WHERE instances > 1)
                       THEN 'its host name stands for several container instances'
                     ELSE 'its host has no coverage' END AS reason
         FROM tasks
         WHERE task_arn NOT IN (SELECT task_arn FROM task_host_coverage)
         ORDER BY reason, task_arn",
    )?;
    let tasks_on_no_covered_host = stmt
        .query_map([], |r| {
            Ok(UncoveredTask {
                task_arn: r.get(0)?,
                family: r.get(1)?,
                launch_type: r.get(2)?,
                host: r.get(3)?,
                container_instance_arn: r.get(4)?,
                reason: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()
        .context("reading tasks on no covered host")?;

    let mut missing_inputs = Vec::new();
    let audit_rows = store.count(
        "SELECT (SELECT count(*) FROM credential_requests) + (SELECT count(*) FROM collector_coverage)",
    )?;
    if audit_rows == 0 {
        missing_inputs.push(MissingInput {
            input: "audit log (collector segments or raw audit files)",
            consequence: "no host is covered: no fetch can be missing, and no fetch anomaly can be seen",
        });
    }
    if store.count("SELECT count(*) FROM ecs_tasks")? == 0 {
        missing_inputs.push(MissingInput {
            input: "task descriptions (aws ecs describe-tasks)",
            consequence: "start and stop times, launch types and ENI addresses are unknown: a task counts as covered only from its first fetch inside coverage, and tasks that never fetched are not known at all",
        });
    }
    let network = table_exists(store, "network_interfaces")?
        && store.count("SELECT count(*) FROM network_interfaces")? > 0;
    if !network {
        missing_inputs.push(MissingInput {
            input: "network inventory (aws ec2 describe-network-interfaces)",
            consequence: "the account's egress addresses and who owns an address are learned from the logs; findings that rest on them say so and stay below high",
        });
    }
    if store.count("SELECT count(*) FROM cloudtrail_event_selectors")? == 0 {
        missing_inputs.push(MissingInput {
            input: "event selectors (aws cloudtrail get-event-selectors)",
            consequence: "which data events and sources the trail logs is unknown: actions only data events show are unverifiable, never unused",
        });
    }
    let trails: Vec<TrailCoverage> = crate::trail::load(store.conn())
        .context("reading the trail coverage model")?
        .into_iter()
        .map(TrailCoverage::of)
        .collect();
    if trails
        .iter()
        .any(|t| t.notes.iter().any(|n| n.starts_with("not described")))
    {
        missing_inputs.push(MissingInput {
            input: "trail descriptions (aws cloudtrail describe-trails)",
            consequence: "whether a trail logs every region and every account of its organization is unknown: only its home region and its own account count as covered",
        });
    }
    let cloudtrail = time_range(store, "cloudtrail_events", "event_time", "event_time")?;
    if cloudtrail.is_none() {
        missing_inputs.push(MissingInput {
            input: "CloudTrail",
            consequence: "no use of task credentials can be judged, and no permission is used",
        });
    }

    let audit_log = time_range(store, "credential_requests", "event_time", "event_time")?;
    let coverage = time_range(store, "host_coverage", "covered_from", "covered_until")?;
    let mut notes = Vec::new();
    if let (Some(ct), Some(a)) = (&cloudtrail, &audit_log) {
        if ct.first_s < a.first_s {
            notes.push(format!(
                "CloudTrail starts before the audit log ({} < {}): calls before the audit log have no fetches to compare with",
                ct.first, a.first
            ));
        }
        if ct.last_s > a.last_s {
            notes.push(format!(
                "CloudTrail ends after the audit log ({} > {}): calls after it have no fetches to compare with",
                ct.last, a.last
            ));
        }
        if a.first_s < ct.first_s {
            notes.push(format!(
                "the audit log starts before CloudTrail ({} < {}): fetches before it have no calls to compare with",
                a.first, ct.first
            ));
        }
        if a.last_s > ct.last_s {
            notes.push(format!(
                "the audit log ends after CloudTrail ({} > {}): fetches after it have no calls to compare with",
                a.last, ct.last
            ));
        }
        if ct.last_s < a.first_s || a.last_s < ct.first_s {
            notes.push("CloudTrail and the audit log do not overlap at all".to_string());
        }
    }
    Ok(Coverage {
        hosts,
        shared_host_names,
        tasks,
        tasks_on_no_covered_host,
        missing_inputs,
        time_ranges: TimeRanges {
            cloudtrail,
            audit_log,
            coverage,
            notes,
        },
        trails,
    })
}

/// `credtrail coverage`.
pub fn command(store: &Store, args: &CoverageArgs, out: &mut dyn Write) -> Result<()> {
    let c = read(store)?;
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &c)?;
            writeln!(out)?;
        }
        Format::Table => render_table(&c, out)?,
    }
    Ok(())
}

fn opt(s: &Option<String>) -> String {
    s.as_deref()
        .map_or_else(|| "-".to_string(), |v| escape_control(v).into_owned())
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut b = tabled::builder::Builder::with_capacity(rows.len() + 1, header.len());
    b.push_record(header.iter().map(|h| h.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(tabled::settings::Style::psql());
    t.to_string()
}

fn render_table(c: &Coverage, out: &mut dyn Write) -> Result<()> {
    let n = c.hosts.len();
    writeln!(
        out,
        "Host coverage ({n} {})",
        if n == 1 { "interval" } else { "intervals" }
    )?;
    if c.hosts.is_empty() {
        writeln!(out, "  no host is covered")?;
    } else {
        let rows = c
            .hosts
            .iter()
            .map(|h| {
                vec![
                    escape_control(&h.host).into_owned(),
                    opt(&h.container_instance_arn),
                    opt(&h.cluster),
                    h.covered_from.clone(),
                    h.covered_until.clone(),
                    h.source.clone(),
                ]
            })
            .collect();
        writeln!(
            out,
            "{}",
            table(
                &[
                    "host",
                    "container instance",
                    "cluster",
                    "covered from",
                    "covered until",
                    "source"
                ],
                rows
            )
        )?;
    }
    if !c.shared_host_names.is_empty() {
        writeln!(
            out,
            "\nHost names shared by several container instances (kept apart, never merged)"
        )?;
        for s in &c.shared_host_names {
            let arns: Vec<String> = s
                .container_instance_arns
                .iter()
                .map(|a| escape_control(a).into_owned())
                .collect();
            writeln!(out, "  {}: {}", escape_control(&s.host), arns.join(", "))?;
        }
    }
    let t = &c.tasks;
    writeln!(
        out,
        "\nTasks: {} known, {} covered, {} on a covered host but never covered, {} on no covered host",
        t.total, t.covered, t.on_covered_host_never_covered, t.on_no_covered_host
    )?;
    if !c.tasks_on_no_covered_host.is_empty() {
        let n = c.tasks_on_no_covered_host.len();
        writeln!(
            out,
            "\nTasks on no covered host (a missing fetch there is no evidence){}",
            if n > TABLE_TASKS {
                format!(": the first {TABLE_TASKS} of {n} (--format json lists all)")
            } else {
                String::new()
            }
        )?;
        let rows = c
            .tasks_on_no_covered_host
            .iter()
            .take(TABLE_TASKS)
            .map(|u| {
                vec![
                    escape_control(&u.task_arn).into_owned(),
                    opt(&u.family),
                    opt(&u.launch_type),
                    opt(&u.host),
                    opt(&u.container_instance_arn),
                    u.reason.clone(),
                ]
            })
            .collect();
        writeln!(
            out,
            "{}",
            table(
                &[
                    "task",
                    "family",
                    "launch type",
                    "host",
                    "container instance",
                    "why"
                ],
                rows
            )
        )?;
    }
    writeln!(
        out,
        "\nTrail coverage (an action is called unused only where this covers its event)"
    )?;
    if c.trails.is_empty() {
        writeln!(
            out,
            "  no CloudTrail source: no action can be called unused"
        )?;
    }
    let list = |v: &Option<Vec<String>>, all: &str| match v {
        None => all.to_string(),
        Some(v) if v.is_empty() => "none".to_string(),
        Some(v) => v
            .iter()
            .map(|x| escape_control(x).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
    };
    for t in &c.trails {
        writeln!(out, "  {} ({})", escape_control(&t.trail), t.origin)?;
        writeln!(
            out,
            "    regions: {} · accounts: {}",
            list(&t.regions, "every region"),
            list(&t.accounts, "every account")
        )?;
        for (name, lines) in [
            ("management events", &t.management_events),
            ("data events", &t.data_events),
            ("other events", &t.other_events),
        ] {
            if lines.is_empty() && name == "other events" {
                continue;
            }
            if lines.is_empty() {
                writeln!(out, "    {name}: none")?;
            }
            for l in lines {
                writeln!(out, "    {name}: {}", escape_control(l))?;
            }
        }
        for n in &t.notes {
            writeln!(out, "    - {}", escape_control(n))?;
        }
    }
    writeln!(out, "\nInputs missing")?;
    if c.missing_inputs.is_empty() {
        writeln!(out, "  none")?;
    }
    for m in &c.missing_inputs {
        writeln!(out, "  - {}: {}", m.input, m.consequence)?;
    }
    writeln!(out, "\nTime ranges")?;
    let tr = &c.time_ranges;
    for (name, r) in [
        ("CloudTrail", &tr.cloudtrail),
        ("audit log", &tr.audit_log),
        ("coverage", &tr.coverage),
    ] {
        match r {
            Some(r) => writeln!(out, "  {name:<10} {} → {}", r.first, r.last)?,
            None => writeln!(out, "  {name:<10} none")?,
        }
    }
    for n in &tr.notes {
        writeln!(out, "  - {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_says_what_is_missing() {
        let store = Store::open_in_memory().unwrap();
        let c = read(&store).unwrap();
        assert!(c.hosts.is_empty());
        let inputs: Vec<&str> = c.missing_inputs.iter().map(|m| m.input).collect();
        assert_eq!(inputs.len(), 5, "{inputs:?}");
        assert!(inputs.iter().any(|i| i.starts_with("network inventory")));
        // Once network_interfaces holds rows, the network inventory is present.
        store
            .conn()
            .execute_batch(
                "INSERT INTO network_interfaces (eni_id, taken_at, taken_at_source, source_file, ingested_at)
                 VALUES ('eni-1', TIMESTAMP '2026-11-20 12:00:00', 'flag', 'eni.json', now()::TIMESTAMP)",
            )
            .unwrap();
        let c = read(&store).unwrap();
        assert!(
            !c.missing_inputs
                .iter()
                .any(|m| m.input.starts_with("network inventory"))
        );
        let mut out = Vec::new();
        command(
            &store,
            &CoverageArgs {
                format: Format::Table,
            },
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("no host is covered"), "{text}");
    }

    #[test]
    fn log_derived_strings_are_escaped_in_the_table() {
        let store = Store::open_in_memory().unwrap();
        store
            .conn()
            .execute_batch(
                "INSERT INTO collector_coverage VALUES ('evil\x1b[31m', 'r', 1, 'follow',
                   'arn:ci/\x07', NULL, TIMESTAMP '2026-11-20 10:00:00',
                   TIMESTAMP '2026-11-20 11:00:00', TIMESTAMP '2026-11-20 10:00:00',
                   TIMESTAMP '2026-11-20 11:00:00', 1)",
            )
            .unwrap();
        let mut out = Vec::new();
        command(
            &store,
            &CoverageArgs {
                format: Format::Table,
            },
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
        assert!(text.contains("evil\\x1b[31m"), "{text}");
        assert!(text.contains("Host coverage (1 interval)"), "{text}");
    }
}
