#!/usr/bin/env bash
# Installs the non-crate tools the tests use, only when missing. Tests that need a tool that is
# still absent (no root, no package registry) say so and check what they can without it.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in deploy/scripts/install-test-tools.sh collector/scripts/install-test-tools.sh analyzer/scripts/install-test-tools.sh scripts/install-s3s-fs.sh scripts/install-cargo-deb.sh scripts/install-parliament.sh scripts/install-jsonschema.sh scripts/install-cfn-lint.sh scripts/install-pyspark.sh; do
  if [ -f "$script" ]; then
    bash "$script" || echo "warning: $script failed; the tests that need its tools will say so" >&2
  fi
done
