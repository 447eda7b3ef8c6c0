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
    /// The most bytes of records that wait in memory for unwinding (`--max-memory`; see
    /// `RecordingSession.memoryBudget`): 256 MiB by default. Beyond it, records go to an unlinked
    /// temporary file in `$TMPDIR` and come back in order, so nothing is lost.
    public var maxMemory = RecordingSession.defaultMemoryBudget
    /// How many times ``CommandProfiler/profile(_:options:notice:)`` runs the command (`sprof run
    /// -r N`, perf stat's spelling), one after another, into one profile whose samples carry
    /// their run number (``Profile/Sample/run``, the pprof label `run`). 1: a single recording,
    /// without run numbers. Only for a command sprof starts (not `attach` nor `systemWide`).
    public var repeats = 1
    /// Also record a heap profile (`--heap`): see ``HeapOptions``. With ``event`` set to
    /// ``HeapOptions/noCPUEvent`` (`-e none`) only the heap is recorded.
    public var heap: HeapOptions?
    /// Keep every sample's time, thread, CPU and stack (``Profile/timedSamples``, 32 bytes a
    /// sample) for a timeline (`sprof run --timeline`); off by default, where only the aggregate
    /// is written.
    public var keepTimedSamples = false

    /// Default options: cpu-clock at 999 Hz with DWARF-unwound stacks.
    public init() {}

    /// The per-sample pipeline for a session opened with `sampling`.
    func builder(for sampling: SamplingOptions, settings: KernelSettings) -> ProfileBuilder {
        let symbolizer = Symbolizer(options: SymbolizerOptions(demangle: demangle, inlineFrames: inlineFrames))
        let builder = ProfileBuilder(symbolizer: symbolizer, callGraph: sampling.callGraph, maxStack: settings.maxStack,
                                     event: sampling.event, rate: sampling.rate)
        builder.keepSamples = keepTimedSamples
        return builder
    }

    /// The files of this process's `LD_PRELOAD` (which the command inherits) that define
    /// `malloc`: jemalloc, tcmalloc, mimalloc preloaded. sprof's library goes first, so their
    /// allocator is bypassed in a launched command (a new user's preloaded allocator served 0
    /// calls under sprof against 6,101 without it), which the user must hear.
    static func preloadedAllocators() -> [String] {
        guard let value = getenv("LD_PRELOAD") else { return [] }
        // ld.so splits LD_PRELOAD on spaces and colons.
        return String(cString: value).split(whereSeparator: { $0 == ":" || $0 == " " }).map(String.init)
            // sprof's own library (a nested `sprof run --heap`) is not another allocator.
            .filter { $0.hasPrefix("/") && !$0.hasSuffix("/" + HeapOptions.libraryName) && Uprobes.fileOffset(ofSymbol: "malloc", in: $0) != nil }
    }

    /// The flow-control page for a launched command's heap records, sized from the buffers and
    /// the probes' stack copies of `sampling`; nil (with a notice: records may then be lost)
    /// when no directory takes it.
    static func heapFlow(for sampling: SamplingOptions, notice: (String) -> Void) -> HeapFlow? {
        // SPROF_HEAP_WAIT=0: records are lost rather than waited for, as before the page (for
        // comparisons, and for tests of what a loss reports).
        if let wait = getenv("SPROF_HEAP_WAIT"), String(cString: wait) == "0" { return nil }
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let rows = sampling.roleEvents
        func stack(_ role: HeapRole) -> UInt64 { UInt64(rows.first { $0.role == .heapProbe(role) }?.stackSize ?? 0) }
        // A record is its stack copy plus at most ~350 bytes of header, ids, registers and
        // callchain markers: 512 keeps the estimate above it.
        let ring = UInt64(sampling.ringPages) * page, allocation = stack(.sampled) + 512
        // Waiting pays only when a buffer holds several records: with one or two, every call
        // waited for a reader's round (a new user's program ran at ~100 allocations a second
        // with -m 4) or, when a record cannot fit at all (-m 1), for nothing.
        guard allocation * 8 <= ring else {
            notice("heap: a ring buffer of \(ring / 1024) KiB (-m \(sampling.ringPages)) holds fewer than 8 heap records of \(allocation) bytes (each carries a \(allocation - 512)-byte stack copy): the program is not held back for sprof, and records may be lost; raise -m or copy less stack (-g, --call-graph dwarf,N)")
            return nil
        }
        do {
            return try HeapFlow(limit: ring / 2, allocationRecord: allocation, freeRecord: stack(.freed) + 512)
        } catch {
            notice("heap: \(error.description); heap records may be lost when the program allocates faster than sprof reads")
            return nil
        }
    }

    /// The sampling options these run options stand for on this kernel (see
    /// `SamplingOptions.prepared`).
    func sampling(settings: KernelSettings, notice: (String) -> Void) throws(SyscallError) -> SamplingOptions {
        try SamplingOptions.prepared(event: event, rate: rate, callGraph: callGraph, ringPages: effectiveRingPages(settings: settings),
                                     offCPU: offCPU, settings: settings, notice: notice)
    }

    /// Ring-buffer pages per CPU these options record with: ``ringPages`` when given, else
    /// ``heapRingPages`` with ``heap``, else ``defaultRingPages(for:rate:settings:)``.
    public func effectiveRingPages(settings: KernelSettings = .current()) -> Int {
        ringPages ?? (heap != nil ? Self.heapRingPages : Self.defaultRingPages(for: callGraph, rate: rate, settings: settings))
    }

    /// Ring-buffer pages per CPU with `--heap` (32 MiB): the probes fire in bursts as fast as the
    /// program allocates, each with a stack copy, and a free whose record is lost leaves its
    /// allocation counted as in use. Heap profiles need CAP_SYS_ADMIN, so no locked-memory
    /// limit applies. Measured on heap_split.c (about 5,000 probe records in 0.4 s on a loaded
    /// 2-CPU machine): 94% lost with the DWARF default of 1024 pages, none with 8192 and
    /// `--call-graph dwarf,8192`.
    static let heapRingPages = 8192

    /// Ring-buffer pages per CPU for a stack mode and rate: `SamplingOptions.defaultRingPages`
    /// (sized for the DWARF stack copy and, at high frequencies, for 50 ms of samples, within the
    /// locked-memory limits).
    public static func defaultRingPages(for callGraph: SamplingOptions.CallGraph, rate: SamplingOptions.Rate? = nil,
                                        settings: KernelSettings = .current()) -> Int {
        SamplingOptions.defaultRingPages(for: callGraph, rate: rate, settings: settings)
    }
}

