//! `deploy/iam/credtrail-collector-policy.json` grants exactly the IAM actions of the AWS SDK
//! operations the collector's source calls, on the segments prefix only: a call without its
//! action, an action nothing calls, or a grant beyond objects under a prefix fails here.

use std::path::Path;

#[path = "../../tests/support/sdk_calls.rs"]
mod sdk_calls;
use sdk_calls::{
    actions_needed, assert_grants_exactly, operations_called, policy_actions, strings,
};

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

fn policy() -> serde_json::Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/iam/credtrail-collector-policy.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
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
    let ops: Vec<String> = operations_called(src, OPERATIONS)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
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
    let needed = actions_needed(&root.join("src"), OPERATIONS, "tests/policy.rs");
    assert!(
        needed.contains("s3:PutObject"),
        "the scan found nothing: {needed:?}"
    );
    let granted = policy_actions(&policy());
    assert_grants_exactly(
        &needed,
        &granted,
        "collector",
        "credtrail-collector-policy.json",
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
