//! `credtrail report`: a simulated store with hostile strings planted in an audit log and in
//! CloudTrail, rendered, then loaded in a real headless Chromium. The page must show every
//! finding, run no script, load nothing, and show the hostile strings as text.
//!
//! Chromium comes from `scripts/install-test-tools.sh` (Debian package `chromium`). Without it the
//! browser checks fail and say so, unless `CREDTRAIL_SKIP_BROWSER=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credtrail::detect::{Finding, Severity};
use credtrail::report::{self, markdown::md};
use credtrail::store::Store;
use serde_json::{Value, json};

#[path = "common/cli.rs"]
mod cli;
use cli::{credtrail, simulated_store};

/// A user agent written to break out of HTML, rename the page and drive a terminal.
const HOSTILE: &str =
    "<script>document.title='pwned'</script><img src=x onerror=alert(1)>\x1b]0;evil\x07\x1b[31m";
/// [`HOSTILE`] as the page's text must read: control characters shown escaped.
const HOSTILE_TEXT: &str =
    r"<script>document.title='pwned'</script><img src=x onerror=alert(1)>\x1b]0;evil\x07\x1b[31m";
const TITLE: &str = "credtrail report";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Simulate 2 hosts for 2 hours, ingest every input, then plant the hostile fetch and call.
/// Returns the store and the task ARNs of the hostile fetch and the hostile call.
fn hostile_store(dir: &Path) -> (PathBuf, String, String) {
    let (_, db) = simulated_store(dir, 2, 2, 11);
    // A recorded run before the hostile lines arrive: the next report leads with them as new.
    credtrail(&db, &["analyze", "--format", "jsonl"]);
    let (fetch_task, cluster, ci, time, call_task, task_id, role, call_time) = {
        let store = Store::open(&db).unwrap();
        let (fetch_task, cluster, ci, time): (String, String, String, String) = store
            .conn()
            .query_row(
                // a task no planted attack fetched for with a hand tool; the hostile fetch comes
                // 70 minutes after its first, once its family's clients are learned
                "SELECT task_arn, cluster, container_instance_arn, \
                        strftime(min(event_time) + INTERVAL 70 MINUTE, '%Y-%m-%dT%H:%M:%SZ') \
                 FROM credential_requests \
                 WHERE task_arn IS NOT NULL AND status = 200 AND event_type = 'GetCredentials' \
                   AND task_arn NOT IN (SELECT task_arn FROM credential_requests \
                                        WHERE task_arn IS NOT NULL AND hand_tool_client(user_agent)) \
                 GROUP BY ALL ORDER BY task_arn LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("a task with a credential fetch");
        let (call_task, task_id, role, call_time): (String, String, String, String) = store
            .conn()
            .query_row(
                "SELECT task_arn, task_id, task_role_arn, \
                        strftime(stopped_at + INTERVAL 10 MINUTE, '%Y-%m-%dT%H:%M:%SZ') \
                 FROM tasks t \
                 WHERE stopped_at IS NOT NULL AND task_role_arn IS NOT NULL \
                   AND NOT EXISTS (SELECT 1 FROM task_session_calls c \
                                   WHERE c.task_arn = t.task_arn AND c.event_time > t.stopped_at) \
                 ORDER BY stopped_at, task_arn LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("a stopped task with a task role and no calls after its stop");
        (
            fetch_task, cluster, ci, time, call_task, task_id, role, call_time,
        )
    };

    let hostile = dir.join("hostile");
    std::fs::create_dir_all(&hostile).unwrap();
    let log = hostile.join("audit.log");
    std::fs::write(
        &log,
        format!(
            "{time} 200 169.254.172.9:40999 \"/v2/credentials/0f0f0f0f-0000-4000-8000-000000000001\" \"{HOSTILE}\" {fetch_task} GetCredentials 2 {cluster} {ci}\n"
        ),
    )
    .unwrap();
    let out = credtrail(&db, &["ingest", "audit", s(&log)]);
    assert!(out.contains("1 credential requests"), "{out}");

    let account = fetch_task.split(':').nth(4).unwrap().to_string();
    let region = call_task.split(':').nth(3).unwrap().to_string();
    let role_name = role.rsplit('/').next().unwrap();
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAHOSTILEEXAMPLE:{task_id}"),
            "arn": format!("arn:aws:sts::{account}:assumed-role/{role_name}/{task_id}"),
            "accountId": account,
            "accessKeyId": "ASIAHOSTILEEXAMPLE01",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role", "principalId": "AROAHOSTILEEXAMPLE", "arn": role,
                    "accountId": account, "userName": role_name
                },
                "attributes": {"creationDate": "2026-11-16T00:00:00Z", "mfaAuthenticated": "false"}
            }
        },
        "eventTime": call_time,
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.66",
        "userAgent": HOSTILE,
        "requestParameters": {"bucketName": HOSTILE, "key": "a\"b'c&d"},
        "responseElements": null,
        "requestID": "HOSTILEREQUEST01",
        "eventID": "0f0f0f0f-0000-4000-8000-00000000beef",
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "recipientAccountId": account,
        "eventCategory": "Data"
    });
    let trail = hostile.join("hostile-cloudtrail.json");
    std::fs::write(&trail, json!({"Records": [record]}).to_string()).unwrap();
    let out = credtrail(&db, &["ingest", "cloudtrail", "--no-progress", s(&trail)]);
    assert!(out.contains("1 new"), "{out}");
    (db, fetch_task, call_task)
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The DOM of `page` after Chromium loaded it, or `None` when the browser is absent and
/// `CREDTRAIL_SKIP_BROWSER=1`.
fn dump_dom(page: &Path) -> Option<String> {
    let Some(browser) = chromium() else {
        if std::env::var("CREDTRAIL_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("CREDTRAIL_SKIP_BROWSER=1: chromium not found, browser checks skipped");
            return None;
        }
        panic!(
            "chromium not found on PATH: the report test loads report.html in a real browser. \
             Install it with scripts/install-test-tools.sh (Debian: apt-get install chromium), \
             or set CREDTRAIL_SKIP_BROWSER=1 to skip these checks"
        );
    };
    let profile = tempfile::tempdir().unwrap();
    // Output goes to files: a DOM larger than a pipe's buffer would block the browser while
    // this waits for it to exit.
    let stdout_path = profile.path().join("dom.html");
    let stderr_path = profile.path().join("stderr.txt");
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within 180 s", browser.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(
        status.success() && dom.contains("</html>"),
        "{} failed: {status:?}\n{}",
        browser.display(),
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    Some(dom)
}

