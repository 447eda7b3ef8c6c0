#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofOutput

/// What can go wrong when using sprof from inside a program. One type for the profiler and the
/// counters, so that a caller can handle "not allowed here" once, whichever API said it.
public enum SprofError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `start()` was called while a profile is being recorded (by this profiler or another one:
    /// only one may sample the process at a time, or each would record the other's threads).
    case alreadyStarted
    /// `stop()` was called without a matching `start()`.
    case notStarted
    /// The kernel refused perf_event_open for lack of permission. `reason` names
    /// `kernel.perf_event_paranoid`'s current value and the sysctl that allows it.
    case refused(reason: String)
    /// The event does not exist on this machine (VMs and containers often lack hardware counters).
    case unsupported(reason: String)
    /// An event string did not parse (`"instructons:u"`); `reason` lists what is valid.
    case invalidEvent(reason: String)
    /// Any other failure of the kernel interface (e.g. locked-memory limits for the ring buffers).
    case system(SyscallError)

    /// One line that says what happened and what to do.
    public var description: String {
        switch self {
        case .alreadyStarted: return "sprof: profiling already started in this process; call stop() first"
        case .notStarted: return "sprof: stop() called without start()"
        case .refused(let reason): return "sprof: perf_event_open refused: \(reason)"
        case .unsupported(let reason): return "sprof: event not supported: \(reason)"
        case .invalidEvent(let reason): return "sprof: \(reason)"
        case .system(let error): return "sprof: \(error)"
        }
    }

    /// Sorts a kernel failure into the case a caller is likely to handle.
    init(_ error: SyscallError) {
        let opening = error.call == "perf_event_open"
        if opening && (error.errno == EACCES || error.errno == EPERM) {
            self = .refused(reason: error.hint.isEmpty ? KernelSettings.current().permissionHint : error.hint)
        } else if opening && [ENOENT, EOPNOTSUPP, ENODEV].contains(error.errno) {
            self = .unsupported(reason: error.hint.isEmpty ? error.description : error.hint)
        } else {
            self = .system(error)
        }
    }
}

