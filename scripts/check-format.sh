#!/usr/bin/env bash
# `make lint-format`: lists every file whose layout differs from what `make format` would write
# (clang-format with .clang-format for our C and C++, Biome with biome.jsonc for JS and TS), with
# the number of lines that would change, and fails when there is any. FORMAT_DIFF=1 prints the
# diffs too. Usage: scripts/check-format.sh CLANG_FORMAT BIOME CPP_FILE...
set -uo pipefail
clang_format=$1 biome=$2
shift 2
cd "$(dirname "$0")/.."

total_files=0 total_lines=0
# check LABEL FILE FORMATTED: compares FILE with its formatted text (a file), reports the difference.
check() {
  local label=$1 file=$2 formatted=$3 n
  n=$(diff "$file" "$formatted" | grep -c '^[<>]')
  [ "$n" -eq 0 ] && return 0
  total_files=$((total_files + 1))
  total_lines=$((total_lines + n))
  printf '  %-4s %-52s %5d lines\n' "$label" "$file" "$n"
  [ "${FORMAT_DIFF:-}" = 1 ] && diff -u "$file" "$formatted" | sed 's/^/       /'
  return 0
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

cpp_files=0
for f in "$@"; do
  "$clang_format" --style=file "$f" >"$tmp" || { echo "lint-format: $clang_format failed on $f" >&2; exit 2; }
  check c++ "$f" "$tmp"
  cpp_files=$((cpp_files + 1))
done
cpp_bad=$total_files cpp_lines=$total_lines

# Biome names the files whose layout differs; each one's formatted text then gives the count.
# (It exits non-zero when any file differs; a real failure leaves no JSON for node to read.)
js=$({ "$biome" format --reporter=json . 2>/dev/null || true; } | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const r = JSON.parse(s);
    const files = new Set(r.diagnostics.filter((d) => d.category === "format").map((d) => d.location.path));
    console.log([...files].sort().join("\n"));
  });') || { echo "lint-format: $biome format failed" >&2; exit 2; }
for f in $js; do
  "$biome" format --stdin-file-path="$f" <"$f" >"$tmp" 2>/dev/null || { echo "lint-format: $biome failed on $f" >&2; exit 2; }
  check js "$f" "$tmp"
done

echo "format: C/C++ $cpp_bad of $cpp_files files differ ($cpp_lines lines); JS/TS $((total_files - cpp_bad)) files differ ($((total_lines - cpp_lines)) lines)"
if [ "$total_files" -gt 0 ]; then
  echo "format: run \`make format\` to apply (lines counted as diff lines: removed + added)" >&2
  exit 1
fi
