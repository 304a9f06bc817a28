//! `credtrail report --out DIR`: the findings, per-role least privilege and two pictures (activity
//! per task over time, granted vs used per role) as `DIR/report.md` and `DIR/report.html`.
//!
//! This module reads the store and the findings into a [`Data`] value; `html`, `markdown` and
//! `svg` only render it. Everything that came from a log or the store is untrusted: the HTML goes
//! through [`html::esc`] (inline CSS, inline SVG, no script, no external URL, a CSP that forbids
//! both), the Markdown through [`markdown::md`]. Every list is bounded, so a large store still
//! renders a small file.

pub mod html;
pub mod markdown;
pub mod svg;
pub mod upload;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::detect::{self, Finding, RunOptions, Severity};
use crate::store::{Store, sql_string};

/// Task lanes drawn in the timeline, at most.
pub const MAX_LANES: usize = 20;
/// Busiest tasks without a finding added to the timeline for context, at most.
pub const CONTEXT_LANES: usize = 6;
/// Timeline buckets, at most (the bucket grows past 5 minutes to stay under this).
pub const MAX_BUCKETS: i64 = 288;
/// Smallest timeline bucket.
pub const MIN_BUCKET_SECS: i64 = 300;
/// Findings listed per state in "Since the last run", at most.
pub const MAX_CHANGES: usize = 100;
/// Characters of CloudTrail request parameters shown per call.
pub const REQUEST_CHARS: usize = 300;

/// `credtrail report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory to write report.md and report.html into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Only events at or after this time (e.g. 2026-11-20T13:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Also upload report.md and report.html under this S3 prefix (`s3://BUCKET/PREFIX/`;
    /// default: `[report] s3_url` of the configuration).
    #[arg(long, env = "CREDTRAIL_REPORT_S3_URL", value_parser = upload::Destination::parse)]
    pub s3_url: Option<upload::Destination>,
    /// Send the upload's S3 requests to this endpoint (a VPC endpoint or a local stand-in).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// The report bucket's region (default: the environment's, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Judge the whole history, not only what changed since the previous recorded run (as
    /// `analyze --full`).
    #[arg(long, conflicts_with_all = ["since", "until"])]
    pub full: bool,
}

/// What the store holds, within the report's window.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub audit_first: Option<String>,
    pub audit_last: Option<String>,
    pub audit_rows: i64,
    pub audit_hosts: i64,
    pub rejected_lines: i64,
    pub trail_first: Option<String>,
    pub trail_last: Option<String>,
    pub trail_events: i64,
    pub trail_rejects: i64,
    pub tasks: i64,
    pub clusters: i64,
    pub roles: i64,
}

/// A finding's mark on a task lane, in Unix seconds.
#[derive(Debug, Clone)]
pub struct Mark {
    pub start: i64,
    pub end: i64,
    pub severity: Severity,
    pub kind: String,
    /// Index of the finding in [`Data::findings`] (its anchor).
    pub finding: usize,
}

/// One task's activity per bucket.
#[derive(Debug, Clone, Default)]
pub struct Lane {
    pub task_arn: String,
    pub family: Option<String>,
    pub revision: Option<i64>,
    pub role_arn: Option<String>,
    pub host: Option<String>,
    pub started: Option<i64>,
    pub stopped: Option<i64>,
    /// bucket → (successful fetches, refused fetches)
    pub fetches: BTreeMap<i64, (i64, i64)>,
    /// bucket → (successful calls, failed calls)
    pub calls: BTreeMap<i64, (i64, i64)>,
    pub marks: Vec<Mark>,
    /// In a finding (otherwise one of the busiest tasks, shown for context).
    pub in_finding: bool,
}

impl Lane {
    pub fn totals(&self) -> (i64, i64, i64, i64) {
        let (f_ok, f_err) = self
            .fetches
            .values()
            .fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        let (c_ok, c_err) = self
            .calls
            .values()
            .fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        (f_ok, f_err, c_ok, c_err)
    }
}

