//! The tailing scenarios of collector.md §"Scenario checklist", one test each (numbered as
//! there), driven through the library so each step is deterministic. The invariant checks run
//! after every scenario. Scenarios 18/19 (kill -9) are in `binary.rs`, against the real binary.

mod common;

use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::{Env, check_invariants, count, line, segment_numbers, sorted, stored_numbers};
use credtrail_collector::{Collector, Config};

fn open(config: &Config) -> Collector {
    Collector::open(config, Some(Duration::from_secs(5))).unwrap()
}

/// Reads and commits everything currently readable.
fn drain(c: &mut Collector) {
    c.drain(false).unwrap();
}

fn numbers(c: &Collector) -> Vec<u64> {
    stored_numbers(c.store().unwrap().conn())
}

fn invariants(c: &Collector) {
    check_invariants(c.store().unwrap().conn());
}

fn sql(c: &Collector, q: &str) -> i64 {
    count(c.store().unwrap().conn(), q)
}

#[test]
fn s01_partial_line_waits_for_its_newline() {
    let env = Env::new();
    let mut c = open(&env.config());
    let l = line(1);
    let (a, b) = l.split_at(40);
    env.append("audit.log", a.as_bytes());
    drain(&mut c);
    assert_eq!(numbers(&c), Vec::<u64>::new());
    env.append("audit.log", format!("{b}\n").as_bytes());
    drain(&mut c);
    assert_eq!(numbers(&c), vec![1]);
    invariants(&c);
}

#[test]
fn s02_partial_line_at_stop_is_completed_after_restart() {
    let env = Env::new();
    env.lines("audit.log", 0, 3);
    let l = line(3);
    let (a, b) = l.split_at(25);
    env.append("audit.log", a.as_bytes());
    let mut c = open(&env.config());
    drain(&mut c);
    c.finish();
    env.append("audit.log", format!("{b}\n").as_bytes());
    env.lines("audit.log", 4, 6);
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), (0..6).collect::<Vec<_>>());
    invariants(&c);
}

#[test]
fn s03_unterminated_last_line_of_a_rolled_file_is_flagged_incomplete() {
    let env = Env::new();
    env.lines("audit.log", 0, 2);
    let l = line(2);
    env.append("audit.log", &l.as_bytes()[..60]);
    let mut config = env.config();
    config.incomplete_grace_secs = 0;
    let mut c = open(&config);
    drain(&mut c);
    assert_eq!(
        numbers(&c),
        vec![0, 1],
        "the live file's partial line waits"
    );
    env.rename("audit.log", "audit.log.1");
    env.lines("audit.log", 10, 11);
    drain(&mut c);
    assert_eq!(numbers(&c), vec![0, 1, 10]);
    let incomplete = sql(
        &c,
        "SELECT count(*) FROM rejected_lines WHERE incomplete AND reason LIKE 'incomplete line%'",
    );
    assert_eq!(incomplete, 1, "the cut line is stored once, flagged");
    invariants(&c);
}

#[test]
fn s04_hourly_roll_while_running_loses_nothing() {
    let env = Env::new();
    let mut c = open(&env.config());
    let mut expected = Vec::new();
    for hour in 0..5u64 {
        expected.extend(env.lines("audit.log", hour * 100, hour * 100 + 50));
        drain(&mut c);
        // lines written just before the rename, never seen by a poll before it
        expected.extend(env.lines("audit.log", hour * 100 + 50, hour * 100 + 60));
        env.rename("audit.log", &format!("audit.log.2026-11-20-{hour:02}"));
    }
    expected.extend(env.lines("audit.log", 1000, 1005));
    drain(&mut c);
    assert_eq!(numbers(&c), sorted(expected));
    invariants(&c);
}

#[test]
fn s05_size_rolls_and_pre_1_36_dated_files() {
    let env = Env::new();
    let mut c = open(&env.config());
    let mut expected = Vec::new();
    // pre-1.36 agent: the live file itself carries the date suffix
    expected.extend(env.lines("audit.log.2026-11-19-22", 0, 20));
    drain(&mut c);
    expected.extend(env.lines("audit.log.2026-11-19-22", 20, 30));
    expected.extend(env.lines("audit.log.2026-11-19-23", 30, 40));
    drain(&mut c);
    // upgraded agent in size mode: audit.log rolls to audit.log.N, highest newest
    for n in 1..=4u64 {
        expected.extend(env.lines("audit.log", 100 * n, 100 * n + 25));
        if n % 2 == 0 {
            drain(&mut c);
        }
        env.rename("audit.log", &format!("audit.log.{n}"));
    }
    expected.extend(env.lines("audit.log", 900, 905));
    drain(&mut c);
    assert_eq!(numbers(&c), sorted(expected));
    invariants(&c);
    // the dated file that stopped growing is not mistaken for live forever: still one source each
    assert_eq!(
        sql(
            &c,
            "SELECT count(DISTINCT source_id) FROM credential_requests"
        ),
        7
    );
}

#[test]
fn s06_one_roll_while_stopped() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    c.finish();
    env.lines("audit.log", 10, 20);
    env.rename("audit.log", "audit.log.1");
    env.lines("audit.log", 20, 30);
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), (0..30).collect::<Vec<_>>());
    assert_eq!(sql(&c, "SELECT count(*) FROM ingest_gaps"), 0);
    invariants(&c);
}

