// sleepers: N threads that block in pause() and never run, while main sleeps S seconds.
//
// A process with many threads makes `sprof run -p` open many events (one per CPU and thread),
// which takes long enough for a test to signal sprof while it is still opening them.
//
// Usage: sleepers [N=1000] [SECONDS=120]
// Build: clang -O2 -g -pthread sleepers.c
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    unsigned seconds = argc > 2 ? (unsigned)atoi(argv[2]) : 120;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);  // 1,000 threads in 64 MiB of address space
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, sleeper, NULL) != 0) {
            fprintf(stderr, "sleepers: thread %d: cannot create\n", i);
            return 1;
        }
    }
    printf("sleepers: %d threads\n", n);
    fflush(stdout);
    sleep(seconds);
    return 0;
}
