#if canImport(Glibc)
import Glibc
#endif
import SprofCore

/// The perf-related sysctls that change what a profiler may do. Read at run time: the kernel
/// lowers `perf_event_max_sample_rate` by itself when sampling costs too much.
public struct KernelSettings: Sendable {
    /// `kernel.perf_event_paranoid` (2 on most distributions: no kernel profiling for users).
    public var paranoid: Int
    /// `kernel.perf_event_max_sample_rate`, in Hz.
    public var maxSampleRate: Int
    /// `kernel.perf_event_max_stack`: longer callchains are cut.
    public var maxStack: Int
    /// `kernel.perf_event_mlock_kb`: ring-buffer memory a user may lock per CPU.
    public var mlockKB: Int
    /// Whether this process may profile the kernel regardless of `paranoid` (root or CAP_PERFMON).
    public var privileged: Bool

    /// Creates settings with given values (tests, what-if messages).
    public init(paranoid: Int, maxSampleRate: Int = 100_000, maxStack: Int = 127, mlockKB: Int = 516, privileged: Bool = false) {
        self.paranoid = paranoid
        self.maxSampleRate = maxSampleRate
        self.maxStack = maxStack
        self.mlockKB = mlockKB
        self.privileged = privileged
    }

    /// Reads the current values.
    public static func current() -> KernelSettings {
        func int(_ name: String, _ fallback: Int) -> Int {
            guard let text = readTextFile("/proc/sys/kernel/\(name)") else { return fallback }
            return Int(text.filter { !$0.isWhitespace }) ?? fallback
        }
        return KernelSettings(
            paranoid: int("perf_event_paranoid", 2),
            maxSampleRate: int("perf_event_max_sample_rate", 100_000),
            maxStack: int("perf_event_max_stack", 127),
            mlockKB: int("perf_event_mlock_kb", 516),
            privileged: geteuid() == 0 || hasCapability(38 /* CAP_PERFMON */) || hasCapability(21 /* CAP_SYS_ADMIN */)
        )
    }

    /// Whether kernel frames and kernel-mode counts are allowed for this process.
    public var kernelAllowed: Bool { privileged || paranoid < 2 }

    /// Whether this process may record every process on every CPU (`sprof run -a`): root,
    /// CAP_PERFMON, or `perf_event_paranoid` <= 0.
    public var systemWideAllowed: Bool { privileged || paranoid <= 0 }

    /// The one line printed when `sprof run -a` is not allowed.
    public var systemWideHint: String {
        "recording every process (-a) needs root or kernel.perf_event_paranoid <= 0 (it is \(paranoid)); run as root, or: sudo sysctl kernel.perf_event_paranoid=0"
    }

    /// The one line printed when `--off-cpu` cannot take switch-out stacks (they are kernel samples).
    public var offCPUHint: String {
        "--off-cpu needs kernel samples (the stack is taken at each switch-out, in the kernel), which kernel.perf_event_paranoid=\(paranoid) forbids for this user; run as root, or: sudo sysctl kernel.perf_event_paranoid=1"
    }

    /// The fix to print when perf_event_open says EACCES/EPERM.
    public var permissionHint: String {
        "perf_event_paranoid is \(paranoid); run as root, or allow it with: sudo sysctl kernel.perf_event_paranoid=1 (or -1 for everything)"
    }

    private static func hasCapability(_ bit: Int) -> Bool {
        guard let status = readTextFile("/proc/self/status") else { return false }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }
            guard let mask = UInt64(hex, radix: 16) else { return false }
            return mask & (1 << UInt64(bit)) != 0
        }
        return false
    }
}
