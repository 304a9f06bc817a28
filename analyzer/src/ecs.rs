//! `credtrail ingest ecs FILE…`: `aws ecs describe-tasks` and `describe-task-definition` output
//! (files or directories of `.json`) into `ecs_tasks` and `task_definitions`; the `tasks` view
//! merges them with the collector's task inventory and the audit log.
//!
//! Accepted shapes: `{"tasks":[…],"failures":[…]}`, `{"taskDefinition":{…}}`,
//! `{"taskDefinitions":[…]}`, a bare task or task definition object, a JSON array of any of
//! these, or JSON lines. Times are epoch seconds with fractions (the CLI's default) or ISO 8601.
//! Re-ingesting the same snapshot adds nothing.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use duckdb::params;
use serde_json::Value;

use crate::store::{Store, now_us, opt_ts, ts};
use crate::timestamp;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub tasks: u64,
    /// Task snapshots already stored.
    pub tasks_unchanged: u64,
    pub task_definitions: u64,
    pub failures: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ecs: {} files, {} task snapshots stored ({} already known), {} task definitions, {} describe-tasks failures listed",
            self.files, self.tasks, self.tasks_unchanged, self.task_definitions, self.failures
        )
    }
}

/// One task as `describe-tasks` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    pub task_arn: String,
    pub task_id: String,
    pub cluster_arn: Option<String>,
    pub task_definition_arn: Option<String>,
    pub family: Option<String>,
    pub revision: Option<i32>,
    pub task_role_override: Option<String>,
    pub execution_role_override: Option<String>,
    pub launch_type: Option<String>,
    pub container_instance_arn: Option<String>,
    pub group: Option<String>,
    pub last_status: Option<String>,
    pub desired_status: Option<String>,
    pub private_ips: Vec<String>,
    pub eni_id: Option<String>,
    pub created_us: Option<i64>,
    pub started_us: Option<i64>,
    pub stopping_us: Option<i64>,
    pub stopped_us: Option<i64>,
    pub stopped_reason: Option<String>,
    pub pull_started_us: Option<i64>,
    pub pull_stopped_us: Option<i64>,
    /// The ENI attachment's `subnetId` detail.
    pub subnet_id: Option<String>,
    /// The ENI attachment's `id`: the uuid in the ENI's Description
    /// (`arn:aws:ecs:<region>:<account>:attachment/<uuid>`).
    pub attachment_id: Option<String>,
    pub ipv6_addresses: Vec<String>,
    /// From the task ARN (`arn:<partition>:ecs:<region>:<account>:task/…`).
    pub region: Option<String>,
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub network_mode: Option<String>,
    pub registered_us: Option<i64>,
    pub document: String,
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

fn t(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(timestamp::from_json_us)
}

/// Region and account of an ARN (`arn:<partition>:<service>:<region>:<account>:…`), when both
/// are there.
pub fn arn_region_account(arn: &str) -> Option<(String, String)> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let (_partition, _service) = (parts.next()?, parts.next()?);
    let (region, account) = (parts.next()?, parts.next()?);
    parts.next()?;
    (!region.is_empty() && !account.is_empty()).then(|| (region.to_string(), account.to_string()))
}

/// An attachment detail that holds an IPv6 address of the task: its name mentions IPv6
/// (`privateIPv6Address`, `ipv6Address`, …) and its value is one address (not a CIDR block).
fn ipv6_detail(name: &str, value: &str) -> bool {
    name.to_ascii_lowercase().contains("ipv6") && value.contains(':') && !value.contains('/')
}

/// `family:revision` from a task definition ARN (`…:task-definition/FAMILY:REV`).
fn family_revision(arn: &str) -> Option<(String, i32)> {
    let rest = arn.rsplit_once(":task-definition/")?.1;
    let (family, rev) = rest.rsplit_once(':')?;
    Some((family.to_string(), rev.parse().ok()?))
}

