// csprof.h: sprof's C shim. Header-only; every function is here because Swift cannot express it:
// variadic syscalls and ioctls, C11 atomics with explicit ordering, inline assembly, a signal
// handler's body, code that must run between fork and exec (async-signal-safe only), and
// declarations no importable header makes. Each carries its reason. What Swift can say with plain
// arithmetic or importable calls (wait-status decoding, open with O_TMPFILE's value)
// is in Swift. The other C in the package is not shim: CZlib and CCapstone only include their
// library's header, and SprofHeap is the preload library loaded into the profiled command.
#ifndef CSPROF_H
#define CSPROF_H

// No _GNU_SOURCE here: it would change libc's struct layouts (fd_set) relative to the ones
// Foundation's modules see, and clang rejects the mismatch. GNU-only calls are declared below.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <asm/perf_regs.h>

#include <libelf.h>
#include <gelf.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <elfutils/libdwelf.h>

// glibc has no perf_event_open wrapper and syscall(2) is variadic, which Swift cannot call.
static inline int csprof_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu,
                                         int group_fd, unsigned long flags) {
    return (int)syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
}

// ioctl(2) is variadic. One wrapper per request keeps the request constants (built with _IO/_IOW
// macros that Swift does not import) on the C side.
static inline int csprof_ioctl_enable(int fd, int whole_group) {
    return ioctl(fd, PERF_EVENT_IOC_ENABLE, whole_group ? PERF_IOC_FLAG_GROUP : 0);
}
static inline int csprof_ioctl_disable(int fd, int whole_group) {
    return ioctl(fd, PERF_EVENT_IOC_DISABLE, whole_group ? PERF_IOC_FLAG_GROUP : 0);
}
// The allocation budgets (AllocationCalls.swift) zero their counter group before each block.
static inline int csprof_ioctl_reset(int fd, int whole_group) {
    return ioctl(fd, PERF_EVENT_IOC_RESET, whole_group ? PERF_IOC_FLAG_GROUP : 0);
}
static inline int csprof_ioctl_set_output(int fd, int target_fd) {
    return ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, target_fd);
}
static inline int csprof_ioctl_id(int fd, uint64_t *id) {
    return ioctl(fd, PERF_EVENT_IOC_ID, id);
}

// The ring buffer's head is written by the kernel and its tail by us; the kernel's protocol needs
// an acquire load of data_head and a release store of data_tail, which Swift has no portable
// spelling for on a raw mmapped page.
static inline uint64_t csprof_ring_load_head(const void *control_page) {
    const struct perf_event_mmap_page *page = (const struct perf_event_mmap_page *)control_page;
    return __atomic_load_n(&page->data_head, __ATOMIC_ACQUIRE);
}
static inline void csprof_ring_store_tail(void *control_page, uint64_t tail) {
    struct perf_event_mmap_page *page = (struct perf_event_mmap_page *)control_page;
    __atomic_store_n(&page->data_tail, tail, __ATOMIC_RELEASE);
}

// The heap flow-control page (HeapFlow.swift) is shared with the preload library in other
// processes, which updates it with __atomic builtins: Swift has no atomic access to raw shared
// memory without a package, so the reader's loads and stores are these.
static inline uint64_t csprof_atomic_load_u64(const uint64_t *word) { return __atomic_load_n(word, __ATOMIC_ACQUIRE); }
static inline void csprof_atomic_store_u64(uint64_t *word, uint64_t value) { __atomic_store_n(word, value, __ATOMIC_RELEASE); }
static inline uint64_t csprof_atomic_add_u64(uint64_t *word, uint64_t value) { return __atomic_add_fetch(word, value, __ATOMIC_RELAXED); }

// Self-monitoring counter reads: rdpmc is an instruction, and the seqlock on the control page must
// be read with compiler barriers between the fields.
// (rdpmc and the barrier are called only by csprof_mmap_read_self below.)
static inline uint64_t csprof_rdpmc(uint32_t counter) {
    uint32_t low, high;
    __asm__ volatile("rdpmc" : "=a"(low), "=d"(high) : "c"(counter));
    return ((uint64_t)high << 32) | low;
}
static inline void csprof_compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

