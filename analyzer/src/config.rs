//! `credtrail.toml`: the settings a scheduled run would otherwise repeat as flags — detection
//! thresholds (the names `--param` takes), the account's expected egress ranges, severity
//! overrides per finding kind, suppressions with an expiry date and a reason, where the report
//! is uploaded (`[report] s3_url`), and the inputs of the scheduled run (`[schedule]`: store,
//! CloudTrail and segment sources, lookback, report directory; see `schedule.rs`).
//!
//! The file is read from `--config PATH`, else `$CREDTRAIL_CONFIG`, else [`DEFAULT_PATH`] when it
//! exists. Unknown keys and bad values are errors naming the file and line ([`ConfigError`]);
//! names that no detection knows are errors too, checked against the detections a run loads
//! ([`Config::check`]). Flags given on the command line override the file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::detect::{Detection, Finding, KEY_COLUMNS, Severity, Suppressed};

/// Read when neither `--config` nor `CREDTRAIL_CONFIG` names a file, and only if it exists.
pub const DEFAULT_PATH: &str = "/etc/credtrail/credtrail.toml";

/// The variable naming the configuration file.
pub const ENV: &str = "CREDTRAIL_CONFIG";

/// A configuration file that cannot be used: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `line` is 1-based; 0 when the problem has no place in the file.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    severity: BTreeMap<Spanned<String>, Spanned<Severity>>,
    #[serde(default)]
    suppress: Vec<Spanned<RawSuppression>>,
    #[serde(default)]
    analyze: RawAnalyze,
    #[serde(default)]
    export: RawExport,
    #[serde(default)]
    report: RawReport,
    schedule: Option<Spanned<RawSchedule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    store: Option<Spanned<String>>,
    #[serde(default)]
    cloudtrail: Vec<Spanned<String>>,
    #[serde(default)]
    segments: Vec<Spanned<String>>,
    since: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    report_dir: Option<Spanned<String>>,
}

/// `[schedule]`: the inputs of `credtrail run-schedule` (the weekly run of the systemd timer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The analyzer's store (default: the global `--store`).
    pub store: Option<PathBuf>,
    /// CloudTrail: `s3://` URLs (the trail bucket's `AWSLogs/` prefix) or local paths.
    pub cloudtrail: Vec<String>,
    /// The collectors' segments: `s3://` URLs (their `--s3-url`) or local paths.
    pub segments: Vec<String>,
    /// How far back to list S3 each run: a time or an age such as `8d` (the `--since` of both
    /// ingests; for segments only when every one is `s3://`).
    pub since: Option<String>,
    /// The buckets' region (default: the environment's, else us-east-1).
    pub region: Option<String>,
    /// Where report.md and report.html are written (default: `report/` beside the store).
    pub report_dir: Option<PathBuf>,
}

/// Whether `s` is an ingest input the schedule accepts: `s3://BUCKET[/PREFIX]` or an absolute
/// path.
fn is_input(s: &str) -> bool {
    if s.starts_with("s3://") {
        crate::s3::S3Url::parse(s).is_some()
    } else {
        Path::new(s).is_absolute()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    s3_url: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    aws_region: Option<Spanned<String>>,
    aws_account_id: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    expected_egress: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnalyze {
    fail_on: Option<Severity>,
    min_severity: Option<Severity>,
    horizon_hours: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppression {
    kind: Spanned<String>,
    expires: Spanned<toml::value::Datetime>,
    reason: Spanned<String>,
    cluster_arn: Option<String>,
    task_arn: Option<String>,
    role_arn: Option<String>,
    host: Option<String>,
    source_ip: Option<String>,
}

/// One suppression: findings of `kind` whose key columns equal every value in `matches` are
/// shown as suppressed until the end of `expires` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub kind: String,
    /// (finding column, value), every one must match.
    pub matches: Vec<(String, String)>,
    /// `YYYY-MM-DD`: the last day the suppression applies.
    pub expires: String,
    /// Days since 1970-01-01 of `expires`.
    pub expires_day: i64,
    pub reason: String,
    /// Where it is written: `file:line`.
    pub origin: String,
}

impl Suppression {
    /// Whether it still applies on `today` (days since 1970-01-01, UTC).
    pub fn active(&self, today: i64) -> bool {
        today <= self.expires_day
    }
}

/// A suppression past its expiry date: it no longer applies, and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub kind: String,
    pub expires: String,
    pub reason: String,
    pub origin: String,
    /// Findings of this run it would have matched (reported unsuppressed).
    pub matching: usize,
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the suppression of {} expired on {} ({}) and no longer applies; {} finding(s) of this run match it",
            self.origin, self.kind, self.expires, self.reason, self.matching
        )
    }
}

