//! Least privilege: which of a role's granted actions its sessions used, and the policy that
//! grants only those.
//!
//! The comparison itself is SQL (views `role_calls`, `role_grants`, `role_action_status` in
//! views.sql, and the `unused_permissions` detection); this module keeps what SQL does badly:
//! - [`refresh_event_map`]: maps every stored (eventSource, eventName) to IAM actions with the
//!   catalog's rules (exceptions, API-version suffixes), into `cloudtrail_event_map`;
//! - [`policy_documents`]: the recommended policy, split so no document exceeds
//!   [`MAX_POLICY_CHARS`];
//! - `credtrail recommend`, which runs the `unused_permissions` detection for every role
//!   (`min_unused=0`) and prints or writes the result.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use duckdb::params;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog;
use crate::detect::{self, Finding, RunOptions};
use crate::store::Store;
use crate::terminal::{escape_control, thousands};

/// IAM's size limit for a managed policy document (characters, whitespace not counted).
pub const MAX_POLICY_CHARS: usize = 6_144;

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

/// One action of a role as the `unused_permissions` evidence lists it (used or unverifiable).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActionUse {
    pub action: String,
    /// Whether the action supports resource-level permissions (catalog).
    pub resource_level: bool,
    /// Resources the role's calls touched (bounded list).
    pub resources_seen: Vec<String>,
    /// How many distinct resources were seen (the list may be cut).
    pub resources_seen_total: usize,
    /// The resources the current policy grants the action on.
    pub granted_resources: Vec<String>,
    /// Conditions, when the action is granted only under conditions (one per granting statement).
    pub conditions: Vec<Value>,
}

impl ActionUse {
    /// The resources to grant: the ones seen, when the action supports resource-level
    /// permissions, the current grant is on every resource and the seen list is complete;
    /// otherwise the current grant. Never wider than what is granted now.
    pub fn resources(&self) -> Vec<String> {
        let granted_all =
            self.granted_resources.is_empty() || self.granted_resources.iter().any(|r| r == "*");
        if self.resource_level
            && granted_all
            && !self.resources_seen.is_empty()
            && self.resources_seen.len() == self.resources_seen_total
        {
            let mut r = self.resources_seen.clone();
            r.sort();
            r.dedup();
            r
        } else if granted_all {
            vec!["*".to_string()]
        } else {
            self.granted_resources.clone()
        }
    }
}

fn statement(
    sid: &str,
    actions: &[String],
    resources: &[String],
    condition: Option<&Value>,
) -> Value {
    let mut s = serde_json::Map::new();
    s.insert("Sid".into(), json!(sid));
    s.insert("Effect".into(), json!("Allow"));
    s.insert(
        "Action".into(),
        if actions.len() == 1 {
            json!(actions[0])
        } else {
            json!(actions)
        },
    );
    s.insert(
        "Resource".into(),
        if resources.len() == 1 {
            json!(resources[0])
        } else {
            json!(resources)
        },
    );
    if let Some(c) = condition {
        s.insert("Condition".into(), c.clone());
    }
    Value::Object(s)
}

/// Statements for a set of actions: one per distinct (resources, condition), actions sorted.
fn statements(prefix: &str, actions: &[ActionUse]) -> Vec<Value> {
    let mut groups: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
    for a in actions {
        let resources = a.resources();
        if a.conditions.is_empty() {
            groups
                .entry((resources, String::new()))
                .or_default()
                .push(a.action.clone());
        } else {
            for c in &a.conditions {
                groups
                    .entry((resources.clone(), c.to_string()))
                    .or_default()
                    .push(a.action.clone());
            }
        }
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, ((resources, cond), mut acts))| {
            acts.sort();
            acts.dedup();
            let cond: Option<Value> = (!cond.is_empty())
                .then(|| serde_json::from_str(&cond).ok())
                .flatten();
            statement(
                &format!("{prefix}{}", i + 1),
                &acts,
                &resources,
                cond.as_ref(),
            )
        })
        .collect()
}

fn document(statements: &[Value]) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Characters IAM counts for a document: its JSON without insignificant whitespace.
pub fn policy_chars(doc: &Value) -> usize {
    doc.to_string().chars().count()
}

/// Splits one statement whose document alone is too large into smaller ones (by actions, then by
/// resources).
fn split_statement(s: &Value) -> Vec<Value> {
    let as_list = |v: &Value| -> Vec<Value> {
        match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        }
    };
    let actions = as_list(&s["Action"]);
    let resources = as_list(&s["Resource"]);
    let (field, list) = if actions.len() > 1 {
        ("Action", actions)
    } else if resources.len() > 1 {
        ("Resource", resources)
    } else {
        return vec![s.clone()];
    };
    let mid = list.len() / 2;
    let sid = s["Sid"].as_str().unwrap_or("S");
    [&list[..mid], &list[mid..]]
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut t = s.clone();
            t[field] = Value::Array(part.to_vec());
            t["Sid"] = json!(format!("{sid}{}", (b'a' + i as u8) as char));
            t
        })
        .collect()
}

