//! `aws ecs describe-tasks` and `aws ecs describe-task-definition` output (formats.md §6):
//! hourly snapshots per cluster, `ecs/describe-tasks-<cluster>-<YYYYMMDDTHHmmZ>-<page>.json`
//! (at most 100 tasks each, the API's limit), and `ecs/task-definitions/<family>-<revision>.json`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::calls::Profile;
use super::clock::{self, epoch_fraction};
use super::cluster::{ContainerKind, Network, REGIONS, StopCode, Task, World, ip_str, ip6_str};
use super::iam::resources;
use super::rng::{Rng, stream};
use super::write_pretty;

/// ECS keeps stopped tasks visible for at least an hour.
const STOPPED_VISIBLE_MS: i64 = 70 * 60 * 1000;
pub(crate) const AZ_LETTERS: [char; 3] = ['a', 'b', 'c'];

fn task_json(w: &World, ti: usize, at_ms: i64) -> Value {
    let t = &w.tasks[ti];
    let td = &w.taskdefs[t.taskdef];
    let host = &w.hosts[t.host];
    let region = REGIONS[w.clusters[t.cluster].region as usize];
    let mut rng = Rng::derive(w.seed, &[stream::ECS, ti as u64]);
    let stopped = t.stopped_ms.filter(|&s| s <= at_ms);
    let stopping = t.stopping_ms.filter(|&s| s <= at_ms);
    let running = at_ms >= t.started_ms;
    let last_status = if stopped.is_some() {
        "STOPPED"
    } else if stopping.is_some() {
        "DEACTIVATING"
    } else if running {
        "RUNNING"
    } else {
        "PENDING"
    };
    let desired = if stopping.is_some() || stopped.is_some() {
        "STOPPED"
    } else {
        "RUNNING"
    };
    let containers: Vec<Value> = t
        .containers
        .iter()
        .zip(&td.containers)
        .map(|(c, def)| {
            let mut v = json!({
                "containerArn": c.container_arn,
                "taskArn": t.arn,
                "name": c.name,
                "image": def.image,
                "imageDigest": c.image_digest,
                "runtimeId": c.docker_id,
                "lastStatus": if stopped.is_some() { "STOPPED" } else if running { "RUNNING" } else { "PENDING" },
                "networkBindings": [],
                "networkInterfaces": [],
                "healthStatus": "UNKNOWN",
                "cpu": if c.kind == ContainerKind::App { "384" } else { "128" },
                "memory": if c.kind == ContainerKind::App { "768" } else { "256" },
            });
            if let Some(o) = v.as_object_mut() {
                if stopped.is_some() {
                    o.insert("exitCode".into(), json!(t.exit_code.unwrap_or(0)));
                }
                match td.network {
                    Network::Bridge => {
                        if let Some(port) = def.port {
                            o.insert(
                                "networkBindings".into(),
                                json!([{"bindIP": "0.0.0.0", "containerPort": port,
                                    "hostPort": 32768 + (rng.below(28000) as u16), "protocol": "tcp"}]),
                            );
                        }
                    }
                    Network::Awsvpc => {
                        if let Some(e) = &t.eni {
                            let mut ni = json!({"attachmentId": e.attachment_id, "privateIpv4Address": ip_str(e.ip)});
                            if let Some(v6) = t.ipv6 {
                                ni["ipv6Address"] = json!(ip6_str(v6));
                            }
                            o.insert("networkInterfaces".into(), json!([ni]));
                        }
                    }
                }
            }
            v
        })
        .collect();
    let attachments: Vec<Value> = t
        .eni
        .iter()
        .map(|e| {
            let mut details = vec![
                json!({"name": "subnetId", "value": e.subnet}),
                json!({"name": "networkInterfaceId", "value": e.id}),
                json!({"name": "macAddress", "value": e.mac}),
                json!({"name": "privateDnsName", "value": private_dns(e.ip, region)}),
                json!({"name": "privateIPv4Address", "value": ip_str(e.ip)}),
            ];
            if let Some(v6) = t.ipv6 {
                details.push(json!({"name": "ipv6Address", "value": ip6_str(v6)}));
            }
            json!({
                "id": e.attachment_id,
                "type": "ElasticNetworkInterface",
                "status": if stopped.is_some() { "DELETED" } else { "ATTACHED" },
                "details": details,
            })
        })
        .collect();
    let mut overrides = json!({
        "containerOverrides": td.containers.iter().map(|c| json!({"name": c.name})).collect::<Vec<_>>(),
        "inferenceAcceleratorOverrides": [],
    });
    if let Some(r) = t.role_override
        && let Some(o) = overrides.as_object_mut()
    {
        o.insert("taskRoleArn".into(), json!(w.roles[r].arn));
        o.insert(
            "containerOverrides".into(),
            json!([{"name": "app", "command": ["./migrate", "--apply", "2026_11_16_orders_gsi"]}]),
        );
    }
    let mut v = json!({
        "attachments": attachments,
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": format!("{region}{}", AZ_LETTERS[host.az]),
        "clusterArn": w.clusters[t.cluster].arn,
        "connectivity": "CONNECTED",
        "connectivityAt": epoch_fraction(t.created_ms + 150),
        "containers": containers,
        "cpu": "512",
        "createdAt": epoch_fraction(t.created_ms),
        "desiredStatus": desired,
        "enableExecuteCommand": false,
        "group": t.group,
        "healthStatus": "UNKNOWN",
        "lastStatus": last_status,
        "launchType": if t.fargate { "FARGATE" } else { "EC2" },
        "memory": "1024",
        "overrides": overrides,
        "pullStartedAt": epoch_fraction(t.pull_started_ms),
        "pullStoppedAt": epoch_fraction(t.pull_stopped_ms),
        "tags": [],
        "taskArn": t.arn,
        "taskDefinitionArn": td.arn,
        "version": if stopped.is_some() { 5 } else if stopping.is_some() { 4 } else { 3 },
    });
    if let Some(o) = v.as_object_mut() {
        if t.fargate {
            o.insert("capacityProviderName".into(), json!("FARGATE"));
            o.insert("platformVersion".into(), json!("1.4.0"));
            o.insert("platformFamily".into(), json!("Linux"));
            o.insert("ephemeralStorage".into(), json!({"sizeInGiB": 20}));
        } else {
            o.insert(
                "containerInstanceArn".into(),
                json!(host.container_instance_arn),
            );
        }
        if running {
            o.insert("startedAt".into(), json!(epoch_fraction(t.started_ms)));
        }
        if let Some(by) = &t.started_by {
            o.insert("startedBy".into(), json!(by));
        }
        if let Some(s) = stopping {
            o.insert("stoppingAt".into(), json!(epoch_fraction(s)));
            o.insert("stoppedReason".into(), json!(t.stopped_reason));
            o.insert(
                "stopCode".into(),
                json!(match t.stop_code {
                    Some(StopCode::EssentialContainerExited) => "EssentialContainerExited",
                    _ => "ServiceSchedulerInitiated",
                }),
            );
        }
        if let Some(s) = stopped {
            o.insert("stoppedAt".into(), json!(epoch_fraction(s)));
            o.insert("executionStoppedAt".into(), json!(epoch_fraction(s - 600)));
        }
    }
    v
}

