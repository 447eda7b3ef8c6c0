// recurse: recursion DEPTH deep, then a spin at the bottom.
//
//   main → run_recurse → recurse_step × DEPTH → recurse_bottom (spins SECONDS)
//
// With DEPTH 200 the stack (~203 frames) exceeds the kernel's perf_event_max_stack (127 by default):
// frame-pointer callchains come back cut at 127 entries, without main.
//
// Usage: recurse [DEPTH=200] [SECONDS=0.5]
// Build: clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls recurse.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink;

/* The thread's own CPU time, not the wall clock: "S seconds" means S seconds of CPU time however
   loaded the machine is, so the samples a test can expect (CPU time × rate) do not shrink. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

NOINLINE uint64_t recurse_bottom(double seconds) {
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
    return acc;
}

NOINLINE uint64_t recurse_step(int remaining, double seconds) {
    uint64_t r = remaining <= 1 ? recurse_bottom(seconds) : recurse_step(remaining - 1, seconds);
    // A volatile store after the call: no tail call and no accumulator-recursion-to-loop rewrite.
    sink += r ^ (uint64_t)remaining;
    return r * 31 + (uint64_t)remaining;
}

NOINLINE uint64_t run_recurse(int depth, double seconds) {
    uint64_t r = recurse_step(depth, seconds);
    sink ^= r;
    return r;
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 200;
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 0.5;
    if (argc > 3 || depth < 1 || depth > 100000 || seconds < 0 || seconds > 3600) {
        fprintf(stderr, "usage: recurse [DEPTH] [SECONDS]\n");
        return 2;
    }
    uint64_t r = run_recurse(depth, seconds);
    printf("recurse: depth=%d sink=%llx\n", depth, (unsigned long long)r);
    return 0;
}
