//! `credtrail ingest iam FILE`: `aws iam get-account-authorization-details` output into
//! `iam_roles`, `iam_policies`, `iam_role_policies`, and `iam_grants` — every Allow/Deny
//! statement of every role's inline, managed and boundary policy expanded to catalog actions
//! (wildcards and `NotAction` included), with its resources and whether a condition applies.
//!
//! A file is a snapshot: each role it holds replaces that role's earlier rows. Users and groups
//! are counted, not stored (the findings are about task and execution roles).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use duckdb::params;
use duckdb::types::Value as DbValue;
use serde_json::Value;

use crate::catalog::{self, Catalog};
use crate::store::{Store, now_us, opt_ts, ts};
use crate::timestamp;

/// What one IAM ingest stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub roles: u64,
    pub policies: u64,
    pub grants: u64,
    /// Managed policies attached to a role whose document the file does not hold (AWS managed
    /// policies appear only with `--filter … AWSManagedPolicy`): their grants are unknown.
    pub unresolved_policies: u64,
    /// Action patterns that match no catalog action (typos, or actions newer than the catalog).
    pub unknown_patterns: u64,
    pub users_skipped: u64,
    pub groups_skipped: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "iam: {} roles, {} policies, {} grants; {} attached policies without a document in the file, {} action patterns not in the catalog; {} users and {} groups not stored",
            self.roles,
            self.policies,
            self.grants,
            self.unresolved_policies,
            self.unknown_patterns,
            self.users_skipped,
            self.groups_skipped
        )
    }
}

/// A policy document may be an object or a URL-encoded JSON string (`%7B%22Version%22…`).
pub fn policy_document(v: &Value) -> Result<Value> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        Value::String(s) => {
            let decoded = if s.trim_start().starts_with('{') {
                s.clone()
            } else {
                percent_decode(s)?
            };
            serde_json::from_str(&decoded).context("policy document is not JSON")
        }
        _ => bail!("policy document is neither an object nor a string"),
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("URL-decoded policy document is not UTF-8")
}

/// A string or a list of strings (IAM's `Action`, `Resource`, …); other shapes are an error.
fn strings(v: Option<&Value>) -> Result<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .context("list entry is not a string")
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => bail!("expected a string or a list of strings"),
    }
}

/// One expanded grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub statement_index: i32,
    pub sid: Option<String>,
    pub effect: String,
    pub action: String,
    pub access_level: Option<String>,
    pub pattern: String,
    pub via_not_action: bool,
    pub in_catalog: bool,
    pub resources: Vec<String>,
    pub not_resource: bool,
    pub has_condition: bool,
    pub condition: Option<String>,
}

