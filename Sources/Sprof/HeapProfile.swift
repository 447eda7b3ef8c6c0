#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofRecording
import SprofProfile

/// Heap profiling of a launched command (`sprof run --heap`): which stacks allocate how many
/// bytes, and which still hold them at the end.
///
/// The mechanism: sprof preloads `libsprof-heap.so` (a plain C library, built into the
/// `sprof_Sprof.resources` directory beside the `sprof` binary) into the
/// command with `LD_PRELOAD`. It interposes malloc, calloc, realloc, free, posix_memalign,
/// aligned_alloc, memalign, valloc and pvalloc, draws one sample per ``rate`` bytes on average in
/// user space (a per-thread exponential countdown, as Go and tcmalloc do), and calls
/// `sprof_heap_sampled(ptr, size)` for sampled allocations and `sprof_heap_freed(ptr)` for their
/// frees. sprof puts uprobes on those two functions (perf_event_open, the `uprobe` PMU), so only
/// sampled calls trap, and the allocation probe takes the user stack for DWARF unwinding.
public struct HeapOptions: Sendable, Equatable {
    /// Mean bytes allocated between two samples (`--heap-rate`); 1 records every allocation.
    public var rate: Int = 512 * 1024
    /// The preload library; nil means the one beside the running executable (see
    /// ``defaultLibraryPath``).
    public var libraryPath: String?
    /// Bytes of user stack each heap probe record copies in DWARF mode (a multiple of 8, at most
    /// 65528), whatever the CPU samples copy (``SamplingOptions/companionStackSize``): the probes
    /// fire in bursts as fast as the program allocates, and 32 KiB copies lost 91% of a malloc
    /// loop's records (bench/heap), where 8 KiB lost none. Probes that copy no stack (attached)
    /// ignore it.
    public var stackSize: UInt32 = HeapOptions.defaultStackSize

    /// The heap probes' stack copy unless told otherwise: 8 KiB (perf's default copy).
    public static let defaultStackSize: UInt32 = 8192

    /// Options sampling every `rate` bytes on average (Go's default `MemProfileRate`, 512 KiB).
    public init(rate: Int = 512 * 1024, libraryPath: String? = nil) {
        self.rate = rate
        self.libraryPath = libraryPath
    }

    /// The event of `-e none`: the software `dummy` event (PERF_TYPE_SOFTWARE,
    /// PERF_COUNT_SW_DUMMY), which never samples but delivers the MMAP, COMM and FORK records
    /// that name the heap samples' frames.
    public static let noCPUEvent = EventSpec(name: "none", type: 1, config: 9)

    /// The name of the preload library (built by the PlainCLibrary plugin).
    public static let libraryName = "libsprof-heap.so"

    /// The directory, beside the built binaries, where SwiftPM puts the Sprof target's
    /// resources, libsprof-heap.so among them.
    public static let resourceDirectory = "sprof_Sprof.resources"

    /// Where the preload library is for binaries in `directory`: in ``resourceDirectory`` there
    /// when it exists, else `directory/libsprof-heap.so` (an installation that put it beside
    /// sprof).
    public static func libraryPath(besideBinariesIn directory: String) -> String {
        let bundled = directory + "/" + resourceDirectory + "/" + libraryName
        return access(bundled, R_OK) == 0 ? bundled : directory + "/" + libraryName
    }

