// jit: code generated at run time and named the way JIT compilers name it, in /tmp/perf-PID.map.
//
//   main → run_jit → jit_spin_loop (machine code copied into an anonymous executable mapping)
//
// Usage: jit [ROUNDS=400]   Each round runs the generated loop 1,000,000 times (2 instructions per
// iteration). Writes "START SIZE jit_spin_loop" to /tmp/perf-PID.map and leaves the file behind (a
// profiler reads it after the process exits, as perf does); the caller removes it. Prints
//   jit: rounds=N cpu_ns=T map=/tmp/perf-PID.map
// Exits 3 on a machine that is not x86-64 (the generated code is x86-64).
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

typedef void (*loop_fn)(uint64_t);

__attribute__((noinline)) uint64_t run_jit(loop_fn fn, uint64_t rounds) {
    uint64_t r = 0;
    for (; r < rounds; r++) fn(1000000);
    return r;
}

int main(int argc, char **argv) {
#if defined(__x86_64__)
    long long rounds = argc > 1 ? strtoll(argv[1], NULL, 10) : 400;
    if (argc > 2 || rounds <= 0) {
        fprintf(stderr, "usage: jit [ROUNDS]\n");
        return 2;
    }
    // mov %rdi,%rcx; 1: dec %rcx; jnz 1b; ret
    static const unsigned char code[] = {0x48, 0x89, 0xf9, 0x48, 0xff, 0xc9, 0x75, 0xfb, 0xc3};
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) { perror("jit: mmap"); return 1; }
    memcpy(page, code, sizeof code);
    if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) { perror("jit: mprotect"); return 1; }
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    FILE *map = fopen(path, "w");
    if (!map) { perror("jit: cannot write the perf map"); return 1; }
    fprintf(map, "%lx %zx jit_spin_loop\n", (unsigned long)(uintptr_t)page, sizeof code);
    fclose(map);
    uint64_t done = run_jit((loop_fn)page, (uint64_t)rounds);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long ns = ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL
        + ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    printf("jit: rounds=%llu cpu_ns=%lld map=%s\n", (unsigned long long)done, ns, path);
    return 0;
#else
    (void)argc; (void)argv;
    fprintf(stderr, "jit: the generated code is x86-64 only\n");
    return 3;
#endif
}