/// What profiling a command gives: the profile, and how the command ended.
public struct RecordedCommand: Sendable {
    /// The profile (its ``Profile/metadata`` holds the provenance).
    public var profile: Profile
    /// How the command ended; nil when attached to a process sprof did not start. With repeated
    /// runs: the first run that did not exit 0, else the last run.
    public var exitStatus: ExitStatus?
    /// With ``RunOptions/repeats`` above 1, each complete run in order; empty for a single
    /// recording.
    public var runs: [RecordedRun] = []
    /// With ``RunOptions/repeats`` above 1, the run a forwarded signal (Ctrl-C, SIGTERM) cut
    /// short, which ended the series: not in ``runs``, and its samples carry no run number in
    /// ``profile`` (they are in its totals, not in the per-run shares `sprof diff` tests).
    public var interruptedRun: RecordedRun?
    /// The heap profile (`RunOptions.heap`): Go's four heap sample types (`alloc_objects`,
    /// `alloc_space`, `inuse_objects`, `inuse_space`); in use means still allocated when recording
    /// ended. nil without `--heap`. With `-e none` it is also ``profile``.
    public var heap: Profile?
    /// Estimated heap bytes in use over time, nanoseconds since the recording started; empty
    /// without `--heap`.
    public var heapTimeline: [(time: UInt64, bytes: UInt64)] = []
    /// The start of recording on CLOCK_MONOTONIC (the clock of ``Profile/TimedSample/time``):
    /// the origin of the memory timeline's times, so that sample times can share its axis.
    public var timeOrigin: UInt64 = 0
    /// How often, and for how long in all (nanoseconds), the command's allocator calls waited
    /// for sprof to drain the heap records (the flow-control page, ``HeapFlow``); with repeated
    /// runs, summed over them. Zero without `--heap` or when no call waited.
    public var heapWaits: (calls: UInt64, nanoseconds: UInt64) = (0, 0)
    /// The signal sprof caught and forwarded while the command ran (0 when none): what tells a
    /// run cut short from one the signal came after.
    var signalWhileRunning: Int32 = 0
}

