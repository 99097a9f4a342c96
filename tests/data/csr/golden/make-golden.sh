#!/usr/bin/env bash
# Makes <profile>.subject.der from <profile>.cnf with `openssl req` (see README.md). Run by hand
# only when a golden subject changes; the outputs are checked in.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for profile in be-ebox pkio-server pkio-eseal generic; do
  openssl req -new -newkey rsa:2048 -nodes -keyout "$work/key.pem" -config "$profile.cnf" -out "$work/$profile.csr" 2>/dev/null
  # The subject is the SEQUENCE at depth 2 right after the version INTEGER.
  line=$(openssl asn1parse -in "$work/$profile.csr" | awk '/d=2/ && /SEQUENCE/ {print; exit}')
  offset=$(sed -E 's/^ *([0-9]+):.*/\1/' <<<"$line")
  header=$(sed -E 's/.*hl= *([0-9]+).*/\1/' <<<"$line")
  length=$(sed -E 's/.* l= *([0-9]+).*/\1/' <<<"$line")
  openssl asn1parse -in "$work/$profile.csr" -offset "$offset" -length $((header + length)) -noout -out "$profile.subject.der"
  openssl asn1parse -inform DER -in "$profile.subject.der" > "$profile.subject.txt"
done
