#!/usr/bin/env bash
# Installs parliament, the IAM policy linter (PyPI, BSD-3-Clause), for the test that lints the
# demo's recommended policies (analyzer/tests/recommend.rs), into a virtual environment under
# $HOME/.cache/credtrail-tools/parliament. Only when missing.
set -euo pipefail
version=1.6.4
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
venv="$root/parliament"
if [ -x "$venv/bin/parliament" ] && "$venv/bin/pip" show parliament 2>/dev/null | grep -q "^Version: $version\$"; then
  echo "install-parliament: parliament $version already installed"
  exit 0
fi
echo "install-parliament: installing parliament $version into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "parliament==$version"
"$venv/bin/pip" show parliament | grep '^Version'
