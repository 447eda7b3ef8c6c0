#if canImport(Glibc)
import Glibc
#endif
import Foundation
internal import CSprof
import SprofCore

/// Opens one sampling event per CPU (and per thread when attaching), maps their ring buffers,
/// drains them on a background thread while the target runs, and hands the records to the caller
/// merged into timestamp order, so that MMAP/COMM/FORK records are applied before the samples that
/// depend on them.
public final class RecordingSession: @unchecked Sendable {
    /// What to record.
    public enum Target: Sendable {
        /// A command forked by ``WaitingCommand``: counting starts at its exec.
        case command(WaitingCommand)
        /// Existing threads (of another process, or of this one): counting starts at once.
        case threads(pid: Int32, tids: [Int32])
        /// Every process on every CPU (`sprof run -a`), from ``record(consume:)`` until
        /// ``requestStop()`` or, when a command is given, until it exits. Needs root or
        /// `perf_event_paranoid` <= 0 (see ``KernelSettings/systemWideAllowed``).
        case systemWide(WaitingCommand?)
    }

    /// Counters about the recording itself.
    public struct Statistics: Sendable {
        /// Records read from the buffers.
        public var records = 0
        /// Bytes read from the buffers.
        public var bytes = 0
        /// Records that did not parse (counted, skipped).
        public var malformed = 0
        /// On-CPU samples read so far (the sampled event's).
        public var samples = 0
        /// Switch-out samples of the `context-switches` event read so far (`--off-cpu`).
        public var offCPUSamples = 0
        /// Samples of the ``SamplingOptions/companions`` events read so far.
        public var companionSamples = 0
        /// Records and samples the kernel dropped so far (PERF_RECORD_LOST + LOST_SAMPLES). Once
        /// recording ends, the larger of the LOST records' sum and the events' own lost counts
        /// (read with PERF_FORMAT_LOST, Linux 6.0+), which also covers losses no LOST record
        /// reported because no record fitted in that buffer afterwards: the difference arrives
        /// as one last `.lost` record.
        public var lost: UInt64 = 0
        /// Of ``lost``, the `context-switches` event's (`--off-cpu` switch-outs), read from the
        /// events' own lost counts once recording ends; nil without `--off-cpu`, while recording,
        /// or on kernels before 6.0 (no PERF_FORMAT_LOST). LOST records cannot tell it: the kernel
        /// writes one for every event sharing the buffer, with the id of whichever wrote next.
        public var lostOffCPU: UInt64?
        /// Of ``lost``, the heap probes' records (`--heap`), read as ``lostOffCPU`` is; nil without
        /// heap probes, while recording, or before Linux 6.0.
        public var lostHeap: UInt64?
        /// Processes seen so far (the target's at the start, then every FORK of a new process).
        public var processes = 0
        /// Threads seen so far.
        public var threads = 0
        /// Bytes of records written to the temporary file so far because the consumer fell behind
        /// by more than ``RecordingSession/memoryBudget`` (read back in order; nothing is lost).
        public var spilledBytes = 0
        /// Records kept neither within the memory budget nor in the temporary file (it could not
        /// be created or written: disk full, no writable `$TMPDIR`); counted in ``lost`` too.
        public var dropped: UInt64 = 0
        /// The most bytes of records that waited for the consumer at once.
        public var peakPendingBytes = 0
        /// Samples whose stack copy was extended with the live thread's stack beyond it as they
        /// were read (``RecordingSession/readsLiveStack``).
        public var liveStackReads = 0
        /// Samples whose copy could not be extended: the live bytes at the copy's end were
        /// no longer the copied ones (the thread had returned past it).
        public var liveStackChanged = 0
        /// Of ``liveStackReads``, those whose bytes were the thread's previous read's: kept and
        /// handed over once for all of them.
        public var liveStackShared = 0
        /// Reader rounds that lasted long enough (``ReaderWatchdog/threshold``) for the consumer,
        /// at idle priority, to be lifted to normal priority until the round ended: the reader was
        /// waiting for something the preempted consumer held. Set when recording ends.
        public var consumerLifts = 0
    }

    /// The default ``memoryBudget``: 256 MiB.
    public static let defaultMemoryBudget = 256 << 20

    /// The most bytes of records that may wait in memory for the consumer (unwinding and
    /// symbolizing), which may fall behind when it runs at idle priority on a busy machine: beyond
    /// it, records go to an unlinked temporary file in `$TMPDIR` (else /tmp) and come back in
    /// order, so nothing is lost. Records that fit neither are counted in ``Statistics/lost`` and
    /// ``Statistics/dropped``. The ring buffers, the profile being built and the symbol tables are
    /// outside it. Set before ``record(consume:)``; at least 64 KiB.
    public var memoryBudget = RecordingSession.defaultMemoryBudget

    /// Whether a sample whose user-stack copy ends before the thread's stack does (filled to the
    /// size asked, or stopped at a page that was not resident) gets the rest of that stack, up to
    /// 512 KiB, read from the live process as the
    /// reader takes the sample (``SampleRecord/liveStack``), kept only when the bytes at the copy's
    /// end are unchanged. Those bytes count against ``memoryBudget``. On unless the environment
    /// says `SPROF_LIVE_STACK=0` (for measuring what it adds: bench/deep-stacks).
    public var readsLiveStack = getenv("SPROF_LIVE_STACK").map { String(cString: $0) != "0" } ?? true

    /// Back-pressure for the preload library's heap records (``HeapFlow``): each round marks the
    /// records announced before it as drained. Set before ``record(consume:)``; nil without it.
    public var heapFlow: HeapFlow?

