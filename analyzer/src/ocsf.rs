//! `analyze --format ocsf`: a finding as an OCSF Detection Finding (class_uid 2004, category
//! Findings), schema version [`VERSION`] with the `cloud` profile. The tests validate every
//! object against the class's JSON schema, generated from OCSF's published export
//! (`analyzer/schemas/ocsf/`).
//!
//! Mapping: the finding's time range is `start_time`/`end_time` and
//! `finding_info.first_seen_time`/`last_seen_time` (epoch milliseconds); its kind is the
//! analytic (a rule) and `finding_info.types`; task, role and cluster are `resources`; the
//! account and region come from their ARNs (`cloud`); the evidence is `evidences[0].data`, with
//! the source address as `evidences[0].src_endpoint`. A resolved finding (`analyze
//! --since-last-run`) has `status_id` 4 (Resolved). A suppressed finding has `status_id` 3
//! (Suppressed) and the reason in `status_detail`; a severity set by the configuration keeps
//! the detection's own in `unmapped.detected_severity`. Strings from logs are only ever JSON
//! string values (serde_json escapes them).

use serde_json::{Map, Value, json};

use crate::detect::{Finding, Severity};

/// The OCSF schema version the objects follow.
pub const VERSION: &str = "1.5.0";
/// Detection Finding.
pub const CLASS_UID: i64 = 2004;
/// Findings.
pub const CATEGORY_UID: i64 = 2;
/// Activity: Create.
pub const ACTIVITY_CREATE: i64 = 1;

