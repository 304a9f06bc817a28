//! The week replay: a simulated week is ingested day by day, as a weekly or daily schedule would
//! find it (each day's audit lines, describe-tasks pages, network snapshots and CloudTrail
//! deliveries), with `analyze --since-last-run` after each day. The changes the seven runs print
//! (new findings added, resolved ones removed, severity changes applied), in sum, must be the
//! findings one full run on a fresh store holding the whole week produces: the same (kind, key,
//! severity), and the store's current findings the same counts. Every run after the first is
//! incremental (increment.rs): it judges the events since the previous run's latest event less
//! the 24-hour horizon, and the findings they touch.

#[path = "common/cli.rs"]
mod cli;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use cli::credtrail;
use serde_json::Value;

const DAYS: u32 = 7;
const HOSTS: u32 = 2;

/// (kind, task, role, host, source address): every column a detection keys on.
type Key = (String, String, String, String, String);

fn key(f: &Value) -> Key {
    let s = |c: &str| f[c].as_str().unwrap_or("").to_string();
    (
        s("kind"),
        s("task_arn"),
        s("role_arn"),
        s("host"),
        s("source_ip"),
    )
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `2026-11-16` plus `d` days, as `YYYY-MM-DD`.
fn day(d: u32) -> String {
    format!("2026-11-{:02}", 16 + d)
}

/// Copies the lines of `src` written before `end` (a prefix: the file as it was then) into
/// `dst`; nothing when there are none.
fn audit_prefix(src: &Path, dst: &Path, end: &str) {
    let text = std::fs::read_to_string(src).unwrap();
    let mut len = 0;
    for line in text.split_inclusive('\n') {
        if line.get(..20).is_some_and(|t| t >= end) {
            break;
        }
        len += line.len();
    }
    if len > 0 {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(dst, &text[..len]).unwrap();
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// The inputs of day `d` (of `DAYS`), under `out`: audit files as they were at the day's end,
/// the day's describe-tasks pages and network snapshots (named by their time), that day's
/// CloudTrail delivery directories (the last day takes the late deliveries after the week).
/// Task definitions, IAM and the trail documents come every day, as a schedule reads them.
fn day_inputs(sim: &Path, out: &Path, d: u32) -> Vec<Vec<OsString>> {
    let end = format!("{}T00:00:00Z", day(d + 1));
    let compact_start = day(d).replace('-', "");
    let compact_end = day(d + 1).replace('-', "");
    let last = d + 1 == DAYS;
    let in_day =
        |t: &str| (d == 0 || t >= compact_start.as_str()) && (last || t < compact_end.as_str());
    let mut logs = Vec::new();
    for host in names(&sim.join("hosts")) {
        let src = sim.join("hosts").join(&host).join("var/log/ecs");
        let dst = out.join("hosts").join(&host);
        for f in names(&src) {
            audit_prefix(&src.join(&f), &dst.join(&f), if last { "9" } else { &end });
        }
        if dst.exists() {
            logs.push(dst.into_os_string());
        }
    }
    let ecs = out.join("ecs");
    std::fs::create_dir_all(&ecs).unwrap();
    for f in names(&sim.join("ecs")) {
        // describe-tasks-<cluster>-<YYYYMMDDTHHMMZ>-<page>.json
        if let Some(t) = f.rsplit('-').nth(1)
            && f.starts_with("describe-tasks-")
            && in_day(t)
        {
            std::fs::copy(sim.join("ecs").join(&f), ecs.join(&f)).unwrap();
        }
    }
    let network: Vec<OsString> = names(&sim.join("network"))
        .into_iter()
        .filter(|t| in_day(t))
        .map(|t| sim.join("network").join(t).into_os_string())
        .collect();
    let mut trail: Vec<OsString> = vec![
        sim.join("cloudtrail/event-selectors.json").into(),
        sim.join("cloudtrail/trails.json").into(),
    ];
    let accounts = sim.join("cloudtrail/AWSLogs");
    for account in names(&accounts) {
        let regions = accounts.join(&account).join("CloudTrail");
        for region in names(&regions) {
            let month = regions.join(&region).join("2026/11");
            for date in names(&month) {
                let date_n: u32 = date.parse().unwrap();
                if in_day(&format!("202611{date_n:02}")) {
                    trail.push(month.join(&date).into_os_string());
                }
            }
        }
    }
    let mut steps: Vec<Vec<OsString>> = Vec::new();
    if !logs.is_empty() {
        let mut a: Vec<OsString> = vec!["ingest".into(), "audit".into()];
        a.extend(logs);
        steps.push(a);
    }
    steps.push(vec![
        "ingest".into(),
        "ecs".into(),
        ecs.into_os_string(),
        sim.join("ecs/task-definitions").into_os_string(),
    ]);
    steps.push(vec![
        "ingest".into(),
        "iam".into(),
        sim.join("iam/authorization-details.json").into_os_string(),
    ]);
    let mut t: Vec<OsString> = vec!["ingest".into(), "cloudtrail".into(), "--no-progress".into()];
    t.extend(trail);
    steps.push(t);
    if !network.is_empty() {
        let mut n: Vec<OsString> = vec!["ingest".into(), "network".into()];
        n.extend(network);
        steps.push(n);
    }
    steps
}

fn findings_table(db: &Path) -> BTreeMap<String, i64> {
    let out = credtrail(
        db,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT state, count(*) FROM findings GROUP BY state ORDER BY state",
        ],
    );
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(s, n)| (s.to_string(), n.trim().parse().unwrap()))
        .collect()
}

#[test]
fn seven_daily_runs_sum_to_one_full_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The whole week, ingested at once on a fresh store, analysed once.
    let (sim, full_db) = cli::simulated_store(dir, HOSTS, DAYS * 24, 7);
    credtrail(
        &full_db,
        &["ingest", "network", sim.join("network").to_str().unwrap()],
    );
    let full = lines(&credtrail(&full_db, &["analyze", "--format", "jsonl"]));
    assert!(
        full.len() >= 5,
        "the week holds the planted attacks: {full:?}"
    );

    // Day by day on another store, analysing after each day.
    let db = dir.join("daily.duckdb");
    let mut model: BTreeMap<Key, String> = BTreeMap::new();
    let mut new_per_day = Vec::new();
    for d in 0..DAYS {
        let out = dir.join(format!("day{d}"));
        for step in day_inputs(&sim, &out, d) {
            credtrail(&db, &step);
        }
        let start = Instant::now();
        let changes = lines(&credtrail(
            &db,
            &["analyze", "--since-last-run", "--format", "jsonl"],
        ));
        eprintln!(
            "day {} ({}): analyze --since-last-run took {:.1} s, {} changes",
            d + 1,
            day(d),
            start.elapsed().as_secs_f64(),
            changes.len()
        );
        let mut new = 0;
        for c in &changes {
            let state = c["change"]["state"]
                .as_str()
                .unwrap_or_else(|| panic!("{c}"));
            let severity = c["severity"].as_str().unwrap().to_string();
            match state {
                "new" => {
                    new += 1;
                    assert!(model.insert(key(c), severity).is_none(), "new twice: {c}");
                }
                "resolved" => {
                    assert!(model.remove(&key(c)).is_some(), "resolved, never new: {c}");
                }
                "ongoing" => {
                    let was = c["change"]["previous_severity"].as_str().unwrap();
                    assert_eq!(model.insert(key(c), severity), Some(was.to_string()), "{c}");
                }
                s => panic!("unknown state {s}: {c}"),
            }
        }
        new_per_day.push(new);
    }
    let expected: BTreeMap<Key, String> = full
        .iter()
        .map(|f| (key(f), f["severity"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(expected.len(), full.len(), "one finding per (kind, key)");
    assert_eq!(
        model, expected,
        "the daily changes, in sum, are the full run"
    );
    assert!(
        new_per_day.iter().filter(|n| **n > 0).count() >= 2,
        "findings appear as the week goes, not all at once: {new_per_day:?}"
    );

    // The store's current findings are the full run's, counts included; a second run
    // without new data changes nothing.
    let current = lines(&credtrail(&db, &["analyze", "--format", "jsonl"]));
    let counts = |v: &[Value]| -> BTreeSet<(Key, String, i64)> {
        v.iter()
            .map(|f| {
                (
                    key(f),
                    f["severity"].as_str().unwrap().to_string(),
                    f["count"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(counts(&current), counts(&full));
    let again = credtrail(&db, &["analyze", "--since-last-run"]);
    assert!(
        again.starts_with(&format!("run {} (incremental, events from ", DAYS + 2))
            && again.contains(&format!("since run {}", DAYS + 1))
            && again.contains(": 0 new, 0 resolved,"),
        "{again}"
    );
    let states = findings_table(&db);
    let active: i64 = states
        .iter()
        .filter(|(s, _)| *s != "resolved")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(active, full.len() as i64, "{states:?}");
    assert_eq!(states.get("new"), None, "{states:?}");
    let runs = credtrail(
        &db,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*), sum(new_findings) - sum(resolved_findings) FROM analysis_runs",
        ],
    );
    assert_eq!(
        runs.lines().nth(1),
        Some(format!("{},{}", DAYS + 2, full.len()).as_str()),
        "{runs}"
    );
    // Only the first run judged everything; each later one judged from the previous run's
    // latest event less the horizon and the margin (24 h + 2 h).
    let modes = credtrail(
        &db,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT run_id, mode, judged_since IS NOT DISTINCT FROM
                    lag(data_watermark) OVER (ORDER BY run_id) - INTERVAL 26 HOUR
             FROM analysis_runs ORDER BY run_id",
        ],
    );
    let modes: Vec<&str> = modes.lines().skip(1).collect();
    assert_eq!(modes.len(), (DAYS + 2) as usize, "{modes:?}");
    assert_eq!(modes[0], "1,full,true", "{modes:?}");
    for m in &modes[1..] {
        assert!(m.ends_with(",incremental,true"), "{modes:?}");
    }

    // A full run on the daily store judges everything again and changes nothing.
    let full_again = credtrail(&db, &["analyze", "--full", "--since-last-run"]);
    assert!(
        full_again.starts_with(&format!("run {} (full)", DAYS + 3))
            && full_again.contains(": 0 new, 0 resolved,"),
        "{full_again}"
    );
}
