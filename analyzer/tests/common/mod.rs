//! Inputs the ingest tests share: numbered audit-log lines, and a directory of collector segments
//! made by running the real collector over them.

use std::path::{Path, PathBuf};

/// The container instance the lines name.
pub const CI: &str =
    "arn:aws:ecs:us-east-1:111122223333:container-instance/prod/0f3c5a7d9b1e4c2a8d6f0e1b3a5c7d9e";

/// Audit line number `n` (its user agent carries `n`, so every line is distinct).
pub fn audit_line(n: u32) -> String {
    format!(
        "2026-11-20T10:{:02}:{:02}Z 200 172.17.0.5:{} \"/v2/credentials\" \"aws-sdk-go-v2/1.30.3 n={n}\" arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef GetCredentials 2 prod {CI}\n",
        n / 60 % 60,
        n % 60,
        30000 + n
    )
}

/// Writes `lines` audit lines and one unparseable line into `dir/ecs/audit.log`, runs the
/// collector once over them as host `ip-10-0-1-5`, and returns its segments directory.
pub fn collector_segments(dir: &Path, lines: u32) -> PathBuf {
    let audit_dir = dir.join("ecs");
    std::fs::create_dir_all(&audit_dir).unwrap();
    let mut text = String::new();
    for n in 0..lines {
        text.push_str(&audit_line(n));
    }
    text.push_str("garbage\n");
    std::fs::write(audit_dir.join("audit.log"), &text).unwrap();
    collect_once(dir)
}

/// Runs the collector once over `dir/ecs` (store `dir/collector.duckdb`, host `ip-10-0-1-5`)
/// and returns its segments directory, `dir/segments`.
pub fn collect_once(dir: &Path) -> PathBuf {
    let segments = dir.join("segments");
    let mut config =
        credtrail_collector::Config::new(dir.join("ecs"), dir.join("collector.duckdb"));
    config.host = Some("ip-10-0-1-5".into());
    config.segments_dir = Some(segments.clone());
    config.notify = false;
    config.min_free_mb = 0;
    credtrail_collector::run_once(&config).unwrap();
    segments
}
