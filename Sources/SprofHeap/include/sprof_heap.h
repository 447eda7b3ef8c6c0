// libsprof-heap.so: the allocation sampler `sprof run --heap` preloads into the command.
// It interposes the malloc family, draws byte samples in user space, and calls the two probe
// points below only for sampled allocations and their frees; sprof puts uprobes on them.
#ifndef SPROF_HEAP_H
#define SPROF_HEAP_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Called once per sampled allocation, after it succeeded: `ptr` in DI, `size` (bytes asked
/// for) in SI, and in DX `flags`: bit 0 is 1 when the set of sampled pointers had no room for it
/// (its free will not be reported), bit 1 when this process could not open sprof's flow-control
/// page (SPROF_HEAP_FLOW), the bits above them the rate this process samples at (which
/// a child may have changed, or a nested sprof set; sprof scales the sample by it). sprof's
/// uprobe on it takes the registers and the user stack.
void sprof_heap_sampled(void *ptr, size_t size, unsigned long flags);

/// Called when a sampled pointer is freed (or reallocated), before the memory goes back to libc.
void sprof_heap_freed(void *ptr);

/// The mean bytes between samples in force (SPROF_HEAP_RATE, default 524288); 1 samples every
/// allocation. For tests.
size_t sprof_heap_rate(void);

/// Sampled allocations counted so far by this process (tests and the rate-1 self-check).
unsigned long sprof_heap_sample_count(void);

/// Frees of sampled pointers reported so far by this process.
unsigned long sprof_heap_freed_count(void);

/// Sampled allocations the set of sampled pointers had no room for (their frees go unreported).
unsigned long sprof_heap_untracked_count(void);

#ifdef __cplusplus
}
#endif
#endif
