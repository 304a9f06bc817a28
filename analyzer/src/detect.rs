//! Detections are data (style.md #10): one `.sql` file per detection under `queries/detections`,
//! with a `-- key: value` header. The built-in files are embedded at compile time; `--queries DIR`
//! replaces them. Loading collects every error instead of stopping at the first; a broken query
//! is reported and skipped at run time (style.md #5), and fails the lint test.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::header::{QueryFile, list};
use crate::store::{Store, sql_string};

/// The embedded detections: (file name, text). The lint test checks this list against the
/// directory, so a new file cannot be forgotten here.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "access_denied_burst.sql",
        include_str!("../../queries/detections/access_denied_burst.sql"),
    ),
    (
        "fetch_burst.sql",
        include_str!("../../queries/detections/fetch_burst.sql"),
    ),
    (
        "fetch_denied_burst.sql",
        include_str!("../../queries/detections/fetch_denied_burst.sql"),
    ),
    (
        "fetch_foreign_source.sql",
        include_str!("../../queries/detections/fetch_foreign_source.sql"),
    ),
    (
        "fetch_unusual_client.sql",
        include_str!("../../queries/detections/fetch_unusual_client.sql"),
    ),
    (
        "use_after_stop.sql",
        include_str!("../../queries/detections/use_after_stop.sql"),
    ),
    (
        "use_by_other_task.sql",
        include_str!("../../queries/detections/use_by_other_task.sql"),
    ),
    (
        "use_without_fetch.sql",
        include_str!("../../queries/detections/use_without_fetch.sql"),
    ),
    (
        "unused_permissions.sql",
        include_str!("../../queries/detections/unused_permissions.sql"),
    ),
    (
        "unused_role.sql",
        include_str!("../../queries/detections/unused_role.sql"),
    ),
    (
        "use_from_unexpected_network.sql",
        include_str!("../../queries/detections/use_from_unexpected_network.sql"),
    ),
];

/// DuckDB's memory limit while detections run.
pub const ANALYSIS_MEMORY_LIMIT: &str = "2GB";

/// Header keys every detection must have.
pub const REQUIRED_KEYS: &[&str] = &[
    "id",
    "title",
    "severity",
    "description",
    "reads",
    "key",
    "params",
];

/// Header keys a detection may have.
pub const OPTIONAL_KEYS: &[&str] = &["judges"];

/// What one run of a detection judges (the `judges` header), which says how an incremental run
/// (increment.rs) may narrow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Judges {
    /// `events` (the default): each finding is made of events, each judged at its own time
    /// (with context read from the whole store); `since`/`until` select the events judged.
    #[default]
    Events,
    /// `keys`: a key qualifies by a burst of events within a short window, and then its
    /// finding counts every event of the key, in or out of bursts: a run judges its keys over
    /// their whole history.
    Keys,
    /// `window`: a statement about the whole observation window (a grant nobody used in it, a
    /// baseline over every task of a family): every run judges the window whole.
    Window,
}

/// Columns a detection may name in its `key` header.
pub const KEY_COLUMNS: &[&str] = &["cluster_arn", "task_arn", "role_arn", "host", "source_ip"];

/// Parameters set for every query, not declared in headers.
pub const RESERVED_PARAMS: &[&str] = &["since", "until"];

/// Finding severity, ordered low < medium < high < critical.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

pub use crate::header::LoadError;

