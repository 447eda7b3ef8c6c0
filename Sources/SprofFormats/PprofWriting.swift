import Dispatch
import SprofProfile

/// Appends protobuf wire format (varints and length-delimited fields) to a byte buffer.
///
/// The pprof writer encodes straight to bytes instead of filling the generated message types and
/// serializing them: for a 100k-stack profile that is several times faster (bench/RESULTS.md), and
/// writing PREFIX.pb.gz is on the path between the profiled program's exit and the prompt. The
/// output is the canonical encoding SwiftProtobuf produces for the same message (fields in number
/// order, proto3 defaults left out, repeated scalars packed); a test checks byte equality.
final class ProtobufWriter {
    // A raw buffer rather than [UInt8]: appends are the writer's inner loop (millions of varints
    // for a 100k-stack profile), and Array's per-append capacity and uniqueness checks doubled
    // its cost.
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 256) {
        self.capacity = max(16, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        base.deallocate()
    }

    /// The bytes written so far.
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// Lends the bytes written so far (no copy).
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    @inline(__always) private func ensure(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    @inline(never) private func grow(_ needed: Int) {
        let newCapacity = max(needed, capacity * 2)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always) func varint(_ value: UInt64) {
        ensure(10)
        var v = value
        var p = base + count
        while v >= 0x80 {
            p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            p += 1
            v >>= 7
        }
        p.pointee = UInt8(v)
        count = p - base + 1
    }

    @inline(__always) func tag(_ field: UInt64, _ wireType: UInt64) {
        varint(field << 3 | wireType)
    }

    /// An int64/uint64/bool field; proto3 leaves zero out.
    @inline(__always) func field(_ field: UInt64, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(value)
    }

    @inline(__always) func field(_ field: UInt64, _ value: Int64) {
        self.field(field, UInt64(bitPattern: value))
    }

    @inline(__always) func field(_ field: UInt64, _ value: Bool) {
        self.field(field, value ? UInt64(1) : 0)
    }

    /// Raw bytes (an already encoded field, or another writer's output).
    func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        ensure(bytes.count)
        (base + count).update(from: from, count: bytes.count)
        count += bytes.count
    }

    /// One element of a repeated string field (always written, even when empty).
    func string(_ field: UInt64, _ value: String) {
        tag(field, 2)
        var s = value
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            guard let from = utf8.baseAddress else { return }
            ensure(utf8.count)
            (base + count).update(from: from, count: utf8.count)
            count += utf8.count
        }
    }

    /// A length-delimited field whose content `body` appends. The length is reserved as one byte
    /// (nested messages here are almost all under 128 bytes) and widened afterwards if needed.
    @inline(__always) func delimited(_ field: UInt64, _ body: () -> Void) {
        let at = beginDelimited(field)
        body()
        endDelimited(at)
    }

    /// ``delimited(_:_:)`` in two calls, for loops that must not run in a closure: returns where
    /// the length goes, to pass to ``endDelimited(_:)`` after the content.
    @inline(__always) func beginDelimited(_ field: UInt64) -> Int {
        tag(field, 2)
        ensure(1)
        let at = count
        count += 1
        return at
    }

    @inline(__always) func endDelimited(_ at: Int) {
        let length = count - at - 1
        if length < 0x80 {
            base[at] = UInt8(length)
        } else {
            widen(at: at, length: length)
        }
    }

    /// Makes room for `extra` bytes, so that ``byte(_:)`` may follow without checks.
    @inline(__always) func reserve(_ extra: Int) {
        ensure(extra)
    }

    /// One byte, after ``reserve(_:)``.
    @inline(__always) func byte(_ value: UInt8) {
        base[count] = value
        count += 1
    }

    @inline(never) private func widen(at: Int, length: Int) {
        var width = 1
        while length >> (7 * width) != 0 { width += 1 }
        ensure(width - 1)
        (base + at + width).update(from: base + at + 1, count: length)  // overlapping: memmove semantics
        var v = UInt64(length)
        for i in 0..<width {
            base[at + i] = UInt8(truncatingIfNeeded: v) | (i == width - 1 ? 0 : 0x80)
            v >>= 7
        }
        count = at + width + length
    }

    /// A packed repeated varint field; left out when empty, as proto3 does.
    @inline(__always) func packed<C: Collection>(_ field: UInt64, _ values: C, _ transform: (C.Element) -> UInt64) {
        guard !values.isEmpty else { return }
        delimited(field) {
            for v in values { varint(transform(v)) }
        }
    }
}

