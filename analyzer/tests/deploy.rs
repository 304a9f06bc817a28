//! The analyzer's scheduled run in `deploy/systemd/`: the weekly timer and the oneshot service
//! (ingest from S3, report, analyze with the configuration's `fail_on`, so exit status 3 fails
//! the unit when there are findings). Every `ExecStart=` is parsed by the real command line
//! (`credtrail::cli::Cli`). When `systemd-analyze` is on PATH (`deploy/scripts/install-test-tools.sh`)
//! both units go through `systemd-analyze verify` and the service through
//! `systemd-analyze security --offline=yes` (exposure at most 2.0, like the collector's unit).

use std::path::{Path, PathBuf};

#[path = "../../tests/support/systemd.rs"]
mod systemd;
use systemd::{Unit, values};

use clap::Parser;
use credtrail::cli::{Cli, Command as Sub};

const SERVICE: &str = "credtrail-analyzer.service";
const TIMER: &str = "credtrail-analyzer.timer";
const EXEC_PATH: &str = "/usr/local/bin/credtrail";

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(name)
}

fn read_unit(name: &str) -> Unit {
    systemd::read_unit(&unit_path(name))
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
