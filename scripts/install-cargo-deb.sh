#!/usr/bin/env bash
# Installs cargo-deb (the `cargo deb` subcommand that builds the .deb packages, see
# deploy/README.md and tests/packages/main.rs) from crates.io into
# ${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}/bin. Only when missing. Built apart from the
# workspace, with its own lock file and target directory (CARGO_DEB_TARGET_DIR to choose another).
set -euo pipefail
version=3.8.0
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
bin="$root/bin/cargo-deb"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "install-cargo-deb: cargo-deb $version already installed"
  exit 0
fi
echo "install-cargo-deb: building cargo-deb $version into $root"
env -u CARGO_TARGET_DIR nice -n 10 cargo install cargo-deb --version "=$version" --locked \
  --root "$root" --target-dir "${CARGO_DEB_TARGET_DIR:-$root/build}"
"$bin" --version
