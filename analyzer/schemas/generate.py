#!/usr/bin/env python3
"""Generates the JSON schemas the export tests validate against, from published definitions.

- ocsf/detection_finding.schema.json: the OCSF Detection Finding class (2004), schema 1.5.0
  with the `cloud` profile, every referenced object embedded, as the PyPI package
  ocsf-json-schema (MIT) generates it from the OCSF schema export it bundles (Apache-2.0,
  ocsf/LICENSE).
- asff/aws_security_finding.schema.json: the `AwsSecurityFinding` shape of AWS Security Hub's
  service model in PyPI botocore (Apache-2.0, asff/LICENSE, asff/NOTICE) with every shape it
  reaches: structures are objects with their required members and no others, enums, patterns,
  numeric and list/string bounds from the model, plus the length and item limits the model's
  member documentation states ("Length Constraints: Minimum length of 1. Maximum length of
  256.", "Array Members: Maximum number of 50 items.", "up to 50 key-value pairs").

Run with both packages importable (scripts/generate-export-schemas.sh makes a virtual
environment with the pinned versions):  python3 analyzer/schemas/generate.py
"""
import gzip
import json
import os
import re
import shutil
import sys

import botocore
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

OCSF_VERSION = "1.5.0"
HERE = os.path.dirname(os.path.abspath(__file__))


def write(rel, value):
    path = os.path.join(HERE, rel)
    with open(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", path)


def ocsf():
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))
    name = schema.lookup_class_name_from_uid(class_uid=2004)
    write("ocsf/detection_finding.schema.json", schema.get_class_schema(class_name=name, profiles=["cloud"]))
    import ocsf_json_schema

    shutil.copy(os.path.join(os.path.dirname(ocsf_json_schema.__file__), "ocsf", "LICENSE.txt"),
                os.path.join(HERE, "ocsf", "LICENSE"))


LEN = re.compile(r"Length Constraints: (?:Minimum (?:length )?of (\d+)\.\s*)?(?:Maximum (?:length )?of (\d+)\.|(\d+)\.)")
ITEMS_MIN = re.compile(r"Array Members: Minimum number of (\d+) items?\.")
ITEMS_MAX = re.compile(r"Maximum number of (\d+) items?\.")
PAIRS = re.compile(r"up to (\d+) key-value pairs")
KEY_CHARS = re.compile(r"key can contain up to (\d+) characters")
VALUE_CHARS = re.compile(r"value can contain up to (\d+) characters")


def member_limits(doc, target, shapes):
    """Limits stated in a member's documentation, for the shape it names."""
    out = {}
    text = re.sub(r"<[^>]+>", "", doc or "")
    kind = shapes[target]["type"]
    if kind == "string":
        m = LEN.search(text)
        if m:
            lo, hi, exact = m.groups()
            if exact:
                out["minLength"] = out["maxLength"] = int(exact)
            else:
                if lo:
                    out["minLength"] = int(lo)
                if hi:
                    out["maxLength"] = int(hi)
    elif kind == "list":
        m = ITEMS_MIN.search(text)
        if m:
            out["minItems"] = int(m.group(1))
        m = ITEMS_MAX.search(text)
        if m:
            out["maxItems"] = int(m.group(1))
    elif kind == "map":
        m = PAIRS.search(text)
        if m:
            out["maxProperties"] = int(m.group(1))
        m = KEY_CHARS.search(text)
        if m:
            out["propertyNames"] = {"maxLength": int(m.group(1))}
        m = VALUE_CHARS.search(text)
        if m:
            out["additionalProperties"] = {"allOf": [{"$ref": "#/$defs/" + shapes[target]["value"]["shape"]},
                                                     {"maxLength": int(m.group(1))}]}
    return out


def shape_schema(name, shapes):
    s = shapes[name]
    t = s["type"]
    if t == "structure":
        props = {}
        for m, spec in s["members"].items():
            ref = {"$ref": "#/$defs/" + spec["shape"]}
            limits = member_limits(spec.get("documentation"), spec["shape"], shapes)
            props[m] = {"allOf": [ref, limits]} if limits else ref
        out = {"type": "object", "properties": props, "additionalProperties": False}
        if s.get("required"):
            out["required"] = s["required"]
        return out
    if t == "list":
        out = {"type": "array", "items": {"$ref": "#/$defs/" + s["member"]["shape"]}}
        if "min" in s:
            out["minItems"] = s["min"]
        if "max" in s:
            out["maxItems"] = s["max"]
        return out
    if t == "map":
        return {"type": "object", "additionalProperties": {"$ref": "#/$defs/" + s["value"]["shape"]},
                "propertyNames": {"$ref": "#/$defs/" + s["key"]["shape"]}}
    if t == "string":
        out = {"type": "string"}
        if "enum" in s:
            out["enum"] = s["enum"]
        if "pattern" in s:
            out["pattern"] = s["pattern"]
        if "min" in s:
            out["minLength"] = s["min"]
        if "max" in s:
            out["maxLength"] = s["max"]
        return out
    if t in ("integer", "long"):
        out = {"type": "integer"}
    elif t in ("double", "float"):
        out = {"type": "number"}
    elif t == "boolean":
        return {"type": "boolean"}
    elif t == "timestamp":
        return {"type": "string"}
    elif t == "blob":
        return {"type": "string"}
    else:
        raise SystemExit("unknown shape type %r of %s" % (t, name))
    if "min" in s:
        out["minimum"] = s["min"]
    if "max" in s:
        out["maximum"] = s["max"]
    return out


def asff():
    root = os.path.join(os.path.dirname(botocore.__file__), "data", "securityhub")
    (version,) = sorted(os.listdir(root))[-1:]
    with gzip.open(os.path.join(root, version, "service-2.json.gz")) as f:
        model = json.load(f)
    shapes = model["shapes"]
    seen, stack = set(), ["AwsSecurityFinding"]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        s = shapes[n]
        stack.extend(m["shape"] for m in s.get("members", {}).values())
        stack.extend(s[k]["shape"] for k in ("member", "key", "value") if k in s)
    defs = {n: shape_schema(n, shapes) for n in sorted(seen)}
    write("asff/aws_security_finding.schema.json", {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by analyzer/schemas/generate.py from botocore %s, securityhub %s, shape AwsSecurityFinding"
                    % (botocore.__version__, version),
        "$ref": "#/$defs/AwsSecurityFinding",
        "$defs": defs,
    })
    dist = os.path.dirname(botocore.__file__)
    # the wheel's licence and notice files live in its dist-info directory
    import importlib.metadata as md
    for f in md.distribution("botocore").files:
        if f.name in ("LICENSE.txt", "NOTICE"):
            shutil.copy(f.locate(), os.path.join(HERE, "asff", "LICENSE" if f.name == "LICENSE.txt" else "NOTICE"))
    del dist


if __name__ == "__main__":
    ocsf()
    asff()
    sys.exit(0)
