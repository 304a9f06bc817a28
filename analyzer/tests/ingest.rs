//! `credtrail ingest`: every source into the analyzer's store, exactly once, with bad input kept
//! in rejects tables. Hermetic: temp directories, no network.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
mod network;

use credtrail::cloudtrail::sniff::SkipReason;
use credtrail::store::Store;
use credtrail::{audit, cloudtrail, ecs, iam};
use serde_json::{Value, json};

#[path = "common/cli.rs"]
mod cli;
use cli::credtrail;

fn public_cloudtrail() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/public-cloudtrail")
}

fn opts() -> cloudtrail::Options {
    cloudtrail::Options {
        threads: 2,
        progress: false,
        fetchers: 0,
    }
}

fn count(store: &Store, sql: &str) -> i64 {
    store.count(sql).unwrap_or_else(|e| panic!("{sql}: {e:#}"))
}

fn strings(store: &Store, sql: &str) -> Vec<Option<String>> {
    let mut stmt = store.conn().prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn record(id: &str, time: &str, name: &str) -> Value {
    json!({"eventVersion":"1.09","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","accessKeyId":"AKIAEXAMPLE"},
           "eventTime":time,"eventSource":"s3.amazonaws.com","eventName":name,"awsRegion":"us-east-1",
           "sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.0","requestParameters":{"bucketName":"b"},
           "responseElements":null,"eventID":id,"readOnly":true,"eventType":"AwsApiCall","managementEvent":true,
           "recipientAccountId":"111122223333","eventCategory":"Management"})
}

// ---------------------------------------------------------------------------------------------
// CloudTrail files

