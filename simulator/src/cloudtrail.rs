//! CloudTrail as a trail delivers it to S3 (formats.md §3–4):
//! `cloudtrail/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16>.json.gz`,
//! each a gzip'd `{"Records":[…]}`.
//!
//! Work is split by the hour in which events happen; each hour draws from its own random streams
//! and writes its own files, so the bytes do not depend on how hours are spread over threads.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::calls::{
    AGENT_USER_AGENT, Api, Client, DOCKER_USER_AGENT, HEALTHCHECK_USER_AGENT, Lang, Mode, Profile,
};
use super::clients::{client_calls, proc_calls};
use super::clock;
use super::cluster::{
    Call, CallError, HEALTHCHECK_PERIOD, Network, REGIONS, Src, Task, Who, World, healthcheck_base,
    healthcheck_run,
};
use super::iam::{Resources, resources};
use super::rng::{KEY_ALPHABET, Rng, stream, write_uuid};

/// Most records in one delivered file.
const MAX_RECORDS_PER_FILE: usize = 5000;
/// CloudTrail delivers about every five minutes.
const WINDOW: i64 = 300;
const LATE_PROBABILITY: f64 = 0.002;
const DUPLICATE_PROBABILITY: f64 = 0.0003;
const S3_MISSING_KEY_PROBABILITY: f64 = 0.002;

/// What the CloudTrail writer produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records written, duplicates included.
    pub records: u64,
    pub files: u64,
    /// Records delivered a second time in a later file (same eventID).
    pub duplicates: u64,
    /// Records delivered 30–90 minutes late.
    pub late: u64,
    pub bytes: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.records += o.records;
        self.files += o.files;
        self.duplicates += o.duplicates;
        self.late += o.late;
        self.bytes += o.bytes;
    }
}

/// What each role's sessions really did, whether or not the trail logged it: (role index, IAM
/// action) of every call of a task or execution role that was not refused. The ground truth an
/// `unused` verdict is checked against (a trail that excludes a source must not make a used
/// action look unused).
pub type UsedActions = BTreeSet<(u32, &'static str)>;

/// Data shared by every hour: resolved names, JSON-escaped user agents.
struct Pre {
    res: Vec<Resources>,
    uas: Vec<String>,
    ua_health: u16,
    ua_agent: u16,
    ua_docker: u16,
    ua_awslogs: u16,
    ua_console: u16,
    ua_ci: u16,
    ua_lambda: u16,
    /// Call user agent per (client, API service) as index into `uas`.
    call_ua: Vec<(Lang, &'static str, u16)>,
    layers: Vec<Vec<String>>,
}

impl Pre {
    fn intern(&mut self, s: &str) -> u16 {
        if let Some(i) = self.uas.iter().position(|u| u == s) {
            return i as u16;
        }
        self.uas.push(s.to_string());
        (self.uas.len() - 1) as u16
    }

    fn call_ua(&self, lang: Lang, service: &str) -> u16 {
        self.call_ua
            .iter()
            .find(|(l, s, _)| *l == lang && *s == service)
            .map_or(0, |x| x.2)
    }
}

fn all_apis(c: &Client) -> Vec<Api> {
    let mut v: Vec<Api> = c.boot.to_vec();
    v.extend(c.steady.iter().map(|s| s.0));
    let follow: Vec<Api> = v
        .iter()
        .filter_map(|a| a.follow_up().map(|f| f.0))
        .collect();
    v.extend(follow);
    v
}

fn prepare(w: &World) -> Pre {
    let mut pre = Pre {
        res: (0..w.services.len()).map(|s| resources(w, s)).collect(),
        uas: w.user_agents.clone(),
        ua_health: 0,
        ua_agent: 0,
        ua_docker: 0,
        ua_awslogs: 0,
        ua_console: 0,
        ua_ci: 0,
        ua_lambda: 0,
        call_ua: Vec::new(),
        layers: Vec::new(),
    };
    pre.ua_health = pre.intern(HEALTHCHECK_USER_AGENT);
    pre.ua_agent = pre.intern(AGENT_USER_AGENT);
    pre.ua_docker = pre.intern(DOCKER_USER_AGENT);
    pre.ua_awslogs = pre.intern("aws-sdk-go/1.44.327 (go1.21.13; linux; amd64) Docker/25.0.6");
    pre.ua_console = pre.intern("AWS Internal");
    pre.ua_ci = pre.intern("aws-cli/2.22.4 md/awscrt#0.22.0 ua/2.0 os/linux#6.8.0-1017-azure md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#ecs.update-service");
    pre.ua_lambda =
        pre.intern("aws-sdk-nodejs/2.1692.0 linux/v20.18.0 exec-env/AWS_Lambda_nodejs20.x promise");
    let mut profiles: Vec<Profile> = Profile::TEMPLATES.to_vec();
    profiles.push(Profile::Migration);
    for p in profiles {
        for c in p.behavior().clients {
            for api in all_apis(c) {
                let svc = api.spec().service;
                if !pre
                    .call_ua
                    .iter()
                    .any(|(l, s, _)| *l == c.lang && *s == svc)
                {
                    let ua = c.lang.call_user_agent(svc);
                    let i = pre.intern(&ua);
                    pre.call_ua.push((c.lang, svc, i));
                }
            }
        }
    }
    for (i, _) in w.taskdefs.iter().enumerate() {
        let mut rng = Rng::derive(w.seed, &[stream::ECS, i as u64, 7]);
        let n = rng.range(3, 7);
        pre.layers
            .push((0..n).map(|_| format!("sha256:{}", rng.hex(64))).collect());
    }
    pre
}

/// Write every CloudTrail file under `out` (the `cloudtrail/` directory); also returns what the
/// roles really used, logged or not.
pub fn write(w: &World, out: &Path, threads: usize) -> Result<(Stats, UsedActions)> {
    let pre = prepare(w);
    let used: Mutex<UsedActions> = Mutex::new(UsedActions::new());
    let hours = w.hours as usize;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Stats>>>> = Mutex::new((0..hours).map(|_| None).collect());
    let threads = threads.clamp(1, hours.max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut dirs = BTreeSet::new();
                loop {
                    let h = next.fetch_add(1, Ordering::Relaxed);
                    if h >= hours {
                        break;
                    }
                    let r = write_hour(w, &pre, out, h as u32, &mut dirs, &used);
                    let failed = r.is_err();
                    if let Ok(mut v) = results.lock() {
                        v[h] = Some(r);
                    }
                    if failed {
                        next.store(hours, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("a CloudTrail writer thread panicked"))?;
    let mut total = Stats::default();
    for r in results.into_iter().flatten() {
        total.add(r?);
    }
    let used = used
        .into_inner()
        .map_err(|_| anyhow!("a CloudTrail writer thread panicked"))?;
    Ok((total, used))
}

/// One delivery of a record.
struct Delivery {
    region: u8,
    window: i64,
    call: u32,
}

fn write_hour(
    w: &World,
    pre: &Pre,
    out: &Path,
    h: u32,
    dirs: &mut BTreeSet<PathBuf>,
    used: &Mutex<UsedActions>,
) -> Result<Stats> {
    let (calls, hour_used) = generate_hour(w, pre, h);
    if let Ok(mut u) = used.lock() {
        u.extend(hour_used);
    }
    let mut rng = Rng::derive(w.seed, &[stream::HOUR, u64::from(h)]);
    let mut stats = Stats::default();
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(calls.len() + calls.len() / 1000);
    for (i, c) in calls.iter().enumerate() {
        let mut delay = rng.range(150, 700);
        if rng.chance(LATE_PROBABILITY) {
            delay += rng.range(1800, 5400);
            stats.late += 1;
        }
        let window = ((c.time + delay) / WINDOW + 1) * WINDOW;
        deliveries.push(Delivery {
            region: c.region,
            window,
            call: i as u32,
        });
        if rng.chance(DUPLICATE_PROBABILITY) {
            deliveries.push(Delivery {
                region: c.region,
                window: window + WINDOW * rng.range(1, 12),
                call: i as u32,
            });
            stats.duplicates += 1;
        }
    }
    deliveries.sort_by_key(|d| {
        let c = &calls[d.call as usize];
        (d.region, d.window, c.time, c.id)
    });
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut i = 0;
    let mut file_no = 0u64;
    while i < deliveries.len() {
        let (region, window) = (deliveries[i].region, deliveries[i].window);
        let mut j = i;
        while j < deliveries.len()
            && deliveries[j].region == region
            && deliveries[j].window == window
            && j - i < MAX_RECORDS_PER_FILE
        {
            j += 1;
        }
        let mut frng = Rng::derive(
            w.seed,
            &[
                stream::FILES,
                u64::from(h),
                u64::from(region),
                window as u64,
                file_no,
            ],
        );
        file_no += 1;
        let delivered = window + frng.range(0, 240);
        let region_name = REGIONS[region as usize];
        let dir = out
            .join("AWSLogs")
            .join(&w.account)
            .join("CloudTrail")
            .join(region_name)
            .join(clock::date_path(delivered));
        if !dirs.contains(&dir) {
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dirs.insert(dir.clone());
        }
        let name = format!(
            "{}_CloudTrail_{region_name}_{}_{}.json.gz",
            w.account,
            clock::compact_minute(delivered),
            frng.chars(super::rng::ALNUM, 16)
        );
        let path = dir.join(name);
        let file =
            fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut gz = GzEncoder::new(BufWriter::with_capacity(1 << 16, file), Compression::fast());
        buf.clear();
        buf.extend_from_slice(b"{\"Records\":[");
        for (n, d) in deliveries[i..j].iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            render(w, pre, &calls[d.call as usize], &mut buf);
            if buf.len() > 1 << 16 {
                gz.write_all(&buf)
                    .with_context(|| format!("writing {}", path.display()))?;
                buf.clear();
            }
        }
        buf.extend_from_slice(b"]}");
        gz.write_all(&buf)
            .with_context(|| format!("writing {}", path.display()))?;
        let inner = gz
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        let file = inner
            .into_inner()
            .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error()))?;
        stats.bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        stats.files += 1;
        stats.records += (j - i) as u64;
        i = j;
    }
    Ok(stats)
}

struct Gen<'a> {
    w: &'a World,
    pre: &'a Pre,
    rng: Rng,
    out: Vec<Call>,
    hs: i64,
    he: i64,
}

impl Gen<'_> {
    fn in_hour(&self, t: i64) -> bool {
        self.hs <= t && t < self.he
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per CloudTrail field"
    )]
    fn push(
        &mut self,
        time: i64,
        region: u8,
        who: Who,
        api: Api,
        src: Src,
        vpce: u16,
        ua: u16,
        err: Option<CallError>,
        task: u32,
    ) {
        let res = self.rng.next_u64() as u32;
        let id = self.rng.u128();
        let req = self.rng.u128();
        self.out.push(Call {
            time,
            region,
            who,
            api,
            src,
            vpce,
            ua,
            err,
            task,
            res,
            id,
            req,
        });
    }

    /// A task's own call (and what AWS then does on its behalf).
    fn task_call(&mut self, ti: usize, key: u32, api: Api, t: i64, ua: u16) {
        let task = &self.w.tasks[ti];
        let (src, vpce) = self.w.route(ti, api);
        let region = self.w.call_region(task.cluster, api);
        let err = (api == Api::S3GetObject && self.rng.chance(S3_MISSING_KEY_PROBABILITY))
            .then_some(CallError::S3AccessDenied);
        self.push(t, region, Who::Key(key), api, src, vpce, ua, err, ti as u32);
        if err.is_none()
            && let Some((f, by)) = api.follow_up()
        {
            let region = self.w.call_region(task.cluster, f);
            self.push(
                t,
                region,
                Who::Key(key),
                f,
                Src::Service(by),
                0,
                ua,
                None,
                ti as u32,
            );
        }
    }
}

