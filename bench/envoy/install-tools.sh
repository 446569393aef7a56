#!/usr/bin/env bash
# What `make bench-envoy` needs besides Envoy and the module (make envoy, make module): h2load
# (Debian's nghttp2-client), taskset (util-linux), perf when it can be had (linux-perf), and
# Go >= 1.25.6 for the Wasm and dynamic-module peers (their modules come from the Go module
# proxy, see bench/peers/*/go.mod).
# Installs the Debian packages when missing, as scripts/install-wasm-toolchain.sh does. Prints
# the Go binary to use.
set -euo pipefail
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v taskset >/dev/null || missing+=(util-linux)
command -v callgrind_control >/dev/null || missing+=(valgrind) # make bench-envoy-ir
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-envoy: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# perf is optional (the profile of the module's own share of the worker's CPU): no perf, no profile.
if ! command -v perf >/dev/null; then
  ${SUDO-} apt-get install -y -q --no-install-recommends linux-perf >/dev/null 2>&1 ||
    echo "bench-envoy: perf (Debian's linux-perf) could not be installed; the run skips the profile" >&2
fi
# Go: the machine's (PATH, else /usr/local/go). Debian's golang-go (1.19) is too old for
# go:wasmexport (1.24) and for the dynamic-modules SDK (1.25.6).
go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "bench-envoy: no Go found; the Wasm and dynamic-module peers need Go >= 1.25.6 (a Go release from the Go project)" >&2
  exit 1
fi
v=$("$go" env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n' 1.25.6 "$v" | sort -V | head -1)" != 1.25.6 ]; then
  echo "bench-envoy: $go is Go $v; the peers need Go >= 1.25.6 (or GOTOOLCHAIN=go1.25.6 with Go >= 1.21)" >&2
  exit 1
fi
echo "$go"
