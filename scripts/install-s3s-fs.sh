#!/usr/bin/env bash
# Installs s3s-fs, a real S3 server over a directory (SigV4 checked), for the analyzer's S3 tests
# (analyzer/tests/aws/s3.rs), from crates.io into $HOME/.cache/credtrail-tools/bin. Only when
# missing. Built apart from the workspace, with its own lock file and target directory: as a
# dev-dependency its proc macros would change `syn`'s features on the host and rebuild the bundled
# DuckDB. 0.14.1 is the newest release that builds with the workspace's rustc (0.15+ need 1.96).
set -euo pipefail
version=0.14.1
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
bin="$root/bin/s3s-fs"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " $version\$"; then
  echo "install-s3s-fs: s3s-fs $version already installed"
  exit 0
fi
echo "install-s3s-fs: building s3s-fs $version into $root"
env -u CARGO_TARGET_DIR nice -n 10 cargo install s3s-fs --version "=$version" --features binary \
  --locked --root "$root" --target-dir "$root/build"
"$bin" --version
