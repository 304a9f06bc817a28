//! The trail coverage model (trail.rs, `grant_visibility` in views.sql): for each kind of trail
//! that covers less than everything, an action whose event it does not cover is unverifiable
//! with its reason, never unused, while an action it does cover still comes out unused. The
//! trail's documents are in the shapes `aws cloudtrail get-event-selectors` and `aws cloudtrail
//! describe-trails` print, read through the same CloudTrail ingest as the logs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use credtrail::detect::{self, Finding, RunOptions};
use credtrail::store::Store;

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/app-task";
const SIDE_ROLE: &str = "arn:aws:iam::123456789012:role/side-task";
const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:123456789012:trail/main";

/// The role's grants: (action, resources).
const GRANTS: [(&str, &[&str]); 8] = [
    ("sqs:CreateQueue", &["*"]),
    ("sqs:DeleteQueue", &["*"]),
    ("kms:DescribeKey", &["*"]),
    ("ec2:DescribeInstances", &["*"]),
    ("s3:GetObject", &["arn:aws:s3:::app-bucket/*"]),
    // A statement naming the bucket, its objects and a queue: PutObject can name the objects
    // only.
    (
        "s3:PutObject",
        &[
            "arn:aws:s3:::app-bucket",
            "arn:aws:s3:::app-bucket/*",
            "arn:aws:sqs:us-east-1:123456789012:jobs",
        ],
    ),
    (
        "s3:DeleteObject",
        &[
            "arn:aws:s3:::app-bucket/*",
            "arn:aws:s3:::logs-bucket/*",
            "arn:aws:sqs:us-east-1:123456789012:jobs",
        ],
    ),
    ("iam:PassRole", &["*"]),
];

fn task_id(n: u32) -> String {
    format!("{n:032x}")
}

fn task_arn(region: &str, n: u32) -> String {
    format!("arn:aws:ecs:{region}:{ACCOUNT}:task/prod/{}", task_id(n))
}

/// One CloudTrail record of a call by a task session of `role`.
fn call(n: u32, role: &str, session: &str, source: &str, name: &str, data: bool) -> Value {
    let role_name = role.rsplit('/').next().unwrap();
    let mut r = json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLE:{session}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}"),
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLEAAAAAAAAA",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": role,
                                  "accountId": ACCOUNT, "userName": role_name},
                "attributes": {"creationDate": "2026-11-20T12:00:00Z", "mfaAuthenticated": "false"}
            }
        },
        "eventTime": format!("2026-11-20T12:{:02}:00Z", 5 + n),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "52.0.0.1",
        "userAgent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5",
        "requestParameters": null,
        "responseElements": null,
        "requestID": format!("REQ{n:08}"),
        "eventID": format!("00000000-0000-4000-8000-{n:012}"),
        "readOnly": name.starts_with("Get") || name.starts_with("Describe"),
        "eventType": "AwsApiCall",
        "managementEvent": !data,
        "recipientAccountId": ACCOUNT,
        "eventCategory": if data { "Data" } else { "Management" },
    });
    if data {
        r["requestParameters"] = json!({"bucketName": "app-bucket", "key": "in/1.json"});
        r["resources"] = json!([
            {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::app-bucket/in/1.json"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::app-bucket"}
        ]);
    }
    r
}

