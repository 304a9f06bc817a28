//! The simulated world: an account, its clusters, container instances, services, task
//! definitions, tasks (with placement, addresses and lifecycle), IAM roles, the credentials ECS
//! issues for every task and when each SDK process fetches them.
//!
//! Everything here is decided up front, sequentially and deterministically; the writers in the
//! sibling modules only render it (CloudTrail in parallel, by hour).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use anyhow::{Result, bail};

use super::attacks::{self, Attack};
use super::calls::{AWSLOGS_USER_AGENT, Api, Lang, Profile};
use super::clients::{Conn, task_requests};
pub use super::clients::{Fault, StaleClient};
use super::clock;
use super::rng::{KEY_ALPHABET, Rng, UPPER_ALNUM, stream};
use super::truth::Truth;

/// Regions clusters are spread over; index 0 also receives global (IAM, STS, sign-in) events.
pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "us-west-2"];
const CLUSTER_NAMES: [&str; 8] = [
    "prod-core",
    "prod-edge",
    "prod-batch",
    "prod-eu",
    "staging-core",
    "data-pipeline",
    "internal-tools",
    "sandbox",
];
/// Most clusters a simulation can have (one per name above).
pub const MAX_CLUSTERS: usize = CLUSTER_NAMES.len();
/// Credentials ECS obtains for a task live six hours; ECS refreshes them every three.
pub const KEY_LIFETIME: i64 = 6 * 3600;
const KEY_REFRESH: i64 = 3 * 3600;
/// Health-check sidecar period (seconds).
pub const HEALTHCHECK_PERIOD: i64 = 30;
/// The size-mode hosts' `ECS_LOG_MAX_FILE_SIZE_MB=0.05`, so rolls show up in short simulations.
pub const SIZE_ROLL_BYTES: u64 = 50_000;

/// The simulation's fixed time base: 2026-11-16T00:00:00Z.
pub fn sim_start() -> i64 {
    clock::days_from_civil(2026, 11, 16) * 86_400
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub hosts: usize,
    pub hours: u32,
    pub clusters: usize,
    pub attacks: BTreeSet<Attack>,
    /// Worker threads for CloudTrail (output never depends on it).
    pub threads: usize,
}

impl SimConfig {
    pub fn validate(&self) -> Result<()> {
        if self.hosts == 0 {
            bail!("--hosts must be at least 1");
        }
        if self.clusters == 0 || self.clusters > MAX_CLUSTERS {
            bail!("--clusters must be between 1 and {MAX_CLUSTERS}");
        }
        if self.clusters > self.hosts {
            bail!(
                "--clusters ({}) cannot exceed --hosts ({}): every cluster needs a container instance",
                self.clusters,
                self.hosts
            );
        }
        if self.hours < 2 || self.hours > 24 * 14 {
            bail!("--hours must be between 2 and 336");
        }
        if self.hosts > 5000 {
            bail!("--hosts must be at most 5000");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Bridge,
    Awsvpc,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Bridge => "bridge",
            Network::Awsvpc => "awsvpc",
        }
    }
}

/// How a host's agent rolls its audit log (formats.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollover {
    /// `ECS_LOG_ROLLOVER_TYPE=hourly`: live `audit.log`, rolled `audit.log.YYYY-MM-DD-HH`.
    Hourly,
    /// `ECS_LOG_ROLLOVER_TYPE=size`: live `audit.log`, rolled `audit.log.1`, `.2`, … (newest highest).
    Size { max_bytes: u64 },
    /// Agent ≤ 1.35: the live file itself carries the hour suffix.
    DatedOnly,
}

