//! The deployments of detections.md "Real clients and real deployments", each in its benign form
//! (no finding at all) and with an attack planted inside the same topology (exactly the planted
//! finding), through the real binary: inputs are written in AWS's own formats, ingested with
//! `credtrail ingest …` and judged by `credtrail analyze --format jsonl`. The host whose collector
//! stopped is collected by the collector itself (`run_once`, what `credtrail-collector --once`
//! runs), twice, by the real clock.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

#[path = "common/cli.rs"]
mod cli;
use cli::credtrail;

const ACCOUNT: &str = "111122223333";
/// 2026-11-20T08:00:00Z: every time below is seconds after it, unless a test moves the world's
/// start ([`BASE`]) because the real clock matters to it.
const T0: i64 = 1_795_161_600;

thread_local! {
    /// Unix seconds of the world's time 0 (each test runs on a thread of its own).
    static BASE: std::cell::Cell<i64> = const { std::cell::Cell::new(T0) };
}

fn iso(t: i64) -> String {
    credtrail::timestamp::rfc3339_string(BASE.get() + t)
}

fn epoch(t: i64) -> f64 {
    (BASE.get() + t) as f64
}

#[derive(Clone)]
struct Task {
    id: String,
    region: &'static str,
    cluster: &'static str,
    family: &'static str,
    role: String,
    exec_role: String,
    /// The container instance (EC2) or None (Fargate).
    instance: Option<String>,
    /// awsvpc ENI address, or the bridge address on its host.
    ip: &'static str,
    awsvpc: bool,
    /// An awsvpc task's own public address and IPv6 address.
    public_ip: Option<&'static str>,
    ipv6: Option<&'static str>,
    started: i64,
    stopped: Option<i64>,
}

impl Task {
    /// The ENI attachment's ID: the task ID written as a UUID.
    fn attachment(&self) -> String {
        let i = &self.id;
        format!(
            "{}-{}-{}-{}-{}",
            &i[..8],
            &i[8..12],
            &i[12..16],
            &i[16..20],
            &i[20..]
        )
    }

    fn arn(&self) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:task/{}/{}",
            self.region, self.cluster, self.id
        )
    }
}

/// One deployment's inputs, in the formats AWS writes them.
#[derive(Default)]
struct World {
    tasks: Vec<Task>,
    /// Audit lines per host (container instance ARN).
    audit: std::collections::BTreeMap<String, Vec<(i64, String)>>,
    records: Vec<Value>,
    /// (region, public address) of NAT gateways; with any of them (or `inventory`), the world
    /// has a network inventory of every region it uses.
    nats: Vec<(&'static str, &'static str)>,
    inventory: bool,
    /// Audit lines before this time are not written: the collector was installed then.
    audit_from: i64,
    /// Directories of segments published by the collector, ingested beside the raw audit files.
    segments: Vec<std::path::PathBuf>,
    next_port: u32,
    next_event: u32,
}

/// Every region's VPC has its own ID, and all of them use 10.0.0.0/16.
fn vpc(region: &str) -> String {
    format!(
        "vpc-{:017x}",
        region.len() * 7 + region.as_bytes()[3] as usize
    )
}

fn instance(region: &str, cluster: &str, n: u32) -> String {
    format!("arn:aws:ecs:{region}:{ACCOUNT}:container-instance/{cluster}/{n:032x}")
}

impl World {
    /// A bridge-mode task on container instance `host` (or Fargate when None) in us-east-1.
    fn task(
        &mut self,
        n: u32,
        family: &'static str,
        host: Option<u32>,
        ip: &'static str,
        started: i64,
        stopped: Option<i64>,
    ) -> Task {
        let mut t = self.awsvpc_task(
            n,
            family,
            "us-east-1",
            host,
            ip,
            None,
            None,
            started,
            stopped,
        );
        t.awsvpc = false;
        self.tasks.last_mut().unwrap().awsvpc = false;
        t
    }

    /// An awsvpc task (EC2 when `host` is given, else Fargate) in `region`, with its ENI.
    #[allow(clippy::too_many_arguments)]
    fn awsvpc_task(
        &mut self,
        n: u32,
        family: &'static str,
        region: &'static str,
        host: Option<u32>,
        ip: &'static str,
        public_ip: Option<&'static str>,
        ipv6: Option<&'static str>,
        started: i64,
        stopped: Option<i64>,
    ) -> Task {
        let t = Task {
            id: format!("{n:032x}"),
            region,
            cluster: "prod",
            family,
            role: format!("arn:aws:iam::{ACCOUNT}:role/{family}-task"),
            exec_role: format!("arn:aws:iam::{ACCOUNT}:role/{family}-exec"),
            instance: host.map(|h| instance(region, "prod", h)),
            ip,
            awsvpc: true,
            public_ip,
            ipv6,
            started,
            stopped,
        };
        self.tasks.push(t.clone());
        t
    }

    /// A NAT gateway's ENI in `region` with its Elastic IP, in the network inventory.
    fn nat(&mut self, region: &'static str, public_ip: &'static str) {
        self.nats.push((region, public_ip));
    }

    fn line(&mut self, host: &str, at: i64, text: String) {
        if at < self.audit_from {
            return;
        }
        self.audit
            .entry(host.to_string())
            .or_default()
            .push((at, text));
    }

