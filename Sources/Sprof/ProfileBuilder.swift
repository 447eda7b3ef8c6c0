import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// The per-sample pipeline: process model → unwinding → aggregation → (at the end) symbolization
/// into the one ``Profile`` value.
///
/// While the target runs, stacks are aggregated as ids of *frame references* (an address with the
/// mapping it was in when sampled, or a marker); each distinct reference becomes a profile location
/// once, in ``resolve()``: during the run only while a CPU is spare, else after recording.
/// Symbolizing unconditionally during the run (opening ELF files, reading debug info, generating
/// kallsyms in the kernel) took CPU from the profiled program even at idle priority: about a
/// third more wall time for a fork-heavy program on two CPUs.
final class ProfileBuilder {
    let processes = ProcessTable()
    /// DWARF-mode user-stack unwinder (one cached libdwfl session per process).
    let unwinder = DwarfUnwinder()
    let symbolizer: Symbolizer
    let callGraph: SamplingOptions.CallGraph
    let maxStack: Int
    /// Threads whose samples are left out (the in-process profiler's own reader thread).
    var excludedThreads: Set<Int32> = []
    private(set) var statistics = ProfileStatistics()
    /// Whether to keep one entry per sample (the library's `Profile.timedSamples`); off for `sprof run`.
    var keepSamples = false

    /// One sample as kept when ``keepSamples`` is on.
    private struct LoggedSample {
        var thread: Int
        var time: UInt64
        var cpu: UInt32
        var stack: Int32
    }
    private var sampleLog: [LoggedSample] = []
    /// Processes created under the recording (fork records) with no exit record yet: those still
    /// running when the command exits (a daemon) are reported rather than silently unprofiled.
    private(set) var startedProcesses: Set<Int32> = []
    /// Distinct stacks of the kept samples, root first, as frame-reference ids.
    private var stackList: [[UInt32]] = []
    private var stackIDs: [[UInt32]: Int32] = [:]

    /// What a frame id stands for until ``resolve()`` turns it into a location.
    private enum FrameRef {
        case marker(String)
        case code(address: ProcessAddress, mapping: Mapping?, pid: Int32, isKernel: Bool)
    }
    private struct FrameKey: Hashable {
        var pid: Int32
        var generation: Int
        var address: UInt64
        var isKernel: Bool
    }
    private var refs: [FrameRef] = []
    private var codeRefIDs: [FrameKey: UInt32] = [:]
    private var markerIDs: [String: UInt32] = [:]
    /// Profile location index per frame id; filled by resolve().
    private var resolved: [Int] = []

    /// A thread as it was named when sampled: the same tid under another name (after exec or a
    /// rename) is another thread of the profile, as perf script shows it.
    private struct ThreadKey: Hashable {
        var pid: Int32
        var tid: Int32
        var name: String
        var processName: String
    }
    private var threadList: [ThreadKey] = []
    private var threadIDs: [ThreadKey: Int] = [:]
    private struct StackKey: Hashable {
        var refs: [UInt32]
        var thread: Int
    }
    /// Sample count and summed period per (stack, thread).
    private var stacks: [StackKey: (count: Int64, period: Int64)] = [:]
    private var scratch: [UInt32] = []
    private let truncatedID: UInt32
    private var building: ProfileBuilding
    private var kernelMapping: Int?

    // Off-CPU state (`--off-cpu`); see "Off-CPU intervals" below.
    private var offCPUEvents: Set<UInt64> = []
    private var intervals = OffCPUIntervals<StackKey>()
    private struct OffCPUKey: Hashable {
        var stack: StackKey
        var preempted: Bool
    }
    /// Off-CPU nanoseconds per (stack at the switch-out, thread, preempted).
    private var offCPUStacks: [OffCPUKey: Int64] = [:]
    private var lastRecordTime: UInt64 = 0

    // Heap state (`--heap`); see "Heap profiles" below.
    private var heap: HeapAccounting<StackKey>?
    /// Samples of these events are left out (the CPU profile's builder skips the heap probes).
    var ignoredEvents: Set<UInt64> = []

