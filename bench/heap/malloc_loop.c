// malloc_loop ITERATIONS [DELAY_S]: malloc + write + free of sizes 16..1039 bytes in a loop (the
// issue's "malloc-heavy C loop"). Sleeps DELAY_S seconds first (so that `sprof run --heap -p`
// can attach), then prints the loop's own time per iteration: `ns_per_iter=…`.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    double delay = argc > 2 ? atof(argv[2]) : 0;
    if (delay > 0) usleep((useconds_t)(delay * 1e6));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        char *p = malloc(16 + (size_t)(i * 37 % 1024));
        p[0] = (char)i;
        sink = p;
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("ns_per_iter=%.2f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (double)n);
    return 0;
}
