#!/usr/bin/env python3
"""Regenerates analyzer/data/api_operations.tsv.gz: every AWS API operation, per service.

CloudTrail records an API call under the operation's name (eventName) and the service's endpoint
(eventSource). An IAM action is observable only when some operation records it; this file says
which operations exist, so the catalog can tell a permission-only action (`rds-db:connect`,
`es:ESHttpGet`, `sts:TagSession`) from one CloudTrail shows.

Source: the PyPI package `botocore` (Apache-2.0, Amazon Web Services), whose service models are
generated from AWS's own API definitions. Usage:

    pip install --upgrade botocore        # or: pip download botocore && unzip the wheel
    python3 analyzer/data/generate_operations.py [PATH_TO_botocore_PACKAGE_DIR]

Output (gzip, deterministic: no timestamp in the gzip header), tab-separated, one line each:
    #key<TAB>value                                          metadata (source, version, license)
    O<TAB>service<TAB>endpointPrefix<TAB>signingName<TAB>Operation,Operation,...
Only the newest API version of each service is read.
"""
import gzip
import io
import json
import os
import re
import sys


def package_dir(argv):
    if len(argv) > 1:
        return argv[1]
    import botocore  # noqa: PLC0415

    return os.path.dirname(botocore.__file__)


def version_of(pkg):
    with open(os.path.join(pkg, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", f.read(), re.M)
    return m.group(1) if m else "unknown"


def load(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv):
    pkg = package_dir(argv)
    data = os.path.join(pkg, "data")
    lines = [
        "#source\tPyPI botocore (service models)",
        f"#version\tbotocore {version_of(pkg)}",
        "#license\tApache-2.0 (Amazon Web Services)",
    ]
    for service in sorted(os.listdir(data)):
        sdir = os.path.join(data, service)
        if not os.path.isdir(sdir):
            continue
        versions = sorted(v for v in os.listdir(sdir) if os.path.isdir(os.path.join(sdir, v)))
        model = None
        for v in reversed(versions):
            for name in ("service-2.json.gz", "service-2.json"):
                p = os.path.join(sdir, v, name)
                if os.path.exists(p):
                    model = load(p)
                    break
            if model:
                break
        if not model:
            continue
        meta = model.get("metadata", {})
        endpoint = meta.get("endpointPrefix", "")
        signing = meta.get("signingName", endpoint)
        ops = sorted(model.get("operations", {}))
        if ops:
            lines.append(f"O\t{service}\t{endpoint}\t{signing}\t{','.join(ops)}")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api_operations.tsv.gz")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as g:
        g.write(("\n".join(lines) + "\n").encode("utf-8"))
    with open(out, "wb") as f:
        f.write(buf.getvalue())
    print(f"{out}: {len(lines) - 3} services, {sum(l.count(',') + 1 for l in lines[3:])} operations")


if __name__ == "__main__":
    main(sys.argv)
