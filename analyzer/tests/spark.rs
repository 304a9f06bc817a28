//! The detections on Apache Spark: the generated Spark SQL is what `analyzer/spark/generate.py`
//! writes from the DuckDB source today, and the job `credtrail export-sql --engine spark` writes,
//! run in Spark's local mode over a simulated fleet's store, finds exactly what `credtrail
//! analyze` finds: per kind, the same keys (the detection's `key` columns), severities and counts.
//! Evidence and titles are not compared (their formatting differs: JSON number and list order).
//! The Athena DDL parses as Trino's (sqlglot). pyspark, sqlglot and Java come from
//! `scripts/install-pyspark.sh`; without them these tests say so and check nothing else.

#[path = "common/cli.rs"]
mod cli;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use cli::{credtrail, simulated_store};

/// Kinds the Spark SQL does not yet reproduce; every other kind must match exactly.
const NOT_PORTED: &[&str] = &[];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tools' Python, after installing them when missing (once per test binary: the tests run
/// in parallel); None (and why) when they cannot be.
fn python() -> Option<PathBuf> {
    static PYTHON: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PYTHON.get_or_init(install).clone()
}

fn install() -> Option<PathBuf> {
    let out = Command::new("bash")
        .arg(repo().join("scripts/install-pyspark.sh"))
        .output()
        .expect("running bash");
    if !out.status.success() {
        eprintln!(
            "SKIPPED: pyspark, sqlglot or Java could not be installed (scripts/install-pyspark.sh): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let root = std::env::var_os("CREDTRAIL_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/credtrail-tools"),
        PathBuf::from,
    );
    Some(root.join("pyspark/bin/python"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_checked_in_spark_sql_is_generated_from_the_duckdb_sql() {
    let Some(python) = python() else { return };
    let out = Command::new(&python)
        .arg(repo().join("analyzer/spark/generate.py"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn athena_ddl_parses_as_trino() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("athena");
    credtrail(
        &dir.path().join("unused.duckdb"),
        &[
            OsStr::new("export-sql"),
            OsStr::new("--engine"),
            OsStr::new("athena"),
            OsStr::new("--out"),
            out.as_os_str(),
            OsStr::new("--segments-url"),
            OsStr::new("s3://segments-bucket/credtrail/"),
            OsStr::new("--cloudtrail-url"),
            OsStr::new("s3://trail-bucket"),
            OsStr::new("--cluster"),
            OsStr::new("prod-core"),
            OsStr::new("--region"),
            OsStr::new("us-east-1"),
        ],
    );
    let ddl = out.join("athena.sql");
    // Each statement parsed with sqlglot's Trino dialect: its kind and the table it creates.
    let script = r#"
import sys, sqlglot
from sqlglot import exp
for s in sqlglot.parse(open(sys.argv[1]).read(), read="trino"):
    if s is None:
        continue
    assert isinstance(s, exp.Create), repr(s)
    props = {p.name.lower(): p.args.get("value").name
             for p in s.find_all(exp.Property) if isinstance(p.args.get("value"), exp.Literal)}
    print(s.args["kind"], s.this.sql("trino") if s.args["kind"] == "DATABASE" else s.this.this.sql("trino"),
          props.get("storage.location.template", ""))
"#;
    let parsed = run(Command::new(&python).arg("-c").arg(script).arg(&ddl));
    let lines: Vec<&str> = parsed.lines().collect();
    assert_eq!(
        lines,
        [
            "DATABASE credtrail ",
            "TABLE credtrail.credential_requests s3://segments-bucket/credtrail/credential_requests/cluster=${cluster_name}/date=${day}/hour=${hour}/",
            "TABLE credtrail.rejected_lines s3://segments-bucket/credtrail/rejected_lines/cluster=${cluster_name}/date=${day}/hour=${hour}/",
            "TABLE credtrail.task_inventory s3://segments-bucket/credtrail/task_inventory/cluster=${cluster_name}/date=${day}/hour=${hour}/",
            "TABLE credtrail.collector_coverage s3://segments-bucket/credtrail/collector_coverage/cluster=${cluster_name}/date=${day}/hour=${hour}/",
            "TABLE credtrail.cloudtrail_logs s3://trail-bucket/AWSLogs/${account}/CloudTrail/${region}/${day}",
        ],
        "{}",
        std::fs::read_to_string(&ddl).unwrap()
    );
}

/// Per kind: the set of (key columns, severity, count) of a JSON-lines findings file.
type ByKind = BTreeMap<String, BTreeSet<(Vec<Option<String>>, String, i64)>>;

fn by_kind(jsonl: &str, keys: &BTreeMap<String, Vec<String>>) -> ByKind {
    let mut out = ByKind::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = f["kind"].as_str().unwrap().to_string();
        let key = keys
            .get(&kind)
            .unwrap_or_else(|| panic!("unknown kind {kind}"))
            .iter()
            .map(|c| f[c.as_str()].as_str().map(str::to_string))
            .collect();
        let row = (
            key,
            f["severity"].as_str().unwrap().to_string(),
            f["count"].as_i64().unwrap(),
        );
        assert!(
            out.entry(kind).or_default().insert(row.clone()),
            "{row:?} twice"
        );
    }
    out
}

#[test]
fn the_spark_job_finds_what_analyze_finds() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sim, store) = simulated_store(dir.path(), 4, 4, 3);
    // The network inventory too, so the address rules run on what a snapshot vouches for.
    credtrail(
        &store,
        &[
            OsStr::new("ingest"),
            OsStr::new("network"),
            sim.join("network").as_os_str(),
        ],
    );
    let analyzed = credtrail(&store, &["analyze", "--format", "jsonl"]);
    let job = dir.path().join("job");
    credtrail(
        &store,
        &[
            OsStr::new("export-sql"),
            OsStr::new("--engine"),
            OsStr::new("spark"),
            OsStr::new("--out"),
            job.as_os_str(),
        ],
    );
    let findings = dir.path().join("spark.jsonl");
    // One Spark session runs every detection.
    let out = Command::new(&python)
        .arg(job.join("driver.py"))
        .arg("--input")
        .arg(&job)
        .arg("--out")
        .arg(&findings)
        .env("CREDTRAIL_SPARK_DRIVER_MEMORY", "2g")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    let detections = credtrail::detect::builtin().detections;
    let failed_kinds: Vec<&str> = detections
        .iter()
        .filter(|d| {
            let file = d.file.replace("queries/detections/", "");
            warnings.iter().any(|w| w.contains(&file))
        })
        .map(|d| d.id.as_str())
        .collect();
    for k in &failed_kinds {
        assert!(
            NOT_PORTED.contains(k),
            "{k} failed on Spark and is not listed as not ported:\n{stderr}"
        );
    }
    assert!(
        out.status.success() || !failed_kinds.is_empty(),
        "the Spark job failed:\n{stderr}"
    );
    let keys: BTreeMap<String, Vec<String>> = detections
        .iter()
        .map(|d| (d.id.clone(), d.key.clone()))
        .collect();
    let expected = by_kind(&analyzed, &keys);
    let got = by_kind(&std::fs::read_to_string(&findings).unwrap(), &keys);
    // The fleet plants every attack: the comparison covers every detection.
    for kind in keys.keys() {
        assert!(
            expected.contains_key(kind),
            "analyze found no {kind}: the comparison would not cover it"
        );
    }
    let mut differ = Vec::new();
    for kind in keys.keys() {
        if expected.get(kind) != got.get(kind) {
            differ.push(kind.as_str());
            if !NOT_PORTED.contains(&kind.as_str()) {
                panic!(
                    "{kind} differs:\nanalyze: {:#?}\nspark: {:#?}\n{stderr}",
                    expected.get(kind),
                    got.get(kind)
                );
            }
        }
    }
    for k in NOT_PORTED {
        assert!(
            differ.contains(k),
            "{k} is listed as not ported but matches: take it off the list"
        );
    }
}
