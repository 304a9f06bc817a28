//! Named attack scenarios mixed into ordinary traffic, each with its expected finding.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow};
use serde_json::json;

use super::calls::{Api, Profile};
use super::clock::rfc3339_string;
use super::cluster::{AuditEntry, Call, CallError, Src, StopCode, Who, World, ip_str};
use super::iam;
use super::rng::{Rng, stream};
use super::truth::Truth;

/// An attack scenario (`--attacks` name in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attack {
    /// Someone in a container guesses credential IDs: a burst of 400s (`credential-guessing`).
    CredentialGuessing,
    /// A person with a shell in a container pulls the credentials with curl (`shell-curl`).
    ShellCurl,
    /// A task fetches another task's credentials on the same host (`fetch-foreign`).
    FetchForeign,
    /// A crash-looping script fetches credentials dozens of times (`fetch-burst`).
    FetchBurst,
    /// Stolen task credentials used from outside AWS (`stolen-outside`).
    StolenOutside,
    /// Task A's credentials used by task B through a VPC endpoint (`stolen-other-task`).
    StolenOtherTask,
    /// A stopped task's credentials used afterwards (`use-after-stop`).
    UseAfterStop,
    /// Credentials used with no fetch from the endpoint, ECScape-style (`use-without-fetch`).
    UseWithoutFetch,
    /// A compromised app enumerating permissions: a burst of AccessDenied (`denied-burst`).
    DeniedBurst,
    /// Task roles granting actions nobody uses (`unused-permissions`).
    UnusedPermissions,
    /// A task role whose tasks run but never use it (`unused-role`).
    UnusedRole,
}

/// An `--attacks` list that names something unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attack {name:?}; known: all, none, {known}")]
pub struct UnknownAttack {
    pub name: String,
    pub known: String,
}

impl Attack {
    pub const ALL: [Attack; 11] = [
        Attack::CredentialGuessing,
        Attack::ShellCurl,
        Attack::FetchForeign,
        Attack::FetchBurst,
        Attack::StolenOutside,
        Attack::StolenOtherTask,
        Attack::UseAfterStop,
        Attack::UseWithoutFetch,
        Attack::DeniedBurst,
        Attack::UnusedPermissions,
        Attack::UnusedRole,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::CredentialGuessing => "credential-guessing",
            Attack::ShellCurl => "shell-curl",
            Attack::FetchForeign => "fetch-foreign",
            Attack::FetchBurst => "fetch-burst",
            Attack::StolenOutside => "stolen-outside",
            Attack::StolenOtherTask => "stolen-other-task",
            Attack::UseAfterStop => "use-after-stop",
            Attack::UseWithoutFetch => "use-without-fetch",
            Attack::DeniedBurst => "denied-burst",
            Attack::UnusedPermissions => "unused-permissions",
            Attack::UnusedRole => "unused-role",
        }
    }

    /// The detections.md finding kind this scenario must produce.
    pub fn kind(self) -> &'static str {
        match self {
            Attack::CredentialGuessing => "fetch_denied_burst",
            Attack::ShellCurl => "fetch_unusual_client",
            Attack::FetchForeign => "fetch_foreign_source",
            Attack::FetchBurst => "fetch_burst",
            Attack::StolenOutside => "use_from_unexpected_network",
            Attack::StolenOtherTask => "use_by_other_task",
            Attack::UseAfterStop => "use_after_stop",
            Attack::UseWithoutFetch => "use_without_fetch",
            Attack::DeniedBurst => "access_denied_burst",
            Attack::UnusedPermissions => "unused_permissions",
            Attack::UnusedRole => "unused_role",
        }
    }

    /// Parse a comma-separated list; `all` and `none` are accepted.
    pub fn parse_list(list: &str) -> Result<BTreeSet<Attack>, UnknownAttack> {
        let mut out = BTreeSet::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "all" => out.extend(Attack::ALL),
                "none" => {}
                _ => match Attack::ALL.iter().find(|a| a.name() == name) {
                    Some(a) => {
                        out.insert(*a);
                    }
                    None => {
                        return Err(UnknownAttack {
                            name: name.to_string(),
                            known: Attack::ALL.map(Attack::name).join(", "),
                        });
                    }
                },
            }
        }
        Ok(out)
    }
}

/// Decisions that must be made before credentials and fetches are scheduled.
#[derive(Debug, Default)]
pub struct Prepared {
    without_fetch_victim: Option<usize>,
}

