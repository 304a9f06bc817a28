#!/usr/bin/env bash
# Installs parliament, the IAM policy linter (PyPI, BSD-3-Clause), for the test that lints the
# demo's recommended policies (analyzer/tests/recommend.rs), into a virtual environment under
# $HOME/.cache/credtrail-tools/parliament. Only when missing.
set -euo pipefail
version=1.6.4
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
venv="$root/parliament"
# grep reads all of pip's output: with -q it stops early, and pipefail counts pip's broken pipe as a failure.
if [ -x "$venv/bin/parliament" ] && "$venv/bin/pip" show parliament 2>/dev/null | grep "^Version: $version\$" >/dev/null; then
  echo "install-parliament: parliament $version already installed"
  exit 0
fi
echo "install-parliament: installing parliament $version into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "parliament==$version"
"$venv/bin/pip" show parliament | grep '^Version'