/// One run of a repeated recording.
public struct RecordedRun: Sendable, Equatable {
    /// The run number, from 1 (the samples' `run` label).
    public var number: Int
    /// How the command ended.
    public var exitStatus: ExitStatus
    /// Samples taken in this run.
    public var samples: Int
    /// Samples lost in this run.
    public var lost: UInt64
    /// Recording time of this run, in nanoseconds.
    public var duration: UInt64
}

/// Profiles a command from exec to exit: the engine behind `sprof run`.
public enum CommandProfiler {
    /// One line when processes the command started outlive it (it daemonized, or left children
    /// behind): recording ends with the command, so their later work is not in the profile.
    /// `started` are the pids of fork records without an exit record; those still alive count.
    static func daemonNotice(_ started: Set<Int32>) -> String? {
        // A zombie has ended; so, a moment later, has a child the command killed just before
        // exiting (`kill $a; exit`: a tester got the notice in 2 runs of 3): 200 ms of grace.
        func running() -> [Int32] { started.filter { (kill($0, 0) == 0 || errno == EPERM) && !isZombie($0) }.sorted() }
        var alive = running()
        for _ in 0..<20 where !alive.isEmpty {
            usleep(10_000)
            alive = running()
        }
        guard let first = alive.first else { return nil }
        let what = alive.count == 1 ? "1 followed process was" : "\(alive.count) followed processes were"
        return "\(what) still running when the command exited (it daemonized or left children behind); "
            + "their work after that is not in the profile: profile one with sprof run -p \(first)"
    }