#[test]
fn s07_more_rolls_than_kept_while_stopped_records_a_gap() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    env.rename("audit.log", "audit.log.1");
    env.lines("audit.log", 10, 20);
    let mut c = open(&env.config());
    drain(&mut c);
    c.finish();
    // while stopped: unread lines in the live file, 5 rolls, the oldest 4 deleted
    env.lines("audit.log", 20, 25);
    for n in 2..=6u64 {
        env.rename("audit.log", &format!("audit.log.{n}"));
        env.lines("audit.log", 100 * n, 100 * n + 5);
    }
    for n in 1..=5u64 {
        env.remove(&format!("audit.log.{n}"));
    }
    let mut c = open(&env.config());
    drain(&mut c);
    let mut expected: Vec<u64> = (0..20).collect();
    expected.extend(500..505); // audit.log.6
    expected.extend(600..605); // audit.log
    assert_eq!(
        numbers(&c),
        expected,
        "what is still there is read exactly once"
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'source_lost' AND from_offset > 0"
        ),
        1,
        "the live file known at stop is recorded lost from its committed offset"
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'missing_rolls' AND detail LIKE '%audit.log.2..audit.log.5%'"
        ),
        1,
        "rolls never seen are recorded"
    );
    invariants(&c);
}

#[test]
fn s07_hourly_rolls_more_than_kept_while_stopped_record_a_gap() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    c.finish();
    // while stopped: unread lines in the live file, 5 hourly rolls, the oldest 4 deleted
    env.lines("audit.log", 10, 15);
    for h in 1..=5u64 {
        env.rename("audit.log", &format!("audit.log.2026-11-20-{h:02}"));
        env.lines("audit.log", 100 * h, 100 * h + 5);
    }
    for h in 1..=4u64 {
        env.remove(&format!("audit.log.2026-11-20-{h:02}"));
    }
    let mut c = open(&env.config());
    drain(&mut c);
    let mut expected: Vec<u64> = (0..10).collect();
    expected.extend(400..405); // audit.log.2026-11-20-05
    expected.extend(500..505); // audit.log
    assert_eq!(
        numbers(&c),
        expected,
        "what is still there is read exactly once"
    );
    // Hourly names carry no index: the rolls never seen cannot be named, but the live file
    // known at stop is, from its committed offset on, with no known end.
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps
             WHERE kind = 'source_lost' AND from_offset > 0 AND to_offset IS NULL"
        ),
        1,
        "the loss is recorded"
    );
    invariants(&c);
}

#[test]
fn s08_rolled_file_deleted_with_unread_bytes_is_drained_from_the_open_fd() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    env.lines("audit.log", 10, 50);
    env.rename("audit.log", "audit.log.1");
    env.remove("audit.log.1");
    env.lines("audit.log", 50, 55);
    drain(&mut c);
    assert_eq!(numbers(&c), (0..55).collect::<Vec<_>>());
    assert_eq!(sql(&c, "SELECT count(*) FROM ingest_gaps"), 0);
    invariants(&c);
}

#[test]
fn s09_inode_reuse_reads_the_new_file_from_zero() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let mut c = open(&env.config());
    let mut expected = Vec::new();
    let mut reused = false;
    for round in 0..20u64 {
        expected.extend(env.lines("audit.log", round * 100, round * 100 + 10));
        drain(&mut c);
        let old = std::fs::metadata(env.path("audit.log")).unwrap().ino();
        env.remove("audit.log");
        drain(&mut c); // the collector sees it gone, fully read, and closes it
        expected.extend(env.lines("audit.log", round * 100 + 50, round * 100 + 60));
        let new = std::fs::metadata(env.path("audit.log")).unwrap().ino();
        drain(&mut c);
        if new == old {
            reused = true;
        }
    }
    assert_eq!(numbers(&c), sorted(expected));
    invariants(&c);
    eprintln!("inode reuse observed on this file system: {reused}");
}

#[test]
fn s09_inode_reused_while_stopped_is_read_from_zero() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    c.finish();
    // While stopped the file is deleted, and a new one gets its inode: files are created until
    // one does (names the collector ignores), then it becomes the new audit.log.
    let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    let old = ino(&env.path("audit.log"));
    env.remove("audit.log");
    let mut reused = None;
    let mut spares = Vec::new();
    for i in 0..1000 {
        let p = env.path(&format!("spare-{i}"));
        std::fs::write(&p, b"").unwrap();
        if ino(&p) == old {
            reused = Some(p);
            break;
        }
        spares.push(p);
    }
    for p in spares {
        std::fs::remove_file(p).unwrap();
    }
    let Some(reused) = reused else {
        eprintln!("skipped: this file system did not reuse the inode in 1,000 creations");
        return;
    };
    // Longer than what was read, so only the content tells it is another file.
    std::fs::rename(&reused, env.path("audit.log")).unwrap();
    env.lines("audit.log", 100, 120);
    assert_eq!(ino(&env.path("audit.log")), old);
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), (0..10).chain(100..120).collect::<Vec<_>>());
    assert_eq!(
        sql(
            &c,
            "SELECT count(DISTINCT source_id) FROM credential_requests"
        ),
        2
    );
    invariants(&c);
    c.finish();
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c).len(), 30, "a second restart adds nothing");
}

#[test]
fn s10_copytruncate_reads_new_bytes_once_and_logs_it() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    std::fs::OpenOptions::new()
        .write(true)
        .open(env.path("audit.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    env.lines("audit.log", 10, 13);
    drain(&mut c);
    assert_eq!(numbers(&c), (0..13).collect::<Vec<_>>());
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_events WHERE kind = 'truncated'"
        ),
        1
    );
    invariants(&c);
}

