#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is needed, then `swift test`.
# The end-to-end tests use the real kernel; they skip, saying why, where perf_event_open is refused.
# The browser test of `sprof serve` skips, saying why, only where Chromium cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The fuzz package mirrors the target graph by hand; a mismatch would otherwise surface only in CI.
/usr/bin/python3 fuzz/check-manifest.py
swift build --build-tests
swift test --skip-build "$@"
# `sprof serve` in a real browser (headless Chromium via Selenium); skipped with --filter.
if [ $# -eq 0 ]; then
    /usr/bin/python3 Tests/ServeBrowser/serve_browser_test.py "$(swift build --show-bin-path)"
fi
