#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build sprof and the bundled qsl-bench
# in release mode, profile qsl-bench, and write qsl.folded and qsl.svg (open qsl.svg in a browser).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product sprof
swift build -c release --product qsl-bench
bin=$(swift build -c release --show-bin-path)
"$bin/sprof" run -o qsl -- "$bin/qsl-bench" "$@"
echo "flame graph: $(pwd)/qsl.svg" >&2
