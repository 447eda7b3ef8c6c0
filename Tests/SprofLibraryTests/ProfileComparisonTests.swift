import XCTest
import Sprof

/// `sprof diff`'s comparison on synthetic repeated runs: changes tested per run, q-values across
/// functions, and a gate that fires only on a change both large and significant.
final class ProfileComparisonTests: XCTestCase {
    /// Ten runs of two callers of one leaf, `percent` of 1000 samples under `a`, with a fixed
    /// run-to-run wobble of up to ±`wobble` samples (deterministic, so the test is too).
    private func runs(percent: Int, wobble: [Int]) -> Profile {
        Profile(runs: wobble.map { w in
            let a = Int64(percent * 10 + w)
            return Profile(folded: [(["app", "main", "a", "spin"], a), (["app", "main", "b", "spin"], 1000 - a),
                                    (["app", "main", "noise"], Int64(5 + abs(w) % 3))])
        })
    }

    private let wobbleA = [3, -4, 6, -2, 0, 5, -6, 1, -3, 2]
    private let wobbleB = [-5, 2, 4, -1, 6, -3, 0, -6, 3, 1]

    func testADesignedShiftIsSignificantAndGatedNoiseIsNot() throws {
        let base = runs(percent: 50, wobble: wobbleA)
        let shifted = runs(percent: 53, wobble: wobbleB)
        let c = ProfileComparison(base: base, new: shifted)
        XCTAssertTrue(c.isTested)
        XCTAssertEqual(c.baseRuns, 10)
        let a = try XCTUnwrap(c.rows.first { $0.diff.name == "a" })
        XCTAssertEqual(a.diff.totalDelta, 3, accuracy: 0.3)
        let test = try XCTUnwrap(a.totalTest)
        XCTAssertLessThan(test.q, 0.05)
        XCTAssertGreaterThan(test.base.halfWidth, 0)
        XCTAssertEqual(c.grew(by: 2, gate: .total).map(\.diff.name), ["a"], "a's total grew by 3 points, significantly")
        XCTAssertEqual(c.grew(by: 2, gate: .self).map(\.diff.name), [], "spin's self share did not move")
        XCTAssertEqual(c.grew(by: 4, gate: .total).map(\.diff.name), [], "not over 4 points")

        // A/A: the same design on both sides; a 2-point gate must not fire.
        let again = runs(percent: 50, wobble: wobbleB)
        let aa = ProfileComparison(base: base, new: again)
        XCTAssertEqual(aa.grew(by: 2, gate: .total).count, 0)
        XCTAssertEqual(aa.grew(by: 0.1, gate: .total).count, 0, "small wobbles are not significant")
    }

    /// A big change that is not significant (one run out of ten) does not fail the gate; with a
    /// single run on a side nothing is tested and the gate judges the change alone.
    func testGateNeedsSignificanceOnlyWhenRunsAllowIt() throws {
        let base = runs(percent: 50, wobble: wobbleA)
        var outlier = (0..<10).map { runs(percent: 50, wobble: wobbleB).onlyRun($0 + 1) }
        outlier[4] = Profile(folded: [(["app", "main", "a", "spin"], 900), (["app", "main", "b", "spin"], 100),
                                      (["app", "main", "noise"], 6)])
        let c = ProfileComparison(base: base, new: Profile(runs: outlier))
        let a = try XCTUnwrap(c.rows.first { $0.diff.name == "a" })
        XCTAssertGreaterThan(a.diff.totalDelta, 3, "the mean moved by 4 points")
        XCTAssertEqual(a.totalTest?.method, "mann-whitney", "one outlier: far from normal")
        XCTAssertEqual(c.grew(by: 2, gate: .total).count, 0, "but not significantly")

        let single = ProfileComparison(base: base, new: Profile(folded: [(["app", "main", "a", "spin"], 600), (["app", "main", "b", "spin"], 400)]))
        XCTAssertFalse(single.isTested)
        XCTAssertEqual(single.newRuns, 0)
        XCTAssertNil(single.rows.first?.totalTest)
        XCTAssertEqual(single.grew(by: 2, gate: .total).map(\.diff.name), ["a"])
    }
}

/// `RunOptions.repeats`: the library's `sprof run -r N`.
final class RepeatedRunTests: XCTestCase {
    func testRepeatsRecordEveryRunIntoOneProfileWithTheFirstFailingStatus() throws {
        var options = RunOptions()
        options.repeats = 3
        options.callGraph = .framePointer
        // Run 2 exits 3, run 3 exits 4: the status is run 2's.
        let counter = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-repeat-\(UUID().uuidString)").path
        let script = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; n=$(cat \(counter) 2>/dev/null || echo 0); n=$((n+1)); echo $n > \(counter); [ $n -eq 1 ] || exit $((n+1))"
        let recorded = try skippingWhenRefused { try CommandProfiler.profile(["/bin/sh", "-c", script], options: options) }
        XCTAssertEqual(recorded.runs.map(\.number), [1, 2, 3])
        XCTAssertEqual(recorded.runs.map(\.exitStatus), [.exited(0), .exited(3), .exited(4)])
        XCTAssertEqual(recorded.exitStatus, .exited(3))
        XCTAssertEqual(recorded.profile.runs, [1, 2, 3], "every run has samples, labelled with its number")
        XCTAssertEqual(recorded.profile.statistics.samples, recorded.runs.map(\.samples).reduce(0, +))
        for run in recorded.runs {
            XCTAssertEqual(Int(recorded.profile.onlyRun(run.number).total()), run.samples, "run \(run.number)")
        }
    }
}
