#!/usr/bin/env bash
# Installs, from Debian's packages, what the deploy test (collector/tests/deploy.rs) needs:
# systemd-analyze (package systemd), for `verify` and `security --offline`. Idempotent: does
# nothing when the tools are already there, and runs `apt-get update` only when something is
# missing. Meant for Debian 12 as root (CI); prints what it would do and fails elsewhere.
set -euo pipefail

# command -> Debian package that provides it
declare -A wanted=(
    [systemd-analyze]=systemd
)

missing=()
for cmd in "${!wanted[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("${wanted[$cmd]}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-tools: nothing to install"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-tools: need root to install: ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: no apt-get; install these by hand: ${missing[*]}" >&2
    exit 1
fi

echo "install-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# systemd's postinst copes with a container that does not run systemd as PID 1.
apt-get install -y -qq --no-install-recommends "${missing[@]}"

for cmd in "${!wanted[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "install-test-tools: $cmd still missing after install" >&2
        exit 1
    }
done
systemd-analyze --version | head -n 1
