//! `cargo bench -p credtrail --bench ingest_cloudtrail`
//!
//! Generates N CloudTrail records (default 1,000,000; `CREDTRAIL_BENCH_RECORDS`) as S3-delivered
//! `.json.gz` files (`{"Records":[…]}`, `CREDTRAIL_BENCH_PER_FILE` records each, default 1,000),
//! then loads them twice, each in a child process of its own so CPU seconds and peak RSS are each
//! one's alone: with `credtrail ingest cloudtrail` (into `cloudtrail_events`, deduplicated,
//! normalised, full record kept) and with DuckDB's own `read_json` into a table. Prints
//! records/s, wall and CPU seconds, peak RSS, the store's size on disk, and the ratio measured
//! in the same run.
//!
//! Files are laid out and named as S3 delivery does (`AWSLogs/<account>/CloudTrail/<region>/
//! YYYY/MM/DD/<account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<id>.json.gz`, 20 records a second),
//! so name order is time order, as it is in a real bucket. `CREDTRAIL_BENCH_INPUT=DIR` keeps
//! the generated files in DIR and reuses them on the next run (e.g. to profile one loader on
//! the same input with `perf`).
//!
//! `CREDTRAIL_BENCH_SHAPE=fleet` generates the shape of the simulated 100-host day instead
//! (`credtrail simulate`, 9.8 M records in 3,097 files): 3,200 records a file, two regions (so
//! name order runs through the day once per region, and parts of one region overlap those of
//! the other in time), and CloudTrail's duplicate deliveries: one record in 3,000 is delivered
//! again in the region's next file (the simulated day held 2,992 copies). Its defaults are
//! 3,000,000 records (`CREDTRAIL_BENCH_RECORDS` as above, 9,800,000 for the full day), and
//! DuckDB's side then does the same dedupe (one row per `eventID`).
//!
//! Numbers are printed, never asserted: the tests check behaviour, this measures it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use credtrail::store::Store;
use credtrail_collector::sys;

