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
            help: "Which values to rank by: a sample type of the profile (samples, cpu, wall, off-cpu; alloc_space, inuse_space, … in heap profiles). Default: the profile's default (pprof's rule: default_sample_type, else the last type).")
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
        try refuseEmptyPaths([("FILE", file)])
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
        guard let reportFormat = ProfileReport.Format(rawValue: format) else {
            throw usage("--format \(format): unknown format (valid: text, csv, json)")
        }
        guard limit >= 0 else { throw usage("--limit \(limit): must be 0 or more") }
        if lines && addresses { throw usage("--lines and --addresses: choose one granularity") }
        let granularity: Granularity = addresses ? .addresses : (lines ? .lines : .functions)
        let parsed = try transforms.map { text in
            do { return try StackTransform(parsing: text) } catch { throw usage("--transform \(text): \(error)") }
        }
        // Full names are made by the view: a saved pprof keeps linkage names (system_name), which
        // the demangler turns into full Swift signatures. Transforms match the names shown by default.
        // A recording without samples is shown, as pprof -top shows it: its header line says 0
        // samples and how many were lost, and --header's provenance (rate, notices) says why.
        let input = try readProfileInput(file, allowingNoSamples: true)
        // Folded stacks carry no threads and no addresses: the report would invent them (a
        // "pid 0, tid 0" thread, 0x0 addresses), as flamegraph's --per-thread refuses to.
        if input.folded {
            if threads || keys.contains(.thread) {
                throw usage("\(threads ? "--threads" : "--sort thread") needs a pprof input (folded stacks carry no threads)")
            }
            if addresses { throw usage("--addresses needs a pprof input (folded stacks carry no addresses)") }
        }
        let read = input.profile.transformed(parsed)
        let profile = fullNames ? read.withNamesFromSystemNames() : read
        let index = try valueIndex(profile, named: view)
        let report = ProfileReport(keys: keys, limit: limit, threads: threads, format: reportFormat,
                                   header: header, fullNames: fullNames, granularity: granularity, valueIndex: index)
        try writeStandardOutput(try report.render(profile, file: file))
    }
}

/// `s` right-aligned in `width` characters, as the report's columns (``ProfileReport/pad(_:_:)``).
func pad(_ s: String, _ width: Int) -> String { ProfileReport.pad(s, width) }

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
