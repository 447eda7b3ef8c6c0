// bigframes: a stack deeper than any copy the kernel makes, of few but large frames.
//
//   main → run_big → big_frame × DEPTH (16 KiB of locals each) → big_bottom (spins SECONDS)
//
// DEPTH 12 puts main about 200 KiB above the spinning leaf, three times the largest user-stack
// copy a sample can carry (65528 bytes): a DWARF unwinder limited to the copy cannot reach main.
// The frames do not change while the leaf spins, so the live stack beyond the copy is the stack
// the sample was taken on. With LINGER the leaf then sleeps that long (no samples) before the
// stack unwinds, so that a profiler whose unwinding lags behind still finds the frames live.
//
// Usage: bigframes [DEPTH=12] [SECONDS=0.5] [LINGER=0]   (CPU time of the thread; LINGER wall)
// Build: clang -O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls bigframes.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double linger;

NOINLINE uint64_t big_bottom(double seconds) {
    double deadline = now() + seconds;
    uint64_t x = 0x2545F4914F6CDD1Dull, acc = 0;
    do {
        for (uint32_t i = 0; i < 50000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            acc += x;
        }
    } while (now() < deadline);
    sink ^= acc;
    if (linger > 0) {
        struct timespec ts = { (time_t)linger, (long)((linger - (double)(time_t)linger) * 1e9) };
        nanosleep(&ts, NULL);
    }
    return acc;
}

NOINLINE uint64_t big_frame(int remaining, double seconds) {
    volatile unsigned char block[16384];
    for (size_t i = 0; i < sizeof block; i += 64) block[i] = (unsigned char)(i + (size_t)remaining);
    uint64_t r = remaining <= 1 ? big_bottom(seconds) : big_frame(remaining - 1, seconds);
    // Read the block after the call: it stays live (and the frame big) across it.
    for (size_t i = 0; i < sizeof block; i += 4096) r += block[i];
    sink += r;
    return r;
}

NOINLINE uint64_t run_big(int depth, double seconds) {
    uint64_t r = big_frame(depth, seconds);
    sink ^= r;
    return r;
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 12;
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 0.5;
    linger = argc > 3 ? strtod(argv[3], NULL) : 0;
    if (argc > 4 || linger < 0 || linger > 60 || depth < 1 || depth > 400 || seconds < 0 || seconds > 3600) {
        fprintf(stderr, "usage: bigframes [DEPTH] [SECONDS] [LINGER]\n");
        return 2;
    }
    uint64_t r = run_big(depth, seconds);
    printf("bigframes: depth=%d sink=%llx\n", depth, (unsigned long long)r);
    return 0;
}