fn role_detail(role: &str, grants: &[(&str, &[&str])]) -> Value {
    let statements: Vec<Value> = grants
        .iter()
        .enumerate()
        .map(|(i, (a, res))| {
            json!({"Sid": format!("S{i}"), "Effect": "Allow", "Action": a, "Resource": res})
        })
        .collect();
    json!({
        "Path": "/", "RoleName": role.rsplit('/').next().unwrap(), "RoleId": "AROAEXAMPLE",
        "Arn": role, "CreateDate": "2026-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "InstanceProfileList": [],
        "RolePolicyList": [{"PolicyName": "inline", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
        "AttachedManagedPolicies": [], "Tags": [], "RoleLastUsed": {}
    })
}

fn task(region: &str, n: u32, family: &str) -> Value {
    json!({
        "taskArn": task_arn(region, n),
        "clusterArn": format!("arn:aws:ecs:{region}:{ACCOUNT}:cluster/prod"),
        "taskDefinitionArn": format!("arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{family}:1"),
        "launchType": "FARGATE",
        "group": format!("service:{family}"),
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "createdAt": 1_795_175_880.0,
        "startedAt": 1_795_176_000.0,
        "overrides": {"containerOverrides": []},
        "containers": []
    })
}

fn task_definition(region: &str, family: &str, role: &str) -> Value {
    json!({"taskDefinition": {
        "taskDefinitionArn": format!("arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{family}:1"),
        "family": family, "revision": 1, "taskRoleArn": role, "networkMode": "awsvpc"
    }})
}

/// A world: the app role (tasks in `regions`) and the side role (a task in us-east-1 that made
/// no call), the app's calls (CreateQueue, and GetObject as a data event), and the trail
/// documents given, ingested as a person would (`credtrail ingest` of one directory).
struct World<'a> {
    regions: &'a [&'a str],
    docs: Vec<(&'a str, Value)>,
    /// Ingest the calls as LookupEvents of us-east-1 instead of files.
    lookup: bool,
}

impl Default for World<'_> {
    fn default() -> Self {
        World {
            regions: &["us-east-1"],
            docs: Vec::new(),
            lookup: false,
        }
    }
}

impl World<'_> {
    fn store(&self, dir: &Path) -> Store {
        let store = Store::open_in_memory().unwrap();
        let mut tasks = Vec::new();
        for (i, region) in self.regions.iter().enumerate() {
            tasks.push(task(region, i as u32 + 1, "app"));
        }
        tasks.push(task("us-east-1", 99, "side"));
        let session = task_id(1);
        let mut records = vec![
            call(1, ROLE, &session, "sqs.amazonaws.com", "CreateQueue", false),
            call(2, ROLE, &session, "s3.amazonaws.com", "GetObject", true),
        ];
        if !self.lookup {
            // Data events are never in LookupEvents.
            records.push(call(
                3,
                ROLE,
                &session,
                "s3.amazonaws.com",
                "GetObject",
                true,
            ));
        } else {
            records.truncate(1);
        }
        let write = |name: &str, v: &Value| {
            let p = dir.join(name);
            std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
            p
        };
        let mut ecs = vec![
            write(
                "describe-tasks.json",
                &json!({"tasks": tasks, "failures": []}),
            ),
            write(
                "td-side.json",
                &task_definition("us-east-1", "side", SIDE_ROLE),
            ),
        ];
        for region in self.regions {
            ecs.push(write(
                &format!("td-app-{region}.json"),
                &task_definition(region, "app", ROLE),
            ));
        }
        credtrail::ecs::ingest(&store, &ecs).unwrap();
        let iam = write(
            "iam.json",
            &json!({"UserDetailList": [], "GroupDetailList": [], "Policies": [],
                    "RoleDetailList": [role_detail(ROLE, &GRANTS),
                                       role_detail(SIDE_ROLE, &[("sqs:DeleteQueue", &["*"]), ("kms:DescribeKey", &["*"])])]}),
        );
        credtrail::iam::ingest(&store, &iam).unwrap();
        let mut trail_files = Vec::new();
        if self.lookup {
            let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
            credtrail::cloudtrail::ingest_records(&store, "lookup:us-east-1", &lines).unwrap();
            store
                .conn()
                .execute_batch(
                    "INSERT INTO cloudtrail_lookup_requests VALUES ('us-east-1', TIMESTAMP '2026-11-20 12:30:00')",
                )
                .unwrap();
        } else {
            trail_files.push(write(
                "cloudtrail-events.json",
                &json!({ "Records": records }),
            ));
        }
        for (name, doc) in &self.docs {
            trail_files.push(write(name, doc));
        }
        if !trail_files.is_empty() {
            let opts = credtrail::cloudtrail::Options {
                threads: 1,
                progress: false,
                fetchers: 0,
            };
            let s = credtrail::cloudtrail::ingest_paths(&store, &trail_files, &opts).unwrap();
            assert_eq!(s.rejects, 0, "{s}");
        }
        store
    }
}