fn uses_aws(w: &World, i: usize) -> bool {
    let t = &w.tasks[i];
    t.profile.behavior().uses_aws && w.task_role(i).is_some()
}

fn err_no_candidate(a: Attack) -> anyhow::Error {
    anyhow!(
        "attack {}: no suitable task in this simulation; use more --hosts or --hours, or leave it out of --attacks",
        a.name()
    )
}

/// Pick a victim for `use-without-fetch` and make its application slow to start, so an
/// attacker holding credentials harvested from the agent uses them before the task ever fetches.
pub fn prepare(w: &mut World) -> Result<Prepared> {
    let mut p = Prepared::default();
    if !w.attacks.contains(&Attack::UseWithoutFetch) {
        return Ok(p);
    }
    let mut rng = Rng::derive(w.seed, &[stream::ATTACK, 1000]);
    let cands: Vec<usize> = (0..w.tasks.len())
        .filter(|&i| {
            let t = &w.tasks[i];
            let created = t.created_ms / 1000;
            uses_aws(w, i)
                && !t.profile.behavior().healthcheck
                && !t.fargate
                && !t.profile.shares_execution_role()
                && matches!(
                    t.profile.behavior().clients[0].mode,
                    super::calls::Mode::Cached { .. }
                )
                && !w.services[t.service].scheduled
                && t.profile != Profile::Migration
                && created >= w.start + 30 * 60
                && created >= w.hosts[t.host].audit_from + 10 * 60
                && t.last_call >= created + 50 * 60
        })
        .collect();
    if cands.is_empty() {
        return Err(err_no_candidate(Attack::UseWithoutFetch));
    }
    let v = *rng.pick(&cands);
    w.tasks[v].boot_delay = 20 * 60 + rng.range(0, 120);
    p.without_fetch_victim = Some(v);
    Ok(p)
}

struct Ctx<'a> {
    w: &'a World,
    rng: Rng,
    used: &'a BTreeSet<usize>,
}

impl Ctx<'_> {
    fn time_in(&mut self, lo: f64, hi: f64) -> i64 {
        let dur = (self.w.end - self.w.start) as f64;
        let a = self.w.start + (dur * lo) as i64;
        let b = self.w.start + (dur * hi) as i64;
        self.rng.range(a, b.max(a + 1))
    }

    /// A task (not yet a victim) running and calling AWS over `[t, t + span]`.
    fn pick(
        &mut self,
        lo: f64,
        hi: f64,
        span: i64,
        pred: impl Fn(&World, usize, i64) -> bool,
    ) -> Option<(usize, i64)> {
        for _ in 0..200 {
            let t = self.time_in(lo, hi);
            let cands: Vec<usize> = (0..self.w.tasks.len())
                .filter(|&i| {
                    let task = &self.w.tasks[i];
                    // Inside the host's audit log, away from agent restarts and throttling.
                    !self.used.contains(&i)
                        && task.app_start() + 60 <= t
                        && t + span <= task.last_call
                        && t >= self.w.hosts[task.host].audit_from + 600
                        && !self.w.faulty(task.host, t - 300, t + span + 300)
                        && self.w.stale.is_none_or(|s| s.task != i)
                        && pred(self.w, i, t)
                })
                .collect();
            if !cands.is_empty() {
                return Some((*self.rng.pick(&cands), t));
            }
        }
        None
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per CloudTrail field"
    )]
    fn call(
        &mut self,
        time: i64,
        who: Who,
        api: Api,
        src: Src,
        vpce: u16,
        ua: u16,
        err: Option<CallError>,
        task: usize,
    ) -> Call {
        let cluster = self.w.tasks[task].cluster;
        Call {
            time,
            region: self.w.call_region(cluster, api),
            who,
            api,
            src,
            vpce,
            ua,
            err,
            task: task as u32,
            res: self.rng.next_u64() as u32,
            id: self.rng.u128(),
            req: self.rng.u128(),
        }
    }
}

/// A task on a container instance whose application fetches and caches credentials.
fn active(w: &World, i: usize) -> bool {
    uses_aws(w, i) && !w.tasks[i].fargate && !w.tasks[i].procs.is_empty()
}

