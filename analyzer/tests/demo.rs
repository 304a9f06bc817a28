//! `credtrail demo`: simulate, collect, ingest, analyze and summarise in one command, with every
//! planted attack found and named.

use credtrail::demo::{DemoOptions, run};
use credtrail_sim::Attack;
use serde_json::Value;

#[test]
fn runs_end_to_end_and_mentions_every_planted_attack() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        out: Some(tmp.path().join("demo")),
        hosts: 3,
        hours: 3,
        ..DemoOptions::default()
    };
    let mut out = Vec::new();
    run(&opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for a in Attack::ALL {
        assert!(
            text.contains(a.name()),
            "demo output lacks {}:\n{text}",
            a.name()
        );
        assert!(
            text.contains(a.kind()),
            "demo output lacks {}:\n{text}",
            a.kind()
        );
    }
    assert!(
        !text.contains("MISSED"),
        "a planted finding was missed:\n{text}"
    );
    assert!(!text.contains("not yet detectable"), "{text}");
    assert!(text.contains("Least privilege"), "{text}");
    let m: Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("demo/simulation/manifest.json")).unwrap(),
    )
    .unwrap();
    let lines = m["counts"]["audit_lines"].as_u64().unwrap();
    let stored = format!(
        "segments hold {} requests from 3 hosts, 0 rejected lines",
        credtrail::terminal::thousands(lines)
    );
    assert!(
        text.contains(&stored),
        "collector did not store every line ({stored}):\n{text}"
    );
    assert!(text.contains("GetCredentialsExecutionRole"), "{text}");
    assert!(text.lines().count() <= 60, "more than one screen:\n{text}");
}