    /// ``libraryPath(besideBinariesIn:)`` for the directory of the running executable
    /// (`/proc/self/exe`), where `swift build` puts both.
    public static var defaultLibraryPath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let dir = exe.lastIndex(of: "/").map { String(exe[..<$0]) } ?? "."
        return libraryPath(besideBinariesIn: dir)
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
            throw SyscallError(call: "heap", errno: ENOENT, hint: "\(path) is missing: build sprof with 'swift build' (its PlainCLibrary plugin puts the library in \(HeapOptions.resourceDirectory)/ beside the binary), or copy that directory beside sprof")
        }
        guard HeapOptions.uprobesAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EPERM, hint: HeapOptions.permissionHint)
        }
        guard let allocOffset = Uprobes.fileOffset(ofSymbol: "sprof_heap_sampled", in: path),
              let freeOffset = Uprobes.fileOffset(ofSymbol: "sprof_heap_freed", in: path) else {
            throw SyscallError(call: "heap", errno: ENOEXEC, hint: "\(path) does not define sprof_heap_sampled and sprof_heap_freed: rebuild sprof with 'swift build'")
        }
        library = path
        allocation = try Uprobes.event(path: path, offset: allocOffset, name: "sprof_heap_sampled")
        free = try Uprobes.event(path: path, offset: freeOffset, name: "sprof_heap_freed", copiesUserStack: false)
    }

    /// The command's environment: sprof's own (`base`, `NAME=value` entries; nil: read from
    /// `environ`), with the library first in `LD_PRELOAD` (before any preloads already there, so
    /// that its malloc is the one called) and the rate in `SPROF_HEAP_RATE`. Handed to exec
    /// rather than set with setenv around the fork, which is not safe while other threads read
    /// the environment.
    /// With `flow`, `SPROF_HEAP_FLOW` names its page (``HeapFlow``): the library waits for the
    /// reader instead of overrunning the ring buffers.
    func environment(rate: Int, flow: HeapFlow? = nil) -> [String] { Self.environment(library: library, rate: rate, flow: flow) }

    /// See ``environment(rate:flow:)``.
    static func environment(library: String, rate: Int, flow: HeapFlow? = nil, base: [String]? = nil) -> [String] {
        let current = base ?? Self.currentEnvironment()
        var out: [String] = []
        var preload: String?
        for entry in current {
            if entry.hasPrefix("LD_PRELOAD=") {
                preload = String(entry.dropFirst("LD_PRELOAD=".count))
            } else if !entry.hasPrefix("SPROF_HEAP_RATE=") && !entry.hasPrefix("SPROF_HEAP_FLOW=") {
                // An outer sprof's page (sprof profiled by sprof) is not this recording's.
                out.append(entry)
            }
        }
        out.append("LD_PRELOAD=" + library + (preload.map { $0.isEmpty ? "" : ":" + $0 } ?? ""))
        out.append("SPROF_HEAP_RATE=\(rate)")
        if let flow { out.append("SPROF_HEAP_FLOW=" + flow.path) }
        return out
    }

    /// This process's environment, byte for byte (see ArgumentBytes).
    static func currentEnvironment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(ArgumentBytes.string(UnsafeBufferPointer(start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self), count: strlen(entry))))
            p += 1
        }
        return out
    }
}

/// The probes of an attached heap recording (`--heap -p PID`): uprobes on the entry and the return
/// of the allocator the process really calls (the first mapped file that defines `malloc`, in
/// symbol-lookup order: the executable, then libraries from the last loaded (the preloaded ones)
/// to libc), and on its `free`. Every call traps; sprof draws the byte samples itself, and
/// unwinds only the sampled calls' stacks.
struct AllocatorProbes {
    let library: String
    let events: [(event: EventSpec, role: HeapRole)]
    /// The probed functions' extents in the file (offset, `st_size`): see
    /// ``HeapAccounting/allocatorFunctions``.
    let functions: [Range<UInt64>]