fn detection(id: &str) -> detect::Detection {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries/detections");
    let loaded = detect::load_dir(&dir).unwrap();
    loaded.detections.into_iter().find(|d| d.id == id).unwrap()
}

fn run(store: &Store, id: &str, params: &[(&str, &str)]) -> Vec<Finding> {
    let mut opts = RunOptions::default();
    for (k, v) in params {
        opts.params.insert(k.to_string(), v.to_string());
    }
    let r = detect::run(store, &[detection(id)], &opts);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    r.findings
}

/// Per action of the app role: "used", "unused", or "unverifiable: <reason>".
fn verdicts(world: &World) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let store = world.store(dir.path());
    let f = run(
        &store,
        "unused_permissions",
        &[("min_unused", "0"), ("min_used", "0")],
    );
    let f = f
        .iter()
        .find(|f| f.role_arn.as_deref() == Some(ROLE))
        .unwrap_or_else(|| panic!("no finding for the app role: {f:#?}"));
    let e = &f.evidence;
    let mut out = BTreeMap::new();
    for a in e["unused_actions"].as_array().unwrap() {
        out.insert(a.as_str().unwrap().to_string(), "unused".to_string());
    }
    for a in e["used_actions"].as_array().unwrap() {
        out.insert(a["action"].as_str().unwrap().to_string(), "used".into());
    }
    for a in e["unverifiable_actions"].as_array().unwrap() {
        out.insert(
            a["action"].as_str().unwrap().to_string(),
            format!("unverifiable: {}", a["reason"].as_str().unwrap()),
        );
    }
    assert_eq!(out.len(), GRANTS.len(), "{out:#?}");
    out
}

fn selectors(selectors: Value) -> (&'static str, Value) {
    (
        "event-selectors.json",
        json!({"TrailARN": TRAIL, "EventSelectors": selectors}),
    )
}

fn advanced(selectors: Value) -> (&'static str, Value) {
    (
        "event-selectors.json",
        json!({"TrailARN": TRAIL, "AdvancedEventSelectors": selectors}),
    )
}

fn described(multi_region: bool) -> (&'static str, Value) {
    (
        "trails.json",
        json!({"trailList": [{
            "IncludeGlobalServiceEvents": true, "Name": "main", "TrailARN": TRAIL,
            "LogFileValidationEnabled": true, "IsMultiRegionTrail": multi_region,
            "S3BucketName": "trail-bucket", "HomeRegion": "us-east-1",
            "HasCustomEventSelectors": true, "HasInsightSelectors": false,
            "IsOrganizationTrail": false
        }]}),
    )
}

#[track_caller]
fn assert_unverifiable(v: &BTreeMap<String, String>, action: &str, reason: &str) {
    let got = &v[action];
    assert!(
        got.starts_with("unverifiable: ") && got.contains(reason),
        "{action}: expected unverifiable with {reason:?}, got {got:?}\n{v:#?}"
    );
}

#[test]
fn without_trail_documents_management_events_are_assumed_and_data_events_judged_by_presence() {
    let v = verdicts(&World::default());
    assert_eq!(v["sqs:CreateQueue"], "used");
    assert_eq!(v["s3:GetObject"], "used");
    assert_eq!(v["sqs:DeleteQueue"], "unused");
    assert_eq!(v["kms:DescribeKey"], "unused");
    assert_eq!(v["ec2:DescribeInstances"], "unused");
    // The trail read holds S3 data events, so S3's are judged.
    assert_eq!(v["s3:PutObject"], "unused");
    assert_eq!(v["s3:DeleteObject"], "unused");
    assert_unverifiable(&v, "iam:PassRole", "CloudTrail never logs it");
}

