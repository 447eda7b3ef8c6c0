#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore
import SprofRecording

/// Hardware and software counters around code in this process: the in-process counting API.
///
/// ```swift
/// let counters = try CounterSet(events: [EventCatalog.parse("instructions:u")])
/// let (result, values) = counters.measure { work() }
/// ```
///
/// Readings are deltas since ``start()`` (accumulated over start/stop pairs until ``reset()``),
/// scaled for multiplexing with the enabled and running times of the same interval.
///
/// A single counter on the current thread takes a fast path: the event's control page is mapped
/// and read with `rdpmc` (no system call) when the kernel allows user-space reads
/// (`cap_user_rdpmc`); otherwise, and for every other set, readings use read(2).
///
/// Not thread-safe: use one `CounterSet` from one thread at a time.
public final class CounterSet {
    /// Which tasks are counted.
    public enum Scope: Sendable, Equatable {
        /// The calling thread only (threads it creates later are not counted).
        case currentThread
        /// Every thread of this process that exists now, plus the threads and children they create.
        case process
    }

    /// The events, in reading order (groups flattened).
    public let events: [EventSpec]
    /// The scope the set was opened with.
    public let scope: Scope
    private let counters: OpenCounters
    private var accumulated: [Totals]
    private var startSnapshot: [Totals]?
    private var selfPage: UnsafeMutableRawPointer?
    private let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    private struct Totals {
        var raw: UInt64 = 0
        var enabled: UInt64 = 0
        var running: UInt64 = 0
        static func - (a: Totals, b: Totals) -> Totals {
            Totals(raw: a.raw &- b.raw, enabled: a.enabled &- b.enabled, running: a.running &- b.running)
        }
        static func + (a: Totals, b: Totals) -> Totals {
            Totals(raw: a.raw &+ b.raw, enabled: a.enabled &+ b.enabled, running: a.running &+ b.running)
        }
    }

    /// Opens `events`, each in a group of its own, stopped.
    ///
    /// - Throws: `SyscallError` when the kernel refuses for lack of permission (its hint gives the
    ///   paranoid setting and the fix) or resources. Events this machine lacks do not throw: they
    ///   read as `.notSupported`.
    public convenience init(events: [EventSpec], scope: Scope = .currentThread) throws(SyscallError) {
        try self.init(groups: events.map { CounterGroup(events: [$0]) }, scope: scope)
    }

    /// Opens `groups` (members of a group are scheduled together), stopped.
    public init(groups: [CounterGroup], scope: Scope = .currentThread) throws(SyscallError) {
        self.scope = scope
        let tids: [Int32]
        switch scope {
        case .currentThread: tids = [0]
        case .process: tids = threadIDs(of: getpid())
        }
        let attachment = OpenCounters.Attachment(tids: tids.isEmpty ? [0] : tids, inherit: scope == .process, enableOnExec: false)
        counters = try OpenCounters(groups: groups, attachment: attachment, settings: KernelSettings.current())
        events = counters.events
        accumulated = Array(repeating: Totals(), count: counters.events.count)
        if scope == .currentThread, events.count == 1, counters.unsupported[0] == nil, let fd = counters.descriptors(of: 0).first {
            // One page, no data area: just the control page with the rdpmc index and time fields.
            let page = mmap(nil, pageSize, PROT_READ, MAP_SHARED, fd, 0)
            if let page, page != MAP_FAILED {
                // The fast path keeps the counter on for good and takes differences, so that
                // start/stop cost no system call. Use it only if rdpmc works right now.
                var v: UInt64 = 0, e: UInt64 = 0, r: UInt64 = 0
                if (try? counters.enable()) != nil, csprof_mmap_read_self(page, &v, &e, &r) == 0 {
                    selfPage = page
                } else {
                    try? counters.disable()
                    munmap(page, pageSize)
                }
            }
        }
    }

    deinit {
        if let selfPage { munmap(selfPage, pageSize) }
    }

    /// True while counting.
    public private(set) var isRunning = false

    /// True when the single-counter fast path reads with `rdpmc` right now (the kernel granted
    /// `cap_user_rdpmc` and the counter is on the PMU). Only meaningful while running.
    public var readsInUserSpace: Bool { selfPage != nil }

    /// Starts (or resumes) counting.
    public func start() throws(SyscallError) {
        guard !isRunning else { return }
        startSnapshot = snapshot()
        if selfPage == nil { try counters.enable() }
        isRunning = true
    }

    /// Stops counting; the values so far are kept until ``reset()``.
    public func stop() throws(SyscallError) {
        guard isRunning else { return }
        let now: [Totals]
        if selfPage == nil {
            try counters.disable()
            now = snapshot()
        } else {
            now = snapshot()
        }
        isRunning = false
        if let startSnapshot {
            for i in accumulated.indices { accumulated[i] = accumulated[i] + (now[i] - startSnapshot[i]) }
        }
        startSnapshot = nil
    }

    /// Zeroes the values (a running set keeps running from zero).
    public func reset() {
        accumulated = Array(repeating: Totals(), count: events.count)
        if isRunning { startSnapshot = snapshot() }
    }

    /// The values counted so far.
    public func read() -> [CounterValue] {
        var totals = accumulated
        if isRunning, let startSnapshot {
            let now = snapshot()
            for i in totals.indices { totals[i] = totals[i] + (now[i] - startSnapshot[i]) }
        }
        return events.indices.map { i in
            if case .some(let reason) = counters.unsupported[i] { return CounterValue(unsupported: events[i], reason: reason) }
            let t = totals[i]
            return CounterValue(event: events[i], raw: t.raw, enabled: t.enabled, running: t.running)
        }
    }

    /// Runs `body` with the counters on and returns its result and what it counted (the set is
    /// reset first). ioctl failures on already-open events cannot happen in practice and would
    /// show as zero enabled time, i.e. `.notCounted`.
    public func measure<T>(_ body: () throws -> T) rethrows -> (T, [CounterValue]) {
        if isRunning { try? stop() }
        reset()
        try? start()
        let result = try body()
        try? stop()
        return (result, read())
    }

    /// Kernel figures per event now: rdpmc on the fast path, read(2) otherwise.
    private func snapshot() -> [Totals] {
        if selfPage != nil { return [fastSnapshot()] }
        return counters.readRaw().map { r in
            guard let r else { return Totals() }
            return Totals(raw: r.raw, enabled: r.enabled, running: r.running)
        }
    }

    /// The fast path's reading. The control page's times are only extrapolated to "now" while the
    /// counter is multiplexed; otherwise they are as of the last context switch, so an unshared
    /// counter takes both times from the monotonic clock (a vdso call, no system call) instead.
    private func fastSnapshot() -> Totals {
        var v: UInt64 = 0, e: UInt64 = 0, r: UInt64 = 0
        if csprof_mmap_read_self(selfPage!, &v, &e, &r) != 0 {
            // Off the PMU at this instant (multiplexed out): read(2) has the kernel's figures.
            guard let first = counters.readRaw().first, let k = first else { return Totals() }
            (v, e, r) = (k.raw, k.enabled, k.running)
        }
        if e == r {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let now = UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
            return Totals(raw: v, enabled: now, running: now)
        }
        return Totals(raw: v, enabled: e, running: r)
    }
}

/// The thread ids in /proc/PID/task, ascending.
func threadIDs(of pid: Int32) -> [Int32] {
    guard let dir = opendir("/proc/\(pid)/task") else { return [] }
    defer { closedir(dir) }
    var tids: [Int32] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if let tid = Int32(name) { tids.append(tid) }
    }
    return tids.sorted()
}