/// Activity of the chosen tasks over the report's time range.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Unix seconds of bucket 0.
    pub start: i64,
    pub bucket_secs: i64,
    pub buckets: i64,
    pub lanes: Vec<Lane>,
    /// Tasks in findings that did not fit.
    pub omitted: usize,
}

/// An action the role used, from `unused_permissions` evidence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsedAction {
    pub action: String,
    pub count: Option<i64>,
    pub last_used: Option<String>,
}

/// Least privilege of one role, from an `unused_permissions` finding; missing fields stay empty.
#[derive(Debug, Clone, Default)]
pub struct RolePrivilege {
    pub role_arn: String,
    pub severity: Option<Severity>,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub used: Vec<UsedAction>,
    pub unused: Vec<String>,
    /// (action, reason)
    pub unverifiable: Vec<(String, Option<String>)>,
    pub recommended_policy: Vec<Value>,
    pub families: Option<Value>,
    /// Index of the finding in [`Data::findings`].
    pub finding: usize,
}

impl RolePrivilege {
    pub fn granted(&self) -> usize {
        self.used.len() + self.unused.len() + self.unverifiable.len()
    }
}

/// Everything a report shows.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub generated_at: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub coverage: Coverage,
    /// What the store can and cannot judge (`credtrail coverage`): covered hosts, tasks on no
    /// covered host, shared host names, missing inputs, time ranges. Not limited to the window.
    pub reach: Option<crate::coverage::Coverage>,
    pub findings: Vec<Finding>,
    /// Suppressions of the configuration past their expiry date (no longer applied).
    pub expired: Vec<crate::config::Expired>,
    /// Detections that failed or did not load: (file, error).
    pub failed: Vec<(String, String)>,
    pub roles: Vec<RolePrivilege>,
    pub timeline: Timeline,
    /// What changed since the previous recorded run (findings.rs), when this report's run was
    /// recorded (no `--since`/`--until`).
    pub changes: Option<crate::findings::Recorded>,
}

impl Data {
    /// Findings per severity, most severe first (every severity, zero included).
    pub fn by_severity(&self) -> Vec<(Severity, usize)> {
        [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ]
        .into_iter()
        .map(|s| (s, self.findings.iter().filter(|f| f.severity == s).count()))
        .collect()
    }

