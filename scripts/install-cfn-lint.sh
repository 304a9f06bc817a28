#!/usr/bin/env bash
# Installs cfn-lint, AWS's CloudFormation linter (PyPI, MIT-0), for the test that lints
# deploy/cloudformation/ (analyzer/tests/deploy.rs), into a virtual environment under
# $HOME/.cache/credtrail-tools/cfn-lint. Only when missing.
set -euo pipefail
version=1.58.0
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
venv="$root/cfn-lint"
# grep reads all of pip's output: with -q it stops early, and pipefail counts pip's broken pipe as a failure.
if [ -x "$venv/bin/cfn-lint" ] && "$venv/bin/pip" show cfn-lint 2>/dev/null | grep "^Version: $version\$" >/dev/null; then
  echo "install-cfn-lint: cfn-lint $version already installed"
  exit 0
fi
echo "install-cfn-lint: installing cfn-lint $version into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$version"
"$venv/bin/pip" show cfn-lint | grep '^Version'
