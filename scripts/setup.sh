#!/usr/bin/env bash
# Set up libblipc on this machine: install the build dependencies (Debian/Ubuntu,
# as root) and build into ./build. Elsewhere it lists what to install.
# Usage: scripts/setup.sh [extra meson args...]   (BUILD_DIR=... to choose the build directory)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(meson ninja-build pkg-config gcc libopenblas-dev libcjson-dev libcurl4-openssl-dev libstb-dev
      libjpeg62-turbo-dev libpng-dev libutf8proc-dev libsqlite3-dev zlib1g-dev libssl-dev)
# test helpers: Debian's Python with numpy/Pillow (reference images, local test servers)
TEST_PKGS=(python3 python3-numpy python3-pil)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PKGS[@]}" "${TEST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: on Debian/Ubuntu run as root: apt-get install ${missing[*]}" >&2
    echo "setup: elsewhere install: meson, ninja, pkg-config, OpenBLAS, cJSON, libcurl, stb, libjpeg-turbo, libpng, utf8proc, SQLite3, zlib, OpenSSL (libcrypto)" >&2
    exit 1
  fi
elif ! command -v dpkg-query >/dev/null 2>&1; then
  for tool in meson ninja pkg-config cc; do
    command -v "$tool" >/dev/null || { echo "setup: $tool not found; install meson, ninja, pkg-config and a C compiler" >&2; exit 1; }
  done
fi

BUILD_DIR=${BUILD_DIR:-build}
if [ -f "$BUILD_DIR/build.ninja" ]; then
  meson setup --reconfigure "$BUILD_DIR" "$@" >/dev/null
else
  meson setup "$BUILD_DIR" "$@" >/dev/null
fi
if ! ninja -C "$BUILD_DIR" -j"$(nproc)" > "$BUILD_DIR/build.log" 2>&1; then
  tail -n 40 "$BUILD_DIR/build.log" >&2
  echo "setup: the build failed (full log: $BUILD_DIR/build.log)" >&2
  exit 1
fi
if grep -q "warning:" "$BUILD_DIR/build.log"; then grep "warning:" "$BUILD_DIR/build.log" >&2; fi
echo "setup: built into $BUILD_DIR/" >&2