/// One detection: its header and its SQL.
#[derive(Debug, Clone)]
pub struct Detection {
    pub file: String,
    pub id: String,
    pub title: String,
    pub severity: String,
    pub description: String,
    pub reads: Vec<String>,
    pub key: Vec<String>,
    /// Declared parameters with their defaults, in header order.
    pub params: Vec<(String, String)>,
    pub judges: Judges,
    pub sql: String,
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse one detection file; every problem found is returned.
pub fn parse(file: &str, text: &str) -> Result<Detection, Vec<LoadError>> {
    let mut q = QueryFile::parse(file, text, REQUIRED_KEYS, OPTIONAL_KEYS);
    let id = q.check_id(is_ident, "an identifier");
    let judges = if q.has("judges") {
        match q.get("judges") {
            (_, v) if v == "events" => Judges::Events,
            (_, v) if v == "keys" => Judges::Keys,
            (_, v) if v == "window" => Judges::Window,
            (line, v) => {
                q.error(
                    line,
                    format!("judges {v:?}: want `events`, `keys` or `window`"),
                );
                Judges::Events
            }
        }
    } else {
        Judges::Events
    };
    let (line, key) = q.get("key");
    let key = list(&key);
    for k in &key {
        if !KEY_COLUMNS.contains(&k.as_str()) {
            q.error(
                line,
                format!("key column {k:?} is not one of {KEY_COLUMNS:?}"),
            );
        }
    }
    if q.has("key") && key.is_empty() {
        q.error(line, "empty key".to_string());
    }
    let (line, params_text) = q.get("params");
    let mut params = Vec::new();
    for p in list(&params_text) {
        match p.split_once('=') {
            Some((n, d)) if is_ident(n.trim()) && !RESERVED_PARAMS.contains(&n.trim()) => {
                params.push((n.trim().to_string(), d.trim().to_string()));
            }
            _ => q.error(line, format!("bad parameter {p:?}: want name=default")),
        }
    }
    let (line, severity) = q.get("severity");
    if q.has("severity") && severity.is_empty() {
        q.error(line, "empty severity".to_string());
    }
    if !q.errors.is_empty() {
        return Err(q.errors);
    }
    Ok(Detection {
        file: file.to_string(),
        id,
        title: q.get("title").1,
        severity,
        description: q.get("description").1,
        reads: list(&q.get("reads").1),
        key,
        params,
        judges,
        sql: q.sql,
    })
}

fn check_unique(dets: &[Detection], errors: &mut Vec<LoadError>) {
    let mut seen = HashSet::new();
    for d in dets {
        if !seen.insert(d.id.clone()) {
            errors.push(LoadError::File {
                file: d.file.clone(),
                message: format!("duplicate id {:?}", d.id),
            });
        }
    }
}

fn load_all<'a>(files: impl Iterator<Item = (String, Result<String, String>)> + 'a) -> Loaded {
    let mut detections = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        match text {
            Err(message) => errors.push(LoadError::File { file, message }),
            Ok(text) => match parse(&file, &text) {
                Ok(d) => detections.push(d),
                Err(e) => errors.extend(e),
            },
        }
    }
    check_unique(&detections, &mut errors);
    Loaded { detections, errors }
}

/// Detections that loaded, and every error met.
#[derive(Debug)]
pub struct Loaded {
    pub detections: Vec<Detection>,
    pub errors: Vec<LoadError>,
}

/// The embedded detections.
pub fn builtin() -> Loaded {
    load_all(
        BUILTIN
            .iter()
            .map(|(name, text)| (format!("queries/detections/{name}"), Ok(text.to_string()))),
    )
}

/// Every `.sql` file of `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Loaded> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    Ok(load_all(paths.into_iter().map(|p| {
        let text = std::fs::read_to_string(&p).map_err(|e| e.to_string());
        (p.display().to_string(), text)
    })))
}

/// One finding, in the documented output shape (detections.md); field order is output order.
/// It is stored in this shape too (`findings.finding`), and read back from there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub count: i64,
    pub cluster_arn: Option<String>,
    pub task_arn: Option<String>,
    pub role_arn: Option<String>,
    pub host: Option<String>,
    pub source_ip: Option<String>,
    pub evidence: serde_json::Value,
    /// The detection's own severity, when the configuration reports the kind at another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_severity: Option<Severity>,
    /// Set when a suppression of the configuration matches: shown, never counted by `--fail-on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
    /// What the latest recorded run changed (findings.rs): set in `analyze --since-last-run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<crate::findings::Change>,
}

/// How a finding is suppressed: shown in every output, never counted by `--fail-on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    pub reason: String,
    pub expires: String,
    /// `file:line` of the suppression.
    pub origin: String,
}

impl std::fmt::Display for Suppressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "suppressed until {}: {}", self.expires, self.reason)
    }
}

