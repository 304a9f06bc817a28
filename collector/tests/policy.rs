//! `deploy/iam/credtrail-collector-policy.json` grants exactly the IAM actions of the AWS SDK
//! operations the collector's source calls, on the segments prefix only: a call without its
//! action, an action nothing calls, or a grant beyond objects under a prefix fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// SDK operation (the fluent builder method) → the IAM action it needs. The multipart
/// operations but the abort are authorized by `s3:PutObject`; ListParts (needing
/// `s3:ListMultipartUploadParts`) is never called.
const OPERATIONS: &[(&str, &str)] = &[
    ("put_object", "s3:PutObject"),
    ("create_multipart_upload", "s3:PutObject"),
    ("upload_part", "s3:PutObject"),
    ("complete_multipart_upload", "s3:PutObject"),
    ("abort_multipart_upload", "s3:AbortMultipartUpload"),
    ("list_parts", "s3:ListMultipartUploadParts"),
    ("list_multipart_uploads", "s3:ListBucketMultipartUploads"),
    ("get_object", "s3:GetObject"),
    ("head_object", "s3:GetObject"),
    ("list_objects_v2", "s3:ListBucket"),
    ("delete_object", "s3:DeleteObject"),
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

/// Every SDK request the source sends: the first builder method after `client` of each chain
/// that ends in `.send()`. Unknown ones are returned as `?name` so a new call cannot slip past
/// the table.
fn operations_called(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let code = code(src);
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".send()") {
        let before = &rest[..at];
        let start = before.rfind([';', '{', '}']).map_or(0, |i| i + 1);
        let chain = &before[start..];
        let op = chain.find("client").and_then(|c| {
            let after = chain[c + "client".len()..].trim_start();
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

fn policy() -> serde_json::Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/iam/credtrail-collector-policy.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("not a string or a list: {other}"),
    }
}

#[test]
fn the_parser_finds_sdk_calls() {
    let src = r#"
        // client.get_object() in a comment is not a call
        let a = client.put_object().bucket(b).send().await;
        let b = self
            .client
            .upload_part()
            .bucket(b)
            .send();
        let c = client.abort_multipart_upload().send();
        let d = client.copy_object().send();
    "#;
    let ops: Vec<String> = operations_called(src).into_iter().map(|(_, a)| a).collect();
    assert_eq!(
        ops,
        [
            "s3:PutObject",
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "?copy_object"
        ]
    );
}

#[test]
fn the_collector_policy_grants_exactly_what_the_source_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut needed = BTreeSet::new();
    for f in &files {
        for (op, action) in operations_called(&std::fs::read_to_string(f).unwrap()) {
            assert!(
                !action.starts_with('?'),
                "{}: the SDK call {op} is not in the operation table of tests/policy.rs; add it (and its IAM action to the policy)",
                f.display()
            );
            needed.insert(action);
        }
    }
    assert!(
        needed.contains("s3:PutObject"),
        "the scan found nothing: {needed:?}"
    );
    let mut granted = BTreeSet::new();
    for st in policy()["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{st}");
        assert!(st.get("NotAction").is_none(), "{st}");
        granted.extend(strings(&st["Action"]));
    }
    let missing: Vec<_> = needed.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty(),
        "the collector calls operations needing {missing:?}, which its policy does not grant"
    );
    assert!(
        unused.is_empty(),
        "the policy grants {unused:?}, which nothing in collector/src calls (least privilege)"
    );
}

/// Every grant is on objects under a prefix of one bucket (`arn:aws:s3:::BUCKET/PREFIX/*`):
/// never a bucket, a whole bucket's objects, another service or `*`.
#[test]
fn the_collector_policy_is_scoped_to_the_segments_prefix() {
    for st in policy()["Statement"].as_array().unwrap() {
        assert!(st.get("NotResource").is_none(), "{st}");
        for a in strings(&st["Action"]) {
            assert!(a.starts_with("s3:") && !a.contains('*'), "{a}");
        }
        for r in strings(&st["Resource"]) {
            let object = r
                .strip_prefix("arn:aws:s3:::")
                .unwrap_or_else(|| panic!("{r} is not an S3 ARN"));
            let (bucket, prefix) = object
                .split_once('/')
                .unwrap_or_else(|| panic!("{r} names a bucket, not objects"));
            assert!(!bucket.is_empty() && !bucket.contains('*'), "{r}");
            assert!(
                prefix.ends_with("/*")
                    && prefix.len() > 2
                    && !prefix[..prefix.len() - 2].contains('*'),
                "{r}: objects under one prefix only"
            );
        }
    }
}
