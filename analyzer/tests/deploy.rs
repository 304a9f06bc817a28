//! The analyzer's scheduled run in `deploy/systemd/`: the weekly timer and the oneshot service
//! (`credtrail run-schedule`: ingest from S3, report, analyze with the configuration's
//! `fail_on`, so exit status 3 fails the unit when there are findings). The `ExecStart=` and
//! every step the example configuration's `[schedule]` makes are parsed by the real command
//! line (`credtrail::cli::Cli`). When `systemd-analyze` is on PATH (`deploy/scripts/install-test-tools.sh`)
//! both units go through `systemd-analyze verify` and the service through
//! `systemd-analyze security --offline=yes` (exposure at most 2.0, like the collector's unit).
//!
//! The same run as an ECS scheduled task, `deploy/cloudformation/credtrail-analyzer-schedule.json`:
//! its containers' commands are parsed by the same `Cli` and must be the schedule's steps in
//! its order; its task role grants exactly the S3 actions of the analyzer's policy (plus the
//! mount of its own file system); and `cfn-lint` (`scripts/install-cfn-lint.sh`) passes it and
//! fails a broken copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "../../tests/support/systemd.rs"]
mod systemd;
use systemd::{Unit, values};

use clap::Parser;
use credtrail::cli::{Cli, Command as Sub};

const SERVICE: &str = "credtrail-analyzer.service";
const TIMER: &str = "credtrail-analyzer.timer";
const EXEC_PATH: &str = "/usr/bin/credtrail";

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(name)
}

fn read_unit(name: &str) -> Unit {
    systemd::read_unit(&unit_path(name))
}

fn example_config() -> credtrail::config::Config {
    credtrail::config::Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/credtrail.example.toml"),
    )
    .unwrap()
}

#[test]
fn service_ingests_reports_then_fails_on_findings() {
    let unit = read_unit(SERVICE);
    let last = |k: &str| values(&unit, "Service", k).last().copied();
    assert_eq!(last("Type"), Some("oneshot"));
    assert_eq!(last("DynamicUser"), Some("yes"));
    assert_eq!(last("StateDirectory"), Some("credtrail-analyzer"));
    assert_eq!(
        last("Environment"),
        Some("CREDTRAIL_CONFIG=/etc/credtrail/credtrail.toml")
    );
    assert!(values(&unit, "Service", "EnvironmentFile").is_empty());
    // One step: the configuration's schedule.
    let execs = values(&unit, "Service", "ExecStart");
    assert_eq!(execs.len(), 1);
    let args: Vec<&str> = execs[0].split_whitespace().collect();
    assert_eq!(args[0], EXEC_PATH);
    let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{}: {e}", execs[0]));
    assert!(
        matches!(&cli.command, Sub::RunSchedule(a) if !a.dry_run),
        "{:?}",
        cli.command
    );
    // What it runs with the example configuration (the .deb's /etc/credtrail/credtrail.toml).
    let config = example_config();
    let schedule = config
        .schedule
        .as_ref()
        .expect("the example has a [schedule]");
    let conf = Path::new("/etc/credtrail/credtrail.toml");
    let steps = credtrail::schedule::steps(schedule, &cli.store, Some(conf), false);
    let mut commands = Vec::new();
    for step in &steps {
        let cli = Cli::try_parse_from(step).unwrap_or_else(|e| panic!("{step:?}: {e}"));
        assert_eq!(
            cli.store,
            PathBuf::from("/var/lib/credtrail-analyzer/credtrail.duckdb"),
            "{step:?}"
        );
        assert_eq!(cli.config.as_deref(), Some(conf));
        commands.push(cli.command);
    }
    assert_eq!(commands.len(), 4);
    assert!(matches!(commands[0], Sub::Ingest(_)));
    assert!(matches!(commands[1], Sub::Ingest(_)));
    assert!(steps[0].contains(&"--since".to_string()) && steps[1].contains(&"8d".to_string()));
    match &commands[2] {
        Sub::Report(r) => assert!(r.out.starts_with("/var/lib/credtrail-analyzer")),
        other => panic!("the third step writes the report, not {other:?}"),
    }
    match &commands[3] {
        // the exit status comes from the configuration's fail_on, as the last step, so the
        // report is written whatever it finds
        Sub::Analyze(a) => assert!(a.fail_on.is_none() && a.min_severity.is_none()),
        other => panic!("the last step is analyze, not {other:?}"),
    }
    assert!(config.fail_on.is_some());
}

#[test]
fn timer_is_weekly_and_persistent() {
    let unit = read_unit(TIMER);
    assert_eq!(
        values(&unit, "Timer", "OnCalendar"),
        ["Mon *-*-* 06:00:00 UTC"]
    );
    assert_eq!(values(&unit, "Timer", "Persistent"), ["true"]);
    assert_eq!(values(&unit, "Timer", "Unit"), [SERVICE]);
    assert_eq!(values(&unit, "Install", "WantedBy"), ["timers.target"]);
}

#[test]
fn units_pass_systemd_analyze_verify() {
    systemd::verify(
        "units_pass_systemd_analyze_verify",
        &[(SERVICE, &unit_path(SERVICE)), (TIMER, &unit_path(TIMER))],
        EXEC_PATH,
        "credtrail-analyzer",
    );
}

#[test]
fn service_exposure_is_at_most_two() {
    systemd::assert_exposure_at_most_two("service_exposure_is_at_most_two", &unit_path(SERVICE));
}

const TEMPLATE: &str = "credtrail-analyzer-schedule.json";

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/cloudformation")
        .join(TEMPLATE);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A template value with `{"Ref": "Parameter"}` replaced by an example of the parameter.