    init(symbolizer: Symbolizer, callGraph: SamplingOptions.CallGraph, maxStack: Int, event: EventSpec = .cpuClock,
         rate: SamplingOptions.Rate = .frequency(999)) {
        self.symbolizer = symbolizer
        self.callGraph = callGraph
        self.maxStack = maxStack
        let (types, periodType, period) = Self.sampleTypes(event: event, rate: rate)
        building = ProfileBuilding(sampleTypes: types, defaultSampleType: 0, periodType: periodType, period: period)
        truncatedID = 0
        _ = marker("[truncated]")
    }

    /// `samples`/`count` plus the event's own unit: nanoseconds of CPU for the clock events (their
    /// period is in ns, as `go tool pprof` expects of CPU profiles), else the event's count.
    static func sampleTypes(event: EventSpec, rate: SamplingOptions.Rate) -> ([Profile.ValueType], Profile.ValueType, Int64) {
        let isClock = event.type == 1 && (event.config == 0 || event.config == 1)  // PERF_TYPE_SOFTWARE, CPU/TASK_CLOCK
        let measure = isClock ? Profile.ValueType(type: "cpu", unit: "nanoseconds") : Profile.ValueType(type: event.description, unit: "count")
        let period: Int64
        switch rate {
        case .period(let n): period = Int64(clamping: n)
        case .frequency(let hz): period = isClock && hz > 0 ? 1_000_000_000 / Int64(hz) : 0
        }
        return ([Profile.ValueType(type: "samples", unit: "count"), measure], measure, period)
    }

    private func marker(_ name: String) -> UInt32 {
        if let id = markerIDs[name] { return id }
        let id = UInt32(refs.count)
        refs.append(.marker(name))
        markerIDs[name] = id
        return id
    }

    func consume(_ batch: [PerfRecord]) {
        for record in batch {
            switch record {
            case .sample(let s):
                add(s)
            case .contextSwitch(let r):
                offCPUSwitch(r)
            case .lost(let n, _):
                statistics.lostRecords += n
            case .lostSamples(let n, _):
                statistics.lostSamples += n
            case .throttle(let on, _):
                if on { statistics.throttles += 1 }
            case .comm(let c):
                processes.apply(record)
                if c.isExec {
                    heap?.processExecuted(c.pid)
                    symbolizer.forgetProcess(c.pid)
                    unwinder.forgetProcess(c.pid)
                }
            case .exit(let t):
                if !offCPUEvents.isEmpty { intervals.threadExited(tid: t.tid) }
                processes.apply(record)
                if t.pid == t.tid { unwinder.forgetProcess(t.pid); startedProcesses.remove(t.pid) }
            case .fork(let t):
                processes.apply(record)
                if t.pid == t.tid { startedProcesses.insert(t.pid) }
            default:
                processes.apply(record)
            }
        }
    }

    /// Names of threads that existed before recording and were never renamed (no COMM record),
    /// read once each from /proc when ``namesThreadsFromProc`` is on (the in-process profiler).
    var namesThreadsFromProc = false
    private var procThreadNames: [Int32: String] = [:]

    private func threadName(_ process: ProcessState, tid: Int32) -> String {
        if let name = process.threads[tid] { return name }
        guard namesThreadsFromProc else { return process.name }
        if let known = procThreadNames[tid] { return known }
        let name = readTextFile("/proc/\(process.pid)/task/\(tid)/comm").map { String($0.prefix { $0 != "\n" }) } ?? process.name
        procThreadNames[tid] = name
        return name
    }

    /// The thread index last found per tid, valid while its process's generation is unchanged
    /// (names change only through records that bump it): the per-sample path then hashes one
    /// integer instead of two names.
    private var threadCache: [Int32: (pid: Int32, generation: Int, index: Int)] = [:]

    private func threadIndex(_ process: ProcessState, tid: Int32) -> Int {
        if let hit = threadCache[tid], hit.pid == process.pid, hit.generation == process.generation { return hit.index }
        let key = ThreadKey(pid: process.pid, tid: tid, name: threadName(process, tid: tid), processName: process.name)
        let id: Int
        if let known = threadIDs[key] {
            id = known
        } else {
            id = threadList.count
            threadList.append(key)
            threadIDs[key] = id
        }
        threadCache[tid] = (process.pid, process.generation, id)
        return id
    }