#[test]
fn s11_truncate_and_rewrite_to_a_larger_size_is_detected_by_content() {
    let env = Env::new();
    env.lines("audit.log", 0, 5);
    let mut c = open(&env.config());
    drain(&mut c);
    // between two polls: truncate and write more than before
    let mut body = Vec::new();
    for n in 100..120 {
        body.extend_from_slice(line(n).as_bytes());
        body.push(b'\n');
    }
    std::fs::write(env.path("audit.log"), &body).unwrap();
    drain(&mut c);
    let mut expected: Vec<u64> = (0..5).collect();
    expected.extend(100..120);
    assert_eq!(numbers(&c), expected);
    invariants(&c);
}

#[test]
fn s11_rewrite_in_place_to_the_same_size_is_detected_by_content() {
    let env = Env::new();
    env.lines("audit.log", 10, 15);
    let mut c = open(&env.config());
    drain(&mut c);
    let size = std::fs::metadata(env.path("audit.log")).unwrap().len();
    // between two polls: the same number of bytes, other lines
    let body: String = (20..25).map(|n| format!("{}\n", line(n))).collect();
    assert_eq!(body.len() as u64, size);
    std::fs::OpenOptions::new()
        .write(true)
        .open(env.path("audit.log"))
        .unwrap()
        .write_all_at(body.as_bytes(), 0)
        .unwrap();
    drain(&mut c);
    assert_eq!(numbers(&c), (10..15).chain(20..25).collect::<Vec<_>>());
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_events WHERE kind = 'truncated'"
        ),
        1
    );
    invariants(&c);
}

#[test]
fn s31_an_unlistable_audit_directory_is_retried_not_fatal() {
    let env = Env::new();
    env.lines("audit.log", 0, 3);
    let mut c = open(&env.config());
    drain(&mut c);
    // The directory's name now names a file: listing it fails (ENOTDIR), even for root.
    let moved = env.tmp.path().join("ecs.moved");
    std::fs::rename(&env.audit, &moved).unwrap();
    std::fs::write(&env.audit, b"not a directory").unwrap();
    c.poll(true, true)
        .expect("a scan that fails is logged and retried");
    c.poll(true, true).unwrap();
    std::fs::remove_file(&env.audit).unwrap();
    std::fs::rename(&moved, &env.audit).unwrap();
    env.lines("audit.log", 3, 6);
    drain(&mut c);
    assert_eq!(numbers(&c), (0..6).collect::<Vec<_>>());
    assert_eq!(sql(&c, "SELECT count(*) FROM ingest_gaps"), 0);
    invariants(&c);
}

#[test]
fn the_invariant_check_fails_when_a_line_is_stored_under_two_sources() {
    let env = Env::new();
    env.lines("audit.log", 0, 5);
    let mut c = open(&env.config());
    drain(&mut c);
    invariants(&c);
    // The same rows again under a second source of the same file, each tiling it correctly.
    c.store()
        .unwrap()
        .conn()
        .execute_batch(
            "INSERT INTO request_sources SELECT id + 1000, host, source_file, source_id || '-again'
               FROM request_sources;
             INSERT INTO request_rows SELECT event_time, kind, task, address, source_port,
                    source + 1000, byte_offset, line_len, seq + 1000, incomplete, ingested_at,
                    truncated
               FROM request_rows;",
        )
        .unwrap();
    let conn = c.store().unwrap().conn();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_invariants(conn)));
    let message = caught.expect_err("doubled lines must fail the check");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("under two sources"), "{text}");
}

#[test]
fn s12_one_short_line_in_a_new_file_is_read_at_once() {
    let env = Env::new();
    let mut c = open(&env.config());
    env.append(
        "audit.log",
        b"2026-11-20T10:00:00Z 400 10.0.0.1:1 \"\" \"\" - \n",
    );
    drain(&mut c);
    assert_eq!(sql(&c, "SELECT count(*) FROM credential_requests"), 1);
    invariants(&c);
}

#[test]
fn s13_copy_with_an_identical_first_line_is_its_own_source_and_flagged() {
    let env = Env::new();
    env.lines("audit.log", 0, 5);
    env.rename("audit.log", "audit.log.1");
    env.lines("audit.log", 5, 6);
    let mut c = open(&env.config());
    drain(&mut c);
    std::fs::copy(env.path("audit.log.1"), env.path("audit.log.7")).unwrap();
    drain(&mut c);
    let mut expected: Vec<u64> = (0..6).collect();
    expected.extend(0..5);
    assert_eq!(
        numbers(&c),
        sorted(expected),
        "policy: a copy is ingested as its own source"
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_events WHERE kind = 'duplicate_fingerprint'"
        ),
        1,
        "and the copy is recorded, never merged silently"
    );
    invariants(&c);
}

