//! Both programs together, as a fleet runs them: the simulator writes every host's audit logs,
//! the collector runs `--once` on each host into Parquet segments, and the analyzer ingests the
//! segments. Every line the simulator wrote must arrive exactly once, and a second ingest adds
//! nothing.

use std::collections::BTreeSet;
use std::path::Path;

use credtrail_sim::{self as simulate, SimConfig};

fn newline_count(dir: &Path) -> u64 {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        n += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    n
}

fn stored(store: &credtrail::store::Store) -> i64 {
    store
        .conn()
        .query_row(
            "SELECT (SELECT count(*) FROM credential_requests) + (SELECT count(*) FROM rejected_lines)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn simulated_fleet_is_collected_and_ingested_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = tmp.path().join("sim");
    let config = SimConfig {
        seed: 4242,
        hosts: 3,
        hours: 3,
        clusters: 1,
        attacks: BTreeSet::new(),
        threads: 2,
    };
    let summary = simulate::run(&config, &sim).unwrap();
    let segments = tmp.path().join("segments");
    let mut written = 0;
    for host in &summary.hosts {
        let audit_dir = sim.join("hosts").join(host).join("var/log/ecs");
        written += newline_count(&audit_dir);
        let mut c = credtrail_collector::Config::new(
            &audit_dir,
            tmp.path().join("state").join(format!("{host}.duckdb")),
        );
        c.host = Some(host.clone());
        c.segments_dir = Some(segments.join(host));
        c.min_free_mb = 0;
        c.notify = false;
        let run = credtrail_collector::run_once(&c).unwrap();
        assert!(run.segment_files > 0, "{host}: no segments published");
    }
    assert!(written > 1000, "the simulation wrote only {written} lines");

    let store = credtrail::store::Store::open(&tmp.path().join("credtrail.duckdb")).unwrap();
    let options = credtrail::audit::Options::default();
    credtrail::audit::ingest(&store, std::slice::from_ref(&segments), &options).unwrap();
    assert_eq!(stored(&store) as u64, written, "every simulated line, once");
    let again = credtrail::audit::ingest(&store, &[segments], &options).unwrap();
    assert_eq!(again.added, [0, 0, 0, 0], "a second ingest adds nothing");
    assert_eq!(stored(&store) as u64, written);
    // Every collected host is covered, by its --once run (a backlog).
    let covered = store
        .count("SELECT count(DISTINCT host) FROM host_coverage WHERE source = 'backlog'")
        .unwrap();
    assert_eq!(covered as usize, summary.hosts.len());
}
