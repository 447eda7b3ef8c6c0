// epilogue: a hot leaf that spends nearly all its time in its epilogue, after `pop %rbp` and
// before `ret`, under a caller whose CFA is rbp-based (frame pointers).
//
//   main → run_epilogue → epi_leaf
//
// There the leaf's CFI still says "rbp saved at CFA-16", a slot below the stack pointer that the
// kernel's stack copy (which starts at rsp) does not hold. An unwinder that reads the slot finds
// nothing, loses rbp, and cannot compute run_epilogue's CFA: the stack ends after two frames. The
// register holds exactly what the slot held (it was just popped), which is what sprof answers
// (Sources/SprofUnwind/Epilogue.swift). The leaf is written in assembly so that its epilogue is
// what matters: three 64-bit divisions (slow, and scratch registers only) between the pop and
// the ret, with the CFI GCC and LLVM emit (the CFA moves to rsp+8, no .cfi_restore for rbp).
//
// Usage: epilogue [SECONDS=1.0]   (CPU time of the thread)
// Build: clang -O2 -g -fno-omit-frame-pointer epilogue.c
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t epi_leaf(uint64_t x);
__asm__(
    ".text\n"
    ".globl epi_leaf\n"
    ".type epi_leaf, @function\n"
    "epi_leaf:\n"
    ".cfi_startproc\n"
    "    push %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "    mov %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "    lea 12345(%rdi), %rax\n"
    "    pop %rbp\n"
    ".cfi_def_cfa %rsp, 8\n"
    "    mov $7, %ecx\n"
    "    xor %edx, %edx\n"
    "    div %rcx\n"
    "    xor %edx, %edx\n"
    "    div %rcx\n"
    "    xor %edx, %edx\n"
    "    div %rcx\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size epi_leaf, .-epi_leaf\n");

volatile uint64_t sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((noinline)) uint64_t run_epilogue(double seconds) {
    double deadline = now() + seconds;
    uint64_t acc = 0;
    do {
        for (uint32_t i = 0; i < 100000; i++) acc += epi_leaf(acc ^ i);
        sink += acc;
    } while (now() < deadline);
    return acc;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 1.0;
    if (argc > 2 || seconds < 0 || seconds > 3600) {
        fprintf(stderr, "usage: epilogue [SECONDS]\n");
        return 2;
    }
    uint64_t r = run_epilogue(seconds);
    printf("epilogue: sink=%llx\n", (unsigned long long)r);
    return 0;
}
