import SprofProfile

/// Turns a decoded protobuf `Profile` into the model, checking every id and string index: a
/// foreign or damaged file must fail with a ``FormatError``, never trap.
struct PprofDecoder {
    let m: Perftools_Profiles_Profile

    init(_ message: Perftools_Profiles_Profile) {
        m = message
    }

    private func string(_ index: Int64, _ what: @autoclosure () -> String) throws -> String {
        guard index >= 0 && index < Int64(m.stringTable.count) else {
            throw FormatError.invalid("\(what()) is string \(index), outside the string table of \(m.stringTable.count)")
        }
        return m.stringTable[Int(index)]
    }

    private func valueType(_ v: Perftools_Profiles_ValueType, _ what: String) throws -> Profile.ValueType {
        Profile.ValueType(type: try string(v.type, "\(what)'s type"), unit: try string(v.unit, "\(what)'s unit"))
    }

    func profile() throws -> Profile {
        guard m.stringTable.first == "" else {
            throw FormatError.invalid(m.stringTable.isEmpty ? "the string table is empty" : "string_table[0] is not the empty string")
        }
        guard !m.sampleType.isEmpty else { throw FormatError.invalid("the profile has no sample_type") }
        let sampleTypes = try m.sampleType.enumerated().map { try valueType($1, "sample_type[\($0)]") }
        // pprof's rule: without default_sample_type, views use the last sample type.
        var defaultType = sampleTypes.count - 1
        if m.defaultSampleType != 0 {
            let name = try string(m.defaultSampleType, "default_sample_type")
            guard let i = sampleTypes.firstIndex(where: { $0.type == name }) else {
                throw FormatError.invalid("default_sample_type \"\(name)\" is not a sample type")
            }
            defaultType = i
        }
        let periodType = m.hasPeriodType ? try valueType(m.periodType, "period_type") : nil
        var b = ProfileBuilding(sampleTypes: sampleTypes, defaultSampleType: defaultType, periodType: periodType, period: m.period)
        // At most one stack per sample; a hostile count costs no more than the file's own samples.
        b.reserveCapacity(locations: m.location.count, stacks: m.sample.count, samples: m.sample.count)

        var mappingIndex: [UInt64: (index: Int, kind: FrameKind)] = [:]
        for (i, mp) in m.mapping.enumerated() {
            guard mp.id != 0 else { throw FormatError.invalid("mapping[\(i)] has id 0") }
            guard mappingIndex[mp.id] == nil else { throw FormatError.invalid("mapping id \(mp.id) is used twice") }
            let path = try string(mp.filename, "mapping \(mp.id)'s filename")
            let mapping = Profile.Mapping(
                start: mp.memoryStart, limit: mp.memoryLimit, fileOffset: mp.fileOffset, path: path,
                buildID: try string(mp.buildID, "mapping \(mp.id)'s build_id"),
                hasFunctions: mp.hasFunctions_p, hasFilenames: mp.hasFilenames_p,
                hasLineNumbers: mp.hasLineNumbers_p, hasInlineFrames: mp.hasInlineFrames_p)
            mappingIndex[mp.id] = (b.mapping(mapping), Self.kind(ofMappingPath: path))
        }

        var functionIndex: [UInt64: (index: Int, name: String)] = [:]
        for (i, f) in m.function.enumerated() {
            guard f.id != 0 else { throw FormatError.invalid("function[\(i)] has id 0") }
            guard functionIndex[f.id] == nil else { throw FormatError.invalid("function id \(f.id) is used twice") }
            let name = try string(f.name, "function \(f.id)'s name")
            let function = Profile.Function(
                name: name, systemName: try string(f.systemName, "function \(f.id)'s system_name"),
                file: try string(f.filename, "function \(f.id)'s filename"),
                startLine: Int(clamping: f.startLine))
            functionIndex[f.id] = (b.function(function), name)
        }

        // Location ids are most often 1...N (sprof, Go and pprof write them so): then an array
        // serves the lookup of every sample's every frame, else a dictionary.
        var locationIndex = LocationIndex(count: m.location.count)
        for (i, loc) in m.location.enumerated() {
            guard loc.id != 0 else { throw FormatError.invalid("location[\(i)] has id 0") }
            guard locationIndex[loc.id] == nil else { throw FormatError.invalid("location id \(loc.id) is used twice") }
            var mapping: (index: Int, kind: FrameKind)?
            if loc.mappingID != 0 {
                guard let known = mappingIndex[loc.mappingID] else {
                    throw FormatError.invalid("location \(loc.id) refers to mapping \(loc.mappingID), which does not exist")
                }
                mapping = known
            }
            var lines: [Profile.Line] = []
            lines.reserveCapacity(loc.line.count)
            var onlyName = ""
            for line in loc.line {
                // function_id 0 means "no function" in the schema; the model has no such line.
                guard line.functionID != 0 else { continue }
                guard let f = functionIndex[line.functionID] else {
                    throw FormatError.invalid("location \(loc.id) refers to function \(line.functionID), which does not exist")
                }
                onlyName = f.name
                lines.append(Profile.Line(function: f.index, line: Int(clamping: line.line)))
            }
            var kind = mapping?.kind ?? .user
            if mapping == nil && loc.address == 0 && lines.count == 1 && Self.isMarkerName(onlyName) { kind = .marker }
            locationIndex[loc.id] = b.location(Profile.Location(address: loc.address, mapping: mapping?.index, lines: lines, kind: kind))
        }

        // Sums can only overflow if the absolute values do; checking those once keeps the
        // builder's aggregation and the model's totals from trapping on a hostile file.
        var magnitudes = [UInt64](repeating: 0, count: sampleTypes.count)
        var labelKeys: [Int64: String] = [:]
        struct ThreadKey: Hashable {
            var pid: Int64, tid: Int64, name: Int64, processName: Int64
        }
        var threadIndex: [ThreadKey: Int] = [:]
        var stack: [Int] = []
        for (i, s) in m.sample.enumerated() {
            guard s.value.count == sampleTypes.count else {
                throw FormatError.invalid("sample \(i) has \(s.value.count) values for \(sampleTypes.count) sample types")
            }
            for (j, v) in s.value.enumerated() {
                let (sum, overflow) = magnitudes[j].addingReportingOverflow(v.magnitude)
                guard !overflow && sum <= UInt64(Int64.max) else {
                    throw FormatError.invalid("the values of sample type \(sampleTypes[j]) overflow 64 bits")
                }
                magnitudes[j] = sum
            }
            stack.removeAll(keepingCapacity: true)
            for id in s.locationID {
                guard let l = locationIndex[id] else {
                    throw FormatError.invalid("sample \(i) refers to location \(id), which does not exist")
                }
                stack.append(l)
            }
            var pid: Int64?, tid: Int64?, threadName: Int64 = 0, processName: Int64 = 0, run: Int?
            for label in s.label {
                let key: String
                if let known = labelKeys[label.key] {
                    key = known
                } else {
                    key = try string(label.key, "a label key of sample \(i)")
                    labelKeys[label.key] = key
                }
                switch key {
                case PprofFormat.pidLabel: pid = label.num
                case PprofFormat.tidLabel: tid = label.num
                case PprofFormat.threadNameLabel: threadName = label.str
                case PprofFormat.processNameLabel: processName = label.str
                case PprofFormat.runLabel where label.num > 0 && label.num <= Int64(Int32.max): run = Int(label.num)
                default: continue // other labels (Go's pprof.Labels, …) have no place in the model
                }
            }
            var thread: Int?
            if pid != nil || tid != nil || threadName != 0 || processName != 0 {
                // Every sample of a thread repeats its labels: look the thread up by the raw
                // numbers and string indices, and build (and hash) its strings once.
                let key = ThreadKey(pid: pid ?? 0, tid: tid ?? pid ?? 0, name: threadName, processName: processName)
                if let known = threadIndex[key] {
                    thread = known
                } else {
                    let t = Profile.Thread(pid: Int32(truncatingIfNeeded: key.pid), tid: Int32(truncatingIfNeeded: key.tid),
                                           name: try string(threadName, "sample \(i)'s thread_name"),
                                           processName: try string(processName, "sample \(i)'s process_name"))
                    thread = b.thread(t)
                    threadIndex[key] = thread
                }
            }
            b.add(stack: b.stack(stack), thread: thread, run: run, values: s.value)
        }

        let comments = try m.comment.enumerated().map { try string($1, "comment[\($0)]") }
        var metadata = ProfileMetadata(provenanceLines: comments)
        if metadata.startTime == 0 { metadata.startTime = UInt64(clamping: m.timeNanos) }
        if metadata.duration == 0 { metadata.duration = UInt64(clamping: m.durationNanos) }
        var profile = b.build(metadata: metadata)
        if !comments.contains(where: { $0.hasPrefix("samples: ") }) {
            // A foreign file: its sample count is the `samples`/`count` column, when there is one.
            if let i = sampleTypes.firstIndex(where: { $0.type == "samples" && $0.unit == "count" }) {
                profile.metadata.statistics.samples = Int(clamping: profile.total(i))
            }
            profile.metadata.statistics.threads = profile.threads.count
            profile.metadata.statistics.processes = Set(profile.threads.map(\.pid)).count
        }
        return profile
    }