#[test]
fn s14_ten_megabyte_line_is_stored_and_later_lines_still_read() {
    let env = Env::new();
    env.lines("audit.log", 0, 2);
    let mut big = vec![b'x'; 10 * 1024 * 1024];
    big.push(b'\n');
    env.append("audit.log", &big);
    env.lines("audit.log", 2, 4);
    let mut config = env.config();
    config.max_raw_bytes = 16 * 1024 * 1024;
    let mut c = open(&config);
    drain(&mut c);
    assert_eq!(numbers(&c), vec![0, 1, 2, 3]);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM rejected_lines WHERE octet_length(raw) = 10485760 AND line_len = 10485760 AND NOT truncated"
        ),
        1
    );
    invariants(&c);
    c.finish();

    // with a lower limit the line is truncated and flagged, its true length kept
    let env = Env::new();
    env.append("audit.log", &big);
    env.lines("audit.log", 5, 6);
    config = env.config();
    config.max_line_bytes = 1024 * 1024;
    config.max_raw_bytes = 16 * 1024 * 1024;
    let mut c = open(&config);
    drain(&mut c);
    assert_eq!(numbers(&c), vec![5]);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM rejected_lines WHERE octet_length(raw) = 1048576 AND line_len = 10485760 AND truncated"
        ),
        1
    );
    invariants(&c);
    c.finish();

    // by default the raw bytes kept of any line are bounded (64 KiB), the line still flagged
    let env = Env::new();
    env.append("audit.log", &big);
    env.lines("audit.log", 7, 8);
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), vec![7]);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM rejected_lines WHERE octet_length(raw) = 65536 AND line_len = 10485760 AND truncated"
        ),
        1
    );
    invariants(&c);
}

#[test]
fn s15_invalid_utf8_and_nul_keep_raw_bytes_and_are_counted() {
    let env = Env::new();
    let good = line(1);
    let bad = good
        .replace("aws-sdk-go-v2", "aws-sdk-\u{1}go")
        .into_bytes();
    let mut bad = bad;
    let at = bad.iter().position(|&b| b == 1).unwrap();
    bad[at] = 0xff; // invalid UTF-8 in the user agent
    let mut nul = line(2).into_bytes();
    let at = nul.windows(3).position(|w| w == b"sdk").unwrap();
    nul[at] = 0; // a NUL byte in the user agent
    let mut garbage = b"\xfe\xff not a line at all \x00".to_vec();
    for l in [&mut bad, &mut nul, &mut garbage] {
        l.push(b'\n');
        env.append("audit.log", l);
    }
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), vec![1, 2], "lossy lines are kept as requests");
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM credential_requests WHERE raw IS NOT NULL AND contains(user_agent, '\u{FFFD}')"
        ),
        2
    );
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM rejected_lines WHERE raw = '\\xFE\\xFF not a line at all \\x00'::BLOB"
        ),
        1,
        "unparseable bytes are stored exactly"
    );
    assert_eq!(sql(&c, "SELECT sum(lossy) FROM ingest_state"), 2);
    assert_eq!(sql(&c, "SELECT sum(rejected) FROM ingest_state"), 1);
    invariants(&c);
}

#[test]
fn s16_user_agent_with_quotes_and_spaces_does_not_shift_columns() {
    let env = Env::new();
    env.append(
        "audit.log",
        b"2026-11-20T10:00:00Z 200 172.17.0.5:4242 \"/v2/credentials\" \"evil \\\" agent\" - x\" arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef GetCredentials 2 prod arn:aws:ecs:us-east-1:111122223333:container-instance/prod/abc\n",
    );
    let mut c = open(&env.config());
    drain(&mut c);
    let conn = c.store().unwrap().conn();
    let (ua, arn, cluster, raw): (String, String, String, Vec<u8>) = conn
        .query_row(
            "SELECT user_agent, task_arn, cluster, raw FROM credential_requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(ua, "evil \\\" agent\" - x");
    assert_eq!(
        arn,
        "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef"
    );
    assert_eq!(cluster, "prod");
    assert!(
        raw.starts_with(b"2026-11-20T10:00:00Z 200"),
        "raw line kept"
    );
    invariants(&c);
}

#[test]
fn s17_identical_lines_in_the_same_second_are_two_rows() {
    let env = Env::new();
    let l = format!("{}\n", line(7));
    env.append("audit.log", l.as_bytes());
    env.append("audit.log", l.as_bytes());
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), vec![7, 7]);
    invariants(&c);
}

#[test]
fn s20_low_free_space_pauses_ingest_and_loses_nothing() {
    let env = Env::new();
    env.lines("audit.log", 0, 100);
    let mut config = env.config();
    config.min_free_mb = u64::MAX / (1024 * 1024); // more than any disk has: the guard trips
    let mut c = open(&config);
    c.poll(true, true).unwrap();
    assert!(c.paused());
    assert_eq!(sql(&c, "SELECT count(*) FROM credential_requests"), 0);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_state WHERE committed_offset > 0"
        ),
        0
    );
    c.finish();
    // space is back (a normal threshold): everything is there, once
    let mut c = open(&env.config());
    drain(&mut c);
    assert!(!c.paused());
    assert_eq!(numbers(&c), (0..100).collect::<Vec<_>>());
    invariants(&c);
}

