#!/usr/bin/env bash
# Installs the system libraries sprof links (libdw, libelf, zlib, libiberty, capstone) and, with `--test`,
# the tools its tests use: go (go tool pprof), python3-jsonschema (speedscope's schema), headless
# Chromium, chromedriver and Selenium (the `sprof serve` browser test), node (SVG script checks),
# sqlite3 and bzip2 (real-program stacks), make, libzstd (compressed debug sections), util-linux,
# gcc-multilib (an i386 fixture: 32-bit stacks in DWARF mode), debuginfod and iproute2 (a loopback
# debuginfod server in a private network namespace), valgrind (dhat: the heap profile cross-check).
# Idempotent: does nothing when everything is already there.
set -euo pipefail
pkgs=(libdw-dev libelf-dev zlib1g-dev libiberty-dev libcapstone-dev binutils gcc)
[ "${1:-}" = "--test" ] && pkgs+=(golang-go python3-jsonschema chromium chromium-driver python3-selenium nodejs sqlite3 bzip2 make libzstd-dev util-linux gcc-multilib debuginfod iproute2 valgrind)
need=()
for pkg in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
