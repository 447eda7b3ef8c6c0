// `sprof annotate` truth fixture: hot_lines runs three statements in one loop, 60, 30 and 10
// iterations per round, so their lines take 60%, 30% and 10% of its samples. Each statement is one
// dependent multiply-add chain through x (the same latency per iteration), and the counts come
// from the command line, so the compiler can neither unroll nor fold the chains.
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static unsigned long hot_lines(unsigned long rounds, unsigned long n1, unsigned long n2,
                                                         unsigned long n3, unsigned long m, unsigned long x) {
    for (unsigned long r = 0; r < rounds; r++) {
        for (unsigned long i = 0; i < n1; i++) x = x * m + (x >> 17); // LINE_SIXTY
        for (unsigned long i = 0; i < n2; i++) x = x * m + (x >> 13); // LINE_THIRTY
        for (unsigned long i = 0; i < n3; i++) x = x * m + (x >> 11); // LINE_TEN
    }
    return x;
}

int main(int argc, char **argv) {
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000000;
    unsigned long x = hot_lines(rounds, 60, 30, 10, (unsigned long)argc * 6364136223846793005UL + 1, (unsigned long)argc);
    printf("%lu\n", x);
    return 0;
}