    /// A successful task-role fetch of `task`'s credentials from `ip` on its host.
    fn fetch(&mut self, task: &Task, at: i64, ip: &str, ua: &str) {
        self.next_port += 1;
        let host = task.instance.clone().unwrap();
        let text = format!(
            "{} 200 {ip}:{} \"/v2/credentials\" \"{ua}\" {} GetCredentials 2 {} {host}",
            iso(at),
            40000 + self.next_port,
            task.arn(),
            task.cluster
        );
        self.line(&host, at, text);
    }

    /// A refused request (`status` 400, 429, 500 or 503) from `ip` on `host`.
    fn refused(&mut self, host: &str, at: i64, status: u16, ip: &str, ua: &str) {
        self.next_port += 1;
        let text = format!(
            "{} {status} {ip}:{} \"/v2/credentials\" \"{ua}\" - ",
            iso(at),
            40000 + self.next_port
        );
        self.line(host, at, text);
    }

    /// A CloudTrail record of a call with `task`'s task-role session (or its execution role's).
    fn call(&mut self, task: &Task, at: i64, source: &str, event: (&str, &str), extra: Value) {
        self.call_as(task, &task.role.clone(), at, source, event, extra);
    }

    fn call_as(
        &mut self,
        task: &Task,
        role: &str,
        at: i64,
        source: &str,
        (event_source, event_name): (&str, &str),
        extra: Value,
    ) {
        self.next_event += 1;
        let role_name = role.rsplit('/').next().unwrap();
        let mut r = json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE{}:{}", role_name.len(), task.id),
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{}", task.id),
                "accountId": ACCOUNT,
                "accessKeyId": format!("ASIA{:016X}", task.id.len() as u64 * 7919 + u64::from(task.id.as_bytes()[31])),
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": role,
                                      "accountId": ACCOUNT, "userName": role_name},
                    "attributes": {"creationDate": iso(task.started), "mfaAuthenticated": "false"}
                }
            },
            "eventTime": iso(at),
            "eventSource": event_source,
            "eventName": event_name,
            "awsRegion": task.region,
            "sourceIPAddress": source,
            "userAgent": "Boto3/1.44.18 md/Botocore#1.44.18 ua/2.1 os/linux#6.1 md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython exec-env/AWS_ECS_EC2 cfg/retry-mode#standard Botocore/1.44.18",
            "requestParameters": null,
            "responseElements": null,
            "requestID": format!("REQ{:08}", self.next_event),
            "eventID": format!("00000000-0000-4000-8000-{:012}", self.next_event),
            "readOnly": true,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        });
        if let (Some(obj), Some(more)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                obj.insert(k.clone(), v.clone());
            }
        }
        self.records.push(r);
    }

    /// What an ordinary task does: the agent pulls its image with the execution role at start,
    /// the SDK fetches at start and calls S3 every `every` seconds from `source`.
    fn ordinary(&mut self, task: &Task, until: i64, every: i64, source: &str, ua: &str) {
        let exec = task.exec_role.clone();
        self.call_as(
            task,
            &exec,
            task.started - 20,
            "ecs-tasks.amazonaws.com",
            ("ecr.amazonaws.com", "GetAuthorizationToken"),
            json!({"sourceIPAddress": source}),
        );
        if task.instance.is_some() {
            self.fetch(task, task.started + 5, task.ip, ua);
        }
        let end = task.stopped.unwrap_or(until).min(until);
        let mut at = task.started + 10;
        while at < end {
            self.call(
                task,
                at,
                source,
                ("s3.amazonaws.com", "ListBuckets"),
                json!({}),
            );
            at += every;
        }
    }

    /// Writes every input under `dir`, ingests it with the binary, and returns the findings.
    fn analyze(&self, dir: &Path) -> Vec<Value> {
        let store = dir.join("credtrail.duckdb");
        let audit_dir = dir.join("audit");
        std::fs::create_dir_all(&audit_dir).unwrap();
        let mut audit_files = Vec::new();
        for (i, (_, lines)) in self.audit.iter().enumerate() {
            let mut lines = lines.clone();
            lines.sort_by_key(|(t, _)| *t);
            let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
            let p = audit_dir.join(format!("host{i}-audit.log"));
            std::fs::write(&p, text).unwrap();
            audit_files.push(p);
        }
        let ecs = dir.join("ecs");
        std::fs::create_dir_all(&ecs).unwrap();
        std::fs::write(
            ecs.join("describe-tasks.json"),
            serde_json::to_vec_pretty(&self.describe_tasks()).unwrap(),
        )
        .unwrap();
        let mut families = BTreeSet::new();
        for t in &self.tasks {
            if families.insert(t.family) {
                let td = json!({"taskDefinition": {
                    "taskDefinitionArn": format!("arn:aws:ecs:{}:{ACCOUNT}:task-definition/{}:1", t.region, t.family),
                    "family": t.family, "revision": 1,
                    "taskRoleArn": t.role, "executionRoleArn": t.exec_role,
                    "networkMode": if t.awsvpc { "awsvpc" } else { "bridge" }}});
                std::fs::write(
                    ecs.join(format!("td-{}.json", t.family)),
                    serde_json::to_vec_pretty(&td).unwrap(),
                )
                .unwrap();
            }
        }
        let trail = dir.join("cloudtrail.json");
        let mut records = self.records.clone();
        records.sort_by(|a, b| a["eventTime"].as_str().cmp(&b["eventTime"].as_str()));
        std::fs::write(
            &trail,
            serde_json::to_vec(&json!({ "Records": records })).unwrap(),
        )
        .unwrap();

        if self.inventory || !self.nats.is_empty() {
            let net = dir.join("network");
            std::fs::create_dir_all(&net).unwrap();
            let regions: BTreeSet<&str> = self
                .tasks
                .iter()
                .map(|t| t.region)
                .chain(self.nats.iter().map(|(r, _)| *r))
                .collect();
            for region in regions {
                std::fs::write(
                    net.join(format!("{region}-describe-network-interfaces.json")),
                    serde_json::to_vec_pretty(&self.network_interfaces(region)).unwrap(),
                )
                .unwrap();
            }
            // the snapshot is taken at the end of the world's time
            let last = self.tasks.iter().map(|t| t.started).max().unwrap_or(0);
            credtrail(
                &store,
                &[
                    "ingest".into(),
                    "network".into(),
                    "--taken-at".into(),
                    iso(last + 600),
                    net.display().to_string(),
                ],
            );
        }
        if !audit_files.is_empty() || !self.segments.is_empty() {
            let mut args = vec!["ingest".to_string(), "audit".to_string()];
            args.extend(audit_files.iter().map(|p| p.display().to_string()));
            args.extend(self.segments.iter().map(|p| p.display().to_string()));
            credtrail(&store, &args);
        }
        credtrail(
            &store,
            &["ingest".into(), "ecs".into(), ecs.display().to_string()],
        );
        credtrail(
            &store,
            &[
                "ingest".into(),
                "cloudtrail".into(),
                trail.display().to_string(),
            ],
        );
        let out = credtrail(&store, &["analyze", "--format", "jsonl"]);
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `aws ec2 describe-network-interfaces` of one region: its NAT gateways and the ENIs of
    /// its awsvpc tasks that still run.
    fn network_interfaces(&self, region: &str) -> Value {
        let mut enis = Vec::new();
        for (i, (r, ip)) in self.nats.iter().enumerate() {
            if *r != region {
                continue;
            }
            enis.push(json!({
                "Association": {"IpOwnerId": ACCOUNT, "PublicIp": ip},
                "AvailabilityZone": format!("{region}a"),
                "Description": format!("Interface for NAT Gateway nat-{i:017x}"),
                "InterfaceType": "nat_gateway",
                "Ipv6Addresses": [],
                "NetworkInterfaceId": format!("eni-{:017x}", 0xa000 + i),
                "OwnerId": ACCOUNT,
                "PrivateIpAddress": format!("10.0.0.{}", 10 + i),
                "PrivateIpAddresses": [{"Association": {"IpOwnerId": ACCOUNT, "PublicIp": ip},
                                        "Primary": true, "PrivateIpAddress": format!("10.0.0.{}", 10 + i)}],
                "RequesterId": "AROAEXAMPLE:natgw", "RequesterManaged": true,
                "Status": "in-use", "SubnetId": "subnet-0a1b2c3d", "VpcId": vpc(region)
            }));
        }
        for t in &self.tasks {
            if t.region != region || !t.awsvpc || t.stopped.is_some() {
                continue;
            }
            let assoc = t
                .public_ip
                .map(|p| json!({"IpOwnerId": "amazon", "PublicIp": p}));
            let mut private = json!({"Primary": true, "PrivateIpAddress": t.ip});
            let mut eni = json!({
                "AvailabilityZone": format!("{region}a"),
                "Description": format!("arn:aws:ecs:{region}:{ACCOUNT}:attachment/{}", t.attachment()),
                "InterfaceType": "interface",
                "Ipv6Addresses": t.ipv6.map(|a| vec![json!({"Ipv6Address": a})]).unwrap_or_default(),
                "NetworkInterfaceId": format!("eni-{}", &t.id[15..]),
                "OwnerId": ACCOUNT,
                "PrivateIpAddress": t.ip,
                "RequesterId": "578734482556", "RequesterManaged": true,
                "Status": "in-use", "SubnetId": "subnet-0a1b2c3d", "VpcId": vpc(region)
            });
            if let Some(a) = assoc {
                eni["Association"] = a.clone();
                private["Association"] = a;
            }
            eni["PrivateIpAddresses"] = json!([private]);
            enis.push(eni);
        }
        json!({ "NetworkInterfaces": enis })
    }

    fn describe_tasks(&self) -> Value {
        let tasks: Vec<Value> = self
            .tasks
            .iter()
            .map(|t| {
                let mut v = json!({
                    "taskArn": t.arn(),
                    "clusterArn": format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/{}", t.region, t.cluster),
                    "taskDefinitionArn": format!("arn:aws:ecs:{}:{ACCOUNT}:task-definition/{}:1", t.region, t.family),
                    "launchType": if t.instance.is_some() { "EC2" } else { "FARGATE" },
                    "group": format!("service:{}", t.family),
                    "lastStatus": if t.stopped.is_some() { "STOPPED" } else { "RUNNING" },
                    "desiredStatus": if t.stopped.is_some() { "STOPPED" } else { "RUNNING" },
                    "createdAt": epoch(t.started - 40),
                    "pullStartedAt": epoch(t.started - 30),
                    "pullStoppedAt": epoch(t.started - 10),
                    "startedAt": epoch(t.started),
                    "overrides": {"containerOverrides": []},
                    "containers": [],
                    "attachments": []
                });
                if let Some(ci) = &t.instance {
                    v["containerInstanceArn"] = json!(ci);
                }
                if let Some(s) = t.stopped {
                    v["stoppingAt"] = json!(epoch(s - 5));
                    v["stoppedAt"] = json!(epoch(s));
                    v["stoppedReason"] = json!("Scaling activity initiated by deployment");
                }
                if t.awsvpc {
                    v["attachments"] = json!([{
                        "id": t.attachment(),
                        "type": "ElasticNetworkInterface",
                        "status": if t.stopped.is_some() { "DELETED" } else { "ATTACHED" },
                        "details": [
                            {"name": "subnetId", "value": "subnet-0a1b2c3d"},
                            {"name": "networkInterfaceId", "value": format!("eni-{}", &t.id[15..])},
                            {"name": "privateIPv4Address", "value": t.ip}
                        ]}]);
                    if let Some(v6) = t.ipv6 {
                        v["attachments"][0]["details"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"name": "privateIPv6Address", "value": v6}));
                    }
                }
                v
            })
            .collect();
        json!({ "tasks": tasks, "failures": [] })
    }
}

