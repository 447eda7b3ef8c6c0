// inline: a hot always-inline function inside a noinline caller.
//
//   main → outer_caller (samples here; DWARF inline info says they are in inlined_hot)
//
// Symbol tables only know outer_caller; with `-g`, .debug_info has a DW_TAG_inlined_subroutine for
// inlined_hot covering the loop, so an inline-aware symbolizer shows main;outer_caller;inlined_hot.
//
// Usage: inline [ROUNDS=2000]   Bounded by iterations (each round 200,000 steps, ~0.3 ms), not by a
// clock, so a loaded machine changes how long it takes but not how much CPU time it gets sampled for.
// Prints "inline: rounds=N cpu_ns=T sink=…", T being this process's user + system CPU time.
// Build: clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer inline.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

volatile uint64_t sink;

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

__attribute__((noinline)) uint64_t outer_caller(uint64_t rounds) {
    uint64_t h = 0, round = 0;
    while (round < rounds) h ^= inlined_hot((round++ << 1) | 1, 200000);
    sink = h;
    return round;
}

int main(int argc, char **argv) {
    long long asked = argc > 1 ? strtoll(argv[1], NULL, 10) : 2000;
    if (argc > 2 || asked <= 0) {
        fprintf(stderr, "usage: inline [ROUNDS]\n");
        return 2;
    }
    uint64_t rounds = outer_caller((uint64_t)asked);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long ns = ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL
        + ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    printf("inline: rounds=%llu cpu_ns=%lld sink=%llx\n", (unsigned long long)rounds, ns, (unsigned long long)sink);
    return 0;
}
