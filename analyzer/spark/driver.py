#!/usr/bin/env python3
"""Runs credtrail's detections on Apache Spark and writes the findings as JSON lines.

    python driver.py --input DIR --out findings.jsonl [--since T] [--until T] [--param k=v]...
    spark-submit driver.py --input s3a://bucket/prefix --out findings.jsonl

DIR (a path or an s3a:// URL) is what `credtrail export-sql --engine spark --out DIR` wrote:
tables/<table>/ holds each table the SQL reads as Parquet; job.json lists the CloudTrail parts
(`cloudtrail_events`) where the store keeps them, unless tables/cloudtrail_events exists or
--cloudtrail names other Parquet files. The SQL is in sql/ beside this file (generated from the
DuckDB source by analyzer/spark/generate.py). A detection that fails is reported on stderr and
skipped, as `credtrail analyze` does; the exit status is then 1.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARAM = re.compile(r"__credtrail_param_(\w+?)__")
SEVERITY = {"low": 0, "medium": 1, "high": 2, "critical": 3}
KEY_ORDER = ["task_arn", "host", "source_ip", "role_arn", "cluster_arn"]


def message(e):
    """The first lines of an error (Spark's start with a blank line or a JVM trace)."""
    lines = [line for line in str(e).splitlines() if line.strip() and not line.startswith("\tat ")]
    return " ".join(lines[:3])[:2000]


def sql_literal(value):
    if value is None:
        return "NULL"
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def substitute(sql, values):
    def one(m):
        name = m.group(1)
        if name not in values:
            raise ValueError(f"no value for parameter {name}")
        return sql_literal(values[name])

    return PARAM.sub(one, sql)


def statements(text):
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip() for s in re.split(r";\s*\n", body) if s.strip()]


def header(text):
    h = {}
    for line in text.splitlines():
        m = re.match(r"-- (\w+): (.*)$", line)
        if m and m.group(1) not in h:
            h[m.group(1)] = m.group(2).strip()
    return h


