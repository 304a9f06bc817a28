//! The scheduled run's surface through the real binary, on a simulated fleet with its planted
//! attacks: `credtrail.toml` (thresholds, expected egress, severity overrides, suppressions that
//! expire, `fail_on`), the OCSF and ASFF exports validated against their published schemas
//! (`analyzer/schemas/`, with negative checks that the validator rejects broken documents), and
//! `--version`.
//!
//! The validator is Python's jsonschema from `scripts/install-jsonschema.sh` (a virtual
//! environment under `$HOME/.cache/credtrail-tools`). Without it the test fails saying so, unless
//! `CREDTRAIL_SKIP_JSONSCHEMA=1` (then only the schema checks are skipped).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

#[path = "common/cli.rs"]
mod cli;
use cli::{credtrail, simulated_store};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn schema(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(rel)
}

fn python() -> Option<PathBuf> {
    let root = std::env::var_os("CREDTRAIL_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/credtrail-tools"))
        })?;
    let p = root.join("jsonschema/bin/python");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("CREDTRAIL_SKIP_JSONSCHEMA").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "{} not found: this test validates the exports with Python's jsonschema. Install it with \
         scripts/install-jsonschema.sh (or scripts/install-test-tools.sh), or set \
         CREDTRAIL_SKIP_JSONSCHEMA=1 to skip the schema checks",
        p.display()
    );
}

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
with open(sys.argv[1]) as f:
    schema = json.load(f)
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
docs = json.load(sys.stdin)
print(json.dumps([sorted(("/".join(map(str, e.absolute_path)) + ": " + e.message)[:300]
                         for e in v.iter_errors(d)) for d in docs]))
"#;

