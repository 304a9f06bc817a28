//! The collector's configuration: the clap derive struct is the config (style.md #6).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Tails the ECS agent's credential audit log into a DuckDB store exactly once, records the
/// agent's task inventory, and publishes immutable Parquet segments.
#[derive(Debug, Clone, Parser)]
#[command(name = "credtrail-collector", version, about)]
pub struct Config {
    /// Directory holding `audit.log` and its rotated files.
    #[arg(long, env = "CREDTRAIL_AUDIT_DIR", default_value = "/var/log/ecs")]
    pub audit_dir: PathBuf,

    /// The collector's own DuckDB file (nothing else may open it while the collector runs).
    #[arg(
        long,
        env = "CREDTRAIL_STORE",
        default_value = "/var/lib/credtrail/collector.duckdb"
    )]
    pub store: PathBuf,

    /// Directory receiving immutable Parquet segments (Hive-partitioned by date and hour).
    #[arg(long, env = "CREDTRAIL_SEGMENTS_DIR")]
    pub segments_dir: Option<PathBuf>,

    /// Base URL of the ECS agent's introspection API; task inventory is not recorded without it.
    #[arg(long, env = "CREDTRAIL_AGENT_URL")]
    pub agent_url: Option<String>,

    /// Name recorded as `host` in every row (default: the machine's hostname).
    #[arg(long, env = "CREDTRAIL_HOST")]
    pub host: Option<String>,

    /// Ingest everything present, publish segments, and exit.
    #[arg(long, env = "CREDTRAIL_ONCE")]
    pub once: bool,

    /// Seconds between two polls of the agent's `/v1/tasks`.
    #[arg(long, env = "CREDTRAIL_AGENT_POLL_SECS", default_value_t = 30)]
    pub agent_poll_secs: u64,

    /// Longest time a read line waits before its batch is committed, in milliseconds.
    #[arg(long, env = "CREDTRAIL_COMMIT_INTERVAL_MS", default_value_t = 1000)]
    pub commit_interval_ms: u64,

    /// A batch is committed as soon as it holds this many rows. The default is DuckDB's row group
    /// size; lines of a real log (about 350 bytes) reach `--batch-bytes` first.
    #[arg(long, env = "CREDTRAIL_BATCH_ROWS", default_value_t = 122_880)]
    pub batch_rows: usize,

    /// A batch is committed as soon as it holds this many bytes of lines (its memory, whatever
    /// the length of the lines). Up to three batches are in memory during a backlog: one being
    /// read, one committing, and one being written to the segment spool.
    #[arg(long, env = "CREDTRAIL_BATCH_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub batch_bytes: usize,

    /// Text fields of a line (user agent, URL, ARNs) longer than this are stored cut to it, with
    /// the row flagged `truncated` and the whole line kept in `raw`.
    #[arg(long, env = "CREDTRAIL_MAX_FIELD_BYTES", default_value_t = 8 * 1024)]
    pub max_field_bytes: usize,

    /// Raw bytes kept of one line at most: the whole line where it is kept (invalid UTF-8, a
    /// quote in the user agent, a cut field, a line that does not parse) up to this length, else
    /// its first bytes, flagged `truncated`.
    #[arg(long, env = "CREDTRAIL_MAX_RAW_BYTES", default_value_t = 64 * 1024)]
    pub max_raw_bytes: usize,

    /// Memory DuckDB may use for the store, in MiB (it spills to disk beyond).
    #[arg(long, env = "CREDTRAIL_STORE_MEMORY_MB", default_value_t = crate::store::DEFAULT_MEMORY_MB)]
    pub store_memory_mb: u64,

    /// Bytes of encoded rows the segment files being written may buffer, in MiB.
    #[arg(long, env = "CREDTRAIL_SEGMENT_BUFFER_MB", default_value_t = 2)]
    pub segment_buffer_mb: usize,

    /// Milliseconds between two checks of the open files for new bytes.
    #[arg(long, env = "CREDTRAIL_TICK_MS", default_value_t = 500)]
    pub tick_ms: u64,

    /// Milliseconds between two full rescans of the directory (the source of truth;
    /// file-system notifications only wake the collector early).
    #[arg(long, env = "CREDTRAIL_RESCAN_MS", default_value_t = 5000)]
    pub rescan_ms: u64,

    /// Seconds between two segment publications in follow mode.
    #[arg(long, env = "CREDTRAIL_SEGMENT_SECS", default_value_t = 300)]
    pub segment_secs: u64,

    /// Milliseconds between two extensions of the current coverage interval
    /// (`collector_coverage`), also when no line is written.
    #[arg(long, env = "CREDTRAIL_HEARTBEAT_MS", default_value_t = 60_000)]
    pub heartbeat_ms: u64,

    /// A rolled file whose last line has no newline and that has not changed for this many
    /// seconds has that line stored, flagged `incomplete`.
    #[arg(long, env = "CREDTRAIL_INCOMPLETE_GRACE_SECS", default_value_t = 60)]
    pub incomplete_grace_secs: u64,

    /// Lines longer than this are not parsed: they are stored in `rejected_lines` (their first
    /// --max-raw-bytes), flagged `truncated`, with their true length (a real line is about 350
    /// bytes). Memory holds one such line at a time.
    #[arg(long, env = "CREDTRAIL_MAX_LINE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_line_bytes: usize,

    /// Ingest pauses while the store's file system has less free space than this.
    #[arg(long, env = "CREDTRAIL_MIN_FREE_MB", default_value_t = 64)]
    pub min_free_mb: u64,

    /// Rows older than this many days are removed from the store once they are published in
    /// segments (0 keeps everything; without --segments-dir nothing is removed).
    #[arg(long, env = "CREDTRAIL_RETAIN_DAYS", default_value_t = 7)]
    pub retain_days: u64,

    /// Ship every published segment to S3, exactly once: `s3://bucket/prefix/` (keys
    /// `<prefix><table>/cluster=<cluster>/date=…/hour=…/<segment>`). Segments are written to
    /// --segments-dir first (default: `segments` beside the store) and deleted there only once
    /// shipped. AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 override the endpoint.
    #[arg(long, env = "CREDTRAIL_S3_URL", value_parser = crate::ship::S3Url::parse)]
    pub s3_url: Option<crate::ship::S3Url>,

    /// The bucket's region (default: the AWS credential chain's region, else us-east-1).
    #[arg(long, env = "CREDTRAIL_S3_REGION")]
    pub s3_region: Option<String>,

    /// Path-style S3 requests (`https://host/bucket/key`), for S3-compatible servers (the
    /// variable takes 1/0, true/false, yes/no, on/off).
    #[arg(
        long,
        env = "CREDTRAIL_S3_FORCE_PATH_STYLE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub s3_force_path_style: bool,

    /// The ECS cluster in the S3 keys (default: the one the agent's metadata names).
    #[arg(long, env = "CREDTRAIL_CLUSTER")]
    pub cluster: Option<String>,

    /// Segments not yet shipped to S3 may use this many MiB on disk; at the bound no new
    /// segment is published (rows stay in the store, and are published once the backlog ships).
    #[arg(long, env = "CREDTRAIL_MAX_BACKLOG_MB", default_value_t = 512)]
    pub max_backlog_mb: u64,

    /// Segments of at least this many MiB are uploaded in parts of this size (at least 5).
    #[arg(long, env = "CREDTRAIL_S3_PART_MB", default_value_t = 16)]
    pub s3_part_mb: u64,

    /// Longest wait between two upload attempts while S3 fails, in seconds.
    #[arg(long, env = "CREDTRAIL_S3_RETRY_MAX_SECS", default_value_t = 60)]
    pub s3_retry_max_secs: u64,

    /// Watch the directory with inotify as a wake-up hint (polling always runs too).
    #[arg(long, env = "CREDTRAIL_NOTIFY", default_value_t = true, action = clap::ArgAction::Set)]
    pub notify: bool,
}