pub fn parse_task(v: &Value) -> Result<Task> {
    let arn = s(v, "taskArn").context("task has no taskArn")?;
    let task_id = arn.rsplit('/').next().unwrap_or(&arn).to_string();
    let td_arn = s(v, "taskDefinitionArn");
    let (family, revision) = td_arn
        .as_deref()
        .and_then(family_revision)
        .map_or((None, None), |(f, r)| (Some(f), Some(r)));
    let overrides = v.get("overrides");
    let mut ips: Vec<String> = Vec::new();
    let mut ipv6: Vec<String> = Vec::new();
    let mut eni_id = None;
    let mut subnet_id = None;
    let mut attachment_id = None;
    for a in v
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if a.get("type").and_then(Value::as_str) != Some("ElasticNetworkInterface") {
            continue;
        }
        if attachment_id.is_none() {
            attachment_id = s(a, "id");
        }
        for d in a
            .get("details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match (
                d.get("name").and_then(Value::as_str),
                d.get("value").and_then(Value::as_str),
            ) {
                (Some("privateIPv4Address"), Some(ip)) => ips.push(ip.to_string()),
                (Some("networkInterfaceId"), Some(id)) => eni_id = Some(id.to_string()),
                (Some("subnetId"), Some(id)) if !id.is_empty() => subnet_id = Some(id.to_string()),
                (Some(name), Some(ip)) if ipv6_detail(name, ip) => ipv6.push(ip.to_lowercase()),
                _ => {}
            }
        }
    }
    for c in v
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for ni in c
            .get("networkInterfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ni.get("privateIpv4Address").and_then(Value::as_str) {
                ips.push(ip.to_string());
            }
            if let Some(ip) = ni.get("ipv6Address").and_then(Value::as_str) {
                ipv6.push(ip.to_lowercase());
            }
        }
    }
    ips.sort();
    ips.dedup();
    ipv6.sort();
    ipv6.dedup();
    let (region, account_id) = arn_region_account(&arn).unzip();
    Ok(Task {
        task_id,
        task_arn: arn,
        cluster_arn: s(v, "clusterArn"),
        task_definition_arn: td_arn,
        family,
        revision,
        task_role_override: overrides.and_then(|o| s(o, "taskRoleArn")),
        execution_role_override: overrides.and_then(|o| s(o, "executionRoleArn")),
        launch_type: s(v, "launchType"),
        container_instance_arn: s(v, "containerInstanceArn"),
        group: s(v, "group"),
        last_status: s(v, "lastStatus"),
        desired_status: s(v, "desiredStatus"),
        private_ips: ips,
        eni_id,
        created_us: t(v, "createdAt"),
        started_us: t(v, "startedAt"),
        stopping_us: t(v, "stoppingAt"),
        stopped_us: t(v, "stoppedAt"),
        stopped_reason: s(v, "stoppedReason"),
        pull_started_us: t(v, "pullStartedAt"),
        pull_stopped_us: t(v, "pullStoppedAt"),
        subnet_id,
        attachment_id,
        ipv6_addresses: ipv6,
        region,
        account_id,
    })
}

pub fn parse_task_definition(v: &Value) -> Result<TaskDefinition> {
    let arn = s(v, "taskDefinitionArn").context("task definition has no taskDefinitionArn")?;
    let from_arn = family_revision(&arn);
    let family = s(v, "family")
        .or_else(|| from_arn.as_ref().map(|f| f.0.clone()))
        .context("task definition has no family")?;
    let revision = v
        .get("revision")
        .and_then(Value::as_i64)
        .map(|r| r as i32)
        .or(from_arn.map(|f| f.1))
        .context("task definition has no revision")?;
    Ok(TaskDefinition {
        arn,
        family,
        revision,
        task_role_arn: s(v, "taskRoleArn"),
        execution_role_arn: s(v, "executionRoleArn"),
        network_mode: s(v, "networkMode"),
        registered_us: t(v, "registeredAt"),
        document: v.to_string(),
    })
}

/// Everything one JSON value holds.
#[derive(Debug, Default)]
pub struct Parsed {
    pub tasks: Vec<Task>,
    pub task_definitions: Vec<TaskDefinition>,
    pub failures: u64,
}

pub fn parse_value(v: &Value, out: &mut Parsed) -> Result<()> {
    match v {
        Value::Array(items) => {
            for i in items {
                parse_value(i, out)?;
            }
        }
        Value::Object(o) => {
            let mut known = false;
            if let Some(tasks) = o.get("tasks").and_then(Value::as_array) {
                known = true;
                for (i, task) in tasks.iter().enumerate() {
                    out.tasks
                        .push(parse_task(task).with_context(|| format!("tasks[{i}]"))?);
                }
                out.failures += o
                    .get("failures")
                    .and_then(Value::as_array)
                    .map_or(0, |f| f.len() as u64);
            }
            if let Some(td) = o.get("taskDefinition") {
                known = true;
                out.task_definitions.push(parse_task_definition(td)?);
            }
            if let Some(tds) = o.get("taskDefinitions").and_then(Value::as_array) {
                known = true;
                for td in tds {
                    out.task_definitions.push(parse_task_definition(td)?);
                }
            }
            if !known {
                if o.contains_key("taskArn") {
                    out.tasks.push(parse_task(v)?);
                } else if o.contains_key("taskDefinitionArn") && o.contains_key("family") {
                    out.task_definitions.push(parse_task_definition(v)?);
                } else {
                    bail!("neither describe-tasks nor describe-task-definition output");
                }
            }
        }
        _ => bail!("neither describe-tasks nor describe-task-definition output"),
    }
    Ok(())
}