/// (kind, severity, task or source address) of every finding.
fn summary(findings: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            let who = f["task_arn"]
                .as_str()
                .or(f["source_ip"].as_str())
                .or(f["role_arn"].as_str())
                .unwrap_or("-");
            (
                f["kind"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                who.to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn run(world: &World) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let f = world.analyze(dir.path());
    if let Ok(keep) = std::env::var("CREDTRAIL_KEEP") {
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::rename(dir.path(), keep).unwrap();
    }
    f
}

fn assert_none(world: &World) {
    let f = run(world);
    assert!(f.is_empty(), "benign deployment: {:#?}", summary(&f));
}

fn assert_exactly(world: &World, expected: &[(&str, &str, &str)]) {
    let f = run(world);
    let got = summary(&f);
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(k, s, w)| (k.to_string(), s.to_string(), w.to_string()))
        .collect();
    assert_eq!(got, want, "{f:#?}");
}

const BOTO3: &str = "python-urllib3/2.8.0";
const JS_V2: &str = "aws-sdk-nodejs/2.1693.0 linux/v20.20.2 exec-env/AWS_ECS_EC2";
const NAT: &str = "198.51.100.20";
const HOURS: i64 = 3600;

// ---------------------------------------------------------------------------------------------
// Real SDK clients, with their retry bursts while the agent restarts

/// Four bridge-mode tasks on one host, boto3, JS v3 (empty user agent), JS v2 and Go, calling
/// through one NAT; the agent restarts at 01:00 and every client retries in its SDK's pattern.
fn sdk_clients() -> (World, Vec<Task>) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    let host = instance("us-east-1", "prod", 1);
    let clients = [
        (BOTO3, 3),
        ("", 5),
        (JS_V2, 4),
        ("aws-sdk-go/1.55.5 (go1.22.9; linux; amd64)", 3),
    ];
    let ips = ["172.17.0.2", "172.17.0.3", "172.17.0.4", "172.17.0.5"];
    let mut tasks = Vec::new();
    for (i, ((ua, retries), ip)) in clients.iter().zip(ips).enumerate() {
        let t = w.task(
            10 + i as u32,
            ["api", "web", "jobs", "feed"][i],
            Some(1),
            ip,
            60,
            None,
        );
        w.ordinary(&t, 3 * HOURS, 300, NAT, ua);
        // every API call during the restart (one every 30 s for 2 minutes) retries `retries`
        // times on 503, then succeeds and fetches
        for call in 0..4 {
            for k in 0..*retries {
                w.refused(&host, HOURS + 30 * call + k, 503, ip, ua);
            }
        }
        w.fetch(&t, HOURS + 125, ip, ua);
        // lazy refresh, 15 minutes before the 6-hour expiry would be past the end: none
        tasks.push(t);
    }
    (w, tasks)
}

