import Foundation
import Sprof

/// `sprof diff --artifacts DIR`: the layout a CI workflow publishes, written from one comparison.
///
/// - `DIR/flamegraphs/NAME_KIND.svg`: the differential flame graph (NEW's widths, BASE's colours);
/// - `DIR/NAME_KIND_top.txt`: NEW as `go tool pprof -top` prints it;
/// - `DIR/NAME_KIND_diff_top.txt`: NEW against BASE as `go tool pprof -top -diff_base` prints it.
///
/// KIND is `cpu`, or `mem` for heap profiles. The same inputs give the same bytes: no times,
/// no paths other than the names given, every sort with a final tie-break by name.
struct DiffArtifacts {
    let directory: String
    let name: String
    let kind: String

    /// Heap profiles: pprof's `space`/`bytes` period type or Go's `alloc_*`/`inuse_*` sample types.
    static func isHeap(_ p: Profile) -> Bool { p.isHeapProfile }

    /// The files the layout writes.
    var paths: (svg: String, top: String, diff: String) {
        (svg: "\(directory)/flamegraphs/\(name)_\(kind).svg", top: "\(directory)/\(name)_\(kind)_top.txt",
         diff: "\(directory)/\(name)_\(kind)_diff_top.txt")
    }

    mutating func write(svg: [UInt8], base: Profile, baseValue: Int, new: Profile, newValue: Int, normalize: Bool) throws {
        let paths = self.paths
        for dir in [directory, directory + "/flamegraphs"] {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw fail("--artifacts \(directory): cannot create \(dir) (\(error.localizedDescription)); choose another directory")
            }
        }
        // Every file checked before any is written (see OutputFile).
        let files = (svg: try OutputFile(path: paths.svg), top: try OutputFile(path: paths.top), diff: try OutputFile(path: paths.diff))
        let newTotal = Double(new.total(newValue)), baseTotal = Double(base.total(baseValue))
        let scale = normalize && baseTotal > 0 ? newTotal / baseTotal : 1
        try files.svg.write(svg)
        try files.top.write(Array(Self.topText(new, value: newValue, base: nil, scale: 1).utf8))
        try files.diff.write(Array(Self.topText(new, value: newValue, base: (base, baseValue), scale: scale).utf8))
    }

    /// A `pprof -top` table of `profile`'s value `value`; with `base`, of NEW minus BASE (BASE's
    /// values times `scale`, as `-diff_base` with `-normalize`), percentages of NEW's total.
    static func topText(_ profile: Profile, value: Int, base: (Profile, Int)?, scale: Double) -> String {
        let type = profile.sampleTypes[value]
        var flat: [String: Double] = [:], cum: [String: Double] = [:]
        // With a base, both sides are named together (one name per function on both sides).
        let sides = Profile.FunctionNames.shared(base.map { [profile, $0.0] } ?? [profile])
        for row in profile.top(valueIndex: value, names: sides[0]) {
            flat[row.name, default: 0] += Double(row.selfValue)
            cum[row.name, default: 0] += Double(row.totalValue)
        }
        if let (b, bv) = base {
            for row in b.top(valueIndex: bv, names: sides[1]) {
                flat[row.name, default: 0] -= Double(row.selfValue) * scale
                cum[row.name, default: 0] -= Double(row.totalValue) * scale
            }
        }
        let total = Double(profile.total(value))
        let names = Set(flat.keys).union(cum.keys).filter { abs(flat[$0] ?? 0) > 1e-9 || abs(cum[$0] ?? 0) > 1e-9 }
        let rows = names.sorted { a, b in
            let (fa, fb) = (abs(flat[a] ?? 0), abs(flat[b] ?? 0))
            if fa != fb { return fa > fb }
            let (ca, cb) = (abs(cum[a] ?? 0), abs(cum[b] ?? 0))
            if ca != cb { return ca > cb }
            return a < b
        }
        func percent(_ v: Double) -> String {
            let text = String(format: "%.2f%%", total == 0 ? 0 : 100 * v / total)
            return text == "-0.00%" ? "0.00%" : text  // a sum that cancels out is 0, not "-0"
        }
        let shown = rows.reduce(0.0) { $0 + (flat[$1] ?? 0) }
        var out = ""
        if let main = profile.mappings.first(where: { !$0.path.hasPrefix("[") && !$0.path.isEmpty }) { out += "File: \(main.baseName)\n" }
        out += "Type: \(type.type)\n"
        if base != nil { out += "Diff base: scaled by \(String(format: "%.6g", scale)) to this profile's total\n" }
        out += "Showing nodes accounting for \(Self.value(shown, unit: type.unit)), \(percent(shown)) of \(Self.value(total, unit: type.unit)) total\n"
        out += "      flat  flat%   sum%        cum   cum%\n"
        var sum = 0.0
        for name in rows {
            let f = flat[name] ?? 0, c = cum[name] ?? 0
            sum += f
            out += "\(pad(Self.value(f, unit: type.unit), 10)) \(pad(percent(f), 6)) \(pad(percent(sum), 6)) \(pad(Self.value(c, unit: type.unit), 10)) \(pad(percent(c), 6))  \(name)\n"
        }
        return out
    }

    /// A value as pprof labels it: nanoseconds in the largest unit below it (`1.75s`, `10ms`),
    /// bytes in binary multiples (`1.50MB`), counts as numbers; two decimals, `.00` left out.
    static func value(_ v: Double, unit: String) -> String {
        let scales: [(Double, String)]
        switch unit {
        case "nanoseconds": scales = [(1e9, "s"), (1e6, "ms"), (1e3, "us"), (1, "ns")]
        case "bytes": scales = [(1_099_511_627_776, "TB"), (1_073_741_824, "GB"), (1_048_576, "MB"), (1024, "kB"), (1, "B")]
        default: scales = [(1, "")]
        }
        let (factor, suffix) = scales.first { abs(v) >= $0.0 } ?? scales.last!
        var text = String(format: "%.2f", v / factor)
        if text.hasSuffix(".00") { text.removeLast(3) }
        if text == "-0" || text == "-0.00" { text = "0" }
        return text + suffix
    }
}