fn main() {
    if let Ok(phase) = std::env::var("CREDTRAIL_BENCH_PHASE") {
        let dir = PathBuf::from(std::env::var("CREDTRAIL_BENCH_DIR").unwrap());
        let out = PathBuf::from(std::env::var("CREDTRAIL_BENCH_OUT").unwrap());
        run_phase(&phase, &dir, &out);
        return;
    }
    let shape = Shape::from_env();
    let records = env_or("CREDTRAIL_BENCH_RECORDS", shape.records);
    let per_file = env_or("CREDTRAIL_BENCH_PER_FILE", shape.per_file).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("CREDTRAIL_BENCH_INPUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let logs = root.join("AWSLogs");
    let marker = root.join("generated");
    let t = Instant::now();
    let (files, raw, compressed) = if marker.exists() {
        existing(&logs)
    } else {
        let g = generate(&logs, records, per_file, &shape);
        let copies = shape.copies(records, per_file);
        std::fs::write(&marker, format!("{records} {copies}")).unwrap();
        g
    };
    let marked = std::fs::read_to_string(&marker).unwrap();
    let mut marked = marked.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    let records = marked.next().unwrap();
    let copies = marked.next().unwrap_or(0);
    println!(
        "input: {records} records (+{copies} delivered twice) in {files} .json.gz files, {:.1} MB of JSON, {:.1} MB compressed (generated in {:.1} s)",
        raw as f64 / 1e6,
        compressed as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    println!("load average before: {}", load_average());
    println!(
        "{:<44} {:>12} {:>9} {:>9} {:>10} {:>10}",
        "loader (records/s: records read, copies too)",
        "records/s",
        "wall s",
        "CPU s",
        "peak RSS",
        "on disk"
    );
    let mut results = Vec::new();
    for (phase, label) in [
        ("credtrail", "credtrail ingest cloudtrail"),
        ("duckdb", "DuckDB read_json (default threads)"),
    ] {
        let out = tmp.path().join(format!("{phase}.duckdb"));
        let p = sys::run_phase(
            phase,
            &[
                ("CREDTRAIL_BENCH_DIR", &logs),
                ("CREDTRAIL_BENCH_OUT", &out),
            ],
        )
        .unwrap();
        let (rows, wall, cpu, rss) = (p.rows, p.wall_seconds, p.cpu_seconds, p.max_rss_bytes);
        assert_eq!(rows as u64, records, "{phase} loaded {rows} rows");
        // Both read every delivered record, copies included.
        let read = rows + copies as f64;
        // The store as it is left: the DuckDB file, its WAL, and (credtrail) the parts.
        let wal = out.with_extension("duckdb.wal");
        let parts = out.with_extension("duckdb.parts");
        let disk = [&out, &wal]
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum::<u64>()
            + tree_bytes(&parts);
        println!(
            "{label:<44} {:>12.0} {wall:>9.2} {cpu:>9.2} {:>7.1} MB {:>7.1} MB",
            read / wall,
            rss / 1e6,
            disk as f64 / 1e6
        );
        results.push((read / wall, cpu));
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&wal);
        let _ = std::fs::remove_dir_all(&parts);
    }
    println!(
        "ratio credtrail / DuckDB read_json: {:.2}x by wall time, {:.2}x by CPU time",
        results[0].0 / results[1].0,
        results[1].1 / results[0].1
    );
    println!("load average after: {}", load_average());
}

/// The first three fields of /proc/loadavg (the machine may be shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// What the generated input looks like.
struct Shape {
    /// Default record count.
    records: u64,
    /// Default records per file.
    per_file: u64,
    /// Regions, each with its own run of files through the whole time span.
    regions: u64,
    /// One record in this many is delivered again in the next file of its region (0: none).
    copy_every: u64,
}

impl Shape {
    fn from_env() -> Shape {
        match std::env::var("CREDTRAIL_BENCH_SHAPE").as_deref() {
            Ok("fleet") => Shape {
                records: 3_000_000,
                per_file: 3_200,
                regions: 2,
                copy_every: 3_000,
            },
            Ok("") | Ok("small-files") | Err(_) => Shape {
                records: 1_000_000,
                per_file: 1_000,
                regions: 1,
                copy_every: 0,
            },
            Ok(other) => panic!("unknown CREDTRAIL_BENCH_SHAPE {other} (fleet, small-files)"),
        }
    }

    /// The region of record `n` (records are dealt to regions in runs of a file's worth, so
    /// each region's files cover the whole time span).
    fn region(&self, n: u64, per_file: u64) -> u64 {
        (n / per_file) % self.regions
    }

    /// Whether record `n` is also delivered in the next file of its region (never from a
    /// region's last file).
    fn copied(&self, n: u64, records: u64, per_file: u64) -> bool {
        let file = n / per_file;
        self.copy_every > 0
            && n % self.copy_every == self.copy_every / 2
            && file + self.regions < records.div_ceil(per_file)
    }

    fn copies(&self, records: u64, per_file: u64) -> u64 {
        (0..records)
            .filter(|n| self.copied(*n, records, per_file))
            .count() as u64
    }
}

/// Bytes of every file under `dir` (0 when it does not exist).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                tree_bytes(&p)
            } else {
                std::fs::metadata(&p).map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ROLES: [&str; 4] = [
    "billing-task",
    "orders-task",
    "ecsTaskExecutionRole",
    "report-task",
];
const CALLS: [(&str, &str, bool); 8] = [
    ("s3.amazonaws.com", "ListBuckets", true),
    ("sqs.amazonaws.com", "GetQueueAttributes", true),
    ("kms.amazonaws.com", "Decrypt", true),
    ("secretsmanager.amazonaws.com", "GetSecretValue", true),
    ("dynamodb.amazonaws.com", "DescribeTable", true),
    ("logs.amazonaws.com", "CreateLogStream", false),
    ("ecr.amazonaws.com", "GetAuthorizationToken", true),
    ("sts.amazonaws.com", "GetCallerIdentity", true),
];

/// When record `n` happened: 20 a second from 2025-11-20T09:20:00Z.
fn time_of(n: u64) -> u64 {
    1_763_630_400 + n / 20
}

/// (year, month, day, hour, minute, second) of a Unix time.
fn civil(t: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, mo, d) = credtrail::timestamp::civil_from_days((t / 86_400) as i64);
    (y, mo, d, (t / 3600) % 24, (t / 60) % 60, t % 60)
}

