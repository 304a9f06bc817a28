//! The recommended policy of a role: its own statements, each narrowed on its own to what its
//! sessions used (and what the trail could not show), so the result never allows more than the
//! policies it replaces.
//!
//! - Every Allow statement of the role's identity policies (inline and managed; never the
//!   permissions boundary, which stays attached as it is) keeps only the actions it grants that
//!   were used or are unverifiable, written out as an `Action` list. Its `Condition` and its
//!   `NotResource` are kept as written. Its `Resource` is narrowed to the resources the role's
//!   calls touched only where the statement grants the action on `*`, the action supports
//!   resource-level permissions and the list of resources seen is complete; otherwise it is kept.
//!   One statement may become several (one per resource list), never one wider. Where it keeps
//!   every catalog action of a service it writes `prefix:*`, which it granted already.
//! - Deny statements are carried over unchanged, first.
//! - Documents hold at most [`MAX_POLICY_CHARS`] characters each (a managed policy's limit,
//!   whitespace not counted); a statement too large alone is split by its actions, then by its
//!   resources. What cannot be made to fit, and a role that would need more managed policies than
//!   it may hold, are said in [`Recommendation::warnings`].
//!
//! Each output Allow statement is a subset of one original Allow statement (fewer actions, the
//! same or fewer resources, the same condition), and every Deny is kept: whatever the
//! recommendation allows, the original allows. The property test below checks it against a small
//! policy evaluator.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use serde::Deserialize;

use crate::catalog::Catalog;
use crate::store::Store;

/// IAM's size limit for a managed policy document (characters, whitespace not counted).
pub const MAX_POLICY_CHARS: usize = 6_144;
/// Managed policies a role may have attached by default (a quota increase allows 20).
pub const MANAGED_POLICIES_PER_ROLE: usize = 10;

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

/// One Allow statement of a role's identity policies, as written, with the catalog actions it
/// grants.
#[derive(Debug, Clone)]
pub struct Grant {
    pub statement: Value,
    /// Canonical action names (`service:ActionName`); a pattern the catalog does not know stands
    /// for itself.
    pub actions: BTreeSet<String>,
}

/// The identity-policy statements of one role.
#[derive(Debug, Clone, Default)]
pub struct RolePolicies {
    pub allows: Vec<Grant>,
    pub denies: Vec<Value>,
    /// Catalog actions per service prefix (lower case), for writing `prefix:*` where a
    /// statement keeps every action of a service.
    pub prefix_sizes: BTreeMap<String, usize>,
}

fn statements_of(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    }
}

