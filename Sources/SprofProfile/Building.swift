/// Interns mappings, functions, locations, stacks and threads while a profile is assembled, and
/// aggregates samples by (stack, thread). Recording, the folded reader and the pprof reader all
/// build through it, so that every source yields the same shape of ``Profile``.
public struct ProfileBuilding {
    private var profile: Profile
    private var mappingIDs: [MappingKey: Int] = [:]
    private var functionIDs: [Profile.Function: Int] = [:]
    private var locationIDs: [Profile.Location: Int] = [:]
    private var stackIDs: [StackKey: Int] = [:]
    private var threadIDs: [Profile.Thread: Int] = [:]
    private var sampleIDs: [SampleKey: Int] = [:]

    /// A mapping's identity: its range, file and build-id, not the has_* flags, which accumulate.
    private struct MappingKey: Hashable {
        var start: UInt64
        var limit: UInt64
        var fileOffset: UInt64
        var path: String
        var buildID: String
    }

    /// A stack as a key, hashed as one run of bytes: `Array`'s own hash feeds its ids to the
    /// hasher one by one, and that was a quarter of reading a pprof file of 30,000 distinct
    /// stacks (`sprof serve`'s first view and Compare). Still SipHash, so a hostile file cannot
    /// make stacks collide.
    private struct StackKey: Hashable {
        var ids: [Int]
        func hash(into hasher: inout Hasher) {
            ids.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    private struct SampleKey: Hashable {
        var stack: Int
        var thread: Int?
        var run: Int?
    }

    /// Starts a profile with the given measures (the first should be `samples`/`count`).
    public init(sampleTypes: [Profile.ValueType], defaultSampleType: Int = 0, periodType: Profile.ValueType? = nil, period: Int64 = 0) {
        profile = Profile(sampleTypes: sampleTypes, defaultSampleType: defaultSampleType, periodType: periodType, period: period)
    }

    /// Makes room for `locations`, `stacks` and `samples` entries at once: a reader that knows
    /// its counts (a pprof file) spares the dictionaries their growth, each step of which hashes
    /// every key again (a third of the model's building for 30,000 stacks).
    public mutating func reserveCapacity(locations: Int, stacks: Int, samples: Int) {
        locationIDs.reserveCapacity(locations)
        profile.locations.reserveCapacity(locations)
        stackIDs.reserveCapacity(stacks)
        profile.stacks.reserveCapacity(stacks)
        sampleIDs.reserveCapacity(samples)
        profile.samples.reserveCapacity(samples)
    }

    /// The index of `mapping`, adding it if new. Mappings are the same when range, file and
    /// build-id are; their `has_*` flags are OR-ed, since each frame tells what it could resolve.
    public mutating func mapping(_ mapping: Profile.Mapping) -> Int {
        let key = MappingKey(start: mapping.start, limit: mapping.limit, fileOffset: mapping.fileOffset,
                             path: mapping.path, buildID: mapping.buildID)
        if let id = mappingIDs[key] {
            profile.mappings[id].hasFunctions = profile.mappings[id].hasFunctions || mapping.hasFunctions
            profile.mappings[id].hasFilenames = profile.mappings[id].hasFilenames || mapping.hasFilenames
            profile.mappings[id].hasLineNumbers = profile.mappings[id].hasLineNumbers || mapping.hasLineNumbers
            profile.mappings[id].hasInlineFrames = profile.mappings[id].hasInlineFrames || mapping.hasInlineFrames
            return id
        }
        let id = profile.mappings.count
        profile.mappings.append(mapping)
        mappingIDs[key] = id
        return id
    }

    /// The index of `function`, adding it if new.
    public mutating func function(_ function: Profile.Function) -> Int {
        Self.intern(function, &functionIDs, &profile.functions)
    }

    /// The index of a function known only by its name.
    public mutating func function(named name: String) -> Int {
        function(Profile.Function(name: name))
    }

    /// The index of `location`, adding it if new.
    public mutating func location(_ location: Profile.Location) -> Int {
        Self.intern(location, &locationIDs, &profile.locations)
    }

    /// A marker location (`[truncated]`, `[off-cpu]`, …): no address, no mapping, one line.
    public mutating func marker(_ name: String) -> Int {
        let f = function(named: name)
        return location(Profile.Location(lines: [Profile.Line(function: f)], kind: .marker))
    }

    /// The index of a stack of location indices, leaf first.
    public mutating func stack(_ locations: [Int]) -> Int {
        let key = StackKey(ids: locations)
        if let id = stackIDs[key] { return id }
        let id = profile.stacks.count
        profile.stacks.append(locations)
        stackIDs[key] = id
        return id
    }

    /// The index of `thread`, adding it if new.
    public mutating func thread(_ thread: Profile.Thread) -> Int {
        Self.intern(thread, &threadIDs, &profile.threads)
    }

    /// The index of `value` in `table`, appending it if new.
    private static func intern<T: Hashable>(_ value: T, _ ids: inout [T: Int], _ table: inout [T]) -> Int {
        if let id = ids[value] { return id }
        let id = table.count
        table.append(value)
        ids[value] = id
        return id
    }

    /// Adds `values` (one per sample type) to the aggregate of (stack, thread, run); `run` is
    /// the run number (from 1) of a repeated recording, nil for a single one.
    public mutating func add(stack: Int, thread: Int?, run: Int? = nil, values: [Int64]) {
        precondition(values.count == profile.sampleTypes.count, "one value per sample type")
        let key = SampleKey(stack: stack, thread: thread, run: run)
        if let id = sampleIDs[key] {
            for i in values.indices { profile.samples[id].values[i] += values[i] }
        } else {
            sampleIDs[key] = profile.samples.count
            profile.samples.append(Profile.Sample(stack: stack, thread: thread, values: values, run: run))
        }
    }

    /// Appends a timed sample (the library's per-sample log).
    public mutating func addTimed(_ sample: Profile.TimedSample) {
        profile.timedSamples.append(sample)
    }

    /// Appends a memory point.
    public mutating func addMemory(_ point: Profile.MemoryPoint) {
        profile.memory.append(point)
    }

    /// The number of sample types.
    public var sampleTypeCount: Int { profile.sampleTypes.count }

    /// Adds a sample type after the fact (e.g. `wall`/`nanoseconds` when off-CPU intervals arrive):
    /// every existing sample gets 0 for it. Returns its index.
    public mutating func addSampleType(_ type: Profile.ValueType) -> Int {
        if let i = profile.sampleTypeIndex(type.type) { return i }
        profile.sampleTypes.append(type)
        for i in profile.samples.indices { profile.samples[i].values.append(0) }
        return profile.sampleTypes.count - 1
    }

    /// The finished profile: samples sorted by (thread, stack) for deterministic output. Function
    /// names are kept as the sources gave them (short, full and linkage names); views make their
    /// names, unique among the functions they show, through ``Profile/FunctionNames``.
    public func build(metadata: Profile.Metadata) -> Profile {
        var p = profile
        p.metadata = metadata
        p.samples.sort(by: Profile.Sample.canonicalOrder)
        return p
    }
}

extension Profile {
    /// The provenance type, named where the model is (see ``Metadata``).
    public typealias Metadata = ProfileMetadata
}

extension Profile {
    /// A profile from folded stacks (`comm;main;a;b 42`, root first), as flamegraph.pl, inferno and
    /// `perf script | stackcollapse-perf` write them. The first frame is taken as the process name
    /// (folded files carry no threads), `_[k]` and `_[j]` frames become kernel and JIT locations,
    /// `_[i]` frames join the location of the frame before them as inlined entries, and
    /// `[truncated]` becomes a marker, so folded → profile → folded gives the same lines.
    public init(folded stacks: [(frames: [String], count: Int64)], metadata: ProfileMetadata = ProfileMetadata()) {
        var b = ProfileBuilding(sampleTypes: [ValueType(type: "samples", unit: "count")])
        var threadIDs: [String: Int] = [:]
        for (frames, count) in stacks where count > 0 {
            guard let root = frames.first else { continue }
            let thread: Int
            if let known = threadIDs[root] {
                thread = known
            } else {
                thread = b.thread(Thread(pid: 0, tid: 0, name: root, processName: root))
                threadIDs[root] = thread
            }
            // Root-first physical frames, each with its inline chain (outermost first).
            var physical: [(kind: FrameKind, names: [String])] = []
            for frame in frames.dropFirst() {
                // The suffixes are ``FrameKind``'s: the views add them, this reads them back.
                let suffixed = [FrameKind.inlined, .kernel, .jit].first { frame.hasSuffix($0.suffix) }
                let bare = suffixed.map { String(frame.dropLast($0.suffix.count)) } ?? frame
                switch suffixed {
                case .inlined? where !physical.isEmpty: physical[physical.count - 1].names.append(bare)
                case .inlined?: physical.append((.user, [bare]))
                case let kind?: physical.append((kind, [bare]))
                case nil: physical.append((frame == "[truncated]" ? .marker : .user, [frame]))
                }
            }
            let leafFirst = physical.reversed().map { entry in
                b.location(Location(lines: entry.names.reversed().map { Line(function: b.function(named: $0)) }, kind: entry.kind))
            }
            b.add(stack: b.stack(leafFirst), thread: thread, values: [count])
        }
        var m = metadata
        // Saturating: counts near Int64.max must not trap (the CLI rejects such input first).
        m.statistics.samples = Int(stacks.reduce(Int64(0)) { sum, s in
            let (next, overflow) = sum.addingReportingOverflow(max(0, s.count))
            return overflow ? Int64.max : next
        })
        self = b.build(metadata: m)
    }
}

extension Profile {
    /// Moves mapping `index` to the front. pprof takes the first mapping as the main binary (the
    /// `File:` and `Build ID:` lines of `go tool pprof`), so the profiled program's own file goes first.
    public mutating func moveMappingToFront(_ index: Int) {
        guard index > 0, index < mappings.count else { return }
        let moved = mappings.remove(at: index)
        mappings.insert(moved, at: 0)
        for i in locations.indices {
            guard let m = locations[i].mapping else { continue }
            locations[i].mapping = m == index ? 0 : (m < index ? m + 1 : m)
        }
    }

    /// The mapping of the main program: the file named like the process with the most samples
    /// (a thread's process name is its executable's base name, cut to 15 bytes by the kernel).
    public var mainMappingIndex: Int? {
        var perThread: [Int: Int64] = [:]
        for s in samples { if let t = s.thread { perThread[t, default: 0] += s.values[0] } }
        guard let busiest = perThread.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key })?.key else { return nil }
        let name = threads[busiest].processName
        guard !name.isEmpty else { return nil }
        return mappings.firstIndex { !$0.path.hasPrefix("[") && $0.baseName.hasPrefix(name) }
    }
}

extension Profile.Sample {
    /// The order of ``Profile/samples``: by thread, stack, then run, so output is deterministic.
    static func canonicalOrder(_ a: Profile.Sample, _ b: Profile.Sample) -> Bool {
        if a.thread != b.thread { return (a.thread ?? -1) < (b.thread ?? -1) }
        if a.stack != b.stack { return a.stack < b.stack }
        return (a.run ?? 0) < (b.run ?? 0)
    }
}
