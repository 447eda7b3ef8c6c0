import Foundation
import XCTest
import SprofProfile
@testable import SprofAnnotate

/// Per-line and per-address costs from a hand-built profile: self at the innermost line of the
/// leaf location, total once per sample, inlined code at its own lines and at the call site.
final class LineCostsTests: XCTestCase {
    /// main (m.c:3) calls work (w.c); work's location 0x1010 has `helper` (h.c:7) inlined at w.c:12.
    private func profile() -> Profile {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let mapping = b.mapping(Profile.Mapping(start: 0x1000, limit: 0x2000, path: "/bin/app", buildID: "abcd"))
        let main = b.function(Profile.Function(name: "main", file: "m.c"))
        let work = b.function(Profile.Function(name: "work", file: "w.c"))
        let helper = b.function(Profile.Function(name: "helper", file: "h.c"))
        let inMain = b.location(Profile.Location(address: 0x1100, mapping: mapping, lines: [.init(function: main, line: 3)]))
        let plain = b.location(Profile.Location(address: 0x1000, mapping: mapping, lines: [.init(function: work, line: 10)]))
        let inlined = b.location(Profile.Location(address: 0x1010, mapping: mapping,
                                                  lines: [.init(function: helper, line: 7), .init(function: work, line: 12)]))
        b.add(stack: b.stack([plain, inMain]), thread: nil, values: [5])
        b.add(stack: b.stack([inlined, inMain]), thread: nil, values: [3])
        b.add(stack: b.stack([inMain]), thread: nil, values: [2])
        return b.build(metadata: Profile.Metadata())
    }

    func testSelfAtTheInnermostLineTotalOncePerSample() throws {
        let costs = profile().functionCosts { $0.name == "work" }
        XCTAssertEqual(costs.count, 1)
        let work = try XCTUnwrap(costs.first)
        XCTAssertEqual(work.selfValue, 5)
        XCTAssertEqual(work.totalValue, 8)
        XCTAssertEqual(work.lines, [
            LineCost(file: "w.c", line: 10, selfValue: 5, totalValue: 5),
            LineCost(file: "w.c", line: 12, selfValue: 0, totalValue: 3),
        ])
        XCTAssertEqual(work.addresses.map(\.address), [0x1000, 0x1010])
        XCTAssertEqual(work.addresses.map(\.selfValue), [5, 3])
    }

    func testInlinedFunctionGetsItsOwnLinesButNoAddresses() throws {
        let helper = try XCTUnwrap(profile().functionCosts { $0.name == "helper" }.first)
        XCTAssertEqual(helper.lines, [LineCost(file: "h.c", line: 7, selfValue: 3, totalValue: 3)])
        XCTAssertTrue(helper.addresses.isEmpty, "inlined code is its caller's instructions")
        let main = try XCTUnwrap(profile().functionCosts { $0.name == "main" }.first)
        XCTAssertEqual(main.lines, [LineCost(file: "m.c", line: 3, selfValue: 2, totalValue: 10)])
    }

    /// Two specializations sharing a short name are two functions, named as the views name them
    /// (``Profile/FunctionNames``), so that the web UI's source view finds each by its shown name.
    func testCollidingShortNamesAreAnnotatedApart() throws {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let short = "specialized Array.append(_:)"
        for (i, type) in ["Int", "Double"].enumerated() {
            let f = b.function(Profile.Function(name: short, fullName: "generic specialization <Swift.\(type)> of Swift.Array.append(__owned A) -> ()",
                                                file: "a.swift"))
            let location = b.location(Profile.Location(address: 0x10 + UInt64(i), lines: [.init(function: f, line: 1 + i)]))
            b.add(stack: b.stack([location]), thread: nil, values: [Int64(2 + i)])
        }
        let p = b.build(metadata: Profile.Metadata())
        XCTAssertEqual(p.functionCosts { $0.name.hasPrefix(short) }.map { "\($0.name) \($0.totalValue)" },
                       ["specialized Array.append(_:) <Double> 3", "specialized Array.append(_:) <Int> 2"])
        let int = try XCTUnwrap(Annotator.listing(p, function: "specialized Array.append(_:) <Int>"))
        XCTAssertEqual(int.function.lines, [LineCost(file: "a.swift", line: 1, selfValue: 2, totalValue: 2)])
    }

