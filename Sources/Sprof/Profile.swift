import Foundation
import SprofProfile
import SprofOutput

/// The library's conveniences on the one profile value (``Profile`` lives in `SprofProfile`;
/// `sprof run`, `sprof run -p` and ``Profiler`` all produce it).
extension Profile {
    /// One function's share of the samples, for "where does the time go" tables and assertions.
    public struct FunctionCost: Sendable, Hashable {
        /// The function's display name (demangled; inlined functions are entries of their own).
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

    /// Samples taken, lost, throttled and truncated: how much to trust the profile.
    public var statistics: ProfileStatistics { metadata.statistics }
    /// Whether kernel frames were left out (perf_event_paranoid forbids them to this user).
    public var kernelExcluded: Bool { metadata.kernelExcluded }
    /// What the profiler changed from the options (fallbacks, clamping, kernel exclusion), one line each.
    public var notices: [String] { metadata.notices }
    /// Seconds from start to stop.
    public var duration: Double { Double(metadata.duration) / 1e9 }

    /// Thread names by thread id, as the kernel knew them (see ``Profiler/nameCurrentThread(_:)``).
    /// A thread renamed while profiled keeps its last name here.
    public var threadNames: [Int32: String] {
        var names: [Int32: String] = [:]
        for t in threads { names[t.tid] = t.name }
        return names
    }

    /// The frames of one timed sample, root first, starting with the process name.
    /// - Parameter names: the function names (``functionNames(_:)``, made once for many samples);
    ///   nil makes this profile's short names for this call.
    public func frames(of sample: TimedSample, names: FunctionNames? = nil) -> [String] {
        rootFrames(of: Sample(stack: sample.stack, thread: sample.thread, values: []), perThread: false)
            + frameNames(ofStack: sample.stack, names: names)
    }

    /// The frames of one aggregated sample, root first, starting with the process name.
    /// - Parameter names: as for a timed sample's frames.
    public func frames(of sample: Sample, names: FunctionNames? = nil) -> [String] {
        rootFrames(of: sample, perThread: false) + frameNames(ofStack: sample.stack, names: names)
    }

    /// The thread id of a timed sample.
    public func threadID(of sample: TimedSample) -> Int32 { threads[sample.thread].tid }

    /// The `n` most expensive functions by sample count (see ``Profile/top(by:valueIndex:names:granularity:)``,
    /// which `sprof report` prints and which agrees with `go tool pprof -top`).
    public func topFunctions(_ n: Int = 20, by ranking: Ranking = .selfSamples) -> [FunctionCost] {
        // Functions only: the `[truncated]` marker row that `sprof report` shows (as pprof does)
        // is a count of cut-short stacks, not a function to rank.
        let rows = top().filter { $0.name != "[truncated]" }.map {
            FunctionCost(name: $0.name, selfSamples: UInt64($0.selfValue), totalSamples: UInt64($0.totalValue),
                         selfPercent: $0.selfPercent, totalPercent: $0.totalPercent)
        }
        let sorted = ranking == .selfSamples ? rows : rows.sorted { a, b in
            if a.totalSamples != b.totalSamples { return a.totalSamples > b.totalSamples }
            if a.selfSamples != b.selfSamples { return a.selfSamples > b.selfSamples }
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

    /// Total samples whose stack contains a frame for which `matches` is true (frame names as in
    /// the folded output, with `_[k]`/`_[i]`/`_[j]` suffixes): a quick check in tests.
    public func sampleCount(where matches: (String) -> Bool) -> UInt64 {
        var hits: [Int: Bool] = [:]
        var sum: UInt64 = 0
        let names = functionNames()
        for s in samples {
            let hit: Bool
            if let known = hits[s.stack] { hit = known } else {
                hit = frameNames(ofStack: s.stack, names: names).contains(where: matches)
                hits[s.stack] = hit
            }
            if hit { sum += UInt64(max(0, s.values[0])) }
        }
        return sum
    }

    /// Writes the folded text, the SVG and/or the pprof file (gzip-compressed profile.proto, for
    /// `go tool pprof`, Pyroscope, Parca and `sprof report`), creating or replacing the files
    /// atomically: every path is checked before anything is written, and the files appear together
    /// once all are complete, or none does (the earlier files at the paths survive a failure).
    ///
    /// - Throws: `OutputFileError` naming the path and errno (EISDIR, EACCES, ENOENT, ENOSPC, …);
    ///   `FormatError` if the profile cannot be encoded as pprof.
    public func write(folded foldedPath: String? = nil, svg svgPath: String? = nil, pprof pprofPath: String? = nil,
                      title: String? = nil) throws {
        let foldedFile = try foldedPath.map { (p) throws(OutputFileError) in try OutputFile(path: p) }
        let svgFile = try svgPath.map { (p) throws(OutputFileError) in try OutputFile(path: p) }
        let pprofFile = try pprofPath.map { (p) throws(OutputFileError) in try OutputFile(path: p) }
        let pprof = try pprofFile.map { _ in try PprofFormat.encode(self) }
        try foldedFile?.write(folded.serializedBytes())
        var options = FlameGraphOptions(title: title, subtitle: metadata.summaryLine)
        options.details = metadata.provenanceLines
        try svgFile?.write(FlameGraph.renderBytes(folded, options: options))
        if let pprof { try pprofFile?.write(pprof) }
        // All or none: every file complete before any replaces what was at its path.
        try OutputFile.commitAll([foldedFile, svgFile, pprofFile].compactMap { $0 })
    }
}
