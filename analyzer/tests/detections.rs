//! Detections as data: every query under queries/detections loads, prepares, has fixtures, and
//! fires on its positive fixture and not on its near-miss (style.md #10, #11).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use credtrail::detect::{self, Detection, Finding, RunOptions, Severity};
use credtrail::store::Store;

fn queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries")
}

/// A fixture case: `<kind>/<name>.log`, or a directory `<kind>/<name>/` of input files.
fn fixture(kind: &str, name: &str) -> PathBuf {
    let dir = queries().join("fixtures").join(kind);
    let case = dir.join(name);
    if case.is_dir() {
        case
    } else {
        dir.join(format!("{name}.log"))
    }
}

fn detections() -> Vec<Detection> {
    let loaded = detect::load_dir(&queries().join("detections")).unwrap();
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded.detections
}

/// A store holding one fixture case: an audit log, or a directory whose `*.log` files are audit
/// logs, `*cloudtrail*.json` files CloudTrail files and other `*.json` files ECS output.
fn store_with(case: &Path) -> Store {
    let store = Store::open_in_memory().unwrap();
    let (mut logs, mut trails, mut ecs, mut iam) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut network = Vec::new();
    if case.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(case)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".log") {
                logs.push(p);
            } else if name.ends_with(".json") && name.contains("cloudtrail") {
                trails.push(p);
            } else if name == "iam.json" {
                iam.push(p);
            } else if name.starts_with("network") && name.ends_with(".json") {
                network.push(p);
            } else if name.ends_with(".json") {
                ecs.push(p);
            }
        }
    } else {
        logs.push(case.to_path_buf());
    }
    if !logs.is_empty() {
        credtrail::audit::ingest(&store, &logs, &credtrail::audit::Options::default()).unwrap();
    }
    if !trails.is_empty() {
        let opts = credtrail::cloudtrail::Options {
            threads: 1,
            progress: false,
            fetchers: 0,
        };
        let s = credtrail::cloudtrail::ingest_paths(&store, &trails, &opts).unwrap();
        assert_eq!(s.rejects, 0, "{}: {s}", case.display());
    }
    if !ecs.is_empty() {
        credtrail::ecs::ingest(&store, &ecs).unwrap();
    }
    for p in &iam {
        credtrail::iam::ingest(&store, p).unwrap();
    }
    if !network.is_empty() {
        // a snapshot taken at the end of the fixtures' hour
        let opts = credtrail::network::Options {
            taken_at_us: Some(1_795_190_400_000_000),
            ..Default::default()
        };
        credtrail::network::ingest(&store, &network, &opts).unwrap();
    }
    store
}

/// The one helper every detection test goes through: the findings of one detection on a fixture.
fn run_fixture(kind: &str, name: &str) -> Vec<Finding> {
    let store = store_with(&fixture(kind, name));
    let det = detections().into_iter().find(|d| d.id == kind).unwrap();
    let report = detect::run(&store, &[det], &RunOptions::default());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for f in &report.findings {
        assert_eq!(f.kind, kind);
    }
    report.findings
}

const CI: &str =
    "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0123456789abcdef0123456789abcdef";

fn task(c: char) -> String {
    format!(
        "arn:aws:ecs:us-east-1:123456789012:task/prod/{}",
        c.to_string().repeat(32)
    )
}

#[test]
fn fetch_denied_burst_positive() {
    let f = run_fixture("fetch_denied_burst", "positive");
    assert_eq!(f.len(), 4, "{f:#?}");
    let by_ip = |ip: &str| {
        f.iter()
            .find(|f| f.source_ip.as_deref() == Some(ip))
            .unwrap()
    };
    // curl guessing IDs: a hand tool, high.
    let curl = by_ip("172.17.0.3");
    assert_eq!(curl.severity, Severity::High);
    assert_eq!(curl.host.as_deref(), Some(CI));
    assert_eq!(curl.count, 5);
    assert_eq!(curl.evidence["total"], 5);
    assert_eq!(curl.evidence["hand_tool"], true);
    // every request throttled: medium.
    let throttled = by_ip("172.17.0.4");
    assert_eq!(throttled.severity, Severity::Medium, "all 429 is medium");
    assert_eq!(throttled.count, 6);
    // an SDK holding a stale credential ID beside a process that fetches fine: medium.
    let stale = by_ip("172.17.0.5");
    assert_eq!(stale.severity, Severity::Medium, "{stale:#?}");
    assert_eq!(stale.count, 36);
    assert_eq!(stale.evidence["successful_fetches_nearby"], 2);
    // an address that never fetched successfully, cycling IDs: high.
    let probe = by_ip("172.17.0.6");
    assert_eq!(probe.severity, Severity::High);
    assert_eq!(probe.evidence["successful_fetches_nearby"], 0);
}

