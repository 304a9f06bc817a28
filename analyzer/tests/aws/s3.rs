//! `credtrail ingest cloudtrail s3://…` and `ingest audit s3://…` against a real S3 server:
//! s3s-fs (the S3 protocol over a directory, SigV4 checked) on 127.0.0.1, installed by
//! `scripts/install-s3s-fs.sh` (run by `scripts/install-test-tools.sh`). Without it the tests
//! say so and stop, except under CI, where they fail.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use credtrail::store::Store;
use credtrail::{audit, cloudtrail};

use crate::s3s_fs::{self, ACCESS_KEY, SECRET_KEY};

fn credtrail(store: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = crate::credtrail_command(store, ACCESS_KEY, SECRET_KEY);
    cmd.args(args).env("AWS_REGION", "us-east-1");
    crate::output(&mut cmd)
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn event_ids(store: &Store) -> BTreeSet<String> {
    let mut stmt = store
        .conn()
        .prepare("SELECT event_id FROM cloudtrail_events")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// One CloudTrail file with `n` records whose IDs start with `tag`.
fn trail_file(tag: &str, n: usize) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"eventVersion":"1.09","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE",
                "arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333"},
                "eventTime":"2026-11-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets",
                "awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.0",
                "eventID":format!("{tag}-{i}"),"readOnly":true,"eventType":"AwsApiCall",
                "managementEvent":true,"recipientAccountId":"111122223333"})
        })
        .collect();
    gz(serde_json::json!({ "Records": records })
        .to_string()
        .as_bytes())
}

