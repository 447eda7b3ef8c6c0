import XCTest
@testable import SprofCounting

final class StatMathTests: XCTestCase {
    func testIncompleteBetaKnownValues() {
        // Closed forms: I_x(1,1) = x; I_x(a,1) = x^a; I_0.5(2,3) = 11/16; I_x(1,b) = 1 − (1−x)^b.
        XCTAssertEqual(StatMath.regularizedIncompleteBeta(0.3, a: 1, b: 1), 0.3, accuracy: 1e-12)
        XCTAssertEqual(StatMath.regularizedIncompleteBeta(0.6, a: 3, b: 1), 0.216, accuracy: 1e-12)
        XCTAssertEqual(StatMath.regularizedIncompleteBeta(0.5, a: 2, b: 3), 0.6875, accuracy: 1e-12)
        XCTAssertEqual(StatMath.regularizedIncompleteBeta(0.9, a: 1, b: 4), 1 - pow(0.1, 4), accuracy: 1e-12)
        XCTAssertEqual(StatMath.regularizedIncompleteBeta(0, a: 2, b: 2), 0)
        XCTAssertEqual(StatMath.regularizedIncompleteBeta(1, a: 2, b: 2), 1)
    }

    func testStudentTAgainstTables() {
        // t with 1 df is Cauchy: CDF(1) = 0.75.
        XCTAssertEqual(StatMath.studentTCDF(1, degreesOfFreedom: 1), 0.75, accuracy: 1e-10)
        XCTAssertEqual(StatMath.studentTCDF(0, degreesOfFreedom: 7), 0.5, accuracy: 1e-12)
        // Two-sided 5% critical values from standard t tables.
        XCTAssertEqual(StatMath.studentTCDF(2.228139, degreesOfFreedom: 10), 0.975, accuracy: 1e-6)
        XCTAssertEqual(StatMath.studentTCDF(12.706205, degreesOfFreedom: 1), 0.975, accuracy: 1e-6)
        XCTAssertEqual(StatMath.studentTCDF(1.959964, degreesOfFreedom: 1e7), 0.975, accuracy: 1e-6)
        XCTAssertEqual(StatMath.studentTCDF(-2.570582, degreesOfFreedom: 5), 0.025, accuracy: 1e-6)
        // 2 df has a closed form: CDF(t) = 1/2 + t / (2 sqrt(2 + t²)).
        XCTAssertEqual(StatMath.studentTCDF(1.5, degreesOfFreedom: 2), 0.5 + 1.5 / (2 * (2 + 2.25).squareRoot()), accuracy: 1e-12)
    }

    func testMeanAndRelativeStandardDeviation() {
        XCTAssertEqual(StatMath.mean([1, 2, 3, 4]), 2.5)
        XCTAssertEqual(StatMath.standardDeviation([2, 4, 4, 4, 5, 5, 7, 9]), (32.0 / 7).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(StatMath.relativeStandardDeviationPercent([90, 110])!, 100 * (200.0).squareRoot() / 100, accuracy: 1e-9)
        XCTAssertNil(StatMath.relativeStandardDeviationPercent([5]))
    }

    func testWelchKnownExample() throws {
        // Computed by hand: means 20 and 22, variances 2.5 and 2.5, n = 5 each:
        // se² = 0.5 + 0.5, t = 2, df = 8, two-sided p = 2 * (1 − CDF_t8(2)) ≈ 0.0805.
        let a: [Double] = [18, 19, 20, 21, 22], b: [Double] = [20, 21, 22, 23, 24]
        let r = try XCTUnwrap(StatMath.welch(a, b))
        XCTAssertEqual(r.t, 2, accuracy: 1e-12)
        XCTAssertEqual(r.degreesOfFreedom, 8, accuracy: 1e-9)
        XCTAssertEqual(r.pValue, 0.08051623795726, accuracy: 1e-6)
        XCTAssertNil(StatMath.welch([1], [1, 2]))
        XCTAssertEqual(StatMath.welch([5, 5], [5, 5])?.pValue, 1)
        XCTAssertEqual(StatMath.welch([5, 5], [6, 6])?.pValue, 0)
    }

    /// Reference values from scipy.stats (mannwhitneyu, asymptotic, continuity-corrected;
    /// t.ppf; skew with bias=False; false_discovery_control).
    func testMannWhitneyQuantileSkewnessAndBenjaminiHochberg() throws {
        let a = [1.1, 2.2, 3.3, 4.4, 5.5], b = [3.0, 6.0, 7.0, 8.0, 9.0, 10.0]
        let mw = try XCTUnwrap(StatMath.mannWhitney(a, b))
        XCTAssertEqual(mw.u, 3)
        XCTAssertEqual(mw.pValue, 0.03576376659097789, accuracy: 1e-9)
        // With ties (the tie correction).
        XCTAssertEqual(StatMath.mannWhitney([1, 1, 2, 2, 3], [2, 3, 3, 4, 4])?.pValue ?? 0, 0.05241162867102868, accuracy: 1e-9)
        XCTAssertEqual(StatMath.mannWhitney([2, 2], [2, 2])?.pValue, 1)
        XCTAssertNil(StatMath.mannWhitney([1], [2, 3]))
        XCTAssertEqual(StatMath.studentTQuantile(0.975, degreesOfFreedom: 9), 2.262157162798205, accuracy: 1e-6)
        XCTAssertEqual(StatMath.skewness([1, 2, 3, 10]), 1.763632614803888, accuracy: 1e-9)
        XCTAssertTrue(StatMath.isFarFromNormal([0, 0, 0, 0, 0, 0, 0, 0, 0, 4]))
        XCTAssertFalse(StatMath.isFarFromNormal([49, 50, 51, 50, 49, 51, 50, 50.5, 49.5, 50]))
        let q = StatMath.benjaminiHochberg([0.01, 0.04, 0.03, 0.2])
        for (x, y) in zip(q, [0.04, 0.05333333, 0.05333333, 0.2]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        XCTAssertEqual(StatMath.confidenceHalfWidth95([1, 2, 3, 4, 5]) ?? 0, 2.7764451051977987 * (2.5).squareRoot() / (5.0).squareRoot(), accuracy: 1e-6)
    }
}
