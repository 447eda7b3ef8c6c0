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
    /// Readings per second of every followed process's resident memory (`/proc/PID/status`) for
    /// the memory timeline (``Profile/memory``); 0 turns the timeline off.
    public var memoryRate = 25
    /// Called with live figures at most 4 times a second while recording, and once with
    /// `done` set after it stopped; on a sprof thread, so it must not block for long.
    public var progress: (@Sendable (RecordingProgress) -> Void)?
    /// Also record where threads wait (`--off-cpu`): the profile gets `wall`/`nanoseconds` and
    /// `off-cpu`/`nanoseconds` sample types besides the on-CPU ones (see
    /// `SamplingOptions.offCPU`). Needs a clock event (cpu-clock, task-clock) and kernel samples.
    public var offCPU = false

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
        if offCPU { try Self.checkOffCPU(event: event, settings: settings) }
        var options = try SamplingOptions.prepared(event: event, rate: rate, callGraph: callGraph,
                                                   ringPages: ringPages ?? Self.defaultRingPages(for: callGraph, settings: settings),
                                                   settings: settings, notice: notice)
        options.offCPU = offCPU
        return options
    }

    /// Off-CPU stacks are kernel samples (taken at each switch-out), and the wall view adds the
    /// on-CPU event's period to off-CPU nanoseconds, so the event must count nanoseconds.
    static func checkOffCPU(event: EventSpec, settings: KernelSettings) throws(SyscallError) {
        guard event.isClock else {
            throw SyscallError(call: "perf_event_open", errno: EINVAL,
                               hint: "--off-cpu needs a clock event (-e cpu-clock or task-clock), not \(event): wall time adds its nanoseconds to off-CPU time")
        }
        guard settings.kernelAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EACCES, hint: settings.offCPUHint)
        }
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
    /// One line when processes the command started outlive it (it daemonized, or left children
    /// behind): recording ends with the command, so their later work is not in the profile.
    /// `started` are the pids of fork records without an exit record; those still alive count.
    static func daemonNotice(_ started: Set<Int32>) -> String? {
        let alive = started.filter { kill($0, 0) == 0 || errno == EPERM }.sorted()
        guard let first = alive.first else { return nil }
        let what = alive.count == 1 ? "1 followed process was" : "\(alive.count) followed processes were"
        return "\(what) still running when the command exited (it daemonized or left children behind); "
            + "their work after that is not in the profile: profile one with sprof run -p \(first)"
    }

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
        let monitor = RecordingMonitor(session: session, memoryRate: options.memoryRate, progress: options.progress)
        command.forwardSignals()
        defer { command.stopForwardingSignals() }
        try command.start()

        let startTime = realtimeNow(), started = monotonicNow()
        let builder = options.builder(for: session.options, settings: settings)
        if options.offCPU { builder.enableOffCPU(eventIDs: session.offCPUEventIDs) }
        var spare = SpareCPU()
        try session.record { batch in
            builder.consume(batch)
            // Name frames as they come while a CPU is free, otherwise after the command: naming
            // them all after the command (tried) added ~0.1 s to the wait for the flame graph on
            // qsl-bench without a program slowdown the bench could tell from noise.
            if spare.available() { builder.resolve() }
        }
        let status = command.wait()
        if let note = daemonNotice(builder.startedProcesses.filter { $0 != command.pid }) { say(note) }
        builder.resolve()
        builder.symbolizer.notices.forEach(say)  // files whose debug info could not be read
        builder.stackCopyAdvice.map(say)
        builder.unwindNotices.forEach(say)
        let memory = monitor.stop()
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.command = arguments
        metadata.exitStatus = status.description
        var profile = builder.profile(metadata: metadata)
        profile.memory = memory
        return RecordedCommand(profile: profile, exitStatus: status)
    }

    /// Whether `pid` is a zombie: state `Z` in /proc/PID/stat (after the parenthesized comm,
    /// which may itself contain spaces and parentheses; proc(5)).
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = readTextFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].drop { $0 == " " }.first == "Z"
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
        // A zombie still has its /proc entries, and the kernel lets events attach to it, but it
        // never runs again: the recording would end at once with 0 samples and no reason given.
        if Self.isZombie(pid) {
            throw SyscallError(call: "attach", errno: ESRCH, hint: "process \(pid) has exited (a zombie its parent has not reaped); nothing to profile")
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
        if options.offCPU { builder.enableOffCPU(eventIDs: session.offCPUEventIDs) }
        builder.processes.seedFromProc(pid)
        builder.namesThreadsFromProc = true // threads that existed before attaching have no COMM record
        let monitor = RecordingMonitor(session: session, memoryRate: options.memoryRate, progress: options.progress)
        try session.record { builder.consume($0) }
        builder.resolve()
        builder.symbolizer.notices.forEach(say)  // files whose debug info could not be read
        builder.stackCopyAdvice.map(say)
        builder.unwindNotices.forEach(say)
        let memory = monitor.stop()
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.attachedPID = pid
        var profile = builder.profile(metadata: metadata)
        profile.memory = memory
        return RecordedCommand(profile: profile, exitStatus: nil)
    }

    /// Records every process on every CPU (`sprof run -a`) until `arguments` (when given) exits,
    /// `duration` seconds pass, or SIGINT/SIGTERM arrives. Processes already running are named
    /// (and their mappings read) from /proc at the start.
    ///
    /// - Throws: `SyscallError` (EACCES, with the sysctl to change) unless root, CAP_PERFMON or
    ///   `kernel.perf_event_paranoid` <= 0; ``LaunchError`` when the command cannot be run.
    public static func systemWide(_ arguments: [String], options: RunOptions, duration: Double? = nil,
                                  notice: (String) -> Void = { _ in }) throws -> RecordedCommand {
        var notices: [String] = []
        func say(_ message: String) {
            notices.append(message)
            notice(message)
        }
        let settings = KernelSettings.current()
        guard settings.systemWideAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EACCES, hint: settings.systemWideHint)
        }
        let sampling = try options.sampling(settings: settings, notice: say)
        let command = arguments.isEmpty ? nil : try WaitingCommand(arguments: arguments)
        let session: RecordingSession
        do {
            session = try RecordingSession.open(sampling, target: .systemWide(command), notice: say)
        } catch {
            command?.cancel()
            throw error
        }
        session.consumeAtIdlePriority = true
        if let command { command.forwardSignals() } else { session.stopOnInterrupt() }
        defer { if let command { command.stopForwardingSignals() } else { session.restoreSignals() } }
        let builder = options.builder(for: session.options, settings: settings)
        if options.offCPU { builder.enableOffCPU(eventIDs: session.offCPUEventIDs) }
        for pid in RecordingSession.processIDs() { builder.processes.seedFromProc(pid) }
        builder.namesThreadsFromProc = true // threads that existed before recording have no COMM record
        let monitor = RecordingMonitor(session: session, memoryRate: options.memoryRate, progress: options.progress)
        let startTime = realtimeNow(), started = monotonicNow()
        var launchError: LaunchError?
        var spare = SpareCPU()
        try session.record(started: {
            // Timed from when the events are on: reading every process's maps takes a while.
            if let duration {
                DispatchQueue.global().asyncAfter(deadline: DispatchTime.now() + duration) { session.requestStop() }
            }
            // The events are on before the command starts, so its exec is seen too.
            do throws(LaunchError) { try command?.start() } catch {
                launchError = error
                session.requestStop()
            }
        }) { batch in
            builder.consume(batch)
            if spare.available() { builder.resolve() }
        }
        let memory = monitor.stop()
        if let launchError { throw launchError }
        let status = command?.wait()
        say("recorded system-wide (-a): every process on every CPU")
        builder.stackCopyAdvice.map(say)
        builder.unwindNotices.forEach(say)
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.command = arguments
        metadata.exitStatus = status?.description
        var profile = builder.profile(metadata: metadata)
        profile.memory = memory
        return RecordedCommand(profile: profile, exitStatus: status)
    }
}