    /// - Throws: `SyscallError` when the process has no allocator sprof can find, or uprobes are
    ///   not allowed.
    init(pid: Int32) throws(SyscallError) {
        guard HeapOptions.uprobesAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EPERM, hint: HeapOptions.permissionHint)
        }
        guard let path = Self.allocator(of: pid) else { throw Self.noAllocator(pid) }
        library = path
        guard let bytes = readWholeFile(path) else {
            throw SyscallError(call: "heap", errno: EACCES, hint: "cannot read \(path)")
        }
        var events: [(EventSpec, HeapRole)] = []
        var ranges: [Range<UInt64>] = []
        var probed: Set<UInt64> = []
        let functions: [(String, HeapSizeArgument?)] = [("malloc", .first), ("calloc", .product), ("realloc", .realloc),
                                                         ("memalign", .second), ("aligned_alloc", .second), ("valloc", .first), ("free", nil)]
        for (name, argument) in functions {
            // Aliases (glibc's aligned_alloc is memalign) share an address: probe it once.
            guard let (offset, size) = ElfSymbolTable.function(name, in: bytes), probed.insert(offset).inserted else { continue }
            ranges.append(offset..<(offset + max(size, 1)))
            if let argument {
                // Every call is a record: the kernel's frame-pointer walk instead of a stack copy.
                events.append((try Uprobes.event(path: path, offset: offset, name: name, copiesUserStack: false, walksUserFramePointers: true),
                               .entry(argument)))
                events.append((try Uprobes.event(path: path, offset: offset, name: name + "%return", returnProbe: true, copiesUserStack: false), .returned))
            } else {
                events.append((try Uprobes.event(path: path, offset: offset, name: name, copiesUserStack: false), .freed))
            }
        }
        self.events = events
        self.functions = ranges
    }

    /// The file whose `malloc` the process calls.
    /// Why process `pid` has no allocator to probe, as precisely as /proc tells: its memory map
    /// unreadable (permissions), empty (a kernel thread), or its allocator's file deleted since it
    /// was mapped (uprobes need a path); a new user got "no mapped file defines malloc" for all three.
    static func noAllocator(_ pid: Int32) -> SyscallError {
        guard let maps = readTextFile("/proc/\(pid)/maps") else {
            let e = errno
            return SyscallError(call: "heap", errno: e == 0 ? EACCES : e, hint: "cannot read /proc/\(pid)/maps (\(String(cString: strerror(e == 0 ? EACCES : e)))): sprof needs to read the process's memory map to find its allocator; run sprof as the process's user or as root")
        }
        if maps.isEmpty {
            return SyscallError(call: "heap", errno: EINVAL, hint: "process \(pid) is a kernel thread (it has no user memory): there is no allocator to probe")
        }
        let deleted = Set(maps.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1].contains("x"), fields[5].hasSuffix(" (deleted)") else { return nil }
            return String(fields[5].drop { $0 == " " }.dropLast(" (deleted)".count))
        })
        if let file = deleted.sorted().first {
            return SyscallError(call: "heap", errno: ENOENT, hint: "\(file) was deleted (or replaced) after process \(pid) mapped it, and a uprobe needs the file by its path: attach to a process started from the file as it is now, or run the program under sprof run --heap")
        }
        return SyscallError(call: "heap", errno: ENOENT, hint: "no mapped file of process \(pid) defines malloc (an allocator under other names, such as jemalloc's je_malloc, is not probed); nothing to probe")
    }

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

extension HeapAccounting {
    /// One line when probe records were lost (`lost`: the session's LOST count, which may also
    /// hold CPU samples) or calls went unpaired, saying which way each loss bends the estimates
    /// and what to change (for `callGraph`, the heap probes' stack mode); nil when nothing was
    /// lost. A lost entry drops an allocation (alloc_* too low by about the lost share), a lost
    /// free leaves a block counted in use (inuse_* too high), a lost return drops a sampled block
    /// from in-use tracking. The one percentage is of probe records, the unit the kernel loses.
    func lossNotices(lost: UInt64, callGraph: SamplingOptions.CallGraph) -> [String] {
        var notices: [String] = []
        if untracked > 0 {
            notices.append("heap: \(grouped(untracked)) sampled allocations (about \(grouped(Int64(untrackedBytes.rounded()))) bytes) found the preload library's set of "
                + "sampled pointers full, so their frees are not reported: they count in alloc_* and are left out of inuse_* and the leaks")
        }
        if let line = lossNotice(lost: lost, callGraph: callGraph) { notices.append(line) }
        return notices
    }