impl Rollover {
    pub fn name(self) -> &'static str {
        match self {
            Rollover::Hourly => "hourly",
            Rollover::Size { .. } => "size",
            Rollover::DatedOnly => "dated-only",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    /// `s3` (gateway endpoint) or `secretsmanager` (interface endpoint).
    pub service: &'static str,
    pub cluster: usize,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub region: u8,
    /// The VPC is `10.<vpc_octet>.0.0/16`. Clusters in different regions reuse one range (as
    /// accounts often do): the same private address means another ENI in each.
    pub vpc_octet: u8,
    pub vpc_id: String,
    /// Private subnets per availability zone (`10.<o>.<az·32>.0/19`): hosts, task ENIs, interface
    /// endpoints; they leave through their zone's NAT gateway.
    pub subnets: [String; 3],
    /// Public subnets per availability zone (`10.<o>.<96+az>.0/24`): the NAT gateways and the
    /// Fargate tasks with a public IP of their own.
    pub public_subnets: [String; 3],
    /// The VPC's IPv6 block (a /56; zone z's private subnet is its /64 number 2z, its public
    /// subnet number 2z + 1).
    pub ipv6_prefix: u128,
    /// NAT gateway public address per availability zone.
    pub nat: [u32; 3],
    pub endpoints: Vec<usize>,
    pub hosts: Vec<usize>,
    pub services: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Host {
    /// Directory name under `hosts/` (the EC2 private DNS short name).
    pub name: String,
    pub cluster: usize,
    pub az: usize,
    pub private_ip: u32,
    pub instance_id: String,
    pub container_instance_arn: String,
    pub rollover: Rollover,
    pub agent_version: &'static str,
    /// Host clock minus true time (seconds), applied to audit-log times.
    pub skew: i64,
    /// Agent restarts (503/500) and throttling windows (429), in time order, never overlapping.
    pub faults: Vec<Fault>,
    /// First second of the host's audit log and snapshots: the collector was installed then, and
    /// the agent had already rolled older lines away (tasks may have been running for hours).
    pub audit_from: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Task(Profile),
    Execution,
    Instance,
    EcsServiceLinked,
    CiDeploy,
    Lambda,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub path: &'static str,
    pub arn: String,
    pub id: String,
    pub kind: RoleKind,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub cluster: usize,
    pub profile: Profile,
    pub network: Network,
    pub task_role: Option<usize>,
    pub exec_role: usize,
    pub taskdefs: Vec<usize>,
    /// Run on a schedule by EventBridge instead of by an ECS service.
    pub scheduled: bool,
    pub arn: String,
    pub desired: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    App,
    Healthcheck,
}

#[derive(Debug, Clone)]
pub struct ContainerDef {
    pub name: &'static str,
    pub image: String,
    pub kind: ContainerKind,
    pub port: Option<u16>,
    pub secrets: bool,
}

#[derive(Debug, Clone)]
pub struct TaskDef {
    pub family: String,
    pub revision: u32,
    pub arn: String,
    pub service: usize,
    pub task_role: Option<usize>,
    pub exec_role: usize,
    pub network: Network,
    pub containers: Vec<ContainerDef>,
    pub registered: i64,
    pub registered_by: String,
}

#[derive(Debug, Clone)]
pub struct TaskContainer {
    pub name: &'static str,
    pub kind: ContainerKind,
    pub docker_id: String,
    pub container_arn: String,
    pub image_digest: String,
    /// docker0 address (bridge mode only).
    pub bridge_ip: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Eni {
    pub ip: u32,
    pub id: String,
    pub subnet: String,
    pub mac: String,
    pub attachment_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCode {
    ServiceSchedulerInitiated,
    EssentialContainerExited,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub arn: String,
    pub cluster: usize,
    pub service: usize,
    pub taskdef: usize,
    pub profile: Profile,
    pub host: usize,
    pub role_override: Option<usize>,
    pub group: String,
    pub started_by: Option<String>,
    pub created_ms: i64,
    pub pull_started_ms: i64,
    pub pull_stopped_ms: i64,
    pub started_ms: i64,
    pub stopping_ms: Option<i64>,
    pub stopped_ms: Option<i64>,
    pub stop_code: Option<StopCode>,
    pub stopped_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub containers: Vec<TaskContainer>,
    pub eni: Option<Eni>,
    /// The task's address on the agent's ecs-bridge network (awsvpc), as the audit log sees it.
    pub ecs_bridge_ip: Option<u32>,
    /// Seconds from container start to the application's first credential fetch.
    pub boot_delay: i64,
    /// Last second the task's own processes may call AWS (a few seconds before `stoppedAt`).
    pub last_call: i64,
    pub task_keys: Vec<u32>,
    pub exec_keys: Vec<u32>,
    /// Per cached application process: (fetch time, key index) in time order.
    pub procs: Vec<Vec<(i64, u32)>>,
    /// Per cached process: (client index in the profile's behaviour, process index).
    pub proc_ids: Vec<(u8, u8)>,
    /// (process, from, to): the process's calls fail in `[from, to)` (its refresh failed).
    pub lost: Vec<(u8, i64, i64)>,
    /// Launched on Fargate: no container instance, no audit log (`host` only names its AZ).
    pub fargate: bool,
    /// The public IPv4 address of the task's own ENI (a Fargate task in a public subnet): its
    /// calls leave from it, not through a NAT gateway.
    pub public_ip: Option<u32>,
    /// The IPv6 address of the task's ENI (dual-stack): its calls to AWS's dual-stack endpoints
    /// leave from it through the VPC's egress-only internet gateway.
    pub ipv6: Option<u128>,
}

impl Task {
    pub fn started(&self) -> i64 {
        self.started_ms.div_euclid(1000)
    }
    /// The second the task's processes start calling AWS.
    pub fn app_start(&self) -> i64 {
        self.started() + self.boot_delay
    }
    pub fn stopped(&self) -> Option<i64> {
        self.stopped_ms.map(|ms| ms.div_euclid(1000))
    }
    pub fn running_at(&self, t: i64) -> bool {
        self.started() <= t && self.stopped().is_none_or(|s| t < s)
    }
    /// Key the given process holds at `t` (its last fetch at or before `t`).
    pub fn key_at(&self, proc_: usize, t: i64) -> Option<u32> {
        let tl = self.procs.get(proc_)?;
        let i = tl.partition_point(|&(ft, _)| ft <= t);
        (i > 0).then(|| tl[i - 1].1)
    }
    /// The address from which this task's own task-role fetches arrive at the agent.
    pub fn fetch_ip(&self) -> Option<u32> {
        self.ecs_bridge_ip.or_else(|| {
            self.containers
                .iter()
                .find(|c| c.kind == ContainerKind::App)
                .and_then(|c| c.bridge_ip)
        })
    }
    pub fn healthcheck_ip(&self) -> Option<u32> {
        self.ecs_bridge_ip.or_else(|| {
            self.containers
                .iter()
                .find(|c| c.kind == ContainerKind::Healthcheck)
                .and_then(|c| c.bridge_ip)
        })
    }
}

/// Credentials ECS obtained with `sts:AssumeRole` for one task and one role (one generation).
#[derive(Debug, Clone)]
pub struct Key {
    pub task: u32,
    pub role: u32,
    pub exec: bool,
    pub issued: i64,
    pub expires: i64,
    pub access_key: String,
    /// `userIdentity` JSON of calls made with this key, without its closing brace.
    pub identity: String,
    pub event_id: u128,
    pub request_id: u128,
    pub shared_id: u128,
}

/// One request to the agent's credential endpoint (one audit-log line), in true time.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub time: i64,
    pub status: u16,
    pub src: Option<(u32, u16)>,
    pub path: String,
    pub ua: u16,
    /// Task whose credentials were returned (200 only).
    pub task: Option<u32>,
    pub exec: bool,
}

impl AuditEntry {
    /// A successful `/v2/credentials` fetch of task `task`'s task-role credentials, or of its
    /// execution-role credentials when `exec`.
    pub fn fetch(time: i64, src: Option<(u32, u16)>, ua: u16, task: u32, exec: bool) -> AuditEntry {
        AuditEntry {
            time,
            status: 200,
            src,
            path: "/v2/credentials".to_string(),
            ua,
            task: Some(task),
            exec,
        }
    }
}

/// Who made a CloudTrail call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A task (or execution) role session: index into `World::keys`.
    Key(u32),
    /// The ECS service assuming a task's role (the AssumeRole record for key n).
    EcsTasks(u32),
    /// A container instance's instance-profile session (index of host).
    Instance(u32),
    /// `AWSServiceRoleForECS` managing task ENIs.
    EcsServiceLinked,
    /// The IAM user `ops-alice`.
    Alice,
    /// The CI deploy role session for deploy n.
    Ci(u32),
    /// The CI role's AssumeRoleWithWebIdentity for deploy n.
    CiWebIdentity(u32),
    /// The thumbnailer Lambda function's session (hour slot).
    Lambda(u32),
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Ip(u32),
    Ip6(u128),
    /// An AWS service on the caller's behalf (`invokedBy`, `sourceIPAddress` = service host name).
    Service(&'static str),
    AwsInternal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    AccessDenied,
    UnauthorizedOperation,
    /// S3's opaque `Access Denied` (e.g. a missing key without `s3:ListBucket`).
    S3AccessDenied,
}

/// One CloudTrail record to be.
#[derive(Debug, Clone)]
pub struct Call {
    pub time: i64,
    pub region: u8,
    pub who: Who,
    pub api: Api,
    pub src: Src,
    /// Index into `World::endpoints` + 1 (0 = none).
    pub vpce: u16,
    pub ua: u16,
    pub err: Option<CallError>,
    /// Task the call is about (request parameters), or u32::MAX.
    pub task: u32,
    pub res: u32,
    pub id: u128,
    pub req: u128,
}

#[derive(Debug, Clone)]
pub struct Deploy {
    pub time: i64,
    pub service: usize,
    pub taskdef: usize,
    pub runner_ip: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub planted_unused: bool,
    pub unused_role: bool,
}

#[derive(Debug)]
pub struct World {
    pub seed: u64,
    pub account: String,
    pub start: i64,
    pub end: i64,
    pub hours: u32,
    pub clusters: Vec<Cluster>,
    pub hosts: Vec<Host>,
    pub endpoints: Vec<Endpoint>,
    pub roles: Vec<Role>,
    pub services: Vec<Service>,
    pub taskdefs: Vec<TaskDef>,
    pub tasks: Vec<Task>,
    pub keys: Vec<Key>,
    pub user_agents: Vec<String>,
    ua_index: BTreeMap<String, u16>,
    /// Audit-log entries per host.
    pub audit: Vec<Vec<AuditEntry>>,
    pub attack_calls: Vec<Call>,
    pub truth: Vec<Truth>,
    pub deploys: Vec<Deploy>,
    pub flags: Flags,
    pub attacks: BTreeSet<Attack>,
    pub exec_role: usize,
    pub instance_role: usize,
    pub service_linked_role: usize,
    pub ci_role: usize,
    pub lambda_role: usize,
    pub migration_role: usize,
    pub alice_key: String,
    pub alice_id: String,
    pub office_ip: u32,
    pub lambda_ip: u32,
    /// The benign misconfigured client holding an unknown credential ID, if any task fits.
    pub stale: Option<StaleClient>,
}

pub fn ip_str(ip: u32) -> String {
    Ipv4Addr::from(ip).to_string()
}

/// An IPv6 address in its canonical text (RFC 5952: lower case, `::` for the longest zero run).
pub fn ip6_str(ip: u128) -> String {
    std::net::Ipv6Addr::from(ip).to_string()
}

const fn ip4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

fn iam_id(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}{}", rng.chars(UPPER_ALNUM, 17))
}

impl World {
    pub fn intern_ua(&mut self, ua: &str) -> u16 {
        if let Some(&i) = self.ua_index.get(ua) {
            return i;
        }
        let i = u16::try_from(self.user_agents.len()).unwrap_or(u16::MAX);
        self.user_agents.push(ua.to_string());
        self.ua_index.insert(ua.to_string(), i);
        i
    }

    pub fn region(&self, cluster: usize) -> &'static str {
        REGIONS[self.clusters[cluster].region as usize]
    }

    /// The task role a task's sessions use (override first).
    pub fn task_role(&self, task: usize) -> Option<usize> {
        let t = &self.tasks[task];
        t.role_override.or(self.taskdefs[t.taskdef].task_role)
    }

    pub fn nat_ip(&self, host: usize) -> u32 {
        let h = &self.hosts[host];
        self.clusters[h.cluster].nat[h.az]
    }

    /// The cluster's VPC endpoint for `service`, if any (index + 1 for `Call::vpce`).
    pub fn endpoint_for(&self, cluster: usize, service: &str) -> u16 {
        self.clusters[cluster]
            .endpoints
            .iter()
            .find(|&&e| self.endpoints[e].service == service)
            .map_or(0, |&e| (e + 1) as u16)
    }

    /// The task's private address as a VPC endpoint sees it: its ENI, or the host for bridge tasks.
    pub fn private_ip(&self, task: usize) -> u32 {
        let t = &self.tasks[task];
        t.eni
            .as_ref()
            .map_or(self.hosts[t.host].private_ip, |e| e.ip)
    }

    /// The host whose agent serves a task's credentials (`usize::MAX`, no host, on Fargate).
    pub fn agent_host(&self, task: usize) -> usize {
        let t = &self.tasks[task];
        if t.fargate { usize::MAX } else { t.host }
    }

    /// The agent's answer to every credential request on `host` at `t`, while it fails.
    pub fn fault_at(&self, host: usize, t: i64) -> Option<u16> {
        let faults = &self.hosts.get(host)?.faults;
        let i = faults.partition_point(|f| f.to <= t);
        faults.get(i).filter(|f| f.from <= t).map(|f| f.status)
    }

    /// Whether any fault on `host` overlaps `[a, b]`.
    pub fn faulty(&self, host: usize, a: i64, b: i64) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| h.faults.iter().any(|f| f.from <= b && a < f.to))
    }

    /// Latest key of `keys` issued at or before `t`.
    pub fn latest_key(&self, keys: &[u32], t: i64) -> Option<u32> {
        let i = keys.partition_point(|&k| self.keys[k as usize].issued <= t);
        (i > 0).then(|| keys[i - 1])
    }

    /// Source address and VPC endpoint a task's call to `api` takes.
    pub fn route(&self, task: usize, api: Api) -> (Src, u16) {
        let t = &self.tasks[task];
        let spec = api.spec();
        let vpce = if spec.global {
            0
        } else {
            self.endpoint_for(t.cluster, spec.service)
        };
        if vpce != 0 {
            (Src::Ip(self.private_ip(task)), vpce)
        } else if let Some(v6) = t.ipv6 {
            (Src::Ip6(v6), 0)
        } else {
            (Src::Ip(self.egress_ip(task)), 0)
        }
    }

    /// The public IPv4 address a task's traffic to the internet leaves from: its own public IP,
    /// else its zone's NAT gateway.
    pub fn egress_ip(&self, task: usize) -> u32 {
        let t = &self.tasks[task];
        t.public_ip.unwrap_or_else(|| self.nat_ip(t.host))
    }

    pub fn call_region(&self, cluster: usize, api: Api) -> u8 {
        if api.spec().global {
            0
        } else {
            self.clusters[cluster].region
        }
    }
}