    /// Runs `arguments` under the profiler and returns what was gathered. Notices (fallbacks,
    /// clamping, kernel exclusion) go to `notice`, one line each.
    ///
    /// With ``RunOptions/repeats`` N above 1, runs the command N times, one after another, and
    /// merges the recordings (``Profile/init(runs:lastIsPartial:)``); a run that exits non-zero
    /// does not stop the others, a signal sprof forwarded (Ctrl-C, SIGTERM) does: the complete
    /// runs so far are returned as runs, and the one it cut short as
    /// ``RecordedCommand/interruptedRun``, its samples in the profile without a run number.
    /// Notices repeated by every run are given once.
    ///
    /// - Throws: ``LaunchError`` when the command cannot be run (its `exitStatus` is 127 or 126),
    ///   `SyscallError` when the kernel refuses the events.
    public static func profile(_ arguments: [String], options: RunOptions,
                               notice: (String) -> Void = { _ in }) throws -> RecordedCommand {
        guard options.repeats > 1 else { return try profileOnce(arguments, options: options, notice: notice) }
        var said = Set<String>()
        var recordings: [RecordedCommand] = []
        // Caught once for the series: a signal that comes between two runs is kept (each run
        // routes the handler without clearing it) and ends the series, instead of being
        // cleared by the next run's start.
        InterruptForwarding.install()
        for _ in 1...options.repeats {
            let recorded = try profileOnce(arguments, options: options, inSeries: true) { message in
                if said.insert(message).inserted { notice(message) }
            }
            recordings.append(recorded)
            if InterruptForwarding.lastSignal > 0 { break }
        }
        var runs = recordings.enumerated().map { i, r in
            RecordedRun(number: i + 1, exitStatus: r.exitStatus ?? .exited(0), samples: r.profile.statistics.samples,
                        lost: r.profile.statistics.lost, duration: r.profile.metadata.duration)
        }
        // Cut short only when the signal came while the last run's command ran; after it (while
        // its profile was made, or before the next run started) the runs so far are complete.
        let partial = (recordings.last?.signalWhileRunning ?? 0) > 0
        let status = runs.first { $0.exitStatus != .exited(0) }?.exitStatus ?? runs.last?.exitStatus
        let cut = partial ? runs.removeLast() : nil
        var merged = RecordedCommand(profile: Profile(runs: recordings.map(\.profile), lastIsPartial: partial), exitStatus: status, runs: runs)
        merged.interruptedRun = cut
        // Runs follow one another on one clock: times count from the first run's start.
        merged.timeOrigin = recordings.first?.timeOrigin ?? 0
        // Heap profiles merge run by run like the CPU ones; the in-use timeline is per run, so
        // the last run's stands for them (its times restart at 0 with each run).
        if options.heap != nil {
            merged.heap = Profile(runs: recordings.compactMap(\.heap), lastIsPartial: partial && recordings.last?.heap != nil)
            merged.heapTimeline = recordings.last?.heapTimeline ?? []
            if merged.profile.metadata.event == HeapOptions.noCPUEvent.description, let heap = merged.heap { merged.profile = heap }
        }
        merged.heapWaits = recordings.reduce((0, 0)) { ($0.calls + $1.heapWaits.calls, $0.nanoseconds + $1.heapWaits.nanoseconds) }
        if let line = heapWaitNotice(merged.heapWaits, runs: recordings.count) {
            notice(line)
            merged.profile.metadata.notices.append(line)
            if merged.heap != nil, merged.heap?.metadata.notices.contains(line) == false { merged.heap?.metadata.notices.append(line) }
        }
        return merged
    }

