#if canImport(Glibc)
import Glibc
#endif

/// The few statistics `sprof stat -r` and the regression gate need, written out so that their
/// behaviour is fixed and tested here rather than borrowed.
public enum StatMath {
    /// The arithmetic mean (0 for no values).
    public static func mean(_ xs: [Double]) -> Double {
        xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count)
    }

    /// The sample variance (n − 1 in the denominator); 0 for fewer than two values.
    public static func variance(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 0 }
        let m = mean(xs)
        return xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    }

    /// The sample standard deviation.
    public static func standardDeviation(_ xs: [Double]) -> Double { variance(xs).squareRoot() }

    /// `100 * stddev / |mean|`: the relative standard deviation printed as `( +- x% )`. Nil for
    /// fewer than two values, 0 when the mean is 0.
    public static func relativeStandardDeviationPercent(_ xs: [Double]) -> Double? {
        guard xs.count > 1 else { return nil }
        let m = mean(xs)
        return m == 0 ? 0 : 100 * standardDeviation(xs) / abs(m)
    }

    /// The regularized incomplete beta function I_x(a, b), by its continued fraction (modified
    /// Lentz), using the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) where the fraction converges slowly.
    public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        precondition(a > 0 && b > 0, "incomplete beta needs a, b > 0")
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x)
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * betaContinuedFraction(x, a: a, b: b) / a
        }
        return 1 - exp(logFront) * betaContinuedFraction(1 - x, a: b, b: a) / b
    }

    private static func betaContinuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        let epsilon = 1e-15
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...500 {
            let m = Double(m)
            // Even step: d_{2m} = m(b−m)x / ((a+2m−1)(a+2m)).
            var numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            // Odd step: d_{2m+1} = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1)).
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < epsilon { break }
        }
        return h
    }

    /// The cumulative distribution function of Student's t with `degreesOfFreedom` (may be
    /// fractional, as Welch's test produces).
    public static func studentTCDF(_ t: Double, degreesOfFreedom df: Double) -> Double {
        let tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), a: df / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The result of Welch's unequal-variances t-test.
    public struct WelchResult: Sendable, Equatable {
        /// The t statistic (positive when the second sample's mean is larger).
        public var t: Double
        /// Welch–Satterthwaite degrees of freedom.
        public var degreesOfFreedom: Double
        /// The two-sided p-value: the chance of a difference at least this large if the means
        /// were equal.
        public var pValue: Double
    }

    /// Welch's t-test between two samples, or nil when either has fewer than two values.
    /// When both samples have no spread, equal means give p = 1 and different means p = 0
    /// (a deterministic difference is certain).
    public static func welch(_ first: [Double], _ second: [Double]) -> WelchResult? {
        guard first.count > 1, second.count > 1 else { return nil }
        let n1 = Double(first.count), n2 = Double(second.count)
        let v1 = variance(first) / n1, v2 = variance(second) / n2
        let diff = mean(second) - mean(first)
        let se2 = v1 + v2
        if se2 == 0 {
            return WelchResult(t: diff == 0 ? 0 : (diff > 0 ? .infinity : -.infinity),
                               degreesOfFreedom: n1 + n2 - 2, pValue: diff == 0 ? 1 : 0)
        }
        let t = diff / se2.squareRoot()
        let df = se2 * se2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
        let p = regularizedIncompleteBeta(df / (df + t * t), a: df / 2, b: 0.5)
        return WelchResult(t: t, degreesOfFreedom: df, pValue: min(1, max(0, p)))
    }
}
