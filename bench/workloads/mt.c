// mt: THREADS pthreads, each doing a fixed amount of work through its own call chain, all joined.
//
//   start_thread → worker → thread_work_{i % 4} → spin
//   main → run_threads → pthread_join (waits)
//
// Usage: mt [THREADS=4] [UNITS=400]       (each thread runs UNITS units of the spin kernel)
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink[64 * 8];
static unsigned long units = 400;

NOINLINE uint64_t spin(uint64_t x, uint32_t n) {
    uint64_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    return acc;
}

#define WORK(k)                                                               \
    NOINLINE uint64_t thread_work_##k(uint64_t slot) {                        \
        uint64_t acc = (k);                                                   \
        for (unsigned long u = 0; u < units; u++)                             \
            acc += spin((slot + u) * 0x9E3779B97F4A7C15ull | 1, 50000 + (k)); \
        return acc;                                                           \
    }
WORK(0)
WORK(1)
WORK(2)
WORK(3)

NOINLINE void *worker(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    uint64_t r;
    switch (i % 4) {
    case 0: r = thread_work_0(i); break;
    case 1: r = thread_work_1(i); break;
    case 2: r = thread_work_2(i); break;
    default: r = thread_work_3(i); break;
    }
    sink[(i % 64) * 8] = r;
    return NULL;
}

NOINLINE int run_threads(int n) {
    pthread_t t[64];
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) return 1;
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) units = strtoul(argv[2], NULL, 10);
    if (n < 1 || n > 64) return 2;
    return run_threads(n);
}
