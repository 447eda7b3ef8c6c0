// timed: runs a command and writes how long it took, as the workload itself experienced it.
//
// Usage: BENCH_TIMING=FILE timed CMD [ARGS...]
// Writes one line to FILE: "wall_ns user_us sys_us maxrss_kb status" where wall is CLOCK_MONOTONIC
// from just before fork to the reaping of CMD, user/sys/maxrss come from wait4 (CMD and every
// descendant it waited for). bench/run puts `timed` between each profiler and the workload, so the
// workload's own slowdown is measured the same way bare and profiled, apart from the profiler's
// start-up and post-processing.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs("usage: BENCH_TIMING=FILE timed CMD [ARGS...]\n", stderr);
        return 2;
    }
    const char *out = getenv("BENCH_TIMING");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("timed: fork"); return 1; }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("timed: exec");
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) { perror("timed: wait4"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long long user = (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
    long long sys = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (out && *out) {
        FILE *f = fopen(out, "w");
        if (f) {
            fprintf(f, "%lld %lld %lld %ld %d\n", wall, user, sys, ru.ru_maxrss, code);
            fclose(f);
        }
    }
    return code;
}
