//! `credtrail ingest cloudtrail --lookup` against a local LookupEvents endpoint: the awsJson1.1
//! protocol as the SDK sends it (POST, `X-Amz-Target`, SigV4 with the region in the credential
//! scope), pagination by NextToken, throttling as CloudTrail answers it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credtrail::store::Store;
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub region: String,
    /// The access key ID the request was signed with.
    pub access_key: String,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub token: Option<String>,
    pub max_results: Option<u64>,
    pub throttled: bool,
}

#[derive(Default)]
struct State {
    /// Per region: (event ID, epoch seconds, CloudTrail record text).
    events: HashMap<String, Vec<(String, i64, String)>>,
    seen: Vec<Seen>,
    /// (region, 1-based request number in that region) answered with a throttle.
    throttle: HashSet<(String, usize)>,
    /// Requests that did not look like the SDK's LookupEvents.
    bad: Vec<String>,
}

/// A LookupEvents endpoint on 127.0.0.1.
pub struct Server {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Server { url, state }
    }

    pub fn add_event(&self, region: &str, id: &str, secs: i64) {
        let rec = json!({"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:task1",
            "arn":"arn:aws:sts::111122223333:assumed-role/app/task1","accountId":"111122223333","accessKeyId":"ASIAEXAMPLE"},
            "eventTime":iso(secs),"eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":region,
            "sourceIPAddress":"10.0.0.5","userAgent":"aws-cli/2.15.0","requestParameters":null,"responseElements":null,
            "eventID":id,"readOnly":true,"eventType":"AwsApiCall","managementEvent":true,
            "recipientAccountId":"111122223333","eventCategory":"Management"});
        self.state
            .lock()
            .unwrap()
            .events
            .entry(region.to_string())
            .or_default()
            .push((id.to_string(), secs, rec.to_string()));
    }

    pub fn throttle(&self, region: &str, request: usize) {
        self.state
            .lock()
            .unwrap()
            .throttle
            .insert((region.to_string(), request));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn bad(&self) -> Vec<String> {
        self.state.lock().unwrap().bad.clone()
    }
}

fn iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body); None at end of stream.
fn read_request(
    r: &mut BufReader<TcpStream>,
) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let request_line = line.trim_end().to_string();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            r.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = headers.get("content-length") {
        body = vec![0; n.parse().ok()?];
        r.read_exact(&mut body).ok()?;
    }
    Some((request_line, headers, body))
}

