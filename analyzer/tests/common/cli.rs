//! Runs the real `credtrail` binary on a store, as a person would; shared by the test binaries
//! that drive the CLI (`#[path = "common/cli.rs"] mod cli;`).

use std::ffi::OsStr;
use std::path::Path;
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
