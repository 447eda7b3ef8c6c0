import SprofProfile
import SprofCounting

/// `sprof diff`'s comparison: every function's self and total share in BASE and NEW, their
/// changes, and, when both profiles hold repeated runs (`sprof run -r N`), whether each change
/// is larger than run-to-run noise.
///
/// With runs on both sides, a function's share is measured in each run; each side gets the mean
/// and a 95% confidence interval of those shares; the two sides are compared with Welch's t-test
/// (``StatMath/welch(_:_:)``, the test `sprof stat --baseline` uses), or with the Mann–Whitney U
/// test when either side's shares are far from normal (``StatMath/isFarFromNormal(_:)``); the
/// p-values of all functions are adjusted with Benjamini–Hochberg (q-values), separately for the
/// self and the total shares, so that the false discovery rate across the table stays at
/// ``alpha``.
public struct ProfileComparison: Sendable {
    /// A side's per-run shares of one function, summarized.
    public struct Spread: Sendable, Equatable {
        /// The mean share over the runs, in percent.
        public var mean: Double
        /// Half the width of the 95% confidence interval of the mean, in percentage points.
        public var halfWidth: Double
    }

    /// The test of one change.
    public struct Test: Sendable, Equatable {
        /// `welch` or `mann-whitney`.
        public var method: String
        /// The two-sided p-value.
        public var p: Double
        /// The Benjamini–Hochberg q-value over the table's functions.
        public var q: Double
        /// The base side's per-run shares.
        public var base: Spread
        /// The new side's per-run shares.
        public var new: Spread
    }

    /// One function.
    public struct Row: Sendable {
        /// Shares and changes. With runs on both sides, the shares are the means of the per-run
        /// shares; otherwise they are shares of the whole profiles.
        public var diff: DiffRow
        /// The test of the self-share change; nil without runs on both sides.
        public var selfTest: Test?
        /// The test of the total-share change; nil without runs on both sides.
        public var totalTest: Test?
    }

    /// Rows, largest change first (by the order asked for).
    public var rows: [Row]
    /// Runs with samples in BASE (0 for a profile of one recording).
    public var baseRuns: Int
    /// Runs with samples in NEW.
    public var newRuns: Int
    /// The false discovery rate: a change is significant when its q-value is at most this.
    public var alpha: Double

    /// Whether the changes were tested (at least two runs on each side).
    public var isTested: Bool { baseRuns >= 2 && newRuns >= 2 }

    /// Compares value `baseValue` of `base` with value `newValue` of `new` (indices into their
    /// ``Profile/sampleTypes``), rows ranked by `order`.
    public init(base: Profile, new: Profile, baseValue: Int = 0, newValue: Int = 0,
                order: ProfileDiff.Order = .either, alpha: Double = 0.05) {
        self.alpha = alpha
        let pooled = ProfileDiff.rows(base: base, new: new, baseValue: baseValue, newValue: newValue, order: order)
        // Named over both profiles, as the pooled rows are, so that each run's rows match them.
        let names = Profile.FunctionNames.shared([base, new])
        let baseShares = Self.perRunShares(base, value: baseValue, names: names[0])
        let newShares = Self.perRunShares(new, value: newValue, names: names[1])
        baseRuns = baseShares.count
        newRuns = newShares.count
        guard baseShares.count >= 2 && newShares.count >= 2 else {
            rows = pooled.map { Row(diff: $0, selfTest: nil, totalTest: nil) }
            return
        }
        func series(_ shares: [[String: (own: Double, total: Double)]], _ name: String, total: Bool) -> [Double] {
            shares.map { run in run[name].map { total ? $0.total : $0.own } ?? 0 }
        }
        func test(_ b: [Double], _ n: [Double]) -> (method: String, p: Double) {
            if StatMath.isFarFromNormal(b) || StatMath.isFarFromNormal(n) {
                return ("mann-whitney", StatMath.mannWhitney(b, n)?.pValue ?? 1)
            }
            return ("welch", StatMath.welch(b, n)?.pValue ?? 1)
        }
        func spread(_ xs: [Double]) -> Spread {
            Spread(mean: StatMath.mean(xs), halfWidth: StatMath.confidenceHalfWidth95(xs) ?? 0)
        }
        var selfParts: [(method: String, p: Double, base: Spread, new: Spread)] = []
        var totalParts: [(method: String, p: Double, base: Spread, new: Spread)] = []
        for row in pooled {
            let bs = series(baseShares, row.name, total: false), ns = series(newShares, row.name, total: false)
            let bt = series(baseShares, row.name, total: true), nt = series(newShares, row.name, total: true)
            let s = test(bs, ns), t = test(bt, nt)
            selfParts.append((s.method, s.p, spread(bs), spread(ns)))
            totalParts.append((t.method, t.p, spread(bt), spread(nt)))
        }
        let selfQ = StatMath.benjaminiHochberg(selfParts.map(\.p))
        let totalQ = StatMath.benjaminiHochberg(totalParts.map(\.p))
        var tested: [Row] = []
        for (i, row) in pooled.enumerated() {
            let s = selfParts[i], t = totalParts[i]
            let diff = DiffRow(name: row.name, basePercent: s.base.mean, newPercent: s.new.mean,
                               baseTotalPercent: t.base.mean, newTotalPercent: t.new.mean)
            tested.append(Row(diff: diff,
                              selfTest: Test(method: s.method, p: s.p, q: selfQ[i], base: s.base, new: s.new),
                              totalTest: Test(method: t.method, p: t.p, q: totalQ[i], base: t.base, new: t.new)))
        }
        let byName = Dictionary(uniqueKeysWithValues: tested.map { ($0.diff.name, $0) })
        rows = ProfileDiff.sorted(tested.map(\.diff), order: order).map { byName[$0.name]! }
    }

    /// Each run's self and total share of every function, in percent, for the runs that have
    /// samples of `value`; empty for a profile without runs.
    static func perRunShares(_ profile: Profile, value: Int, names: Profile.FunctionNames) -> [[String: (own: Double, total: Double)]] {
        profile.runs.compactMap { run in
            let one = profile.onlyRun(run)
            guard one.total(value) > 0 else { return nil }
            return Dictionary(uniqueKeysWithValues: one.top(valueIndex: value, names: names).map { ($0.name, ($0.selfPercent, $0.totalPercent)) })
        }
    }

    /// The rows whose `gate` share grew by more than `points` percentage points and, when the
    /// changes were tested, significantly (q ≤ ``alpha``): what fails `sprof diff --fail-above`.
    public func grew(by points: Double, gate: Gate) -> [Row] {
        rows.filter { row in
            let delta = gate == .self ? row.diff.delta : row.diff.totalDelta
            guard delta > points else { return false }
            guard let test = gate == .self ? row.selfTest : row.totalTest else { return true }
            return test.q <= alpha
        }
    }

    /// Which share a gate watches.
    public enum Gate: String, Sendable, CaseIterable {
        /// The self share (time in the function's own code).
        case `self`
        /// The total share (time in it and everything it called): catches a function that grew
        /// anywhere in the tree.
        case total
    }
}
