// Heap-profile truth: three call stacks allocate bytes in a designed 60/30/10 split, with mixed
// sizes (including a periodic 16/32/48/64... pattern that would alias a fixed sampling period),
// and three leak sites keep 3, 2 and 1 MiB until exit. Prints its own totals.
//     heap_split [SCALE]   (SCALE 100 = about 1.3 GB allocated in all)
//     heap_split loop UNIT  (for attaching: rounds of 60, 30 and 10 UNITs of bytes until killed;
//                            each site's sizes and bytes carry over from round to round, so any
//                            run of whole rounds splits 60/30/10; a small UNIT interleaves the
//                            sites allocation by allocation)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;
static unsigned long long counts[3], bytes[3];
static int looping;                 // loop mode: the size sequence continues across rounds
static unsigned next_index[3][3];   // by site and pattern

// Allocates `total` bytes through malloc/calloc/realloc in sizes chosen by `pattern`, freeing each.
static void churn(int site, unsigned long long total, int pattern) {
    unsigned long long done = 0;
    unsigned i = looping ? next_index[site][pattern] : 0;
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
    next_index[site][pattern] = i;
}

// 57 of its 60 parts in mixed sizes, 3 in the periodic pattern.
__attribute__((noinline)) void site_sixty(unsigned long long total) { churn(0, total / 60 * 57, 1); churn(0, total / 60 * 3, 0); sink = 0; }
__attribute__((noinline)) void site_thirty(unsigned long long total) { churn(1, total, 2); sink = 0; }
__attribute__((noinline)) void site_ten(unsigned long long total) { churn(2, total, 0); sink = 0; }

// Loop mode's sites: as above, 19 of site_sixty's 20 parts in mixed sizes, 1 in the periodic pattern.
__attribute__((noinline)) void site_sixty_loop(unsigned long long total) {
    unsigned long long want = bytes[0] + total;
    churn(0, total / 20 * 19, 1);
    if (bytes[0] < want) churn(0, want - bytes[0], 0);
    sink = 0;  // no tail call: each site keeps its frame
}
// Mixed sizes (at most 61 KB) instead of 200 KB blocks: a few seconds' window of the loop then
// holds many allocations of every site.
__attribute__((noinline)) void site_thirty_loop(unsigned long long total) { churn(1, total, 1); sink = 0; }
__attribute__((noinline)) void site_ten_loop(unsigned long long total) { churn(2, total, 0); sink = 0; }

static void *leaks[3];
__attribute__((noinline)) void *leak_three(void) { void *p = malloc(3 << 20); memset(p, 1, 4096); return p; }
__attribute__((noinline)) void *leak_two(void) { void *p = malloc(2 << 20); memset(p, 1, 4096); return p; }
__attribute__((noinline)) void *leak_one(void) { void *p = malloc(1 << 20); memset(p, 1, 4096); return p; }

// Loop mode: each site allocates until its own bytes reach its share of the rounds so far, so
// the overshoot of one round's last allocation is taken off the next.
static void loop(unsigned long long unit) {
    looping = 1;
    printf("looping pid=%d\n", (int)getpid());
    fflush(stdout);
    for (unsigned long long round = 1;; round++) {
        unsigned long long want[3] = {unit * 60 * round, unit * 30 * round, unit * 10 * round};
        if (bytes[0] < want[0]) site_sixty_loop(want[0] - bytes[0]);
        if (bytes[1] < want[1]) site_thirty_loop(want[1] - bytes[1]);
        if (bytes[2] < want[2]) site_ten_loop(want[2] - bytes[2]);
    }
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "loop") == 0) loop(strtoull(argv[2], 0, 10));
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