fn respond(w: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = w.flush();
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some((request_line, headers, body)) = read_request(&mut r) {
        let at = Instant::now();
        let target = headers.get("x-amz-target").cloned().unwrap_or_default();
        let ctype = headers.get("content-type").cloned().unwrap_or_default();
        // SigV4: Credential=AKID/DATE/REGION/SERVICE/aws4_request
        let scope: Vec<String> = headers
            .get("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split(',').next())
            .map(|c| c.split('/').map(str::to_string).collect())
            .unwrap_or_default();
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !request_line.starts_with("POST / HTTP/1.1")
            || target != "CloudTrail_20131101.LookupEvents"
            || ctype != "application/x-amz-json-1.1"
            || scope.len() != 5
            || scope[3] != "cloudtrail"
            || !req.is_object()
        {
            state.lock().unwrap().bad.push(format!(
                "{request_line} target={target} type={ctype} scope={scope:?} body={}",
                String::from_utf8_lossy(&body)
            ));
            respond(
                &mut w,
                "400 Bad Request",
                r#"{"__type":"SerializationException"}"#,
            );
            continue;
        }
        let region = scope[2].clone();
        let mut st = state.lock().unwrap();
        let n = st.seen.iter().filter(|s| s.region == region).count() + 1;
        let throttled = st.throttle.contains(&(region.clone(), n));
        let start = req["StartTime"].as_f64();
        let end = req["EndTime"].as_f64();
        let token = req["NextToken"].as_str().map(str::to_string);
        st.seen.push(Seen {
            at,
            region: region.clone(),
            access_key: scope[0].clone(),
            start,
            end,
            token: token.clone(),
            max_results: req["MaxResults"].as_u64(),
            throttled,
        });
        if throttled {
            drop(st);
            respond(
                &mut w,
                "400 Bad Request",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            );
            continue;
        }
        // Newest first, within [StartTime, EndTime], as the event history answers.
        let mut matching: Vec<&(String, i64, String)> = st
            .events
            .get(&region)
            .map(|v| {
                v.iter()
                    .filter(|(_, t, _)| {
                        start.is_none_or(|s| *t as f64 >= s) && end.is_none_or(|e| *t as f64 <= e)
                    })
                    .collect()
            })
            .unwrap_or_default();
        matching.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let offset: usize = token
            .as_deref()
            .and_then(|t| t.strip_prefix("page-at-"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let max = req["MaxResults"].as_u64().unwrap_or(50) as usize;
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(max)
            .map(|(id, t, rec)| {
                json!({"EventId":id,"EventName":"ListBuckets","ReadOnly":"true","AccessKeyId":"ASIAEXAMPLE",
                       "EventTime":*t,"EventSource":"s3.amazonaws.com","Username":"task1",
                       "Resources":[],"CloudTrailEvent":rec})
            })
            .collect();
        let mut out = json!({ "Events": page });
        if offset + max < matching.len() {
            out["NextToken"] = json!(format!("page-at-{}", offset + max));
        }
        drop(st);
        respond(&mut w, "200 OK", &out.to_string());
    }
}

fn credtrail(store: &Path, server: &Server, args: &[&str]) -> (bool, String, String) {
    credtrail_env(store, server, args, &[])
}

/// As [`credtrail`], with environment variables set (`Some`) or removed (`None`) last.
fn credtrail_env(
    store: &Path,
    server: &Server,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> (bool, String, String) {
    let mut cmd = crate::credtrail_command(store, "AKIDLOCALTEST", "local-test-secret");
    cmd.args(args)
        .args(["--endpoint-url", &server.url])
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    crate::output(&mut cmd)
}

fn ids(store: &Store, region: &str) -> Vec<String> {
    let mut stmt = store
        .conn()
        .prepare("SELECT event_id FROM cloudtrail_events WHERE source_file = ? ORDER BY event_id")
        .unwrap();
    stmt.query_map([format!("lookup:{region}")], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn watermark(store: &Store, region: &str) -> Option<i64> {
    credtrail::cloudtrail::lookup::watermark(store, region).unwrap()
}

/// Lower bound on the spacing of one region's requests, with slack for clock reads only.
fn assert_paced(seen: &[Seen], region: &str) {
    let times: Vec<Instant> = seen
        .iter()
        .filter(|s| s.region == region)
        .map(|s| s.at)
        .collect();
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(480),
            "{region}: two requests {gap:?} apart (limit: 2 per second)"
        );
    }
}

#[test]
fn lookup_events_pages_throttles_and_watermarks() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join("s.duckdb");
    let regions = ["eu-west-1", "us-east-1"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 120 events a minute apart per region, ending an hour ago: three pages of 50, 50, 20.
    let first = now - 3600 - 119 * 60;
    let mut expected: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for r in regions {
        for i in 0..120 {
            let id = format!("{r}-old-{i:03}");
            server.add_event(r, &id, first + i * 60);
            expected.entry(r).or_default().insert(id);
        }
    }
    // An event older than --since, which must not be asked for.
    server.add_event("us-east-1", "too-old", first - 86_400);
    server.throttle("us-east-1", 2);
    server.throttle("eu-west-1", 1);
    server.throttle("eu-west-1", 3);
    server.throttle("eu-west-1", 4);
    let since = iso(first - 3600);

    let (ok, out, err) = credtrail(
        &store_path,
        &server,
        &[
            "ingest",
            "cloudtrail",
            "--lookup",
            "--region",
            "us-east-1",
            "--region",
            "eu-west-1",
            "--since",
            &since,
        ],
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    assert!(server.bad().is_empty(), "{:#?}", server.bad());
    let seen = server.seen();
    // 3 pages per region plus one request per throttle.
    assert_eq!(seen.len(), 6 + 4, "{seen:#?}");
    assert!(
        out.contains("240 records: 240 new, 0 duplicates skipped, 0 rejected"),
        "{out}"
    );
    assert!(out.contains("10 requests, 4 throttled"), "{out}");
    for r in regions {
        assert_paced(&seen, r);
        let mine: Vec<&Seen> = seen.iter().filter(|s| s.region == r).collect();
        // Every request of a run asks for the same window; pages follow the tokens served.
        assert!(
            mine.iter()
                .all(|s| s.start == Some((first - 3600) as f64) && s.end == mine[0].end),
            "{mine:#?}"
        );
        assert!(mine.iter().all(|s| s.max_results == Some(50)));
        let tokens: Vec<Option<&str>> = mine
            .iter()
            .filter(|s| !s.throttled)
            .map(|s| s.token.as_deref())
            .collect();
        assert_eq!(
            tokens,
            [None, Some("page-at-50"), Some("page-at-100")],
            "{r}"
        );
    }

    let store = Store::open(&store_path).unwrap();
    for r in regions {
        let got = ids(&store, r);
        assert_eq!(got.len(), 120, "{r}: every event exactly once");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected[r], "{r}");
        assert_eq!(watermark(&store, r), Some((first + 119 * 60) * 1_000_000));
    }
    assert_eq!(
        store
            .count("SELECT count(*) - count(DISTINCT event_id) FROM cloudtrail_events")
            .unwrap(),
        0
    );
    // The record path normalised them as it does files.
    assert_eq!(
        store
            .count(
                "SELECT count(*) FROM cloudtrail_events WHERE event_name = 'ListBuckets'
                 AND session_name = 'task1' AND event_source = 's3.amazonaws.com'"
            )
            .unwrap(),
        240
    );
    drop(store);

    // New events arrive; a second run asks from the watermark (minus the overlap for late
    // events) and stores only the new ones.
    let before = server.seen().len();
    for r in regions {
        for i in 0..7 {
            server.add_event(r, &format!("{r}-new-{i}"), now - 1800 + i * 60);
        }
    }
    let (ok, out, err) = credtrail(
        &store_path,
        &server,
        &[
            "ingest",
            "cloudtrail",
            "--lookup",
            "--region",
            "eu-west-1",
            "--region",
            "us-east-1",
        ],
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    eprint!("{out}");
    let overlap = credtrail::cloudtrail::lookup::OVERLAP.as_secs() as i64;
    let seen = server.seen();
    let second = &seen[before..];
    assert_eq!(second.len(), 2, "one page per region: {second:#?}");
    for s in second {
        let wm = first + 119 * 60;
        assert_eq!(s.start, Some((wm - overlap) as f64), "{s:?}");
        assert!(s.start.unwrap() >= (wm - overlap) as f64);
    }
    // The overlap re-reads the last 15 minutes of old events (16 a minute apart, both ends
    // included) per region: duplicates, not new rows.
    assert!(
        out.contains("46 records: 14 new, 32 duplicates skipped, 0 rejected"),
        "{out}"
    );
    for r in regions {
        assert_paced(&seen, r);
    }
    let store = Store::open(&store_path).unwrap();
    for r in regions {
        assert_eq!(ids(&store, r).len(), 127, "{r}");
        assert_eq!(
            watermark(&store, r),
            Some((now - 1800 + 6 * 60) * 1_000_000)
        );
    }
}

#[test]
fn a_region_that_keeps_failing_keeps_its_watermark() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join("s.duckdb");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    server.add_event("us-west-2", "ok-1", now - 600);
    server.add_event("ap-south-1", "never", now - 600);
    for n in 1..=3 {
        server.throttle("ap-south-1", n);
    }
    let (ok, out, err) = credtrail(
        &store_path,
        &server,
        &[
            "ingest",
            "cloudtrail",
            "--lookup",
            "--region",
            "us-west-2",
            "--region",
            "ap-south-1",
            "--since",
            "1d",
            "--max-attempts",
            "3",
        ],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("ap-south-1"), "{err}");
    assert!(err.contains("ThrottlingException"), "{err}");
    let seen = server.seen();
    assert_eq!(seen.iter().filter(|s| s.region == "ap-south-1").count(), 3);
    assert_paced(&seen, "ap-south-1");
    let store = Store::open(&store_path).unwrap();
    assert_eq!(ids(&store, "us-west-2"), ["ok-1"]);
    assert_eq!(
        watermark(&store, "us-west-2"),
        Some((now - 600) * 1_000_000)
    );
    assert_eq!(watermark(&store, "ap-south-1"), None);
}

#[test]
fn a_region_without_events_is_paced_across_runs() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join("s.duckdb");
    let args = [
        "ingest",
        "cloudtrail",
        "--lookup",
        "--region",
        "eu-north-1",
        "--since",
        "1d",
    ];
    for _ in 0..2 {
        let (ok, out, err) = credtrail(&store_path, &server, &args);
        assert!(ok, "stdout: {out}\nstderr: {err}");
    }
    let seen = server.seen();
    assert_eq!(seen.iter().filter(|s| s.region == "eu-north-1").count(), 2);
    // The second run's only request waits for the first run's: no watermark is needed for that.
    assert_paced(&seen, "eu-north-1");
    let store = Store::open(&store_path).unwrap();
    assert_eq!(watermark(&store, "eu-north-1"), None);
}

#[test]
fn a_profile_with_credential_process_signs_the_requests() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("credentials.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDFROMPROCESS\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"process-token\"}'\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = tmp.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile incident]\ncredential_process = {}\nregion = us-east-1\n",
            script.display()
        ),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    server.add_event("us-east-1", "from-process", now - 600);
    let (ok, out, err) = credtrail_env(
        &tmp.path().join("s.duckdb"),
        &server,
        &[
            "ingest",
            "cloudtrail",
            "--lookup",
            "--region",
            "us-east-1",
            "--since",
            "1d",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", None),
            ("AWS_SECRET_ACCESS_KEY", None),
            ("AWS_PROFILE", Some("incident")),
            ("AWS_CONFIG_FILE", Some(config.to_str().unwrap())),
        ],
    );
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(server.bad().is_empty(), "{:?}", server.bad());
    let seen = server.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s.access_key, "AKIDFROMPROCESS", "{s:?}");
    }
}