fn resolve(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("Ref").and_then(Value::as_str) {
            Some("CloudTrailS3Url") => "s3://trail-bucket/AWSLogs/".to_string(),
            Some("SegmentsS3Url") => "s3://segments-bucket/prefix/".to_string(),
            other => panic!("a reference the test does not know: {other:?}"),
        },
        other => panic!("not a string or a Ref: {other}"),
    }
}

/// The containers in the order their `DependsOn` … `SUCCESS` chain runs them.
fn containers_in_order(t: &Value) -> Vec<Value> {
    let defs = t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
        .as_array()
        .unwrap()
        .clone();
    let mut order: Vec<Value> = Vec::new();
    let mut last: Option<String> = None;
    while order.len() < defs.len() {
        let next = defs
            .iter()
            .find(|c| {
                let after = c["DependsOn"][0]["ContainerName"]
                    .as_str()
                    .map(str::to_string);
                after == last && (after.is_none() || c["DependsOn"][0]["Condition"] == "SUCCESS")
            })
            .unwrap_or_else(|| panic!("no container runs after {last:?} on its success"))
            .clone();
        last = Some(next["Name"].as_str().unwrap().to_string());
        order.push(next);
    }
    order
}

#[test]
fn scheduled_task_runs_the_units_steps_in_order() {
    let t = template();
    let containers = containers_in_order(&t);
    // The unit's schedule (the example configuration's) with the task's store, report
    // directory and bucket parameters: the task has no configuration file, so its commands
    // spell the steps out.
    let mut schedule = example_config().schedule.unwrap();
    schedule.store = Some("/data/credtrail.duckdb".into());
    schedule.report_dir = Some("/data/report".into());
    schedule.cloudtrail = vec!["s3://trail-bucket/AWSLogs/".into()];
    schedule.segments = vec!["s3://segments-bucket/prefix/".into()];
    let steps = credtrail::schedule::steps(&schedule, Path::new("unused"), None, false);
    assert_eq!(containers.len(), steps.len());
    for (i, (c, step)) in containers.iter().zip(&steps).enumerate() {
        let args: Vec<String> = c["Command"]
            .as_array()
            .unwrap()
            .iter()
            .map(resolve)
            .collect();
        let cli = Cli::try_parse_from(std::iter::once("credtrail".to_string()).chain(args.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", c["Name"]));
        assert_eq!(cli.store, PathBuf::from("/data/credtrail.duckdb"));
        assert_eq!(args, step[1..], "step {i} ({})", c["Name"]);
        assert_eq!(
            c["Essential"],
            Value::Bool(i + 1 == containers.len()),
            "{}",
            c["Name"]
        );
        assert_eq!(c["User"], "65534:65534", "{}", c["Name"]);
    }
    // The report step uploads where the task role may write.
    let report = containers
        .iter()
        .find(|c| c["Name"] == "report")
        .expect("a report container");
    let url = report["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Name"] == "CREDTRAIL_REPORT_S3_URL")
        .expect("CREDTRAIL_REPORT_S3_URL")["Value"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert_eq!(url, "s3://${ReportsBucket}/${ReportsPrefix}");
}

/// The task role may do what the analyzer calls on S3 (the actions of
/// `deploy/iam/credtrail-analyzer-policy.json`; the schedule never calls LookupEvents) and mount
/// its own file system through its access point: nothing else.
#[test]
fn scheduled_task_role_grants_the_analyzers_s3_actions_and_its_store() {
    let t = template();
    let policy: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/iam/credtrail-analyzer-policy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let actions = |st: &Value| -> Vec<String> {
        match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            other => panic!("Action: {other}"),
        }
    };
    let analyzer_s3: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(actions)
        .filter(|a| a.starts_with("s3:"))
        .collect();
    let roles = &t["Resources"]["TaskRole"]["Properties"]["Policies"];
    let statements = roles[0]["PolicyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(roles.as_array().unwrap().len(), 1);
    let mut granted = BTreeSet::new();
    for st in statements {
        assert_eq!(st["Effect"], "Allow", "{st}");
        assert!(
            st.get("NotAction").is_none() && st.get("NotResource").is_none(),
            "{st}"
        );
        assert_ne!(st["Resource"], "*", "{st}");
        granted.extend(actions(st));
    }
    let mut want = analyzer_s3;
    want.insert("elasticfilesystem:ClientMount".to_string());
    want.insert("elasticfilesystem:ClientWrite".to_string());
    assert_eq!(granted, want);
    assert!(
        t["Resources"]["TaskRole"]["Properties"]
            .get("ManagedPolicyArns")
            .is_none()
    );
}

fn cfn_lint() -> Option<PathBuf> {
    let root = std::env::var_os("CREDTRAIL_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/credtrail-tools"))
        })?;
    let p = root.join("cfn-lint/bin/cfn-lint");
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} is not installed: run scripts/install-cfn-lint.sh (or scripts/install-test-tools.sh)",
        p.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    println!("SKIP: {msg}");
    None
}

#[test]
fn scheduled_task_template_passes_cfn_lint() {
    let Some(lint) = cfn_lint() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/cloudformation")
        .join(TEMPLATE);
    let out = Command::new(&lint).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "cfn-lint {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // and it is not a linter that passes anything: a container without an image, and a task
    // definition asking Fargate for a size it does not offer, fail
    let mut broken = template();
    let td = &mut broken["Resources"]["TaskDefinition"]["Properties"];
    td["ContainerDefinitions"][0]
        .as_object_mut()
        .unwrap()
        .remove("Image");
    td["Memory"] = Value::String("3000".into());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join(TEMPLATE);
    std::fs::write(&bad, serde_json::to_vec_pretty(&broken).unwrap()).unwrap();
    let out = Command::new(&lint).arg(&bad).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "cfn-lint passed a broken template");
    assert!(report.contains("Image"), "{report}");
}
