#!/usr/bin/env bash
# Builds the libFuzzer harnesses and runs them over the committed seed corpus.
#   fuzz/run.sh --smoke            # each target for SMOKE_SECONDS (default 30): CI
#   fuzz/run.sh TARGET [ARGS…]     # one target with libFuzzer arguments, e.g. -runs=10000000
# New inputs found go to a scratch corpus under .build, never into the committed seeds; a crash
# leaves its input in fuzz/artifacts/ and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")"
# libFuzzer reports crashes itself; the Swift runtime's backtracer would hang waiting on the process.
export SWIFT_BACKTRACE=enable=no
targets=(FuzzFolded FuzzRecords FuzzJitMap FuzzPprof)
seeds() { case "$1" in FuzzFolded) echo folded;; FuzzRecords) echo records;; FuzzJitMap) echo jitmap;; FuzzPprof) echo pprof;; esac; }

/usr/bin/python3 ./check-manifest.py
swift build -c release --product FuzzFolded -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld >/dev/null
for t in "${targets[@]:1}"; do
    swift build -c release --product "$t" -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld >/dev/null
done
bin=$(swift build -c release --show-bin-path)
mkdir -p artifacts

run() {
    local t=$1; shift
    local scratch=.build/corpus/$(seeds "$t")
    mkdir -p "$scratch"
    # -rss_limit_mb: unbounded memory counts as a failure; -timeout: a hang does. (-malloc_limit_mb
    # would catch a single huge allocation sooner, but its malloc hooks cost 5x the executions.)
    "$bin/$t" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
        -artifact_prefix=artifacts/"$t"- "$@" "$scratch" corpus/"$(seeds "$t")"
}

if [ "${1:-}" = "--smoke" ]; then
    for t in "${targets[@]}"; do
        log=.build/smoke-$t.log
        status=0
        run "$t" -max_total_time="${SMOKE_SECONDS:-30}" -print_final_stats=1 >"$log" 2>&1 || status=$?
        echo "fuzz: $t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') executions in ${SMOKE_SECONDS:-30} s, peak RSS $(grep -E '^stat::peak_rss_mb' "$log" | awk '{print $2}') MB"
        if [ "$status" -ne 0 ]; then
            grep -E '^(==[0-9]+==ERROR|SUMMARY|Fatal error|.*artifact)' "$log" || tail -20 "$log"
            echo "fuzz: $t failed (status $status); the input is in fuzz/artifacts/"
            exit 1
        fi
    done
else
    t=$1; shift
    run "$t" "$@"
fi
