#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofRecording
import SprofProfile

/// Heap profiling of a launched command (`sprof run --heap`): which stacks allocate how many
/// bytes, and which still hold them at the end.
///
/// The mechanism: sprof preloads `libsprof-heap.so` (built beside the `sprof` binary) into the
/// command with `LD_PRELOAD`. It interposes malloc, calloc, realloc, free, posix_memalign,
/// aligned_alloc, memalign, valloc and pvalloc, draws one sample per ``rate`` bytes on average in
/// user space (a per-thread exponential countdown, as Go and tcmalloc do), and calls
/// `sprof_heap_sampled(ptr, size)` for sampled allocations and `sprof_heap_freed(ptr)` for their
/// frees. sprof puts uprobes on those two functions (perf_event_open, the `uprobe` PMU), so only
/// sampled calls trap, and the allocation probe takes the user stack for DWARF unwinding.
public struct HeapOptions: Sendable, Equatable {
    /// Mean bytes allocated between two samples (`--heap-rate`); 1 records every allocation.
    public var rate: Int = 512 * 1024
    /// The preload library; nil means `libsprof-heap.so` beside the running executable (see
    /// ``defaultLibraryPath``).
    public var libraryPath: String?

    /// Options sampling every `rate` bytes on average (Go's default `MemProfileRate`, 512 KiB).
    public init(rate: Int = 512 * 1024, libraryPath: String? = nil) {
        self.rate = rate
        self.libraryPath = libraryPath
    }

    /// The event of `-e none`: the software `dummy` event (PERF_TYPE_SOFTWARE,
    /// PERF_COUNT_SW_DUMMY), which never samples but delivers the MMAP, COMM and FORK records
    /// that name the heap samples' frames.
    public static let noCPUEvent = EventSpec(name: "none", type: 1, config: 9)

    /// The name of the preload library SwiftPM builds (the `sprof-heap` product).
    public static let libraryName = "libsprof-heap.so"

    /// `libsprof-heap.so` in the directory of the running executable (`/proc/self/exe`), where
    /// `swift build` puts it beside `sprof`.
    public static var defaultLibraryPath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let dir = exe.lastIndex(of: "/").map { String(exe[..<$0]) } ?? "."
        return dir + "/" + libraryName
    }

    /// The four sample types of Go's heap profiles, in Go's order.
    public static let sampleTypes = [
        Profile.ValueType(type: "alloc_objects", unit: "count"),
        Profile.ValueType(type: "alloc_space", unit: "bytes"),
        Profile.ValueType(type: "inuse_objects", unit: "count"),
        Profile.ValueType(type: "inuse_space", unit: "bytes"),
    ]

    /// Whether this process may open uprobes: CAP_SYS_ADMIN in its effective set
    /// (`CapEff` in /proc/self/status, bit 21).
    public static var uprobesAllowed: Bool {
        guard let status = readTextFile("/proc/self/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let caps = UInt64(line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }, radix: 16) else { return false }
        return caps & (1 << 21) != 0
    }

    /// The one line printed when uprobes are not allowed.
    public static let permissionHint = "heap profiles put uprobes on the allocator, which needs CAP_SYS_ADMIN: run sprof as root (or with sudo)"
}

/// The probes of one heap recording: the library and the events on its two probe points.
struct HeapProbes {
    let library: String
    let allocation: EventSpec
    let free: EventSpec