    private static func profileOnce(_ arguments: [String], options: RunOptions, inSeries: Bool = false,
                                    notice: (String) -> Void) throws -> RecordedCommand {
        var notices: [String] = []
        func say(_ message: String) {
            notices.append(message)
            notice(message)
        }
        // Caught from here on, so that Ctrl-C while the events open still ends in a profile.
        if inSeries { _ = InterruptForwarding.route() } else { InterruptForwarding.install() }
        defer { InterruptForwarding.restore() }
        let settings = KernelSettings.current()
        let probes = try options.heap.map { heap throws(SyscallError) in try HeapProbes(heap) }
        var sampling = try options.sampling(settings: settings, notice: say)
        if let probes {
            sampling.companions = [CompanionEvent(event: probes.allocation, role: .sampled), CompanionEvent(event: probes.free, role: .freed)]
            sampling.companionStackSize = options.heap?.stackSize
        }
        // Back-pressure for the library's records (HeapFlow): without it, a program that
        // allocates fast at a low --heap-rate overran the buffers and most records were lost.
        let flow = probes == nil ? nil : RunOptions.heapFlow(for: sampling, notice: say)
        if probes != nil { RunOptions.preloadedAllocators().forEach { say("heap: \($0) (in LD_PRELOAD) defines malloc, but sprof's library comes first in LD_PRELOAD and passes every call to glibc: the command runs on glibc's allocator, not \($0); attach to it instead (sprof run --heap -p PID) to probe the allocator it calls") } }
        let command = try WaitingCommand(arguments: arguments, environment: probes?.environment(rate: options.heap!.rate, flow: flow))
        let session: RecordingSession
        do {
            session = try RecordingSession.open(sampling, target: .command(command), notice: say)
        } catch {
            command.cancel()
            throw error
        }
        session.consumeAtIdlePriority = true
        session.memoryBudget = options.maxMemory
        session.heapFlow = flow
        command.forwardCaughtSignals()
        let monitor = RecordingMonitor(session: session, memoryRate: options.memoryRate, progress: options.progress)
        let builder = options.builder(for: session.options, settings: settings)
        builder.interpret(session)
        let heapBuilder = options.heap.map { makeHeapBuilder($0, session: session, settings: settings, cpu: builder) }
        // The probes fire for every process that preloads the library: keep the command's tree.
        heapBuilder?.followHeap(of: command.pid)
        var spare = SpareCPU()
        var startTime = realtimeNow(), started = monotonicNow()
        var launchError: LaunchError?
        try session.record(started: {
            // The command execs once the reader thread runs: a reader started after the exec
            // (a new thread can wait tens of ms for a CPU on a loaded machine) left the first
            // moments' samples to overflow the buffers at high rates (issue 20, -F 16000).
            startTime = realtimeNow()
            started = monotonicNow()
            do throws(LaunchError) {
                try command.start()
                // From the exec on: before it, the child is sprof's own fork, and its resident
                // memory (sprof's) would be reported as the program's peak.
                session.commandStarted()
                // A first reading at the exec: a program shorter than the monitor's interval
                // would otherwise have no memory timeline and no peak RSS.
                monitor.sampleNow()
            } catch {
                launchError = error  // the child has exited: the recording ends at once
            }
        }) { batch in
            builder.consume(batch)
            heapBuilder?.consume(batch)
            // Name frames as they come while a CPU is free, otherwise after the command: naming
            // them all after the command (tried) added ~0.1 s to the wait for the flame graph on
            // qsl-bench without a program slowdown the bench could tell from noise.
            if spare.available() {
                builder.resolve()
                heapBuilder?.resolve()
            }
        }
        // Whether a signal came while the command ran (the recording ends when it exits): one
        // that comes later, while this run's profile is made or between runs of -r, ends the
        // series after a complete run rather than cutting this one.
        let signalWhileRunning = InterruptForwarding.lastSignal
        if let launchError {
            _ = monitor.stop()
            throw launchError
        }
        let status = command.wait()
        if let peak = command.peakResidentBytes { monitor.notePeak(peak) }
        if let note = daemonNotice(builder.startedProcesses.filter { $0 != command.pid }) { say(note) }
        builder.resolve()
        builder.symbolizer.notices.forEach(say)  // files whose debug info could not be read
        builder.stackCopyAdvice.map(say)
        session.budgetNotice.map(say)
        builder.unwindNotices.forEach(say)
        heapBuilder?.heapLossNotices(session.statistics).forEach(say)
        if let unpaced = heapBuilder?.heap?.unpaced, unpaced > 0 {
            say("heap: \(grouped(unpaced)) sampled allocations came from processes that could not open sprof's flow-control page (a process of the command running as another user, e.g. under setpriv or su): they were not held back for sprof, and their records may be lost")
        }
        let waits = flow.map { (calls: $0.waits, nanoseconds: $0.waitedNanoseconds) } ?? (0, 0)
        // With repeats the runs' waits are summed into one line (profile(_:options:notice:)):
        // one line per run, each unnumbered, read as contradicting figures.
        if options.repeats == 1, let line = heapWaitNotice(waits, runs: 1) { say(line) }
        let memory = monitor.stop()
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.command = arguments
        metadata.exitStatus = status.description
        metadata.commandPeakRSS = command.peakResidentBytes
        metadata.commandPID = command.pid
        var profile = builder.profile(metadata: metadata)
        profile.metadata.statistics.take(session.statistics)
        profile.memory = memory
        var recorded = RecordedCommand(profile: profile, exitStatus: status)
        recorded.timeOrigin = monitor.start
        recorded.heapWaits = waits
        recorded.signalWhileRunning = signalWhileRunning
        if let heapBuilder, let heap = options.heap { finishHeap(heapBuilder, heap, metadata: metadata, started: started, into: &recorded) }
        return recorded
    }