// Reads one self-monitoring counter without a syscall, following the seqlock protocol documented
// in perf_event.h. Returns 0 and fills *value when rdpmc is usable, -1 when the caller must fall
// back to read(2). enabled/running are extrapolated the way the kernel header describes.
static inline int csprof_mmap_read_self(const void *control_page, uint64_t *value,
                                        uint64_t *enabled, uint64_t *running) {
    const volatile struct perf_event_mmap_page *pc = (const volatile struct perf_event_mmap_page *)control_page;
    uint32_t seq, idx;
    uint64_t count, ena, run;
    do {
        seq = pc->lock;
        csprof_compiler_barrier();
        ena = pc->time_enabled;
        run = pc->time_running;
        idx = pc->index;
        count = pc->offset;
        if (!pc->cap_user_rdpmc || idx == 0) return -1;
        uint64_t pmc = csprof_rdpmc(idx - 1);
        uint16_t width = pc->pmc_width;
        pmc <<= 64 - width;
        pmc = (uint64_t)((int64_t)pmc >> (64 - width));
        count += pmc;
        if (pc->cap_user_time && ena != run) {
            // Extrapolate times to now, as perf_event.h describes; only matters when multiplexed.
            uint64_t cyc = __builtin_ia32_rdtsc();
            uint64_t time_mult = pc->time_mult, time_offset = pc->time_offset;
            uint16_t time_shift = pc->time_shift;
            uint64_t quot = cyc >> time_shift;
            uint64_t rem = cyc & (((uint64_t)1 << time_shift) - 1);
            uint64_t delta = time_offset + quot * time_mult + ((rem * time_mult) >> time_shift);
            ena += delta;
            if (idx) run += delta;
        }
        csprof_compiler_barrier();
    } while (pc->lock != seq);
    *value = count;
    *enabled = ena;
    *running = run;
    return 0;
}

// Launching a profiled command. Between fork and exec only async-signal-safe calls are allowed,
// so this part cannot be written in Swift (which may allocate or take locks).
//
// The child blocks until the parent writes one byte to the go pipe (after opening its events with
// enable_on_exec), then execs. If exec fails, errno travels back over a close-on-exec pipe.
// Closing the go pipe without writing cancels: the child exits 127 without exec.
//
// Returns the child's pid (or -1 with errno set). *go_fd receives the write end of the go pipe,
// *err_fd the read end of the exec-error pipe; both are close-on-exec in the parent.
// `envp`: the command's whole environment, built before the fork (setenv in a threaded parent is
// not safe); NULL: the parent's.
int pipe2(int pipefd[2], int flags);
int execvpe(const char *file, char *const argv[], char *const envp[]);