/// Build the whole world for a configuration.
pub fn build(cfg: &SimConfig) -> Result<World> {
    cfg.validate()?;
    let mut rng = Rng::derive(cfg.seed, &[stream::WORLD]);
    let start = sim_start();
    let end = start + i64::from(cfg.hours) * 3600;
    let account = format!("{}{}", 1 + rng.below(9), {
        let mut s = String::new();
        for _ in 0..11 {
            s.push(char::from(b'0' + rng.below(10) as u8));
        }
        s
    });
    let flags = Flags {
        planted_unused: cfg.attacks.contains(&Attack::UnusedPermissions),
        unused_role: cfg.attacks.contains(&Attack::UnusedRole),
    };
    let mut w = World {
        seed: cfg.seed,
        account,
        start,
        end,
        hours: cfg.hours,
        clusters: Vec::new(),
        hosts: Vec::new(),
        endpoints: Vec::new(),
        roles: Vec::new(),
        services: Vec::new(),
        taskdefs: Vec::new(),
        tasks: Vec::new(),
        keys: Vec::new(),
        user_agents: Vec::new(),
        ua_index: BTreeMap::new(),
        audit: Vec::new(),
        attack_calls: Vec::new(),
        truth: Vec::new(),
        deploys: Vec::new(),
        flags,
        attacks: cfg.attacks.clone(),
        exec_role: 0,
        instance_role: 0,
        service_linked_role: 0,
        ci_role: 0,
        lambda_role: 0,
        migration_role: 0,
        alice_key: format!("AKIA{}", rng.chars(KEY_ALPHABET, 16)),
        alice_id: iam_id(&mut rng, "AIDA"),
        office_ip: ip4(192, 0, 2, 10 + rng.below(100) as u8),
        stale: None,
        lambda_ip: ip4(
            3,
            80 + rng.below(10) as u8,
            rng.below(256) as u8,
            1 + rng.below(250) as u8,
        ),
    };
    build_clusters(&mut w, cfg, &mut rng);
    plan_faults(&mut w);
    build_roles(&mut w, &mut rng);
    build_services(&mut w, &mut rng);
    let intents = plan_lifecycles(&mut w, &mut rng);
    place_tasks(&mut w, intents, &mut rng);
    w.stale = pick_stale_client(&w);
    let prepared = attacks::prepare(&mut w)?;
    issue_keys(&mut w);
    schedule_fetches(&mut w);
    attacks::plan(&mut w, prepared)?;
    for entries in &mut w.audit {
        entries.sort_by_key(|e| e.time);
    }
    w.attack_calls.sort_by_key(|c| (c.time, c.id));
    Ok(w)
}