#[test]
fn cloudtrail_from_s3_matches_the_local_ingest() {
    let Some(bin) = s3s_fs::binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sim = tmp.path().join("sim");
    let st = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["simulate", "--hosts", "2", "--hours", "2", "--out"])
        .arg(&sim)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let trail = sim.join("cloudtrail");
    let account = std::fs::read_dir(trail.join("AWSLogs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();

    // The local ingest of the same files is the reference.
    let local = Store::open_in_memory().unwrap();
    let opts = cloudtrail::Options {
        threads: 2,
        progress: false,
        fetchers: 0,
    };
    let ls = cloudtrail::ingest_paths(&local, std::slice::from_ref(&trail), &opts).unwrap();
    assert!(ls.stored > 5_000, "{ls}");
    let local_ids = event_ids(&local);
    let local_rows = local
        .count("SELECT count(*) FROM cloudtrail_events")
        .unwrap();

    // The bucket: the same tree, plus a digest file, plus an older day that `--since` skips.
    let root = tmp.path().join("s3");
    let bucket = root.join("trail-bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    copy_tree(&trail, &bucket);
    let digest = bucket.join(format!(
        "AWSLogs/{account}/CloudTrail-Digest/us-east-1/2026/11/16/{account}_CloudTrail-Digest_us-east-1_trail_us-east-1_20261116T010000Z.json.gz"
    ));
    std::fs::create_dir_all(digest.parent().unwrap()).unwrap();
    std::fs::write(
        &digest,
        gz(br#"{"awsAccountId":"1","digestStartTime":"x"}"#),
    )
    .unwrap();
    let old_day = bucket.join(format!("AWSLogs/{account}/CloudTrail/us-east-1/2026/11/01"));
    std::fs::create_dir_all(&old_day).unwrap();
    std::fs::write(
        old_day.join(format!(
            "{account}_CloudTrail_us-east-1_20261101T1000Z_oldoldoldoldold1.json.gz"
        )),
        trail_file("old-day", 25),
    )
    .unwrap();
    let objects = files_under(&bucket).len();
    let server = s3s_fs::start(&bin, &root);
    let url = server.url();

    // With --since, from the bucket root: the old day is not even listed.
    let store_path = tmp.path().join("since.duckdb");
    let (ok, out, err) = credtrail(
        &store_path,
        &[
            "ingest",
            "cloudtrail",
            "s3://trail-bucket/",
            "--since",
            "2026-11-16",
            "--endpoint-url",
            &url,
            "--no-progress",
        ],
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    {
        let store = Store::open(&store_path).unwrap();
        assert_eq!(event_ids(&store), local_ids, "{out}");
        assert_eq!(
            store
                .count("SELECT count(*) FROM cloudtrail_events")
                .unwrap(),
            local_rows
        );
        assert_eq!(
            store
                .count(
                    "SELECT count(*) FROM cloudtrail_files WHERE source_file LIKE '%/2026/11/01/%'"
                )
                .unwrap(),
            0,
            "the day before --since was read: {out}"
        );
        assert_eq!(
            store
                .count("SELECT count(*) FROM cloudtrail_events WHERE source_file NOT LIKE 's3://trail-bucket/AWSLogs/%'")
                .unwrap(),
            0
        );
    }

    // Without --since: every object, the old day included; the digest skipped.
    let store_path = tmp.path().join("all.duckdb");
    let args = [
        "ingest",
        "cloudtrail",
        "s3://trail-bucket",
        "--endpoint-url",
        &url,
        "--no-progress",
        "--threads",
        "3",
        "--list-page-size",
        "7",
    ];
    let (ok, out, err) = credtrail(&store_path, &args);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    // Every object is a file read (event selectors among them) or a digest skipped, named.
    assert!(
        out.contains(&format!(
            "cloudtrail: {} files read, 1 skipped, 1 event selector documents",
            objects - 1
        )),
        "{out} ({objects} objects)"
    );
    let digest_key = digest.strip_prefix(&root).unwrap().display().to_string();
    assert!(
        out.lines()
            .any(|l| l == format!("skipped s3://{digest_key} (CloudTrail digest file)")),
        "{out}"
    );
    // Pages of 7 keys: the listing followed every continuation token.
    assert!(
        out.contains(&format!("; s3: {} list requests", objects.div_ceil(7))),
        "{out} ({objects} objects)"
    );
    let mut expected = local_ids.clone();
    expected.extend((0..25).map(|i| format!("old-day-{i}")));
    {
        let store = Store::open(&store_path).unwrap();
        assert_eq!(event_ids(&store), expected);
        assert_eq!(
            store
                .count("SELECT count(*) FROM cloudtrail_events")
                .unwrap(),
            local_rows + 25
        );
        assert_eq!(
            store
                .count("SELECT count(*) FROM cloudtrail_event_selectors")
                .unwrap(),
            local
                .count("SELECT count(*) FROM cloudtrail_event_selectors")
                .unwrap()
        );
    }
    // A second run adds nothing.
    let (ok, out, err) = credtrail(&store_path, &args);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    assert!(out.contains(" 0 new, "), "{out}");
    let store = Store::open(&store_path).unwrap();
    assert_eq!(
        store
            .count("SELECT count(*) FROM cloudtrail_events")
            .unwrap(),
        local_rows + 25
    );
}

#[test]
fn audit_segments_from_s3_match_the_local_ingest() {
    let Some(bin) = s3s_fs::binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let segments = crate::common::collector_segments(tmp.path(), 300);

    let local = Store::open_in_memory().unwrap();
    let ls = audit::ingest(
        &local,
        std::slice::from_ref(&segments),
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(ls.added, [300, 1, 0, 1], "{ls}");

    let root = tmp.path().join("s3");
    let prefix = root.join("segments-bucket/fleet/prod");
    std::fs::create_dir_all(&prefix).unwrap();
    copy_tree(&segments, &prefix);
    let server = s3s_fs::start(&bin, &root);
    let url = server.url();
    let store_path = tmp.path().join("a.duckdb");
    let args = [
        "ingest",
        "audit",
        "s3://segments-bucket/fleet/prod/",
        "--endpoint-url",
        &url,
    ];
    let (ok, out, err) = credtrail(&store_path, &args);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    assert!(
        out.contains(&format!(
            "audit: {} segment files, 0 raw files; 300 credential requests, 1 rejected lines",
            ls.segment_files
        )),
        "{out}"
    );
    let cols = "host, source_id, byte_offset, line_len, event_time, status, source_ip, request_path, user_agent, task_arn";
    let rows = |s: &Store| -> BTreeSet<String> {
        let mut stmt = s
            .conn()
            .prepare(&format!(
                "SELECT concat_ws('|', {cols}) FROM credential_requests"
            ))
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    {
        let store = Store::open(&store_path).unwrap();
        assert_eq!(rows(&store), rows(&local));
        assert_eq!(
            store.count("SELECT count(*) FROM rejected_lines").unwrap(),
            1
        );
    }
    let (ok, out, err) = credtrail(&store_path, &args);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    assert!(
        out.contains("0 credential requests, 0 rejected lines, 0 inventory rows added"),
        "{out}"
    );
}

/// Copies a collector's segments directory into the layout the collector ships to S3
/// (`<table>/cluster=<cluster>/date=…/…`), with every `date=` folder renamed to `date`.
fn ship_layout(segments: &Path, to: &Path, cluster: &str, date: &str) {
    for f in files_under(segments) {
        let rel = f.strip_prefix(segments).unwrap();
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        if !parts.last().unwrap().ends_with(".parquet") {
            continue;
        }
        parts.insert(1, format!("cluster={cluster}"));
        for p in parts.iter_mut() {
            if p.starts_with("date=") {
                *p = format!("date={date}");
            }
        }
        let dst = parts.iter().fold(to.to_path_buf(), |d, p| d.join(p));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&f, dst).unwrap();
    }
}

#[test]
fn audit_since_lists_only_the_date_partitions_it_needs() {
    let Some(bin) = s3s_fs::binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let segments = crate::common::collector_segments(tmp.path(), 300);
    let files = files_under(&segments)
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .count();
    let root = tmp.path().join("s3");
    let prefix = root.join("segments-bucket/fleet");
    // The same rows twice: once in this year's partitions, once in an old one.
    ship_layout(&segments, &prefix, "prod", "2026-11-20");
    ship_layout(&segments, &prefix, "prod", "2025-01-01");
    let server = s3s_fs::start(&bin, &root);
    let store_path = tmp.path().join("a.duckdb");
    let url = server.url();
    let args = [
        "ingest",
        "audit",
        "s3://segments-bucket/fleet/",
        "--endpoint-url",
        &url,
        "--since",
        "2026-11-01",
    ];
    let (ok, out, err) = credtrail(&store_path, &args);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    assert!(
        out.contains(&format!(
            "audit: {files} segment files, 0 raw files; 300 credential requests, 1 rejected lines"
        )),
        "only the partitions from --since on are read: {out}"
    );
    // Without --since, both copies are read (and the second adds nothing).
    let (ok, out, err) = credtrail(&tmp.path().join("b.duckdb"), &args[..5]);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains(&format!(
            "audit: {} segment files, 0 raw files; 300 credential requests, 1 rejected lines",
            2 * files
        )),
        "{out}"
    );
    // --since does not apply to local paths: said, not ignored.
    let local = segments.to_str().unwrap();
    let (ok, _, err) = credtrail(
        &tmp.path().join("c.duckdb"),
        &["ingest", "audit", local, "--since", "7d"],
    );
    assert!(!ok && err.contains("s3:// paths only"), "{err}");
}

#[test]
fn raw_audit_files_from_s3_are_recorded_under_their_urls() {
    let Some(bin) = s3s_fs::binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    let dir = root.join("audit-bucket/copied/ip-10-0-9-9/var/log/ecs");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for n in 0..3 {
        text.push_str(&crate::common::audit_line(n));
    }
    text.push_str("not an audit line\n");
    std::fs::write(dir.join("audit.log.2026-11-20-10"), &text).unwrap();
    std::fs::write(dir.join("audit.log"), "one line without a newline").unwrap();
    let server = s3s_fs::start(&bin, &root);
    let store_path = tmp.path().join("a.duckdb");
    let args = [
        "ingest",
        "audit",
        "s3://audit-bucket/copied/",
        "--endpoint-url",
        &server.url(),
    ];
    let (ok, out, err) = credtrail(&store_path, &args);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("0 segment files, 2 raw files; 3 credential requests, 2 rejected lines"),
        "{out}"
    );
    let store = Store::open(&store_path).unwrap();
    let names = |sql: &str| -> BTreeSet<String> {
        let mut stmt = store.conn().prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let base = "s3://audit-bucket/copied/ip-10-0-9-9/var/log/ecs";
    assert_eq!(
        names("SELECT DISTINCT source_file FROM credential_requests"),
        BTreeSet::from([format!("{base}/audit.log.2026-11-20-10")])
    );
    assert_eq!(
        names("SELECT DISTINCT source_file FROM rejected_lines"),
        BTreeSet::from([
            format!("{base}/audit.log"),
            format!("{base}/audit.log.2026-11-20-10")
        ])
    );
}