    /// The line saying how long the command's allocator calls waited for sprof in all (nil when
    /// none waited): the price of losing no heap record, with what lowers it.
    static func heapWaitNotice(_ waits: (calls: UInt64, nanoseconds: UInt64), runs: Int) -> String? {
        guard waits.calls > 0 else { return nil }
        let centiseconds = (waits.nanoseconds + 5_000_000) / 10_000_000
        let seconds = "\(centiseconds / 100).\(centiseconds % 100 < 10 ? "0" : "")\(centiseconds % 100)"
        let calls = "\(grouped(waits.calls)) call\(waits.calls == 1 ? "" : "s")"
        return "heap: the program waited \(seconds) s in all (\(calls)\(runs > 1 ? ", summed over \(runs) runs" : "")) for sprof to read its heap records, so that none was lost; a higher --heap-rate or a smaller stack copy (-g, --call-graph dwarf,N) waits less"
    }

    /// The builder of the heap profile: the same records, only the heap probes' samples, each
    /// read by the role its row of the role table carries (``RecordingSession/heapRoles``).
    static func makeHeapBuilder(_ heap: HeapOptions, session: RecordingSession, settings: KernelSettings,
                                    cpu: ProfileBuilder) -> ProfileBuilder {
        makeHeapBuilder(heap, sampling: session.options, roles: session.heapRoles, maxStack: settings.maxStack, cpu: cpu)
    }

    /// ``makeHeapBuilder(_:session:settings:cpu:)`` for a session's options and heap roles.
    static func makeHeapBuilder(_ heap: HeapOptions, sampling: SamplingOptions, roles: [UInt64: HeapRole], maxStack: Int,
                                cpu: ProfileBuilder) -> ProfileBuilder {
        // The probes' own stack copy (``RoleEvent/stackSize``), for the advice about copies cut short.
        var callGraph = sampling.callGraph
        if case .dwarf = callGraph, let size = sampling.roleEvents.first(where: { $0.role.readsUserRegisters })?.stackSize, size > 8 {
            callGraph = .dwarf(stackSize: size)
        }
        // The CPU profile's symbolizer: its files and their debug info, once. A symbolizer of its
        // own read every file again, and decompressing libc's debug info (Debian's libc6-dbg)
        // alone took ~40-60 ms of CPU per run here.
        let b = ProfileBuilder(symbolizer: cpu.symbolizer, callGraph: callGraph, maxStack: maxStack)
        b.enableHeap(rate: heap.rate, roles: roles)
        return b
    }

    /// Makes the heap profile (and, with `-e none`, the main profile) from the heap builder.
    static func finishHeap(_ builder: ProfileBuilder, _ heap: HeapOptions, metadata: ProfileMetadata, started: UInt64,
                                   into recorded: inout RecordedCommand) {
        builder.resolve()
        var m = metadata
        m.event = "heap"
        m.eventIsHardware = false
        m.requestedEvent = nil
        m.rate = .period(UInt64(max(heap.rate, 1)))
        if case .dwarf(let size) = builder.callGraph { m.stackSize = Int(size) }
        var profile = builder.profile(metadata: m)
        profile.memory = recorded.profile.memory
        // The reader's counts are the session's, for heap and CPU samples alike.
        profile.metadata.statistics.liveStackReads = recorded.profile.statistics.liveStackReads
        profile.metadata.statistics.liveStackChanged = recorded.profile.statistics.liveStackChanged
        profile.metadata.statistics.liveStackShared = recorded.profile.statistics.liveStackShared
        profile.metadata.statistics.unwinderLifts = recorded.profile.statistics.unwinderLifts
        recorded.heap = profile
        recorded.heapTimeline = builder.heapTimeline.map { (time: $0.time > started ? $0.time - started : 0, bytes: UInt64($0.bytes.rounded())) }
        if recorded.profile.metadata.event == HeapOptions.noCPUEvent.description { recorded.profile = profile }
    }