/// Interns strings in first-use order; index 0 is "" as the schema requires.
struct StringTable {
    private(set) var strings: [String] = [""]
    private var indices: [String: Int64] = ["": 0]

    /// Room for `count` strings: growing the dictionary rehashes every string already in it.
    mutating func reserve(_ count: Int) {
        strings.reserveCapacity(count)
        indices.reserveCapacity(count)
    }

    mutating func callAsFunction(_ s: String) -> Int64 {
        if let i = indices[s] { return i }
        let i = Int64(strings.count)
        strings.append(s)
        indices[s] = i
        return i
    }
}

/// Writes one profile as a protobuf `Profile` message (see ``PprofFormat`` for the mapping),
/// checking every index it follows before following it, so that a broken value is an error,
/// never a trap.
struct PprofWriter {
    private let p: Profile
    private var strings = StringTable()

    init(_ profile: Profile) {
        p = profile
    }

    // profile.proto field numbers (google/pprof proto/profile.proto).
    private enum ProfileField {
        static let sampleType: UInt64 = 1, sample: UInt64 = 2, mapping: UInt64 = 3, location: UInt64 = 4
        static let function: UInt64 = 5, stringTable: UInt64 = 6, timeNanos: UInt64 = 9, durationNanos: UInt64 = 10
        static let periodType: UInt64 = 11, period: UInt64 = 12, comment: UInt64 = 13, defaultSampleType: UInt64 = 14
    }

    private struct MappingOut {
        var mapping: Profile.Mapping
        var path: Int64 = 0
        var buildID: Int64 = 0
    }

