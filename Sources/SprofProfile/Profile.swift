/// One recorded profile: the value at the centre of sprof. Recording, unwinding and
/// symbolization produce it; every view (folded stacks, SVG flame graphs, pprof, speedscope,
/// `sprof report`, `sprof diff`, the web UI) reads only it.
///
/// The shape follows pprof's `Profile` (google/pprof `proto/profile.proto`): interned mappings,
/// functions and locations; a location is one physical frame (one address) whose `lines` hold its
/// inline chain, innermost first; a stack is a list of locations, leaf first; samples are aggregated
/// by (stack, thread) and carry one value per ``sampleTypes`` entry. Per-sample times, when kept, live
/// in ``timedSamples``; resident memory over time in ``memory``; provenance in ``metadata``.
///
/// Indices (`Location.mapping`, `Line.function`, `Sample.stack`, `Sample.thread`, stack entries) are
/// zero-based positions in the corresponding arrays; writers that need 1-based ids (pprof) add one.
public struct Profile: Sendable, Equatable {
    /// A measure carried by every sample: pprof's `ValueType`, e.g. `samples`/`count`,
    /// `cpu`/`nanoseconds`, `wall`/`nanoseconds`.
    public struct ValueType: Sendable, Hashable, CustomStringConvertible {
        /// What is measured (`samples`, `cpu`, `wall`, `off-cpu`, or an event name such as `page-faults`).
        public var type: String
        /// Its unit (`count`, `nanoseconds`, `bytes`).
        public var unit: String
        /// Creates a value type.
        public init(type: String, unit: String) {
            self.type = type
            self.unit = unit
        }
        /// `type/unit`, as `go tool pprof` names sample indices.
        public var description: String { "\(type)/\(unit)" }
    }

    /// A mapped file (or the kernel, or a JIT region): pprof's `Mapping`.
    public struct Mapping: Sendable, Hashable {
        /// First process address of the mapping.
        public var start: UInt64
        /// One past its last address.
        public var limit: UInt64
        /// Offset in the file of `start`, in bytes.
        public var fileOffset: UInt64
        /// The file's path, or a pseudo-name: `[kernel.kallsyms]`, `[vdso]`, `[jit]`, `//anon`.
        public var path: String
        /// The GNU build-id as lowercase hex (from MMAP2 records or the ELF note); empty when unknown.
        public var buildID: String
        /// Function names were resolved (tells pprof not to symbolize again).
        public var hasFunctions: Bool
        /// Source file names were resolved for some frames.
        public var hasFilenames: Bool
        /// Source line numbers were resolved for some frames.
        public var hasLineNumbers: Bool
        /// Inline chains were resolved.
        public var hasInlineFrames: Bool

        /// Creates a mapping.
        public init(start: UInt64 = 0, limit: UInt64 = 0, fileOffset: UInt64 = 0, path: String, buildID: String = "",
                    hasFunctions: Bool = true, hasFilenames: Bool = false, hasLineNumbers: Bool = false,
                    hasInlineFrames: Bool = false) {
            self.start = start
            self.limit = limit
            self.fileOffset = fileOffset
            self.path = path
            self.buildID = buildID
            self.hasFunctions = hasFunctions
            self.hasFilenames = hasFilenames
            self.hasLineNumbers = hasLineNumbers
            self.hasInlineFrames = hasInlineFrames
        }

        /// The last path component, as flame graphs and `--sort dso` show it.
        public var baseName: String {
            guard let slash = path.lastIndex(of: "/"), !path.hasPrefix("[") else { return path }
            return String(path[path.index(after: slash)...])
        }
    }