/// Samples the current process, every thread it has and every thread it creates, until
/// ``stop()``: profiling from inside a program or a test, without running it under `sprof run`.
///
/// ```swift
/// let profiler = Profiler()
/// try profiler.start()
/// work()
/// let profile = try profiler.stop()
/// print(profile.topTable(10))
/// ```
///
/// Threads that sprof itself creates (one that turns records into stacks, one that drains the
/// ring buffers) are not sampled: they exist before the events are opened and are left out.
/// Only one profiler can record at a time in a process; starting a second throws
/// ``SprofError/alreadyStarted``.
public final class Profiler: @unchecked Sendable {
    /// The same choices as `sprof run`: event, rate, stack mode, and how names are shown.
    public struct Options: Sendable {
        /// The sampled event (`-e`). Hardware events fall back to `cpu-clock` where the machine
        /// has none (see ``Profile/notices``).
        public var event: EventSpec = .cpuClock
        /// Samples per second per thread, or one sample every N events (`-F` / `-c`). Frequencies
        /// above `kernel.perf_event_max_sample_rate` are lowered to it.
        public var rate: SamplingOptions.Rate = .frequency(999)
        /// How stacks are captured (`--call-graph`). Frame pointers by default; choose
        /// `.dwarf(stackSize: 16384)` for release builds, which omit them on Linux.
        public var callGraph: SamplingOptions.CallGraph = .framePointer
        /// Demangle Swift and C++ names.
        public var demangle = true
        /// Show inlined calls as frames of their own.
        public var inlineFrames = true
        /// Ring-buffer data pages per CPU, a power of two (`-m`); nil picks what `sprof run` picks
        /// for the stack mode and the locked-memory limit (DWARF samples need larger buffers).
        public var ringPages: Int?
        /// Keep one entry per sample for ``Profile/samples``. Turn off for long runs where only the
        /// aggregate matters: each kept sample costs 32 bytes.
        public var keepSamples = true
        /// Unwind and symbolize only on otherwise idle CPU (SCHED_IDLE) while profiling, catching up in
        /// ``Profiler/stop()``: the program's threads never wait for sprof's, at the price of a
        /// longer `stop()` and records held in memory meanwhile when every CPU is busy. The ring
        /// buffers are still drained at normal priority, so nothing is lost. Ignored where the
        /// kernel would not let the thread return from SCHED_IDLE
        /// (``RecordingSession/mayLeaveIdlePriority``: no CAP_SYS_NICE, RLIMIT_NICE below 20).
        public var processAtIdlePriority = false
        /// Also record where threads wait, as `sprof run --off-cpu` does: the profile gets
        /// `wall`/`nanoseconds` and `off-cpu`/`nanoseconds` sample types. Needs a clock event and
        /// kernel samples (root, CAP_PERFMON or `perf_event_paranoid` <= 1); ``Profiler/start()``
        /// throws otherwise.
        public var offCPU = false
        /// The most bytes of records that wait in memory for unwinding (see
        /// `RecordingSession.memoryBudget`): 256 MiB by default; beyond it they go to an unlinked
        /// temporary file in `$TMPDIR` and come back in order.
        public var maxMemory = RecordingSession.defaultMemoryBudget
        /// Also record a heap profile: which stacks allocate how many objects and bytes, and which
        /// still hold them at ``Profiler/stop()``, in Go's four heap sample types
        /// (``HeapOptions/sampleTypes``). ``Profiler/stop()`` leaves it in ``Profiler/heapProfile``;
        /// with ``event`` set to ``HeapOptions/noCPUEvent`` only the heap is recorded and `stop()`
        /// returns it too.
        ///
        /// In-process the preload library cannot be used (the process is already running), so
        /// sprof puts uprobes on the entry and return of the allocator's functions and on `free`
        /// (the mechanism of `sprof run --heap -p`): every allocation call of the process's threads
        /// traps (about 1.5 µs each here) and sprof draws the byte samples (``HeapOptions/rate``,
        /// `libraryPath` is not used). The probes read the allocator's arguments from the user
        /// registers, which every stack mode records for them (``EventRole/readsUserRegisters``),
        /// so ``callGraph`` stays as given: the allocation stacks are the kernel's frame-pointer
        /// walks in either mode (a DWARF copy per call filled the buffers). Needs CAP_SYS_ADMIN:
        /// ``Profiler/start()`` throws ``SprofError/refused(reason:)`` otherwise.
        public var heap: HeapOptions?

        /// cpu-clock at 999 Hz with frame-pointer stacks: the cheapest stacks, whole in debug builds
        /// (`sprof run` defaults to DWARF stacks instead, which also cross code without frame pointers).
        public init(event: EventSpec = .cpuClock, rate: SamplingOptions.Rate = .frequency(999),
                    callGraph: SamplingOptions.CallGraph = .framePointer) {
            self.event = event
            self.rate = rate
            self.callGraph = callGraph
        }

        /// Options from `-e` style text, so that a program can take the event from its own
        /// command line or environment (`"cycles:u"`).
        public init(event: String, rate: SamplingOptions.Rate = .frequency(999),
                    callGraph: SamplingOptions.CallGraph = .framePointer) throws(SprofError) {
            do { self.event = try EventCatalog.parse(event) } catch { throw .invalidEvent(reason: error.description) }
            self.rate = rate
            self.callGraph = callGraph
        }
    }

    /// The options this profiler was made with.
    public let options: Options
    private let lock = NSLock()
    private var active: ActiveRun?
    private var lastHeap: (profile: Profile, timeline: [(time: UInt64, bytes: UInt64)])?

    /// The heap profile of the last ``stop()`` when ``Options/heap`` was set (nil otherwise, and
    /// until the first `stop()`): Go's four heap sample types, `alloc_objects`/`count`,
    /// `alloc_space`/`bytes`, `inuse_objects`/`count` and `inuse_space`/`bytes` (in use: allocated
    /// and not freed when `stop()` was called), period type `space`/`bytes`.
    public var heapProfile: Profile? {
        lock.lock(); defer { lock.unlock() }
        return lastHeap?.profile
    }

