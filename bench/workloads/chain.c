// chain: a fixed amount of work (not a fixed time) through a known call chain, for overhead and
// turnaround measurements. Built twice by bench/run: with frame pointers (chain-fp) and without
// (chain-nofp, for DWARF unwinding).
//
//   main → run_all → do_round → stage_a → mix_a → kernel_a        (~60%)
//                             → stage_b → sort_b → qsort → cmp_b  (~30%, frames through libc)
//                             → stage_c → copy_c → memcpy         (~10%)
//
// Usage: chain [ROUNDS=2000]
// The instruction count depends only on ROUNDS, so a profiler's overhead shows up as a longer run.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink;
static uint64_t buf_a[64];
static uint32_t arr_b[256];
static uint8_t src_c[1 << 16], dst_c[1 << 16];

NOINLINE uint64_t kernel_a(uint64_t x, uint32_t n) {
    uint64_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    return acc;
}

NOINLINE uint64_t mix_a(uint64_t seed) {
    uint64_t acc = 0;
    for (int i = 0; i < 4; i++) acc ^= kernel_a(seed + (uint64_t)i, 15000);
    return acc;
}

NOINLINE uint64_t stage_a(uint64_t seed) { return mix_a(seed) + 1; }

NOINLINE int cmp_b(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

NOINLINE uint64_t sort_b(uint64_t seed) {
    uint64_t acc = 0;
    for (int r = 0; r < 10; r++) {
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + (uint64_t)r + 1;
        for (int i = 0; i < 256; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            arr_b[i] = (uint32_t)x;
        }
        qsort(arr_b, 256, sizeof arr_b[0], cmp_b);
        acc += arr_b[seed & 255];
    }
    return acc;
}

NOINLINE uint64_t stage_b(uint64_t seed) { return sort_b(seed) + 2; }

NOINLINE uint64_t copy_c(uint64_t seed) {
    for (int r = 0; r < 12; r++) {
        memcpy(dst_c, src_c, sizeof src_c);
        src_c[(seed + (uint64_t)r) & 0xffff] ^= dst_c[r];
    }
    return dst_c[seed & 0xffff];
}

NOINLINE uint64_t stage_c(uint64_t seed) { return copy_c(seed) + 3; }

NOINLINE uint64_t do_round(uint64_t round) {
    uint64_t acc = stage_a(round);
    acc ^= stage_b(round);
    acc ^= stage_c(round);
    buf_a[round & 63] = acc;
    return acc;
}

NOINLINE uint64_t run_all(unsigned long rounds) {
    uint64_t acc = 0;
    for (unsigned long r = 0; r < rounds; r++) acc += do_round(r);
    return acc;
}

int main(int argc, char **argv) {
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    for (size_t i = 0; i < sizeof src_c; i++) src_c[i] = (uint8_t)(i * 31);
    sink = run_all(rounds);
    return 0;
}
