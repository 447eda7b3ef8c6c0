// shift: two versions of one program whose hot function changed, for `sprof diff` tests.
//
//   main → run → parse_input   (before: 70%, after: 30%)
//             → build_index    (before: 30%, after: 70%)
//
// Usage: shift before|after [ROUNDS=20000]
// Bounded by rounds, not by time, so the split holds on a loaded machine. Each round runs the spin
// kernel 7:3 (before) or 3:7 (after) units in the two functions.
//
// A shift between two callers of one leaf, for `sprof diff`'s total shares and repeated runs:
//
//   main → run_shared → caller_a → spin   (PERCENT% of the work)
//                     → caller_b → spin   (the rest)
//
// Usage: shift shared PERCENT [ROUNDS=20000]; each round spins 100 units of UNIT/10 iterations,
// PERCENT of them under caller_a. spin's self share stays ~100%; the callers' totals move.
//
//   clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer shift.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define UNIT 2000u

volatile uint64_t sink;

#define SPIN(n, salt)                        \
    uint64_t x = (seed) | 1, acc = (salt);   \
    for (uint32_t i = 0; i < (n); i++) {     \
        x ^= x << 13;                        \
        x ^= x >> 7;                         \
        x ^= x << 17;                        \
        acc += x;                            \
    }                                        \
    sink ^= acc;                             \
    return acc

NOINLINE uint64_t parse_input(uint64_t seed, uint32_t units) { SPIN(units * UNIT, 0x51); }
NOINLINE uint64_t build_index(uint64_t seed, uint32_t units) { SPIN(units * UNIT, 0x1d); }

NOINLINE uint64_t spin(uint64_t seed, uint32_t units) { SPIN(units * (UNIT / 10), 0x77); }
NOINLINE uint64_t caller_a(uint64_t seed, uint32_t units) { return spin(seed, units) + 1; }
NOINLINE uint64_t caller_b(uint64_t seed, uint32_t units) { return spin(seed ^ 0x55, units) + 3; }

NOINLINE uint64_t run_shared(uint32_t percent, long rounds) {
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (long r = 0; r < rounds; r++) {
        seed += caller_a(seed, percent);
        seed += caller_b(seed, 100 - percent);
    }
    return seed;
}

NOINLINE uint64_t run(int after, long rounds) {
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (long r = 0; r < rounds; r++) {
        seed += parse_input(seed, after ? 3 : 7);
        seed += build_index(seed, after ? 7 : 3);
    }
    return seed;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "shared") == 0) {
        int percent = atoi(argv[2]);
        if (percent < 0 || percent > 100) {
            fprintf(stderr, "usage: shift shared PERCENT(0-100) [ROUNDS]\n");
            return 2;
        }
        long rounds = argc > 3 ? atol(argv[3]) : 20000;
        uint64_t r = run_shared((uint32_t)percent, rounds);
        printf("shift shared %d: %ld rounds, sink=%llu\n", percent, rounds, (unsigned long long)(r ^ sink));
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "before") && strcmp(argv[1], "after"))) {
        fprintf(stderr, "usage: shift before|after [ROUNDS] | shift shared PERCENT [ROUNDS]\n");
        return 2;
    }
    long rounds = argc > 2 ? atol(argv[2]) : 20000;
    uint64_t r = run(strcmp(argv[1], "after") == 0, rounds);
    printf("shift %s: %ld rounds, sink=%llu\n", argv[1], rounds, (unsigned long long)(r ^ sink));
    return 0;
}
