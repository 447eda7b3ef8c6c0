#!/usr/bin/env bash
# Installs the system libraries sprof links (libdw, libelf, zlib) and the tools its tests use.
# Idempotent: does nothing when everything is already there. `--test` adds what only the tests
# need: headless Chromium, chromedriver and Selenium for the `sprof serve` browser test.
set -euo pipefail
pkgs=(libdw-dev libelf-dev zlib1g-dev libiberty-dev binutils gcc)
[ "${1:-}" = "--test" ] && pkgs+=(chromium chromium-driver python3-selenium)
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
