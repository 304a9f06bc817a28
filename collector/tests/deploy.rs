//! Checks the deployment files under `deploy/`: the ECS daemon task definition and service, and
//! the systemd unit. The static checks always run. When `systemd-analyze` is on PATH (CI installs
//! it with `deploy/scripts/install-test-tools.sh`) the unit is also run through
//! `systemd-analyze verify` and `systemd-analyze security --offline=yes`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "../../tests/support/systemd.rs"]
mod systemd;
use systemd::{Unit, values};

const UNIT_NAME: &str = "credtrail-collector.service";
const EXEC_PATH: &str = "/usr/bin/credtrail-collector";
const AUDIT_DIR: &str = "/var/log/ecs";
const DATA_DIR: &str = "/var/lib/credtrail";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("collector/ has a parent")
        .join("deploy")
}

fn unit_path() -> PathBuf {
    deploy_dir().join("systemd").join(UNIT_NAME)
}

fn read_json(relative: &str) -> Value {
    let path = deploy_dir().join(relative);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn task_definition() -> Value {
    read_json("ecs/collector-daemon.task-definition.json")
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
}

fn array_at<'a>(value: &'a Value, pointer: &str) -> &'a Vec<Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{pointer} is not an array"))
}

/// The (name, value) pairs of the container's `environment`.
fn container_env(container: &Value) -> BTreeMap<String, String> {
    array_at(container, "/environment")
        .iter()
        .map(|pair| {
            (
                str_at(pair, "/name").to_owned(),
                str_at(pair, "/value").to_owned(),
            )
        })
        .collect()
}

#[test]
fn task_definition_is_a_host_network_ec2_daemon() {
    let td = task_definition();
    assert_eq!(str_at(&td, "/family"), "credtrail-collector");
    assert_eq!(str_at(&td, "/networkMode"), "host");
    assert!(
        array_at(&td, "/requiresCompatibilities")
            .iter()
            .any(|c| c == "EC2"),
        "requiresCompatibilities must include EC2"
    );
    let containers = array_at(&td, "/containerDefinitions");
    assert!(!containers.is_empty(), "containerDefinitions is empty");
    let c = containers
        .iter()
        .find(|c| c["name"] == "credtrail-collector")
        .expect("a container named credtrail-collector");
    assert_eq!(c["essential"], true);
    assert!(!str_at(c, "/image").is_empty());
    assert_ne!(
        c["privileged"], true,
        "the collector must not be privileged"
    );
}

#[test]
fn task_definition_container_is_locked_down() {
    let td = task_definition();
    let c = &td["containerDefinitions"][0];
    let user = str_at(c, "/user");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "container user {user:?} must not be root"
    );
    assert_eq!(c["readonlyRootFilesystem"], true);
    let memory = c["memory"].as_u64().or(c["memoryReservation"].as_u64());
    assert!(
        memory.is_some_and(|m| m > 0),
        "memory or memoryReservation must be set"
    );
    if let (Some(soft), Some(hard)) = (c["memoryReservation"].as_u64(), c["memory"].as_u64()) {
        assert!(soft <= hard, "memoryReservation {soft} > memory {hard}");
    }
}

#[test]
fn task_definition_mounts_the_audit_log_read_only_from_the_host() {
    let td = task_definition();
    let c = &td["containerDefinitions"][0];
    let mounts = array_at(c, "/mountPoints");
    let audit = mounts
        .iter()
        .find(|m| m["containerPath"] == AUDIT_DIR)
        .unwrap_or_else(|| panic!("no mount point at {AUDIT_DIR}"));
    assert_eq!(
        audit["readOnly"], true,
        "{AUDIT_DIR} must be mounted readOnly"
    );
    let volume_name = str_at(audit, "/sourceVolume");
    let volume = array_at(&td, "/volumes")
        .iter()
        .find(|v| v["name"] == volume_name)
        .unwrap_or_else(|| panic!("no volume named {volume_name}"));
    assert_eq!(str_at(volume, "/host/sourcePath"), AUDIT_DIR);

    let data = mounts
        .iter()
        .find(|m| m["containerPath"] == DATA_DIR)
        .unwrap_or_else(|| panic!("no mount point at {DATA_DIR}"));
    assert_ne!(data["readOnly"], true, "{DATA_DIR} must be writable");
    let data_volume = str_at(data, "/sourceVolume");
    assert!(
        array_at(&td, "/volumes")
            .iter()
            .any(|v| v["name"] == data_volume),
        "no volume named {data_volume}"
    );
}

