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

/// The per-sample pipeline: process model → unwinding → symbolization → aggregation. Stacks are
/// aggregated as interned frame ids; strings are built once per unique stack at the end.
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
    /// One sample as kept when ``keepSamples`` is on: who, when, and which stack of ``stackList``.
    struct LoggedSample {
        var pid: Int32
        var tid: Int32
        var time: UInt64
        var cpu: UInt32
        var stack: Int32
    }
    /// The kept samples, in timestamp order.
    private(set) var sampleLog: [LoggedSample] = []
    /// Distinct stacks of the kept samples, root first, as ids into ``nameList``.
    private(set) var stackList: [[UInt32]] = []
    private var stackIDs: [[UInt32]: Int32] = [:]
    /// Interned frame names (ids as used by ``stackList``).
    var nameList: [String] { names }

    private var names: [String] = []
    private var nameIDs: [String: UInt32] = [:]
    private var stacks: [[UInt32]: UInt64] = [:]
    private struct FrameKey: Hashable {
        var pid: Int32
        var generation: Int
        var address: UInt64
        var isKernel: Bool
    }
    private var frameCache: [FrameKey: [UInt32]] = [:]
    private var scratch: [UInt32] = []
    private let truncatedID: UInt32

    init(symbolizer: Symbolizer, callGraph: SamplingOptions.CallGraph, maxStack: Int) {
        self.symbolizer = symbolizer
        self.callGraph = callGraph
        self.maxStack = maxStack
        truncatedID = 0
        _ = intern("[truncated]")
    }

    private func intern(_ name: String) -> UInt32 {
        if let id = nameIDs[name] { return id }
        let id = UInt32(names.count)
        names.append(name)
        nameIDs[name] = id
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
                if t.pid == t.tid { unwinder.forgetProcess(t.pid) }
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
        scratch.append(intern(FoldedStacks.processFrame(name: process.name)))
        if unwound.truncated {
            scratch.append(truncatedID)
            statistics.truncated += 1
        }
        for frame in unwound.frames.reversed() {
            let key = FrameKey(pid: frame.isKernel ? 0 : process.pid, generation: frame.isKernel ? 0 : process.generation,
                               address: frame.lookupAddress.rawValue, isKernel: frame.isKernel)
            if let ids = frameCache[key] {
                scratch.append(contentsOf: ids)
                continue
            }
            let ids = symbolize(frame, in: process).map { intern($0) }
            frameCache[key] = ids
            scratch.append(contentsOf: ids)
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

    /// Names for one frame, root-most first (an inlined chain's caller before its callees).
    private func symbolize(_ frame: StackFrame, in process: ProcessState) -> [String] {
        let address = frame.lookupAddress
        let frames: [SymbolizedFrame]
        if frame.isKernel {
            frames = [symbolizer.symbolizeKernel(address)]
        } else if let mapping = process.mapping(containing: frame.address) {
            frames = symbolizer.symbolize(address, in: mapping, pid: process.pid)
        } else {
            frames = [symbolizer.symbolizeUnmapped(address, pid: process.pid)]
        }
        return frames.reversed().map { f in
            switch f.kind {
            case .kernel: return f.name + "_[k]"
            case .jit: return f.name + "_[j]"
            case .inlined: return f.name + "_[i]"
            case .user: return f.name
            }
        }
    }

    /// The aggregated stacks as folded data.
    func folded() -> FoldedStacks {
        var out = FoldedStacks()
        for (ids, count) in stacks {
            out.add(ids.map { names[Int($0)] }, count: count)
        }
        return out
    }

    /// Final statistics, including the process and thread counts.
    func finish() -> ProfileStatistics {
        var s = statistics
        s.processes = processes.processCount
        s.threads = processes.threadCount
        return s
    }
}