    /// Finds the library and its probe points.
    ///
    /// - Throws: `SyscallError` with a one-line hint when the library is missing, has no probe
    ///   points, the kernel has no uprobe PMU, or this process lacks CAP_SYS_ADMIN.
    init(_ options: HeapOptions) throws(SyscallError) {
        let path = options.libraryPath ?? HeapOptions.defaultLibraryPath
        guard access(path, R_OK) == 0 else {
            throw SyscallError(call: "heap", errno: ENOENT, hint: "\(path) is missing: build it with 'swift build --product sprof-heap' (same configuration as sprof)")
        }
        guard HeapOptions.uprobesAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EPERM, hint: HeapOptions.permissionHint)
        }
        guard let allocOffset = Uprobes.fileOffset(ofSymbol: "sprof_heap_sampled", in: path),
              let freeOffset = Uprobes.fileOffset(ofSymbol: "sprof_heap_freed", in: path) else {
            throw SyscallError(call: "heap", errno: ENOEXEC, hint: "\(path) does not define sprof_heap_sampled and sprof_heap_freed: rebuild it with 'swift build --product sprof-heap'")
        }
        library = path
        allocation = try Uprobes.event(path: path, offset: allocOffset, name: "sprof_heap_sampled")
        free = try Uprobes.event(path: path, offset: freeOffset, name: "sprof_heap_freed", copiesUserStack: false)
    }

    /// Runs `body` (which forks the command) with the library first in `LD_PRELOAD` and the rate
    /// in `SPROF_HEAP_RATE`, then restores sprof's own environment: only the child inherits them.
    func withPreload<T>(rate: Int, _ body: () throws -> T) rethrows -> T {
        let oldPreload = getenv("LD_PRELOAD").map { String(cString: $0) }
        let oldRate = getenv("SPROF_HEAP_RATE").map { String(cString: $0) }
        setenv("LD_PRELOAD", library + (oldPreload.map { $0.isEmpty ? "" : ":" + $0 } ?? ""), 1)
        setenv("SPROF_HEAP_RATE", String(rate), 1)
        defer {
            if let oldPreload { setenv("LD_PRELOAD", oldPreload, 1) } else { unsetenv("LD_PRELOAD") }
            if let oldRate { setenv("SPROF_HEAP_RATE", oldRate, 1) } else { unsetenv("SPROF_HEAP_RATE") }
        }
        return try body()
    }
}

/// What a heap probe's sample means, by its event.
enum HeapRole: Sendable, Equatable {
    /// The preload library's `sprof_heap_sampled(ptr, size)`: a sampled allocation (DI, SI).
    case sampled
    /// A free of `ptr` (DI): `sprof_heap_freed`, or the allocator's `free` when attached.
    case freed
    /// The entry of an allocator function when attached; the size is in `size`, and realloc's
    /// old pointer (DI) is freed.
    case entry(HeapSizeArgument)
    /// The return of an allocator function when attached: the pointer in AX.
    case returned
}

/// Where an allocator function takes its size (x86-64 SysV: DI, SI are the first two arguments).
enum HeapSizeArgument: Sendable, Equatable {
    /// malloc(size), valloc(size), pvalloc(size).
    case first
    /// calloc(n, size).
    case product
    /// memalign(alignment, size), aligned_alloc(alignment, size).
    case second
    /// realloc(ptr, size): also a free of ptr.
    case realloc
}

/// The probes of an attached heap recording (`--heap -p PID`): uprobes on the entry and the return
/// of the allocator the process really calls (the first mapped file that defines `malloc`, in
/// symbol-lookup order: the executable, then libraries from the last loaded (the preloaded ones)
/// to libc), and on its `free`. Every call traps; sprof draws the byte samples itself, and
/// unwinds only the sampled calls' stacks.
struct AllocatorProbes {
    let library: String
    let events: [(event: EventSpec, role: HeapRole)]