    /// (kind, highest severity, count), most severe first.
    pub fn by_kind(&self) -> Vec<(String, Severity, usize)> {
        let mut m: BTreeMap<&str, (Severity, usize)> = BTreeMap::new();
        for f in &self.findings {
            let e = m.entry(&f.kind).or_insert((f.severity, 0));
            e.0 = e.0.max(f.severity);
            e.1 += 1;
        }
        let mut v: Vec<(String, Severity, usize)> = m
            .into_iter()
            .map(|(k, (s, n))| (k.to_string(), s, n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// `s` cut to at most `max` characters, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Keys of IAM policy documents in the order people write them; others follow by name.
const POLICY_KEYS: &[&str] = &[
    "Version",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn policy_into(v: &Value, indent: usize, out: &mut String) {
    let pad = |n: usize| " ".repeat(n);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let rank = |k: &str| POLICY_KEYS.iter().position(|p| *p == k).unwrap_or(99);
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 2));
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                policy_into(&m[k.as_str()], indent + 2, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (i, item) in a.iter().enumerate() {
                out.push_str(&pad(indent + 2));
                policy_into(item, indent + 2, out);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A policy document as pretty JSON with `Version` before `Statement` and `Effect`, `Action`,
/// `Resource` in their usual order (serde_json alone sorts keys by name). Control characters stay
/// `\u` escapes.
pub fn policy_text(v: &Value) -> String {
    let mut out = String::new();
    policy_into(v, 0, &mut out);
    out
}

/// The part of an ARN after its last `/` (a task ID, a role name).
pub fn short_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Unix seconds of a finding time (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn unix(s: &str) -> Option<i64> {
    crate::timestamp::parse_iso_us(s).map(|us| us.div_euclid(1_000_000))
}

/// `2026-11-16T00:05:00Z` for Unix seconds.
pub fn iso(unix: i64) -> String {
    crate::timestamp::rfc3339_string(unix)
}

/// SQL for "`col` within the report's window".
fn within(col: &str, since: &Option<String>, until: &Option<String>) -> String {
    let lit = |v: &Option<String>| v.as_deref().map_or("NULL".to_string(), sql_string);
    format!(
        "{col} >= coalesce({}::TIMESTAMP, TIMESTAMP '-infinity') AND {col} < coalesce({}::TIMESTAMP, TIMESTAMP 'infinity')",
        lit(since),
        lit(until)
    )
}

fn in_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = values.into_iter().map(sql_string).collect();
    if v.is_empty() {
        "(NULL)".to_string()
    } else {
        format!("({})", v.join(", "))
    }
}

const TIME: &str = "'%Y-%m-%dT%H:%M:%SZ'";

fn coverage(store: &Store, since: &Option<String>, until: &Option<String>) -> Result<Coverage> {
    let conn = store.conn();
    let mut c = Coverage::default();
    let w = within("event_time", since, until);
    (c.audit_first, c.audit_last, c.audit_rows, c.audit_hosts) = conn
        .query_row(
            &format!(
                "SELECT strftime(min(event_time), {TIME}), strftime(max(event_time), {TIME}), \
                 count(*), count(DISTINCT host) FROM credential_requests WHERE {w}"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .context("reading the audit coverage")?;
    (c.trail_first, c.trail_last, c.trail_events) = conn
        .query_row(
            &format!(
                "SELECT strftime(min(event_time), {TIME}), strftime(max(event_time), {TIME}), \
                 count(*) FROM cloudtrail_events WHERE {w}"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context("reading the CloudTrail coverage")?;
    c.rejected_lines = store.count("SELECT count(*) FROM rejected_lines")?;
    c.trail_rejects = store.count("SELECT count(*) FROM cloudtrail_rejects")?;
    (c.tasks, c.clusters) = conn
        .query_row(
            "SELECT count(DISTINCT task_arn), count(DISTINCT cluster_arn) FROM tasks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("counting tasks")?;
    c.roles = store.count("SELECT count(DISTINCT role_arn) FROM iam_roles")?;
    Ok(c)
}

/// Every CloudTrail call object (one naming an `event_id`) in `v`, at any depth.
fn call_objects(v: &mut Value) -> Vec<&mut serde_json::Map<String, Value>> {
    match v {
        Value::Object(m) => m.values_mut().flat_map(call_objects).collect(),
        Value::Array(a) => a
            .iter_mut()
            .flat_map(|item| {
                if item.get("event_id").is_some_and(Value::is_string) {
                    item.as_object_mut().into_iter().collect::<Vec<_>>()
                } else {
                    call_objects(item)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds `request_parameters` (clipped) from the store to every CloudTrail call in the findings'
/// evidence that names its `event_id` and lacks them: what a person verifying the finding reads
/// first.
pub fn add_request_parameters(store: &Store, findings: &mut [Finding]) -> Result<()> {
    let mut ids: Vec<String> = Vec::new();
    for f in findings.iter_mut() {
        for call in call_objects(&mut f.evidence) {
            if let Some(id) = call.get("event_id").and_then(Value::as_str)
                && !call.contains_key("request_parameters")
            {
                ids.push(id.to_string());
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids.truncate(5_000);
    if ids.is_empty() {
        return Ok(());
    }
    let mut stmt = store.conn().prepare(&format!(
        "SELECT event_id, any_value(request_parameters::VARCHAR) FROM cloudtrail_events \
         WHERE event_id IN {} GROUP BY event_id",
        in_list(ids.iter().map(String::as_str))
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut params: HashMap<String, String> = HashMap::new();
    for r in rows {
        let (id, p) = r?;
        if let Some(p) = p.filter(|p| p != "null") {
            params.insert(id, clip(&p, REQUEST_CHARS));
        }
    }
    for f in findings.iter_mut() {
        for call in call_objects(&mut f.evidence) {
            let id = call.get("event_id").and_then(Value::as_str).unwrap_or("");
            if let Some(p) = params.get(id)
                && !call.contains_key("request_parameters")
            {
                call.insert("request_parameters".into(), Value::String(p.clone()));
            }
        }
    }
    Ok(())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("action").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The least-privilege view of an `unused_permissions` finding; `None` for other kinds. Written
/// against the documented evidence shape, defensively: a missing or odd field is left empty.
pub fn role_privilege(f: &Finding, index: usize) -> Option<RolePrivilege> {
    if f.kind != "unused_permissions" {
        return None;
    }
    let e = &f.evidence;
    let used = e
        .get("used_actions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| match u {
                    Value::String(s) => Some(UsedAction {
                        action: s.clone(),
                        ..UsedAction::default()
                    }),
                    Value::Object(o) => Some(UsedAction {
                        action: o.get("action").and_then(Value::as_str)?.to_string(),
                        count: o.get("count").and_then(Value::as_i64),
                        last_used: text(o.get("last_used")),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let unverifiable = e
        .get("unverifiable_actions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| match u {
                    Value::String(s) => Some((s.clone(), None)),
                    Value::Object(o) => Some((
                        o.get("action").and_then(Value::as_str)?.to_string(),
                        text(o.get("reason")),
                    )),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let recommended_policy = match e.get("recommended_policy") {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    Some(RolePrivilege {
        role_arn: f
            .role_arn
            .clone()
            .or_else(|| text(e.get("role_arn")))
            .unwrap_or_else(|| "(role not named)".to_string()),
        severity: Some(f.severity),
        window_start: text(e.get("window_start")).or_else(|| f.first_seen.clone()),
        window_end: text(e.get("window_end")).or_else(|| f.last_seen.clone()),
        used,
        unused: strings(e.get("unused_actions")),
        unverifiable,
        recommended_policy,
        families: e.get("families").filter(|v| !v.is_null()).cloned(),
        finding: index,
    })
}

/// The tasks to draw: those in findings (most severe first), then the busiest others.
fn timeline(
    store: &Store,
    findings: &[Finding],
    cov: &Coverage,
    since: &Option<String>,
    until: &Option<String>,
) -> Result<Timeline> {
    let conn = store.conn();
    let first = [&cov.audit_first, &cov.trail_first]
        .into_iter()
        .flatten()
        .filter_map(|s| unix(s))
        .min();
    let last = [&cov.audit_last, &cov.trail_last]
        .into_iter()
        .flatten()
        .filter_map(|s| unix(s))
        .max();
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Timeline::default());
    };
    let span = (last - first).max(1);
    let mut bucket_secs = MIN_BUCKET_SECS;
    while span / bucket_secs >= MAX_BUCKETS {
        bucket_secs += MIN_BUCKET_SECS;
    }
    let start = first - first.rem_euclid(bucket_secs);
    let buckets = (last - start) / bucket_secs + 1;

    let mut chosen: Vec<String> = Vec::new();
    let mut in_findings = 0usize;
    let mut omitted = 0usize;
    for f in findings {
        if let Some(t) = &f.task_arn
            && !chosen.contains(t)
        {
            if chosen.len() < MAX_LANES {
                chosen.push(t.clone());
                in_findings += 1;
            } else {
                omitted += 1;
            }
        }
    }
    let room = MAX_LANES.saturating_sub(chosen.len()).min(CONTEXT_LANES);
    if room > 0 {
        let w = within("event_time", since, until);
        let mut stmt = conn.prepare(&format!(
            "SELECT task_arn FROM (\
               SELECT task_arn FROM credential_requests WHERE task_arn IS NOT NULL AND {w} \
               UNION ALL SELECT task_arn FROM task_session_calls WHERE {w}) \
             WHERE task_arn NOT IN {} GROUP BY task_arn ORDER BY count(*) DESC, task_arn LIMIT {room}",
            in_list(chosen.iter().map(String::as_str))
        ))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for r in rows {
            chosen.push(r?);
        }
    }
    let mut lanes: Vec<Lane> = chosen
        .iter()
        .enumerate()
        .map(|(i, t)| Lane {
            task_arn: t.clone(),
            in_finding: i < in_findings,
            ..Lane::default()
        })
        .collect();
    if lanes.is_empty() {
        return Ok(Timeline {
            start,
            bucket_secs,
            buckets,
            lanes,
            omitted,
        });
    }
    let index: HashMap<String, usize> = chosen
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i))
        .collect();
    let list = in_list(chosen.iter().map(String::as_str));
    let w = within("event_time", since, until);
    let bucket = format!("((epoch(event_time)::BIGINT - {start}) // {bucket_secs})::BIGINT");

    let mut stmt = conn.prepare(&format!(
        "SELECT task_arn, family, TRY_CAST(revision AS BIGINT), task_role_arn, host, \
         epoch(started_at)::BIGINT, epoch(stopped_at)::BIGINT FROM tasks WHERE task_arn IN {list}"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })?;
    for r in rows {
        let (t, family, revision, role, host, started, stopped) = r?;
        if let Some(&i) = index.get(&t) {
            let l = &mut lanes[i];
            l.family = family;
            l.revision = revision;
            l.role_arn = role;
            l.host = host;
            l.started = started;
            l.stopped = stopped;
        }
    }
    let counts = |sql: String| -> Result<Vec<(String, i64, i64, i64)>> {
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    };
    for (t, b, ok, err) in counts(format!(
        "SELECT task_arn, {bucket}, count(*) FILTER (WHERE status BETWEEN 200 AND 299), \
         count(*) FILTER (WHERE status IS NULL OR status NOT BETWEEN 200 AND 299) \
         FROM credential_requests WHERE task_arn IN {list} AND {w} GROUP BY 1, 2"
    ))? {
        if let Some(&i) = index.get(&t) {
            lanes[i].fetches.insert(b.clamp(0, buckets - 1), (ok, err));
        }
    }
    for (t, b, ok, err) in counts(format!(
        "SELECT task_arn, {bucket}, count(*) FILTER (WHERE error_code IS NULL), \
         count(*) FILTER (WHERE error_code IS NOT NULL) \
         FROM task_session_calls WHERE task_arn IN {list} AND {w} GROUP BY 1, 2"
    ))? {
        if let Some(&i) = index.get(&t) {
            lanes[i].calls.insert(b.clamp(0, buckets - 1), (ok, err));
        }
    }
    for (n, f) in findings.iter().enumerate() {
        let Some(i) = f.task_arn.as_ref().and_then(|t| index.get(t)) else {
            continue;
        };
        let Some(s) = f.first_seen.as_deref().and_then(unix) else {
            continue;
        };
        let e = f.last_seen.as_deref().and_then(unix).unwrap_or(s);
        lanes[*i].marks.push(Mark {
            start: s,
            end: e.max(s),
            severity: f.severity,
            kind: f.kind.clone(),
            finding: n,
        });
    }
    Ok(Timeline {
        start,
        bucket_secs,
        buckets,
        lanes,
        omitted,
    })
}

/// Read everything the report shows from the store, running the built-in detections.
pub fn collect(store: &Store, since: Option<String>, until: Option<String>) -> Result<Data> {
    collect_with(store, since, until, &crate::config::Config::default(), None)
}

/// [`collect`] with a configuration's thresholds, severities and suppressions.
pub fn collect_with(
    store: &Store,
    since: Option<String>,
    until: Option<String>,
    config: &crate::config::Config,
    full: Option<bool>,
) -> Result<Data> {
    store.check_time("--since", since.as_deref())?;
    store.check_time("--until", until.as_deref())?;
    let loaded = detect::builtin();
    config.check(&loaded.detections)?;
    let mut failed: Vec<(String, String)> = loaded
        .errors
        .iter()
        .map(|e| ("(load)".to_string(), e.to_string()))
        .collect();
    let opts = RunOptions {
        since: since.clone(),
        until: until.clone(),
        params: config.run_params(&[]),
    };
    // `full`: a recorded run over the whole store (findings.rs), full or incremental.
    let (mut findings, expired, changes) = match full {
        Some(full) if since.is_none() && until.is_none() => {
            let o =
                crate::analyze::recorded(store, &loaded.detections, &opts, config, "report", full)?;
            failed.extend(o.failed);
            (o.findings, o.expired, Some(o.recorded))
        }
        _ => {
            let run = detect::run(store, &loaded.detections, &opts);
            failed.extend(run.failed);
            let mut findings = run.findings;
            let expired = config.apply(&mut findings, crate::config::today());
            (findings, expired, None)
        }
    };
    add_request_parameters(store, &mut findings)?;
    let coverage = coverage(store, &since, &until)?;
    let reach = crate::coverage::read(store)?;
    let timeline = timeline(store, &findings, &coverage, &since, &until)?;
    let roles = findings
        .iter()
        .enumerate()
        .filter_map(|(i, f)| role_privilege(f, i))
        .collect();
    Ok(Data {
        generated_at: iso(crate::store::now_us().div_euclid(1_000_000)),
        since,
        until,
        coverage,
        reach: Some(reach),
        findings,
        expired,
        failed,
        roles,
        timeline,
        changes,
    })
}

/// Paths written by [`write`].
#[derive(Debug, Clone)]
pub struct Written {
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Render `data` into `dir/report.md` and `dir/report.html`.
pub fn write(data: &Data, dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let w = Written {
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    std::fs::write(&w.markdown, markdown::render(data))
        .with_context(|| format!("writing {}", w.markdown.display()))?;
    std::fs::write(&w.html, html::render(data))
        .with_context(|| format!("writing {}", w.html.display()))?;
    Ok(w)
}

/// `credtrail report`: collect, render, and print what was written.
pub fn run(
    store: &Store,
    args: &ReportArgs,
    config: &crate::config::Config,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let dest = args.s3_url.as_ref().or(config.report_s3_url.as_ref());
    if dest.is_none() && (args.endpoint_url.is_some() || args.region.is_some()) {
        anyhow::bail!(
            "--endpoint-url and --region apply to the report's upload: give --s3-url (or [report] s3_url)"
        );
    }
    let data = collect_with(
        store,
        args.since.clone(),
        args.until.clone(),
        config,
        Some(args.full),
    )?;
    for e in &data.expired {
        eprintln!(
            "warning: {}",
            crate::terminal::escape_control(&e.to_string())
        );
    }
    for (file, e) in &data.failed {
        eprintln!(
            "warning: detection failed and was skipped: {file}: {}",
            crate::terminal::escape_control(e)
        );
    }
    let w = write(&data, &args.out)?;
    let counts: Vec<String> = data
        .by_severity()
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    writeln!(
        out,
        "{} findings ({}); wrote {} and {}",
        data.findings.len(),
        counts.join(", "),
        w.markdown.display(),
        w.html.display()
    )?;
    if let Some(dest) = dest {
        let opts = crate::s3::Options {
            endpoint_url: args.endpoint_url.clone(),
            region: args.region.clone(),
            ..crate::s3::Options::default()
        };
        let urls = upload::upload(&[w.markdown.as_path(), w.html.as_path()], dest, &opts)?;
        writeln!(out, "uploaded {}", urls.join(" and "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn finding(kind: &str, severity: Severity, evidence: Value) -> Finding {
        Finding {
            kind: kind.into(),
            severity,
            title: format!("{kind} title"),
            first_seen: Some("2026-11-16T00:10:00Z".into()),
            last_seen: Some("2026-11-16T00:20:00Z".into()),
            count: 3,
            cluster_arn: None,
            task_arn: None,
            role_arn: Some("arn:aws:iam::123456789012:role/app-task".into()),
            detected_severity: None,
            suppressed: None,
            change: None,
            host: None,
            source_ip: None,
            evidence,
        }
    }

    #[test]
    fn unused_permissions_evidence_is_read_defensively() {
        let f = finding(
            "unused_permissions",
            Severity::Medium,
            json!({
                "unused_actions": ["s3:DeleteObject", "iam:CreateUser"],
                "unverifiable_actions": ["iam:PassRole", {"action": "s3:GetObject", "reason": "data events not logged"}, 7],
                "used_actions": [{"action": "s3:ListBucket", "count": 12, "last_used": "2026-11-16T01:00:00Z"}, {"count": 1}],
                "window_start": "2026-11-16T00:00:00Z",
                "recommended_policy": {"Version": "2012-10-17", "Statement": []}
            }),
        );
        let r = role_privilege(&f, 4).unwrap();
        assert_eq!(r.unused, ["s3:DeleteObject", "iam:CreateUser"]);
        assert_eq!(r.unverifiable.len(), 2);
        assert_eq!(
            r.unverifiable[1],
            (
                "s3:GetObject".to_string(),
                Some("data events not logged".to_string())
            )
        );
        assert_eq!(r.used.len(), 1, "an entry without action is skipped");
        assert_eq!(r.used[0].count, Some(12));
        assert_eq!(r.granted(), 5);
        assert_eq!(r.window_end.as_deref(), Some("2026-11-16T00:20:00Z"));
        assert_eq!(r.recommended_policy.len(), 1);
        assert_eq!(r.finding, 4);

        let empty = finding("unused_permissions", Severity::Low, Value::Null);
        let r = role_privilege(&empty, 0).unwrap();
        assert_eq!(r.granted(), 0);
        assert!(r.recommended_policy.is_empty());
        assert!(
            role_privilege(
                &finding("use_after_stop", Severity::Critical, Value::Null),
                0
            )
            .is_none()
        );
    }

    #[test]
    fn policies_read_in_iam_order() {
        let p = json!({"Statement": [{"Resource": "*", "Action": ["s3:GetObject"], "Effect": "Allow"}], "Version": "2012-10-17"});
        assert_eq!(
            policy_text(&p),
            "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Action\": [\n        \"s3:GetObject\"\n      ],\n      \"Resource\": \"*\"\n    }\n  ]\n}"
        );
        let back: Value = serde_json::from_str(&policy_text(&p)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn request_parameters_are_added_to_calls() {
        let store = Store::open_in_memory().unwrap();
        crate::cloudtrail::ingest_records(
            &store,
            "f",
            &[r#"{"eventID":"e1","eventTime":"2026-11-16T00:00:00Z","requestParameters":{"bucketName":"<b>"}}"#.to_string()],
        )
        .unwrap();
        let mut f = vec![finding(
            "use_after_stop",
            Severity::Critical,
            json!({"calls": [{"event_id": "e1"}, {"event_id": "e2"}], "nested": {"calls": [{"event_id": "e1", "request_parameters": "kept"}]}}),
        )];
        add_request_parameters(&store, &mut f).unwrap();
        assert_eq!(
            f[0].evidence["calls"][0]["request_parameters"],
            "{\"bucketName\":\"<b>\"}"
        );
        assert!(
            f[0].evidence["calls"][1]
                .get("request_parameters")
                .is_none()
        );
        assert_eq!(
            f[0].evidence["nested"]["calls"][0]["request_parameters"],
            "kept"
        );
    }
}
