#!/usr/bin/env bash
# What the report test (analyzer/tests/report.rs) needs: a headless Chromium (package chromium),
# which loads report.html and dumps its DOM to prove no script runs and every log-derived string
# is escaped. Without it the report test fails saying so, unless CREDTRAIL_SKIP_BROWSER=1.
set -euo pipefail
"$(dirname "$0")/../../scripts/install-debian-packages.sh" chromium=chromium
chromium --version