#[test]
fn task_definition_environment_is_credtrail_only_and_points_at_the_mounts() {
    let td = task_definition();
    let env = container_env(&td["containerDefinitions"][0]);
    assert!(!env.is_empty());
    for name in env.keys() {
        assert!(name.starts_with("CREDTRAIL_"), "unexpected variable {name}");
    }
    assert_eq!(env["CREDTRAIL_AUDIT_DIR"], AUDIT_DIR);
    for key in ["CREDTRAIL_STORE", "CREDTRAIL_SEGMENTS_DIR"] {
        assert!(
            env[key].starts_with(&format!("{DATA_DIR}/")),
            "{key} must live on the data volume"
        );
    }
    assert!(env["CREDTRAIL_AGENT_URL"].starts_with("http://localhost:51678"));
}

#[test]
fn service_is_a_daemon_of_the_task_family() {
    let service = read_json("ecs/collector-daemon.service.json");
    assert_eq!(str_at(&service, "/schedulingStrategy"), "DAEMON");
    assert!(
        service.get("desiredCount").is_none(),
        "a DAEMON service takes no desiredCount"
    );
    let family = str_at(&task_definition(), "/family").to_owned();
    let task_definition = str_at(&service, "/taskDefinition");
    let named_family = task_definition
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default();
    assert_eq!(named_family, family, "service runs {task_definition}");
}

/// The value a key ends up with (the last assignment wins in systemd).
fn last<'a>(unit: &'a Unit, key: &str) -> Option<&'a str> {
    values(unit, "Service", key).last().copied()
}

fn read_unit() -> Unit {
    systemd::read_unit(&unit_path())
}

#[test]
fn unit_runs_the_collector_as_an_unprivileged_restartable_service() {
    let unit = read_unit();
    assert!(unit.contains_key("Unit") && unit.contains_key("Install"));
    assert_eq!(last(&unit, "ExecStart"), Some(EXEC_PATH));
    let dynamic = last(&unit, "DynamicUser") == Some("yes");
    let user = last(&unit, "User");
    assert!(
        dynamic || user.is_some_and(|u| u != "root" && u != "0"),
        "the unit must use DynamicUser=yes or a non-root User="
    );
    assert_eq!(last(&unit, "StateDirectory"), Some("credtrail"));
    assert_eq!(last(&unit, "Restart"), Some("on-failure"));
    assert_eq!(last(&unit, "KillSignal"), Some("SIGTERM"));
    assert!(last(&unit, "TimeoutStopSec").is_some());
    assert_eq!(values(&unit, "Install", "WantedBy"), ["multi-user.target"]);
}

#[test]
fn unit_environment_matches_the_task_definition() {
    let unit = read_unit();
    let mut unit_env: BTreeMap<String, String> = values(&unit, "Service", "Environment")
        .iter()
        .map(|assignment| {
            let (k, v) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!("Environment={assignment} is not NAME=value"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let td = task_definition();
    // The rest comes from the environment file the unit names (the .deb's conffile), whose
    // assignments are suggestions left commented out until an operator fills them in.
    assert_eq!(
        values(&unit, "Service", "EnvironmentFile"),
        ["-/etc/credtrail/collector.env"]
    );
    let env_file = fs::read_to_string(deploy_dir().join("collector.env")).unwrap();
    for line in env_file.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some((k, v)) = line.split_once('=')
            && k.starts_with("CREDTRAIL_")
            && !k.contains(' ')
        {
            unit_env.insert(k.to_owned(), v.to_owned());
        }
    }
    assert_eq!(unit_env, container_env(&td["containerDefinitions"][0]));
}

#[test]
fn unit_is_sandboxed() {
    let unit = read_unit();
    let expected = [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("UMask", "0077"),
    ];
    for (key, value) in expected {
        assert_eq!(last(&unit, key), Some(value), "{key}");
    }
    let families: Vec<&str> = values(&unit, "Service", "RestrictAddressFamilies")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families.contains(&family),
            "RestrictAddressFamilies lacks {family}"
        );
    }
    assert!(
        families.iter().all(|f| !f.starts_with('~')),
        "RestrictAddressFamilies must be an allow list"
    );
    assert_eq!(
        values(&unit, "Service", "SystemCallFilter")
            .first()
            .copied(),
        Some("@system-service"),
        "SystemCallFilter must start from the @system-service allow list"
    );
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    systemd::verify(
        "unit_passes_systemd_analyze_verify",
        &[(UNIT_NAME, &unit_path())],
        EXEC_PATH,
        "credtrail-collector",
    );
}

