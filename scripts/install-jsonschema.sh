#!/usr/bin/env bash
# Installs Python's jsonschema (PyPI, MIT) for the tests that validate the OCSF and ASFF exports
# against their published schemas (analyzer/tests/config.rs), into a virtual environment under
# $HOME/.cache/credtrail-tools/jsonschema. Only when missing.
set -euo pipefail
version=4.26.0
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
venv="$root/jsonschema"
# grep reads all of pip's output: with -q it stops early, and pipefail counts pip's broken pipe as a failure.
if [ -x "$venv/bin/python" ] && "$venv/bin/pip" show jsonschema 2>/dev/null | grep "^Version: $version\$" >/dev/null; then
  echo "install-jsonschema: jsonschema $version already installed"
  exit 0
fi
echo "install-jsonschema: installing jsonschema $version into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "jsonschema==$version"
"$venv/bin/pip" show jsonschema | grep '^Version'