/// Start tags of serialized HTML: (name, [(attribute, value)]). Text in a serialized DOM has
/// `<` escaped, so every `<` starts markup.
fn tags(dom: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = dom.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = dom[i..].find('<') {
        i += p + 1;
        if matches!(b.get(i), Some(b'/' | b'!' | b'?')) {
            continue;
        }
        let name_end = dom[i..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map_or(dom.len(), |e| i + e);
        let name = dom[i..name_end].to_ascii_lowercase();
        i = name_end;
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                break;
            }
            let an_end = dom[i..]
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
                .map_or(dom.len(), |e| i + e);
            let an = dom[i..an_end].to_ascii_lowercase();
            i = an_end;
            let mut val = String::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                if let Some(&q) = b.get(i).filter(|q| **q == b'"' || **q == b'\'') {
                    let end = dom[i + 1..]
                        .find(q as char)
                        .map_or(dom.len(), |e| i + 1 + e);
                    val = dom[i + 1..end].to_string();
                    i = end + 1;
                } else {
                    let end = dom[i..]
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .map_or(dom.len(), |e| i + e);
                    val = dom[i..end].to_string();
                    i = end;
                }
            }
            attrs.push((an, val));
        }
        out.push((name, attrs));
    }
    out
}

/// Text as a DOM serializer writes it: `& < >` escaped (and non-breaking spaces).
fn text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// What every loaded page must satisfy: no script, no handler, nothing loaded, title unchanged.
fn assert_inert(dom: &str) {
    let tags = tags(dom);
    assert!(tags.len() > 50, "the DOM was parsed: {} tags", tags.len());
    for (name, attrs) in &tags {
        assert_ne!(name, "script", "a script element in the DOM");
        assert!(
            !matches!(
                name.as_str(),
                "iframe" | "object" | "embed" | "img" | "link" | "base" | "form"
            ),
            "<{name}> in the DOM"
        );
        for (a, v) in attrs {
            assert!(!a.starts_with("on"), "<{name} {a}={v:?}> in the DOM");
            if matches!(
                a.as_str(),
                "src" | "href" | "xlink:href" | "action" | "srcset"
            ) {
                assert!(v.starts_with('#'), "<{name} {a}={v:?}>: not a page anchor");
            }
            if a == "style" {
                assert!(!v.contains("url("), "<{name} style={v:?}>");
            }
        }
    }
    assert!(!dom.contains("url(") && !dom.contains("@import"));
    let t0 = dom.find("<title>").expect("a title") + "<title>".len();
    let t1 = dom[t0..].find("</title>").unwrap() + t0;
    assert_eq!(&dom[t0..t1], TITLE, "the page title changed: a script ran");
}