#[test]
fn s20_real_enospc_on_a_small_tmpfs_resumes_when_space_frees() {
    // Needs a mount; skipped with a message where the sandbox forbids it.
    let env = Env::new();
    let small = env.tmp.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&small)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let filler = small.join("filler");
    let mut config = env.config();
    config.store = small.join("collector.duckdb");
    config.segments_dir = None;
    config.min_free_mb = 0; // no guard: hit the real ENOSPC
    config.batch_rows = 2000;
    let mut c = open(&config);
    let free = credtrail_collector::sys::available_bytes(&small).unwrap();
    std::fs::write(&filler, vec![1u8; (free - 256 * 1024) as usize]).unwrap();
    let expected = env.lines("audit.log", 0, 50_000);
    let first = c.drain(false);
    assert!(first.is_err(), "the file system should have filled up");
    eprintln!("while full: {:#}", first.unwrap_err());
    std::fs::remove_file(&filler).unwrap();
    for attempt in 0..50 {
        match c.drain(false) {
            Ok(()) => break,
            Err(e) => eprintln!("retry {attempt}: {e:#}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    common::assert_same_lines(&numbers(&c), &expected);
    invariants(&c);
}

#[test]
fn s20_failing_store_writes_keep_the_checkpoint_and_resume() {
    // A write error in the store's transaction, as a full disk gives (injected at the store).
    let env = Env::new();
    let expected = env.lines("audit.log", 0, 20_000);
    let mut config = env.config();
    config.batch_rows = 2000;
    let mut c = open(&config);
    credtrail_collector::fault::fail_commits(&config.store, 3);
    for _ in 0..3 {
        assert!(c.drain(false).is_err(), "the commit fails");
        assert_eq!(sql(&c, "SELECT count(*) FROM credential_requests"), 0);
        assert_eq!(
            sql(
                &c,
                "SELECT count(*) FROM ingest_state WHERE committed_offset > 0"
            ),
            0,
            "the checkpoint did not advance"
        );
    }
    drain(&mut c);
    common::assert_same_lines(&numbers(&c), &expected);
    invariants(&c);
}

#[test]
fn s21_locked_store_backs_off_and_holds_files() {
    let env = Env::new();
    std::fs::create_dir_all(env.store.parent().unwrap()).unwrap();
    // Another process (this test binary, re-run as a helper) holds DuckDB's lock on the store.
    let mut holder = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_store_lock",
            "--ignored",
            "--nocapture",
        ])
        .env("CREDTRAIL_HOLD_STORE", &env.store)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut got = String::new();
    while !got.contains("HOLDING") {
        let mut l = String::new();
        if std::io::BufRead::read_line(&mut out, &mut l).unwrap() == 0 {
            panic!("helper exited before locking: {got}");
        }
        got.push_str(&l);
    }
    env.lines("audit.log", 0, 10);
    env.rename("audit.log", "audit.log.1");
    env.lines("audit.log", 10, 20);
    let config = env.config();
    let opener =
        std::thread::spawn(move || Collector::open(&config, Some(Duration::from_secs(60))));
    std::thread::sleep(Duration::from_millis(800));
    // While the collector waits, the roll is deleted: it must still be read from a held fd.
    env.remove("audit.log.1");
    drop(holder.stdin.take()); // release the lock
    holder.wait().unwrap();
    let mut c = opener.join().unwrap().unwrap();
    drain(&mut c);
    assert_eq!(numbers(&c), (0..20).collect::<Vec<_>>());
    invariants(&c);
}

/// Not a test: `s21` runs this in a child process to hold the store's DuckDB lock.
#[test]
#[ignore = "helper process for s21"]
fn helper_hold_store_lock() {
    let Some(path) = std::env::var_os("CREDTRAIL_HOLD_STORE") else {
        return;
    };
    let conn = duckdb::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS x (a INTEGER)")
        .unwrap();
    println!("HOLDING");
    let mut sink = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
}

#[test]
fn s22_graceful_stop_commits_the_batch_in_flight() {
    let env = Env::new();
    let mut config = env.config();
    config.commit_interval_ms = 3_600_000; // nothing would be committed by time alone
    config.tick_ms = 20;
    let (tx, rx) = std::sync::mpsc::channel();
    let run_config = config.clone();
    let tx2 = tx.clone();
    let handle = std::thread::spawn(move || credtrail_collector::follow(&run_config, tx2, rx));
    env.lines("audit.log", 0, 500);
    std::thread::sleep(Duration::from_millis(300));
    tx.send(credtrail_collector::Wake::Shutdown).unwrap();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.lines, 500);
    let c = open(&config);
    assert_eq!(numbers(&c), (0..500).collect::<Vec<_>>());
    invariants(&c);
    assert_eq!(segment_numbers(&env.segments), (0..500).collect::<Vec<_>>());
}

#[test]
fn s23_burst_of_300_mb_written_and_rolled_loses_nothing() {
    let env = Env::new();
    let mut c = open(&env.config());
    // ~330 bytes a line, 5 MB rolls as in size mode: 60 rolls within one poll interval
    let per_roll = 5_000_000 / (line(0).len() as u64 + 1);
    let mut n = 0u64;
    for roll in 1..=60u64 {
        env.lines("audit.log", n, n + per_roll);
        n += per_roll;
        env.rename("audit.log", &format!("audit.log.{roll}"));
    }
    env.lines("audit.log", n, n + 10);
    n += 10;
    drain(&mut c);
    let stored = numbers(&c);
    assert_eq!(stored.len() as u64, n);
    assert_eq!(stored, (0..n).collect::<Vec<_>>());
    invariants(&c);
}

#[test]
fn s23_burst_with_old_rolls_deleted_reads_what_was_held_and_records_the_rest() {
    let env = Env::new();
    let mut c = open(&env.config());
    // 1 MB size-mode rolls, the agent keeping 4; the collector scans every 7 rolls.
    let per_roll = 1_000_000 / (line(0).len() as u64 + 1);
    let max_rolls = 4u64;
    let mut n = 0u64;
    let mut expected = Vec::new();
    let mut held = std::collections::BTreeSet::new();
    let mut lost = 0u64;
    for roll in 1..=40u64 {
        env.lines("audit.log", n, n + per_roll);
        n += per_roll;
        env.rename("audit.log", &format!("audit.log.{roll}"));
        if roll > max_rolls {
            let old = roll - max_rolls;
            env.remove(&format!("audit.log.{old}"));
            if held.contains(&old) {
                // open in the collector: drained from its descriptor
                expected.extend((old - 1) * per_roll..old * per_roll);
            } else {
                lost += per_roll;
            }
        }
        if roll % 7 == 0 {
            c.poll(true, false).unwrap();
            held.extend(roll.saturating_sub(max_rolls) + 1..=roll);
        }
    }
    for roll in 40 - max_rolls + 1..=40 {
        expected.extend((roll - 1) * per_roll..roll * per_roll);
    }
    expected.extend(env.lines("audit.log", n, n + 10));
    drain(&mut c);
    common::assert_same_lines(&numbers(&c), &sorted(expected.clone()));
    assert!(lost > 0, "the test deletes rolls never seen");
    assert_eq!(expected.len() as u64 + lost, n + 10);
    assert!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'missing_rolls'"
        ) > 0,
        "rolls deleted before they were seen are recorded"
    );
    invariants(&c);
}