#[test]
fn public_cloudtrail_every_record_once() {
    let dir = public_cloudtrail();
    // What the files hold, read independently of the ingest code.
    let mut expected = std::collections::BTreeSet::new();
    let mut files = 0;
    for e in std::fs::read_dir(dir.join("stratus-red-team")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            files += 1;
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            for r in v.as_array().unwrap() {
                expected.insert(r["eventID"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(expected.len(), 310);
    let store = Store::open_in_memory().unwrap();
    store.conn().execute_batch("SET threads = 3").unwrap();
    let s = cloudtrail::ingest_paths(&store, std::slice::from_ref(&dir), &opts()).unwrap();
    // The ingest runs DuckDB on one thread and gives the database its setting back.
    assert_eq!(count(&store, "SELECT current_setting('threads')"), 3);
    assert_eq!(s.files, files);
    assert_eq!(
        (s.records, s.stored, s.duplicates, s.rejects),
        (310, 310, 0, 0),
        "{s}"
    );
    let skipped: Vec<(&str, SkipReason)> = s
        .skipped
        .iter()
        .map(|k| (k.name.rsplit('/').next().unwrap(), k.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("README.md", SkipReason::NotJson),
            ("LICENSE", SkipReason::NotJson)
        ],
        "LICENSE and README are not CloudTrail: {s}"
    );
    let stored: std::collections::BTreeSet<String> =
        strings(&store, "SELECT event_id FROM cloudtrail_events")
            .into_iter()
            .map(Option::unwrap)
            .collect();
    assert_eq!(stored, expected);
    assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_events"), 310);
    // Every record is kept whole and its normalised columns agree with it.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM cloudtrail_events
             WHERE json_extract_string(record, '$.eventID') = event_id
               AND json_extract_string(record, '$.eventName') = event_name
               AND json_extract_string(record, '$.userIdentity.arn') IS NOT DISTINCT FROM principal_arn"
        ),
        310
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM cloudtrail_files"),
        files as i64
    );

    let again = cloudtrail::ingest_paths(&store, &[dir], &opts()).unwrap();
    assert_eq!(
        (again.records, again.stored, again.duplicates),
        (310, 0, 310)
    );
    assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_events"), 310);
    assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_rejects"), 0);
}

#[test]
fn every_file_form_loads_and_duplicates_across_files_are_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let r = |i: u32| {
        record(
            &format!("id-{i}"),
            &format!("2026-11-20T10:00:{:02}Z", i),
            "GetBucketAcl",
        )
    };
    let wrapper = json!({"Records": [r(1), r(2)]}).to_string();
    let s3 = d.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/20");
    std::fs::create_dir_all(&s3).unwrap();
    std::fs::write(
        s3.join("111122223333_CloudTrail_us-east-1_20261120T1005Z_abcdefghijklmnop.json.gz"),
        gz(wrapper.as_bytes()),
    )
    .unwrap();
    std::fs::write(
        d.join("plain-wrapper.json"),
        json!({"Records": [r(3)]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        d.join("array.json"),
        serde_json::to_string_pretty(&json!([r(4), r(5), r(1)])).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("lines.jsonl"), format!("{}\n{}\n", r(6), r(7))).unwrap();
    // Two gzip members concatenated (what `cat a.gz b.gz` gives).
    let mut two = gz(format!("{}\n", r(8)).as_bytes());
    two.extend(gz(format!("{}\n", r(9)).as_bytes()));
    std::fs::write(d.join("members.jsonl.gz"), two).unwrap();
    // A gzip file whose name does not say so.
    std::fs::write(
        d.join("misnamed.json"),
        gz(json!([r(10)]).to_string().as_bytes()),
    )
    .unwrap();
    std::fs::write(d.join("notes.txt"), "not CloudTrail").unwrap();
    // `aws cloudtrail get-event-selectors` beside the logs: the trail's coverage, kept apart.
    std::fs::write(
        d.join("event-selectors.json"),
        json!({"TrailARN": "arn:aws:cloudtrail:us-east-1:111122223333:trail/org-audit",
               "AdvancedEventSelectors": [{"Name": "Management events",
                   "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]})
        .to_string(),
    )
    .unwrap();

    let store = Store::open_in_memory().unwrap();
    let s = cloudtrail::ingest_paths(&store, &[d.to_path_buf()], &opts()).unwrap();
    assert_eq!(
        (s.files, s.records, s.stored, s.duplicates, s.rejects),
        (7, 11, 10, 1, 0),
        "{s}"
    );
    assert_eq!(
        (s.skipped_for(SkipReason::NotJson), s.event_selectors),
        (1, 1),
        "{s}"
    );
    assert_eq!(
        strings(
            &store,
            "SELECT json_extract_string(advanced_event_selectors, '$[0].Name') FROM cloudtrail_event_selectors WHERE trail_arn LIKE '%trail/org-audit'"
        ),
        vec![Some("Management events".into())]
    );
    let ids = strings(
        &store,
        "SELECT event_id FROM cloudtrail_events ORDER BY event_time",
    );
    let want: Vec<Option<String>> = (1..=10).map(|i| Some(format!("id-{i}"))).collect();
    assert_eq!(ids, want);
    assert_eq!(
        strings(
            &store,
            "SELECT json_extract_string(request_parameters, '$.bucketName') FROM cloudtrail_events LIMIT 1"
        ),
        vec![Some("b".to_string())]
    );
    // A single file given directly is read whatever its name.
    std::fs::write(d.join("extra.log"), format!("{}\n", r(11))).unwrap();
    let s = cloudtrail::ingest_paths(&store, &[d.join("extra.log")], &opts()).unwrap();
    assert_eq!(s.stored, 1);
}

#[test]
fn a_malformed_record_is_rejected_and_the_rest_of_the_file_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("mixed.json");
    let good1 = record("good-1", "2026-11-20T10:00:00Z", "ListBuckets").to_string();
    let good2 = record("good-2", "2026-11-20T10:00:01Z", "ListBuckets").to_string();
    let no_id = json!({"eventTime": "2026-11-20T10:00:02Z", "eventName": "X"}).to_string();
    let bad_time = record("bad-time", "yesterday", "X").to_string();
    let broken = r#"{"eventID": "broken", "eventTime": }"#;
    let body = format!(r#"{{"Records":[{good1},{broken},{no_id}, 42, {bad_time},{good2}]}}"#);
    std::fs::write(&f, &body).unwrap();
    let store = Store::open_in_memory().unwrap();
    let s = cloudtrail::ingest_paths(&store, std::slice::from_ref(&f), &opts()).unwrap();
    assert_eq!((s.records, s.stored, s.rejects), (6, 2, 4), "{s}");
    assert_eq!(
        strings(
            &store,
            "SELECT event_id FROM cloudtrail_events ORDER BY event_id"
        ),
        vec![Some("good-1".into()), Some("good-2".into())]
    );
    let mut stmt = store
        .conn()
        .prepare("SELECT record_index, byte_offset, raw, reason FROM cloudtrail_rejects ORDER BY record_index")
        .unwrap();
    let rejects: Vec<(i64, i64, Vec<u8>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rejects.len(), 4);
    assert_eq!(rejects[0].0, 1);
    assert_eq!(rejects[0].2, broken.as_bytes(), "the exact bytes are kept");
    assert_eq!(
        &body.as_bytes()[rejects[0].1 as usize..rejects[0].1 as usize + broken.len()],
        broken.as_bytes(),
        "byte_offset points at the record"
    );
    assert!(rejects[0].3.contains("not valid JSON"), "{}", rejects[0].3);
    assert_eq!(rejects[1].3, "record has no eventID");
    assert_eq!(rejects[2].2, b"42");
    assert!(
        rejects[3].3.contains("is not a timestamp"),
        "{}",
        rejects[3].3
    );

    // A truncated file keeps what precedes the cut and records the cut.
    let cut = tmp.path().join("cut.json");
    std::fs::write(&cut, format!(r#"{{"Records":[{good1},{{"eventID":"half"#)).unwrap();
    let s = cloudtrail::ingest_paths(&store, std::slice::from_ref(&cut), &opts()).unwrap();
    assert_eq!((s.stored, s.duplicates, s.rejects), (0, 1, 1));

    // Re-ingesting adds neither events nor rejects.
    let again = cloudtrail::ingest_paths(&store, &[f, cut], &opts()).unwrap();
    assert_eq!(again.stored, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM cloudtrail_rejects"), 5);
}

/// A large part that holds a copy of a stored event is rewritten without it, within the store's
/// memory limit (DuckDB buffers a whole row group of the rewrite: at 122,880 rows of ~1.5 kB
/// records that ran out of its 256 MB).
#[test]
fn a_large_part_with_a_stored_copy_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 130_000u32;
    let big = |i: u32| {
        let mut r = record(
            &format!("big-{i:06}"),
            &format!(
                "2026-11-20T{:02}:{:02}:{:02}Z",
                i / 2 / 3600,
                (i / 2 / 60) % 60,
                (i / 2) % 60
            ),
            "GetObject",
        );
        // About 1.5 kB, little of it repeated, as real request parameters are.
        r["requestParameters"] = json!({"key": format!("{:x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(60)});
        r
    };
    let store = Store::open(&tmp.path().join("s.duckdb")).unwrap();
    std::fs::write(
        tmp.path().join("first.json"),
        json!({"Records": [big(7)]}).to_string(),
    )
    .unwrap();
    let s = cloudtrail::ingest_paths(&store, &[tmp.path().join("first.json")], &opts()).unwrap();
    assert_eq!(s.stored, 1);
    let mut text = String::from("{\"Records\":[");
    for i in 0..n {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&big(i).to_string());
    }
    text.push_str("]}");
    std::fs::write(tmp.path().join("second.json.gz"), gz(text.as_bytes())).unwrap();
    drop(text);
    let s =
        cloudtrail::ingest_paths(&store, &[tmp.path().join("second.json.gz")], &opts()).unwrap();
    assert_eq!((s.stored, s.duplicates), (n as u64 - 1, 1), "{s}");
    assert_eq!(
        count(&store, "SELECT count(*) FROM cloudtrail_events"),
        n as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT event_id) FROM cloudtrail_events"
        ),
        n as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM cloudtrail_events WHERE event_id = 'big-000007' AND source_file LIKE '%first.json'"
        ),
        1
    );
}

#[test]
fn digest_files_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let digest_dir = tmp
        .path()
        .join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20");
    std::fs::create_dir_all(&digest_dir).unwrap();
    let digest = json!({"awsAccountId":"111122223333","digestStartTime":"2026-11-20T09:00:00Z","digestEndTime":"2026-11-20T10:00:00Z","logFiles":[]});
    std::fs::write(
        digest_dir
            .join("111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20261120T100000Z.json.gz"),
        gz(digest.to_string().as_bytes()),
    )
    .unwrap();
    // A digest body under an ordinary name is recognised by its content.
    std::fs::write(tmp.path().join("copied.json"), digest.to_string()).unwrap();
    std::fs::write(
        tmp.path().join("real.json"),
        json!({"Records":[record("r1", "2026-11-20T10:00:00Z", "ListBuckets")]}).to_string(),
    )
    .unwrap();
    let store = Store::open_in_memory().unwrap();
    let s = cloudtrail::ingest_paths(&store, &[tmp.path().to_path_buf()], &opts()).unwrap();
    assert_eq!(
        (s.skipped_for(SkipReason::Digest), s.stored, s.rejects),
        (2, 1, 0),
        "{s}"
    );
}

/// The flaws2 records of formats.md §3: ECS assuming the task role, and a call made with it.
#[test]
fn task_sessions_are_normalised() {
    let assume = r#"{"eventVersion":"1.05","userIdentity":{"type":"AWSService","invokedBy":"ecs-tasks.amazonaws.com"},"eventTime":"2018-11-28T22:31:59Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"us-east-1","sourceIPAddress":"ecs-tasks.amazonaws.com","userAgent":"ecs-tasks.amazonaws.com","requestParameters":{"roleSessionName":"d190d14a-2404-45d6-9113-4eda22d7f2c7","roleArn":"arn:aws:iam::653711331788:role/level3"},"responseElements":{"credentials":{"sessionToken":"<elided>","accessKeyId":"ASIAZQNB3KHGNXWXBSJS","expiration":"Nov 29, 2018 4:31:59 AM"}},"requestID":"6b7d6c60-f35d-11e8-becc-39e7d43d4afe","eventID":"6177ca7e-860e-482c-bde9-50c735af58d6","resources":[{"ARN":"arn:aws:iam::653711331788:role/level3","accountId":"653711331788","type":"AWS::IAM::Role"}],"eventType":"AwsApiCall","recipientAccountId":"653711331788","sharedEventID":"1d18bf74-8392-4496-9dc4-a45cb799b8b4"}"#;
    let call = r#"{"eventVersion":"1.05","userIdentity":{"type":"AssumedRole","principalId":"AROAJQMBDNUMIKLZKMF64:d190d14a-2404-45d6-9113-4eda22d7f2c7","arn":"arn:aws:sts::653711331788:assumed-role/level3/d190d14a-2404-45d6-9113-4eda22d7f2c7","accountId":"653711331788","accessKeyId":"ASIAZQNB3KHGNXWXBSJS","sessionContext":{"attributes":{"mfaAuthenticated":"false","creationDate":"2018-11-28T22:31:59Z"},"sessionIssuer":{"type":"Role","principalId":"AROAJQMBDNUMIKLZKMF64","arn":"arn:aws:iam::653711331788:role/level3","accountId":"653711331788","userName":"level3"}}},"eventTime":"2018-11-28T23:09:28Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"104.102.221.250","userAgent":"[aws-cli/1.16.19 Python/2.7.10 Darwin/17.7.0 botocore/1.12.9]","requestParameters":null,"responseElements":null,"requestID":"4698593B9338B27F","eventID":"65e111a0-83ae-4ba8-9673-16291a804873","eventType":"AwsApiCall","recipientAccountId":"653711331788"}"#;
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp
        .path()
        .join("653711331788_CloudTrail_us-east-1_20181128T2310Z_jQajCuiobojD8I4y.json.gz");
    std::fs::write(
        &f,
        gz(format!(r#"{{"Records":[{assume},{call}]}}"#).as_bytes()),
    )
    .unwrap();
    let store = Store::open_in_memory().unwrap();
    cloudtrail::ingest_paths(&store, &[f], &opts()).unwrap();
    let row = |sql: &str| strings(&store, sql).remove(0);
    assert_eq!(
        row("SELECT session_name FROM cloudtrail_events WHERE event_name = 'ListBuckets'")
            .as_deref(),
        Some("d190d14a-2404-45d6-9113-4eda22d7f2c7")
    );
    assert_eq!(
        row("SELECT session_issuer_arn FROM cloudtrail_events WHERE event_name = 'ListBuckets'")
            .as_deref(),
        Some("arn:aws:iam::653711331788:role/level3")
    );
    assert_eq!(
        row("SELECT strftime(session_created, '%Y-%m-%dT%H:%M:%SZ') FROM cloudtrail_events WHERE event_name = 'ListBuckets'").as_deref(),
        Some("2018-11-28T22:31:59Z")
    );
    // The join the findings need: the task session's key is the key ECS obtained for the task.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM cloudtrail_events a JOIN cloudtrail_events c
               ON json_extract_string(a.response_elements, '$.credentials.accessKeyId') = c.access_key_id
              AND json_extract_string(a.request_parameters, '$.roleSessionName') = c.session_name
              AND json_extract_string(a.request_parameters, '$.roleArn') = c.session_issuer_arn
             WHERE a.event_name = 'AssumeRole' AND a.invoked_by = 'ecs-tasks.amazonaws.com'
               AND a.identity_type = 'AWSService' AND a.session_name IS NULL"
        ),
        1
    );
    assert_eq!(
        row(
            "SELECT CAST(read_only AS VARCHAR) FROM cloudtrail_events WHERE event_name = 'AssumeRole'"
        ),
        None,
        "readOnly absent stays NULL"
    );
}

// ---------------------------------------------------------------------------------------------
// Real inputs (issue 11, item 6)

fn real_cloudtrail() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real-cloudtrail")
}

/// Every file under `dir`, recursively, in name order.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `eventID` of every JSON object in `v`, at any depth (the data README's counting rule).
fn ids_in_value(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(id) = m.get("eventID") {
                out.push(id.as_str().map_or_else(|| id.to_string(), str::to_string));
            }
            m.values().for_each(|x| ids_in_value(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| ids_in_value(x, out)),
        _ => {}
    }
}

/// The string values of `"eventID"` keys in text that is not JSON.
fn ids_in_text(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"eventID\"") {
        rest = &rest[i + "\"eventID\"".len()..];
        let value = rest
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
            .and_then(|t| t.strip_prefix('"'))
            .and_then(|t| t.split_once('"'));
        if let Some((id, _)) = value {
            out.push(id.to_string());
        }
    }
    out
}

/// What a file holds, read without the ingest code: the event IDs of its records (JSON, else
/// JSON lines, else scanned out of the text), or `None` when it holds neither JSON nor a
/// record.
fn ids_in_file(path: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let mut ids = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        ids_in_value(&v, &mut ids);
        return Some(ids);
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let values: Result<Vec<Value>, _> = lines.iter().map(|l| serde_json::from_str(l)).collect();
    match values {
        Ok(values) if !values.is_empty() => {
            values.iter().for_each(|v| ids_in_value(v, &mut ids));
            Some(ids)
        }
        _ => Some(ids_in_text(&text)).filter(|ids| !ids.is_empty()),
    }
}

/// The dataset folder a file of `root` belongs to.
fn dataset_of(root: &Path, file: &str) -> String {
    let rel = file
        .strip_prefix(&root.display().to_string())
        .unwrap_or(file);
    rel.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn issue_11_real_cloudtrail_every_record_stored_or_rejected_once() {
    let root = real_cloudtrail();
    // What the files hold, read independently of the ingest code.
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let (mut holding, mut other) = (Vec::new(), Vec::new());
    for f in files_under(&root) {
        let name = f.display().to_string();
        match ids_in_file(&f) {
            Some(ids) => {
                expected
                    .entry(dataset_of(&root, &name))
                    .or_default()
                    .extend(ids);
                holding.push(name);
            }
            None => other.push(name),
        }
    }
    // In the order of the names as strings (a path's order is by component).
    holding.sort();
    let records: usize = expected.values().map(Vec::len).sum();
    let all_ids: std::collections::BTreeSet<&String> = expected.values().flatten().collect();
    assert!(records > 12_000 && other.len() >= 6, "{records} {other:?}");

    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("real.duckdb")).unwrap();
    let s = cloudtrail::ingest_paths(&store, std::slice::from_ref(&root), &opts()).unwrap();
    eprintln!("{s}");
    assert_eq!(s.records, records as u64, "{s}");
    assert_eq!(s.stored + s.duplicates + s.rejects, s.records, "{s}");
    assert_eq!(s.files, holding.len() as u64, "{s}");
    // Every file that holds JSON or a record was read; every other one is named in the
    // summary with its reason.
    let read: Vec<String> = strings(
        &store,
        "SELECT source_file FROM cloudtrail_files ORDER BY source_file",
    )
    .into_iter()
    .map(Option::unwrap)
    .collect();
    assert_eq!(read, holding);
    let text = s.to_string();
    for name in &other {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("skipped {name} ("))),
            "{name} is not named:\n{text}"
        );
    }

    // Every record is stored or rejected with its reason; nothing else is there.
    let stored: Vec<(String, String)> = {
        let mut stmt = store
            .conn()
            .prepare("SELECT event_id, source_file FROM cloudtrail_events")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let rejected: Vec<(String, Vec<u8>, String)> = {
        let mut stmt = store
            .conn()
            .prepare("SELECT source_file, raw, reason FROM cloudtrail_rejects")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut found: std::collections::BTreeSet<&String> = Default::default();
    let mut per_dataset: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (id, file) in &stored {
        assert!(found.insert(id), "{id} stored twice");
        per_dataset.entry(dataset_of(&root, file)).or_default().0 += 1;
    }
    let mut reject_ids = Vec::new();
    for (file, raw, reason) in &rejected {
        assert!(!reason.is_empty(), "a reject of {file} has no reason");
        per_dataset.entry(dataset_of(&root, file)).or_default().1 += 1;
        let text = String::from_utf8_lossy(raw);
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => ids_in_value(&v, &mut reject_ids),
            Err(_) => reject_ids.extend(ids_in_text(&text)),
        }
    }
    found.extend(reject_ids.iter());
    assert_eq!(
        found, all_ids,
        "stored and rejected event IDs against the files' own"
    );
    eprintln!("dataset: records (distinct event IDs) in the files -> stored, rejected");
    for (dataset, ids) in &expected {
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        let (st, rj) = per_dataset.get(dataset).copied().unwrap_or_default();
        eprintln!(
            "{dataset}: {} ({}) -> {st} stored, {rj} rejected",
            ids.len(),
            distinct.len()
        );
    }

    // A second run adds nothing.
    let events = count(&store, "SELECT count(*) FROM cloudtrail_events");
    let rejects = count(&store, "SELECT count(*) FROM cloudtrail_rejects");
    let again = cloudtrail::ingest_paths(&store, std::slice::from_ref(&root), &opts()).unwrap();
    assert_eq!((again.records, again.stored), (s.records, 0), "{again}");
    assert_eq!(
        count(&store, "SELECT count(*) FROM cloudtrail_events"),
        events
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM cloudtrail_rejects"),
        rejects
    );
}

/// A directory is read by what its files hold, whatever their names; every file it skips is
/// counted and named with why. A file named on the command line that is not CloudTrail is an
/// error, before anything is stored.
#[test]
fn issue_11_files_are_read_by_content_and_every_skip_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("logs");
    let r = |i: u32| {
        record(
            &format!("c-{i}"),
            &format!("2026-11-20T11:00:{i:02}Z"),
            "GetObject",
        )
    };
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::create_dir_all(d.join(".git")).unwrap();
    std::fs::write(d.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        d.join("a/IAM-AddUserToGroup.json.cloudtrail"),
        serde_json::to_string_pretty(&json!([r(1)])).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("a/bare.cloudtrail"),
        serde_json::to_string_pretty(&r(2)).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("b/export.log"), format!("{}\n{}\n", r(3), r(4))).unwrap();
    std::fs::write(
        d.join("b/0001"),
        gz(json!({"Records": [r(5)]}).to_string().as_bytes()),
    )
    .unwrap();
    std::fs::write(d.join("none.json.cloudtrail"), "[]\n").unwrap();
    std::fs::write(d.join("empty.json"), "").unwrap();
    std::fs::write(d.join("LICENSE"), "MIT License\n\nCopyright (c) 2026\n").unwrap();
    std::fs::write(
        d.join("iam.json"),
        json!({"RoleDetailList": [], "Policies": []}).to_string(),
    )
    .unwrap();
    let digests = d.join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20");
    std::fs::create_dir_all(&digests).unwrap();
    let digest =
        digests.join("111122223333_CloudTrail-Digest_us-east-1_t_20261120T110000Z.json.gz");
    std::fs::write(&digest, gz(b"{\"digestStartTime\":\"x\",\"logFiles\":[]}")).unwrap();

    let store_path = tmp.path().join("s.duckdb");
    let bin = env!("CARGO_BIN_EXE_credtrail");
    let run = |args: &[&Path]| {
        let mut cmd = Command::new(bin);
        cmd.arg("--store")
            .arg(&store_path)
            .args(["ingest", "cloudtrail", "--no-progress"]);
        cmd.args(args);
        cmd.output().unwrap()
    };
    let out = run(&[&d]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "cloudtrail: 5 files read, 5 skipped, 0 event selector documents, 5 records: 5 new, 0 duplicates skipped, 0 rejected; "
        ),
        "{text}"
    );
    let name = |p: &str| d.join(p).display().to_string();
    assert_eq!(
        lines[1..].to_vec(),
        vec![
            format!("skipped {} (hidden directory, not entered)", name(".git")),
            format!("skipped {} (CloudTrail digest file)", digest.display()),
            format!("skipped {} (not JSON)", name("LICENSE")),
            format!("skipped {} (empty)", name("empty.json")),
            format!(
                "skipped {} (JSON but not CloudTrail records)",
                name("iam.json")
            ),
        ],
        "{text}"
    );
    {
        let store = Store::open_read_only(&store_path).unwrap();
        assert_eq!(
            strings(
                &store,
                "SELECT event_id FROM cloudtrail_events ORDER BY event_time"
            ),
            (1..=5).map(|i| Some(format!("c-{i}"))).collect::<Vec<_>>()
        );
        // Files read are listed in name order, the empty array among them.
        let read: Vec<Option<String>> = [
            "a/IAM-AddUserToGroup.json.cloudtrail",
            "a/bare.cloudtrail",
            "b/0001",
            "b/export.log",
            "none.json.cloudtrail",
        ]
        .iter()
        .map(|p| Some(name(p)))
        .collect();
        assert_eq!(
            strings(
                &store,
                "SELECT source_file FROM cloudtrail_files ORDER BY source_file"
            ),
            read
        );
    }

    // Named on the command line: what is not CloudTrail is an error, and nothing is stored.
    let out = run(&[&d.join("b/0001"), &d.join("LICENSE"), &d.join("iam.json")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}: not JSON", name("LICENSE")))
            && err.contains(&format!(
                "{}: JSON but not CloudTrail records",
                name("iam.json")
            )),
        "{err}"
    );
    assert!(!err.contains("0001"), "{err}");
    // An empty file or a digest named on the command line is a skip, said so.
    let out = run(&[&d.join("empty.json"), &digest, &d.join("a/bare.cloudtrail")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("cloudtrail: 1 files read, 2 skipped, 0 event selector documents, 1 records: 0 new, 1 duplicates skipped"),
        "{text}"
    );
    assert!(
        text.contains(&format!("skipped {} (empty)", name("empty.json"))),
        "{text}"
    );
}

/// Helper of `issue_11_a_stock_duckdb_client_reads_every_view_from_another_directory`: opens
/// the store as any DuckDB client would (no settings), from the directory the test chose, and
/// prints the row count of every table and view, failing on the first that cannot be read.
#[test]
#[ignore = "run by issue_11_a_stock_duckdb_client_reads_every_view_from_another_directory"]
fn stock_duckdb_client() {
    let Some(path) = std::env::var_os("CREDTRAIL_STOCK_CLIENT_STORE") else {
        return;
    };
    let conn = duckdb::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary
             UNION ALL
             SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT temporary AND NOT internal
             ORDER BY 1",
        )
        .unwrap();
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for n in names {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{n}\""), [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{n}: {e}"));
        println!("relation {n} {rows}");
    }
}

#[test]
fn issue_11_a_stock_duckdb_client_reads_every_view_from_another_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    {
        let store = Store::open(&first.join("s.duckdb")).unwrap();
        cloudtrail::ingest_paths(&store, &[public_cloudtrail()], &opts()).unwrap();
        iam::ingest_value(&store, &authorization_details(), "iam.json").unwrap();
    }
    // The store moves with its parts directory.
    let moved = tmp.path().join("moved");
    std::fs::rename(&first, &moved).unwrap();
    let path = moved.join("s.duckdb");
    let relations = |store: &Store| -> std::collections::BTreeMap<String, i64> {
        let names = strings(
            store,
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary
             UNION ALL
             SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT temporary AND NOT internal",
        );
        names
            .into_iter()
            .map(Option::unwrap)
            .map(|n| {
                let rows = count(store, &format!("SELECT count(*) FROM \"{n}\""));
                (n, rows)
            })
            .collect()
    };
    // Opened read-only where it now is, before any read-write open: every relation reads.
    let before = relations(&Store::open_read_only(&path).unwrap());
    assert_eq!(before["cloudtrail_events"], 310);
    assert!(before["calls"] > 0, "{before:?}");
    // A read-write open writes the view for where the store is now.
    let expected = relations(&Store::open(&path).unwrap());
    assert_eq!(expected, before);

    // Another process, in another directory, with no settings.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stock_duckdb_client",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CREDTRAIL_STOCK_CLIENT_STORE", &path)
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: std::collections::BTreeMap<String, i64> = stdout
        .lines()
        // libtest's "test stock_duckdb_client ... " may precede the first on its line.
        .filter_map(|l| l.split_once("relation ").map(|(_, r)| r))
        .map(|l| {
            let (n, rows) = l.rsplit_once(' ').unwrap();
            (n.to_string(), rows.parse().unwrap())
        })
        .collect();
    assert_eq!(seen, expected, "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// IAM

fn authorization_details() -> Value {
    let boundary = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]});
    let managed_doc = json!({"Version":"2012-10-17","Statement":[
        {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":["arn:aws:dynamodb:us-east-1:111122223333:table/orders"]},
        {"Effect":"Deny","Action":"dynamodb:DeleteTable","Resource":"*"}]});
    // The aws CLI prints objects; other tools write the documents URL-encoded.
    let encoded: String = managed_doc
        .to_string()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    json!({
      "UserDetailList": [{"UserName": "alice"}],
      "GroupDetailList": [],
      "RoleDetailList": [{
        "RoleName": "billing-task", "RoleId": "AROAEXAMPLE1", "Path": "/",
        "Arn": "arn:aws:iam::111122223333:role/billing-task",
        "CreateDate": "2026-01-05T10:00:00Z",
        "AssumeRolePolicyDocument": {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]},
        "RolePolicyList": [
          {"PolicyName": "s3-read", "PolicyDocument": {"Version":"2012-10-17","Statement":
            {"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::billing/*",
             "Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1a2b3c4d"}}}}},
          {"PolicyName": "all-but-iam", "PolicyDocument": {"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","NotAction":["iam:*","organizations:*"],"NotResource":"arn:aws:s3:::secret/*"},
            {"Effect":"Allow","Action":"sqs:SendMessag?","Resource":"*"},
            {"Effect":"Allow","Action":"s3:NoSuchAction","Resource":"*"}]}}
        ],
        "AttachedManagedPolicies": [
          {"PolicyName": "orders-read", "PolicyArn": "arn:aws:iam::111122223333:policy/orders-read"},
          {"PolicyName": "AmazonS3ReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}
        ],
        "PermissionsBoundary": {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": "arn:aws:iam::111122223333:policy/boundary"},
        "RoleLastUsed": {"LastUsedDate": "2026-11-19T08:00:00Z", "Region": "us-east-1"}
      }],
      "Policies": [
        {"PolicyName": "orders-read", "Arn": "arn:aws:iam::111122223333:policy/orders-read", "DefaultVersionId": "v2",
         "PolicyVersionList": [
            {"Document": {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}, "VersionId": "v1", "IsDefaultVersion": false},
            {"Document": encoded, "VersionId": "v2", "IsDefaultVersion": true}]},
        {"PolicyName": "boundary", "Arn": "arn:aws:iam::111122223333:policy/boundary", "DefaultVersionId": "v1",
         "PolicyVersionList": [{"Document": boundary, "VersionId": "v1", "IsDefaultVersion": true}]}
      ]
    })
}