    /// A function: pprof's `Function`.
    public struct Function: Sendable, Hashable {
        /// The short name: demangled and, for Swift, simplified as `swift demangle --simplified`
        /// prints it (`MatchingEngine.sweepBestAsk(book:takerId:remaining:)`), or a pseudo-name
        /// such as `[libc.so.6+0x1234]`, `[truncated]`, `[unknown]`. A fact of the function, not
        /// unique: specializations of one generic share it. Views name functions through
        /// ``Profile/FunctionNames``, which makes short names unique.
        public var name: String
        /// The full demangled name; equal to ``name`` when nothing was shortened (or the source,
        /// such as a pprof file, kept one name only).
        public var fullName: String
        /// The raw (mangled) linkage name as found in the binary; empty when unknown.
        public var systemName: String
        /// Source file, from DWARF; empty when unknown.
        public var file: String
        /// First source line of the function; 0 when unknown.
        public var startLine: Int

        /// Creates a function.
        public init(name: String, fullName: String? = nil, systemName: String = "", file: String = "", startLine: Int = 0) {
            self.name = name
            self.fullName = fullName ?? name
            self.systemName = systemName
            self.file = file
            self.startLine = startLine
        }
    }

    /// One entry of a location's inline chain: pprof's `Line`.
    public struct Line: Sendable, Hashable {
        /// Index into ``Profile/functions``.
        public var function: Int
        /// Source line (for the innermost entry the sampled line, for outer ones the call site); 0 when unknown.
        public var line: Int
        /// Creates a line.
        public init(function: Int, line: Int = 0) {
            self.function = function
            self.line = line
        }
    }

    /// One physical frame: pprof's `Location`.
    public struct Location: Sendable, Hashable {
        /// The process address sampled (for a caller frame, the return address); 0 for markers.
        public var address: UInt64
        /// Index into ``Profile/mappings``; nil for markers and addresses outside every mapping.
        public var mapping: Int?
        /// The inline chain, innermost first: more than one entry means the code at `address` was
        /// inlined into `lines.last`'s function. Empty only for unsymbolized locations.
        public var lines: [Line]
        /// Where the code lives.
        public var kind: FrameKind

        /// Creates a location.
        public init(address: UInt64 = 0, mapping: Int? = nil, lines: [Line], kind: FrameKind = .user) {
            self.address = address
            self.mapping = mapping
            self.lines = lines
            self.kind = kind
        }
    }

    /// A thread as the kernel named it (COMM records, or /proc when attaching).
    public struct Thread: Sendable, Hashable {
        /// Process id.
        public var pid: Int32
        /// Thread id (the kernel's tid; equal to `pid` for the main thread).
        public var tid: Int32
        /// The thread's name (its `comm`, at most 15 bytes on Linux).
        public var name: String
        /// The name of its process at the time (the main thread's `comm`): the root frame of folded stacks.
        public var processName: String
        /// Creates a thread.
        public init(pid: Int32, tid: Int32, name: String, processName: String) {
            self.pid = pid
            self.tid = tid
            self.name = name
            self.processName = processName
        }
    }

    /// Samples with one stack on one thread, aggregated.
    public struct Sample: Sendable, Hashable {
        /// Index into ``Profile/stacks``.
        public var stack: Int
        /// Index into ``Profile/threads``; nil when the source had no thread (folded input, foreign pprof).
        public var thread: Int?
        /// One value per ``Profile/sampleTypes`` entry (e.g. sample count, then nanoseconds of period).
        public var values: [Int64]
        /// The run it was taken in, from 1, when the profile holds repeated runs of one command
        /// (`sprof run -r N`, pprof label `run`); nil for a single recording.
        public var run: Int?
        /// Creates a sample.
        public init(stack: Int, thread: Int?, values: [Int64], run: Int? = nil) {
            self.stack = stack
            self.thread = thread
            self.values = values
            self.run = run
        }
    }

    /// One sample with its time, kept when the library's `keepSamples` is on.
    public struct TimedSample: Sendable, Hashable {
        /// Index into ``Profile/threads``.
        public var thread: Int
        /// CLOCK_MONOTONIC nanoseconds at which the kernel took the sample.
        public var time: UInt64
        /// The CPU it was taken on.
        public var cpu: UInt32
        /// Index into ``Profile/stacks``.
        public var stack: Int
        /// Creates a timed sample.
        public init(thread: Int, time: UInt64, cpu: UInt32, stack: Int) {
            self.thread = thread
            self.time = time
            self.cpu = cpu
            self.stack = stack
        }
    }