#[test]
fn s24_clock_step_back_rename_over_a_roll_with_unread_bytes() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    env.lines("audit.log", 10, 20); // unread when the roll happens
    env.rename("audit.log", "audit.log.2026-11-20-10");
    env.lines("audit.log", 20, 30);
    drain(&mut c);
    env.lines("audit.log", 30, 40); // unread
    // the clock stepped back an hour: the agent's rename replaces the existing roll
    env.rename("audit.log.2026-11-20-10", "audit.log.2026-11-20-09");
    env.lines("audit.log.2026-11-20-09", 40, 45); // the replaced roll had unread bytes too
    env.rename("audit.log", "audit.log.2026-11-20-09");
    env.lines("audit.log", 50, 55);
    drain(&mut c);
    assert_eq!(numbers(&c), (0..45).chain(50..55).collect::<Vec<_>>());
    invariants(&c);
}

#[test]
fn s25_three_quiet_hours_then_a_late_roll() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let three_hours_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(env.path("audit.log"))
        .unwrap()
        .set_modified(three_hours_ago)
        .unwrap();
    let mut c = open(&env.config());
    drain(&mut c);
    env.lines("audit.log", 10, 12);
    env.rename("audit.log", "audit.log.2026-11-20-07");
    env.lines("audit.log", 12, 14);
    drain(&mut c);
    assert_eq!(numbers(&c), (0..14).collect::<Vec<_>>());
    invariants(&c);
}

#[test]
fn s26_s27_without_notifications_the_rescan_finds_everything() {
    let env = Env::new();
    let mut config = env.config();
    config.notify = false; // as on NFS/overlay, or after an inotify queue overflow
    config.tick_ms = 20;
    config.rescan_ms = 50;
    config.commit_interval_ms = 50;
    let (tx, rx) = std::sync::mpsc::channel();
    let run_config = config.clone();
    let tx2 = tx.clone();
    let handle = std::thread::spawn(move || credtrail_collector::follow(&run_config, tx2, rx));
    let mut expected = Vec::new();
    for roll in 1..=5u64 {
        expected.extend(env.lines("audit.log", roll * 100, roll * 100 + 20));
        std::thread::sleep(Duration::from_millis(30));
        env.rename("audit.log", &format!("audit.log.{roll}"));
    }
    expected.extend(env.lines("audit.log", 0, 5));
    std::thread::sleep(Duration::from_millis(500));
    tx.send(credtrail_collector::Wake::Shutdown).unwrap();
    handle.join().unwrap().unwrap();
    let c = open(&config);
    assert_eq!(numbers(&c), sorted(expected));
    invariants(&c);
}

#[test]
fn s26_a_notification_queue_overflow_wakes_a_rescan_that_finds_everything() {
    // Files created while the collector runs are found only by a rescan. Here the periodic
    // rescan is an hour away, so the one wake-up is what an inotify queue overflow becomes (one
    // event standing for every lost one, notify's `Rescan` flag, sent on as `Wake::Fs`): it
    // alone must find 30 rolls and the live file.
    let env = Env::new();
    let mut config = env.config();
    config.notify = false; // the test delivers the overflow
    config.tick_ms = 50;
    config.rescan_ms = 3_600_000;
    config.heartbeat_ms = 3_600_000;
    config.commit_interval_ms = 20;
    config.segment_secs = 1;
    let (tx, rx) = std::sync::mpsc::channel();
    let run_config = config.clone();
    let tx2 = tx.clone();
    let handle = std::thread::spawn(move || credtrail_collector::follow(&run_config, tx2, rx));
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        for _ in 0..1200 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} never happened");
    };
    // Running: its first coverage row is published.
    wait_for("the first publication", &|| {
        !credtrail_collector::segment::files_of(&env.segments, "collector_coverage").is_empty()
    });
    let mut expected = Vec::new();
    for roll in 1..=30u64 {
        expected.extend(env.lines("audit.log", roll * 100, roll * 100 + 10));
        env.rename("audit.log", &format!("audit.log.{roll}"));
    }
    expected.extend(env.lines("audit.log", 0, 5));
    tx.send(credtrail_collector::Wake::Fs).unwrap();
    let expected = sorted(expected);
    wait_for("publication of every line", &|| {
        segment_numbers(&env.segments) == expected
    });
    tx.send(credtrail_collector::Wake::Shutdown).unwrap();
    handle.join().unwrap().unwrap();
    let c = open(&config);
    assert_eq!(numbers(&c), expected);
    invariants(&c);
}

#[test]
fn s28_second_instance_refuses() {
    let env = Env::new();
    let c = open(&env.config());
    let err = Collector::open(&env.config(), Some(Duration::from_secs(1)))
        .err()
        .expect("second instance must refuse");
    assert!(
        err.downcast_ref::<credtrail_collector::AlreadyRunning>()
            .is_some()
    );
    assert!(err.to_string().contains("already running"), "{err}");
    drop(c);
}

