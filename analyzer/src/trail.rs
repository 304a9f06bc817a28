//! The trail coverage model: which CloudTrail events the events read could hold, per region,
//! account, event source and, for data events, resource type and ARN.
//!
//! Its inputs are what people export from their account and keep beside the logs:
//! - `aws cloudtrail get-event-selectors` (`cloudtrail_event_selectors`): basic `EventSelectors`
//!   (ReadWriteType, IncludeManagementEvents, DataResources, ExcludeManagementEventSources) or
//!   `AdvancedEventSelectors` (FieldSelectors with Equals, NotEquals, StartsWith, NotStartsWith,
//!   EndsWith, NotEndsWith);
//! - `aws cloudtrail describe-trails` (`cloudtrail_trails`): IsMultiRegionTrail, HomeRegion,
//!   IsOrganizationTrail, HasCustomEventSelectors;
//! - the regions LookupEvents was asked (`cloudtrail_lookup_requests`): management events of
//!   that region only, never data events.
//!
//! [`load`] reads them into [`Scope`]s (one per trail, per LookupEvents region, or the files read
//! when no trail is known), every selector in the advanced form (a basic selector becomes one
//! management selector and one data selector per resource type); [`refresh`] writes that into
//! `trail_scopes` and `trail_selector_fields`, which `grant_visibility` (views.sql) reads; and
//! `credtrail coverage` shows it. What a document does not say is never assumed covered: a trail
//! known only from its selectors covers its home region and its own account.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use duckdb::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The comparison operators of an advanced field selector, as the API names them.
pub const OPERATORS: [&str; 6] = [
    "Equals",
    "NotEquals",
    "StartsWith",
    "NotStartsWith",
    "EndsWith",
    "NotEndsWith",
];

/// One condition of a selector: `field` `operator` any of `values` (for the `Not…` operators:
/// none of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub field: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// One selector in the advanced form: an event is logged when every condition holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selector {
    pub name: Option<String>,
    /// Converted from a basic `EventSelectors` entry.
    pub basic: bool,
    pub conditions: Vec<Condition>,
}

impl Selector {
    /// The values of the `Equals` condition on `field`, when there is one.
    fn equals(&self, field: &str) -> Option<&[String]> {
        self.conditions
            .iter()
            .find(|c| c.field == field && c.operator == "Equals")
            .map(|c| c.values.as_slice())
    }

    /// `Management`, `Data`, or what else the selector names (`eventCategory` Equals).
    pub fn category(&self) -> String {
        self.equals("eventCategory")
            .map(|v| v.join(", "))
            .unwrap_or_else(|| "(no eventCategory)".into())
    }

    /// Read and write, read-only or write-only (`readOnly` Equals `true`/`false`).
    pub fn read_write(&self) -> &'static str {
        match self.equals("readOnly") {
            Some([v]) if v.eq_ignore_ascii_case("true") => "read-only",
            Some([v]) if v.eq_ignore_ascii_case("false") => "write-only",
            _ => "read and write",
        }
    }

    /// One line: what the selector logs.
    pub fn describe(&self) -> String {
        let head = match self.category().as_str() {
            "Management" => "management events".to_string(),
            "Data" => "data events of".to_string(),
            other => format!("{other} events"),
        };
        match self.category().as_str() {
            "Data" => format!("{head} {}", self.details()),
            _ => format!("{head}, {}", self.details()),
        }
    }

    /// What the selector logs within its category: for data events the resource type first,
    /// then read/write and every other condition.
    pub fn details(&self) -> String {
        let mut out = String::new();
        if self.category() == "Data" {
            out.push_str(
                &self
                    .equals("resources.type")
                    .map(|v| v.join(", "))
                    .unwrap_or_else(|| "every resource type".into()),
            );
            out.push_str(", ");
        }
        out.push_str(self.read_write());
        for c in &self.conditions {
            if matches!(c.field.as_str(), "eventCategory" | "readOnly")
                || (c.field == "resources.type" && c.operator == "Equals")
            {
                continue;
            }
            out.push_str(&format!(
                ", {} {} {}",
                c.field,
                c.operator,
                c.values.join(", ")
            ));
        }
        out
    }
}

