// The allocation sampler sprof preloads into a command (`sprof run --heap`).
//
// Why a preload library: a uprobe on libc's malloc traps on every call (1.3-1.6 us here), whatever
// the sample period. Drawing the samples here keeps unsampled calls at a countdown subtraction
// and makes only sampled allocations (one per SPROF_HEAP_RATE bytes on average) reach
// sprof_heap_sampled, the function sprof probes.
//
// Sampling is Go's and tcmalloc's: each thread counts down a byte budget drawn from an
// exponential distribution with mean `rate`; an allocation that exhausts it is sampled and a new
// budget is drawn. An allocation of s bytes is then sampled with probability 1 - exp(-s/rate),
// independent of the sizes before it, so periodic size patterns do not alias, and sprof scales
// each sample by the inverse (Go's scaleHeapSample).
//
// Frees: sampled pointers go into a lock-free open-addressing set (growing by levels, see below),
// so an unsampled free costs one hash and (usually) one load of an empty slot per level; only a
// free of a sampled pointer calls sprof_heap_freed. At rate 1 every allocation is sampled, so every free is reported and the set
// is not used.
//
// The real allocator is glibc's, through its __libc_* entry points: no dlsym (which allocates)
// and no recursion.
#define _GNU_SOURCE
#include "sprof_heap.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

// --- the probe points ----------------------------------------------------------------------
// noinline and an asm barrier: the call must stay, with its arguments in DI and SI.

static unsigned long sampled_total, freed_total;

// `flags`: bit 0, the pointer is untracked (its free will not be reported); bit 1, this process could
// not open sprof's flow-control page (it runs as another user), so it is not held back; above them,
// the rate this process samples at (SPROF_HEAP_RATE as this process read it, which a child of the
// command may have changed, or a nested sprof set): sprof scales each sample by its own rate.
EXPORT __attribute__((noinline)) void sprof_heap_sampled(void *ptr, size_t size, unsigned long flags) {
    __atomic_fetch_add(&sampled_total, 1, __ATOMIC_RELAXED);
    __asm__ volatile("" ::"r"(ptr), "r"(size), "r"(flags) : "memory");
}

EXPORT __attribute__((noinline)) void sprof_heap_freed(void *ptr) {
    __atomic_fetch_add(&freed_total, 1, __ATOMIC_RELAXED);
    __asm__ volatile("" ::"r"(ptr) : "memory");
}

EXPORT unsigned long sprof_heap_sample_count(void) { return __atomic_load_n(&sampled_total, __ATOMIC_RELAXED); }
EXPORT unsigned long sprof_heap_freed_count(void) { return __atomic_load_n(&freed_total, __ATOMIC_RELAXED); }

// --- the rate --------------------------------------------------------------------------------

static size_t rate_value;  // 0 until read

static size_t rate(void) {
    size_t r = __atomic_load_n(&rate_value, __ATOMIC_RELAXED);
    if (r) return r;
    // getenv does not allocate. Several threads may race here; they all compute the same value.
    const char *text = getenv("SPROF_HEAP_RATE");
    r = 512 * 1024;
    if (text && *text) {
        char *end = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (end && *end == 0 && v > 0) r = (size_t)v;
    }
    __atomic_store_n(&rate_value, r, __ATOMIC_RELAXED);
    return r;
}

EXPORT size_t sprof_heap_rate(void) { return rate(); }

// --- back-pressure -----------------------------------------------------------------------------
//
// Each sampled call writes a record with a stack copy into sprof's ring buffers, and at a low rate a
// program allocating in a loop writes them faster than sprof's reader drains them: the kernel then
// drops records (a lost allocation is a leak missed, a lost free a false leak). sprof shares one page
// (SPROF_HEAP_FLOW, HeapFlow.swift): each call announces its record's bytes in `produced` before it
// reaches the probe; the reader sets `consumed` to what had been announced when its last round began.
// A call that finds more than `limit` bytes outstanding sleeps until a round has passed; once the
// reader has stopped (`closed`) or not run for two seconds (sprof stopped or killed), the process
// never waits again.
// Nothing here allocates.

struct sprof_flow {
    uint64_t magic, limit, alloc_cost, free_cost, produced, consumed, heartbeat, closed, waits, waited_ns;
};
#define FLOW_MAGIC 0x31574C4646525053ull  // "SPRFFLW1"
#define FLOW_NONE ((struct sprof_flow *)1)
static struct sprof_flow *flow_page;  // 0 until read, FLOW_NONE without one
static int flow_unreachable;          // SPROF_HEAP_FLOW named a page this process cannot open

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct sprof_flow *flow(void) {
    struct sprof_flow *f = __atomic_load_n(&flow_page, __ATOMIC_ACQUIRE);
    if (f) return f == FLOW_NONE ? 0 : f;
    struct sprof_flow *mapped = FLOW_NONE;
    const char *path = getenv("SPROF_HEAP_FLOW");
    if (path && *path) {
        __atomic_store_n(&flow_unreachable, 1, __ATOMIC_RELAXED);  // until mapped below
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            void *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (m != MAP_FAILED) {
                if (__atomic_load_n(&((struct sprof_flow *)m)->magic, __ATOMIC_ACQUIRE) == FLOW_MAGIC) {
                    mapped = m;
                    __atomic_store_n(&flow_unreachable, 0, __ATOMIC_RELAXED);
                } else {
                    munmap(m, 4096);
                }
            }
        }
    }
    struct sprof_flow *expected = 0;
    if (!__atomic_compare_exchange_n(&flow_page, &expected, mapped, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        if (mapped != FLOW_NONE) munmap(mapped, 4096);  // another thread mapped it first
        return expected == FLOW_NONE ? 0 : expected;
    }
    return mapped == FLOW_NONE ? 0 : mapped;
}

