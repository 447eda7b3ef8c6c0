import ArgumentParser
import Foundation
import Sprof

/// `sprof report [FILE]`: the top functions of a saved profile, like `perf report --stdio` and
/// `go tool pprof -top`.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print the top functions of a profile (pprof or folded), by self and total.",
        discussion: """
            Self is the share of samples whose innermost frame is the function (pprof's "flat"); \
            total the share with the function anywhere on the stack (pprof's "cum"), counted once \
            per sample. Rows are sorted by self, then total. Inlined functions are entries of their own.

            Examples:
              sprof report                                # sprof.pb.gz
              sprof report qsl.pb.gz --limit 10
              sprof report --sort dso,sym --format csv
              sprof report --threads
              sprof report --header
              sprof report --lines                        # per source line, as pprof -lines
              sprof report --view wall t.pb.gz            # wall-clock time (recorded with --off-cpu)
              sprof report --memory                       # peak RSS per process, RSS over time
            """
    )

    @Argument(help: ArgumentHelp("The profile: pprof (.pb.gz) or folded stacks; '-' for standard input.", valueName: "file"))
    var file = "sprof.pb.gz"

    @Option(help: "Group by these keys, comma-separated: comm, dso, sym, thread (perf's --sort).")
    var sort = "sym"

    @Option(help: "Rows to print (0: all).")
    var limit = 25

    @Flag(help: "Per-thread totals instead of functions.")
    var threads = false

    @Option(help: "Output format: text, csv or json.")
    var format = "text"

    @Flag(help: "Print the profile's provenance (event, rate, losses, machine) first.")
    var header = false

    @Option(name: [.customLong("view"), .customLong("sample-type")],
            help: "Which values to rank by: samples (default), cpu, wall, off-cpu, or another type in the profile.")
    var view: String?

    @Flag(name: .customLong("full-names"), help: "Full demangled names (whole Swift signatures).")
    var fullNames = false

    @Flag(help: "One row per function and source line (pprof's -lines): `name file:line`.")
    var lines = false

    @Flag(help: "One row per sampled address (pprof's -addresses): `0xADDRESS name file:line`.")
    var addresses = false

    @Flag(help: "Print the memory timeline saved beside the profile (PREFIX.memory.tsv): peak RSS per process and RSS over time.")
    var memory = false

    @Option(name: .customLong("transform"), parsing: .singleValue,
            help: ArgumentHelp("Rewrite the stacks first, in order (repeatable): focus:F, subtree:A;B;C, ignore:F, merge:F, rec:F, tid:N, pid:N (as sprof serve's transform bar).", valueName: "kind:arg"))
    var transforms: [String] = []

    func run() throws {
        if memory { return try writeStandardOutput(MemoryReport.text(for: file, limit: limit)) }
        // Every comma-separated part must name a key: '' or ',' would give one nameless row.
        let keys = try sort.split(separator: ",", omittingEmptySubsequences: false).map { part -> SortKey in
            if part.trimmingCharacters(in: .whitespaces).isEmpty {
                throw usage("--sort '\(sort)': an empty key; give keys separated by commas (valid: comm, dso, sym, thread)")
            }
            guard let key = SortKey(rawValue: part.trimmingCharacters(in: .whitespaces)) else {
                throw usage("--sort \(sort): unknown key '\(part)' (valid: comm, dso, sym, thread)")
            }
            return key
        }
        guard ["text", "csv", "json"].contains(format) else {
            throw usage("--format \(format): unknown format (valid: text, csv, json)")
        }
        guard limit >= 0 else { throw usage("--limit \(limit): must be 0 or more") }
        if lines && addresses { throw usage("--lines and --addresses: choose one granularity") }
        let granularity: Granularity = addresses ? .addresses : (lines ? .lines : .functions)
        let parsed = try transforms.map { text in
            do { return try StackTransform(parsing: text) } catch { throw usage("--transform \(text): \(error)") }
        }
        let profile = try readProfile(file).transformed(parsed)
        let index = try valueIndex(profile, named: view)
        let type = profile.sampleTypes[index]
        let total = profile.total(index)
        let headerNames = keys.map(\.rawValue)
        var out = ""
        switch format {
        case "json":
            out = try json(profile, index: index, keys: headerNames, granularity: granularity)
        case "csv":
            if threads {
                out = "value,percent,pid,tid,process,thread\n"
                for t in limited(profile.threadTotals(valueIndex: index)) {
                    out += "\(t.value),\(csvNumber(t.percent)),\(t.pid),\(t.tid),\(csvField(t.processName)),\(csvField(t.name))\n"
                }
            } else {
                out = "self,self_percent,total,total_percent," + headerNames.joined(separator: ",") + "\n"
                for r in limited(profile.top(by: keys, valueIndex: index, fullNames: fullNames, granularity: granularity)) {
                    out += "\(r.selfValue),\(csvNumber(r.selfPercent)),\(r.totalValue),\(csvNumber(r.totalPercent)),"
                    out += r.key.map(csvField).joined(separator: ",") + "\n"
                }
            }
        default:
            // A profile without provenance (folded input) has no header to print.
            let provenance = profile.metadata.provenanceLines
            if header && !provenance.isEmpty { out += provenance.map { "# " + $0 }.joined(separator: "\n") + "\n#\n" }
            out += "# \(file): \(formatValue(total, type)) \(type.type == "samples" ? "samples" : type.description)"
            if profile.metadata.isRecording { out += ", \(profile.metadata.statistics.lost) lost" }
            if let event = profile.metadata.event.isEmpty ? nil : profile.metadata.event { out += ", event \(event)" }
            out += "\n"
            if threads {
                out += "\(pad("value", 12)) \(pad("%", 7))  thread\n"
                for t in limited(profile.threadTotals(valueIndex: index)) {
                    out += "\(pad(formatValue(t.value, type), 12)) \(pad(percent(t.percent), 7))  \(t.processName)/\(t.name) (pid \(t.pid), tid \(t.tid))\n"
                }
            } else {
                out += "\(pad("self", 12)) \(pad("self%", 7)) \(pad("total", 12)) \(pad("total%", 7))  \(headerNames.joined(separator: " "))\n"
                for r in limited(profile.top(by: keys, valueIndex: index, fullNames: fullNames, granularity: granularity)) {
                    out += "\(pad(formatValue(r.selfValue, type), 12)) \(pad(percent(r.selfPercent), 7)) \(pad(formatValue(r.totalValue, type), 12)) \(pad(percent(r.totalPercent), 7))  \(r.key.joined(separator: "  "))\n"
                }
            }
        }
        try writeStandardOutput(out)
    }

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

    private func json(_ profile: Profile, index: Int, keys: [String], granularity: Granularity) throws -> String {
        var report = JSONReport(file: file, sampleType: profile.sampleTypes[index].type, unit: profile.sampleTypes[index].unit,
                                total: profile.total(index), sortKeys: keys, provenance: profile.metadata.provenanceLines)
        if threads {
            report.threads = limited(profile.threadTotals(valueIndex: index)).map {
                JSONReport.ThreadRow(pid: $0.pid, tid: $0.tid, process: $0.processName, thread: $0.name, value: $0.value,
                                     percent: rounded($0.percent))
            }
        } else {
            report.functions = limited(profile.top(by: keys.compactMap(SortKey.init), valueIndex: index, fullNames: fullNames, granularity: granularity)).map {
                JSONReport.Row(key: $0.key, selfValue: $0.selfValue, selfPercent: rounded($0.selfPercent),
                               totalValue: $0.totalValue, totalPercent: rounded($0.totalPercent))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }
}

/// Percent with 4 decimals, so JSON output is stable and readable.
func rounded(_ p: Double) -> Double { (p * 10_000).rounded() / 10_000 }

func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
func percent(_ p: Double) -> String { String(format: "%.2f%%", p) }
func csvNumber(_ p: Double) -> String { String(format: "%.4f", p) }

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or newline.
func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// A value in its unit: `1.234s` for nanoseconds, `12.3MB` for bytes, else the grouped count.
func formatValue(_ value: Int64, _ type: Profile.ValueType) -> String {
    switch type.unit {
    case "nanoseconds": return String(format: "%.3fs", Double(value) / 1e9)
    case "bytes": return String(format: "%.1fMB", Double(value) / 1_048_576)
    default: return grouped(value)
    }
}

/// Writes all of `text` to standard output; a closed pipe (`| head`) ends quietly.
func writeStandardOutput(_ text: String) throws {
    try writeStandardOutput(Array(text.utf8))
}

/// Writes all of `bytes` to standard output (descriptor 1 itself, never a reopened
/// /dev/stdout, so a closed stdout is an error); a closed pipe (`| head`) ends quietly.
func writeStandardOutput(_ bytes: [UInt8]) throws {
    var bytes = bytes
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EPIPE { return }
            throw fail("cannot write <stdout>: \(String(cString: strerror(errno)))")
        }
        offset += n
    }
}
