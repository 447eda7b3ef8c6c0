import XCTest
@testable import SprofProfile

/// Names are made by the views (``Profile/FunctionNames``): the model keeps each function's short,
/// full and linkage names as found; short names that collide are told apart when a view is made,
/// over everything the view shows.
final class FunctionNamesTests: XCTestCase {
    static let short = "specialized Array.append(_:)"
    static let intFull = "generic specialization <Swift.Int> of Swift.Array.append(__owned A) -> ()"
    static let doubleFull = "generic specialization <Swift.Double> of Swift.Array.append(__owned A) -> ()"
    static let int = Profile.Function(name: short, fullName: intFull, systemName: "$sSa6appendyyxnFSi_Tg5")
    static let double = Profile.Function(name: short, fullName: doubleFull, systemName: "$sSa6appendyyxnFSd_Tg5")

    /// A profile of `main` calling each function of `callees` with the given count.
    static func profile(_ callees: [(Profile.Function, Int64)]) -> Profile {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let thread = b.thread(.init(pid: 1, tid: 1, name: "app", processName: "app"))
        let main = b.location(.init(address: 0x100, lines: [.init(function: b.function(.init(name: "main")))]))
        for (i, (f, count)) in callees.enumerated() {
            let leaf = b.location(.init(address: 0x200 + UInt64(i), lines: [.init(function: b.function(f))]))
            b.add(stack: b.stack([leaf, main]), thread: thread, values: [count])
        }
        return b.build(metadata: .init())
    }

    func testTheModelKeepsBothFullNamesAndTheViewsTellThemApart() {
        let p = Self.profile([(Self.int, 3), (Self.double, 2)])
        XCTAssertEqual(p.functions.filter { $0.name == Self.short }.map(\.fullName), [Self.intFull, Self.doubleFull],
                       "building does not rewrite the model's names")
        XCTAssertEqual(Set(p.top().map(\.name)), ["main", "specialized Array.append(_:) <Int>", "specialized Array.append(_:) <Double>"])
        XCTAssertEqual(p.aggregatedStacks().map(\.frames), [
            ["app", "main", "specialized Array.append(_:) <Double>"], ["app", "main", "specialized Array.append(_:) <Int>"],
        ])
        XCTAssertEqual(Set(p.top(names: p.functionNames(.full)).map(\.name)), ["main", Self.intFull, Self.doubleFull])
        XCTAssertEqual(Set(p.top(names: p.functionNames(.system)).map(\.name)), ["main", "$sSa6appendyyxnFSi_Tg5", "$sSa6appendyyxnFSd_Tg5"])
        // Alone, a specialization keeps its short name.
        XCTAssertEqual(Set(Self.profile([(Self.int, 3)]).top().map(\.name)), ["main", Self.short])
    }

    /// Runs merged into one profile: the collision exists in the first run only. Naming at build
    /// time split the `Int` specialization into two functions and two rows (its run-1 name with
    /// `<Int>`, its run-2 name without).
    func testRunsMergedAreNamedOverTheMergedProfile() {
        let merged = Profile(runs: [Self.profile([(Self.int, 3), (Self.double, 2)]), Self.profile([(Self.int, 4)])])
        XCTAssertEqual(merged.functions.filter { $0.fullName == Self.intFull }.count, 1, "one function across runs")
        let rows = Dictionary(uniqueKeysWithValues: merged.top().map { ($0.name, $0.totalValue) })
        XCTAssertEqual(rows, ["main": 9, "specialized Array.append(_:) <Int>": 7, "specialized Array.append(_:) <Double>": 2])
        XCTAssertEqual(merged.onlyRun(2).top().first { $0.name == "specialized Array.append(_:) <Int>" }?.totalValue, 4,
                       "a run is named as the whole profile")
    }

    /// A comparison names both profiles together: BASE has one specialization (no collision of
    /// its own), NEW both. Named one profile at a time, the `Int` specialization was
    /// `specialized Array.append(_:)` in BASE and `… <Int>` in NEW: two rows, one vanished, one new.
    func testAComparisonNamesBothProfilesTogether() throws {
        let base = Self.profile([(Self.int, 5)])
        let new = Self.profile([(Self.int, 3), (Self.double, 2)])
        let rows = ProfileDiff.rows(base: base, new: new)
        XCTAssertEqual(Set(rows.map(\.name)), ["main", "specialized Array.append(_:) <Int>", "specialized Array.append(_:) <Double>"])
        let int = rows.first { $0.name == "specialized Array.append(_:) <Int>" }
        XCTAssertEqual(int?.basePercent, 100)
        XCTAssertEqual(int?.newPercent, 60)
        let names = Profile.FunctionNames.shared([base, new])
        let inBase = try XCTUnwrap(base.functions.firstIndex(of: Self.int)), inNew = try XCTUnwrap(new.functions.firstIndex(of: Self.int))
        XCTAssertEqual(names[0][inBase], names[1][inNew])
        XCTAssertEqual(base.functionNames()[inBase], Self.short, "alone, BASE's name is short")
    }

    /// Transforms match the names the views show.
    func testTransformsMatchTheViewsNames() {
        let p = Self.profile([(Self.int, 3), (Self.double, 2)])
        XCTAssertEqual(p.transformed([.ignore("specialized Array.append(_:) <Int>")]).total(), 2)
        XCTAssertEqual(p.transformed([.focusFunction("specialized Array.append(_:) <Double>")]).top().map(\.name),
                       ["specialized Array.append(_:) <Double>"])
    }
}
