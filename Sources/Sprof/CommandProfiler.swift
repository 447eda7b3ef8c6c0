#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// How `sprof run` records a command.
public struct RunOptions: Sendable {
    /// The sampled event (`-e`).
    public var event: EventSpec = .cpuClock
    /// The rate (`-F` / `-c`).
    public var rate: SamplingOptions.Rate = .frequency(999)
    /// The stack mode (`-g`, `--call-graph`). DWARF by default: complete stacks through code
    /// without frame pointers (most distribution libraries, `swiftc -O` code) for a few percent.
    public var callGraph: SamplingOptions.CallGraph = .dwarf(stackSize: SamplingOptions.defaultDwarfStackSize)
    /// Demangle Swift and C++ names.
    public var demangle = true
    /// Show inlined calls as their own frames.
    public var inlineFrames = true
    /// Ring-buffer data pages per CPU (`-m`), a power of two; nil picks ``defaultRingPages(for:settings:)``.
    public var ringPages: Int?

    /// Default options: cpu-clock at 999 Hz with DWARF-unwound stacks.
    public init() {}

    /// The per-sample pipeline for a session opened with `sampling`.
    func builder(for sampling: SamplingOptions, settings: KernelSettings) -> ProfileBuilder {
        let symbolizer = Symbolizer(options: SymbolizerOptions(demangle: demangle, inlineFrames: inlineFrames))
        return ProfileBuilder(symbolizer: symbolizer, callGraph: sampling.callGraph, maxStack: settings.maxStack,
                              event: sampling.event, rate: sampling.rate)
    }

    /// The sampling options these run options stand for on this kernel (see
    /// `SamplingOptions.prepared`).
    func sampling(settings: KernelSettings, notice: (String) -> Void) throws(SyscallError) -> SamplingOptions {
        try SamplingOptions.prepared(event: event, rate: rate, callGraph: callGraph,
                                     ringPages: ringPages ?? Self.defaultRingPages(for: callGraph, settings: settings),
                                     settings: settings, notice: notice)
    }

    /// Ring-buffer pages per CPU for a stack mode: `SamplingOptions.defaultRingPages` (sized for
    /// the DWARF stack copy, within the locked-memory limits).
    public static func defaultRingPages(for callGraph: SamplingOptions.CallGraph,
                                        settings: KernelSettings = .current()) -> Int {
        SamplingOptions.defaultRingPages(for: callGraph, settings: settings)
    }
}

/// What profiling a command gives: the profile, and how the command ended.
public struct RecordedCommand: Sendable {
    /// The profile (its ``Profile/metadata`` holds the provenance).
    public var profile: Profile
    /// How the command ended; nil when attached to a process sprof did not start.
    public var exitStatus: ExitStatus?
}

/// Profiles a command from exec to exit: the engine behind `sprof run`.
public enum CommandProfiler {
    /// Runs `arguments` under the profiler and returns what was gathered. Notices (fallbacks,
    /// clamping, kernel exclusion) go to `notice`, one line each.
    ///
    /// - Throws: ``LaunchError`` when the command cannot be run (its `exitStatus` is 127 or 126),
    ///   `SyscallError` when the kernel refuses the events.
    public static func profile(_ arguments: [String], options: RunOptions,
                               notice: (String) -> Void = { _ in }) throws -> RecordedCommand {
        var notices: [String] = []
        func say(_ message: String) {
            notices.append(message)
            notice(message)
        }
        let settings = KernelSettings.current()
        let sampling = try options.sampling(settings: settings, notice: say)
        let command = try WaitingCommand(arguments: arguments)
        let session: RecordingSession
        do {
            session = try RecordingSession.open(sampling, target: .command(command), notice: say)
        } catch {
            command.cancel()
            throw error
        }
        session.consumeAtIdlePriority = true
        command.forwardSignals()
        defer { command.stopForwardingSignals() }
        try command.start()

        let startTime = realtimeNow(), started = monotonicNow()
        let builder = options.builder(for: session.options, settings: settings)
        var spare = SpareCPU()
        try session.record { batch in
            builder.consume(batch)
            // Name frames as they come while a CPU is free, otherwise after the command: naming
            // them all after the command (tried) added ~0.1 s to the wait for the flame graph on
            // qsl-bench without a program slowdown the bench could tell from noise.
            if spare.available() { builder.resolve() }
        }
        let status = command.wait()
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.command = arguments
        metadata.exitStatus = status.description
        return RecordedCommand(profile: builder.profile(metadata: metadata), exitStatus: status)
    }

    /// Attaches to a running process (every thread it has now and creates later) until it exits,
    /// `duration` seconds pass, or SIGINT/SIGTERM arrives: the engine behind `sprof run -p PID`.
    public static func attach(to pid: Int32, options: RunOptions, duration: Double? = nil,
                              notice: (String) -> Void = { _ in }) throws -> RecordedCommand {
        var notices: [String] = []
        func say(_ message: String) {
            notices.append(message)
            notice(message)
        }
        let settings = KernelSettings.current()
        let sampling = try options.sampling(settings: settings, notice: say)
        let tids = RecordingSession.threads(of: pid)
        guard !tids.isEmpty else {
            throw SyscallError(call: "attach", errno: ESRCH, hint: "no process \(pid) (check the pid with ps)")
        }
        let session = try RecordingSession.open(sampling, target: .threads(pid: pid, tids: tids), notice: say)
        session.stopOnInterrupt()
        defer { session.restoreSignals() }
        if let duration {
            let deadline = DispatchTime.now() + duration
            DispatchQueue.global().asyncAfter(deadline: deadline) { session.requestStop() }
        }
        let startTime = realtimeNow(), started = monotonicNow()
        let builder = options.builder(for: session.options, settings: settings)
        builder.processes.seedFromProc(pid)
        try session.record { builder.consume($0) }
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.attachedPID = pid
        return RecordedCommand(profile: builder.profile(metadata: metadata), exitStatus: nil)
    }
}
