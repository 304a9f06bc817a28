#!/usr/bin/env bash
# Installs missing commands from Debian's packages: each argument is COMMAND=PACKAGE. Idempotent:
# does nothing when every command is there, and runs `apt-get update` only when something is
# missing. Meant for Debian 12 as root (CI); says what it would install and fails elsewhere.
# Usage: scripts/install-debian-packages.sh systemd-analyze=systemd chromium=chromium
set -euo pipefail

missing=()
commands=()
for pair in "$@"; do
    cmd="${pair%%=*}"
    pkg="${pair#*=}"
    commands+=("$cmd")
    if ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-debian-packages: ${commands[*]} already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-debian-packages: need root to install: ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-debian-packages: no apt-get; install these by hand: ${missing[*]}" >&2
    exit 1
fi

echo "install-debian-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Recommends (drivers, docs) are not needed by tests; systemd's postinst copes with a container
# that does not run systemd as PID 1.
apt-get install -y -qq --no-install-recommends "${missing[@]}"

for cmd in "${commands[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "install-debian-packages: $cmd still missing after install" >&2
        exit 1
    }
done
