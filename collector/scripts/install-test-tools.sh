#!/usr/bin/env bash
# What the collector's durability test (collector/tests/binary.rs, the directory syncs) needs:
# strace (package strace), to see which directories the binary syncs. Only when missing.
set -euo pipefail
"$(dirname "$0")/../../scripts/install-debian-packages.sh" strace=strace
strace -V | head -n 1
