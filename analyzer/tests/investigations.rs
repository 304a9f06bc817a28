//! Named investigations and `credtrail sql`: every query under queries/investigations loads,
//! prepares and is tested here, and returns the right rows on a store built by ingesting
//! `queries/fixtures/investigations/` (two tasks of one family on one host: task a fetches its
//! credentials, once from task b's address with curl, calls from its own ENI address, from b's
//! and from outside, and once after its stop; b fetches and calls once; an IAM user calls from
//! the same outside address; a denied call's user agent holds an escape sequence and HTML).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use credtrail::investigation::{self, Investigation, RunOptions};
use credtrail::sql::Format;
use credtrail::store::Store;
use serde_json::{Value, json};

/// This file: the lint test checks that every investigation has a test here.
const THIS: &str = include_str!("investigations.rs");

fn queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries")
}

const TASK_A: &str =
    "arn:aws:ecs:us-east-1:123456789012:task/prod/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TASK_B: &str =
    "arn:aws:ecs:us-east-1:123456789012:task/prod/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const TASK_ROLE: &str = "arn:aws:iam::123456789012:role/app-task";
const EVIL_UA: &str = "\u{1b}[31m<script>alert(1)</script>";

/// A store file holding the investigations fixture, ingested the way `credtrail ingest` does.
fn fixture_store(dir: &Path) -> PathBuf {
    let fixture = queries().join("fixtures/investigations");
    let path = dir.join("store.duckdb");
    let store = Store::open(&path).unwrap();
    credtrail::audit::ingest(
        &store,
        &[fixture.join("audit.log")],
        &credtrail::audit::Options::default(),
    )
    .unwrap();
    let opts = credtrail::cloudtrail::Options {
        threads: 1,
        progress: false,
        fetchers: 0,
    };
    let s = credtrail::cloudtrail::ingest_paths(&store, &[fixture.join("cloudtrail.json")], &opts)
        .unwrap();
    assert_eq!(s.rejects, 0, "{s}");
    credtrail::ecs::ingest(
        &store,
        &[
            fixture.join("describe-tasks.json"),
            fixture.join("task-definition.json"),
        ],
    )
    .unwrap();
    path
}

fn investigation(id: &str) -> Investigation {
    let loaded = investigation::builtin();
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded
        .investigations
        .into_iter()
        .find(|i| i.id == id)
        .unwrap()
}

/// The one helper every investigation test goes through: its rows, as JSON objects, on the
/// fixture store opened read-only (as `credtrail query` opens it).
fn rows(id: &str, params: &[(&str, &str)], since: Option<&str>, until: Option<&str>) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_read_only(&fixture_store(dir.path())).unwrap();
    let opts = RunOptions {
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        since: since.map(str::to_string),
        until: until.map(str::to_string),
    };
    let mut out = Vec::new();
    investigation::run(&store, &investigation(id), &opts, Format::Json, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    v.as_array().unwrap().clone()
}

fn column<'a>(rows: &'a [Value], name: &str) -> Vec<&'a Value> {
    rows.iter().map(|r| &r[name]).collect()
}

/// Lint: every file loads with the required header, ids are unique and match the file names,
/// every parameter is read by the SQL, every table read exists, every query prepares against
/// the store's schema, is in the embedded list and has a test in this file.
#[test]
fn lint_investigations() {
    let loaded = investigation::load_dir(&queries().join("investigations")).unwrap();
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert!(!loaded.investigations.is_empty());
    let store = Store::open_in_memory().unwrap();
    let mut ids = HashSet::new();
    for inv in &loaded.investigations {
        assert!(ids.insert(inv.id.clone()), "duplicate id {}", inv.id);
        assert!(!inv.title.is_empty() && !inv.description.is_empty());
        for t in &inv.reads {
            let n = store
                .count(&format!(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = '{t}'"
                ))
                .unwrap();
            assert_eq!(n, 1, "{}: reads unknown table {t}", inv.file);
        }
        for p in &inv.params {
            assert!(
                inv.sql.contains(&format!("getvariable('{}')", p.name)),
                "{}: parameter {} is never read",
                inv.file,
                p.name
            );
        }
        for bound in ["getvariable('since')", "getvariable('until')"] {
            assert!(inv.sql.contains(bound), "{}: ignores {bound}", inv.file);
        }
        investigation::prepare(&store, inv).unwrap_or_else(|e| panic!("{e:#}"));
        let test = format!("fn {}()", inv.id.replace('-', "_"));
        assert!(
            THIS.contains(&test),
            "{}: no test `{test}` in this file",
            inv.id
        );
    }
    let mut builtin: Vec<&str> = investigation::BUILTIN.iter().map(|(n, _)| *n).collect();
    builtin.sort();
    let mut files: Vec<String> = loaded
        .investigations
        .iter()
        .map(|i| format!("{}.sql", i.id))
        .collect();
    files.sort();
    assert_eq!(
        builtin, files,
        "investigation::BUILTIN must list every file"
    );
    let b = investigation::builtin();
    assert!(b.errors.is_empty(), "{:?}", b.errors);
}

