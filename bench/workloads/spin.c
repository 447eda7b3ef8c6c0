// spin: a CPU-bound loop for SECONDS of wall time (0 = until killed), in a 3-deep call chain
// without frame pointers, so DWARF unwinding has work to do. The load generator of
// bench/memory/run ("sprof run -F 16000 -- spin 20", and the CPU-bound process beside a build).
//
//   main -> spin_outer -> spin_leaf
//
// Usage: spin [SECONDS=20]
// Build: gcc -O2 -g -fomit-frame-pointer spin.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

volatile uint64_t sink;

__attribute__((noinline)) uint64_t spin_leaf(uint64_t x) {
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

__attribute__((noinline)) uint64_t spin_outer(uint64_t x) { return spin_leaf(x) + 1; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 20;
    double end = now() + seconds;
    uint64_t x = 88172645463325252ull;
    while (seconds == 0 || now() < end) x = spin_outer(x);
    sink = x;
    return 0;
}
