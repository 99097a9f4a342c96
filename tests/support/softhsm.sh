# A throwaway SoftHSM2 token store, for scripts and for rerunning a failed test
# by hand. Sourced, not run. After pkcs11-provider's tests/softhsm-init.sh.
#   qscd_softhsm_init DIR          DIR/tokens + DIR/softhsm2.conf, exports SOFTHSM2_CONF
#   qscd_softhsm_token LABEL [SO_PIN] [USER_PIN]
#                                  a new initialised token in the first free slot
#   QSCD_SOFTHSM_MODULE            the SoftHSM2 module path

QSCD_SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so

qscd_softhsm_init() {
  local dir=$1
  mkdir -p "$dir/tokens"
  cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
CONF
  export SOFTHSM2_CONF="$dir/softhsm2.conf"
}

qscd_softhsm_token() {
  local label=$1 so_pin=${2:-12345678} user_pin=${3:-123456}
  softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
}
