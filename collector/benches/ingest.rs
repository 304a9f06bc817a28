//! `cargo bench -p credtrail-collector --bench ingest`
//!
//! 1. Backlog, equal work: N generated audit lines (default 1,000,000; `CREDTRAIL_BENCH_LINES`)
//!    naming 500 distinct tasks, then 1,000,000 (`CREDTRAIL_BENCH_TASKS`, comma-separated), go
//!    into a DuckDB store **and** hourly Parquet segments. The collector does it with `--once`
//!    and a segments directory; the reference is DuckDB's `read_csv` into a table of the same
//!    published columns, then `COPY … (PARTITION_BY (date, hour))` of that table to Parquet,
//!    once with one thread and once with DuckDB's default threads. Each runs in a child process
//!    of its own, so CPU seconds and peak RSS are each one's alone. Prints lines/s, CPU seconds,
//!    peak RSS, and the ratio reference time / collector time (above 1: the collector is faster).
//! 2. Follow: runs the real binary in follow mode while a writer appends 10 lines/s for
//!    `CREDTRAIL_BENCH_FOLLOW_SECS` (default 30) seconds; prints its CPU share, RSS, and how long
//!    a written line took to be committed (from `ingested_at` and the write time in the line).
//!
//! Numbers are printed, never asserted: the tests check behaviour, this measures it. Other
//! processes share the machine: the load average is printed with each dataset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use credtrail_collector::{Config, sys};

const BIN: &str = env!("CARGO_BIN_EXE_credtrail-collector");

