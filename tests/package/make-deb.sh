#!/usr/bin/env bash
# Packs the .deb from a built tree with CPack, into OUT_DIR (emptied first).
#   make-deb.sh BUILD_DIR OUT_DIR
set -euo pipefail
build=$1 out=$2
rm -rf "$out"
mkdir -p "$out"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1 \
  || { cat "$out/cpack.log" >&2; exit 1; }
rm -rf "$out/_CPack_Packages"
deb=$(ls "$out"/*.deb)
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