static int flow_abandoned;  // the reader stopped or went silent: never wait again in this process

static void wait_for_reader(int allocation) {
    if (__atomic_load_n(&flow_abandoned, __ATOMIC_RELAXED)) return;
    struct sprof_flow *f = flow();
    if (!f) return;
    uint64_t cost = allocation ? f->alloc_cost : f->free_cost;
    uint64_t mine = __atomic_add_fetch(&f->produced, cost, __ATOMIC_RELAXED);
    int64_t limit = (int64_t)f->limit;
    if ((int64_t)(mine - __atomic_load_n(&f->consumed, __ATOMIC_ACQUIRE)) <= limit) return;
    uint64_t start = now_ns();
    for (;;) {
        uint64_t beat = __atomic_load_n(&f->heartbeat, __ATOMIC_ACQUIRE), now = now_ns();
        // Two seconds without a round (the reader has a round at least every 25 ms): sprof is
        // stopped or killed; long enough not to take a reader descheduled on a busy machine for gone.
        if (__atomic_load_n(&f->closed, __ATOMIC_ACQUIRE) || (now > beat && now - beat > 2000000000ull)) {
            __atomic_store_n(&flow_abandoned, 1, __ATOMIC_RELAXED);
            break;
        }
        struct timespec pause = {0, 50000};
        nanosleep(&pause, 0);
        if ((int64_t)(mine - __atomic_load_n(&f->consumed, __ATOMIC_ACQUIRE)) <= limit) break;
    }
    __atomic_fetch_add(&f->waits, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&f->waited_ns, now_ns() - start, __ATOMIC_RELAXED);
}

// --- per-thread countdown --------------------------------------------------------------------

static TLS int64_t countdown;  // bytes left before the next sample; <= 0 means "draw"
static TLS int drawn;          // whether this thread drew its first budget
static TLS uint64_t rng;