fn parse_text(text: &str, out: &mut Parsed) -> Result<()> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => parse_value(&v, out),
        Err(whole) => {
            // JSON lines.
            let mut any = false;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line).map_err(|_| {
                    anyhow::anyhow!("not JSON ({whole}); nor JSON lines (line {})", n + 1)
                })?;
                parse_value(&v, out).with_context(|| format!("line {}", n + 1))?;
                any = true;
            }
            if !any {
                bail!("empty");
            }
            Ok(())
        }
    }
}

/// The files among `paths`, directories walked for `.json` and `.jsonl`, in name order.
pub(crate) fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                for e in
                    std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
                {
                    let path = e?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path
                        .extension()
                        .is_some_and(|x| x == "json" || x == "jsonl")
                    {
                        out.push(path);
                    }
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}

/// Ingests files and directories. A file that is not ECS output is an error naming it;
/// nothing of a failed run is stored.
pub fn ingest(store: &Store, paths: &[PathBuf]) -> Result<Summary> {
    let mut summary = Summary::default();
    let now = now_us();
    let list = files(paths)?;
    store.transaction(|conn| {
        conn.execute_batch(BATCH_TABLE)?;
        let mut app = conn.appender("ecs_task_batch")?;
        let mut ord = 0i64;
        for path in &list {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut parsed = Parsed::default();
            parse_text(&text, &mut parsed).with_context(|| format!("{}", path.display()))?;
            let source = path.display().to_string();
            summary.files += 1;
            summary.failures += parsed.failures;
            for td in &parsed.task_definitions {
                conn.execute(
                    "DELETE FROM task_definitions WHERE task_definition_arn = ?",
                    [&td.arn],
                )?;
                conn.execute(
                    "INSERT INTO task_definitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        td.arn,
                        td.family,
                        td.revision,
                        td.task_role_arn,
                        td.execution_role_arn,
                        td.network_mode,
                        opt_ts(td.registered_us),
                        td.document,
                        source,
                        ts(now)
                    ],
                )?;
                summary.task_definitions += 1;
            }
            for t in &parsed.tasks {
                append_task(&mut app, ord, t, &source, now)?;
                ord += 1;
            }
        }
        app.flush()?;
        drop(app);
        conn.execute(FILL_OLDER_ROWS, [])?;
        let stored = conn.execute(INSERT_NEW_TASKS, [])? as u64;
        conn.execute_batch("DROP TABLE ecs_task_batch")?;
        summary.tasks = stored;
        summary.tasks_unchanged = ord as u64 - stored;
        Ok(())
    })?;
    Ok(summary)
}

/// This run's task snapshots, in file order (`ord`), before they are compared with the store.
/// Lists cannot be appended as parameters: the addresses travel as JSON text.
const BATCH_TABLE: &str = "CREATE OR REPLACE TEMP TABLE ecs_task_batch (
    ord BIGINT, task_arn VARCHAR, task_id VARCHAR, cluster_arn VARCHAR,
    task_definition_arn VARCHAR, family VARCHAR, revision INTEGER, task_role_override VARCHAR,
    execution_role_override VARCHAR, launch_type VARCHAR, container_instance_arn VARCHAR,
    task_group VARCHAR, last_status VARCHAR, desired_status VARCHAR, private_ips_json VARCHAR,
    eni_id VARCHAR, created_at TIMESTAMP, started_at TIMESTAMP, stopping_at TIMESTAMP,
    stopped_at TIMESTAMP, stopped_reason VARCHAR, source_file VARCHAR, ingested_at TIMESTAMP,
    pull_started_at TIMESTAMP, pull_stopped_at TIMESTAMP, subnet_id VARCHAR, attachment_id VARCHAR,
    ipv6_json VARCHAR, region VARCHAR, account_id VARCHAR)";

/// Rows stored by a version that did not read `pullStartedAt`, the attachment's subnet and id,
/// IPv6 addresses or the ARN's region (`region` is NULL only there) get them when the same state
/// of the task is ingested again; otherwise that snapshot would be "already known" and the new
/// columns would stay empty.
const FILL_OLDER_ROWS: &str = r#"UPDATE ecs_tasks e
    SET pull_started_at = b.pull_started_at, pull_stopped_at = b.pull_stopped_at,
        subnet_id = b.subnet_id, attachment_id = b.attachment_id,
        ipv6_addresses = from_json(b.ipv6_json, '["VARCHAR"]'), region = b.region,
        account_id = b.account_id
    FROM (SELECT * FROM ecs_task_batch
          QUALIFY row_number() OVER (
              PARTITION BY task_arn, last_status, started_at, stopping_at, stopped_at,
                           private_ips_json, task_role_override
              ORDER BY ord) = 1) b
    WHERE e.region IS NULL AND b.region IS NOT NULL AND e.task_arn = b.task_arn
      AND e.last_status IS NOT DISTINCT FROM b.last_status
      AND e.started_at IS NOT DISTINCT FROM b.started_at
      AND e.stopping_at IS NOT DISTINCT FROM b.stopping_at
      AND e.stopped_at IS NOT DISTINCT FROM b.stopped_at
      AND e.private_ips IS NOT DISTINCT FROM from_json(b.private_ips_json, '["VARCHAR"]')
      AND e.task_role_override IS NOT DISTINCT FROM b.task_role_override"#;