fn build_clusters(w: &mut World, cfg: &SimConfig, rng: &mut Rng) {
    for (c, name) in CLUSTER_NAMES.iter().enumerate().take(cfg.clusters) {
        let region = (c % REGIONS.len()) as u8;
        let name = name.to_string();
        let nat_base = match region {
            0 => (3, 208 + rng.below(16) as u8),
            1 => (52, 48 + rng.below(4) as u8),
            _ => (34, 208 + rng.below(16) as u8),
        };
        let nat = [0, 1, 2].map(|_| {
            ip4(
                nat_base.0,
                nat_base.1,
                rng.below(256) as u8,
                1 + rng.below(254) as u8,
            )
        });
        let mut endpoints = Vec::new();
        for service in ["s3", "secretsmanager"] {
            if service == "s3" || c % 2 == 0 {
                endpoints.push(w.endpoints.len());
                w.endpoints.push(Endpoint {
                    id: format!("vpce-0{}", rng.hex(16)),
                    service,
                    cluster: c,
                });
            }
        }
        // What only the network inventory shows comes from a stream of its own, so the rest
        // of the world does not depend on it.
        let mut net = Rng::derive(w.seed, &[stream::NETWORK, c as u64]);
        w.clusters.push(Cluster {
            arn: format!(
                "arn:aws:ecs:{}:{}:cluster/{name}",
                REGIONS[region as usize], w.account
            ),
            name,
            region,
            vpc_octet: (c / REGIONS.len() * 16) as u8,
            vpc_id: format!("vpc-0{}", rng.hex(16)),
            subnets: [0, 1, 2].map(|_| format!("subnet-0{}", rng.hex(16))),
            public_subnets: [0, 1, 2].map(|_| format!("subnet-0{}", net.hex(16))),
            ipv6_prefix: (0x2600_1f18_u128 << 96)
                | (u128::from(net.below(1 << 16) as u16) << 80)
                | (u128::from(net.below(1 << 8) as u8) << 72),
            nat,
            endpoints,
            hosts: Vec::new(),
            services: Vec::new(),
        });
    }
    let mut dated_only_done = false;
    for i in 0..cfg.hosts {
        let c = i % cfg.clusters;
        let pos = w.clusters[c].hosts.len();
        let az = pos % 3;
        let octet = w.clusters[c].vpc_octet;
        let third = (az as u8) * 32 + 1 + (pos / 3 % 30) as u8;
        // Host names are their addresses: unique across clusters that share a range.
        let private_ip = loop {
            let ip = ip4(10, octet, third, 10 + rng.below(240) as u8);
            if !w.hosts.iter().any(|h| h.private_ip == ip) {
                break ip;
            }
        };
        let [_, b, cc, d] = private_ip.to_be_bytes();
        // Mix roll modes within clusters; exactly one pre-1.36 host (the third).
        let mode = (pos + c + pos / 2) % 2;
        let rollover = if i == 2 && !dated_only_done {
            dated_only_done = true;
            Rollover::DatedOnly
        } else if mode == 1 {
            Rollover::Size {
                max_bytes: SIZE_ROLL_BYTES,
            }
        } else {
            Rollover::Hourly
        };
        let agent_version = match rollover {
            Rollover::Hourly => "1.97.1",
            Rollover::Size { .. } => "1.101.2",
            Rollover::DatedOnly => "1.35.0",
        };
        let region = REGIONS[w.clusters[c].region as usize];
        let ci_id = rng.hex(32);
        w.hosts.push(Host {
            name: format!("ip-10-{b}-{cc}-{d}"),
            cluster: c,
            az,
            private_ip,
            instance_id: format!("i-0{}", rng.hex(16)),
            container_instance_arn: format!(
                "arn:aws:ecs:{region}:{}:container-instance/{}/{ci_id}",
                w.account, w.clusters[c].name
            ),
            rollover,
            agent_version,
            skew: rng.range(-1, 2),
            faults: Vec::new(),
            audit_from: w.start,
        });
        w.clusters[c].hosts.push(i);
    }
}

fn add_role(w: &mut World, rng: &mut Rng, name: &str, path: &'static str, kind: RoleKind) -> usize {
    let created = w.start - 86_400 * rng.range(30, 900) - rng.range(0, 86_400);
    w.roles.push(Role {
        arn: format!("arn:aws:iam::{}:role{path}{name}", w.account),
        name: name.to_string(),
        path,
        id: iam_id(rng, "AROA"),
        kind,
        created,
    });
    w.roles.len() - 1
}

fn build_roles(w: &mut World, rng: &mut Rng) {
    w.exec_role = add_role(w, rng, "ecsTaskExecutionRole", "/", RoleKind::Execution);
    w.instance_role = add_role(w, rng, "ecsInstanceRole", "/", RoleKind::Instance);
    w.service_linked_role = add_role(
        w,
        rng,
        "AWSServiceRoleForECS",
        "/aws-service-role/ecs.amazonaws.com/",
        RoleKind::EcsServiceLinked,
    );
    w.ci_role = add_role(w, rng, "github-actions-deploy", "/", RoleKind::CiDeploy);
    w.lambda_role = add_role(
        w,
        rng,
        "thumbnailer-lambda",
        "/service-role/",
        RoleKind::Lambda,
    );
    w.migration_role = add_role(
        w,
        rng,
        "orders-db-migration",
        "/",
        RoleKind::Task(Profile::Migration),
    );
}

fn build_services(w: &mut World, rng: &mut Rng) {
    let n_clusters = w.clusters.len();
    for (t, profile) in Profile::TEMPLATES.into_iter().enumerate() {
        let c = t % n_clusters;
        let family = profile.family().to_string();
        let task_role = if profile == Profile::LegacySidekick && !w.flags.unused_role {
            None
        } else {
            Some(add_role(
                w,
                rng,
                &format!("{family}-task"),
                "/",
                RoleKind::Task(profile),
            ))
        };
        let hosts = w.clusters[c].hosts.len() as f64;
        let desired = match profile {
            Profile::LegacySidekick => 1,
            Profile::ReportBuilder | Profile::Migration => 0,
            p => ((p.tasks_per_host() * hosts).round() as usize).max(1),
        };
        let region = w.region(c);
        let s = w.services.len();
        w.services.push(Service {
            arn: format!(
                "arn:aws:ecs:{region}:{}:service/{}/{family}",
                w.account, w.clusters[c].name
            ),
            name: family.clone(),
            cluster: c,
            profile,
            network: if profile.awsvpc() {
                Network::Awsvpc
            } else {
                Network::Bridge
            },
            task_role,
            exec_role: match task_role {
                Some(r) if profile.shares_execution_role() => r,
                _ => w.exec_role,
            },
            taskdefs: Vec::new(),
            scheduled: profile == Profile::ReportBuilder,
            desired,
        });
        w.clusters[c].services.push(s);
        let rev = rng.range(3, 60) as u32;
        let registered = w.start - rng.range(3_600, 20 * 86_400);
        add_taskdef(w, rng, s, rev, registered);
    }
}