impl RolePolicies {
    /// From policy documents, expanding actions with the catalog as ingest does.
    pub fn from_documents(docs: &[Value], cat: &Catalog) -> Result<RolePolicies> {
        let mut out = RolePolicies::default();
        for doc in docs {
            let statements = statements_of(doc);
            let mut granted: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
            for g in crate::iam::expand_document(doc, cat)? {
                if g.effect == "Allow" {
                    granted
                        .entry(g.statement_index as usize)
                        .or_default()
                        .insert(g.action);
                }
            }
            for a in granted.values().flatten() {
                if let Some((p, _)) = a.split_once(':') {
                    let p = p.to_ascii_lowercase();
                    let n = cat.prefix_len(&p);
                    out.prefix_sizes.entry(p).or_insert(n);
                }
            }
            for (i, st) in statements.into_iter().enumerate() {
                let effect = st.get("Effect").and_then(Value::as_str).unwrap_or_default();
                if effect.eq_ignore_ascii_case("deny") {
                    out.denies.push(st);
                } else {
                    out.allows.push(Grant {
                        statement: st,
                        actions: granted.remove(&i).unwrap_or_default(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The role's inline and managed policies in the store (the boundary excluded), in a stable
    /// order.
    pub fn read(store: &Store, role_arn: &str, cat: &Catalog) -> Result<RolePolicies> {
        let mut stmt = store.conn().prepare(
            "SELECT DISTINCT p.policy_id, p.document::VARCHAR
             FROM iam_role_policies rp JOIN iam_policies p ON p.policy_id = rp.policy_id
             WHERE rp.role_arn = ? AND rp.kind <> 'boundary' AND rp.resolved
               AND p.document IS NOT NULL
             ORDER BY p.policy_id",
        )?;
        let docs = stmt
            .query_map([role_arn], |r| r.get::<_, String>(1))?
            .collect::<duckdb::Result<Vec<String>>>()?
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<serde_json::Result<Vec<Value>>>()
            .with_context(|| format!("reading the policies of {role_arn}"))?;
        RolePolicies::from_documents(&docs, cat)
    }
}

/// The recommended documents, and what could not be done within IAM's limits.
#[derive(Debug, Clone, Default)]
pub struct Recommendation {
    pub documents: Vec<Value>,
    pub warnings: Vec<String>,
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn one_or_list(v: &[String]) -> Value {
    if v.len() == 1 { json!(v[0]) } else { json!(v) }
}

/// The resources to allow `u` on under a statement granting it on `resources`: the ones seen
/// when the statement grants `*`, the action supports resource-level permissions and the seen
/// list is complete; else the statement's own.
fn narrowed(u: Option<&ActionUse>, resources: &[String]) -> Vec<String> {
    if let Some(u) = u
        && resources.iter().any(|r| r == "*")
        && u.resource_level
        && !u.resources_seen.is_empty()
        && u.resources_seen.len() == u.resources_seen_total
    {
        let mut r = u.resources_seen.clone();
        r.sort();
        r.dedup();
        return r;
    }
    resources.to_vec()
}

/// Letters and digits of a Sid (IAM allows no others).
fn sid_part(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Narrows one Allow statement to `keep` (the used or the unverifiable actions), labelled
/// `label` (`Used`, `Unverifiable`).
/// `actions` with every service whose catalog actions are all present written `prefix:*`:
/// the statement they come from granted all of them, so this grants nothing more.
fn whole_services(actions: Vec<String>, sizes: &BTreeMap<String, usize>) -> Vec<String> {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for a in &actions {
        if let Some((p, _)) = a.split_once(':') {
            *per.entry(p.to_ascii_lowercase()).or_default() += 1;
        }
    }
    let whole: BTreeSet<String> = per
        .into_iter()
        .filter(|(p, n)| sizes.get(p).is_some_and(|&s| s > 1 && s == *n))
        .map(|(p, _)| p)
        .collect();
    let mut out: Vec<String> = Vec::new();
    for a in actions {
        match a.split_once(':') {
            Some((p, _)) if whole.contains(&p.to_ascii_lowercase()) => {
                let star = format!("{p}:*");
                if !out.contains(&star) {
                    out.push(star);
                }
            }
            _ => out.push(a),
        }
    }
    out
}

fn narrow(
    g: &Grant,
    n: usize,
    keep: &BTreeMap<&str, &ActionUse>,
    label: &str,
    narrow_resources: bool,
    sizes: &BTreeMap<String, usize>,
) -> Vec<Value> {
    let acts: Vec<&String> = g
        .actions
        .iter()
        .filter(|a| keep.contains_key(a.as_str()))
        .collect();
    if acts.is_empty() {
        return Vec::new();
    }
    let st = &g.statement;
    let base = st
        .get("Sid")
        .and_then(Value::as_str)
        .map(sid_part)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("S{n}"));
    let not_resource = st.get("NotResource").is_some() && st.get("Resource").is_none();
    let resources = as_list(st.get("Resource").unwrap_or(&Value::Null));
    let mut groups: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for a in acts {
        let r = if not_resource || !narrow_resources {
            resources.clone()
        } else {
            narrowed(keep.get(a.as_str()).copied(), &resources)
        };
        groups.entry(r).or_default().push(a.clone());
    }
    let many = groups.len() > 1;
    groups
        .into_iter()
        .enumerate()
        .map(|(k, (r, actions))| {
            let actions = whole_services(actions, sizes);
            let mut s = serde_json::Map::new();
            let sid = if many {
                format!("{label}{base}{}", k + 1)
            } else {
                format!("{label}{base}")
            };
            s.insert("Sid".into(), json!(sid));
            s.insert("Effect".into(), json!("Allow"));
            s.insert("Action".into(), one_or_list(&actions));
            if not_resource {
                s.insert("NotResource".into(), st["NotResource"].clone());
            } else if st.get("Resource").is_some() {
                s.insert("Resource".into(), one_or_list(&r));
            }
            if let Some(c) = st.get("Condition") {
                s.insert("Condition".into(), c.clone());
            }
            Value::Object(s)
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

/// Splits one statement into two halves by its actions, else by its resources; `None` when it
/// has one action and one resource (or a `NotResource`, which cannot be split).
fn split_statement(s: &Value) -> Option<[Value; 2]> {
    let actions = as_list(&s["Action"]);
    let resources = as_list(&s["Resource"]);
    let (field, list) = if actions.len() > 1 {
        ("Action", actions)
    } else if resources.len() > 1 {
        ("Resource", resources)
    } else {
        return None;
    };
    let mid = list.len() / 2;
    let sid = s["Sid"].as_str().unwrap_or("S");
    let part = |i: usize, items: &[String]| {
        let mut t = s.clone();
        t[field] = json!(items);
        t["Sid"] = json!(format!("{sid}{}", (b'a' + i as u8) as char));
        t
    };
    Some([part(0, &list[..mid]), part(1, &list[mid..])])
}

/// The role's statements narrowed to `used` and `unverifiable` actions (see the module
/// documentation), in documents within IAM's size limit.
pub fn recommend(
    policies: &RolePolicies,
    used: &[ActionUse],
    unverifiable: &[ActionUse],
) -> Recommendation {
    let used: BTreeMap<&str, &ActionUse> = used.iter().map(|u| (u.action.as_str(), u)).collect();
    let unverifiable: BTreeMap<&str, &ActionUse> = unverifiable
        .iter()
        .map(|u| (u.action.as_str(), u))
        .collect();
    let mut pending: Vec<Value> = policies.denies.clone();
    for (n, g) in policies.allows.iter().enumerate() {
        pending.extend(narrow(
            g,
            n + 1,
            &used,
            "Used",
            true,
            &policies.prefix_sizes,
        ));
    }
    for (n, g) in policies.allows.iter().enumerate() {
        pending.extend(narrow(
            g,
            n + 1,
            &unverifiable,
            "Unverifiable",
            false,
            &policies.prefix_sizes,
        ));
    }
    let mut warnings = Vec::new();
    pending.reverse();
    let mut docs: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    while let Some(s) = pending.pop() {
        current.push(s);
        if policy_chars(&document(&current)) <= MAX_POLICY_CHARS {
            continue;
        }
        let s = current.pop().expect("just pushed");
        if !current.is_empty() {
            docs.push(std::mem::take(&mut current));
            pending.push(s);
        } else if let Some([a, b]) = split_statement(&s) {
            pending.push(b);
            pending.push(a);
        } else {
            warnings.push(format!(
                "statement {} alone is larger than a managed policy ({} characters, the limit is \
                 {MAX_POLICY_CHARS}): shorten its Condition or NotResource, or keep it inline",
                s["Sid"].as_str().unwrap_or("?"),
                policy_chars(&document(std::slice::from_ref(&s)))
            ));
            docs.push(vec![s]);
        }
    }
    if !current.is_empty() {
        docs.push(current);
    }
    if docs.len() > MANAGED_POLICIES_PER_ROLE {
        warnings.push(format!(
            "the recommendation needs {} managed policies; a role holds {MANAGED_POLICIES_PER_ROLE} \
             by default (20 with a quota increase)",
            docs.len()
        ));
    }
    for d in &mut docs {
        unique_sids(d);
    }
    Recommendation {
        documents: docs.iter().map(|d| document(d)).collect(),
        warnings,
    }
}

/// IAM wants every Sid of a document distinct; two policies may have used the same one. Allow
/// statements (ours) are renamed; Deny statements keep theirs.
fn unique_sids(statements: &mut [Value]) {
    let mut seen: BTreeSet<String> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
        .collect();
    for s in statements.iter_mut().filter(|s| s["Effect"] == "Allow") {
        let Some(sid) = s["Sid"].as_str().map(str::to_string) else {
            continue;
        };
        let mut name = sid.clone();
        let mut n = 1;
        while !seen.insert(name.clone()) {
            n += 1;
            name = format!("{sid}{n}");
        }
        s["Sid"] = json!(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn used(action: &str, seen: &[&str]) -> ActionUse {
        ActionUse {
            action: action.into(),
            resource_level: true,
            resources_seen: seen.iter().map(|s| s.to_string()).collect(),
            resources_seen_total: seen.len(),
            ..ActionUse::default()
        }
    }

    fn policies(docs: &[Value]) -> RolePolicies {
        RolePolicies::from_documents(docs, crate::catalog::get()).unwrap()
    }

    fn statements(r: &Recommendation) -> Vec<Value> {
        r.documents
            .iter()
            .flat_map(|d| d["Statement"].as_array().unwrap().clone())
            .collect()
    }

    #[test]
    fn a_conditional_grant_on_everything_stays_conditional() {
        // s3:GetObject on bucket-a/* unconditionally, and on * only through one VPC endpoint.
        let p = policies(&[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket-a/*"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}
        ]})]);
        let r = recommend(
            &p,
            &[used("s3:GetObject", &["arn:aws:s3:::bucket-b/x"])],
            &[],
        );
        let st = statements(&r);
        assert_eq!(st.len(), 2, "{st:#?}");
        assert_eq!(st[0]["Resource"], "arn:aws:s3:::bucket-a/*");
        assert!(st[0].get("Condition").is_none());
        assert_eq!(st[1]["Resource"], "arn:aws:s3:::bucket-b/x");
        assert_eq!(
            st[1]["Condition"]["StringEquals"]["aws:SourceVpce"],
            "vpce-1"
        );
        assert!(!r.documents[0].to_string().contains("PutObject"));
    }

    #[test]
    fn denies_and_not_resource_are_kept() {
        let p = policies(&[json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "All but secrets", "Effect": "Allow", "Action": "s3:*",
             "NotResource": "arn:aws:s3:::secrets/*"},
            {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}
        ]})]);
        let r = recommend(&p, &[used("s3:GetObject", &["arn:aws:s3:::b/k"])], &[]);
        let st = statements(&r);
        assert_eq!(st.len(), 2, "{st:#?}");
        assert_eq!(st[0]["Effect"], "Deny");
        assert_eq!(st[0]["Action"], "s3:DeleteObject");
        assert_eq!(st[1]["Sid"], "UsedAllbutsecrets");
        assert_eq!(st[1]["Action"], "s3:GetObject");
        assert_eq!(st[1]["NotResource"], "arn:aws:s3:::secrets/*");
        assert!(st[1].get("Resource").is_none());
    }

    #[test]
    fn sids_repeated_across_policies_are_made_distinct() {
        let doc = |bucket: &str| {
            json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": format!("arn:aws:s3:::{bucket}/*")}]})
        };
        let r = recommend(
            &policies(&[doc("a"), doc("b")]),
            &[used("s3:GetObject", &["arn:aws:s3:::a/k"])],
            &[],
        );
        let sids: Vec<Value> = statements(&r).iter().map(|s| s["Sid"].clone()).collect();
        assert_eq!(sids, [json!("UsedRead"), json!("UsedRead2")]);
    }

    #[test]
    fn documents_are_split_at_the_size_limit_and_too_many_are_warned_of() {
        // 1,500 ec2 actions on one statement: more than one document holds.
        let cat = crate::catalog::get();
        let ec2: Vec<String> = cat
            .actions
            .iter()
            .map(|a| a.canonical())
            .filter(|a| a.starts_with("ec2:"))
            .collect();
        assert!(ec2.len() > 300, "{}", ec2.len());
        let p = policies(&[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]})]);
        // All but one: every action written out (all of them would be `ec2:*`).
        let ec2 = &ec2[1..];
        let acts: Vec<ActionUse> = ec2
            .iter()
            .map(|a| ActionUse {
                action: a.clone(),
                ..ActionUse::default()
            })
            .collect();
        let r = recommend(&p, &acts, &[]);
        assert!(r.documents.len() > 1);
        let mut n = 0;
        for d in &r.documents {
            assert!(policy_chars(d) <= MAX_POLICY_CHARS, "{}", policy_chars(d));
            n += d["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| as_list(&s["Action"]).len())
                .sum::<usize>();
        }
        assert_eq!(n, ec2.len(), "every action lands in exactly one statement");
        assert_eq!(
            r.warnings.is_empty(),
            r.documents.len() <= MANAGED_POLICIES_PER_ROLE
        );
    }

    #[test]
    fn a_service_kept_whole_is_written_with_a_wildcard_only_where_it_was_granted_whole() {
        let cat = crate::catalog::get();
        let sqs: Vec<ActionUse> = cat
            .actions
            .iter()
            .filter(|a| a.prefix == "sqs")
            .map(|a| ActionUse {
                action: a.canonical(),
                ..ActionUse::default()
            })
            .collect();
        let p = policies(&[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": "sqs:Send*", "Resource": "arn:aws:sqs:*:1:q"}]})]);
        let r = recommend(&p, &[], &sqs);
        let st = statements(&r);
        assert_eq!(st[0]["Action"], "sqs:*", "{st:#?}");
        assert_eq!(st[1]["Action"], "sqs:SendMessage", "{st:#?}");
    }

    #[test]
    fn a_statement_too_large_to_split_is_warned_of() {
        let values: Vec<String> = (0..800).map(|i| format!("vpce-{i:017}")).collect();
        let p = policies(&[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": values}}}]})]);
        let r = recommend(&p, &[used("s3:GetObject", &[])], &[]);
        assert_eq!(r.documents.len(), 1);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("larger than a managed policy"));
    }

    // ---- the property: the recommendation never allows what the original does not ----------

    /// A request: an action on a resource, with the condition keys that hold for it.
    #[derive(Debug, Clone)]
    struct Request {
        action: String,
        resource: String,
        conditions: BTreeSet<String>,
    }

    /// IAM's wildcard match (`*` any run, `?` one character), case-insensitive for actions.
    fn glob(pattern: &str, s: &str, fold: bool) -> bool {
        let (p, s): (Vec<char>, Vec<char>) = if fold {
            (
                pattern.to_ascii_lowercase().chars().collect(),
                s.to_ascii_lowercase().chars().collect(),
            )
        } else {
            (pattern.chars().collect(), s.chars().collect())
        };
        let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
        while si < s.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some(pi);
                mark = si;
                pi += 1;
            } else if let Some(st) = star {
                pi = st + 1;
                mark += 1;
                si = mark;
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == '*' {
            pi += 1;
        }
        pi == p.len()
    }

    /// Whether statement `s` applies to `r`. Conditions are opaque: a statement's condition holds
    /// when its JSON text is among the request's condition keys.
    fn applies(s: &Value, r: &Request) -> bool {
        let action = match (s.get("Action"), s.get("NotAction")) {
            (Some(a), _) => as_list(a).iter().any(|p| glob(p, &r.action, true)),
            (None, Some(n)) => !as_list(n).iter().any(|p| glob(p, &r.action, true)),
            _ => false,
        };
        let resource = match (s.get("Resource"), s.get("NotResource")) {
            (Some(a), _) => as_list(a).iter().any(|p| glob(p, &r.resource, false)),
            (None, Some(n)) => !as_list(n).iter().any(|p| glob(p, &r.resource, false)),
            _ => false,
        };
        let condition = s
            .get("Condition")
            .is_none_or(|c| r.conditions.contains(&c.to_string()));
        action && resource && condition
    }

    /// Identity-policy evaluation: allowed when some Allow applies and no Deny does.
    fn allowed(statements: &[Value], r: &Request) -> bool {
        let effect = |s: &Value| s["Effect"].as_str().unwrap_or_default().to_string();
        statements
            .iter()
            .any(|s| effect(s) == "Allow" && applies(s, r))
            && !statements
                .iter()
                .any(|s| effect(s) == "Deny" && applies(s, r))
    }

    const ACTIONS: &[&str] = &[
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "kms:Decrypt",
    ];
    const ACTION_PATTERNS: &[&str] = &[
        "s3:GetObject",
        "s3:PutObject",
        "s3:*Object",
        "s3:*",
        "sqs:*Message",
        "sqs:SendMessage",
        "dynamodb:*Item",
        "dynamodb:GetItem",
        "kms:Decrypt",
        "*",
    ];
    const RESOURCES: &[&str] = &[
        "arn:aws:s3:::a/k1",
        "arn:aws:s3:::a/k2",
        "arn:aws:s3:::b/k1",
        "arn:aws:sqs:us-east-1:1:q1",
        "arn:aws:sqs:us-east-1:1:q2",
        "arn:aws:dynamodb:us-east-1:1:table/t",
        "arn:aws:kms:us-east-1:1:key/k",
    ];
    const RESOURCE_PATTERNS: &[&str] = &[
        "*",
        "arn:aws:s3:::a/*",
        "arn:aws:s3:::*/k1",
        "arn:aws:sqs:us-east-1:1:q?",
        "arn:aws:sqs:*:*:q1",
        "arn:aws:dynamodb:us-east-1:1:table/t",
    ];
    const CONDITIONS: &[&str] = &["vpce-1", "vpce-2"];

    fn subset<'a>(
        pool: &'static [&'static str],
        min: usize,
    ) -> impl Strategy<Value = Vec<&'static str>> + 'a {
        proptest::sample::subsequence(pool, min..=pool.len().min(3))
    }

    prop_compose! {
        fn statement()(
            deny in proptest::bool::weighted(0.25),
            not_action in proptest::bool::weighted(0.15),
            actions in subset(ACTION_PATTERNS, 1),
            not_resource in proptest::bool::weighted(0.2),
            resources in subset(RESOURCE_PATTERNS, 1),
            condition in proptest::option::weighted(0.3, proptest::sample::select(CONDITIONS)),
        ) -> Value {
            let mut s = serde_json::Map::new();
            s.insert("Effect".into(), json!(if deny { "Deny" } else { "Allow" }));
            s.insert((if not_action { "NotAction" } else { "Action" }).into(), json!(actions));
            s.insert((if not_resource { "NotResource" } else { "Resource" }).into(), json!(resources));
            if let Some(c) = condition {
                s.insert("Condition".into(), json!({"StringEquals": {"aws:SourceVpce": c}}));
            }
            Value::Object(s)
        }
    }

    fn condition_sets() -> Vec<BTreeSet<String>> {
        let keys: Vec<String> = CONDITIONS
            .iter()
            .map(|c| json!({"StringEquals": {"aws:SourceVpce": c}}).to_string())
            .collect();
        vec![
            BTreeSet::new(),
            BTreeSet::from([keys[0].clone()]),
            BTreeSet::from([keys[1].clone()]),
            keys.into_iter().collect(),
        ]
    }

    fn every_request() -> Vec<Request> {
        let mut out = Vec::new();
        for a in ACTIONS {
            for r in RESOURCES {
                for c in condition_sets() {
                    out.push(Request {
                        action: a.to_string(),
                        resource: r.to_string(),
                        conditions: c,
                    });
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("CREDTRAIL_PROPTEST_CASES").ok()
                .and_then(|v| v.parse().ok()).unwrap_or(96),
            ..ProptestConfig::default()
        })]
        #[test]
        fn the_recommendation_never_allows_more_and_keeps_what_was_used(
            docs in proptest::collection::vec(proptest::collection::vec(statement(), 1..5), 1..3),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
            unverifiable_picks in proptest::collection::vec(proptest::sample::select(ACTIONS), 0..3),
            resource_level in any::<bool>(),
        ) {
            let docs: Vec<Value> = docs
                .into_iter()
                .map(|s| json!({"Version": "2012-10-17", "Statement": s}))
                .collect();
            let original: Vec<Value> = docs.iter().flat_map(statements_of).collect();
            let requests = every_request();
            let allowed_now: Vec<&Request> =
                requests.iter().filter(|r| allowed(&original, r)).collect();
            // Usage: requests the original allows.
            let usage: Vec<&Request> = if allowed_now.is_empty() {
                Vec::new()
            } else {
                picks.iter().map(|i| *i.get(&allowed_now)).collect()
            };
            let mut by_action: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for u in &usage {
                by_action.entry(u.action.clone()).or_default().insert(u.resource.clone());
            }
            let used: Vec<ActionUse> = by_action
                .iter()
                .map(|(a, seen)| ActionUse {
                    action: a.clone(),
                    resource_level,
                    resources_seen: seen.iter().cloned().collect(),
                    resources_seen_total: seen.len(),
                    ..ActionUse::default()
                })
                .collect();
            let unverifiable: Vec<ActionUse> = unverifiable_picks
                .iter()
                .filter(|a| !by_action.contains_key(**a))
                .map(|a| ActionUse { action: a.to_string(), ..ActionUse::default() })
                .collect();
            let r = recommend(&policies(&docs), &used, &unverifiable);
            let recommended = statements(&r);
            for q in &requests {
                prop_assert!(
                    !allowed(&recommended, q) || allowed(&original, q),
                    "wider: {q:?}\noriginal {original:#?}\nrecommended {recommended:#?}"
                );
            }
            for d in &r.documents {
                let sids: Vec<&str> = d["Statement"].as_array().unwrap().iter()
                    .filter_map(|s| s["Sid"].as_str()).collect();
                let distinct: BTreeSet<&str> = sids.iter().copied().collect();
                prop_assert_eq!(sids.len(), distinct.len(), "Sids repeat: {:?}", sids);
            }
            for u in &usage {
                prop_assert!(
                    allowed(&recommended, u),
                    "used but no longer allowed: {u:?}\noriginal {original:#?}\nrecommended {recommended:#?}"
                );
            }
        }
    }
}
