#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Sprof
import SprofFormats

/// `sprof stat`: count events for a command (and all its children) or a running process, print
/// them like perf stat, optionally compare with a baseline as a CI gate.
struct StatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat",
        abstract: "Count events for a command, like perf stat.",
        discussion: """
            Counts from the command's exec to its exit, including every thread and child process. \
            Default events: task-clock, context-switches, cpu-migrations, page-faults, cycles, \
            instructions, branches, branch-misses. Output goes to stderr (as perf stat's does) \
            unless -o is given. sprof exits with the command's exit status (128+N when killed by \
            signal N); with --baseline it exits 2 when a checked counter regressed. \
            Output fields are documented in docs/stat-output.md.

            Examples:
              sprof stat ./qsl-bench
              sprof stat -e instructions:u,'{cycles,instructions}' -r 5 -- make -j2
              sprof stat -e instructions:u -r 5 --json -o base.json ./bench
              sprof stat -e instructions:u -r 5 --baseline base.json ./bench
              sprof stat -p 1234
            """
    )

    @Option(name: [.customShort("e"), .customLong("event")],
            help: "Comma-separated events: names from 'sprof list', name:u/:k, rHEX, pmu/term=v,.../, {a,b} groups. Repeatable.")
    var events: [String] = []

    @Option(name: [.customShort("r"), .customLong("repeat")], help: "Run the command N times; print mean and relative stddev.")
    var repeats = 1

    @Option(name: [.customShort("x"), .customLong("field-separator")], help: "CSV output with this separator.")
    var separator: String?

    @Flag(name: .customLong("json"), help: "JSON output.")
    var json = false

    @Option(name: [.customShort("p"), .customLong("pid")], help: "Attach to a running process (all its threads) until it exits or Ctrl-C.")
    var pid: Int32?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write the counts to FILE instead of stderr.")
    var output: String?

    @Option(name: .customLong("baseline"), help: "Compare with an earlier --json result; exit 2 on a regression.")
    var baseline: String?

    @Option(name: .customLong("threshold"), help: "Regression threshold in percent for --baseline (default 5).")
    var threshold = 5.0

    @Option(name: .customLong("gate"),
            help: "Comma-separated counters --baseline checks (as printed, e.g. instructions:u; 'elapsed' for wall time). Default: the instructions counters, else all.")
    var gate: String?

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No notices.")
    var quiet = false

    @Argument(parsing: .captureForPassthrough, help: "The command to count, with its arguments.")
    var command: [String] = []

    func run() throws {
        let arguments = try commandLine(command, pid: pid, of: self)
        guard repeats >= 1 else { throw usage("-r \(repeats): the repeat count must be at least 1") }
        if pid != nil && repeats > 1 { throw usage("-r cannot be used with -p: an attached process runs once") }
        if json && separator != nil { throw usage("use either -x (CSV) or --json, not both") }
        if let separator, separator.isEmpty { throw usage("-x needs a non-empty separator, e.g. -x ,") }
        guard threshold >= 0, threshold.isFinite else { throw usage("--threshold \(threshold): give a percentage of 0 or more") }

        var groups: [CounterGroup] = []
        do {
            for list in events { groups += try CounterEvents.parse(list) }
        } catch {
            throw usage(error.description)
        }
        if groups.isEmpty { groups = CounterEvents.defaultGroups }
        let restricted = CounterEvents.restrictedToUserSpace(groups, settings: KernelSettings.current())
        groups = restricted.groups
        // With --json nothing but JSON is printed (as perf stat -j): notices go into it.
        var notices: [String] = []
        func notice(_ line: String) {
            if quiet { return }
            if json { notices.append(line) } else { printError(line) }
        }
        // Attached, said once the counters are open: a refusal (another user's process) is then
        // the one line.
        if let line = restricted.notice, pid == nil { notice(line) }

        try refuseEmptyPaths([("-o", output), ("--baseline", baseline)])
        try refuseOutputOverInput([output], inputs: [baseline])
        let baselineReport = try baseline.map(loadBaseline)
        let regressionGate = RegressionGate(thresholdPercent: threshold,
                                            events: gate.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } })
        if let baselineReport {
            // Known before the command runs: a gate that can compare nothing is a usage error
            // with nothing run, not a verdict-less status after a possibly long run.
            let now = groups.flatMap(\.events).map(\.description)
            let plan = regressionGate.planned(events: now, baseline: baselineReport)
            if plan.compared.isEmpty {
                let both = now.filter { baselineReport.counter($0)?.status == "counted" } + (baselineReport.elapsedSeconds.values.isEmpty ? [] : ["elapsed"])
                let what = plan.missing.isEmpty ? "no counter is counted both in it and now (\(now.joined(separator: ",")))"
                    : "\(plan.missing.joined(separator: ", ")) \(plan.missing.count == 1 ? "is" : "are") not counted both in it and now (-e \(now.joined(separator: ",")))"
                throw usage("--baseline \(baseline!): no counter to compare: \(what); --gate one of: \(both.joined(separator: ", "))")
            }
        }
        let outputFile = try output.map { try OutputFile(path: $0) }

        var runs: [CountedRun] = []
        do {
            if let pid {
                runs.append(try CommandCounter.attach(pid: pid, groups: groups))
                if let line = restricted.notice { notice(line) }
            } else {
                for _ in 0..<repeats {
                    let run = try CommandCounter.count(arguments, groups: groups)
                    runs.append(run)
                    if run.interrupted { break } // Ctrl-C ends the series, like perf
                }
            }
        } catch let error as LaunchError {
            throw fail(error.description, status: error.exitStatus)
        } catch let error as SyscallError {
            throw fail(error.description)
        }

        var report = StatReport(runs: runs, groups: groups, command: pid == nil ? arguments : nil, pid: pid)
        if !quiet && !events.isEmpty && !json {
            // The rows say <not supported>; the reason is worth one line for events asked by name.
            // (The JSON has it in each counter's `reason`.)
            for c in report.counters where c.status == "not supported" {
                notice("\(c.event): \(c.reason ?? "not supported")")
            }
        }

        var gateFailed = false
        if let baselineReport {
            let verdict = regressionGate.compare(current: report, baseline: baselineReport)
            if verdict.comparisons.isEmpty {
                // Checked before the run: the counters were then not counted (unsupported here).
                throw fail("--baseline \(baseline!): no counter to compare: \(verdict.missing.joined(separator: ", ")) not counted in this run (see the counters above)")
            }
            // The verdict is shown even with -q: it is the gate's answer, not a notice.
            for line in RegressionGate.describe(verdict, thresholdPercent: threshold) { if json { notices.append(line) } else { printError(line) } }
            gateFailed = verdict.failed
            if gateFailed {
                let line = "regression past \(String(format: "%g", threshold))% against \(baseline!)"
                if json { notices.append(line) } else { printError(line) }
            }
        }
        if json && !notices.isEmpty { report.notices = notices }
        let rendered: String
        if json {
            rendered = String(decoding: try report.jsonData(), as: UTF8.self) + "\n"
        } else if let separator {
            rendered = StatFormatter.csv(report, separator: separator)
        } else {
            rendered = StatFormatter.text(report)
        }
        if let outputFile {
            try outputFile.write(Array(rendered.utf8))
        } else {
            var text = rendered
            text.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stderr) }
        }

        if let status = report.exitStatus, status != 0 { throw ExitCode(status) }
        if gateFailed { throw ExitCode(ExitStatusCode.gateFailed) }
    }

    /// The most bytes of a --baseline file read (64 MiB): a `sprof stat --json` result is a few KiB.
    static let maxBaselineBytes = 64 << 20

    private func loadBaseline(_ path: String) throws -> StatReport {
        // Unreadable input is status 1, as for diff and report: the options were right.
        let shown = ArgumentBytes.displayed(path)
        let fix = "write one with sprof stat --json -o FILE"
        let fd = ArgumentBytes.withPath(path) { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw fail("--baseline \(shown): cannot read the file (\(String(cString: strerror(errno)))); \(fix)") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFDIR {
            throw fail("--baseline \(shown): a directory, not a 'sprof stat --json' result; give the file, or \(fix)")
        }
        let bytes: [UInt8]
        do {
            bytes = try ProfileReader.readInput(fd: fd, source: "--baseline \(shown)", limit: Self.maxBaselineBytes, checkHead: false)
        } catch let error as ProfileReadError {
            throw fail(error.kind == .tooLarge
                ? "--baseline \(shown): larger than \(Self.maxBaselineBytes >> 20) MiB, not a 'sprof stat --json' result; \(fix)"
                : "\(error.message); \(fix)")
        }
        guard !bytes.isEmpty else { throw fail("--baseline \(shown): empty, not a 'sprof stat --json' result; \(fix)") }
        do {
            return try StatReport.decode(Data(bytes))
        } catch {
            throw fail("--baseline \(shown): not a 'sprof stat --json' result (\(shortReason(error))); write one with sprof stat --json -o \(shown)")
        }
    }

    private func shortReason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(let type, let ctx), DecodingError.valueNotFound(let type, let ctx):
            let expected: String
            switch type {
            case is [String: Any].Type: expected = "a JSON object"
            case is [Any].Type: expected = "a JSON array"
            case is String.Type: expected = "a string"
            case is Bool.Type: expected = "true or false"
            case is Double.Type, is Float.Type, is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type: expected = "a number"
            default: expected = "a \(type)"
            }
            let at = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return at.isEmpty ? "the top level is not \(expected)" : "wrong type at \(at): expected \(expected)"
        case DecodingError.dataCorrupted: return "invalid JSON"
        default: return "unreadable"
        }
    }
}
