# Shared by scripts/test and .ci/run: one target directory outside the clone, so repeat runs are
# incremental; a machine without one simply starts empty.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ -n "${HOME:-}" ] && mkdir -p "$HOME/.cache/credtrail-target" 2>/dev/null; then
    export CARGO_TARGET_DIR="$HOME/.cache/credtrail-target"
  else
    export CARGO_TARGET_DIR="$PWD/target"
  fi
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