    /// - Throws: `SyscallError` when the process has no allocator sprof can find, or uprobes are
    ///   not allowed.
    init(pid: Int32) throws(SyscallError) {
        guard HeapOptions.uprobesAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EPERM, hint: HeapOptions.permissionHint)
        }
        guard let path = Self.allocator(of: pid) else {
            throw SyscallError(call: "heap", errno: ENOENT, hint: "no mapped file of process \(pid) defines malloc; nothing to probe")
        }
        library = path
        guard let bytes = readWholeFile(path) else {
            throw SyscallError(call: "heap", errno: EACCES, hint: "cannot read \(path)")
        }
        var events: [(EventSpec, HeapRole)] = []
        var probed: Set<UInt64> = []
        let functions: [(String, HeapSizeArgument?)] = [("malloc", .first), ("calloc", .product), ("realloc", .realloc),
                                                         ("memalign", .second), ("aligned_alloc", .second), ("valloc", .first), ("free", nil)]
        for (name, argument) in functions {
            // Aliases (glibc's aligned_alloc is memalign) share an address: probe it once.
            guard let offset = ElfSymbolTable.fileOffset(of: name, in: bytes), probed.insert(offset).inserted else { continue }
            if let argument {
                events.append((try Uprobes.event(path: path, offset: offset, name: name), .entry(argument)))
                events.append((try Uprobes.event(path: path, offset: offset, name: name + "%return", returnProbe: true, copiesUserStack: false), .returned))
            } else {
                events.append((try Uprobes.event(path: path, offset: offset, name: name, copiesUserStack: false), .freed))
            }
        }
        self.events = events
    }

    /// The file whose `malloc` the process calls.
    static func allocator(of pid: Int32) -> String? {
        guard let maps = readTextFile("/proc/\(pid)/maps") else { return nil }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var files: [(start: UInt64, path: String)] = []
        var seen: Set<String> = []
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1].contains("x") else { continue }
            let path = String(fields[5].drop { $0 == " " })
            guard path.hasPrefix("/") else { continue }
            guard seen.insert(path).inserted, let start = UInt64(fields[0].prefix { $0 != "-" }, radix: 16) else { continue }
            files.append((start, path))
        }
        // ld.so maps libraries top-down: the first loaded (preloads) at the highest address.
        let ordered = files.filter { $0.path == exe } + files.filter { $0.path != exe }.sorted { $0.start > $1.start }
        return ordered.first { Uprobes.fileOffset(ofSymbol: "malloc", in: $0.path) != nil }?.path
    }
}

/// Pairs sampled allocations with their frees and sums them per stack key into Go's four heap
/// measures. Each sample stands for `1 / (1 - exp(-size / rate))` allocations of its size (Go's
/// `scaleHeapSample`): an allocation of `size` bytes is sampled with probability
/// `1 - exp(-size / rate)`, so the estimate is unbiased for any size pattern; at rate 1 the
/// factor is exactly 1.
final class HeapAccounting<Key: Hashable> {
    let rate: Double
    /// The role of each probe event, by event id.
    let roles: [UInt64: HeapRole]

    private struct Pointer: Hashable {
        var pid: Int32
        var address: UInt64
    }
    private struct Live {
        var key: Key
        var size: UInt64
        var scale: Double
    }
    private var live: [Pointer: Live] = [:]
    private var totals: [Key: (objects: Double, bytes: Double)] = [:]
    /// Sampled allocations and the frees of sampled pointers seen.
    private(set) var allocations = 0
    private(set) var frees = 0
    /// Estimated bytes in use now (sum of scaled sizes of live samples), and over time.
    private(set) var inUseBytes = 0.0
    private(set) var timeline: [(time: UInt64, bytes: Double)] = []

    init(rate: Int, roles: [UInt64: HeapRole]) {
        self.rate = Double(max(rate, 1))
        self.roles = roles
    }

    // Attached recordings: sprof draws the samples (see AllocatorProbes).

    /// Bytes left per process before the next sample; drawn from an exponential distribution.
    private var countdown: [Int32: Double] = [:]
    private var generator = SystemRandomNumberGenerator()

    /// Whether an allocation of `size` bytes is sampled: memoryless, probability 1 - exp(-size/rate).
    func draw(pid: Int32, size: UInt64) -> Bool {
        guard rate > 1 else { return true }
        var left = countdown[pid] ?? exponential()
        defer { countdown[pid] = left }
        if Double(size) < left {
            left -= Double(size)
            return false
        }
        left = exponential()
        return true
    }

