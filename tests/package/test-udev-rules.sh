#!/usr/bin/env bash
# The udev rules parse (udevadm verify where systemd has it, and our own strict check always)
# and match each token of shared/reference/certcentral-api.md section 6.2 exactly once; the
# AppStream metainfo, when given, lists the same devices.
#   test-udev-rules.sh RULES [METAINFO]
set -euo pipefail
rules=$1
here=$(dirname "$0")
if udevadm verify --help >/dev/null 2>&1; then
  udevadm verify --resolve-names=never "$rules"
else
  echo "udevadm has no verify (systemd < 253): own check only"
fi
# SafeNet eToken 5100/5110 family, 5110+ FIPS, 7300, 5300, 5300 C, Fusion; Gemalto PC Twin
# Reader, USB Shell Token V2.
# The AppStream file lists the same devices (software centres match hardware with it).
metainfo=${2:-}
if [ -n "$metainfo" ]; then
  from_rules=$(grep -oE 'idVendor}=="[0-9a-f]{4}", ATTR\{idProduct}=="[0-9a-f]{4}"' "$rules" \
    | sed -E 's/.*"(.{4})".*"(.{4})"/\1:\2/' | sort)
  from_metainfo=$(grep -oE '<modalias>usb:v[0-9A-F]{4}p[0-9A-F]{4}d\*</modalias>' "$metainfo" \
    | sed -E 's/.*v(.{4})p(.{4}).*/\L\1:\2/' | sort)
  if [ "$from_rules" != "$from_metainfo" ]; then
    echo "FAIL: $metainfo does not list the devices of $rules:" >&2
    diff <(echo "$from_rules") <(echo "$from_metainfo") >&2 || true
    exit 1
  fi
fi
perl "$here/check-udev-rules.pl" "$rules" \
  0529:0620 08e6:34cf 0529:0602 08e6:34cc 08e6:34ce 08e6:34d2 08e6:3437 08e6:3438
