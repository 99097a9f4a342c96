# Shared by the package tests. Sourced.
# qscd_deb DIR: the one .deb make-deb.sh left in DIR.
qscd_deb() {
  local debs=("$1"/*.deb)
  if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
    echo "expected one .deb in $1 (run the package_deb test first)" >&2
    return 1
  fi
  echo "${debs[0]}"
}
