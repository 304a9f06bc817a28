//! `credtrail recommend` on the demo's world, linted by parliament (the IAM policy linter, PyPI):
//! the recommended policies raise no finding at medium or above that the roles' current policies
//! do not raise already (a statement is narrowed, never rewritten, so a resource the current
//! policy names wrongly for an action stays as wrong as it was).
//!
//! parliament comes from `scripts/install-parliament.sh` (a virtual environment under
//! `$HOME/.cache/credtrail-tools`). Without it the test fails saying so, unless
//! `CREDTRAIL_SKIP_PARLIAMENT=1`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::credtrail;

fn parliament() -> Option<PathBuf> {
    let root = std::env::var_os("CREDTRAIL_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/credtrail-tools"))
        })?;
    let p = root.join("parliament/bin/parliament");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("CREDTRAIL_SKIP_PARLIAMENT").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "{} not found: this test lints the recommended policies with parliament. Install it with \
         scripts/install-parliament.sh (or scripts/install-test-tools.sh), or set \
         CREDTRAIL_SKIP_PARLIAMENT=1 to skip it",
        p.display()
    );
}

/// parliament's findings at medium or above, one JSON object each.
fn lint(parliament: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(parliament)
        .args(args)
        .args(["--json", "--minimum_severity", "MEDIUM"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() || !text.trim().is_empty(),
        "parliament {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The actions a RESOURCE_MISMATCH finding names.
fn mismatched(f: &Value) -> Vec<String> {
    f["detail"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["action"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn recommended_policies_of_the_demo_pass_parliament() {
    let Some(parliament) = parliament() else {
        eprintln!("CREDTRAIL_SKIP_PARLIAMENT=1: parliament not found, lint skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let store = demo.join("credtrail.duckdb");
    credtrail(
        &dir.path().join("unused.duckdb"),
        &["demo", "--out", demo.to_str().unwrap()],
    );
    let rec = dir.path().join("rec");
    credtrail(&store, &["recommend", "--out", rec.to_str().unwrap()]);
    let mut policies: Vec<PathBuf> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().contains(".policy"))
        .collect();
    policies.sort();
    assert!(policies.len() >= 10, "{policies:?}");

    // What parliament says of the roles' current policies.
    let details = demo.join("simulation/iam/authorization-details.json");
    let before = lint(
        &parliament,
        &["--auth-details-file", details.to_str().unwrap()],
    );
    let inherited: BTreeSet<String> = before
        .iter()
        .filter(|f| f["issue"] == "RESOURCE_MISMATCH")
        .flat_map(mismatched)
        .collect();

    for p in &policies {
        let doc: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        assert_eq!(doc["Version"], "2012-10-17", "{}", p.display());
        for f in lint(&parliament, &["--files", p.to_str().unwrap()]) {
            let new: Vec<String> = mismatched(&f)
                .into_iter()
                .filter(|a| !inherited.contains(a))
                .collect();
            assert!(
                f["issue"] == "RESOURCE_MISMATCH" && new.is_empty(),
                "{}: parliament finds {f} (not raised on the current policies: {new:?})",
                p.display()
            );
        }
    }
}
