#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Sprof

/// `sprof run` (alias `record`): profile a command, write folded stacks and a flame graph.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Profile a command and write PREFIX.folded and PREFIX.svg.",
        discussion: """
            Samples the command and every thread and child process it creates, from exec to exit. \
            Ctrl-C stops the command; the profile gathered so far is still written. sprof exits \
            with the command's exit status (128+N when it was killed by signal N).

            Examples:
              sprof run ./qsl-bench
              sprof run -e cycles:u -F 4000 -o cycles -- make -j2
            """,
        aliases: ["record"]
    )

    @Option(name: [.customShort("e"), .customLong("event")], help: "Event to sample (see 'sprof list').")
    var event = "cpu-clock"

    @Option(name: [.customShort("F"), .customLong("freq")], help: "Samples per second (default 999; clamped to the kernel's maximum).")
    var frequency: Int?

    @Option(name: [.customShort("c"), .customLong("period")], help: "Sample every N events instead of a frequency.")
    var period: UInt64?

    @Flag(name: .customShort("g"), help: "Frame-pointer call graphs: cheaper than the default dwarf, but stacks break in code built without frame pointers (same as --call-graph fp).")
    var framePointerCallGraph = false

    @Option(name: .customLong("call-graph"), help: "Stack mode: dwarf[,SIZE] (the default; SIZE bytes of user stack per sample, 32768 unless given, at most 65528), fp, or none.")
    var callGraph: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output prefix: writes PREFIX.folded and PREFIX.svg.")
    var output = "sprof"

    @Flag(name: .customLong("no-demangle"), help: "Keep mangled Swift and C++ names.")
    var noDemangle = false

    @Flag(inversion: .prefixedNo, help: "Show inlined calls as frames of their own (_[i]).")
    var inline = true

    @Option(name: [.customShort("m"), .customLong("mmap-pages")], help: "Ring-buffer data pages per CPU, a power of two (default: 128; for dwarf, room for 64 stack copies, at least 512, within the locked-memory limit).")
    var mmapPages: Int?

    @Option(help: "Flame graph title.")
    var title: String?

    @Option(name: [.customShort("p"), .customLong("pid")], help: "Attach to a running process (all its threads) instead of starting a command.")
    var pid: Int32?

    @Option(help: "With -p: stop after this many seconds (default: until the process exits or Ctrl-C).")
    var duration: Double?

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No notices or summary line.")
    var quiet = false

    @Flag(name: .customLong("per-thread"), help: "Root folded stacks and flame graphs at process;thread-TID instead of the process alone.")
    var perThread = false

    @Flag(name: .customLong("full-names"), help: "Full demangled names (whole Swift signatures) in folded stacks and flame graphs.")
    var fullNames = false

    @Option(name: .customLong("min-samples"), help: "Fail (exit 2, previous outputs kept) when fewer samples than this were taken.")
    var minSamples: Int?

    @Argument(parsing: .captureForPassthrough, help: "The command to profile, with its arguments.")
    var command: [String] = []

    func run() throws {
        let arguments = try commandLine(command, pid: pid, of: self)
        if let duration, duration <= 0 || pid == nil {
            throw fail(pid == nil ? "--duration goes with -p PID" : "--duration \(duration): must be a positive number of seconds", status: 2)
        }
        var options = RunOptions()
        options.event = try parseEvent(event)
        options.rate = try parseRate(frequency: frequency, period: period)
        options.callGraph = try parseCallGraph(callGraph, g: framePointerCallGraph)
        options.demangle = !noDemangle
        options.inlineFrames = inline
        if let mmapPages {
            guard mmapPages > 0, mmapPages & (mmapPages - 1) == 0 else {
                throw fail("-m \(mmapPages): the page count must be a power of two, e.g. 64 or 128", status: 2)
            }
            options.ringPages = mmapPages
        }

        let outputs = try ProfileOutputs(prefix: output)
        let recorded: RecordedCommand
        do {
            let notice: (String) -> Void = { message in if !quiet { printError(message) } }
            if let pid {
                recorded = try CommandProfiler.attach(to: pid, options: options, duration: duration, notice: notice)
            } else {
                recorded = try CommandProfiler.profile(arguments, options: options, notice: notice)
            }
        } catch let error as LaunchError {
            throw fail(error.description, status: error.exitStatus)
        } catch let error as SyscallError {
            throw fail(error.description)
        }
        let profile = recorded.profile
        let status = recorded.exitStatus?.shellStatus ?? 0
        if let minSamples, profile.statistics.samples < minSamples {
            throw fail("\(grouped(profile.statistics.samples)) samples, fewer than --min-samples \(minSamples); previous outputs under \(output).* were kept (profile longer, or raise -F)", status: 2)
        }
        let written = try outputs.write(profile, title: title ?? "sprof: " + (pid.map { "pid \($0)" } ?? arguments.joined(separator: " ")),
                                        perThread: perThread, fullNames: fullNames)
        if !quiet { printError(summary(profile, exitStatus: recorded.exitStatus, written: written)) }
        if status != 0 { throw ExitCode(status) }
    }

    private func summary(_ p: Profile, exitStatus: ExitStatus?, written: [String]) -> String {
        let s = p.statistics
        var line = "\(grouped(s.samples)) samples (\(grouped(s.lost)) lost"
        if s.throttles > 0 { line += ", throttled \(s.throttles)x" }
        if s.truncated > 0 { line += ", \(grouped(s.truncated)) truncated" }
        line += ") of \(p.metadata.event)"
        if let rate = p.metadata.rateText { line += " at " + rate }
        line += ", \(s.processes) process\(s.processes == 1 ? "" : "es"), \(s.threads) thread\(s.threads == 1 ? "" : "s")"
        if let status = exitStatus, case .signaled = status { line += ", command \(status)" }
        line += "; wrote " + written.joined(separator: ", ")
        return line
    }
}