/// One record in the shape CloudTrail delivers: mostly task-role sessions, some ECS
/// AssumeRole events, some denied calls.
fn record(n: u64, out: &mut String) {
    use std::fmt::Write;
    let (y, mo, d, h, m, s) = civil(time_of(n));
    let time = format!("{y}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z");
    let task = format!("{:032x}", n % 5003 * 0x9e37_79b9_7f4a_7c15u64);
    let role = ROLES[(n % 4) as usize];
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n.wrapping_mul(2_654_435_761) as u32,
        n % 65_536,
        n % 4096,
        (n / 7) % 4096,
        n
    );
    if n.is_multiple_of(25) {
        let _ = write!(
            out,
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"AWSService","invokedBy":"ecs-tasks.amazonaws.com"}},"eventTime":"{time}","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"us-east-1","sourceIPAddress":"ecs-tasks.amazonaws.com","userAgent":"ecs-tasks.amazonaws.com","requestParameters":{{"roleArn":"arn:aws:iam::111122223333:role/{role}","roleSessionName":"{task}"}},"responseElements":{{"credentials":{{"accessKeyId":"ASIA{:016X}","sessionToken":"IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD{:032x}","expiration":"Nov 20, 2025, 3:20:00 PM"}}}},"requestID":"{:032x}","eventID":"{id}","readOnly":true,"resources":[{{"accountId":"111122223333","type":"AWS::IAM::Role","ARN":"arn:aws:iam::111122223333:role/{role}"}}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","sharedEventID":"{:032x}","eventCategory":"Management"}}"#,
            n, n, n, n
        );
        return;
    }
    let (src, name, ro) = CALLS[(n % 8) as usize];
    let denied = n.is_multiple_of(97);
    let error = if denied {
        format!(
            r#","errorCode":"AccessDenied","errorMessage":"User: arn:aws:sts::111122223333:assumed-role/{role}/{task} is not authorized to perform: {name}""#
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLE{:09}:{task}","arn":"arn:aws:sts::111122223333:assumed-role/{role}/{task}","accountId":"111122223333","accessKeyId":"ASIA{:016X}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLE{:09}","arn":"arn:aws:iam::111122223333:role/{role}","accountId":"111122223333","userName":"{role}"}},"attributes":{{"creationDate":"2025-11-20T09:00:00Z","mfaAuthenticated":"false"}}}}}},"eventTime":"{time}","eventSource":"{src}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"10.0.{}.{}","userAgent":"aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/{}#1.30.3 exec-env/AWS_ECS_EC2"{error},"requestParameters":{{"resourceId":"arn:aws:{}:us-east-1:111122223333:thing/{:x}","maxResults":100}},"responseElements":null,"requestID":"{:032x}","eventID":"{id}","readOnly":{ro},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management","vpcEndpointId":"vpce-0{:016x}","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{src}"}}}}"#,
        n % 4,
        n / 3600,
        n % 4,
        n % 250,
        n % 253 + 1,
        name.to_ascii_lowercase(),
        name.to_ascii_lowercase(),
        n,
        n,
        n % 3
    );
}

/// Writes the files with two threads; returns (files, JSON bytes, compressed bytes).
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// Writes record `n` as delivered in `region`.
fn record_in(n: u64, region: &str, out: &mut String) {
    if region == "us-east-1" {
        record(n, out);
    } else {
        let mut one = String::new();
        record(n, &mut one);
        out.push_str(&one.replace(
            "\"awsRegion\":\"us-east-1\"",
            &format!("\"awsRegion\":\"{region}\""),
        ));
    }
}