    /// The encoded message in segments, to be joined in order (protobuf fields simply
    /// concatenate): callers compress them or copy them out without joining them first.
    mutating func write() throws -> [ProtobufWriter] {
        try check()
        strings.reserve(3 * p.functions.count + 2 * p.mappings.count + 2 * p.threads.count + p.metadata.provenanceLines.count + 16)

        // Strings are interned in a fixed order (measures, threads, mappings, functions, comments)
        // before anything is written, because the string table comes before the comments. Thread
        // strings come early: every sample repeats them, and indices below 128 take one byte.
        let sampleTypes = p.sampleTypes.map { (strings($0.type), strings($0.unit)) }
        let periodType = (strings(p.periodType.type), strings(p.periodType.unit))
        var defaultType: Int64 = 0
        if p.sampleTypes.indices.contains(p.defaultSampleType) {
            defaultType = strings(p.sampleTypes[p.defaultSampleType].type)
        }
        let (order, threadLabels) = try sampleOrderAndLabels()
        let runKey = p.samples.contains { $0.run != nil } ? strings(PprofFormat.runLabel) : 0

        // A reader learns a location's kind from its mapping's path (``PprofFormat/decode(_:)``).
        // Kernel and JIT locations whose mapping does not say so (none at all, or the anonymous
        // region JIT code lives in) get a `[kernel.kallsyms]`/`[jit]` mapping: a copy of theirs
        // with that path, or one spanning their addresses. These are appended after the model's
        // own in first-use order, so the model's mapping ids stay index + 1, and the kind
        // survives a round trip.
        var mappings = p.mappings.map { MappingOut(mapping: $0) }
        struct Synthesized: Hashable {
            var kind: FrameKind
            var mapping: Int?
        }
        var synthesizedID: [Synthesized: UInt64] = [:]
        var locationMapping = [UInt64](repeating: 0, count: p.locations.count)
        var spans: [Int: (low: UInt64, high: UInt64)] = [:]  // mappings index → address span, for mapping-less ones
        for (i, l) in p.locations.enumerated() {
            if let m = l.mapping { locationMapping[i] = UInt64(m + 1) }
            guard l.kind == .kernel || l.kind == .jit else { continue }
            if let m = l.mapping, PprofDecoder.kind(ofMappingPath: p.mappings[m].path) == l.kind { continue }
            let key = Synthesized(kind: l.kind, mapping: l.mapping)
            let id: UInt64
            if let known = synthesizedID[key] {
                id = known
            } else {
                let path = l.kind == .kernel ? PprofFormat.kernelMappingPath : PprofFormat.jitMappingPath
                var mapping = l.mapping.map { p.mappings[$0] } ?? Profile.Mapping(path: path)
                mapping.path = path
                mappings.append(MappingOut(mapping: mapping))
                id = UInt64(mappings.count)
                synthesizedID[key] = id
            }
            locationMapping[i] = id
            if l.mapping == nil && l.address != 0 {
                let at = Int(id - 1)
                let span = spans[at] ?? (l.address, l.address)
                spans[at] = (min(span.low, l.address), max(span.high, l.address))
            }
        }
        for (at, span) in spans {
            mappings[at].mapping.start = span.low
            mappings[at].mapping.limit = span.high == .max ? .max : span.high + 1
        }
        for i in mappings.indices {
            mappings[i].path = strings(mappings[i].mapping.path)
            mappings[i].buildID = strings(mappings[i].mapping.buildID)
        }
        // `name` is the short name the views show (unique in this profile), `system_name` the
        // linkage name, from which a reader makes the full name again (``Profile/FunctionNames``).
        let names = p.functionNames()
        let functions = p.functions.indices.map { i in
            (strings(names[i]), strings(p.functions[i].systemName), strings(p.functions[i].file))
        }

        let comments = p.metadata.provenanceLines.map { strings($0) }

        // The message's fields are encoded in independent segments on all CPUs, then joined:
        // protobuf is a concatenation of fields, so the bytes do not depend on how it is split.
        // Samples are the bulk (a 100k-stack profile is 90% samples), in chunks of a fixed count.
        let head = ProtobufWriter(capacity: 256)
        for (type, unit) in sampleTypes {
            head.delimited(ProfileField.sampleType) {
                head.field(1, type)
                head.field(2, unit)
            }
        }
        let profile = p
        let table = strings.strings
        let chunk = 16384
        let sampleSegments = (order.count + chunk - 1) / chunk
        // Segment order in the file: samples…, locations (with mappings), functions, strings.
        let segmentCount = sampleSegments + 3
        var parts = [ProtobufWriter?](repeating: nil, count: segmentCount)
        var problems = [String?](repeating: nil, count: sampleSegments)
        parts.withUnsafeMutableBufferPointer { slots in
          problems.withUnsafeMutableBufferPointer { problems in
            nonisolated(unsafe) let (slots, problems) = (slots, problems)
            // Up to one chunk of samples, handing segments to other threads costs more than
            // encoding them here.
            let perform: (Int, (Int) -> Void) -> Void = sampleSegments > 1
                ? { DispatchQueue.concurrentPerform(iterations: $0, execute: $1) }
                : { for i in 0..<$0 { $1(i) } }
            perform(segmentCount) { task in
                // The three table segments first: they are single tasks, samples spread evenly.
                switch task {
                case 0:
                    let w = ProtobufWriter(capacity: 64 * mappings.count + 32 * profile.locations.count + 256)
                    Self.writeMappings(mappings, into: w)
                    Self.writeLocations(profile, mapping: locationMapping, into: w)
                    slots[sampleSegments] = w
                case 1:
                    let w = ProtobufWriter(capacity: 16 * functions.count + 256)
                    Self.writeFunctions(functions, profile, into: w)
                    slots[sampleSegments + 1] = w
                case 2:
                    let w = ProtobufWriter(capacity: table.reduce(64) { $0 + $1.utf8.count + 4 })
                    for s in table { w.string(ProfileField.stringTable, s) }
                    slots[sampleSegments + 2] = w
                default:
                    let i = task - 3
                    let range = i * chunk..<min(order.count, (i + 1) * chunk)
                    let w = ProtobufWriter(capacity: 64 * range.count + 256)
                    problems[i] = Self.writeSamples(profile, order: order, range, labels: threadLabels, runKey: runKey, into: w)
                    slots[i] = w
                }
            }
          }
        }
        if let problem = problems.lazy.compactMap({ $0 }).first { throw FormatError.inconsistent(problem) }
        let w = ProtobufWriter(capacity: 64 + 11 * comments.count)
        w.field(ProfileField.timeNanos, Int64(clamping: p.metadata.startTime))
        w.field(ProfileField.durationNanos, Int64(clamping: p.metadata.duration))
        w.delimited(ProfileField.periodType) {
            w.field(1, periodType.0)
            w.field(2, periodType.1)
        }
        w.field(ProfileField.period, p.period)
        w.packed(ProfileField.comment, comments) { UInt64(bitPattern: $0) }
        w.field(ProfileField.defaultSampleType, defaultType)
        return [head] + parts.map { $0! } + [w]
    }