#[test]
fn kms_excluded_from_management_events() {
    let v = verdicts(&World {
        docs: vec![
            selectors(json!([{
                "ReadWriteType": "All", "IncludeManagementEvents": true,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}],
                "ExcludeManagementEventSources": ["kms.amazonaws.com"]
            }])),
            described(true),
        ],
        ..World::default()
    });
    assert_unverifiable(
        &v,
        "kms:DescribeKey",
        "kms.amazonaws.com management events are not logged (eventSource NotEquals kms.amazonaws.com)",
    );
    assert_eq!(v["sqs:DeleteQueue"], "unused");
    assert_eq!(v["ec2:DescribeInstances"], "unused");
    assert_eq!(v["s3:PutObject"], "unused");
    assert_eq!(
        v["s3:DeleteObject"], "unused",
        "every bucket's objects are logged"
    );
}

#[test]
fn write_only_management_events() {
    let v = verdicts(&World {
        docs: vec![
            selectors(
                json!([{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": true,
                              "DataResources": [], "ExcludeManagementEventSources": []}]),
            ),
            described(true),
        ],
        ..World::default()
    });
    // DescribeInstances (List) and DescribeKey (Read) are read-only events.
    assert_unverifiable(
        &v,
        "ec2:DescribeInstances",
        "read-only management events are not logged (readOnly Equals false)",
    );
    assert_unverifiable(&v, "kms:DescribeKey", "read-only management events");
    assert_eq!(v["sqs:DeleteQueue"], "unused");
    // No data events at all.
    assert_unverifiable(
        &v,
        "s3:PutObject",
        "the trail logs no AWS::S3::Object data events",
    );
}

#[test]
fn a_trail_of_one_region_covers_only_that_region() {
    let one = World {
        regions: &["us-east-1", "eu-west-1"],
        docs: vec![
            selectors(json!([{"ReadWriteType": "All", "IncludeManagementEvents": true}])),
            described(false),
        ],
        ..World::default()
    };
    let v = verdicts(&one);
    assert_unverifiable(&v, "sqs:DeleteQueue", "no trail read covers eu-west-1");
    assert_unverifiable(
        &v,
        "ec2:DescribeInstances",
        "no trail read covers eu-west-1",
    );
    assert_eq!(v["sqs:CreateQueue"], "used");

    // The same trail, multi-region: covered.
    let multi = World {
        docs: vec![
            selectors(json!([{"ReadWriteType": "All", "IncludeManagementEvents": true}])),
            described(true),
        ],
        ..one
    };
    let v = verdicts(&multi);
    assert_eq!(v["sqs:DeleteQueue"], "unused");

    // Selectors without describe-trails: only the home region counts.
    let undescribed = World {
        docs: vec![selectors(
            json!([{"ReadWriteType": "All", "IncludeManagementEvents": true}]),
        )],
        ..multi
    };
    let v = verdicts(&undescribed);
    assert_unverifiable(&v, "sqs:DeleteQueue", "no trail read covers eu-west-1");
}

#[test]
fn s3_data_events_for_some_buckets_only() {
    let v = verdicts(&World {
        docs: vec![
            selectors(json!([{
                "ReadWriteType": "All", "IncludeManagementEvents": true,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::app-bucket/"]}]
            }])),
            described(true),
        ],
        ..World::default()
    });
    assert_eq!(v["s3:GetObject"], "used");
    // Granted on app-bucket only: inside the selected prefix.
    assert_eq!(v["s3:PutObject"], "unused");
    // Also granted on logs-bucket, whose objects are not logged.
    assert_unverifiable(
        &v,
        "s3:DeleteObject",
        "AWS::S3::Object data events are logged only where resources.ARN StartsWith arn:aws:s3:::app-bucket/, not for every resource of arn:aws:s3:::logs-bucket/*",
    );
    assert_eq!(v["sqs:DeleteQueue"], "unused");
}