fn generate(dir: &Path, records: u64, per_file: u64, shape: &Shape) -> (u64, u64, u64) {
    let files = records.div_ceil(per_file);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let totals: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    let (mut raw, mut comp) = (0u64, 0u64);
                    let mut text = String::new();
                    for f in (k..files).step_by(threads as usize) {
                        text.clear();
                        text.push_str("{\"Records\":[");
                        let from = f * per_file;
                        let to = ((f + 1) * per_file).min(records);
                        let region = REGIONS[shape.region(from, per_file) as usize % REGIONS.len()];
                        for n in from..to {
                            if n > from {
                                text.push(',');
                            }
                            record_in(n, region, &mut text);
                        }
                        // Records of the region's previous file delivered again.
                        if let Some(prev) = f.checked_sub(shape.regions) {
                            for n in prev * per_file..(prev + 1) * per_file {
                                if shape.copied(n, records, per_file) {
                                    text.push(',');
                                    record_in(n, region, &mut text);
                                }
                            }
                        }
                        text.push_str("]}");
                        // Where and under which name S3 delivery puts a file whose
                        // records start at that time, so name order is time order.
                        let (y, mo, d, h, m, _) = civil(time_of(from));
                        let day = dir.join(format!(
                            "111122223333/CloudTrail/{region}/{y}/{mo:02}/{d:02}"
                        ));
                        std::fs::create_dir_all(&day).unwrap();
                        let path = day.join(format!(
                            "111122223333_CloudTrail_{region}_{y}{mo:02}{d:02}T{h:02}{m:02}Z_{f:016x}.json.gz"
                        ));
                        let file = std::fs::File::create(&path).unwrap();
                        let mut gz = flate2::write::GzEncoder::new(
                            std::io::BufWriter::new(file),
                            flate2::Compression::new(6),
                        );
                        gz.write_all(text.as_bytes()).unwrap();
                        gz.finish().unwrap().flush().unwrap();
                        raw += text.len() as u64;
                        comp += std::fs::metadata(&path).unwrap().len();
                    }
                    (raw, comp)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let raw = totals.iter().map(|t| t.0).sum();
    let comp = totals.iter().map(|t| t.1).sum();
    (files, raw, comp)
}

/// (files, JSON bytes, compressed bytes) of a tree generated earlier.
fn existing(dir: &Path) -> (u64, u64, u64) {
    let (mut files, mut raw, mut comp) = (0, 0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            let (f, r, c) = existing(&path);
            (files, raw, comp) = (files + f, raw + r, comp + c);
        } else if path.extension().is_some_and(|x| x == "gz") {
            files += 1;
            comp += std::fs::metadata(&path).unwrap().len();
            let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
            raw += std::io::copy(&mut gz, &mut std::io::sink()).unwrap();
        }
    }
    (files, raw, comp)
}

/// One measured loader in this (child) process; prints `rows wall cpu peak_rss`.
fn run_phase(phase: &str, dir: &Path, out: &Path) {
    sys::report_phase(|| match phase {
        "credtrail" => {
            let store = Store::open(out).unwrap();
            let opts = credtrail::cloudtrail::Options {
                threads: 0,
                progress: false,
                fetchers: 0,
            };
            let s =
                credtrail::cloudtrail::ingest_paths(&store, &[dir.to_path_buf()], &opts).unwrap();
            assert_eq!(s.rejects, 0, "{s}");
            store
                .count("SELECT count(*) FROM cloudtrail_events")
                .unwrap() as u64
        }
        "duckdb" => {
            let conn = duckdb::Connection::open(out).unwrap();
            let glob = format!("{}/**/*.json.gz", dir.display());
            let read = format!(
                "SELECT unnest(Records, recursive := true)
                 FROM read_json('{glob}', maximum_object_size = 1073741824)"
            );
            // With copies in the input, the same dedupe as the ingest: one row per eventID.
            // (Without, as this benchmark always measured: the records as they are.)
            let sql = if Shape::from_env().copy_every > 0 {
                format!("CREATE TABLE cloudtrail AS SELECT DISTINCT ON (eventID) * FROM ({read})")
            } else {
                format!("CREATE TABLE cloudtrail AS {read}")
            };
            conn.execute_batch(&sql).unwrap();
            conn.query_row("SELECT count(*) FROM cloudtrail", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
        }
        other => panic!("unknown phase {other}"),
    });
}
