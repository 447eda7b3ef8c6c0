import Foundation
import XCTest
import SprofTestSupport

/// Sample types are data: every view shows the same default (pprof's rule: default_sample_type,
/// else the last type), accepts `--sample-type NAME` for any of the profile's types, and names the
/// type it shows. Pinned on a real Go heap profile (`Tests/Fixtures/go/heap.pb.gz`, four types;
/// see Tests/Fixtures/README.md), whose four types rank different functions first.
final class SampleTypeTests: XCTestCase {
    private static let heap = TestFixtures.packageRoot.appendingPathComponent("Tests/Fixtures/go/heap.pb.gz").path
    private static let types = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]

    private func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try SprofCLI.run(args)
        XCTAssertEqual(r.status, 0, "sprof \(args.joined(separator: " ")): \(r.stderr)")
        return r
    }

    /// The frames of folded text with their counts, leaf → count, summed.
    private func leafTotals(_ folded: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in folded.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let n = Int(line[line.index(after: space)...]) else { continue }
            let leaf = line[..<space].split(separator: ";").last.map(String.init) ?? ""
            out[leaf, default: 0] += n
        }
        return out
    }

    /// The SVG's frames as (name, count) from their tooltips (`name (N label, P%)`).
    private func svgCounts(_ svg: String, label: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for part in svg.components(separatedBy: "<title>").dropFirst() {
            let title = part.components(separatedBy: "</title>")[0]
            guard let open = title.range(of: " (", options: .backwards),
                  let labelRange = title.range(of: " " + label + ", ", range: open.upperBound ..< title.endIndex) else { continue }
            let number = title[open.upperBound ..< labelRange.lowerBound].filter(\.isNumber)
            out[String(title[..<open.lowerBound]), default: 0] = Int(number) ?? -1
        }
        return out
    }

    func testEveryViewShowsTheSameDefaultAndEveryTypeByName() throws {
        let dir = SprofCLI.outputPrefix("sample-types")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // nil: the default, which for Go's heap profiles (no default_sample_type) is the last, inuse_space.
        for name in [nil] + Self.types.map(Optional.some) {
            let shown = name ?? "inuse_space"
            let option = name.map { ["--sample-type", $0] } ?? []
            let label = shown.hasSuffix("_space") ? shown + " bytes" : shown

            // convert: folded values of that type, and the speedscope profile named by it.
            let folded = try run(["convert", Self.heap, "--to", "folded", "-o", "-"] + option).stdout
            let leaves = leafTotals(folded)
            XCTAssertFalse(leaves.isEmpty, "\(shown): no folded stacks")
            let speedscope = try run(["convert", Self.heap, "--to", "speedscope", "-o", "-"] + option).stdout
            XCTAssertTrue(speedscope.contains("(\(shown))\""), "\(shown): speedscope profile name lacks the type")

            // report: the header names the type and its total is the folded total.
            let report = try run(["report", Self.heap, "--format", "json"] + option).stdout
            XCTAssertTrue(report.contains("\"sampleType\" : \"\(shown)\""), "\(shown): report JSON is of another type:\n\(report)")
            let text = try run(["report", Self.heap] + option).stdout
            XCTAssertTrue(text.split(separator: "\n").first?.contains(shown) == true, "\(shown): report header line:\n\(text)")
            let total = leaves.values.reduce(0, +)
            XCTAssertTrue(report.contains("\"total\" : \(total)"), "\(shown): report total differs from convert's \(total):\n\(report)")

            // flamegraph: the same values, labelled with the type, in subtitle and tooltips.
            let svg = try run(["flamegraph", Self.heap, "-o", "-"] + option).stdout
            XCTAssertTrue(svg.contains("sample type \(shown)/"), "\(shown): SVG subtitle does not name the type")
            let counts = svgCounts(svg, label: label)
            let all = counts["all"]
            XCTAssertEqual(all, total, "\(shown): flamegraph's total differs from convert's")
            let top = leaves.max { $0.value < $1.value }!
            XCTAssertEqual(counts[top.key], top.value, "\(shown): flamegraph's \(top.key) differs from convert's")

            // diff: the profile against itself compares that type, named in the graph.
            let out = dir + "/\(shown)-\(name == nil ? "default" : "named").svg"
            _ = try run(["diff", Self.heap, Self.heap, "-o", out] + option)
            let diffSVG = try String(contentsOfFile: out, encoding: .utf8)
            XCTAssertTrue(diffSVG.contains("(self \(label), base scaled"), "\(shown): diff subtitle does not name the type")
            XCTAssertEqual(svgCounts(diffSVG, label: label)["all"], total, "\(shown): diff's widths are of another type")
        }
    }

    /// The four types rank different functions first, so a view on the wrong type cannot pass the test above.
    func testTheFixtureTypesDiffer() throws {
        var tops: Set<String> = []
        for type in Self.types {
            let folded = try run(["convert", Self.heap, "--to", "folded", "-o", "-", "--sample-type", type]).stdout
            tops.insert(leafTotals(folded).max { $0.value < $1.value }!.key + "\(leafTotals(folded).values.reduce(0, +))")
        }
        XCTAssertEqual(tops.count, 4, "each type gives another top leaf or total: \(tops)")
    }

    /// A name the profile lacks: one line listing the types, status 2, from every view.
    func testUnknownSampleTypeListsTheTypes() throws {
        let dir = SprofCLI.outputPrefix("sample-types-bad")
        for args in [["report", Self.heap], ["flamegraph", Self.heap, "-o", dir + ".svg"],
                     ["convert", Self.heap, "--to", "folded", "-o", dir + ".folded"], ["diff", Self.heap, Self.heap, "-o", dir + ".diff.svg"]] {
            let r = try SprofCLI.run(args + ["--sample-type", "cpu"])
            XCTAssertEqual(r.status, 2, "\(args[0]): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(args[0]): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("no 'cpu' values (it has: alloc_objects, alloc_space, inuse_objects, inuse_space)"), "\(args[0]): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + ".svg"), "nothing written on a usage error")
    }
}
