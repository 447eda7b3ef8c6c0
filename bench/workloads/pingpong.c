// pingpong: two threads pass a byte back and forth over two pipes N times: 2N blocking reads,
// so about 2N context switches, with a little work between (a fixed amount, never a fixed time).
// The stress case for off-CPU recording, which takes one stack per switch-out.
//
// Usage: pingpong [N=20000] [WORK=2000]
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static int ab[2], ba[2];
static long rounds = 20000, work = 2000;
volatile uint64_t sink;

NOINLINE uint64_t do_work(uint64_t x) {
    for (long i = 0; i < work; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
    return x;
}

NOINLINE void *pong(void *arg) {
    (void)arg;
    char c;
    uint64_t x = 2;
    for (long i = 0; i < rounds; i++) {
        if (read(ab[0], &c, 1) != 1) exit(1);
        x = do_work(x);
        if (write(ba[1], &c, 1) != 1) exit(1);
    }
    sink += x;
    return NULL;
}

NOINLINE void ping(void) {
    char c = 'p';
    uint64_t x = 1;
    for (long i = 0; i < rounds; i++) {
        if (write(ab[1], &c, 1) != 1) exit(1);
        if (read(ba[0], &c, 1) != 1) exit(1);
        x = do_work(x);
    }
    sink += x;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atol(argv[1]);
    if (argc > 2) work = atol(argv[2]);
    if (argc > 3 || rounds < 1 || work < 0) { fprintf(stderr, "usage: pingpong [N] [WORK]\n"); return 2; }
    if (pipe(ab) || pipe(ba)) { perror("pingpong: pipe"); return 1; }
    pthread_t t;
    pthread_create(&t, NULL, pong, NULL);
    ping();
    pthread_join(t, NULL);
    printf("pingpong: rounds=%ld sink=%llx\n", rounds, (unsigned long long)sink);
    return 0;
}
