import Foundation

/// Compares a `sprof stat` result with an earlier `--json` result: the CI regression gate.
///
/// A counter regresses when its mean grew by more than ``thresholdPercent`` and, when both sides
/// have at least two runs, Welch's t-test says the difference is significant (p ≤ ``alpha``), so
/// that run-to-run noise does not fail a build. Counts and times are "lower is better".
public struct RegressionGate: Sendable {
    /// The largest tolerated growth, in percent (default 5).
    public var thresholdPercent: Double
    /// The significance level for Welch's t-test (default 0.05).
    public var alpha: Double
    /// The counters to check, by printed name (`instructions:u`; `elapsed` for wall time). Nil
    /// checks every `instructions…` counter counted on both sides, or every counter counted on both
    /// sides when there is none.
    public var events: [String]?

    /// Creates a gate.
    public init(thresholdPercent: Double = 5, alpha: Double = 0.05, events: [String]? = nil) {
        self.thresholdPercent = thresholdPercent
        self.alpha = alpha
        self.events = events
    }

    /// How one counter moved.
    public struct Comparison: Sendable, Equatable {
        /// The counter's name.
        public var event: String
        /// The baseline mean.
        public var baseline: Double
        /// The current mean.
        public var current: Double
        /// `100 * (current − baseline) / baseline`.
        public var changePercent: Double
        /// Welch's two-sided p-value, nil when a side has a single run.
        public var pValue: Double?
        /// True when the change is beyond the threshold and (if tested) significant.
        public var regressed: Bool
        /// True when it shrank by more than the threshold and (if tested) significantly.
        public var improved: Bool
    }

    /// The gate's verdict.
    public struct Verdict: Sendable, Equatable {
        /// Every compared counter.
        public var comparisons: [Comparison]
        /// Chosen counters missing (or not counted) on either side.
        public var missing: [String]
        /// True when any counter regressed.
        public var failed: Bool { comparisons.contains { $0.regressed } }
    }

    /// A counter's per-run values in `report` (`elapsed`: the wall times); nil when it was not counted.
    private static func series(_ report: StatReport, _ name: String) -> [Double]? {
        if name == "elapsed" { return report.elapsedSeconds.values.isEmpty ? nil : report.elapsedSeconds.values }
        guard let c = report.counter(name), c.status == "counted", !c.values.isEmpty else { return nil }
        return c.values
    }

    /// The counters to check when `counted` (printed names) were counted now: ``events``, or
    /// the instructions counters counted on both sides, else every counter counted on both.
    private func chosen(counted: [String], baseline: StatReport) -> [String] {
        if let events { return events }
        let both = counted.filter { Self.series(baseline, $0) != nil }
        let instructions = both.filter { $0 == "instructions" || $0.hasPrefix("instructions:") }
        return instructions.isEmpty ? both : instructions
    }

    /// The counters ``compare(current:baseline:)`` would compare if every one of `events` (the
    /// printed names of the events about to be counted) is counted: known before the command
    /// runs, so that a gate with nothing to compare (a `--gate` counter the baseline lacks or
    /// that is not counted now) is refused before the command runs rather than after. Returns
    /// them and the chosen counters missing on either side.
    public func planned(events counted: [String], baseline: StatReport) -> (compared: [String], missing: [String]) {
        let available = Set(counted + ["elapsed"])
        let names = chosen(counted: counted, baseline: baseline)
        let usable = names.filter { available.contains($0) && Self.series(baseline, $0) != nil }
        return (usable, names.filter { !usable.contains($0) })
    }

    /// Compares `current` with `baseline`.
    public func compare(current: StatReport, baseline: StatReport) -> Verdict {
        let names = chosen(counted: current.counters.filter { $0.status == "counted" }.map(\.event), baseline: baseline)
        var comparisons: [Comparison] = []
        var missing: [String] = []
        for name in names {
            guard let now = Self.series(current, name), let before = Self.series(baseline, name) else {
                missing.append(name)
                continue
            }
            let b = StatMath.mean(before), c = StatMath.mean(now)
            let change = b == 0 ? (c == 0 ? 0 : .infinity) : 100 * (c - b) / abs(b)
            let p = StatMath.welch(before, now)?.pValue
            let significant = p.map { $0 <= alpha } ?? true
            comparisons.append(Comparison(event: name, baseline: b, current: c, changePercent: change, pValue: p,
                                          regressed: change > thresholdPercent && significant,
                                          improved: change < -thresholdPercent && significant))
        }
        return Verdict(comparisons: comparisons, missing: missing)
    }

    /// One line per compared counter, saying whether it regressed, improved or held, by how much
    /// and with what p-value.
    public static func describe(_ verdict: Verdict, thresholdPercent: Double) -> [String] {
        var lines: [String] = []
        for c in verdict.comparisons {
            let word = c.regressed ? "REGRESSED" : c.improved ? "improved" : "unchanged"
            var line = "\(word): \(c.event) \(String(format: "%+.2f", c.changePercent))% (baseline \(StatFormatter.grouped(c.baseline, decimals: c.baseline < 100 ? 3 : 0)), now \(StatFormatter.grouped(c.current, decimals: c.current < 100 ? 3 : 0))"
            if let p = c.pValue { line += String(format: ", Welch p=%.3g", p) } else { line += ", single runs: no significance test" }
            if !c.regressed && !c.improved && abs(c.changePercent) > thresholdPercent { line += ", within noise" }
            line += ")"
            lines.append(line)
        }
        for name in verdict.missing {
            lines.append("not compared: \(name) (not counted in both the baseline and this run)")
        }
        return lines
    }
}