    func testAnnotatorListsSourceRowsAndRefusesBadPatterns() throws {
        let a = try Annotator.annotate(profile(), pattern: "^wo")
        XCTAssertTrue(a.text.contains("ROUTINE ======================== work in w.c"), a.text)
        XCTAssertEqual(a.annotated, 1)
        XCTAssertThrowsError(try Annotator.annotate(profile(), pattern: "(["))
        XCTAssertThrowsError(try Annotator.annotate(profile(), pattern: "nothing"))
        // A function without a linkage name (kernel frames, folded input) has no empty name to match.
        XCTAssertThrowsError(try Annotator.annotate(profile(), pattern: "^$"))
    }

    /// The listing (`sprof serve`'s source view) holds the rows `sprof annotate` prints: the
    /// sampled lines, those between, two around, with the file's text.
    func testListingHasTheRowsAnnotatePrints() throws {
        let dir = NSTemporaryDirectory() + "sprof-listing-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (1...20).map { "line \($0) of w.c" }.joined(separator: "\n").write(toFile: dir + "/w.c", atomically: true, encoding: .utf8)
        var p = profile()
        for i in p.functions.indices where p.functions[i].file == "w.c" { p.functions[i].file = dir + "/w.c" }
        let listing = try XCTUnwrap(Annotator.listing(p, function: "work"))
        XCTAssertNil(listing.changed)
        XCTAssertEqual(listing.grandTotal, 10)
        XCTAssertEqual(listing.files.map(\.path), [dir + "/w.c"])
        let rows = try XCTUnwrap(listing.files.first).rows
        XCTAssertTrue(try XCTUnwrap(listing.files.first).found)
        XCTAssertEqual(rows.map(\.line), Array(8...14))
        XCTAssertEqual(rows.map(\.selfValue), [0, 0, 5, 0, 0, 0, 0])
        XCTAssertEqual(rows.map(\.totalValue), [0, 0, 5, 0, 3, 0, 0])
        XCTAssertEqual(rows.first?.text, "line 8 of w.c")
        let text = try Annotator.annotate(p, pattern: "^work$").text
        for row in rows {
            XCTAssertTrue(text.contains(" \(String(repeating: " ", count: 6 - String(row.line).count))\(row.line)  \(row.text ?? "")\n"), "line \(row.line) in\n\(text)")
        }
        XCTAssertNil(Annotator.listing(p, function: "wor"), "an exact name, not a pattern")
    }
}

/// `sprof report --lines` and `--addresses`: pprof's finer granularities of the top table.
final class GranularityTests: XCTestCase {
    func testLinesAndAddressesSplitAFunctionsRow() {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let m = b.mapping(Profile.Mapping(start: 0x1000, limit: 0x2000, path: "/bin/app"))
        let work = b.function(Profile.Function(name: "work", file: "w.c"))
        let kernel = b.function(Profile.Function(name: "schedule"))
        let a = b.location(Profile.Location(address: 0x1000, mapping: m, lines: [.init(function: work, line: 10)]))
        let c = b.location(Profile.Location(address: 0x1004, mapping: m, lines: [.init(function: work, line: 10)]))
        let d = b.location(Profile.Location(address: 0x1010, mapping: m, lines: [.init(function: work, line: 12)]))
        let k = b.location(Profile.Location(address: 0xffff_0000, lines: [.init(function: kernel)], kind: .kernel))
        b.add(stack: b.stack([a]), thread: nil, values: [5])
        b.add(stack: b.stack([c]), thread: nil, values: [2])
        b.add(stack: b.stack([d]), thread: nil, values: [3])
        b.add(stack: b.stack([k]), thread: nil, values: [1])
        let p = b.build(metadata: Profile.Metadata())
        XCTAssertEqual(p.top().map(\.name), ["work", "schedule"])
        XCTAssertEqual(p.top(granularity: .lines).map(\.name), ["work w.c:10", "work w.c:12", "schedule"])
        XCTAssertEqual(p.top(granularity: .lines).map(\.selfValue), [7, 3, 1])
        XCTAssertEqual(p.top(granularity: .addresses).map(\.name),
                       ["0x1000 work w.c:10", "0x1010 work w.c:12", "0x1004 work w.c:10", "0xffff0000 schedule"])
    }
}