impl Finding {
    pub fn column(&self, name: &str) -> Option<&str> {
        match name {
            "cluster_arn" => self.cluster_arn.as_deref(),
            "task_arn" => self.task_arn.as_deref(),
            "role_arn" => self.role_arn.as_deref(),
            "host" => self.host.as_deref(),
            "source_ip" => self.source_ip.as_deref(),
            _ => None,
        }
    }
}

/// Run-time settings of the detections.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only events at or after this time (anything DuckDB casts to TIMESTAMP, UTC).
    pub since: Option<String>,
    /// Only events before this time.
    pub until: Option<String>,
    /// `name` (every detection declaring it) or `detection_id.name` → value.
    pub params: BTreeMap<String, String>,
}

/// The query as run: the detection wrapped so its columns have fixed types.
pub fn wrapped_sql(d: &Detection) -> String {
    format!(
        "SELECT kind::VARCHAR, severity::VARCHAR, title::VARCHAR, \
         strftime(first_seen::TIMESTAMP, '%Y-%m-%dT%H:%M:%SZ'), \
         strftime(last_seen::TIMESTAMP, '%Y-%m-%dT%H:%M:%SZ'), count::BIGINT, \
         cluster_arn::VARCHAR, task_arn::VARCHAR, role_arn::VARCHAR, host::VARCHAR, \
         source_ip::VARCHAR, evidence::VARCHAR FROM (\n{}\n) AS finding",
        d.sql
    )
}

/// The parameter values one detection runs with.
pub fn effective_params(d: &Detection, opts: &RunOptions) -> Vec<(String, String)> {
    d.params
        .iter()
        .map(|(n, default)| {
            let v = opts
                .params
                .get(&format!("{}.{n}", d.id))
                .or_else(|| opts.params.get(n))
                .unwrap_or(default);
            (n.clone(), v.clone())
        })
        .collect()
}

fn set_variables(store: &Store, d: &Detection, opts: &RunOptions) -> Result<()> {
    let conn = store.conn();
    for (name, value) in [("since", &opts.since), ("until", &opts.until)] {
        let v = value.as_deref().map_or("NULL".to_string(), sql_string);
        conn.execute_batch(&format!("SET VARIABLE {name} = {v}"))?;
    }
    for (n, v) in effective_params(d, opts) {
        conn.execute_batch(&format!("SET VARIABLE {n} = {}", sql_string(&v)))?;
    }
    Ok(())
}

/// Prepare (not run) one detection against the store's schema.
pub fn prepare(store: &Store, d: &Detection) -> Result<()> {
    set_variables(store, d, &RunOptions::default())?;
    store
        .conn()
        .prepare(&wrapped_sql(d))
        .with_context(|| format!("{}: does not prepare", d.file))?;
    Ok(())
}

/// Run one detection.
pub fn run_one(store: &Store, d: &Detection, opts: &RunOptions) -> Result<Vec<Finding>> {
    set_variables(store, d, opts)?;
    let mut stmt = store
        .conn()
        .prepare(&wrapped_sql(d))
        .with_context(|| format!("{}: does not prepare", d.file))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            [
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
            ],
            r.get::<_, Option<String>>(11)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, severity, title, first_seen, last_seen, count, cols, evidence) =
            row.with_context(|| format!("{}: failed", d.file))?;
        let sev = severity.as_deref().unwrap_or_default();
        let severity = Severity::parse(sev)
            .with_context(|| format!("{}: returned severity {sev:?}", d.file))?;
        let evidence = match evidence {
            Some(e) => serde_json::from_str(&e)
                .with_context(|| format!("{}: evidence is not JSON", d.file))?,
            None => serde_json::Value::Null,
        };
        let [cluster_arn, task_arn, role_arn, host, source_ip] = cols;
        out.push(Finding {
            kind: kind.unwrap_or_else(|| d.id.clone()),
            severity,
            title: title.unwrap_or_else(|| d.title.clone()),
            first_seen,
            last_seen,
            count: count.unwrap_or(0),
            cluster_arn,
            task_arn,
            role_arn,
            host,
            source_ip,
            evidence,
            detected_severity: None,
            suppressed: None,
            change: None,
        });
    }
    for f in &mut out {
        crate::privilege::add_recommended_policy(store, f)
            .with_context(|| format!("{}: the recommended policy", d.file))?;
    }
    Ok(out)
}

