//! Per-host ECS agent credential audit logs (`hosts/<host>/var/log/ecs/audit.log*`), written
//! line for line as the agent writes them (formats.md §1) and rolled as its seelog writer
//! rolls them (§2): hourly, by size, or pre-1.36 dated-only.

use std::borrow::Cow;
use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use credtrail_collector::parse::AuditLine;

use super::clock;
use super::cluster::{AuditEntry, Rollover, World, ip_str};
use super::rng::{Rng, stream};

/// What the audit writer produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub files: u64,
    pub errors: u64,
}

/// A metrics sidecar polling task stats gets throttled (429) on the metadata endpoint now and
/// then: three lines, never five within ten minutes from one address. (Agent restarts,
/// throttling of credential requests and stale credential IDs are the clients' own, in
/// `clients`.)
fn near_misses(w: &World, host: usize, out: &mut Vec<AuditEntry>) {
    let mut rng = Rng::derive(w.seed, &[stream::HOST_AUDIT, host as u64]);
    let on_host: Vec<usize> = (0..w.tasks.len())
        .filter(|&i| w.tasks[i].host == host && !w.tasks[i].fargate && !w.tasks[i].procs.is_empty())
        .collect();
    if on_host.is_empty() {
        return;
    }
    if host % 3 == 1 {
        // A metrics sidecar polling task stats gets throttled now and then (three 429s).
        let task = &w.tasks[on_host[rng.below(on_host.len() as u64) as usize]];
        if let Some(ip) = task.fetch_ip() {
            let mut t = w.start + 3600 + rng.range(0, 1800);
            while t < w.end - 600 {
                if task.running_at(t) {
                    for k in 0..3 {
                        out.push(AuditEntry {
                            time: t + k * 7,
                            status: 429,
                            src: Some((ip, rng.range(32768, 61000) as u16)),
                            path: format!(
                                "/v3/{}-{}/task/stats",
                                &task.containers[0].docker_id[..32],
                                rng.range(1_000_000_000, 4_000_000_000)
                            ),
                            ua: u16::MAX,
                            task: None,
                            exec: false,
                        });
                    }
                }
                t += 2 * 3600 + rng.range(0, 1800);
            }
        }
    }
}

const METRICS_USER_AGENT: &str = "Go-http-client/1.1";

/// Render one host's lines (host clock) in the order the agent wrote them.
fn render_lines(w: &World, host: usize) -> Vec<(i64, Vec<u8>)> {
    let h = &w.hosts[host];
    let cluster = &w.clusters[h.cluster];
    let mut entries = w.audit[host].clone();
    near_misses(w, host, &mut entries);
    // The log begins when the collector was installed: older rolls are gone.
    entries.retain(|e| e.time >= h.audit_from);
    entries.sort_by_key(|e| e.time);
    let mut lines = Vec::with_capacity(entries.len());
    for e in &entries {
        let ok = e.status == 200;
        let task = e.task.filter(|_| ok).map(|t| &w.tasks[t as usize]);
        let ua: &str = if e.ua == u16::MAX {
            METRICS_USER_AGENT
        } else {
            &w.user_agents[e.ua as usize]
        };
        let line = AuditLine {
            event_time: e.time + h.skew,
            status: e.status,
            source_ip: e.src.map(|(ip, _)| Cow::Owned(ip_str(ip))),
            source_port: e.src.map(|(_, p)| p),
            request_path: Cow::Borrowed(e.path.as_str()),
            user_agent: Cow::Borrowed(ua),
            task_arn: task.map(|t| Cow::Borrowed(t.arn.as_str())),
            event_type: task.map(|_| {
                Cow::Borrowed(if e.exec {
                    "GetCredentialsExecutionRole"
                } else {
                    "GetCredentials"
                })
            }),
            log_version: task.map(|_| 2),
            cluster: task.map(|_| Cow::Borrowed(cluster.name.as_str())),
            container_instance_arn: task.map(|_| Cow::Borrowed(h.container_instance_arn.as_str())),
            lossy: false,
            truncated: false,
        };
        let mut buf = Vec::with_capacity(360);
        line.write_to(&mut buf);
        buf.push(b'\n');
        lines.push((e.time + h.skew, buf));
    }
    lines
}

fn write_file(dir: &Path, name: &str, bytes: &[u8], mtime: i64) -> Result<()> {
    let path = dir.join(name);
    fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let file = fs::File::options()
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(mtime).unwrap_or(0));
    file.set_modified(when)
        .with_context(|| format!("setting the time of {}", path.display()))?;
    Ok(())
}

/// Write every host's audit log files under `out/hosts/<host>/var/log/ecs/`.
pub fn write(w: &World, out: &Path) -> Result<Stats> {
    let mut stats = Stats::default();
    for (hi, host) in w.hosts.iter().enumerate() {
        let dir = out.join("hosts").join(&host.name).join("var/log/ecs");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lines = render_lines(w, hi);
        stats.lines += lines.len() as u64;
        stats.errors += lines.iter().filter(|(_, l)| l.ends_with(b" \n")).count() as u64;
        match host.rollover {
            Rollover::Hourly | Rollover::DatedOnly => {
                let mut groups: Vec<(i64, Vec<u8>, i64)> = Vec::new();
                for (t, l) in &lines {
                    let hour = t.div_euclid(3600);
                    match groups.last_mut() {
                        Some(g) if g.0 == hour => {
                            g.1.extend_from_slice(l);
                            g.2 = *t;
                        }
                        _ => groups.push((hour, l.clone(), *t)),
                    }
                }
                let n = groups.len();
                for (i, (hour, bytes, last)) in groups.iter().enumerate() {
                    let name = if i + 1 == n && host.rollover == Rollover::Hourly {
                        "audit.log".to_string()
                    } else {
                        format!("audit.log.{}", clock::hour_suffix(hour * 3600))
                    };
                    write_file(&dir, &name, bytes, *last)?;
                    stats.files += 1;
                }
            }
            Rollover::Size { max_bytes } => {
                let mut cur: Vec<u8> = Vec::new();
                let mut last = w.start;
                let mut n = 0;
                for (t, l) in &lines {
                    if cur.len() as u64 >= max_bytes {
                        n += 1;
                        write_file(&dir, &format!("audit.log.{n}"), &cur, last)?;
                        stats.files += 1;
                        cur.clear();
                    }
                    cur.extend_from_slice(l);
                    last = *t;
                }
                if !cur.is_empty() {
                    write_file(&dir, "audit.log", &cur, last)?;
                    stats.files += 1;
                }
            }
        }
    }
    Ok(stats)
}