/// The APIs a task's application calls on its own.
/// An unused-permissions truth line to plant: whether the role's tasks ran, the role, its
/// unused actions, its cluster.
type Unused<'a> = (bool, usize, &'a [&'a str], Option<String>);

/// The APIs a task's own clients call that the trail logs (an attack the trail cannot show is
/// not planted).
fn own_apis(w: &World, i: usize) -> Vec<Api> {
    let b = w.tasks[i].profile.behavior();
    let bucket = crate::iam::resources(w, w.tasks[i].service).bucket;
    let mut v: Vec<Api> = b
        .clients
        .iter()
        .flat_map(|c| c.steady.iter().map(|s| s.0))
        .collect();
    v.extend(b.clients.iter().flat_map(|c| c.boot.iter().copied()));
    v.retain(|a| crate::cloudtrail::trail_logs(*a, &bucket));
    v
}

struct Base {
    cluster_arn: String,
    task_arn: String,
    role_arn: Option<String>,
    host: String,
}

fn base(w: &World, i: usize) -> Base {
    let t = &w.tasks[i];
    Base {
        cluster_arn: w.clusters[t.cluster].arn.clone(),
        task_arn: t.arn.clone(),
        role_arn: w.task_role(i).map(|r| w.roles[r].arn.clone()),
        host: w.hosts[t.host].container_instance_arn.clone(),
    }
}

/// Plant every selected scenario: extra audit lines, extra CloudTrail calls, truth lines.
pub fn plan(w: &mut World, prepared: Prepared) -> Result<()> {
    let attacks: Vec<Attack> = w.attacks.iter().copied().collect();
    let mut used: BTreeSet<usize> = BTreeSet::new();
    if let Some(v) = prepared.without_fetch_victim {
        used.insert(v);
    }
    for a in attacks {
        let rng = Rng::derive(w.seed, &[stream::ATTACK, a as u64]);
        let mut audit: Vec<(usize, AuditEntry)> = Vec::new();
        let mut calls: Vec<Call> = Vec::new();
        let mut truth: Vec<Truth> = Vec::new();
        let mut uas: Vec<String> = Vec::new();
        let ua_base = w.user_agents.len() as u16;
        // User agents introduced by this scenario get indices after the existing ones.
        let existing = &w.user_agents;
        let mut ua = |s: &str| -> u16 {
            if let Some(p) = existing.iter().position(|u| u == s) {
                return p as u16;
            }
            if let Some(p) = uas.iter().position(|u| u == s) {
                return ua_base + p as u16;
            }
            uas.push(s.to_string());
            ua_base + (uas.len() - 1) as u16
        };
        let mut newly_used: Vec<usize> = Vec::new();
        {
            let mut cx = Ctx {
                w,
                rng,
                used: &used,
            };
            match a {
                Attack::CredentialGuessing => {
                    let (v, t0) = cx
                        .pick(0.2, 0.8, 600, |w, i, _| {
                            w.tasks[i].containers.iter().any(|c| c.bridge_ip.is_some())
                        })
                        .ok_or_else(|| err_no_candidate(a))?;
                    let task = &cx.w.tasks[v];
                    let ip = task
                        .containers
                        .iter()
                        .find_map(|c| c.bridge_ip)
                        .unwrap_or_default();
                    let agent = "curl/8.5.0";
                    let u = ua(agent);
                    let n = 40;
                    let mut last = t0;
                    for k in 0..n {
                        last = t0 + k * 3 + cx.rng.range(0, 2);
                        audit.push((
                            task.host,
                            AuditEntry {
                                time: last,
                                status: 400,
                                src: Some((ip, cx.rng.range(32768, 61000) as u16)),
                                path: if k % 4 == 3 {
                                    "/v1/credentials"
                                } else {
                                    "/v2/credentials"
                                }
                                .to_string(),
                                ua: u,
                                task: None,
                                exec: false,
                            },
                        ));
                    }
                    let b = base(cx.w, v);
                    let skew = cx.w.hosts[task.host].skew;
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "high",
                        title: format!(
                            "{n} credential requests with unknown IDs from {} on {}",
                            ip_str(ip),
                            cx.w.hosts[task.host].name
                        ),
                        first_seen: rfc3339_string(t0 + skew),
                        last_seen: rfc3339_string(last + skew),
                        count: n as u64,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: None,
                        role_arn: None,
                        host: Some(b.host),
                        source_ip: Some(ip_str(ip)),
                        evidence: json!({"scenario": a.name(), "statuses": {"400": n},
                            "user_agent": agent,
                            "container_of_task": b.task_arn}),
                    });
                    newly_used.push(v);
                }
                Attack::ShellCurl => {
                    let (v, t0) = cx
                        .pick(0.2, 0.8, 600, |w, i, _| active(w, i))
                        .ok_or_else(|| err_no_candidate(a))?;
                    let task = &cx.w.tasks[v];
                    let ip = task.fetch_ip().unwrap_or_default();
                    let agent = "curl/8.5.0";
                    let u = ua(agent);
                    let times = [t0, t0 + cx.rng.range(20, 200)];
                    for &t in &times {
                        audit.push((
                            task.host,
                            AuditEntry::fetch(
                                t,
                                Some((ip, cx.rng.range(32768, 61000) as u16)),
                                u,
                                v as u32,
                                false,
                            ),
                        ));
                    }
                    let b = base(cx.w, v);
                    let skew = cx.w.hosts[task.host].skew;
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "high",
                        title: format!("credentials of {} fetched with {agent}", task.id),
                        first_seen: rfc3339_string(times[0] + skew),
                        last_seen: rfc3339_string(times[1] + skew),
                        count: 2,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(ip)),
                        evidence: json!({"scenario": a.name(), "user_agent": agent}),
                    });
                    newly_used.push(v);
                }
                Attack::FetchForeign => {
                    let mut found = None;
                    for _ in 0..200 {
                        let Some((victim, t0)) = cx.pick(0.2, 0.8, 600, |w, i, _| active(w, i))
                        else {
                            break;
                        };
                        let host = cx.w.tasks[victim].host;
                        let victim_ip = cx.w.tasks[victim].fetch_ip();
                        let thieves: Vec<usize> = (0..cx.w.tasks.len())
                            .filter(|&j| {
                                let t = &cx.w.tasks[j];
                                j != victim
                                    && !cx.used.contains(&j)
                                    && t.host == host
                                    && active(cx.w, j)
                                    && t.app_start() + 60 <= t0
                                    && t0 + 600 <= t.last_call
                                    && t.fetch_ip().is_some()
                                    && t.fetch_ip() != victim_ip
                                    // the thief's own start-up fetches are in the audit log
                                    // (its host's collector ran then): the only evidence, where
                                    // no agent snapshot is read, that the address is its own
                                    && t.created_ms / 1000 >= cx.w.hosts[host].audit_from + 600
                            })
                            .collect();
                        if !thieves.is_empty() {
                            found = Some((victim, *cx.rng.pick(&thieves), t0));
                            break;
                        }
                    }
                    let (v, thief, t0) = found.ok_or_else(|| err_no_candidate(a))?;
                    let th = &cx.w.tasks[thief];
                    let ip = th.fetch_ip().unwrap_or_default();
                    let agent = th.profile.behavior().lang().fetch_user_agent();
                    let u = ua(agent);
                    audit.push((
                        th.host,
                        AuditEntry::fetch(
                            t0,
                            Some((ip, cx.rng.range(32768, 61000) as u16)),
                            u,
                            v as u32,
                            false,
                        ),
                    ));
                    let b = base(cx.w, v);
                    let skew = cx.w.hosts[th.host].skew;
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "critical",
                        title: format!(
                            "credentials of {} fetched from {}, the address of task {}",
                            cx.w.tasks[v].id,
                            ip_str(ip),
                            th.id
                        ),
                        first_seen: rfc3339_string(t0 + skew),
                        last_seen: rfc3339_string(t0 + skew),
                        count: 1,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(ip)),
                        evidence: json!({"scenario": a.name(), "requester_task_arn": th.arn}),
                    });
                    newly_used.push(v);
                    newly_used.push(thief);
                }
                Attack::FetchBurst => {
                    // A family whose own fetch rate is low (no health check fetching every 30 s)
                    // and with enough tasks that the burst cannot make the family's median
                    // 5-minute bucket: 45 fetches in 4 minutes stand far above it.
                    let (v, t0) = cx
                        .pick(0.2, 0.8, 600, |w, i, _| {
                            let svc = w.tasks[i].service;
                            active(w, i)
                                && !w.tasks[i].profile.behavior().healthcheck
                                && w.tasks.iter().filter(|t| t.service == svc).count() >= 3
                        })
                        .ok_or_else(|| err_no_candidate(a))?;
                    let task = &cx.w.tasks[v];
                    let ip = task.fetch_ip().unwrap_or_default();
                    let u = ua(task.profile.behavior().lang().fetch_user_agent());
                    let n = 45;
                    let mut last = t0;
                    for k in 0..n {
                        last = t0 + k * 5 + cx.rng.range(0, 3);
                        audit.push((
                            task.host,
                            AuditEntry::fetch(
                                last,
                                Some((ip, cx.rng.range(32768, 61000) as u16)),
                                u,
                                v as u32,
                                false,
                            ),
                        ));
                    }
                    let b = base(cx.w, v);
                    let skew = cx.w.hosts[task.host].skew;
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "medium",
                        title: format!("{n} credential fetches in 4 minutes for {}", task.id),
                        first_seen: rfc3339_string(t0 + skew),
                        last_seen: rfc3339_string(last + skew),
                        count: n as u64,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(ip)),
                        evidence: json!({"scenario": a.name(), "window_seconds": 240}),
                    });
                    newly_used.push(v);
                }
                Attack::StolenOutside => {
                    // A victim whose own egress the network inventory shows (a bridge task
                    // behind its NAT gateway, or an ENI in a snapshot): the verdict rests on the
                    // inventory, critical.
                    let (v, t0) = cx
                        .pick(0.2, 0.8, 1800, |w, i, _| {
                            active(w, i) && super::network::vouches_for(w, i)
                        })
                        .ok_or_else(|| err_no_candidate(a))?;
                    let key =
                        cx.w.latest_key(&cx.w.tasks[v].task_keys, t0)
                            .ok_or_else(|| err_no_candidate(a))?;
                    let attacker = u32::from_be_bytes([203, 0, 113, 10 + cx.rng.below(200) as u8]);
                    let agent = "aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024 prompt/off command/sts.get-caller-identity";
                    let u = ua(agent);
                    let main = own_apis(cx.w, v)[0];
                    let plan: [(Api, Option<CallError>); 6] = [
                        (Api::StsGetCallerIdentityGlobal, None),
                        (Api::S3ListBuckets, Some(CallError::AccessDenied)),
                        (main, None),
                        (main, None),
                        (Api::SmListSecrets, Some(CallError::AccessDenied)),
                        (main, None),
                    ];
                    let mut t = t0;
                    let mut n = 0;
                    for (api, err) in plan {
                        t += cx.rng.range(20, 110);
                        let c = cx.call(t, Who::Key(key), api, Src::Ip(attacker), 0, u, err, v);
                        calls.push(c);
                        n += 1;
                        if err.is_none()
                            && let Some((f, by)) = api.follow_up()
                        {
                            let c = cx.call(t, Who::Key(key), f, Src::Service(by), 0, u, None, v);
                            calls.push(c);
                        }
                    }
                    let b = base(cx.w, v);
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "critical",
                        title: format!(
                            "credentials of {} used from {} outside the cluster's network",
                            cx.w.tasks[v].id,
                            ip_str(attacker)
                        ),
                        first_seen: rfc3339_string(calls[0].time),
                        last_seen: rfc3339_string(t),
                        count: n,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(attacker)),
                        evidence: json!({"scenario": a.name(), "access_key_id": cx.w.keys[key as usize].access_key,
                            "user_agent": agent, "verdict_rests_on": "network inventory"}),
                    });
                    newly_used.push(v);
                }
                Attack::StolenOtherTask => {
                    let mut found = None;
                    for _ in 0..200 {
                        let Some((victim, t0)) = cx.pick(0.2, 0.8, 900, |w, i, _| {
                            active(w, i)
                                && w.tasks[i].eni.is_some()
                                && own_apis(w, i).iter().any(|&api| {
                                    !api.spec().global
                                        && w.endpoint_for(w.tasks[i].cluster, api.spec().service)
                                            != 0
                                })
                        }) else {
                            break;
                        };
                        let vt = &cx.w.tasks[victim];
                        let thieves: Vec<usize> = (0..cx.w.tasks.len())
                            .filter(|&j| {
                                let t = &cx.w.tasks[j];
                                j != victim
                                    && !cx.used.contains(&j)
                                    && t.cluster == vt.cluster
                                    && t.eni.is_some()
                                    && t.running_at(t0)
                                    && t.started() + 60 <= t0
                                    && t0 + 900 <= t.last_call
                            })
                            .collect();
                        if !thieves.is_empty() {
                            found = Some((victim, *cx.rng.pick(&thieves), t0));
                            break;
                        }
                    }
                    let (v, thief, t0) = found.ok_or_else(|| err_no_candidate(a))?;
                    let key =
                        cx.w.latest_key(&cx.w.tasks[v].task_keys, t0)
                            .ok_or_else(|| err_no_candidate(a))?;
                    let cluster = cx.w.tasks[v].cluster;
                    let api = own_apis(cx.w, v)
                        .into_iter()
                        .find(|&api| {
                            !api.spec().global
                                && cx.w.endpoint_for(cluster, api.spec().service) != 0
                        })
                        .ok_or_else(|| err_no_candidate(a))?;
                    let vpce = cx.w.endpoint_for(cluster, api.spec().service);
                    let thief_ip = cx.w.private_ip(thief);
                    let agent = cx.w.tasks[thief]
                        .profile
                        .behavior()
                        .lang()
                        .call_user_agent(api.spec().service);
                    let u = ua(&agent);
                    let mut t = t0;
                    let n = 4;
                    let mut first = 0;
                    for k in 0..n {
                        t += cx.rng.range(15, 90);
                        if k == 0 {
                            first = t;
                        }
                        let c = cx.call(t, Who::Key(key), api, Src::Ip(thief_ip), vpce, u, None, v);
                        calls.push(c);
                        if let Some((f, by)) = api.follow_up() {
                            let c = cx.call(t, Who::Key(key), f, Src::Service(by), 0, u, None, v);
                            calls.push(c);
                        }
                    }
                    let b = base(cx.w, v);
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "critical",
                        title: format!(
                            "credentials of {} used from {}, the address of task {}",
                            cx.w.tasks[v].id,
                            ip_str(thief_ip),
                            cx.w.tasks[thief].id
                        ),
                        first_seen: rfc3339_string(first),
                        last_seen: rfc3339_string(t),
                        count: n as u64,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(thief_ip)),
                        evidence: json!({"scenario": a.name(), "other_task_arn": cx.w.tasks[thief].arn,
                            "vpc_endpoint_id": cx.w.endpoints[vpce as usize - 1].id,
                            "event_name": api.spec().event_name}),
                    });
                    newly_used.push(v);
                    newly_used.push(thief);
                }
                Attack::UseAfterStop => {
                    let cands: Vec<usize> = (0..cx.w.tasks.len())
                        .filter(|&i| {
                            let t = &cx.w.tasks[i];
                            !cx.used.contains(&i)
                                && active(cx.w, i)
                                && t.profile != Profile::Migration
                                && t.stop_code == Some(StopCode::ServiceSchedulerInitiated)
                                && t.stopped().is_some_and(|s| s + 50 * 60 <= cx.w.end)
                                && t.key_at(0, t.last_call).is_some()
                        })
                        .collect();
                    if cands.is_empty() {
                        return Err(err_no_candidate(a));
                    }
                    let v = *cx.rng.pick(&cands);
                    let task = &cx.w.tasks[v];
                    let stopped = task.stopped().unwrap_or_default();
                    let key = task.key_at(0, task.last_call).unwrap_or_default();
                    let nat = cx.w.nat_ip(task.host);
                    let api = own_apis(cx.w, v)[0];
                    let u = ua(&task
                        .profile
                        .behavior()
                        .lang()
                        .call_user_agent(api.spec().service));
                    let n = 5;
                    let mut t = stopped + 10 * 60 + cx.rng.range(0, 120);
                    let first = t;
                    for k in 0..n {
                        if k > 0 {
                            t += cx.rng.range(60, 300);
                        }
                        let c = cx.call(t, Who::Key(key), api, Src::Ip(nat), 0, u, None, v);
                        calls.push(c);
                        if let Some((f, by)) = api.follow_up() {
                            let c = cx.call(t, Who::Key(key), f, Src::Service(by), 0, u, None, v);
                            calls.push(c);
                        }
                    }
                    let b = base(cx.w, v);
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "critical",
                        title: format!(
                            "credentials of {} used {} minutes after it stopped",
                            task.id,
                            (first - stopped) / 60
                        ),
                        first_seen: rfc3339_string(first),
                        last_seen: rfc3339_string(t),
                        count: n as u64,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(nat)),
                        evidence: json!({"scenario": a.name(),
                            "stopped_at": rfc3339_string(stopped),
                            "access_key_id": cx.w.keys[key as usize].access_key}),
                    });
                    newly_used.push(v);
                }
                Attack::UseWithoutFetch => {
                    let v = prepared
                        .without_fetch_victim
                        .ok_or_else(|| err_no_candidate(a))?;
                    let task = &cx.w.tasks[v];
                    let key = *task.task_keys.first().ok_or_else(|| err_no_candidate(a))?;
                    let nat = cx.w.nat_ip(task.host);
                    let agent = "aws-sdk-go/1.55.5 (go1.22.9; linux; amd64)";
                    let u = ua(agent);
                    let apis = own_apis(cx.w, v);
                    let mut t = task.created_ms / 1000 + 180 + cx.rng.range(0, 60);
                    let first = t;
                    let n = 4;
                    for k in 0..n {
                        if k > 0 {
                            t += cx.rng.range(30, 120);
                        }
                        let api = apis[k % apis.len()];
                        let c = cx.call(t, Who::Key(key), api, Src::Ip(nat), 0, u, None, v);
                        calls.push(c);
                        if let Some((f, by)) = api.follow_up() {
                            let c = cx.call(t, Who::Key(key), f, Src::Service(by), 0, u, None, v);
                            calls.push(c);
                        }
                    }
                    let first_fetch = task.procs.first().and_then(|p| p.first()).map(|f| f.0);
                    let b = base(cx.w, v);
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "medium",
                        title: format!(
                            "credentials of {} used before the task ever fetched them",
                            task.id
                        ),
                        first_seen: rfc3339_string(first),
                        last_seen: rfc3339_string(t),
                        count: n as u64,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: Some(ip_str(nat)),
                        evidence: json!({"scenario": a.name(),
                            "first_fetch": first_fetch.map(rfc3339_string),
                            "access_key_id": cx.w.keys[key as usize].access_key}),
                    });
                }
                Attack::DeniedBurst => {
                    let (v, t0) = cx
                        .pick(0.2, 0.8, 900, |w, i, _| active(w, i))
                        .ok_or_else(|| err_no_candidate(a))?;
                    let task = &cx.w.tasks[v];
                    let key = task.key_at(0, t0).ok_or_else(|| err_no_candidate(a))?;
                    let apis = [
                        Api::IamListRoles,
                        Api::IamListUsers,
                        Api::S3ListBuckets,
                        Api::Ec2DescribeInstances,
                        Api::SmListSecrets,
                        Api::LambdaListFunctions,
                        Api::DdbListTables,
                        Api::IamGetRole,
                    ];
                    let n = 12;
                    let mut t = t0;
                    for k in 0..n {
                        t += cx.rng.range(5, 25);
                        let api = apis[k % apis.len()];
                        let (src, vpce) = cx.w.route(v, api);
                        let u = ua(&task
                            .profile
                            .behavior()
                            .lang()
                            .call_user_agent(api.spec().service));
                        let err = if api == Api::Ec2DescribeInstances {
                            CallError::UnauthorizedOperation
                        } else {
                            CallError::AccessDenied
                        };
                        let c = cx.call(t, Who::Key(key), api, src, vpce, u, Some(err), v);
                        calls.push(c);
                    }
                    let b = base(cx.w, v);
                    truth.push(Truth {
                        kind: a.kind(),
                        severity: "high",
                        title: format!(
                            "{n} denied calls in 4 minutes by the session of {}",
                            task.id
                        ),
                        first_seen: rfc3339_string(calls[0].time),
                        last_seen: rfc3339_string(t),
                        count: n as u64,
                        cluster_arn: Some(b.cluster_arn),
                        task_arn: Some(b.task_arn),
                        role_arn: b.role_arn,
                        host: Some(b.host),
                        source_ip: None,
                        evidence: json!({"scenario": a.name(),
                            "error_codes": ["AccessDenied", "Client.UnauthorizedOperation"]}),
                    });
                    newly_used.push(v);
                }
                Attack::UnusedPermissions => {
                    for (si, s) in cx.w.services.iter().enumerate() {
                        let Some(role) = s.task_role else { continue };
                        // Only what the trail could show is unused (a KMS grant, or one on the
                        // objects of a bucket it logs no data events of, is unverifiable).
                        let bucket = iam::resources(cx.w, si).bucket;
                        let planted: Vec<&str> = iam::planted_unused(s.profile)
                            .iter()
                            .copied()
                            .filter(|a| crate::cloudtrail::trail_shows_action(a, &bucket))
                            .collect();
                        let ran = cx.w.tasks.iter().any(|t| t.service == si);
                        if planted.is_empty() || !ran {
                            continue;
                        }
                        truth.push(Truth {
                            kind: a.kind(),
                            severity: "medium",
                            title: format!(
                                "{} grants {} that no session used",
                                cx.w.roles[role].name,
                                planted.join(", ")
                            ),
                            first_seen: rfc3339_string(cx.w.start),
                            last_seen: rfc3339_string(cx.w.end),
                            count: planted.len() as u64,
                            cluster_arn: Some(cx.w.clusters[s.cluster].arn.clone()),
                            task_arn: None,
                            role_arn: Some(cx.w.roles[role].arn.clone()),
                            host: None,
                            source_ip: None,
                            evidence: json!({"scenario": a.name(), "planted_unused_actions": planted}),
                        });
                    }
                    // Grants nothing in the simulated fleet ever exercises, beyond the planted
                    // ones: the AWS managed execution policy's push-side ECR action and the
                    // execution role's KMS decrypt (the secrets use the AWS managed key), and the
                    // one-off migration's TTL change.
                    let exec_ran =
                        cx.w.tasks
                            .iter()
                            .any(|t| cx.w.taskdefs[t.taskdef].exec_role == cx.w.exec_role);
                    let migration: Vec<&str> =
                        cx.w.tasks
                            .iter()
                            .filter(|t| t.role_override == Some(cx.w.migration_role))
                            .map(|t| t.arn.as_str())
                            .collect();
                    // A role that is also its family's execution role carries the managed
                    // execution policy, whose push-side ECR action nothing uses either.
                    // Its one unused action is read-level, so detections.md rates it low.
                    let shared: Vec<Unused<'_>> =
                        cx.w.services
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.profile.shares_execution_role())
                            .filter_map(|(si, s)| {
                                let role = s.task_role?;
                                let ran = cx.w.tasks.iter().any(|t| t.service == si);
                                Some((
                                    ran,
                                    role,
                                    &["ecr:BatchCheckLayerAvailability"][..],
                                    Some(cx.w.clusters[s.cluster].arn.clone()),
                                ))
                            })
                            .collect();
                    // The execution role's kms:Decrypt is unverifiable (the trail excludes KMS
                    // events), which leaves it one read-level unused action: low.
                    let emergent: [(Unused<'_>, &str); 2] = [
                        (
                            (
                                exec_ran,
                                cx.w.exec_role,
                                &["ecr:BatchCheckLayerAvailability"],
                                None,
                            ),
                            "low",
                        ),
                        (
                            (
                                !migration.is_empty(),
                                cx.w.migration_role,
                                &["dynamodb:UpdateTimeToLive"],
                                migration.first().and_then(|arn| {
                                    cx.w.tasks.iter().find(|t| t.arn == *arn).map(|t| {
                                        cx.w.clusters[cx.w.services[t.service].cluster].arn.clone()
                                    })
                                }),
                            ),
                            "medium",
                        ),
                    ];
                    let shared = shared.into_iter().map(|e| (e, "low"));
                    for ((ran, role, actions, cluster), severity) in
                        emergent.into_iter().chain(shared)
                    {
                        if !ran {
                            continue;
                        }
                        truth.push(Truth {
                            kind: a.kind(),
                            severity,
                            title: format!(
                                "{} grants {} that no session used",
                                cx.w.roles[role].name,
                                actions.join(", ")
                            ),
                            first_seen: rfc3339_string(cx.w.start),
                            last_seen: rfc3339_string(cx.w.end),
                            count: actions.len() as u64,
                            cluster_arn: cluster,
                            task_arn: None,
                            role_arn: Some(cx.w.roles[role].arn.clone()),
                            host: None,
                            source_ip: None,
                            evidence: json!({"scenario": a.name(), "planted_unused_actions": actions}),
                        });
                    }
                }
                Attack::UnusedRole => {
                    for (si, s) in cx.w.services.iter().enumerate() {
                        if s.profile != Profile::LegacySidekick {
                            continue;
                        }
                        let Some(role) = s.task_role else { continue };
                        let tasks: Vec<&str> =
                            cx.w.tasks
                                .iter()
                                .filter(|t| t.service == si)
                                .map(|t| t.arn.as_str())
                                .collect();
                        if tasks.is_empty() {
                            return Err(err_no_candidate(a));
                        }
                        truth.push(Truth {
                            kind: a.kind(),
                            severity: "low",
                            title: format!(
                                "{} is named by {} but its tasks never fetched or used it",
                                cx.w.roles[role].name, s.name
                            ),
                            first_seen: rfc3339_string(cx.w.start),
                            last_seen: rfc3339_string(cx.w.end),
                            count: tasks.len() as u64,
                            cluster_arn: Some(cx.w.clusters[s.cluster].arn.clone()),
                            task_arn: None,
                            role_arn: Some(cx.w.roles[role].arn.clone()),
                            host: None,
                            source_ip: None,
                            evidence: json!({"scenario": a.name(), "family": s.name, "tasks": tasks}),
                        });
                    }
                }
            }
        }
        for s in uas {
            w.intern_ua(&s);
        }
        for (h, e) in audit {
            w.audit[h].push(e);
        }
        w.attack_calls.extend(calls);
        w.truth.extend(truth);
        used.extend(newly_used);
    }
    Ok(())
}