#[test]
fn real_sdk_clients_and_agent_restarts() {
    let (w, _) = sdk_clients();
    assert_none(&w);
}

#[test]
fn real_sdk_clients_with_a_shell_pulling_credentials() {
    let (mut w, tasks) = sdk_clients();
    // someone with a shell in the boto3 task pulls its credentials with curl
    w.fetch(&tasks[0], 2 * HOURS, tasks[0].ip, "curl/8.5.0");
    assert_exactly(&w, &[("fetch_unusual_client", "high", &tasks[0].arn())]);
}

#[test]
fn real_sdk_clients_with_an_id_guessing_container() {
    let (mut w, _) = sdk_clients();
    let host = instance("us-east-1", "prod", 1);
    // a container that never fetched walks credential IDs with its own Python script
    for k in 0..8 {
        w.refused(&host, 2 * HOURS + 20 * k, 400, "172.17.0.9", BOTO3);
    }
    assert_exactly(&w, &[("fetch_denied_burst", "high", "172.17.0.9")]);
}

// ---------------------------------------------------------------------------------------------
// Families that fetch often by design

/// A cron-like family running AWS CLI commands in a loop (one fetch per command, every 6 s), and
/// a service creating a new boto3 Session per request (one fetch per call, 20 a minute).
fn chatty_families() -> (World, Task, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    let cli = w.task(20, "sync", Some(2), "172.17.0.2", 60, None);
    let per_call = w.task(21, "lambda-like", Some(2), "172.17.0.3", 60, None);
    w.ordinary(&cli, 2 * HOURS, 600, NAT, BOTO3);
    w.ordinary(&per_call, 2 * HOURS, 600, NAT, BOTO3);
    let mut at = 120;
    while at < 2 * HOURS {
        w.fetch(&cli, at, cli.ip, BOTO3);
        w.fetch(&per_call, at + 1, per_call.ip, BOTO3);
        w.fetch(&per_call, at + 4, per_call.ip, BOTO3);
        at += 6;
    }
    (w, cli, per_call)
}

