#!/usr/bin/env bash
# Regenerates analyzer/schemas/{ocsf,asff}/ (the JSON schemas the export tests validate
# against) from the pinned PyPI packages that publish their definitions: ocsf-json-schema (the
# OCSF schema export, Apache-2.0) and botocore (Security Hub's service model, Apache-2.0).
# Only needed when moving to another OCSF or botocore version; the output is checked in.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "ocsf-json-schema==1.2.0" "botocore==1.44.18"
"$venv/bin/python" analyzer/schemas/generate.py