#[test]
fn iam_policies_expand_to_catalog_actions() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("auth.json");
    std::fs::write(
        &f,
        serde_json::to_string_pretty(&authorization_details()).unwrap(),
    )
    .unwrap();
    let store = Store::open_in_memory().unwrap();
    let s = iam::ingest(&store, &f).unwrap();
    assert_eq!(
        (
            s.roles,
            s.unresolved_policies,
            s.unknown_patterns,
            s.users_skipped
        ),
        (1, 1, 1, 1),
        "{s}"
    );
    let catalog = credtrail::catalog::get();
    let g = |sql: &str| {
        count(
            &store,
            &format!("SELECT count(*) FROM iam_grants WHERE {sql}"),
        )
    };

    // Wildcard: every s3:Get* action of the catalog, with the condition flagged.
    let s3_get = catalog.expand("s3:Get*").len() as i64;
    assert!(s3_get > 30);
    assert_eq!(
        g(
            "policy_id LIKE '%#inline/s3-read' AND action LIKE 's3:Get%' AND has_condition AND pattern = 's3:Get*'"
        ),
        s3_get
    );
    assert_eq!(g("policy_id LIKE '%#inline/s3-read'"), s3_get);
    assert_eq!(
        strings(
            &store,
            "SELECT json_extract_string(condition, '$.StringEquals.\"aws:SourceVpce\"') FROM iam_grants WHERE action = 's3:GetObject' AND policy_id LIKE '%s3-read'"
        ),
        vec![Some("vpce-1a2b3c4d".into())]
    );
    // NotAction: everything except iam:* and organizations:*, with NotResource kept as such.
    let excluded = (catalog.expand("iam:*").len() + catalog.expand("organizations:*").len()) as i64;
    assert_eq!(
        g("policy_id LIKE '%all-but-iam' AND via_not_action"),
        catalog.actions.len() as i64 - excluded
    );
    assert_eq!(
        g("via_not_action AND (action LIKE 'iam:%' OR action LIKE 'organizations:%')"),
        0
    );
    assert_eq!(
        g("via_not_action AND not_resource AND resources = ['arn:aws:s3:::secret/*']"),
        g("via_not_action")
    );
    // `?` wildcard, and a pattern that matches nothing is kept, flagged.
    assert_eq!(
        g("pattern = 'sqs:SendMessag?' AND action = 'sqs:SendMessage'"),
        1
    );
    assert_eq!(
        g("NOT in_catalog AND action = 's3:NoSuchAction' AND access_level IS NULL"),
        1
    );
    // Managed policy: the default version (URL-encoded), with its Deny.
    assert_eq!(g("policy_kind = 'managed' AND effect = 'Allow'"), 2);
    assert_eq!(
        g("policy_kind = 'managed' AND effect = 'Deny' AND action = 'dynamodb:DeleteTable'"),
        1
    );
    assert_eq!(
        g(
            "policy_kind = 'managed' AND sid = 'Read' AND access_level = 'Read' AND action = 'dynamodb:GetItem'"
        ),
        1
    );
    // Boundary: kept apart, `*` expands to the whole catalog.
    assert_eq!(g("policy_kind = 'boundary'"), catalog.actions.len() as i64);
    // The AWS managed policy was not in the file: linked, marked unresolved, no grants.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM iam_role_policies WHERE NOT resolved AND policy_id LIKE '%AmazonS3ReadOnlyAccess'"
        ),
        1
    );
    assert_eq!(
        strings(&store, "SELECT permissions_boundary_arn FROM iam_roles"),
        vec![Some("arn:aws:iam::111122223333:policy/boundary".into())]
    );
    // The catalog is in the store for SQL.
    assert_eq!(
        strings(
            &store,
            "SELECT observability FROM iam_actions WHERE action = 'iam:PassRole'"
        ),
        vec![Some("unlogged".into())]
    );

    // A second snapshot replaces the role's rows instead of adding to them.
    let before = count(&store, "SELECT count(*) FROM iam_grants");
    iam::ingest(&store, &f).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM iam_grants"), before);
    assert_eq!(count(&store, "SELECT count(*) FROM iam_roles"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM iam_policies"), 4);

    // Not IAM output: a clear error, nothing stored.
    std::fs::write(tmp.path().join("x.json"), r#"{"tasks": []}"#).unwrap();
    let e = iam::ingest(&store, &tmp.path().join("x.json")).unwrap_err();
    assert!(
        format!("{e:#}").contains("not get-account-authorization-details"),
        "{e:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// ECS

#[test]
fn describe_tasks_and_task_definitions_merge_into_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let td = json!({"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/billing-api:42",
        "family": "billing-api", "revision": 42, "taskRoleArn": "arn:aws:iam::111122223333:role/billing-task",
        "executionRoleArn": "arn:aws:iam::111122223333:role/ecsTaskExecutionRole", "networkMode": "awsvpc",
        "registeredAt": 1732000000.5}, "tags": []});
    let awsvpc = json!({"taskArn": "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef",
        "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/billing-api:42",
        "containerInstanceArn": "arn:aws:ecs:us-east-1:111122223333:container-instance/prod/abc",
        "launchType": "EC2", "group": "service:billing-api", "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
        "createdAt": 1732100400.123, "startedAt": 1732100410.5, "stoppingAt": "2024-11-20T12:00:00Z",
        "stoppedAt": "2024-11-20T12:00:30.250+00:00", "stoppedReason": "Scaling activity",
        "overrides": {"containerOverrides": []},
        "attachments": [{"id": "a1", "type": "ElasticNetworkInterface", "status": "DELETED", "details": [
            {"name": "subnetId", "value": "subnet-1"}, {"name": "networkInterfaceId", "value": "eni-0abc"},
            {"name": "privateIPv4Address", "value": "10.0.1.23"}]}],
        "containers": [{"name": "app", "networkInterfaces": [{"attachmentId": "a1", "privateIpv4Address": "10.0.1.23"}]}]});
    let bridge = json!({"taskArn": "arn:aws:ecs:us-east-1:111122223333:task/prod/fedcba9876543210fedcba9876543210",
        "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/worker:3",
        "lastStatus": "RUNNING", "startedAt": "2024-11-20T10:00:00Z",
        "overrides": {"taskRoleArn": "arn:aws:iam::111122223333:role/override"}});
    std::fs::write(d.join("td.json"), td.to_string()).unwrap();
    std::fs::write(
        d.join("tasks.json"),
        json!({"tasks": [awsvpc, bridge], "failures": [{"arn": "x", "reason": "MISSING"}]})
            .to_string(),
    )
    .unwrap();
    let store = Store::open_in_memory().unwrap();
    let s = ecs::ingest(&store, &[d.to_path_buf()]).unwrap();
    assert_eq!(
        (s.files, s.tasks, s.task_definitions, s.failures),
        (2, 2, 1, 1),
        "{s}"
    );

    let one = |sql: &str| strings(&store, sql).remove(0);
    let q = |col: &str, id: &str| {
        one(&format!(
            "SELECT CAST({col} AS VARCHAR) FROM tasks WHERE task_id = '{id}'"
        ))
    };
    let a = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        q("task_role_arn", a).as_deref(),
        Some("arn:aws:iam::111122223333:role/billing-task")
    );
    assert_eq!(
        q("execution_role_arn", a).as_deref(),
        Some("arn:aws:iam::111122223333:role/ecsTaskExecutionRole")
    );
    assert_eq!(q("private_ips", a).as_deref(), Some("[10.0.1.23]"));
    assert_eq!(q("network_mode", a).as_deref(), Some("awsvpc"));
    assert_eq!(q("eni_id", a).as_deref(), Some("eni-0abc"));
    assert_eq!(q("family", a).as_deref(), Some("billing-api"));
    assert_eq!(q("revision", a).as_deref(), Some("42"));
    assert_eq!(q("cluster", a).as_deref(), Some("prod"));
    assert_eq!(q("started_at", a).as_deref(), Some("2024-11-20 11:00:10.5"));
    assert_eq!(
        q("created_at", a).as_deref(),
        Some("2024-11-20 11:00:00.123")
    );
    assert_eq!(
        q("stopped_at", a).as_deref(),
        Some("2024-11-20 12:00:30.25")
    );
    let b = "fedcba9876543210fedcba9876543210";
    assert_eq!(
        q("task_role_arn", b).as_deref(),
        Some("arn:aws:iam::111122223333:role/override")
    );
    assert_eq!(q("private_ips", b).as_deref(), Some("[]"));

    let again = ecs::ingest(&store, &[d.to_path_buf()]).unwrap();
    assert_eq!((again.tasks, again.tasks_unchanged), (0, 2));
    assert_eq!(count(&store, "SELECT count(*) FROM ecs_tasks"), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM tasks"), 2);

    std::fs::write(d.join("bad.json"), r#"{"something": "else"}"#).unwrap();
    let e = ecs::ingest(&store, &[d.join("bad.json")]).unwrap_err();
    assert!(format!("{e:#}").contains("bad.json"), "{e:#}");
}

// ---------------------------------------------------------------------------------------------
// Audit log

use common::{CI, audit_line};

#[test]
fn raw_audit_files_load_once_and_grow() {
    let tmp = tempfile::tempdir().unwrap();
    let ecs_dir = tmp.path().join("var/log/ecs");
    std::fs::create_dir_all(&ecs_dir).unwrap();
    let mut text = String::new();
    for n in 0..5 {
        text.push_str(&audit_line(n));
    }
    text.push_str("2026-11-20T10:00:09Z 400 10.0.100.189:33724 \"/v2/credentials\" \"aws-sdk-go/1.12.66 (go1.10.3; linux; amd64)\" - \n");
    text.push_str("this is not an audit line\n");
    std::fs::write(ecs_dir.join("audit.log.2026-11-20-09"), &text).unwrap();
    std::fs::write(
        ecs_dir.join("audit.log"),
        format!("{}{}", audit_line(10), audit_line(11)),
    )
    .unwrap();
    std::fs::write(
        ecs_dir.join("ecs-agent.log"),
        "level=info msg=\"not audit\"\n",
    )
    .unwrap();

    let store = Store::open_in_memory().unwrap();
    let s = audit::ingest(
        &store,
        &[tmp.path().to_path_buf()],
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(
        (s.raw_files, s.added[0], s.added[1], s.duplicates),
        (2, 8, 1, 0),
        "{s}"
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM credential_requests WHERE host = '{CI}'")
        ),
        8
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM credential_requests WHERE status = 400 AND task_arn IS NULL AND user_agent = 'aws-sdk-go/1.12.66 (go1.10.3; linux; amd64)'"
        ),
        1
    );
    assert_eq!(
        strings(&store, "SELECT CAST(raw AS VARCHAR) FROM rejected_lines"),
        vec![Some("this is not an audit line".into())]
    );
    // Rows tile each file: offsets + lengths + newlines add up.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM (SELECT byte_offset + line_len + 1 AS e, lead(byte_offset) OVER (PARTITION BY source_id ORDER BY byte_offset) AS n FROM (SELECT source_id, byte_offset, line_len FROM credential_requests UNION ALL SELECT source_id, byte_offset, line_len FROM rejected_lines)) WHERE n IS NOT NULL AND n <> e"
        ),
        0
    );

    let again = audit::ingest(
        &store,
        &[tmp.path().to_path_buf()],
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!((again.added, again.duplicates), ([0, 0, 0, 0], 9));

    // The live file grew, and a copy of it sits elsewhere under another name: only the new
    // line is added, once.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(ecs_dir.join("audit.log"))
        .unwrap();
    f.write_all(audit_line(12).as_bytes()).unwrap();
    f.write_all(b"2026-11-20T10:00:13Z 200 172.17.0.5:1 \"/v2/cred")
        .unwrap(); // still being written
    drop(f);
    std::fs::copy(
        ecs_dir.join("audit.log"),
        tmp.path().join("copy-of-audit.log"),
    )
    .unwrap();
    let grown = audit::ingest(
        &store,
        &[
            ecs_dir.join("audit.log"),
            tmp.path().join("copy-of-audit.log"),
        ],
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!((grown.added[0], grown.added[1]), (1, 1), "{grown}");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM rejected_lines WHERE incomplete AND reason LIKE 'incomplete line%'"
        ),
        1
    );
    assert_eq!(count(&store, "SELECT count(*) FROM credential_requests"), 9);
}

