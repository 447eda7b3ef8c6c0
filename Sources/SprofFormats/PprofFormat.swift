import SprofProfile
import SwiftProtobuf

/// pprof's profile format: a gzip-compressed protobuf `Profile` message (google/pprof
/// `proto/profile.proto`), the file `go tool pprof`, Grafana Pyroscope and Parca read.
///
/// How a ``Profile`` maps onto the message:
/// - `sample_type`, `period_type`, `period` and `default_sample_type` come from the profile's
///   measures; every sample carries one value per sample type.
/// - Mapping, location and function ids are the model's zero-based indices plus one.
/// - A location's inline chain is its `line` entries, innermost first.
/// - Kernel (and JIT) locations without a mapping get a synthesized `[kernel.kallsyms]` (`[jit]`)
///   mapping, so that every kernel frame sits in a kernel mapping and the kind reads back.
///   Markers (`[truncated]`, `[unknown]`, …) are explicit locations with no mapping and address 0.
/// - Each sample of a thread carries the labels `pid` and `tid` (numbers), `thread_name` and
///   `process_name` (strings); samples without a thread carry none.
/// - `time_nanos`/`duration_nanos` are the metadata's start and duration; the provenance
///   (``ProfileMetadata/provenanceLines``) is written as `comment` strings.
///
/// Output is deterministic: the same ``Profile`` always gives the same bytes (tables in model
/// order, strings in first-use order, samples ordered by stack then by thread content, and a
/// gzip header without timestamp or name). Writing what was read from sprof's own file gives the
/// same bytes again.
///
/// Not carried by pprof, hence not read back: ``Profile/timedSamples``, ``Profile/memory`` and
/// ``Profile/Function/fullName`` (read back equal to the display name; `system_name` keeps the
/// mangled name).
public enum PprofFormat {
    /// The label keys written on every sample of a thread (a convention, not part of the schema;
    /// `go tool pprof -tagfocus`/`-tagroot` use them).
    public static let pidLabel = "pid"
    /// Thread id label (a number).
    public static let tidLabel = "tid"
    /// Thread name label (a string).
    public static let threadNameLabel = "thread_name"
    /// Process name label (a string).
    public static let processNameLabel = "process_name"

    /// Mapping path given to kernel locations (perf's name for the kernel image).
    public static let kernelMappingPath = "[kernel.kallsyms]"
    /// Mapping path given to JIT locations without a mapping of their own.
    public static let jitMappingPath = "[jit]"

    /// The gzip-compressed pprof bytes of `profile`, ready to be written to `NAME.pb.gz`.
    /// - Throws: ``FormatError/inconsistent(_:)`` when an index in `profile` points outside its
    ///   table or a sample's value count differs from ``Profile/sampleTypes``' count;
    ///   ``FormatError/compression(_:)`` if zlib fails.
    public static func encode(_ profile: Profile) throws -> [UInt8] {
        try Gzip.compress(encodeUncompressed(profile))
    }

    /// The uncompressed protobuf bytes of `profile` (what ``encode(_:)`` gzips).
    /// - Throws: ``FormatError/inconsistent(_:)`` as ``encode(_:)``.
    public static func encodeUncompressed(_ profile: Profile) throws -> [UInt8] {
        var encoder = PprofEncoder(profile)
        let message = try encoder.message()
        do {
            return try message.serializedBytes()
        } catch {
            throw FormatError.inconsistent("protobuf encoding failed: \(error)")
        }
    }

    /// Reads a pprof profile, gzip-compressed or plain, from sprof or from another tool (Go's
    /// `runtime/pprof`, Pyroscope, …). Threads come from the `pid`/`tid`/`thread_name`/
    /// `process_name` labels (samples without them have no thread); comments become the metadata
    /// through ``ProfileMetadata/init(provenanceLines:)``, with `time_nanos`/`duration_nanos` as
    /// the start and duration when the comments lack them. Location kinds come from the mapping:
    /// `[kernel…]` paths are kernel, `[jit]` and `/tmp/perf-PID.map` are JIT, and a location with
    /// no mapping, address 0 and one bracketed function name (`[truncated]`) is a marker.
    /// - Throws: ``FormatError/compression(_:)`` for corrupt or truncated gzip data,
    ///   ``FormatError/malformed(_:)`` for bytes that are not a protobuf message,
    ///   ``FormatError/invalid(_:)`` for a message that breaks the schema's rules (zero or duplicate
    ///   ids, ids that refer to nothing, string indices outside the table, value counts that differ
    ///   from `sample_type`'s).
    public static func decode(_ bytes: [UInt8]) throws -> Profile {
        let plain = Gzip.isGzip(bytes) ? try Gzip.decompress(bytes) : bytes
        guard !plain.isEmpty else { throw FormatError.malformed("the file is empty") }
        let message: Perftools_Profiles_Profile
        do {
            message = try Perftools_Profiles_Profile(serializedBytes: plain)
        } catch let error as BinaryDecodingError {
            throw FormatError.malformed(describe(error))
        } catch {
            throw FormatError.malformed("protobuf decoding failed (\(error))")
        }
        return try PprofDecoder(message).profile()
    }

