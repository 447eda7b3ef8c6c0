#!/bin/sh
# Writes a C program with N (default 100,000) functions, each in the symbol table, and compiles it
# with -g: the symbol-memory case of bench/memory/run. The program calls a few hundred of them in
# a loop for SECONDS, so samples land in many functions.
#
#     gen_symbols.sh OUT [N=100000] 
set -eu
out=$1
n=${2:-100000}
src=$out.c
{
    echo '#include <stdint.h>'
    echo '#include <stdlib.h>'
    echo '#include <time.h>'
    echo 'volatile uint64_t sink;'
    i=0
    awk -v n="$n" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "__attribute__((noinline)) uint64_t fn%d(uint64_t x) { for (int k = 0; k < 50; k++) x = x * 6364136223846793005ull + %d; return x; }\n", i, i
        printf "typedef uint64_t (*fnp)(uint64_t);\nstatic fnp table[] = {\n"
        for (i = 0; i < n; i += 97) printf "fn%d,\n", i
        printf "};\n"
    }'
    cat <<'MAIN'
static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 3);
    uint64_t x = 1;
    size_t m = sizeof table / sizeof table[0];
    while (now() < end) for (size_t i = 0; i < m; i++) x = table[i](x);
    sink = x;
    return 0;
}
MAIN
} > "$src"
gcc -O0 -g -o "$out" "$src"  # -O0: -O1 took over 15 min of cc1 (2 GiB) for 100,000 functions
