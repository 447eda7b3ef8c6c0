// What `sprof run --heap` says at the end (HeapRunMessagesTests): a program that frees every
// block it allocates, or leaves three blocks, without stdio (whose buffer would stay in use).
//     heap_messages free|leak N
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) void churn(int n) {
    for (int i = 0; i < n; i++) {
        sink = malloc(1000 + i % 7);
        free(sink);
    }
}

__attribute__((noinline)) void leak_site(void) { sink = malloc(100000); }

int main(int argc, char **argv) {
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    churn(n);
    if (argc > 1 && strcmp(argv[1], "leak") == 0)
        for (int i = 0; i < 3; i++) leak_site();
    // Alive a while after its allocations: sprof reads the memory timeline's first point just
    // after the exec, and on a loaded machine a program this short had exited before it (no
    // PREFIX.memory.tsv, which HeapRunMessagesTests reads).
    usleep(200000);
    return 0;
}
