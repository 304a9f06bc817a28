//! s3s-fs, a real S3 server over a directory (SigV4 and Content-MD5 checked), on 127.0.0.1 for
//! the tests that speak S3 (`collector/tests/ship.rs`, `analyzer/tests/aws/s3.rs`, which include
//! this file with `#[path]`). `scripts/install-s3s-fs.sh` installs it; without it the tests say
//! so and stop, except under CI, where they fail.

#![allow(dead_code)] // reason: each including test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The credentials the server accepts.
pub const ACCESS_KEY: &str = "AKIDLOCALS3TEST";
pub const SECRET_KEY: &str = "local-s3-test-secret";

/// The s3s-fs binary: `$CREDTRAIL_S3S_FS`, else where the install script puts it.
pub fn binary() -> Option<PathBuf> {
    let p = match std::env::var_os("CREDTRAIL_S3S_FS") {
        Some(p) => PathBuf::from(p),
        None => {
            let tools = std::env::var_os("CREDTRAIL_TOOLS").map_or_else(
                || {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/credtrail-tools")
                },
                PathBuf::from,
            );
            tools.join("bin/s3s-fs")
        }
    };
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} is not installed: run scripts/install-s3s-fs.sh (or scripts/install-test-tools.sh)",
        p.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("skipped: {msg}");
    None
}

/// A running server; stopped (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `root` (one directory per bucket) on 127.0.0.1, on a port the OS picks (read from the
/// server's log).
pub fn start(bin: &Path, root: &Path) -> Server {
    let mut child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .env("RUST_LOG", "s3s_fs=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("s3s-fs exited before it listened")
            .unwrap();
        if let Some(at) = line.find("server is running at ") {
            break line[at + "server is running at ".len()..]
                .trim()
                .trim_end_matches('/')
                .to_string();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    Server { child, port }
}