fn generate_hour(w: &World, pre: &Pre, h: u32) -> (Vec<Call>, UsedActions) {
    let hs = w.start + i64::from(h) * 3600;
    let he = hs + 3600;
    let mut g = Gen {
        w,
        pre,
        rng: Rng::derive(w.seed, &[stream::HOUR, u64::from(h), 1]),
        out: Vec::new(),
        hs,
        he,
    };
    // ECS assuming task and execution roles.
    for (k, key) in w.keys.iter().enumerate() {
        if g.in_hour(key.issued) {
            let region = w.clusters[w.tasks[key.task as usize].cluster].region;
            g.out.push(Call {
                time: key.issued,
                region,
                who: Who::EcsTasks(k as u32),
                api: Api::StsAssumeRole,
                src: Src::Service("ecs-tasks.amazonaws.com"),
                vpce: 0,
                ua: 0,
                err: None,
                task: key.task,
                res: 0,
                id: key.event_id,
                req: key.request_id,
            });
        }
    }
    for (ti, task) in w.tasks.iter().enumerate() {
        let created = task.created_ms / 1000;
        let gone = task.stopped().map_or(i64::MAX, |s| s + 120);
        if created >= he || gone < hs {
            continue;
        }
        g.rng = Rng::derive(w.seed, &[stream::TASK_CALLS, ti as u64, u64::from(h)]);
        lifecycle_calls(&mut g, ti, task);
        app_calls(&mut g, ti, task);
    }
    host_calls(&mut g);
    noise(&mut g);
    for c in &w.attack_calls {
        if g.in_hour(c.time) {
            g.out.push(c.clone());
        }
    }
    let mut used = UsedActions::new();
    for c in &g.out {
        if let (Who::Key(k), None) = (c.who, c.err) {
            used.insert((w.keys[k as usize].role, c.api.iam_action()));
        }
    }
    // What the trail does not log never reaches its files.
    g.out.retain(|c| logged(w, pre, c));
    (g.out, used)
}

