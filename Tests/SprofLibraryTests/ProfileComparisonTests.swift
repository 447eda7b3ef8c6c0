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

    /// A deterministic generator (Knuth's MMIX LCG, high bits), so that the simulated runs are
    /// the same each time.
    private struct Generator {
        var state: UInt64
        mutating func unit() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53)
        }
        /// A standard normal value (Box–Muller).
        mutating func normal() -> Double { (-2 * Foundation.log(1 - unit())).squareRoot() * cos(2 * Double.pi * unit()) }
    }

    /// `runs` runs of the tester's work.c at the default rate (~280 samples a run): func_a and
    /// func_b call spin, func_c inlines inl_hot, their shares moving by about 1 point from run
    /// to run (as measured: 39.90±1.29 over 5 runs); 20 kernel functions take a sample now and
    /// then, as interrupts do.
    private func workRuns(_ runs: Int, b: Double, rng: inout Generator) -> Profile {
        Profile(runs: (0..<runs).map { _ in
            let total = 280.0
            let shareB = b + rng.normal(), shareA = (100 - b) * 2 / 3 + rng.normal()
            let countB = Int64((total * shareB / 100).rounded()), countA = Int64((total * shareA / 100).rounded())
            var stacks: [([String], Int64)] = [(["work", "main", "func_a", "spin"], countA), (["work", "main", "func_b", "spin"], countB),
                                               (["work", "main", "func_c", "inl_hot"], Int64(total) - countA - countB)]
            for k in 0..<20 where rng.unit() < 0.1 { stacks.append((["work", "main", "func_c", "inl_hot", "irq_\(k)"], 1)) }
            return Profile(folded: stacks)
        })
    }

    /// At -r 5 a function 7 points up in every run must fail a 2-point gate, and an A/A pair
    /// must not: 20 pairs of each, as the tester ran them. With a side's skewness estimated
    /// from 5 values (beyond ±1 by chance in about a fifth of the series) the test switched to
    /// Mann–Whitney, whose p-value cannot go below 0.008 at 5 against 5, and Benjamini–Hochberg
    /// over every function of the table (the interrupts' too) left q above 0.05: func_b's +7
    /// went unflagged in some of the pairs.
    func testASevenPointChangeAtFiveRunsIsFlaggedAndAnAAPairIsNot() throws {
        var rng = Generator(state: 12)
        var missed: [String] = [], falseAlarms: [String] = []
        for pair in 0..<20 {
            let base = workRuns(5, b: 40, rng: &rng), same = workRuns(5, b: 40, rng: &rng), grown = workRuns(5, b: 47, rng: &rng)
            let ab = ProfileComparison(base: base, new: grown)
            if !ab.grew(by: 2, gate: .total).contains(where: { $0.diff.name == "func_b" }) {
                let b = ab.rows.first { $0.diff.name == "func_b" }
                missed.append("pair \(pair): \(b?.totalTest?.method ?? "?") q=\(b?.totalTest?.q ?? .nan)")
            }
            let aa = ProfileComparison(base: base, new: same)
            let fired = aa.grew(by: 2, gate: .total) + aa.grew(by: 2, gate: .self)
            if !fired.isEmpty { falseAlarms.append("pair \(pair): \(fired.map(\.diff.name))") }
            // The interrupts, under half a point on both sides, are not in the family.
            let irq = try XCTUnwrap(ab.rows.first { $0.diff.name.hasPrefix("irq_") })
            XCTAssertEqual(irq.totalTest?.inFamily, false)
            XCTAssertEqual(irq.totalTest?.q, 1)
            XCTAssertLessThan(ab.totalFamily, ab.rows.count)
        }
        XCTAssertEqual(missed, [], "func_b +7 points at -r 5 must be flagged")
        XCTAssertEqual(falseAlarms, [], "A/A at -r 5 must not fail the gate")
    }

    /// At -r 3, a function new in every run (7.7-8.4%) against none in the base: significant.
    /// Two equal shares and a third higher have a skewness of 1.7, which chose Mann–Whitney,
    /// whose smallest p-value at 3 runs a side is 0.1, so it never could be.
    func testANewFunctionAtThreeRunsIsFlagged() throws {
        let base = Profile(runs: [270, 281, 276].map { Profile(folded: [(["app", "main", "old"], Int64($0))]) })
        let new = Profile(runs: [(250, 21), (250, 21), (250, 23)].map {
            Profile(folded: [(["app", "main", "old"], Int64($0.0)), (["app", "main", "fresh"], Int64($0.1))])
        })
        let c = ProfileComparison(base: base, new: new)
        let fresh = try XCTUnwrap(c.rows.first { $0.diff.name == "fresh" })
        XCTAssertEqual(fresh.totalTest?.method, "welch")
        XCTAssertEqual(c.grew(by: 2, gate: .total).map(\.diff.name), ["fresh"], "q=\(fresh.totalTest?.q ?? .nan)")
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