fn add_taskdef(
    w: &mut World,
    rng: &mut Rng,
    service: usize,
    revision: u32,
    registered: i64,
) -> usize {
    let svc = &w.services[service];
    let profile = svc.profile;
    let family = svc.name.clone();
    let region = w.region(svc.cluster);
    let tag = format!("v1.{}.{}", revision, rng.below(10));
    let mut containers = vec![ContainerDef {
        name: "app",
        image: format!(
            "{}.dkr.ecr.{region}.amazonaws.com/{}:{tag}",
            w.account,
            profile.family()
        ),
        kind: ContainerKind::App,
        port: match profile {
            Profile::OrdersApi | Profile::CatalogApi | Profile::BillingApi => Some(8080),
            Profile::IngestGateway => Some(5000),
            _ => None,
        },
        secrets: matches!(profile, Profile::OrdersApi | Profile::BillingApi),
    }];
    if profile.behavior().healthcheck {
        containers.push(ContainerDef {
            name: "healthcheck",
            image: "public.ecr.aws/aws-cli/aws-cli:2.22.4".to_string(),
            kind: ContainerKind::Healthcheck,
            port: None,
            secrets: false,
        });
    }
    let td = TaskDef {
        arn: format!(
            "arn:aws:ecs:{region}:{}:task-definition/{family}:{revision}",
            w.account
        ),
        family,
        revision,
        service,
        task_role: svc.task_role,
        exec_role: svc.exec_role,
        network: svc.network,
        containers,
        registered,
        registered_by: format!(
            "arn:aws:sts::{}:assumed-role/github-actions-deploy/GitHubActions",
            w.account
        ),
    };
    w.taskdefs.push(td);
    let i = w.taskdefs.len() - 1;
    w.services[service].taskdefs.push(i);
    i
}

#[derive(Debug, Clone)]
struct Intent {
    service: usize,
    taskdef: usize,
    created_ms: i64,
    stop: Option<(i64, StopCode, String, i32)>,
    group: String,
    started_by: Option<String>,
    role_override: Option<usize>,
    profile: Profile,
}

fn deployment_id(rng: &mut Rng) -> String {
    format!(
        "ecs-svc/{}{}",
        1 + rng.below(9),
        (0..18)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect::<String>()
    )
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Redeploy,
    ScaleUp(usize),
    ScaleDown(usize),
    Crash,
}

fn plan_lifecycles(w: &mut World, rng: &mut Rng) -> Vec<Intent> {
    let mut intents: Vec<Intent> = Vec::new();
    let dur = w.end - w.start;
    for s in 0..w.services.len() {
        let svc = w.services[s].clone();
        let group_family = format!("family:{}", svc.name);
        if svc.scheduled {
            let mut t = w.start + 30 * 60;
            while t + 20 * 60 <= w.end {
                let created_ms = (t + rng.range(0, 40)) * 1000 + rng.range(0, 1000);
                let run = rng.range(8 * 60, 15 * 60) * 1000;
                intents.push(Intent {
                    service: s,
                    taskdef: *svc.taskdefs.last().unwrap_or(&0),
                    created_ms,
                    stop: Some((
                        created_ms + run,
                        StopCode::EssentialContainerExited,
                        "Essential container in task exited".to_string(),
                        0,
                    )),
                    group: group_family.clone(),
                    started_by: Some("events-rule/report-builder-every-2h".to_string()),
                    role_override: None,
                    profile: svc.profile,
                });
                t += 2 * 3600;
            }
            continue;
        }
        let mut deployment = deployment_id(rng);
        let mut taskdef = svc.taskdefs[0];
        let group = format!("service:{}", svc.name);
        let first = intents.len();
        for _ in 0..svc.desired {
            intents.push(Intent {
                service: s,
                taskdef,
                created_ms: (w.start + rng.range(20, 600)) * 1000 + rng.range(0, 1000),
                stop: None,
                group: group.clone(),
                started_by: Some(deployment.clone()),
                role_override: None,
                profile: svc.profile,
            });
        }
        let mut alive: Vec<usize> = (first..intents.len()).collect();
        let mut ops: Vec<(i64, Op)> = Vec::new();
        let pos_in_cluster = w.clusters[svc.cluster]
            .services
            .iter()
            .position(|&x| x == s)
            .unwrap_or(0);
        if svc.profile != Profile::LegacySidekick {
            if pos_in_cluster == 0 {
                ops.push((w.start + dur * 3 / 10 + rng.range(0, 600), Op::Redeploy));
            } else if rng.chance(0.5) {
                ops.push((w.start + dur / 5 + rng.range(0, dur * 7 / 10), Op::Redeploy));
            }
            if rng.chance(0.6) {
                let up = w.start + dur / 10 + rng.range(0, dur / 2);
                let k = 1 + rng.below(2) as usize;
                ops.push((up, Op::ScaleUp(k)));
                let down = up + rng.range(3600, 3 * 3600);
                if down < w.end - 600 {
                    ops.push((down, Op::ScaleDown(k)));
                }
            }
            if rng.chance(0.4) {
                ops.push((w.start + 900 + rng.range(0, dur - 1800), Op::Crash));
            }
        }
        ops.sort_by_key(|o| o.0);
        for (t, op) in ops {
            let t_ms = t * 1000 + rng.range(0, 1000);
            alive.retain(|&i| intents[i].stop.is_none());
            let live_now: Vec<usize> = alive
                .iter()
                .copied()
                .filter(|&i| intents[i].created_ms < t_ms)
                .collect();
            match op {
                Op::Redeploy => {
                    let rev = w.taskdefs[taskdef].revision + 1;
                    let new_td = add_taskdef(w, rng, s, rev, t - 90);
                    w.deploys.push(Deploy {
                        time: t - 120,
                        service: s,
                        taskdef: new_td,
                        runner_ip: ip4(
                            4,
                            148 + rng.below(8) as u8,
                            rng.below(256) as u8,
                            1 + rng.below(254) as u8,
                        ),
                    });
                    taskdef = new_td;
                    deployment = deployment_id(rng);
                    let n = live_now.len().max(1);
                    let new_first = intents.len();
                    for _ in 0..n {
                        intents.push(Intent {
                            service: s,
                            taskdef,
                            created_ms: t_ms + rng.range(0, 90_000),
                            stop: None,
                            group: group.clone(),
                            started_by: Some(deployment.clone()),
                            role_override: None,
                            profile: svc.profile,
                        });
                    }
                    for &i in &live_now {
                        intents[i].stop = Some((
                            t_ms + rng.range(60_000, 240_000),
                            StopCode::ServiceSchedulerInitiated,
                            format!("Scaling activity initiated by (deployment {deployment})"),
                            143,
                        ));
                    }
                    alive.extend(new_first..intents.len());
                }
                Op::ScaleUp(k) => {
                    let new_first = intents.len();
                    for _ in 0..k {
                        intents.push(Intent {
                            service: s,
                            taskdef,
                            created_ms: t_ms + rng.range(0, 20_000),
                            stop: None,
                            group: group.clone(),
                            started_by: Some(deployment.clone()),
                            role_override: None,
                            profile: svc.profile,
                        });
                    }
                    alive.extend(new_first..intents.len());
                }
                Op::ScaleDown(k) => {
                    let mut victims = live_now.clone();
                    victims.sort_by_key(|&i| std::cmp::Reverse(intents[i].created_ms));
                    for &i in victims.iter().take(k.min(victims.len().saturating_sub(1))) {
                        intents[i].stop = Some((
                            t_ms + rng.range(0, 5_000),
                            StopCode::ServiceSchedulerInitiated,
                            format!("Scaling activity initiated by (deployment {deployment})"),
                            143,
                        ));
                    }
                }
                Op::Crash => {
                    if live_now.is_empty() {
                        continue;
                    }
                    let v = *rng.pick(&live_now);
                    intents[v].stop = Some((
                        t_ms,
                        StopCode::EssentialContainerExited,
                        "Essential container in task exited".to_string(),
                        137,
                    ));
                    intents.push(Intent {
                        service: s,
                        taskdef,
                        created_ms: t_ms + rng.range(15_000, 60_000),
                        stop: None,
                        group: group.clone(),
                        started_by: Some(deployment.clone()),
                        role_override: None,
                        profile: svc.profile,
                    });
                    alive.push(intents.len() - 1);
                }
            }
        }
    }
    // A one-off migration: `run-task` of the orders-api task definition with another task role.
    if let Some(s) = w
        .services
        .iter()
        .position(|s| s.profile == Profile::OrdersApi)
    {
        let created_ms = (w.start + 95 * 60 + rng.range(0, 300)) * 1000 + rng.range(0, 1000);
        let taskdef = w.services[s]
            .taskdefs
            .iter()
            .copied()
            .rfind(|&td| w.taskdefs[td].registered * 1000 < created_ms)
            .unwrap_or(w.services[s].taskdefs[0]);
        intents.push(Intent {
            service: s,
            taskdef,
            created_ms,
            stop: Some((
                created_ms + rng.range(240_000, 360_000),
                StopCode::EssentialContainerExited,
                "Essential container in task exited".to_string(),
                0,
            )),
            group: format!("family:{}", w.services[s].name),
            started_by: None,
            role_override: Some(w.migration_role),
            profile: Profile::Migration,
        });
    }
    intents.retain(|i| i.created_ms < (w.end - 300) * 1000);
    for i in &mut intents {
        if let Some((stopping, ..)) = i.stop
            && stopping >= w.end * 1000
        {
            i.stop = None;
        }
    }
    intents.sort_by_key(|i| (i.created_ms, i.service));
    intents
}

