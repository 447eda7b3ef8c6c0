#if canImport(Glibc)
import Glibc
#endif
import SprofCore

/// Sysfs PMU events (`cpu/event=0xc0,umask=0x1/`): the PMU's dynamic type comes from
/// `/sys/bus/event_source/devices/PMU/type`, and each term's bit placement from its `format/TERM` file
/// (`config:0-7`, `config1:0-63`, `config:8-15,24-31`).
public enum PMUEvents {
    /// The sysfs root, overridable by tests.
    nonisolated(unsafe) public static var sysfsRoot = "/sys/bus/event_source/devices"

    /// Parses `pmu/term=value,…/` (the trailing slash included).
    public static func parse(_ text: String) throws(EventError) -> EventSpec {
        var body = Substring(text)
        if body.last == "/" { body.removeLast() }
        guard let slash = body.firstIndex(of: "/") else { throw EventError("malformed PMU event '\(text)'; expected pmu/term=value,…/") }
        let pmu = String(body[..<slash])
        let termsText = body[body.index(after: slash)...]
        let dir = "\(sysfsRoot)/\(pmu)"
        guard let typeText = readTextFile("\(dir)/type"), let type = UInt32(typeText.trimmingSpaces.filter { $0 != "\n" }) else {
            let known = listDirectory(sysfsRoot).joined(separator: ", ")
            throw EventError("unknown PMU '\(pmu)' in '\(text)'; PMUs here: \(known)")
        }
        var spec = EventSpec(name: text.hasSuffix("/") ? text : text + "/", type: type, config: 0)
        for term in termsText.split(separator: ",") where !term.isEmpty {
            let parts = term.split(separator: "=", maxSplits: 1)
            let key = String(parts[0])
            var value: UInt64 = 1
            if parts.count == 2 {
                let v = parts[1]
                let parsed = v.hasPrefix("0x") ? UInt64(v.dropFirst(2), radix: 16) : UInt64(v)
                guard let parsed else { throw EventError("bad value '\(v)' for '\(key)' in '\(text)'") }
                value = parsed
            }
            guard let format = readTextFile("\(dir)/format/\(key)") else {
                let terms = listDirectory("\(dir)/format").joined(separator: ", ")
                throw EventError("unknown term '\(key)' for PMU '\(pmu)'; valid terms: \(terms)")
            }
            try place(value: value, format: format.trimmingSpaces.filter { $0 != "\n" }, into: &spec, term: key)
        }
        return spec
    }

    /// Spreads `value` over the bit ranges named by a sysfs format string such as `config:8-15,24-31`.
    static func place(value: UInt64, format: String, into spec: inout EventSpec, term: String) throws(EventError) {
        let fieldAndBits = format.split(separator: ":", maxSplits: 1)
        guard fieldAndBits.count == 2 else { throw EventError("unreadable sysfs format '\(format)' for '\(term)'") }
        var remaining = value
        var out: UInt64 = 0
        for range in fieldAndBits[1].split(separator: ",") {
            let ends = range.split(separator: "-").compactMap { Int($0) }
            guard let lo = ends.first else { throw EventError("unreadable sysfs format '\(format)' for '\(term)'") }
            let hi = ends.count > 1 ? ends[1] : lo
            let width = hi - lo + 1
            let mask: UInt64 = width >= 64 ? ~0 : (1 << UInt64(width)) - 1
            out |= (remaining & mask) << UInt64(lo)
            remaining = width >= 64 ? 0 : remaining >> UInt64(width)
        }
        if remaining != 0 { throw EventError("value for '\(term)' does not fit its \(format) field") }
        switch fieldAndBits[0] {
        case "config": spec.config |= out
        case "config1": spec.config1 |= out
        case "config2": spec.config2 |= out
        default: throw EventError("unsupported sysfs field '\(fieldAndBits[0])' for '\(term)'")
        }
    }
}

func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

extension PMUEvents {
    /// The PMUs this machine exposes in sysfs.
    public static func available() -> [String] { listDirectory(sysfsRoot) }
}