#[test]
fn families_that_fetch_often_by_design() {
    let (w, _, _) = chatty_families();
    assert_none(&w);
}

#[test]
fn families_that_fetch_often_with_a_burst_in_a_quiet_one() {
    let (mut w, _, _) = chatty_families();
    // a quiet family (three tasks: one fetch at start, the next at the lazy refresh) where one
    // task suddenly loops
    let mut quiet = Vec::new();
    for (n, ip) in [(22, "172.17.0.4"), (23, "172.17.0.5"), (24, "172.17.0.6")] {
        let t = w.task(n, "billing", Some(2), ip, 60 + 600 * (n as i64 - 22), None);
        w.ordinary(&t, 2 * HOURS, 600, NAT, BOTO3);
        w.fetch(&t, t.started + 3000, t.ip, BOTO3);
        quiet.push(t);
    }
    for k in 0..40 {
        w.fetch(&quiet[0], HOURS + 5 * k, quiet[0].ip, BOTO3);
    }
    assert_exactly(&w, &[("fetch_burst", "medium", &quiet[0].arn())]);
}

// ---------------------------------------------------------------------------------------------
// AWS services acting on a task's behalf after it stopped

fn service_follow_ups() -> (World, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    let t = w.task(30, "exporter", Some(3), "172.17.0.2", 60, Some(HOURS));
    w.ordinary(&t, 2 * HOURS, 300, NAT, BOTO3);
    // the task's last S3 upload is still being encrypted, and a state machine it started goes
    // on calling with its session: invokedBy, long after the stop
    for (k, svc) in ["s3.amazonaws.com", "states.amazonaws.com"]
        .iter()
        .enumerate()
    {
        w.call(
            &t,
            HOURS + 1200 + 60 * k as i64,
            svc,
            ("kms.amazonaws.com", "GenerateDataKey"),
            json!({"userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE:{}", t.id),
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/exporter-task/{}", t.id),
                "accountId": ACCOUNT,
                "invokedBy": svc,
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                    "arn": t.role, "accountId": ACCOUNT, "userName": "exporter-task"},
                    "attributes": {"creationDate": iso(t.started), "mfaAuthenticated": "false"}}}}),
        );
    }
    (w, t)
}

#[test]
fn services_acting_for_a_stopped_task() {
    let (w, _) = service_follow_ups();
    assert_none(&w);
}

#[test]
fn services_acting_for_a_stopped_task_and_a_copied_key() {
    let (mut w, t) = service_follow_ups();
    // the credentials were copied out: the same session calls from the NAT 30 minutes after
    // the stop, with nobody acting on its behalf
    w.call(
        &t,
        HOURS + 1800,
        NAT,
        ("secretsmanager.amazonaws.com", "ListSecrets"),
        json!({}),
    );
    assert_exactly(&w, &[("use_after_stop", "critical", &t.arn())]);
}

// ---------------------------------------------------------------------------------------------
// A replacement task that gets its stopped predecessor's bridge address

fn replacement() -> (World, Task, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    let old = w.task(40, "api", Some(4), "172.17.0.2", 60, Some(HOURS));
    w.ordinary(&old, 3 * HOURS, 300, NAT, BOTO3);
    // the replacement starts a minute later on the same host and gets 172.17.0.2
    let new = w.task(41, "api", Some(4), "172.17.0.2", HOURS + 60, None);
    w.ordinary(&new, 3 * HOURS, 300, NAT, BOTO3);
    // an unrelated task beside them
    let other = w.task(42, "web", Some(4), "172.17.0.3", 60, None);
    w.ordinary(&other, 3 * HOURS, 300, NAT, BOTO3);
    (w, new, other)
}

#[test]
fn replacement_task_with_its_predecessors_address() {
    let (w, _, _) = replacement();
    assert_none(&w);
}

#[test]
fn replacement_task_beside_a_task_fetching_its_neighbours_credentials() {
    let (mut w, new, other) = replacement();
    // the web task's container fetches the api task's credentials from its own address
    w.fetch(&new, 2 * HOURS, other.ip, BOTO3);
    assert_exactly(&w, &[("fetch_foreign_source", "critical", &new.arn())]);
}

// ---------------------------------------------------------------------------------------------
// One or two tasks behind one NAT gateway

fn small_cluster() -> (World, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    let a = w.task(50, "api", Some(5), "172.17.0.2", 60, None);
    let b = w.task(51, "worker", Some(5), "172.17.0.3", 60, None);
    w.ordinary(&a, 3 * HOURS, 300, NAT, BOTO3);
    w.ordinary(&b, 3 * HOURS, 900, NAT, "");
    (w, a)
}

#[test]
fn two_tasks_behind_one_nat_gateway() {
    let (w, _) = small_cluster();
    assert_none(&w);
}

#[test]
fn two_tasks_behind_one_nat_gateway_and_a_key_used_elsewhere() {
    let (mut w, a) = small_cluster();
    w.call(
        &a,
        2 * HOURS,
        "203.0.113.50",
        ("iam.amazonaws.com", "ListRoles"),
        json!({}),
    );
    // the inventory vouches for the NAT gateway, and a bridge task's egress is its host's or
    // the NAT's: critical
    assert_exactly(&w, &[("use_from_unexpected_network", "critical", &a.arn())]);
}

