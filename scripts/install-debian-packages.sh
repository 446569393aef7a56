#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing, so that every target
# sets itself up as `make test` does. Usage: scripts/install-debian-packages.sh WHAT PACKAGE...
# (WHAT names the target in messages). Callers: the wasm toolchain (wasm/wasm.mk), clang-format
# (lint.mk), clang-14 with libFuzzer (make fuzz), LuaJIT headers and valgrind (make bench),
# python3-venv (make envoy).
# Does nothing when they are all installed. Needs root or sudo (CI and these machines run as
# root); waits for the dpkg lock when another install is running.
set -euo pipefail
what=$1
shift
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "$what: not a Debian system; install the equivalents of: $*" >&2
  exit 1
fi
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "$what: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt=($SUDO apt-get -o DPkg::Lock::Timeout=600 -y -q)
if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null; then
  "${apt[@]}" update >/dev/null
  "${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null || {
    echo "$what: could not install ${missing[*]}: run apt-get install ${missing[*]} as root" >&2
    exit 1
  }
fi
