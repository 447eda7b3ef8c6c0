// hwm.so: reports the peak resident set (VmHWM) of the one process it is preloaded into.
//
// Usage: LD_PRELOAD=hwm.so BENCH_HWM=FILE PROFILER ARGS...
// The constructor takes BENCH_HWM and removes LD_PRELOAD and BENCH_HWM from the environment, so
// the profiler's children (the workload) do not load it; at exit, a destructor copies the VmHWM
// line of /proc/self/status to FILE. VmHWM is per address space: the profiler's peak alone, unlike
// wait4's ru_maxrss, which is the max over the process and every child it waited for.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char target[4096];

__attribute__((constructor)) static void hwm_init(void) {
    const char *f = getenv("BENCH_HWM");
    if (f) {
        strncpy(target, f, sizeof target - 1);
        unsetenv("BENCH_HWM");
    }
    unsetenv("LD_PRELOAD");
}

__attribute__((destructor)) static void hwm_fini(void) {
    if (!target[0]) return;
    FILE *in = fopen("/proc/self/status", "r");
    if (!in) return;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, in))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(in);
    FILE *out = fopen(target, "w");
    if (!out) return;
    fprintf(out, "%ld\n", kb);
    fclose(out);
}