fn place_tasks(w: &mut World, intents: Vec<Intent>, rng: &mut Rng) {
    // Build the tasks (timing) first, then replay starts and stops in time order for placement.
    for intent in &intents {
        let svc = &w.services[intent.service];
        let region = REGIONS[w.clusters[svc.cluster].region as usize];
        let id = rng.hex(32);
        let cluster_name = &w.clusters[svc.cluster].name;
        let pull_started_ms = intent.created_ms + rng.range(400, 2_000);
        let pull_stopped_ms = pull_started_ms + rng.range(2_000, 25_000);
        let started_ms = pull_stopped_ms + rng.range(800, 3_000);
        let lang = intent.profile.behavior().lang();
        let (blo, bhi) = lang.boot_range();
        let boot_delay = rng.range(blo, bhi);
        let (stopping_ms, stopped_ms, last_call, stop_code, reason, exit_code) = match &intent.stop
        {
            Some((stopping, code, reason, exit)) => {
                let stopping = (*stopping).max(started_ms + 60_000);
                let stopped = match code {
                    StopCode::ServiceSchedulerInitiated => stopping + rng.range(5_000, 30_000),
                    StopCode::EssentialContainerExited => stopping + rng.range(500, 2_000),
                };
                let last = match code {
                    // Draining after SIGTERM: the last calls land seconds before stoppedAt.
                    StopCode::ServiceSchedulerInitiated => {
                        stopped.div_euclid(1000) - rng.range(1, 6)
                    }
                    StopCode::EssentialContainerExited => {
                        stopping.div_euclid(1000) - rng.range(1, 10)
                    }
                };
                (
                    Some(stopping),
                    Some(stopped),
                    last,
                    Some(*code),
                    Some(reason.clone()),
                    Some(*exit),
                )
            }
            None => (None, None, w.end, None, None, None),
        };
        let td = &w.taskdefs[intent.taskdef];
        let containers = td
            .containers
            .iter()
            .map(|c| TaskContainer {
                name: c.name,
                kind: c.kind,
                docker_id: rng.hex(64),
                container_arn: format!(
                    "arn:aws:ecs:{region}:{}:container/{cluster_name}/{id}/{}",
                    w.account,
                    rng.uuid()
                ),
                image_digest: format!("sha256:{}", rng.hex(64)),
                bridge_ip: None,
            })
            .collect();
        w.tasks.push(Task {
            arn: format!(
                "arn:aws:ecs:{region}:{}:task/{cluster_name}/{id}",
                w.account
            ),
            id,
            cluster: svc.cluster,
            service: intent.service,
            taskdef: intent.taskdef,
            profile: intent.profile,
            host: usize::MAX,
            role_override: intent.role_override,
            group: intent.group.clone(),
            started_by: intent.started_by.clone(),
            created_ms: intent.created_ms,
            pull_started_ms,
            pull_stopped_ms,
            started_ms,
            stopping_ms,
            stopped_ms,
            stop_code,
            stopped_reason: reason,
            exit_code,
            containers,
            eni: None,
            ecs_bridge_ip: None,
            boot_delay,
            last_call,
            task_keys: Vec::new(),
            exec_keys: Vec::new(),
            procs: Vec::new(),
            proc_ids: Vec::new(),
            lost: Vec::new(),
            fargate: intent.profile.fargate(),
            public_ip: None,
            ipv6: None,
        });
    }
    let mut events: Vec<(i64, u8, usize)> = Vec::new();
    for (i, t) in w.tasks.iter().enumerate() {
        events.push((t.created_ms, 1, i));
        if let Some(s) = t.stopped_ms {
            events.push((s, 0, i));
        }
    }
    events.sort();
    let mut load = vec![0usize; w.hosts.len()];
    let mut docker: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); w.hosts.len()];
    let mut ecs_bridge: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); w.hosts.len()];
    // ENI addresses per VPC and subnet, in order (the next free one, never one a stopped task
    // held in this run); hosts' own addresses are taken for the whole run. Clusters sharing a
    // range hand out the same addresses in the same order.
    let host_ips: BTreeSet<(usize, u32)> =
        w.hosts.iter().map(|h| (h.cluster, h.private_ip)).collect();
    let mut next_private = vec![[0u32; 3]; w.clusters.len()];
    let mut next_public = vec![[0u32; 3]; w.clusters.len()];
    let lowest_free = |set: &mut BTreeSet<u32>| -> u32 {
        let mut n = 2;
        while set.contains(&n) {
            n += 1;
        }
        set.insert(n);
        n
    };
    for (_, kind, i) in events {
        let cluster = w.tasks[i].cluster;
        if kind == 0 {
            let h = w.tasks[i].host;
            if !w.tasks[i].fargate {
                load[h] -= 1;
            }
            for c in &w.tasks[i].containers {
                if let Some(ip) = c.bridge_ip {
                    docker[h].remove(&(ip & 0xffff));
                }
            }
            if let Some(ip) = w.tasks[i].ecs_bridge_ip {
                ecs_bridge[h].remove(&(ip & 0x3ff));
            }
            continue;
        }
        let hosts = &w.clusters[cluster].hosts;
        let fargate = w.tasks[i].fargate;
        let h = if fargate {
            // Fargate: no container instance; the host only stands for the task's subnet (AZ).
            *rng.pick(hosts)
        } else {
            let min = hosts.iter().map(|&h| load[h]).min().unwrap_or(0);
            let candidates: Vec<usize> =
                hosts.iter().copied().filter(|&h| load[h] == min).collect();
            *rng.pick(&candidates)
        };
        if !fargate {
            load[h] += 1;
        }
        let network = w.taskdefs[w.tasks[i].taskdef].network;
        let host_az = w.hosts[h].az;
        let octet = w.clusters[cluster].vpc_octet;
        let public = w.tasks[i].profile.public_ip();
        let dual_stack = w.tasks[i].profile.dual_stack();
        let subnet = if public {
            w.clusters[cluster].public_subnets[host_az].clone()
        } else {
            w.clusters[cluster].subnets[host_az].clone()
        };
        let ipv6_prefix = w.clusters[cluster].ipv6_prefix;
        let region = w.clusters[cluster].region;
        let mut net = Rng::derive(w.seed, &[stream::NETWORK, 1 << 32, i as u64]);
        let t = &mut w.tasks[i];
        t.host = h;
        match network {
            Network::Bridge => {
                for c in &mut t.containers {
                    let n = lowest_free(&mut docker[h]);
                    c.bridge_ip = Some(ip4(172, 17, (n >> 8) as u8, (n & 0xff) as u8));
                }
            }
            Network::Awsvpc => {
                if !t.fargate {
                    let n = lowest_free(&mut ecs_bridge[h]);
                    t.ecs_bridge_ip = Some(ip4(169, 254, 172 + (n >> 8) as u8, (n & 0xff) as u8));
                }
                let ip = if public {
                    let n = &mut next_public[cluster][host_az];
                    *n += 1;
                    ip4(10, octet, 96 + host_az as u8, 4 + ((*n - 1) % 240) as u8)
                } else {
                    loop {
                        let n = &mut next_private[cluster][host_az];
                        *n += 1;
                        let k = *n - 1;
                        let third = host_az as u8 * 32 + (k / 250 % 31) as u8;
                        let ip = ip4(10, octet, third, 4 + (k % 250) as u8);
                        if !host_ips.contains(&(cluster, ip)) {
                            break ip;
                        }
                    }
                };
                if public {
                    // Amazon's pool of the region (never one of the account's Elastic IPs).
                    let first = match region {
                        0 => (54, 160),
                        1 => (18, 200),
                        _ => (35, 80),
                    };
                    t.public_ip = Some(ip4(
                        first.0,
                        first.1 + net.below(32) as u8,
                        net.below(256) as u8,
                        1 + net.below(254) as u8,
                    ));
                }
                if dual_stack {
                    t.ipv6 = Some(
                        ipv6_prefix
                            | ((host_az as u128 * 2) << 64)
                            | u128::from(net.next_u64() | 1),
                    );
                }
                let mac = format!(
                    "0a:{}:{}:{}:{}:{}",
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2),
                    rng.hex(2)
                );
                t.eni = Some(Eni {
                    ip,
                    id: format!("eni-0{}", rng.hex(16)),
                    subnet,
                    mac,
                    attachment_id: rng.uuid(),
                });
            }
        }
    }
}