#[test]
fn collector_segments_load_once() {
    let tmp = tempfile::tempdir().unwrap();
    let segments = common::collector_segments(tmp.path(), 200);

    let store = Store::open_in_memory().unwrap();
    let s = audit::ingest(
        &store,
        std::slice::from_ref(&segments),
        &audit::Options::default(),
    )
    .unwrap();
    assert!(s.segment_files >= 2, "{s}");
    assert_eq!(s.added, [200, 1, 0, 1], "{s}");
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT byte_offset) FROM credential_requests WHERE host = 'ip-10-0-1-5'"
        ),
        200
    );
    let again = audit::ingest(
        &store,
        std::slice::from_ref(&segments),
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(again.added, [0, 0, 0, 0]);

    // A second collector run publishes more; only the new rows arrive.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("ecs/audit.log"))
        .unwrap();
    f.write_all(audit_line(500).as_bytes()).unwrap();
    drop(f);
    common::collect_once(tmp.path());
    let more = audit::ingest(&store, &[segments], &audit::Options::default()).unwrap();
    assert_eq!(more.added, [1, 0, 0, 1], "a new run: a new interval");
    assert_eq!(
        count(&store, "SELECT count(*) FROM credential_requests"),
        201
    );
}

// ---------------------------------------------------------------------------------------------
// The command line