#[test]
fn report_shows_findings_and_keeps_hostile_logs_inert() {
    let dir = tempfile::tempdir().unwrap();
    let (db, fetch_task, call_task) = hostile_store(dir.path());

    // The first report after them leads with what changed since the last recorded run: the
    // hostile fetch and call, new, escaped.
    let first_dir = dir.path().join("first");
    credtrail(&db, &["report", "--out", s(&first_dir)]);
    let first = std::fs::read_to_string(first_dir.join("report.md")).unwrap();
    let lead = first.split("\n## ").nth(1).unwrap();
    assert!(
        lead.starts_with("Since the last run\n\nrun 2 (incremental, events from ")
            && lead.contains("since run 1 (analyze at "),
        "{lead}"
    );
    let new = lead
        .split("### New (")
        .nth(1)
        .expect("new findings")
        .split("\n###")
        .next()
        .unwrap();
    for task in [&fetch_task, &call_task] {
        assert!(new.contains(&md(task)), "{task} in {new}");
    }
    assert!(new.contains(&md(HOSTILE)), "{new}");
    assert!(!first.contains('\x1b') && !first.contains("<script"));
    let first_html = std::fs::read_to_string(first_dir.join("report.html")).unwrap();
    assert!(first_html.contains("<section id=\"changes\"><h2>Since the last run</h2>"));
    assert!(!first_html.to_ascii_lowercase().contains("<script"));

    let jsonl = credtrail(&db, &["analyze", "--format", "jsonl"]);
    let findings: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hostile_fetch = findings
        .iter()
        .find(|f| f["kind"] == "fetch_unusual_client" && f["task_arn"] == fetch_task.as_str())
        .expect("the hostile fetch is a fetch_unusual_client finding");
    assert_eq!(
        hostile_fetch["title"],
        format!("Task credentials fetched by {HOSTILE}, a client its family does not use")
    );
    let hostile_call = findings
        .iter()
        .find(|f| f["kind"] == "use_after_stop" && f["task_arn"] == call_task.as_str())
        .expect("the hostile call is a use_after_stop finding");
    assert_eq!(hostile_call["evidence"]["calls"][0]["user_agent"], HOSTILE);

    // The exports carry the hostile strings as JSON string values, exactly, one object a line.
    let ocsf = credtrail(&db, &["analyze", "--format", "ocsf"]);
    assert!(
        !ocsf.contains('\x1b') && !ocsf.contains('\x07'),
        "control characters are escaped"
    );
    let ocsf: Vec<Value> = ocsf
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ocsf.len(), findings.len());
    let call = ocsf
        .iter()
        .find(|o| {
            o["finding_info"]["types"][0] == "use_after_stop"
                && o["resources"][0]["uid"] == call_task.as_str()
        })
        .unwrap();
    assert_eq!(
        call["evidences"][0]["data"]["calls"][0]["user_agent"],
        HOSTILE
    );
    let asff = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["--store", s(&db), "analyze", "--format", "asff"])
        .env("AWS_REGION", "us-east-1")
        .env_remove("CREDTRAIL_CONFIG")
        .output()
        .unwrap();
    assert!(asff.status.success(), "{asff:?}");
    assert!(
        !asff.stdout.contains(&0x1b),
        "control characters are escaped"
    );
    let asff: Vec<Value> = serde_json::from_slice(&asff.stdout).unwrap();
    let fetch = asff
        .iter()
        .find(|a| {
            a["GeneratorId"] == "credtrail/fetch_unusual_client"
                && a["Resources"][0]["Id"] == fetch_task.as_str()
        })
        .unwrap();
    assert_eq!(fetch["Title"], hostile_fetch["title"]);

    let out_dir = dir.path().join("out");
    let printed = credtrail(&db, &["report", "--out", s(&out_dir)]);
    assert!(
        printed.contains(&format!("{} findings", findings.len())),
        "{printed}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["--store", s(&db), "report", "--out", s(&out_dir)])
        .args(["--since", "last tuesday"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--since \"last tuesday\" is not a time")
    );
    let early = credtrail(
        &db,
        &[
            "report",
            "--out",
            s(&dir.path().join("early")),
            "--until",
            "2026-11-16T00:00:01Z",
        ],
    );
    assert!(
        early.starts_with("0 findings"),
        "--until bounds the events: {early}"
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    let md_text = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    // Three analyze runs since: nothing changed (a report over a slice of time is not a run).
    assert!(
        md_text.contains("run 6 (incremental, events from ")
            && md_text.contains("since run 5 (analyze at ")
            && md_text.contains(&format!(": 0 new, 0 resolved, {} ongoing", findings.len())),
        "{}",
        &md_text[..2000.min(md_text.len())]
    );

    // The file itself: a CSP, no script, no control character, the hostile string as text.
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
    ));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(!html.contains("<img"));
    assert!(!html.chars().any(|c| c.is_control() && c != '\n'));
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(html.contains("<svg"), "the pictures are inline");
    assert!(html.len() < 2_000_000, "{} bytes", html.len());

    // report.md: hostile strings escaped, no raw escape or bell byte.
    assert!(!md_text.contains('\x1b') && !md_text.contains('\x07'));
    assert!(!md_text.contains("<script") && !md_text.contains("<img"));
    let escaped = md(HOSTILE);
    assert_eq!(
        escaped,
        r"&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;\\x1b\]0;evil\\x07\\x1b\[31m"
    );
    assert!(
        md_text.matches(&escaped).count() >= 3,
        "title, fetch evidence and call evidence"
    );
    for f in &findings {
        assert!(md_text.contains(&md(f["kind"].as_str().unwrap())));
    }

    // The coverage section says what `credtrail coverage` says.
    let cov: Value =
        serde_json::from_str(&credtrail(&db, &["coverage", "--format", "json"])).unwrap();
    let section = md_text
        .split("## Coverage: what this report can judge")
        .nth(1)
        .expect("a coverage section")
        .split("\n## ")
        .next()
        .unwrap();
    let hosts = cov["hosts"].as_array().unwrap();
    assert!(!hosts.is_empty());
    for h in hosts {
        assert!(
            section.contains(&md(h["host"].as_str().unwrap())),
            "{section}"
        );
        assert!(
            section.contains(h["covered_from"].as_str().unwrap()),
            "{section}"
        );
    }
    let t = &cov["tasks"];
    assert!(
        section.contains(&format!(
            "Tasks: {} known, {} covered,",
            t["total"], t["covered"]
        )),
        "{section}"
    );
    for m in cov["missing_inputs"].as_array().unwrap() {
        assert!(
            section.contains(&md(m["input"].as_str().unwrap())),
            "{section}"
        );
    }
    assert!(html.contains("<section id=\"coverage\">"));

    // The page as a browser builds it.
    let Some(dom) = dump_dom(&out_dir.join("report.html")) else {
        return;
    };
    assert_inert(&dom);
    for f in &findings {
        let kind = f["kind"].as_str().unwrap();
        let title = f["title"].as_str().unwrap();
        assert!(dom.contains(&text(kind)), "kind {kind} not in the page");
        let shown = text(&credtrail::terminal::escape_control(title));
        assert!(dom.contains(&shown), "title {shown:?} not in the page");
    }
    let hostile_text = text(HOSTILE_TEXT);
    assert!(
        dom.matches(&hostile_text).count() >= 3,
        "the hostile user agent shown as text in the title, the fetches and the calls"
    );
    assert!(dom.contains("bucketName"), "request parameters of the call");
    assert!(
        dom.contains("a\\\"b'c&amp;d"),
        "quotes in request parameters"
    );
    assert!(!dom.contains("pwned</title>"));
}

