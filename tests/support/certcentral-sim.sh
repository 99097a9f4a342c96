# Shell harness for certcentral-sim (sourced by scripts/demo and shell tests).
#   qscd_sim_start DIR [sim options...]  start on an ephemeral loopback port;
#       sets QSCD_SIM_URL, QSCD_SIM_CA (root CA file), QSCD_SIM_PID, QSCD_SIM_KEY
#       and stops the sim on exit (EXIT trap; chain your own cleanup in qscd_sim_stop's place).
#   qscd_sim_stop                        SIGTERM the sim and wait for it.
# QSCD_CERTCENTRAL_SIM names the binary (default: build/tests/certcentral-sim/certcentral-sim).

qscd_sim_start() {
  local dir=$1; shift
  local bin=${QSCD_CERTCENTRAL_SIM:-${QSCD_BUILD:-build}/tests/certcentral-sim/certcentral-sim}
  QSCD_SIM_KEY=${QSCD_SIM_KEY:-sim-demo-key-$RANDOM$RANDOM}
  mkdir -p "$dir"
  rm -f "$dir/port"
  "$bin" --state-dir "$dir" --port 0 --api-key "$QSCD_SIM_KEY" "$@" 2>>"$dir/sim.log" &
  QSCD_SIM_PID=$!
  trap qscd_sim_stop EXIT
  local i
  for i in $(seq 1 300); do
    [ -s "$dir/port" ] && break
    if ! kill -0 "$QSCD_SIM_PID" 2>/dev/null; then echo "certcentral-sim exited; see $dir/sim.log" >&2; return 1; fi
    sleep 0.1
  done
  [ -s "$dir/port" ] || { echo "certcentral-sim did not start" >&2; return 1; }
  QSCD_SIM_URL="https://127.0.0.1:$(cat "$dir/port")/services/v2"
  QSCD_SIM_CA="$dir/root-ca.pem"
  export QSCD_SIM_URL QSCD_SIM_CA QSCD_SIM_PID QSCD_SIM_KEY
}

qscd_sim_stop() {
  [ -n "${QSCD_SIM_PID:-}" ] || return 0
  kill -TERM "$QSCD_SIM_PID" 2>/dev/null || true
  wait "$QSCD_SIM_PID" 2>/dev/null || true
  QSCD_SIM_PID=
}