#[test]
fn a_key_used_elsewhere_without_a_network_inventory_is_medium() {
    let mut w = World::default();
    let a = w.task(52, "api", Some(5), "172.17.0.2", 60, None);
    w.ordinary(&a, 3 * HOURS, 300, NAT, BOTO3);
    let f = run(&w);
    // without an inventory nothing tells the NAT from an attacker: medium, and it says why
    assert_eq!(
        summary(&f),
        vec![(
            "use_from_unexpected_network".to_string(),
            "medium".to_string(),
            a.arn()
        )]
    );
    assert!(
        f[0]["evidence"]["verdict_rests_on"]
            .as_str()
            .unwrap()
            .starts_with("learned egress"),
        "{:#}",
        f[0]
    );
    assert_eq!(f[0]["evidence"]["missing_inputs"][0], "network inventory");
}

// ---------------------------------------------------------------------------------------------
// Fargate tasks, tasks with their own public IP, dual-stack tasks

fn awsvpc_tasks() -> (World, Task, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    // a Fargate task with a public IP of its own: no audit log, calls from its own address
    let fargate = w.awsvpc_task(
        60,
        "public-api",
        "us-east-1",
        None,
        "10.0.1.60",
        Some("54.210.1.60"),
        None,
        60,
        None,
    );
    w.ordinary(&fargate, 3 * HOURS, 300, "54.210.1.60", "");
    // a dual-stack task on EC2 calling over IPv6 from its ENI
    let dual = w.awsvpc_task(
        61,
        "v6-service",
        "us-east-1",
        Some(6),
        "10.0.1.61",
        None,
        Some("2600:1f18:4a3:6902::61"),
        60,
        None,
    );
    w.ordinary(&dual, 3 * HOURS, 300, "2600:1f18:4a3:6902:0:0:0:61", BOTO3);
    (w, fargate, dual)
}

#[test]
fn fargate_public_ip_and_dual_stack_tasks() {
    let (w, _, _) = awsvpc_tasks();
    assert_none(&w);
}

#[test]
fn fargate_task_key_used_from_outside() {
    let (mut w, fargate, _) = awsvpc_tasks();
    w.call(
        &fargate,
        2 * HOURS,
        "203.0.113.77",
        ("s3.amazonaws.com", "ListBuckets"),
        json!({}),
    );
    assert_exactly(
        &w,
        &[("use_from_unexpected_network", "critical", &fargate.arn())],
    );
}

#[test]
fn dual_stack_task_key_used_from_another_tasks_ipv6_address() {
    let (mut w, fargate, dual) = awsvpc_tasks();
    // the Fargate task's credentials, used from the dual-stack task's IPv6 address
    w.call(
        &fargate,
        2 * HOURS,
        "2600:1f18:4a3:6902::61",
        ("secretsmanager.amazonaws.com", "ListSecrets"),
        json!({}),
    );
    let f = run(&w);
    assert_eq!(
        summary(&f),
        vec![(
            "use_by_other_task".to_string(),
            "critical".to_string(),
            fargate.arn()
        )]
    );
    assert_eq!(f[0]["evidence"]["other_task_arns"][0], dual.arn());
}

// ---------------------------------------------------------------------------------------------
// Clusters in several regions whose VPCs reuse the same private ranges

fn two_regions() -> (World, Task, Task) {
    let mut w = World::default();
    let east = w.awsvpc_task(
        70,
        "api",
        "us-east-1",
        Some(7),
        "10.0.1.5",
        None,
        None,
        60,
        None,
    );
    let west = w.awsvpc_task(
        71,
        "api-eu",
        "eu-west-1",
        Some(8),
        "10.0.1.5",
        None,
        None,
        60,
        None,
    );
    for t in [&east, &west] {
        // both call through their region's S3 gateway endpoint from their own private address
        w.ordinary(t, 3 * HOURS, 300, t.ip, BOTO3);
    }
    for r in w.records.iter_mut() {
        if r["sourceIPAddress"] == "10.0.1.5" {
            let region = r["awsRegion"].as_str().unwrap().to_string();
            r["vpcEndpointId"] = json!(format!("vpce-{}", vpc(&region)[4..].to_string()));
        }
    }
    w.inventory = true;
    (w, east, west)
}

#[test]
fn two_regions_reusing_one_private_range() {
    let (w, _, _) = two_regions();
    assert_none(&w);
}

#[test]
fn two_regions_and_a_neighbour_using_a_tasks_key() {
    let (mut w, east, _) = two_regions();
    // a second task in us-east-1 whose credentials are used from the first one's address
    let victim = w.awsvpc_task(
        72,
        "billing",
        "us-east-1",
        Some(7),
        "10.0.1.9",
        None,
        None,
        60,
        None,
    );
    w.ordinary(&victim, 3 * HOURS, 300, victim.ip, BOTO3);
    w.call(
        &victim,
        2 * HOURS,
        east.ip,
        ("dynamodb.amazonaws.com", "Scan"),
        json!({"vpcEndpointId": "vpce-0123"}),
    );
    for r in w.records.iter_mut() {
        if r["sourceIPAddress"] == "10.0.1.9" && r.get("vpcEndpointId").is_none() {
            r["vpcEndpointId"] = json!("vpce-0123");
        }
    }
    let f = run(&w);
    assert_eq!(
        summary(&f),
        vec![(
            "use_by_other_task".to_string(),
            "critical".to_string(),
            victim.arn()
        )]
    );
    assert_eq!(f[0]["evidence"]["other_task_arns"], json!([east.arn()]));
}

