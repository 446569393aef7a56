#!/usr/bin/env bash
# Brings the quickjs-ng 0.17 sources into third_party/quickjs-ng (ignored by git).
# Order (DESIGN.md section 6): $QUICKJS_SRC; the installed Debian package qjs-src;
# `apt-get download qjs-src` from suite sid through the mirror already configured on
# this machine; the upstream v0.17.0 tarball with a pinned sha256.
# Idempotent: does nothing when the folder already holds 0.17.x.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party/quickjs-ng"
want_minor=17
upstream_url="https://github.com/quickjs-ng/quickjs/archive/refs/tags/v0.17.0.tar.gz"
upstream_sha256=559bc4c420475e55c7ab4510adbc562f55d7524d75e8e89d79ce4bb02f5687d9
required=(quickjs.c quickjs.h libregexp.c libunicode.c dtoa.c cutils.h list.h)

has_sources() {
  local dir=$1 f
  for f in "${required[@]}"; do [ -f "$dir/$f" ] || return 1; done
  grep -qE "define QJS_VERSION_MINOR +$want_minor\b" "$dir/quickjs.h"
}

install_from() {
  local dir=$1 how=$2
  has_sources "$dir" || { echo "fetch-quickjs: $dir does not hold quickjs-ng 0.$want_minor.x sources" >&2; return 1; }
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  cp -R "$dir"/. "$dest.tmp"/
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  echo "$how" > "$dest/.origin"
  echo "fetch-quickjs: quickjs-ng $(version_of "$dest") from $how"
}

version_of() {
  awk '/define QJS_VERSION_(MAJOR|MINOR|PATCH) /{v=v (v==""?"":".") $3} END{print v}' "$1/quickjs.h"
}

if has_sources "$dest"; then
  echo "fetch-quickjs: quickjs-ng $(version_of "$dest") already in third_party/quickjs-ng ($(cat "$dest/.origin" 2>/dev/null || echo unknown origin))"
  exit 0
fi

if [ -n "${QUICKJS_SRC:-}" ]; then
  install_from "$QUICKJS_SRC" "QUICKJS_SRC=$QUICKJS_SRC"; exit 0
fi

if has_sources /usr/src/quickjs-ng; then
  install_from /usr/src/quickjs-ng "installed package qjs-src"; exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Debian without qjs-src installed: download the package from suite sid through the
# mirror this machine already uses (read from its apt sources, never written down here).
if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
  mirror=$( { awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null
              awk '$1=="deb"{print $2}' /etc/apt/sources.list 2>/dev/null; } \
            | grep -v -- '-security' | head -n 1 || true)
  if [ -n "$mirror" ]; then
    mkdir -p "$work/parts" "$work/state/lists/partial" "$work/cache/archives/partial"
    : > "$work/empty.list"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: %s\n' "$mirror" "$keyring" > "$work/parts/sid.sources"
    apt_opts=(-o "Dir::Etc::SourceList=$work/empty.list" -o "Dir::Etc::SourceParts=$work/parts"
              -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
    if apt-get "${apt_opts[@]}" -qq update >"$work/apt.log" 2>&1 \
       && (cd "$work" && apt-get "${apt_opts[@]}" -qq download qjs-src >>"$work/apt.log" 2>&1); then
      dpkg -x "$work"/qjs-src_*.deb "$work/unpacked"
      if install_from "$work/unpacked/usr/src/quickjs-ng" "Debian package qjs-src (suite sid)"; then exit 0; fi
    else
      echo "fetch-quickjs: apt-get download qjs-src failed (see below); trying the upstream tarball" >&2
      tail -n 5 "$work/apt.log" >&2 || true
    fi
  fi
fi

if command -v curl >/dev/null; then
  if curl -fsSL "$upstream_url" -o "$work/qjs.tar.gz"; then
    echo "$upstream_sha256  $work/qjs.tar.gz" | sha256sum -c - >/dev/null \
      || { echo "fetch-quickjs: sha256 mismatch for $upstream_url" >&2; exit 1; }
    tar -xzf "$work/qjs.tar.gz" -C "$work"
    install_from "$work/quickjs-0.17.0" "upstream tarball v0.17.0"; exit 0
  fi
fi

cat >&2 <<MSG
fetch-quickjs: could not obtain quickjs-ng 0.$want_minor.x sources. Any one of these fixes it:
  - QUICKJS_SRC=/path/to/quickjs-ng make ...   (a directory holding quickjs.c, quickjs.h, ...)
  - apt-get install qjs-src                     (installs /usr/src/quickjs-ng)
  - network access to the upstream v0.17.0 release tarball (checked against its pinned sha256)
MSG
exit 1