impl Config {
    /// A config with every default, for library callers (the demo, tests).
    pub fn new(audit_dir: impl Into<PathBuf>, store: impl Into<PathBuf>) -> Config {
        let mut config = Config::parse_from(["credtrail-collector"]);
        config.audit_dir = audit_dir.into();
        config.store = store.into();
        config.segments_dir = None;
        config.agent_url = None;
        config.host = None;
        config.once = false;
        config.s3_url = None;
        config.cluster = None;
        config
    }

    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
    }

    pub fn rescan_interval(&self) -> Duration {
        Duration::from_millis(self.rescan_ms.max(10))
    }

    pub fn segment_interval(&self) -> Duration {
        Duration::from_secs(self.segment_secs.max(1))
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(10))
    }

    pub fn incomplete_grace(&self) -> Duration {
        Duration::from_secs(self.incomplete_grace_secs)
    }

    /// The `host` provenance value: the flag, else the kernel's host name from `gethostname(2)`
    /// (the systemd unit's `ProcSubset=pid` hides `/proc/sys/kernel/hostname`, and
    /// `/etc/hostname` may name another machine in a container image).
    pub fn host_name(&self) -> String {
        if let Some(host) = &self.host {
            return host.clone();
        }
        crate::sys::hostname().unwrap_or_else(|| "unknown-host".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn library_defaults_do_not_read_the_environment_for_paths() {
        let c = Config::new("/tmp/a", "/tmp/b.duckdb");
        assert_eq!(c.audit_dir, PathBuf::from("/tmp/a"));
        assert_eq!(c.store, PathBuf::from("/tmp/b.duckdb"));
        assert!(c.segments_dir.is_none());
        assert!(!c.once);
    }
}