/// The recommended policy: statements granting the used actions (narrowed to the resources seen
/// where that is safe, see [`ActionUse::resources`]) and, in statements whose Sid starts with
/// `Unverifiable`, the actions CloudTrail could not show, for a person to decide. Split into
/// documents of at most [`MAX_POLICY_CHARS`] characters each.
pub fn policy_documents(used: &[ActionUse], unverifiable: &[ActionUse]) -> Vec<Value> {
    let mut pending: Vec<Value> = statements("Used", used);
    pending.extend(statements("Unverifiable", unverifiable));
    pending.reverse();
    let mut docs: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    while let Some(s) = pending.pop() {
        current.push(s);
        if policy_chars(&document(&current)) <= MAX_POLICY_CHARS {
            continue;
        }
        let s = current.pop().expect("just pushed");
        if current.is_empty() {
            // Alone too large: split it, unless it cannot be split (then it stands alone).
            let parts = split_statement(&s);
            if parts.len() == 1 {
                docs.push(vec![s]);
            } else {
                pending.extend(parts.into_iter().rev());
            }
        } else {
            docs.push(std::mem::take(&mut current));
            pending.push(s);
        }
    }
    if !current.is_empty() {
        docs.push(current);
    }
    docs.iter().map(|d| document(d)).collect()
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

/// Adds `recommended_policy` to an `unused_permissions` finding's evidence.
pub fn add_recommended_policy(f: &mut Finding) {
    if f.kind != "unused_permissions" || !f.evidence.is_object() {
        return;
    }
    let used = actions_of(&f.evidence, "used_actions");
    let unverifiable = actions_of(&f.evidence, "unverifiable_actions");
    f.evidence["recommended_policy"] = Value::Array(policy_documents(&used, &unverifiable));
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
        "  recommended policy: {} document(s) of {} characters\n",
        docs.len(),
        sizes.join(", ")
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn used(action: &str, seen: &[&str], granted: &[&str]) -> ActionUse {
        ActionUse {
            action: action.to_string(),
            resource_level: true,
            resources_seen: seen.iter().map(|s| s.to_string()).collect(),
            resources_seen_total: seen.len(),
            granted_resources: granted.iter().map(|s| s.to_string()).collect(),
            conditions: Vec::new(),
        }
    }

    #[test]
    fn resources_never_widen_the_grant() {
        let a = used("s3:GetObject", &["arn:aws:s3:::b/*"], &["*"]);
        assert_eq!(a.resources(), ["arn:aws:s3:::b/*"]);
        let b = used(
            "s3:GetObject",
            &["arn:aws:s3:::b/*"],
            &["arn:aws:s3:::b/in/*"],
        );
        assert_eq!(b.resources(), ["arn:aws:s3:::b/in/*"]);
        let mut c = used("sts:GetCallerIdentity", &[], &["*"]);
        c.resource_level = false;
        assert_eq!(c.resources(), ["*"]);
        let mut cut = used("s3:GetObject", &["arn:aws:s3:::b/*"], &["*"]);
        cut.resources_seen_total = 40;
        assert_eq!(
            cut.resources(),
            ["*"],
            "an incomplete list is not narrowed to"
        );
    }

    #[test]
    fn statements_group_by_resources_and_keep_conditions() {
        let mut k = used("kms:Decrypt", &[], &["*"]);
        k.resource_level = false;
        k.conditions =
            vec![json!({"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}})];
        let docs = policy_documents(
            &[
                used("s3:GetObject", &["arn:aws:s3:::b/*"], &["*"]),
                used("s3:PutObject", &["arn:aws:s3:::b/*"], &["*"]),
                k,
            ],
            &[used("iam:PassRole", &[], &["arn:aws:iam::1:role/x"])],
        );
        assert_eq!(docs.len(), 1);
        let st = docs[0]["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 3, "{st:#?}");
        assert!(
            st.iter()
                .any(|s| s["Action"] == json!(["s3:GetObject", "s3:PutObject"])
                    && s["Resource"] == json!("arn:aws:s3:::b/*"))
        );
        assert!(st.iter().any(|s| s["Action"] == json!("kms:Decrypt")
            && s["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"));
        assert!(st.iter().any(|s| s["Sid"] == "Unverifiable1"
            && s["Action"] == json!("iam:PassRole")
            && s["Resource"] == json!("arn:aws:iam::1:role/x")));
    }

    #[test]
    fn documents_are_split_at_the_size_limit() {
        // 400 actions on distinct resources: far more than one document holds.
        let acts: Vec<ActionUse> = (0..400)
            .map(|i| {
                used(
                    &format!("dynamodb:Action{i:03}"),
                    &[&format!(
                        "arn:aws:dynamodb:us-east-1:123456789012:table/t{i}"
                    )],
                    &["*"],
                )
            })
            .collect();
        let docs = policy_documents(&acts, &[]);
        assert!(docs.len() > 1);
        let mut seen = 0;
        for d in &docs {
            assert!(policy_chars(d) <= MAX_POLICY_CHARS, "{}", policy_chars(d));
            seen += d["Statement"].as_array().unwrap().len();
        }
        assert_eq!(seen, 400, "every statement lands in exactly one document");
        // One statement too large alone is split by its actions.
        let many: Vec<ActionUse> = (0..900)
            .map(|i| used(&format!("ec2:DescribeThing{i:04}"), &[], &["*"]))
            .collect();
        let docs = policy_documents(&many, &[]);
        assert!(docs.len() > 1);
        let mut actions = Vec::new();
        for d in &docs {
            assert!(policy_chars(d) <= MAX_POLICY_CHARS);
            for s in d["Statement"].as_array().unwrap() {
                match &s["Action"] {
                    Value::Array(a) => actions.extend(a.iter().cloned()),
                    v => actions.push(v.clone()),
                }
            }
        }
        assert_eq!(actions.len(), 900);
    }
}