    /// Estimated heap bytes in use over the last recording with ``Options/heap``, nanoseconds
    /// since ``start()``, at most one point per 10 ms; empty without `heap`.
    public var heapTimeline: [(time: UInt64, bytes: UInt64)] {
        lock.lock(); defer { lock.unlock() }
        return lastHeap?.timeline ?? []
    }

    /// Makes a profiler; nothing is opened until ``start()``.
    public init(options: Options = Options()) {
        self.options = options
    }

    deinit {
        // A profiler dropped while running must not leave the process sampled.
        if let active {
            active.session.requestStop()
            active.driver.join()
            active.session.closeEvents()
            ActiveClaim.release()
        }
    }

    /// True between ``start()`` and ``stop()``.
    public var isRunning: Bool {
        lock.lock(); defer { lock.unlock() }
        return active != nil
    }

    /// The calling thread's kernel id (`gettid`), the id that ``Profile/Sample/threadID`` holds:
    /// lets a program find its own threads' samples.
    public static var currentThreadID: Int32 {
        // glibc hides gettid() from Swift; /proc/thread-self links to "PID/task/TID".
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0 else { return getpid() }
        let text = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.flatMap { Int32($0) } ?? getpid()
    }

    /// Gives the calling thread a kernel name (at most 15 bytes are kept), which is what
    /// ``Profile/threadNames`` reports. Foundation's `Thread.name` does not reach the kernel on Linux.
    public static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Starts sampling every thread of the process. Returns once the events are on, so that the
    /// code after it is profiled.
    ///
    /// - Throws: ``SprofError/alreadyStarted`` when a profile is being recorded already,
    ///   ``SprofError/refused(reason:)`` when perf_event_open is not allowed here,
    ///   ``SprofError/unsupported(reason:)`` or ``SprofError/system(_:)`` for other kernel failures.
    public func start() throws(SprofError) {
        lock.lock(); defer { lock.unlock() }
        guard active == nil, ActiveClaim.claim() else { throw .alreadyStarted }
        do {
            active = try ActiveRun(options: options)
        } catch {
            ActiveClaim.release()
            throw error
        }
    }

    /// Stops sampling, drains what is buffered and returns the profile: the CPU profile, or the
    /// heap profile when ``Options/event`` is ``HeapOptions/noCPUEvent`` (see ``heapProfile``).
    ///
    /// - Throws: ``SprofError/notStarted`` without a running ``start()``.
    public func stop() throws(SprofError) -> Profile {
        lock.lock(); defer { lock.unlock() }
        guard let run = active else { throw .notStarted }
        active = nil
        defer { ActiveClaim.release() }
        let recorded = try run.finish()
        lastHeap = recorded.heap.map { ($0, recorded.heapTimeline) }
        return recorded.profile
    }

    /// Profiles `body` and returns its result with the profile: the one-call form for tests and
    /// scripts.
    ///
    /// - Throws: what ``start()`` throws, or what `body` throws (the profiler is stopped first).
    public static func profile<T>(options: Options = Options(), _ body: () throws -> T) throws -> (result: T, profile: Profile) {
        let profiler = Profiler(options: options)
        try profiler.start()
        let result: T
        do {
            result = try body()
        } catch {
            _ = try? profiler.stop()
            throw error
        }
        return (result, try profiler.stop())
    }

    /// Records the heap profile of `body` alone (no CPU samples): every thread of the process,
    /// one sample per `rate` allocated bytes on average (1: every allocation). See
    /// ``Options/heap`` for the mechanism and its cost.
    ///
    /// ```swift
    /// let (_, heap) = try Profiler.profileHeap(rate: 1) { buildIndex() }
    /// for row in heap.top(valueIndex: heap.sampleTypeIndex("alloc_space")!).prefix(10) { print(row.totalValue, row.name) }
    /// ```
    ///
    /// - Throws: ``SprofError/refused(reason:)`` without CAP_SYS_ADMIN, what ``start()`` throws,
    ///   or what `body` throws.
    public static func profileHeap<T>(rate: Int = 512 * 1024, _ body: () throws -> T) throws -> (result: T, heap: Profile) {
        var options = Options(event: HeapOptions.noCPUEvent, callGraph: .dwarf(stackSize: 8192))
        options.heap = HeapOptions(rate: rate)
        let recorded = try profile(options: options, body)
        return (recorded.result, recorded.profile)
    }
}