#[test]
fn advanced_selectors_with_not_equals_and_starts_with() {
    let v = verdicts(&World {
        docs: vec![
            advanced(json!([
                {"Name": "Management events but KMS", "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]},
                {"Name": "App objects", "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Data"]},
                    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                    {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::app-bucket/"]}]}
            ])),
            described(true),
        ],
        ..World::default()
    });
    assert_unverifiable(
        &v,
        "kms:DescribeKey",
        "kms.amazonaws.com management events are not logged",
    );
    assert_unverifiable(&v, "s3:DeleteObject", "arn:aws:s3:::logs-bucket/*");
    assert_eq!(v["s3:PutObject"], "unused");
    assert_eq!(v["sqs:DeleteQueue"], "unused");
    assert_eq!(v["ec2:DescribeInstances"], "unused");

    // Every bucket but the logs: app-bucket's grants are inside, logs-bucket's are not; write
    // events only.
    let v = verdicts(&World {
        docs: vec![
            advanced(json!([
                {"Name": "Management", "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]}]},
                {"Name": "Objects but the logs, writes", "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Data"]},
                    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                    {"Field": "readOnly", "Equals": ["false"]},
                    {"Field": "resources.ARN", "NotStartsWith": ["arn:aws:s3:::logs-bucket/"]}]}
            ])),
            described(true),
        ],
        ..World::default()
    });
    assert_eq!(v["s3:PutObject"], "unused");
    assert_unverifiable(
        &v,
        "s3:DeleteObject",
        "resources.ARN NotStartsWith arn:aws:s3:::logs-bucket/",
    );
    assert_eq!(v["kms:DescribeKey"], "unused");
}

#[test]
fn management_events_off() {
    let v = verdicts(&World {
        docs: vec![
            selectors(json!([{
                "ReadWriteType": "All", "IncludeManagementEvents": false,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]
            }])),
            described(true),
        ],
        ..World::default()
    });
    for a in [
        "sqs:DeleteQueue",
        "kms:DescribeKey",
        "ec2:DescribeInstances",
    ] {
        assert_unverifiable(
            &v,
            a,
            "the trail logs no management events (IncludeManagementEvents false)",
        );
    }
    assert_eq!(
        v["sqs:CreateQueue"], "used",
        "a call read is use whatever the trail says"
    );
    assert_eq!(v["s3:PutObject"], "unused");
    assert_eq!(v["s3:DeleteObject"], "unused");
}

#[test]
fn lookup_events_cover_management_events_of_their_region_only() {
    let v = verdicts(&World {
        regions: &["us-east-1", "eu-west-1"],
        lookup: true,
        ..World::default()
    });
    assert_unverifiable(
        &v,
        "s3:PutObject",
        "a data event, and LookupEvents us-east-1 returns management events only",
    );
    assert_unverifiable(&v, "sqs:DeleteQueue", "no trail read covers eu-west-1");

    let v = verdicts(&World {
        lookup: true,
        ..World::default()
    });
    assert_eq!(v["sqs:DeleteQueue"], "unused");
    assert_eq!(v["kms:DescribeKey"], "unused");
    assert_unverifiable(&v, "s3:GetObject", "returns management events only");
}

