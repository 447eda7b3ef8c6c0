// Checks libsprof-heap.so's byte sampling from inside a process it is preloaded into: allocates
// N objects in a pattern and prints how many the library sampled and how many sampled frees it
// reported, for the test to compare with the sampling law (1 - exp(-size/rate) per allocation).
//     heap_rate PATTERN N        PATTERN: fixed4096 | periodic (16/32/48/64 bytes) | mixed
//                                | live (N 16-byte blocks all live at once, then all freed)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(int argc, char **argv) {
    const char *pattern = argc > 1 ? argv[1] : "fixed4096";
    long n = argc > 2 ? atol(argv[2]) : 100000;
    unsigned long (*sampled)(void) = (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "sprof_heap_sample_count");
    unsigned long (*freed)(void) = (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "sprof_heap_freed_count");
    size_t (*rate)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "sprof_heap_rate");
    if (!sampled || !freed || !rate) {
        printf("not preloaded\n");
        return 2;
    }
    unsigned long (*untracked)(void) = (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "sprof_heap_untracked_count");
    void **blocks = strcmp(pattern, "live") == 0 ? calloc((size_t)n, sizeof *blocks) : 0;
    unsigned long s0 = sampled(), f0 = freed(), u0 = untracked ? untracked() : 0;
    if (blocks) {
        for (long i = 0; i < n; i++) blocks[i] = malloc(16);
        for (long i = 0; i < n; i++) free(blocks[i]);
        unsigned long s1 = sampled(), f1 = freed(), u1 = untracked ? untracked() : 0;
        free(blocks);
        printf("sampled=%lu freed=%lu untracked=%lu rate=%zu\n", s1 - s0, f1 - f0, u1 - u0, rate());
        return 0;
    }
    for (long i = 0; i < n; i++) {
        size_t size = strcmp(pattern, "periodic") == 0 ? 16 + 16 * (i % 4)
                      : strcmp(pattern, "mixed") == 0 ? 8 + (size_t)(i * 7919 % 20000) : 4096;
        void *p = (i % 3 == 0) ? calloc(1, size) : malloc(size);
        if (i % 7 == 0) p = realloc(p, size);  // a free plus an allocation of the same size
        sink = p;
        free(p);
    }
    unsigned long s1 = sampled(), f1 = freed();
    printf("sampled=%lu freed=%lu rate=%zu\n", s1 - s0, f1 - f0, rate());
    return 0;
}