fn session_identity(
    w: &World,
    role: usize,
    session: &str,
    access_key: &str,
    created: i64,
) -> String {
    let r = &w.roles[role];
    format!(
        "{{\"type\":\"AssumedRole\",\"principalId\":\"{}:{session}\",\"arn\":\"arn:aws:sts::{}:assumed-role/{}/{session}\",\"accountId\":\"{}\",\"accessKeyId\":\"{access_key}\",\"sessionContext\":{{\"sessionIssuer\":{{\"type\":\"Role\",\"principalId\":\"{}\",\"arn\":\"{}\",\"accountId\":\"{}\",\"userName\":\"{}\"}},\"attributes\":{{\"creationDate\":\"{}\",\"mfaAuthenticated\":\"false\"}}}}",
        r.id,
        w.account,
        r.name,
        w.account,
        r.id,
        r.arn,
        w.account,
        r.name,
        clock::rfc3339_string(created)
    )
}

/// Every generation of credentials ECS obtains for every task: at creation, then every ~3 h.
fn issue_keys(w: &mut World) {
    for ti in 0..w.tasks.len() {
        let mut rng = Rng::derive(w.seed, &[stream::KEYS, ti as u64]);
        let t = &w.tasks[ti];
        let until = t.stopped().unwrap_or(w.end);
        let first = t.created_ms.div_euclid(1000) + 1;
        let roles: Vec<(usize, bool)> = w
            .task_role(ti)
            .map(|r| (r, false))
            .into_iter()
            .chain(std::iter::once((w.taskdefs[t.taskdef].exec_role, true)))
            .collect();
        let id = t.id.clone();
        for (role, exec) in roles {
            let mut issued = first + rng.range(0, 2);
            let mut idx = Vec::new();
            while issued < until {
                let access_key = format!("ASIA{}", rng.chars(KEY_ALPHABET, 16));
                let identity = session_identity(w, role, &id, &access_key, issued);
                idx.push(w.keys.len() as u32);
                w.keys.push(Key {
                    task: ti as u32,
                    role: role as u32,
                    exec,
                    issued,
                    expires: issued + KEY_LIFETIME,
                    access_key,
                    identity,
                    event_id: rng.u128(),
                    request_id: rng.u128(),
                    shared_id: rng.u128(),
                });
                issued += KEY_REFRESH + rng.range(-300, 300);
            }
            if exec {
                w.tasks[ti].exec_keys = idx;
            } else {
                w.tasks[ti].task_keys = idx;
            }
        }
    }
}

/// Health-check runs of a task: (fetch second, call second) pairs, closed form so the audit
/// writer and the CloudTrail writer (which only sees one hour) agree.
pub fn healthcheck_run(seed: u64, task: usize, base: i64, k: i64) -> i64 {
    let j = Rng::derive(seed, &[stream::FETCH, task as u64, k as u64]).below(3) as i64;
    base + HEALTHCHECK_PERIOD * k + j
}

pub fn healthcheck_base(t: &Task) -> i64 {
    t.started() + HEALTHCHECK_PERIOD
}

