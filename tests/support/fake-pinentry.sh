#!/bin/sh
# A stand-in for pinentry in tests: just enough Assuan for qscd-agent's
# pinentry source. It answers every command with OK and GETPIN with the PIN
# 1234. FAKE_PINENTRY_MODE=hangup: greet, then exit at once (a pinentry that
# dies mid-conversation).
echo "OK fake pinentry ready"
if [ "${FAKE_PINENTRY_MODE:-}" = hangup ]; then exit 0; fi
while IFS= read -r line; do
  case "$line" in
    GETPIN) echo "D 1234"; echo "OK" ;;
    BYE) echo "OK closing connection"; exit 0 ;;
    *) echo "OK" ;;
  esac
done
