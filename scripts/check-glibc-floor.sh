#!/usr/bin/env bash
# Fails when a shared object needs a glibc symbol version newer than the floor.
#   scripts/check-glibc-floor.sh [object] [max-version]
# Defaults: build/release/libenvoy_js.so and GLIBC_FLOOR_MAX (2.31, the floor of the PyPI
# Envoy wheel, manylinux_2_31). Reads both the dynamic symbols (objdump -T, which names the
# offending symbols) and the version references (objdump -p, what the loader checks).
set -euo pipefail
obj=${1:-build/release/libenvoy_js.so}
max=${2:-${GLIBC_FLOOR_MAX:-2.31}}

[ -f "$obj" ] || { echo "check-glibc-floor: $obj does not exist" >&2; exit 2; }
syms=$(objdump -T "$obj") || { echo "check-glibc-floor: objdump -T $obj failed" >&2; exit 2; }
refs=$(objdump -p "$obj") || { echo "check-glibc-floor: objdump -p $obj failed" >&2; exit 2; }

# Prints "version symbol" for each symbol with a GLIBC_ version newer than $max, then
# "version (version reference)" for each such required version without a symbol listed.
newer=$(
  {
    printf '%s\n' "$syms" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\(?GLIBC_[0-9.]+\)?$/) { v = $i; gsub(/[()]/, "", v); print "S", v, $NF } }'
    printf '%s\n' "$refs" | awk '/^Version References:/ { r = 1; next } r && $NF ~ /^GLIBC_[0-9.]+$/ { print "R", $NF, "-" }'
  } | awk -v max="$max" '
    function newer(v,   a, b, n, m, i, x, y) {
      sub(/^GLIBC_/, "", v); n = split(v, a, "."); m = split(max, b, ".")
      for (i = 1; i <= (n > m ? n : m); i++) { x = (i <= n) ? a[i] + 0 : 0; y = (i <= m) ? b[i] + 0 : 0
        if (x != y) return x > y }
      return 0
    }
    $1 == "S" && newer($2) { print $2, $3; seen[$2] = 1 }
    $1 == "R" && newer($2) && !($2 in seen) { late[$2] = 1 }
    END { for (v in late) if (!(v in seen)) print v, "(version reference)" }' | sort -V | uniq
)

if [ -n "$newer" ]; then
  echo "check-glibc-floor: FAIL: $obj needs glibc symbol versions newer than GLIBC_$max:" >&2
  printf '%s\n' "$newer" | awk '{ v = $1; $1 = ""; printf "  %-11s%s\n", v, $0 }' >&2
  echo "(see envoy_ext/module/glibc_floor.c for how the module binds older versions)" >&2
  exit 1
fi
highest=$(printf '%s\n' "$syms" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1)
echo "check-glibc-floor: OK: $obj needs at most ${highest:-no GLIBC_ version} (floor GLIBC_$max)"