#[test]
fn s28_lock_let_go_within_a_moment_is_taken() {
    // A predecessor still exiting, or a spawned child's copy of the descriptor until its exec,
    // holds the lock for a moment after its owner let go: that is waited out.
    let env = Env::new();
    std::fs::create_dir_all(env.store.parent().unwrap()).unwrap();
    let mut name = env.store.clone().into_os_string();
    name.push(".lock");
    let other = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(std::path::PathBuf::from(name))
        .unwrap();
    other.lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(other);
    });
    let c = Collector::open(&env.config(), Some(Duration::from_secs(1)));
    release.join().unwrap();
    let mut c = c.expect("a lock let go after 300 ms is taken");
    env.lines("audit.log", 0, 3);
    drain(&mut c);
    assert_eq!(numbers(&c), vec![0, 1, 2]);
}

#[test]
fn s29_state_of_deleted_files_is_forgotten_after_commit() {
    let env = Env::new();
    let mut c = open(&env.config());
    for n in 1..=40u64 {
        env.lines("audit.log", n * 10, n * 10 + 3);
        env.rename("audit.log", &format!("audit.log.{n}"));
        if n > 3 {
            env.remove(&format!("audit.log.{}", n - 3));
        }
        drain(&mut c);
    }
    drain(&mut c);
    let present = std::fs::read_dir(&env.audit).unwrap().count() as i64;
    assert!(sql(&c, "SELECT count(*) FROM ingest_state") <= present);
    assert_eq!(numbers(&c).len(), 120);
    invariants(&c);
}

#[test]
fn s30_backlog_of_24_rolls_is_read_in_roll_order() {
    let env = Env::new();
    for n in 1..=24u64 {
        env.lines("audit.log", n * 100, n * 100 + 5);
        env.rename("audit.log", &format!("audit.log.{n}"));
    }
    env.lines("audit.log", 9000, 9005);
    let mut c = open(&env.config());
    drain(&mut c);
    let conn = c.store().unwrap().conn();
    let mut stmt = conn
        .prepare("SELECT CAST(regexp_extract(user_agent, 'n=(\\d+)$', 1) AS UBIGINT) FROM credential_requests ORDER BY seq")
        .unwrap();
    let by_seq: Vec<u64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected: Vec<u64> = (1..=24u64).flat_map(|n| n * 100..n * 100 + 5).collect();
    expected.extend(9000..9005);
    assert_eq!(by_seq, expected, "ingest order is roll order, then offset");
    invariants(&c);
}

#[test]
fn s31_unreadable_file_is_reported_and_retried() {
    let env = Env::new();
    env.lines("audit.log", 0, 3);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        // root reads a 0600 file anyway: a symlink loop gives the open error instead
        std::os::unix::fs::symlink("audit.log.5", env.path("audit.log.5")).unwrap();
    } else {
        env.lines("audit.log.5", 50, 53);
        std::fs::set_permissions(
            env.path("audit.log.5"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
    }
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(numbers(&c), vec![0, 1, 2]);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_events WHERE kind = 'unreadable'"
        ),
        1
    );
    // fixed: the next scan reads it
    std::fs::remove_file(env.path("audit.log.5")).unwrap();
    env.lines("audit.log.5", 50, 53);
    drain(&mut c);
    assert_eq!(numbers(&c), vec![0, 1, 2, 50, 51, 52]);
    invariants(&c);
}

#[test]
fn restart_after_everything_adds_nothing_and_segments_match() {
    let env = Env::new();
    env.lines("audit.log", 0, 50);
    env.rename("audit.log", "audit.log.1");
    env.lines("audit.log", 50, 80);
    for _ in 0..3 {
        let mut c = open(&env.config());
        drain(&mut c);
        c.publish().unwrap();
        assert_eq!(numbers(&c), (0..80).collect::<Vec<_>>());
        invariants(&c);
        c.finish();
    }
    assert_eq!(segment_numbers(&env.segments), (0..80).collect::<Vec<_>>());
}