    /// Resident memory of one process at one time (from `/proc/PID/status`).
    public struct MemoryPoint: Sendable, Hashable {
        /// Nanoseconds since the recording started.
        public var time: UInt64
        /// The process.
        public var pid: Int32
        /// Resident set size in bytes (`VmRSS`).
        public var rss: UInt64
        /// Anonymous resident bytes (`RssAnon`).
        public var anonymous: UInt64
        /// File-backed resident bytes (`RssFile`).
        public var file: UInt64
        /// Creates a point.
        public init(time: UInt64, pid: Int32, rss: UInt64, anonymous: UInt64 = 0, file: UInt64 = 0) {
            self.time = time
            self.pid = pid
            self.rss = rss
            self.anonymous = anonymous
            self.file = file
        }
    }

    /// The measures every sample carries; the first is always the sample count (`samples`/`count`).
    public var sampleTypes: [ValueType]
    /// Index into ``sampleTypes`` that views use unless told otherwise.
    public var defaultSampleType: Int
    /// What one period of the event is (pprof's `period_type`), e.g. `cpu`/`nanoseconds`.
    public var periodType: ValueType
    /// The sampling period in ``periodType`` units; 0 when frequency-based sampling made it vary.
    public var period: Int64
    /// Mappings referenced by locations.
    public var mappings: [Mapping]
    /// Functions referenced by lines.
    public var functions: [Function]
    /// Locations referenced by stacks.
    public var locations: [Location]
    /// Distinct stacks: location indices, leaf first (pprof's order).
    public var stacks: [[Int]]
    /// Threads referenced by samples.
    public var threads: [Thread]
    /// Samples aggregated by (stack, thread, run), sorted by (thread, stack, run) so output is deterministic.
    public var samples: [Sample]
    /// Every sample with its time, in time order; empty unless kept.
    public var timedSamples: [TimedSample]
    /// Resident memory over time, in time order; empty unless sampled.
    public var memory: [MemoryPoint]
    /// How, when and where the profile was recorded.
    public var metadata: Metadata

    /// Creates a profile. With no arguments, an empty profile counting `samples`/`count`.
    public init(sampleTypes: [ValueType] = [ValueType(type: "samples", unit: "count")], defaultSampleType: Int = 0,
                periodType: ValueType? = nil, period: Int64 = 0, mappings: [Mapping] = [], functions: [Function] = [],
                locations: [Location] = [], stacks: [[Int]] = [], threads: [Thread] = [], samples: [Sample] = [],
                timedSamples: [TimedSample] = [], memory: [MemoryPoint] = [], metadata: Metadata = Metadata()) {
        self.sampleTypes = sampleTypes
        self.defaultSampleType = defaultSampleType
        self.periodType = periodType ?? sampleTypes[0]
        self.period = period
        self.mappings = mappings
        self.functions = functions
        self.locations = locations
        self.stacks = stacks
        self.threads = threads
        self.samples = samples
        self.timedSamples = timedSamples
        self.memory = memory
        self.metadata = metadata
    }

    /// The index of the sample type named `type` (e.g. `cpu`, `wall`, `off-cpu`), if present.
    public func sampleTypeIndex(_ type: String) -> Int? {
        sampleTypes.firstIndex { $0.type == type }
    }

    /// The sum of value `index` over all samples (e.g. the total sample count for index 0).
    public func total(_ index: Int = 0) -> Int64 {
        // Saturating, not trapping: a profile built from outside data (a folded file edited by
        // hand) may hold values whose sum does not fit; pprof input is checked when decoded.
        samples.reduce(0) { sum, sample in
            let (next, overflow) = sum.addingReportingOverflow(sample.values[index])
            return overflow ? (sample.values[index] > 0 ? .max : .min) : next
        }
    }

