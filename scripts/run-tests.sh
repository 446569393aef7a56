#!/usr/bin/env bash
# Runs every uvu suite of `make test` and ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0 failed=0 status=0
run_suite() {
  local name=$1; shift
  echo "== $name"
  local log
  log=$(mktemp)
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local total pass
  total=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^  Total:/{t+=$2} END{print t+0}')
  pass=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^  Passed:/{p+=$2} END{print p+0}')
  passed=$((passed + pass))
  failed=$((failed + total - pass))
  if [ "$rc" -ne 0 ]; then
    status=1
    [ "$total" -eq "$pass" ] && failed=$((failed + 1))  # the suite died before counting
  fi
  rm -f "$log"
}
run_suite "runtime (wasm engine)" node node_modules/uvu/bin.js test/runtime '\.test\.mjs$'
run_suite "sdk and CLI" npm test -w sdk --silent
run_suite "conformance (wasm engine; wasm vs module)" node node_modules/uvu/bin.js test/conformance '\.test\.mjs$'
run_suite "samples" node node_modules/uvu/bin.js samples '\.test\.mjs$'
run_suite "peer ports (test/peers, wasm engine)" node node_modules/uvu/bin.js test/peers '\.test\.mjs$'
run_suite "package as users get it (pack, install, init, npm test)" node node_modules/uvu/bin.js test/package '\.test\.mjs$'
run_suite "docs" node node_modules/uvu/bin.js test/docs '\.test\.mjs$'
run_suite "lint (make lint: Biome, buildifier, clang-format)" make -s --no-print-directory lint
run_suite "dynamic module (ABI host stub)" node node_modules/uvu/bin.js test/module '\.test\.mjs$'
envoy_version=${ENVOY_VERSION:-$(grep -v '^#' scripts/envoy-versions.txt | head -1)}
e2e_before=$passed
run_suite "real Envoy $envoy_version (test/envoy)" node node_modules/uvu/bin.js test/envoy '\.test\.mjs$'
echo "real-Envoy e2e cases passed: $((passed - e2e_before)) on Envoy $envoy_version"
run_suite "chaos in a real Envoy $envoy_version, short (test/reliability/chaos)" node node_modules/uvu/bin.js test/reliability/chaos '\.test\.mjs$'

echo
echo "tests: $passed passed, $failed failed"
exit $status