def split_list(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def wrapped(sql):
    ts = "yyyy-MM-dd'T'HH:mm:ss'Z'"
    return (
        "SELECT CAST(kind AS STRING) AS kind, CAST(severity AS STRING) AS severity, "
        "CAST(title AS STRING) AS title, "
        f"date_format(CAST(first_seen AS TIMESTAMP), \"{ts}\") AS first_seen, "
        f"date_format(CAST(last_seen AS TIMESTAMP), \"{ts}\") AS last_seen, "
        "CAST(count AS BIGINT) AS count, CAST(cluster_arn AS STRING) AS cluster_arn, "
        "CAST(task_arn AS STRING) AS task_arn, CAST(role_arn AS STRING) AS role_arn, "
        "CAST(host AS STRING) AS host, CAST(source_ip AS STRING) AS source_ip, "
        f"CAST(evidence AS STRING) AS evidence FROM (\n{sql}\n) AS finding"
    )


def order_key(f):
    # detect.rs `order`: severity descending, first_seen, kind, then the key columns; None first.
    def opt(v):
        return (0, "") if v is None else (1, v)

    return (
        -SEVERITY[f["severity"]],
        opt(f["first_seen"]),
        f["kind"],
        *[opt(f[c]) for c in KEY_ORDER],
    )


def session(app):
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName(app)
        .master(os.environ.get("CREDTRAIL_SPARK_MASTER", "local[*]"))
        .config("spark.driver.memory", os.environ.get("CREDTRAIL_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.legacy.sizeOfNull", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("CREDTRAIL_SPARK_PARTITIONS", "8"))
        .config("spark.ui.enabled", "false")
        # nothing is written to a warehouse; Spark would otherwise create one in the working directory
        .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="credtrail-spark-warehouse-"))
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def register_tables(spark, root, cloudtrail):
    tables = root.rstrip("/") + "/tables"
    job = {}
    try:
        job = json.loads(spark.sparkContext.wholeTextFiles(root.rstrip("/") + "/job.json").first()[1])
    except Exception as e:  # noqa: BLE001 - a missing job.json is allowed with --cloudtrail
        if cloudtrail is None:
            raise SystemExit(f"cannot read {root}/job.json: {e}")
    for name in job.get("tables", []):
        spark.read.parquet(f"{tables}/{name}").createOrReplaceTempView(name)
    if cloudtrail:
        parts = [cloudtrail]
    else:
        parts = job.get("cloudtrail_parts", [])
    if parts:
        spark.read.parquet(*parts).createOrReplaceTempView("cloudtrail_events")
    elif "cloudtrail_events" not in job.get("tables", []):
        spark.read.parquet(f"{tables}/cloudtrail_event_columns").createOrReplaceTempView(
            "cloudtrail_events"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="what export-sql wrote (path or s3a:// URL)")
    ap.add_argument("--out", required=True, help="findings, one JSON object per line")
    ap.add_argument("--cloudtrail", help="Parquet files of cloudtrail_events (path or s3a:// URL)")
    ap.add_argument("--sql", default=str(HERE / "sql"), help="the generated SQL")
    ap.add_argument("--since", help="only events at or after this time")
    ap.add_argument("--until", help="only events before this time")
    ap.add_argument("--param", action="append", default=[], help="name=value or detection.name=value")
    ap.add_argument("--only", action="append", default=[], help="run only these detection ids")
    args = ap.parse_args()
    overrides = {}
    for p in args.param:
        if "=" not in p:
            raise SystemExit(f"--param {p!r}: want name=value")
        k, v = p.split("=", 1)
        overrides[k.strip()] = v
    sql_dir = Path(args.sql)
    detections = []
    for path in sorted((sql_dir / "detections").glob("*.sql")):
        text = path.read_text()
        h = header(text)
        params = {}
        for p in split_list(h.get("params", "")):
            n, d = p.split("=", 1)
            params[n.strip()] = d.strip()
        detections.append((path.name, h, params, text))
    ids = {h["id"] for _, h, _, _ in detections}
    for k in overrides:
        did, _, n = k.rpartition(".")
        known = any(
            (not did or h["id"] == did) and n in params for _, h, params, _ in detections
        )
        if not known:
            raise SystemExit(f"--param {k}: no detection has this parameter")
    for o in args.only:
        if o not in ids:
            raise SystemExit(f"--only {o}: no such detection")

    spark = session("credtrail-detections")
    spark.sparkContext.setLogLevel("ERROR")
    started = time.monotonic()
    register_tables(spark, args.input, args.cloudtrail)
    window = {"since": args.since, "until": args.until}
    failed = []
    for stmt in statements((sql_dir / "views.sql").read_text()):
        name = re.match(r"CREATE OR REPLACE TEMPORARY VIEW (\w+)", stmt)
        try:
            spark.sql(substitute(stmt, window))
        except Exception as e:  # noqa: BLE001 - reported, the detections reading it then fail
            failed.append((f"view {name.group(1) if name else '?'}", message(e)))
    keyed = []
    timings = []
    for file, h, params, text in detections:
        if args.only and h["id"] not in args.only:
            continue
        values = dict(window)
        for n, d in params.items():
            values[n] = overrides.get(f"{h['id']}.{n}", overrides.get(n, d))
        t0 = time.monotonic()
        try:
            body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
            rows = spark.sql(wrapped(substitute(body, values))).collect()
        except Exception as e:  # noqa: BLE001 - reported and skipped, as analyze does
            failed.append((file, message(e)))
            continue
        timings.append((file, time.monotonic() - t0))
        key = split_list(h["key"])
        for r in rows:
            f = r.asDict()
            f["kind"] = f["kind"] or h["id"]
            f["title"] = f["title"] or h["title"]
            f["count"] = f["count"] or 0
            if f["severity"] not in SEVERITY:
                failed.append((file, f"returned severity {f['severity']!r}"))
                break
            f["evidence"] = json.loads(f["evidence"]) if f["evidence"] is not None else None
            keyed.append((key, f))
    keyed.sort(key=lambda kf: order_key(kf[1]))
    seen = set()
    findings = []
    for key, f in keyed:
        k = (f["kind"], tuple(f[c] for c in key))
        if k not in seen:
            seen.add(k)
            findings.append(f)
    findings.sort(key=order_key)
    fields = ["kind", "severity", "title", "first_seen", "last_seen", "count", "cluster_arn",
              "task_arn", "role_arn", "host", "source_ip", "evidence"]
    with open(args.out, "w") as out:
        for f in findings:
            out.write(json.dumps({k: f[k] for k in fields}, separators=(",", ":")) + "\n")
    for what, e in failed:
        print(f"warning: failed and skipped: {what}: {e}", file=sys.stderr)
    for file, secs in timings:
        print(f"timing: {file} {secs:.2f}s", file=sys.stderr)
    print(
        f"credtrail-spark: {len(findings)} findings in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    spark.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
