// shift: two versions of one program whose hot function changed, for `sprof diff` tests.
//
//   main → run → parse_input   (before: 70%, after: 30%)
//             → build_index    (before: 30%, after: 70%)
//
// Usage: shift before|after [ROUNDS=20000]
// Bounded by rounds, not by time, so the split holds on a loaded machine. Each round runs the spin
// kernel 7:3 (before) or 3:7 (after) units in the two functions.
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

NOINLINE uint64_t run(int after, long rounds) {
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (long r = 0; r < rounds; r++) {
        seed += parse_input(seed, after ? 3 : 7);
        seed += build_index(seed, after ? 7 : 3);
    }
    return seed;
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "before") && strcmp(argv[1], "after"))) {
        fprintf(stderr, "usage: shift before|after [ROUNDS]\n");
        return 2;
    }
    long rounds = argc > 2 ? atol(argv[2]) : 20000;
    uint64_t r = run(strcmp(argv[1], "after") == 0, rounds);
    printf("shift %s: %ld rounds, sink=%llu\n", argv[1], rounds, (unsigned long long)(r ^ sink));
    return 0;
}
