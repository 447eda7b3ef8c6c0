// Heap profiles follow the command's process tree: the parent forks a child that allocates
// CHILD blocks of 4096 bytes from child_site, waits for it, then allocates PARENT blocks of
// 4096 bytes from parent_site. Every block is freed. Prints its own totals; exits 3 when the
// fork fails (it did under `sprof run --heap` with inherited uprobes: EFAULT).
//     heap_fork [CHILD [PARENT]]   (defaults 2000 and 1000)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) static void child_site(int n) {
    for (int i = 0; i < n; i++) {
        sink = malloc(4096);
        free(sink);
    }
}

__attribute__((noinline)) static void parent_site(int n) {
    for (int i = 0; i < n; i++) {
        sink = malloc(4096);
        free(sink);
    }
}

int main(int argc, char **argv) {
    int child = argc > 1 ? atoi(argv[1]) : 2000, parent = argc > 2 ? atoi(argv[2]) : 1000;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "heap_fork: fork: %s\n", strerror(errno));
        return 3;
    }
    if (pid == 0) {
        child_site(child);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    parent_site(parent);
    printf("child_site %d %llu\nparent_site %d %llu\n", child, 4096ull * child, parent, 4096ull * parent);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
