// faults: an exactly known number of page faults, for counting tests (`sprof stat -e page-faults`).
//
//   main → touch_pages: maps PAGES fresh anonymous pages (no huge pages), writes one byte to each,
//   unmaps them; ROUNDS times. That is PAGES × ROUNDS page faults plus the program's start-up
//   (~60 with glibc's dynamic loader).
//
// Usage: faults [PAGES=1000] [ROUNDS=1]   Prints "faults: pages=P rounds=R".
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) void touch_pages(long pages) {
    long size = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, (size_t)(pages * size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("faults: mmap");
        exit(1);
    }
    madvise(p, (size_t)(pages * size), MADV_NOHUGEPAGE);
    for (long i = 0; i < pages; i++) ((volatile char *)p)[i * size] = 1;
    munmap(p, (size_t)(pages * size));
}

int main(int argc, char **argv) {
    long pages = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 1;
    if (argc > 3 || pages <= 0 || rounds <= 0) {
        fprintf(stderr, "usage: faults [PAGES] [ROUNDS]\n");
        return 2;
    }
    for (long r = 0; r < rounds; r++) touch_pages(pages);
    printf("faults: pages=%ld rounds=%ld\n", pages, rounds);
    return 0;
}
