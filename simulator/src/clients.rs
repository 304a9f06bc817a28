//! How each client in a task talks to the agent's credential endpoint, as the captures of real
//! SDKs in `shared/data/sdk-credential-fetches/` show it: when it fetches (at start and then
//! lazily, on the first API call inside its refresh window; once per call or per command for
//! clients that hold nothing), how it retries while the agent fails (503/500 during an agent
//! restart, 429 while throttled, 400 for an unknown credential ID), and which connection (source
//! port) each request takes.
//!
//! The fetch schedule (audit log) and CloudTrail's hourly call generator must agree on every
//! call time, so both draw a process's calls from [`proc_calls`] and [`client_calls`], which are
//! closed-form per task, client and hour.

use super::calls::{Api, Client, Lang, Mode};
use super::cluster::{AuditEntry, Task, World};
use super::rng::{Rng, stream};

/// The agent closes a connection idle this long (milliseconds).
pub const IDLE_CLOSE_MS: i64 = 5_000;

/// A window in which a host's agent answers every credential request with `status`: 503 or 500
/// while it restarts, 429 while it throttles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub from: i64,
    pub to: i64,
    pub status: u16,
}

/// A client that holds a credential ID the agent does not know (copied from an earlier task),
/// in a container that also runs a working client: a burst of 400s on each of its API calls,
/// for as long as the task runs. A misconfiguration, not an attack.
#[derive(Debug, Clone, Copy)]
pub struct StaleClient {
    pub task: usize,
    pub lang: Lang,
    pub from: i64,
    /// Seconds between its API calls.
    pub period: i64,
}

fn hour_of(w: &World, t: i64) -> i64 {
    (t - w.start).div_euclid(3600)
}

fn merged_poisson(
    rng: &mut Rng,
    hs: i64,
    he: i64,
    steady: &[(Api, f64)],
    share: f64,
) -> Vec<(i64, Api)> {
    let mut out = Vec::new();
    for &(api, rate) in steady {
        let rate = rate * share;
        if rate <= 0.0 {
            continue;
        }
        let mean = 3600.0 / rate;
        let mut t = hs as f64 + rng.exp(mean);
        while (t as i64) < he {
            out.push((t as i64, api));
            t += rng.exp(mean);
        }
    }
    out.sort_by_key(|c| c.0);
    out
}

/// The steady API calls of cached process `p` of client `c` of task `ti` in simulation hour
/// `h`, in time order (every second of the hour; callers bound them to the process's life).
pub fn proc_calls(w: &World, ti: usize, c: usize, p: usize, h: i64) -> Vec<(i64, Api)> {
    let b = w.tasks[ti].profile.behavior();
    let Some(client) = b.clients.get(c) else {
        return Vec::new();
    };
    let procs = match client.mode {
        Mode::Cached { procs, .. } => f64::from(procs.max(1)),
        _ => 1.0,
    };
    let hs = w.start + h * 3600;
    let mut rng = Rng::derive(
        w.seed,
        &[
            stream::TASK_CALLS,
            ti as u64,
            h as u64,
            1000 + (c * 64 + p) as u64,
        ],
    );
    merged_poisson(&mut rng, hs, hs + 3600, client.steady, 1.0 / procs)
}

/// Calls of a per-call or loop client in simulation hour `h` within the task's life: each is one
/// process or session that fetches one second before it calls.
pub fn client_calls(w: &World, ti: usize, c: usize, h: i64) -> Vec<(i64, Api)> {
    let t = &w.tasks[ti];
    let b = t.profile.behavior();
    let Some(client) = b.clients.get(c) else {
        return Vec::new();
    };
    let hs = w.start + h * 3600;
    let he = hs + 3600;
    let lo = t.app_start() + 1;
    let hi = t.last_call;
    let mut out = match client.mode {
        Mode::Cached { .. } => Vec::new(),
        Mode::PerCall => {
            let mut rng = Rng::derive(
                w.seed,
                &[stream::TASK_CALLS, ti as u64, h as u64, 2000 + c as u64],
            );
            merged_poisson(&mut rng, hs, he, client.steady, 1.0)
        }
        Mode::Loop { period } => {
            let weights: Vec<u32> = client.steady.iter().map(|s| s.1 as u32).collect();
            let base = t.app_start();
            let mut k = ((hs - base) / period - 1).max(0);
            let mut v = Vec::new();
            loop {
                let mut rng = Rng::derive(
                    w.seed,
                    &[stream::FETCH, ti as u64, k as u64, 3000 + c as u64],
                );
                let at = base + 1 + k * period + rng.range(0, 3);
                if at >= he {
                    break;
                }
                if at >= hs {
                    v.push((at, client.steady[rng.weighted(&weights)].0));
                }
                k += 1;
            }
            v
        }
    };
    out.retain(|&(ts, _)| lo <= ts && ts <= hi);
    out
}

