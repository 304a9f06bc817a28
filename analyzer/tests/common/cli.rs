//! Runs the real `credtrail` binary on a store, as a person would; shared by the test binaries
//! that drive the CLI (`#[path = "common/cli.rs"] mod cli;`).

#![allow(dead_code)] // reason: each including test binary uses a different subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `credtrail --store STORE ARGS…`: its standard output; panics with both outputs on failure.
pub fn credtrail<S: AsRef<OsStr> + std::fmt::Debug>(store: &Path, args: &[S]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "credtrail {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Simulates `hosts` hosts for `hours` hours (every planted attack, seed `seed`) into
/// `dir/sim` and ingests every input (audit logs, ECS, IAM, CloudTrail) into `dir/store.duckdb`
/// through the CLI. Returns the simulation directory and the store.
pub fn simulated_store(dir: &Path, hosts: u32, hours: u32, seed: u64) -> (PathBuf, PathBuf) {
    let sim = dir.join("sim");
    let db = dir.join("store.duckdb");
    let (hosts, hours, seed) = (hosts.to_string(), hours.to_string(), seed.to_string());
    credtrail(
        &db,
        &[
            OsStr::new("simulate"),
            OsStr::new("--out"),
            sim.as_os_str(),
            OsStr::new("--hosts"),
            OsStr::new(&hosts),
            OsStr::new("--hours"),
            OsStr::new(&hours),
            OsStr::new("--seed"),
            OsStr::new(&seed),
            OsStr::new("--threads"),
            OsStr::new("1"),
        ],
    );
    let mut logs: Vec<PathBuf> = std::fs::read_dir(sim.join("hosts"))
        .unwrap()
        .map(|e| e.unwrap().path().join("var/log/ecs"))
        .collect();
    logs.sort();
    let mut args: Vec<&OsStr> = vec![OsStr::new("ingest"), OsStr::new("audit")];
    args.extend(logs.iter().map(|p| p.as_os_str()));
    credtrail(&db, &args);
    credtrail(
        &db,
        &[
            OsStr::new("ingest"),
            OsStr::new("ecs"),
            sim.join("ecs").as_os_str(),
        ],
    );
    let iam = sim.join("iam/authorization-details.json");
    credtrail(
        &db,
        &[OsStr::new("ingest"), OsStr::new("iam"), iam.as_os_str()],
    );
    let trail = sim.join("cloudtrail");
    credtrail(
        &db,
        &[
            OsStr::new("ingest"),
            OsStr::new("cloudtrail"),
            OsStr::new("--no-progress"),
            trail.as_os_str(),
        ],
    );
    (sim, db)
}