fn lifecycle_calls(g: &mut Gen, ti: usize, task: &Task) {
    let w = g.w;
    let region = w.clusters[task.cluster].region;
    let host = task.host;
    // A Fargate task's image pulls, logs and secrets leave through its own ENI (its public IP
    // when it has one); on EC2 the agent and Docker call from the instance, through the NAT.
    let nat = if task.fargate {
        w.egress_ip(ti)
    } else {
        w.nat_ip(host)
    };
    let td = &w.taskdefs[task.taskdef];
    let exec0 = task.exec_keys.first().copied();
    let pull = task.pull_started_ms / 1000;
    if let Some(k) = exec0 {
        // The agent pulls the image with the execution role, then Docker's awslogs driver
        // creates the log streams with it.
        if g.in_hour(pull) {
            g.push(
                pull,
                region,
                Who::Key(k),
                Api::EcrGetAuthorizationToken,
                Src::Ip(nat),
                0,
                g.pre.ua_agent,
                None,
                ti as u32,
            );
            g.push(
                pull + 1,
                region,
                Who::Key(k),
                Api::EcrBatchGetImage,
                Src::Ip(nat),
                0,
                g.pre.ua_docker,
                None,
                ti as u32,
            );
            let layers = g.pre.layers[task.taskdef].len();
            let span = (task.pull_stopped_ms - task.pull_started_ms) / 1000;
            for l in 0..layers {
                let t = pull + 1 + (span * l as i64) / layers.max(1) as i64;
                g.push(
                    t,
                    region,
                    Who::Key(k),
                    Api::EcrGetDownloadUrlForLayer,
                    Src::Ip(nat),
                    0,
                    g.pre.ua_docker,
                    None,
                    (ti as u32) | ((l as u32) << 24),
                );
            }
            if td.containers.iter().any(|c| c.secrets) {
                let vpce = w.endpoint_for(task.cluster, "secretsmanager");
                let src = if vpce != 0 && task.fargate {
                    Src::Ip(w.private_ip(ti))
                } else if vpce != 0 {
                    Src::Ip(w.hosts[host].private_ip)
                } else {
                    Src::Ip(nat)
                };
                g.push(
                    task.pull_stopped_ms / 1000,
                    region,
                    Who::Key(k),
                    Api::SmGetSecretValue,
                    src,
                    vpce,
                    g.pre.ua_agent,
                    None,
                    ti as u32,
                );
            }
        }
        // Docker's awslogs driver creates each container's log stream as it creates the
        // container: after the pull, no later than startedAt.
        for (ci, _) in task.containers.iter().enumerate() {
            let t = (task.pull_stopped_ms.div_euclid(1000) + ci as i64).min(task.started());
            if g.in_hour(t) {
                g.push(
                    t,
                    region,
                    Who::Key(k),
                    Api::LogsCreateLogStream,
                    Src::Ip(nat),
                    0,
                    g.pre.ua_awslogs,
                    None,
                    (ti as u32) | ((ci as u32) << 24),
                );
            }
        }
    }
    // Athena finishing the last query of a report run after the task stopped: it reads the
    // table with the task's session on its behalf (`invokedBy`), minutes after stoppedAt.
    if task.profile == Profile::ReportBuilder
        && let Some(stopped) = task.stopped()
        && let Some(key) = w.latest_key(&task.task_keys, task.last_call)
    {
        let mut rng = Rng::derive(w.seed, &[stream::TASK_CALLS, ti as u64, u64::MAX - 1]);
        let t = stopped + rng.range(60, 900);
        if g.in_hour(t) {
            g.push(
                t,
                region,
                Who::Key(key),
                Api::GlueGetTable,
                Src::Service("athena.amazonaws.com"),
                0,
                0,
                None,
                ti as u32,
            );
        }
    }
    // The ECS service-linked role managing the task's ENI.
    if td.network == Network::Awsvpc {
        let created = task.created_ms / 1000;
        let mut ev = vec![
            (created, Api::Ec2CreateNetworkInterface),
            (created + 1, Api::Ec2AttachNetworkInterface),
        ];
        if let Some(s) = task.stopped() {
            ev.push((s + 20, Api::Ec2DeleteNetworkInterface));
        }
        for (t, api) in ev {
            if g.in_hour(t) {
                g.push(
                    t,
                    region,
                    Who::EcsServiceLinked,
                    api,
                    Src::Service("ecs.amazonaws.com"),
                    0,
                    0,
                    None,
                    ti as u32,
                );
            }
        }
    }
    // The agent reporting state changes with the instance role (Fargate's agent is AWS's own).
    let mut ev = vec![(task.started() + 1, 0u32)];
    if let Some(s) = task.stopped() {
        ev.push((s + 1, 1));
    }
    if task.fargate {
        ev.clear();
    }
    for (t, stopped) in ev {
        if g.in_hour(t) {
            g.push(
                t,
                region,
                Who::Instance(host as u32),
                Api::EcsSubmitContainerStateChange,
                Src::Ip(nat),
                0,
                g.pre.ua_agent,
                None,
                ti as u32 | (stopped << 31),
            );
            g.push(
                t,
                region,
                Who::Instance(host as u32),
                Api::EcsSubmitTaskStateChange,
                Src::Ip(nat),
                0,
                g.pre.ua_agent,
                None,
                ti as u32 | (stopped << 31),
            );
        }
    }
}

fn app_calls(g: &mut Gen, ti: usize, task: &Task) {
    let w = g.w;
    let b = task.profile.behavior();
    if !b.uses_aws || task.task_keys.is_empty() {
        return;
    }
    let h = (g.hs - w.start) / 3600;
    // Cached processes: boot calls right after the first fetch, then their steady calls, each
    // signed with the key the process holds (JS v3 refreshes in the background, so the call
    // that triggers a refresh still carries the old key).
    for (pi, &(c, p)) in task.proc_ids.iter().enumerate() {
        let client = &b.clients[c as usize];
        let Some(&(first, key)) = task.procs[pi].first() else {
            continue;
        };
        // Calls trail their first fetch by at least two seconds, so a host clock off by one
        // second never makes a call look earlier than the fetch that preceded it.
        for (j, &api) in client.boot.iter().enumerate() {
            let t = first + 2 + j as i64;
            if g.in_hour(t) && t <= task.last_call {
                let ua = g.pre.call_ua(client.lang, api.spec().service);
                g.task_call(ti, key, api, t, ua);
            }
        }
        let a = g.hs.max(first + 2);
        let z = g.he.min(task.last_call + 1);
        if a >= z {
            continue;
        }
        let background = client.lang.refreshes_in_background();
        for (ts, api) in proc_calls(w, ti, c as usize, p as usize, h) {
            if ts < a || ts >= z {
                continue;
            }
            if task
                .lost
                .iter()
                .any(|&(lp, from, to)| lp as usize == pi && from <= ts && ts < to)
            {
                continue;
            }
            let probe = if background { ts - 1 } else { ts };
            if let Some(key) = task.key_at(pi, probe) {
                let ua = g.pre.call_ua(client.lang, api.spec().service);
                g.task_call(ti, key, api, ts, ua);
            }
        }
    }
    // Per-call and loop clients: each call fetched one second before; none while the agent failed.
    for (c, client) in b.clients.iter().enumerate() {
        if matches!(client.mode, Mode::Cached { .. }) {
            continue;
        }
        for (ts, api) in client_calls(w, ti, c, h) {
            if w.fault_at(w.agent_host(ti), ts - 1).is_some() {
                continue;
            }
            if let Some(key) = w.latest_key(&task.task_keys, ts - 1) {
                let ua = g.pre.call_ua(client.lang, api.spec().service);
                g.task_call(ti, key, api, ts, ua);
            }
        }
    }
    if b.healthcheck {
        let base = healthcheck_base(task);
        let mut k = ((g.hs - base) / HEALTHCHECK_PERIOD - 1).max(0);
        loop {
            let run = healthcheck_run(w.seed, ti, base, k);
            if run >= g.he || run >= task.last_call {
                break;
            }
            let t = run + 2;
            if g.in_hour(t)
                && t <= task.last_call
                && w.fault_at(w.agent_host(ti), run).is_none()
                && let Some(key) = w.latest_key(&task.task_keys, run)
            {
                let (src, vpce) = w.route(ti, Api::StsGetCallerIdentity);
                let region = w.clusters[task.cluster].region;
                g.push(
                    t,
                    region,
                    Who::Key(key),
                    Api::StsGetCallerIdentity,
                    src,
                    vpce,
                    g.pre.ua_health,
                    None,
                    ti as u32,
                );
            }
            k += 1;
        }
    }
}

fn host_calls(g: &mut Gen) {
    let w = g.w;
    for (hi, host) in w.hosts.iter().enumerate() {
        let mut rng = Rng::derive(
            w.seed,
            &[stream::NOISE, hi as u64, u64::from((g.hs - w.start) as u32)],
        );
        let region = w.clusters[host.cluster].region;
        let nat = w.nat_ip(hi);
        let mut t = g.hs as f64 + rng.exp(1200.0);
        while (t as i64) < g.he {
            g.push(
                t as i64,
                region,
                Who::Instance(hi as u32),
                Api::EcsDiscoverPollEndpoint,
                Src::Ip(nat),
                0,
                g.pre.ua_agent,
                None,
                u32::MAX,
            );
            t += rng.exp(1200.0);
        }
    }
}