/// Today (UTC) in days since 1970-01-01.
pub fn today() -> i64 {
    crate::store::now_us().div_euclid(86_400_000_000)
}

/// A parameter set by the file, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub value: String,
    pub line: usize,
}

/// The settings of one configuration file (or none: [`Config::default`]).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// `name` or `detection_id.name` → value, as `--param` takes them.
    pub params: BTreeMap<String, Param>,
    /// `[network] expected_egress`, checked CIDRs or addresses.
    pub expected_egress: Vec<String>,
    expected_egress_line: usize,
    /// Finding kind → the severity it is reported with.
    pub severity: BTreeMap<String, (Severity, usize)>,
    pub suppressions: Vec<Suppression>,
    /// `[analyze] fail_on`: as `--fail-on` when the flag is absent.
    pub fail_on: Option<Severity>,
    /// `[analyze] min_severity`: as `--min-severity` when the flag is absent.
    pub min_severity: Option<Severity>,
    /// `[analyze] horizon_hours`: how late an event may arrive and still be judged by the next
    /// incremental run (increment.rs; default 24).
    pub horizon_hours: Option<u32>,
    /// `[export] aws_region`: ASFF's region for findings whose ARNs name none.
    pub aws_region: Option<String>,
    /// `[export] aws_account_id`: ASFF's account for findings whose ARNs name none.
    pub aws_account_id: Option<String>,
    /// `[report] s3_url`: as `credtrail report --s3-url` when the flag is absent.
    pub report_s3_url: Option<crate::report::upload::Destination>,
    /// `[schedule]`, when the file has one.
    pub schedule: Option<Schedule>,
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Whether `s` is an IPv4/IPv6 address or CIDR range (`addr/len`, len within the family).
pub fn is_cidr(s: &str) -> bool {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len {
        None => true,
        Some(l) => {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_digit())
                && l.parse::<u32>().is_ok_and(|n| n <= max)
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Config {
    /// The file to read: `given` (`--config`, or `$CREDTRAIL_CONFIG`, which clap reads into the
    /// same flag), else [`DEFAULT_PATH`] when it exists; `None` when there is none.
    pub fn locate(given: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = given.filter(|p| !p.as_os_str().is_empty()) {
            return Some(p.to_path_buf());
        }
        let default = Path::new(DEFAULT_PATH);
        default.is_file().then(|| default.to_path_buf())
    }

    /// Read and check one file (its own consistency; names against detections: [`Config::check`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parse `text` as the file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |line: usize, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            invalid(line, e.message().trim().to_string())
        })?;
        let at = |span: std::ops::Range<usize>| line_of(text, span.start);
        let mut cfg = Config {
            path: Some(path.to_path_buf()),
            fail_on: raw.analyze.fail_on,
            min_severity: raw.analyze.min_severity,
            ..Config::default()
        };
        if let Some(h) = &raw.analyze.horizon_hours {
            if *h.get_ref() == 0 {
                return Err(invalid(
                    at(h.span()),
                    "horizon_hours must be at least 1".to_string(),
                ));
            }
            cfg.horizon_hours = Some(*h.get_ref());
        }
        for (name, value) in &raw.params {
            let line = at(name.span());
            let n = name.get_ref().as_str();
            let ok = match n.split_once('.') {
                Some((a, b)) => is_ident(a) && is_ident(b),
                None => is_ident(n),
            };
            if !ok || crate::detect::RESERVED_PARAMS.contains(&n) {
                return Err(invalid(
                    line,
                    format!("params: {n:?} is not a parameter name"),
                ));
            }
            let v = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(invalid(
                        at(value.span()),
                        format!(
                            "params.{n}: want a number, string or boolean, not a {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            cfg.params.insert(n.to_string(), Param { value: v, line });
        }
        for cidr in &raw.network.expected_egress {
            let c = cidr.get_ref().trim();
            if !is_cidr(c) {
                return Err(invalid(
                    at(cidr.span()),
                    format!(
                        "network.expected_egress: {:?} is not an IP address or CIDR range",
                        cidr.get_ref()
                    ),
                ));
            }
            if cfg.expected_egress.is_empty() {
                cfg.expected_egress_line = at(cidr.span());
            }
            cfg.expected_egress.push(c.to_string());
        }
        if !cfg.expected_egress.is_empty()
            && let Some(p) = cfg
                .params
                .iter()
                .find(|(n, _)| n.rsplit('.').next() == Some("expected_egress"))
        {
            return Err(invalid(
                p.1.line,
                format!(
                    "params.{}: the expected egress is set in [network] expected_egress already",
                    p.0
                ),
            ));
        }
        if let Some(r) = &raw.export.aws_region {
            let v = r.get_ref();
            let ok = !v.is_empty()
                && v.len() <= 16
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(invalid(
                    at(r.span()),
                    format!("export.aws_region: {v:?} is not an AWS region"),
                ));
            }
            cfg.aws_region = Some(v.clone());
        }
        if let Some(a) = &raw.export.aws_account_id {
            let v = a.get_ref();
            if v.len() != 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    at(a.span()),
                    format!("export.aws_account_id: {v:?} is not a 12-digit AWS account ID"),
                ));
            }
            cfg.aws_account_id = Some(v.clone());
        }
        if let Some(u) = &raw.report.s3_url {
            let dest = crate::report::upload::Destination::parse(u.get_ref())
                .map_err(|e| invalid(at(u.span()), format!("report.s3_url: {e}")))?;
            cfg.report_s3_url = Some(dest);
        }
        if let Some(spanned) = &raw.schedule {
            let section_line = at(spanned.span());
            let raw = spanned.get_ref();
            let mut sched = Schedule::default();
            let nonempty = |v: &Spanned<String>, key: &str| {
                if v.get_ref().trim().is_empty() {
                    Err(invalid(at(v.span()), format!("schedule.{key} is empty")))
                } else {
                    Ok(v.get_ref().clone())
                }
            };
            if let Some(v) = &raw.store {
                sched.store = Some(PathBuf::from(nonempty(v, "store")?));
            }
            if let Some(v) = &raw.report_dir {
                sched.report_dir = Some(PathBuf::from(nonempty(v, "report_dir")?));
            }
            for (key, list, into) in [
                ("cloudtrail", &raw.cloudtrail, &mut sched.cloudtrail),
                ("segments", &raw.segments, &mut sched.segments),
            ] {
                for v in list {
                    if !is_input(v.get_ref()) {
                        return Err(invalid(
                            at(v.span()),
                            format!(
                                "schedule.{key}: {:?} is neither s3://BUCKET/PREFIX nor an absolute path",
                                v.get_ref()
                            ),
                        ));
                    }
                    into.push(v.get_ref().clone());
                }
            }
            if sched.cloudtrail.is_empty() && sched.segments.is_empty() {
                return Err(invalid(
                    section_line,
                    "schedule: no input; set cloudtrail, segments or both".to_string(),
                ));
            }
            if let Some(v) = &raw.since {
                if crate::timestamp::parse_since(v.get_ref(), crate::store::now_us()).is_none() {
                    return Err(invalid(
                        at(v.span()),
                        format!(
                            "schedule.since: {:?} is not a time, a date or an age like 8d",
                            v.get_ref()
                        ),
                    ));
                }
                sched.since = Some(v.get_ref().clone());
            }
            if let Some(v) = &raw.region {
                sched.region = Some(nonempty(v, "region")?);
            }
            cfg.schedule = Some(sched);
        }
        for (kind, sev) in &raw.severity {
            cfg.severity
                .insert(kind.get_ref().clone(), (*sev.get_ref(), at(kind.span())));
        }
        for s in &raw.suppress {
            let line = at(s.span());
            let s = s.get_ref();
            let reason = s.reason.get_ref().trim();
            if reason.is_empty() {
                return Err(invalid(
                    at(s.reason.span()),
                    "suppress: the reason is empty".to_string(),
                ));
            }
            let dt = s.expires.get_ref();
            let (Some(date), None, None) = (dt.date, dt.time, dt.offset) else {
                return Err(invalid(
                    at(s.expires.span()),
                    format!("suppress: expires = {dt}: want a date such as 2027-03-31"),
                ));
            };
            let matches: Vec<(String, String)> = KEY_COLUMNS
                .iter()
                .zip([
                    &s.cluster_arn,
                    &s.task_arn,
                    &s.role_arn,
                    &s.host,
                    &s.source_ip,
                ])
                .filter_map(|(c, v)| v.as_ref().map(|v| (c.to_string(), v.clone())))
                .collect();
            cfg.suppressions.push(Suppression {
                kind: s.kind.get_ref().clone(),
                matches,
                expires: format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
                expires_day: crate::timestamp::days_from_civil(
                    i64::from(date.year),
                    u32::from(date.month),
                    u32::from(date.day),
                ),
                reason: reason.to_string(),
                origin: format!("{}:{line}", path.display()),
            });
        }
        Ok(cfg)
    }

    fn error(&self, line: usize, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone().unwrap_or_default(),
            line,
            message,
        }
    }

    /// Names the file uses that no loaded detection knows: parameters, severity and suppression
    /// kinds.
    pub fn check(&self, dets: &[Detection]) -> Result<(), ConfigError> {
        for (name, p) in &self.params {
            let known = match name.split_once('.') {
                Some((id, n)) => dets
                    .iter()
                    .any(|d| d.id == id && d.params.iter().any(|(q, _)| q == n)),
                None => dets.iter().any(|d| d.params.iter().any(|(q, _)| q == name)),
            };
            if !known {
                return Err(self.error(
                    p.line,
                    format!("params.{name}: no detection has this parameter"),
                ));
            }
        }
        if !self.expected_egress.is_empty()
            && !dets
                .iter()
                .any(|d| d.params.iter().any(|(q, _)| q == "expected_egress"))
        {
            return Err(self.error(
                self.expected_egress_line,
                "network.expected_egress: no detection takes the expected egress".to_string(),
            ));
        }
        let known_kind = |k: &str| dets.iter().any(|d| d.id == k);
        for (kind, (_, line)) in &self.severity {
            if !known_kind(kind) {
                return Err(self.error(*line, format!("severity: no detection is named {kind:?}")));
            }
        }
        for s in &self.suppressions {
            if !known_kind(&s.kind) {
                let line = s
                    .origin
                    .rsplit(':')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                return Err(self.error(
                    line,
                    format!("suppress: no detection is named {:?}", s.kind),
                ));
            }
        }
        Ok(())
    }

    /// Undo what [`Config::apply`] did to a finding (its detected severity back, no
    /// suppression), so that it can be applied again with this configuration.
    pub fn unapply(&self, f: &mut Finding) {
        if let Some(s) = f.detected_severity.take() {
            f.severity = s;
        }
        f.suppressed = None;
    }

    /// Applies the severity overrides and the suppressions active on `today` to `findings`
    /// (sorted again), and returns the expired suppressions.
    pub fn apply(&self, findings: &mut [Finding], today: i64) -> Vec<Expired> {
        for f in findings.iter_mut() {
            if let Some((sev, _)) = self.severity.get(&f.kind)
                && *sev != f.severity
            {
                f.detected_severity = Some(f.severity);
                f.severity = *sev;
            }
        }
        let matches = |s: &Suppression, f: &Finding| {
            s.kind == f.kind
                && s.matches
                    .iter()
                    .all(|(c, v)| f.column(c) == Some(v.as_str()))
        };
        let mut expired = Vec::new();
        for s in &self.suppressions {
            if s.active(today) {
                for f in findings.iter_mut() {
                    if f.suppressed.is_none() && matches(s, f) {
                        f.suppressed = Some(Suppressed {
                            reason: s.reason.clone(),
                            expires: s.expires.clone(),
                            origin: s.origin.clone(),
                        });
                    }
                }
            } else {
                expired.push(Expired {
                    kind: s.kind.clone(),
                    expires: s.expires.clone(),
                    reason: s.reason.clone(),
                    origin: s.origin.clone(),
                    matching: findings.iter().filter(|f| matches(s, f)).count(),
                });
            }
        }
        crate::detect::sort(findings);
        expired
    }

    /// The detection parameters of a run: the file's, then `flags` over them.
    pub fn run_params(&self, flags: &[(String, String)]) -> BTreeMap<String, String> {
        let mut params: BTreeMap<String, String> = self
            .params
            .iter()
            .map(|(n, p)| (n.clone(), p.value.clone()))
            .collect();
        if !self.expected_egress.is_empty() {
            params.insert("expected_egress".into(), self.expected_egress.join(" "));
        }
        for (n, v) in flags {
            // a flag for every detection replaces the file's per-detection values of that name
            if !n.contains('.') {
                params.retain(|k, _| k.split_once('.').is_none_or(|(_, p)| p != n));
            }
            params.insert(n.clone(), v.clone());
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("credtrail.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn cidrs() {
        for ok in [
            "203.0.113.0/24",
            "198.51.100.7",
            "2001:db8::/32",
            "0.0.0.0/0",
            "::1",
        ] {
            assert!(is_cidr(ok), "{ok}");
        }
        for bad in [
            "203.0.113.0/33",
            "203.0.113/24",
            "2001:db8::/129",
            "x",
            "1.2.3.4/",
            "1.2.3.4/+1",
            "",
        ] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        assert_eq!(
            err("[params]\nmin_sessions = 3\n\n[network]\nexpected_egres = []\n"),
            "credtrail.toml:5: unknown field `expected_egres`, expected `expected_egress`"
        );
        assert!(
            err("[severity]\nfetch_burst = \"hgh\"\n")
                .starts_with("credtrail.toml:2: unknown variant `hgh`"),
            "{}",
            err("[severity]\nfetch_burst = \"hgh\"\n")
        );
        assert_eq!(
            err("[network]\nexpected_egress = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/40\",\n]\n"),
            "credtrail.toml:4: network.expected_egress: \"10.0.0.0/40\" is not an IP address or CIDR range"
        );
        let missing = err("[[suppress]]\nkind = \"fetch_burst\"\nexpires = 2027-01-31\n");
        assert!(
            missing.starts_with("credtrail.toml:1: missing field `reason`"),
            "{missing}"
        );
        assert_eq!(
            err(
                "[[suppress]]\nkind = \"fetch_burst\"\nexpires = 2027-01-31T10:00:00Z\nreason = \"x\"\n"
            ),
            "credtrail.toml:3: suppress: expires = 2027-01-31T10:00:00Z: want a date such as 2027-03-31"
        );
        assert_eq!(
            err("[[suppress]]\nkind = \"fetch_burst\"\nexpires = 2027-01-31\nreason = \"  \"\n"),
            "credtrail.toml:4: suppress: the reason is empty"
        );
        assert_eq!(
            err("[params]\nsince = \"x\"\n"),
            "credtrail.toml:2: params: \"since\" is not a parameter name"
        );
        assert_eq!(
            err(
                "[params]\nexpected_egress = \"1.2.3.4\"\n[network]\nexpected_egress = [\"1.2.3.4\"]\n"
            ),
            "credtrail.toml:2: params.expected_egress: the expected egress is set in [network] expected_egress already"
        );
    }

    #[test]
    fn the_report_upload_is_an_s3_prefix() {
        let c = parse("[report]\ns3_url = \"s3://reports/credtrail\"\n").unwrap();
        let d = c.report_s3_url.unwrap();
        assert_eq!(d.bucket, "reports");
        assert_eq!(d.key("report.html"), "credtrail/report.html");
        assert_eq!(
            err("\n[report]\ns3_url = \"/var/reports\"\n"),
            "credtrail.toml:3: report.s3_url: \"/var/reports\" is not s3://BUCKET/PREFIX/"
        );
        assert!(
            err("[report]\nout = \"x\"\n").starts_with("credtrail.toml:2: unknown field `out`"),
            "{}",
            err("[report]\nout = \"x\"\n")
        );
    }

    #[test]
    fn names_are_checked_against_the_detections() {
        let dets = crate::detect::builtin().detections;
        let c = parse("[params]\nmin_sessions = 4\n\"fetch_burst.max_fetches\" = 40\n").unwrap();
        c.check(&dets).unwrap();
        let c = parse("\n[params]\nmax_fetch = 40\n").unwrap();
        assert_eq!(
            c.check(&dets).unwrap_err().to_string(),
            "credtrail.toml:3: params.max_fetch: no detection has this parameter"
        );
        let c = parse("[severity]\nfetch_burts = \"low\"\n").unwrap();
        assert_eq!(
            c.check(&dets).unwrap_err().to_string(),
            "credtrail.toml:2: severity: no detection is named \"fetch_burts\""
        );
        let c = parse("\n\n[[suppress]]\nkind = \"nope\"\nexpires = 2027-01-31\nreason = \"r\"\n")
            .unwrap();
        assert_eq!(
            c.check(&dets).unwrap_err().to_string(),
            "credtrail.toml:3: suppress: no detection is named \"nope\""
        );
    }

    #[test]
    fn flags_override_the_file() {
        let c = parse(
            "[params]\nmin_sessions = 4\n\"fetch_burst.window_minutes\" = 9\n\
             [network]\nexpected_egress = [\"203.0.113.0/24\", \"2001:db8::/48\"]\n",
        )
        .unwrap();
        let p = c.run_params(&[]);
        assert_eq!(p["min_sessions"], "4");
        assert_eq!(p["fetch_burst.window_minutes"], "9");
        assert_eq!(p["expected_egress"], "203.0.113.0/24 2001:db8::/48");
        let p = c.run_params(&[
            ("min_sessions".into(), "7".into()),
            ("window_minutes".into(), "3".into()),
        ]);
        assert_eq!(p["min_sessions"], "7");
        assert_eq!(p["window_minutes"], "3");
        assert!(!p.contains_key("fetch_burst.window_minutes"));
    }

    #[test]
    fn the_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/credtrail.example.toml"
        ));
        let c = Config::load(path).unwrap();
        c.check(&crate::detect::builtin().detections).unwrap();
        assert_eq!(c.expected_egress.len(), 3);
        assert_eq!(c.suppressions.len(), 2);
        assert_eq!(c.fail_on, Some(Severity::High));
        assert_eq!(c.params["fetch_burst.max_fetches"].value, "30");
        let s = c.schedule.unwrap();
        assert_eq!(
            s.store.as_deref(),
            Some(Path::new("/var/lib/credtrail-analyzer/credtrail.duckdb"))
        );
        assert_eq!(s.cloudtrail, ["s3://CLOUDTRAIL_BUCKET/AWSLogs/"]);
        assert_eq!(s.segments, ["s3://SEGMENTS_BUCKET/SEGMENTS_PREFIX/"]);
        assert_eq!(s.since.as_deref(), Some("8d"));
        assert_eq!(c.report_s3_url, None);
    }

    #[test]
    fn schedule_inputs_are_checked() {
        let c = parse(
            "[schedule]\ncloudtrail = [\"s3://t/AWSLogs/\", \"/srv/trail\"]\nsince = \"2026-11-20\"\n",
        )
        .unwrap();
        let s = c.schedule.unwrap();
        assert_eq!(s.cloudtrail.len(), 2);
        assert!(s.segments.is_empty() && s.store.is_none() && s.report_dir.is_none());
        assert_eq!(parse("").unwrap().schedule, None);
        assert_eq!(
            err("[schedule]\nsegments = [\"s3://seg/\", \"relative/dir\"]\n"),
            "credtrail.toml:2: schedule.segments: \"relative/dir\" is neither s3://BUCKET/PREFIX nor an absolute path"
        );
        assert_eq!(
            err("[schedule]\ncloudtrail = [\"s3://t/\"]\nsince = \"a week\"\n"),
            "credtrail.toml:3: schedule.since: \"a week\" is not a time, a date or an age like 8d"
        );
        assert!(
            err("\n[schedule]\nstore = \"/x.duckdb\"\n")
                .ends_with("schedule: no input; set cloudtrail, segments or both"),
            "{}",
            err("\n[schedule]\nstore = \"/x.duckdb\"\n")
        );
        assert!(
            err("[schedule]\ncloudtrail = [\"s3://t/\"]\nlookback = \"8d\"\n")
                .starts_with("credtrail.toml:3: unknown field `lookback`"),
            "{}",
            err("[schedule]\ncloudtrail = [\"s3://t/\"]\nlookback = \"8d\"\n")
        );
    }

    #[test]
    fn apply_marks_overrides_and_reports_expired() {
        let c = parse(
            "[severity]\nunused_role = \"low\"\n\
             [[suppress]]\nkind = \"unused_role\"\nrole_arn = \"arn:r1\"\nexpires = 2026-11-20\nreason = \"r1\"\n\
             [[suppress]]\nkind = \"unused_role\"\nrole_arn = \"arn:r2\"\nexpires = 2026-11-19\nreason = \"r2\"\n",
        )
        .unwrap();
        let f = |role: &str| Finding {
            kind: "unused_role".into(),
            severity: Severity::Medium,
            title: "t".into(),
            first_seen: None,
            last_seen: None,
            count: 1,
            cluster_arn: None,
            task_arn: None,
            role_arn: Some(role.into()),
            host: None,
            source_ip: None,
            evidence: serde_json::Value::Null,
            detected_severity: None,
            suppressed: None,
            change: None,
        };
        let mut findings = vec![f("arn:r1"), f("arn:r2"), f("arn:r3")];
        let expired = c.apply(
            &mut findings,
            crate::timestamp::days_from_civil(2026, 11, 20),
        );
        assert!(
            findings
                .iter()
                .all(|f| f.severity == Severity::Low
                    && f.detected_severity == Some(Severity::Medium))
        );
        let r1 = findings
            .iter()
            .find(|f| f.role_arn.as_deref() == Some("arn:r1"))
            .unwrap();
        assert_eq!(r1.suppressed.as_ref().unwrap().reason, "r1");
        assert_eq!(
            findings.iter().filter(|f| f.suppressed.is_some()).count(),
            1
        );
        assert_eq!(expired.len(), 1);
        assert_eq!(
            expired[0].to_string(),
            "credtrail.toml:8: the suppression of unused_role expired on 2026-11-19 (r2) and no longer applies; 1 finding(s) of this run match it"
        );
    }

    #[test]
    fn suppressions_expire_after_their_day() {
        let c = parse(
            "[[suppress]]\nkind = \"fetch_burst\"\ntask_arn = \"arn:t\"\nexpires = 2026-11-20\nreason = \"load test\"\n",
        )
        .unwrap();
        let s = &c.suppressions[0];
        assert_eq!(
            s.matches,
            vec![("task_arn".to_string(), "arn:t".to_string())]
        );
        assert_eq!(s.origin, "credtrail.toml:1");
        let day = crate::timestamp::days_from_civil(2026, 11, 20);
        assert!(s.active(day));
        assert!(!s.active(day + 1));
    }
}
