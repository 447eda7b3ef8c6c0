import Foundation
import SprofRecording
import SprofOutput

/// What ``Profiler/stop()`` returns: a plain value (Sendable, no open resources) that can be kept,
/// passed between tasks, asserted on in tests or written out as folded text and SVG.
public struct Profile: Sendable {
    /// One sample: which thread, when, and which of ``Profile/stacks`` it hit. Stacks are shared
    /// between samples so that a long profile stays small.
    public struct Sample: Sendable, Hashable {
        /// The kernel thread id (compare with ``Profiler/currentThreadID``).
        public var threadID: Int32
        /// The process id (this process, or a child it forked while profiling).
        public var processID: Int32
        /// CLOCK_MONOTONIC nanoseconds, comparable with `clock_gettime(CLOCK_MONOTONIC)`.
        public var time: UInt64
        /// The CPU it was taken on.
        public var cpu: UInt32
        /// Index into ``Profile/stacks``.
        public var stack: Int
    }

    /// One function's share of the samples, for "where does the time go" tables and assertions.
    public struct FunctionCost: Sendable, Hashable {
        /// The symbolized name (demangled, with `_[k]`, `_[i]`, `_[j]` marking kernel, inlined and
        /// JIT frames as in the folded output).
        public var name: String
        /// Samples in which it was the innermost frame: time spent in its own code.
        public var selfSamples: UInt64
        /// Samples in which it was anywhere on the stack (counted once per sample even when
        /// recursive): time spent in it and everything it called.
        public var totalSamples: UInt64
        /// ``selfSamples`` as a percentage of all samples.
        public var selfPercent: Double
        /// ``totalSamples`` as a percentage of all samples.
        public var totalPercent: Double
    }

    /// How ``topFunctions(_:by:)`` ranks.
    public enum Ranking: Sendable {
        /// By samples in the function's own code (hot spots).
        case selfSamples
        /// By samples anywhere below the function (expensive call trees).
        case totalSamples
    }

    /// The aggregated stacks (root first, the root being the process name): what the folded text
    /// and the flame graph are made from.
    public let folded: FoldedStacks
    /// Samples taken, lost, throttled and truncated: how much to trust the profile.
    public let statistics: ProfileStatistics
    /// Every sample in time order (empty when ``Profiler/Options/keepSamples`` was off).
    public let samples: [Sample]
    /// The distinct stacks of ``samples``, root first, each starting with the process name.
    public let stacks: [[String]]
    /// Thread names by thread id, as the kernel knew them (see ``Profiler/nameCurrentThread(_:)``);
    /// threads that exited before ``Profiler/stop()`` without being renamed are missing.
    public let threadNames: [Int32: String]
    /// The event actually sampled (after any fallback to cpu-clock).
    public let event: EventSpec
    /// The rate actually used (after clamping to the kernel's maximum).
    public let rate: SamplingOptions.Rate
    /// Whether kernel frames were left out (perf_event_paranoid forbids them to this user).
    public let kernelExcluded: Bool
    /// Seconds from start to stop.
    public let duration: Double
    /// What the profiler changed from the options (fallbacks, clamping, kernel exclusion), one line each.
    public let notices: [String]

    /// Assembles a profile; the profiler calls this, tests may build synthetic ones.
    public init(folded: FoldedStacks, statistics: ProfileStatistics, samples: [Sample] = [], stacks: [[String]] = [],
                threadNames: [Int32: String] = [:], event: EventSpec = .cpuClock, rate: SamplingOptions.Rate = .frequency(999),
                kernelExcluded: Bool = false, duration: Double = 0, notices: [String] = []) {
        self.folded = folded
        self.statistics = statistics
        self.samples = samples
        self.stacks = stacks
        self.threadNames = threadNames
        self.event = event
        self.rate = rate
        self.kernelExcluded = kernelExcluded
        self.duration = duration
        self.notices = notices
    }

    /// The frames of one sample, root first.
    public func frames(of sample: Sample) -> [String] { stacks[sample.stack] }