    /// The notice for a signal that arrived while the events were being opened: the recording
    /// stops as soon as it begins, and the profile written holds next to nothing (but is written).
    static func earlySignalNotice(_ signal: Int32) -> String {
        "signal \(signal) (\(String(cString: strsignal(signal)))) arrived while the events were being opened: recording stopped as soon as it began (the profile holds next to nothing)"
    }

    /// The provenance and stderr line of a recording without a command of its own (`-p`, `-a`)
    /// that a signal ended: its exit status (128+N) says so to scripts, this says so to a reader
    /// of the profile, which otherwise looks like one that ran its course.
    static func interruptedNotice(_ signal: Int32, before end: String?) -> String {
        "recording interrupted by signal \(signal) (\(String(cString: strsignal(signal))))\(end.map { " before " + $0 } ?? ""); sprof exits \(128 + signal)"
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
        // Caught before the events open (one per CPU and thread: a while for a process with many
        // threads), so that Ctrl-C or SIGTERM meanwhile ends the recording at once, with a profile.
        InterruptForwarding.install()
        defer { InterruptForwarding.restore() }
        let pid = threadGroup(of: pid, notice: say)
        // Refused before any notice about the CPU events: the one line says what is needed.
        if options.heap != nil && !HeapOptions.uprobesAllowed {
            throw SyscallError(call: "perf_event_open", errno: EPERM, hint: HeapOptions.permissionHint)
        }
        let settings = KernelSettings.current()
        // Said once the events are open: a refusal (another user's process) is then the one line.
        var held: [String] = []
        var sampling = try options.sampling(settings: settings, notice: { held.append($0) })
        let tids = RecordingSession.threads(of: pid)
        guard !tids.isEmpty else {
            throw SyscallError(call: "attach", errno: ESRCH, hint: "no process \(pid) (check the pid with ps)")
        }
        // A zombie still has its /proc entries, and the kernel lets events attach to it, but it
        // never runs again: the recording would end at once with 0 samples and no reason given.
        if Self.isZombie(pid) {
            throw SyscallError(call: "attach", errno: ESRCH, hint: "process \(pid) has exited (a zombie its parent has not reaped); nothing to profile")
        }
        let probes = try options.heap.map { _ throws(SyscallError) in try AllocatorProbes(pid: pid) }
        if let probes {
            sampling.companions = probes.events.map { CompanionEvent(event: $0.event, role: $0.role) }
            say("heap: probing every call of \(probes.library)'s allocator (\(probes.events.count) uprobes); each call traps")
        }
        let session = try RecordingSession.open(sampling, target: .threads(pid: pid, tids: tids), notice: say)
        held.forEach(say)
        session.memoryBudget = options.maxMemory
        let early = session.stopOnInterrupt()
        if early != 0 { say(Self.earlySignalNotice(early)) }
        if let duration {
            let deadline = DispatchTime.now() + duration
            DispatchQueue.global().asyncAfter(deadline: deadline) { session.requestStop() }
        }
        let startTime = realtimeNow(), started = monotonicNow()
        let builder = options.builder(for: session.options, settings: settings)
        builder.interpret(session)
        builder.processes.seedFromProc(pid)
        builder.namesThreadsFromProc = true // threads that existed before attaching have no COMM record
        let heapBuilder = options.heap.map { makeHeapBuilder($0, session: session, settings: settings, cpu: builder) }
        heapBuilder?.processes.seedFromProc(pid)
        heapBuilder?.namesThreadsFromProc = true
        if let probes { heapBuilder?.setAllocator(path: probes.library, functions: probes.functions) }
        let monitor = RecordingMonitor(session: session, memoryRate: options.memoryRate, progress: options.progress)
        try session.record { batch in
            builder.consume(batch)
            heapBuilder?.consume(batch)
        }
        if session.targetExitedBeforeRecording { say("process \(pid) exited as sprof attached; recording ended at once") }
        if early == 0, InterruptForwarding.lastSignal > 0 {
            say(Self.interruptedNotice(InterruptForwarding.lastSignal, before: duration.map { "its --duration of \($0) s" } ?? "process \(pid) exited"))
        }
        builder.resolve()
        builder.symbolizer.notices.forEach(say)  // files whose debug info could not be read
        builder.stackCopyAdvice.map(say)
        session.budgetNotice.map(say)
        builder.unwindNotices.forEach(say)
        heapBuilder?.heapLossNotices(session.statistics).forEach(say)
        // The heap probes are per thread and not inherited (an inherited uprobe event made every
        // fork fail with EFAULT): what started later allocates unseen, which the user must hear.
        let later = session.statistics.threads - tids.count
        if probes != nil, later > 0 {
            say("heap: \(later) thread\(later == 1 ? "" : "s") (or child process\(later == 1 ? "" : "es")) started after sprof attached: \(later == 1 ? "its" : "their") allocations are not in the heap profile (the heap probes are opened per thread at attach time); run the program under sprof run --heap to see them")
        }
        let memory = monitor.stop()
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.attachedPID = pid
        var profile = builder.profile(metadata: metadata)
        profile.metadata.statistics.take(session.statistics)
        profile.memory = memory
        var recorded = RecordedCommand(profile: profile, exitStatus: nil)
        recorded.timeOrigin = monitor.start
        if let heapBuilder, let heap = options.heap { finishHeap(heapBuilder, heap, metadata: metadata, started: started, into: &recorded) }
        return recorded
    }