/// Agent restarts and throttling windows per host, and where each host's audit log begins.
fn plan_faults(w: &mut World) {
    let dur = w.end - w.start;
    let days = i64::from(w.hours) / 24;
    for hi in 0..w.hosts.len() {
        let mut rng = Rng::derive(w.seed, &[stream::HOST_FAULTS, hi as u64]);
        // Every third host's collector was installed after the simulation began.
        let audit_from = if hi % 3 == 2 {
            w.start + rng.range(90 * 60, 150 * 60).min(dur / 2)
        } else {
            w.start
        };
        let mut faults: Vec<Fault> = Vec::new();
        // Agent restarts: on every other host, plus one a day on every host. Every credential
        // request gets 503 (sometimes 500) until the agent has its credentials again.
        let restarts = i64::from(hi % 2 == 0) + days;
        for k in 0..restarts {
            let (lo, hi_) = if k == 0 && hi % 2 == 0 {
                (dur * 3 / 10, dur * 7 / 10)
            } else {
                (dur / 10, dur * 9 / 10)
            };
            let from = w.start + rng.range(lo, hi_);
            let status = if rng.chance(0.8) { 503 } else { 500 };
            faults.push(Fault {
                from,
                to: from + rng.range(25, 90),
                status,
            });
        }
        // Throttling windows (429) on every third host, inside its audit log.
        let windows = i64::from(hi % 3 == 1) + days;
        for _ in 0..windows {
            let lo = (audit_from - w.start).max(dur / 5);
            let from = w.start + rng.range(lo, (dur * 9 / 10).max(lo + 1));
            faults.push(Fault {
                from,
                to: from + rng.range(10, 30),
                status: 429,
            });
        }
        faults.sort_by_key(|f| f.from);
        let mut kept: Vec<Fault> = Vec::new();
        for f in faults {
            if kept.last().is_none_or(|l| l.to + 600 < f.from) {
                kept.push(f);
            }
        }
        w.hosts[hi].faults = kept;
        w.hosts[hi].audit_from = audit_from;
    }
}

/// The benign misconfigured client: a script in an orders-api task (whose health check fetches
/// every 30 s from the same address) started with a credential ID copied from an older task.
fn pick_stale_client(w: &World) -> Option<StaleClient> {
    let mut rng = Rng::derive(w.seed, &[stream::HOST_FAULTS, u64::MAX]);
    let cands: Vec<usize> = (0..w.tasks.len())
        .filter(|&i| {
            let t = &w.tasks[i];
            t.profile == Profile::OrdersApi
                && !t.fargate
                && t.created_ms / 1000 >= w.hosts[t.host].audit_from
                && t.last_call - t.app_start() >= 2 * 3600
        })
        .collect();
    if cands.is_empty() {
        return None;
    }
    let task = *rng.pick(&cands);
    let lang = *rng.pick(&[Lang::Python, Lang::NodeV3, Lang::NodeV2]);
    Some(StaleClient {
        task,
        lang,
        from: w.tasks[task].app_start() + rng.range(300, 1800),
        period: 60,
    })
}

fn ephemeral_port(rng: &mut Rng) -> u16 {
    rng.range(32768, 61000) as u16
}

/// When every client fetches credentials from the agent, and the audit lines that makes.
fn schedule_fetches(w: &mut World) {
    w.audit = vec![Vec::new(); w.hosts.len()];
    let awslogs = w.intern_ua(AWSLOGS_USER_AGENT);
    let health = w.intern_ua(Lang::AwsCliV2.fetch_user_agent());
    for ti in 0..w.tasks.len() {
        let mut rng = Rng::derive(w.seed, &[stream::FETCH, ti as u64, u64::MAX]);
        let behavior = w.tasks[ti].profile.behavior();
        let mut uas: Vec<u16> = behavior
            .clients
            .iter()
            .map(|c| w.intern_ua(c.lang.fetch_user_agent()))
            .collect();
        if let Some(s) = w.stale.filter(|s| s.task == ti) {
            uas.push(w.intern_ua(s.lang.fetch_user_agent()));
        }
        let t = w.tasks[ti].clone();
        let host_ip = w.hosts[t.host].private_ip;
        let mut out = Vec::new();
        // Docker's awslogs driver: execution-role credentials per container as it is created
        // (between pullStoppedAt and startedAt), then on expiry.
        for (ci, _) in t.containers.iter().enumerate() {
            let mut at = (t.pull_stopped_ms.div_euclid(1000) + ci as i64).min(t.started());
            while at < t.last_call {
                if let Some(status) = w.fault_at(t.host, at) {
                    out.push(AuditEntry {
                        time: at,
                        status,
                        src: Some((host_ip, ephemeral_port(&mut rng))),
                        path: "/v2/credentials".to_string(),
                        ua: awslogs,
                        task: None,
                        exec: false,
                    });
                    at = w.hosts[t.host]
                        .faults
                        .iter()
                        .find(|f| f.from <= at && at < f.to)
                        .map_or(at + 1, |f| f.to);
                    continue;
                }
                let Some(k) = w.latest_key(&t.exec_keys, at) else {
                    break;
                };
                out.push(AuditEntry::fetch(
                    at,
                    Some((host_ip, ephemeral_port(&mut rng))),
                    awslogs,
                    ti as u32,
                    true,
                ));
                at = w.keys[k as usize].expires - 60 + rng.range(0, 30);
            }
        }
        if behavior.uses_aws && !t.task_keys.is_empty() {
            let r = task_requests(w, ti, &mut rng, &uas);
            out.extend(r.entries);
            let task = &mut w.tasks[ti];
            task.procs = r.procs;
            task.proc_ids = r.proc_ids;
            task.lost = r.lost;
            if behavior.healthcheck {
                // `aws sts get-caller-identity` every 30 s: a new CLI process, so one fetch on a
                // new connection per run; while the agent fails, 3 attempts and no call.
                let base = healthcheck_base(&t);
                let ip = t.healthcheck_ip();
                let mut k = 0;
                loop {
                    let at = healthcheck_run(w.seed, ti, base, k);
                    if at >= t.last_call {
                        break;
                    }
                    let mut conn = Conn::new(Lang::AwsCliV2);
                    let ms = at * 1000 + rng.range(0, 1000);
                    match w.fault_at(t.host, at) {
                        None => out.push(AuditEntry::fetch(
                            at,
                            ip.map(|ip| (ip, conn.port(&mut rng, ms, true))),
                            health,
                            ti as u32,
                            false,
                        )),
                        Some(status) => {
                            let mut jitter = |lo: i64, hi: i64| rng.range(lo, hi);
                            let round = Lang::AwsCliV2.failed_round(status, &mut jitter);
                            for (off, new) in round {
                                out.push(AuditEntry {
                                    time: (ms + off).div_euclid(1000),
                                    status,
                                    src: ip.map(|ip| (ip, conn.port(&mut rng, ms + off, new))),
                                    path: "/v2/credentials".to_string(),
                                    ua: health,
                                    task: None,
                                    exec: false,
                                });
                            }
                        }
                    }
                    k += 1;
                }
            }
        }
        // Fargate's agent writes no audit log anyone can read.
        if !t.fargate {
            w.audit[t.host].extend(out);
        }
    }
}
