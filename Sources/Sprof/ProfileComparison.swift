import SprofProfile
import SprofCounting

/// `sprof diff`'s comparison: every function's self and total share in BASE and NEW, their
/// changes, and, when both profiles hold repeated runs (`sprof run -r N`), whether each change
/// is larger than run-to-run noise.
///
/// With runs on both sides, a function's share is measured in each run; each side gets the mean
/// and a 95% confidence interval of those shares; the two sides are compared with Welch's t-test
/// (``StatMath/welch(_:_:)``, the test `sprof stat --baseline` uses), or with the Mann–Whitney U
/// test when both sides have at least ``mannWhitneyMinimumRuns`` runs and either side's shares
/// are far from normal (``StatMath/isFarFromNormal(_:)``). Below that, skewness from a handful
/// of values says nothing, and Mann–Whitney cannot reach a small p-value at all (5 runs against
/// 5: never below 0.008, which Benjamini–Hochberg over a few functions turns into q > 0.05).
/// The p-values are adjusted with Benjamini–Hochberg (q-values), separately for the self and the
/// total shares, over the functions whose mean share reaches ``floor`` on either side: a function
/// below it on both sides cannot change by more than the floor, so it is left out of the family
/// (q = 1) rather than diluting the q-values of the changes that matter. The false discovery
/// rate across the tested functions stays at ``alpha``.
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
        /// The Benjamini–Hochberg q-value over the functions in the family; 1 for a function
        /// left out of it (``inFamily``).
        public var q: Double
        /// The base side's per-run shares.
        public var base: Spread
        /// The new side's per-run shares.
        public var new: Spread
        /// False when the function's mean share was below ``ProfileComparison/floor`` on both
        /// sides: not adjusted with the others, and never significant.
        public var inFamily = true
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
    /// The share, in percent, that a function's mean must reach on one side at least to enter
    /// the Benjamini–Hochberg family.
    public var floor: Double
    /// The functions whose self-share changes were adjusted together (the family's size).
    public var selfFamily = 0
    /// The functions whose total-share changes were adjusted together.
    public var totalFamily = 0

    /// The runs each side needs before a far-from-normal side is tested with Mann–Whitney
    /// rather than Welch: at 8 against 8 its smallest p-value is about 2e-4 (at 5 against 5,
    /// 0.008), and 8 values give skewness some meaning.
    public static let mannWhitneyMinimumRuns = 8
    /// The default ``floor``: half a percentage point, below any gate worth setting.
    public static let defaultFloor = 0.5

    /// Whether the changes were tested (at least two runs on each side).
    public var isTested: Bool { baseRuns >= 2 && newRuns >= 2 }

    /// Compares value `baseValue` of `base` with value `newValue` of `new` (indices into their
    /// ``Profile/sampleTypes``), rows ranked by `order`. `floor` is in percent (``floor``); a
    /// gate of N points can pass min(N, 0.5): a function under N on both sides cannot grow by N.
    public init(base: Profile, new: Profile, baseValue: Int = 0, newValue: Int = 0,
                order: ProfileDiff.Order = .either, alpha: Double = 0.05, floor: Double = ProfileComparison.defaultFloor) {
        self.alpha = alpha
        self.floor = floor
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
            if min(b.count, n.count) >= Self.mannWhitneyMinimumRuns && (StatMath.isFarFromNormal(b) || StatMath.isFarFromNormal(n)) {
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
        /// q-values over the parts that reach the floor on either side; nil for the others.
        func adjusted(_ parts: [(method: String, p: Double, base: Spread, new: Spread)]) -> [Double?] {
            let family = parts.indices.filter { max(parts[$0].base.mean, parts[$0].new.mean) >= floor }
            var q = [Double?](repeating: nil, count: parts.count)
            for (i, value) in zip(family, StatMath.benjaminiHochberg(family.map { parts[$0].p })) { q[i] = value }
            return q
        }
        let selfQ = adjusted(selfParts), totalQ = adjusted(totalParts)
        selfFamily = selfQ.compactMap { $0 }.count
        totalFamily = totalQ.compactMap { $0 }.count
        var tested: [Row] = []
        for (i, row) in pooled.enumerated() {
            let s = selfParts[i], t = totalParts[i]
            let diff = DiffRow(name: row.name, basePercent: s.base.mean, newPercent: s.new.mean,
                               baseTotalPercent: t.base.mean, newTotalPercent: t.new.mean)
            tested.append(Row(diff: diff,
                              selfTest: Test(method: s.method, p: s.p, q: selfQ[i] ?? 1, base: s.base, new: s.new, inFamily: selfQ[i] != nil),
                              totalTest: Test(method: t.method, p: t.p, q: totalQ[i] ?? 1, base: t.base, new: t.new, inFamily: totalQ[i] != nil)))
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