/// Expands a policy document's statements into one grant per (statement, action).
pub fn expand_document(doc: &Value, cat: &Catalog) -> Result<Vec<Grant>> {
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        None | Some(Value::Null) => Vec::new(),
        Some(_) => bail!("Statement is neither an object nor a list"),
    };
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        let ctx = || format!("statement {i}");
        let effect = match st.get("Effect").and_then(Value::as_str) {
            Some(e) if e.eq_ignore_ascii_case("allow") => "Allow",
            Some(e) if e.eq_ignore_ascii_case("deny") => "Deny",
            other => bail!("statement {i}: Effect {other:?} is neither Allow nor Deny"),
        };
        let sid = st.get("Sid").and_then(Value::as_str).map(str::to_string);
        let actions = strings(st.get("Action")).with_context(ctx)?;
        let not_actions = strings(st.get("NotAction")).with_context(ctx)?;
        let (resources, not_resource) = match (
            strings(st.get("Resource")).with_context(ctx)?,
            strings(st.get("NotResource")).with_context(ctx)?,
        ) {
            (Some(r), _) => (r, false),
            (None, Some(nr)) => (nr, true),
            (None, None) => (Vec::new(), false),
        };
        let condition = st
            .get("Condition")
            .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()));
        let base = Grant {
            statement_index: i as i32,
            sid,
            effect: effect.to_string(),
            action: String::new(),
            access_level: None,
            pattern: String::new(),
            via_not_action: false,
            in_catalog: true,
            resources,
            not_resource,
            has_condition: condition.is_some(),
            condition: condition.map(Value::to_string),
        };
        let mut seen = HashSet::new();
        if let Some(patterns) = actions {
            for p in patterns {
                let hits = cat.expand(&p);
                if hits.is_empty() {
                    if seen.insert(format!("?{}", p.to_ascii_lowercase())) {
                        out.push(Grant {
                            action: p.clone(),
                            pattern: p,
                            in_catalog: false,
                            ..base.clone()
                        });
                    }
                    continue;
                }
                for h in hits {
                    if seen.insert(h.to_string()) {
                        let a = &cat.actions[h];
                        out.push(Grant {
                            action: a.canonical(),
                            access_level: Some(a.access_level.clone()),
                            pattern: p.clone(),
                            ..base.clone()
                        });
                    }
                }
            }
        } else if let Some(excluded) = not_actions {
            let mut skip = vec![false; cat.actions.len()];
            for p in &excluded {
                for h in cat.expand(p) {
                    skip[h] = true;
                }
            }
            for (h, a) in cat.actions.iter().enumerate() {
                if !skip[h] {
                    out.push(Grant {
                        action: a.canonical(),
                        access_level: Some(a.access_level.clone()),
                        pattern: "NotAction".to_string(),
                        via_not_action: true,
                        ..base.clone()
                    });
                }
            }
        }
    }
    Ok(out)
}

struct Policy {
    name: String,
    aws_managed: bool,
    version_id: Option<String>,
    document: Option<Value>,
}

/// Ingests one `get-account-authorization-details` file.
pub fn ingest(store: &Store, path: &Path) -> Result<Summary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    ingest_value(store, &v, &path.display().to_string())
}

