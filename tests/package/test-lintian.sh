#!/usr/bin/env bash
# lintian on the .deb: no error and no warning. The overrides the package ships are each
# justified in packaging/lintian/qscd-agent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
deb=$(qscd_deb "$1")
# --display-info shows the informational tags too (they do not fail the test); --show-overrides
# lists what an override silences.
# lintian advises against running as root: as root (CI), run it as nobody on a copy.
run=()
if [ "$(id -u)" -eq 0 ] && getent passwd nobody >/dev/null; then
  copy=$(mktemp -d)
  trap 'rm -rf "$copy"' EXIT
  chmod 755 "$copy"
  cp "$deb" "$copy/" && chmod 644 "$copy/${deb##*/}"
  deb=$copy/${deb##*/}
  run=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$copy" TMPDIR="$copy")
  chown nobody "$copy"
fi
"${run[@]}" lintian --fail-on error,warning --display-info --show-overrides "$deb"
echo "lintian: no errors, no warnings"
