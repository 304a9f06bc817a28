//! `credtrail simulate`: a realistic ECS cluster writing every input credtrail reads, in the
//! formats AWS writes them (shared/spec/formats.md), with labelled attacks mixed into ordinary
//! traffic and the expected findings in `truth.jsonl`.
//!
//! Output layout under the chosen directory:
//! ```text
//! manifest.json                         what was simulated (seed, hosts with their agent faults
//!                                       and audit start, benign clients, counts)
//! truth.jsonl                           one expected finding per planted attack (benign
//!                                       behaviour a rule may call medium is not in it)
//! used-actions.jsonl                    every (role, IAM action) a task or execution role
//!                                       session really used, whether or not the trail logged
//!                                       it: what an `unused` verdict must never name
//! hosts/<host>/var/log/ecs/audit.log*   agent credential audit logs, rolled per host mode
//! hosts/<host>/agent/metadata.json      GET /v1/metadata
//! hosts/<host>/agent/tasks/<time>.json  GET /v1/tasks every 15 minutes
//! ecs/describe-tasks-<cluster>-<time>-<page>.json
//! ecs/task-definitions/<family>-<revision>.json
//! iam/authorization-details.json
//! cloudtrail/event-selectors.json
//! cloudtrail/trails.json
//! cloudtrail/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz
//! network/<YYYYMMDDTHHMMSSZ>/<account>/<region>/describe-network-interfaces.json
//!                                       (and describe-subnets.json, describe-vpc-endpoints.json):
//!                                       the network inventory, an hourly snapshot named by the
//!                                       time it was taken
//! ```
//! Same configuration and seed, same bytes: all randomness comes from [`rng`] streams, time
//! starts at a fixed instant (2026-11-16T00:00:00Z) and nothing iterates a hash map.

pub mod agent;
pub mod attacks;
pub mod audit;
pub mod calls;
pub mod clients;
pub mod clock;
pub mod cloudtrail;
pub mod cluster;
pub mod ecs;
pub mod iam;
pub mod network;
pub mod rng;
pub mod truth;

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;

pub use attacks::{Attack, UnknownAttack};
pub use cluster::SimConfig;
pub use truth::Truth;

/// What one simulation wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub account: String,
    pub start: String,
    pub end: String,
    pub clusters: usize,
    pub hosts: Vec<String>,
    pub tasks: usize,
    pub audit: audit::Stats,
    pub snapshots: u64,
    pub ecs: ecs::Stats,
    pub network: network::Stats,
    pub cloudtrail: cloudtrail::Stats,
    pub truth: Vec<Truth>,
    /// Wall-clock seconds spent on CloudTrail and on everything (reporting only; never written).
    pub cloudtrail_seconds: f64,
    pub total_seconds: f64,
}