#[test]
fn fetch_denied_burst_negative() {
    // 4 refusals within 10 min, 6 spread over more than an hour, and an agent restart: 503 then
    // 500 bursts (3 per call, as boto3 retries) from three tasks at once.
    let f = run_fixture("fetch_denied_burst", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn fetch_unusual_client_positive() {
    let f = run_fixture("fetch_unusual_client", "positive");
    assert_eq!(f.len(), 3, "{f:#?}");
    // curl in a task whose family fetches with the Go SDK: a hand tool, high.
    let a = f.iter().find(|f| f.task_arn == Some(task('a'))).unwrap();
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.count, 2);
    assert_eq!(a.evidence["user_agents"][0], "curl/8.5.0");
    assert_eq!(
        a.cluster_arn.as_deref(),
        Some("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
    );
    // python-requests where the family used botocore: new code or a person, medium.
    let b = f.iter().find(|f| f.task_arn == Some(task('b'))).unwrap();
    assert_eq!(b.severity, Severity::Medium);
    assert_eq!(b.evidence["baseline_client_families"][0], "python-urllib3");
    // the baseline is the family's, across its tasks: e's first fetch differs from d's.
    let e = f.iter().find(|f| f.task_arn == Some(task('e'))).unwrap();
    assert_eq!(e.severity, Severity::Medium);
    assert_eq!(e.evidence["family"], "worker");
    assert_eq!(e.evidence["client_families"][0], "zend_http_client");
}

#[test]
fn fetch_unusual_client_negative() {
    // SDKs with application suffixes, botocore under urllib3, the CLI, an execution-role fetch
    // by the agent's Go client, a refused curl request, a PHP family that always used its own
    // HTTP client, a family's first fetch ever (no baseline), and JS SDK v3's empty user agent.
    let f = run_fixture("fetch_unusual_client", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn fetch_burst_positive() {
    let f = run_fixture("fetch_burst", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[0].task_arn, Some(task('a')));
    assert_eq!(f[0].count, 31);
    assert_eq!(f[0].evidence["family_median_per_window"], 1.0);
}

#[test]
fn fetch_burst_negative() {
    // 30 fetches in 5 minutes (not more than 30), 40 spread over an hour, and a task running
    // AWS CLI commands in a loop (one fetch per command) that speeds up to 100 in 5 minutes:
    // fast, but not 10 times its family's usual rate.
    let f = run_fixture("fetch_burst", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn fetch_foreign_source_positive() {
    let f = run_fixture("fetch_foreign_source", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].task_arn, Some(task('a')));
    assert_eq!(f[0].source_ip.as_deref(), Some("169.254.172.6"));
    assert_eq!(f[0].evidence["address_owners"][0]["task_arn"], task('b'));
}

#[test]
fn fetch_foreign_source_negative() {
    // Execution-role fetches from the host address, and an address shared by two tasks.
    let f = run_fixture("fetch_foreign_source", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

const TASK_ROLE: &str = "arn:aws:iam::123456789012:role/app-task";

#[test]
fn access_denied_burst_positive() {
    let f = run_fixture("access_denied_burst", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, "access_denied_burst");
    assert_eq!(f[0].severity, Severity::High);
    assert_eq!(f[0].task_arn, Some(task('a')));
    assert_eq!(f[0].role_arn.as_deref(), Some(TASK_ROLE));
    assert_eq!(f[0].count, 6);
    assert_eq!(f[0].source_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(f[0].evidence["total"], 6);
    assert_eq!(f[0].evidence["calls"].as_array().unwrap().len(), 6);
    assert_eq!(
        f[0].evidence["calls"][2]["error_code"],
        "Client.UnauthorizedOperation"
    );
}

#[test]
fn access_denied_burst_negative() {
    // 4 denied calls within 10 min, 6 spread over an hour, 6 by the execution-role session with
    // the task's ID, and 6 non-authorization errors.
    let f = run_fixture("access_denied_burst", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn use_after_stop_positive() {
    let f = run_fixture("use_after_stop", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, "use_after_stop");
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].task_arn, Some(task('a')));
    assert_eq!(f[0].role_arn.as_deref(), Some(TASK_ROLE));
    assert_eq!(f[0].count, 2);
    assert_eq!(f[0].first_seen.as_deref(), Some("2026-11-20T13:07:11Z"));
    assert_eq!(f[0].evidence["stopped_at"], "2026-11-20T13:00:00Z");
    assert_eq!(f[0].evidence["calls"][0]["source_ip"], "198.51.100.7");
    assert_eq!(f[0].evidence["count"], 2);
}

#[test]
fn use_after_stop_negative() {
    // Calls before the stop, 2 minutes after it, by the execution-role session after it, and by
    // a task still running.
    let f = run_fixture("use_after_stop", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn use_without_fetch_positive() {
    let f = run_fixture("use_without_fetch", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, "use_without_fetch");
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[0].task_arn, Some(task('a')));
    assert_eq!(f[0].role_arn.as_deref(), Some(TASK_ROLE));
    assert_eq!(f[0].host.as_deref(), Some(CI));
    assert_eq!(f[0].count, 2);
    assert_eq!(f[0].first_seen.as_deref(), Some("2026-11-20T12:30:00Z"));
    // the task started at 11:58, inside its host's coverage (from 11:50)
    assert_eq!(f[0].evidence["covered_from"], "2026-11-20T11:58:00Z");
    assert!(f[0].evidence["first_fetch"].is_null());
    assert_eq!(f[0].evidence["count"], 2);
}

#[test]
fn use_without_fetch_negative() {
    // A task that fetched before its calls, a task on a container instance the collector never
    // saw, a task already running when coverage began that never fetched (SDKs cache and refresh
    // lazily), and a fetch 30 s after the call (within the skew).
    let f = run_fixture("use_without_fetch", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn use_by_other_task_positive() {
    let f = run_fixture("use_by_other_task", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, "use_by_other_task");
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].task_arn, Some(task('a')));
    assert_eq!(f[0].role_arn.as_deref(), Some(TASK_ROLE));
    assert_eq!(f[0].count, 2, "the call through a VPC endpoint counts");
    assert_eq!(f[0].source_ip.as_deref(), Some("10.0.1.20"));
    assert_eq!(f[0].evidence["other_task_arns"][0], task('b'));
    assert_eq!(f[0].evidence["addresses"][0], "10.0.1.20");
    assert_eq!(
        f[0].evidence["calls"][1]["vpc_endpoint_id"],
        "vpce-0123456789abcdef0"
    );
}

#[test]
fn use_by_other_task_negative() {
    // Calls from the task's own ENI address, from a private address no task holds (a NAT), from
    // another task's address after that task stopped, and from a public address.
    let f = run_fixture("use_by_other_task", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn use_from_unexpected_network_positive() {
    // The network inventory holds the account's NAT gateway (52.0.0.1) and the task runs in
    // bridge mode: the inventory vouches for its egress, so a call from elsewhere is critical.
    let f = run_fixture("use_from_unexpected_network", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].task_arn, Some(task('d')));
    assert_eq!(f[0].role_arn.as_deref(), Some(TASK_ROLE));
    assert_eq!(f[0].count, 2);
    assert_eq!(f[0].source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(f[0].evidence["verdict_rests_on"], "network inventory");
    assert_eq!(f[0].evidence["calls"][0]["event_name"], "GetCallerIdentity");
    assert!(f[0].evidence["calls"][0]["event_id"].is_string());
}

#[test]
fn use_from_unexpected_network_without_inventory_is_medium() {
    // The same calls without the inventory: only learned egress (52.0.0.1, seen for three task
    // sessions) speaks for the account's addresses, and the finding says so.
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture("use_from_unexpected_network", "positive")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("network") {
            std::fs::copy(&p, dir.path().join(&name)).unwrap();
        }
    }
    let store = store_with(dir.path());
    let det = detections()
        .into_iter()
        .find(|d| d.id == "use_from_unexpected_network")
        .unwrap();
    let f = detect::run(&store, &[det], &RunOptions::default()).findings;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[0].task_arn, Some(task('d')));
    assert_eq!(
        f[0].evidence["learned_egress"],
        serde_json::json!(["52.0.0.1"])
    );
    assert_eq!(f[0].evidence["missing_inputs"][0], "network inventory");
}

#[test]
fn use_from_unexpected_network_negative() {
    // Service calls (invokedBy, AWS Internal), a VPC endpoint, a private address, and an egress
    // address seen from exactly min_sessions task sessions.
    let f = run_fixture("use_from_unexpected_network", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn use_from_unexpected_network_configured_egress() {
    let store = store_with(&fixture("use_from_unexpected_network", "positive"));
    let det = detections()
        .into_iter()
        .find(|d| d.id == "use_from_unexpected_network")
        .unwrap();
    let opts = RunOptions {
        params: [(
            "expected_egress".to_string(),
            "203.0.113.0/24 198.51.100.0/25".to_string(),
        )]
        .into(),
        ..RunOptions::default()
    };
    let r = detect::run(&store, &[det], &opts);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

const ROLE: &str = "arn:aws:iam::123456789012:role/app-task";

#[test]
fn unused_permissions_positive() {
    let f = run_fixture("unused_permissions", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0].evidence;
    assert_eq!(f[0].role_arn.as_deref(), Some(ROLE));
    assert_eq!(f[0].severity, Severity::Medium, "s3:PutObject is a write");
    // Denied PutObject is not use; the explicit deny removes DeleteObject; PassRole is never logged.
    assert_eq!(
        e["unused_actions"],
        serde_json::json!(["s3:PutObject", "sqs:DeleteQueue"])
    );
    assert_eq!(e["unverifiable_actions"][0]["action"], "iam:PassRole");
    assert_eq!(e["used_actions"][0]["action"], "s3:GetObject");
    assert_eq!(e["used_actions"][0]["count"], 2);
    assert_eq!(f[0].count, 2);
    assert_eq!(e["window_start"], "2026-11-20T12:05:00Z");
    assert_eq!(e["window_end"], "2026-11-20T12:07:00Z");
    let policy = &e["recommended_policy"];
    assert_eq!(policy.as_array().unwrap().len(), 1);
    let st = policy[0]["Statement"].as_array().unwrap();
    assert!(
        st.iter()
            .any(|s| s["Action"] == "s3:GetObject" && s["Resource"] == "arn:aws:s3:::app-bucket/*"),
        "narrowed to the bucket seen: {st:#?}"
    );
    assert!(
        st.iter().any(|s| s["Action"] == "iam:PassRole"
            && s["Sid"].as_str().unwrap().starts_with("Unverifiable")),
        "{st:#?}"
    );
    assert!(
        st.iter()
            .any(|s| s["Effect"] == "Deny" && s["Action"] == "s3:DeleteObject"),
        "the role's Deny is carried over: {st:#?}"
    );
    let text = policy.to_string();
    assert!(!text.contains("sqs:DeleteQueue") && !text.contains("s3:PutObject"));
}

#[test]
fn unused_permissions_negative() {
    // Every observable grant used; PassRole never logged; dynamodb:GetItem is a data event and
    // the trail holds no DynamoDB data events: unverifiable, not unused.
    let f = run_fixture("unused_permissions", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn unused_role_positive() {
    let f = run_fixture("unused_role", "positive");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Low);
    assert_eq!(
        f[0].role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/side-task")
    );
    assert_eq!(f[0].evidence["denied_calls"], 1, "a denied call is not use");
    assert_eq!(f[0].evidence["tasks"][0], task('b'));
}

#[test]
fn unused_role_negative() {
    // One authorized call among denied ones is use.
    let f = run_fixture("unused_role", "negative");
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn cloudtrail_near_misses_fire_with_looser_params() {
    let dets = detections();
    let run = |kind: &str, param: &str, value: &str| {
        let store = store_with(&fixture(kind, "negative"));
        let det: Vec<Detection> = dets.iter().filter(|d| d.id == kind).cloned().collect();
        let mut opts = RunOptions::default();
        opts.params.insert(param.into(), value.into());
        let r = detect::run(&store, &det, &opts);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        r.findings
    };
    // 4 denied calls by task a; never the execution-role session of task c.
    let f = run("access_denied_burst", "min_denied", "4");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].task_arn, Some(task('a')));
    // The call 2 minutes after the stop; never the execution-role call.
    let f = run("use_after_stop", "grace_minutes", "1");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].count, 1);
    assert_eq!(f[0].evidence["calls"][0]["event_name"], "PutObject");
    // Without skew, the call 30 s before task e's fetch; never the uncovered or early calls.
    let f = run("use_without_fetch", "skew_seconds", "0");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].task_arn, Some(task('e')));
}

#[test]
fn params_override_defaults() {
    let store = store_with(&fixture("fetch_denied_burst", "negative"));
    let dets = detections();
    let mut opts = RunOptions::default();
    opts.params
        .insert("fetch_denied_burst.min_failures".into(), "4".into());
    let r = detect::run(&store, &dets, &opts);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    assert_eq!(r.findings[0].source_ip.as_deref(), Some("172.17.0.3"));
    opts.params.insert("min_failures".into(), "4".into());
    opts.params.insert("nope".into(), "1".into());
    assert!(detect::check_params(&dets, &opts).is_err());
}

#[test]
fn since_until_bound_the_events() {
    let store = store_with(&fixture("fetch_burst", "positive"));
    let dets = detections();
    let opts = RunOptions {
        since: Some("2026-11-20T13:03:00Z".into()),
        ..RunOptions::default()
    };
    let r = detect::run(&store, &dets, &opts);
    assert!(r.findings.iter().all(|f| f.kind != "fetch_burst"));
}

/// Lint: every file loads with the required header, ids are unique, every query prepares against
/// the store's schema, has both fixtures, and is in the embedded list.
#[test]
fn lint_detections() {
    let dets = detections();
    assert!(!dets.is_empty());
    let store = Store::open_in_memory().unwrap();
    let mut ids = HashSet::new();
    for d in &dets {
        assert!(ids.insert(d.id.clone()), "duplicate id {}", d.id);
        assert!(!d.title.is_empty() && !d.description.is_empty() && !d.severity.is_empty());
        assert!(!d.reads.is_empty(), "{}: reads", d.file);
        for t in &d.reads {
            let n = store
                .count(&format!(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = '{t}'"
                ))
                .unwrap();
            assert_eq!(n, 1, "{}: reads unknown table {t}", d.file);
        }
        detect::prepare(&store, d).unwrap_or_else(|e| panic!("{e:#}"));
        for name in ["positive", "negative"] {
            let p = fixture(&d.id, name);
            assert!(
                p.is_file() || p.is_dir(),
                "{}: no fixture {}",
                d.id,
                p.display()
            );
        }
    }
    let mut builtin: Vec<&str> = detect::BUILTIN.iter().map(|(n, _)| *n).collect();
    builtin.sort();
    let mut files: Vec<String> = dets
        .iter()
        .map(|d| format!("{}.sql", d.id))
        .collect::<Vec<_>>();
    files.sort();
    assert_eq!(builtin, files, "detect::BUILTIN must list every file");
    let b = detect::builtin();
    assert!(b.errors.is_empty(), "{:?}", b.errors);
}

#[test]
fn bad_headers_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.sql"),
        "-- id: other\n-- color: red\n-- no colon here\nSELECT 1",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fetch_burst.sql"),
        detect::BUILTIN
            .iter()
            .find(|(n, _)| *n == "fetch_burst.sql")
            .unwrap()
            .1,
    )
    .unwrap();
    let loaded = detect::load_dir(dir.path()).unwrap();
    assert_eq!(loaded.detections.len(), 1);
    let msgs: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.ends_with("broken.sql:2: unknown header key \"color\"")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("broken.sql:3: not a `-- key: value` line")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("differs from the file name")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("lacks `-- title")),
        "{msgs:?}"
    );
}

fn analyze(store: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("--store")
        .arg(store)
        .arg("analyze")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_jsonl_and_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.duckdb");
    {
        let store = Store::open(&db).unwrap();
        let opts = credtrail::audit::Options::default();
        credtrail::audit::ingest(&store, &[fixture("fetch_denied_burst", "positive")], &opts)
            .unwrap();
        let opts = credtrail::audit::Options {
            host: Some("host-b".into()),
            ..Default::default()
        };
        credtrail::audit::ingest(
            &store,
            &[fixture("fetch_foreign_source", "positive")],
            &opts,
        )
        .unwrap();
    }
    let out = analyze(&db, &["--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let keys = [
        "kind",
        "severity",
        "title",
        "first_seen",
        "last_seen",
        "count",
        "cluster_arn",
        "task_arn",
        "role_arn",
        "host",
        "source_ip",
        "evidence",
    ];
    let mut kinds = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().unwrap();
        let got: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = keys.to_vec();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "{line}");
        assert!(obj["role_arn"].is_null());
        kinds.push(v["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(
        kinds[0], "fetch_foreign_source",
        "critical first: {kinds:?}"
    );
    assert!(kinds.contains(&"fetch_denied_burst".to_string()));

    let out = analyze(&db, &["--fail-on", "critical", "--format", "json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.as_array().is_some_and(|a| !a.is_empty()));

    let out = analyze(&db, &["--fail-on", "critical", "--min-severity", "high"]);
    assert_eq!(out.status.code(), Some(3));
    let out = analyze(
        &db,
        &["--fail-on", "critical", "--until", "2026-11-20T13:00:01Z"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = analyze(&db, &["--format", "markdown", "--param", "nope=1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = analyze(&db, &["--format", "table"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("fetch_foreign_source")
    );
}

/// Two container instances whose collectors stored the same host name (an image with a baked-in
/// /etc/hostname): their lines are told apart by the instance that wrote them, so one host's
/// bridge addresses are not another's and refused requests are not added up across them.
#[test]
fn a_host_name_shared_by_two_instances_is_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let ci =
        |n: u32| format!("arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{n:032x}");
    let line = |t: &str, ip: &str, owner: char, n: u32| {
        format!(
            "2026-11-20T{t}Z 200 {ip}:4{n:04} \"/v2/credentials\" \"python-urllib3/2.8.0\" {} GetCredentials 2 prod {}\n",
            task(owner),
            ci(n)
        )
    };
    let refused = |t: &str, n: u32| {
        format!("2026-11-20T{t}Z 400 172.17.0.9:5{n:04} \"/v2/credentials\" \"curl/8.5.0\" - \n")
    };
    // instance 1: task a at 172.17.0.2; instance 2: task b at 172.17.0.2 too (its own bridge)
    let one = [
        line("10:00:00", "172.17.0.2", 'a', 1),
        refused("10:20:00", 1),
        refused("10:20:10", 1),
        refused("10:20:20", 1),
        line("11:00:00", "172.17.0.2", 'a', 1),
    ]
    .concat();
    let two = [
        line("10:05:00", "172.17.0.2", 'b', 2),
        refused("10:21:00", 2),
        refused("10:21:10", 2),
        refused("10:21:20", 2),
        line("10:30:00", "172.17.0.2", 'b', 2),
    ]
    .concat();
    let (p1, p2) = (dir.path().join("one.log"), dir.path().join("two.log"));
    std::fs::write(&p1, one).unwrap();
    std::fs::write(&p2, two).unwrap();
    let store = Store::open_in_memory().unwrap();
    let opts = credtrail::audit::Options {
        host: Some("ip-10-0-1-5".into()),
        ..Default::default()
    };
    credtrail::audit::ingest(&store, &[p1, p2], &opts).unwrap();
    let report = detect::run(&store, &detections(), &RunOptions::default());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    // and each line knows its instance, error lines included
    assert_eq!(
        store
            .count("SELECT count(DISTINCT instance) FROM audit_lines WHERE status = 400")
            .unwrap(),
        2
    );
}