    /// Run the consumer at SCHED_IDLE while the target runs, so that the profiler's processing
    /// never takes CPU from the program being measured (it catches up after). Off by default;
    /// ignored unless ``mayLeaveIdlePriority``.
    public var consumeAtIdlePriority = false
    /// The consumer's kernel thread id while it runs at SCHED_IDLE (0 otherwise): the reader
    /// returns it to SCHED_OTHER as soon as the recording ends.
    private var consumerThread: pid_t {
        get { pid_t(truncatingIfNeeded: consumerThreadWord.load()) }
        set { consumerThreadWord.store(UInt64(UInt32(bitPattern: newValue))) }
    }
    private let consumerThreadWord = AtomicWord()

    /// The nice value the ring-buffer reader asks for while it reads (0: none): -10, where the
    /// kernel permits it (CAP_SYS_NICE, or an RLIMIT_NICE that allows it), so that the profiled
    /// program's CPU-bound threads do not keep it off the CPU while the buffers fill. Its own work
    /// is small (it copies records; unwinding runs elsewhere, at idle priority).
    static let readerNice: Int32 = getenv("SPROF_READER_NICE").flatMap { Int32(String(cString: $0)) } ?? -10

    /// Whether this process may return a thread from SCHED_IDLE to SCHED_OTHER, which the kernel
    /// allows only with CAP_SYS_NICE or an RLIMIT_NICE that permits nice 0 (20 or more;
    /// sched_setscheduler(2), `can_nice`): Debian's default of 0 made idle a one-way street, and
    /// an unprivileged `sprof run` on a busy machine unwound for 7-10 minutes after its command
    /// had exited. Without it, ``consumeAtIdlePriority`` is not applied: unwinding runs at
    /// normal priority, as perf's processing does.
    public static var mayLeaveIdlePriority: Bool {
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(13 /* RLIMIT_NICE */), &limit) == 0, limit.rlim_cur >= 20 { return true }
        return hasEffectiveCapability(23)  // CAP_SYS_NICE
    }

    /// Whether capability `bit` is in this process's effective set (`CapEff` of /proc/self/status).
    static func hasEffectiveCapability(_ bit: Int) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << UInt64(bit)) != 0
    }

    /// Whether the reader runs at ``readerNice`` (set once it starts): the kernel allowed it.
    public var readerIsBoosted: Bool {
        lock.lock()
        defer { lock.unlock() }
        return readerBoosted
    }
    private var readerBoosted = false
    /// While recording with ``consumeAtIdlePriority``.
    private var watchdog: ReaderWatchdog?

    /// The options in force (after forced kernel exclusion).
    public let options: SamplingOptions
    /// The layout records were produced with.
    public let layout: SampleLayout
    /// CPUs sampled.
    public let cpus: [Int32]

    private var buffers: [CPUBuffer] = []
    private var extraFDs: [Int32] = []
    private var uprobeReleaser: Int32?
    private var targetGone = false
    private var stopAsked = false
    /// The role of each event in ``extraFDs`` (the role table's rows after the sampled event),
    /// whose lost counts are told apart by role.
    private var roleFDs: [Int32: EventRole] = [:]
    /// The role of each event id (PERF_EVENT_IOC_ID) of the role table's rows after the sampled
    /// event (``SamplingOptions/roleEvents``); a sample of any other id is an on-CPU sample.
    public private(set) var eventRoles: [UInt64: EventRole] = [:]
    /// Ids (PERF_EVENT_IOC_ID) of the `context-switches` events; their samples are switch-outs.
    public var offCPUEventIDs: Set<UInt64> { eventIDs(of: .offCPU) }
    /// The ``HeapRole`` of each ``SamplingOptions/companions`` event, by event id (PERF_EVENT_IOC_ID).
    public var heapRoles: [UInt64: HeapRole] {
        var roles: [UInt64: HeapRole] = [:]
        for (id, role) in eventRoles { if case .heapProbe(let heap) = role { roles[id] = heap } }
        return roles
    }

    /// The ids of the events opened for `role`.
    public func eventIDs(of role: EventRole) -> Set<UInt64> {
        Set(eventRoles.lazy.filter { $0.value == role }.map(\.key))
    }
    /// Processes alive as far as the records tell (start set, plus FORK, minus EXIT); read by the
    /// memory sampler, which must not wait for the consumer.
    private var live: Set<Int32> = []
    private let liveLock = NSLock()
    private var seenProcesses: Set<Int32> = []
    private var seenThreads: Set<Int32> = []
    private let parser: RecordParser
    /// -1 once ``closeEvents()`` ran, so a late ``requestStop()`` cannot write to a reused fd.
    private var stopFD: Int32
    private let lock = NSCondition()
    /// Records handed from the reader to the consumer.
    private let mailbox = Mailbox()

    /// Opens and maps the events. Nothing is recorded until the command execs (`.command`) or
    /// ``record(consume:)`` runs (`.threads`).
    public init(options: SamplingOptions, target: Target) throws(SyscallError) {
        self.options = options
        self.layout = SampleLayout.sampling(options)
        self.parser = RecordParser(layout: layout)
        self.cpus = Self.onlineCPUs()
        self.stopFD = try sysCall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) }
        self.target = target
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let onExec: Bool = { if case .command = target { return true } else { return false } }()
        let systemWide: Bool = { if case .systemWide = target { return true } else { return false } }()
        var attr = AttrBuilder.sampling(options, enableOnExec: onExec, inherit: !systemWide)
        // Row 0, the sampled event, is opened below with its buffer; the others write into it.
        let rows = Array(options.roleEvents.dropFirst())
        // This process's own threads (the in-process profiler): a uprobe's path is sprof's memory,
        // valid in its threads and in forked copies, so its events are inherited too, and removed
        // at exec, after which the path would mean nothing to the next fork (see EventRole.inherits).
        let ownProcess: Bool = { if case .threads(let pid, _) = target { return pid == getpid() } else { return false } }()
        var rowAttrs = rows.map { row in
            var a = AttrBuilder.attr(for: row, options, enableOnExec: onExec, inherit: !systemWide && (row.role.inherits || ownProcess))
            if ownProcess && !row.role.inherits { a.remove_on_exec = 1 }
            // Opened for every process in a command's recording: enable_on_exec is a task
            // context's, so these start enabled (see EventRole.opensForEveryProcess).
            if onExec && row.role.opensForEveryProcess {
                a.disabled = 0
                a.enable_on_exec = 0
            }
            return a
        }
        // Wake the reader when a quarter of a buffer is full; the poll timeout covers the rest.
        attr.watermark = 1
        // Clamped: a huge -m (the kernel then refuses the buffer, with advice) must not trap here.
        attr.wakeup_watermark = UInt32(clamping: options.ringPages * page / 4)
        do {
            switch target {
            case .command(let command):
                for cpu in cpus {
                    let fd = try open(&attr, pid: command.pid, cpu: cpu, event: options.event)
                    buffers.append(try CPUBuffer(fd: fd, pages: options.ringPages))
                    try addRoleEvents(rows, &rowAttrs, pid: command.pid, cpu: cpu, output: fd, everyProcess: true)
                }
                noteStart(pids: [command.pid], tids: [command.pid])
                // Not followed for memory before its exec (``commandStarted()``): until then it is
                // sprof's own forked child, whose resident memory is not the program's.
                live = []
            case .threads(let pid, let tids):
                var opened: [Int32] = []
                for cpu in cpus {
                    var first: Int32 = -1
                    for tid in tids {
                        let fd: Int32
                        do { fd = try open(&attr, pid: tid, cpu: cpu, event: options.event) } catch let e where e.errno == ESRCH {
                            continue // the thread exited meanwhile
                        }
                        if cpu == cpus[0] { opened.append(tid) }
                        if first < 0 {
                            first = fd
                            buffers.append(try CPUBuffer(fd: fd, pages: options.ringPages))
                        } else {
                            _ = try sysCall("ioctl(PERF_EVENT_IOC_SET_OUTPUT)") { csprof_ioctl_set_output(fd, first) }
                            extraFDs.append(fd)
                        }
                        try addRoleEvents(rows, &rowAttrs, pid: tid, cpu: cpu, output: first)
                    }
                }
                noteStart(pids: [pid], tids: opened)
            case .systemWide(let command):
                for cpu in cpus {
                    let fd = try open(&attr, pid: -1, cpu: cpu, event: options.event)
                    buffers.append(try CPUBuffer(fd: fd, pages: options.ringPages))
                    try addRoleEvents(rows, &rowAttrs, pid: -1, cpu: cpu, output: fd, systemWide: true)
                }
                var pids = Self.processIDs()
                if let command { pids.append(command.pid) }
                noteStart(pids: pids, tids: pids)
                if let command { live.remove(command.pid) }  // until its exec: see commandStarted()
            }
        } catch {
            closeAll()
            throw error
        }
    }

    private let target: Target

    deinit {
        closeAll()
    }

    /// Opens the role table's `rows` (all but the sampled event) for `pid` on `cpu`, writing
    /// into `output`'s buffer; in a system-wide recording only the rows whose role opens there.
    /// `everyProcess` (a command's recording): the rows whose role ``EventRole/opensForEveryProcess``
    /// are opened for pid -1 instead.
    private func addRoleEvents(_ rows: [RoleEvent], _ attrs: inout [perf_event_attr], pid: Int32, cpu: Int32, output: Int32,
                               systemWide: Bool = false, everyProcess: Bool = false) throws(SyscallError) {
        for i in rows.indices where !systemWide || rows[i].role.opensSystemWide {
            let fd: Int32
            let target = everyProcess && rows[i].role.opensForEveryProcess ? -1 : pid
            do { fd = try open(&attrs[i], pid: target, cpu: cpu, event: rows[i].event) } catch let e where e.errno == ESRCH {
                continue // the thread exited meanwhile
            }
            extraFDs.append(fd)
            roleFDs[fd] = rows[i].role
            _ = try sysCall("ioctl(PERF_EVENT_IOC_SET_OUTPUT)") { csprof_ioctl_set_output(fd, output) }
            var id: UInt64 = 0
            _ = try sysCall("ioctl(PERF_EVENT_IOC_ID)") { csprof_ioctl_id(fd, &id) }
            eventRoles[id] = rows[i].role
        }
    }

    private func noteStart(pids: [Int32], tids: [Int32]) {
        live = Set(pids)
        seenProcesses = live
        seenThreads = Set(tids)
        mailbox.withLock {
            mailbox.statistics.processes = seenProcesses.count
            mailbox.statistics.threads = seenThreads.count
        }
    }

    /// For a target with a command: the command has exec'd (``WaitingCommand/start()`` returned), so
    /// its memory is the program's from now on and ``livePIDs`` lists it.
    public func commandStarted() {
        let pid: Int32
        switch target {
        case .command(let command), .systemWide(let command?): pid = command.pid
        default: return
        }
        liveLock.lock()
        live.insert(pid)
        liveLock.unlock()
    }

    /// The processes alive now as far as the records read so far tell (for sampling their memory);
    /// a command's process only once it has exec'd (``commandStarted()``).
    public var livePIDs: [Int32] {
        liveLock.lock(); defer { liveLock.unlock() }
        return live.sorted()
    }

    /// The role of the event that took `sample` (``eventRoles``; on-CPU when only the sampled
    /// event is open).
    public func role(of sample: SampleRecord) -> EventRole {
        eventRoles.isEmpty ? .onCPU : eventRoles[sample.eventID] ?? .onCPU
    }

    /// Whether `sample` is a switch-out of the `--off-cpu` event rather than an on-CPU sample.
    public func isOffCPU(_ sample: SampleRecord) -> Bool {
        role(of: sample) == .offCPU
    }

    /// Whether `sample` comes from one of the ``SamplingOptions/companions`` events.
    public func isCompanion(_ sample: SampleRecord) -> Bool {
        role(of: sample).isHeapProbe
    }

    private func closeAll() {
        for b in buffers { close(b.fd) }
        buffers.removeAll()
        for fd in extraFDs { close(fd) }
        extraFDs.removeAll()
        roleFDs.removeAll()
        if stopFD >= 0 { close(stopFD) }
        stopFD = -1
    }

    /// Closes the events and unmaps the ring buffers now, once ``record(consume:)`` has returned.
    /// Without it they are released when the last reference goes, which may be a moment later on
    /// another thread: a caller that stops and then counts its descriptors, or starts again at
    /// once, must not see them.
    public func closeEvents() {
        lock.lock(); defer { lock.unlock() }
        closeAll()
    }

    /// Whether every event was opened with PERF_FORMAT_LOST (cleared when the kernel is older).
    private var readsLost = true

    /// ``open(_:pid:cpu:event:)`` on a kernel that may predate PERF_FORMAT_LOST (Linux 6.0): on
    /// EINVAL it retries without the bit, and `attr` keeps it cleared for the events after.
    private func open(_ attr: inout perf_event_attr, pid: Int32, cpu: Int32, event: EventSpec) throws(SyscallError) -> Int32 {
        let lostBit = UInt64(PERF_FORMAT_LOST.rawValue)
        do {
            return try Self.open(&attr, pid: pid, cpu: cpu, event: event)
        } catch let e where e.errno == EINVAL && attr.read_format & lostBit != 0 {
            attr.read_format &= ~lostBit
            let fd = try Self.open(&attr, pid: pid, cpu: cpu, event: event)
            readsLost = false
            return fd
        }
    }

    /// perf_event_open with the hints a user needs when it fails.
    static func open(_ attr: inout perf_event_attr, pid: Int32, cpu: Int32, event: EventSpec) throws(SyscallError) -> Int32 {
        // Settings are read only when the call fails: this runs once per CPU and thread.
        return try sysCall("perf_event_open", hint: { err in
            if err == EACCES || err == EPERM, let foreign = Advice.foreignProcess(pid) { return foreign }
            return Self.hint(for: err, event: event, settings: KernelSettings.current(), attr: attr)
        }) {
            csprof_perf_event_open(&attr, pid, cpu, -1, UInt(PERF_FLAG_FD_CLOEXEC))
        }
    }

    /// An actionable message for a perf_event_open errno.
    public static func hint(for err: Int32, event: EventSpec, settings: KernelSettings) -> String {
        hint(for: err, event: event, settings: settings, attr: AttrBuilder.base(event))
    }

    static func hint(for err: Int32, event: EventSpec, settings: KernelSettings, attr: perf_event_attr) -> String {
        switch err {
        case EACCES, EPERM:
            return "not allowed to open event \(event): \(settings.permissionHint)"
        case ENOENT, EOPNOTSUPP, ENODEV:
            return "event \(event) is not supported on this machine (VMs and containers often lack hardware counters); try -e cpu-clock"
        case EINVAL where attr.freq == 1 && Int(attr.sample_period) > settings.maxSampleRate:
            return "frequency \(attr.sample_period) Hz is above kernel.perf_event_max_sample_rate (\(settings.maxSampleRate)); lower -F"
        case EINVAL:
            return "the kernel rejected the settings for event \(event)"
        case EMFILE:
            return "too many open files; raise the limit with 'ulimit -n'"
        case ESRCH:
            return "no such process or thread"
        default:
            return ""
        }
    }

    /// The CPUs listed in /sys/devices/system/cpu/online ("0-3,5").
    public static func onlineCPUs() -> [Int32] {
        guard let text = readTextFile("/sys/devices/system/cpu/online") else {
            return (0..<Int32(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))).map { $0 }
        }
        var cpus: [Int32] = []
        for part in text.filter({ !$0.isWhitespace }).split(separator: ",") {
            let ends = part.split(separator: "-").compactMap { Int32($0) }
            if ends.count == 2 { cpus += Array(ends[0]...ends[1]) } else if ends.count == 1 { cpus.append(ends[0]) }
        }
        return cpus.isEmpty ? [0] : cpus
    }

    /// Asks ``record(consume:)`` to finish: the buffers are drained one last time and it returns.
    /// Safe to call from any thread (it writes an eventfd).
    public func requestStop() {
        lock.lock(); defer { lock.unlock() }
        stopAsked = true
        guard stopFD >= 0 else { return }
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
    }

    /// Makes SIGINT, SIGTERM, SIGHUP and SIGQUIT end the recording (as ``requestStop()`` does)
    /// instead of the profiler, so Ctrl-C on an attached recording still writes the profile.
    /// A signal caught since ``InterruptForwarding/install(forwardingTo:notifying:)`` (called
    /// before opening the session, so that one arriving while the events open is not the
    /// default death) ends the recording at once; then this returns that signal's number (else 0).
    @discardableResult
    public func stopOnInterrupt() -> Int32 {
        let earlier = InterruptForwarding.route(notifying: stopFD)
        if earlier != 0 { requestStop() }
        return earlier
    }

    /// Undoes ``stopOnInterrupt()``.
    public func restoreSignals() { InterruptForwarding.restore() }

    /// The processes running now, from /proc, in pid order.
    public static func processIDs() -> [Int32] {
        listDirectory("/proc").compactMap { Int32($0) }.sorted()
    }

    /// The thread ids of a running process, from /proc/PID/task.
    public static func threads(of pid: Int32) -> [Int32] {
        listDirectory("/proc/\(pid)/task").compactMap { Int32($0) }.sorted()
    }

    /// Records until the command exits (`.command`) or ``requestStop()`` is called, calling
    /// `consume` on the calling thread with batches of records in timestamp order. A background
    /// thread drains the buffers so that slow consumption does not overflow them.
    public func record(consume: ([PerfRecord]) -> Void) throws(SyscallError) {
        try record(started: {}, consume: consume)
    }

    /// ``record(consume:)`` that calls `started` on the calling thread once the events are enabled
    /// and the reader thread runs, before any `consume` (a command started there is read from its
    /// first sample on): the in-process profiler's `start()` returns then,
    /// so that everything after it is sampled.
    public func record(started: () -> Void, consume: ([PerfRecord]) -> Void) throws(SyscallError) {
        let exitFD: Int32
        switch target {
        case .command(let command):
            exitFD = try command.exitDescriptor()
        case .threads(let pid, _):
            // Another process: stop when it exits. Our own process: only requestStop() ends it.
            // Gone already (it exited after its threads were listed): nothing would end the
            // recording but a signal or --duration, since per-CPU events (the heap probes) never
            // hang up as per-thread ones do, so it stops at once.
            if pid == getpid() {
                exitFD = -1
            } else {
                exitFD = csprof_pidfd_open(pid)
                if exitFD < 0 && errno == ESRCH {
                    lock.lock()
                    targetGone = true
                    lock.unlock()
                    requestStop()
                }
            }
            try enableAll()
        case .systemWide(let command):
            exitFD = try command?.exitDescriptor() ?? -1
            try enableAll()
        }
        // Decided once: unprivileged, the consumer never goes idle, so nothing needs watching.
        let goesIdle = consumeAtIdlePriority && Self.mayLeaveIdlePriority
        // Lends the reader's priority to an idle consumer that holds it up (ReaderWatchdog).
        if goesIdle {
            let watchdog = ReaderWatchdog(consumer: { [weak self] in self?.consumerThread ?? 0 })
            lock.lock()
            self.watchdog = watchdog
            lock.unlock()
        }
        // Joined before returning: the reader still touches the buffers after its last batch.
        let readerDone = DispatchSemaphore(value: 0)
        let readerRunning = DispatchSemaphore(value: 0)
        let reader = Thread { [self] in
            readerRunning.signal()
            readLoop(exitFD: exitFD)
            readerDone.signal()
        }
        reader.name = "sprof-reader"
        reader.start()
        // `started` (which may start the command) waits until the reader runs: a new thread can
        // wait tens of ms for a CPU on a loaded machine, longer than a buffer lasts at 16 kHz.
        readerRunning.wait()
        started()
        // The reader drains at normal priority so nothing is lost; consuming (unwinding,
        // symbolizing) can wait for idle CPU and catch up when the target is done.
        var idle = false
        if goesIdle, !mailbox.targetEnded {
            // Published before going idle: the reader sets the thread back once recording ends.
            consumerThread = csprof_gettid()
            idle = csprof_set_thread_idle(1) == 0
        }
        defer { if idle { _ = csprof_set_thread_idle(0) } }
        // A bounded batch: its parsed records are about as large as its bytes again.
        let limit = max(1 << 16, min(memoryBudget / 8, 8 << 20))
        var blocks = LiveStackBlocks()
        while true {
            let (chunks, bytes, lost, done) = mailbox.take(limit: limit)
            // Back to normal priority once the target is gone, not once the backlog is: on a busy
            // machine an idle consumer got almost no CPU, and a rate-1 heap run's 350 MB of
            // stacks took 2.5 minutes after its 0.01 s program had exited.
            if idle && (done || mailbox.targetEnded) {
                _ = csprof_set_thread_idle(0)
                idle = false
            }
            var batch = Self.parse(chunks, parser: parser, blocks: &blocks)
            if lost > 0 { batch.append(.lost(count: lost, time: batch.last?.time ?? 0)) }
            if !batch.isEmpty { consume(batch) }
            mailbox.release(bytes)
            if done { break }
        }
        readerDone.wait()
        lock.lock()
        let watchdog = self.watchdog
        self.watchdog = nil
        lock.unlock()
        if let watchdog {
            watchdog.stop()
            mailbox.withLock { mailbox.statistics.consumerLifts = watchdog.lifts }
        }
        if exitFD >= 0 { close(exitFD) }
    }

    /// The records in chunks of whole raw records (the reader parsed each once already; one that
    /// did not parse never got here).
    static func parse(_ chunks: [[UInt8]], parser: RecordParser) -> [PerfRecord] {
        var blocks = LiveStackBlocks()
        return parse(chunks, parser: parser, blocks: &blocks)
    }

    /// ``parse(_:parser:)`` for one batch of a stream: `blocks` carries the live-stack blocks
    /// later batches refer to.
    static func parse(_ chunks: [[UInt8]], parser: RecordParser, blocks: inout LiveStackBlocks) -> [PerfRecord] {
        var records: [PerfRecord] = []
        for chunk in chunks {
            chunk.withUnsafeBytes { parser.parseAll($0, into: &records, blocks: &blocks) }
        }
        return records
    }

    private func enableAll() throws(SyscallError) {
        for b in buffers { _ = try sysCall("ioctl(PERF_EVENT_IOC_ENABLE)") { csprof_ioctl_enable(b.fd, 0) } }
        for fd in extraFDs { _ = try sysCall("ioctl(PERF_EVENT_IOC_ENABLE)") { csprof_ioctl_enable(fd, 0) } }
    }

    /// One line when records were lost to the memory budget (see ``memoryBudget``), else nil.
    public var budgetNotice: String? {
        let s = statistics
        guard s.dropped > 0 else { return nil }
        return "\(s.dropped) records lost: unwinding fell more than \(memoryBudget >> 20) MiB behind (--max-memory) and the temporary file in \(PendingRecords.temporaryDirectory()) could not take the rest; free space there, set TMPDIR, or raise --max-memory"
    }

    /// Statistics so far.
    public var statistics: Statistics {
        mailbox.withLock { mailbox.statistics }
    }

    /// Records held back until no CPU can still deliver an earlier one: raw, with their time.
    private struct Pending {
        var time: UInt64
        var sequence: Int
        var bytes: [UInt8]
        /// The bytes this record holds against the budget (a shared live-stack block counts once,
        /// with the first record that holds it).
        var cost: Int
        /// The sample's live stack beyond its copy (the records for it are made on release, in
        /// order, when it is known whether the consumer has the block already) and its thread.
        var live: (block: LiveStackBlock, offset: Int, tid: Int32)? = nil
        /// The thread an EXIT record ends.
        var exitTID: Int32? = nil
    }

    private func readLoop(exitFD: Int32) {
        lock.lock()
        let watchdog = self.watchdog
        lock.unlock()
        // Ahead of the program's CPU-bound threads when permitted: at nice 0 on a CI machine the
        // reader of a 2-process command on 2 CPUs was kept off long enough for 4 MiB buffers (126
        // stack copies each) to fill, and 37% of the samples were lost. Unprivileged, it stays at 0.
        let boosted = Self.readerNice != 0 && csprof_set_thread_nice(Self.readerNice) == 0
        lock.lock()
        readerBoosted = boosted
        lock.unlock()
        var pollFDs = buffers.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        pollFDs.append(pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0))
        if exitFD >= 0 { pollFDs.append(pollfd(fd: exitFD, events: Int16(POLLIN), revents: 0)) }
        var pending: [Pending] = []
        var pendingBytes = 0
        // Records released but not yet handed over: in memory within the budget, else on disk.
        let work = PendingRecords(budget: memoryBudget)
        var sequence = 0
        var stopping = false
        var lostInRecords: UInt64 = 0
        var reportedDropped: UInt64 = 0
        var liveStack = LiveStackReader(heldLimit: LiveStackBlocks.limit)
        // The blocks the consumer has, as it will have them when it reads what is released.
        var sentBlocks = LiveStackLedger<Void>(limit: LiveStackBlocks.limit)
        var local = mailbox.withLock { mailbox.statistics }
        // `live` is changed under liveLock (which the consumer never takes) as soon as a FORK
        // or EXIT is read, so that the memory sampler follows a child from its first moments.
        // takes) when it changed.
        liveLock.lock()
        liveLock.unlock()
        var seenProcesses = self.seenProcesses, seenThreads = self.seenThreads
        // A record's timestamp is taken just before it is written; anything older than the start of
        // a full drain round, minus this margin, can no longer be preceded by an unread record.
        let margin: UInt64 = 5_000_000
        while true {
            let n = poll(&pollFDs, nfds_t(pollFDs.count), 25)
            if n > 0 {
                for p in pollFDs.dropFirst(buffers.count) where p.revents != 0 {
                    stopping = true
                    mailbox.markTargetEnded()
                    // The consumer checks between batches; one batch at SCHED_IDLE on a busy
                    // machine is tens of seconds (-a), so it is set back to normal from here.
                    let consumer = consumerThread
                    if consumer > 0 { _ = csprof_set_task_idle(consumer, 0) }
                }
                // A buffer whose owning task exited reports POLLHUP on every poll from now on;
                // stop polling it (it is still drained every round) so the loop does not spin.
                for i in buffers.indices where pollFDs[i].revents & Int16(POLLHUP | POLLERR) != 0 {
                    pollFDs[i].fd = -1
                }
            }
            let roundStart = Self.monotonicNow()
            watchdog?.roundBegins(at: roundStart)
            // Read before the drain: whatever was announced by now is in a buffer by its end.
            let announced = heapFlow?.announced()
            for i in buffers.indices {
                buffers[i].drain { bytes in
                    local.records += 1
                    local.bytes += bytes.count
                    do {
                        let (record, stack) = try parser.parse(bytes, copyingStack: false)
                        switch record {
                        case .sample(let s):
                            switch role(of: s) {
                            case .onCPU: local.samples += 1
                            case .offCPU: local.offCPUSamples += 1
                            case .heapProbe: local.companionSamples += 1
                            }
                        case .lost(let n, _):
                            local.lost += n
                            lostInRecords += n
                        case .lostSamples(let n, _):
                            local.lost += n
                        case .fork(let t):
                            if seenThreads.insert(t.tid).inserted { local.threads += 1 }
                            if t.pid == t.tid, t.pid != t.parentPID {
                                liveLock.lock()
                                live.insert(t.pid)
                                liveLock.unlock()
                                if seenProcesses.insert(t.pid).inserted { local.processes += 1 }
                            }
                        case .exit(let t):
                            liveStack.forgetThread(t.tid)
                            if t.pid == t.tid {
                                liveLock.lock()
                                live.remove(t.pid)
                                liveLock.unlock()
                                liveStack.forget(t.pid)
                            }
                        default:
                            break
                        }
                        let raw = RecordParser.compacted(bytes, stack: stack)
                        var unit = Pending(time: record.time, sequence: sequence, bytes: raw, cost: raw.count)
                        if readsLiveStack, case .sample(let s) = record, let stack,
                           s.userRegistersABI == 2, s.userRegisters.count > UserRegisters.spIndex {
                            // In the same pending unit as the sample: sorted, spilled and handed
                            // over with it, and counted against the memory budget.
                            let sharedBefore = liveStack.shared
                            if let beyond = liveStack.readBeyond(pid: s.pid, tid: s.tid, sp: s.userRegisters[UserRegisters.spIndex],
                                                                 copy: UnsafeRawBufferPointer(rebasing: bytes[(stack.sizeField + 8)..<(stack.sizeField + 8 + stack.copied)]),
                                                                 now: roundStart) {
                                unit.live = (beyond.block, beyond.offset, s.tid)
                                if liveStack.shared == sharedBefore { unit.cost += beyond.block.bytes.count }
                            }
                        }
                        if case .exit(let t) = record { unit.exitTID = t.tid }
                        pendingBytes += unit.cost
                        pending.append(unit)
                        sequence += 1
                    } catch {
                        local.malformed += 1
                    }
                }
            }
            if let announced { heapFlow?.drained(upTo: announced, now: roundStart) }
            local.liveStackReads = liveStack.reads
            local.liveStackChanged = liveStack.changed
            local.liveStackShared = liveStack.shared
            pending.sort { $0.time != $1.time ? $0.time < $1.time : $0.sequence < $1.sequence }
            var releaseCount = pending.count
            if !stopping {
                let limit = roundStart > margin ? roundStart - margin : 0
                releaseCount = pending.firstIndex { $0.time > limit } ?? pending.count
            }
            for p in pending.prefix(releaseCount) {
                pendingBytes -= p.cost
                if let live = p.live {
                    // A block the consumer has is referred to; else it goes whole, once.
                    var out = p.bytes
                    RecordParser.appendLiveStackRef(serial: live.block.serial, offset: live.offset, to: &out)
                    if sentBlocks.lookup(tid: live.tid, serial: live.block.serial) == nil {
                        live.block.bytes.withUnsafeBytes { RecordParser.appendLiveStackRecords($0, to: &out) }
                        sentBlocks.insert(tid: live.tid, serial: live.block.serial, size: live.block.bytes.count, value: ())
                    }
                    work.append(out, window: pendingBytes)
                } else {
                    if let tid = p.exitTID { sentBlocks.remove(tid: tid) }
                    work.append(p.bytes, window: pendingBytes)
                }
            }
            pending.removeFirst(releaseCount)
            if work.dropped > reportedDropped {
                // Kept neither in memory nor on disk: lost, and counted as such.
                local.lost += work.dropped - reportedDropped
                reportedDropped = work.dropped
            }
            // Never wait for the consumer: it may run at SCHED_IDLE, and a consumer preempted while
            // holding the mailbox kept the reader off the buffers for as long as every CPU was busy
            // (722 ms seen in a make -j2 on 2 CPUs: full buffers, lost samples). Try again next round.
            // The events' own counts cover losses no LOST record reported; they go downstream as
            // one more LOST record, so every consumer counts them as it counts the others.
            if stopping, let counted = eventLostCount() {
                if counted.total > lostInRecords {
                    local.lost += counted.total - lostInRecords
                    work.addLost(counted.total - lostInRecords)
                    lostInRecords = counted.total
                }
                if options.records(.offCPU) { local.lostOffCPU = counted.byRole[.offCPU] ?? 0 }
                if !options.companions.isEmpty { local.lostHeap = counted.byRole.filter { $0.key.isHeapProbe }.values.reduce(0, +) }
            }
            work.handOver(to: mailbox, statistics: local, finishing: stopping)
            watchdog?.roundEnds(ending: stopping)
            if stopping { break }
        }
        heapFlow?.close()
        // Before the uprobe releaser below is forked from this thread, which would inherit it.
        if boosted { _ = csprof_set_thread_nice(0) }
        for b in buffers { _ = csprof_ioctl_disable(b.fd, 0) }
        for fd in extraFDs { _ = csprof_ioctl_disable(fd, 0) }
        // Every record is read: the events that write into the CPU buffers (heap probes, context
        // switches) are closed now, while the consumer still unwinds, not when sprof exits. The
        // kernel takes 65-100 ms to release each uprobe event here, one at a time, and `--heap`
        // opens one per probe and CPU: closed here, they kept sprof from exiting ~0.35 s after
        // its outputs were written (bench/RESULTS.md, issue 19), so their release is left to a
        // process of its own (Uprobes.closeDetached).
        lock.lock()
        let companions = extraFDs
        let uprobes = companions.filter { roleFDs[$0]?.isHeapProbe == true }
        extraFDs.removeAll()
        roleFDs.removeAll()
        lock.unlock()
        for fd in companions where !uprobes.contains(fd) { close(fd) }
        let helper = Uprobes.closeDetached(uprobes)
        lock.lock()
        uprobeReleaser = helper
        lock.unlock()
    }

    /// Whether ``requestStop()`` was called: by the caller, or by the session itself when the
    /// attached process was gone as recording began (a caught signal stops it without it).
    public var isStopRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopAsked
    }

    /// Whether the attached process (``Target/threads(pid:tids:)``) had exited when recording
    /// began, which ended the recording at once.
    public var targetExitedBeforeRecording: Bool {
        lock.lock()
        defer { lock.unlock() }
        return targetGone
    }

    /// The process that releases the heap probes' uprobe events after reading ended
    /// (``Uprobes/closeDetached(_:)``), nil before, when there were none, or when they were closed
    /// here. Exposed for tests.
    public var uprobeReleaserPID: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return uprobeReleaser
    }

    /// The records the kernel could not write into any of our buffers, summed over every event
    /// (`read()` with PERF_FORMAT_LOST gives `{ u64 value; u64 lost; }`, perf_event.h). An
    /// inherited event's children count into the event we opened, because the kernel writes their
    /// output through it (kernel/events/ring_buffer.c, __perf_output_begin). nil when the kernel
    /// predates the field or a read fails. `byRole`: the part of each role's events after the
    /// sampled one (the sampled event's own is the rest).
    private func eventLostCount() -> (total: UInt64, byRole: [EventRole: UInt64])? {
        guard readsLost else { return nil }
        var total: UInt64 = 0, byRole: [EventRole: UInt64] = [:]
        for fd in buffers.map(\.fd) + extraFDs {
            var values: (value: UInt64, lost: UInt64) = (0, 0)
            let n = withUnsafeMutableBytes(of: &values) { read(fd, $0.baseAddress, $0.count) }
            guard n == MemoryLayout<(UInt64, UInt64)>.size else { return nil }
            total += values.lost
            if let role = roleFDs[fd] { byRole[role, default: 0] += values.lost }
        }
        return (total, byRole)
    }

    static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// One CPU's event and its ring buffer.