/// Findings of a run, and the detections that failed (reported, skipped).
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub failed: Vec<(String, String)>,
    /// Seconds each step took: the event map refresh, then each detection (file name).
    pub timings: Vec<(String, f64)>,
}

/// Severity descending, then first_seen, then kind.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(order);
}

fn order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| a.first_seen.cmp(&b.first_seen))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| a.task_arn.cmp(&b.task_arn))
        .then_with(|| a.host.cmp(&b.host))
        .then_with(|| a.source_ip.cmp(&b.source_ip))
        .then_with(|| a.role_arn.cmp(&b.role_arn))
        .then_with(|| a.cluster_arn.cmp(&b.cluster_arn))
}

/// Check `--param` names against the detections: unknown names are errors.
pub fn check_params(dets: &[Detection], opts: &RunOptions) -> Result<()> {
    for name in opts.params.keys() {
        let known = match name.split_once('.') {
            Some((id, n)) => dets
                .iter()
                .any(|d| d.id == id && d.params.iter().any(|(p, _)| p == n)),
            None => dets.iter().any(|d| d.params.iter().any(|(p, _)| p == name)),
        };
        anyhow::ensure!(known, "--param {name}: no detection has this parameter");
    }
    Ok(())
}

/// Run every detection, dedupe by (kind, key) and sort.
pub fn run(store: &Store, dets: &[Detection], opts: &RunOptions) -> Report {
    let mut report = start(store);
    let mut keyed = Vec::new();
    for d in dets {
        if let Some(f) = timed(&mut report, d, || run_one(store, d, opts)) {
            keyed.extend(f.into_iter().map(|f| (d.key.clone(), f)));
        }
    }
    finish(report, keyed)
}

/// Runs `f` for detection `d`, recording its time and, when it fails, the failure.
pub fn timed<T>(report: &mut Report, d: &Detection, f: impl FnOnce() -> Result<T>) -> Option<T> {
    let start = std::time::Instant::now();
    let result = f();
    report
        .timings
        .push((d.file.clone(), start.elapsed().as_secs_f64()));
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            report.failed.push((d.file.clone(), format!("{e:#}")));
            None
        }
    }
}

/// What every run does before its detections: the memory limit, and the derived tables the
/// views read (the event map, the trail coverage model).
pub fn start(store: &Store) -> Report {
    let mut report = Report::default();
    // The store opens with a small memory limit for ingest; joins over a fleet's CloudTrail need
    // more (the 100-host benchmark stays well under this).
    if let Err(e) = store
        .conn()
        .execute_batch(&format!("SET memory_limit = '{ANALYSIS_MEMORY_LIMIT}'"))
    {
        report.failed.push(("memory_limit".into(), e.to_string()));
    }
    // The least-privilege views need every stored event mapped to its IAM action.
    let start = std::time::Instant::now();
    if let Err(e) = crate::privilege::refresh_event_map(store) {
        report
            .failed
            .push(("cloudtrail_event_map".into(), format!("{e:#}")));
    }
    report
        .timings
        .push(("cloudtrail_event_map".into(), start.elapsed().as_secs_f64()));
    // ... and the trail coverage model that says which of those actions the trail could show.
    if let Err(e) = crate::trail::refresh(store) {
        report
            .failed
            .push(("trail_coverage".into(), format!("{e:#}")));
    }
    report
}

/// The findings of the detections (each with its detection's `key`), deduped by (kind, key)
/// and sorted, into `report`.
pub fn finish(mut report: Report, mut keyed: Vec<(Vec<String>, Finding)>) -> Report {
    keyed.sort_by(|a, b| order(&a.1, &b.1));
    let mut seen = HashSet::new();
    for (key, f) in keyed {
        let k: Vec<Option<String>> = key
            .iter()
            .map(|c| f.column(c).map(str::to_string))
            .collect();
        if seen.insert((f.kind.clone(), k)) {
            report.findings.push(f);
        }
    }
    sort(&mut report.findings);
    report
}
