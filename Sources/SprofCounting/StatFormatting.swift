import Foundation

/// Renders a ``StatReport`` as text (close to `perf stat`) or CSV.
public enum StatFormatter {
    /// The perf-stat-like text block: a header, one right-aligned line per counter with its
    /// derived figure after `#`, `(xx.xx%)` when multiplexed, `( +- x% )` with repeats, then the
    /// elapsed, user and system seconds.
    public static func text(_ report: StatReport) -> String {
        var out = "\n"
        let target: String
        if let pid = report.pid {
            target = "process id '\(pid)'"
        } else {
            target = "'" + (report.command ?? []).joined(separator: " ") + "'"
        }
        out += " Performance counter stats for \(target)"
        out += report.repeats > 1 ? " (\(report.repeats) runs):\n\n" : ":\n\n"
        for counter in report.counters {
            out += line(counter, repeats: report.repeats) + "\n"
        }
        out += "\n"
        let e = report.elapsedSeconds
        if report.repeats > 1 {
            let sd = StatMath.standardDeviation(e.values)
            out += "   " + pad(fixed(e.mean, 9), 15) + " +- " + fixed(sd, 9) + " seconds time elapsed"
            out += "  ( +- " + pad(fixed(e.stddevPercent ?? 0, 2), 5) + "% )\n"
        } else {
            out += pad(fixed(e.mean, 9), 18) + " seconds time elapsed\n"
        }
        if let u = report.userSeconds, let s = report.systemSeconds {
            out += "\n"
            out += pad(fixed(u.mean, 9), 18) + " seconds user\n"
            out += pad(fixed(s.mean, 9), 18) + " seconds sys\n"
        }
        out += "\n"
        return out
    }

    /// One counter's text line.
    static func line(_ c: StatReport.Counter, repeats: Int) -> String {
        var s: String
        switch c.status {
        case "counted":
            let v = c.value ?? 0
            let number = c.unit == "msec" ? grouped(v, decimals: 2) : grouped(v.rounded(), decimals: 0)
            s = pad(number, 18) + " " + c.unit.padding(4) + " " + c.event.padding(32)
        default:
            s = pad("<\(c.status)>", 18) + " " + "".padding(4) + " " + c.event.padding(32)
        }
        if let m = c.metric {
            s += " # " + metricText(m).padding(30)
        } else if c.status == "counted" {
            s += "   " + "".padding(30)
        }
        if repeats > 1, let sd = c.stddevPercent {
            s += "  ( +- " + pad(fixed(sd, 2), 5) + "% )"
        }
        if c.isMultiplexed, let p = c.runningPercent {
            s += "  (" + fixed(p, 2) + "%)"
        }
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }

    static func metricText(_ m: StatReport.Metric) -> String {
        switch m.unit {
        case "CPUs utilized": return pad(fixed(m.value, 3), 8) + " CPUs utilized"
        case "GHz": return pad(fixed(m.value, 3), 8) + " GHz"
        case "insn per cycle": return pad(fixed(m.value, 2), 8) + "  insn per cycle"
        case "/sec":
            let (scaled, prefix) = siScaled(m.value)
            return pad(fixed(scaled, 3), 8) + " \(prefix)/sec"
        default:
            if m.unit.hasPrefix("%") { return pad(fixed(m.value, 2), 8) + m.unit }
            return pad(fixed(m.value, 3), 8) + " " + m.unit
        }
    }

    static func siScaled(_ v: Double) -> (Double, String) {
        if v >= 1e9 { return (v / 1e9, "G") }
        if v >= 1e6 { return (v / 1e6, "M") }
        if v >= 1e3 { return (v / 1e3, "K") }
        return (v, "")
    }

    /// The names of the CSV fields, in order: perf 6.1's `perf stat -x` layout, with the relative
    /// stddev as its own field after the event name when the command was repeated (`-r`).
    public static func csvFields(repeated: Bool) -> [String] {
        ["value", "unit", "event"] + (repeated ? ["stddev_percent"] : [])
            + ["running_time_ns", "running_percent", "metric_value", "metric_unit"]
    }

    /// One line per counter, laid out byte for byte like `perf stat -x SEP` of perf 6.1 (the
    /// fixtures in Tests/SprofCountingTests/Fixtures/perf-stat-csv are lines perf printed), so
    /// that scripts written for perf read it unchanged:
    /// `value,unit,event[,stddev%],run-time,pcnt-running,metric-value,metric-unit`.
    /// - `value`: plain (`%.2f` for msec, else `%.0f`), or `<not counted>` / `<not supported>`;
    /// - `unit`: `msec` for clocks, else empty;
    /// - `stddev%` (only with `-r`): `8.43%`, `0.00%` when there is none;
    /// - `run-time`: mean nanoseconds the counter ran (0 when it never did);
    /// - `pcnt-running`: 100 × running / enabled; `0.00` for `<not counted>`, and `100.00` for
    ///   `<not supported>`, as perf prints them;
    /// - `metric-value`, `metric-unit`: the derived figure as perf trims it (`0.471`,
    ///   `CPUs utilized`; `126.201`, `K/sec`; `2.34`, `of all branches`), or two empty fields.
    /// A separator inside a field is not escaped (nor is it by perf): choose one that cannot
    /// occur (`,` `;` `\t`). `header` adds a first line of ``csvFields(repeated:)`` (not perf's).
    public static func csv(_ report: StatReport, separator: String, header: Bool = false) -> String {
        let repeated = report.repeats > 1
        var out = header ? csvFields(repeated: repeated).joined(separator: separator) + "\n" : ""
        for c in report.counters {
            let value: String
            if let v = c.value {
                value = c.unit == "msec" ? fixed(v, 2) : String(format: "%.0f", v.rounded())
            } else {
                value = "<\(c.status)>"
            }
            var fields = [value, c.unit, c.event]
            if repeated { fields.append(fixed(c.stddevPercent ?? 0, 2) + "%") }
            fields.append(c.runningNanoseconds.map { String(format: "%.0f", $0) } ?? "0")
            fields.append(fixed(c.status == "not supported" ? 100 : (c.runningPercent ?? 0), 2))
            let metric: (value: String, unit: String) = c.metric.map(csvMetric) ?? ("", "")
            fields += [metric.value, metric.unit]
            out += fields.joined(separator: separator) + "\n"
        }
        return out
    }

    /// A metric as perf's CSV prints it: formatted as in the text output, then cut after the
    /// number (so `2.34%` is `2.34`), with the unit's own `%` dropped and rates scaled to K/M/G.
    static func csvMetric(_ m: StatReport.Metric) -> (value: String, unit: String) {
        switch m.unit {
        case "insn per cycle": return (fixed(m.value, 2), m.unit)
        case "/sec":
            let (scaled, prefix) = siScaled(m.value)
            return (fixed(scaled, 3), prefix + "/sec")
        case "% of all branches": return (fixed(m.value, 2), "of all branches")
        default:
            if m.unit.hasPrefix("% ") { return (fixed(m.value, 3), String(m.unit.dropFirst(2))) }
            return (fixed(m.value, 3), m.unit)
        }
    }

    static func fixed(_ v: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", v) }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }

    /// `1,234,567.89`.
    static func grouped(_ v: Double, decimals: Int) -> String {
        let text = fixed(abs(v), decimals)
        let parts = text.split(separator: ".", maxSplits: 1)
        let digits = Array(parts[0])
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        if parts.count == 2 { out += "." + parts[1] }
        return (v < 0 ? "-" : "") + out
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