/// The calls of one cached process from a given second on, hour by hour.
struct Cursor<'a> {
    w: &'a World,
    ti: usize,
    c: usize,
    p: usize,
    hour: i64,
    buf: Vec<(i64, Api)>,
    pos: usize,
    until: i64,
}

impl<'a> Cursor<'a> {
    fn new(w: &'a World, ti: usize, c: usize, p: usize, until: i64) -> Cursor<'a> {
        Cursor {
            w,
            ti,
            c,
            p,
            hour: i64::MIN,
            buf: Vec::new(),
            pos: 0,
            until,
        }
    }

    /// The first call at or after `t` (and at most `until`).
    fn at_or_after(&mut self, t: i64) -> Option<i64> {
        let mut h = hour_of(self.w, t);
        loop {
            if self.w.start + h * 3600 > self.until {
                return None;
            }
            if h != self.hour {
                self.buf = proc_calls(self.w, self.ti, self.c, self.p, h);
                self.hour = h;
                self.pos = 0;
            }
            while self.pos < self.buf.len() && self.buf[self.pos].0 < t {
                self.pos += 1;
            }
            if let Some(&(ts, _)) = self.buf.get(self.pos) {
                return (ts <= self.until).then_some(ts);
            }
            h += 1;
        }
    }
}

/// One client's connection to the agent.
pub struct Conn {
    keep: bool,
    port: u16,
    last_ms: i64,
}

impl Conn {
    pub fn new(lang: Lang) -> Conn {
        Conn {
            keep: lang.keeps_alive(),
            port: 0,
            last_ms: i64::MIN / 2,
        }
    }

    /// The source port of a request at `ms`: the open connection while it is not idle past the
    /// agent's limit, else a new one.
    pub fn port(&mut self, rng: &mut Rng, ms: i64, new: bool) -> u16 {
        if new || !self.keep || self.port == 0 || ms - self.last_ms > IDLE_CLOSE_MS {
            self.port = rng.range(32768, 61000) as u16;
        }
        self.last_ms = ms;
        self.port
    }
}

/// One cached process's fetches: (second, key) in time order.
pub type Timeline = Vec<(i64, u32)>;

/// Everything a task's clients send to the agent, and what that means for its calls.
pub struct Requests {
    pub entries: Vec<AuditEntry>,
    /// Per cached process: (fetch second, key) in time order.
    pub procs: Vec<Vec<(i64, u32)>>,
    /// Per cached process: (client index, process index within the client).
    pub proc_ids: Vec<(u8, u8)>,
    /// Windows in which a cached process's calls fail because its refresh failed.
    pub lost: Vec<(u8, i64, i64)>,
}

struct Emit<'a> {
    w: &'a World,
    ti: usize,
    src: Option<u32>,
    out: &'a mut Vec<AuditEntry>,
}

impl Emit<'_> {
    fn push(&mut self, ms: i64, status: u16, port: u16, ua: u16) {
        let time = ms.div_euclid(1000);
        let src = self.src.map(|ip| (ip, port));
        self.out.push(if status == 200 {
            AuditEntry::fetch(time, src, ua, self.ti as u32, false)
        } else {
            AuditEntry {
                time,
                status,
                src,
                path: "/v2/credentials".to_string(),
                ua,
                task: None,
                exec: false,
            }
        });
    }

    /// One credential resolution attempted at second `at`: a success, or a failed round in the
    /// client's pattern. Returns the second the round ends when it failed.
    fn resolve(
        &mut self,
        rng: &mut Rng,
        conn: &mut Conn,
        lang: Lang,
        ua: u16,
        at: i64,
        host: usize,
    ) -> Option<i64> {
        let ms = at * 1000 + rng.range(0, 1000);
        match self.w.fault_at(host, at) {
            None => {
                let port = conn.port(rng, ms, false);
                self.push(ms, 200, port, ua);
                None
            }
            Some(status) => Some(self.failed_round(rng, conn, lang, ua, ms, status)),
        }
    }

    fn failed_round(
        &mut self,
        rng: &mut Rng,
        conn: &mut Conn,
        lang: Lang,
        ua: u16,
        ms: i64,
        status: u16,
    ) -> i64 {
        let mut jitter = |lo: i64, hi: i64| rng.range(lo, hi.max(lo + 1));
        let round = lang.failed_round(status, &mut jitter);
        let mut end = ms;
        for (i, (off, new)) in round.into_iter().enumerate() {
            // JS v3's last attempt comes from its next provider, on a connection of its own.
            let port = if lang == Lang::NodeV3 && new && i > 0 {
                rng.range(32768, 61000) as u16
            } else {
                conn.port(rng, ms + off, new)
            };
            self.push(ms + off, status, port, ua);
            end = ms + off;
        }
        end.div_euclid(1000) + 1
    }
}

