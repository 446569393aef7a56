#!/usr/bin/env bash
# Installs the Debian packages that build the wasm engine (wasm/wasm.mk): clang-14 and lld-14
# for the wasm32-wasi target, wasi-libc, and libc++/libc++abi/compiler-rt built for wasm32.
# Does nothing when they are all installed. Needs root (CI and these machines run as root).
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "wasm toolchain: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
