#if canImport(Glibc)
import Glibc
#endif

/// The few statistics `sprof stat -r`, the regression gate and `sprof diff`'s significance test
/// need, written out so that their behaviour is fixed and tested here rather than borrowed.
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

    /// The sample skewness (adjusted Fisher–Pearson, as spreadsheets compute it); 0 for fewer
    /// than three values or no spread.
    public static func skewness(_ xs: [Double]) -> Double {
        let n = Double(xs.count)
        guard xs.count > 2 else { return 0 }
        let m = mean(xs)
        let m2 = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n
        guard m2 > 0 else { return 0 }
        let m3 = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) * ($1 - m) } / n
        return (n * (n - 1)).squareRoot() / (n - 2) * m3 / (m2 * m2.squareRoot())
    }

    /// Whether a sample is far from normal for the t-test: its skewness beyond ±1 (a sample
    /// mostly at 0 with a few larger values, as small functions' per-run shares are).
    public static func isFarFromNormal(_ xs: [Double]) -> Bool {
        abs(skewness(xs)) > 1
    }

    /// The `p` quantile of Student's t with `df` degrees of freedom (by bisection on
    /// ``studentTCDF(_:degreesOfFreedom:)``), e.g. 2.262 for p = 0.975, df = 9.
    public static func studentTQuantile(_ p: Double, degreesOfFreedom df: Double) -> Double {
        precondition(p > 0 && p < 1 && df > 0, "quantile needs 0 < p < 1 and df > 0")
        var low = -1e6, high = 1e6
        for _ in 0..<200 {
            let mid = (low + high) / 2
            if studentTCDF(mid, degreesOfFreedom: df) < p { low = mid } else { high = mid }
            if high - low < 1e-12 { break }
        }
        return (low + high) / 2
    }

    /// Half the width of the 95% confidence interval of the mean (t-based); nil for fewer than
    /// two values.
    public static func confidenceHalfWidth95(_ xs: [Double]) -> Double? {
        guard xs.count > 1 else { return nil }
        let n = Double(xs.count)
        return studentTQuantile(0.975, degreesOfFreedom: n - 1) * standardDeviation(xs) / n.squareRoot()
    }

    /// The result of the Mann–Whitney U (Wilcoxon rank-sum) test.
    public struct MannWhitneyResult: Sendable, Equatable {
        /// U of the first sample: pairs (x from the first, y from the second) with x > y, ties half.
        public var u: Double
        /// The two-sided p-value from the normal approximation with tie and continuity corrections.
        public var pValue: Double
    }

    /// The Mann–Whitney U test between two samples (no assumption of normality), or nil when
    /// either has fewer than two values. All values equal: p = 1.
    public static func mannWhitney(_ first: [Double], _ second: [Double]) -> MannWhitneyResult? {
        guard first.count > 1, second.count > 1 else { return nil }
        let n1 = Double(first.count), n2 = Double(second.count), n = n1 + n2
        let all = (first.map { ($0, 0) } + second.map { ($0, 1) }).sorted { $0.0 < $1.0 }
        var ranks = [Double](repeating: 0, count: all.count)
        var tieTerm = 0.0
        var i = 0
        while i < all.count {
            var j = i
            while j + 1 < all.count && all[j + 1].0 == all[i].0 { j += 1 }
            let rank = Double(i + j + 2) / 2
            for k in i...j { ranks[k] = rank }
            let t = Double(j - i + 1)
            tieTerm += t * t * t - t
            i = j + 1
        }
        let r1 = zip(all, ranks).reduce(0.0) { $0 + ($1.0.1 == 0 ? $1.1 : 0) }
        let u = r1 - n1 * (n1 + 1) / 2
        let mu = n1 * n2 / 2
        let variance = n1 * n2 / 12 * ((n + 1) - tieTerm / (n * (n - 1)))
        guard variance > 0 else { return MannWhitneyResult(u: u, pValue: 1) }
        let z = max(0, abs(u - mu) - 0.5) / variance.squareRoot()
        return MannWhitneyResult(u: u, pValue: min(1, erfc(z / 2.0.squareRoot())))
    }

    /// Benjamini–Hochberg adjusted p-values (q-values), in the order given: a change is kept as a
    /// discovery when its q ≤ the false discovery rate wanted (e.g. 0.05).
    public static func benjaminiHochberg(_ pValues: [Double]) -> [Double] {
        let m = Double(pValues.count)
        let order = pValues.indices.sorted { pValues[$0] < pValues[$1] }
        var q = [Double](repeating: 1, count: pValues.count)
        var running = 1.0
        for (rank, index) in order.enumerated().reversed() {
            running = min(running, pValues[index] * m / Double(rank + 1))
            q[index] = min(1, running)
        }
        return q
    }
}