pub(crate) fn private_dns(ip: u32, region: &str) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    if region == "us-east-1" {
        format!("ip-{a}-{b}-{c}-{d}.ec2.internal")
    } else {
        format!("ip-{a}-{b}-{c}-{d}.{region}.compute.internal")
    }
}

fn taskdef_json(w: &World, i: usize) -> Value {
    let td = &w.taskdefs[i];
    let svc = &w.services[td.service];
    let region = REGIONS[w.clusters[svc.cluster].region as usize];
    let res = resources(w, td.service);
    let latest = svc.taskdefs.last() == Some(&i);
    let containers: Vec<Value> = td
        .containers
        .iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name,
                "image": c.image,
                "cpu": if c.kind == ContainerKind::App { 384 } else { 128 },
                "memory": if c.kind == ContainerKind::App { 768 } else { 256 },
                "portMappings": c.port.map(|p| vec![json!({"containerPort": p,
                    "hostPort": if td.network == Network::Awsvpc { p } else { 0 }, "protocol": "tcp"})])
                    .unwrap_or_default(),
                "essential": c.kind == ContainerKind::App,
                "environment": [{"name": "AWS_REGION", "value": region}],
                "mountPoints": [],
                "volumesFrom": [],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": format!("/ecs/{}", td.family),
                    "awslogs-region": region,
                    "awslogs-stream-prefix": "ecs"}},
                "systemControls": [],
            });
            if let Some(o) = v.as_object_mut() {
                if c.secrets {
                    o.insert("secrets".into(), json!([{"name": "DB_PASSWORD", "valueFrom": res.secret_arn}]));
                }
                if c.kind == ContainerKind::Healthcheck {
                    o.insert(
                        "command".into(),
                        json!(["sh", "-c", "while true; do aws sts get-caller-identity >/dev/null || echo health check failed >&2; sleep 30; done"]),
                    );
                    o.insert(
                        "environment".into(),
                        json!([{"name": "AWS_SDK_UA_APP_ID", "value": "healthcheck-1.4"}]),
                    );
                }
            }
            v
        })
        .collect();
    let mut requires = vec![
        json!({"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"}),
        json!({"name": "ecs.capability.execution-role-awslogs"}),
        json!({"name": "com.amazonaws.ecs.capability.ecr-auth"}),
        json!({"name": "ecs.capability.execution-role-ecr-pull"}),
    ];
    if td.task_role.is_some() {
        requires.push(json!({"name": "com.amazonaws.ecs.capability.task-iam-role"}));
    }
    if td.network == Network::Awsvpc {
        requires.push(json!({"name": "ecs.capability.task-eni"}));
    }
    let mut v = json!({
        "taskDefinitionArn": td.arn,
        "containerDefinitions": containers,
        "family": td.family,
        "executionRoleArn": w.roles[td.exec_role].arn,
        "networkMode": td.network.as_str(),
        "revision": td.revision,
        "volumes": [],
        "status": if latest || svc.profile == Profile::ReportBuilder { "ACTIVE" } else { "INACTIVE" },
        "requiresAttributes": requires,
        "placementConstraints": [],
        "compatibilities": if svc.profile.fargate() { json!(["EC2", "FARGATE"]) } else { json!(["EXTERNAL", "EC2"]) },
        "requiresCompatibilities": [if svc.profile.fargate() { "FARGATE" } else { "EC2" }],
        "cpu": "512",
        "memory": "1024",
        "registeredAt": epoch_fraction(td.registered * 1000 + 412),
        "registeredBy": td.registered_by,
    });
    if let Some(r) = td.task_role
        && let Some(o) = v.as_object_mut()
    {
        o.insert("taskRoleArn".into(), json!(w.roles[r].arn));
    }
    json!({"taskDefinition": v, "tags": []})
}