static uint64_t next_random(void) {
    if (!rng) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng = ((uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)&countdown ^ ((uint64_t)getpid() << 32);
        if (!rng) rng = 1;
    }
    // xorshift64*
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static int64_t draw(size_t mean) {
    // u in (0, 1]: -log(u) is exponential with mean 1.
    double u = ((double)(next_random() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double bytes = -log(u) * (double)mean;
    return bytes >= 9.0e18 ? INT64_MAX : (int64_t)bytes + 1;
}

// Whether an allocation of `size` bytes is sampled: a memoryless test, so the chance is
// 1 - exp(-size/rate) whatever came before.
static inline int should_sample(size_t size) {
    size_t r = rate();
    if (r == 1) return 1;
    if (__builtin_expect(!drawn, 0)) {
        drawn = 1;
        countdown = draw(r);
    }
    if ((int64_t)size < countdown) {
        countdown -= (int64_t)size;
        return 0;
    }
    countdown = draw(r);
    return 1;
}

// --- the set of sampled pointers -------------------------------------------------------------
//
// Levels of open-addressing tables, each four times the one before (1M, 4M, 16M, ... slots by
// default), mmap'd when the one before has a full neighbourhood: inside malloc, no malloc. A
// pointer goes into the first level with a free slot among PROBES from its hash; a lookup walks
// the levels in order (a level's empty slot ends the search in that level). Only when every level
// is full is a sampled pointer left out: sprof_heap_sampled then says so (bit 0 of its `flags`), and sprof
// counts it out of the in-use profile and says how many in its summary, since its free will not
// be reported. SPROF_HEAP_TABLE_BITS sets the first level's size (log2 slots; tests use a small one).

#define LEVELS 5
#define TOMB ((uintptr_t)1)
#define PROBES 128
static uintptr_t *levels[LEVELS];  // mmap'd on first use: untouched pages cost nothing
static long live_sampled;          // entries, so that a process with no sample skips the lookup
static unsigned long untracked_total;
static int first_bits;             // log2 of level 0's slots; 0 until read

static int level_bits(int level) {
    int b = __atomic_load_n(&first_bits, __ATOMIC_RELAXED);
    if (!b) {
        b = 20;
        const char *text = getenv("SPROF_HEAP_TABLE_BITS");
        if (text && *text) {
            long v = strtol(text, 0, 10);
            if (v >= 8 && v <= 30) b = (int)v;
        }
        __atomic_store_n(&first_bits, b, __ATOMIC_RELAXED);
    }
    return b + 2 * level;
}

static inline size_t slot_of(uintptr_t p, int bits) { return (size_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - bits)); }

static uintptr_t *level_table(int level) {
    uintptr_t *t = __atomic_load_n(&levels[level], __ATOMIC_ACQUIRE);
    if (t) return t;
    size_t bytes = ((size_t)1 << level_bits(level)) * sizeof(uintptr_t);
    void *m = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return 0;
    uintptr_t *expected = 0;
    if (!__atomic_compare_exchange_n(&levels[level], &expected, (uintptr_t *)m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        munmap(m, bytes);
        return expected;
    }
    return (uintptr_t *)m;
}

// Returns whether `ptr` was stored (its free will be reported).
static int remember(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    for (int level = 0; level < LEVELS; level++) {
        uintptr_t *t = level_table(level);
        if (!t) break;
        int bits = level_bits(level);
        size_t mask = ((size_t)1 << bits) - 1, i = slot_of(p, bits);
        for (int n = 0; n < PROBES; n++, i = (i + 1) & mask) {
            uintptr_t old = __atomic_load_n(&t[i], __ATOMIC_RELAXED);
            if ((old == 0 || old == TOMB) &&
                __atomic_compare_exchange_n(&t[i], &old, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                __atomic_fetch_add(&live_sampled, 1, __ATOMIC_RELAXED);
                return 1;
            }
        }
    }
    __atomic_fetch_add(&untracked_total, 1, __ATOMIC_RELAXED);
    return 0;
}

// Removes `ptr` if it was sampled; returns whether it was.
static inline int forget(void *ptr) {
    if (__atomic_load_n(&live_sampled, __ATOMIC_RELAXED) == 0) return 0;
    uintptr_t p = (uintptr_t)ptr;
    for (int level = 0; level < LEVELS; level++) {
        uintptr_t *t = __atomic_load_n(&levels[level], __ATOMIC_ACQUIRE);
        if (!t) return 0;  // levels are made in order
        int bits = level_bits(level);
        size_t mask = ((size_t)1 << bits) - 1, i = slot_of(p, bits);
        for (int n = 0; n < PROBES; n++, i = (i + 1) & mask) {
            uintptr_t v = __atomic_load_n(&t[i], __ATOMIC_ACQUIRE);
            if (v == 0) break;
            if (v == p) {
                // Only the thread freeing p can remove it: p cannot be allocated again before.
                __atomic_store_n(&t[i], TOMB, __ATOMIC_RELEASE);
                __atomic_fetch_sub(&live_sampled, 1, __ATOMIC_RELAXED);
                return 1;
            }
        }
    }
    return 0;
}

EXPORT unsigned long sprof_heap_untracked_count(void) { return __atomic_load_n(&untracked_total, __ATOMIC_RELAXED); }

// A macro, not an inline function: the call to sprof_heap_sampled must sit in `malloc` itself,
// or the probe's stacks would end in an inline frame of this helper below it.
#define allocated(ptr, size)                                  \
    ({                                                        \
        void *p_ = (ptr);                                     \
        size_t s_ = (size);                                   \
        if (p_ && should_sample(s_)) {                        \
            int kept_ = rate() == 1 || remember(p_);          \
            wait_for_reader(1);                               \
            sprof_heap_sampled(p_, s_, (unsigned long)rate() << 2 | (unsigned long)flow_unreachable << 1 | !kept_); \
        }                                                     \
        p_;                                                   \
    })

// Before the memory goes back to libc: another thread may get the same address right after.
__attribute__((always_inline)) static inline void releasing(void *ptr) {
    if (!ptr) return;
    if (rate() == 1 || forget(ptr)) {
        wait_for_reader(0);
        sprof_heap_freed(ptr);
    }
}

// --- the interposed family -------------------------------------------------------------------

EXPORT void *malloc(size_t size) { return allocated(__libc_malloc(size), size); }

EXPORT void free(void *ptr) {
    releasing(ptr);
    __libc_free(ptr);
}

EXPORT void *calloc(size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return 0;
    }
    return allocated(__libc_calloc(n, size), total);
}

// A free of the old block plus an allocation of the new one (as bcc's memleak counts it).
EXPORT void *realloc(void *ptr, size_t size) {
    if (!ptr) return malloc(size);
    if (size == 0) {
        free(ptr);
        return 0;
    }
    releasing(ptr);
    return allocated(__libc_realloc(ptr, size), size);
}

EXPORT void *memalign(size_t alignment, size_t size) { return allocated(__libc_memalign(alignment, size), size); }

EXPORT void *aligned_alloc(size_t alignment, size_t size) { return allocated(__libc_memalign(alignment, size), size); }

EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = allocated(p, size);
    return 0;
}

EXPORT void *valloc(size_t size) { return allocated(__libc_memalign((size_t)sysconf(_SC_PAGESIZE), size), size); }

EXPORT void *pvalloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = (size + page - 1) & ~(page - 1);
    return allocated(__libc_memalign(page, rounded ? rounded : page), rounded ? rounded : page);
}