#[test]
fn unit_exposure_is_at_most_two() {
    systemd::assert_exposure_at_most_two("unit_exposure_is_at_most_two", &unit_path());
}

/// The container the collector waits for (`dependsOn` … `SUCCESS`), which hands the data
/// volume to the collector's user: a Docker volume (or a host directory) starts owned by root.
fn state_owner(td: &Value) -> &Value {
    let collector = &td["containerDefinitions"][0];
    let dep = array_at(collector, "/dependsOn")
        .iter()
        .find(|d| d["condition"] == "SUCCESS")
        .expect("the collector depends on a container that must succeed");
    let name = str_at(dep, "/containerName");
    array_at(td, "/containerDefinitions")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container named {name}"))
}

#[test]
fn task_definition_gives_the_state_directory_to_the_collectors_user() {
    let td = task_definition();
    let collector = &td["containerDefinitions"][0];
    let owner = state_owner(&td);
    assert_eq!(owner["essential"], false, "it runs once and exits");
    let data_volume = |c: &Value| -> String {
        array_at(c, "/mountPoints")
            .iter()
            .find(|m| m["containerPath"] == DATA_DIR && m["readOnly"] != true)
            .map(|m| str_at(m, "/sourceVolume").to_owned())
            .unwrap_or_else(|| panic!("no writable mount at {DATA_DIR}"))
    };
    assert_eq!(
        data_volume(owner),
        data_volume(collector),
        "the same volume"
    );
    let user = str_at(collector, "/user");
    assert!(user.contains(':'), "the collector's user names uid:gid");
    let command: Vec<&str> = array_at(owner, "/command")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command, ["chown", "-R", user, DATA_DIR]);
    let owner_user = owner["user"].as_str().unwrap_or("0");
    assert!(
        owner_user == "0" || owner_user.starts_with("0:"),
        "chown needs root"
    );
    assert_eq!(
        owner.pointer("/linuxParameters/capabilities/add"),
        Some(&serde_json::json!(["CHOWN"])),
        "only the capability chown needs"
    );
    assert_eq!(
        owner.pointer("/linuxParameters/capabilities/drop"),
        Some(&serde_json::json!(["ALL"]))
    );
    assert_eq!(owner["readonlyRootFilesystem"], true);
}

/// Runs the real binary `--once` as `user` (uid:gid) with its store and segments under `data`.
fn collector_as(user: &str, audit: &Path, data: &Path) -> Output {
    let (uid, gid) = user.split_once(':').unwrap();
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_credtrail-collector"))
        .arg("--once")
        .arg("--audit-dir")
        .arg(audit)
        .arg("--store")
        .arg(data.join("collector.duckdb"))
        .arg("--segments-dir")
        .arg(data.join("segments"))
        .args(["--host", "deploy-test", "--min-free-mb", "0"])
        .output()
        .unwrap()
}