pub fn ingest_value(store: &Store, v: &Value, source: &str) -> Result<Summary> {
    let Some(obj) = v.as_object() else {
        bail!("{source}: not get-account-authorization-details output (not a JSON object)");
    };
    if !obj.contains_key("RoleDetailList") && !obj.contains_key("Policies") {
        bail!(
            "{source}: not get-account-authorization-details output (no RoleDetailList or Policies)"
        );
    }
    let cat = catalog::get();
    cat.install(store)?;
    let mut summary = Summary {
        users_skipped: list(obj.get("UserDetailList")).len() as u64,
        groups_skipped: list(obj.get("GroupDetailList")).len() as u64,
        ..Summary::default()
    };

    let mut managed: BTreeMap<String, Policy> = BTreeMap::new();
    for p in list(obj.get("Policies")) {
        let Some(arn) = p.get("Arn").and_then(Value::as_str) else {
            bail!("{source}: a policy in Policies has no Arn");
        };
        let default = p.get("DefaultVersionId").and_then(Value::as_str);
        let versions = list(p.get("PolicyVersionList"));
        let chosen = versions
            .iter()
            .find(|v| v.get("IsDefaultVersion").and_then(Value::as_bool) == Some(true))
            .or_else(|| {
                versions
                    .iter()
                    .find(|v| v.get("VersionId").and_then(Value::as_str) == default)
            });
        let document = match chosen.and_then(|v| v.get("Document")) {
            Some(d) => Some(policy_document(d).with_context(|| format!("{source}: policy {arn}"))?),
            None => None,
        };
        managed.insert(
            arn.to_string(),
            Policy {
                name: p
                    .get("PolicyName")
                    .and_then(Value::as_str)
                    .unwrap_or(arn)
                    .to_string(),
                aws_managed: arn.contains(":aws:policy/"),
                version_id: chosen
                    .and_then(|v| v.get("VersionId"))
                    .and_then(Value::as_str)
                    .or(default)
                    .map(str::to_string),
                document,
            },
        );
    }

    let now = now_us();
    let mut grant_rows: Vec<(String, String, &'static str, Grant)> = Vec::new();
    let mut inline: Vec<(String, String, Value)> = Vec::new(); // (policy_id, name, doc)
    let mut links: Vec<(String, String, &'static str, bool)> = Vec::new();
    let mut roles: Vec<Vec<DbValue>> = Vec::new();
    let mut expanded: HashMap<String, Vec<Grant>> = HashMap::new();
    let mut unknown: HashSet<String> = HashSet::new();

    for r in list(obj.get("RoleDetailList")) {
        let arn = r
            .get("Arn")
            .and_then(Value::as_str)
            .with_context(|| format!("{source}: a role has no Arn"))?
            .to_string();
        let name = r
            .get("RoleName")
            .and_then(Value::as_str)
            .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(&arn))
            .to_string();
        let trust = match r.get("AssumeRolePolicyDocument") {
            Some(d) if !d.is_null() => Some(
                policy_document(d)
                    .with_context(|| format!("{source}: trust policy of {arn}"))?
                    .to_string(),
            ),
            _ => None,
        };
        let boundary = r
            .get("PermissionsBoundary")
            .and_then(|b| b.get("PermissionsBoundaryArn"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let last_used = r.get("RoleLastUsed");
        roles.push(vec![
            DbValue::Text(arn.clone()),
            DbValue::Text(name),
            opt_text(r.get("RoleId")),
            opt_text(r.get("Path")),
            opt_ts(r.get("CreateDate").and_then(timestamp::from_json_us)),
            trust.map_or(DbValue::Null, DbValue::Text),
            boundary.clone().map_or(DbValue::Null, DbValue::Text),
            opt_ts(
                last_used
                    .and_then(|l| l.get("LastUsedDate"))
                    .and_then(timestamp::from_json_us),
            ),
            opt_text(last_used.and_then(|l| l.get("Region"))),
        ]);
        for p in list(r.get("RolePolicyList")) {
            let pname = p
                .get("PolicyName")
                .and_then(Value::as_str)
                .with_context(|| format!("{source}: an inline policy of {arn} has no name"))?;
            let doc = policy_document(p.get("PolicyDocument").unwrap_or(&Value::Null))
                .with_context(|| format!("{source}: inline policy {pname} of {arn}"))?;
            let id = format!("{arn}#inline/{pname}");
            let grants = expand_document(&doc, cat)
                .with_context(|| format!("{source}: inline policy {pname} of {arn}"))?;
            for g in grants {
                if !g.in_catalog {
                    unknown.insert(g.pattern.to_ascii_lowercase());
                }
                grant_rows.push((arn.clone(), id.clone(), "inline", g));
            }
            links.push((arn.clone(), id.clone(), "inline", true));
            inline.push((id, pname.to_string(), doc));
        }
        let mut attached: Vec<(String, &'static str)> = list(r.get("AttachedManagedPolicies"))
            .iter()
            .filter_map(|m| m.get("PolicyArn").and_then(Value::as_str))
            .map(|a| (a.to_string(), "managed"))
            .collect();
        if let Some(b) = boundary {
            attached.push((b, "boundary"));
        }
        for (parn, kind) in attached {
            let resolved = managed.get(&parn).and_then(|p| p.document.as_ref());
            links.push((arn.clone(), parn.clone(), kind, resolved.is_some()));
            let Some(doc) = resolved else {
                summary.unresolved_policies += 1;
                continue;
            };
            if !expanded.contains_key(&parn) {
                let g = expand_document(doc, cat)
                    .with_context(|| format!("{source}: managed policy {parn}"))?;
                expanded.insert(parn.clone(), g);
            }
            for g in &expanded[&parn] {
                if !g.in_catalog {
                    unknown.insert(g.pattern.to_ascii_lowercase());
                }
                grant_rows.push((arn.clone(), parn.clone(), kind, g.clone()));
            }
        }
    }
    summary.roles = roles.len() as u64;
    summary.policies = (managed.len() + inline.len()) as u64;
    summary.grants = grant_rows.len() as u64;
    summary.unknown_patterns = unknown.len() as u64;

    store.transaction(|conn| {
        for role in &roles {
            for t in ["iam_roles", "iam_role_policies", "iam_grants"] {
                conn.execute(
                    &format!("DELETE FROM {t} WHERE role_arn = ?"),
                    params![role[0]],
                )?;
            }
            let mut row = role.clone();
            row.push(DbValue::Text(source.to_string()));
            row.push(ts(now));
            conn.execute(
                "INSERT INTO iam_roles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                duckdb::params_from_iter(row),
            )?;
        }
        for (arn, p) in &managed {
            conn.execute("DELETE FROM iam_policies WHERE policy_id = ?", [arn])?;
            conn.execute(
                "INSERT INTO iam_policies VALUES (?, ?, 'managed', ?, ?, ?, ?, ?)",
                params![
                    arn,
                    p.name,
                    p.aws_managed,
                    p.version_id,
                    p.document.as_ref().map(Value::to_string),
                    source,
                    ts(now)
                ],
            )?;
        }
        for (id, name, doc) in &inline {
            conn.execute("DELETE FROM iam_policies WHERE policy_id = ?", [id])?;
            conn.execute(
                "INSERT INTO iam_policies VALUES (?, ?, 'inline', false, NULL, ?, ?, ?)",
                params![id, name, doc.to_string(), source, ts(now)],
            )?;
        }
        {
            let mut app = conn.appender("iam_role_policies")?;
            for (role, pid, kind, resolved) in &links {
                app.append_row(params![role, pid, kind, resolved])?;
            }
            app.flush()?;
        }
        // Lists cannot be bound as parameters: grants are appended with `resources` as JSON
        // text to a staging table and converted in one INSERT … SELECT.
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE iam_grants_staging AS
             SELECT * REPLACE (CAST(NULL AS VARCHAR) AS resources) FROM iam_grants LIMIT 0",
        )?;
        let mut app = conn.appender("iam_grants_staging")?;
        for (role, pid, kind, g) in &grant_rows {
            app.append_row(params![
                role,
                pid,
                kind,
                g.statement_index,
                g.sid,
                g.effect,
                g.action,
                g.access_level,
                g.pattern,
                g.via_not_action,
                g.in_catalog,
                serde_json::to_string(&g.resources)?,
                g.not_resource,
                g.has_condition,
                g.condition
            ])?;
        }
        app.flush()?;
        drop(app);
        conn.execute_batch(
            "INSERT INTO iam_grants
             SELECT * REPLACE (from_json(resources, '[\"VARCHAR\"]') AS resources)
             FROM iam_grants_staging;
             DROP TABLE iam_grants_staging;",
        )?;
        Store::set_meta(conn, "grants_catalog_version", &cat.version)?;
        Ok(())
    })?;
    Ok(summary)
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn opt_text(v: Option<&Value>) -> DbValue {
    v.and_then(Value::as_str)
        .map_or(DbValue::Null, |s| DbValue::Text(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_encoded_documents_decode() {
        let enc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        let d = policy_document(&Value::String(enc.into())).unwrap();
        assert_eq!(d["Version"], "2012-10-17");
        assert!(policy_document(&Value::String("%7Bbad".into())).is_err());
        assert!(policy_document(&json!(5)).is_err());
    }

    #[test]
    fn statements_expand() {
        let cat = catalog::get();
        let doc = json!({"Statement": {"Effect": "Allow", "Action": ["s3:GetObject", "S3:getobject", "s3:NoSuchThing"], "Resource": "arn:aws:s3:::b/*"}});
        let g = expand_document(&doc, cat).unwrap();
        assert_eq!(g.len(), 2, "{g:#?}");
        assert_eq!(g[0].action, "s3:GetObject");
        assert_eq!(g[0].resources, vec!["arn:aws:s3:::b/*"]);
        assert!(!g[1].in_catalog);
        let bad = json!({"Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]});
        assert!(expand_document(&bad, cat).is_err());
    }
}
