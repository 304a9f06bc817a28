//! Shared by the collector's integration tests: audit lines with a unique number in the user
//! agent, a scratch directory, and the invariant checks of collector.md run after every scenario.
#![allow(dead_code)] // reason: each test binary uses a different subset of these helpers

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use credtrail_collector::Config;
use duckdb::Connection;

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub audit: PathBuf,
    pub store: PathBuf,
    pub segments: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let audit = tmp.path().join("ecs");
        std::fs::create_dir_all(&audit).unwrap();
        Env {
            store: tmp.path().join("state").join("collector.duckdb"),
            segments: tmp.path().join("segments"),
            audit,
            tmp,
        }
    }

    pub fn config(&self) -> Config {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut c = Config::new(&self.audit, &self.store);
        c.host = Some("test-host".into());
        c.segments_dir = Some(self.segments.clone());
        c.notify = false;
        c.min_free_mb = 0;
        c.incomplete_grace_secs = 3600;
        // The checks read the whole credential_requests view through the collector's own
        // connection (one process cannot open the file twice): give them the memory of a
        // query over every row, which the collector itself never runs.
        c.store_memory_mb = 512;
        c
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.audit.join(name)
    }

    pub fn append(&self, name: &str, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// Appends numbered lines `from..to` and returns them.
    pub fn lines(&self, name: &str, from: u64, to: u64) -> Vec<u64> {
        let mut buf = Vec::new();
        for n in from..to {
            buf.extend_from_slice(line(n).as_bytes());
            buf.push(b'\n');
        }
        self.append(name, &buf);
        (from..to).collect()
    }

    pub fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.path(from), self.path(to)).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.path(name)).unwrap();
    }
}

/// A v2 audit line whose user agent carries `n`.
pub fn line(n: u64) -> String {
    format!(
        "2026-11-20T10:{:02}:{:02}Z 200 172.17.0.{}:{} \"/v2/credentials\" \"aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22 n={n}\" \
         arn:aws:ecs:us-east-1:111122223333:task/prod/{:032x} GetCredentials 2 prod \
         arn:aws:ecs:us-east-1:111122223333:container-instance/prod/0f3c5a7d9b1e4c2a8d6f0e1b3a5c7d9e",
        (n / 60) % 60,
        n % 60,
        n % 250 + 2,
        30000 + n % 30000,
        n % 7
    )
}

/// The numbers of every stored request (by user agent), sorted: a multiset.
pub fn stored_numbers(conn: &Connection) -> Vec<u64> {
    let mut stmt = conn
        .prepare(
            "SELECT CAST(regexp_extract(user_agent, 'n=(\\d+)$', 1) AS UBIGINT)
             FROM credential_requests WHERE user_agent LIKE '%n=%' ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| r.get::<_, u64>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// collector.md's invariants: per source, rows tile the file from offset 0 with no hole and no
/// overlap (`byte_offset[i+1] = byte_offset[i] + len[i] + 1`), no (source, offset) twice, and the
/// checkpoint of every still-tracked source equals its last row's end.
pub fn check_invariants(conn: &Connection) {
    let dupes = count(
        conn,
        "SELECT count(*) FROM (
           SELECT source_id, byte_offset FROM (
             SELECT source_id, byte_offset FROM credential_requests
             UNION ALL SELECT source_id, byte_offset FROM rejected_lines)
           GROUP BY source_id, byte_offset HAVING count(*) > 1)",
    );
    assert_eq!(dupes, 0, "a (source_id, byte_offset) is stored twice");
    let unresolved = count(
        conn,
        "SELECT count(*) FROM request_rows r
         WHERE r.kind NOT IN (SELECT id FROM request_kinds)
            OR r.source NOT IN (SELECT id FROM request_sources)
            OR (r.task IS NOT NULL AND r.task NOT IN (SELECT id FROM request_tasks))
            OR (r.address IS NOT NULL AND r.address NOT IN (SELECT id FROM request_addresses))",
    );
    assert_eq!(
        unresolved, 0,
        "a row names a dictionary entry that is not stored"
    );
    let shared = count(
        conn,
        "SELECT count(*) FROM (
           SELECT id FROM request_kinds GROUP BY id HAVING count(*) > 1
           UNION ALL SELECT id FROM request_tasks GROUP BY id HAVING count(*) > 1
           UNION ALL SELECT id FROM request_addresses GROUP BY id HAVING count(*) > 1
           UNION ALL SELECT id FROM request_sources GROUP BY id HAVING count(*) > 1)",
    );
    assert_eq!(shared, 0, "a dictionary id names two values");
    // Across the sources of one file: the same bytes at the same place of the same file name
    // are one line, and a second source holding them stored it twice (a copy under another
    // name is its own file, and stays allowed).
    let doubled: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "WITH places AS (
                   SELECT source_file, byte_offset, line_len, source_id FROM credential_requests
                   UNION ALL SELECT source_file, byte_offset, line_len, source_id FROM rejected_lines),
                 shared AS (
                   SELECT source_file, byte_offset, line_len FROM places
                   GROUP BY ALL HAVING count(DISTINCT source_id) > 1)
                 SELECT source_file || ' @' || byte_offset || ' under ' || string_agg(DISTINCT source_id, ', ')
                 FROM (SELECT source_file, byte_offset, line_len, source_id,
                              coalesce(raw, encode(concat_ws('|', event_time, status, source_ip, source_port,
                                  request_path, user_agent, task_arn, event_type, cluster,
                                  container_instance_arn))) AS bytes
                       FROM credential_requests SEMI JOIN shared USING (source_file, byte_offset, line_len)
                       UNION ALL
                       SELECT source_file, byte_offset, line_len, source_id, raw
                       FROM rejected_lines SEMI JOIN shared USING (source_file, byte_offset, line_len))
                 GROUP BY source_file, byte_offset, line_len, bytes
                 HAVING count(DISTINCT source_id) > 1
                 ORDER BY 1 LIMIT 5",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        doubled.is_empty(),
        "the same line of a file is stored under two sources: {doubled:?}"
    );
    let mut stmt = conn
        .prepare(
            "SELECT source_id, byte_offset, line_len, incomplete FROM (
               SELECT source_id, byte_offset, line_len, incomplete FROM credential_requests
               UNION ALL SELECT source_id, byte_offset, line_len, incomplete FROM rejected_lines)
             ORDER BY source_id, byte_offset",
        )
        .unwrap();
    let rows: Vec<(String, i64, i64, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    for (source, offset, len, incomplete) in rows {
        let expected = ends.get(&source).copied().unwrap_or(0);
        assert_eq!(
            offset, expected,
            "source {source}: a row starts at {offset}, the previous one ended at {expected}"
        );
        ends.insert(source, offset + len + if incomplete { 0 } else { 1 });
    }
    let mut stmt = conn
        .prepare("SELECT source_id, committed_offset FROM ingest_state")
        .unwrap();
    let states: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (source, committed) in states {
        let end = ends.get(&source).copied().unwrap_or(0);
        assert_eq!(
            committed, end,
            "source {source}: checkpoint {committed} but rows end at {end}"
        );
    }
}