    private func lossNotice(lost: UInt64, callGraph: SamplingOptions.CallGraph) -> String? {
        guard lost > 0 || unmatchedEntries > 0 || unmatchedReturns > 0 else { return nil }
        let total = UInt64(probeRecords) + lost
        let share = total == 0 ? 100 : Double(lost) * 100 / Double(total)
        var line = "heap: \(grouped(lost)) of \(grouped(total)) probe records lost (\(share < 0.1 && lost > 0 ? "<0.1" : String(Double((share * 10).rounded()) / 10))%)"
        if unmatchedEntries + unmatchedReturns > 0 {
            line += ", \(unmatchedEntries) allocator calls without their return and \(unmatchedReturns) returns without their call"
        }
        return line + ": alloc_space and alloc_objects are low by about that share, and inuse_* and the leaks hold blocks whose free was lost; "
            + RecordingReport.heapLossAdvice(rate: Int(rate), callGraph: callGraph, attached: allocatorPath != nil)
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
    /// The processes whose probe samples count, when the probes fire for every process (a
    /// command's recording, see `EventRole.opensForEveryProcess`): the command, then every
    /// process its tree forks (FORK records of the sampled event, which follows only that tree).
    /// nil: every sample counts (attached, the probes are the process's own). Not removed at
    /// exit: a main thread's EXIT does not end its process while other threads run.
    var followed: Set<Int32>?
    /// Probe samples of processes outside ``followed`` (another program preloading the library).
    private(set) var foreignSamples = 0

    /// Whether a probe sample of process `pid` counts (see ``followed``).
    func follows(_ pid: Int32) -> Bool {
        guard let followed, !followed.contains(pid) else { return true }
        foreignSamples += 1
        return false
    }

    /// A FORK record of the followed tree: `pid` is followed from now on.
    func forked(_ pid: Int32) { followed?.insert(pid) }

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
    /// Probe records seen (every role), to put the lost ones in proportion.
    var probeRecords = 0
    /// Sampled allocations from processes that could not open sprof's flow-control page
    /// (``HeapFlow``: a process running as another user), which were not held back.
    var unpaced = 0
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

    /// The outermost allocator call in progress per thread (attached recordings), by the stack
    /// pointer at its entry: its return has SP 8 bytes higher (the return address popped). Calls
    /// made by the allocator itself (glibc's realloc(NULL, n) calling malloc) are recognised
    /// before they get here, by their return address (see ``allocatorFunctions``).
    private struct Call {
        var sp: UInt64
        var size: UInt64
        var key: Key?
    }
    private var calls: [Int32: Call] = [:]
    /// Entries whose return never came (its record lost), and returns without their entry.
    private(set) var unmatchedEntries = 0
    private(set) var unmatchedReturns = 0

    /// Attached recordings: the allocator's file and its probed functions' extents, as file
    /// offsets. A probed call whose return address lies in one is the allocator calling itself.
    var allocatorPath: String?
    var allocatorFunctions: [Range<UInt64>] = []

    /// Whether a code address at `fileOffset` of the file `path` lies in a probed allocator function.
    func isInsideAllocator(path: String, fileOffset: UInt64) -> Bool {
        path == allocatorPath && allocatorFunctions.contains { $0.contains(fileOffset) }
    }

    /// The entry of an outermost allocator call: `key` is nil when the call was not sampled.
    /// A call still pending on the thread lost its return record.
    func enter(tid: Int32, sp: UInt64, size: UInt64, key: Key?) {
        if calls.updateValue(Call(sp: sp, size: size, key: key), forKey: tid) != nil { unmatchedEntries += 1 }
    }

    /// The return of an outermost allocator call (SP after the return): its pointer.
    func returned(pid: Int32, tid: Int32, sp: UInt64, address: UInt64, time: UInt64) {
        guard let call = calls[tid], call.sp &+ 8 == sp else {
            unmatchedReturns += 1
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

    /// Sampled allocations whose frees will not be reported (the preload library's pointer set
    /// was full): in alloc_*, left out of inuse_*.
    private(set) var untracked = 0
    private(set) var untrackedBytes = 0.0

    /// A sampled allocation. `tracked: false`: its free will not be reported, so it counts in
    /// alloc_* only. `rate`: the rate it was drawn at, when the record says (the preload
    /// library's own, which need not be this recording's); else ``rate``.
    func allocated(pid: Int32, address: UInt64, size: UInt64, key: Key, time: UInt64, tracked: Bool = true, rate drawnAt: Double? = nil) {
        let scale = Self.scale(size: size, rate: drawnAt ?? rate)
        allocations += 1
        var t = totals[key] ?? (0, 0)
        t.objects += scale
        t.bytes += scale * Double(size)
        totals[key] = t
        guard tracked else {
            untracked += 1
            untrackedBytes += scale * Double(size)
            return
        }
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
