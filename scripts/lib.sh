# Shared by scripts/test and scripts/demo: install what is missing, configure, build.
# Sourced, not run.

QSCD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QSCD_BUILD=${QSCD_BUILD_DIR:-$QSCD_ROOT/build}

# Debian 12 packages the build, the tests and the demo need.
QSCD_PACKAGES=(
  build-essential cmake pkg-config
  libssl-dev openssl
  libp11-dev libengine-pkcs11-openssl
  libpkcs11-helper1-dev
  libp11-kit-dev p11-kit p11-kit-modules
  libcurl4-openssl-dev curl
  nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libsqlite3-dev sqlite3
  doctest-dev
  libcpp-httplib-dev
  libsystemd-dev
  softhsm2 opensc gnutls-bin
  pinentry-curses  # tests/token_cli: the real pinentry in a pseudo-terminal
  jq  # bench/provision: the hand-made pipeline builds and reads the order JSON with it
  # tests/package and scripts/debian-build: CPack's shlibdeps (file), lintian, hardening-check
  # (devscripts), systemd-analyze (systemd), man -w (man-db), the postinst's adduser, the
  # watch unit's ExecReload=/bin/kill (procps), the container that runs the units (systemd-nspawn)
  file lintian devscripts systemd systemd-container man-db adduser procps
)

qscd_install_deps() {
  local missing=()
  local pkg
  for pkg in "${QSCD_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "qscd-agent: missing Debian packages: ${missing[*]}" >&2
    echo "qscd-agent: run as root, or: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "Installing ${#missing[@]} missing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

qscd_build() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  echo "Building in $QSCD_BUILD (a first build takes several minutes on 2 cores)" >&2
  # Our own builds treat warnings as errors (QSCD_WERROR); a build folder configured before that
  # option existed, or without it, is reconfigured with it.
  if [ ! -f "$QSCD_BUILD/CMakeCache.txt" ]; then
    cmake -S "$QSCD_ROOT" -B "$QSCD_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQSCD_WERROR=ON "$@" >/dev/null
  elif ! grep -q '^QSCD_WERROR:BOOL=ON$' "$QSCD_BUILD/CMakeCache.txt"; then
    cmake -S "$QSCD_ROOT" -B "$QSCD_BUILD" -DQSCD_WERROR=ON "$@" >/dev/null
  fi
  cmake --build "$QSCD_BUILD" -j "$jobs" -- --no-print-directory >/dev/null
}

# The clang build (Debian's clang 14): ASan + UBSan on everything, toml++ compiled in, and the
# libFuzzer targets of tests/fuzz (QSCD_FUZZ implies QSCD_SANITIZE). scripts/sanitize runs the
# ctest suite in it, scripts/fuzz the fuzz targets: one build for both. Folder: $QSCD_BUILD-clang
# (override with QSCD_CLANG_BUILD_DIR). Extra arguments go to `cmake --build` (e.g. --target x).
QSCD_CLANG_BUILD=${QSCD_CLANG_BUILD_DIR:-$QSCD_BUILD-clang}

qscd_clang_build() {
  if ! command -v clang++-14 >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed"; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "qscd-agent: the sanitizer and fuzz build needs clang-14 and libclang-rt-14-dev (sudo apt-get install clang-14 libclang-rt-14-dev)" >&2
      return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev >/dev/null
  fi
  echo "Building the clang ASan/UBSan/fuzz build in $QSCD_CLANG_BUILD" >&2
  if [ ! -f "$QSCD_CLANG_BUILD/CMakeCache.txt" ]; then
    # -O1 and line tables only: what libFuzzer and ASan recommend, and a shorter build in CI.
    cmake -S "$QSCD_ROOT" -B "$QSCD_CLANG_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" -DQSCD_WERROR=ON -DQSCD_FUZZ=ON >/dev/null
  fi
  cmake --build "$QSCD_CLANG_BUILD" -j "$(nproc 2>/dev/null || echo 2)" "$@" -- --no-print-directory >/dev/null
}

# The sanitizers' settings for every run in the clang build: stop at the first report, leaks
# checked at exit, third-party libraries' own leaks suppressed (tests/sanitizer/lsan.supp says
# which and why).
qscd_sanitizer_env() {
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$QSCD_ROOT/tests/sanitizer/lsan.supp:print_suppressions=0}
}