/// A `read_parquet(…)` over every published segment file of `table` under `segments`, for a
/// FROM clause; `None` when nothing is published.
pub fn published_table(segments: &Path, table: &str) -> Option<String> {
    read_parquet(&credtrail_collector::segment::files_of(segments, table))
}

/// A `read_parquet(…)` over `files`, for a FROM clause; `None` when there are none.
pub fn read_parquet(files: &[PathBuf]) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    let list = files
        .iter()
        .map(|f| format!("'{}'", f.display()))
        .collect::<Vec<_>>()
        .join(",");
    Some(format!("read_parquet([{list}], hive_partitioning = false)"))
}

/// Appends `bytes` to `path` in two writes, cut at `cut`, as a buffered writer may.
pub fn append_in_two_writes(path: &Path, bytes: &[u8], cut: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(&bytes[..cut]).unwrap();
    f.write_all(&bytes[cut..]).unwrap();
}

/// Sends SIGTERM to `pid`; true when `kill` succeeded.
pub fn sigterm(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success()
}

/// The numbers of every request across every published segment file, sorted: a multiset.
pub fn segment_numbers(segments: &Path) -> Vec<u64> {
    parquet_numbers(&credtrail_collector::segment::files_of(
        segments,
        "credential_requests",
    ))
}

/// The numbers of every request in the `credential_requests` Parquet files `files`, sorted.
pub fn parquet_numbers(files: &[PathBuf]) -> Vec<u64> {
    let Some(from) = read_parquet(files) else {
        return Vec::new();
    };
    let conn = Connection::open_in_memory().unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT CAST(regexp_extract(user_agent, 'n=(\\d+)$', 1) AS UBIGINT)
             FROM {from} WHERE user_agent LIKE '%n=%' ORDER BY 1"
        ))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, u64>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

/// Compares two multisets of line numbers; the message names what is missing and what is doubled.
pub fn assert_same_lines(stored: &[u64], expected: &[u64]) {
    if stored == expected {
        return;
    }
    let mut counts = BTreeMap::new();
    for s in stored {
        *counts.entry(*s).or_insert(0i64) += 1;
    }
    for e in expected {
        *counts.entry(*e).or_insert(0) -= 1;
    }
    let missing: Vec<u64> = counts
        .iter()
        .filter(|(_, c)| **c < 0)
        .map(|(n, _)| *n)
        .take(20)
        .collect();
    let extra: Vec<u64> = counts
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(n, _)| *n)
        .take(20)
        .collect();
    panic!(
        "{} stored, {} expected; first missing {missing:?}; first extra or doubled {extra:?}",
        stored.len(),
        expected.len()
    );
}