    /// Samples `order[range]`, each with its stack's location ids, its values and its thread's
    /// pre-encoded labels; returns what is wrong with the first inconsistent sample, checked
    /// before it is read. Arrays are read by index through pointers, with no closure in the
    /// loop: a closure over an element (`withUnsafeBufferPointer`) makes Swift retain and release
    /// it, and at 100k samples that reference counting was a third of the encoding time.
    private static func writeSamples(_ p: Profile, order: [Int], _ range: Range<Int>, labels: [[UInt8]], runKey: Int64, into w: ProtobufWriter) -> String? {
        let (stackCount, locationCount, threadCount, typeCount) = (p.stacks.count, p.locations.count, p.threads.count, p.sampleTypes.count)
        return p.samples.withUnsafeBufferPointer { samples in
            p.stacks.withUnsafeBufferPointer { stacks in
                labels.withUnsafeBufferPointer { labels in
                    order.withUnsafeBufferPointer { order in
                        for k in range {
                            let i = order[k]
                            let sample = samples.baseAddress! + i
                            let s = sample.pointee.stack
                            guard UInt(bitPattern: s) < UInt(stackCount) else { return "sample \(i) refers to stack \(s) of \(stackCount)" }
                            let values = sample.pointee.values.count
                            guard values == typeCount else { return "sample \(i) has \(values) values for \(typeCount) sample types" }
                            let thread = sample.pointee.thread
                            if let t = thread, UInt(bitPattern: t) >= UInt(threadCount) { return "sample \(i) refers to thread \(t) of \(threadCount)" }
                            let stack = stacks.baseAddress! + s
                            let at = w.beginDelimited(ProfileField.sample)
                            let frames = stack.pointee.count
                            if frames > 0 {
                                let packed = w.beginDelimited(1)
                                for j in 0..<frames {
                                    let l = stack.pointee[j]
                                    guard UInt(bitPattern: l) < UInt(locationCount) else { return "stack \(s) refers to location \(l) of \(locationCount)" }
                                    w.varint(UInt64(l + 1))
                                }
                                w.endDelimited(packed)
                            }
                            if values > 0 {
                                let packed = w.beginDelimited(2)
                                for j in 0..<values { w.varint(UInt64(bitPattern: sample.pointee.values[j])) }
                                w.endDelimited(packed)
                            }
                            if let t = thread {
                                let label = labels.baseAddress! + t
                                let n = label.pointee.count
                                w.reserve(n)
                                for j in 0..<n { w.byte(label.pointee[j]) }
                            }
                            if let run = sample.pointee.run {
                                w.delimited(3) { w.field(1, runKey); w.field(3, Int64(run)) }
                            }
                            w.endDelimited(at)
                        }
                        return nil
                    }
                }
            }
        }
    }

    private static func writeMappings(_ mappings: [MappingOut], into w: ProtobufWriter) {
        for (i, m) in mappings.enumerated() {
            w.delimited(ProfileField.mapping) {
                w.field(1, UInt64(i + 1))
                w.field(2, m.mapping.start)
                w.field(3, m.mapping.limit)
                w.field(4, m.mapping.fileOffset)
                w.field(5, m.path)
                w.field(6, m.buildID)
                w.field(7, m.mapping.hasFunctions)
                w.field(8, m.mapping.hasFilenames)
                w.field(9, m.mapping.hasLineNumbers)
                w.field(10, m.mapping.hasInlineFrames)
            }
        }
    }

    private static func writeLocations(_ p: Profile, mapping: [UInt64], into w: ProtobufWriter) {
        for (i, l) in p.locations.enumerated() {
            w.delimited(ProfileField.location) {
                w.field(1, UInt64(i + 1))
                w.field(2, mapping[i])
                w.field(3, l.address)
                for line in l.lines {
                    w.delimited(4) {
                        w.field(1, UInt64(line.function + 1))
                        w.field(2, Int64(line.line))
                    }
                }
            }
        }
    }

    private static func writeFunctions(_ functions: [(Int64, Int64, Int64)], _ p: Profile, into w: ProtobufWriter) {
        for (i, f) in functions.enumerated() {
            w.delimited(ProfileField.function) {
                w.field(1, UInt64(i + 1))
                w.field(2, f.0)
                w.field(3, f.1)
                w.field(4, f.2)
                w.field(5, Int64(p.functions[i].startLine))
            }
        }
    }