    private static func describe(_ error: BinaryDecodingError) -> String {
        switch error {
        case .truncated: return "the protobuf data is truncated"
        case .malformedProtobuf: return "the bytes are not protobuf data"
        case .invalidUTF8: return "a string is not valid UTF-8"
        case .messageDepthLimit: return "messages are nested too deeply"
        default: return "protobuf decoding failed (\(error))"
        }
    }
}

/// Interns strings in first-use order; index 0 is "" as the schema requires.
struct StringTable {
    private(set) var strings: [String] = [""]
    private var indices: [String: Int64] = ["": 0]

    mutating func callAsFunction(_ s: String) -> Int64 {
        if let i = indices[s] { return i }
        let i = Int64(strings.count)
        strings.append(s)
        indices[s] = i
        return i
    }
}

/// Builds the protobuf message for one profile, checking the model's indices as it goes.
struct PprofEncoder {
    let profile: Profile
    var strings = StringTable()

    init(_ profile: Profile) {
        self.profile = profile
    }

    private func valueType(_ v: Profile.ValueType, _ strings: inout StringTable) -> Perftools_Profiles_ValueType {
        var out = Perftools_Profiles_ValueType()
        out.type = strings(v.type)
        out.unit = strings(v.unit)
        return out
    }

    mutating func message() throws -> Perftools_Profiles_Profile {
        let p = profile
        var m = Perftools_Profiles_Profile()
        m.sampleType = p.sampleTypes.map { valueType($0, &strings) }
        m.periodType = valueType(p.periodType, &strings)
        m.period = p.period
        if p.sampleTypes.indices.contains(p.defaultSampleType) {
            m.defaultSampleType = strings(p.sampleTypes[p.defaultSampleType].type)
        } else if !p.sampleTypes.isEmpty {
            throw FormatError.inconsistent("default sample type \(p.defaultSampleType) is not one of the \(p.sampleTypes.count) sample types")
        }
        m.timeNanos = Int64(clamping: p.metadata.startTime)
        m.durationNanos = Int64(clamping: p.metadata.duration)

        try writeMappingsAndLocations(into: &m)
        try writeSamples(into: &m)
        m.comment = p.metadata.provenanceLines.map { strings($0) }
        m.stringTable = strings.strings
        return m
    }

    private mutating func writeMappingsAndLocations(into m: inout Perftools_Profiles_Profile) throws {
        let p = profile
        // Kernel and JIT locations without a mapping get one, appended after the model's own, so
        // that ids of the model's mappings stay index + 1 and the kind survives a round trip.
        var synthesized: [Profile.LocationKind: (id: UInt64, low: UInt64, high: UInt64)] = [:]
        for location in p.locations where location.mapping == nil && (location.kind == .kernel || location.kind == .jit) {
            if var s = synthesized[location.kind] {
                if location.address != 0 {
                    s.low = s.low == 0 ? location.address : min(s.low, location.address)
                    s.high = max(s.high, location.address)
                }
                synthesized[location.kind] = s
            } else {
                synthesized[location.kind] = (0, location.address, location.address)
            }
        }
        var mappings = p.mappings.map { ($0, UInt64(0)) }
        for kind in [Profile.LocationKind.kernel, .jit] {
            guard var s = synthesized[kind] else { continue }
            let path = kind == .kernel ? PprofFormat.kernelMappingPath : PprofFormat.jitMappingPath
            s.id = UInt64(mappings.count + 1)
            synthesized[kind] = s
            mappings.append((Profile.Mapping(start: s.low, limit: s.high == 0 ? 0 : s.high + 1, path: path), 0))
        }
        m.mapping.reserveCapacity(mappings.count)
        for (i, (mapping, _)) in mappings.enumerated() {
            var out = Perftools_Profiles_Mapping()
            out.id = UInt64(i + 1)
            out.memoryStart = mapping.start
            out.memoryLimit = mapping.limit
            out.fileOffset = mapping.fileOffset
            out.filename = strings(mapping.path)
            out.buildID = strings(mapping.buildID)
            out.hasFunctions_p = mapping.hasFunctions
            out.hasFilenames_p = mapping.hasFilenames
            out.hasLineNumbers_p = mapping.hasLineNumbers
            out.hasInlineFrames_p = mapping.hasInlineFrames
            m.mapping.append(out)
        }

        m.function.reserveCapacity(p.functions.count)
        for (i, f) in p.functions.enumerated() {
            var out = Perftools_Profiles_Function()
            out.id = UInt64(i + 1)
            out.name = strings(f.name)
            out.systemName = strings(f.systemName)
            out.filename = strings(f.file)
            out.startLine = Int64(f.startLine)
            m.function.append(out)
        }

        m.location.reserveCapacity(p.locations.count)
        let functionCount = p.functions.count
        for (i, location) in p.locations.enumerated() {
            var out = Perftools_Profiles_Location()
            out.id = UInt64(i + 1)
            out.address = location.address
            if let mapping = location.mapping {
                guard p.mappings.indices.contains(mapping) else {
                    throw FormatError.inconsistent("location \(i) refers to mapping \(mapping) of \(p.mappings.count)")
                }
                out.mappingID = UInt64(mapping + 1)
            } else if let s = synthesized[location.kind] {
                out.mappingID = s.id
            }
            out.line.reserveCapacity(location.lines.count)
            for line in location.lines {
                guard line.function >= 0 && line.function < functionCount else {
                    throw FormatError.inconsistent("location \(i) refers to function \(line.function) of \(functionCount)")
                }
                var l = Perftools_Profiles_Line()
                l.functionID = UInt64(line.function + 1)
                l.line = Int64(line.line)
                out.line.append(l)
            }
            m.location.append(out)
        }
    }

