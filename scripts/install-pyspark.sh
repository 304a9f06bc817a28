#!/usr/bin/env bash
# Installs what the Spark port of the detections needs (analyzer/spark/, analyzer/tests/spark.rs),
# only when missing: PyPI's pyspark (Apache-2.0; Spark in local mode) and sqlglot (MIT; the
# DuckDB-to-Spark SQL generator and the Trino parser for the Athena DDL) into a virtual
# environment under $HOME/.cache/credtrail-tools/pyspark, and Java 17 from Debian when no java
# is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
pyspark_version=3.5.7
sqlglot_version=30.31.0
root="${CREDTRAIL_TOOLS:-$HOME/.cache/credtrail-tools}"
venv="$root/pyspark"
if ! command -v java >/dev/null 2>&1; then
  bash scripts/install-debian-packages.sh java=openjdk-17-jre-headless
fi
installed() {
  # grep reads all of pip's output: with -q it stops early, and pipefail counts pip's broken pipe as a failure.
  "$venv/bin/pip" show "$1" 2>/dev/null | grep "^Version: $2\$" >/dev/null
}
if [ -x "$venv/bin/python" ] && installed pyspark "$pyspark_version" && installed sqlglot "$sqlglot_version"; then
  echo "install-pyspark: pyspark $pyspark_version and sqlglot $sqlglot_version already installed"
  exit 0
fi
echo "install-pyspark: installing pyspark $pyspark_version and sqlglot $sqlglot_version into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "pyspark==$pyspark_version" "sqlglot==$sqlglot_version"
"$venv/bin/pip" show pyspark sqlglot | grep -E '^(Name|Version)'