#[test]
fn a_role_whose_trail_covers_nothing_it_needs_is_not_unused() {
    // The side role grants only management actions and its task made no call.
    let dir = tempfile::tempdir().unwrap();
    let default = World::default().store(dir.path());
    let f = run(&default, "unused_role", &[]);
    assert!(
        f.iter().any(|f| f.role_arn.as_deref() == Some(SIDE_ROLE)),
        "with management events assumed the side role is unused: {f:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let off = World {
        docs: vec![
            selectors(json!([{
                "ReadWriteType": "All", "IncludeManagementEvents": false,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]
            }])),
            described(true),
        ],
        ..World::default()
    }
    .store(dir.path());
    let f = run(&off, "unused_role", &[]);
    assert!(
        f.iter().all(|f| f.role_arn.as_deref() != Some(SIDE_ROLE)),
        "{f:#?}"
    );
    let f = run(
        &off,
        "unused_permissions",
        &[("min_unused", "0"), ("min_used", "0")],
    );
    let side = f
        .iter()
        .find(|f| f.role_arn.as_deref() == Some(SIDE_ROLE))
        .unwrap();
    assert_eq!(side.evidence["unused_actions"], json!([]));
    assert_eq!(side.evidence["used_actions"], json!([]));
    assert_eq!(
        side.evidence["unverifiable_actions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn trail_documents_are_stored_and_bad_ones_rejected_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = World {
        docs: vec![
            selectors(json!([{"ReadWriteType": "All"}])),
            described(false),
        ],
        ..World::default()
    }
    .store(dir.path());
    let (n, multi): (i64, bool) = store
        .conn()
        .query_row(
            "SELECT count(*), bool_and(multi_region) FROM cloudtrail_trails WHERE trail_arn = ?",
            [TRAIL],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, multi), (1, false));

    let bad = dir.path().join("bad-selectors.json");
    std::fs::write(
        &bad,
        json!({"TrailARN": TRAIL, "EventSelectors": [{"ReadWriteType": "Sometimes"}]}).to_string(),
    )
    .unwrap();
    let opts = credtrail::cloudtrail::Options {
        threads: 1,
        progress: false,
        fetchers: 0,
    };
    let s = credtrail::cloudtrail::ingest_paths(&store, &[bad], &opts).unwrap();
    assert_eq!(s.rejects, 1, "{s}");
    let reason: String = store
        .conn()
        .query_row(
            "SELECT reason FROM cloudtrail_rejects WHERE source_file LIKE '%bad-selectors.json'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.contains("\"Sometimes\""), "{reason}");
    // The trail's earlier selectors stand.
    assert_eq!(
        store
            .count("SELECT count(*) FROM cloudtrail_event_selectors")
            .unwrap(),
        1
    );
}

#[test]
fn coverage_shows_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = World {
        docs: vec![
            selectors(json!([{
                "ReadWriteType": "WriteOnly", "IncludeManagementEvents": true,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::app-bucket/"]}],
                "ExcludeManagementEventSources": ["kms.amazonaws.com", "rdsdata.amazonaws.com"]
            }])),
            described(false),
        ],
        ..World::default()
    }
    .store(dir.path());
    let c = credtrail::coverage::read(&store).unwrap();
    assert_eq!(c.trails.len(), 1, "{:#?}", c.trails);
    let t = &c.trails[0];
    assert_eq!(t.trail, TRAIL);
    assert_eq!(t.regions, Some(vec!["us-east-1".to_string()]));
    assert_eq!(t.accounts, Some(vec![ACCOUNT.to_string()]));
    assert_eq!(
        t.management_events,
        ["write-only, eventSource NotEquals kms.amazonaws.com, rdsdata.amazonaws.com"]
    );
    assert_eq!(
        t.data_events,
        ["AWS::S3::Object, write-only, resources.ARN StartsWith arn:aws:s3:::app-bucket/"]
    );
    let mut out = Vec::new();
    credtrail::coverage::command(
        &store,
        &credtrail::coverage::CoverageArgs {
            format: credtrail::coverage::Format::Table,
        },
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!(
            "  {TRAIL} (trail)\n    regions: us-east-1 · accounts: {ACCOUNT}\n"
        )),
        "{text}"
    );
    assert!(
        !text.contains("event selectors (aws cloudtrail get-event-selectors)"),
        "{text}"
    );

    // LookupEvents only: management events of its region, and the selectors are missing.
    let dir = tempfile::tempdir().unwrap();
    let store = World {
        lookup: true,
        ..World::default()
    }
    .store(dir.path());
    let c = credtrail::coverage::read(&store).unwrap();
    assert_eq!(c.trails.len(), 1, "{:#?}", c.trails);
    assert_eq!(c.trails[0].trail, "LookupEvents us-east-1");
    assert_eq!(
        c.trails[0].management_events,
        ["management events of us-east-1 only"]
    );
    assert!(c.trails[0].data_events.is_empty());
    assert!(
        c.missing_inputs
            .iter()
            .any(|m| m.input.starts_with("event selectors"))
    );
}
