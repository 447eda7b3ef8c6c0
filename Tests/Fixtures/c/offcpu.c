// offcpu: one worker thread whose wall time has a designed split between running, sleeping and
// waiting for I/O, repeated for a fixed number of rounds (default 20 rounds of ~100 ms):
//
//   worker_main → spin_phase                       40 ms on CPU (a spin, timed by CLOCK_MONOTONIC)
//   worker_main → sleep_phase → nanosleep          35 ms off CPU, sleeping
//   worker_main → read_phase → read                25 ms off CPU, blocked in read(2) on a pipe that a
//                                                  timer thread writes 25 ms after being asked
//
// The worker is named "ocpu-worker", the timer "ocpu-timer" (the timer's own time is mostly
// spent sleeping as well; the split is about the worker). At the end it prints the split it
// measured itself: "offcpu: rounds=N spin=S sleep=L read=R (ms) share=a/b/c".
//
// Usage: offcpu [ROUNDS=20] [SPIN_MS=40] [SLEEP_MS=35] [READ_MS=25]
// Build: clang -O2 -g -pthread offcpu.c (frame pointers or not: DWARF unwinding handles both)
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink;
static int request_pipe[2], reply_pipe[2];
static int rounds = 20;
static long spin_ns = 40000000, sleep_ns = 35000000, read_ns = 25000000;
static uint64_t measured[3];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

NOINLINE uint64_t spin_phase(uint64_t seed) {
    uint64_t x = seed | 1, acc = 0, end = now_ns() + (uint64_t)spin_ns;
    do {
        for (uint32_t i = 0; i < 20000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            acc += x;
        }
    } while (now_ns() < end);
    sink = acc;
    return acc;
}

NOINLINE int sleep_phase(void) {
    struct timespec ts = {sleep_ns / 1000000000, sleep_ns % 1000000000};
    int r = nanosleep(&ts, NULL);
    sink += (uint64_t)r;
    return r;
}

NOINLINE ssize_t read_phase(void) {
    char c = 'r';
    if (write(request_pipe[1], &c, 1) != 1) { perror("offcpu: write"); exit(1); }
    ssize_t n = read(reply_pipe[0], &c, 1);
    if (n != 1) { perror("offcpu: read"); exit(1); }
    sink += (uint64_t)c;
    return n;
}

NOINLINE void *worker_main(void *arg) {
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        uint64_t t0 = now_ns();
        spin_phase((uint64_t)i * 0x9E3779B97F4A7C15ull);
        uint64_t t1 = now_ns();
        sleep_phase();
        uint64_t t2 = now_ns();
        read_phase();
        uint64_t t3 = now_ns();
        measured[0] += t1 - t0;
        measured[1] += t2 - t1;
        measured[2] += t3 - t2;
    }
    char stop = 'q';
    if (write(request_pipe[1], &stop, 1) != 1) { perror("offcpu: write"); exit(1); }
    return NULL;
}

NOINLINE void *timer_main(void *arg) {
    (void)arg;
    char c;
    while (read(request_pipe[0], &c, 1) == 1 && c != 'q') {
        struct timespec ts = {read_ns / 1000000000, read_ns % 1000000000};
        nanosleep(&ts, NULL);
        if (write(reply_pipe[1], &c, 1) != 1) { perror("offcpu: write"); exit(1); }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atoi(argv[1]);
    if (argc > 2) spin_ns = atol(argv[2]) * 1000000;
    if (argc > 3) sleep_ns = atol(argv[3]) * 1000000;
    if (argc > 4) read_ns = atol(argv[4]) * 1000000;
    if (argc > 5 || rounds < 1 || rounds > 100000 || spin_ns < 0 || sleep_ns < 0 || read_ns < 0) {
        fprintf(stderr, "usage: offcpu [ROUNDS] [SPIN_MS] [SLEEP_MS] [READ_MS]\n");
        return 2;
    }
    if (pipe(request_pipe) != 0 || pipe(reply_pipe) != 0) { perror("offcpu: pipe"); return 1; }
    pthread_t worker, timer;
    if (pthread_create(&timer, NULL, timer_main, NULL) != 0 || pthread_create(&worker, NULL, worker_main, NULL) != 0) {
        perror("offcpu: pthread_create");
        return 1;
    }
    pthread_setname_np(timer, "ocpu-timer");
    pthread_setname_np(worker, "ocpu-worker");
    pthread_join(worker, NULL);
    pthread_join(timer, NULL);
    double total = (double)(measured[0] + measured[1] + measured[2]);
    printf("offcpu: rounds=%d spin=%.1f sleep=%.1f read=%.1f (ms) share=%.1f/%.1f/%.1f sink=%llx\n", rounds,
           measured[0] / 1e6, measured[1] / 1e6, measured[2] / 1e6, 100 * measured[0] / total, 100 * measured[1] / total,
           100 * measured[2] / total, (unsigned long long)sink);
    return 0;
}