    private func exponential() -> Double {
        let u = (Double(generator.next() >> 11) + 1) / 9007199254740992.0
        return -log(u) * rate
    }

    /// An allocator call in progress per thread: nested calls (glibc's realloc(NULL, n) calling
    /// malloc) count once, as the outermost.
    private struct Call {
        var depth: Int
        var size: UInt64
        var key: Key?
    }
    private var calls: [Int32: Call] = [:]

    /// Whether `tid` is inside an allocator call already (the entry then counts as nested).
    func enterNested(tid: Int32) -> Bool {
        guard var call = calls[tid], call.depth > 0 else { return false }
        call.depth += 1
        calls[tid] = call
        return true
    }

    /// The outermost entry: `key` is nil when the call was not sampled.
    func enter(tid: Int32, size: UInt64, key: Key?) {
        calls[tid] = Call(depth: 1, size: size, key: key)
    }

    /// A return probe: the outermost call's pointer.
    func returned(pid: Int32, tid: Int32, address: UInt64, time: UInt64) {
        guard var call = calls[tid] else { return }
        call.depth -= 1
        if call.depth > 0 {
            calls[tid] = call
            return
        }
        calls[tid] = nil
        if let key = call.key, address != 0 { allocated(pid: pid, address: address, size: call.size, key: key, time: time) }
    }

    /// How many allocations of `size` bytes one sample stands for.
    static func scale(size: UInt64, rate: Double) -> Double {
        guard rate > 1, size > 0 else { return 1 }
        return 1 / (1 - exp(-Double(size) / rate))
    }

    func allocated(pid: Int32, address: UInt64, size: UInt64, key: Key, time: UInt64) {
        let scale = Self.scale(size: size, rate: rate)
        allocations += 1
        var t = totals[key] ?? (0, 0)
        t.objects += scale
        t.bytes += scale * Double(size)
        totals[key] = t
        // A pointer sampled again without a free in between: the free was not seen (say, a
        // failed realloc); the newer allocation is the live one.
        if let old = live.updateValue(Live(key: key, size: size, scale: scale), forKey: Pointer(pid: pid, address: address)) {
            inUseBytes -= old.scale * Double(old.size)
        }
        inUseBytes += scale * Double(size)
        note(time)
    }

    func freed(pid: Int32, address: UInt64, time: UInt64) {
        guard let old = live.removeValue(forKey: Pointer(pid: pid, address: address)) else { return }
        frees += 1
        inUseBytes -= old.scale * Double(old.size)
        note(time)
    }

    /// An exec replaced the process's address space: what it held is gone, not leaked.
    func processExecuted(_ pid: Int32) {
        for (pointer, value) in live where pointer.pid == pid {
            live[pointer] = nil
            inUseBytes -= value.scale * Double(value.size)
        }
    }

    /// At most one point per 10 ms of in-use bytes.
    private func note(_ time: UInt64) {
        if let last = timeline.last, time < last.time + 10_000_000 {
            timeline[timeline.count - 1].bytes = max(0, inUseBytes)
            return
        }
        timeline.append((time, max(0, inUseBytes)))
    }

    /// Per key: alloc_objects, alloc_space, inuse_objects, inuse_space (rounded), for every key
    /// that allocated.
    func values() -> [Key: [Int64]] {
        var inUse: [Key: (objects: Double, bytes: Double)] = [:]
        for value in live.values {
            var t = inUse[value.key] ?? (0, 0)
            t.objects += value.scale
            t.bytes += value.scale * Double(value.size)
            inUse[value.key] = t
        }
        var out: [Key: [Int64]] = [:]
        for (key, t) in totals {
            let u = inUse[key] ?? (0, 0)
            out[key] = [Int64(t.objects.rounded()), Int64(t.bytes.rounded()), Int64(u.objects.rounded()), Int64(u.bytes.rounded())]
        }
        return out
    }
}
