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
    struct LoggedSample {
        var thread: Int
        var time: UInt64
        var cpu: UInt32
        var stack: Int32
    }
    var sampleLog: [LoggedSample] = []
    /// Processes created under the recording (fork records) with no exit record yet: those still
    /// running when the command exits (a daemon) are reported rather than silently unprofiled.
    private(set) var startedProcesses: Set<Int32> = []
    /// Distinct stacks of the kept samples, root first, as frame-reference ids.
    var stackList: [[UInt32]] = []
    var stackIDs: [[UInt32]: Int32] = [:]

    /// What a frame id stands for until ``resolve()`` turns it into a location.
    enum FrameRef {
        case marker(String)
        case code(address: ProcessAddress, mapping: Mapping?, pid: Int32, isKernel: Bool)
    }
    struct FrameKey: Hashable {
        var pid: Int32
        var generation: Int
        var address: UInt64
        var isKernel: Bool
    }
    var refs: [FrameRef] = []
    var codeRefIDs: [FrameKey: UInt32] = [:]
    var markerIDs: [String: UInt32] = [:]
    /// Profile location index per frame id; filled by resolve().
    var resolved: [Int] = []

    /// A thread as it was named when sampled: the same tid under another name (after exec or a
    /// rename) is another thread of the profile, as perf script shows it.
    struct ThreadKey: Hashable {
        var pid: Int32
        var tid: Int32
        var name: String
        var processName: String
    }
    var threadList: [ThreadKey] = []
    var threadIDs: [ThreadKey: Int] = [:]
    struct StackKey: Hashable {
        var refs: [UInt32]
        var thread: Int
    }
    /// One value per sample type per (stack, thread), laid out by ``columns``.
    var stacks: [StackKey: [Int64]] = [:]
    /// Where each role's values go (``EventInterpretation.swift``).
    var columns = ValueColumns()
    /// The sampled event, whose measure the on-CPU role reports.
    let event: EventSpec
    /// The role of each event id other than the sampled event's (``RecordingSession/eventRoles``).
    var eventRoles: [UInt64: EventRole] = [:]
    var scratch: [UInt32] = []
    let truncatedID: UInt32
    var building: ProfileBuilding
    var kernelMapping: Int?

    // Off-CPU state (`--off-cpu`); see "Off-CPU intervals" below.
    var intervals = OffCPUIntervals<StackKey>()
    struct OffCPUKey: Hashable {
        var stack: StackKey
        var preempted: Bool
    }
    /// Off-CPU nanoseconds per (stack at the switch-out, thread, preempted).
    var offCPUStacks: [OffCPUKey: Int64] = [:]
    var lastRecordTime: UInt64 = 0

    // Heap state (`--heap`); see "Heap profiles" below.
    var heap: HeapAccounting<StackKey>?

    init(symbolizer: Symbolizer, callGraph: SamplingOptions.CallGraph, maxStack: Int, event: EventSpec = .cpuClock,
         rate: SamplingOptions.Rate = .frequency(999)) {
        self.symbolizer = symbolizer
        self.callGraph = callGraph
        self.maxStack = maxStack
        self.event = event
        let (types, periodType, period) = Self.sampleTypes(event: event, rate: rate)
        building = ProfileBuilding(sampleTypes: types, defaultSampleType: 0, periodType: periodType, period: period)
        truncatedID = 0
        _ = marker("[truncated]")
    }

    /// The on-CPU role's sample types (``EventRole/sampleTypes(event:)``), the period type (the
    /// event's measure) and the period: nanoseconds per sample for a clock at a frequency.
    static func sampleTypes(event: EventSpec, rate: SamplingOptions.Rate) -> ([Profile.ValueType], Profile.ValueType, Int64) {
        let types = EventRole.onCPU.sampleTypes(event: event)
        let measure = types[1]
        let isClock = measure.unit == "nanoseconds"
        let period: Int64
        switch rate {
        case .period(let n): period = Int64(clamping: n)
        case .frequency(let hz): period = isClock && hz > 0 ? 1_000_000_000 / Int64(hz) : 0
        }
        return (types, measure, period)
    }

    /// Takes the samples of `session`'s events by their roles (``SamplingOptions/roleEvents``):
    /// each role's sample types are added in table order, and its samples become their values.
    func interpret(_ session: RecordingSession) {
        interpret(rows: session.options.roleEvents.map(\.role), ids: session.eventRoles)
    }

    /// ``interpret(_:)`` for a role table `rows` and the role of each event id but the sampled one's.
    func interpret(rows: [EventRole], ids: [UInt64: EventRole]) {
        eventRoles = ids
        guard heap == nil else { return }  // a heap profile has its own sample types
        for role in rows { columns.add(role, event: event, to: &building) }
    }

    func marker(_ name: String) -> UInt32 {
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
                if columns.offCPU != nil { intervals.threadExited(tid: t.tid) }
                processes.apply(record)
                if t.pid == t.tid { unwinder.forgetProcess(t.pid); startedProcesses.remove(t.pid) }
            case .fork(let t):
                processes.apply(record)
                heap?.forked(t.pid)
                if t.pid == t.tid { startedProcesses.insert(t.pid) }
            default:
                processes.apply(record)
            }
        }
    }

    /// Names of threads that existed before recording and were never renamed (no COMM record),
    /// read once each from /proc when ``namesThreadsFromProc`` is on (the in-process profiler).
    var namesThreadsFromProc = false
    var procThreadNames: [Int32: String] = [:]

    /// The thread index last found per tid, valid while its process's generation is unchanged
    /// (names change only through records that bump it): the per-sample path then hashes one
    /// integer instead of two names.
    var threadCache: [Int32: (pid: Int32, generation: Int, index: Int)] = [:]

    func add(_ sample: SampleRecord) {
        if excludedThreads.contains(sample.tid) { return }
        let role = eventRoles.isEmpty ? EventRole.onCPU : eventRoles[sample.eventID] ?? .onCPU
        // The CPU profile's builder leaves the heap probes to the heap profile's.
        if heap == nil, case .heapProbe = role { return }
        // Heap probes: the size and pointer of a sampled allocation, or a free, a return, an
        // unsampled entry, none of which needs a stack.
        var heapSize: UInt64 = 0, heapPointer: UInt64 = 0, heapTracked = true, heapRate: Double?
        if let heap {
            guard let role = heap.roles[sample.eventID], heap.follows(sample.pid) else { return }
            heap.probeRecords += 1
            let di = Self.register(5, of: sample) ?? 0, si = Self.register(4, of: sample) ?? 0
            switch role {
            case .sampled:
                (heapPointer, heapSize) = (di, si)
                // DX: the library's rate (its process's SPROF_HEAP_RATE, which a child may have
                // changed or a nested sprof set) above two bits, `untracked` and "could not open
                // the flow-control page"; 0 from a library that did not pass it.
                let dx = Self.register(3, of: sample) ?? 0
                heapTracked = dx & 1 == 0
                if dx & 2 != 0 { heap.unpaced += 1 }
                if dx >> 2 > 0 { heapRate = Double(dx >> 2) }
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
        var unwound = unwind(sample, process: process)
        let allocatorOnly = heap != nil && Self.trimHeapProbe(&unwound, process: process)
        scratch.removeAll(keepingCapacity: true)
        if unwound.truncated {
            scratch.append(truncatedID)
            statistics.truncated += 1
        }
        if allocatorOnly { scratch.append(marker(Self.allocatorMarker)) }
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
        if columns.offCPU != nil {
            lastRecordTime = max(lastRecordTime, sample.time)
            if role == .offCPU {
                intervals.switchOutSample(tid: sample.tid, stack: StackKey(refs: scratch, thread: thread))
                return
            }
        }
        let period = Int64(clamping: sample.period)
        let stackKey = StackKey(refs: scratch, thread: thread)
        if let heap {
            if heap.roles[sample.eventID] == .sampled {
                heap.allocated(pid: sample.pid, address: heapPointer, size: heapSize, key: stackKey, time: sample.time, tracked: heapTracked, rate: heapRate)
            } else {
                heap.enter(tid: sample.tid, sp: Self.register(7, of: sample) ?? 0, size: heapSize, key: stackKey)
            }
            statistics.samples += 1
            return
        }
        columns.addOnCPU(period: period, to: &stacks[stackKey, default: columns.zeros])
        if keepSamples { log(sample, thread: thread) }
        statistics.samples += 1
    }

    func log(_ sample: SampleRecord, thread: Int) {
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

    /// The profile's stack for a list of frame ids (root first, as aggregated): leaf-first locations.
    func stackIndex(_ ids: [UInt32]) -> Int {
        building.stack(ids.reversed().map { resolved[Int($0)] })
    }

    /// The finished profile (symbolizes what is not yet resolved). `metadata` gets the final
    /// statistics.
    func profile(metadata: ProfileMetadata) -> Profile {
        let offCPU = columns.offCPU != nil
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
        for (key, values) in ordered {
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
