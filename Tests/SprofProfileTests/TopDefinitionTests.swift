@testable import SprofProfile
import XCTest

/// `Profile.top` sums interned keys in arrays; these tests hold it to its definition, written
/// out plainly below (a set of key arrays per sample), on random profiles with inline chains,
/// unsymbolized and kernel locations, recursion, samples without a thread and negative values.
final class TopDefinitionTests: XCTestCase {
    /// The definition: per sample, the key of its leaf gets the self value, and every distinct
    /// key of its stack the total value; rows by self, total, then key.
    static func reference(_ p: Profile, keys: [SortKey], valueIndex: Int, style: NameStyle, granularity: Granularity) -> [CostRow] {
        let shown = p.functionNames(style)
        var selfValues: [[String]: Int64] = [:], totalValues: [[String]: Int64] = [:]
        for sample in p.samples {
            let value = sample.values[valueIndex]
            guard value != 0 else { continue }
            let t = sample.thread.map { p.threads[$0] }
            func key(_ name: String, _ dso: String) -> [String] {
                let parts: [SortKey: String] = [.comm: t?.processName ?? "", .dso: dso, .sym: name,
                                                 .thread: t.map { "\($0.name)-\($0.tid)" } ?? ""]
                return keys.map { parts[$0]! }
            }
            var all = Set<[String]>()
            var leaf: [String]?
            if !keys.contains(.sym) && !keys.contains(.dso) {
                leaf = key("", "")
                all = [leaf!]
            } else {
                for (depth, l) in p.stacks[sample.stack].enumerated() {
                    let location = p.locations[l]
                    let dso = location.mapping.map { p.mappings[$0].baseName } ?? (location.kind == .kernel ? "[kernel.kallsyms]" : "[unknown]")
                    var names: [String] = location.lines.isEmpty ? p.frameNames(ofLocation: l, names: shown) : location.lines.map { line in
                        let f = p.functions[line.function]
                        let name = shown[line.function]
                        guard granularity != .functions, !f.file.isEmpty || line.line > 0 else { return name }
                        return name + " " + (f.file.isEmpty ? "?" : f.file) + ":" + (line.line > 0 ? String(line.line) : "?")
                    }
                    if granularity == .addresses && location.kind != .marker {
                        names = names.map { $0.hasPrefix("[") && location.lines.isEmpty ? $0 : "0x" + String(location.address, radix: 16) + " " + $0 }
                    }
                    for (i, name) in names.enumerated() {
                        if depth == 0 && i == 0 { leaf = key(name, dso) }
                        all.insert(key(name, dso))
                    }
                }
            }
            if let leaf { selfValues[leaf, default: 0] += value }
            for k in all { totalValues[k, default: 0] += value }
        }
        let grand = p.total(valueIndex)
        let d = grand == 0 ? 1.0 : Double(grand)
        return totalValues.map { k, v in
            let own = selfValues[k] ?? 0
            return CostRow(key: k, selfValue: own, totalValue: v, selfPercent: 100 * Double(own) / d, totalPercent: 100 * Double(v) / d)
        }.sorted { a, b in
            if a.selfValue != b.selfValue { return a.selfValue > b.selfValue }
            if a.totalValue != b.totalValue { return a.totalValue > b.totalValue }
            return a.key.lexicographicallyPrecedes(b.key)
        }
    }

    static func randomProfile(_ g: inout SystemRandomNumberGenerator) -> Profile {
        var p = Profile(sampleTypes: [Profile.ValueType(type: "samples", unit: "count"), Profile.ValueType(type: "cpu", unit: "nanoseconds")])
        p.mappings = [Profile.Mapping(path: "/usr/lib/libc.so.6"), Profile.Mapping(path: "/bin/app")]
        p.functions = (0..<6).map { i in
            Profile.Function(name: "f\(i)", fullName: "ns::f\(i)(int)", file: i % 3 == 0 ? "" : "f\(i % 2).c", startLine: i)
        }
        let kinds: [FrameKind] = [.user, .user, .kernel, .jit, .marker]
        p.locations = (0..<10).map { i in
            let lines = (0..<Int.random(in: 0...3, using: &g)).map { _ in
                Profile.Line(function: Int.random(in: 0..<6, using: &g), line: Int.random(in: 0...3, using: &g))
            }
            return Profile.Location(address: UInt64(0x1000 + 16 * i), mapping: Bool.random(using: &g) ? Int.random(in: 0...1, using: &g) : nil,
                                    lines: lines, kind: kinds.randomElement(using: &g)!)
        }
        p.stacks = (0..<12).map { _ in (0..<Int.random(in: 0...6, using: &g)).map { _ in Int.random(in: 0..<10, using: &g) } }
        p.threads = [Profile.Thread(pid: 1, tid: 1, name: "app", processName: "app"),
                     Profile.Thread(pid: 1, tid: 2, name: "worker", processName: "app"),
                     Profile.Thread(pid: 2, tid: 2, name: "other", processName: "other")]
        p.samples = (0..<25).map { _ in
            let v = Int64.random(in: -2...9, using: &g)
            return Profile.Sample(stack: Int.random(in: 0..<12, using: &g), thread: Int.random(in: -1...2, using: &g) >= 0 ? Int.random(in: 0...2, using: &g) : nil,
                                  values: [v, v * 1000 + Int64.random(in: 0...5, using: &g)])
        }
        return p
    }

    func testTopMatchesItsDefinitionOnRandomProfiles() {
        var g = SystemRandomNumberGenerator()
        let keySets: [[SortKey]] = [[.sym], [.dso], [.comm], [.thread], [.comm, .sym], [.dso, .sym], [.thread, .dso, .sym], [.comm, .thread]]
        for _ in 0..<40 {
            let p = Self.randomProfile(&g)
            for keys in keySets {
                for granularity in Granularity.allCases {
                    for style in [NameStyle.short, .full] {
                        let valueIndex = Int.random(in: 0...1, using: &g)
                        let got = p.top(by: keys, valueIndex: valueIndex, names: p.functionNames(style), granularity: granularity)
                        let want = Self.reference(p, keys: keys, valueIndex: valueIndex, style: style, granularity: granularity)
                        XCTAssertEqual(got, want, "keys \(keys), \(granularity), \(style) names")
                    }
                }
            }
        }
    }
}