/// Pretty JSON with the AWS CLI's four-space indent and a final newline.
pub(crate) fn write_pretty(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut out = Vec::with_capacity(4096);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value
        .serialize(&mut ser)
        .with_context(|| format!("serializing {}", path.display()))?;
    out.push(b'\n');
    fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn ensure_empty_dir(out: &Path) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            bail!(
                "output path {} exists and is not a directory",
                out.display()
            );
        }
        let mut entries =
            fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
        if entries.next().is_some() {
            bail!(
                "output directory {} is not empty; choose a new or empty directory",
                out.display()
            );
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// `used-actions.jsonl`: one `{"role_arn", "action"}` line per pair, sorted.
fn render_used(w: &cluster::World, used: &cloudtrail::UsedActions) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (role, action) in used {
        serde_json::to_writer(
            &mut out,
            &json!({"role_arn": w.roles[*role as usize].arn, "action": action}),
        )?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Simulate into `out` (which must be absent or empty).
pub fn run(cfg: &SimConfig, out: &Path) -> Result<Summary> {
    let t0 = Instant::now();
    cfg.validate()?;
    ensure_empty_dir(out)?;
    let world = cluster::build(cfg)?;
    let audit = audit::write(&world, out)?;
    let snapshots = agent::write(&world, out)?;
    let ecs = ecs::write(&world, out)?;
    let network = network::write(&world, out)?;
    let iam_dir = out.join("iam");
    fs::create_dir_all(&iam_dir).with_context(|| format!("creating {}", iam_dir.display()))?;
    write_pretty(
        &iam_dir.join("authorization-details.json"),
        &iam::authorization_details(&world),
    )?;
    let ct_dir = out.join("cloudtrail");
    fs::create_dir_all(&ct_dir).with_context(|| format!("creating {}", ct_dir.display()))?;
    write_pretty(
        &ct_dir.join("event-selectors.json"),
        &cloudtrail::event_selectors(&world),
    )?;
    write_pretty(&ct_dir.join("trails.json"), &cloudtrail::trails(&world))?;
    let t_ct = Instant::now();
    let (ct, used) = cloudtrail::write(&world, &ct_dir, cfg.threads)?;
    let cloudtrail_seconds = t_ct.elapsed().as_secs_f64();
    let used_path = out.join("used-actions.jsonl");
    fs::write(&used_path, render_used(&world, &used)?)
        .with_context(|| format!("writing {}", used_path.display()))?;
    let truth_path = out.join("truth.jsonl");
    fs::write(&truth_path, truth::render(&world.truth)?)
        .with_context(|| format!("writing {}", truth_path.display()))?;
    let summary = Summary {
        account: world.account.clone(),
        start: clock::rfc3339_string(world.start),
        end: clock::rfc3339_string(world.end),
        clusters: world.clusters.len(),
        hosts: world.hosts.iter().map(|h| h.name.clone()).collect(),
        tasks: world.tasks.len(),
        audit,
        snapshots,
        ecs,
        network,
        cloudtrail: ct,
        truth: world.truth.clone(),
        cloudtrail_seconds,
        total_seconds: 0.0,
    };
    write_pretty(
        &out.join("manifest.json"),
        &manifest(&world, cfg, &summary, out),
    )?;
    Ok(Summary {
        total_seconds: t0.elapsed().as_secs_f64(),
        ..summary
    })
}

/// Clusters in different regions whose VPCs use the same private range.
fn shared_ranges(w: &cluster::World) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (i, a) in w.clusters.iter().enumerate() {
        let others: Vec<&str> = w.clusters[i + 1..]
            .iter()
            .filter(|b| b.vpc_octet == a.vpc_octet)
            .map(|b| b.name.as_str())
            .collect();
        if !others.is_empty() {
            out.push(json!({
                "cidr": format!("10.{}.0.0/16", a.vpc_octet),
                "clusters": std::iter::once(a.name.as_str()).chain(others).collect::<Vec<_>>(),
            }));
        }
    }
    out.dedup_by(|x, y| x["cidr"] == y["cidr"]);
    out
}

fn manifest(w: &cluster::World, cfg: &SimConfig, s: &Summary, out_dir: &Path) -> serde_json::Value {
    json!({
        "generator": "credtrail simulate",
        "seed": cfg.seed,
        "start": s.start,
        "end": s.end,
        "hours": cfg.hours,
        "account": w.account,
        "attacks": w.attacks.iter().map(|a| a.name()).collect::<Vec<_>>(),
        "clusters": w.clusters.iter().map(|c| json!({
            "name": c.name,
            "arn": c.arn,
            "region": cluster::REGIONS[c.region as usize],
            "vpc_id": c.vpc_id,
            "vpc_cidr": format!("10.{}.0.0/16", c.vpc_octet),
            "vpc_ipv6_cidr": format!("{}/56", cluster::ip6_str(c.ipv6_prefix)),
            "nat_addresses": c.nat.iter().map(|&ip| cluster::ip_str(ip)).collect::<Vec<_>>(),
            "vpc_endpoints": c.endpoints.iter().map(|&e| json!({
                "id": w.endpoints[e].id, "service": w.endpoints[e].service})).collect::<Vec<_>>(),
            "services": c.services.iter().map(|&s| w.services[s].name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "hosts": w.hosts.iter().map(|h| {
            let mut v = json!({
                "name": h.name,
                "cluster": w.clusters[h.cluster].name,
                "container_instance_arn": h.container_instance_arn,
                "instance_id": h.instance_id,
                "private_ip": cluster::ip_str(h.private_ip),
                "agent_version": h.agent_version,
                "rollover": h.rollover.name(),
                "clock_skew_seconds": h.skew,
                "audit_from": clock::rfc3339_string(h.audit_from),
                "agent_faults": h.faults.iter().map(|f| json!({
                    "from": clock::rfc3339_string(f.from),
                    "to": clock::rfc3339_string(f.to),
                    "status": f.status,
                })).collect::<Vec<_>>(),
            });
            if let (cluster::Rollover::Size { max_bytes }, Some(o)) = (h.rollover, v.as_object_mut()) {
                o.insert("max_file_size_bytes".into(), json!(max_bytes));
            }
            v
        }).collect::<Vec<_>>(),
        // Benign behaviour a detection may at most call medium, never planted: a client with an
        // unknown credential ID (truth.jsonl has no way to say "benign, medium at most").
        "network_snapshots": s.network.snapshots.iter().map(|n| json!({
            "taken_at": clock::rfc3339_string(n.taken_at),
            "dir": n.dir.strip_prefix(out_dir).unwrap_or(&n.dir).display().to_string(),
        })).collect::<Vec<_>>(),
        "benign": {
            // Deployments detections.md says must produce no finding, present in this world.
            "public_ip_tasks": w.tasks.iter().filter(|t| t.public_ip.is_some()).map(|t| json!({
                "task_arn": t.arn,
                "public_ip": t.public_ip.map(cluster::ip_str),
            })).collect::<Vec<_>>(),
            "dual_stack_tasks": w.tasks.iter().filter(|t| t.ipv6.is_some()).map(|t| json!({
                "task_arn": t.arn,
                "ipv6": t.ipv6.map(cluster::ip6_str),
            })).collect::<Vec<_>>(),
            "shared_vpc_ranges": shared_ranges(w),
            "stale_credential_client": w.stale.map(|s| {
                let t = &w.tasks[s.task];
                json!({
                    "task_arn": t.arn,
                    "host": w.hosts[t.host].container_instance_arn,
                    "source_ip": t.fetch_ip().map(cluster::ip_str),
                    "user_agent": s.lang.fetch_user_agent(),
                    "from": clock::rfc3339_string(s.from),
                    "period_seconds": s.period,
                })
            }),
        },
        "counts": {
            "tasks": s.tasks,
            "task_definitions": w.taskdefs.len(),
            "audit_lines": s.audit.lines,
            "audit_error_lines": s.audit.errors,
            "audit_files": s.audit.files,
            "agent_snapshots": s.snapshots,
            "describe_tasks_files": s.ecs.describe_tasks_files,
            "task_definition_files": s.ecs.task_definition_files,
            "network_snapshots": s.network.snapshots.len(),
            "network_files": s.network.files,
            "network_interfaces": s.network.interfaces,
            "cloudtrail_records": s.cloudtrail.records,
            "cloudtrail_files": s.cloudtrail.files,
            "cloudtrail_duplicate_deliveries": s.cloudtrail.duplicates,
            "cloudtrail_late_deliveries": s.cloudtrail.late,
            "truth": s.truth.len(),
        },
    })
}