final class CPUBuffer {
    let fd: Int32
    private var ring: RingBuffer

    init(fd: Int32, pages: Int) throws(SyscallError) {
        self.fd = fd
        self.ring = try RingBuffer(fd: fd, dataPages: pages)
    }

    func drain(_ body: (UnsafeRawBufferPointer) -> Void) {
        ring.drain(body)
    }
}

/// The reader's hand-off to the consumer: a mutex and condition variable the reader can *try*, so
/// that it never blocks behind a consumer that holds the lock at idle priority. Holds chunks of raw
/// records (see ``PendingRecords``) and counts their bytes, including the chunks the consumer has
/// taken and not yet released, so that the reader can keep the total within the budget.
final class Mailbox: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var ready: [[UInt8]] = []
    private var readyBytes = 0
    private var takenBytes = 0
    private var lost: UInt64 = 0
    private var finished = false
    /// Set (atomically, without the mutex, which an idle consumer may hold) by the reader once
    /// the target exited or a stop was asked for.
    private let ended = AtomicWord()
    var statistics = RecordingSession.Statistics()
    /// The most bytes held at once (ready plus taken), for tests and the bench.
    private(set) var peakBytes = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    /// The reader saw the target exit or a stop asked for: what remains is a backlog.
    func markTargetEnded() { ended.store(1) }
    /// Whether ``markTargetEnded()`` was called.
    var targetEnded: Bool { ended.load() != 0 }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Moves `chunks` (`bytes` in all; emptied on success), the reader's counters and `lost`
    /// (records to count as lost beyond the LOST records in the chunks) in. Without `wait`, gives
    /// up at once when the consumer holds the lock and returns nil; else the bytes held now.
    func offer(_ chunks: inout [[UInt8]], bytes: Int, statistics: RecordingSession.Statistics, lost: UInt64 = 0,
               finished: Bool, wait: Bool) -> Int? {
        if wait { pthread_mutex_lock(mutex) } else if pthread_mutex_trylock(mutex) != 0 { return nil }
        if ready.isEmpty { swap(&ready, &chunks) } else { ready.append(contentsOf: chunks); chunks.removeAll() }
        readyBytes += bytes
        self.lost += lost
        self.statistics = statistics
        if finished { self.finished = true }
        let held = readyBytes + takenBytes
        peakBytes = max(peakBytes, held)
        if !ready.isEmpty || finished || self.lost > 0 { pthread_cond_signal(condition) }
        pthread_mutex_unlock(mutex)
        return held
    }

    /// Waits for records or the end; returns chunks of at most about `limit` bytes (at least one
    /// chunk), records to count as lost, and whether the reader has finished and everything was
    /// taken. The consumer calls ``release(_:)`` with `bytes` once it is done with them.
    func take(limit: Int = .max) -> (chunks: [[UInt8]], bytes: Int, lost: UInt64, done: Bool) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while ready.isEmpty && !finished && lost == 0 { pthread_cond_wait(condition, mutex) }
        var count = 0, bytes = 0
        while count < ready.count, count == 0 || bytes + ready[count].count <= limit {
            bytes += ready[count].count
            count += 1
        }
        let chunks = Array(ready.prefix(count))
        ready.removeFirst(count)
        readyBytes -= bytes
        takenBytes += bytes
        let lost = self.lost
        self.lost = 0
        return (chunks, bytes, lost, finished && ready.isEmpty)
    }

    /// The consumer is done with `bytes` taken earlier.
    func release(_ bytes: Int) {
        pthread_mutex_lock(mutex)
        takenBytes -= bytes
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Waits until fewer than `limit` bytes are held (or nothing is), and returns the bytes held.
    func waitForRoom(below limit: Int) -> Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while readyBytes + takenBytes >= limit, readyBytes + takenBytes > 0 { pthread_cond_wait(condition, mutex) }
        return readyBytes + takenBytes
    }
}
