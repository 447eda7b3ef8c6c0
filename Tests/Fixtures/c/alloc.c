// alloc: allocates MIB mebibytes in one block, touches every page so it is resident, holds it for
// HOLD_MS milliseconds (sleeping), prints the VmRSS it then reads from /proc/self/status, and
// frees it. The memory timeline's peak for this process must match the printed value.
//
//   main → hold_memory (malloc + memset, nanosleep)
//
// Prints: "alloc: mib=N vmrss_kb=K sink=…"
// Usage: alloc [MIB=64] [HOLD_MS=400]
// Build: clang -O2 -g alloc.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static long vmrss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) { kb = strtol(line + 6, NULL, 10); break; }
    }
    fclose(f);
    return kb;
}

NOINLINE uint64_t hold_memory(size_t bytes, long hold_ms, long *rss) {
    volatile unsigned char *p = malloc(bytes);
    if (!p) { perror("alloc: malloc"); exit(1); }
    for (size_t i = 0; i < bytes; i += 4096) p[i] = (unsigned char)(i >> 12);
    struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    *rss = vmrss_kb();
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes; i += 4096) sum += p[i];
    free((void *)p);
    return sum;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 64;
    long hold_ms = argc > 2 ? atol(argv[2]) : 400;
    if (argc > 3 || mib < 1 || mib > 65536 || hold_ms < 0 || hold_ms > 600000) {
        fprintf(stderr, "usage: alloc [MIB] [HOLD_MS]\n");
        return 2;
    }
    long rss = 0;
    uint64_t sum = hold_memory((size_t)mib << 20, hold_ms, &rss);
    printf("alloc: mib=%ld vmrss_kb=%ld sink=%llx\n", mib, rss, (unsigned long long)sum);
    return 0;
}
