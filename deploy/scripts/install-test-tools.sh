#!/usr/bin/env bash
# What the deploy test (collector/tests/deploy.rs) needs: systemd-analyze (package systemd), for
# `verify` and `security --offline`. Only what is missing is installed.
set -euo pipefail
"$(dirname "$0")/../../scripts/install-debian-packages.sh" systemd-analyze=systemd
systemd-analyze --version | head -n 1
