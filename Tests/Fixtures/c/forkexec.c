// forkexec: the parent forks; the child execs this same binary with the argument `child`.
//
//   parent: main → parent_work (spins ~0.3 s), then waitpid
//   child (after exec, same comm): main → child_work (spins SECONDS)
//
// The exec uses the real path of the binary (readlink /proc/self/exe), so the child's comm equals
// the parent's. The parent exits with the child's exit status (128+signal if it was killed).
//
// Usage: forkexec [SECONDS=0.5]   |   forkexec child [SECONDS=0.5]
// Build: clang -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer forkexec.c
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile uint64_t sink;

/* The thread's own CPU time, not the wall clock: "S seconds" means S seconds of CPU time however
   loaded the machine is, so the samples a test can expect (CPU time × rate) do not shrink. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define SPIN_FOR(seconds, salt)                          \
    double deadline = now() + (seconds);                 \
    uint64_t x = 0x2545F4914F6CDD1Dull, acc = (salt);    \
    do {                                                 \
        for (uint32_t i = 0; i < 50000; i++) {           \
            x ^= x << 13;                                \
            x ^= x >> 7;                                 \
            x ^= x << 17;                                \
            acc += x;                                    \
        }                                                \
    } while (now() < deadline);                          \
    sink ^= acc;                                         \
    return acc

NOINLINE uint64_t parent_work(double seconds) { SPIN_FOR(seconds, 1); }
NOINLINE uint64_t child_work(double seconds) { SPIN_FOR(seconds, 2); }

static double parse_seconds(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end || v < 0 || v > 3600) {
        fprintf(stderr, "forkexec: bad SECONDS '%s'\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "child") == 0) {
        double seconds = argc > 2 ? parse_seconds(argv[2]) : 0.5;
        uint64_t r = child_work(seconds);
        printf("forkexec child: pid=%d sink=%llx\n", (int)getpid(), (unsigned long long)r);
        return 0;
    }
    double seconds = argc > 1 ? parse_seconds(argv[1]) : 0.5;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("forkexec: readlink /proc/self/exe");
        return 1;
    }
    self[len] = '\0';
    char secs[64];
    snprintf(secs, sizeof secs, "%g", seconds);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("forkexec: fork");
        return 1;
    }
    if (pid == 0) {
        char *args[] = {self, "child", secs, NULL};
        execv(self, args);
        _exit(127);
    }
    uint64_t r = parent_work(seconds * 0.6);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("forkexec parent: child=%d status=%d sink=%llx\n", (int)pid, code, (unsigned long long)r);
    return code;
}
