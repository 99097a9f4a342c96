#!/usr/bin/env bash
# hardening-check (devscripts) on the binary the .deb installs.
# --nocfprotection: Debian 12's glibc start files (Scrt1.o, crti.o, crtn.o) carry no x86 CET
# property, so the linker leaves it off every executable, even `int main(){}`, although our
# code is compiled with -fcf-protection. Debian 12's dpkg-buildflags does not ask for it either.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
deb=$(qscd_deb "$1")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
hardening-check --nocfprotection "$root/usr/bin/qscd-agent"
