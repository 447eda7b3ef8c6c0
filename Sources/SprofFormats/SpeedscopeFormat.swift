import SprofProfile

/// speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json, generated
/// from jlfwong/speedscope `src/lib/file-format-spec.ts`), written as "sampled" profiles.
///
/// - One profile per thread (samples without a thread form one profile named after the file),
///   in thread order; the one with the largest weight is the one speedscope opens first.
/// - Frames are shared and keyed by (name, file, line): the function's display name, its source
///   file and first line when known. An inline chain becomes one frame per function, outermost
///   first; an unsymbolized location is `[module+0xOFFSET]`.
/// - Each sample is one aggregated (stack, thread) entry, root first, weighted by the chosen
///   sample type; entries whose weight is zero or negative are left out. Samples are sorted by
///   frame names, so speedscope's "time order" view reads like a flame graph.
/// - The unit is `nanoseconds` for a nanoseconds sample type (`bytes`, `microseconds`,
///   `milliseconds`, `seconds` likewise), `none` otherwise.
///
/// Output is deterministic: the same profile gives the same bytes.
public enum SpeedscopeFormat {
    /// The schema URL written as `$schema`.
    public static let schemaURL = "https://www.speedscope.app/file-format-schema.json"

    /// The speedscope JSON (UTF-8) of `profile`.
    /// - Parameters:
    ///   - valueIndex: which ``Profile/sampleTypes`` entry gives the weights (e.g. the
    ///     `cpu`/`nanoseconds` column); must be a valid index (a precondition, not an input error:
    ///     pick it with ``Profile/sampleTypeIndex(_:)``).
    ///   - name: the file's name, shown in speedscope's title (e.g. the command line).
    public static func encode(_ profile: Profile, valueIndex: Int, name: String) -> [UInt8] {
        precondition(profile.sampleTypes.indices.contains(valueIndex), "valueIndex \(valueIndex) is not a sample type")
        let unit = speedscopeUnit(profile.sampleTypes[valueIndex].unit)

        // Frames per location, root-most first, interned in first-use order.
        struct FrameKey: Hashable {
            var name: String
            var file: String
            var line: Int
        }
        var frames: [FrameKey] = []
        var frameIndex: [FrameKey: Int] = [:]
        var locationFrames = [[Int]?](repeating: nil, count: profile.locations.count)
        let names = profile.functionNames()
        func framesOf(location l: Int) -> [Int] {
            if let known = locationFrames[l] { return known }
            let location = profile.locations[l]
            var keys: [FrameKey] = []
            if location.lines.isEmpty {
                keys = profile.frameNames(ofLocation: l).map { FrameKey(name: $0, file: "", line: 0) }
            } else {
                for line in location.lines.reversed() {
                    let f = profile.functions[line.function]
                    keys.append(FrameKey(name: names[line.function], file: f.file, line: f.startLine))
                }
            }
            let out = keys.map { key -> Int in
                if let i = frameIndex[key] { return i }
                frames.append(key)
                frameIndex[key] = frames.count - 1
                return frames.count - 1
            }
            locationFrames[l] = out
            return out
        }

        // Group by thread (nil last), merging stacks that name the same frames.
        var groups: [Int?: [[Int]: Int64]] = [:]
        for sample in profile.samples {
            let weight = sample.values[valueIndex]
            guard weight > 0 else { continue }
            var stack: [Int] = []
            for l in profile.stacks[sample.stack].reversed() { stack.append(contentsOf: framesOf(location: l)) }
            groups[sample.thread, default: [:]][stack, default: 0] &+= weight
        }

        // Alphabetical rank of each frame, for the sample order.
        let byName = frames.indices.sorted { a, b in
            let x = frames[a], y = frames[b]
            if x.name != y.name { return x.name < y.name }
            if x.file != y.file { return x.file < y.file }
            if x.line != y.line { return x.line < y.line }
            return a < b
        }
        var rank = [Int](repeating: 0, count: frames.count)
        for (r, f) in byName.enumerated() { rank[f] = r }

        var json = JSONWriter()
        json.raw("{\"$schema\":")
        json.string(schemaURL)
        json.raw(",\"exporter\":")
        json.string(profile.metadata.sprofVersion.isEmpty ? "sprof" : "sprof \(profile.metadata.sprofVersion)")
        json.raw(",\"name\":")
        json.string(name)

        let order: [Int?] = profile.threads.indices.map { Optional($0) } + [nil]
        var profiles: [(name: String, samples: [([Int], Int64)], total: Int64)] = []
        for t in order {
            guard let stacks = groups[t], !stacks.isEmpty else { continue }
            let samples = stacks.map { ($0.key, $0.value) }.sorted { a, b in
                a.0.lazy.map { rank[$0] }.lexicographicallyPrecedes(b.0.lazy.map { rank[$0] })
            }
            let total = samples.reduce(Int64(0)) { $0 &+ $1.1 }
            let title: String
            if let t {
                let th = profile.threads[t]
                if th.pid == 0 && th.tid == 0 && !th.name.isEmpty {
                    // No ids to show: a folded file's root-frame group (or the idle task).
                    title = th.name
                } else {
                    title = "\(th.name.isEmpty ? "tid \(th.tid)" : th.name) (\(th.processName.isEmpty ? "pid" : th.processName) \(th.pid)/\(th.tid))"
                }
            } else {
                title = name
            }
            profiles.append((title, samples, total))
        }
        var active = 0
        for (i, p) in profiles.enumerated() where p.total > profiles[active].total { active = i }
        json.raw(",\"activeProfileIndex\":\(active)")

        json.raw(",\"shared\":{\"frames\":[")
        json.list(frames) { json, f in
            json.raw("{\"name\":")
            json.string(f.name)
            if !f.file.isEmpty {
                json.raw(",\"file\":")
                json.string(f.file)
            }
            if f.line > 0 { json.raw(",\"line\":\(f.line)") }
            json.raw("}")
        }
        json.raw("]},\"profiles\":[")
        json.list(profiles) { json, p in
            json.raw("{\"type\":\"sampled\",\"name\":")
            json.string(p.name)
            json.raw(",\"unit\":\"\(unit)\",\"startValue\":0,\"endValue\":\(p.total),\"samples\":[")
            json.list(p.samples) { json, s in
                json.raw("[")
                json.list(s.0) { json, f in json.int(Int64(f)) }
                json.raw("]")
            }
            json.raw("],\"weights\":[")
            json.list(p.samples) { json, s in json.int(s.1) }
            json.raw("]}")
        }
        json.raw("]}\n")
        return json.bytes
    }

    /// speedscope's `ValueUnit` for a pprof unit.
    static func speedscopeUnit(_ unit: String) -> String {
        switch unit {
        case "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes": return unit
        default: return "none"
        }
    }
}

/// Appends JSON text to a byte buffer; strings escaped per RFC 8259 (quote, backslash and control
/// characters), everything else passed through as UTF-8.
struct JSONWriter {
    var bytes: [UInt8] = []

    mutating func raw(_ s: String) {
        bytes.append(contentsOf: s.utf8)
    }

    /// The elements of a JSON array (without its brackets), comma-separated.
    mutating func list<C: Sequence>(_ items: C, _ element: (inout JSONWriter, C.Element) -> Void) {
        var first = true
        for item in items {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            element(&self, item)
        }
    }

    /// A decimal integer, without the String that `"\(n)"` allocates (samples hold millions).
    mutating func int(_ n: Int64) {
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        var v = n.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[count] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                count += 1
            } while v > 0
            for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(d[i]) }
        }
    }

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0a: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0d: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(b >> 4)], hex[Int(b & 0xf)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