    /// Every index the writer follows, checked once so that writing cannot trap.
    private func check() throws {
        if !p.sampleTypes.isEmpty && !p.sampleTypes.indices.contains(p.defaultSampleType) {
            throw FormatError.inconsistent("default sample type \(p.defaultSampleType) is not one of the \(p.sampleTypes.count) sample types")
        }
        for (i, l) in p.locations.enumerated() {
            if let m = l.mapping, !p.mappings.indices.contains(m) {
                throw FormatError.inconsistent("location \(i) refers to mapping \(m) of \(p.mappings.count)")
            }
            for line in l.lines where !p.functions.indices.contains(line.function) {
                throw FormatError.inconsistent("location \(i) refers to function \(line.function) of \(p.functions.count)")
            }
        }
        // Samples and the stacks they use are checked as they are written (``writeSamples``): one
        // pass over them instead of two, and at 100k stacks each pass is 100k cache misses.
    }

    /// The order samples are written in, and each used thread's encoded labels.
    ///
    /// Samples go in (stack, thread) order, threads ranked by content (nil first): a reader
    /// interns stacks in file order and numbers threads its own way, so an order that depends
    /// only on what the file shows makes writing what was read give the same bytes again. Thread
    /// strings are interned in rank order for the same reason.
    private mutating func sampleOrderAndLabels() throws -> (order: [Int], labels: [[UInt8]]) {
        var used = [Bool](repeating: false, count: p.threads.count)
        // The sorts below index by thread and stack: check those two here, the rest when writing.
        for (i, s) in p.samples.enumerated() {
            guard p.stacks.indices.contains(s.stack) else {
                throw FormatError.inconsistent("sample \(i) refers to stack \(s.stack) of \(p.stacks.count)")
            }
            if let t = s.thread {
                guard used.indices.contains(t) else { throw FormatError.inconsistent("sample \(i) refers to thread \(t) of \(p.threads.count)") }
                used[t] = true
            }
        }
        let byContent = p.threads.indices.filter { used[$0] }.sorted { a, b in
            let x = p.threads[a], y = p.threads[b]
            if x.pid != y.pid { return x.pid < y.pid }
            if x.tid != y.tid { return x.tid < y.tid }
            if x.processName != y.processName { return x.processName < y.processName }
            if x.name != y.name { return x.name < y.name }
            return a < b
        }
        var rank = [Int](repeating: 0, count: p.threads.count)
        var labels = [[UInt8]](repeating: [], count: p.threads.count)
        if !byContent.isEmpty {
            let pid = strings(PprofFormat.pidLabel), tid = strings(PprofFormat.tidLabel)
            let threadName = strings(PprofFormat.threadNameLabel), processName = strings(PprofFormat.processNameLabel)
            for (r, i) in byContent.enumerated() {
                rank[i] = r + 1
                let t = p.threads[i]
                let w = ProtobufWriter()
                w.delimited(3) { w.field(1, pid); w.field(3, Int64(t.pid)) }
                w.delimited(3) { w.field(1, tid); w.field(3, Int64(t.tid)) }
                let name = strings(t.name), process = strings(t.processName)
                w.delimited(3) { w.field(1, threadName); w.field(2, name) }
                w.delimited(3) { w.field(1, processName); w.field(2, process) }
                labels[i] = w.bytes
            }
        }
        // Two stable counting sorts, by rank then by stack: linear in the sample count (a
        // comparison sort of 100k samples costs more than encoding them).
        var byRank = [Int](repeating: 0, count: byContent.count + 2)
        for s in p.samples { byRank[(s.thread.map { rank[$0] } ?? 0) + 1] += 1 }
        for i in 1..<byRank.count { byRank[i] += byRank[i - 1] }
        var rankOrder = [Int](repeating: 0, count: p.samples.count)
        for (i, s) in p.samples.enumerated() {
            let r = s.thread.map { rank[$0] } ?? 0
            rankOrder[byRank[r]] = i
            byRank[r] += 1
        }
        var byStack = [Int](repeating: 0, count: p.stacks.count + 1)
        for s in p.samples { byStack[s.stack + 1] += 1 }
        for i in 1..<byStack.count { byStack[i] += byStack[i - 1] }
        var order = [Int](repeating: 0, count: p.samples.count)
        for i in rankOrder {
            let stack = p.samples[i].stack
            order[byStack[stack]] = i
            byStack[stack] += 1
        }
        return (order, labels)
    }
}