fn main() {
    if let Ok(phase) = std::env::var("CREDTRAIL_BENCH_PHASE") {
        let file = PathBuf::from(std::env::var("CREDTRAIL_BENCH_FILE").unwrap());
        let out = PathBuf::from(std::env::var("CREDTRAIL_BENCH_OUT").unwrap());
        run_phase(&phase, &file, &out);
        return;
    }
    let lines: u64 = env_or("CREDTRAIL_BENCH_LINES", 1_000_000);
    let follow_secs: u64 = env_or("CREDTRAIL_BENCH_FOLLOW_SECS", 30);
    let task_counts: Vec<u64> = std::env::var("CREDTRAIL_BENCH_TASKS")
        .unwrap_or_else(|_| "500,1000000".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    for tasks in task_counts {
        let dir = tmp.path().join(format!("tasks-{tasks}"));
        let audit = dir.join("ecs");
        std::fs::create_dir_all(&audit).unwrap();
        let file = audit.join("audit.log.1");
        let bytes = generate(&file, lines, tasks);
        println!(
            "backlog: {lines} lines, {tasks} distinct tasks, {:.1} MB, one file; load average before: {}",
            bytes as f64 / 1e6,
            load_average()
        );
        println!(
            "{:<44} {:>12} {:>9} {:>9} {:>10}",
            "loader (store + hourly Parquet)", "lines/s", "wall s", "CPU s", "peak RSS"
        );
        let mut results = Vec::new();
        for (phase, label) in [
            ("credtrail", "credtrail-collector --once (2 threads)"),
            ("duckdb-1", "DuckDB read_csv + COPY PARTITION_BY, 1 thread"),
            ("duckdb-n", "DuckDB read_csv + COPY PARTITION_BY, default"),
        ] {
            let out = dir.join(phase);
            std::fs::create_dir_all(out.join("segments")).unwrap();
            let p = sys::run_phase(
                phase,
                &[
                    ("CREDTRAIL_BENCH_FILE", &file),
                    ("CREDTRAIL_BENCH_OUT", &out),
                ],
            )
            .unwrap();
            let (rows, wall, cpu, rss) = (p.rows, p.wall_seconds, p.cpu_seconds, p.max_rss_bytes);
            assert_eq!(rows as u64, lines, "{phase} stored {rows} rows");
            let published = published_rows(&out.join("segments"));
            assert_eq!(published, lines, "{phase} published {published} rows");
            println!(
                "{label:<44} {:>12.0} {wall:>9.3} {cpu:>9.3} {:>7.1} MB",
                rows / wall,
                rss / 1e6
            );
            results.push((wall, cpu));
            // The next phase starts with the disk cache and the machine as they were.
            std::fs::remove_dir_all(&out).unwrap();
        }
        let ours = results[0];
        for (i, what) in [(1, "1 thread"), (2, "default threads")] {
            println!(
                "ratio DuckDB ({what}) / credtrail at {tasks} tasks: {:.2}x by wall time, {:.2}x by CPU time",
                results[i].0 / ours.0,
                results[i].1 / ours.1
            );
        }
        println!("load average after: {}", load_average());
    }
    if follow_secs > 0 {
        follow(tmp.path(), follow_secs);
    }
}

/// The first three fields of /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Rows in every Parquet file under `dir`.
fn published_rows(dir: &Path) -> u64 {
    let files = credtrail_collector::segment::files_of(dir, "credential_requests");
    let list = files
        .iter()
        .map(|f| format!("'{}'", f.display()))
        .collect::<Vec<_>>()
        .join(",");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.query_row(
        &format!("SELECT count(*) FROM read_parquet([{list}], hive_partitioning = false)"),
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic mix: mostly v2 task-role fetches with SDK user agents of several languages,
/// execution-role fetches, and short error lines with their trailing space.
fn generate(path: &Path, lines: u64, tasks: u64) -> u64 {
    let agents = [
        "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/sts#1.30.3",
        "Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.12.4 exec-env/AWS_ECS_EC2",
        "aws-sdk-java/2.25.60 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/21.0.3+9-LTS Java/21.0.3 vendor/Amazon.com_Inc. exec-env/AWS_ECS_EC2",
        "aws-sdk-js/3.600.0 ua/2.0 os/linux#5.10.219 lang/js md/nodejs#20.15.0 api/s3#3.600.0",
    ];
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let base = 1_763_630_400u64; // 2025-11-20T09:20:00Z
    let mut written = 0u64;
    for n in 0..lines {
        let t = base + n / 50;
        let ts = format_time(t);
        let line = if n % 50 == 49 {
            format!(
                "{ts} 400 172.17.0.{}:{} \"/v2/credentials\" \"{}\" - ",
                n % 200 + 2,
                30000 + n % 30000,
                agents[(n % 4) as usize]
            )
        } else {
            let (etype, ip) = if n % 20 == 0 {
                ("GetCredentialsExecutionRole", "172.17.0.1".to_string())
            } else {
                ("GetCredentials", format!("172.17.0.{}", n % 200 + 2))
            };
            format!(
                "{ts} 200 {ip}:{} \"/v2/credentials\" \"{}\" arn:aws:ecs:us-east-1:111122223333:task/prod/{:032x} {etype} 2 prod arn:aws:ecs:us-east-1:111122223333:container-instance/prod/0f3c5a7d9b1e4c2a8d6f0e1b3a5c7d9e",
                30000 + n % 30000,
                agents[(n % 4) as usize],
                n % tasks
            )
        };
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        written += line.len() as u64 + 1;
    }
    w.flush().unwrap();
    written
}

fn format_time(t: u64) -> String {
    let mut out = Vec::new();
    credtrail_collector::parse::format_rfc3339_seconds(t as i64, &mut out);
    String::from_utf8(out).unwrap()
}

/// One measured loader in this (child) process; prints `rows wall cpu peak_rss`. Each writes
/// its store and `segments/` under `out`.
fn run_phase(phase: &str, file: &Path, out: &Path) {
    let store = out.join("store.duckdb");
    let segments = out.join("segments");
    sys::report_phase(|| match phase {
        "credtrail" => {
            let mut config = Config::new(file.parent().unwrap(), &store);
            config.host = Some("bench".into());
            config.segments_dir = Some(segments.clone());
            config.min_free_mb = 0;
            config.notify = false;
            let summary = credtrail_collector::run_once(&config).unwrap();
            summary.lines + summary.rejected
        }
        "duckdb-1" | "duckdb-n" => {
            let conn = duckdb::Connection::open(&store).unwrap();
            if phase == "duckdb-1" {
                conn.execute_batch("SET threads = 1").unwrap();
            }
            // The audit line read as space-separated, double-quoted CSV (the closest DuckDB's
            // general reader gets; short error lines are padded with NULLs), stored as the
            // collector's published columns: the source split into address and port, and the
            // provenance columns (constant strings for host, file and source id, a sequence for
            // seq, an approximation of offsets).
            conn.execute_batch("CREATE SEQUENCE seq").unwrap();
            let sql = format!(
                "CREATE TABLE credential_requests AS SELECT
                     event_time, status, split_part(source, ':', 1) AS source_ip,
                     TRY_CAST(split_part(source, ':', 2) AS INTEGER) AS source_port,
                     request_path, user_agent, NULLIF(task_arn, '-') AS task_arn, event_type,
                     log_version, cluster, container_instance_arn, 'bench' AS host,
                     '{file}' AS source_file, '0123456789abcdef' AS source_id,
                     nextval('seq') * 357 AS byte_offset, length(user_agent) + 200 AS line_len,
                     nextval('seq') AS seq, false AS incomplete, now()::TIMESTAMP AS ingested_at,
                     NULL::BLOB AS raw, false AS truncated
                 FROM read_csv('{file}',
                    delim = ' ', quote = '\"', escape = '\"', header = false, null_padding = true,
                    auto_detect = false, strict_mode = false,
                    timestampformat = '%Y-%m-%dT%H:%M:%SZ',
                    columns = {{'event_time': 'TIMESTAMP', 'status': 'INTEGER', 'source': 'VARCHAR',
                               'request_path': 'VARCHAR', 'user_agent': 'VARCHAR', 'task_arn': 'VARCHAR',
                               'event_type': 'VARCHAR', 'log_version': 'INTEGER', 'cluster': 'VARCHAR',
                               'container_instance_arn': 'VARCHAR'}});
                 COPY (SELECT *, strftime(event_time, '%Y-%m-%d') AS date,
                              strftime(event_time, '%H') AS hour
                       FROM credential_requests)
                   TO '{segments}/credential_requests'
                   (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour));",
                file = file.display(),
                segments = segments.display(),
            );
            conn.execute_batch(&sql).unwrap();
            conn.query_row("SELECT count(*) FROM credential_requests", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
        }
        other => panic!("unknown phase {other}"),
    });
}

fn follow(tmp: &Path, secs: u64) {
    let audit = tmp.join("follow-ecs");
    std::fs::create_dir_all(&audit).unwrap();
    let store = tmp.join("follow.duckdb");
    let mut child = Command::new(BIN)
        .arg("--audit-dir")
        .arg(&audit)
        .arg("--store")
        .arg(&store)
        .args(["--host", "bench", "--min-free-mb", "0"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2)); // start-up (opening DuckDB) is not the steady state
    let pid = child.id();
    let (cpu0, _) = proc_cpu_and_rss(pid);
    let start = Instant::now();
    let mut n = 0u64;
    let live = audit.join("audit.log");
    while start.elapsed() < Duration::from_secs(secs) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&live)
            .unwrap();
        writeln!(
            f,
            "{} 200 172.17.0.5:40000 \"/v2/credentials\" \"bench t={now_ms}\" arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef GetCredentials 2 prod arn:aws:ecs:us-east-1:111122223333:container-instance/prod/abc",
            format_time((now_ms / 1000) as u64)
        )
        .unwrap();
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = start.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_cpu_and_rss(pid);
    let hwm = proc_status_kb(pid, "VmHWM:");
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let conn = duckdb::Connection::open(&store).unwrap();
    let (rows, p50, max): (i64, f64, f64) = conn
        .query_row(
            "SELECT count(*),
                    quantile_cont(lat, 0.5), max(lat)
             FROM (SELECT (epoch_ms(ingested_at) - CAST(regexp_extract(user_agent, 't=(\\d+)', 1) AS BIGINT)) / 1000.0 AS lat
                   FROM credential_requests)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    println!(
        "follow: {n} lines at 10 lines/s over {wall:.0} s; CPU {:.2}% of one core; RSS {:.1} MB (peak {:.1} MB); \
         {rows} committed, write-to-commit latency p50 {p50:.2} s, max {max:.2} s",
        100.0 * (cpu1 - cpu0) / wall,
        rss as f64 / 1e6,
        hwm as f64 * 1024.0 / 1e6
    );
}

/// (CPU seconds, RSS bytes) of a process, from /proc.
fn proc_cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    (ticks / hz, proc_status_kb(pid, "VmRSS:") * 1024)
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
