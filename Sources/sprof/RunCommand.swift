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

            With -r N the command runs N times, one after another, into one profile whose samples \
            carry their run number (pprof label `run`; `go tool pprof -tagfocus=run=3` keeps run 3), \
            for `sprof diff` to test changes against run-to-run noise. A run that fails does not stop \
            the others (Ctrl-C does); sprof exits with the status of the first run that did not exit 0.

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

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output prefix: writes PREFIX.folded, PREFIX.svg and PREFIX.pb.gz; a directory (or DIR/) means DIR/sprof.*.")
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

    @Option(help: "With -p or -a: stop after this many seconds (default: until the process or command exits, or Ctrl-C).")
    var duration: Double?

    @Flag(name: [.customShort("a"), .customLong("all-cpus")], help: "Record every process on every CPU (system-wide) until Ctrl-C, --duration, or the end of the given command. Needs root or kernel.perf_event_paranoid <= 0.")
    var systemWide = false

    @Flag(name: .customLong("off-cpu"), help: "Also record where threads wait (switch-out stacks, timed to the next switch-in): writes PREFIX.wall.svg and PREFIX.offcpu.svg. Needs root or kernel.perf_event_paranoid <= 1.")
    var offCPU = false

    @Flag(name: .customLong("heap"), help: "Also record a heap profile: allocations sampled by bytes, in use and leaked at exit, by stack (writes PREFIX.alloc.svg, PREFIX.inuse.svg, PREFIX.heap.pb.gz, PREFIX.heap.tsv). With -e none, only the heap. Needs CAP_SYS_ADMIN (root).")
    var heap = false

    @Option(name: .customLong("heap-rate"), help: "With --heap: one sample per BYTES allocated on average, drawn at random (default 524288; 1 records every allocation).")
    var heapRate: Int?

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No notices, status line or summary line.")
    var quiet = false

    @Option(name: .customLong("progress-fd"), help: "Write live progress to descriptor N as JSON lines (elapsed_ns, samples, lost, processes, threads, peak_rss_bytes; at most 4 a second; a last line with \"done\": true).")
    var progressFD: Int32?

    @Flag(name: .customLong("timeline"), help: "Also write PREFIX.timeline.tsv: every sample's time, thread, CPU and stack, on the time axis of PREFIX.memory.tsv (sprof serve's timeline and time ranges read it; 32 bytes of memory per sample while recording).")
    var timeline = false

    @Flag(name: .customLong("per-thread"), help: "Root folded stacks and flame graphs at process;thread-TID instead of the process alone.")
    var perThread = false

    @Flag(name: .customLong("full-names"), help: "Full demangled names (whole Swift signatures) in folded stacks and flame graphs.")
    var fullNames = false

    @Option(name: .customLong("max-memory"), help: "Most memory for records waiting to be unwound: SIZE in bytes or with K, M or G (binary units; default 256M, at least 1M). Beyond it they go to an unlinked temporary file in $TMPDIR and come back in order, so nothing is lost.")
    var maxMemory: String?
    @Option(name: [.customShort("r"), .customLong("repeat")], help: "Run the command N times into one profile, each sample labelled with its run (default 1).")
    var repeats = 1

    @Option(name: .customLong("min-samples"), help: "Fail (exit 2, previous outputs kept) when fewer samples than this were taken.")
    var minSamples: Int?

    @Argument(parsing: .captureForPassthrough, help: "The command to profile, with its arguments.")
    var command: [String] = []

    /// `1048576`, `512K`, `256M`, `2G` (also `256MiB`, `256MB`: binary units either way); nil
    /// when it is not a size or overflows.
    static func parseMemorySize(_ text: String) -> Int? {
        var digits = Substring(text.uppercased())
        for suffix in ["IB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits = digits.dropLast(suffix.count)
            break
        }
        var shift = 0
        if let last = digits.last, let s = ["K": 10, "M": 20, "G": 30, "T": 40][String(last)] {
            shift = s
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let n = Int(digits), n >= 0 else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : bytes
    }

    func run() throws {
        let arguments = try runTarget()
        if let duration, !(duration > 0 && duration.isFinite) || (pid == nil && !systemWide) {
            throw usage(pid == nil && !systemWide ? "--duration goes with -p PID or -a" : "--duration \(duration): must be a positive number of seconds")
        }
        if let pid, pid <= 0 { throw usage("-p \(pid): a process id is a positive number (see ps)") }
        if let minSamples, minSamples < 0 { throw usage("--min-samples \(minSamples): must be 0 or more") }
        // Not a pprof stream on stdout: the command writes to the same stdout, which would corrupt
        // it, and `run` writes several files. A prefix, then convert, gives the stream.
        if output == "-" {
            throw usage("-o -: run writes several files (PREFIX.folded, PREFIX.svg, PREFIX.pb.gz) and the command's own output goes to standard output; give a prefix, then stream the pprof with 'sprof convert PREFIX.pb.gz --to pprof -o -'")
        }
        if !(1...10_000).contains(repeats) { throw usage("-r \(repeats): the number of runs must be from 1 to 10000") }
        if repeats > 1 && (pid != nil || systemWide) { throw usage("-r repeats a command sprof starts; it does not go with -p or -a") }
        var options = RunOptions()
        options.repeats = repeats
        options.event = event == "none" ? HeapOptions.noCPUEvent : try parseEvent(event)
        if event == "none" && !heap { throw usage("-e none records nothing without --heap") }
        if let heapRate, !heap || heapRate < 1 { throw usage(heap ? "--heap-rate \(heapRate): must be at least 1 byte" : "--heap-rate goes with --heap") }
        if heap {
            if systemWide { throw usage("--heap goes with a command or -p PID, not -a") }
            options.heap = HeapOptions(rate: heapRate ?? 512 * 1024)
        }
        options.rate = try parseRate(frequency: frequency, period: period)
        options.callGraph = try parseCallGraph(callGraph, g: framePointerCallGraph)
        // The heap probes copy 8 KiB of stack (HeapOptions.stackSize) and the CPU samples keep the
        // default 32 KiB; an explicit dwarf,SIZE is for both.
        if heap, callGraph != nil, case .dwarf(let size) = options.callGraph { options.heap?.stackSize = size }
        options.demangle = !noDemangle
        options.inlineFrames = inline
        if let mmapPages {
            guard mmapPages > 0, mmapPages & (mmapPages - 1) == 0 else {
                throw usage("-m \(mmapPages): the page count must be a power of two, e.g. 64 or 128")
            }
            options.ringPages = mmapPages
        }
        if let maxMemory {
            guard let bytes = Self.parseMemorySize(maxMemory), bytes >= 1 << 20 else {
                throw usage("--max-memory \(maxMemory): give a size of at least 1M, in bytes or with K, M or G (e.g. 256M, 2G)")
            }
            options.maxMemory = bytes
        }
        options.offCPU = offCPU
        if offCPU && !options.event.isClock {
            throw usage("--off-cpu needs a clock event (-e cpu-clock or task-clock), not \(options.event): wall time adds its nanoseconds to off-CPU time")
        }

        if let progressFD { try ProgressOutput.checkDescriptor(progressFD) }
        let progress = ProgressOutput(statusLine: !quiet && isatty(2) == 1, jsonFD: progressFD)
        if progress.isActive { options.progress = { progress.report($0) } }
        defer { progress.erase() }

        options.keepTimedSamples = timeline
        let outputs = try ProfileOutputs(prefix: output, offCPU: offCPU, heap: heap, timeline: timeline)
        // Signals after the recording (a second Ctrl-C, serve's Stop ending a command that ignored
        // its SIGINT) are dropped: the outputs are written whole.
        InterruptForwarding.keepCatchingAfterRecording()
        let recorded: RecordedCommand
        do {
            let notice: (String) -> Void = { message in if !quiet { printError(message) } }
            if systemWide {
                recorded = try CommandProfiler.systemWide(arguments, options: options, duration: duration, notice: notice)
            } else if let pid {
                recorded = try CommandProfiler.attach(to: pid, options: options, duration: duration, notice: notice)
            } else {
                recorded = try CommandProfiler.profile(arguments, options: options, notice: notice)
            }
        } catch let error as LaunchError {
            progress.erase()
            throw fail(error.description, status: error.exitStatus)
        } catch let error as SyscallError {
            progress.erase()
            throw fail(error.description)
        }
        progress.erase()
        let droppedProgress = progress.finish()
        if droppedProgress > 0 && !quiet, let progressFD {
            printError("\(grouped(droppedProgress)) progress line\(droppedProgress == 1 ? " was" : "s were") dropped: the reader of --progress-fd \(progressFD) did not keep up (or went away)")
        }
        let profile = recorded.profile
        // Attached: the process goes on; a signal that ended the recording is sprof's status (130
        // for Ctrl-C), as for a command it started, so scripts can tell an interrupted run.
        let status = (pid != nil || (systemWide && arguments.isEmpty)) && InterruptForwarding.lastSignal > 0 ? 128 + InterruptForwarding.lastSignal
            : recorded.exitStatus?.shellStatus ?? 0
        if let minSamples, profile.statistics.samples < minSamples {
            throw fail("\(grouped(profile.statistics.samples)) samples, fewer than --min-samples \(minSamples); previous outputs under \(outputs.prefix).* were kept (profile longer, or raise -F)", status: ExitStatusCode.gateFailed)
        }
        let target = systemWide ? "system-wide" + (arguments.isEmpty ? "" : " while " + arguments.joined(separator: " ")) : pid.map { "pid \($0)" } ?? arguments.joined(separator: " ")
        // No allocation sampled (a command that allocates less than the rate, a static binary, one
        // that clears LD_PRELOAD): no heap profile is written, an empty one would read as "allocates
        // nothing". The CPU outputs are written as usual (with `-e none` they are the heap profile,
        // so nothing is), earlier heap outputs stay, and the command's status still passes through.
        let heapSampled = !heap || (recorded.heap?.statistics.samples ?? 0) > 0
        var written: [String] = []
        if heapSampled || !(heap && event == "none") {
            written = try outputs.write(profile, title: title ?? "sprof: " + target,
                                        perThread: perThread, fullNames: fullNames,
                                        heap: heapSampled ? recorded.heap : nil, heapTimeline: recorded.heapTimeline, timelineOrigin: recorded.timeOrigin)
        } else {
            outputs.discard()
        }
        if !heapSampled && !quiet {
            let why = Self.noHeapSampleReason(rate: options.heap?.rate ?? 0, attached: pid != nil, exitStatus: recorded.exitStatus,
                                              setID: try pid == nil && Self.isSetID(runTarget().first ?? ""))
            let earlier = access(outputs.prefix + ".heap.pb.gz", F_OK) == 0
                ? ", earlier \(outputs.prefix).heap.pb.gz and other heap views were kept" : ""
            printError("heap: no allocation was sampled (\(why)); no heap profile written\(earlier)")
        }
        if !quiet {
            if !written.isEmpty { printError(RecordingReport.summaryLine(profile, exitStatus: recorded.exitStatus, written: written, heap: recorded.heap)) }
            if !recorded.runs.isEmpty { printError(RecordingReport.runsLine(recorded.runs, requested: repeats)) }
            if let cut = recorded.interruptedRun {
                printError("run \(cut.number) was cut short (\(cut.exitStatus), after \(cut.duration / 1_000_000_000).\(String(1000 + cut.duration / 1_000_000 % 1000).dropFirst()) s): its \(grouped(cut.samples)) samples are in the profile without a run label, not as a run, so that sprof diff's per-run shares leave them out")
            }
            // A launched command's leaks, always (also "none") so that none reads apart from not
            // reported; an attached process goes on, its blocks in use are not leaks.
            if let heapProfile = recorded.heap, heapSampled, pid == nil, let heapOptions = options.heap {
                let heapCallGraph: SamplingOptions.CallGraph = if case .dwarf = options.callGraph { .dwarf(stackSize: heapOptions.stackSize) } else { options.callGraph }
                let advice = RecordingReport.heapLossAdvice(rate: heapOptions.rate, callGraph: heapCallGraph, attached: false)
                printError(RecordingReport.leakReport(heapProfile, lostRecords: RecordingReport.lostHeapRecords(profile), runs: max(1, recorded.runs.count), advice: advice))
            }
            if let advice = RecordingReport.lossAdvice(for: profile, callGraph: options.callGraph, ringPages: options.effectiveRingPages()) { printError(advice) }
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Why no allocation was sampled, and what to try, by mode: the rate matters only above 1
    /// (at 1 every allocator call is recorded), and a command that exited with a failure status
    /// (an ASan binary refuses LD_PRELOAD and exits 1 at once) most likely failed before allocating.
    static func noHeapSampleReason(rate: Int, attached: Bool, exitStatus: ExitStatus?, setID: Bool = false) -> String {
        if setID {
            // ld.so's secure-execution mode: LD_PRELOAD is not honoured for a set-user-ID or
            // set-group-ID program, so the library never loaded (a new user was told it failed at start).
            return "the command is set-user-ID or set-group-ID, and the loader ignores LD_PRELOAD for such programs (secure-execution mode), so sprof's library was not loaded: attach to it instead (sprof run --heap -p PID)"
        }
        if attached {
            return rate > 1 ? "the process allocated less than --heap-rate \(rate) bytes while attached: try --heap-rate 1, or a longer --duration"
                : "the process made no allocator call while attached: try a longer --duration"
        }
        // Killed by a signal (Ctrl-C, a crash), it may well have run: the generic reason stands.
        if let status = exitStatus, case .exited(let code) = status, code != 0 {
            return "the command ended (\(status)) before an allocation was sampled: it most likely failed at start, before allocating "
                + "(see its output above; an ASan binary refuses LD_PRELOAD)" + (rate > 1 ? ", or allocated less than --heap-rate \(rate) bytes" : "")
        }
        return rate > 1 ? "the command allocated less than --heap-rate \(rate) bytes, or is a static binary or clears LD_PRELOAD: try --heap-rate 1, or -p PID"
            : "the command made no allocator call through the preload library: it is a static binary, clears LD_PRELOAD, or has an allocator of its own: try -p PID"
    }

    /// Whether the program `name` (a path, or a name found on PATH) runs in the loader's
    /// secure-execution mode for this user: set-user-ID to another user, or set-group-ID to
    /// another group (a set-user-ID root program run by root is not).
    static func isSetID(_ name: String) -> Bool {
        for path in ProgramSearch.candidates(for: name) {
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
                return (st.st_mode & S_ISUID != 0 && st.st_uid != getuid()) || (st.st_mode & S_ISGID != 0 && st.st_gid != getgid())
            }
        }
        return false
    }

    /// The command to run: none is fine with -a (record until Ctrl-C or --duration).
    private func runTarget() throws -> [String] {
        guard systemWide else { return try commandLine(command, pid: pid, of: self) }
        if pid != nil { throw usage("give either -a (every process) or -p PID, not both") }
        if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        return command.first == "--" ? Array(command.dropFirst()) : command
    }
}

func parseEvent(_ text: String) throws -> EventSpec {
    do {
        return try EventCatalog.parse(text)
    } catch {
        throw usage(error.description)
    }
}

func parseRate(frequency: Int?, period: UInt64?) throws -> SamplingOptions.Rate {
    switch (frequency, period) {
    case (.some, .some): throw usage("use either -F (frequency) or -c (period), not both")
    case (.some(let hz), nil):
        guard hz > 0 else { throw usage("-F \(hz): the frequency must be a positive number of samples per second") }
        return .frequency(hz)
    case (nil, .some(let n)):
        guard n > 0 else { throw usage("-c 0: the period must be at least 1") }
        return .period(n)
    case (nil, nil): return .frequency(999)
    }
}

func parseCallGraph(_ text: String?, g: Bool) throws -> SamplingOptions.CallGraph {
    if g && text != nil { throw usage("use either -g or --call-graph, not both") }
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
                throw usage("--call-graph dwarf,\(parts[1]): the stack size must be a multiple of 8 from 8 to \(SamplingOptions.maxDwarfStackSize)")
            }
            size = n
        }
        return .dwarf(stackSize: size)
    default:
        throw usage("--call-graph \(text): unknown mode; valid modes: fp, dwarf[,SIZE], none")
    }
}
