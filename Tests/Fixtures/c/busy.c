// busy: a workload bounded by iterations, not by a clock, that reports the CPU time it used.
//
//   main → busy_run → busy_outer → busy_leaf (all the CPU time is in busy_leaf)
//
// Usage: busy [ROUNDS=1000] [migrate]   (0 = spin until killed)
// With "migrate" it moves itself to the next CPU it may run on before every round
// (sched_setaffinity), so that each CPU's ring buffer sees the process come and go.
// Each round is 200,000 steps of a serial xorshift chain (~0.3-0.5 ms). At the end it prints
//   busy: rounds=N cpu_ns=T sink=…
// where T is this process's user + system CPU time (getrusage), so a test can compare the samples
// sprof took with the CPU time the workload actually got, whatever the machine's load.
// Build: clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls busy.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>

volatile uint64_t sink;

__attribute__((noinline)) uint64_t busy_leaf(uint64_t x, uint32_t n) {
    uint64_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    sink ^= acc;
    return acc;
}

__attribute__((noinline)) uint64_t busy_outer(uint64_t round) {
    uint64_t r = busy_leaf(round | 1, 200000);
    return r ^ (round * 3); // work after the call: no tail call
}

static cpu_set_t allowed;
static int migrate;

// Pins the process to the allowed CPU after the one it is on.
static void hop(void) {
    int ncpu = CPU_COUNT(&allowed), here = sched_getcpu(), next = -1, first = -1;
    if (ncpu < 2) return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        if (first < 0) first = c;
        if (c > here) { next = c; break; }
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(next >= 0 ? next : first, &one);
    sched_setaffinity(0, sizeof one, &one);
}

__attribute__((noinline)) uint64_t busy_run(uint64_t rounds) {
    uint64_t h = 0, round = 0;
    while (rounds == 0 || round < rounds) {
        if (migrate) hop();
        h ^= busy_outer(round++);
    }
    sink ^= h;
    return round;
}

int main(int argc, char **argv) {
    char *end = NULL;
    long long rounds = argc > 1 ? strtoll(argv[1], &end, 10) : 1000;
    migrate = argc > 2 && strcmp(argv[2], "migrate") == 0;
    if (argc > 3 || (argc > 2 && !migrate) || (end && *end) || rounds < 0) {
        fprintf(stderr, "usage: busy [ROUNDS] [migrate]\n");
        return 2;
    }
    sched_getaffinity(0, sizeof allowed, &allowed);
    uint64_t done = busy_run((uint64_t)rounds);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long ns = ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL
        + ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    printf("busy: rounds=%llu cpu_ns=%lld sink=%llx\n", (unsigned long long)done, ns, (unsigned long long)sink);
    return 0;
}
