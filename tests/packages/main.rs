//! The `.deb` packages of both programs (`cargo deb --no-build`, metadata in
//! `collector/Cargo.toml` and `analyzer/Cargo.toml`), built from the release binaries of this
//! checkout and installed on this machine: their files, conffiles and dependencies; `dpkg -i`
//! creating the system users and enabling the units; the installed units through
//! `systemd-analyze verify` and `security` (exposure at most 2.0); the installed binaries'
//! `--version`; each unit's command run as its user with its environment; an upgrade that keeps
//! the stores and a changed conffile; and a purge that leaves the machine as it was.
//!
//! It needs root, `dpkg`, cargo-deb (`scripts/install-cargo-deb.sh`, run by
//! `scripts/install-test-tools.sh`) and both release binaries (which `cargo test --workspace`
//! builds); without root or dpkg it says why and stops (a missing cargo-deb too, except under
//! CI, where it fails). It refuses to run where either package is already installed. systemd is
//! not PID 1 in a build container, so "the unit starts" is checked as what the unit would run:
//! its `ExecStart=` as its user (`setpriv`) with its `Environment=`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../support/systemd.rs"]
mod systemd;

const COLLECTOR: &str = "credtrail-collector";
const ANALYZER: &str = "credtrail";
const COLLECTOR_USER: &str = "credtrail-collector";
const ANALYZER_USER: &str = "credtrail-analyzer";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The target directory this test was built in (`<target>/release/deps/<this test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .expect("the test runs from <target>/release/deps")
        .to_path_buf()
}

fn cargo_deb() -> Option<PathBuf> {
    let root = std::env::var_os("CREDTRAIL_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/credtrail-tools"))
        })?;
    let p = root.join("bin/cargo-deb");
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} is not installed: run scripts/install-cargo-deb.sh (or scripts/install-test-tools.sh)",
        p.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    println!("SKIP packages: {msg}");
    None
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

/// Purges both packages when the test ends, however it ends, so the machine is left as found.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", ANALYZER, COLLECTOR])
            .output();
    }
}

/// `cargo deb --no-build --strip -p PACKAGE` into `out`, as version `deb_version`; the .deb's
/// path.
fn build_deb(cargo_deb: &Path, package: &str, deb_version: &str, out: &Path) -> PathBuf {
    let text = stdout(
        Command::new(cargo_deb)
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", target_dir())
            // --strip: the release profile keeps line tables (backtraces in tests), a package
            // need not; --fast: gzip, since the test only installs what it builds.
            .args(["--no-build", "--strip", "--fast", "-p", package])
            .args(["--deb-version", deb_version])
            .arg("--output")
            .arg(out),
    );
    let path = PathBuf::from(text.lines().last().unwrap().trim());
    assert!(path.is_file(), "cargo deb printed {text:?}");
    path
}

/// `dpkg-deb -I`'s control fields.
fn control(deb: &Path) -> BTreeMap<String, String> {
    let text = stdout(Command::new("dpkg-deb").arg("-f").arg(deb));
    let mut fields = BTreeMap::new();
    let mut last = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with(' ') {
            fields
                .entry(last.clone())
                .and_modify(|v: &mut String| v.push_str(line));
            continue;
        }
        let (k, v) = line.split_once(':').unwrap();
        last = k.to_owned();
        fields.insert(k.to_owned(), v.trim().to_owned());
    }
    fields
}

/// The paths `dpkg-deb -c` lists (without the leading `.`), with their modes.
fn contents(deb: &Path) -> BTreeMap<String, String> {
    stdout(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_owned();
            (path, fields[0].to_owned())
        })
        .collect()
}

/// The maintainer script `name` of `deb`.
fn script(deb: &Path, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(dir.path()));
    fs::read_to_string(dir.path().join(name)).unwrap_or_default()
}

/// Where the package put its unit files (`/lib/systemd/system` or `/usr/lib/systemd/system`).
fn unit_path(files: &BTreeMap<String, String>, unit: &str) -> String {
    files
        .keys()
        .find(|p| p.ends_with(&format!("/systemd/system/{unit}")))
        .unwrap_or_else(|| panic!("no {unit} in {files:?}"))
        .clone()
}

/// (uid, gid, shell) of a user.
fn user(name: &str) -> Option<(u32, u32, String)> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let f: Vec<&str> = line.trim().split(':').collect();
    (f.len() == 7).then(|| {
        (
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[6].to_owned(),
        )
    })
}

/// The unit's `Environment=` assignments.
fn unit_env(unit: &systemd::Unit) -> BTreeMap<String, String> {
    systemd::values(unit, "Service", "Environment")
        .into_iter()
        .map(|a| {
            let (k, v) = a.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Runs `argv` as `user` (its uid and group, no others) with only `env`, as the unit would.
fn as_user(user: (u32, u32), argv: &[String], env: &BTreeMap<String, String>) -> Output {
    // By path: the child's environment is cleared, so PATH would not find it.
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.arg(format!("--reuid={}", user.0))
        .arg(format!("--regid={}", user.1))
        .arg("--clear-groups")
        .args(argv)
        .env_clear()
        .envs(env)
        .current_dir("/");
    cmd.output().unwrap()
}

fn sha(path: &Path) -> String {
    stdout(Command::new("sha256sum").arg(path))
}

#[test]
fn debs_install_start_upgrade_and_purge() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root || Command::new("dpkg").arg("--version").output().is_err() {
        println!("SKIP packages: installing .deb packages needs root and dpkg");
        return;
    }
    let Some(cargo_deb) = cargo_deb() else { return };
    for p in [ANALYZER, COLLECTOR] {
        if installed(p) {
            println!("SKIP packages: {p} is installed on this machine; not touching it");
            return;
        }
    }
    // The packages hold this checkout's release binaries, which `cargo test --workspace`
    // builds (and `cargo build --release -p credtrail -p credtrail-collector`). They are not
    // built from here: a cargo started inside a test sees the test's environment and would
    // rebuild the dependencies (the bundled DuckDB among them) for it.
    for bin in [ANALYZER, COLLECTOR] {
        let path = target_dir().join("release").join(bin);
        assert!(
            path.is_file(),
            "{} is missing: run `cargo build --release -p {ANALYZER} -p {COLLECTOR}` first",
            path.display()
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let (v1, v2) = (tmp.path().join("v1"), tmp.path().join("v2"));
    let version = env!("CARGO_PKG_VERSION");
    let collector_deb = build_deb(&cargo_deb, COLLECTOR, &format!("{version}-1"), &v1);
    let analyzer_deb = build_deb(&cargo_deb, ANALYZER, &format!("{version}-1"), &v1);

    // What the packages hold.
    let c = control(&collector_deb);
    assert_eq!(c["Package"], COLLECTOR);
    assert_eq!(c["Version"], format!("{version}-1"));
    for dep in ["adduser", "libc6", "libstdc++6"] {
        assert!(c["Depends"].contains(dep), "Depends: {}", c["Depends"]);
    }
    let a = control(&analyzer_deb);
    assert_eq!(a["Package"], ANALYZER);
    for dep in ["adduser", "libc6", "libstdc++6"] {
        assert!(a["Depends"].contains(dep), "Depends: {}", a["Depends"]);
    }
    let collector_files = contents(&collector_deb);
    let analyzer_files = contents(&analyzer_deb);
    assert!(collector_files["/usr/bin/credtrail-collector"].starts_with("-rwxr-xr-x"));
    assert!(analyzer_files["/usr/bin/credtrail"].starts_with("-rwxr-xr-x"));
    assert!(collector_files.contains_key("/etc/credtrail/collector.env"));
    assert!(analyzer_files.contains_key("/etc/credtrail/credtrail.toml"));
    let collector_unit = unit_path(&collector_files, "credtrail-collector.service");
    let service = unit_path(&analyzer_files, "credtrail-analyzer.service");
    let timer = unit_path(&analyzer_files, "credtrail-analyzer.timer");
    // Nothing of the other program, no stray build files.
    assert!(!collector_files.keys().any(|p| p.contains("analyzer")));
    assert!(!analyzer_files.keys().any(|p| p.contains("collector")));
    assert!(
        collector_files
            .keys()
            .chain(analyzer_files.keys())
            .all(|p| !p.starts_with("/usr/local") && !p.contains("target")),
        "{collector_files:?} {analyzer_files:?}"
    );
    assert_eq!(
        script(&collector_deb, "conffiles")
            .lines()
            .collect::<Vec<_>>(),
        ["/etc/credtrail/collector.env"]
    );
    assert_eq!(
        script(&analyzer_deb, "conffiles")
            .lines()
            .collect::<Vec<_>>(),
        ["/etc/credtrail/credtrail.toml"]
    );
    // The unit handling of dh_installsystemd: the collector enabled and started, the timer
    // enabled only (its first run waits for the operator's buckets).
    let postinst = script(&collector_deb, "postinst");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable credtrail-collector.service"),
        "{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-invoke $_dh_action credtrail-collector.service"),
        "{postinst}"
    );
    assert_eq!(postinst.matches("#DEBHELPER#").count(), 0, "{postinst}");
    let postinst = script(&analyzer_deb, "postinst");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable credtrail-analyzer"),
        "{postinst}"
    );
    // (an upgrade try-restarts the timer if it runs; nothing starts either unit)
    assert!(
        !postinst.contains("_dh_action") && !postinst.contains("deb-systemd-invoke start"),
        "{postinst}"
    );

    // Install.
    let _purge = Purge;
    run(Command::new("dpkg")
        .arg("-i")
        .arg(&collector_deb)
        .arg(&analyzer_deb));
    let mut ids = BTreeMap::new();
    for name in [COLLECTOR_USER, ANALYZER_USER] {
        let (uid, gid, shell) = user(name).unwrap_or_else(|| panic!("no user {name}"));
        assert!(
            (100..1000).contains(&uid),
            "{name}: uid {uid} is not a system uid"
        );
        assert!(
            shell.ends_with("nologin") || shell.ends_with("false"),
            "{name}: {shell}"
        );
        ids.insert(name, (uid, gid));
    }
    for unit in [&collector_unit, &service, &timer] {
        assert!(Path::new(unit).is_file(), "{unit} not installed");
    }
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/credtrail-collector.service")
            .exists(),
        "the collector is not enabled"
    );
    assert!(
        Path::new("/etc/systemd/system/timers.target.wants/credtrail-analyzer.timer").exists(),
        "the timer is not enabled"
    );
    for (bin, name) in [
        ("/usr/bin/credtrail-collector", COLLECTOR),
        ("/usr/bin/credtrail", ANALYZER),
    ] {
        let v = stdout(Command::new(bin).arg("--version"));
        assert!(v.starts_with(&format!("{name} {version}")), "{v}");
        if name == ANALYZER {
            assert!(v.contains("IAM action catalog"), "{bin} --version: {v}");
        }
    }

    // The installed units, with the installed binaries.
    for (unit, name) in [
        (&collector_unit, "credtrail-collector.service"),
        (&service, "credtrail-analyzer.service"),
    ] {
        systemd::assert_exposure_at_most_two(name, Path::new(unit));
    }
    if let Some(out) = systemd::systemd_analyze(
        "debs_install_start_upgrade_and_purge",
        &["verify", &collector_unit, &service, &timer],
    ) {
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("systemd-analyze verify:\n{report}");
        assert!(out.status.success(), "{report}");
        let complaints: Vec<&str> = report.lines().filter(|l| l.contains("credtrail")).collect();
        assert!(complaints.is_empty(), "{}", complaints.join("\n"));
    }

    // The collector's unit, started as what it runs: its ExecStart as its user with its
    // environment, once over a small audit log, its state where StateDirectory= puts it.
    let unit = systemd::read_unit(Path::new(&collector_unit));
    let exec: Vec<String> = systemd::values(&unit, "Service", "ExecStart")[0]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut env = unit_env(&unit);
    let state = Path::new("/var/lib").join(systemd::values(&unit, "Service", "StateDirectory")[0]);
    let (uid, gid) = ids[COLLECTOR_USER];
    fs::create_dir_all(&state).unwrap();
    run(Command::new("chown")
        .arg(format!("{uid}:{gid}"))
        .arg(&state));
    run(Command::new("chmod").arg("0700").arg(&state));
    let audit = tmp.path().join("ecs");
    fs::create_dir(&audit).unwrap();
    run(Command::new("chmod")
        .arg("0755")
        .arg(tmp.path())
        .arg(&audit));
    fs::write(
        audit.join("audit.log"),
        "2026-11-20T10:00:00Z 200 172.17.0.2:40000 \"/v2/credentials\" \"ua\" arn:aws:ecs:us-east-1:1:task/p/1 GetCredentials 2 prod arn:aws:ecs:us-east-1:1:container-instance/p/2\n",
    )
    .unwrap();
    env.insert("CREDTRAIL_AUDIT_DIR".into(), audit.to_str().unwrap().into());
    // (The unit's agent URL stays: nothing listens there, and `--once` records no inventory.)
    let mut argv = exec.clone();
    argv.extend(["--once", "--host", "package-test", "--min-free-mb", "0"].map(String::from));
    let ran = as_user((uid, gid), &argv, &env);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let store = Path::new(&env["CREDTRAIL_STORE"]).to_path_buf();
    assert!(store.starts_with(&state), "{}", store.display());
    assert_eq!(fs::metadata(&store).unwrap().uid(), uid);
    assert!(
        fs::read_dir(&env["CREDTRAIL_SEGMENTS_DIR"])
            .unwrap()
            .next()
            .is_some(),
        "no segments published"
    );

    // The analyzer's unit as its user, with the packaged configuration (which must read as a
    // valid credtrail.toml): `run-schedule --dry-run` lists the steps; the report step runs
    // (the ingests would need the operator's buckets).
    let unit = systemd::read_unit(Path::new(&service));
    let env = unit_env(&unit);
    assert_eq!(env["CREDTRAIL_CONFIG"], "/etc/credtrail/credtrail.toml");
    let analyzer_state =
        Path::new("/var/lib").join(systemd::values(&unit, "Service", "StateDirectory")[0]);
    let (auid, agid) = ids[ANALYZER_USER];
    fs::create_dir_all(&analyzer_state).unwrap();
    run(Command::new("chown")
        .arg(format!("{auid}:{agid}"))
        .arg(&analyzer_state));
    run(Command::new("chmod").arg("0700").arg(&analyzer_state));
    let mut argv: Vec<String> = systemd::values(&unit, "Service", "ExecStart")[0]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    argv.push("--dry-run".into());
    let listed = as_user((auid, agid), &argv, &env);
    let listed_text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.status.success(),
        "{listed_text}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let report_step: Vec<String> = listed_text
        .lines()
        .find(|l| l.contains(" report --out "))
        .unwrap_or_else(|| panic!("no report step in:\n{listed_text}"))
        .split_once(": ")
        .unwrap()
        .1
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(report_step[0], "credtrail");
    let mut report_step = report_step;
    report_step[0] = "/usr/bin/credtrail".into();
    let ran = as_user((auid, agid), &report_step, &env);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let analyzer_store = analyzer_state.join("credtrail.duckdb");
    assert!(analyzer_store.is_file(), "{listed_text}");
    assert!(analyzer_state.join("report/report.html").is_file());

    // Upgrade: the stores, the users and an operator's conffile change are kept.
    let before = (sha(&store), sha(&analyzer_store));
    fs::write(
        "/etc/credtrail/collector.env",
        "CREDTRAIL_S3_URL=s3://fleet-segments/credtrail/\n",
    )
    .unwrap();
    let collector_deb2 = build_deb(&cargo_deb, COLLECTOR, &format!("{version}-2"), &v2);
    let analyzer_deb2 = build_deb(&cargo_deb, ANALYZER, &format!("{version}-2"), &v2);
    run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(&collector_deb2)
        .arg(&analyzer_deb2));
    assert!(
        stdout(Command::new("dpkg-query").args(["-W", "-f=${Version}", COLLECTOR])).ends_with("-2")
    );
    assert_eq!(
        (sha(&store), sha(&analyzer_store)),
        before,
        "an upgrade changed a store"
    );
    assert_eq!(
        fs::read_to_string("/etc/credtrail/collector.env").unwrap(),
        "CREDTRAIL_S3_URL=s3://fleet-segments/credtrail/\n"
    );
    for name in [COLLECTOR_USER, ANALYZER_USER] {
        let (uid, gid, _) = user(name).unwrap();
        assert_eq!((uid, gid), ids[name], "{name} changed its ids on upgrade");
    }

    // Remove keeps the state; purge deletes it, the users, the conffiles and the links.
    run(Command::new("dpkg").args(["--remove", ANALYZER, COLLECTOR]));
    assert!(
        store.is_file() && analyzer_store.is_file(),
        "remove deleted a store"
    );
    assert!(!Path::new("/usr/bin/credtrail").exists());
    run(Command::new("dpkg").args(["--purge", ANALYZER, COLLECTOR]));
    for gone in [
        "/var/lib/credtrail",
        "/var/lib/credtrail-analyzer",
        "/etc/credtrail",
        "/etc/systemd/system/multi-user.target.wants/credtrail-collector.service",
        "/etc/systemd/system/timers.target.wants/credtrail-analyzer.timer",
        &collector_unit,
        &service,
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after the purge");
    }
    for name in [COLLECTOR_USER, ANALYZER_USER] {
        assert!(user(name).is_none(), "user {name} is left after the purge");
    }
}