    /// The location kind a mapping's path implies (see ``PprofFormat/decode(_:)``).
    static func kind(ofMappingPath path: String) -> FrameKind {
        if path.hasPrefix("[kernel") { return .kernel }
        if path == PprofFormat.jitMappingPath || (path.hasPrefix("/tmp/perf-") && path.hasSuffix(".map")) { return .jit }
        return .user
    }

    /// `[truncated]`, `[unknown]`, `[off-cpu]`: bracketed, and not an unsymbolized
    /// `[module+0xOFFSET]` frame (which is code).
    static func isMarkerName(_ name: String) -> Bool {
        name.hasPrefix("[") && name.hasSuffix("]") && !name.contains("+0x")
    }
}

/// Location ids to model indices while a pprof file is read: an array for ids up to twice the
/// number of locations (the usual 1...N), a dictionary for the others, so that a file with
/// sparse or huge ids costs no more memory than its locations.
private struct LocationIndex {
    private var dense: [Int]
    private var sparse: [UInt64: Int] = [:]

    init(count: Int) {
        dense = Array(repeating: -1, count: count * 2 + 1)
    }

    subscript(id: UInt64) -> Int? {
        get {
            if id < UInt64(dense.count) { return dense[Int(id)] >= 0 ? dense[Int(id)] : nil }
            return sparse[id]
        }
        set {
            if id < UInt64(dense.count) { dense[Int(id)] = newValue ?? -1 } else { sparse[id] = newValue }
        }
    }
}