    private mutating func writeSamples(into m: inout Perftools_Profiles_Profile) throws {
        let p = profile
        // Labels per thread, built once, for the threads samples use. Threads are ranked by
        // content (nil first), and their strings interned in that order, so that the file depends
        // only on what it shows, not on thread indices (a reader numbers threads differently).
        var used = [Bool](repeating: false, count: p.threads.count)
        for (i, s) in p.samples.enumerated() {
            guard let t = s.thread else { continue }
            guard t >= 0 && t < p.threads.count else {
                throw FormatError.inconsistent("sample \(i) refers to thread \(t) of \(p.threads.count)")
            }
            used[t] = true
        }
        let byContent = p.threads.indices.filter { used[$0] }.sorted { a, b in
            let x = p.threads[a], y = p.threads[b]
            if x.pid != y.pid { return x.pid < y.pid }
            if x.tid != y.tid { return x.tid < y.tid }
            if x.processName != y.processName { return x.processName < y.processName }
            if x.name != y.name { return x.name < y.name }
            return a < b
        }
        var keys: (pid: Int64, tid: Int64, threadName: Int64, processName: Int64) = (0, 0, 0, 0)
        if !byContent.isEmpty {
            keys = (strings(PprofFormat.pidLabel), strings(PprofFormat.tidLabel),
                    strings(PprofFormat.threadNameLabel), strings(PprofFormat.processNameLabel))
        }
        var rank = [Int](repeating: 0, count: p.threads.count)
        var labels = [[Perftools_Profiles_Label]](repeating: [], count: p.threads.count)
        for (r, i) in byContent.enumerated() {
            rank[i] = r + 1
            let t = p.threads[i]
            var pid = Perftools_Profiles_Label()
            pid.key = keys.pid
            pid.num = Int64(t.pid)
            var tid = Perftools_Profiles_Label()
            tid.key = keys.tid
            tid.num = Int64(t.tid)
            var name = Perftools_Profiles_Label()
            name.key = keys.threadName
            name.str = strings(t.name)
            var process = Perftools_Profiles_Label()
            process.key = keys.processName
            process.str = strings(t.processName)
            labels[i] = [pid, tid, name, process]
        }

        // Samples in (stack, thread rank) order: a reader interns stacks in file order, so stack
        // indices read back keep their order and writing the result again gives the same bytes.
        let typeCount = p.sampleTypes.count
        var order: [(stack: Int, rank: Int, index: Int)] = []
        order.reserveCapacity(p.samples.count)
        for (i, s) in p.samples.enumerated() {
            guard s.stack >= 0 && s.stack < p.stacks.count else {
                throw FormatError.inconsistent("sample \(i) refers to stack \(s.stack) of \(p.stacks.count)")
            }
            guard s.values.count == typeCount else {
                throw FormatError.inconsistent("sample \(i) has \(s.values.count) values for \(typeCount) sample types")
            }
            order.append((s.stack, s.thread.map { rank[$0] } ?? 0, i))
        }
        order.sort { a, b in a.stack != b.stack ? a.stack < b.stack : (a.rank != b.rank ? a.rank < b.rank : a.index < b.index) }

        let locationCount = p.locations.count
        var stackIDs: [[UInt64]?] = Array(repeating: nil, count: p.stacks.count)
        m.sample.reserveCapacity(order.count)
        for entry in order {
            let s = p.samples[entry.index]
            var out = Perftools_Profiles_Sample()
            if let ids = stackIDs[s.stack] {
                out.locationID = ids
            } else {
                var ids: [UInt64] = []
                ids.reserveCapacity(p.stacks[s.stack].count)
                for l in p.stacks[s.stack] {
                    guard l >= 0 && l < locationCount else {
                        throw FormatError.inconsistent("stack \(s.stack) refers to location \(l) of \(locationCount)")
                    }
                    ids.append(UInt64(l + 1))
                }
                stackIDs[s.stack] = ids
                out.locationID = ids
            }
            out.value = s.values
            if let t = s.thread { out.label = labels[t] }
            m.sample.append(out)
        }
    }
}