// ---------------------------------------------------------------------------------------------
// Tasks already running when the collector was installed

/// The collector is installed two hours in: the tasks started earlier hold cached credentials
/// and call on; one of them refreshes lazily at 2.5 h, the other never fetches in the window.
fn late_collector() -> (World, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    w.audit_from = 2 * HOURS;
    let a = w.task(80, "api", Some(9), "172.17.0.2", 60, None);
    let b = w.task(81, "worker", Some(9), "172.17.0.3", 60, None);
    let c = w.task(82, "web", Some(9), "172.17.0.4", 60, None);
    for t in [&a, &b, &c] {
        w.ordinary(t, 4 * HOURS, 300, NAT, BOTO3);
    }
    w.fetch(&a, 2 * HOURS + 1800, a.ip, BOTO3);
    // a task started after the collector: it fetches at start like any other
    let d = w.task(83, "api", Some(9), "172.17.0.5", 3 * HOURS, None);
    w.ordinary(&d, 4 * HOURS, 300, NAT, BOTO3);
    (w, d)
}

#[test]
fn tasks_already_running_when_the_collector_was_installed() {
    let (w, _) = late_collector();
    assert_none(&w);
}

#[test]
fn a_task_started_under_the_collector_whose_key_is_used_before_any_fetch() {
    let (mut w, _) = late_collector();
    // a task started under the collector, whose credentials someone else uses before its own
    // first fetch (taken from the agent's memory, or replayed from another host)
    let e = w.task(84, "billing", Some(9), "172.17.0.6", 3 * HOURS, None);
    let exec = e.exec_role.clone();
    w.call_as(
        &e,
        &exec,
        e.started - 20,
        NAT,
        ("ecr.amazonaws.com", "GetAuthorizationToken"),
        json!({}),
    );
    w.call(
        &e,
        3 * HOURS + 10,
        NAT,
        ("sts.amazonaws.com", "GetCallerIdentity"),
        json!({}),
    );
    w.fetch(&e, 3 * HOURS + 600, e.ip, BOTO3);
    w.call(
        &e,
        3 * HOURS + 700,
        NAT,
        ("s3.amazonaws.com", "ListBuckets"),
        json!({}),
    );
    assert_exactly(&w, &[("use_without_fetch", "medium", &e.arn())]);
}

// ---------------------------------------------------------------------------------------------
// One role as both the task role and the execution role

fn shared_role() -> (World, Task) {
    let mut w = World::default();
    w.nat("us-east-1", NAT);
    w.audit_from = 0;
    let mut tasks = Vec::new();
    for (n, ip) in [(90, "172.17.0.2"), (91, "172.17.0.3"), (92, "172.17.0.4")] {
        w.task(n, "legacy", Some(10), ip, 600 * i64::from(n - 89), None);
        let t = w.tasks.last_mut().unwrap();
        t.exec_role = t.role.clone();
        let t = t.clone();
        // the agent, with the same role and the task's session name: image pull, the secret
        // injected before the containers start, the log stream
        let role = t.role.clone();
        for (at, event) in [
            (
                t.started - 28,
                ("ecr.amazonaws.com", "GetAuthorizationToken"),
            ),
            (t.started - 25, ("ecr.amazonaws.com", "BatchGetImage")),
            (
                t.started - 8,
                ("secretsmanager.amazonaws.com", "GetSecretValue"),
            ),
            (t.started, ("logs.amazonaws.com", "CreateLogStream")),
        ] {
            w.call_as(&t, &role, at, NAT, event, json!({}));
        }
        let host = t.instance.clone().unwrap();
        w.next_port += 1;
        let line = format!(
            "{} 200 172.17.0.1:{} \"/v2/credentials\" \"Go-http-client/1.1\" {} GetCredentialsExecutionRole 2 prod {host}",
            iso(t.started - 1),
            40000 + w.next_port,
            t.arn()
        );
        w.line(&host, t.started - 1, line);
        w.ordinary(&t, 3 * HOURS, 300, NAT, BOTO3);
        tasks.push(t);
    }
    (w, tasks[0].clone())
}

#[test]
fn one_role_as_task_and_execution_role() {
    let (w, _) = shared_role();
    assert_none(&w);
}

#[test]
fn one_role_as_task_and_execution_role_and_a_key_used_after_the_stop() {
    let (mut w, _) = shared_role();
    let s = w.task(93, "legacy", Some(10), "172.17.0.5", 1200, Some(2 * HOURS));
    {
        let t = w.tasks.last_mut().unwrap();
        t.exec_role = t.role.clone();
    }
    let s = Task {
        exec_role: s.role.clone(),
        ..s
    };
    w.ordinary(&s, 3 * HOURS, 300, NAT, BOTO3);
    w.call(
        &s,
        2 * HOURS + 1200,
        NAT,
        ("ecr.amazonaws.com", "BatchGetImage"),
        json!({}),
    );
    assert_exactly(&w, &[("use_after_stop", "critical", &s.arn())]);
}

// ---------------------------------------------------------------------------------------------
// A host whose collector stopped for a while

