#!/bin/sh
# bench/diff-truth.sh: can `sprof diff --fail-above` on repeated runs be trusted?
#
#   A/A: the same fixture on both sides (shift shared 50), RUNS runs per side; the gate at
#        GATE points must fire in at most 1 of TRIALS trials (false alarms).
#   A/B: a designed 3-point shift between two callers of one leaf (shift shared 50 → 53: caller_a's
#        total share grows by 3 points, spin's self share does not move); the gate must fire,
#        naming caller_a, in at least 19 of TRIALS trials.
#
# Usage: bench/diff-truth.sh [TRIALS=20] [RUNS=10] [GATE=2]
# Env: SPROF (default .build/debug/sprof), ROUNDS (fixture rounds per run, default 6000), FREQ
# (default 20000 Hz, clamped by the kernel), EVENT (default cpu-clock:u: user frames only, which
# spares every run the kernel's symbols), OUT (default bench/out/diff-truth-TIME).
# Needs clang (the Swift toolchain's) and perf events (perf_event_paranoid <= 2 for user frames).
# Prints one line per trial and a summary with the counts and the time taken (/usr/bin/time -p).
set -eu
TRIALS=${1:-20}
RUNS=${2:-10}
GATE=${3:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPROF=${SPROF:-$ROOT/.build/debug/sprof}
ROUNDS=${ROUNDS:-6000}
FREQ=${FREQ:-20000}
EVENT=${EVENT:-cpu-clock:u}
OUT=${OUT:-$ROOT/bench/out/diff-truth-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer "$ROOT/Tests/Fixtures/c/shift.c" -o "$OUT/shift"

record() { # NAME PERCENT
    "$SPROF" run -q -g -e "$EVENT" -F "$FREQ" -r "$RUNS" -o "$OUT/$1" -- "$OUT/shift" shared "$2" "$ROUNDS" > /dev/null
}

# gate BASE NEW: prints "fired NAMES" or "held"
gate() {
    if "$SPROF" diff "$OUT/$1.pb.gz" "$OUT/$2.pb.gz" -o "$OUT/diff.svg" --fail-above "$GATE" > "$OUT/$1-$2.txt" 2> "$OUT/$1-$2.err"; then
        echo held
    else
        status=$?
        [ "$status" -eq 2 ] || { cat "$OUT/$1-$2.err" >&2; exit 1; }
        echo "fired $(tail -n 1 "$OUT/$1-$2.err" | sed 's/.*points[^:]*: //')"
    fi
}

start=$(date +%s)
aa_fired=0
ab_fired=0
trial=1
while [ "$trial" -le "$TRIALS" ]; do
    # Interleaved: A, A', B per trial, so load drifts hit all sides alike.
    record "a$trial" 50
    record "aa$trial" 50
    record "b$trial" 53
    aa=$(gate "a$trial" "aa$trial")
    ab=$(gate "a$trial" "b$trial")
    case "$aa" in fired*) aa_fired=$((aa_fired + 1)) ;; esac
    case "$ab" in "fired caller_a"*|fired*", caller_a"*) ab_fired=$((ab_fired + 1)) ;; esac
    echo "trial $trial: A/A $aa | A/B $ab"
    trial=$((trial + 1))
done
end=$(date +%s)
echo "A/A: gate at $GATE points fired in $aa_fired of $TRIALS trials ($RUNS runs per side; want <= 1)"
echo "A/B: 3-point caller shift flagged (caller_a) in $ab_fired of $TRIALS trials ($RUNS runs per side; want >= 19)"
echo "time: $((end - start)) s wall for $TRIALS trials (3 x $RUNS runs each, $ROUNDS rounds per run, -e $EVENT -F $FREQ)"
echo "outputs: $OUT"
