// Starts a program the way an unusual parent would, for sprof's signal tests:
//   sigwrap [-i SIG]... [-b SIG]... [-P] [-C] -- PROGRAM [ARGS...]
// -i ignores SIG (SIG_IGN survives exec), -b blocks it, -P puts the program's stderr on a pipe
// whose reading end is already closed (every write gets EPIPE or SIGPIPE), -C starts it with
// stderr closed. Prints "exit N" or "signal N" for how the program ended, on stdout: the
// program's own status would be ambiguous to the test otherwise.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    sigset_t block;
    sigemptyset(&block);
    int ignore[64], nignore = 0, broken_pipe = 0, closed = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (!strcmp(argv[i], "-i") && i + 1 < argc) ignore[nignore++] = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) sigaddset(&block, atoi(argv[++i]));
        else if (!strcmp(argv[i], "-P")) broken_pipe = 1;
        else if (!strcmp(argv[i], "-C")) closed = 1;
        else { fprintf(stderr, "sigwrap: bad argument %s\n", argv[i]); return 2; }
    }
    if (i + 1 >= argc) { fprintf(stderr, "sigwrap: no program\n"); return 2; }
    int fds[2];
    if (broken_pipe && pipe(fds) != 0) { perror("pipe"); return 2; }
    pid_t pid = fork();
    if (pid == 0) {
        for (int k = 0; k < nignore; k++) signal(ignore[k], SIG_IGN);
        sigprocmask(SIG_BLOCK, &block, NULL);
        if (broken_pipe) { close(fds[0]); dup2(fds[1], 2); close(fds[1]); }
        if (closed) close(2);
        execvp(argv[i + 1], argv + i + 1);
        _exit(127);
    }
    if (broken_pipe) { close(fds[0]); close(fds[1]); }
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 2; }
    if (WIFSIGNALED(status)) printf("signal %d\n", WTERMSIG(status));
    else printf("exit %d\n", WEXITSTATUS(status));
    return 0;
}