/// The real collector (`run_once`, what `credtrail-collector --once` runs) over the host's log
/// directory, publishing into `segments`.
fn collect_once(log_dir: &Path, state: &Path, segments: &Path) {
    let mut c = credtrail_collector::Config::new(log_dir, state);
    c.host = Some("ip-10-0-0-9".into());
    c.segments_dir = Some(segments.to_path_buf());
    c.min_free_mb = 0;
    c.notify = false;
    credtrail_collector::run_once(&c).unwrap();
}

/// Appends the world's pending audit lines (in time order) to `file` and forgets them.
fn flush_audit(w: &mut World, file: &Path) {
    use std::io::Write as _;
    let mut lines: Vec<(i64, String)> = std::mem::take(&mut w.audit)
        .into_values()
        .flatten()
        .collect();
    lines.sort_by_key(|(t, _)| *t);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    for (_, l) in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// World seconds now, by the real clock.
fn world_now() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    unix - BASE.get()
}

fn sleep_until(t: i64) {
    while world_now() < t {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The collector runs for two hours, stops, and is started again a few seconds later; what the
/// agent wrote meanwhile was rolled away and deleted before the collector came back (more rolls
/// than `ECS_LOG_MAX_ROLL_COUNT`). Coverage is recorded by the real clock, so this world starts
/// two hours before the test and waits out its few seconds of outage.
///
/// - `a` started under the collector and fetched then; after the restart it calls with the
///   credentials it still holds, no fetch in the new coverage.
/// - `b` started while the collector was stopped: its fetch is in the deleted file.
/// - `d` fetches right after the restart (its line begins the new coverage).
///
/// Returns the world and the world time the collector came back; [`restart_collector`] runs it
/// again.
fn stopped_collector(dir: &Path) -> (World, i64) {
    BASE.set(world_now() + BASE.get() - 2 * HOURS);
    let log_dir = dir.join("log");
    let state = dir.join("collector.duckdb");
    let segments = dir.join("segments");
    std::fs::create_dir_all(&log_dir).unwrap();
    let live = log_dir.join("audit.log");

    let mut w = World::default();
    w.nat("us-east-1", NAT);
    let a = w.task(90, "api", Some(9), "172.17.0.2", 60, None);
    let d = w.task(91, "worker", Some(9), "172.17.0.3", 90, None);
    w.ordinary(&a, 2 * HOURS - 120, 300, NAT, BOTO3);
    w.ordinary(&d, 2 * HOURS - 120, 300, NAT, BOTO3);
    flush_audit(&mut w, &live);
    collect_once(&log_dir, &state, &segments);
    let stopped = world_now();

    // While stopped: `b` starts and fetches; the agent rolls the file and, rolls later, deletes it.
    let b = w.task(92, "billing", Some(9), "172.17.0.4", stopped + 1, None);
    let exec = b.exec_role.clone();
    w.call_as(
        &b,
        &exec,
        b.started - 1,
        "ecs-tasks.amazonaws.com",
        ("ecr.amazonaws.com", "GetAuthorizationToken"),
        json!({}),
    );
    sleep_until(stopped + 3);
    w.fetch(&b, stopped + 2, b.ip, BOTO3);
    flush_audit(&mut w, &live);
    let rolled = log_dir.join("audit.log.2026-01-01-00");
    std::fs::rename(&live, &rolled).unwrap();
    std::fs::remove_file(&rolled).unwrap();

    // Back: the new file's first line is `d`'s refresh.
    let back = stopped + 4;
    w.fetch(&d, back, d.ip, BOTO3);
    w.call(
        &a,
        back + 1,
        NAT,
        ("s3.amazonaws.com", "ListBuckets"),
        json!({}),
    );
    w.call(
        &b,
        back + 1,
        NAT,
        ("s3.amazonaws.com", "ListBuckets"),
        json!({}),
    );
    w.call(
        &d,
        back + 2,
        NAT,
        ("s3.amazonaws.com", "ListBuckets"),
        json!({}),
    );
    (w, back)
}

/// Writes the new file and runs the collector a second time, once `until` has passed.
fn restart_collector(w: &mut World, dir: &Path, until: i64) {
    let log_dir = dir.join("log");
    flush_audit(w, &log_dir.join("audit.log"));
    sleep_until(until + 1);
    collect_once(
        &log_dir,
        &dir.join("collector.duckdb"),
        &dir.join("segments"),
    );
    w.segments.push(dir.join("segments"));
}

#[test]
fn a_host_whose_collector_stopped_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, back) = stopped_collector(dir.path());
    restart_collector(&mut w, dir.path(), back + 2);
    assert_none(&w);
}

#[test]
fn a_host_whose_collector_stopped_and_a_new_tasks_key_used_without_a_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, back) = stopped_collector(dir.path());
    // a second worker, started inside the new coverage: its credentials are used, and it never
    // fetched them (its role's other task did, so the role is not unused)
    let c = w.task(93, "worker", Some(9), "172.17.0.5", back + 1, None);
    let exec = c.exec_role.clone();
    w.call_as(
        &c,
        &exec,
        c.started - 1,
        "ecs-tasks.amazonaws.com",
        ("ecr.amazonaws.com", "GetAuthorizationToken"),
        json!({}),
    );
    w.call(
        &c,
        back + 3,
        NAT,
        ("sts.amazonaws.com", "GetCallerIdentity"),
        json!({}),
    );
    restart_collector(&mut w, dir.path(), back + 3);
    assert_exactly(&w, &[("use_without_fetch", "medium", &c.arn())]);
}
