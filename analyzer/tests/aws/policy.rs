//! `deploy/iam/credtrail-analyzer-policy.json` grants exactly the IAM actions of the AWS SDK
//! operations the analyzer's source calls: a call without its action, or an action nothing
//! calls, fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// SDK operation (the fluent builder method) → the IAM action it needs.
const OPERATIONS: &[(&str, &str)] = &[
    ("lookup_events", "cloudtrail:LookupEvents"),
    ("list_objects_v2", "s3:ListBucket"),
    ("list_objects", "s3:ListBucket"),
    ("get_object", "s3:GetObject"),
    ("head_object", "s3:GetObject"),
    ("get_bucket_location", "s3:GetBucketLocation"),
    ("describe_tasks", "ecs:DescribeTasks"),
    ("describe_task_definition", "ecs:DescribeTaskDefinition"),
    (
        "get_account_authorization_details",
        "iam:GetAccountAuthorizationDetails",
    ),
    ("get_event_selectors", "cloudtrail:GetEventSelectors"),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without `//` comments (so doc text naming an operation is not a call).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every SDK request the source sends: the first builder method of each chain that ends in
/// `.send()` (`client.lookup_events().start_time(…)….send()`). Unknown ones are returned as
/// `?name` so a new call cannot slip past the table.
fn operations_called(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let code = code(src);
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".send()") {
        let before = &rest[..at];
        // The chain starts after the last statement boundary.
        let start = before.rfind([';', '{', '}']).map_or(0, |i| i + 1);
        let chain = &before[start..];
        // The method called on the client: the first `.name(` after `client`.
        let op = chain.find("client").and_then(|c| {
            let after = &chain[c + "client".len()..];
            let after = after.trim_start();
            let after = after.strip_prefix('.')?;
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        });
        let op = op.unwrap_or_else(|| format!("?{}", chain.trim()));
        let action = OPERATIONS
            .iter()
            .find(|(o, _)| *o == op)
            .map_or_else(|| format!("?{op}"), |(_, a)| a.to_string());
        out.push((op, action));
        rest = &rest[at + ".send()".len()..];
    }
    out
}

fn policy_actions(path: &Path) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for st in v["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{st}");
        assert!(st.get("NotAction").is_none(), "{st}");
        match &st["Action"] {
            serde_json::Value::String(a) => {
                out.insert(a.clone());
            }
            serde_json::Value::Array(a) => {
                out.extend(a.iter().map(|x| x.as_str().unwrap().to_string()));
            }
            other => panic!("Action: {other}"),
        }
    }
    out
}

/// S3 actions are granted on the right kind of resource: ListBucket on buckets, GetObject on
/// objects (`bucket/*`); nothing on `*` except CloudTrail's (which has no resource types).
#[test]
fn the_analyzer_policy_scopes_s3_to_buckets_and_objects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("../deploy/iam/credtrail-analyzer-policy.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for st in v["Statement"].as_array().unwrap() {
        let actions: Vec<&str> = match &st["Action"] {
            serde_json::Value::String(a) => vec![a.as_str()],
            a => a
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect(),
        };
        let resources: Vec<&str> = match &st["Resource"] {
            serde_json::Value::String(r) => vec![r.as_str()],
            r => r
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect(),
        };
        for a in actions {
            for r in &resources {
                match a {
                    "cloudtrail:LookupEvents" => assert_eq!(*r, "*"),
                    "s3:ListBucket" => assert!(
                        r.starts_with("arn:aws:s3:::") && !r.contains('/'),
                        "{a} on {r}"
                    ),
                    "s3:GetObject" => assert!(
                        r.starts_with("arn:aws:s3:::") && r.ends_with("/*"),
                        "{a} on {r}"
                    ),
                    other => panic!("no resource rule for {other}"),
                }
            }
        }
    }
}

#[test]
fn the_parser_finds_sdk_calls() {
    let src = r#"
        // client.get_object() in a comment is not a call
        let a = client.lookup_events().start_time(t).send().await;
        let b = self
            .client
            .get_object()
            .bucket(b)
            .send();
        let c = s3.client.list_objects_v2().bucket(x).into_paginator().send();
        let d = client.put_object().send();
    "#;
    let ops: Vec<String> = operations_called(src).into_iter().map(|(_, a)| a).collect();
    assert_eq!(
        ops,
        [
            "cloudtrail:LookupEvents",
            "s3:GetObject",
            "s3:ListBucket",
            "?put_object"
        ]
    );
}

#[test]
fn the_analyzer_policy_grants_exactly_what_the_source_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut needed = BTreeSet::new();
    for f in &files {
        for (op, action) in operations_called(&std::fs::read_to_string(f).unwrap()) {
            assert!(
                !action.starts_with('?'),
                "{}: the SDK call {op} is not in the operation table of tests/aws/policy.rs; add it (and its IAM action to the policy)",
                f.display()
            );
            needed.insert(action);
        }
    }
    assert!(
        needed.contains("cloudtrail:LookupEvents"),
        "the scan found nothing: {needed:?}"
    );
    let policy = root.join("../deploy/iam/credtrail-analyzer-policy.json");
    let granted = policy_actions(&policy);
    let missing: Vec<_> = needed.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty(),
        "{}: the analyzer calls operations needing {missing:?}, which the policy does not grant",
        policy.display()
    );
    assert!(
        unused.is_empty(),
        "{}: grants {unused:?}, which nothing in analyzer/src calls (least privilege)",
        policy.display()
    );
}
