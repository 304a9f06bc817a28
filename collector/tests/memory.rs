//! Memory bounded by configuration, not by input: hostile user agents through the real binary
//! within the memory `deploy/` gives it; and segments written from committed rows hold what the
//! store holds, whether they come from the spool or are read back from the store.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, check_invariants, count, line};
use duckdb::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_credtrail-collector");

/// The memory limit of the ECS daemon task (`memory`, MiB), which the systemd unit's
/// `MemoryMax=` repeats.
fn deploy_limit_bytes() -> u64 {
    let td: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/ecs/collector-daemon.task-definition.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mib = td["containerDefinitions"][0]["memory"].as_u64().unwrap();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/credtrail-collector.service"),
    )
    .unwrap();
    assert!(
        unit.lines().any(|l| l == format!("MemoryMax={mib}M")),
        "the unit's MemoryMax is the task's memory"
    );
    mib * 1024 * 1024
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A request line whose user agent is about 1 MB, different in every line.
fn hostile_line(n: u64) -> Vec<u8> {
    let normal = line(n);
    let ua = format!("evil n={n} {}", "A".repeat(1_000_000 + n as usize));
    normal
        .replacen("aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22", &ua, 1)
        .into_bytes()
}

#[test]
fn hostile_user_agents_are_stored_cut_and_published_within_the_deploy_memory() {
    let limit = deploy_limit_bytes();
    let env = Env::new();
    let lines = 250u64;
    let mut expected_bytes = Vec::new();
    {
        let mut buf = Vec::new();
        for n in 0..lines {
            let l = hostile_line(n);
            expected_bytes.push(l.len() as i64);
            buf.extend_from_slice(&l);
            buf.push(b'\n');
        }
        env.append("audit.log", &buf);
    }
    let mut child = Command::new(BIN)
        .arg("--audit-dir")
        .arg(&env.audit)
        .arg("--store")
        .arg(&env.store)
        .arg("--segments-dir")
        .arg(&env.segments)
        .args([
            "--host",
            "hostile",
            "--min-free-mb",
            "0",
            "--segment-secs",
            "1",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let probe = Connection::open_in_memory().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let published = loop {
        let n = common::published_table(&env.segments, "credential_requests")
            .map(|src| count(&probe, &format!("SELECT count(*) FROM {src}")))
            .unwrap_or(0);
        if n as u64 >= lines || Instant::now() > deadline {
            break n;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the collector exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let peak = proc_status_kb(pid, "VmHWM:") * 1024;
    assert!(common::sigterm(pid));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(published as u64, lines, "every line published");
    assert!(
        peak < limit,
        "peak RSS {} MB is above the deploy limit {} MB",
        peak / 1_000_000,
        limit / 1_000_000
    );

    let src = common::published_table(&env.segments, "credential_requests").unwrap();
    let cut = count(
        &probe,
        &format!(
            "SELECT count(*) FROM {src}
             WHERE truncated AND strlen(user_agent) <= 8192
               AND user_agent LIKE 'evil n=%' AND octet_length(raw) = 65536
               AND line_len > 1000000 AND task_arn LIKE 'arn:aws:ecs:%'"
        ),
    );
    assert_eq!(
        cut as u64, lines,
        "each row cut, flagged, parsed past the user agent, its first 64 KiB of raw bytes kept"
    );
    let conn = Connection::open(&env.store).unwrap();
    check_invariants(&conn);
    let lens: Vec<i64> = conn
        .prepare("SELECT line_len FROM credential_requests ORDER BY byte_offset")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lens, expected_bytes);
}

/// Rows of `table` in the segments that the store does not hold, plus the reverse (0 when the
/// two multisets are equal). `ingested_at` of coverage rows is when the interval was last
/// extended in both.
fn differences(conn: &Connection, segments: &Path, table: &str) -> i64 {
    let src = common::published_table(segments, table).unwrap();
    let names = |from: &str| -> Vec<String> {
        conn.prepare(&format!(
            "SELECT column_name FROM (DESCRIBE SELECT * FROM {from})"
        ))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert_eq!(names(&src), names(table), "{table}: the published columns");
    count(
        conn,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {src} EXCEPT ALL SELECT * FROM {table}))
                  + (SELECT count(*) FROM (SELECT * FROM {table} EXCEPT ALL SELECT * FROM {src}))"
        ),
    )
}

#[test]
fn segments_from_the_spool_and_read_back_from_the_store_hold_the_stored_rows() {
    let env = Env::new();
    // Every kind of row: plain, a quote in the user agent (raw kept), invalid UTF-8 (lossy), a
    // field over the limit (cut, raw kept), a line that does not parse (rejected).
    let special = |n: u64| -> Vec<u8> {
        match n % 5 {
            0 => line(n).into_bytes(),
            1 => line(n).replacen("os/linux", "say \"hi\" x", 1).into_bytes(),
            2 => {
                let mut l = line(n).into_bytes();
                let at = l.windows(8).position(|w| w == b"os/linux").unwrap();
                l[at] = 0xff;
                l
            }
            3 => line(n)
                .replacen("os/linux", &"U".repeat(20_000), 1)
                .into_bytes(),
            _ => format!("not an audit line {n}").into_bytes(),
        }
    };
    let write = |from: u64, to: u64| {
        let mut buf = Vec::new();
        for n in from..to {
            buf.extend_from_slice(&special(n));
            buf.push(b'\n');
        }
        env.append("audit.log", &buf);
    };
    // A first run without a segments directory: its rows are in no spool.
    write(0, 300);
    let mut config = env.config();
    config.segments_dir = None;
    config.max_field_bytes = 32 * 1024;
    credtrail_collector::run_once(&config).unwrap();
    // The next run publishes them read back from the store (in pieces: small read limits), and
    // its own rows from its spool, in batches of a few rows.
    write(300, 600);
    let mut config = env.config();
    config.batch_rows = 37;
    config.max_field_bytes = 4096;
    let mut c = credtrail_collector::Collector::open(&config, None).unwrap();
    c.drain(false).unwrap();
    assert!(c.publish().unwrap() > 0);
    let conn = c.store().unwrap().conn();
    for table in [
        "credential_requests",
        "rejected_lines",
        "collector_coverage",
    ] {
        assert_eq!(differences(conn, &env.segments, table), 0, "{table}");
    }
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM credential_requests WHERE truncated"
        ),
        60,
        "the second run cuts fields over 4096 bytes"
    );
    let whole = count(
        conn,
        "SELECT count(*) FROM credential_requests
         WHERE NOT truncated AND strlen(user_agent) > 20000",
    );
    assert_eq!(whole, 60, "the first run's limit is above 20,000 bytes");
    c.finish();
}