/// OCSF's severity_id: 2 Low, 3 Medium, 4 High, 5 Critical.
pub fn severity_id(s: Severity) -> (i64, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// (partition, region, account) from an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:…`); empty
/// parts are `None`.
pub fn arn_parts(arn: &str) -> Option<(String, Option<String>, Option<String>)> {
    let mut p = arn.splitn(6, ':');
    if p.next() != Some("arn") {
        return None;
    }
    let partition = p.next().filter(|s| !s.is_empty())?.to_string();
    let _service = p.next()?;
    let region = p.next().filter(|s| !s.is_empty()).map(str::to_string);
    let account = p.next().filter(|s| !s.is_empty()).map(str::to_string);
    Some((partition, region, account))
}

/// The finding's region and account, from its task, cluster, role or host (a container
/// instance) ARN, in that order.
pub fn region_account(f: &Finding) -> (Option<String>, Option<String>) {
    let mut region = None;
    let mut account = None;
    for arn in [&f.task_arn, &f.cluster_arn, &f.role_arn, &f.host]
        .into_iter()
        .flatten()
    {
        if let Some((_, r, a)) = arn_parts(arn) {
            region = region.or(r);
            account = account.or(a);
        }
    }
    (region, account)
}

/// A stable identifier of the finding: its kind and key columns, hashed.
pub fn uid(f: &Finding) -> String {
    let key = [
        f.kind.as_str(),
        f.cluster_arn.as_deref().unwrap_or(""),
        f.task_arn.as_deref().unwrap_or(""),
        f.role_arn.as_deref().unwrap_or(""),
        f.host.as_deref().unwrap_or(""),
        f.source_ip.as_deref().unwrap_or(""),
        f.first_seen.as_deref().unwrap_or(""),
    ]
    .join("\u{1f}");
    format!(
        "credtrail-{}-{:016x}",
        f.kind,
        xxhash_rust::xxh3::xxh3_64(key.as_bytes())
    )
}

fn millis(t: &Option<String>) -> Option<i64> {
    t.as_deref()
        .and_then(crate::timestamp::parse_iso_us)
        .map(|us| us.div_euclid(1000))
}

/// One finding as an OCSF Detection Finding; `now_ms` is when it is written (epoch ms).
pub fn finding(f: &Finding, now_ms: i64) -> Value {
    let (sev_id, sev) = severity_id(f.severity);
    let first = millis(&f.first_seen);
    let last = millis(&f.last_seen);
    let time = last.or(first).unwrap_or(now_ms);
    let (region, account) = region_account(f);

    let mut info = Map::new();
    info.insert("uid".into(), json!(uid(f)));
    info.insert("title".into(), json!(f.title));
    info.insert("types".into(), json!([f.kind]));
    info.insert(
        "analytic".into(),
        json!({"type_id": 1, "type": "Rule", "name": f.kind, "uid": f.kind}),
    );
    info.insert("created_time".into(), json!(now_ms));
    if let Some(t) = first {
        info.insert("first_seen_time".into(), json!(t));
    }
    if let Some(t) = last {
        info.insert("last_seen_time".into(), json!(t));
    }
    info.insert(
        "product".into(),
        json!({"name": "credtrail", "vendor_name": "credtrail", "version": env!("CARGO_PKG_VERSION")}),
    );

    let mut cloud = Map::new();
    cloud.insert("provider".into(), json!("AWS"));
    if let Some(r) = &region {
        cloud.insert("region".into(), json!(r));
    }
    if let Some(a) = &account {
        cloud.insert(
            "account".into(),
            json!({"uid": a, "type_id": 10, "type": "AWS Account"}),
        );
    }

    let mut resources = Vec::new();
    for (arn, ty) in [
        (&f.task_arn, "AWS::ECS::Task"),
        (&f.role_arn, "AWS::IAM::Role"),
        (&f.cluster_arn, "AWS::ECS::Cluster"),
    ] {
        if let Some(arn) = arn {
            let mut r = json!({"uid": arn, "type": ty});
            if let Some((partition, region, _)) = arn_parts(arn) {
                r["cloud_partition"] = json!(partition);
                if let Some(region) = region {
                    r["region"] = json!(region);
                }
            }
            resources.push(r);
        }
    }
    if let Some(h) = &f.host {
        resources.push(json!({"name": h, "hostname": h, "type": "ECS container instance"}));
    }

    let mut evidence = Map::new();
    evidence.insert(
        "data".into(),
        if f.evidence.is_null() {
            json!({})
        } else {
            f.evidence.clone()
        },
    );
    if let Some(ip) = &f.source_ip {
        evidence.insert("src_endpoint".into(), json!({"ip": ip}));
    }

    let mut o = Map::new();
    o.insert("activity_id".into(), json!(ACTIVITY_CREATE));
    o.insert("activity_name".into(), json!("Create"));
    o.insert("category_uid".into(), json!(CATEGORY_UID));
    o.insert("category_name".into(), json!("Findings"));
    o.insert("class_uid".into(), json!(CLASS_UID));
    o.insert("class_name".into(), json!("Detection Finding"));
    o.insert("type_uid".into(), json!(CLASS_UID * 100 + ACTIVITY_CREATE));
    o.insert("type_name".into(), json!("Detection Finding: Create"));
    o.insert("severity_id".into(), json!(sev_id));
    o.insert("severity".into(), json!(sev));
    o.insert("time".into(), json!(time));
    if let Some(t) = first {
        o.insert("start_time".into(), json!(t));
    }
    if let Some(t) = last {
        o.insert("end_time".into(), json!(t));
    }
    o.insert("count".into(), json!(f.count.clamp(0, i64::from(i32::MAX))));
    o.insert("message".into(), json!(f.title));
    let resolved = f
        .change
        .as_ref()
        .is_some_and(|c| c.state == crate::findings::State::Resolved);
    match &f.suppressed {
        _ if resolved => {
            o.insert("status_id".into(), json!(4));
            o.insert("status".into(), json!("Resolved"));
        }
        Some(s) => {
            o.insert("status_id".into(), json!(3));
            o.insert("status".into(), json!("Suppressed"));
            o.insert("status_detail".into(), json!(s.to_string()));
        }
        None => {
            o.insert("status_id".into(), json!(1));
            o.insert("status".into(), json!("New"));
        }
    }
    o.insert("finding_info".into(), Value::Object(info));
    o.insert(
        "metadata".into(),
        json!({
            "version": VERSION,
            "product": {"name": "credtrail", "vendor_name": "credtrail", "version": env!("CARGO_PKG_VERSION")},
        }),
    );
    o.insert("cloud".into(), Value::Object(cloud));
    if !resources.is_empty() {
        o.insert("resources".into(), Value::Array(resources));
    }
    o.insert("evidences".into(), json!([Value::Object(evidence)]));
    if let Some(d) = f.detected_severity {
        o.insert("unmapped".into(), json!({"detected_severity": d.as_str()}));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        assert_eq!(
            arn_parts("arn:aws:ecs:us-east-1:123456789012:task/c/abc"),
            Some((
                "aws".into(),
                Some("us-east-1".into()),
                Some("123456789012".into())
            ))
        );
        assert_eq!(
            arn_parts("arn:aws:iam::123456789012:role/r"),
            Some(("aws".into(), None, Some("123456789012".into())))
        );
        assert_eq!(arn_parts("not an arn"), None);
    }
}
