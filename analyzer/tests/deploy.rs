//! The analyzer's scheduled run in `deploy/systemd/`: the weekly timer and the oneshot service
//! (ingest from S3, report, analyze with the configuration's `fail_on`, so exit status 3 fails
//! the unit when there are findings). Every `ExecStart=` is parsed by the real command line
//! (`credtrail::cli::Cli`). When `systemd-analyze` is on PATH (`deploy/scripts/install-test-tools.sh`)
//! both units go through `systemd-analyze verify` and the service through
//! `systemd-analyze security --offline=yes` (exposure at most 2.0, like the collector's unit).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser;
use credtrail::cli::{Cli, Command as Sub};

const SERVICE: &str = "credtrail-analyzer.service";
const TIMER: &str = "credtrail-analyzer.timer";
const EXEC_PATH: &str = "/usr/local/bin/credtrail";
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(name)
}

/// `section -> [(key, value)]`, repeated keys kept in order.
type Unit = BTreeMap<String, Vec<(String, String)>>;

fn read_unit(name: &str) -> Unit {
    let text = fs::read_to_string(unit_path(name)).unwrap();
    let mut unit = Unit::new();
    let mut section = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "{name}:{}: keep lines unwrapped",
            number + 1
        );
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(s.to_string());
            unit.entry(s.to_string()).or_default();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}:{}: not key=value", number + 1));
        unit.entry(section.clone().expect("a section"))
            .or_default()
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    unit
}

fn values<'a>(unit: &'a Unit, section: &str, key: &str) -> Vec<&'a str> {
    unit.get(section)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
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
    // what /etc/credtrail/analyzer.env would say
    let env = [
        ("${CREDTRAIL_CLOUDTRAIL_S3}", "s3://trail-bucket/AWSLogs/"),
        ("${CREDTRAIL_SEGMENTS_S3}", "s3://segments-bucket/prefix/"),
    ];
    let mut steps = Vec::new();
    for exec in values(&unit, "Service", "ExecStart") {
        let mut args: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
        assert_eq!(args[0], EXEC_PATH);
        for a in &mut args {
            for (var, value) in env {
                *a = a.replace(var, value);
            }
            assert!(!a.contains('$'), "{a}: a variable the test does not know");
        }
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{exec}: {e}"));
        assert_eq!(
            cli.store,
            PathBuf::from("/var/lib/credtrail-analyzer/credtrail.duckdb"),
            "{exec}"
        );
        steps.push(cli.command);
    }
    assert_eq!(steps.len(), 4);
    assert!(matches!(steps[0], Sub::Ingest(_)));
    assert!(matches!(steps[1], Sub::Ingest(_)));
    match &steps[2] {
        Sub::Report(r) => assert!(r.out.starts_with("/var/lib/credtrail-analyzer")),
        other => panic!("the third step writes the report, not {other:?}"),
    }
    match &steps[3] {
        // the exit status comes from the configuration's fail_on, as the last step, so the
        // report is written whatever it finds
        Sub::Analyze(a) => assert!(a.fail_on.is_none() && a.min_severity.is_none()),
        other => panic!("the last step is analyze, not {other:?}"),
    }
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

fn systemd_analyze(args: &[&str]) -> Option<Output> {
    match Command::new("systemd-analyze")
        .arg("--no-pager")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .output()
    {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "SKIP: systemd-analyze not on PATH (run deploy/scripts/install-test-tools.sh); static checks still ran"
            );
            None
        }
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// verify runs against a scratch root with both units, a stub `credtrail` and a copy of the
/// system's units; any message naming the units fails (verify warns and still exits 0).
#[test]
fn units_pass_systemd_analyze_verify() {
    if systemd_analyze(&["--version"]).is_none() {
        return;
    }
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists())
        .expect("systemd-analyze is installed but no directory holds sysinit.target");
    let root = tempfile::tempdir().unwrap();
    let unit_dir = root.path().join("etc/systemd/system");
    fs::create_dir_all(&unit_dir).unwrap();
    for name in [SERVICE, TIMER] {
        fs::copy(unit_path(name), unit_dir.join(name)).unwrap();
    }
    let stub = root.path().join(EXEC_PATH.trim_start_matches('/'));
    fs::create_dir_all(stub.parent().unwrap()).unwrap();
    fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let lib = root.path().join("usr/lib/systemd");
    fs::create_dir_all(&lib).unwrap();
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(system_units)
            .arg(&lib)
            .status()
            .unwrap()
            .success()
    );
    let root_arg = format!("--root={}", root.path().display());
    let out = systemd_analyze(&["verify", &root_arg, SERVICE, TIMER]).unwrap();
    let report = text(&out);
    assert!(out.status.success(), "verify failed:\n{report}");
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("credtrail-analyzer"))
        .collect();
    assert!(
        complaints.is_empty(),
        "verify complained:\n{}",
        complaints.join("\n")
    );
}

#[test]
fn service_exposure_is_at_most_two() {
    let path = unit_path(SERVICE);
    let Some(out) = systemd_analyze(&[
        "security",
        "--offline=yes",
        "--threshold=20",
        path.to_str().unwrap(),
    ]) else {
        return;
    };
    let report = text(&out);
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    let exposure: f64 = line
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure in {line:?}"));
    println!("{}", line.trim());
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
    assert!(out.status.success(), "security failed:\n{report}");
}
