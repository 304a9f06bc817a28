//! `analyze --format asff`: findings in the AWS Security Finding Format, as Security Hub's
//! `BatchImportFindings` takes them (`aws securityhub batch-import-findings --findings
//! file://…`, at most 100 per call). The tests validate every object against the
//! `AwsSecurityFinding` shape of Security Hub's service model (`analyzer/schemas/asff/`).
//!
//! The product is a custom integration of the finding's own account
//! (`arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`); account and region come from
//! the finding's task, cluster, role or container instance ARN, else from [`Defaults`]; a
//! finding with neither cannot be exported (an error naming it). Within ASFF's limits: `Title` is cut to 256 characters,
//! `Description` to 1,024, and the evidence goes to `ProductFields` as
//! `credtrail/evidence/<key>` (JSON text unless a string), each value cut to 2,048 characters
//! and at most 50 fields in all (the keys that did not fit are listed). A suppressed finding is
//! `Workflow.Status` SUPPRESSED with the reason as its `Note`. A resolved finding (`analyze
//! --since-last-run`) is `RecordState` ARCHIVED, `Workflow.Status` RESOLVED.

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use crate::detect::{Finding, Severity};
use crate::ocsf::{arn_parts, region_account, uid};

/// The ASFF schema version.
pub const SCHEMA_VERSION: &str = "2018-10-08";
/// ASFF's limits (Security Hub's model and its documentation).
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_FIELDS: usize = 50;
pub const MAX_FIELD_KEY: usize = 128;
pub const MAX_FIELD_VALUE: usize = 2048;
pub const MAX_NOTE: usize = 512;

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Security Hub's severity label.
pub fn label(s: Severity) -> &'static str {
    match s {
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// ASFF finding types (`namespace/category/classifier`).
fn types(kind: &str) -> String {
    if kind.starts_with("unused_") {
        format!("Software and Configuration Checks/AWS Security Best Practices/credtrail {kind}")
    } else {
        format!("TTPs/Credential Access/credtrail {kind}")
    }
}

fn iso(unix: i64) -> String {
    crate::timestamp::rfc3339_string(unix)
}

/// Whether ASFF takes `s` as a `NonEmptyString` (a character other than white space).
fn non_empty(s: &str) -> bool {
    s.chars().any(|c| !c.is_whitespace())
}

fn product_fields(f: &Finding) -> Map<String, Value> {
    let mut fields: Vec<(String, String)> = vec![
        ("credtrail/kind".into(), f.kind.clone()),
        ("credtrail/count".into(), f.count.to_string()),
    ];
    for (k, v) in [
        ("host", &f.host),
        ("source_ip", &f.source_ip),
        ("first_seen", &f.first_seen),
        ("last_seen", &f.last_seen),
    ] {
        if let Some(v) = v {
            fields.push((format!("credtrail/{k}"), v.clone()));
        }
    }
    if let Some(d) = f.detected_severity {
        fields.push(("credtrail/detected_severity".into(), d.as_str().into()));
    }
    let evidence: Vec<(String, String)> = match &f.evidence {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (format!("credtrail/evidence/{k}"), text)
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![("credtrail/evidence".into(), other.to_string())],
    };
    let room = MAX_FIELDS - fields.len() - 1;
    let mut omitted = Vec::new();
    for (i, (k, v)) in evidence.into_iter().enumerate() {
        if i < room {
            fields.push((k, v));
        } else {
            omitted.push(k);
        }
    }
    if !omitted.is_empty() {
        fields.push(("credtrail/evidence_omitted".into(), omitted.join(" ")));
    }
    let mut m = Map::new();
    for (k, v) in fields {
        if non_empty(&k) && non_empty(&v) {
            m.insert(clip(&k, MAX_FIELD_KEY), json!(clip(&v, MAX_FIELD_VALUE)));
        }
    }
    m
}

/// The region and account of findings whose ARNs name none (an IAM role's ARN has no region):
/// the configuration's `[export]`, else the region the AWS CLI would use (`AWS_REGION`,
/// `AWS_DEFAULT_REGION`).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub region: Option<String>,
    pub account: Option<String>,
}

