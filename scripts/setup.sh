#!/usr/bin/env bash
# Installs the system libraries sprof links (libdw, libelf, zlib) and the tools its tests use.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
for pkg in libdw-dev libelf-dev zlib1g-dev libiberty-dev binutils gcc; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