/// Where a scope's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A trail (its ARN), known from describe-trails or its event selectors.
    Trail,
    /// LookupEvents in one region: its management events only.
    Lookup,
    /// CloudTrail files of a trail nothing describes.
    Files,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Trail => "trail",
            Origin::Lookup => "lookup",
            Origin::Files => "files",
        }
    }
}

/// What one source of CloudTrail events covers.
#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    /// The trail's ARN, `LookupEvents <region>`, or `CloudTrail files`.
    pub trail: String,
    pub origin: Origin,
    pub home_region: Option<String>,
    /// `None`: every region.
    pub regions: Option<Vec<String>>,
    /// `None`: every account (an organization trail, LookupEvents).
    pub accounts: Option<Vec<String>>,
    /// `None`: not read (management events assumed, data events judged by their presence).
    pub selectors: Option<Vec<Selector>>,
    /// What the model assumed for this scope, and why.
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SelectorsDoc {
    #[serde(rename = "TrailARN")]
    trail_arn: String,
    event_selectors: Option<Vec<EventSelector>>,
    advanced_event_selectors: Option<Vec<AdvancedEventSelector>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventSelector {
    read_write_type: Option<String>,
    include_management_events: Option<bool>,
    #[serde(default)]
    data_resources: Vec<DataResource>,
    #[serde(default)]
    exclude_management_event_sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataResource {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdvancedEventSelector {
    name: Option<String>,
    field_selectors: Vec<FieldSelector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FieldSelector {
    field: String,
    equals: Option<Vec<String>>,
    not_equals: Option<Vec<String>>,
    starts_with: Option<Vec<String>>,
    not_starts_with: Option<Vec<String>>,
    ends_with: Option<Vec<String>>,
    not_ends_with: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TrailsDoc {
    #[serde(rename = "trailList")]
    trail_list: Vec<TrailInfo>,
}

/// One trail of describe-trails output.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailInfo {
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    pub name: Option<String>,
    pub home_region: Option<String>,
    pub is_multi_region_trail: Option<bool>,
    pub is_organization_trail: Option<bool>,
    pub include_global_service_events: Option<bool>,
    pub has_custom_event_selectors: Option<bool>,
}

/// Parses describe-trails output (`{"trailList": [...]}`).
pub fn parse_trails(doc: &str) -> Result<Vec<TrailInfo>> {
    let d: TrailsDoc =
        serde_json::from_str(doc).context("describe-trails output (a trailList of trails)")?;
    Ok(d.trail_list)
}

/// Parses get-event-selectors output into (trail ARN, selectors in the advanced form).
pub fn parse_selectors(doc: &str) -> Result<(String, Vec<Selector>)> {
    let d: SelectorsDoc = serde_json::from_str(doc).context(
        "get-event-selectors output (TrailARN with EventSelectors or AdvancedEventSelectors)",
    )?;
    let mut out = Vec::new();
    for s in d.event_selectors.unwrap_or_default() {
        out.extend(basic(&s)?);
    }
    for a in d.advanced_event_selectors.unwrap_or_default() {
        let mut conditions = Vec::new();
        for f in a.field_selectors {
            let ops = [
                ("Equals", f.equals),
                ("NotEquals", f.not_equals),
                ("StartsWith", f.starts_with),
                ("NotStartsWith", f.not_starts_with),
                ("EndsWith", f.ends_with),
                ("NotEndsWith", f.not_ends_with),
            ];
            let mut any = false;
            for (op, values) in ops {
                if let Some(values) = values {
                    any = true;
                    conditions.push(Condition {
                        field: f.field.clone(),
                        operator: op.into(),
                        values,
                    });
                }
            }
            anyhow::ensure!(any, "field selector on {:?} has no operator", f.field);
        }
        out.push(Selector {
            name: a.name,
            basic: false,
            conditions,
        });
    }
    Ok((d.trail_arn, out))
}

/// A basic event selector as advanced selectors: its management half, and one data selector
/// per resource type (and per operator its values need).
fn basic(s: &EventSelector) -> Result<Vec<Selector>> {
    let read_only = match s.read_write_type.as_deref().unwrap_or("All") {
        "All" => None,
        "ReadOnly" => Some("true"),
        "WriteOnly" => Some("false"),
        other => anyhow::bail!("ReadWriteType {other:?} is not All, ReadOnly or WriteOnly"),
    };
    let head = |category: &str| {
        let mut c = vec![cond("eventCategory", "Equals", &[category])];
        if let Some(r) = read_only {
            c.push(cond("readOnly", "Equals", &[r]));
        }
        c
    };
    let mut out = Vec::new();
    if s.include_management_events.unwrap_or(true) {
        let mut c = head("Management");
        if !s.exclude_management_event_sources.is_empty() {
            c.push(Condition {
                field: "eventSource".into(),
                operator: "NotEquals".into(),
                values: s.exclude_management_event_sources.clone(),
            });
        }
        out.push(Selector {
            name: None,
            basic: true,
            conditions: c,
        });
    }
    for d in &s.data_resources {
        // S3 object values are prefixes (`arn:aws:s3:::bucket/`, `arn:aws:s3` for all); for the
        // other types a bare service prefix (`arn:aws:lambda`) means all, a full ARN only that
        // resource.
        let prefix_values = d.kind.starts_with("AWS::S3::");
        let (starts, equals): (Vec<&String>, Vec<&String>) = d
            .values
            .iter()
            .partition(|v| prefix_values || v.matches(':').count() <= 2);
        let mut groups = Vec::new();
        if !starts.is_empty() {
            groups.push(("StartsWith", starts));
        }
        if !equals.is_empty() || d.values.is_empty() {
            // No values: nothing of that type is logged.
            groups.push(("Equals", equals));
        }
        for (op, values) in groups {
            let mut c = head("Data");
            c.push(cond("resources.type", "Equals", &[d.kind.as_str()]));
            c.push(Condition {
                field: "resources.ARN".into(),
                operator: op.into(),
                values: values.into_iter().cloned().collect(),
            });
            out.push(Selector {
                name: None,
                basic: true,
                conditions: c,
            });
        }
    }
    Ok(out)
}

fn cond(field: &str, op: &str, values: &[&str]) -> Condition {
    Condition {
        field: field.into(),
        operator: op.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// The selectors a trail has when it has none of its own (HasCustomEventSelectors false): all
/// management events, no data events.
fn default_selectors() -> Vec<Selector> {
    vec![Selector {
        name: None,
        basic: true,
        conditions: vec![cond("eventCategory", "Equals", &["Management"])],
    }]
}

/// (region, account) of an ARN.
fn arn_region_account(arn: &str) -> (Option<String>, Option<String>) {
    let f: Vec<&str> = arn.splitn(6, ':').collect();
    let part = |i: usize| f.get(i).filter(|s| !s.is_empty()).map(|s| s.to_string());
    (part(3), part(4))
}

/// Reads the model from the store: every trail described or with selectors, every LookupEvents
/// region, and, when no trail is known but files were read, the files.
pub fn load(conn: &Connection) -> Result<Vec<Scope>> {
    let mut trails: BTreeMap<String, Scope> = BTreeMap::new();
    // A store written before describe-trails was read, opened read-only, has no such table.
    let has_trails: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'cloudtrail_trails'",
        [],
        |r| r.get(0),
    )?;
    let described: Vec<(String, String)> = if has_trails == 0 {
        Vec::new()
    } else {
        let mut stmt = conn.prepare(
            "SELECT trail_arn, document::VARCHAR FROM cloudtrail_trails ORDER BY trail_arn",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    for (arn, doc) in described {
        let info = parse_trails(&doc)?
            .into_iter()
            .find(|t| t.trail_arn == arn)
            .with_context(|| format!("stored describe-trails document lost trail {arn}"))?;
        let (arn_region, account) = arn_region_account(&arn);
        let home = info.home_region.clone().or(arn_region);
        let mut notes = Vec::new();
        let regions = match (info.is_multi_region_trail, &home) {
            (Some(true), _) => None,
            (_, Some(h)) => Some(vec![h.clone()]),
            (_, None) => Some(Vec::new()),
        };
        let accounts = if info.is_organization_trail == Some(true) {
            None
        } else {
            Some(account.into_iter().collect())
        };
        let selectors = if info.has_custom_event_selectors == Some(false) {
            Some(default_selectors())
        } else {
            notes.push(
                "its event selectors were not read (aws cloudtrail get-event-selectors): management events assumed, data events judged by their presence".into(),
            );
            None
        };
        trails.insert(
            arn.clone(),
            Scope {
                trail: arn,
                origin: Origin::Trail,
                home_region: home,
                regions,
                accounts,
                selectors,
                notes,
            },
        );
    }
    let selector_docs: Vec<(String, String)> = {
        let mut stmt = conn.prepare(
            "SELECT coalesce(trail_arn, ''), document::VARCHAR FROM cloudtrail_event_selectors
             ORDER BY trail_arn",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    for (_, doc) in selector_docs {
        let (arn, selectors) = parse_selectors(&doc)?;
        match trails.get_mut(&arn) {
            Some(s) => {
                s.selectors = Some(selectors);
                s.notes.retain(|n| !n.starts_with("its event selectors"));
            }
            None => {
                let (region, account) = arn_region_account(&arn);
                let mut notes = vec![format!(
                    "not described (aws cloudtrail describe-trails): only its home region{} and account{} are counted as covered",
                    region
                        .as_deref()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default(),
                    account
                        .as_deref()
                        .map(|a| format!(" {a}"))
                        .unwrap_or_default(),
                )];
                if region.is_none() {
                    notes.push("its ARN names no region: no region is covered".into());
                }
                trails.insert(
                    arn.clone(),
                    Scope {
                        trail: arn,
                        origin: Origin::Trail,
                        home_region: region.clone(),
                        regions: Some(region.into_iter().collect()),
                        accounts: Some(account.into_iter().collect()),
                        selectors: Some(selectors),
                        notes,
                    },
                );
            }
        }
    }
    let mut out: Vec<Scope> = trails.into_values().collect();
    let lookup_regions: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT DISTINCT region FROM cloudtrail_lookup_requests ORDER BY region")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    let files_without_trail = out.is_empty() && {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM cloudtrail_events
                                   WHERE source_file NOT LIKE 'lookup:%' LIMIT 1)",
            [],
            |r| r.get(0),
        )?;
        n > 0 || lookup_regions.is_empty()
    };
    for region in lookup_regions {
        out.push(Scope {
            trail: format!("LookupEvents {region}"),
            origin: Origin::Lookup,
            home_region: Some(region.clone()),
            regions: Some(vec![region.clone()]),
            accounts: None,
            selectors: Some(default_selectors()),
            notes: vec![format!("management events of {region} only")],
        });
    }
    if files_without_trail {
        out.push(Scope {
            trail: "CloudTrail files".into(),
            origin: Origin::Files,
            home_region: None,
            regions: None,
            accounts: None,
            selectors: None,
            notes: vec![
                "no trail is described and no event selectors were read: management events of every region assumed, data events judged by their presence".into(),
            ],
        });
    }
    Ok(out)
}

/// Rewrites `trail_scopes` and `trail_selector_fields` from the documents stored. Returns the
/// scopes.
pub fn refresh(store: &Store) -> Result<Vec<Scope>> {
    let scopes = load(store.conn()).context("reading the trail coverage model")?;
    store.transaction(|conn| {
        conn.execute_batch("DELETE FROM trail_scopes; DELETE FROM trail_selector_fields;")?;
        let mut scope_stmt = conn.prepare(
            "INSERT INTO trail_scopes (trail, origin, regions, accounts, selectors_known)
             VALUES (?, ?, CAST(?::JSON AS VARCHAR[]), CAST(?::JSON AS VARCHAR[]), ?)",
        )?;
        let mut field_stmt = conn.prepare(
            "INSERT INTO trail_selector_fields (trail, selector, field, operator, vals)
             VALUES (?, ?, ?, ?, CAST(?::JSON AS VARCHAR[]))",
        )?;
        for s in &scopes {
            let json =
                |v: &Option<Vec<String>>| v.as_ref().map(|v| serde_json::json!(v).to_string());
            scope_stmt.execute(params![
                s.trail,
                s.origin.as_str(),
                json(&s.regions),
                json(&s.accounts),
                s.selectors.is_some()
            ])?;
            for (i, sel) in s.selectors.iter().flatten().enumerate() {
                for c in &sel.conditions {
                    field_stmt.execute(params![
                        s.trail,
                        i as i64,
                        c.field,
                        c.operator,
                        serde_json::json!(c.values).to_string()
                    ])?;
                }
            }
        }
        Ok(())
    })?;
    Ok(scopes)
}

/// Stores describe-trails output: one row per trail, replacing what an earlier snapshot said
/// about it. Returns the trails stored.
pub fn insert_trails(conn: &Connection, source: &str, doc: &str, now: i64) -> Result<usize> {
    let trails = parse_trails(doc)?;
    for t in &trails {
        conn.execute(
            "DELETE FROM cloudtrail_trails WHERE trail_arn = ?",
            [&t.trail_arn],
        )?;
        conn.execute(
            "INSERT INTO cloudtrail_trails
                 (trail_arn, name, home_region, multi_region, organization, global_service_events,
                  custom_selectors, document, source_file, ingested_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?::JSON, ?, make_timestamp(?::BIGINT))",
            params![
                t.trail_arn,
                t.name,
                t.home_region,
                t.is_multi_region_trail,
                t.is_organization_trail,
                t.include_global_service_events,
                t.has_custom_event_selectors,
                doc,
                source,
                now
            ],
        )?;
    }
    Ok(trails.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_selectors_become_advanced_ones() {
        let (arn, s) = parse_selectors(
            r#"{"TrailARN":"arn:aws:cloudtrail:us-east-1:111122223333:trail/t",
                "EventSelectors":[{"ReadWriteType":"WriteOnly","IncludeManagementEvents":true,
                  "DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::a/","arn:aws:s3:::b/logs"]},
                                   {"Type":"AWS::Lambda::Function","Values":["arn:aws:lambda","arn:aws:lambda:us-east-1:111122223333:function:f"]}],
                  "ExcludeManagementEventSources":["kms.amazonaws.com"]}]}"#,
        )
        .unwrap();
        assert_eq!(arn, "arn:aws:cloudtrail:us-east-1:111122223333:trail/t");
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[0].describe(),
            "management events, write-only, eventSource NotEquals kms.amazonaws.com"
        );
        assert_eq!(
            s[1].describe(),
            "data events of AWS::S3::Object, write-only, resources.ARN StartsWith arn:aws:s3:::a/, arn:aws:s3:::b/logs"
        );
        assert_eq!(
            s[2].describe(),
            "data events of AWS::Lambda::Function, write-only, resources.ARN StartsWith arn:aws:lambda"
        );
        assert_eq!(
            s[3].conditions.last().unwrap(),
            &cond(
                "resources.ARN",
                "Equals",
                &["arn:aws:lambda:us-east-1:111122223333:function:f"]
            )
        );
    }

    #[test]
    fn management_events_off_leaves_no_management_selector() {
        let (_, s) = parse_selectors(
            r#"{"TrailARN":"arn:aws:cloudtrail:us-east-1:1:trail/t",
                "EventSelectors":[{"ReadWriteType":"All","IncludeManagementEvents":false,"DataResources":[]}]}"#,
        )
        .unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn advanced_selectors_keep_every_operator() {
        let (_, s) = parse_selectors(
            r#"{"TrailARN":"arn:aws:cloudtrail:eu-west-1:1:trail/t","AdvancedEventSelectors":[
                {"Name":"objects","FieldSelectors":[
                  {"Field":"eventCategory","Equals":["Data"]},
                  {"Field":"resources.type","Equals":["AWS::S3::Object"]},
                  {"Field":"resources.ARN","StartsWith":["arn:aws:s3:::a/"],"NotStartsWith":["arn:aws:s3:::a/tmp/"]}]}]}"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name.as_deref(), Some("objects"));
        assert_eq!(s[0].conditions.len(), 4);
        assert_eq!(s[0].conditions[3].operator, "NotStartsWith");
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(
            parse_selectors(r#"{"TrailARN":"t","EventSelectors":[{"ReadWriteType":"Some"}]}"#)
                .is_err()
        );
        assert!(
            parse_selectors(
                r#"{"TrailARN":"t","AdvancedEventSelectors":[{"FieldSelectors":[{"Field":"eventCategory"}]}]}"#
            )
            .is_err()
        );
        assert!(parse_trails(r#"{"trailList":[{"Name":"x"}]}"#).is_err());
    }
}
