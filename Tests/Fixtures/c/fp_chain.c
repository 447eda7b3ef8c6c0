// fp_chain: a known call chain with a designed 60/30/10 CPU split between three named leaves.
//
//   main → run_all → do_round → caller_sixty  → leaf_sixty    (60%)
//                             → caller_thirty → leaf_thirty   (30%)
//                             → caller_ten    → leaf_ten      (10%)
//
// The split is time-sliced: each round runs the same spin kernel 6:3:1 times in the three leaves, and
// rounds repeat until the deadline, so the proportions hold at any duration and under preemption.
//
// Usage: fp_chain [SECONDS=1.0]
//
// Frame-pointer build (full chain down to main in every sample):
//   clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls fp_chain.c
// No-frame-pointer build (for DWARF unwinding):
//   clang -O2 -g -fomit-frame-pointer fp_chain.c
// gcc 12 also works but drops leaf frames (see Tests/Fixtures/README.md); use -fno-ipa-icf there too.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
#define UNIT 4000u /* kernel iterations per unit; one round is 10 units (tens of microseconds at -O2) */

volatile uint64_t sink;

/* The thread's own CPU time, not the wall clock: "S seconds" means S seconds of CPU time however
   loaded the machine is, so the samples a test can expect (CPU time × rate) do not shrink. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// The spin kernel: a serial xorshift64 chain the optimizer cannot fold. Each leaf has its own copy
// (inlined) and its own constant, so identical-code folding cannot merge the leaves.
#define SPIN(n, salt)                                    \
    uint64_t x = (seed) | 1, acc = (salt);               \
    for (uint32_t i = 0; i < (n); i++) {                 \
        x ^= x << 13;                                    \
        x ^= x >> 7;                                     \
        x ^= x << 17;                                    \
        acc += x;                                        \
    }                                                    \
    sink ^= acc;                                         \
    return acc

NOINLINE uint64_t leaf_sixty(uint64_t seed) { SPIN(6 * UNIT, 0x60); }
NOINLINE uint64_t leaf_thirty(uint64_t seed) { SPIN(3 * UNIT, 0x30); }
NOINLINE uint64_t leaf_ten(uint64_t seed) { SPIN(1 * UNIT, 0x10); }

// Callers use the result after the call, so they are not turned into tail calls (jumps).
NOINLINE uint64_t caller_sixty(uint64_t round) { uint64_t r = leaf_sixty(round + 1); sink += r; return r ^ 6; }
NOINLINE uint64_t caller_thirty(uint64_t round) { uint64_t r = leaf_thirty(round + 2); sink += r; return r ^ 3; }
NOINLINE uint64_t caller_ten(uint64_t round) { uint64_t r = leaf_ten(round + 3); sink += r; return r ^ 1; }

// Rounds run the three callers in a pseudo-random order, and a round is much shorter than the
// sampling period: a fixed order and a round near the period would phase-lock with the sampling
// timer and skew the split by several points from run to run.
NOINLINE uint64_t do_round(uint64_t round) {
    static uint64_t order_state = 0x9E3779B97F4A7C15ull;
    order_state ^= order_state << 13;
    order_state ^= order_state >> 7;
    order_state ^= order_state << 17;
    uint64_t h = 0;
    switch (order_state % 6) {
    case 0: h = caller_sixty(round); h ^= caller_thirty(round); h ^= caller_ten(round); break;
    case 1: h = caller_sixty(round); h ^= caller_ten(round); h ^= caller_thirty(round); break;
    case 2: h = caller_thirty(round); h ^= caller_sixty(round); h ^= caller_ten(round); break;
    case 3: h = caller_thirty(round); h ^= caller_ten(round); h ^= caller_sixty(round); break;
    case 4: h = caller_ten(round); h ^= caller_sixty(round); h ^= caller_thirty(round); break;
    default: h = caller_ten(round); h ^= caller_thirty(round); h ^= caller_sixty(round); break;
    }
    sink += h;
    return h;
}

NOINLINE uint64_t run_all(double seconds) {
    double deadline = now() + seconds;
    uint64_t rounds = 0, h = 0;
    do {
        h ^= do_round(rounds);
        rounds++;
    } while (now() < deadline);
    sink += h;
    return rounds;
}

int main(int argc, char **argv) {
    double seconds = 1.0;
    if (argc > 2) {
        fprintf(stderr, "usage: fp_chain [SECONDS]\n");
        return 2;
    }
    if (argc == 2) {
        char *end;
        seconds = strtod(argv[1], &end);
        if (*end || seconds < 0 || seconds > 3600) {
            fprintf(stderr, "fp_chain: bad SECONDS '%s'\n", argv[1]);
            return 2;
        }
    }
    uint64_t rounds = run_all(seconds);
    printf("fp_chain: rounds=%llu sink=%llx\n", (unsigned long long)rounds, (unsigned long long)sink);
    return 0;
}
