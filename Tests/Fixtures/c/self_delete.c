// Deletes its own executable, then works in a known chain: main → run_deleted → spin_deleted.
// While it runs, its code is reachable only through /proc/PID/map_files and /proc/PID/exe.
//     self_delete ROUNDS
#include <stdlib.h>
#include <unistd.h>

static volatile unsigned long sink;

__attribute__((noinline)) void spin_deleted(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i ^ (sink >> 3);
}

__attribute__((noinline)) void run_deleted(unsigned rounds) {
    for (unsigned r = 0; r < rounds; r++) spin_deleted(1000000);
}

int main(int argc, char **argv) {
    if (unlink("/proc/self/exe") != 0) {
        char path[4096];
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n > 0) { path[n] = 0; unlink(path); }
    }
    run_deleted(argc > 1 ? (unsigned)atoi(argv[1]) : 300);
    return 0;
}