    /// The process a thread id belongs to (`Tgid` in /proc/TID/status), with a notice when it is
    /// not `tid` itself: /proc answers a thread's id as if it were a process, so `-p` with a
    /// worker's tid counted "2 processes, 5 threads" for one process. `-p` means the process,
    /// as perf's does (perf's `-t` is one thread).
    static func threadGroup(of tid: Int32, notice: (String) -> Void) -> Int32 {
        guard let status = readTextFile("/proc/\(tid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Tgid:") }),
              let tgid = Int32(line.dropFirst("Tgid:".count).trimmingCharacters(in: .whitespaces)), tgid > 0, tgid != tid else { return tid }
        notice("\(tid) is a thread of process \(tgid): recording the whole process (all its threads)")
        return tgid
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
        // Caught before the events open and the running processes are read (a while), so that
        // Ctrl-C or SIGTERM meanwhile ends the recording at once, with a profile.
        InterruptForwarding.install()
        defer { InterruptForwarding.restore() }
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
        session.memoryBudget = options.maxMemory
        var early: Int32 = 0
        if let command {
            command.forwardCaughtSignals()
        } else {
            early = session.stopOnInterrupt()
            if early != 0 { say(Self.earlySignalNotice(early)) }
        }
        let builder = options.builder(for: session.options, settings: settings)
        builder.interpret(session)
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
            do throws(LaunchError) {
                try command?.start()
                session.commandStarted()
                if command != nil { monitor.sampleNow() }
            } catch {
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
        if command == nil, early == 0, InterruptForwarding.lastSignal > 0 {
            say(Self.interruptedNotice(InterruptForwarding.lastSignal, before: duration.map { "its --duration of \($0) s" }))
        }
        builder.stackCopyAdvice.map(say)
        session.budgetNotice.map(say)
        builder.unwindNotices.forEach(say)
        var metadata = ProfileMetadata.recording(session.options, requested: options.event, settings: settings,
                                                 startTime: startTime, duration: monotonicNow() - started, notices: notices)
        metadata.command = arguments
        metadata.exitStatus = status?.description
        var profile = builder.profile(metadata: metadata)
        profile.metadata.statistics.take(session.statistics)
        profile.memory = memory
        var recorded = RecordedCommand(profile: profile, exitStatus: status)
        recorded.timeOrigin = monitor.start
        return recorded
    }
}