func rateText(_ rate: SamplingOptions.Rate) -> String {
    switch rate {
    case .frequency(let hz): return "at \(hz) Hz"
    case .period(let n): return "every \(grouped(n)) events"
    }
}

func parseEvent(_ text: String) throws -> EventSpec {
    do {
        return try EventCatalog.parse(text)
    } catch {
        throw fail(error.description, status: 2)
    }
}

func parseRate(frequency: Int?, period: UInt64?) throws -> SamplingOptions.Rate {
    switch (frequency, period) {
    case (.some, .some): throw fail("use either -F (frequency) or -c (period), not both", status: 2)
    case (.some(let hz), nil):
        guard hz > 0 else { throw fail("-F \(hz): the frequency must be a positive number of samples per second", status: 2) }
        return .frequency(hz)
    case (nil, .some(let n)):
        guard n > 0 else { throw fail("-c 0: the period must be at least 1", status: 2) }
        return .period(n)
    case (nil, nil): return .frequency(999)
    }
}

func parseCallGraph(_ text: String?, g: Bool) throws -> SamplingOptions.CallGraph {
    if g && text != nil { throw fail("use either -g or --call-graph, not both", status: 2) }
    if g { return .framePointer }
    guard let text else { return .dwarf(stackSize: SamplingOptions.defaultDwarfStackSize) }
    let parts = text.split(separator: ",", maxSplits: 1)
    switch parts.first.map(String.init) ?? "" {
    case "fp": return .framePointer
    case "none", "no": return .none
    case "dwarf":
        var size = SamplingOptions.defaultDwarfStackSize
        if parts.count == 2 {
            guard let n = UInt32(parts[1]), n > 0, n % 8 == 0, n <= SamplingOptions.maxDwarfStackSize else {
                throw fail("--call-graph dwarf,\(parts[1]): the stack size must be a multiple of 8 from 8 to \(SamplingOptions.maxDwarfStackSize)", status: 2)
            }
            size = n
        }
        return .dwarf(stackSize: size)
    default:
        throw fail("--call-graph \(text): unknown mode; valid modes: fp, dwarf[,SIZE], none", status: 2)
    }
}
