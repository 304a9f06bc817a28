//! systemd unit files under test: a reader, and `systemd-analyze verify` and `security` run the
//! way both programs' deploy tests need them (`collector/tests/deploy.rs`,
//! `analyzer/tests/deploy.rs`, which include this file with `#[path]`). Without
//! `systemd-analyze` on PATH (`deploy/scripts/install-test-tools.sh`) those two checks print a
//! skip line and return; the static checks still run.

#![allow(dead_code)] // reason: each including test binary uses a different subset

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// The highest overall exposure `systemd-analyze security` may give a unit of ours.
pub const MAX_EXPOSURE: f64 = 2.0;

/// A unit file read as `section -> [(key, value)]`, keeping repeated keys in order.
pub type Unit = BTreeMap<String, Vec<(String, String)>>;

/// Reads the unit at `path`.
pub fn read_unit(path: &Path) -> Unit {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_unit(&text, &path.display().to_string())
}

/// Parses a unit file's text (`name` for messages); continuation lines are refused so the
/// tests read every value whole.
pub fn parse_unit(text: &str, name: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "{name}:{}: keep unit lines unwrapped so the tests read them",
            number + 1
        );
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(s.to_owned());
            unit.entry(s.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}:{}: not key=value: {raw}", number + 1));
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("{name}:{}: key outside a section", number + 1));
        unit.entry(section)
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    unit
}

/// Every value of `key` in `section`, in order.
pub fn values<'a>(unit: &'a Unit, section: &str, key: &str) -> Vec<&'a str> {
    unit.get(section)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Runs `systemd-analyze ARGS`, or returns `None` (after printing a skip line naming `test`)
/// when the tool is not installed.
pub fn systemd_analyze(test: &str, args: &[&str]) -> Option<Output> {
    match Command::new("systemd-analyze")
        .arg("--no-pager")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .output()
    {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "SKIP {test}: systemd-analyze not on PATH \
                 (run deploy/scripts/install-test-tools.sh); static checks still ran"
            );
            None
        }
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `systemd-analyze verify` of `units` (file name, path), which checks that `ExecStart=`
/// exists: it runs against a scratch root holding the units, a stub `exec_path` and a copy of
/// the system's own units (for default dependencies such as sysinit.target). Any message that
/// names `complaint_marker` fails: verify reports bad keys and values as warnings and still
/// exits 0.
pub fn verify(test: &str, units: &[(&str, &Path)], exec_path: &str, complaint_marker: &str) {
    if systemd_analyze(test, &["--version"]).is_none() {
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
    for (name, path) in units {
        fs::copy(path, unit_dir.join(name)).unwrap();
    }
    let stub = root.path().join(exec_path.trim_start_matches('/'));
    fs::create_dir_all(stub.parent().unwrap()).unwrap();
    fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let lib = root.path().join("usr/lib/systemd");
    fs::create_dir_all(&lib).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(system_units)
        .arg(&lib)
        .status()
        .expect("run cp");
    assert!(copied.success(), "cp -a {} failed", system_units.display());

    let root_arg = format!("--root={}", root.path().display());
    let mut args = vec!["verify", root_arg.as_str()];
    args.extend(units.iter().map(|(name, _)| *name));
    let output = systemd_analyze(test, &args).unwrap();
    let report = text(&output);
    println!("systemd-analyze {}:\n{report}", args.join(" "));
    assert!(output.status.success(), "verify failed:\n{report}");
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(complaint_marker))
        .collect();
    assert!(
        complaints.is_empty(),
        "verify complained:\n{}",
        complaints.join("\n")
    );
}

/// `systemd-analyze security --offline=yes` of the unit at `path`: its overall exposure must be
/// at most [`MAX_EXPOSURE`].
pub fn assert_exposure_at_most_two(test: &str, path: &Path) {
    let path = path.to_str().expect("UTF-8 path");
    // The threshold is in tenths: 20 means an overall exposure of 2.0.
    let Some(output) =
        systemd_analyze(test, &["security", "--offline=yes", "--threshold=20", path])
    else {
        return;
    };
    let report = text(&output);
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
    assert!(output.status.success(), "security failed:\n{report}");
}
