#!/usr/bin/env bash
# Runs the scenario driver over every "filter scenario" line of a cases file and checks that
# each run (a) printed no sanitizer report, (b) exited 0, which the driver only does when every
# expectation of the scenario held (it runs with --strict: a scenario must expect something).
#   run-cases.sh DRIVER CASES_FILE
set -uo pipefail
driver=$1 cases=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
pass=0 fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while read -r filter scenario rest; do
  case "$filter" in ''|'#'*) continue ;; esac
  f=test/reliability/filters/$filter s=test/reliability/scenarios/$scenario
  start=$(date +%s%N)
  "$driver" --strict "$f" "$s" >"$log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  report=$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$log" | head -3)
  verdict=$(grep -E '^expect' "$log" | tail -1)
  if [ $rc -eq 0 ] && [ -z "$report" ] && [[ "$verdict" == "expect: ok"* ]]; then
    pass=$((pass + 1))
    printf '  ok   %-28s %-36s %5d ms  %s\n' "$filter" "$scenario" "$ms" "${verdict#expect: }"
  else
    fail=$((fail + 1))
    printf '  FAIL %-28s %-36s exit %d\n' "$filter" "$scenario" "$rc"
    sed 's/^/       | /' "$log" | tail -40
  fi
done < "$cases"
echo "sanitize: $pass runs passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