fn finding(kind: &str, severity: Severity, role: &str, evidence: Value) -> Finding {
    Finding {
        kind: kind.into(),
        severity,
        title: format!("Role {role} grants actions no session used"),
        first_seen: Some("2026-11-16T00:00:00Z".into()),
        last_seen: Some("2026-11-16T02:00:00Z".into()),
        count: 1,
        cluster_arn: None,
        task_arn: None,
        role_arn: Some(format!("arn:aws:iam::123456789012:role/{role}")),
        host: None,
        source_ip: None,
        evidence,
        detected_severity: None,
        suppressed: None,
        change: None,
    }
}

/// The least-privilege section, from hand-made `unused_permissions` findings in the documented
/// shape (the detection is written elsewhere): counts, lists, the policy as JSON, odd fields
/// tolerated.
#[test]
fn least_privilege_from_unused_permissions_findings() {
    let store = Store::open_in_memory().unwrap();
    let mut data = report::collect(&store, None, None).unwrap();
    assert!(data.findings.is_empty() && data.roles.is_empty());
    data.findings = vec![
        finding(
            "unused_permissions",
            Severity::Medium,
            "orders-api-task",
            json!({
                "window_start": "2026-11-16T00:00:00Z",
                "window_end": "2026-11-16T02:00:00Z",
                "used_actions": [
                    {"action": "secretsmanager:GetSecretValue", "count": 405, "last_used": "2026-11-16T01:59:00Z"},
                    {"action": "kms:Decrypt", "count": 400, "last_used": "2026-11-16T01:59:01Z"}
                ],
                "unused_actions": ["s3:DeleteObject", "iam:CreateUser", "<b>evil:Action</b>"],
                "unverifiable_actions": [
                    "iam:PassRole",
                    {"action": "s3:GetObject", "reason": "the trail logs no data events"}
                ],
                "families": {"orders-api": ["secretsmanager:GetSecretValue", "kms:Decrypt"]},
                "recommended_policy": [{
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt", "secretsmanager:GetSecretValue"],
                                   "Resource": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/<db>"]}]
                }]
            }),
        ),
        finding(
            "unused_role",
            Severity::Low,
            "idle-role",
            json!({"never_fetched": true}),
        ),
        finding(
            "unused_permissions",
            Severity::Low,
            "sparse-role",
            json!({"unused_actions": ["sqs:SendMessage"], "recommended_policy": "not a list"}),
        ),
    ];
    data.roles = data
        .findings
        .iter()
        .enumerate()
        .filter_map(|(i, f)| report::role_privilege(f, i))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let w = report::write(&data, dir.path()).unwrap();
    let html = std::fs::read_to_string(&w.html).unwrap();
    let md_text = std::fs::read_to_string(&w.markdown).unwrap();
    for page in [&html, &md_text] {
        assert!(page.contains("orders-api-task") && page.contains("sparse-role"));
        assert!(page.contains("secretsmanager:GetSecretValue"));
        assert!(page.contains("the trail logs no data events"));
        assert!(page.contains("&lt;b&gt;evil:Action&lt;/b&gt;"));
        assert!(!page.contains("<b>evil"));
    }
    assert!(
        html.contains("Roles nobody used (1)") && md_text.contains("**Roles nobody used** (1)")
    );
    assert!(html.contains("<td class=\"n\"><b>7</b></td>"), "7 granted");
    assert!(html.contains("2 used · 2 unverifiable · 3 unused · 7 granted"));
    assert!(html.contains(
        "<pre>{\n  &quot;Version&quot;: &quot;2012-10-17&quot;,\n  &quot;Statement&quot;: ["
    ));
    assert!(html.contains("secret:prod/&lt;db&gt;"));
    assert!(md_text.contains("~~~json\n{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": ["));
    assert!(md_text.contains("| 7 | 2 | 2 | 3 |"));
    assert!(md_text.contains("| 1 | 0 | 0 | 1 |"), "the sparse role");

    let Some(dom) = dump_dom(&w.html) else {
        return;
    };
    assert_inert(&dom);
    assert!(dom.contains("&lt;b&gt;evil:Action&lt;/b&gt;"));
}
