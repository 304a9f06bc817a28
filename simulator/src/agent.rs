//! ECS agent introspection snapshots per host (formats.md §5): what `GET /v1/tasks` and
//! `GET /v1/metadata` on port 51678 returned, every 15 minutes, as
//! `hosts/<host>/agent/tasks/<YYYYMMDDTHHMMSSZ>.json` and `hosts/<host>/agent/metadata.json`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::clock;
use super::cluster::{Network, Task, World, ip_str};

/// Snapshot period (seconds).
pub const PERIOD: i64 = 15 * 60;
/// The agent forgets stopped tasks after `ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION` (3 h).
const CLEANUP_WAIT: i64 = 3 * 3600;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TasksResponse<'a> {
    tasks: Vec<TaskResponse<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskResponse<'a> {
    arn: &'a str,
    desired_status: &'static str,
    known_status: &'static str,
    family: &'a str,
    version: String,
    containers: Vec<ContainerResponse<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerResponse<'a> {
    docker_id: &'a str,
    docker_name: String,
    name: &'a str,
    image: &'a str,
    #[serde(rename = "ImageID")]
    image_id: &'a str,
    created_at: String,
    started_at: String,
    networks: Vec<NetworkResponse>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkResponse {
    network_mode: &'static str,
    #[serde(rename = "IPv4Addresses")]
    ipv4_addresses: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata<'a> {
    cluster: &'a str,
    container_instance_arn: &'a str,
    version: String,
}

fn task_response<'a>(w: &'a World, t: &'a Task, at: i64) -> TaskResponse<'a> {
    let td = &w.taskdefs[t.taskdef];
    let stopped = t.stopped().is_some_and(|s| at >= s);
    let stopping = t.stopping_ms.is_some_and(|s| at * 1000 >= s);
    let known = if stopped {
        "STOPPED"
    } else if at < t.started() {
        "PULLED"
    } else {
        "RUNNING"
    };
    let containers = t
        .containers
        .iter()
        .zip(&td.containers)
        .map(|(c, def)| ContainerResponse {
            docker_id: &c.docker_id,
            docker_name: format!(
                "ecs-{}-{}-{}-{}",
                td.family,
                td.revision,
                c.name,
                &c.docker_id[40..60]
            ),
            name: c.name,
            image: &def.image,
            image_id: &c.image_digest,
            created_at: clock::rfc3339_millis(t.pull_stopped_ms + 300),
            started_at: clock::rfc3339_millis(t.started_ms),
            networks: vec![match td.network {
                Network::Bridge => NetworkResponse {
                    network_mode: "bridge",
                    ipv4_addresses: c.bridge_ip.map(ip_str).into_iter().collect(),
                },
                Network::Awsvpc => NetworkResponse {
                    network_mode: "awsvpc",
                    ipv4_addresses: t.eni.as_ref().map(|e| ip_str(e.ip)).into_iter().collect(),
                },
            }],
        })
        .collect();
    TaskResponse {
        arn: &t.arn,
        desired_status: if stopping || stopped {
            "STOPPED"
        } else {
            "RUNNING"
        },
        known_status: known,
        family: &td.family,
        version: td.revision.to_string(),
        containers,
    }
}

/// Write every host's snapshots; returns the number of snapshot files.
pub fn write(w: &World, out: &Path) -> Result<u64> {
    let mut files = 0;
    for (hi, host) in w.hosts.iter().enumerate() {
        let dir = out.join("hosts").join(&host.name).join("agent");
        let tasks_dir = dir.join("tasks");
        fs::create_dir_all(&tasks_dir)
            .with_context(|| format!("creating {}", tasks_dir.display()))?;
        let meta = Metadata {
            cluster: &w.clusters[host.cluster].name,
            container_instance_arn: &host.container_instance_arn,
            version: format!(
                "Amazon ECS Agent - v{} (*{:08x})",
                host.agent_version,
                w.seed as u32 ^ 0x5a17
            ),
        };
        let path = dir.join("metadata.json");
        fs::write(&path, serde_json::to_vec(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let on_host: Vec<&Task> = w
            .tasks
            .iter()
            .filter(|t| t.host == hi && !t.fargate)
            .collect();
        // The collector polls the agent from the moment it was installed.
        let first = w.start + PERIOD * ((host.audit_from - w.start) / PERIOD + 1);
        let mut at = first;
        while at <= w.end {
            let tasks = on_host
                .iter()
                .filter(|t| {
                    t.created_ms / 1000 <= at && t.stopped().is_none_or(|s| at < s + CLEANUP_WAIT)
                })
                .map(|t| task_response(w, t, at))
                .collect();
            let body = serde_json::to_vec(&TasksResponse { tasks })?;
            let path = tasks_dir.join(format!("{}.json", clock::compact_second(at)));
            fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
            files += 1;
            at += PERIOD;
        }
    }
    Ok(files)
}
