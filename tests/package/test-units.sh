#!/usr/bin/env bash
# The systemd units the .deb installs: `systemd-analyze verify` (syntax, the commands exist, the
# units they name exist) in a scratch root made of the .deb's files and this system's units, and
# `systemd-analyze security` for each service, which must be "OK" (exposure 2.5 or less).
# The man page named by Documentation= is checked by package_install, where it is installed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
deb=$(qscd_deb "$1")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
units=$(cd "$root/lib/systemd/system" && ls qscd-agent-*)
[ -n "$units" ] || { echo "the .deb has no qscd-agent units" >&2; exit 1; }
# The units the ones under test refer to (network-online.target, sysinit.target, ...), and the
# commands they run, from this system.
for dir in /lib/systemd/system /usr/lib/systemd/system; do
  [ -d "$dir" ] && mkdir -p "$root$dir" && cp -an "$dir/." "$root$dir/"
done
mkdir -p "$root/bin" && cp -n /bin/kill "$root/bin/"
paths=()
for unit in $units; do paths+=("$root/lib/systemd/system/$unit"); done
echo "systemd-analyze verify $units"
systemd-analyze verify --man=no --root="$root" "${paths[@]}"
for unit in $units; do
  case $unit in *.service) ;; *) continue ;; esac
  # --threshold counts tenths: 25 is an exposure of 2.5.
  if ! systemd-analyze security --offline=yes --root="$root" --threshold=25 "$unit" >"$root/security.txt"; then
    cat "$root/security.txt"
    echo "FAIL: $unit: exposure above 2.5" >&2
    exit 1
  fi
  grep -E '^[✗].*|Overall exposure' "$root/security.txt"
done
