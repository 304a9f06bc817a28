//! `cargo bench -p credtrail --bench fleet`
//!
//! 1. Scale (`CREDTRAIL_BENCH_ONLY=scale`): simulates `CREDTRAIL_BENCH_HOSTS` hosts (default 100)
//!    for `CREDTRAIL_BENCH_HOURS` hours (default 24; about 10 million CloudTrail records), ingests
//!    every input (raw audit logs, describe-tasks, IAM, the network inventory, CloudTrail), then
//!    runs, each in a child
//!    process of its own so wall time, CPU seconds and peak RSS are its alone: every built-in
//!    detection (what `credtrail analyze` runs), and as the reference one DuckDB aggregation pass
//!    over `cloudtrail_events` grouping by role session and event. Prints both and the ratio, and
//!    scores the findings against `truth.jsonl`. `CREDTRAIL_BENCH_DIR=D` keeps the simulation and
//!    store in D and reuses them on the next run (the simulation and ingest take minutes).
//! 2. Quality (`CREDTRAIL_BENCH_ONLY=quality`): small fleets (6 hosts, 6 hours;
//!    `CREDTRAIL_BENCH_QUALITY_HOSTS`, `CREDTRAIL_BENCH_QUALITY_HOURS`) for each seed of
//!    `CREDTRAIL_BENCH_SEEDS` (default 1001,1002,1003,1004,1005, seeds no test uses), scored per
//!    finding kind: planted findings found and missed, findings matching nothing planted, recall
//!    and precision; found findings at another severity than their truth line states, and
//!    unplanted ones at medium or above. The simulated trail excludes KMS and logs S3 object
//!    events of some buckets only: an action it cannot show must come out unverifiable, never
//!    unused (a planted unused action is planted only where the trail can show it, so an
//!    action wrongly called unused makes its finding unplanted); KMS actions called unused are
//!    counted apart (must be 0).
//!
//! Numbers are printed, never asserted: the tests check behaviour, this measures it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use credtrail::detect::{self, Finding, RunOptions};
use credtrail::score::{self, KindScore};
use credtrail::store::Store;
use credtrail_collector::sys;
use credtrail_sim::Truth;
use credtrail_sim::{self as simulate, Attack, SimConfig};