#[test]
fn retention_prunes_only_published_rows_and_never_reuses_a_seq() {
    let env = Env::new();
    env.lines("audit.log", 0, 10); // event times in 2026-11-20: older than one day
    let mut config = env.config();
    config.retain_days = 1;
    let mut c = open(&config);
    drain(&mut c);
    c.prune();
    assert_eq!(numbers(&c).len(), 10, "unpublished rows are never pruned");
    c.publish().unwrap();
    c.prune();
    assert_eq!(sql(&c, "SELECT count(*) FROM credential_requests"), 0);
    assert_eq!(
        sql(
            &c,
            "SELECT (SELECT count(*) FROM request_kinds) + (SELECT count(*) FROM request_tasks)
                  + (SELECT count(*) FROM request_addresses) + (SELECT count(*) FROM request_sources)"
        ),
        0,
        "dictionary entries no row uses are pruned too"
    );
    c.finish();
    let mut c = open(&config);
    env.lines("audit.log", 10, 20);
    drain(&mut c);
    assert!(
        sql(&c, "SELECT min(seq) FROM credential_requests") > 10,
        "seq continues after pruning"
    );
    c.publish().unwrap();
    c.finish();
    assert_eq!(segment_numbers(&env.segments), (0..20).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Coverage (detections.md, Terms: "covered"): `collector_coverage` intervals.

/// (run_id, interval_no, covered_from, covered_until as µs) of every coverage row, in order.
fn coverage(c: &Collector) -> Vec<(String, i32, i64, i64)> {
    let conn = c.store().unwrap().conn();
    let mut stmt = conn
        .prepare(
            "SELECT run_id, interval_no, epoch_us(covered_from), epoch_us(covered_until)
             FROM collector_coverage ORDER BY run_started_at, interval_no",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The time of `line(n)`, in µs since the epoch.
fn line_us(n: u64) -> i64 {
    let base = 1_795_168_800i64; // 2026-11-20T10:00:00Z
    (base + (n % 3600) as i64) * 1_000_000
}

fn now_us() -> i64 {
    credtrail_collector::store::now_us()
}

#[test]
fn coverage_of_a_backlog_runs_from_its_first_line_to_the_read_end() {
    let env = Env::new();
    env.lines("audit.log.2026-11-20-09", 0, 10);
    env.lines("audit.log", 10, 20);
    let mut c = open(&env.config());
    let before = now_us();
    drain(&mut c);
    let after = now_us();
    let rows = coverage(&c);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (run, no, from, until) = rows[0].clone();
    assert_eq!((run.as_str(), no), (c.run_id(), 1));
    assert_eq!(from, line_us(0), "the first record of the earliest file");
    assert!(
        (before..=after).contains(&until),
        "until {until} is when the end was read ({before}..{after})"
    );
    // Nothing is written: the same interval is extended.
    c.poll(true, true).unwrap();
    let again = coverage(&c);
    assert_eq!(again.len(), 1);
    assert!(again[0].3 > until);
}

#[test]
fn coverage_heartbeats_while_the_log_is_quiet() {
    let env = Env::new();
    env.lines("audit.log", 0, 3);
    let mut config = env.config();
    config.heartbeat_ms = 50;
    config.commit_interval_ms = 3_600_000; // only the heartbeat commits
    let mut c = open(&config);
    c.poll(true, false).unwrap();
    let first = coverage(&c);
    assert_eq!(first.len(), 1);
    std::thread::sleep(Duration::from_millis(120));
    c.poll(false, false).unwrap();
    let second = coverage(&c);
    assert_eq!(second.len(), 1, "the interval is extended, not repeated");
    assert!(
        second[0].3 >= first[0].3 + 100_000,
        "a quiet log still moves covered_until: {first:?} → {second:?}"
    );
    let seqs = sql(&c, "SELECT count(DISTINCT seq) FROM collector_coverage");
    assert_eq!(seqs, 1, "one row, under its latest seq");
}

#[test]
fn coverage_restart_starts_a_new_interval_resuming_from_the_last_line_read() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    let first_run = c.run_id().to_string();
    c.finish();
    env.lines("audit.log", 10, 20);
    let mut c = open(&env.config());
    drain(&mut c);
    let rows = coverage(&c);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, first_run);
    assert_eq!(rows[1].0, c.run_id());
    assert_ne!(rows[0].0, rows[1].0);
    assert_eq!(rows[0].2, line_us(0));
    assert_eq!(
        rows[1].2,
        line_us(9),
        "the resumed file was read on from its last line read before"
    );
    invariants(&c);
}

#[test]
fn coverage_is_split_by_missing_rolls() {
    let env = Env::new();
    env.lines("audit.log.1", 0, 10);
    // audit.log.2 was deleted before anyone read it
    env.lines("audit.log.3", 100, 110);
    env.lines("audit.log", 200, 205);
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'missing_rolls'"
        ),
        1
    );
    let rows = coverage(&c);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].1, rows[0].2, rows[0].3),
        (1, line_us(0), line_us(9)),
        "before the gap: the first file's lines"
    );
    assert_eq!((rows[1].1, rows[1].2), (2, line_us(100)), "after it");
    assert!(rows[1].3 > line_us(204));
}

#[test]
fn coverage_after_files_lost_while_stopped_starts_at_the_first_new_line() {
    let env = Env::new();
    env.lines("audit.log", 0, 10);
    let mut c = open(&env.config());
    drain(&mut c);
    c.finish();
    // While stopped: the live file grows, rolls, and the roll is deleted unread.
    env.lines("audit.log", 10, 20);
    env.rename("audit.log", "audit.log.2026-11-20-10");
    env.remove("audit.log.2026-11-20-10");
    env.lines("audit.log", 300, 310);
    let mut c = open(&env.config());
    drain(&mut c);
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM ingest_gaps WHERE kind = 'source_lost'"
        ),
        1
    );
    let rows = coverage(&c);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].0, c.run_id());
    assert_eq!(
        rows[1].2,
        line_us(300),
        "lines 10..20 are lost: coverage resumes at the first line after them"
    );
}

#[test]
fn coverage_segments_publish_every_extension_of_an_interval() {
    let env = Env::new();
    env.lines("audit.log", 0, 5);
    let mut c = open(&env.config());
    drain(&mut c);
    c.publish().unwrap();
    c.poll(true, true).unwrap();
    c.publish().unwrap();
    let files = credtrail_collector::segment::files_of(&env.segments, "collector_coverage");
    assert_eq!(files.len(), 2, "{files:?}");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let from = common::published_table(&env.segments, "collector_coverage").unwrap();
    let (rows, intervals, until): (i64, i64, i64) = conn
        .query_row(
            &format!(
                "SELECT count(*), count(DISTINCT (run_id, interval_no)), epoch_us(max(covered_until))
                 FROM {from}"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rows, intervals), (2, 1), "one interval, published twice");
    assert_eq!(
        until,
        coverage(&c)[0].3,
        "the latest extension is published"
    );
}
