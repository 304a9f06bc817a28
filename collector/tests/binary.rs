//! The real `credtrail-collector` binary: SIGKILL at random points while a writer appends and
//! rotates (collector.md scenarios 18 and 19), `--once` over a messy directory, a second
//! instance, and a clean SIGTERM stop.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{
    Env, append_in_two_writes, check_invariants, count, line, segment_numbers, sigterm, sorted,
    stored_numbers,
};

const BIN: &str = env!("CARGO_BIN_EXE_credtrail-collector");

fn collector(env: &Env, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--audit-dir")
        .arg(&env.audit)
        .arg("--store")
        .arg(&env.store)
        .arg("--segments-dir")
        .arg(&env.segments)
        .args(["--host", "kill-test", "--min-free-mb", "0"])
        .args(extra)
        .env("RUST_LOG", "warn");
    cmd
}

fn spawn_follow(env: &Env) -> Child {
    collector(
        env,
        &[
            "--tick-ms",
            "20",
            "--rescan-ms",
            "100",
            "--commit-interval-ms",
            "50",
            "--segment-secs",
            "1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let env = Env::new();
    let seed = 0x5eed_c011_ec70;
    eprintln!("seed {seed:#x}");
    let stop = Arc::new(AtomicBool::new(false));
    let size_mode = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, size_mode, written) = (stop.clone(), size_mode.clone(), written.clone());
        let audit = env.audit.clone();
        std::thread::spawn(move || {
            let mut rng = Lcg(seed ^ 0xabcdef);
            let mut n = 0u64;
            let mut hour = 0u64;
            let mut roll = 0u64;
            let mut since_roll = 0u64;
            let live = audit.join("audit.log");
            while !stop.load(Ordering::Relaxed) {
                let burst = 1 + rng.next(200);
                let mut buf = Vec::new();
                for _ in 0..burst {
                    buf.extend_from_slice(line(n).as_bytes());
                    buf.push(b'\n');
                    n += 1;
                }
                // sometimes a line is written in two pieces, as a buffered writer may
                let cut = if rng.next(4) == 0 {
                    rng.next(buf.len() as u64) as usize
                } else {
                    buf.len()
                };
                append_in_two_writes(&live, &buf, cut);
                written.store(n, Ordering::SeqCst);
                since_roll += burst;
                if since_roll > 1500 {
                    since_roll = 0;
                    let to = if size_mode.load(Ordering::Relaxed) {
                        roll += 1;
                        format!("audit.log.{roll}")
                    } else {
                        hour += 1;
                        format!("audit.log.2026-11-{:02}-{:02}", 1 + hour / 24, hour % 24)
                    };
                    std::fs::rename(&live, audit.join(to)).unwrap();
                }
                std::thread::sleep(Duration::from_millis(rng.next(8)));
            }
            n
        })
    };
    let mut rng = Lcg(seed);
    let kills = 60;
    for i in 0..kills {
        if i == kills / 2 {
            size_mode.store(true, Ordering::Relaxed); // the agent was upgraded to size mode
        }
        let mut child = spawn_follow(&env);
        std::thread::sleep(Duration::from_millis(80 + rng.next(500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let total = writer.join().unwrap();
    assert_eq!(total, written.load(Ordering::SeqCst));

    let out = collector(&env, &["--once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let conn = duckdb::Connection::open(&env.store).unwrap();
    let stored = stored_numbers(&conn);
    let expected: Vec<u64> = (0..total).collect();
    if stored != expected {
        let mut missing = Vec::new();
        let mut dupes = Vec::new();
        let mut counts = std::collections::BTreeMap::new();
        for s in &stored {
            *counts.entry(*s).or_insert(0) += 1;
        }
        for e in &expected {
            match counts.get(e) {
                None => missing.push(*e),
                Some(c) if *c > 1 => dupes.push(*e),
                _ => {}
            }
        }
        let kept = env.tmp.path().to_path_buf();
        std::mem::forget(env);
        panic!(
            "{} lines written, {} stored; missing {:?}; duplicated {:?}; files kept in {}",
            total,
            stored.len(),
            &missing[..missing.len().min(20)],
            &dupes[..dupes.len().min(20)],
            kept.display()
        );
    }
    check_invariants(&conn);
    assert_eq!(count(&conn, "SELECT count(*) FROM rejected_lines"), 0);
    drop(conn);
    assert_eq!(
        sorted(segment_numbers(&env.segments)),
        expected,
        "segments hold the same rows"
    );
    eprintln!("{kills} SIGKILLs, {total} lines, all stored exactly once");
}

/// Rolls of the writer below: each roll's lines, and whether the roll was deleted.
type Rolls = Vec<(std::ops::Range<u64>, bool)>;

#[test]
fn sigkill_during_checkpoint_and_while_rolls_are_deleted_stores_nothing_twice() {
    // Scenarios 18 and 19 with the agent's retention: the writer rolls hourly and keeps only 3
    // rolls, deleting older ones, also while the collector is dead. Every other run is killed as
    // soon as it logs its CHECKPOINT (after a SIGTERM; DuckDB's own checkpoints, when the WAL
    // grows, fall among the random kills of the other runs). Lines of deleted rolls may be lost
    // (and then a gap is recorded); no line may be stored twice or lost from a file still there.
    let env = Env::new();
    let seed = 0xc4ec_4901_u64;
    eprintln!("seed {seed:#x}");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let audit = env.audit.clone();
        std::thread::spawn(move || -> (u64, Rolls) {
            let mut rng = Lcg(seed);
            let (mut n, mut hour, mut roll_start) = (0u64, 0u64, 0u64);
            let mut rolls: Vec<(String, std::ops::Range<u64>, bool)> = Vec::new();
            let live = audit.join("audit.log");
            while !stop.load(Ordering::Relaxed) {
                let mut buf = Vec::new();
                for _ in 0..1 + rng.next(200) {
                    buf.extend_from_slice(line(n).as_bytes());
                    buf.push(b'\n');
                    n += 1;
                }
                write(&live, &buf);
                if n - roll_start > 2000 {
                    hour += 1;
                    let name = format!("audit.log.2026-11-{:02}-{:02}", 1 + hour / 24, hour % 24);
                    std::fs::rename(&live, audit.join(&name)).unwrap();
                    rolls.push((name, roll_start..n, false));
                    roll_start = n;
                    let kept = rolls.iter().filter(|r| !r.2).count();
                    if kept > 3 {
                        let oldest = rolls.iter_mut().find(|r| !r.2).unwrap();
                        std::fs::remove_file(audit.join(&oldest.0)).unwrap();
                        oldest.2 = true;
                    }
                }
                std::thread::sleep(Duration::from_millis(rng.next(8)));
            }
            (n, rolls.into_iter().map(|(_, r, d)| (r, d)).collect())
        })
    };
    let mut rng = Lcg(seed ^ 0x77);
    let mut at_checkpoint = 0;
    for round in 0..12 {
        let mut child = collector(
            &env,
            &[
                "--tick-ms",
                "20",
                "--rescan-ms",
                "100",
                "--commit-interval-ms",
                "50",
                "--segment-secs",
                "1",
            ],
        )
        .env("RUST_LOG", "warn,credtrail_collector::ingest=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for l in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(l) = l else { break };
                if l.contains("checkpoint: moving the WAL") {
                    let _ = tx.send(());
                }
            }
        });
        std::thread::sleep(Duration::from_millis(100 + rng.next(500)));
        if round % 2 == 0 {
            sigterm(child.id());
            if rx.recv_timeout(Duration::from_secs(60)).is_ok()
                && child.try_wait().unwrap().is_none()
            {
                at_checkpoint += 1;
            }
        }
        let _ = child.kill(); // SIGKILL (the process may have exited on its own)
        child.wait().unwrap();
        reader.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (total, rolls) = writer.join().unwrap();
    let out = collector(&env, &["--once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let conn = duckdb::Connection::open(&env.store).unwrap();
    let stored = stored_numbers(&conn);
    let mut seen = std::collections::BTreeSet::new();
    let twice: Vec<u64> = stored
        .iter()
        .copied()
        .filter(|n| !seen.insert(*n))
        .take(20)
        .collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let deleted = |n: u64| rolls.iter().any(|(r, d)| *d && r.contains(&n));
    let missing: Vec<u64> = (0..total).filter(|n| !seen.contains(n)).collect();
    let wrongly: Vec<u64> = missing
        .iter()
        .copied()
        .filter(|n| !deleted(*n))
        .take(20)
        .collect();
    assert!(
        wrongly.is_empty(),
        "missing though their file is still there: {wrongly:?}"
    );
    if !missing.is_empty() {
        assert!(
            count(&conn, "SELECT count(*) FROM ingest_gaps") > 0,
            "{} lines lost with deleted rolls, and no gap recorded",
            missing.len()
        );
    }
    check_invariants(&conn);
    drop(conn);
    assert_eq!(
        sorted(segment_numbers(&env.segments)),
        stored,
        "segments hold the same rows"
    );
    eprintln!(
        "{total} lines, {} lost with deleted rolls, {at_checkpoint} of 6 kills landed during the shutdown CHECKPOINT",
        missing.len()
    );
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn once_over_a_messy_directory_stores_every_complete_line_exactly_once() {
    let env = Env::new();
    let lines = |name: &str, from: u64, to: u64| env.lines(name, from, to);
    let mut expected = Vec::new();
    expected.extend(lines("audit.log.2026-11-20-08", 0, 100));
    expected.extend(lines("audit.log.2026-11-20-09", 100, 150));
    expected.extend(lines("audit.log.3", 200, 260));
    expected.extend(lines("audit.log.4", 300, 330));
    expected.extend(lines("audit.log", 400, 420));
    let extra: [&[u8]; 7] = [
        b"2019-02-05T23:37:54Z 400 10.0.100.189:33724 \"/v2/credentials\" \"aws-sdk-go/1.12.66 (go1.10.3; linux; amd64)\" - \n",
        b"2024-01-01T00:00:00Z 429 172.17.0.3:40000 \"/v3/0a1b2c/task\" \"Boto3/1.34.0 md/Botocore#1.34.0\" - \n",
        b"2021-09-22T16:33:35Z 200 [fe80::42:acff:fe11:2]:47066 \"/v2/credentials\" \"Zend_Http_Client\" arn:aws:ecs:eu-west-1:615847981820:task/prod-worker/8ee79724637f46d5ad9dc8fe9ef8e3fe GetCredentialsExecutionRole 2 prod-worker arn:aws:ecs:eu-west-1:615847981820:container-instance/prod-worker/10abe8e5f47b47c38f3f5f3e232422fd\n",
        b"this is not an audit line\n",
        b"2026-11-20T10:00:00Z 200 172.17.0.9:1 \"/v2/credentials\" \"bad \xff\xfe utf8\" arn:aws:ecs:us-east-1:111122223333:task/c/0123456789abcdef0123456789abcdef GetCredentials 2 c arn:aws:ecs:us-east-1:111122223333:container-instance/c/x\n",
        b"2016-07-13T16:11:53Z 200 172.17.0.5:52444 \"/v1/credentials\" \"python-requests/2.7.0 CPython/2.7.6 Linux/4.4.14-24.50.amzn1.x86_64\" arn:aws:ecs:us-east-1:111122223333:task/0b1c2d3e-1111-2222-3333-444455556666 GetCredentials 1 default arn:aws:ecs:us-east-1:111122223333:container-instance/abc\n",
        b"2026-11-20T10:00:01Z 503 - \"/v2/credentials\" \"\" - \n",
    ];
    for e in extra {
        write(&env.path("audit.log.3"), e);
    }
    let mut big = vec![b'A'; 10_000_000];
    big.push(b'\n');
    write(&env.path("audit.log"), &big);
    expected.extend(lines("audit.log", 500, 510));
    let complete = (expected.len() + extra.len() + 1) as i64;
    write(
        &env.path("audit.log"),
        b"2026-11-20T10:00:02Z 200 172.17.0.9:1 \"/v2/cre",
    ); // partial: not complete

    let out = collector(&env, &["--once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = duckdb::Connection::open(&env.store).unwrap();
    check_invariants(&conn);
    let stored = count(
        &conn,
        "SELECT (SELECT count(*) FROM credential_requests) + (SELECT count(*) FROM rejected_lines)",
    );
    assert_eq!(
        stored, complete,
        "every complete line once, the partial one not yet"
    );
    assert_eq!(stored_numbers(&conn), sorted(expected));
    assert_eq!(
        count(&conn, "SELECT count(*) FROM rejected_lines"),
        2,
        "garbage line and the 10 MB line"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM rejected_lines
             WHERE line_len = 10000000 AND octet_length(raw) = 65536 AND truncated"
        ),
        1,
        "its first --max-raw-bytes (64 KiB by default) kept, flagged"
    );

    type Row = (
        String,
        i32,
        Option<String>,
        Option<i32>,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
        Option<String>,
    );
    let row = |ua_like: &str| -> Row {
        conn.query_row(
            "SELECT strftime(event_time, '%Y-%m-%dT%H:%M:%SZ'), status, source_ip, source_port, request_path, user_agent,
                    task_arn, event_type, log_version, cluster, container_instance_arn
             FROM credential_requests WHERE user_agent LIKE ?",
            [ua_like],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?)),
        )
        .unwrap()
    };
    assert_eq!(
        row("aws-sdk-go/1.12.66%"),
        (
            "2019-02-05T23:37:54Z".into(),
            400,
            Some("10.0.100.189".into()),
            Some(33724),
            "/v2/credentials".into(),
            "aws-sdk-go/1.12.66 (go1.10.3; linux; amd64)".into(),
            None,
            None,
            None,
            None,
            None
        )
    );
    assert_eq!(row("Boto3%").4, "/v3/0a1b2c/task");
    assert_eq!(row("Boto3%").1, 429);
    let z = row("Zend%");
    assert_eq!(z.2.as_deref(), Some("fe80::42:acff:fe11:2"));
    assert_eq!(z.3, Some(47066));
    assert_eq!(z.7.as_deref(), Some("GetCredentialsExecutionRole"));
    assert_eq!(z.8, Some(2));
    assert_eq!(z.9.as_deref(), Some("prod-worker"));
    assert_eq!(
        z.10.as_deref(),
        Some(
            "arn:aws:ecs:eu-west-1:615847981820:container-instance/prod-worker/10abe8e5f47b47c38f3f5f3e232422fd"
        )
    );
    let v1 = row("python-requests%");
    assert_eq!(v1.8, Some(1));
    assert_eq!(
        v1.6.as_deref(),
        Some("arn:aws:ecs:us-east-1:111122223333:task/0b1c2d3e-1111-2222-3333-444455556666")
    );
    let bad = row("bad %");
    assert!(bad.5.contains('\u{FFFD}'));
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM credential_requests WHERE status = 503 AND source_ip IS NULL AND user_agent = ''"
        ),
        1
    );
    assert!(env.segments.join("credential_requests").is_dir());

    // A second --once adds nothing.
    drop(conn);
    let out = collector(&env, &["--once"]).output().unwrap();
    assert!(out.status.success());
    let conn = duckdb::Connection::open(&env.store).unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT (SELECT count(*) FROM credential_requests) + (SELECT count(*) FROM rejected_lines)"
        ),
        complete
    );
}

#[test]
fn second_instance_refuses_with_a_clear_message() {
    let env = Env::new();
    env.lines("audit.log", 0, 5);
    let mut first = spawn_follow(&env);
    // wait until the first one has committed, i.e. owns the store
    let mut ok = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let out = collector(&env, &["--once"]).output().unwrap();
        if out.status.code() == Some(3) {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("already running"), "{err}");
            ok = true;
            break;
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(ok, "the second instance never refused");
}

#[test]
fn sigterm_commits_and_exits_zero() {
    let env = Env::new();
    let mut child = spawn_follow(&env);
    std::thread::sleep(Duration::from_millis(300));
    env.lines("audit.log", 0, 1000);
    std::thread::sleep(Duration::from_millis(500));
    assert!(sigterm(child.id()));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let conn = duckdb::Connection::open(&env.store).unwrap();
    assert_eq!(stored_numbers(&conn), (0..1000).collect::<Vec<_>>());
    check_invariants(&conn);
}

/// Bytes the process has read through read(2)/pread(2) so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn sigterm_during_a_backlog_stops_at_the_next_commit_and_loses_nothing() {
    let env = Env::new();
    let total = 300_000u64;
    env.lines("audit.log.1", 0, total);
    let size = std::fs::metadata(env.path("audit.log.1")).unwrap().len();
    let mut child = collector(&env, &["--batch-rows", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Once a tenth of the backlog is read, the rest of the first poll is still ahead.
    while bytes_read(pid) < size / 10 {
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(sigterm(pid));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let stored = {
        let conn = duckdb::Connection::open(&env.store).unwrap();
        check_invariants(&conn);
        count(&conn, "SELECT count(*) FROM credential_requests")
    };
    assert!(stored > 0, "what was read is committed");
    assert!(
        (stored as u64) < total,
        "the stop came at a commit, not after the whole backlog"
    );
    // The rest is read by the next run, exactly once; what was published is not published again.
    let out = collector(&env, &["--once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = duckdb::Connection::open(&env.store).unwrap();
    assert_eq!(stored_numbers(&conn), (0..total).collect::<Vec<_>>());
    check_invariants(&conn);
    assert_eq!(
        segment_numbers(&env.segments),
        (0..total).collect::<Vec<_>>()
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Waits up to a minute for the published segments to hold exactly `expected`.
fn wait_published(env: &Env, child: &mut Child, expected: &[u64], what: &str) {
    for _ in 0..1200 {
        if segment_numbers(&env.segments) == expected {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "exited: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = segment_numbers(&env.segments);
    let _ = child.kill();
    panic!(
        "{what}: published {} lines, expected {}",
        got.len(),
        expected.len()
    );
}

#[test]
fn s26_a_real_inotify_queue_overflow_is_logged_and_nothing_is_missed() {
    // Scenario 26 with the kernel's own overflow: the collector is stopped (SIGSTOP) while
    // more events than `fs.inotify.max_queued_events` happen in its directory, then rolls and
    // new files are written whose events the full queue drops. The periodic rescan is an
    // hour away, so only the overflow's wake-up can find them; afterwards the watch must
    // still work (a later roll is found as promptly).
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(16_384);
    if limit > 200_000 {
        eprintln!(
            "SKIPPED: fs.inotify.max_queued_events is {limit}; too many files to overflow it"
        );
        return;
    }
    let env = Env::new();
    let log = env.tmp.path().join("collector.log");
    let mut child = collector(
        &env,
        &[
            "--tick-ms",
            "20",
            "--rescan-ms",
            "3600000",
            "--heartbeat-ms",
            "3600000",
            "--commit-interval-ms",
            "20",
            "--segment-secs",
            "1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let pid = child.id();
    let mut expected = env.lines("audit.log", 0, 10);
    wait_published(&env, &mut child, &expected, "the first lines");

    signal(pid, "-STOP");
    // Each created file raises at least IN_CREATE and IN_CLOSE_WRITE: this fills the queue.
    let scratch = env.audit.join("scratch");
    for i in 0..limit {
        std::fs::write(env.audit.join(format!("not-audit-{i}")), b"x").unwrap();
    }
    for i in 0..limit {
        std::fs::rename(
            env.audit.join(format!("not-audit-{i}")),
            scratch.with_extension(i.to_string()),
        )
        .unwrap();
    }
    for roll in 1..=5u64 {
        expected.extend(env.lines("audit.log", roll * 100, roll * 100 + 10));
        env.rename("audit.log", &format!("audit.log.{roll}"));
    }
    expected.extend(env.lines("audit.log", 1000, 1005));
    signal(pid, "-CONT");
    let expected = sorted(expected);
    wait_published(&env, &mut child, &expected, "after the overflow");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("the kernel's queue overflowed"),
        "no overflow was seen; the collector logged:\n{logged}"
    );

    // The watch survives the overflow: a roll and a new file are found without a rescan.
    let mut expected = expected;
    expected.extend(env.lines("audit.log", 2000, 2010));
    env.rename("audit.log", "audit.log.6");
    expected.extend(env.lines("audit.log", 3000, 3005));
    let expected = sorted(expected);
    wait_published(&env, &mut child, &expected, "a roll after the overflow");

    assert!(sigterm(pid));
    assert!(child.wait().unwrap().success());
    let conn = duckdb::Connection::open(&env.store).unwrap();
    assert_eq!(stored_numbers(&conn), expected);
    check_invariants(&conn);
}

#[test]
fn every_directory_a_segment_lands_in_is_synced_with_its_parent() {
    // A segment renamed into a directory that a crash forgets is lost with it: every directory
    // publication creates must be synced after its creation, and so must its parent (which
    // records the new name), and every directory a segment is renamed into must be synced
    // after the rename. strace shows what the real binary does.
    let usable = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!(
            "SKIPPED: strace is missing or cannot trace here (collector/scripts/install-test-tools.sh installs it)"
        );
        return;
    }
    let env = Env::new();
    env.lines("audit.log.1", 0, 300);
    let other_day: String = (300..400u64)
        .map(|n| line(n).replacen("2026-11-20T10:", "2026-11-21T03:", 1) + "\n")
        .collect();
    env.append("audit.log", other_day.as_bytes());
    let trace = env.tmp.path().join("strace.txt");
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-y",
        "-qq",
        "-e",
        "trace=mkdir,mkdirat,fsync,rename,renameat,renameat2",
        "-o",
    ])
    .arg(&trace)
    .arg(BIN)
    .args(collector(&env, &["--once"]).get_args());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(segment_numbers(&env.segments), (0..400).collect::<Vec<_>>());

    // One event per line: (kind, path) in the order they happened (one process: strace's
    // order across threads is the order of the calls' completion).
    let text = std::fs::read_to_string(&trace).unwrap();
    let quoted = |s: &str| -> Vec<String> {
        s.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    // A call interrupted by another thread's is printed in two parts: join them.
    let mut pending = std::collections::HashMap::new();
    let calls: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let pid = l.split_whitespace().next()?.to_string();
            if let Some((start, _)) = l.split_once(" <unfinished ...>") {
                pending.insert(pid, start.to_string());
                None
            } else if let Some((_, rest)) = l.split_once(" resumed>") {
                Some(pending.remove(&pid)? + rest)
            } else {
                Some(l.to_string())
            }
        })
        .collect();
    let events: Vec<(&str, String)> = calls
        .iter()
        .filter_map(|l| {
            let call = l.split_whitespace().nth(1)?;
            if call.starts_with("mkdir") && l.ends_with("= 0") {
                Some(("mkdir", quoted(l).pop()?))
            } else if call.starts_with("fsync(") && l.ends_with("= 0") {
                let path = l.split_once('<')?.1.split_once('>')?.0.to_string();
                Some(("fsync", path))
            } else if call.starts_with("rename") && l.ends_with("= 0") {
                Some(("rename", quoted(l).pop()?))
            } else {
                None
            }
        })
        .collect();
    let segments = env.segments.canonicalize().unwrap();
    let synced_after = |i: usize, dir: &Path| {
        events[i + 1..]
            .iter()
            .any(|(k, p)| *k == "fsync" && Path::new(p) == dir)
    };
    let mut created = 0;
    let mut renamed = 0;
    for (i, (kind, path)) in events.iter().enumerate() {
        let path = Path::new(path);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().unwrap().join(path)
        };
        if !path.starts_with(&segments) {
            continue;
        }
        match *kind {
            "mkdir" => {
                created += 1;
                assert!(
                    synced_after(i, &path),
                    "{} was created but never synced",
                    path.display()
                );
                let parent = path.parent().unwrap();
                assert!(
                    synced_after(i, parent),
                    "{} was created but its parent {} was not synced after",
                    path.display(),
                    parent.display()
                );
            }
            "rename" if path.extension().is_some_and(|e| e == "parquet") => {
                renamed += 1;
                let dir = path.parent().unwrap();
                assert!(
                    synced_after(i, dir),
                    "{} was renamed into place but {} was not synced after",
                    path.display(),
                    dir.display()
                );
            }
            _ => {}
        }
    }
    // The segments directory; requests in two days and coverage in one: table, date and hour
    // directories; one segment per hour.
    assert!(created >= 9, "only {created} directories created:\n{text}");
    assert!(
        renamed >= 3,
        "only {renamed} segments renamed into place:\n{text}"
    );
}

#[test]
fn help_names_every_flag_and_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--audit-dir",
        "--store",
        "--segments-dir",
        "--agent-url",
        "--once",
        "CREDTRAIL_AUDIT_DIR",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn version_prints_the_package_version() {
    for flag in ["--version", "-V"] {
        let out = Command::new(BIN).arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("credtrail-collector {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

/// A stand-in for the ECS agent's introspection API on 127.0.0.1: `/v1/metadata` and an empty
/// `/v1/tasks`. Returns its base URL.
fn fake_agent() -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let body: &[u8] = if request.contains("/v1/metadata") {
                include_bytes!("fixtures/agent/v1_metadata.json")
            } else {
                br#"{"Tasks":[]}"#
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    format!("http://{addr}")
}

/// The latest row of every coverage interval in the published segments: (run_id, interval_no,
/// mode, container instance, covered_from, covered_until), as µs.
type Interval = (String, i32, String, Option<String>, i64, i64);

fn published_coverage(segments: &Path) -> Vec<Interval> {
    let Some(from) = common::published_table(segments, "collector_coverage") else {
        return Vec::new();
    };
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT run_id, interval_no, mode, container_instance_arn, epoch_us(covered_from),
                    epoch_us(covered_until)
             FROM {from}
             QUALIFY row_number() OVER (PARTITION BY host, run_id, interval_no
                                        ORDER BY covered_until DESC, seq DESC) = 1
             ORDER BY run_started_at, interval_no"
        ))
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn now_us() -> i64 {
    credtrail_collector::store::now_us()
}

#[test]
fn once_over_copied_logs_is_covered_from_the_first_line_to_the_read_time() {
    let env = Env::new();
    env.lines("audit.log.2026-11-20-09", 5, 20);
    env.lines("audit.log", 20, 30);
    let before = now_us();
    // No --host: the name is the kernel's (gethostname), as `uname -n` prints it.
    let out = Command::new(BIN)
        .arg("--audit-dir")
        .arg(&env.audit)
        .arg("--store")
        .arg(&env.store)
        .arg("--segments-dir")
        .arg(&env.segments)
        .args(["--once", "--min-free-mb", "0", "--agent-url", &fake_agent()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let after = now_us();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = published_coverage(&env.segments);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (_, no, mode, arn, from, until) = rows[0].clone();
    assert_eq!((no, mode.as_str()), (1, "once"));
    assert_eq!(
        arn.as_deref(),
        Some(
            "arn:aws:ecs:us-east-1:111122223333:container-instance/prod/6f1e2d3c4b5a4968a7b6c5d4e3f2a1b0"
        ),
        "the container instance the agent's /v1/metadata names"
    );
    assert_eq!(from, 1_795_168_805_000_000, "line 5: 2026-11-20T10:00:05Z");
    assert!(
        (before..=after).contains(&until),
        "covered until the end was read: {until} not in {before}..{after}"
    );
    let uname = Command::new("uname").arg("-n").output().unwrap();
    let host = String::from_utf8(uname.stdout).unwrap().trim().to_string();
    let conn = duckdb::Connection::open(&env.store).unwrap();
    let stored: String = conn
        .query_row("SELECT DISTINCT host FROM collector_coverage", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, host);
}

#[test]
fn a_quiet_follower_heartbeats_and_a_restart_starts_a_new_interval() {
    let env = Env::new();
    env.lines("audit.log", 0, 3);
    // The agent is unreachable: coverage is recorded all the same, without an instance ARN.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let spawn = || {
        collector(
            &env,
            &[
                "--tick-ms",
                "20",
                "--heartbeat-ms",
                "200",
                "--segment-secs",
                "1",
                "--agent-url",
                &closed,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    };
    let mut child = spawn();
    let wait_for = |what: &str, done: &dyn Fn(&[Interval]) -> bool| -> Vec<Interval> {
        for _ in 0..200 {
            let rows = published_coverage(&env.segments);
            if done(&rows) {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what}: {:?}", published_coverage(&env.segments));
    };
    let first = wait_for("a first interval", &|r| r.len() == 1);
    // No line is written from here on; the interval must still grow.
    let grown = wait_for("the quiet interval extended by 2 s", &|r| {
        r.len() == 1 && r[0].5 >= first[0].5 + 2_000_000
    });
    assert_eq!(
        (&grown[0].0, grown[0].1),
        (&first[0].0, 1),
        "the same interval"
    );
    assert_eq!(
        grown[0].3, None,
        "no container instance ARN without the agent"
    );
    assert_eq!(grown[0].4, 1_795_168_800_000_000, "from the first line");
    child.kill().unwrap(); // SIGKILL: the interval ends at its last heartbeat
    child.wait().unwrap();
    let killed = published_coverage(&env.segments);

    let mut child = spawn();
    let both = wait_for("a second interval after the restart", &|r| r.len() == 2);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        (&both[0].0, both[0].1, both[0].4),
        (&killed[0].0, killed[0].1, killed[0].4),
        "the first run's interval stays"
    );
    assert!(
        both[0].5 >= killed[0].5,
        "heartbeats committed after the last publication are published by the next run"
    );
    assert_ne!(both[1].0, both[0].0, "another run");
    assert_eq!(both[1].1, 1);
    assert!(
        both[1].4 <= both[0].5,
        "the restart reads on from the last line read: no hole between the runs"
    );
}