#[test]
fn the_collectors_user_writes_its_state_once_the_owner_container_ran() {
    // Needs root (to own the directory as a fresh volume is owned, and to switch users).
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !has_setpriv {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let td = task_definition();
    let user = str_at(&td["containerDefinitions"][0], "/user").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let audit = tmp.path().join("ecs");
    fs::create_dir(&audit).unwrap();
    fs::set_permissions(&audit, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        audit.join("audit.log"),
        "2026-11-20T10:00:00Z 200 172.17.0.2:40000 \"/v2/credentials\" \"ua\" arn:aws:ecs:us-east-1:1:task/p/1 GetCredentials 2 prod arn:aws:ecs:us-east-1:1:container-instance/p/2\n",
    )
    .unwrap();
    fs::set_permissions(audit.join("audit.log"), fs::Permissions::from_mode(0o644)).unwrap();
    // A new volume: an empty directory owned by root, mode 0755.
    let data = tmp.path().join("volume");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();

    let refused = collector_as(&user, &audit, &data);
    assert!(
        !refused.status.success(),
        "without the owner container the collector's user cannot write a root-owned volume"
    );

    let command: Vec<String> = array_at(state_owner(&td), "/command")
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap()
                .replace(DATA_DIR, data.to_str().unwrap())
        })
        .collect();
    let chown = Command::new(&command[0])
        .args(&command[1..])
        .status()
        .unwrap();
    assert!(chown.success());

    let ran = collector_as(&user, &audit, &data);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(data.join("collector.duckdb")).unwrap().uid(),
        uid
    );
    assert!(
        !credtrail_collector::segment::files_of(&data.join("segments"), "credential_requests")
            .is_empty(),
        "segments published"
    );
}

/// One Dockerfile instruction: its keyword (upper case) and its arguments, continuation lines
/// joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (keyword, args) = pending.split_once(' ').unwrap_or((pending.as_str(), ""));
        out.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
        pending.clear();
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends inside an instruction"
    );
    out
}

/// The instructions of the image's last stage (the one the task runs), and the first stage's.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let path = deploy_dir().join("container/Dockerfile");
    let text = fs::read_to_string(&path).unwrap();
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for (keyword, args) in dockerfile_instructions(&text) {
        if keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push((keyword, args));
    }
    stages
}

fn instruction<'a>(stage: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.as_str())
        .collect()
}

