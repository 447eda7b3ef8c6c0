#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is needed, then `swift test`.
# The end-to-end tests use the real kernel; they skip, saying why, where perf_event_open is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
