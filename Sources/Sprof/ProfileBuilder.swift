import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofOutput

/// Counts that describe a profile's quality: what was taken, what was lost, what was cut.
public struct ProfileStatistics: Sendable, Equatable {
    /// Samples turned into stacks.
    public var samples = 0
    /// Records the kernel dropped because a ring buffer was full (PERF_RECORD_LOST).
    public var lostRecords: UInt64 = 0
    /// Samples the kernel dropped before buffering (PERF_RECORD_LOST_SAMPLES).
    public var lostSamples: UInt64 = 0
    /// Times the kernel throttled the sampling rate.
    public var throttles = 0
    /// Stacks known to be incomplete (marked `[truncated]`).
    public var truncated = 0
    /// Processes seen.
    public var processes = 0
    /// Threads seen.
    public var threads = 0

    /// Everything lost, as one number for summaries.
    public var lost: UInt64 { lostRecords + lostSamples }

    /// Creates empty statistics.
    public init() {}
}

/// The per-sample pipeline: process model → unwinding → aggregation → (at the end) symbolization.
///
/// While the target runs, stacks are aggregated as ids of *frame references* (an address with the
/// mapping it was in when sampled, or a fixed name); names are worked out once per distinct frame
/// in ``resolve()``: during the run only while a CPU is spare, else after recording.
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
    /// Whether to keep one entry per sample (the library's `Profile.samples`); off for `sprof run`.
    var keepSamples = false
    /// One sample as kept when ``keepSamples`` is on: who, when, and which stack of ``resolvedStackList()``.
    struct LoggedSample {
        var pid: Int32
        var tid: Int32
        var time: UInt64
        var cpu: UInt32
        var stack: Int32
    }
    /// The kept samples, in timestamp order.
    private(set) var sampleLog: [LoggedSample] = []
    /// Processes created under the recording (fork records) with no exit record yet: those still
    /// running when the command exits (a daemon) are reported rather than silently unprofiled.
    private(set) var startedProcesses: Set<Int32> = []
    /// Distinct stacks of the kept samples, root first, as frame-reference ids.
    private var stackList: [[UInt32]] = []
    private var stackIDs: [[UInt32]: Int32] = [:]

    /// What a frame id stands for until ``resolve()`` names it.
    private enum FrameRef {
        case name(String)
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
    private var nameRefIDs: [String: UInt32] = [:]
    /// Names per frame id, root-most first (an inlined chain expands to several); filled by resolve().
    private var resolved: [[String]] = []
    private var stacks: [[UInt32]: UInt64] = [:]
    private var scratch: [UInt32] = []
    private let truncatedID: UInt32

    init(symbolizer: Symbolizer, callGraph: SamplingOptions.CallGraph, maxStack: Int) {
        self.symbolizer = symbolizer
        self.callGraph = callGraph
        self.maxStack = maxStack
        truncatedID = 0
        _ = nameRef("[truncated]")
    }

    private func nameRef(_ name: String) -> UInt32 {
        if let id = nameRefIDs[name] { return id }
        let id = UInt32(refs.count)
        refs.append(.name(name))
        nameRefIDs[name] = id
        return id
    }

    func consume(_ batch: [PerfRecord]) {
        for record in batch {
            switch record {
            case .sample(let s):
                add(s)
            case .lost(let n, _):
                statistics.lostRecords += n
            case .lostSamples(let n, _):
                statistics.lostSamples += n
            case .throttle(let on, _):
                if on { statistics.throttles += 1 }
            case .comm(let c):
                processes.apply(record)
                if c.isExec {
                    symbolizer.forgetProcess(c.pid)
                    unwinder.forgetProcess(c.pid)
                }
            case .exit(let t):
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

    private func add(_ sample: SampleRecord) {
        if excludedThreads.contains(sample.tid) { return }
        let process = processes.process(sample.pid, tid: sample.tid)
        var unwound: UnwoundStack
        switch callGraph {
        case .dwarf:
            // Kernel frames (leaf-most) from the callchain, then the user frames unwound with libdw.
            unwound = Callchain.frames(of: sample, userFrames: false, maxStack: maxStack)
            if !sample.userRegisters.isEmpty || sample.cpuMode == .user {
                let user = unwinder.unwindUser(sample, process: process)
                unwound.frames.append(contentsOf: user.frames)
                unwound.truncated = unwound.truncated || user.truncated
            }
        default:
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(nameRef(FoldedStacks.processFrame(name: process.name)))
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
        stacks[scratch, default: 0] += 1
        if keepSamples { log(sample) }
        statistics.samples += 1
    }

    private func log(_ sample: SampleRecord) {
        let id: Int32
        if let known = stackIDs[scratch] {
            id = known
        } else {
            id = Int32(stackList.count)
            stackList.append(scratch)
            stackIDs[scratch] = id
        }
        sampleLog.append(LoggedSample(pid: sample.pid, tid: sample.tid, time: sample.time, cpu: sample.cpu, stack: id))
    }

    /// Names every frame reference not yet named. Called after recording; idempotent and
    /// incremental (a later call names only what was added since).
    func resolve() {
        guard resolved.count < refs.count else { return }
        let first = resolved.count
        let pending = refs[first...]
        var names = [[String]?](repeating: nil, count: pending.count)
        // User frames first, while kallsyms (the slowest single source) is read on another thread;
        // kernel frames after, when the table is there.
        if pending.contains(where: { if case .code(_, _, _, true) = $0 { return true } else { return false } }) {
            symbolizer.prefetchKernelSymbols()
        }
        var kernelRefs: [Int] = []
        for (i, ref) in zip(names.indices, pending) {
            switch ref {
            case .name(let name):
                names[i] = [name]
            case .code(_, _, _, true):
                kernelRefs.append(i)
            case .code(let address, let mapping, let pid, false):
                let frames = mapping.map { symbolizer.symbolize(address, in: $0, pid: pid) }
                    ?? [symbolizer.symbolizeUnmapped(address, pid: pid)]
                names[i] = Self.display(frames)
            }
        }
        for i in kernelRefs {
            guard case .code(let address, _, _, _) = pending[first + i] else { continue }
            names[i] = Self.display([symbolizer.symbolizeKernel(address)])
        }
        resolved.reserveCapacity(refs.count)
        resolved.append(contentsOf: names.map { $0 ?? [] })
    }

    /// Root-first names with the folded format's kind suffixes.
    private static func display(_ frames: [SymbolizedFrame]) -> [String] {
        frames.reversed().map { f in
            switch f.kind {
            case .kernel: return f.name + "_[k]"
            case .jit: return f.name + "_[j]"
            case .inlined: return f.name + "_[i]"
            case .user: return f.name
            }
        }
    }

    private func names(of ids: [UInt32]) -> [String] {
        var out: [String] = []
        out.reserveCapacity(ids.count + 4)
        for id in ids { out.append(contentsOf: resolved[Int(id)]) }
        return out
    }

    /// The aggregated stacks as folded data (symbolizes what is not yet named).
    func folded() -> FoldedStacks {
        resolve()
        var out = FoldedStacks()
        for (ids, count) in stacks {
            out.add(names(of: ids), count: count)
        }
        return out
    }

    /// The distinct stacks of the kept samples, root first, as names (symbolizes what is not yet named).
    func resolvedStackList() -> [[String]] {
        resolve()
        return stackList.map { names(of: $0) }
    }

    /// Final statistics, including the process and thread counts.
    func finish() -> ProfileStatistics {
        var s = statistics
        s.processes = processes.processCount
        s.threads = processes.threadCount
        return s
    }
}