/// Files written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub describe_tasks_files: u64,
    pub task_definition_files: u64,
}

pub fn write(w: &World, out: &Path) -> Result<Stats> {
    let mut stats = Stats::default();
    let dir = out.join("ecs");
    let td_dir = dir.join("task-definitions");
    fs::create_dir_all(&td_dir).with_context(|| format!("creating {}", td_dir.display()))?;
    for (i, td) in w.taskdefs.iter().enumerate() {
        write_pretty(
            &td_dir.join(format!("{}-{}.json", td.family, td.revision)),
            &taskdef_json(w, i),
        )?;
        stats.task_definition_files += 1;
    }
    for (ci, cluster) in w.clusters.iter().enumerate() {
        let mut at = w.start + 3600;
        while at <= w.end {
            let at_ms = at * 1000;
            let visible: Vec<usize> = (0..w.tasks.len())
                .filter(|&i| {
                    let t: &Task = &w.tasks[i];
                    t.cluster == ci
                        && t.created_ms <= at_ms
                        && t.stopped_ms.is_none_or(|s| at_ms - s < STOPPED_VISIBLE_MS)
                })
                .collect();
            for (page, chunk) in visible.chunks(100).enumerate() {
                let tasks: Vec<Value> = chunk.iter().map(|&i| task_json(w, i, at_ms)).collect();
                let path = dir.join(format!(
                    "describe-tasks-{}-{}-{:02}.json",
                    cluster.name,
                    clock::compact_minute(at),
                    page + 1
                ));
                write_pretty(&path, &json!({"tasks": tasks, "failures": []}))?;
                stats.describe_tasks_files += 1;
            }
            at += 3600;
        }
    }
    Ok(stats)
}