fn main() {
    if let Ok(phase) = std::env::var("CREDTRAIL_BENCH_PHASE") {
        let store = PathBuf::from(std::env::var("CREDTRAIL_BENCH_STORE").unwrap());
        run_phase(&phase, &store);
        return;
    }
    let only = std::env::var("CREDTRAIL_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "quality" {
        quality();
    }
    if only.is_empty() || only == "scale" {
        scale();
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Simulates into `dir/simulation` and ingests it into `dir/credtrail.duckdb`.
fn build(dir: &Path, seed: u64, hosts: usize, hours: u32) -> Vec<Truth> {
    let sim = dir.join("simulation");
    let cfg = SimConfig {
        seed,
        hosts,
        hours,
        clusters: 2,
        attacks: Attack::ALL.into_iter().collect(),
        threads: threads(),
    };
    let t = Instant::now();
    let s = simulate::run(&cfg, &sim).unwrap();
    let sim_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let store = Store::open(&dir.join("credtrail.duckdb")).unwrap();
    credtrail::audit::ingest(
        &store,
        &[sim.join("hosts")],
        &credtrail::audit::Options::default(),
    )
    .unwrap();
    credtrail::ecs::ingest(&store, &[sim.join("ecs")]).unwrap();
    credtrail::demo::ingest_network(&store, &s.network.snapshots).unwrap();
    credtrail::iam::ingest(&store, &sim.join("iam/authorization-details.json")).unwrap();
    let ct = credtrail::cloudtrail::ingest_paths(
        &store,
        &[sim.join("cloudtrail")],
        &credtrail::cloudtrail::Options {
            threads: 0,
            progress: false,
            fetchers: 0,
        },
    )
    .unwrap();
    eprintln!(
        "seed {seed}: {hosts} hosts, {hours} h, {} CloudTrail records: simulated in {sim_s:.1} s, ingested in {:.1} s",
        ct.stored,
        t.elapsed().as_secs_f64()
    );
    s.truth
}

fn read_truth(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Truth lines read back from `truth.jsonl` (a reused directory has no in-memory truth).
fn truth_from_file(path: &Path) -> Vec<Truth> {
    let kind = |k: &str| {
        *credtrail_sim::truth::KINDS
            .iter()
            .find(|x| **x == k)
            .unwrap()
    };
    let sev = |s: &str| match s {
        "low" => "low",
        "medium" => "medium",
        "high" => "high",
        _ => "critical",
    };
    read_truth(path)
        .into_iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().map(str::to_string);
            Truth {
                kind: kind(v["kind"].as_str().unwrap()),
                severity: sev(v["severity"].as_str().unwrap()),
                title: s("title").unwrap_or_default(),
                first_seen: s("first_seen").unwrap_or_default(),
                last_seen: s("last_seen").unwrap_or_default(),
                count: v["count"].as_u64().unwrap_or(0),
                cluster_arn: s("cluster_arn"),
                task_arn: s("task_arn"),
                role_arn: s("role_arn"),
                host: s("host"),
                source_ip: s("source_ip"),
                evidence: v["evidence"].clone(),
            }
        })
        .collect()
}

fn analyze(store: &Store) -> Vec<Finding> {
    let loaded = detect::builtin();
    let report = detect::run(store, &loaded.detections, &RunOptions::default());
    for (file, e) in &report.failed {
        eprintln!("detection {file} failed: {e}");
    }
    report.findings
}

fn print_scores(scores: &BTreeMap<&'static str, KindScore>) {
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{:.0}%", v * 100.0));
    println!(
        "{:<28} {:>6} {:>7} {:>10} {:>7} {:>10} {:>10} {:>11}",
        "kind", "found", "missed", "unplanted", "recall", "precision", "other sev", "unpl ≥ med"
    );
    let mut total = KindScore::default();
    let row = |kind: &str, s: &KindScore| {
        println!(
            "{kind:<28} {:>6} {:>7} {:>10} {:>7} {:>10} {:>10} {:>11}",
            s.found,
            s.missed,
            s.unplanted,
            pct(s.recall()),
            pct(s.precision()),
            s.other_severity,
            s.unplanted_medium_up
        );
    };
    for (kind, s) in scores {
        total.add(s);
        row(kind, s);
    }
    row("all kinds", &total);
}

fn quality() {
    let seeds: Vec<u64> = std::env::var("CREDTRAIL_BENCH_SEEDS")
        .unwrap_or_else(|_| "1001,1002,1003,1004,1005".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let hosts = env_or("CREDTRAIL_BENCH_QUALITY_HOSTS", 6) as usize;
    let hours = env_or("CREDTRAIL_BENCH_QUALITY_HOURS", 6) as u32;
    let mut all: BTreeMap<&'static str, KindScore> = BTreeMap::new();
    let mut benign_total = 0;
    // Actions called unused, and of those, KMS actions (the simulated trail excludes KMS: each
    // would be a wrong verdict).
    let (mut listed_total, mut listed_kms) = (0usize, 0usize);
    // Actions called unused that the role's sessions really used (the simulation's
    // used-actions.jsonl counts calls the trail did not log too): each one is a wrong verdict.
    let mut listed_used = 0usize;
    for seed in &seeds {
        let tmp = tempfile::tempdir().unwrap();
        let truth = build(tmp.path(), *seed, hosts, hours);
        let store = Store::open(&tmp.path().join("credtrail.duckdb")).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join("simulation/manifest.json")).unwrap(),
        )
        .unwrap();
        let (findings, benign): (Vec<Finding>, Vec<Finding>) = analyze(&store)
            .into_iter()
            .partition(|f| !expected_benign(&manifest, f));
        benign_total += benign.len();
        let used: std::collections::HashSet<(String, String)> =
            std::fs::read_to_string(tmp.path().join("simulation/used-actions.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (
                        v["role_arn"].as_str().unwrap().to_string(),
                        v["action"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
        for f in findings.iter().filter(|f| f.kind == "unused_permissions") {
            for a in f.evidence["unused_actions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let a = a.as_str().unwrap_or("");
                listed_total += 1;
                let role = f.role_arn.clone().unwrap_or_default();
                if used.contains(&(role.clone(), a.to_string())) {
                    listed_used += 1;
                    println!("  seed {seed}: {a} called unused, but {role} used it");
                }
                if a.starts_with("kms:") {
                    listed_kms += 1;
                    println!(
                        "  seed {seed}: {a} called unused by a trail that excludes KMS ({})",
                        f.role_arn.as_deref().unwrap_or("")
                    );
                }
            }
        }
        let scores = score::score(&truth, &findings);
        let mut line = Vec::new();
        for (kind, s) in &scores {
            all.entry(kind).or_default().add(s);
            if s.missed > 0 || s.unplanted > 0 || s.other_severity > 0 {
                line.push(format!(
                    "{kind}: {} missed, {} unplanted ({} at medium or above), {} found at another severity",
                    s.missed, s.unplanted, s.unplanted_medium_up, s.other_severity
                ));
            }
        }
        for f in &findings {
            if truth.iter().any(|t| score::matches(t, f)) {
                if let Some(t) = truth
                    .iter()
                    .find(|t| score::matches(t, f) && t.severity != f.severity.as_str())
                {
                    println!(
                        "  seed {seed}: {} found at {}, truth says {}: {}",
                        f.kind,
                        f.severity.as_str(),
                        t.severity,
                        f.title
                    );
                }
            } else if f.severity >= detect::Severity::Medium {
                println!(
                    "  seed {seed}: unplanted {} {}: {} ({})",
                    f.severity.as_str(),
                    f.kind,
                    f.title,
                    f.task_arn
                        .as_deref()
                        .or(f.role_arn.as_deref())
                        .unwrap_or("")
                );
            }
        }
        println!(
            "seed {seed}: {} planted, {} findings (+{} benign at medium, as detections.md rates them){}",
            truth.len(),
            findings.len(),
            benign.len(),
            if line.is_empty() {
                ", all matched".to_string()
            } else {
                format!("; {}", line.join("; "))
            }
        );
    }
    println!(
        "quality over {} seeds ({}), {hosts} hosts × {hours} h each:",
        seeds.len(),
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    print_scores(&all);
    println!(
        "unused actions listed: {listed_total}, of which KMS actions (the trail excludes KMS, must be 0): {listed_kms}"
    );
    println!(
        "unused_actions precision: {:.2} ({} of {listed_total} listed actions the roles really used, logged or not)",
        if listed_total == 0 {
            1.0
        } else {
            (listed_total - listed_used) as f64 / listed_total as f64
        },
        listed_used
    );
    println!(
        "benign at medium (a stale credential ID beside working clients, an all-429 throttling window): {benign_total}"
    );
}

/// A finding detections.md rates medium for benign behaviour the simulation recorded in its
/// manifest rather than in truth.jsonl: refused-request bursts of the client holding a stale
/// credential ID, and all-429 bursts inside a throttling window of the agent.
fn expected_benign(manifest: &serde_json::Value, f: &Finding) -> bool {
    if f.kind != "fetch_denied_burst" || f.severity > detect::Severity::Medium {
        return false;
    }
    let stale = &manifest["benign"]["stale_credential_client"];
    if stale["host"].as_str() == f.host.as_deref()
        && stale["source_ip"].as_str() == f.source_ip.as_deref()
    {
        return true;
    }
    let all_429 = f.evidence["statuses"]
        .as_object()
        .is_some_and(|m| m.keys().all(|k| k == "429"));
    let host = manifest["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["container_instance_arn"].as_str() == f.host.as_deref());
    all_429
        && host.is_some_and(|h| {
            h["agent_faults"].as_array().into_iter().flatten().any(|w| {
                w["status"] == 429
                    && w["from"].as_str() <= f.last_seen.as_deref()
                    && w["to"].as_str() >= f.first_seen.as_deref()
            })
        })
}

fn scale() {
    let hosts = env_or("CREDTRAIL_BENCH_HOSTS", 100) as usize;
    let hours = env_or("CREDTRAIL_BENCH_HOURS", 24) as u32;
    let seed = env_or("CREDTRAIL_BENCH_SEED", 4242);
    let tmp;
    let dir = match std::env::var("CREDTRAIL_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    let store_path = dir.join("credtrail.duckdb");
    if !store_path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        build(&dir, seed, hosts, hours);
    } else {
        eprintln!("reusing {}", store_path.display());
    }
    let truth = truth_from_file(&dir.join("simulation/truth.jsonl"));
    let records = Store::open(&store_path)
        .unwrap()
        .count("SELECT count(*) FROM cloudtrail_events")
        .unwrap();
    println!(
        "scale: {} CloudTrail events, {} hosts, {} h (store {})",
        records,
        hosts,
        hours,
        store_path.display()
    );
    println!(
        "{:<52} {:>9} {:>9} {:>10}",
        "phase", "wall s", "CPU s", "peak RSS"
    );
    let mut res = Vec::new();
    for (phase, label) in [
        ("analyze", "credtrail analyze (every built-in detection)"),
        (
            "reference",
            "DuckDB: one GROUP BY pass over cloudtrail_events",
        ),
    ] {
        let p = sys::run_phase(phase, &[("CREDTRAIL_BENCH_STORE", &store_path)]).unwrap();
        println!(
            "{label:<52} {:>9.2} {:>9.2} {:>7.1} MB",
            p.wall_seconds,
            p.cpu_seconds,
            p.max_rss_bytes / 1e6
        );
        res.push(p);
    }
    println!(
        "analyze took {:.1}× the reference pass (wall), {:.1}× (CPU); {} findings",
        res[0].wall_seconds / res[1].wall_seconds,
        res[0].cpu_seconds / res[1].cpu_seconds,
        res[0].rows
    );
    let store = Store::open(&store_path).unwrap();
    let loaded = detect::builtin();
    let report = detect::run(&store, &loaded.detections, &RunOptions::default());
    println!("seconds per step (in this process, after the measured runs):");
    for (step, secs) in &report.timings {
        println!("  {step:<44} {secs:>7.2}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("simulation/manifest.json")).unwrap())
            .unwrap();
    let (findings, benign): (Vec<Finding>, Vec<Finding>) = report
        .findings
        .into_iter()
        .partition(|f| !expected_benign(&manifest, f));
    print_scores(&score::score(&truth, &findings));
    println!(
        "benign at medium (a stale credential ID beside working clients, an all-429 throttling window): {}",
        benign.len()
    );
}

fn run_phase(phase: &str, store_path: &Path) {
    sys::report_phase(|| {
        let store = Store::open(store_path).unwrap();
        match phase {
            "analyze" => analyze(&store).len() as u64,
            "reference" => {
                store
                    .conn()
                    .execute_batch(&format!(
                        "SET memory_limit = '{}'",
                        detect::ANALYSIS_MEMORY_LIMIT
                    ))
                    .unwrap();
                store
                    .count(
                        "SELECT count(*) FROM (SELECT session_issuer_arn, session_name, \
                         event_source, event_name, count(*), min(event_time), max(event_time), \
                         count(DISTINCT source_ip) FROM cloudtrail_events GROUP BY ALL)",
                    )
                    .unwrap() as u64
            }
            other => panic!("unknown phase {other}"),
        }
    });
}