fn noise(g: &mut Gen) {
    let w = g.w;
    let mut rng = Rng::derive(w.seed, &[stream::NOISE, u64::MAX, g.hs as u64]);
    let c0 = w.clusters[0].region;
    // An operator in the console.
    if rng.chance(0.35) {
        let mut t = g.hs + rng.range(0, 3000);
        let office = Src::Ip(w.office_ip);
        g.push(
            t,
            0,
            Who::Alice,
            Api::ConsoleLogin,
            office,
            0,
            g.pre.ua_console,
            None,
            u32::MAX,
        );
        let n = rng.range(5, 25);
        for _ in 0..n {
            t += rng.range(3, 40);
            if t >= g.he {
                break;
            }
            let api = *rng.pick(&[
                Api::EcsListTasks,
                Api::EcsDescribeTasks,
                Api::EcsDescribeServices,
                Api::CloudTrailLookupEvents,
                Api::IamListRoles,
                Api::IamGetRole,
                Api::Ec2DescribeInstances,
                Api::LambdaListFunctions,
            ]);
            let err = (api == Api::LambdaListFunctions).then_some(CallError::AccessDenied);
            let region = if api.spec().global { 0 } else { c0 };
            g.push(
                t,
                region,
                Who::Alice,
                api,
                office,
                0,
                g.pre.ua_console,
                err,
                u32::MAX,
            );
        }
    }
    // The thumbnailer Lambda function reading and writing objects.
    let slot = ((g.hs - w.start) / 3600) as u32;
    let mut t = g.hs as f64 + rng.exp(30.0);
    while (t as i64) < g.he {
        let ts = t as i64;
        g.push(
            ts,
            0,
            Who::Lambda(slot),
            Api::S3GetObject,
            Src::Ip(w.lambda_ip),
            0,
            g.pre.ua_lambda,
            None,
            u32::MAX,
        );
        g.push(
            ts + 1,
            0,
            Who::Lambda(slot),
            Api::S3PutObject,
            Src::Ip(w.lambda_ip),
            0,
            g.pre.ua_lambda,
            None,
            u32::MAX,
        );
        t += rng.exp(30.0);
    }
    // CI deploying new task definitions.
    for (d, dep) in w.deploys.iter().enumerate() {
        let region = w.clusters[w.services[dep.service].cluster].region;
        let src = Src::Ip(dep.runner_ip);
        let d32 = d as u32;
        let mut ev = vec![
            (
                dep.time,
                0u8,
                Who::CiWebIdentity(d32),
                Api::StsAssumeRoleWithWebIdentity,
            ),
            (
                dep.time + 20,
                region,
                Who::Ci(d32),
                Api::EcsRegisterTaskDefinition,
            ),
            (dep.time + 40, region, Who::Ci(d32), Api::EcsUpdateService),
        ];
        for k in 0..30 {
            ev.push((
                dep.time + 55 + 15 * k,
                region,
                Who::Ci(d32),
                Api::EcsDescribeServices,
            ));
        }
        for (t, region, who, api) in ev {
            if g.in_hour(t) {
                g.push(
                    t,
                    region,
                    who,
                    api,
                    src,
                    0,
                    g.pre.ua_ci,
                    None,
                    dep.service as u32,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

#[inline]
fn lit(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

/// A JSON string (with quotes), escaping what JSON requires.
fn jstr(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b'"');
    lit(out, name);
    lit(out, "\":");
    jstr(out, value);
}

fn uuid(out: &mut Vec<u8>, v: u128) {
    out.push(b'"');
    write_uuid(v, out);
    out.push(b'"');
}

fn time(out: &mut Vec<u8>, t: i64) {
    out.push(b'"');
    clock::rfc3339(t, out);
    out.push(b'"');
}

fn ip(out: &mut Vec<u8>, v: u32) {
    let [a, b, c, d] = v.to_be_bytes();
    let _ = write!(out, "\"{a}.{b}.{c}.{d}\"");
}

/// An IPv6 source as CloudTrail writes it: eight groups, no `::` compression.
fn ip6(out: &mut Vec<u8>, v: u128) {
    let g = std::net::Ipv6Addr::from(v).segments();
    let _ = write!(
        out,
        "\"{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}\"",
        g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]
    );
}

fn hex_upper(out: &mut Vec<u8>, mut v: u64, n: usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for _ in 0..n {
        out.push(HEX[(v & 0xf) as usize]);
        v >>= 4;
    }
}

/// The session and role names behind a `Who::Key` call.
fn session_of(w: &World, key: u32) -> (&str, &str) {
    let k = &w.keys[key as usize];
    (&w.roles[k.role as usize].name, &w.tasks[k.task as usize].id)
}

fn derived_key(seed: u64, ids: &[u64]) -> String {
    let mut r = Rng::derive(seed, ids);
    format!("ASIA{}", r.chars(KEY_ALPHABET, 16))
}

fn derived_role_id(w: &World, role: usize) -> &str {
    &w.roles[role].id
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per CloudTrail field"
)]
fn assumed(
    out: &mut Vec<u8>,
    w: &World,
    role: usize,
    session: &str,
    key: &str,
    created: i64,
    ec2: bool,
    invoked_by: Option<&str>,
) {
    let r = &w.roles[role];
    lit(out, "{\"type\":\"AssumedRole\",\"principalId\":\"");
    lit(out, derived_role_id(w, role));
    out.push(b':');
    lit(out, session);
    lit(out, "\",\"arn\":\"arn:aws:sts::");
    lit(out, &w.account);
    lit(out, ":assumed-role/");
    lit(out, &r.name);
    out.push(b'/');
    lit(out, session);
    lit(out, "\",\"accountId\":\"");
    lit(out, &w.account);
    lit(out, "\",\"accessKeyId\":\"");
    lit(out, key);
    lit(
        out,
        "\",\"sessionContext\":{\"sessionIssuer\":{\"type\":\"Role\",\"principalId\":\"",
    );
    lit(out, &r.id);
    lit(out, "\",\"arn\":\"");
    lit(out, &r.arn);
    lit(out, "\",\"accountId\":\"");
    lit(out, &w.account);
    lit(out, "\",\"userName\":\"");
    lit(out, &r.name);
    lit(out, "\"},\"attributes\":{\"creationDate\":");
    time(out, created);
    lit(out, ",\"mfaAuthenticated\":\"false\"}");
    if ec2 {
        lit(out, ",\"ec2RoleDelivery\":\"2.0\"");
    }
    out.push(b'}');
    if let Some(by) = invoked_by {
        lit(out, ",\"invokedBy\":");
        jstr(out, by);
    }
    out.push(b'}');
}

fn identity(out: &mut Vec<u8>, w: &World, c: &Call) {
    let invoked_by = match c.src {
        Src::Service(s) => Some(s),
        _ => None,
    };
    match c.who {
        Who::Key(k) => {
            lit(out, &w.keys[k as usize].identity);
            if let Some(by) = invoked_by {
                lit(out, ",\"invokedBy\":");
                jstr(out, by);
            }
            out.push(b'}');
        }
        Who::EcsTasks(_) => {
            lit(
                out,
                "{\"type\":\"AWSService\",\"invokedBy\":\"ecs-tasks.amazonaws.com\"}",
            );
        }
        Who::Instance(h) => {
            let window = (c.time - w.start).div_euclid(6 * 3600);
            let created = w.start + window * 6 * 3600 - 1800;
            let key = derived_key(
                w.seed,
                &[stream::KEYS, u64::MAX - u64::from(h), window as u64],
            );
            assumed(
                out,
                w,
                w.instance_role,
                &w.hosts[h as usize].instance_id,
                &key,
                created,
                true,
                None,
            );
        }
        Who::EcsServiceLinked => {
            let hour = (c.time - w.start).div_euclid(3600);
            let key = derived_key(w.seed, &[stream::KEYS, u64::MAX - 100_000, hour as u64]);
            assumed(
                out,
                w,
                w.service_linked_role,
                "ecs-service-scheduler",
                &key,
                w.start + hour * 3600,
                false,
                invoked_by,
            );
        }
        Who::Alice => {
            lit(out, "{\"type\":\"IAMUser\",\"principalId\":\"");
            lit(out, &w.alice_id);
            lit(out, "\",\"arn\":\"arn:aws:iam::");
            lit(out, &w.account);
            lit(out, ":user/ops-alice\",\"accountId\":\"");
            lit(out, &w.account);
            if c.api != Api::ConsoleLogin {
                lit(out, "\",\"accessKeyId\":\"");
                lit(out, &w.alice_key);
            }
            lit(out, "\",\"userName\":\"ops-alice\"}");
        }
        Who::Ci(d) => {
            let dep = &w.deploys[d as usize];
            let key = derived_key(w.seed, &[stream::KEYS, u64::MAX - 200_000, u64::from(d)]);
            assumed(
                out,
                w,
                w.ci_role,
                "GitHubActions",
                &key,
                dep.time,
                false,
                None,
            );
        }
        Who::CiWebIdentity(d) => {
            let dep = &w.deploys[d as usize];
            let repo = &w.services[dep.service].name;
            let _ = write!(
                out,
                "{{\"type\":\"WebIdentityUser\",\"principalId\":\"arn:aws:iam::{a}:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:acme/{repo}:ref:refs/heads/main\",\"userName\":\"repo:acme/{repo}:ref:refs/heads/main\",\"identityProvider\":\"arn:aws:iam::{a}:oidc-provider/token.actions.githubusercontent.com\"}}",
                a = w.account
            );
        }
        Who::Lambda(slot) => {
            let key = derived_key(w.seed, &[stream::KEYS, u64::MAX - 300_000, u64::from(slot)]);
            assumed(
                out,
                w,
                w.lambda_role,
                "thumbnailer",
                &key,
                w.start + i64::from(slot) * 3600 - 600,
                false,
                None,
            );
        }
    }
}

fn task_of(c: &Call) -> Option<usize> {
    (c.task != u32::MAX).then_some((c.task & 0x00ff_ffff) as usize)
}

fn object_key(out: &mut Vec<u8>, w: &World, c: &Call, profile: Option<Profile>) {
    let d = clock::civil(c.time);
    let prefix = match profile {
        Some(Profile::OrdersApi) => "config/orders-api",
        Some(Profile::CatalogApi) => "assets/catalog",
        Some(Profile::OrdersWorker) => "orders",
        Some(Profile::MediaWorker) => "renditions",
        Some(Profile::ReportBuilder) => "reports/daily",
        _ => "thumbnails",
    };
    lit(out, prefix);
    let _ = write!(out, "/{:04}/{:02}/{:02}/", d.year, d.month, d.day);
    let mut r = Rng::derive(w.seed, &[u64::from(c.res)]);
    let _ = write!(out, "{:016x}.json", r.next_u64());
}

fn s3_names(w: &World, pre: &Pre, c: &Call) -> (String, Option<Profile>) {
    match task_of(c) {
        Some(t) => {
            let s = w.tasks[t].service;
            (pre.res[s].bucket.clone(), Some(w.tasks[t].profile))
        }
        None => (format!("acme-thumbnails-{}", w.account), None),
    }
}

fn error_message(out: &mut Vec<u8>, w: &World, c: &Call, err: CallError) {
    let (code, prefix) = match err {
        CallError::AccessDenied => ("AccessDenied", ""),
        CallError::UnauthorizedOperation => (
            "Client.UnauthorizedOperation",
            "You are not authorized to perform this operation. ",
        ),
        CallError::S3AccessDenied => {
            lit(
                out,
                ",\"errorCode\":\"AccessDenied\",\"errorMessage\":\"Access Denied\"",
            );
            return;
        }
    };
    let who = match c.who {
        Who::Key(k) => {
            let (role, session) = session_of(w, k);
            format!("arn:aws:sts::{}:assumed-role/{role}/{session}", w.account)
        }
        Who::Alice => format!("arn:aws:iam::{}:user/ops-alice", w.account),
        _ => format!("arn:aws:iam::{}:root", w.account),
    };
    let action = c.api.iam_action();
    let resource = match c.api.spec().service {
        "iam" => format!("arn:aws:iam::{}:role/", w.account),
        "ec2" => "*".to_string(),
        "lambda" => format!(
            "arn:aws:lambda:{}:{}:function:*",
            REGIONS[c.region as usize], w.account
        ),
        _ => "*".to_string(),
    };
    lit(out, ",\"errorCode\":\"");
    lit(out, code);
    lit(out, "\",\"errorMessage\":");
    jstr(
        out,
        &format!(
            "{prefix}User: {who} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
        ),
    );
}

fn session_token(out: &mut Vec<u8>, seed: u128) {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut r = Rng::derive(seed as u64, &[(seed >> 64) as u64]);
    lit(out, "\"IQoJb3JpZ2luX2VjE");
    for _ in 0..380 {
        out.push(B64[r.below(64) as usize]);
    }
    lit(out, "==\"");
}

/// Request parameters, response elements, extra data and resources of one call.
fn body(out: &mut Vec<u8>, w: &World, pre: &Pre, c: &Call) -> (bool, Option<Vec<u8>>) {
    // Returns (wrote additionalEventData, resources JSON).
    let acct = &w.account;
    let region = REGIONS[c.region as usize];
    let task = task_of(c);
    let res = task.map(|t| &pre.res[w.tasks[t].service]);
    let mut resources: Option<Vec<u8>> = None;
    let mut extra = false;
    lit(out, ",\"requestParameters\":");
    match c.api {
        Api::S3GetObject | Api::S3PutObject | Api::S3HeadObject | Api::S3DeleteObject => {
            let (bucket, profile) = s3_names(w, pre, c);
            let mut key = Vec::with_capacity(64);
            object_key(&mut key, w, c, profile);
            let key = String::from_utf8(key).unwrap_or_default();
            lit(out, "{\"bucketName\":");
            jstr(out, &bucket);
            let _ = write!(
                out,
                ",\"Host\":\"{bucket}.s3.{region}.amazonaws.com\",\"key\":"
            );
            jstr(out, &key);
            out.push(b'}');
            lit(out, ",\"responseElements\":");
            if c.api == Api::S3PutObject && c.err.is_none() {
                lit(
                    out,
                    "{\"x-amz-server-side-encryption\":\"aws:kms\",\"x-amz-server-side-encryption-aws-kms-key-id\":",
                );
                match res {
                    Some(r) => jstr(out, &r.key_arn),
                    None => lit(out, "\"alias/aws/s3\""),
                }
                out.push(b'}');
            } else {
                lit(out, "null");
            }
            let mut r = Rng::derive(u64::from(c.res), &[3]);
            let (bin, bout) = match c.api {
                Api::S3PutObject => (r.range(300, 90_000), 0),
                Api::S3GetObject if c.err.is_none() => (0, r.range(300, 400_000)),
                _ => (0, 0),
            };
            let _ = write!(
                out,
                ",\"additionalEventData\":{{\"SignatureVersion\":\"SigV4\",\"CipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"bytesTransferredIn\":{bin},\"AuthenticationMethod\":\"AuthHeader\",\"x-amz-id-2\":\"{}\",\"bytesTransferredOut\":{bout}}}",
                r.chars(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    76
                )
            );
            extra = true;
            let mut rs = Vec::with_capacity(160);
            let _ = write!(
                rs,
                "[{{\"type\":\"AWS::S3::Object\",\"ARN\":\"arn:aws:s3:::{bucket}/"
            );
            rs.extend_from_slice(key.as_bytes());
            let _ = write!(
                rs,
                "\"}},{{\"accountId\":\"{acct}\",\"type\":\"AWS::S3::Bucket\",\"ARN\":\"arn:aws:s3:::{bucket}\"}}]"
            );
            resources = Some(rs);
            return (extra, resources);
        }
        Api::S3ListBuckets => {
            let _ = write!(out, "{{\"Host\":\"s3.{region}.amazonaws.com\"}}");
        }
        Api::KmsDecrypt
        | Api::KmsGenerateDataKey
        | Api::KmsEncrypt
        | Api::KmsSign
        | Api::KmsVerify
        | Api::KmsGetPublicKey => {
            let key_arn = res.map_or("", |r| r.key_arn.as_str());
            match (c.api, c.src) {
                (Api::KmsDecrypt | Api::KmsGenerateDataKey, Src::Service("s3.amazonaws.com")) => {
                    let (bucket, profile) = s3_names(w, pre, c);
                    lit(out, "{");
                    if c.api == Api::KmsGenerateDataKey {
                        lit(out, "\"keyId\":");
                        jstr(out, key_arn);
                        lit(out, ",\"keySpec\":\"AES_256\",");
                    }
                    let _ = write!(
                        out,
                        "\"encryptionContext\":{{\"aws:s3:arn\":\"arn:aws:s3:::{bucket}/"
                    );
                    object_key(out, w, c, profile);
                    lit(out, "\"}");
                    if c.api == Api::KmsDecrypt {
                        lit(out, ",\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"");
                    }
                    out.push(b'}');
                }
                (Api::KmsDecrypt, Src::Service(_)) => {
                    lit(out, "{\"encryptionContext\":{\"SecretARN\":");
                    jstr(out, res.map_or("", |r| r.secret_arn.as_str()));
                    lit(out, ",\"SecretVersionId\":");
                    uuid(out, u128::from(c.res) << 64 | 0x1234);
                    lit(out, "},\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}");
                }
                (Api::KmsSign | Api::KmsVerify, _) => {
                    lit(out, "{\"keyId\":");
                    jstr(out, key_arn);
                    lit(
                        out,
                        ",\"messageType\":\"DIGEST\",\"signingAlgorithm\":\"RSASSA_PSS_SHA_256\"}",
                    );
                }
                (Api::KmsGetPublicKey, _) => {
                    lit(out, "{\"keyId\":");
                    jstr(out, key_arn);
                    out.push(b'}');
                }
                (Api::KmsGenerateDataKey, _) => {
                    lit(out, "{\"keyId\":");
                    jstr(out, key_arn);
                    lit(out, ",\"keySpec\":\"AES_256\"}");
                }
                _ => {
                    lit(out, "{\"keyId\":");
                    jstr(out, key_arn);
                    lit(out, ",\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}");
                }
            }
            lit(out, ",\"responseElements\":null");
            let mut rs = Vec::with_capacity(120);
            let _ = write!(
                rs,
                "[{{\"accountId\":\"{acct}\",\"type\":\"AWS::KMS::Key\",\"ARN\":\"{key_arn}\"}}]"
            );
            resources = Some(rs);
            return (extra, resources);
        }
        Api::SmGetSecretValue | Api::SmDescribeSecret => {
            lit(out, "{\"secretId\":");
            jstr(out, res.map_or("", |r| r.secret_name.as_str()));
            out.push(b'}');
        }
        Api::SsmGetParameter => {
            lit(out, "{\"name\":");
            jstr(out, res.map_or("", |r| r.parameter.as_str()));
            lit(out, ",\"withDecryption\":true}");
        }
        Api::SsmGetParameters => {
            let p = res.map_or("", |r| r.parameter.as_str());
            lit(out, "{\"names\":[");
            jstr(out, p);
            out.push(b',');
            jstr(out, &format!("{p}/feature-flags"));
            lit(out, "],\"withDecryption\":true}");
        }
        Api::DdbDescribeTable => {
            lit(out, "{\"tableName\":");
            jstr(out, res.map_or("", |r| r.table.as_str()));
            out.push(b'}');
        }
        Api::DdbUpdateTable => {
            lit(out, "{\"tableName\":");
            jstr(out, res.map_or("", |r| r.table.as_str()));
            lit(out, ",\"billingMode\":\"PAY_PER_REQUEST\"}");
        }
        Api::SqsGetQueueUrl => {
            lit(out, "{\"queueName\":");
            jstr(out, res.map_or("", |r| r.queue.as_str()));
            out.push(b'}');
        }
        Api::SqsGetQueueAttributes => {
            lit(out, "{\"queueUrl\":");
            jstr(out, res.map_or("", |r| r.queue_url.as_str()));
            lit(
                out,
                ",\"attributeNames\":[\"ApproximateNumberOfMessages\",\"VisibilityTimeout\"]}",
            );
        }
        Api::AthenaStartQueryExecution => {
            let bucket = res.map_or("", |r| r.bucket.as_str());
            let _ = write!(
                out,
                "{{\"queryString\":\"SELECT status, count(*) FROM orders_daily WHERE day = date '2026-11-15' GROUP BY status\",\"queryExecutionContext\":{{\"database\":\"analytics\"}},\"resultConfiguration\":{{\"outputLocation\":\"s3://{bucket}/athena/\"}},\"workGroup\":\"reports\",\"clientRequestToken\":"
            );
            uuid(out, c.req ^ 1);
            lit(out, "},\"responseElements\":{\"queryExecutionId\":");
            uuid(out, c.id ^ 2);
            out.push(b'}');
            return (extra, resources);
        }
        Api::AthenaGetQueryExecution | Api::AthenaGetQueryResults => {
            lit(out, "{\"queryExecutionId\":");
            uuid(out, u128::from(c.res >> 4));
            out.push(b'}');
        }
        Api::GlueGetTable => {
            lit(
                out,
                "{\"databaseName\":\"analytics\",\"name\":\"orders_daily\"}",
            );
        }
        Api::EcrGetAuthorizationToken => {
            let _ = write!(out, "{{\"registryIds\":[\"{acct}\"]}}");
        }
        Api::EcrBatchGetImage | Api::EcrGetDownloadUrlForLayer => {
            let t = task.unwrap_or(0);
            let td = &w.taskdefs[w.tasks[t].taskdef];
            let image = &td.containers[0].image;
            let (repo, tag) = image.rsplit_once('/').map_or(("", ""), |(_, rt)| {
                rt.split_once(':').unwrap_or((rt, "latest"))
            });
            let _ = write!(
                out,
                "{{\"registryId\":\"{acct}\",\"repositoryName\":\"{repo}\","
            );
            if c.api == Api::EcrBatchGetImage {
                let _ = write!(
                    out,
                    "\"imageIds\":[{{\"imageTag\":\"{tag}\"}}],\"acceptedMediaTypes\":[\"application/vnd.docker.distribution.manifest.v2+json\",\"application/vnd.oci.image.manifest.v1+json\"]}}"
                );
            } else {
                let layer = (c.task >> 24) as usize;
                let layers = &pre.layers[w.tasks[t].taskdef];
                let _ = write!(
                    out,
                    "\"layerDigest\":\"{}\"}}",
                    layers[layer.min(layers.len() - 1)]
                );
            }
            let mut rs = Vec::new();
            let _ = write!(
                rs,
                "[{{\"accountId\":\"{acct}\",\"ARN\":\"arn:aws:ecr:{region}:{acct}:repository/{repo}\"}}]"
            );
            resources = Some(rs);
        }
        Api::LogsCreateLogStream => {
            let t = task.unwrap_or(0);
            let ci = (c.task >> 24) as usize;
            let task = &w.tasks[t];
            let cname = task.containers.get(ci).map_or("app", |c| c.name);
            let _ = write!(
                out,
                "{{\"logGroupName\":\"/ecs/{}\",\"logStreamName\":\"ecs/{cname}/{}\"}}",
                w.services[task.service].name, task.id
            );
        }
        Api::EcsDiscoverPollEndpoint => {
            if let Who::Instance(h) = c.who {
                let host = &w.hosts[h as usize];
                let _ = write!(
                    out,
                    "{{\"containerInstance\":\"{}\",\"cluster\":\"{}\"}}",
                    host.container_instance_arn, w.clusters[host.cluster].name
                );
            } else {
                lit(out, "null");
            }
            let _ = write!(
                out,
                ",\"responseElements\":{{\"endpoint\":\"https://ecs-a-1.{region}.amazonaws.com/\",\"telemetryEndpoint\":\"https://ecs-t-1.{region}.amazonaws.com/\"}}"
            );
            return (extra, resources);
        }
        Api::EcsSubmitTaskStateChange | Api::EcsSubmitContainerStateChange => {
            let t = task.unwrap_or(0);
            let task = &w.tasks[t];
            let stopped = c.task >> 31 == 1;
            let status = if stopped { "STOPPED" } else { "RUNNING" };
            let _ = write!(
                out,
                "{{\"cluster\":\"{}\",\"task\":\"{}\",\"status\":\"{status}\"",
                w.clusters[task.cluster].name, task.arn
            );
            if c.api == Api::EcsSubmitContainerStateChange {
                let _ = write!(
                    out,
                    ",\"containerName\":\"app\",\"runtimeId\":\"{}\"",
                    task.containers[0].docker_id
                );
                if stopped {
                    let _ = write!(out, ",\"exitCode\":{}", task.exit_code.unwrap_or(0));
                }
            } else if stopped {
                let reason = task.stopped_reason.as_deref().unwrap_or("");
                lit(out, ",\"reason\":");
                jstr(out, reason);
            }
            out.push(b'}');
            lit(out, ",\"responseElements\":{\"acknowledgment\":\"ACK\"}");
            return (extra, resources);
        }
        Api::EcsRegisterTaskDefinition | Api::EcsUpdateService | Api::EcsDescribeServices => {
            let s = if c.task == u32::MAX {
                c.res as usize % w.services.len()
            } else {
                c.task as usize
            };
            let dep = match c.who {
                Who::Ci(d) => w.deploys.get(d as usize),
                _ => None,
            };
            let svc = &w.services[s];
            let cluster = &w.clusters[svc.cluster].name;
            let td = dep.map(|d| &w.taskdefs[d.taskdef]);
            match c.api {
                Api::EcsRegisterTaskDefinition => {
                    let _ = write!(
                        out,
                        "{{\"family\":\"{}\",\"networkMode\":\"{}\",\"requiresCompatibilities\":[\"EC2\"]",
                        svc.name,
                        svc.network.as_str()
                    );
                    if let Some(r) = svc.task_role {
                        let _ = write!(out, ",\"taskRoleArn\":\"{}\"", w.roles[r].arn);
                    }
                    let _ = write!(
                        out,
                        ",\"executionRoleArn\":\"{}\"}}",
                        w.roles[svc.exec_role].arn
                    );
                    let _ = write!(
                        out,
                        ",\"responseElements\":{{\"taskDefinition\":{{\"taskDefinitionArn\":\"{}\",\"revision\":{}}}}}",
                        td.map_or("", |t| t.arn.as_str()),
                        td.map_or(0, |t| t.revision)
                    );
                    return (extra, resources);
                }
                Api::EcsUpdateService => {
                    let _ = write!(
                        out,
                        "{{\"cluster\":\"{cluster}\",\"service\":\"{}\",\"taskDefinition\":\"{}\",\"forceNewDeployment\":false}}",
                        svc.name,
                        td.map_or("", |t| t.arn.as_str())
                    );
                }
                _ => {
                    let _ = write!(
                        out,
                        "{{\"cluster\":\"{cluster}\",\"services\":[\"{}\"]}}",
                        svc.name
                    );
                }
            }
        }
        Api::EcsListTasks => {
            let _ = write!(
                out,
                "{{\"cluster\":\"{}\",\"desiredStatus\":\"RUNNING\"}}",
                w.clusters[0].name
            );
        }
        Api::EcsDescribeTasks => {
            let t = (c.res as usize) % w.tasks.len().max(1);
            let _ = write!(
                out,
                "{{\"cluster\":\"{}\",\"tasks\":[\"{}\"]}}",
                w.clusters[w.tasks[t].cluster].name, w.tasks[t].arn
            );
        }
        Api::Ec2CreateNetworkInterface
        | Api::Ec2AttachNetworkInterface
        | Api::Ec2DeleteNetworkInterface => {
            let t = task.unwrap_or(0);
            let task = &w.tasks[t];
            let (eni, subnet, addr, att) = task.eni.as_ref().map_or(("", "", 0, ""), |e| {
                (
                    e.id.as_str(),
                    e.subnet.as_str(),
                    e.ip,
                    e.attachment_id.as_str(),
                )
            });
            match c.api {
                Api::Ec2CreateNetworkInterface => {
                    let _ = write!(
                        out,
                        "{{\"subnetId\":\"{subnet}\",\"description\":\"arn:aws:ecs:{region}:{acct}:attachment/{att}\",\"groupSet\":{{}},\"privateIpAddressesSet\":{{}},\"ipv6AddressCount\":0}},\"responseElements\":{{\"requestId\":"
                    );
                    uuid(out, c.req);
                    let _ = write!(
                        out,
                        ",\"networkInterface\":{{\"networkInterfaceId\":\"{eni}\",\"subnetId\":\"{subnet}\",\"privateIpAddress\":"
                    );
                    ip(out, addr);
                    lit(
                        out,
                        ",\"status\":\"pending\",\"interfaceType\":\"interface\"}}",
                    );
                    return (extra, resources);
                }
                Api::Ec2AttachNetworkInterface => {
                    let _ = write!(
                        out,
                        "{{\"networkInterfaceId\":\"{eni}\",\"instanceId\":\"{}\",\"deviceIndex\":{}}}",
                        w.hosts[task.host].instance_id,
                        1 + (c.res % 3)
                    );
                }
                _ => {
                    let _ = write!(out, "{{\"networkInterfaceId\":\"{eni}\"}}");
                }
            }
        }
        Api::Ec2DescribeInstances => lit(out, "{\"instancesSet\":{},\"filterSet\":{}}"),
        Api::IamGetRole => {
            let r = &w.roles[(c.res as usize) % w.roles.len()];
            lit(out, "{\"roleName\":");
            jstr(out, &r.name);
            out.push(b'}');
        }
        Api::CloudTrailLookupEvents => {
            lit(
                out,
                "{\"maxResults\":50,\"lookupAttributes\":[{\"attributeKey\":\"EventName\",\"attributeValue\":\"AssumeRole\"}]}",
            );
        }
        Api::StsAssumeRole => {
            if let Who::EcsTasks(k) = c.who {
                let key = &w.keys[k as usize];
                let role = &w.roles[key.role as usize];
                let task = &w.tasks[key.task as usize];
                lit(out, "{\"roleArn\":");
                jstr(out, &role.arn);
                lit(out, ",\"roleSessionName\":");
                jstr(out, &task.id);
                lit(
                    out,
                    "},\"responseElements\":{\"credentials\":{\"accessKeyId\":",
                );
                jstr(out, &key.access_key);
                lit(out, ",\"sessionToken\":");
                session_token(out, key.event_id);
                lit(out, ",\"expiration\":\"");
                clock::sts_expiration(key.expires, out);
                lit(out, "\"}}");
                let mut rs = Vec::new();
                let _ = write!(
                    rs,
                    "[{{\"accountId\":\"{acct}\",\"type\":\"AWS::IAM::Role\",\"ARN\":\"{}\"}}]",
                    role.arn
                );
                resources = Some(rs);
                return (extra, resources);
            }
            lit(out, "null");
        }
        Api::StsAssumeRoleWithWebIdentity => {
            let role = &w.roles[w.ci_role];
            let _ = write!(
                out,
                "{{\"roleArn\":\"{}\",\"roleSessionName\":\"GitHubActions\",\"durationSeconds\":3600}}",
                role.arn
            );
            lit(
                out,
                ",\"responseElements\":{\"credentials\":{\"accessKeyId\":",
            );
            let d = match c.who {
                Who::CiWebIdentity(d) => d,
                _ => 0,
            };
            jstr(
                out,
                &derived_key(w.seed, &[stream::KEYS, u64::MAX - 200_000, u64::from(d)]),
            );
            lit(out, ",\"sessionToken\":");
            session_token(out, c.id);
            lit(out, ",\"expiration\":\"");
            clock::sts_expiration(c.time + 3600, out);
            let _ = write!(
                out,
                "\"}},\"subjectFromWebIdentityToken\":\"repo:acme/{}:ref:refs/heads/main\",\"assumedRoleUser\":{{\"assumedRoleId\":\"{}:GitHubActions\",\"arn\":\"arn:aws:sts::{acct}:assumed-role/{}/GitHubActions\"}},\"provider\":\"arn:aws:iam::{acct}:oidc-provider/token.actions.githubusercontent.com\",\"audience\":\"sts.amazonaws.com\"}}",
                w.services[c.task as usize % w.services.len()].name,
                role.id,
                role.name
            );
            let mut rs = Vec::new();
            let _ = write!(
                rs,
                "[{{\"accountId\":\"{acct}\",\"type\":\"AWS::IAM::Role\",\"ARN\":\"{}\"}}]",
                role.arn
            );
            resources = Some(rs);
            return (extra, resources);
        }
        Api::ConsoleLogin => {
            lit(
                out,
                "null,\"responseElements\":{\"ConsoleLogin\":\"Success\"},\"additionalEventData\":{\"LoginTo\":\"https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true\",\"MobileVersion\":\"No\",\"MFAIdentifier\":\"arn:aws:iam::",
            );
            lit(out, acct);
            lit(out, ":mfa/ops-alice\",\"MFAUsed\":\"Yes\"}");
            return (true, resources);
        }
        Api::SmListSecrets
        | Api::StsGetCallerIdentity
        | Api::StsGetCallerIdentityGlobal
        | Api::DdbListTables
        | Api::IamListRoles
        | Api::IamListUsers
        | Api::LambdaListFunctions => lit(out, "null"),
    }
    lit(out, ",\"responseElements\":null");
    (extra, resources)
}

/// One CloudTrail record as JSON.
fn render(w: &World, pre: &Pre, c: &Call, out: &mut Vec<u8>) {
    let spec = c.api.spec();
    let region = REGIONS[c.region as usize];
    lit(out, "{\"eventVersion\":\"");
    lit(out, spec.event_version);
    lit(out, "\",\"userIdentity\":");
    identity(out, w, c);
    lit(out, ",\"eventTime\":");
    time(out, c.time);
    lit(out, ",\"eventSource\":\"");
    lit(out, spec.event_source);
    lit(out, "\",\"eventName\":\"");
    lit(out, spec.event_name);
    lit(out, "\",\"awsRegion\":\"");
    lit(out, region);
    lit(out, "\",\"sourceIPAddress\":");
    match c.src {
        Src::Ip(v) => ip(out, v),
        Src::Ip6(v) => ip6(out, v),
        Src::Service(s) => jstr(out, s),
        Src::AwsInternal => lit(out, "\"AWS Internal\""),
    }
    lit(out, ",\"userAgent\":");
    match c.src {
        Src::Service(s) => jstr(out, s),
        _ => jstr(out, &pre.uas[c.ua as usize]),
    }
    if let Some(e) = c.err {
        error_message(out, w, c, e);
    }
    let (_, resources) = body(out, w, pre, c);
    lit(out, ",\"requestID\":");
    if spec.service == "s3" {
        out.push(b'"');
        hex_upper(out, c.req as u64, 16);
        out.push(b'"');
    } else {
        uuid(out, c.req);
    }
    lit(out, ",\"eventID\":");
    uuid(out, c.id);
    lit(out, ",\"readOnly\":");
    lit(out, if spec.read_only { "true" } else { "false" });
    if let Some(rs) = resources {
        lit(out, ",\"resources\":");
        out.extend_from_slice(&rs);
    }
    lit(out, ",\"eventType\":\"");
    lit(
        out,
        if c.api == Api::ConsoleLogin {
            "AwsConsoleSignIn"
        } else {
            "AwsApiCall"
        },
    );
    lit(out, "\",\"managementEvent\":");
    lit(out, if spec.data { "false" } else { "true" });
    lit(out, ",\"recipientAccountId\":\"");
    lit(out, &w.account);
    out.push(b'"');
    if let Who::EcsTasks(k) = c.who {
        lit(out, ",\"sharedEventID\":");
        uuid(out, w.keys[k as usize].shared_id);
    }
    if c.vpce != 0 {
        field_pair(out, "vpcEndpointId", &w.endpoints[c.vpce as usize - 1].id);
        field_pair(out, "vpcEndpointAccountId", &w.account);
    }
    lit(out, ",\"eventCategory\":\"");
    lit(out, if spec.data { "Data" } else { "Management" });
    out.push(b'"');
    if let Src::Ip(_) | Src::Ip6(_) = c.src
        && c.api != Api::ConsoleLogin
    {
        // Over IPv6 the SDK calls the dual-stack endpoints.
        let dual = matches!(c.src, Src::Ip6(_));
        lit(
            out,
            ",\"tlsDetails\":{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":\"",
        );
        if spec.service == "s3" && !matches!(c.api, Api::S3ListBuckets) {
            let (bucket, _) = s3_names(w, pre, c);
            if dual {
                let _ = write!(out, "{bucket}.s3.dualstack.{region}.amazonaws.com");
            } else {
                let _ = write!(out, "{bucket}.s3.{region}.amazonaws.com");
            }
        } else if spec.global {
            let _ = write!(out, "{}.amazonaws.com", spec.service);
        } else if dual {
            let _ = write!(out, "{}.{region}.api.aws", spec.service);
        } else {
            let _ = write!(out, "{}.{region}.amazonaws.com", spec.service);
        }
        lit(out, "\"}");
    }
    out.push(b'}');
}

fn field_pair(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b',');
    field(out, name, value);
}

/// The buckets (name before `-<account>-<region>`) whose object-level data events the simulated
/// trail logs; object calls on every other bucket are not logged, as on a trail that selects
/// data events for some buckets only.
pub const LOGGED_BUCKETS: [&str; 3] = ["acme-orders-archive", "acme-media", "acme-misc"];

/// The event sources whose management events the simulated trail excludes
/// (`ExcludeManagementEventSources` / `eventSource` NotEquals).
pub const EXCLUDED_SOURCES: [&str; 1] = ["kms.amazonaws.com"];

/// Whether the simulated trail logs a call of `api` (`bucket`: the bucket of an S3 object call).
pub fn trail_logs(api: Api, bucket: &str) -> bool {
    let spec = api.spec();
    if spec.data {
        LOGGED_BUCKETS
            .iter()
            .any(|b| bucket.strip_prefix(b).is_some_and(|r| r.starts_with('-')))
    } else {
        !EXCLUDED_SOURCES.contains(&spec.event_source)
    }
}

/// Whether the simulated trail could show that an IAM action granted on `bucket`'s objects was
/// used: not a KMS action (excluded), and an S3 object action only on a logged bucket.
pub fn trail_shows_action(action: &str, bucket: &str) -> bool {
    if let Some(p) = action.split(':').next()
        && EXCLUDED_SOURCES.contains(&format!("{p}.amazonaws.com").as_str())
    {
        return false;
    }
    if action.starts_with("s3:") && action.contains("Object") {
        return trail_logs(Api::S3GetObject, bucket);
    }
    true
}

/// Whether the trail logs this call (what `generate_hour` keeps).
fn logged(w: &World, pre: &Pre, c: &Call) -> bool {
    if c.api.spec().data {
        trail_logs(c.api, &s3_names(w, pre, c).0)
    } else {
        trail_logs(c.api, "")
    }
}

/// The trail's ARN.
fn trail_arn(w: &World) -> String {
    format!(
        "arn:aws:cloudtrail:{}:{}:trail/org-audit",
        REGIONS[0], w.account
    )
}

/// `cloudtrail/event-selectors.json` as `aws cloudtrail get-event-selectors` prints it: what
/// the simulated trail logs: management events but KMS's, and S3 object data events of the
/// [`LOGGED_BUCKETS`] only.
pub fn event_selectors(w: &World) -> serde_json::Value {
    let mut prefixes = Vec::new();
    for b in LOGGED_BUCKETS {
        for r in REGIONS {
            prefixes.push(format!("arn:aws:s3:::{b}-{}-{r}/", w.account));
        }
    }
    serde_json::json!({
        "TrailARN": trail_arn(w),
        "AdvancedEventSelectors": [
            {"Name": "Management events but KMS",
             "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                                {"Field": "eventSource", "NotEquals": EXCLUDED_SOURCES}]},
            {"Name": "S3 object data events of the archive, media and misc buckets",
             "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                                {"Field": "resources.ARN", "StartsWith": prefixes}]}
        ]
    })
}

/// `cloudtrail/trails.json` as `aws cloudtrail describe-trails` prints it: one multi-region
/// trail in the first region.
pub fn trails(w: &World) -> serde_json::Value {
    serde_json::json!({"trailList": [{
        "Name": "org-audit",
        "S3BucketName": format!("acme-cloudtrail-{}", w.account),
        "IncludeGlobalServiceEvents": true,
        "IsMultiRegionTrail": true,
        "HomeRegion": REGIONS[0],
        "TrailARN": trail_arn(w),
        "LogFileValidationEnabled": true,
        "HasCustomEventSelectors": true,
        "HasInsightSelectors": false,
        "IsOrganizationTrail": false
    }]})
}