/// Every request a task's own clients make (task role only; the awslogs driver's execution-role
/// fetches are the caller's).
pub fn task_requests(w: &World, ti: usize, rng: &mut Rng, uas: &[u16]) -> Requests {
    let t: &Task = &w.tasks[ti];
    let b = t.profile.behavior();
    let mut entries = Vec::new();
    let mut procs = Vec::new();
    let mut proc_ids = Vec::new();
    let mut lost = Vec::new();
    let mut em = Emit {
        w,
        ti,
        src: t.fetch_ip(),
        out: &mut entries,
    };
    for (c, client) in b.clients.iter().enumerate() {
        let ua = uas[c];
        match client.mode {
            Mode::Cached {
                procs: n,
                providers,
            } => {
                for p in 0..usize::from(n) {
                    let start = t.app_start() + p as i64 * rng.range(0, 4);
                    let (timeline, l) =
                        cached_process(&mut em, rng, client, c, p, providers, start, ua);
                    lost.extend(l.into_iter().map(|(a, b)| (procs.len() as u8, a, b)));
                    procs.push(timeline);
                    proc_ids.push((c as u8, p as u8));
                }
            }
            Mode::PerCall | Mode::Loop { .. } => {
                // A new process (CLI command) or session per call: a new connection each time.
                let first = hour_of(w, t.app_start());
                let last = hour_of(w, t.last_call);
                for h in first..=last {
                    for (ts, _) in client_calls(w, ti, c, h) {
                        let mut conn = Conn::new(client.lang);
                        em.resolve(rng, &mut conn, client.lang, ua, ts - 1, w.agent_host(ti));
                    }
                }
            }
        }
    }
    if let Some(s) = w.stale.filter(|s| s.task == ti) {
        let ua = uas[b.clients.len()];
        let mut at = s.from;
        while at < t.last_call {
            // Every call of the misconfigured client resolves credentials and fails: a 400
            // round in its SDK's pattern (an agent fault answers with its own status instead).
            let mut conn = Conn::new(s.lang);
            let ms = at * 1000 + rng.range(0, 1000);
            let status = w.fault_at(w.agent_host(ti), at).unwrap_or(400);
            em.failed_round(rng, &mut conn, s.lang, ua, ms, status);
            at += s.period + rng.range(-10, 11);
        }
    }
    Requests {
        entries,
        procs,
        proc_ids,
        lost,
    }
}

/// Resolve at second `at`; while the agent fails, retry on each later API call of the process.
/// Returns the second of the successful fetch, or `None` when the process makes no more calls.
#[expect(
    clippy::too_many_arguments,
    reason = "one process: its emitter, connection, cursor and user agent"
)]
fn resolve_on_calls(
    em: &mut Emit,
    rng: &mut Rng,
    conn: &mut Conn,
    cursor: &mut Cursor,
    lang: Lang,
    ua: u16,
    host: usize,
    mut at: i64,
) -> Option<i64> {
    loop {
        match em.resolve(rng, conn, lang, ua, at, host) {
            None => return Some(at),
            Some(end) => at = cursor.at_or_after(end)?,
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one process: its client, identity and user agent"
)]
fn cached_process(
    em: &mut Emit,
    rng: &mut Rng,
    client: &Client,
    c: usize,
    p: usize,
    providers: u8,
    start: i64,
    ua: u16,
) -> (Timeline, Vec<(i64, i64)>) {
    let w = em.w;
    let t = &w.tasks[em.ti];
    let lang = client.lang;
    let host = w.agent_host(em.ti);
    let mut timeline = Vec::new();
    let mut lost = Vec::new();
    if start >= t.last_call {
        return (timeline, lost);
    }
    let mut cursor = Cursor::new(w, em.ti, c, p, t.last_call);
    let mut conn = Conn::new(lang);
    let Some(first) = resolve_on_calls(em, rng, &mut conn, &mut cursor, lang, ua, host, start)
    else {
        return (timeline, lost);
    };
    let Some(mut key) = w.latest_key(&t.task_keys, first) else {
        return (timeline, lost);
    };
    timeline.push((first, key));
    // Java apps with one provider per service client fetch once per client, back to back on
    // one connection: byte-identical lines in the same second.
    for _ in 1..providers {
        let ms = conn.last_ms + rng.range(5, 60);
        let port = conn.port(rng, ms, false);
        em.push(ms, 200, port, ua);
    }
    let mut last = first;
    loop {
        // Lazy refresh: the first API call once less than the SDK's window is left.
        let due = w.keys[key as usize].expires - lang.refresh_margin();
        let Some(trigger) = cursor.at_or_after(due.max(last + 1)) else {
            break;
        };
        let Some(s) = resolve_on_calls(em, rng, &mut conn, &mut cursor, lang, ua, host, trigger)
        else {
            break;
        };
        if s > trigger && lang.refresh_failure_fails_call() {
            lost.push((trigger, s));
        }
        let Some(next) = w.latest_key(&t.task_keys, s).filter(|&k| k != key) else {
            break;
        };
        key = next;
        timeline.push((s, key));
        for _ in 1..providers {
            let ms = conn.last_ms + rng.range(50, 2_000);
            let port = conn.port(rng, ms, false);
            em.push(ms, 200, port, ua);
        }
        last = s;
    }
    (timeline, lost)
}