    private func add(_ sample: SampleRecord) {
        if excludedThreads.contains(sample.tid) { return }
        if !ignoredEvents.isEmpty && ignoredEvents.contains(sample.eventID) { return }
        // Heap probes: the size and pointer of a sampled allocation, or a free, a return, an
        // unsampled entry, none of which needs a stack.
        var heapSize: UInt64 = 0, heapPointer: UInt64 = 0, heapTracked = true
        if let heap {
            guard let role = heap.roles[sample.eventID] else { return }
            heap.probeRecords += 1
            let di = Self.register(5, of: sample) ?? 0, si = Self.register(4, of: sample) ?? 0
            switch role {
            case .sampled:
                (heapPointer, heapSize) = (di, si)
                heapTracked = (Self.register(3, of: sample) ?? 0) == 0  // DX: `untracked`
            case .freed:
                if di != 0 { heap.freed(pid: sample.pid, address: di, time: sample.time) }
                return
            case .returned:
                // The return probe's IP is the call's return address.
                if calledByAllocator(sample.ip, sample: sample, heap: heap) { return }
                heap.returned(pid: sample.pid, tid: sample.tid, sp: Self.register(7, of: sample) ?? 0,
                              address: Self.register(0, of: sample) ?? 0, time: sample.time)
                return
            case .entry(let argument):
                // The 8 bytes copied at the entry's SP: the return address.
                let returnAddress = sample.userStack.count >= 8 ? sample.userStack.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } : 0
                if calledByAllocator(returnAddress, sample: sample, heap: heap) { return }
                switch argument {
                case .first: heapSize = di
                case .second: heapSize = si
                case .product: heapSize = di.multipliedReportingOverflow(by: si).overflow ? 0 : di &* si
                case .realloc:
                    heapSize = si
                    if di != 0 { heap.freed(pid: sample.pid, address: di, time: sample.time) }
                }
                guard heap.draw(pid: sample.pid, size: heapSize) else {
                    heap.enter(tid: sample.tid, sp: Self.register(7, of: sample) ?? 0, size: heapSize, key: nil)
                    return
                }
            }
        }
        let process = processes.process(sample.pid, tid: sample.tid)
        var unwound: UnwoundStack
        switch callGraph {
        case .dwarf where heap != nil && sample.callchain.contains(Callchain.contextUser):
            // An attached heap profile's entry probe: the kernel's frame-pointer walk (see
            // EventSpec.walksUserFramePointers), whose first return address is missed when the
            // probed function's first instruction is not `push %rbp` or `endbr64`
            // (is_uprobe_at_func_entry, arch/x86/events/core.c): it is the word at SP.
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
            if sample.userStack.count >= 8, !unwound.frames.isEmpty {
                let returnAddress = sample.userStack.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                if unwound.frames.count < 2 || unwound.frames[1].address.rawValue != returnAddress {
                    unwound.frames.insert(StackFrame(address: ProcessAddress(returnAddress), isReturnAddress: true, isKernel: false), at: 1)
                }
            }
            unwinder.checkFramePointerStack(&unwound, process: process)
        case .dwarf:
            // Kernel frames (leaf-most) from the callchain, then the user frames unwound with libdw.
            unwound = Callchain.frames(of: sample, userFrames: false, maxStack: maxStack)
            if !sample.userRegisters.isEmpty || sample.cpuMode == .user {
                let user = unwinder.unwindUser(sample, process: process)
                unwound.frames.append(contentsOf: user.frames)
                unwound.truncated = unwound.truncated || user.truncated
            }
        case .framePointer:
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
            unwinder.checkFramePointerStack(&unwound, process: process)
        default:
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
        }
        if heap != nil { Self.trimHeapProbe(&unwound, process: process) }
        scratch.removeAll(keepingCapacity: true)
        if unwound.truncated {
            scratch.append(truncatedID)
            statistics.truncated += 1
        }
        for frame in unwound.frames.reversed() {
            let key = FrameKey(pid: frame.isKernel ? 0 : process.pid, generation: frame.isKernel ? 0 : process.generation,
                               address: frame.lookupAddress.rawValue, isKernel: frame.isKernel)
            if let id = codeRefIDs[key] {
                scratch.append(id)
                continue
            }
            // The mapping is captured now: the process may unmap or exec before resolve().
            let id = UInt32(refs.count)
            refs.append(.code(address: frame.lookupAddress,
                              mapping: frame.isKernel ? nil : process.mapping(containing: frame.address),
                              pid: process.pid, isKernel: frame.isKernel))
            codeRefIDs[key] = id
            scratch.append(id)
        }
        let thread = threadIndex(process, tid: sample.tid)
        if !offCPUEvents.isEmpty {
            lastRecordTime = max(lastRecordTime, sample.time)
            if offCPUEvents.contains(sample.eventID) {
                intervals.switchOutSample(tid: sample.tid, stack: StackKey(refs: scratch, thread: thread))
                return
            }
        }
        let period = Int64(clamping: sample.period)
        let stackKey = StackKey(refs: scratch, thread: thread)
        if let heap {
            if heap.roles[sample.eventID] == .sampled {
                heap.allocated(pid: sample.pid, address: heapPointer, size: heapSize, key: stackKey, time: sample.time, tracked: heapTracked)
            } else {
                heap.enter(tid: sample.tid, sp: Self.register(7, of: sample) ?? 0, size: heapSize, key: stackKey)
            }
            statistics.samples += 1
            return
        }
        if let old = stacks[stackKey] {
            stacks[stackKey] = (old.count + 1, old.period + period)
        } else {
            stacks[stackKey] = (1, period)
        }
        if keepSamples { log(sample, thread: thread) }
        statistics.samples += 1
    }

    private func log(_ sample: SampleRecord, thread: Int) {
        let id: Int32
        if let known = stackIDs[scratch] {
            id = known
        } else {
            id = Int32(stackList.count)
            stackList.append(scratch)
            stackIDs[scratch] = id
        }
        sampleLog.append(LoggedSample(thread: thread, time: sample.time, cpu: sample.cpu, stack: id))
    }

    /// Turns every frame reference not yet resolved into a profile location. Called after
    /// recording and, while a CPU is spare, during it; incremental (a later call does only what
    /// was added since).
    func resolve() {
        guard resolved.count < refs.count else { return }
        let first = resolved.count
        let pending = refs[first...]
        // User frames first, while kallsyms (the slowest single source) is read on another thread;
        // kernel frames after, when the table is there.
        if pending.contains(where: { if case .code(_, _, _, true) = $0 { return true } else { return false } }) {
            symbolizer.prefetchKernelSymbols()
        }
        var locations = [Int](repeating: -1, count: pending.count)
        var kernelRefs: [Int] = []
        for (i, ref) in zip(locations.indices, pending) {
            switch ref {
            case .marker(let name):
                locations[i] = building.marker(name)
            case .code(_, _, _, true):
                kernelRefs.append(i)
            case .code(let address, let mapping, let pid, false):
                if let mapping {
                    locations[i] = location(address, frames: symbolizer.symbolize(address, in: mapping, pid: pid), mapping: mapping)
                } else {
                    locations[i] = location(address, frames: [symbolizer.symbolizeUnmapped(address, pid: pid)], mapping: nil)
                }
            }
        }
        for i in kernelRefs {
            guard case .code(let address, _, _, _) = pending[first + i] else { continue }
            locations[i] = location(address, frames: [symbolizer.symbolizeKernel(address)], mapping: nil, kernel: true)
        }
        resolved.append(contentsOf: locations)
    }

    /// One location for one physical frame: its inline chain (innermost first) as lines.
    private func location(_ address: ProcessAddress, frames: [SymbolizedFrame], mapping: Mapping?, kernel: Bool = false) -> Int {
        var mappingIndex: Int?
        if kernel {
            if kernelMapping == nil {
                kernelMapping = building.mapping(Profile.Mapping(start: 0xffff_8000_0000_0000, limit: .max, path: "[kernel.kallsyms]"))
            }
            mappingIndex = kernelMapping
        } else if let mapping {
            let hasFiles = frames.contains { $0.sourceFile != nil }
            mappingIndex = building.mapping(Profile.Mapping(
                start: mapping.start.rawValue, limit: mapping.end.rawValue, fileOffset: mapping.fileOffset,
                path: mapping.path, buildID: mapping.buildID.map { String($0, radix: 16).leftPadded(2) }.joined(),
                hasFunctions: true, hasFilenames: hasFiles, hasLineNumbers: frames.contains { $0.line != nil },
                hasInlineFrames: symbolizer.options.inlineFrames))
        }
        let lines = frames.map { f in
            Profile.Line(function: building.function(Profile.Function(name: f.name, fullName: f.fullName, systemName: f.systemName ?? "",
                                                                        file: f.sourceFile ?? "")), line: f.line ?? 0)
        }
        let kind: Profile.LocationKind
        switch frames.last?.kind {
        case .kernel?: kind = .kernel
        case .jit?: kind = .jit
        default: kind = kernel ? .kernel : .user
        }
        return building.location(Profile.Location(address: address.rawValue, mapping: mappingIndex, lines: lines, kind: kind))
    }

    /// The profile's stack for a list of frame ids (root first, as aggregated): leaf-first locations.
    private func stackIndex(_ ids: [UInt32]) -> Int {
        building.stack(ids.reversed().map { resolved[Int($0)] })
    }

    // MARK: Off-CPU intervals (`--off-cpu`, issue 10)

    /// Turns on off-CPU accounting: samples of the events `ids` (the session's `context-switches`
    /// events) are switch-outs, not on-CPU samples, and SWITCH records time the intervals. The
    /// profile then has two more sample types, `wall`/`nanoseconds` and `off-cpu`/`nanoseconds`.
    func enableOffCPU(eventIDs ids: Set<UInt64>) {
        offCPUEvents = ids
    }

    private func offCPUSwitch(_ r: SwitchRecord) {
        guard !offCPUEvents.isEmpty, !excludedThreads.contains(r.tid) else { return }
        lastRecordTime = max(lastRecordTime, r.time)
        if let interval = intervals.apply(r) { addOffCPU(interval) }
    }

    private func addOffCPU(_ interval: OffCPUIntervals<StackKey>.Interval) {
        // A switch-out whose sample was lost still counts, on the thread's root.
        let stack = interval.stack ?? StackKey(refs: [], thread: threadIndex(processes.process(interval.pid, tid: interval.tid), tid: interval.tid))
        offCPUStacks[OffCPUKey(stack: stack, preempted: interval.preempted), default: 0] += Int64(clamping: interval.nanoseconds)
    }

    /// The leaf that says why a thread was off CPU: the kernel's preempt flag, else whether it
    /// waited in `io_schedule` (disk and other uninterruptible I/O) or slept (nanosleep, futex,
    /// poll, pipe and socket reads).
    private func offCPUMarker(_ key: OffCPUKey) -> UInt32 {
        if key.preempted { return marker(Self.offCPUPreempted) }
        for id in key.stack.refs.reversed() {
            guard case .code(let address, _, _, true) = refs[Int(id)] else { continue }
            if symbolizer.symbolizeKernel(address).name.hasPrefix("io_schedule") { return marker(Self.offCPUBlockedIO) }
        }
        return marker(Self.offCPUSleeping)
    }

    /// Leaf names of off-CPU stacks.
    static let offCPUSleeping = "[off-cpu: sleeping]"
    static let offCPUBlockedIO = "[off-cpu: blocked on I/O]"
    static let offCPUPreempted = "[off-cpu: preempted]"

    /// Closes the intervals still open at the last record, adds the `wall` and `off-cpu` sample
    /// types, and returns the off-CPU stacks (root-first frame ids ending in their marker) in a
    /// fixed order. Runs before threads and locations are made final.
    private func finishOffCPU() -> [(refs: [UInt32], thread: Int, ns: Int64)] {
        for interval in intervals.finish(at: lastRecordTime) { addOffCPU(interval) }
        _ = building.addSampleType(Profile.ValueType(type: "wall", unit: "nanoseconds"))
        _ = building.addSampleType(Profile.ValueType(type: "off-cpu", unit: "nanoseconds"))
        let ordered = offCPUStacks.map { (key: $0.key, value: $0.value) }.sorted { a, b in
            if a.key.stack.thread != b.key.stack.thread { return a.key.stack.thread < b.key.stack.thread }
            if a.key.stack.refs != b.key.stack.refs { return a.key.stack.refs.lexicographicallyPrecedes(b.key.stack.refs) }
            return !a.key.preempted && b.key.preempted
        }
        return ordered.map { (refs: $0.key.stack.refs + [offCPUMarker($0.key)], thread: $0.key.stack.thread, ns: $0.value) }
    }

    /// Adds off-CPU stacks: 0 samples, 0 cpu, their nanoseconds as wall and off-cpu time.
    private func addOffCPUStacks(_ entries: [(refs: [UInt32], thread: Int, ns: Int64)]) {
        let wall = building.addSampleType(Profile.ValueType(type: "wall", unit: "nanoseconds"))
        let off = building.addSampleType(Profile.ValueType(type: "off-cpu", unit: "nanoseconds"))
        for entry in entries {
            var values = [Int64](repeating: 0, count: building.sampleTypeCount)
            values[wall] = entry.ns
            values[off] = entry.ns
            building.add(stack: stackIndex(entry.refs), thread: entry.thread, values: values)
        }
    }

    /// The finished profile (symbolizes what is not yet resolved). `metadata` gets the final
    /// statistics.
    func profile(metadata: ProfileMetadata) -> Profile {
        let offCPU = !offCPUEvents.isEmpty
        let offCPUEntries = offCPU ? finishOffCPU() : []
        resolve()
        for key in threadList {
            _ = building.thread(Profile.Thread(pid: key.pid, tid: key.tid, name: key.name, processName: key.processName))
        }
        // Same input, same bytes: aggregate in a fixed order, not the dictionary's.
        let ordered = stacks.map { (key: $0.key, value: $0.value) }.sorted { a, b in
            a.key.thread != b.key.thread ? a.key.thread < b.key.thread : a.key.refs.lexicographicallyPrecedes(b.key.refs)
        }
        if let heap { addHeapSamples(heap) }
        for (key, value) in ordered {
            // With --off-cpu, on-CPU time (the clock's period, ns) is wall time too.
            let values = offCPU ? [value.count, value.period, value.period, 0] : [value.count, value.period]
            building.add(stack: stackIndex(key.refs), thread: key.thread, values: values)
        }
        if offCPU { addOffCPUStacks(offCPUEntries) }
        let stackMap = stackList.map { stackIndex($0) }
        for s in sampleLog {
            building.addTimed(Profile.TimedSample(thread: s.thread, time: s.time, cpu: s.cpu, stack: stackMap[Int(s.stack)]))
        }
        var m = metadata
        m.statistics = finish()
        var profile = building.build(metadata: m)
        if let main = profile.mainMappingIndex { profile.moveMappingToFront(main) }
        return profile
    }

    // MARK: Heap profiles (`--heap`, issue 19)

    /// Turns this builder into a heap-profile builder: samples of the events in `roles` are
    /// allocations, frees, or allocator entries and returns (see ``HeapRole``), every other
    /// sample is left out, and the profile's sample types are Go's four heap measures with period
    /// type `space`/`bytes` and the sampling rate as period.
    func enableHeap(rate: Int, roles: [UInt64: HeapRole]) {
        heap = HeapAccounting(rate: rate, roles: roles)
        building = ProfileBuilding(sampleTypes: HeapOptions.sampleTypes, defaultSampleType: 1,
                                   periodType: Profile.ValueType(type: "space", unit: "bytes"), period: Int64(max(rate, 1)))
    }

    /// Estimated in-use bytes over time (CLOCK_MONOTONIC ns), at most one point per 10 ms; empty
    /// unless heap profiling.
    var heapTimeline: [(time: UInt64, bytes: Double)] { heap?.timeline ?? [] }

    /// A user register of a DWARF-mode sample by perf register number (DI = 5, SI = 4).
    private static func register(_ number: Int, of sample: SampleRecord) -> UInt64? {
        guard let i = UserRegisters.sampled.firstIndex(of: number), i < sample.userRegisters.count else { return nil }
        return sample.userRegisters[i]
    }

    /// Whether a probed allocator call returning to `returnAddress` was made by the allocator
    /// itself (glibc's realloc(NULL, n) calls malloc): only the outermost call counts.
    private func calledByAllocator(_ returnAddress: UInt64, sample: SampleRecord, heap: HeapAccounting<StackKey>) -> Bool {
        guard heap.allocatorPath != nil,
              let m = processes.process(sample.pid, tid: sample.tid).mapping(containing: ProcessAddress(returnAddress)) else { return false }
        return heap.isInsideAllocator(path: m.path, fileOffset: returnAddress - m.start.rawValue + m.fileOffset)
    }

    /// See ``HeapAccounting/lossNotices(lost:)``; empty unless heap profiling.
    func heapLossNotices(lost: UInt64) -> [String] { heap?.lossNotices(lost: lost) ?? [] }

    /// Attached heap profiles: the allocator's file and its probed functions (file offsets).
    func setAllocator(path: String, functions: [Range<UInt64>]) {
        heap?.allocatorPath = path
        heap?.allocatorFunctions = functions
    }

    /// Drops the probe point (`sprof_heap_sampled`) and anything else of the preload library
    /// below the interposed function, so that stacks end in `malloc`, `calloc`, … as called.
    private static func trimHeapProbe(_ unwound: inout UnwoundStack, process: ProcessState) {
        func inLibrary(_ frame: StackFrame) -> Bool {
            !frame.isKernel && process.mapping(containing: frame.address)?.path.hasSuffix("/" + HeapOptions.libraryName) == true
        }
        var drop = 0
        while drop + 1 < unwound.frames.count, inLibrary(unwound.frames[drop]), inLibrary(unwound.frames[drop + 1]) { drop += 1 }
        if drop > 0 { unwound.frames.removeFirst(drop) }
    }

    /// Adds the heap samples, in the same fixed order as the CPU samples.
    private func addHeapSamples(_ heap: HeapAccounting<StackKey>) {
        let ordered = heap.values().map { (key: $0.key, value: $0.value) }.sorted { a, b in
            a.key.thread != b.key.thread ? a.key.thread < b.key.thread : a.key.refs.lexicographicallyPrecedes(b.key.refs)
        }
        for (key, values) in ordered { building.add(stack: stackIndex(key.refs), thread: key.thread, values: values) }
    }

    /// A notice when at least 1% of the DWARF stacks were cut short because the copied user stack
    /// ran out (deep recursion, big frames), naming a larger copy; nil otherwise. The kernel
    /// copies at most 65528 bytes per sample (`sample_stack_user`, perf_event_open(2)).
    var stackCopyAdvice: String? {
        guard case .dwarf(let size) = callGraph else { return nil }
        let cut = unwinder.statistics.stackExhausted
        guard cut > 0, cut * 100 >= statistics.samples else { return nil }
        let share = "\(cut) of \(statistics.samples) stacks were cut short because the \(size)-byte stack copy ran out"
        let limit: UInt32 = 65528
        guard size < limit else { return share + " (the kernel copies at most \(limit) bytes)" }
        return share + "; copy more with --call-graph dwarf,\(min(limit, max(32768, size * 4)))"
    }

    /// Notices about DWARF stacks cut short for reasons other than the copy's size: one per file
    /// whose unwind information elfutils cannot read (a zstd-compressed `.debug_frame`).
    var unwindNotices: [String] {
        guard case .dwarf = callGraph else { return [] }
        var notices: [String] = []
        let abi32 = unwinder.statistics.abi32
        if abi32 > 0 {
            notices.append("\(abi32) sample\(abi32 == 1 ? "" : "s") of 32-bit (i386) code: sprof unwinds x86-64 stacks only, "
                + "so their stacks are the sampled function alone, marked [truncated]")
        }
        return notices + unwinder.unreadableUnwindInfo.map { entry in
            "\(entry.path): its unwind information (.debug_frame) is zstd-compressed, which elfutils \(DwarfUnwinder.elfutilsVersion) cannot read: "
                + "\(entry.stacks) stack\(entry.stacks == 1 ? "" : "s") through it end there, marked [truncated]; "
                + "objcopy --decompress-debug-sections makes it readable"
        }
    }

    /// Final statistics, including the process and thread counts.
    func finish() -> ProfileStatistics {
        var s = statistics
        s.processes = processes.processCount
        s.threads = processes.threadCount
        s.stacksReadPastCopy = unwinder.statistics.readPastCopy
        s.debuginfodFiles = symbolizer.debuginfodFiles
        return s
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
