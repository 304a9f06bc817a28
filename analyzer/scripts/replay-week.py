#!/usr/bin/env python3
"""Measures the week replay at any fleet size: simulates HOSTS hosts for 7 days into WORKDIR/sim
(kept for the next run), ingests them day by day into WORKDIR/daily.duckdb as analyzer/tests/week.rs
does, and prints each daily `analyze --since-last-run`'s wall time and peak RSS (GNU time -v)
beside an unrecorded run judging the whole store that day, then one full run on a fresh store
and whether its findings equal the daily store's.

    CREDTRAIL=target/release/credtrail analyzer/scripts/replay-week.py HOSTS WORKDIR
"""
import os, re, subprocess, sys, shutil, time
B = os.environ.get("CREDTRAIL", "credtrail")
hosts, work = int(sys.argv[1]), sys.argv[2]
DAYS = 7
sim = os.path.join(work, "sim")
def run(db, *args, timed=False):
    cmd = [B, "--store", db, *args]
    if timed:
        cmd = ["/usr/bin/time", "-v"] + cmd
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{cmd}: {p.stdout}\n{p.stderr}")
    wall = time.time() - t
    rss = None
    if timed:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        rss = int(m.group(1)) / 1024
    return p.stdout, wall, rss
if not os.path.exists(sim):
    run(os.path.join(work, "x.duckdb"), "simulate", "--out", sim, "--hosts", str(hosts), "--hours", str(DAYS * 24), "--seed", "7", "--threads", "1")
def day(d): return f"2026-11-{16+d:02d}"
db = os.path.join(work, "daily.duckdb")
for f in os.listdir(work):
    if f.startswith("daily.duckdb") or f.startswith("full.duckdb"):
        p = os.path.join(work, f); shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
for d in range(DAYS):
    last = d + 1 == DAYS
    cs, ce = day(d).replace("-", ""), day(d + 1).replace("-", "")
    in_day = lambda t: (d == 0 or t >= cs) and (last or t < ce)
    end = "9" if last else f"{day(d+1)}T00:00:00Z"
    out = os.path.join(work, f"day{d}")
    shutil.rmtree(out, ignore_errors=True)
    logs = []
    for h in sorted(os.listdir(os.path.join(sim, "hosts"))):
        src = os.path.join(sim, "hosts", h, "var/log/ecs"); dst = os.path.join(out, "hosts", h)
        for f in sorted(os.listdir(src)):
            text = open(os.path.join(src, f), "rb").read()
            n = 0
            for line in text.splitlines(keepends=True):
                if len(line) >= 20 and line[:20].decode() >= end: break
                n += len(line)
            if n:
                os.makedirs(dst, exist_ok=True); open(os.path.join(dst, f), "wb").write(text[:n])
        if os.path.exists(dst): logs.append(dst)
    ecs = os.path.join(out, "ecs"); os.makedirs(ecs)
    for f in sorted(os.listdir(os.path.join(sim, "ecs"))):
        if f.startswith("describe-tasks-") and in_day(f.rsplit("-", 2)[1]):
            shutil.copy(os.path.join(sim, "ecs", f), ecs)
    net = [os.path.join(sim, "network", t) for t in sorted(os.listdir(os.path.join(sim, "network"))) if in_day(t)]
    trail = [os.path.join(sim, "cloudtrail/event-selectors.json"), os.path.join(sim, "cloudtrail/trails.json")]
    acc = os.path.join(sim, "cloudtrail/AWSLogs")
    for a in sorted(os.listdir(acc)):
        for r in sorted(os.listdir(os.path.join(acc, a, "CloudTrail"))):
            m = os.path.join(acc, a, "CloudTrail", r, "2026/11")
            trail += [os.path.join(m, x) for x in sorted(os.listdir(m)) if in_day(f"202611{int(x):02d}")]
    t0 = time.time()
    if logs: run(db, "ingest", "audit", *logs)
    run(db, "ingest", "ecs", ecs, os.path.join(sim, "ecs/task-definitions"))
    run(db, "ingest", "iam", os.path.join(sim, "iam/authorization-details.json"))
    run(db, "ingest", "cloudtrail", "--no-progress", *trail)
    if net: run(db, "ingest", "network", *net)
    ingest = time.time() - t0
    out_, wall, rss = run(db, "analyze", "--since-last-run", timed=True)
    # The same store judged whole, not recorded (an explicit --since is never recorded): what a
    # run without the increment would take that day.
    _, fwall, frss = run(db, "analyze", "--since", "2000-01-01T00:00:00Z", "--format", "jsonl", timed=True)
    print(f"day {d+1} {day(d)}: ingest {ingest:.1f} s; analyze --since-last-run {wall:.1f} s, peak RSS {rss:.0f} MiB "
          f"(whole store: {fwall:.1f} s, {frss:.0f} MiB); {out_.splitlines()[0]}", flush=True)
full = os.path.join(work, "full.duckdb")
t0 = time.time()
logs = [os.path.join(sim, "hosts", h, "var/log/ecs") for h in sorted(os.listdir(os.path.join(sim, "hosts")))]
run(full, "ingest", "audit", *logs); run(full, "ingest", "ecs", os.path.join(sim, "ecs"))
run(full, "ingest", "iam", os.path.join(sim, "iam/authorization-details.json"))
run(full, "ingest", "cloudtrail", "--no-progress", os.path.join(sim, "cloudtrail"))
run(full, "ingest", "network", os.path.join(sim, "network"))
ingest = time.time() - t0
o, wall, rss = run(full, "analyze", "--format", "jsonl", timed=True)
o2, _, _ = run(db, "analyze", "--format", "jsonl")
import json
def keyset(o): return sorted((f["kind"], f.get("task_arn"), f.get("role_arn"), f.get("host"), f.get("source_ip"), f["severity"], f["count"]) for f in map(json.loads, o.splitlines()))
print(f"full week: ingest {ingest:.1f} s; analyze {wall:.1f} s, peak RSS {rss:.0f} MiB; {len(o.splitlines())} findings; daily store's current findings equal: {keyset(o) == keyset(o2)}")
