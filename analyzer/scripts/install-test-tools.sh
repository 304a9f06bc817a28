#!/usr/bin/env bash
# Installs, from Debian's packages, what the report test (analyzer/tests/report.rs) needs: a
# headless Chromium (package chromium), which loads report.html and dumps its DOM to prove no
# script runs and every log-derived string is escaped. Idempotent: does nothing when chromium is
# already there, and runs `apt-get update` only when something is missing. Meant for Debian 12 as
# root (CI); prints what it would do and fails elsewhere. Without it the report test fails with a
# message saying so, unless CREDTRAIL_SKIP_BROWSER=1.
set -euo pipefail

# command -> Debian package that provides it
declare -A wanted=(
    [chromium]=chromium
)

missing=()
for cmd in "${!wanted[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("${wanted[$cmd]}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-tools (analyzer): nothing to install"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-tools (analyzer): need root to install: ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools (analyzer): no apt-get; install these by hand: ${missing[*]}" >&2
    exit 1
fi

echo "install-test-tools (analyzer): installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Fonts come with chromium's dependencies; recommends (drivers, extensions) are not needed headless.
apt-get install -y -qq --no-install-recommends "${missing[@]}"

for cmd in "${!wanted[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "install-test-tools (analyzer): $cmd still missing after install" >&2
        exit 1
    }
done
chromium --version
