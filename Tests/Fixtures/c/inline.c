// inline: a hot always-inline function inside a noinline caller.
//
//   main → outer_caller (samples here; DWARF inline info says they are in inlined_hot)
//
// Symbol tables only know outer_caller; with `-g`, .debug_info has a DW_TAG_inlined_subroutine for
// inlined_hot covering the loop, so an inline-aware symbolizer shows main;outer_caller;inlined_hot.
//
// Usage: inline [SECONDS=0.5]
// Build: clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer inline.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

volatile uint64_t sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline __attribute__((always_inline)) uint64_t inlined_hot(uint64_t x, uint32_t n) {
    uint64_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    return acc;
}

__attribute__((noinline)) uint64_t outer_caller(double seconds) {
    double deadline = now() + seconds;
    uint64_t h = 0, round = 0;
    do {
        h ^= inlined_hot(round++ | 1, 200000);
    } while (now() < deadline);
    sink = h;
    return round;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 0.5;
    if (argc > 2 || seconds < 0 || seconds > 3600) {
        fprintf(stderr, "usage: inline [SECONDS]\n");
        return 2;
    }
    uint64_t rounds = outer_caller(seconds);
    printf("inline: rounds=%llu sink=%llx\n", (unsigned long long)rounds, (unsigned long long)sink);
    return 0;
}
