#if canImport(Glibc)
import Glibc
#endif

/// Tells whether the machine has a CPU to spare right now, so the profiler can name frames while
/// the program runs (shorter wait for the flame graph) without taking CPU from it.
///
/// Naming frames touches files and kernel paths that do not yield at once to a waking program
/// (page faults on mapped debug info, /proc/kallsyms generated inside read(2)), so idle scheduling
/// priority alone is not enough: on a busy machine the work waits until recording ends. Idle time
/// comes from the first line of /proc/stat; the profiler's own thread time is added back, since
/// when it is the one using the spare CPU, that CPU is still spare.
struct SpareCPU {
    private var lastIdleTicks: UInt64 = 0
    private var lastOwnNanos: UInt64 = 0
    private var lastWall: UInt64 = 0
    private var lastAnswer = false
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    /// How often /proc/stat is read at most.
    private let interval: UInt64 = 50_000_000

    /// True when, over the last interval, at least half a CPU was idle or used by this thread.
    mutating func available() -> Bool {
        let now = Self.clock(CLOCK_MONOTONIC)
        guard now &- lastWall >= interval else { return lastAnswer }
        let own = Self.clock(CLOCK_THREAD_CPUTIME_ID)
        guard let idle = Self.idleTicks() else { return false }
        if lastWall != 0 {
            let wall = Double(now - lastWall) / 1e9
            let spare = Double(idle &- lastIdleTicks) / ticksPerSecond + Double(own &- lastOwnNanos) / 1e9
            lastAnswer = spare / wall >= 0.5
        }
        lastWall = now
        lastIdleTicks = idle
        lastOwnNanos = own
        return lastAnswer
    }

    private static func clock(_ id: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// idle + iowait ticks summed over all CPUs ("cpu  user nice system idle iowait …").
    private static func idleTicks() -> UInt64? {
        let fd = open("/proc/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let line = buffer[0..<n].prefix { $0 != UInt8(ascii: "\n") }
        let fields = line.split(separator: UInt8(ascii: " ")).dropFirst()
        let values = fields.prefix(5).compactMap { UInt64(String(decoding: $0, as: UTF8.self)) }
        guard values.count == 5 else { return nil }
        return values[3] + values[4]
    }
}
