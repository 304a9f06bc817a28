//! What unmodified SDK clients wrote to the credential endpoint (`shared/data/sdk-credential-fetches`:
//! boto3 1.28–1.44, AWS CLI v1, JS SDK v2 and v3, with agent outages, throttling and a client
//! holding an unknown credential ID) must not look like an attack: through the real binary, every
//! capture ingested as a raw audit file gives no finding at high or above, and the only mediums
//! are refused-request bursts of a stale-ID or throttled client.

use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::credtrail;

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sdk-credential-fetches")
}

/// Every capture's audit.log, copied under the capture's name (each names its own task and
/// container instance, so each is a host of its own).
fn audit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(captures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("audit.log").is_file())
        .collect();
    runs.sort();
    for run in runs {
        let name = run.file_name().unwrap().to_string_lossy().into_owned();
        let to = dir.join(format!("{name}.audit.log"));
        std::fs::copy(run.join("audit.log"), &to).unwrap();
        files.push(to);
    }
    files
}

#[test]
fn real_sdk_clients_raise_nothing_above_medium() {
    let dir = tempfile::tempdir().unwrap();
    let files = audit_files(dir.path());
    assert_eq!(files.len(), 11, "captures: {files:?}");
    let store = dir.path().join("store.duckdb");
    let mut args = vec!["ingest", "audit"];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let summary = credtrail(&store, &args);
    assert!(summary.contains("929 credential requests"), "{summary}");

    let out = credtrail(&store, &["analyze", "--format", "jsonl"]);
    let findings: Vec<Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for f in &findings {
        let severity = f["severity"].as_str().unwrap();
        assert!(
            severity == "low" || severity == "medium",
            "a real SDK client raised {severity}: {f:#}"
        );
        assert_eq!(
            f["kind"], "fetch_denied_burst",
            "only refused-request bursts may show at all: {f:#}"
        );
        // Never a burst made of 5xx: those are the agent being unavailable.
        let statuses = f["evidence"]["statuses"].as_object().unwrap();
        assert!(statuses.keys().all(|s| s == "400" || s == "429"), "{f:#}");
    }
    // The stale-ID client (400 on every call, in a process beside ones that fetch fine) is told:
    // medium, with the successful fetches from its address as the reason.
    let stale: Vec<&Value> = findings
        .iter()
        .filter(|f| f["evidence"]["statuses"].get("400").is_some())
        .collect();
    assert!(!stale.is_empty(), "{findings:#?}");
    for f in stale {
        assert!(
            f["evidence"]["successful_fetches_nearby"].as_i64().unwrap() > 0,
            "{f:#}"
        );
    }
}
