// Heap-profile truth: three call stacks allocate bytes in a designed 60/30/10 split, with mixed
// sizes (including a periodic 16/32/48/64... pattern that would alias a fixed sampling period),
// and three leak sites keep 3, 2 and 1 MiB until exit. Prints its own totals.
//     heap_split [SCALE]   (SCALE 100 = about 1.3 GB allocated in all)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;
static unsigned long long counts[3], bytes[3];

// Allocates `total` bytes through malloc/calloc/realloc in sizes chosen by `pattern`, freeing each.
static void churn(int site, unsigned long long total, int pattern) {
    unsigned long long done = 0;
    unsigned i = 0;
    while (done < total) {
        size_t size;
        switch (pattern) {
        case 0: size = 16 + 16 * (i % 4); break;                 // periodic 16/32/48/64
        case 1: size = 1000 + (i * 7919u) % 60000; break;         // mixed 1 KB - 61 KB
        default: size = (i % 8 == 0) ? 200000 : 64 + (i % 50); break;  // rare large, many small
        }
        void *p;
        if (i % 5 == 1) {
            p = calloc(1, size);
        } else {
            p = malloc(size);
            ((char *)p)[0] = 1;
        }
        sink = p;
        free(p);
        done += size;
        counts[site]++;
        bytes[site] += size;
        i++;
    }
}

// 57 of its 60 parts in mixed sizes, 3 in the periodic pattern.
__attribute__((noinline)) void site_sixty(unsigned long long total) { churn(0, total / 60 * 57, 1); churn(0, total / 60 * 3, 0); sink = 0; }
__attribute__((noinline)) void site_thirty(unsigned long long total) { churn(1, total, 2); sink = 0; }
__attribute__((noinline)) void site_ten(unsigned long long total) { churn(2, total, 0); sink = 0; }

static void *leaks[3];
__attribute__((noinline)) void *leak_three(void) { void *p = malloc(3 << 20); memset(p, 1, 4096); return p; }
__attribute__((noinline)) void *leak_two(void) { void *p = malloc(2 << 20); memset(p, 1, 4096); return p; }
__attribute__((noinline)) void *leak_one(void) { void *p = malloc(1 << 20); memset(p, 1, 4096); return p; }

int main(int argc, char **argv) {
    double scale = argc > 1 ? atof(argv[1]) / 100.0 : 1.0;
    unsigned long long unit = (unsigned long long)(13.0e6 * scale);  // 1% of the total
    site_sixty(unit * 60);
    site_thirty(unit * 30);
    site_ten(unit * 10);
    leaks[0] = leak_three();
    leaks[1] = leak_two();
    leaks[2] = leak_one();
    unsigned long long all = bytes[0] + bytes[1] + bytes[2];
    printf("site_sixty objects=%llu bytes=%llu\n", counts[0], bytes[0]);
    printf("site_thirty objects=%llu bytes=%llu\n", counts[1], bytes[1]);
    printf("site_ten objects=%llu bytes=%llu\n", counts[2], bytes[2]);
    printf("total objects=%llu bytes=%llu leaked=%d\n", counts[0] + counts[1] + counts[2] + 3, all + (6 << 20), 6 << 20);
    return 0;
}