#[test]
fn cli_ingests_with_the_store_flag_before_or_after_the_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("ct.duckdb");
    let bin = env!("CARGO_BIN_EXE_credtrail");
    let out = Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["ingest", "cloudtrail"])
        .arg(public_cloudtrail())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("310 records: 310 new, 0 duplicates skipped, 0 rejected"),
        "{text}"
    );
    let out = Command::new(bin)
        .args(["ingest", "cloudtrail"])
        .arg(public_cloudtrail())
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("310 records: 0 new, 310 duplicates skipped"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(bin).arg("catalog").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("IAM action catalog 0.1.") && text.contains("MIT"),
        "{text}"
    );

    let out = Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["ingest", "iam"])
        .arg(tmp.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
}

#[test]
fn collector_inventory_and_describe_tasks_merge_into_the_tasks_view() {
    use credtrail_collector::agent::InventoryRow;
    let tmp = tempfile::tempdir().unwrap();
    let audit_dir = tmp.path().join("ecs");
    std::fs::create_dir_all(&audit_dir).unwrap();
    // Task A fetched its credentials on this host; the agent listed A and B.
    std::fs::write(audit_dir.join("audit.log"), audit_line(1)).unwrap();
    let segments = tmp.path().join("segments");
    let mut config =
        credtrail_collector::Config::new(&audit_dir, tmp.path().join("collector.duckdb"));
    config.host = Some("ip-10-0-1-5".into());
    config.segments_dir = Some(segments.clone());
    config.notify = false;
    config.min_free_mb = 0;
    let a = "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef";
    let b = "arn:aws:ecs:us-east-1:111122223333:task/prod/fedcba9876543210fedcba9876543210";
    let row = |arn: &str, family: &str, status: &str, ip: &str| InventoryRow {
        task_arn: arn.into(),
        family: family.into(),
        revision: "42".into(),
        known_status: status.into(),
        desired_status: status.into(),
        container_name: Some("app".into()),
        docker_id: Some("d0".into()),
        network_mode: Some("bridge".into()),
        ipv4_address: Some(ip.into()),
    };
    let t0 = 1_763_630_400_000_000i64; // 2025-11-20T09:20:00Z
    let mut c =
        credtrail_collector::Collector::open(&config, Some(std::time::Duration::from_secs(5)))
            .unwrap();
    c.add_inventory(
        t0,
        vec![
            row(a, "billing-api", "RUNNING", "172.17.0.5"),
            row(b, "worker", "RUNNING", "172.17.0.6"),
        ],
    );
    c.add_inventory(
        t0 + 900_000_000,
        vec![
            row(a, "billing-api", "RUNNING", "172.17.0.5"),
            row(b, "worker", "STOPPED", "172.17.0.6"),
        ],
    );
    c.drain(false).unwrap();
    c.publish().unwrap();
    c.finish();

    let store = Store::open_in_memory().unwrap();
    let s = audit::ingest(
        &store,
        std::slice::from_ref(&segments),
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(s.added, [1, 0, 4, 1], "{s}");
    // The task definition names A's role; describe-tasks knows B (another address too).
    let d = tmp.path().join("ecs-out");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("td.json"),
        json!({"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/billing-api:42",
            "family": "billing-api", "revision": 42, "taskRoleArn": "arn:aws:iam::111122223333:role/billing-task",
            "networkMode": "bridge"}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        d.join("tasks.json"),
        json!({"tasks": [{"taskArn": b, "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/worker:42",
            "lastStatus": "STOPPED", "stoppedAt": 1763631400.5,
            "overrides": {"taskRoleArn": "arn:aws:iam::111122223333:role/worker-task"},
            "containers": [{"networkInterfaces": [{"privateIpv4Address": "10.0.3.9"}]}]}], "failures": []})
        .to_string(),
    )
    .unwrap();
    ecs::ingest(&store, &[d]).unwrap();

    let q = |col: &str, arn: &str| {
        strings(
            &store,
            &format!("SELECT CAST({col} AS VARCHAR) FROM tasks WHERE task_arn = '{arn}'"),
        )
        .remove(0)
    };
    assert_eq!(count(&store, "SELECT count(*) FROM tasks"), 2);
    assert_eq!(q("sources", a).as_deref(), Some("inventory"));
    assert_eq!(
        q("task_role_arn", a).as_deref(),
        Some("arn:aws:iam::111122223333:role/billing-task")
    );
    assert_eq!(q("family", a).as_deref(), Some("billing-api"));
    assert_eq!(q("private_ips", a).as_deref(), Some("[172.17.0.5]"));
    assert_eq!(q("host", a).as_deref(), Some("ip-10-0-1-5"));
    assert_eq!(q("container_instance_arn", a).as_deref(), Some(CI));
    assert_eq!(q("cluster", a).as_deref(), Some("prod"));
    assert_eq!(q("network_mode", a).as_deref(), Some("bridge"));
    assert_eq!(q("observed_stopped", a), None);
    assert_eq!(q("sources", b).as_deref(), Some("describe-tasks,inventory"));
    assert_eq!(
        q("task_role_arn", b).as_deref(),
        Some("arn:aws:iam::111122223333:role/worker-task")
    );
    assert_eq!(
        q("private_ips", b).as_deref(),
        Some("[10.0.3.9, 172.17.0.6]")
    );
    assert_eq!(q("stopped_at", b).as_deref(), Some("2025-11-20 09:36:40.5"));
    assert_eq!(
        q("observed_stopped", b).as_deref(),
        Some("2025-11-20 09:35:00")
    );
}

// ---------------------------------------------------------------------------------------------
// Coverage (detections.md, Terms: "covered")

/// 2026-11-20T10:00:00Z, the time of `audit_line(0)`, in seconds.
const T10: i64 = 1_795_168_800;

/// A successful fetch line at `T10 + secs` for `task` on container instance `ci`.
fn fetch_line(secs: i64, task: &str, event_type: &str, ci: &str) -> String {
    let t = T10 + secs;
    format!(
        "2026-11-20T{:02}:{:02}:{:02}Z 200 172.17.0.5:40000 \"/v2/credentials\" \"aws-sdk-go-v2/1.30.3\" {task} {event_type} 2 prod {ci}\n",
        t / 3600 % 24,
        t / 60 % 60,
        t % 60
    )
}

fn task_arn(n: u32) -> String {
    format!("arn:aws:ecs:us-east-1:111122223333:task/prod/{n:032x}")
}

#[test]
fn coverage_segments_load_once_keeping_each_intervals_latest_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let audit_dir = tmp.path().join("ecs");
    std::fs::create_dir_all(&audit_dir).unwrap();
    std::fs::write(
        audit_dir.join("audit.log"),
        format!("{}{}", audit_line(0), audit_line(5)),
    )
    .unwrap();
    let segments = tmp.path().join("segments");
    let mut config =
        credtrail_collector::Config::new(&audit_dir, tmp.path().join("collector.duckdb"));
    config.host = Some("ip-10-0-1-5".into());
    config.segments_dir = Some(segments.clone());
    config.notify = false;
    config.min_free_mb = 0;
    let mut c =
        credtrail_collector::Collector::open(&config, Some(std::time::Duration::from_secs(5)))
            .unwrap();
    c.drain(false).unwrap();
    c.publish().unwrap();
    let early = tmp.path().join("early");
    copy_dir(&segments, &early);
    // The collector extends the interval and publishes it again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    c.poll(true, true).unwrap();
    c.publish().unwrap();
    c.finish();
    let published = credtrail_collector::segment::files_of(&segments, "collector_coverage");
    assert_eq!(published.len(), 2, "{published:?}");

    let store = Store::open_in_memory().unwrap();
    let s = audit::ingest(
        &store,
        std::slice::from_ref(&early),
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(s.added, [2, 0, 0, 1], "{s}");
    let until = |store: &Store| {
        count(
            store,
            "SELECT epoch_us(max(covered_until)) FROM collector_coverage",
        )
    };
    let first = until(&store);
    let s = audit::ingest(
        &store,
        std::slice::from_ref(&segments),
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(s.added, [0, 0, 0, 1], "the interval is extended: {s}");
    assert!(until(&store) > first);
    assert_eq!(count(&store, "SELECT count(*) FROM collector_coverage"), 1);
    // Again, and the older copy once more: nothing is added, nothing shrinks.
    let latest = until(&store);
    let s = audit::ingest(
        &store,
        &[segments.clone(), early],
        &audit::Options::default(),
    )
    .unwrap();
    assert_eq!(s.added, [0, 0, 0, 0], "{s}");
    assert_eq!(until(&store), latest);
    assert_eq!(count(&store, "SELECT count(*) FROM collector_coverage"), 1);
    assert_eq!(
        strings(
            &store,
            "SELECT host || ' ' || strftime(covered_from, '%H:%M:%S') || ' ' || source FROM host_coverage"
        ),
        vec![Some("ip-10-0-1-5 10:00:00 collector".into())]
    );
    assert_eq!(
        strings(&store, "SELECT container_instance_arn FROM host_coverage"),
        vec![Some(CI.into())],
        "no agent: the instance the interval's lines name"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn raw_files_cover_their_host_from_the_first_record_to_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ecs");
    std::fs::create_dir_all(&dir).unwrap();
    let t = task_arn(1);
    std::fs::write(
        dir.join("audit.log.2026-11-20-10"),
        format!(
            "{}{}",
            fetch_line(60, &t, "GetCredentials", CI),
            fetch_line(600, &t, "GetCredentials", CI)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("audit.log"),
        format!(
            "2026-11-20T11:10:00Z 503 - \"/v2/credentials\" \"\" - \n{}",
            fetch_line(4000, &t, "GetCredentialsExecutionRole", CI)
        ),
    )
    .unwrap();
    let store = tmp.path().join("s.duckdb");
    credtrail(&store, &["ingest", "audit", dir.to_str().unwrap()]);
    credtrail(&store, &["ingest", "audit", dir.to_str().unwrap()]);
    let store = Store::open(&store).unwrap();
    assert_eq!(
        strings(
            &store,
            "SELECT concat_ws(' ', host, container_instance_arn, strftime(covered_from, '%H:%M:%S'),
                              strftime(covered_until, '%H:%M:%S'), source) FROM host_coverage"
        ),
        vec![Some(format!("{CI} {CI} 10:01:00 11:10:00 raw_file"))],
        "from the earliest file's first record to the last record (the error line too)"
    );
}

/// A describe-tasks task: EC2 on `ci` (or Fargate without one), started `started` seconds after
/// 10:00.
fn described(n: u32, ci: Option<&str>, started: i64) -> Value {
    let mut t = json!({"taskArn": task_arn(n), "lastStatus": "RUNNING", "startedAt": T10 + started,
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/api:1",
        "launchType": if ci.is_some() { "EC2" } else { "FARGATE" }});
    if let Some(ci) = ci {
        t["containerInstanceArn"] = json!(ci);
    }
    t
}

#[test]
fn tasks_are_covered_from_their_start_or_from_their_first_fetch_inside_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ecs");
    std::fs::create_dir_all(&dir).unwrap();
    // The host's audit log covers 10:00–10:50.
    let lines = [
        fetch_line(0, &task_arn(9), "GetCredentials", CI),
        fetch_line(600, &task_arn(1), "GetCredentials", CI), // started 10:10, inside
        fetch_line(1200, &task_arn(2), "GetCredentialsExecutionRole", CI), // running since 09:00
        fetch_line(1500, &task_arn(2), "GetCredentials", CI),
        fetch_line(3000, &task_arn(9), "GetCredentials", CI),
    ];
    std::fs::write(dir.join("audit.log"), lines.concat()).unwrap();
    let d = tmp.path().join("describe");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("tasks.json"),
        json!({"tasks": [
            described(1, Some(CI), 600),
            described(2, Some(CI), -3600),
            described(3, Some(CI), -3600), // running since 09:00, never fetched inside coverage
            described(4, Some(CI), 7200),  // started after coverage ended
            described(5, None, 600),       // Fargate
        ], "failures": []})
        .to_string(),
    )
    .unwrap();
    let store_path = tmp.path().join("s.duckdb");
    credtrail(&store_path, &["ingest", "audit", dir.to_str().unwrap()]);
    credtrail(&store_path, &["ingest", "ecs", d.to_str().unwrap()]);
    let store = Store::open(&store_path).unwrap();
    assert_eq!(
        strings(
            &store,
            "SELECT concat_ws(' ', right(task_arn, 1), strftime(covered_from, '%H:%M:%S'),
                              strftime(covered_until, '%H:%M:%S'), covered_since)
             FROM task_coverage ORDER BY task_arn"
        ),
        vec![
            Some("1 10:10:00 10:50:00 started_at".into()),
            Some("2 10:20:00 10:50:00 first_fetch".into()),
        ]
    );
    drop(store);
    let report: Value =
        serde_json::from_str(&credtrail(&store_path, &["coverage", "--format", "json"])).unwrap();
    assert_eq!(report["tasks"]["total"], 5);
    assert_eq!(report["tasks"]["covered"], 2);
    assert_eq!(report["tasks"]["on_covered_host_never_covered"], 2);
    assert_eq!(report["tasks"]["on_no_covered_host"], 1);
    let uncovered = report["tasks_on_no_covered_host"].as_array().unwrap();
    assert_eq!(uncovered.len(), 1);
    assert_eq!(uncovered[0]["task_arn"], task_arn(5));
    assert!(
        uncovered[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Fargate")
    );
    let missing: Vec<&str> = report["missing_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["input"].as_str().unwrap())
        .collect();
    assert!(
        missing.iter().any(|m| m.starts_with("network inventory"))
            && missing.iter().any(|m| m.starts_with("event selectors"))
            && missing.iter().any(|m| m.starts_with("CloudTrail"))
            && !missing.iter().any(|m| m.starts_with("task descriptions")),
        "{missing:?}"
    );
}

#[test]
fn one_host_name_on_two_container_instances_stays_two_hosts() {
    use credtrail_collector::agent::AgentMetadata;
    let tmp = tempfile::tempdir().unwrap();
    let ci =
        |n: u32| format!("arn:aws:ecs:us-east-1:111122223333:container-instance/prod/{n:032x}");
    let mut segment_dirs = Vec::new();
    // An instance, then its replacement with the same private address, hence the same name.
    for (n, start) in [(1u32, 0i64), (2, 7200)] {
        let root = tmp.path().join(format!("i{n}"));
        let audit_dir = root.join("ecs");
        std::fs::create_dir_all(&audit_dir).unwrap();
        std::fs::write(
            audit_dir.join("audit.log"),
            format!(
                "{}{}",
                fetch_line(start, &task_arn(n), "GetCredentials", &ci(n)),
                fetch_line(start + 60, &task_arn(n), "GetCredentials", &ci(n))
            ),
        )
        .unwrap();
        let mut config =
            credtrail_collector::Config::new(&audit_dir, root.join("collector.duckdb"));
        config.host = Some("ip-10-0-1-5".into());
        config.segments_dir = Some(root.join("segments"));
        config.notify = false;
        config.min_free_mb = 0;
        config.once = true;
        let mut c =
            credtrail_collector::Collector::open(&config, Some(std::time::Duration::from_secs(5)))
                .unwrap();
        c.set_agent_metadata(&AgentMetadata {
            cluster: Some("prod".into()),
            container_instance_arn: Some(ci(n)),
            version: None,
        });
        c.drain(false).unwrap();
        c.publish().unwrap();
        c.finish();
        segment_dirs.push(root.join("segments").display().to_string());
    }
    let store = tmp.path().join("s.duckdb");
    let mut args = vec!["ingest", "audit"];
    args.extend(segment_dirs.iter().map(String::as_str));
    credtrail(&store, &args);
    let d = tmp.path().join("describe");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("tasks.json"),
        json!({"tasks": [described(1, Some(ci(1).as_str()), 0), described(2, Some(ci(2).as_str()), 7200)],
               "failures": []})
        .to_string(),
    )
    .unwrap();
    credtrail(&store, &["ingest", "ecs", d.to_str().unwrap()]);

    let report: Value =
        serde_json::from_str(&credtrail(&store, &["coverage", "--format", "json"])).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    for (h, n) in hosts.iter().zip([1, 2]) {
        assert_eq!(h["host"], "ip-10-0-1-5");
        assert_eq!(h["container_instance_arn"], ci(n));
        assert_eq!(h["source"], "backlog");
    }
    assert_eq!(hosts[0]["covered_from"], "2026-11-20T10:00:00Z");
    assert_eq!(hosts[1]["covered_from"], "2026-11-20T12:00:00Z");
    assert_eq!(
        report["shared_host_names"],
        json!([{"host": "ip-10-0-1-5", "container_instance_arns": [ci(1), ci(2)]}])
    );
    let table = credtrail(&store, &["coverage"]);
    assert!(
        table.contains(&ci(1)) && table.contains(&ci(2)),
        "both instances are listed: {table}"
    );
    assert!(
        table.contains("Host names shared by several container instances"),
        "{table}"
    );
    // Each task is covered on its own instance only.
    let store = Store::open(&store).unwrap();
    assert_eq!(
        strings(
            &store,
            "SELECT right(task_arn, 1) || ' ' || right(container_instance_arn, 1)
             FROM task_coverage ORDER BY task_arn"
        ),
        vec![Some("1 1".into()), Some("2 2".into())]
    );
}

#[test]
fn a_line_read_again_into_a_rebuilt_collector_store_is_stored_once() {
    // The collector's store is deleted and rebuilt (a corrupt disk, an operator's reset): the
    // new store reads the audit files still there from their start and publishes them again,
    // beside the earlier segments. The analyzer keeps each line once.
    let tmp = tempfile::tempdir().unwrap();
    let ecs_dir = tmp.path().join("ecs");
    std::fs::create_dir_all(&ecs_dir).unwrap();
    let state = tmp.path().join("state");
    let segments = tmp.path().join("segments");
    let append = |from: u32, to: u32| {
        let text: String = (from..to).map(audit_line).collect();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ecs_dir.join("audit.log"))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let mut config = credtrail_collector::Config::new(&ecs_dir, state.join("collector.duckdb"));
    config.host = Some("i-0abc".into());
    config.segments_dir = Some(segments.clone());
    config.notify = false;
    config.min_free_mb = 0;
    append(0, 10);
    credtrail_collector::run_once(&config).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    append(10, 15);
    credtrail_collector::run_once(&config).unwrap();
    let files = credtrail_collector::segment::files_of(&segments, "credential_requests");
    assert_eq!(
        files.len(),
        2,
        "the rebuilt store publishes beside: {files:?}"
    );

    let store = Store::open_in_memory().unwrap();
    let s = audit::ingest(&store, &[segments], &audit::Options::default()).unwrap();
    assert_eq!(s.added[0], 15, "{s}");
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT regexp_extract(user_agent, 'n=(\\d+)$', 1)) FROM credential_requests"
        ),
        15
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM credential_requests"),
        15
    );
}