impl Defaults {
    pub fn new(region: Option<String>, account: Option<String>) -> Defaults {
        let env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|r| non_empty(r)));
        Defaults {
            region: region.or(env),
            account,
        }
    }
}

/// One finding as an ASFF `AwsSecurityFinding`; `now` is when it is written (Unix seconds).
pub fn finding(f: &Finding, now: i64, defaults: &Defaults) -> Result<Value> {
    let (region, account) = region_account(f);
    let region = region.or_else(|| defaults.region.clone());
    let account = account.or_else(|| defaults.account.clone());
    let (Some(region), Some(account)) = (region, account) else {
        bail!(
            "an ASFF finding needs an AWS account and region: the {} finding {} names no ARN that has both; set [export] aws_region and aws_account_id in credtrail.toml (or AWS_REGION)",
            f.kind,
            uid(f)
        );
    };
    let partition = [&f.task_arn, &f.cluster_arn, &f.role_arn, &f.host]
        .into_iter()
        .flatten()
        .find_map(|a| arn_parts(a).map(|p| p.0))
        .unwrap_or_else(|| "aws".into());
    let now_iso = iso(now);
    let mut resources = Vec::new();
    for (arn, ty) in [
        (&f.task_arn, "AwsEcsTask"),
        (&f.role_arn, "AwsIamRole"),
        (&f.cluster_arn, "AwsEcsCluster"),
    ] {
        if let Some(arn) = arn.as_deref().filter(|a| non_empty(a)) {
            let mut r = json!({"Type": ty, "Id": arn, "Partition": partition});
            if let Some((_, Some(region), _)) = arn_parts(arn) {
                r["Region"] = json!(clip(&region, 16));
            }
            resources.push(r);
        }
    }
    if let Some(host) = f.host.as_deref().filter(|h| non_empty(h)) {
        // a container instance (its ARN) or a host name: ASFF has no type of its own for it
        resources.push(json!({"Type": "Other", "Id": host, "Partition": partition}));
    }
    if resources.is_empty() {
        resources.push(json!({"Type": "Other", "Id": uid(f), "Partition": partition}));
    }
    let description = format!(
        "{} (credtrail detection {}: {} event(s){}).",
        f.title,
        f.kind,
        f.count,
        match (&f.first_seen, &f.last_seen) {
            (Some(a), Some(b)) if a != b => format!(" from {a} to {b}"),
            (Some(a), _) => format!(" at {a}"),
            _ => String::new(),
        }
    );
    let mut o = Map::new();
    o.insert("SchemaVersion".into(), json!(SCHEMA_VERSION));
    o.insert("Id".into(), json!(uid(f)));
    o.insert(
        "ProductArn".into(),
        json!(format!(
            "arn:{partition}:securityhub:{region}:{account}:product/{account}/default"
        )),
    );
    o.insert("ProductName".into(), json!("credtrail"));
    o.insert("CompanyName".into(), json!("credtrail"));
    o.insert("Region".into(), json!(clip(&region, 16)));
    o.insert("GeneratorId".into(), json!(format!("credtrail/{}", f.kind)));
    o.insert("AwsAccountId".into(), json!(account));
    o.insert("Types".into(), json!([types(&f.kind)]));
    let first = f.first_seen.clone();
    let last = f.last_seen.clone().or_else(|| first.clone());
    if let Some(t) = &first {
        o.insert("FirstObservedAt".into(), json!(t));
    }
    if let Some(t) = &last {
        o.insert("LastObservedAt".into(), json!(t));
    }
    o.insert(
        "CreatedAt".into(),
        json!(first.clone().unwrap_or_else(|| now_iso.clone())),
    );
    o.insert("UpdatedAt".into(), json!(now_iso));
    o.insert(
        "Severity".into(),
        json!({"Label": label(f.severity), "Original": f.severity.as_str()}),
    );
    o.insert("Title".into(), json!(clip(&f.title, MAX_TITLE)));
    o.insert(
        "Description".into(),
        json!(clip(&description, MAX_DESCRIPTION)),
    );
    o.insert("ProductFields".into(), Value::Object(product_fields(f)));
    o.insert("Resources".into(), Value::Array(resources));
    let resolved = f
        .change
        .as_ref()
        .is_some_and(|c| c.state == crate::findings::State::Resolved);
    o.insert(
        "RecordState".into(),
        json!(if resolved { "ARCHIVED" } else { "ACTIVE" }),
    );
    match &f.suppressed {
        _ if resolved => {
            o.insert("Workflow".into(), json!({"Status": "RESOLVED"}));
        }
        Some(s) => {
            o.insert("Workflow".into(), json!({"Status": "SUPPRESSED"}));
            o.insert(
                "Note".into(),
                json!({
                    "Text": clip(&s.to_string(), MAX_NOTE),
                    "UpdatedBy": "credtrail",
                    "UpdatedAt": iso(now),
                }),
            );
        }
        None => {
            o.insert("Workflow".into(), json!({"Status": "NEW"}));
        }
    }
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(evidence: Value) -> Finding {
        Finding {
            kind: "use_after_stop".into(),
            severity: Severity::High,
            title: "t".repeat(300),
            first_seen: Some("2026-11-16T00:10:00Z".into()),
            last_seen: None,
            count: 1,
            cluster_arn: None,
            task_arn: Some("arn:aws:ecs:eu-west-1:123456789012:task/c/0123".into()),
            role_arn: None,
            host: Some("  ".into()),
            source_ip: None,
            evidence,
            detected_severity: None,
            suppressed: None,
            change: None,
        }
    }

    #[test]
    fn limits_hold() {
        let mut ev = Map::new();
        for i in 0..80 {
            ev.insert(format!("k{i:02}"), json!("v"));
        }
        ev.insert("k00".into(), json!("x".repeat(5000)));
        ev.insert("blank".into(), json!(" "));
        let a = super::finding(&sample(Value::Object(ev)), 0, &Defaults::default()).unwrap();
        let fields = a["ProductFields"].as_object().unwrap();
        assert!(fields.len() <= MAX_FIELDS, "{}", fields.len());
        assert_eq!(
            fields["credtrail/evidence/k00"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_FIELD_VALUE
        );
        assert!(!fields.contains_key("credtrail/evidence/blank"));
        assert!(
            fields["credtrail/evidence_omitted"]
                .as_str()
                .unwrap()
                .contains("k79")
        );
        assert_eq!(a["Title"].as_str().unwrap().chars().count(), MAX_TITLE);
        assert_eq!(a["Region"], "eu-west-1");
        assert_eq!(a["AwsAccountId"], "123456789012");
        assert_eq!(
            a["ProductArn"],
            "arn:aws:securityhub:eu-west-1:123456789012:product/123456789012/default"
        );
        // a white-space host is no resource
        assert_eq!(a["Resources"].as_array().unwrap().len(), 1);
        assert_eq!(a["CreatedAt"], "2026-11-16T00:10:00Z");
        assert_eq!(a["LastObservedAt"], "2026-11-16T00:10:00Z");
    }

    #[test]
    fn needs_an_account_and_region() {
        let mut f = sample(Value::Null);
        f.task_arn = None;
        f.role_arn = Some("arn:aws:iam::123456789012:role/r".into());
        let e = super::finding(&f, 0, &Defaults::default()).unwrap_err();
        assert!(e.to_string().contains("set [export] aws_region"), "{e}");
        let d = Defaults {
            region: Some("us-west-2".into()),
            account: None,
        };
        assert_eq!(super::finding(&f, 0, &d).unwrap()["Region"], "us-west-2");
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("ééééé", 4).chars().count(), 4);
    }
}