/// The schema errors of each document (empty: valid).
fn validate(python: &Path, schema: &Path, docs: &[Value]) -> Vec<Vec<String>> {
    let mut child = Command::new(python)
        .args(["-c", VALIDATE])
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(docs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("CREDTRAIL_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// 2 hosts, 3 hours, every planted attack, every input ingested.
fn fleet(dir: &Path) -> PathBuf {
    simulated_store(dir, 2, 3, 5).1
}

/// A `[[suppress]]` entry matching exactly finding `f` (its kind and every key field it has).
fn suppression(f: &Value, expires: &str, reason: &str) -> String {
    let mut t = format!("[[suppress]]\nkind = \"{}\"\n", f["kind"].as_str().unwrap());
    for c in ["cluster_arn", "task_arn", "role_arn", "host", "source_ip"] {
        if let Some(v) = f[c].as_str() {
            t.push_str(&format!("{c} = {}\n", json!(v)));
        }
    }
    t.push_str(&format!(
        "expires = {expires}\nreason = {}\n",
        json!(reason)
    ));
    t
}

fn same_subject(a: &Value, b: &Value) -> bool {
    [
        "kind",
        "cluster_arn",
        "task_arn",
        "role_arn",
        "host",
        "source_ip",
        "first_seen",
    ]
    .iter()
    .all(|k| a[k] == b[k])
}

#[test]
fn config_and_exports_on_a_simulated_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let db = fleet(dir.path());
    let findings = jsonl(&credtrail(&db, &["analyze", "--format", "jsonl"]));
    assert!(
        findings.len() >= 5,
        "the planted attacks are found: {findings:?}"
    );

    // ---- exports ----
    let ocsf = jsonl(&credtrail(&db, &["analyze", "--format", "ocsf"]));
    assert_eq!(ocsf.len(), findings.len());
    // an IAM role's ARN has no region: the region the AWS CLI would use
    let no_region = run(&db, &["analyze", "--format", "asff"], &[]);
    let has_role_only = findings
        .iter()
        .any(|f| f["task_arn"].is_null() && f["cluster_arn"].is_null() && !f["role_arn"].is_null());
    if has_role_only
        && std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        assert_eq!(no_region.status.code(), Some(2), "{no_region:?}");
        assert!(String::from_utf8_lossy(&no_region.stderr).contains("set [export] aws_region"));
    }
    let asff = run(
        &db,
        &["analyze", "--format", "asff"],
        &[("AWS_REGION", "eu-west-3")],
    );
    assert!(asff.status.success(), "{asff:?}");
    let asff: Vec<Value> = serde_json::from_slice(&asff.stdout).unwrap();
    assert_eq!(asff.len(), findings.len());
    for ((f, o), a) in findings.iter().zip(&ocsf).zip(&asff) {
        assert_eq!(o["class_uid"], 2004);
        assert_eq!(o["type_uid"], 200401);
        assert_eq!(o["finding_info"]["types"][0], f["kind"]);
        assert_eq!(o["message"], f["title"]);
        assert_eq!(o["status_id"], 1);
        let evidence = if f["evidence"].is_null() {
            json!({})
        } else {
            f["evidence"].clone()
        };
        assert_eq!(
            o["evidences"][0]["data"], evidence,
            "OCSF carries the evidence"
        );
        let sev = f["severity"].as_str().unwrap();
        assert_eq!(a["Severity"]["Label"], sev.to_uppercase());
        assert_eq!(
            a["GeneratorId"],
            format!("credtrail/{}", f["kind"].as_str().unwrap())
        );
        assert_eq!(a["Workflow"]["Status"], "NEW");
        if let Some(ev) = f["evidence"].as_object() {
            let (k, v) = ev.iter().next().unwrap();
            let shown = a["ProductFields"][format!("credtrail/evidence/{k}")].as_str();
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            if text.chars().count() <= 2048 {
                assert_eq!(shown, Some(text.as_str()), "ASFF carries the evidence");
            }
        }
        assert_eq!(a["Id"], o["finding_info"]["uid"]);
        if f["task_arn"].is_null() && f["cluster_arn"].is_null() && !f["role_arn"].is_null() {
            assert_eq!(a["Region"], "eu-west-3");
        }
    }
    let ids: std::collections::BTreeSet<&str> =
        asff.iter().map(|a| a["Id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), asff.len(), "finding IDs are unique");

    if let Some(py) = python() {
        let ocsf_schema = schema("ocsf/detection_finding.schema.json");
        let asff_schema = schema("asff/aws_security_finding.schema.json");
        for (doc, errors) in ocsf.iter().zip(validate(&py, &ocsf_schema, &ocsf)) {
            assert!(errors.is_empty(), "OCSF: {errors:?}\n{doc}");
        }
        for (doc, errors) in asff.iter().zip(validate(&py, &asff_schema, &asff)) {
            assert!(errors.is_empty(), "ASFF: {errors:?}\n{doc}");
        }
        // The validator rejects what the schemas forbid.
        let mut bad_ocsf = ocsf[0].clone();
        bad_ocsf["finding_info"]
            .as_object_mut()
            .unwrap()
            .remove("uid");
        bad_ocsf["severity_id"] = json!(7);
        bad_ocsf["not_an_ocsf_attribute"] = json!(1);
        let mut bad_time = ocsf[0].clone();
        bad_time["time"] = json!("yesterday");
        let errors = validate(&py, &ocsf_schema, &[bad_ocsf, bad_time]);
        assert_eq!(errors[0].len(), 3, "{errors:?}");
        assert_eq!(errors[1].len(), 1, "{errors:?}");
        let mut long_title = asff[0].clone();
        long_title["Title"] = json!("x".repeat(257));
        let mut bad_account = asff[0].clone();
        bad_account["AwsAccountId"] = json!("1234");
        bad_account["Severity"]["Label"] = json!("SEVERE");
        let mut no_resources = asff[0].clone();
        no_resources["Resources"] = json!([]);
        no_resources.as_object_mut().unwrap().remove("GeneratorId");
        let errors = validate(&py, &asff_schema, &[long_title, bad_account, no_resources]);
        assert_eq!(errors[0].len(), 1, "{errors:?}");
        assert!(errors[0][0].starts_with("Title: "), "{errors:?}");
        assert_eq!(errors[1].len(), 2, "{errors:?}");
        assert_eq!(errors[2].len(), 2, "{errors:?}");
    } else {
        eprintln!("CREDTRAIL_SKIP_JSONSCHEMA=1: jsonschema not found, schema checks skipped");
    }

    // ---- the configuration file ----
    let top = findings[0]["severity"].as_str().unwrap().to_string();
    let tops: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] == top.as_str())
        .collect();
    let bare = run(
        &db,
        &["analyze", "--format", "jsonl", "--fail-on", &top],
        &[],
    );
    assert_eq!(bare.status.code(), Some(3), "{bare:?}");

    // every finding at the top severity suppressed until 2099; one other finding by a
    // suppression that expired in 2020; fail_on from the file
    let other = findings
        .iter()
        .find(|f| f["severity"] != top.as_str())
        .expect("findings of two severities");
    let mut toml = format!("[analyze]\nfail_on = \"{top}\"\n\n");
    for f in &tops {
        toml.push_str(&suppression(f, "2099-12-31", "accepted \"risk\" <b>#1</b>"));
    }
    toml.push_str(&suppression(other, "2020-01-01", "old exception"));
    let config = dir.path().join("credtrail.toml");
    std::fs::write(&config, format!("[analyze]\nfail_on = \"{top}\"\n")).unwrap();
    let failing = run(
        &db,
        &["--config", s(&config), "analyze", "--format", "jsonl"],
        &[],
    );
    assert_eq!(
        failing.status.code(),
        Some(3),
        "fail_on from the file: {failing:?}"
    );
    std::fs::write(&config, &toml).unwrap();
    let out = run(
        &db,
        &["--config", s(&config), "analyze", "--format", "jsonl"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "all {top} findings are suppressed: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "expired on 2020-01-01 (old exception) and no longer applies; 1 finding(s) of this run match it"
        ),
        "{stderr}"
    );
    let marked = jsonl(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        marked.len(),
        findings.len(),
        "suppressed findings stay visible"
    );
    for f in &marked {
        let is_top = tops.iter().any(|t| same_subject(t, f));
        assert_eq!(f["suppressed"].is_object(), is_top, "{f}");
        if is_top {
            assert_eq!(f["suppressed"]["reason"], "accepted \"risk\" <b>#1</b>");
            assert_eq!(f["suppressed"]["expires"], "2099-12-31");
        }
    }
    // the same file through CREDTRAIL_CONFIG; flags override it
    let env = run(
        &db,
        &["analyze", "--format", "jsonl"],
        &[("CREDTRAIL_CONFIG", s(&config))],
    );
    assert_eq!(jsonl(&String::from_utf8(env.stdout).unwrap()), marked);
    let table =
        String::from_utf8(run(&db, &["--config", s(&config), "analyze"], &[]).stdout).unwrap();
    assert!(
        table.contains("[suppressed until 2099-12-31: accepted \"risk\" <b>#1</b>]"),
        "{table}"
    );
    let ocsf = jsonl(
        &String::from_utf8(
            run(
                &db,
                &["--config", s(&config), "analyze", "--format", "ocsf"],
                &[],
            )
            .stdout,
        )
        .unwrap(),
    );
    assert_eq!(
        ocsf.iter().filter(|o| o["status_id"] == 3).count(),
        tops.len()
    );
    std::fs::write(
        &config,
        format!(
            "{toml}\n[export]\naws_region = \"eu-west-3\"\naws_account_id = \"123456789012\"\n"
        ),
    )
    .unwrap();
    let asff: Vec<Value> = serde_json::from_slice(
        &run(
            &db,
            &["--config", s(&config), "analyze", "--format", "asff"],
            &[],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(
        asff.iter()
            .filter(|a| a["Workflow"]["Status"] == "SUPPRESSED")
            .count(),
        tops.len()
    );
    if let Some(py) = python() {
        let e = validate(&py, &schema("ocsf/detection_finding.schema.json"), &ocsf);
        assert!(e.iter().all(Vec::is_empty), "{e:?}");
        let e = validate(&py, &schema("asff/aws_security_finding.schema.json"), &asff);
        assert!(e.iter().all(Vec::is_empty), "{e:?}");
    }
    // the report marks them too, and names the expired suppression
    let out_dir = dir.path().join("report");
    let printed = run(
        &db,
        &["--config", s(&config), "report", "--out", s(&out_dir)],
        &[],
    );
    assert!(printed.status.success(), "{printed:?}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("**suppressed** until 2099-12-31"), "{md}");
    assert!(md.contains("**expired suppression**"), "{md}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("accepted &quot;risk&quot; &lt;b&gt;#1&lt;/b&gt;"));
    assert!(!html.contains("<b>#1</b>"));

    // severity overrides
    let kind = other["kind"].as_str().unwrap();
    std::fs::write(&config, format!("[severity]\n{kind} = \"critical\"\n")).unwrap();
    let raised = jsonl(
        &String::from_utf8(
            run(
                &db,
                &["--config", s(&config), "analyze", "--format", "jsonl"],
                &[],
            )
            .stdout,
        )
        .unwrap(),
    );
    for f in raised.iter().filter(|f| f["kind"] == kind) {
        assert_eq!(f["severity"], "critical");
        let was = findings.iter().find(|g| same_subject(g, f)).unwrap();
        if was["severity"] != "critical" {
            assert_eq!(f["detected_severity"], was["severity"]);
        }
    }
    assert_eq!(raised[0]["severity"], "critical", "sorted again");

    // thresholds: the file's, overridden by --param
    let unused = findings
        .iter()
        .filter(|f| f["kind"] == "unused_permissions")
        .count();
    assert!(unused > 0, "the planted unused permissions are found");
    std::fs::write(
        &config,
        "[params]\n\"unused_permissions.min_unused\" = 100000\n",
    )
    .unwrap();
    let none = jsonl(
        &String::from_utf8(
            run(
                &db,
                &["--config", s(&config), "analyze", "--format", "jsonl"],
                &[],
            )
            .stdout,
        )
        .unwrap(),
    );
    assert_eq!(
        none.iter()
            .filter(|f| f["kind"] == "unused_permissions")
            .count(),
        0
    );
    let back = jsonl(
        &String::from_utf8(
            run(
                &db,
                &[
                    "--config",
                    s(&config),
                    "analyze",
                    "--format",
                    "jsonl",
                    "--param",
                    "min_unused=1",
                ],
                &[],
            )
            .stdout,
        )
        .unwrap(),
    );
    assert_eq!(
        back, findings,
        "a flag for every detection overrides the file's"
    );

    // expected egress: a configured range is the account's own egress
    let outside = findings
        .iter()
        .find(|f| f["kind"] == "use_from_unexpected_network")
        .expect("the planted stolen-outside call is found");
    let ip = outside["source_ip"].as_str().unwrap();
    let cidr = if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    };
    std::fs::write(
        &config,
        format!("[network]\nexpected_egress = [\"{cidr}\"]\n"),
    )
    .unwrap();
    let egress = jsonl(
        &String::from_utf8(
            run(
                &db,
                &["--config", s(&config), "analyze", "--format", "jsonl"],
                &[],
            )
            .stdout,
        )
        .unwrap(),
    );
    assert!(
        !egress
            .iter()
            .any(|f| f["kind"] == "use_from_unexpected_network" && f["source_ip"] == ip),
        "{egress:?}"
    );

    // bad files: an error naming the file and line, exit 2
    for (text, line, what) in [
        (
            "[analyze]\nfail_on = \"high\"\n\n[network]\negress = []\n",
            5,
            "unknown field `egress`",
        ),
        (
            "[params]\nmin_sesions = 3\n",
            2,
            "params.min_sesions: no detection has this parameter",
        ),
        (
            "[[suppress]]\nkind = \"unused_role\"\nexpires = 2027-01-01\n",
            1,
            "missing field `reason`",
        ),
        (
            "[severity]\nunused_role = \"urgent\"\n",
            2,
            "unknown variant `urgent`",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = run(&db, &["--config", s(&config), "analyze"], &[]);
        assert_eq!(out.status.code(), Some(2), "{text}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}:{line}: ", config.display())) && stderr.contains(what),
            "{text}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let missing = run(
        &db,
        &["--config", s(&dir.path().join("nope.toml")), "analyze"],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml"));
}

#[test]
fn version_names_the_catalog() {
    let out = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("credtrail {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let catalog = credtrail(Path::new("unused.duckdb"), &["catalog"]);
    // "IAM action catalog 0.1.… (updated …)" and "API operations: N from botocore …"
    let version = catalog
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("IAM action catalog "))
        .and_then(|l| l.split(' ').next())
        .unwrap();
    let ops = catalog
        .lines()
        .find_map(|l| {
            l.split_once(" from ")
                .filter(|(a, _)| a.contains("API operations"))
        })
        .map(|(_, b)| b.trim_end_matches(" (Apache-2.0)"))
        .unwrap();
    assert!(
        text.contains(&format!(
            "IAM action catalog {version}; API operations from {ops}"
        )),
        "{text}\n{catalog}"
    );
}
