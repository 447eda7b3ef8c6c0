// forkexec: the parent forks CHILDREN children, at most 2 at a time; each child execs this same
// binary as `forkexec child UNITS` and does a fixed amount of work. The parent does a share of
// work of its own between spawns. Exercises fork, exec (new address space, COMM/MMAP records)
// and process exit handling in a profiler.
//
//   parent: main → parent_loop → parent_work → spin
//   child:  main → child_work → spin
//
// Usage: forkexec [CHILDREN=8] [UNITS=100]
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink;

NOINLINE uint64_t spin(uint64_t x, uint32_t n) {
    uint64_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    return acc;
}

NOINLINE uint64_t child_work(unsigned long units) {
    uint64_t acc = 0;
    for (unsigned long u = 0; u < units; u++) acc += spin(u | 1, 50000);
    return acc;
}

NOINLINE uint64_t parent_work(unsigned long units) {
    uint64_t acc = 0;
    for (unsigned long u = 0; u < units; u++) acc += spin(u * 3 | 1, 50000);
    return acc;
}

static int reap(void) {
    int status;
    if (wait(&status) < 0) return 1;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

NOINLINE int parent_loop(const char *self, int children, unsigned long units) {
    char arg[32];
    snprintf(arg, sizeof arg, "%lu", units);
    int running = 0, failures = 0;
    for (int i = 0; i < children; i++) {
        if (running == 2) { failures += reap(); running--; }
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            execl(self, self, "child", arg, (char *)NULL);
            _exit(127);
        }
        running++;
        sink += parent_work(units / 8 + 1);
    }
    while (running > 0) { failures += reap(); running--; }
    return failures != 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        sink = child_work(argc > 2 ? strtoul(argv[2], NULL, 10) : 100);
        return 0;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = '\0';
    int children = argc > 1 ? atoi(argv[1]) : 8;
    unsigned long units = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    return parent_loop(self, children, units);
}
