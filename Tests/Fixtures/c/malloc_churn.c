// Allocation churn through Debian's libc (built without frame pointers): with -g, the kernel's
// frame-pointer walk from a sample inside malloc/free cannot get back to main.
//     malloc_churn ROUNDS
#include <stdlib.h>

static void *volatile keep[4096];

__attribute__((noinline)) void churn(unsigned round) {
    for (unsigned i = 0; i < 4096; i++) {
        unsigned k = (i * 2654435761u + round) % 4096;
        free(keep[k]);
        keep[k] = malloc(16 + (i * 37 + round) % 3000);
    }
}

int main(int argc, char **argv) {
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
    for (unsigned r = 0; r < rounds; r++) churn(r);
    return 0;
}
