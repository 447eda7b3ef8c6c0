// count_loop: an exactly known number of user-space instructions (x86-64 only).
//
// The loop `mov N,%rcx; 1: dec %rcx; jnz 1b` retires 2N+1 instructions. Everything else (dynamic
// loader, libc start-up and exit, argument parsing) is a fixed overhead of its own; see
// Tests/Fixtures/README.md for the measured value. Nothing is printed, so the overhead stays small
// and constant. Tests compare instructions:u against 2N (plus the overhead) within 1%.
//
// Usage: count_loop [N=10000000]      (N = 0 runs no loop at all: measures the overhead alone)
// Build: clang -O2 count_loop.c   (the count of the asm block does not depend on flags)
#include <stdlib.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "count_loop needs x86-64 inline assembly"
#endif

int main(int argc, char **argv) {
    unsigned long n = 10000000UL;
    if (argc > 2) return 2;
    if (argc == 2) {
        char *end;
        n = strtoul(argv[1], &end, 10);
        if (*end || argv[1][0] == '\0' || argv[1][0] == '-') {
            static const char msg[] = "usage: count_loop [N]\n";
            write(2, msg, sizeof msg - 1);
            return 2;
        }
    }
    if (n > 0) {
        __asm__ volatile(
            "mov %0, %%rcx\n"
            "1:\n\t"
            "dec %%rcx\n\t"
            "jnz 1b\n"
            :
            : "r"(n)
            : "rcx", "cc");
    }
    return 0;
}
