//! `--s3-url`: the collector ships its segments to a real S3 server on 127.0.0.1 — s3s-fs (the
//! S3 protocol over a directory, SigV4 and Content-MD5 checked), installed by
//! `scripts/install-s3s-fs.sh`. Without it the tests say so and stop, except under CI, where
//! they fail.

mod common;
#[path = "../../tests/support/s3s_fs.rs"]
mod s3s_fs;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    Env, append_in_two_writes, assert_same_lines, line, parquet_numbers, sigterm, sorted,
};
use s3s_fs::{ACCESS_KEY, SECRET_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_credtrail-collector");
const BUCKET: &str = "segments";
const PREFIX: &str = "credtrail/";
const CLUSTER: &str = "prod-east";

/// The collector with `--s3-url` against the server on `port`, dummy credentials, no profile
/// files and no instance metadata.
fn collector(env: &Env, port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for v in [
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ENDPOINT_URL_S3",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/credtrail-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/credtrail-test/credentials",
        )
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("CREDTRAIL_S3_FORCE_PATH_STYLE", "1")
        .env("RUST_LOG", "warn");
    cmd.arg("--audit-dir")
        .arg(&env.audit)
        .arg("--store")
        .arg(&env.store)
        .arg("--segments-dir")
        .arg(&env.segments)
        .args(["--host", "ship-test", "--min-free-mb", "0"])
        .args(["--s3-url", &format!("s3://{BUCKET}/{PREFIX}")])
        .args(["--cluster", CLUSTER, "--s3-retry-max-secs", "1"])
        .args(extra);
    cmd
}

fn follow_flags() -> [&'static str; 8] {
    [
        "--tick-ms",
        "20",
        "--rescan-ms",
        "100",
        "--commit-interval-ms",
        "50",
        "--segment-secs",
        "1",
    ]
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The Parquet objects of `table` in the bucket (s3s-fs keeps an object at `root/bucket/key`).
fn objects(root: &Path, table: &str) -> Vec<PathBuf> {
    let dir = root.join(BUCKET).join(PREFIX).join(table);
    files_under(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect()
}

/// The numbers of every request line in the bucket's objects (a multiset).
fn bucket_numbers(root: &Path) -> Vec<u64> {
    parquet_numbers(&objects(root, "credential_requests"))
}

/// The key a local segment goes to (what the collector documents), relative to the bucket.
fn key_of(env: &Env, local: &Path) -> String {
    let rel = local.strip_prefix(&env.segments).unwrap().to_str().unwrap();
    let (table, rest) = rel.split_once('/').unwrap();
    format!("{PREFIX}{table}/cluster={CLUSTER}/{rest}")
}

/// Bytes of local segments the bucket does not hold yet.
fn unshipped_bytes(env: &Env, root: &Path) -> u64 {
    let mut bytes = 0;
    for (table, _) in credtrail_collector::segment::TABLES {
        for f in credtrail_collector::segment::files_of(&env.segments, table) {
            if !root.join(BUCKET).join(key_of(env, &f)).exists() {
                bytes += std::fs::metadata(&f).map_or(0, |m| m.len());
            }
        }
    }
    bytes
}

/// The largest publication in the bucket: bytes of the objects of one `seq` range (the name's
/// `<from>-<to>`), over every table and hour.
fn largest_publication(root: &Path) -> u64 {
    let mut by_range: BTreeMap<String, u64> = BTreeMap::new();
    for (table, _) in credtrail_collector::segment::TABLES {
        for f in objects(root, table) {
            let name = f.file_stem().unwrap().to_str().unwrap().to_string();
            let range: Vec<&str> = name.rsplitn(3, '-').take(2).collect();
            *by_range.entry(range.join("-")).or_default() += std::fs::metadata(&f).unwrap().len();
        }
    }
    by_range.values().copied().max().unwrap_or(0)
}

/// A TCP proxy on 127.0.0.1 in front of the S3 server whose port `upstream` holds: requests
/// trickle through (16 KiB, then a 2 ms pause), so an upload lasts long enough to be killed
/// in. A connection the server refuses (it is down) is closed. Returns the proxy's port.
fn slow_proxy(upstream: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let up = upstream.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(("127.0.0.1", up)) else {
                    return; // dropping the client's connection: S3 is unreachable
                };
                let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c, s, true));
                pump(server, client, false);
            });
        }
    });
    port
}