    /// The names of one location's frames with the folded format's kind suffixes, root-most
    /// (outermost) first: `_[k]` kernel, `_[j]` JIT, `_[i]` for every inlined entry.
    /// - Parameter names: the view's function names; nil makes this profile's short names, which
    ///   costs a pass over every function: a view naming many locations makes them once and passes them.
    public func frameNames(ofLocation index: Int, names: FunctionNames? = nil) -> [String] {
        let location = locations[index]
        if location.lines.isEmpty {
            let mappingName = location.mapping.map { mappings[$0].baseName } ?? "unknown"
            return ["[\(mappingName)+0x\(String(location.address, radix: 16))]"]
        }
        let shown = names ?? functionNames()
        var out: [String] = []
        out.reserveCapacity(location.lines.count)
        let last = location.lines.count - 1
        for (i, line) in location.lines.enumerated().reversed() {
            var name = shown[line.function]
            // The inlined callees of the chain are `_[i]`; the location's own frame says where its code lives.
            name += i != last ? FrameKind.inlined.suffix : location.kind.suffix
            out.append(name)
        }
        return out
    }

    /// The frames of stack `index` as names, root first, without the process root.
    /// - Parameter names: as for ``frameNames(ofLocation:names:)``.
    public func frameNames(ofStack index: Int, names: FunctionNames? = nil) -> [String] {
        let shown = names ?? functionNames()
        var out: [String] = []
        for location in stacks[index].reversed() {
            out.append(contentsOf: frameNames(ofLocation: location, names: shown))
        }
        return out
    }

    /// The root frames a folded stack starts with for `sample`: the process name, then the thread
    /// name when `perThread` (as stackcollapse-perf's and inferno's `--per-thread` do). Spaces become
    /// `_`. A sample without a thread gets no root.
    public func rootFrames(of sample: Sample, perThread: Bool) -> [String] {
        guard let t = sample.thread else { return [] }
        let thread = threads[t]
        let process = Self.rootName(thread.processName.isEmpty ? "pid-\(thread.pid)" : thread.processName)
        guard perThread else { return [process] }
        return [process, Self.rootName(thread.name.isEmpty ? "tid-\(thread.tid)" : thread.name) + "-\(thread.tid)"]
    }

    /// Replaces characters that break the folded line format or its root convention.
    static func rootName(_ name: String) -> String {
        String(name.map { $0 == " " || $0 == ";" || $0 == "\n" ? "_" : $0 })
    }

    /// Aggregated (frames, value) pairs, root first, for folded-shaped views (flame graphs, folded
    /// text). Stacks with the same names are merged; zero values are left out.
    /// - Parameters:
    ///   - valueIndex: which ``sampleTypes`` entry to sum (default: sample counts).
    ///   - perThread: root stacks at `process;thread-tid` instead of the process alone.
    ///   - names: the view's function names (``FunctionNames``); nil for this profile's short names.
    ///   - sorted: in lexicographic order of the frames (deterministic output); false leaves the
    ///     order unspecified, for callers that order the stacks themselves (a flame tree), since
    ///     sorting arrays of names costs more than aggregating them on large profiles.
    public func aggregatedStacks(valueIndex: Int = 0, perThread: Bool = false, names: FunctionNames? = nil,
                                 sorted: Bool = true) -> [(frames: [String], value: Int64)] {
        let shown = names ?? functionNames()
        var stackNames: [Int: [String]] = [:]
        var merged: [[String]: Int64] = [:]
        for sample in samples {
            let value = sample.values[valueIndex]
            guard value != 0 else { continue }
            let names: [String]
            if let known = stackNames[sample.stack] {
                names = known
            } else {
                names = frameNames(ofStack: sample.stack, names: shown)
                stackNames[sample.stack] = names
            }
            merged[rootFrames(of: sample, perThread: perThread) + names, default: 0] += value
        }
        let stacks = merged.map { (frames: $0.key, value: $0.value) }
        return sorted ? stacks.sorted { $0.frames.lexicographicallyPrecedes($1.frames) } : stacks
    }
}