/// One process-wide flag: at most one profiler records at a time.
private enum ActiveClaim {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var taken = false

    static func claim() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if taken { return false }
        taken = true
        return true
    }

    static func release() {
        lock.lock(); defer { lock.unlock() }
        taken = false
    }
}

/// Symbol tables loaded for one profile are kept for the next: loading them is most of what
/// `stop()` costs (tens of milliseconds for Foundation and the Swift runtime), and test suites
/// profile many times. Only the active profiler (see ``ActiveClaim``) uses them, one at a time.
private enum SymbolizerCache {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: Symbolizer] = [:]

    static func symbolizer(demangle: Bool, inlineFrames: Bool) -> Symbolizer {
        lock.lock(); defer { lock.unlock() }
        let key = "\(demangle)/\(inlineFrames)"
        if let known = cache[key] {
            // Per-process state (JIT maps, anonymous mappings) may be stale; files are not.
            known.forgetProcess(getpid())
            return known
        }
        let made = Symbolizer(options: SymbolizerOptions(demangle: demangle, inlineFrames: inlineFrames))
        cache[key] = made
        return made
    }
}

/// A thread created before the events are opened, so that neither it nor the reader thread it
/// starts is sampled (inherit only reaches threads created by a sampled thread). It reports its
/// tid, then runs one job.
private final class DriverThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var job: (() -> Void)?
    private var finished = false
    private(set) var tid: Int32 = 0

    init() {
        let thread = Thread { [self] in
            let me = Profiler.currentThreadID
            condition.lock()
            tid = me
            condition.broadcast()
            while job == nil { condition.wait() }
            var work = job
            condition.unlock()
            work?()
            // The job captures the run that owns this thread: drop both references before
            // reporting it finished, or the run (and its events) could be freed later, here.
            work = nil
            condition.lock()
            finished = true
            job = nil
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "sprof-driver"
        thread.start()
        condition.lock()
        while tid == 0 { condition.wait() }
        condition.unlock()
    }

    /// Hands the thread its job (call once).
    func run(_ work: @escaping () -> Void) {
        condition.lock()
        job = work
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the job has returned.
    func join() {
        condition.lock()
        while !finished && job != nil { condition.wait() }
        // (job == nil before finished: the thread was never given one; nothing to wait for.)
        condition.unlock()
    }
}

/// The state of one start…stop span.
private final class ActiveRun: @unchecked Sendable {
    let driver: DriverThread
    let session: RecordingSession
    let builder: ProfileBuilder
    let sampling: SamplingOptions
    let notices: [String]
    let startTime: UInt64
    let wallStart: UInt64
    let settings: KernelSettings
    let requestedEvent: EventSpec
    let heap: HeapOptions?
    let heapBuilder: ProfileBuilder?
    private let condition = NSCondition()
    private var started = false
    private var failure: SyscallError?

    init(options: Profiler.Options) throws(SprofError) {
        let settings = KernelSettings.current()
        var notices: [String] = []
        var sampling: SamplingOptions
        let callGraph = options.callGraph
        var probes: AllocatorProbes?
        do {
            // The probes read the allocator's arguments from the user registers, which the layout
            // carries in every stack mode when a row reads them: the user's stack mode stays.
            if options.heap != nil { probes = try AllocatorProbes(pid: getpid()) }
            sampling = try SamplingOptions.prepared(
                event: options.event, rate: options.rate, callGraph: callGraph,
                ringPages: options.ringPages ?? (options.heap != nil ? RunOptions.heapRingPages : RunOptions.defaultRingPages(for: callGraph, rate: options.rate, settings: settings)),
                offCPU: options.offCPU, settings: settings) { notices.append($0) }
            if let probes {
                sampling.companions = probes.events.map { CompanionEvent(event: $0.event, role: $0.role) }
                notices.append("heap: probing every call of \(probes.library)'s allocator (\(probes.events.count) uprobes); each call traps")
            }
        } catch {
            throw SprofError(error)
        }
        driver = DriverThread()
        let driverTID = driver.tid
        do {
            session = try Self.openSession(sampling, excluding: driverTID) { notices.append($0) }
        } catch {
            driver.run {}
            throw SprofError(error)
        }
        session.consumeAtIdlePriority = options.processAtIdlePriority
        session.memoryBudget = options.maxMemory
        // After a hardware-event fallback the session knows which event is really in force.
        self.sampling = session.options
        self.notices = notices
        let symbolizer = SymbolizerCache.symbolizer(demangle: options.demangle, inlineFrames: options.inlineFrames)
        builder = ProfileBuilder(symbolizer: symbolizer, callGraph: sampling.callGraph, maxStack: settings.maxStack,
                                 event: session.options.event, rate: session.options.rate)
        builder.keepSamples = options.keepSamples
        builder.namesThreadsFromProc = true
        builder.interpret(session)
        heap = options.heap
        if let heap = options.heap {
            let b = CommandProfiler.makeHeapBuilder(heap, session: session, settings: settings, cpu: builder)
            b.namesThreadsFromProc = true
            b.excludedThreads = [driverTID]
            heapBuilder = b
        } else {
            heapBuilder = nil
        }
        self.settings = settings
        requestedEvent = options.event
        wallStart = realtimeNow()
        // Not attached, so never sampled; listed anyway so that a future change cannot leak them.
        builder.excludedThreads = [driverTID]
        startTime = Self.monotonicNow()

        driver.run { [self] in
            do throws(SyscallError) {
                try session.record(started: {
                    // The process existed before recording: its mappings come from /proc.
                    builder.processes.seedFromProc(getpid())
                    heapBuilder?.processes.seedFromProc(getpid())
                    signalStarted(nil)
                }, consume: {
                    builder.consume($0)
                    heapBuilder?.consume($0)
                })
            } catch {
                signalStarted(error)
            }
        }
        condition.lock()
        while !started { condition.wait() }
        let failed = failure
        condition.unlock()
        if let failed {
            driver.join()
            throw SprofError(failed)
        }
    }

    private func signalStarted(_ error: SyscallError?) {
        condition.lock()
        if !started {
            started = true
            failure = error
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Stops the session, waits for the driver to consume everything, and builds the profile.
    func finish() throws(SprofError) -> RecordedCommand {
        session.requestStop()
        driver.join()
        // Released here rather than whenever the last reference goes, so that stop() leaves no
        // event open and a new start() can claim the buffers' locked memory at once.
        session.closeEvents()
        let metadata = ProfileMetadata.recording(sampling, requested: requestedEvent, settings: settings, startTime: wallStart,
                                                 duration: Self.monotonicNow() - startTime, notices: notices)
        var profile = builder.profile(metadata: metadata)
        profile.metadata.statistics.take(session.statistics)
        var recorded = RecordedCommand(profile: profile, exitStatus: nil)
        if let heapBuilder, let heap {
            CommandProfiler.finishHeap(heapBuilder, heap, metadata: metadata, started: startTime, into: &recorded)
        }
        return recorded
    }

    /// Opens one event per thread and CPU for every thread but `driverTID`, falling back to
    /// cpu-clock where a hardware event is missing. Threads created while the events are being
    /// opened by a thread not yet attached would be missed, so the thread list is checked again
    /// afterwards and the session reopened if it grew.
    static func openSession(_ sampling: SamplingOptions, excluding driverTID: Int32,
                            notice: (String) -> Void) throws(SyscallError) -> RecordingSession {
        let pid = getpid()
        var attempt = 0
        while true {
            let tids = threadIDs(excluding: driverTID)
            let session = try RecordingSession.open(sampling, target: .threads(pid: pid, tids: tids), notice: notice)
            attempt += 1
            if attempt >= 5 || Set(threadIDs(excluding: driverTID)).isSubset(of: Set(tids)) { return session }
        }
    }

    static func threadIDs(excluding tid: Int32) -> [Int32] {
        var tids: [Int32] = []
        guard let dir = opendir("/proc/self/task") else { return [getpid()] }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let t = Int32(name), t != tid { tids.append(t) }
        }
        return tids.sorted()
    }

    static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
