import Foundation
import SprofProfile

/// The top table of a profile (`sprof report`): functions (or source lines, addresses, threads)
/// by self and total, as text, CSV or JSON, like `perf report --stdio` and `go tool pprof -top`.
/// The CLI parses arguments and calls ``render(_:file:)``; the web UI and library users get the
/// same bytes for the same profile and options.
public struct ProfileReport: Sendable {
    /// The output format.
    public enum Format: String, Sendable, CaseIterable {
        /// Aligned columns under a `# FILE: TOTAL TYPE` header line.
        case text
        /// RFC 4180 CSV with a header row.
        case csv
        /// Pretty-printed JSON with sorted keys.
        case json
    }

    /// Row keys (perf's `--sort`): `sym`, `dso`, `comm`, `thread`.
    public var keys: [SortKey]
    /// Rows to print; 0 for all.
    public var limit: Int
    /// Per-thread totals instead of functions.
    public var threads: Bool
    /// Text, CSV or JSON.
    public var format: Format
    /// Text: print the profile's provenance (`# event: …`) first.
    public var header: Bool
    /// Full demangled names (``NameStyle/full``) instead of the short names (``NameStyle/short``).
    public var fullNames: Bool
    /// Functions, source lines or addresses.
    public var granularity: Granularity
    /// The ``Profile/sampleTypes`` entry ranked by; nil for the profile's default.
    public var valueIndex: Int?

    /// Creates report options; the defaults are `sprof report`'s.
    public init(keys: [SortKey] = [.sym], limit: Int = 25, threads: Bool = false, format: Format = .text, header: Bool = false,
                fullNames: Bool = false, granularity: Granularity = .functions, valueIndex: Int? = nil) {
        self.keys = keys
        self.limit = limit
        self.threads = threads
        self.format = format
        self.header = header
        self.fullNames = fullNames
        self.granularity = granularity
        self.valueIndex = valueIndex
    }

    /// The report of `profile`; `file` names it in the text header and the JSON.
    /// - Throws: the JSON encoder's error (not expected for these values).
    public func render(_ profile: Profile, file: String) throws -> String {
        let index = valueIndex ?? profile.defaultSampleType
        let type = profile.sampleTypes[index]
        let total = profile.total(index)
        let headerNames = keys.map(\.rawValue)
        var out = ""
        switch format {
        case .json:
            out = try json(profile, file: file, index: index, keys: headerNames)
        case .csv:
            if threads {
                out = "value,percent,pid,tid,process,thread\n"
                for t in limited(profile.threadTotals(valueIndex: index)) {
                    out += "\(t.value),\(Self.csvNumber(t.percent)),\(t.pid),\(t.tid),\(Self.csvField(t.processName)),\(Self.csvField(t.name))\n"
                }
            } else {
                out = "self,self_percent,total,total_percent," + headerNames.joined(separator: ",") + "\n"
                for r in limited(profile.top(by: keys, valueIndex: index, names: profile.functionNames(nameStyle), granularity: granularity)) {
                    out += "\(r.selfValue),\(Self.csvNumber(r.selfPercent)),\(r.totalValue),\(Self.csvNumber(r.totalPercent)),"
                    out += r.key.map(Self.csvField).joined(separator: ",") + "\n"
                }
            }
        case .text:
            // A profile without provenance (folded input) has no header to print.
            let provenance = profile.metadata.provenanceLines
            if header && !provenance.isEmpty { out += provenance.map { "# " + $0 }.joined(separator: "\n") + "\n#\n" }
            out += "# \(file): \(Self.formatValue(total, type)) \(type.type == "samples" ? "samples" : type.description)"
            if profile.metadata.isRecording { out += ", \(grouped(profile.metadata.statistics.lost)) lost" }
            if let event = profile.metadata.event.isEmpty ? nil : profile.metadata.event { out += ", event \(event)" }
            out += "\n"
            if threads {
                out += "\(Self.pad("value", 12)) \(Self.pad("%", 7))  thread\n"
                for t in limited(profile.threadTotals(valueIndex: index)) {
                    out += "\(Self.pad(Self.formatValue(t.value, type), 12)) \(Self.pad(Self.percent(t.percent), 7))  \(t.processName)/\(t.name) (pid \(t.pid), tid \(t.tid))\n"
                }
            } else {
                out += "\(Self.pad("self", 12)) \(Self.pad("self%", 7)) \(Self.pad("total", 12)) \(Self.pad("total%", 7))  \(headerNames.joined(separator: " "))\n"
                for r in limited(profile.top(by: keys, valueIndex: index, names: profile.functionNames(nameStyle), granularity: granularity)) {
                    out += "\(Self.pad(Self.formatValue(r.selfValue, type), 12)) \(Self.pad(Self.percent(r.selfPercent), 7)) \(Self.pad(Self.formatValue(r.totalValue, type), 12)) \(Self.pad(Self.percent(r.totalPercent), 7))  \(r.key.joined(separator: "  "))\n"
                }
            }
        }
        return out
    }

    /// How the report names functions.
    private var nameStyle: NameStyle { fullNames ? .full : .short }

    private func limited<T>(_ rows: [T]) -> ArraySlice<T> { limit == 0 ? rows[...] : rows.prefix(limit) }

    private struct JSONReport: Encodable {
        struct Row: Encodable {
            var key: [String]
            var selfValue: Int64
            var selfPercent: Double
            var totalValue: Int64
            var totalPercent: Double
        }
        struct ThreadRow: Encodable {
            var pid: Int32
            var tid: Int32
            var process: String
            var thread: String
            var value: Int64
            var percent: Double
        }
        var file: String
        var sampleType: String
        var unit: String
        var total: Int64
        var sortKeys: [String]
        var provenance: [String]
        var functions: [Row]?
        var threads: [ThreadRow]?
    }

    private func json(_ profile: Profile, file: String, index: Int, keys: [String]) throws -> String {
        var report = JSONReport(file: file, sampleType: profile.sampleTypes[index].type, unit: profile.sampleTypes[index].unit,
                                total: profile.total(index), sortKeys: keys, provenance: profile.metadata.provenanceLines)
        if threads {
            report.threads = limited(profile.threadTotals(valueIndex: index)).map {
                JSONReport.ThreadRow(pid: $0.pid, tid: $0.tid, process: $0.processName, thread: $0.name, value: $0.value,
                                     percent: Self.rounded($0.percent))
            }
        } else {
            report.functions = limited(profile.top(by: keys.compactMap(SortKey.init), valueIndex: index, names: profile.functionNames(nameStyle), granularity: granularity)).map {
                JSONReport.Row(key: $0.key, selfValue: $0.selfValue, selfPercent: Self.rounded($0.selfPercent),
                               totalValue: $0.totalValue, totalPercent: Self.rounded($0.totalPercent))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }

    /// Percent with 4 decimals, so JSON output is stable and readable.
    public static func rounded(_ p: Double) -> Double { (p * 10_000).rounded() / 10_000 }

    /// `s` right-aligned in `width` characters (never cut).
    public static func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
    /// `12.34%`.
    public static func percent(_ p: Double) -> String { String(format: "%.2f%%", p) }
    /// `12.3400`, CSV's percentages.
    public static func csvNumber(_ p: Double) -> String { String(format: "%.4f", p) }

    /// A CSV field, quoted (RFC 4180) when it holds a comma, quote or newline.
    public static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A value in its unit: `1.234s` for nanoseconds, `12.3MB` for bytes, else the grouped count.
    public static func formatValue(_ value: Int64, _ type: Profile.ValueType) -> String {
        valueText(value, unit: type.unit)
    }
}