#[test]
fn bad_headers_are_all_reported() {
    let errs = investigation::parse(
        "queries/investigations/broken.sql",
        "-- id: Other\n-- color: red\n-- params: since, ok=1, ok\nSELECT 1; SELECT 2",
    )
    .unwrap_err();
    let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    for want in [
        "broken.sql:1: id \"Other\" is not lowercase-with-dashes",
        "differs from the file name",
        "broken.sql:2: unknown header key \"color\"",
        "bad parameter \"since\"",
        "parameter \"ok\" given twice",
        "lacks `-- title",
        "more than one statement",
    ] {
        assert!(msgs.iter().any(|m| m.contains(want)), "{want}: {msgs:?}");
    }
}

#[test]
fn task_timeline() {
    let want = [
        ("2026-11-20T11:59:00Z", "ecs", "created"),
        ("2026-11-20T12:00:00Z", "ecs", "started"),
        ("2026-11-20T12:00:05Z", "audit", "GetCredentials"),
        (
            "2026-11-20T12:00:07Z",
            "audit",
            "GetCredentialsExecutionRole",
        ),
        ("2026-11-20T12:10:00Z", "cloudtrail", "s3:GetObject"),
        ("2026-11-20T12:15:00Z", "cloudtrail", "logs:CreateLogStream"),
        ("2026-11-20T12:20:00Z", "audit", "GetCredentials"),
        ("2026-11-20T12:25:00Z", "cloudtrail", "s3:PutObject"),
        ("2026-11-20T12:26:00Z", "cloudtrail", "s3:ListBuckets"),
        ("2026-11-20T12:30:00Z", "audit", "GetCredentials"),
        ("2026-11-20T12:59:30Z", "ecs", "stopping"),
        ("2026-11-20T13:00:00Z", "ecs", "stopped"),
        (
            "2026-11-20T13:10:00Z",
            "cloudtrail",
            "sts:GetCallerIdentity",
        ),
    ];
    for task in [TASK_A, ID_A] {
        let r = rows("task-timeline", &[("task", task)], None, None);
        let got: Vec<(&str, &str, &str)> = r
            .iter()
            .map(|r| {
                (
                    r["time"].as_str().unwrap(),
                    r["source"].as_str().unwrap(),
                    r["event"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "--task {task}");
        // Task b's fetch and call, the refused guess and the IAM user's call are not a's.
        let by_time = |t: &str| r.iter().find(|r| r["time"] == t).unwrap();
        let exec = by_time("2026-11-20T12:15:00Z");
        assert_eq!(exec["role_kind"], "execution");
        assert_eq!(
            exec["event_id"], "00000000-0000-4000-8000-000000000002",
            "{exec}"
        );
        let denied = by_time("2026-11-20T12:25:00Z");
        assert_eq!(denied["role_kind"], "task");
        assert_eq!(denied["result"], "AccessDenied");
        assert_eq!(denied["source_ip"], "10.0.1.20");
        assert_eq!(denied["user_agent"], EVIL_UA);
        let curl = by_time("2026-11-20T12:20:00Z");
        assert_eq!(curl["source_ip"], "169.254.172.6:40150");
        assert_eq!(curl["user_agent"], "curl/8.5.0");
        assert_eq!(curl["result"], "200");
        assert!(curl["event_id"].as_str().unwrap().contains("audit.log:"));
        assert_eq!(
            by_time("2026-11-20T13:00:00Z")["result"],
            "Task stopped by user"
        );
    }
    let r = rows(
        "task-timeline",
        &[("task", ID_A)],
        Some("2026-11-20T12:20:00Z"),
        Some("2026-11-20T12:30:00Z"),
    );
    assert_eq!(
        column(&r, "time"),
        [
            "2026-11-20T12:20:00Z",
            "2026-11-20T12:25:00Z",
            "2026-11-20T12:26:00Z"
        ]
    );
    assert!(
        rows(
            "task-timeline",
            &[("task", "c".repeat(32).as_str())],
            None,
            None
        )
        .is_empty()
    );
}

#[test]
fn who_fetched() {
    let r = rows("who-fetched", &[("task", TASK_A)], None, None);
    assert_eq!(
        column(&r, "time"),
        [
            "2026-11-20T12:00:05Z",
            "2026-11-20T12:00:07Z",
            "2026-11-20T12:20:00Z",
            "2026-11-20T12:30:00Z"
        ]
    );
    assert_eq!(
        column(&r, "requester"),
        [
            "169.254.172.5:40001",
            "169.254.172.1:50000",
            "169.254.172.6:40150",
            "169.254.172.5:40003"
        ]
    );
    assert_eq!(
        column(&r, "role_kind"),
        ["task", "execution", "task", "task"]
    );
    assert_eq!(column(&r, "status"), [200, 200, 200, 200]);
    // Each task's home address is where its own first fetch came from; a's credentials were
    // fetched with curl from b's.
    assert_eq!(
        column(&r, "requester_task_arn"),
        [&json!(TASK_A), &Value::Null, &json!(TASK_B), &json!(TASK_A)]
    );
    assert_eq!(
        column(&r, "same_task"),
        [&json!(true), &Value::Null, &json!(false), &json!(true)]
    );
    assert_eq!(r[2]["owner_source"], "audit log");
    assert_eq!(r[2]["user_agent"], "curl/8.5.0");
    let r = rows("who-fetched", &[("task", ID_B)], None, None);
    assert_eq!(column(&r, "time"), ["2026-11-20T12:00:06Z"]);
    assert_eq!(r[0]["requester_task_arn"], TASK_B);
}

#[test]
fn key_history() {
    let r = rows(
        "key-history",
        &[("access_key_id", "ASIAAAAAAAAAAAAAAAAA")],
        None,
        None,
    );
    assert_eq!(
        column(&r, "action"),
        [
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBuckets",
            "sts:GetCallerIdentity"
        ]
    );
    for row in &r {
        assert_eq!(row["task_arn"], TASK_A, "{row}");
        assert_eq!(row["role_kind"], "task");
        assert_eq!(row["session_name"], ID_A);
        assert_eq!(row["family"], "app");
    }
    assert_eq!(
        column(&r, "error_code"),
        [
            &Value::Null,
            &json!("AccessDenied"),
            &Value::Null,
            &Value::Null
        ]
    );
    assert_eq!(
        column(&r, "source_ip"),
        ["10.0.1.10", "10.0.1.20", "203.0.113.9", "203.0.113.9"]
    );
    // A user's key maps to no task.
    let r = rows(
        "key-history",
        &[("access_key_id", "AKIAALICEEXAMPLE0000")],
        None,
        None,
    );
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0]["principal_arn"],
        "arn:aws:iam::123456789012:user/alice"
    );
    assert!(r[0]["task_arn"].is_null());
}

#[test]
fn role_usage() {
    for role in [TASK_ROLE, "app-task"] {
        let r = rows("role-usage", &[("role", role)], None, None);
        assert_eq!(
            column(&r, "action"),
            [
                "s3:GetObject",
                "s3:PutObject",
                "s3:ListBuckets",
                "sts:GetCallerIdentity"
            ],
            "--role {role}"
        );
        let get = &r[0];
        assert_eq!(get["role_arn"], TASK_ROLE);
        assert_eq!(get["calls"], 2);
        assert_eq!(get["succeeded"], 2);
        assert_eq!(get["sessions"], 2);
        assert_eq!(get["task_ids"], json!([ID_A, ID_B]));
        assert_eq!(get["families"], json!(["app"]));
        assert_eq!(get["role_kinds"], json!(["task"]));
        assert_eq!(get["last_success"], "2026-11-20T12:35:00Z");
        let put = &r[1];
        assert_eq!((&put["denied"], &put["succeeded"]), (&json!(1), &json!(0)));
        assert!(put["last_success"].is_null());
        assert_eq!(put["errors"], json!(["AccessDenied"]));
    }
    // The execution role's sessions are the agent's, told apart.
    let r = rows("role-usage", &[("role", "app-exec")], None, None);
    assert_eq!(column(&r, "action"), ["logs:CreateLogStream"]);
    assert_eq!(r[0]["role_kinds"], json!(["execution"]));
    let r = rows(
        "role-usage",
        &[("role", "app-task")],
        Some("2026-11-20T12:30:00Z"),
        None,
    );
    assert_eq!(
        column(&r, "action"),
        ["s3:GetObject", "sts:GetCallerIdentity"]
    );
    assert_eq!(r[0]["calls"], 1);
}

#[test]
fn source_ip() {
    // b's ENI address: held by b, used by a's session (denied) and by b's.
    let r = rows("source-ip", &[("ip", "10.0.1.20")], None, None);
    let got: Vec<(&str, &str, &str)> = r
        .iter()
        .map(|r| {
            (
                r["time"].as_str().unwrap(),
                r["source"].as_str().unwrap(),
                r["task_arn"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2026-11-20T12:00:00Z", "ecs", TASK_B),
            ("2026-11-20T12:25:00Z", "cloudtrail", TASK_A),
            ("2026-11-20T12:35:00Z", "cloudtrail", TASK_B),
        ]
    );
    assert_eq!(r[0]["event"], "held by task (describe-tasks)");
    assert_eq!(r[0]["detail"], "until now");
    assert_eq!(r[1]["result"], "AccessDenied");
    // b's home address on the host: b's fetch, a's fetched with curl, and a refused guess.
    let r = rows("source-ip", &[("ip", "169.254.172.6")], None, None);
    assert_eq!(
        column(&r, "task_arn"),
        [&json!(TASK_B), &json!(TASK_A), &Value::Null]
    );
    assert_eq!(column(&r, "result"), ["200", "200", "404"]);
    assert_eq!(r[2]["user_agent"], "curl/8.5.0");
    // An outside address: the IAM user and a's stolen-looking calls, one after a's stop.
    let r = rows("source-ip", &[("ip", "203.0.113.9")], None, None);
    assert_eq!(
        column(&r, "event"),
        ["iam:ListRoles", "s3:ListBuckets", "sts:GetCallerIdentity"]
    );
    assert_eq!(r[0]["principal"], "arn:aws:iam::123456789012:user/alice");
    assert_eq!(r[2]["task_arn"], TASK_A);
}

#[test]
fn views_have_the_documented_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_read_only(&fixture_store(dir.path())).unwrap();
    let readme = std::fs::read_to_string(queries().join("README.md")).unwrap();
    for view in [
        "fetches",
        "calls",
        "task_addresses",
        "owned_addresses",
        "egress_addresses",
        "host_instances",
        "coverage_intervals",
        "host_coverage",
        "task_host_coverage",
        "task_coverage",
    ] {
        let mut stmt = store
            .conn()
            .prepare(&format!(
                "SELECT column_name FROM information_schema.columns WHERE table_name = '{view}'"
            ))
            .unwrap();
        let columns: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!columns.is_empty(), "{view}");
        for c in columns {
            assert!(
                readme.contains(&format!("`{c}`")),
                "queries/README.md does not document {view}.{c}"
            );
        }
    }
    let n = |sql: &str| store.count(sql).unwrap();
    assert_eq!(n("SELECT count(*) FROM fetches"), 6);
    assert_eq!(n("SELECT count(*) FROM fetches WHERE task_id IS NULL"), 1);
    assert_eq!(
        n(
            "SELECT count(*) FROM fetches WHERE role_arn = 'arn:aws:iam::123456789012:role/app-exec'"
        ),
        1
    );
    assert_eq!(n("SELECT count(*) FROM calls"), 7);
    assert_eq!(n("SELECT count(*) FROM calls WHERE role_kind = 'task'"), 5);
    assert_eq!(n("SELECT count(*) FROM calls WHERE denied"), 1);
    assert_eq!(n("SELECT count(*) FROM task_addresses"), 2);
}

fn credtrail(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn sql_table_escapes_what_came_from_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_store(dir.path());
    let q = "SELECT event_time, user_agent, error_code FROM calls WHERE denied";
    let out = stdout(&credtrail(&db, &["sql", q]));
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(out.contains("\\x1b[31m<script>alert(1)</script>"), "{out}");
    assert!(out.contains("2026-11-20T12:25:00Z"), "{out}");
    assert!(out.ends_with("(1 row)\n"), "{out}");
    // The same through an investigation.
    let out = stdout(&credtrail(
        &db,
        &[
            "query",
            "key-history",
            "--access-key-id",
            "ASIAAAAAAAAAAAAAAAAA",
        ],
    ));
    assert!(
        !out.contains('\u{1b}') && out.contains("\\x1b[31m<script>"),
        "{out}"
    );
    assert!(out.ends_with("(4 rows)\n"), "{out}");
}

#[test]
fn sql_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_store(dir.path());
    let q = "SELECT event_time, user_agent, error_code, denied, list_value(source_ip) AS ips \
             FROM calls WHERE access_key_id = 'ASIAAAAAAAAAAAAAAAAA' ORDER BY event_time LIMIT 3";
    let csv = stdout(&credtrail(&db, &["sql", "--format", "csv", q]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["event_time", "user_agent", "error_code", "denied", "ips"]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[1][0], "2026-11-20T12:25:00Z");
    assert_eq!(
        &records[1][1], EVIL_UA,
        "CSV keeps the bytes, quoted by the writer"
    );
    assert_eq!(&records[1][2], "AccessDenied");
    assert_eq!(&records[0][2], "", "NULL is an empty field");
    assert_eq!(&records[1][3], "true");
    assert_eq!(&records[1][4], "[\"10.0.1.20\"]");

    let json = stdout(&credtrail(&db, &["sql", "--format", "json", q]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(
        v[1],
        json!({"event_time": "2026-11-20T12:25:00Z", "user_agent": EVIL_UA,
               "error_code": "AccessDenied", "denied": true, "ips": ["10.0.1.20"]})
    );
    assert!(v[0]["error_code"].is_null());
    assert!(!json.contains('\u{1b}'), "JSON escapes control characters");

    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "-- how many calls per kind\nSET VARIABLE kind = 'task';\n\
         SELECT count(*) AS n FROM calls WHERE role_kind = getvariable('kind');\n",
    )
    .unwrap();
    let out = stdout(&credtrail(
        &db,
        &["sql", "--file", file.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!([{"n": 5}])
    );
    let out = stdout(&credtrail(
        &db,
        &[
            "sql",
            "--param",
            "key=ASIAAAAAAAAAAAAAAAAA",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM calls WHERE access_key_id = getvariable('key')",
        ],
    ));
    assert_eq!(out, "n\n4\n");

    let out = stdout(&credtrail(
        &db,
        &[
            "query",
            "who-fetched",
            "--task",
            ID_A,
            "--format",
            "csv",
            "--since",
            "2026-11-20T12:10:00Z",
        ],
    ));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("curl/8.5.0"), "{out}");
}

#[test]
fn sql_errors_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_store(dir.path());
    let o = credtrail(&db, &["sql", "SELECT nope FROM calls"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Referenced column \"nope\" not found"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // Evidence cannot be changed through sql. (An unqualified name finds this connection's
    // temporary views first: the store's own are in its catalog.)
    let o = credtrail(&db, &["sql", "DROP VIEW store.main.cloudtrail_events"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("read-only"),
        "{o:?}"
    );
    // Nor through files DuckDB would write beside it: the store, a part, a new file.
    let before = std::fs::read(&db).unwrap();
    let part = std::fs::read_dir(dir.path().join("store.duckdb.parts/cloudtrail_events"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let part_before = std::fs::read(&part).unwrap();
    let out = dir.path().join("out.csv");
    for (target, format) in [(&db, "csv"), (&part, "parquet"), (&out, "csv")] {
        for sql in [
            format!(
                "COPY (SELECT 1 AS x) TO '{}' (FORMAT {format})",
                target.display()
            ),
            // the first statement is fine, the second is not: neither runs
            format!(
                "SELECT 1; COPY (SELECT 1 AS x) TO '{}' (FORMAT {format})",
                target.display()
            ),
            format!(
                "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{}'",
                target.display()
            ),
        ] {
            let o = credtrail(&db, &["sql", &sql]);
            assert_eq!(o.status.code(), Some(2), "{sql}: {o:?}");
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("is refused"),
                "{sql}: {o:?}"
            );
        }
    }
    assert!(std::fs::read(&db).unwrap() == before, "the store changed");
    assert!(
        std::fs::read(&part).unwrap() == part_before,
        "a part changed"
    );
    assert!(!out.exists());
    let n = stdout(&credtrail(
        &db,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM cloudtrail_events",
        ],
    ));
    assert_eq!(n, "n\n7\n");
    // No store: a clear error, and no file created.
    let missing = dir.path().join("missing.duckdb");
    let o = credtrail(&missing, &["sql", "SELECT 1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!missing.exists());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("no such file").count(), 1, "said once: {err}");
    // Not a store: DuckDB's reason, once, without its error code.
    let junk = dir.path().join("junk.duckdb");
    std::fs::write(&junk, "not a database\n").unwrap();
    let o = credtrail(&junk, &["sql", "SELECT 1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("not a valid DuckDB database file").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("Unknown error code"), "{err}");
    // A required flag, a bad time.
    let o = credtrail(&db, &["query", "task-timeline"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--task <TASK>"),
        "{o:?}"
    );
    let o = credtrail(
        &db,
        &[
            "query",
            "task-timeline",
            "--task",
            ID_A,
            "--since",
            "yesterday-ish",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--since"),
        "{o:?}"
    );
}

#[test]
fn query_list_names_every_investigation() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&credtrail(
        &dir.path().join("none.duckdb"),
        &["query", "--list"],
    ));
    for (file, _) in investigation::BUILTIN {
        let id = file.trim_end_matches(".sql");
        assert!(out.contains(&format!("credtrail query {id} ")), "{out}");
    }
    assert!(out.contains("--access-key-id ACCESS_KEY_ID"), "{out}");
}

/// The investigations on a simulated fleet (simulate → collect → ingest, as `credtrail demo`),
/// checked against the attacks the simulator planted (truth.jsonl).
#[test]
fn investigations_explain_planted_attacks() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("demo");
    let opts = credtrail::demo::DemoOptions {
        out: Some(out_dir.clone()),
        hosts: 3,
        hours: 3,
        ..credtrail::demo::DemoOptions::default()
    };
    credtrail::demo::run(&opts, &mut Vec::new()).unwrap();
    let truth: Vec<Value> = std::fs::read_to_string(out_dir.join("simulation/truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let planted = |kind: &str| {
        truth
            .iter()
            .find(|t| t["kind"] == kind)
            .unwrap_or_else(|| panic!("no planted {kind}"))
            .clone()
    };
    let store = Store::open_read_only(&out_dir.join("credtrail.duckdb")).unwrap();
    let run = |id: &str, params: &[(&str, &str)]| -> Vec<Value> {
        let opts = RunOptions {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..RunOptions::default()
        };
        let mut out = Vec::new();
        investigation::run(&store, &investigation(id), &opts, Format::Json, &mut out).unwrap();
        serde_json::from_slice::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    // The views neither drop nor repeat rows, and agree with the detections' view.
    let n = |sql: &str| store.count(sql).unwrap();
    assert_eq!(
        n("SELECT count(*) FROM calls"),
        n("SELECT count(*) FROM cloudtrail_events")
    );
    assert_eq!(
        n("SELECT count(*) FROM fetches"),
        n("SELECT count(*) FROM credential_requests")
    );
    assert_eq!(
        n("SELECT count(*) FROM calls WHERE role_kind = 'task'"),
        n("SELECT count(*) FROM task_session_calls")
    );
    assert!(n("SELECT count(*) FROM calls WHERE role_kind = 'execution'") > 0);
    assert!(n("SELECT count(*) FROM fetches WHERE role_arn IS NOT NULL") > 0);

    // Oldest first (as instants: `…:35Z` is before `…:35.613Z`).
    let sorted = |r: &[Value]| {
        let times: Vec<i64> = r
            .iter()
            .map(|r| credtrail::timestamp::parse_iso_us(r["time"].as_str().unwrap()).unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{r:#?}");
    };

    // Credentials fetched from another task's address: who-fetched names that task.
    let t = planted("fetch_foreign_source");
    let task = t["task_arn"].as_str().unwrap();
    let r = run("who-fetched", &[("task", task)]);
    sorted(&r);
    let foreign: Vec<&Value> = r.iter().filter(|r| r["same_task"] == false).collect();
    assert_eq!(foreign.len(), 1, "{foreign:#?}");
    assert_eq!(foreign[0]["time"], t["first_seen"]);
    assert_eq!(
        foreign[0]["requester_task_arn"],
        t["evidence"]["requester_task_arn"]
    );
    assert!(
        foreign[0]["requester"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", t["source_ip"].as_str().unwrap()))
    );
    assert!(r.iter().any(|r| r["same_task"] == true));

    // Use after stop: the key's history shows the calls after the stop, all the task's.
    let t = planted("use_after_stop");
    let task = t["task_arn"].as_str().unwrap();
    let key = t["evidence"]["access_key_id"].as_str().unwrap();
    let r = run("key-history", &[("access_key_id", key)]);
    sorted(&r);
    assert!(
        r.iter()
            .all(|r| r["task_arn"] == task && r["role_kind"] == "task")
    );
    let stopped = t["evidence"]["stopped_at"].as_str().unwrap();
    let late: Vec<&Value> = r
        .iter()
        .filter(|r| r["time"].as_str().unwrap() > stopped)
        .collect();
    assert!(!late.is_empty());
    assert_eq!(late[0]["time"], t["first_seen"]);
    assert!(
        late.iter()
            .any(|r| r["time"] == t["first_seen"] && r["source_ip"] == t["source_ip"]),
        "{late:#?}"
    );
    // … and the task's timeline has its stop before them.
    let r = run("task-timeline", &[("task", task)]);
    sorted(&r);
    let stop = r.iter().position(|r| r["event"] == "stopped").unwrap();
    let first_late = r
        .iter()
        .position(|r| r["time"] == t["first_seen"] && r["source"] == "cloudtrail")
        .unwrap();
    assert!(stop < first_late);
    assert!(r.iter().any(|r| r["source"] == "audit"));
    assert!(
        r.iter()
            .any(|r| r["source"] == "ecs" && r["event"] == "started")
    );

    // Use from another task's address: the address's history shows both tasks.
    let t = planted("use_by_other_task");
    let ip = t["source_ip"].as_str().unwrap();
    let r = run("source-ip", &[("ip", ip)]);
    sorted(&r);
    let other = &t["evidence"]["other_task_arn"];
    assert!(
        r.iter()
            .any(|r| r["source"] == "ecs" && &r["task_arn"] == other),
        "{r:#?}"
    );
    let stolen: Vec<&Value> = r
        .iter()
        .filter(|r| r["source"] == "cloudtrail" && r["task_arn"] == t["task_arn"])
        .collect();
    assert_eq!(stolen.len() as u64, t["count"].as_u64().unwrap(), "{r:#?}");

    // Denied burst: the role's usage counts the denied calls.
    let t = planted("access_denied_burst");
    let role = t["role_arn"].as_str().unwrap();
    let r = run("role-usage", &[("role", role)]);
    let denied: u64 = r.iter().map(|r| r["denied"].as_u64().unwrap()).sum();
    assert!(denied >= t["count"].as_u64().unwrap(), "{r:#?}");
    assert!(r.iter().all(|r| r["role_arn"] == role));
}