    /// The folded text (`a;b;c COUNT` lines, sorted): the input of flamegraph.pl, inferno,
    /// speedscope and `sprof flamegraph`.
    public func foldedText() -> String { folded.serialized() }

    /// The flame graph as a self-contained interactive SVG.
    public func svg(title: String? = nil) -> String {
        svg(options: FlameGraphOptions(title: title))
    }

    /// The flame graph with every drawing option (palette, width, icicle layout…).
    public func svg(options: FlameGraphOptions) -> String {
        FlameGraph.render(folded, options: options)
    }

    /// The `n` most expensive functions. The process-name root frame and `[truncated]` markers
    /// are not functions and are left out.
    public func topFunctions(_ n: Int = 20, by ranking: Ranking = .selfSamples) -> [FunctionCost] {
        var selfCounts: [String: UInt64] = [:]
        var totalCounts: [String: UInt64] = [:]
        var all: UInt64 = 0
        for (frames, count) in folded.stacks() {
            all += count
            let functions = frames.dropFirst().filter { $0 != "[truncated]" }
            guard let leaf = functions.last else { continue }
            selfCounts[leaf, default: 0] += count
            for name in Set(functions) { totalCounts[name, default: 0] += count }
        }
        guard all > 0 else { return [] }
        let costs = totalCounts.map { name, total in
            let own = selfCounts[name] ?? 0
            return FunctionCost(name: name, selfSamples: own, totalSamples: total,
                                selfPercent: 100 * Double(own) / Double(all), totalPercent: 100 * Double(total) / Double(all))
        }
        let sorted = costs.sorted { a, b in
            let (ka, kb) = ranking == .selfSamples ? (a.selfSamples, b.selfSamples) : (a.totalSamples, b.totalSamples)
            if ka != kb { return ka > kb }
            let (ta, tb) = ranking == .selfSamples ? (a.totalSamples, b.totalSamples) : (a.selfSamples, b.selfSamples)
            if ta != tb { return ta > tb }
            return a.name < b.name
        }
        return Array(sorted.prefix(max(0, n)))
    }

    /// ``topFunctions(_:by:)`` as an aligned text table (self%, self, total%, total, name), for logs
    /// and terminals.
    public func topTable(_ n: Int = 20, by ranking: Ranking = .selfSamples) -> String {
        func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
        func percent(_ p: Double) -> String { String(format: "%.1f%%", p) }
        var lines = ["\(pad("self%", 7)) \(pad("self", 8)) \(pad("total%", 7)) \(pad("total", 8))  function"]
        for f in topFunctions(n, by: ranking) {
            lines.append("\(pad(percent(f.selfPercent), 7)) \(pad(String(f.selfSamples), 8)) \(pad(percent(f.totalPercent), 7)) \(pad(String(f.totalSamples), 8))  \(f.name)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Total samples whose stack contains a frame for which `matches` is true: a quick check in
    /// tests ("did `parse` show up?").
    public func sampleCount(where matches: (String) -> Bool) -> UInt64 {
        folded.stacks().reduce(0) { sum, stack in stack.frames.dropFirst().contains(where: matches) ? sum + stack.count : sum }
    }

    /// Writes the folded text and/or the SVG, creating or replacing the files atomically: both
    /// paths are checked before anything is written, and each file appears complete or not at all
    /// (an earlier file at the path survives a failure).
    ///
    /// - Throws: `OutputFileError` naming the path and errno (EISDIR, EACCES, ENOENT, ENOSPC, …).
    public func write(folded foldedPath: String? = nil, svg svgPath: String? = nil, title: String? = nil) throws {
        let foldedFile = try foldedPath.map { (p) throws(OutputFileError) in try OutputFile(path: p) }
        let svgFile = try svgPath.map { (p) throws(OutputFileError) in try OutputFile(path: p) }
        try foldedFile?.commit(folded.serializedBytes())
        try svgFile?.commit(FlameGraph.renderBytes(folded, options: FlameGraphOptions(title: title)))
    }
}
