//! Least privilege: which of a role's granted actions its sessions used, and the policy that
//! grants only those.
//!
//! The comparison itself is SQL (views `role_calls`, `role_grants`, `role_action_status` in
//! views.sql, and the `unused_permissions` detection); this module keeps what SQL does badly:
//! - [`refresh_event_map`]: maps every stored (eventSource, eventName) to IAM actions with the
//!   catalog's rules (exceptions, API-version suffixes), into `cloudtrail_event_map`;
//! - [`add_recommended_policy`]: the recommended policy (`policy.rs`: the role's own statements
//!   narrowed, never wider);
//! - `credtrail recommend`, which runs the `unused_permissions` detection for every role
//!   (`min_unused=0`) and prints or writes the result.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use duckdb::params;
use serde_json::{Value, json};

use crate::catalog;
use crate::detect::{self, Finding, RunOptions};
use crate::policy::{self, ActionUse, RolePolicies, policy_chars};
use crate::store::Store;
use crate::terminal::{escape_control, thousands};

/// Maps the (eventSource, eventName) pairs not yet in `cloudtrail_event_map` to IAM actions, and
/// remaps everything when the catalog changed. Returns the number of pairs added.
pub fn refresh_event_map(store: &Store) -> Result<usize> {
    let cat = catalog::get();
    cat.install(store)?;
    let key = "event_map_catalog";
    let stamp = cat.stamp();
    let fresh = store.meta(key)?.as_deref() == Some(stamp.as_str());
    let pairs: Vec<(String, String)> = {
        let mut stmt = store.conn().prepare(
            "SELECT DISTINCT e.event_source, e.event_name FROM cloudtrail_events e
             WHERE e.event_source IS NOT NULL AND e.event_name IS NOT NULL
               AND ($1 OR NOT EXISTS (SELECT 1 FROM cloudtrail_event_map m
                                      WHERE m.event_source = e.event_source
                                        AND m.event_name = e.event_name))",
        )?;
        let rows = stmt.query_map([!fresh], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    if fresh && pairs.is_empty() {
        return Ok(0);
    }
    store.transaction(|conn| {
        if !fresh {
            conn.execute("DELETE FROM cloudtrail_event_map", [])?;
        }
        let mut app = conn.appender("cloudtrail_event_map")?;
        for (src, name) in &pairs {
            let actions = cat.actions_for_event(src, name);
            if actions.is_empty() {
                app.append_row(params![src, name, None::<String>])?;
            }
            for a in actions {
                app.append_row(params![src, name, a])?;
            }
        }
        app.flush()?;
        Store::set_meta(conn, key, &stamp)
    })?;
    Ok(pairs.len())
}

fn actions_of(evidence: &Value, field: &str) -> Vec<ActionUse> {
    evidence[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds `recommended_policy` (and `recommendation_warnings`) to an `unused_permissions` finding's
/// evidence: the role's own statements narrowed to the used and unverifiable actions
/// ([`policy::recommend`]).
pub fn add_recommended_policy(store: &Store, f: &mut Finding) -> Result<()> {
    if f.kind != "unused_permissions" || !f.evidence.is_object() {
        return Ok(());
    }
    let Some(role) = f.role_arn.clone() else {
        return Ok(());
    };
    let policies = RolePolicies::read(store, &role, catalog::get())?;
    let used = actions_of(&f.evidence, "used_actions");
    let unverifiable = actions_of(&f.evidence, "unverifiable_actions");
    let r = policy::recommend(&policies, &used, &unverifiable);
    f.evidence["recommended_policy"] = Value::Array(r.documents);
    f.evidence["recommendation_warnings"] = json!(r.warnings);
    Ok(())
}

/// `credtrail recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// Only this role (ARN or role name).
    #[arg(long)]
    pub role: Option<String>,
    /// Observation window: the last DAYS days of the stored CloudTrail events (default: all).
    #[arg(long, value_name = "DAYS")]
    pub window: Option<u32>,
    /// Write `<role>.policy.json` (or `<role>.policy-N.json` when split) and
    /// `recommendations.json` into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the recommendations as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Per-role least-privilege recommendations: the `unused_permissions` evidence of every role
/// (also those with nothing unused), with the recommended policy.
pub fn recommendations(
    store: &Store,
    role: Option<&str>,
    window_days: Option<u32>,
) -> Result<Vec<Finding>> {
    let loaded = detect::builtin();
    let det = loaded
        .detections
        .iter()
        .find(|d| d.id == "unused_permissions")
        .context("the built-in unused_permissions detection is missing")?;
    let mut opts = RunOptions::default();
    if let Some(days) = window_days {
        let since: Option<String> = store.conn().query_row(
            &format!(
                "SELECT strftime(max(event_time) - INTERVAL {days} DAY, '%Y-%m-%dT%H:%M:%S') \
                 FROM cloudtrail_events"
            ),
            [],
            |r| r.get(0),
        )?;
        opts.since = since;
    }
    for p in ["min_unused", "min_used"] {
        opts.params
            .insert(format!("unused_permissions.{p}"), "0".into());
    }
    let report = detect::run(store, std::slice::from_ref(det), &opts);
    if let Some((what, e)) = report.failed.first() {
        anyhow::bail!("{what}: {e}");
    }
    let mut findings = report.findings;
    if let Some(role) = role {
        findings.retain(|f| {
            f.role_arn
                .as_deref()
                .is_some_and(|a| a == role || a.rsplit('/').next() == Some(role))
        });
    }
    findings.sort_by(|a, b| a.role_arn.cmp(&b.role_arn));
    Ok(findings)
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Run `credtrail recommend`.
pub fn recommend(store: &Store, a: &RecommendArgs, out: &mut dyn Write) -> Result<()> {
    let recs = recommendations(store, a.role.as_deref(), a.window)?;
    if let Some(dir) = &a.out {
        write_files(dir, &recs)?;
    }
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
        return Ok(());
    }
    if recs.is_empty() {
        writeln!(
            out,
            "no task or execution roles with tasks in the window (ingest ECS task descriptions, IAM authorization details and CloudTrail first)"
        )?;
        return Ok(());
    }
    for f in &recs {
        render_text(f, out)?;
    }
    if let Some(dir) = &a.out {
        writeln!(
            out,
            "wrote {} roles' policies to {}",
            recs.len(),
            dir.display()
        )?;
    }
    Ok(())
}

fn render_text(f: &Finding, out: &mut dyn Write) -> Result<()> {
    let e = &f.evidence;
    let arn = f.role_arn.as_deref().unwrap_or_default();
    let used = e["used_actions"].as_array().cloned().unwrap_or_default();
    let unverifiable = e["unverifiable_actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let unused = strings(&e["unused_actions"]);
    let write_unused = strings(&e["unused_write_actions"]);
    let unused_total = e["unused_actions_total"]
        .as_u64()
        .map_or(unused.len(), |n| n as usize);
    writeln!(out, "role {}", escape_control(arn))?;
    writeln!(
        out,
        "  {} role of {}; {} tasks in the window {} → {}",
        strings(&e["role_kinds"]).join(" and "),
        escape_control(&strings(&e["families"]).join(", ")),
        e["tasks_in_window"],
        e["window_start"].as_str().unwrap_or("?"),
        e["window_end"].as_str().unwrap_or("?"),
    )?;
    writeln!(
        out,
        "  granted {} · used {} · unused {} ({}{} write or permissions management) · unverifiable {}",
        e["granted"],
        used.len(),
        unused_total,
        if unused_total > unused.len() {
            "at least "
        } else {
            ""
        },
        write_unused.len(),
        unverifiable.len()
    )?;
    for u in &used {
        writeln!(
            out,
            "    used        {:<44} {:>8} calls, last {}, by {}",
            u["action"].as_str().unwrap_or_default(),
            thousands(u["count"].as_u64().unwrap_or(0)),
            u["last_used"].as_str().unwrap_or("?"),
            escape_control(&strings(&u["families"]).join(", "))
        )?;
    }
    const SHOWN: usize = 30;
    for x in unused.iter().take(SHOWN) {
        let w = if write_unused.contains(x) {
            " (write)"
        } else {
            ""
        };
        writeln!(out, "    unused      {x}{w}")?;
    }
    if unused_total > SHOWN.min(unused.len()) {
        writeln!(
            out,
            "    unused      … and {} more",
            unused_total - SHOWN.min(unused.len())
        )?;
    }
    for u in unverifiable.iter().take(SHOWN) {
        writeln!(
            out,
            "    unverifiable {:<43} {}",
            u["action"].as_str().unwrap_or_default(),
            u["reason"].as_str().unwrap_or_default()
        )?;
    }
    if unverifiable.len() > SHOWN {
        writeln!(
            out,
            "    unverifiable … and {} more",
            unverifiable.len() - SHOWN
        )?;
    }
    // Per-family attribution: which family needs what, for roles shared across services.
    let mut by_family: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in &used {
        for fam in strings(&u["families"]) {
            by_family
                .entry(fam)
                .or_default()
                .push(u["action"].as_str().unwrap_or_default().to_string());
        }
    }
    for (fam, acts) in &by_family {
        writeln!(
            out,
            "    family {} uses {}",
            escape_control(fam),
            acts.join(", ")
        )?;
    }
    let docs = e["recommended_policy"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sizes: Vec<String> = docs
        .iter()
        .map(|d| thousands(policy_chars(d) as u64))
        .collect();
    writeln!(
        out,
        "  recommended policy: {} document(s) of {} characters",
        docs.len(),
        sizes.join(", ")
    )?;
    for w in strings(&e["recommendation_warnings"]) {
        writeln!(out, "  warning: {}", escape_control(&w))?;
    }
    writeln!(out)?;
    Ok(())
}

fn write_files(dir: &Path, recs: &[Finding]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in recs {
        let name: String = role_name(f.role_arn.as_deref().unwrap_or("role"))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let docs = f.evidence["recommended_policy"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, d) in docs.iter().enumerate() {
            let file = if docs.len() == 1 {
                dir.join(format!("{name}.policy.json"))
            } else {
                dir.join(format!("{name}.policy-{}.json", i + 1))
            };
            std::fs::write(&file, serde_json::to_string_pretty(d)? + "\n")
                .with_context(|| format!("writing {}", file.display()))?;
        }
    }
    let all = dir.join("recommendations.json");
    std::fs::write(&all, serde_json::to_string_pretty(recs)? + "\n")
        .with_context(|| format!("writing {}", all.display()))?;
    Ok(())
}