/// Stores each snapshot unless the same state of the task (status, times, addresses, role
/// override) is stored already or came earlier in this run: one set-based statement, so a run
/// costs one pass however many snapshots the store holds (one statement per snapshot, each
/// scanning `ecs_tasks`, grew with the store times the input).
const INSERT_NEW_TASKS: &str = r#"INSERT INTO ecs_tasks (task_arn, task_id, cluster_arn,
        task_definition_arn, family, revision, task_role_override, execution_role_override,
        launch_type, container_instance_arn, task_group, last_status, desired_status, private_ips,
        eni_id, created_at, started_at, stopping_at, stopped_at, stopped_reason, source_file,
        ingested_at, pull_started_at, pull_stopped_at, subnet_id, attachment_id, ipv6_addresses,
        region, account_id)
    SELECT task_arn, task_id, cluster_arn, task_definition_arn, family, revision,
           task_role_override, execution_role_override, launch_type, container_instance_arn,
           task_group, last_status, desired_status, from_json(private_ips_json, '["VARCHAR"]'),
           eni_id, created_at, started_at, stopping_at, stopped_at, stopped_reason, source_file,
           ingested_at, pull_started_at, pull_stopped_at, subnet_id, attachment_id,
           from_json(ipv6_json, '["VARCHAR"]'), region, account_id
    FROM ecs_task_batch b
    WHERE NOT EXISTS (
        SELECT 1 FROM ecs_tasks e WHERE e.task_arn = b.task_arn
          AND e.last_status IS NOT DISTINCT FROM b.last_status
          AND e.started_at IS NOT DISTINCT FROM b.started_at
          AND e.stopping_at IS NOT DISTINCT FROM b.stopping_at
          AND e.stopped_at IS NOT DISTINCT FROM b.stopped_at
          AND e.private_ips IS NOT DISTINCT FROM from_json(b.private_ips_json, '["VARCHAR"]')
          AND coalesce(e.ipv6_addresses, []::VARCHAR[])
              = from_json(b.ipv6_json, '["VARCHAR"]')
          AND e.task_role_override IS NOT DISTINCT FROM b.task_role_override)
    QUALIFY row_number() OVER (
        PARTITION BY task_arn, last_status, started_at, stopping_at, stopped_at,
                     private_ips_json, ipv6_json, task_role_override
        ORDER BY ord) = 1"#;

fn append_task(
    app: &mut duckdb::Appender<'_>,
    ord: i64,
    t: &Task,
    source: &str,
    now: i64,
) -> Result<()> {
    let ips = serde_json::to_string(&t.private_ips)?;
    let ipv6 = serde_json::to_string(&t.ipv6_addresses)?;
    app.append_row(params![
        ord,
        t.task_arn,
        t.task_id,
        t.cluster_arn,
        t.task_definition_arn,
        t.family,
        t.revision,
        t.task_role_override,
        t.execution_role_override,
        t.launch_type,
        t.container_instance_arn,
        t.group,
        t.last_status,
        t.desired_status,
        ips,
        t.eni_id,
        opt_ts(t.created_us),
        opt_ts(t.started_us),
        opt_ts(t.stopping_us),
        opt_ts(t.stopped_us),
        t.stopped_reason,
        source,
        ts(now),
        opt_ts(t.pull_started_us),
        opt_ts(t.pull_stopped_us),
        t.subnet_id,
        t.attachment_id,
        ipv6,
        t.region,
        t.account_id
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_revision_come_from_the_arn() {
        assert_eq!(
            family_revision("arn:aws:ecs:us-east-1:1:task-definition/billing-api:42"),
            Some(("billing-api".to_string(), 42))
        );
        assert_eq!(family_revision("nonsense"), None);
    }

    #[test]
    fn region_and_account_come_from_the_task_arn() {
        assert_eq!(
            arn_region_account("arn:aws:ecs:eu-west-1:111122223333:task/prod/0123"),
            Some(("eu-west-1".to_string(), "111122223333".to_string()))
        );
        assert_eq!(arn_region_account("arn:aws:iam::111122223333:role/x"), None);
        assert_eq!(arn_region_account("task/prod/0123"), None);
    }
}
