#if canImport(Glibc)
import Glibc
#endif
import SprofCore

/// Error advice that depends on who runs sprof and on what: the generic advice (raise
/// perf_event_paranoid, raise perf_event_mlock_kb to a fixed value) was wrong in two cases, which
/// these name instead.
public enum Advice {
    /// The owner of process (or thread) `pid`, from /proc; nil when it is gone or hidden.
    public static func owner(of pid: Int32) -> uid_t? {
        var st = stat()
        guard pid > 0, stat("/proc/\(pid)", &st) == 0 else { return nil }
        return st.st_uid
    }

    /// A user's name from the password database, or `uid N`.
    public static func userName(_ uid: uid_t) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return String(cString: name)
    }

    /// For EACCES/EPERM when attaching to `pid`: when the process belongs to another user and sprof
    /// is not root, that is the cause (ptrace access rules), whatever `perf_event_paranoid` says;
    /// lowering paranoid does not help. nil when the owner is not the issue.
    public static func foreignProcess(_ pid: Int32, euid: uid_t = geteuid()) -> String? {
        guard euid != 0, let owner = owner(of: pid), owner != euid else { return nil }
        let name = userName(owner)
        if owner == 0 { return "process \(pid) belongs to root, and only root may profile it: run sprof as root (sudo sprof …)" }
        return "process \(pid) belongs to user \(name), and only its owner or root may profile it: run sprof as \(name) (sudo -u \(name) sprof …) or as root"
    }

    /// For a ring-buffer mmap refused with EPERM/ENOMEM: advice that fits the size asked for and
    /// who asks. Root (CAP_IPC_LOCK) is not bound by `perf_event_mlock_kb`, so for root the memory
    /// itself is short; a user is allowed `perf_event_mlock_kb` per CPU (then `ulimit -l`), so the
    /// sysctl value given is one that covers the request, with the largest `-m` that fits today.
    public static func ringBuffer(dataPages: Int, pageSize: Int, settings: KernelSettings, privileged: Bool) -> String {
        let kib = dataPages * pageSize / 1024
        if privileged {
            // The kernel keeps a buffer's page pointers in one allocation of at most 4 MiB
            // (kernel/events/ring_buffer.c, rb_alloc: order <= MAX_PAGE_ORDER), so 2^18 pages is
            // the most one buffer can have with 4 KiB pages whatever the memory.
            let kernelLimit = 1 << 18
            return "the kernel could not allocate a ring buffer of \(kib) KiB per CPU: memory is short or the buffer is over the kernel's size limit; use fewer pages, e.g. -m \(Swift.max(1, Swift.min(dataPages / 4, kernelLimit)))"
        }
        let needed = (dataPages + 1) * pageSize / 1024
        if needed <= settings.mlockKB {
            // The request fits the per-CPU limit in effect: the kernel counts every perf buffer of
            // the user against one budget (perf_event_mlock_kb × CPUs, then RLIMIT_MEMLOCK), so
            // another recording that is running holds it. Raising the sysctl to what it already
            // is would not help.
            return "the ring buffer (\(kib) KiB per CPU) fits kernel.perf_event_mlock_kb = \(settings.mlockKB) KiB, but another recording of this user (sprof, perf) holds the locked memory; wait for it to end, use fewer pages (-m \(Swift.max(1, dataPages / 4))), or raise the limit (sudo sysctl kernel.perf_event_mlock_kb=\(settings.mlockKB * 2))"
        }
        var fits = 0
        var p = 1
        while (p + 1) * pageSize / 1024 <= settings.mlockKB { fits = p; p *= 2 }
        let smaller = fits > 0 ? "use -m \(fits) (the most that fits), or " : ""
        return "the ring buffer (\(kib) KiB per CPU) exceeds the locked-memory limit kernel.perf_event_mlock_kb = \(settings.mlockKB) KiB; \(smaller)allow it with: sudo sysctl kernel.perf_event_mlock_kb=\(needed) (or raise 'ulimit -l')"
    }
}
