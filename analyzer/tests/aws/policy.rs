//! `deploy/iam/credtrail-analyzer-policy.json` grants exactly the IAM actions of the AWS SDK
//! operations the analyzer's source calls: a call without its action, or an action nothing
//! calls, fails here.

use std::path::Path;

use crate::sdk_calls::{actions_needed, assert_grants_exactly, operations_called, policy_actions};

/// SDK operation (the fluent builder method) → the IAM action it needs.
const OPERATIONS: &[(&str, &str)] = &[
    ("lookup_events", "cloudtrail:LookupEvents"),
    ("list_objects_v2", "s3:ListBucket"),
    ("list_objects", "s3:ListBucket"),
    ("get_object", "s3:GetObject"),
    ("put_object", "s3:PutObject"),
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

/// S3 actions are granted on the right kind of resource: ListBucket on buckets, GetObject and
/// PutObject on objects (`bucket/*`, `bucket/prefix/*`); nothing on `*` except CloudTrail's (which has no resource types).
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
                    "s3:GetObject" | "s3:PutObject" => assert!(
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
        let d = client.delete_object().send();
    "#;
    let ops: Vec<String> = operations_called(src, OPERATIONS)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        ops,
        [
            "cloudtrail:LookupEvents",
            "s3:GetObject",
            "s3:ListBucket",
            "?delete_object"
        ]
    );
}

#[test]
fn the_analyzer_policy_grants_exactly_what_the_source_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let needed = actions_needed(&root.join("src"), OPERATIONS, "tests/aws/policy.rs");
    assert!(
        needed.contains("cloudtrail:LookupEvents"),
        "the scan found nothing: {needed:?}"
    );
    let policy = root.join("../deploy/iam/credtrail-analyzer-policy.json");
    let granted =
        policy_actions(&serde_json::from_slice(&std::fs::read(&policy).unwrap()).unwrap());
    assert_grants_exactly(&needed, &granted, "analyzer", &policy.display().to_string());
}
