//! The AWS SDK operations a program's source sends, and the IAM actions its policy in
//! `deploy/iam/` grants: shared by the tests that hold each program's policy to exactly what it
//! calls (`collector/tests/policy.rs`, `analyzer/tests/aws/policy.rs`), which include this file
//! with `#[path]`.

#![allow(dead_code)] // reason: each including test binary uses a different subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`.
pub fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source without `//` comments (so doc text naming an operation is not a call).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every SDK request `src` sends, as (operation, IAM action from `table`): the first builder
/// method after `client` of each chain that ends in `.send()`
/// (`client.lookup_events().start_time(…)….send()`). Operations not in `table` come back with
/// the action `?name`, so a new call cannot slip past it.
pub fn operations_called(src: &str, table: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let code = code(src);
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".send()") {
        let before = &rest[..at];
        // The chain starts after the last statement boundary.
        let start = before.rfind([';', '{', '}']).map_or(0, |i| i + 1);
        let chain = &before[start..];
        // The method called on the client: the first `.name(` after `client`.
        let op = chain.find("client").and_then(|c| {
            let after = chain[c + "client".len()..].trim_start();
            let after = after.strip_prefix('.')?;
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        });
        let op = op.unwrap_or_else(|| format!("?{}", chain.trim()));
        let action = table
            .iter()
            .find(|(o, _)| *o == op)
            .map_or_else(|| format!("?{op}"), |(_, a)| a.to_string());
        out.push((op, action));
        rest = &rest[at + ".send()".len()..];
    }
    out
}

/// The IAM actions the SDK calls in the sources under `src_dir` need; panics on a call whose
/// operation `table` (kept in `test_file`) does not know.
pub fn actions_needed(src_dir: &Path, table: &[(&str, &str)], test_file: &str) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    for f in sources(src_dir) {
        for (op, action) in operations_called(&std::fs::read_to_string(&f).unwrap(), table) {
            assert!(
                !action.starts_with('?'),
                "{}: the SDK call {op} is not in the operation table of {test_file}; add it (and its IAM action to the policy)",
                f.display()
            );
            needed.insert(action);
        }
    }
    needed
}

/// A policy element that is a string or a list of strings (`Action`, `Resource`).
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("not a string or a list: {other}"),
    }
}

/// The actions a policy document grants; every statement must be an `Allow` with `Action`.
pub fn policy_actions(policy: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{st}");
        assert!(st.get("NotAction").is_none(), "{st}");
        out.extend(strings(&st["Action"]));
    }
    out
}

/// The policy `policy` (a name for messages) grants exactly the actions `needed` by the source
/// of `program`: no call without its action, no action nothing calls (least privilege).
pub fn assert_grants_exactly(
    needed: &BTreeSet<String>,
    granted: &BTreeSet<String>,
    program: &str,
    policy: &str,
) {
    let missing: Vec<_> = needed.difference(granted).collect();
    let unused: Vec<_> = granted.difference(needed).collect();
    assert!(
        missing.is_empty(),
        "{policy}: the {program} calls operations needing {missing:?}, which the policy does not grant"
    );
    assert!(
        unused.is_empty(),
        "{policy}: grants {unused:?}, which nothing in {program}/src calls (least privilege)"
    );
}