fn pump(mut from: TcpStream, mut to: TcpStream, slow: bool) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if slow {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
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

/// Whether the ledger's last line is an intent (the process died between choosing a key and
/// S3's answer, i.e. during an upload).
fn killed_during_upload(env: &Env) -> bool {
    std::fs::read_to_string(env.segments.join(credtrail_collector::ship::LEDGER))
        .ok()
        .and_then(|t| t.lines().last().map(|l| l.starts_with("intent\t")))
        .unwrap_or(false)
}

#[test]
fn kills_and_an_s3_outage_ship_every_line_exactly_once_within_the_backlog_bound() {
    let Some(bin) = s3s_fs::binary() else { return };
    let env = Env::new();
    let root = env.tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let mut server = Some(s3s_fs::start(&bin, &root));
    let upstream = Arc::new(AtomicU16::new(server.as_ref().unwrap().port));
    let port = slow_proxy(upstream.clone());
    let seed = 0x5eed_5305;
    eprintln!("seed {seed:#x}");

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let audit = env.audit.clone();
        std::thread::spawn(move || {
            let mut rng = Lcg(seed ^ 0xabcdef);
            let (mut n, mut hour, mut since_roll) = (0u64, 0u64, 0u64);
            let live = audit.join("audit.log");
            while !stop.load(Ordering::Relaxed) {
                let burst = 1 + rng.next(200);
                let mut buf = Vec::new();
                for _ in 0..burst {
                    buf.extend_from_slice(line(n).as_bytes());
                    buf.push(b'\n');
                    n += 1;
                }
                let cut = rng.next(buf.len() as u64) as usize;
                append_in_two_writes(&live, &buf, cut);
                written.store(n, Ordering::SeqCst);
                since_roll += burst;
                if since_roll > 5000 {
                    since_roll = 0;
                    hour += 1;
                    let to = format!("audit.log.2026-11-{:02}-{:02}", 1 + hour / 24, hour % 24);
                    std::fs::rename(&live, audit.join(to)).unwrap();
                }
                std::thread::sleep(Duration::from_millis(2 + rng.next(8)));
            }
            n
        })
    };

    // S3 up: kills aimed at uploads (the ledger names a key S3 has not confirmed), until 20
    // landed; then S3 down for 8 kills while the backlog fills; then up again, random kills.
    let backlog_mb = 1u64;
    let (aimed, down, random) = (20, 8, 6);
    let mut rng = Lcg(seed);
    let mut max_unshipped = 0u64;
    let (mut kills, mut during_upload, mut attempts) = (0, 0, 0);
    let log = env.tmp.path().join("down.log");
    let spawn = |stderr: Stdio| {
        collector(&env, port, &follow_flags())
            .args(["--max-backlog-mb", &backlog_mb.to_string()])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    while during_upload < aimed {
        attempts += 1;
        assert!(
            attempts <= 200,
            "{during_upload} of {attempts} kills landed during an upload"
        );
        let mut child = spawn(Stdio::null());
        // Until an upload is under way (or the writer wrote 20,000 more lines without one).
        let until = written.load(Ordering::SeqCst) + 20_000;
        while !killed_during_upload(&env) && written.load(Ordering::SeqCst) < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if killed_during_upload(&env) {
            during_upload += 1;
        }
    }
    drop(server.take()); // the S3 server goes away
    for _ in 0..down {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = spawn(Stdio::from(f));
        // Let the writer get well ahead (lines, not time), sampling the backlog as it grows.
        let until = written.load(Ordering::SeqCst) + 30_000;
        while written.load(Ordering::SeqCst) < until {
            max_unshipped = max_unshipped.max(unshipped_bytes(&env, &root));
            std::thread::sleep(Duration::from_millis(20));
        }
        max_unshipped = max_unshipped.max(unshipped_bytes(&env, &root));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        max_unshipped = max_unshipped.max(unshipped_bytes(&env, &root));
    }
    server = Some(s3s_fs::start(&bin, &root));
    upstream.store(server.as_ref().unwrap().port, Ordering::SeqCst);
    for _ in 0..random {
        let mut child = spawn(Stdio::null());
        std::thread::sleep(Duration::from_millis(300 + rng.next(1200)));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let total = writer.join().unwrap();
    assert!(server.is_some());

    // The last collector runs until the bucket holds every line, then stops on SIGTERM.
    let mut child = collector(&env, port, &follow_flags())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let expected: Vec<u64> = (0..total).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && bucket_numbers(&root).len() < expected.len() {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(sigterm(child.id()));
    assert!(child.wait().unwrap().success());
    let in_bucket = sorted(bucket_numbers(&root));
    if in_bucket != expected {
        eprintln!("files kept in {}", env.tmp.path().display());
        drop(server);
        std::mem::forget(env);
        assert_same_lines(&in_bucket, &expected);
        unreachable!("assert_same_lines fails on different multisets");
    }

    // The backlog bound held while S3 was down, and was reached (publication was held).
    let one = largest_publication(&root);
    let bound = (backlog_mb << 20) + one;
    eprintln!(
        "{kills} SIGKILLs ({during_upload} during an upload), S3 down for {down} of them; {total} lines in the bucket exactly once; \
         unshipped at most {max_unshipped} bytes (bound {bound} = {backlog_mb} MiB + the largest publication, {one} bytes)"
    );
    assert!(
        max_unshipped <= bound,
        "unshipped segments reached {max_unshipped} bytes, over {bound}"
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("S3 backlog full"),
        "the collector never held publication while S3 was down: {said}"
    );
    // Coverage heartbeats ship too, under the cluster.
    assert!(!objects(&root, "collector_coverage").is_empty());
    // Everything is shipped: local request segments (2026-11-20, past the 7 days retained)
    // are gone, and nothing but segments is in the bucket.
    assert_eq!(unshipped_bytes(&env, &root), 0);
    assert!(
        credtrail_collector::segment::files_of(&env.segments, "credential_requests").is_empty(),
        "shipped segments past retention are deleted locally"
    );
    for f in files_under(&root.join(BUCKET)) {
        let key = f.strip_prefix(root.join(BUCKET)).unwrap().to_str().unwrap();
        assert!(
            key.starts_with(PREFIX) && key.contains(&format!("/cluster={CLUSTER}/date=")),
            "unexpected object {key}"
        );
    }
}

/// A key recorded in the ledger before a crash is the key of every retry: a collector restarted
/// with another cluster still ships that segment to the first key (one object, not two), and
/// the segments it has not named yet to the new cluster.
#[test]
fn a_retry_after_a_crash_uses_the_key_chosen_before_it() {
    let Some(bin) = s3s_fs::binary() else { return };
    let env = Env::new();
    let root = env.tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let server = s3s_fs::start(&bin, &root);
    env.lines("audit.log", 0, 50);
    // A first run publishes (without --s3-url) and stops.
    let out = Command::new(BIN)
        .arg("--audit-dir")
        .arg(&env.audit)
        .arg("--store")
        .arg(&env.store)
        .arg("--segments-dir")
        .arg(&env.segments)
        .args(["--host", "ship-test", "--min-free-mb", "0", "--once"])
        .env_remove("CREDTRAIL_S3_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let segment = credtrail_collector::segment::files_of(&env.segments, "credential_requests")
        .pop()
        .expect("a published segment");
    // As if it had been killed during the upload: the ledger names the key, under cluster "old".
    let rel = segment
        .strip_prefix(&env.segments)
        .unwrap()
        .to_str()
        .unwrap();
    let (table, rest) = rel.split_once('/').unwrap();
    let old_key = format!("{PREFIX}{table}/cluster=old/{rest}");
    let mut ledger = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.segments.join(credtrail_collector::ship::LEDGER))
        .unwrap();
    writeln!(ledger, "intent\ts3://{BUCKET}/{old_key}\t{rel}").unwrap();
    drop(ledger);
    env.lines("audit.log", 50, 60);
    let out = collector(&env, server.port, &["--once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        root.join(BUCKET).join(&old_key).is_file(),
        "shipped under the recorded key"
    );
    assert!(
        !root.join(BUCKET).join(key_of(&env, &segment)).exists(),
        "not a second time under the new cluster"
    );
    assert_eq!(sorted(bucket_numbers(&root)), (0..60).collect::<Vec<_>>());
}

/// A segment over `--s3-part-mb` goes up in parts (S3's multipart upload, each part with its
/// Content-MD5) and arrives byte for byte.
#[test]
fn a_large_segment_is_uploaded_in_parts_and_arrives_whole() {
    let Some(bin) = s3s_fs::binary() else { return };
    let env = Env::new();
    let root = env.tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let server = s3s_fs::start(&bin, &root);
    // Under a table the test reads no rows of (the bytes are not Parquet).
    let rel = "task_inventory/date=2026-11-20/hour=10/big-0-000000000001-000000000002.parquet";
    let local = env.segments.join(rel);
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    let mut rng = Lcg(7);
    let bytes: Vec<u8> = (0..(12 << 20) + 12345)
        .map(|_| rng.next(256) as u8)
        .collect();
    std::fs::write(&local, &bytes).unwrap();
    env.lines("audit.log", 0, 10);
    let out = collector(&env, server.port, &["--once", "--s3-part-mb", "5"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let object = root.join(BUCKET).join(key_of(&env, &local));
    assert!(
        std::fs::read(&object).unwrap() == bytes,
        "the object differs from the segment"
    );
    assert_eq!(
        sorted(
            bucket_numbers(&root)
                .into_iter()
                .filter(|n| *n < 10)
                .collect()
        ),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(unshipped_bytes(&env, &root), 0, "{stderr}");
    assert!(stderr.contains("segments shipped to S3"), "{stderr}");
}

/// Upload throughput to s3s-fs on loopback, as the collector reports it (bytes over the time
/// spent in uploads): 200 segments of 256 KiB (PutObject), then 4 of 24 MiB (multipart, 16 MiB
/// parts), each set shipped by one `--once`. Run with
/// `cargo test --release -p credtrail-collector --test ship -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn upload_throughput_to_s3s_fs() {
    let Some(bin) = s3s_fs::binary() else { return };
    let env = Env::new();
    let root = env.tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let server = s3s_fs::start(&bin, &root);
    let mut rng = Lcg(11);
    let mut write = |i: u64, size: usize| {
        let rel = format!(
            "task_inventory/date=2026-11-20/hour={:02}/bench-0-{i:012}-{i:012}.parquet",
            i % 24
        );
        let p = env.segments.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..size).map(|_| rng.next(256) as u8).collect();
        std::fs::write(p, bytes).unwrap();
    };
    for (label, range, size) in [
        ("200 x 256 KiB", 0..200, 256 << 10),
        ("4 x 24 MiB", 200..204, 24 << 20),
    ] {
        for i in range {
            write(i, size);
        }
        let out = collector(&env, server.port, &["--once"])
            .env("RUST_LOG", "credtrail_collector=info")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        for l in stderr.lines().filter(|l| l.contains("shipped to S3")) {
            eprintln!("{label}: {l}");
        }
        assert_eq!(unshipped_bytes(&env, &root), 0);
    }
}
