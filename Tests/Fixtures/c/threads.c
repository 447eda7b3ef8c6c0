// threads: N pthreads, thread i spinning in its own function thread_work_{i % 4}, all joined.
//
//   start_thread → thread_work_0 / thread_work_1 / thread_work_2 / thread_work_3
//   (main → run_threads waits in pthread_join)
//
// Threads are named work-0, work-1, ... (COMM records). glibc's start_thread has no frame pointer,
// so fp stacks of the threads end at start_thread (or one frame above).
//
// Usage: threads [N=4] [SECONDS=0.6]
// Build: clang -O2 -g -pthread -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer threads.c
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink[64 * 8];
static double seconds_each;

/* The thread's own CPU time, not the wall clock: "S seconds" means S seconds of CPU time however
   loaded the machine is, so the samples a test can expect (CPU time × rate) do not shrink. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define SPIN_UNTIL_DEADLINE(slot, salt)                  \
    uint64_t x = (slot) * 0x9E3779B97F4A7C15ull | 1;     \
    uint64_t acc = (salt);                               \
    double deadline = now() + seconds_each;              \
    do {                                                 \
        for (uint32_t i = 0; i < 50000; i++) {           \
            x ^= x << 13;                                \
            x ^= x >> 7;                                 \
            x ^= x << 17;                                \
            acc += x;                                    \
        }                                                \
    } while (now() < deadline);                          \
    sink[(slot) * 8] = acc;                              \
    return NULL

NOINLINE void *thread_work_0(void *arg) { SPIN_UNTIL_DEADLINE((uintptr_t)arg, 0); }
NOINLINE void *thread_work_1(void *arg) { SPIN_UNTIL_DEADLINE((uintptr_t)arg, 1); }
NOINLINE void *thread_work_2(void *arg) { SPIN_UNTIL_DEADLINE((uintptr_t)arg, 2); }
NOINLINE void *thread_work_3(void *arg) { SPIN_UNTIL_DEADLINE((uintptr_t)arg, 3); }

static void *(*const work[4])(void *) = {thread_work_0, thread_work_1, thread_work_2, thread_work_3};

NOINLINE int run_threads(int n, double seconds) {
    pthread_t tids[64];
    seconds_each = seconds;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, work[i % 4], (void *)(uintptr_t)i) != 0) {
            perror("threads: pthread_create");
            exit(1);
        }
        char name[16];
        snprintf(name, sizeof name, "work-%d", i);
        pthread_setname_np(tids[i], name);
    }
    for (int i = 0; i < n; i++) pthread_join(tids[i], NULL);
    return n;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 0.6;
    if (argc > 3 || n < 1 || n > 64 || seconds < 0 || seconds > 3600) {
        fprintf(stderr, "usage: threads [N<=64] [SECONDS]\n");
        return 2;
    }
    int joined = run_threads(n, seconds);
    uint64_t h = 0;
    for (int i = 0; i < 64; i++) h ^= sink[i * 8];
    printf("threads: joined=%d sink=%llx\n", joined, (unsigned long long)h);
    return 0;
}