#[test]
fn container_image_agrees_with_the_task_definition_and_the_unit() {
    let stages = dockerfile_stages();
    assert_eq!(stages.len(), 2, "a build stage and a run stage");
    let (build, run) = (&stages[0], &stages[1]);
    let td = task_definition();
    let c = &td["containerDefinitions"][0];

    // The build uses the workspace's toolchain and lock file, for this package.
    let from = instruction(build, "FROM")[0];
    let rust_version = fs::read_to_string(deploy_dir().join("../Cargo.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("the workspace's rust-version");
    assert!(
        from.contains(&format!("rust:{rust_version}-")) && from.ends_with(" AS build"),
        "FROM {from}"
    );
    let builds = instruction(build, "RUN").join(" ");
    assert!(
        builds.contains("cargo build --release --locked -p credtrail-collector"),
        "{builds}"
    );

    // The run stage: the binary where the unit runs it, as the task's user.
    assert_eq!(
        instruction(run, "ENTRYPOINT"),
        [format!("[\"{EXEC_PATH}\"]")]
    );
    assert_eq!(
        instruction(run, "COPY"),
        [format!(
            "--from=build /src/target/release/credtrail-collector {EXEC_PATH}"
        )]
    );
    let user = str_at(c, "/user");
    assert_eq!(instruction(run, "USER"), [user]);
    assert_eq!(
        instruction(run, "STOPSIGNAL"),
        [last(&read_unit(), "KillSignal").unwrap()]
    );

    // Its environment is the task definition's, except what each fleet sets (S3 shipping).
    let td_env = container_env(c);
    let mut image_env = BTreeMap::new();
    for env in instruction(run, "ENV") {
        for pair in env.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {pair}: not NAME=value"));
            image_env.insert(k.to_owned(), v.to_owned());
        }
    }
    for (k, v) in &image_env {
        assert_eq!(
            td_env.get(k),
            Some(v),
            "ENV {k}={v} differs from the task's"
        );
    }
    let missing: Vec<&String> = td_env
        .keys()
        .filter(|k| !image_env.contains_key(*k))
        .collect();
    assert_eq!(missing, ["CREDTRAIL_S3_URL"]);

    // The state directory is a volume the task mounts, created owned by that user.
    assert_eq!(instruction(run, "VOLUME"), [format!("[\"{DATA_DIR}\"]")]);
    assert!(
        array_at(c, "/mountPoints")
            .iter()
            .any(|m| m["containerPath"] == DATA_DIR && m["readOnly"] != true)
    );
    let (uid, gid) = user.split_once(':').unwrap();
    let runs = instruction(run, "RUN").join(" ");
    assert!(
        runs.contains(&format!("install -d -o {uid} -g {gid} -m 0700 {DATA_DIR}")),
        "{runs}"
    );
    assert!(image_env["CREDTRAIL_STORE"].starts_with(&format!("{DATA_DIR}/")));
}

/// What the run stage's comment promises: the binary links only glibc, libgcc_s and libstdc++,
/// which Debian 12 slim has. Checked with `ldd`, then by running the binary in a root file
/// system holding nothing else (the binary, those libraries copied from this Debian host, the
/// image's state directory), as the image's user with the image's environment: `--version`
/// and `--once` over an empty audit directory. Root only (chroot); no container engine here,
/// so the image itself is not built.
#[test]
fn container_run_stage_needs_only_what_it_ships() {
    let bin = Path::new(env!("CARGO_BIN_EXE_credtrail-collector"));
    let Ok(ldd) = Command::new("ldd").arg(bin).output() else {
        eprintln!("skipped: no ldd");
        return;
    };
    let text = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let allowed = [
        "linux-vdso.so.1",
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    ];
    let mut libs = Vec::new();
    for line in text.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let file = Path::new(name).file_name().unwrap().to_str().unwrap();
        assert!(allowed.contains(&file), "the binary links {file}:\n{text}");
        // `name => /path (addr)` or `/path (addr)` for the loader
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            libs.push((name.to_owned(), PathBuf::from(p)));
        }
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("skipped the chroot run: needs root");
        return;
    }
    let stages = dockerfile_stages();
    let run = &stages[1];
    let user = instruction(run, "USER")[0].to_owned();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::set_permissions(r, fs::Permissions::from_mode(0o755)).unwrap();
    for (name, path) in &libs {
        // the loader at the absolute path the binary names, libraries where it looks
        let dest = if name.starts_with('/') {
            r.join(name.trim_start_matches('/'))
        } else {
            r.join(path.strip_prefix("/").unwrap())
        };
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(path, &dest).unwrap();
    }
    let exe = r.join(EXEC_PATH.trim_start_matches('/'));
    fs::create_dir_all(exe.parent().unwrap()).unwrap();
    fs::copy(bin, &exe).unwrap();
    let mut env = BTreeMap::new();
    for e in instruction(run, "ENV") {
        for pair in e.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let data = r.join(DATA_DIR.trim_start_matches('/'));
    let audit = r.join(env["CREDTRAIL_AUDIT_DIR"].trim_start_matches('/'));
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&audit).unwrap();
    let owned = Command::new("chown")
        .arg(&user)
        .arg(&data)
        .status()
        .unwrap();
    assert!(owned.success());
    fs::create_dir_all(r.join("tmp")).unwrap();
    let Some(chroot) = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        eprintln!("skipped the chroot run: no chroot(8)");
        return;
    };
    let chrooted = |args: &[&str]| {
        Command::new(chroot)
            .arg(format!("--userspec={user}"))
            .arg(r)
            .arg(EXEC_PATH)
            .args(args)
            .env_clear()
            .envs(&env)
            .output()
            .unwrap()
    };
    let version = chrooted(&["--version"]);
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    assert!(
        String::from_utf8_lossy(&version.stdout)
            .starts_with(concat!("credtrail-collector ", env!("CARGO_PKG_VERSION")))
    );
    let once = chrooted(&["--once", "--host", "image-test", "--min-free-mb", "0"]);
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let store = r.join(env["CREDTRAIL_STORE"].trim_start_matches('/'));
    use std::os::unix::fs::MetadataExt;
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_eq!(fs::metadata(&store).unwrap().uid(), uid);
}