static inline pid_t csprof_spawn_waiting(const char *file, char *const argv[], char *const envp[],
                                         int *go_fd, int *err_fd) {
    int go[2], err[2];
    if (pipe2(go, O_CLOEXEC) != 0) return -1;
    if (pipe2(err, O_CLOEXEC) != 0) {
        int saved = errno; close(go[0]); close(go[1]); errno = saved;
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(go[0]); close(go[1]); close(err[0]); close(err[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        close(go[1]);
        close(err[0]);
        // The command starts with default dispositions and nothing blocked, whatever sprof or
        // the parent that started sprof ignored or blocked: an inherited SIG_IGN for SIGCHLD
        // makes wait() fail in the command, one for SIGPIPE makes `cmd | head` spin on EPIPE.
        // (Handlers are reset by exec anyway; SIG_IGN is what survives it.) The raw system call,
        // because glibc's sigaction refuses its internal signals 32 and 33, which an ignoring
        // parent would otherwise pass on (and break pthread_cancel/setxid in the command). An
        // all-zero kernel sigaction is SIG_DFL with no flags and an empty mask on every ABI;
        // SIGKILL and SIGSTOP are refused harmlessly.
        static const unsigned long dfl[8] = {0};
        for (int sig = 1; sig < 65; sig++) syscall(SYS_rt_sigaction, sig, dfl, NULL, 8);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char byte;
        ssize_t n;
        do { n = read(go[0], &byte, 1); } while (n < 0 && errno == EINTR);
        if (n != 1) _exit(127);
        close(go[0]);
        if (envp) execvpe(file, argv, envp); else execvp(file, argv);
        int e = errno;
        ssize_t w;
        do { w = write(err[1], &e, sizeof e); } while (w < 0 && errno == EINTR);
        _exit(e == ENOENT ? 127 : 126);
    }
    close(go[0]);
    close(err[1]);
    *go_fd = go[1];
    *err_fd = err[0];
    return pid;
}

// pidfd_open(2) has no glibc wrapper here; a pidfd lets poll(2) wake the moment the profiled
// command exits, so the end of a run needs no timer.
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
static inline int csprof_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

// process_vm_readv(2) is GNU-only (not declared without _GNU_SOURCE, see above) and syscall(2) is
// variadic. The recording reads the rest of a thread's stack beyond the kernel's copy. The
// remote range is split at page boundaries (at most 256 pages) because the kernel never splits
// one iovec: a single range running past the stack's end would fail whole, while page-sized
// pieces stop at the first unmapped page. Returns the bytes read or -1.
static inline long csprof_read_process_memory(pid_t pid, void *local, size_t len, uint64_t remote) {
    struct piece { void *base; size_t len; } l = { local, len }, r[256];
    unsigned long n = 0;
    uint64_t at = remote, end = remote + len;
    while (at < end && n < 256) {
        uint64_t next = (at | 4095) + 1;
        if (next > end) next = end;
        r[n].base = (void *)(uintptr_t)at;
        r[n].len = (size_t)(next - at);
        n++;
        at = next;
    }
    l.len = (size_t)(at - remote);
    return syscall(SYS_process_vm_readv, pid, &l, 1UL, r, n, 0UL);
}

// Signal forwarding: Ctrl-C and friends must reach the profiled command while the profiler
// survives to write what it gathered. The handler may only call kill(2), hence C.
// The state is weak, not static: a static in a header is one copy per object file that calls
// these functions, and a release build splits a Swift module into one object file per source
// file, inlining InterruptForwarding's calls into each (RecordingSession.swift's handler then
// noted Ctrl-C in its own copy, and `sprof run -p` exited 0 instead of 130). The linker merges
// weak definitions into one, whichever object files and modules include this header.
// InterruptForwarding (SprofRecording) stays the only Swift door.
__attribute__((weak)) volatile sig_atomic_t csprof_forward_pid = 0;
__attribute__((weak)) volatile sig_atomic_t csprof_forwarded_signal = 0;
__attribute__((weak)) volatile sig_atomic_t csprof_notify_fd = -1;
// Signals caught since install: from the third on, the command gets SIGKILL instead, so a
// command that ignores or outlasts Ctrl-C still ends (and the profile is written) when the
// user presses it twice more, or a supervisor (sprof serve's Stop) sends two more.
__attribute__((weak)) volatile sig_atomic_t csprof_forward_count = 0;
static inline void csprof_forward_handler(int sig) {
    csprof_forwarded_signal = sig;
    if (csprof_forward_count < 1000) csprof_forward_count++;
    if (csprof_forward_pid > 0) kill((pid_t)csprof_forward_pid, csprof_forward_count >= 3 ? SIGKILL : sig);
    if (csprof_notify_fd >= 0) {
        int saved = errno;
        uint64_t one = 1;
        ssize_t ignored = write(csprof_notify_fd, &one, sizeof one);
        (void)ignored;
        errno = saved;
    }
}
// pid > 0: forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to pid. notify_fd >= 0: also write 8 bytes to it
// (an eventfd the recording loop polls), which is how an attached recording learns of Ctrl-C.
// Handlers, unlike SIG_IGN, are reset by exec in the child.
// Returns the signal caught since the last csprof_install_signal_forwarding (0 if none) and
// keeps it: a recording that caught signals from before it opened its events (which takes a
// while with -p on many threads, or -a) points them at its stop eventfd once it has one, and a
// signal that came in between must still end it (a handler cannot be re-aimed from Swift).
static inline int csprof_route_signals(pid_t pid, int notify_fd) {
    csprof_forward_pid = pid;
    csprof_notify_fd = notify_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = csprof_forward_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    return (int)csprof_forwarded_signal;
}
static inline void csprof_install_signal_forwarding(pid_t pid, int notify_fd) {
    csprof_forwarded_signal = 0;
    csprof_forward_count = 0;
    (void)csprof_route_signals(pid, notify_fd);
}
// Set once by the CLI: after recording, its handler stays, forwarding nowhere, so that a signal
// while the outputs are written is dropped rather than killing it half-way.
__attribute__((weak)) volatile sig_atomic_t csprof_keep_catching = 0;
static inline void csprof_keep_catching_signals(void) { csprof_keep_catching = 1; }
static inline void csprof_restore_default_signals(void) {
    csprof_forward_pid = 0;
    csprof_notify_fd = -1;
    if (csprof_keep_catching) return;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
}
static inline int csprof_last_forwarded_signal(void) { return (int)csprof_forwarded_signal; }

// SCHED_IDLE is only declared under _GNU_SOURCE, which this header must not define (see top).
// Linux applies sched_setscheduler(0, …) to the calling thread alone: the profiler's processing
// thread can yield every cycle to the profiled program and catch up once it exits.
// Returns 0 or -1 with errno; switching back to SCHED_OTHER at nice 0 needs no privilege.
static inline int csprof_set_thread_idle(int idle) {
    struct sched_param param;
    memset(&param, 0, sizeof param);
    return sched_setscheduler(0, idle ? 5 /* SCHED_IDLE */ : 0 /* SCHED_OTHER */, &param);
}
// The same for another thread of this process, by its kernel id: the reader thread, which sees the
// recording end first, returns the consumer to SCHED_OTHER at once instead of after the consumer's
// current batch (which at SCHED_IDLE on a busy machine took ~30 s with -a). gettid() is hidden
// from Swift by glibc (it needs _GNU_SOURCE).
static inline int csprof_set_task_idle(pid_t tid, int idle) {
    struct sched_param param;
    memset(&param, 0, sizeof param);
    return sched_setscheduler(tid, idle ? 5 /* SCHED_IDLE */ : 0 /* SCHED_OTHER */, &param);
}
static inline pid_t csprof_gettid(void) { return (pid_t)syscall(SYS_gettid); }
// Whether the calling thread runs at SCHED_IDLE: a thread it creates inherits that policy, so a
// helper started by the idle consumer (the kallsyms reader) must be set back when its result is
// awaited at normal priority. SCHED_IDLE's value is hidden as above.
static inline int csprof_thread_is_idle(void) { return sched_getscheduler(0) == 5 /* SCHED_IDLE */; }
// The calling thread's nice value (Linux applies setpriority(PRIO_PROCESS, tid) to one thread):
// the ring-buffer reader asks for -10 when permitted (CAP_SYS_NICE, RLIMIT_NICE), so that CPU-bound
// threads of the profiled program do not keep it off the CPU for as long as a buffer lasts. A
// thread it creates would inherit it; it returns to 0 before starting any. Glibc types the first
// argument as an enum only under _GNU_SOURCE. Returns 0 or -1 with errno (EACCES, EPERM).
static inline int csprof_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

// The vdso is not on disk; its image is the same in every process of a boot, so we read our own.
// getauxval's header, <sys/auxv.h>, is not part of Swift's Glibc module.
static inline const void *csprof_vdso_base(void) { return (const void *)getauxval(AT_SYSINFO_EHDR); }

// Demanglers exported by libswiftCore and libstdc++ that no importable header declares. The
// wrappers fix the arguments Swift would otherwise pass as raw nulls. __cxa_demangle is libstdc++'s
// own copy of the Itanium demangler (a different release from libiberty's), tried for a `_Z` name
// libiberty declines.
char *swift_demangle(const char *mangled, size_t mangled_len, char *out, size_t *out_len, uint32_t flags);
char *__cxa_demangle(const char *mangled, char *out, size_t *length, int *status);
static inline char *csprof_swift_demangle(const char *mangled, size_t len) {
    return swift_demangle(mangled, len, NULL, NULL, 0);
}
static inline char *csprof_cxx_demangle(const char *mangled) {
    int status = 0;
    char *r = __cxa_demangle(mangled, NULL, NULL, &status);
    return status == 0 ? r : NULL;
}

// ---- Demangling through libiberty (stacks, issue 11) -------------------------------------------
// libiberty's cplus_demangle is the demangler c++filt and gdb use: Itanium C++ (including the
// generic-lambda closure names that libstdc++ 12's __cxa_demangle rejects) and both Rust schemes
// (legacy `_ZN…17h<hash>E` and v0 `_R…`), with the Rust hash left out unless DMGL_VERBOSE.
// Declared here rather than by including <libiberty/demangle.h>, whose macros and enums would
// leak into every Swift file that imports the shim.
char *cplus_demangle(const char *mangled, int options);
/// Demangled C++ or Rust name (malloc'd), or NULL when `mangled` is not a valid mangling.
/// Options: DMGL_PARAMS (1) | DMGL_ANSI (2): parameter lists and const/volatile qualifiers.
static inline char *csprof_iberty_demangle(const char *mangled) {
    return cplus_demangle(mangled, (1 << 0) | (1 << 1));
}

#endif
