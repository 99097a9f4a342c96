#!/bin/sh
# A stand-in for pinentry in tests: just enough Assuan for qscd-agent's
# pinentry source. It answers every command with OK and GETPIN with the PIN
# 1234, or with the first line of the file FAKE_PINENTRY_PINS, which it then
# removes (one line per pinentry run). FAKE_PINENTRY_MODE=hangup: greet, then
# exit at once (a pinentry that dies mid-conversation).
echo "OK fake pinentry ready"
if [ "${FAKE_PINENTRY_MODE:-}" = hangup ]; then exit 0; fi
while IFS= read -r line; do
  case "$line" in
    GETPIN)
      pin=1234
      if [ -n "${FAKE_PINENTRY_PINS:-}" ]; then
        pin=$(head -n 1 "$FAKE_PINENTRY_PINS")
        sed -i 1d "$FAKE_PINENTRY_PINS"
      fi
      echo "D $pin"; echo "OK" ;;
    BYE) echo "OK closing connection"; exit 0 ;;
    *) echo "OK" ;;
  esac
done
