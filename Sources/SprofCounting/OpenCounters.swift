#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore
import SprofRecording

/// The kernel side of counting: one fd per (event, thread), grouped as asked, read one by one.
///
/// Each fd is read on its own with `TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING` rather than with
/// `PERF_FORMAT_GROUP`: group reads of inherited events are refused by many kernels, and group
/// scheduling (all members on the PMU together) comes from `group_fd`, not from the read format.
final class OpenCounters {
    /// How the events are attached.
    struct Attachment {
        /// Threads to open on (`0` = the calling thread).
        var tids: [Int32]
        /// Count children and threads created later.
        var inherit: Bool
        /// Start counting at the target's exec (a ``WaitingCommand``).
        var enableOnExec: Bool
    }

    /// Per event (in flattened group order): the fds, one per thread, or the reason it is missing.
    private(set) var events: [EventSpec] = []
    private(set) var fds: [[Int32]] = []
    private(set) var unsupported: [Int: String] = [:]
    /// The fds of group leaders, for enable/disable/reset of whole groups.
    private(set) var leaders: [Int32] = []

    /// Opens every group on every thread. Threads that vanish meanwhile (ESRCH) are skipped.
    /// Events the machine lacks become "not supported"; permission and resource errors throw.
    init(groups: [CounterGroup], attachment: Attachment, settings: KernelSettings) throws(SyscallError) {
        do throws(SyscallError) {
            for group in groups {
                let base = events.count
                for event in group.events {
                    events.append(event)
                    fds.append([])
                }
                for tid in attachment.tids {
                    var leaderFD: Int32 = -1
                    for (offset, event) in group.events.enumerated() {
                        let index = base + offset
                        if unsupported[index] != nil { continue }
                        // A member cannot be opened in a group whose leader failed on this thread.
                        if offset > 0 && leaderFD < 0 && unsupported[base] != nil {
                            unsupported[index] = "its group leader \(group.events[0]) is not supported"
                            continue
                        }
                        var attr = Self.attr(event, leader: offset == 0, attachment: attachment)
                        let fd = csprof_perf_event_open(&attr, tid, -1, offset == 0 ? -1 : leaderFD, UInt(PERF_FLAG_FD_CLOEXEC))
                        if fd >= 0 {
                            fds[index].append(fd)
                            if offset == 0 { leaderFD = fd; leaders.append(fd) }
                            continue
                        }
                        let err = errno
                        switch err {
                        case ESRCH where attachment.tids.count > 1:
                            break // this thread exited while we opened: nothing to count there
                        case ENOENT, EOPNOTSUPP, ENODEV, EINVAL, ENXIO:
                            unsupported[index] = Self.unsupportedReason(err, event: event)
                        default:
                            let foreign = err == EACCES || err == EPERM ? Advice.foreignProcess(tid) : nil
                            throw SyscallError(call: "perf_event_open", errno: err,
                                               hint: foreign ?? RecordingSession.hint(for: err, event: event, settings: settings))
                        }
                        if offset == 0 { break }
                    }
                }
                // Members of a group whose leader the machine lacks cannot be counted either.
                if let reason = unsupported[base] {
                    for offset in group.events.indices.dropFirst() where unsupported[base + offset] == nil {
                        unsupported[base + offset] = "its group leader \(group.events[0]) is not supported (\(reason))"
                    }
                }
            }
        } catch {
            closeAll()
            throw error
        }
    }

    deinit { closeAll() }

    private func closeAll() {
        for list in fds { for fd in list { close(fd) } }
        fds = fds.map { _ in [] }
        leaders = []
    }

    static func unsupportedReason(_ err: Int32, event: EventSpec) -> String {
        switch err {
        case EINVAL: return "the kernel rejected \(event) (EINVAL): unknown encoding for this PMU"
        default: return "\(String(cString: strerror(err))): this machine has no such event (VMs and containers often lack hardware counters)"
        }
    }

    /// The attr for counting: no sampling, times for scaling, disabled until started.
    static func attr(_ event: EventSpec, leader: Bool, attachment: Attachment) -> perf_event_attr {
        var attr = perf_event_attr()
        attr.size = UInt32(MemoryLayout<perf_event_attr>.size)
        attr.type = event.type
        attr.config = event.config
        attr.config1 = event.config1
        attr.config2 = event.config2
        attr.exclude_kernel = event.excludeKernel ? 1 : 0
        attr.exclude_user = event.excludeUser ? 1 : 0
        attr.exclude_hv = event.excludeHypervisor ? 1 : 0
        attr.read_format = UInt64(PERF_FORMAT_TOTAL_TIME_ENABLED.rawValue | PERF_FORMAT_TOTAL_TIME_RUNNING.rawValue)
        attr.inherit = attachment.inherit ? 1 : 0
        // Only leaders carry the on/off state: members follow their leader, as the kernel expects.
        attr.disabled = leader ? 1 : 0
        attr.enable_on_exec = leader && attachment.enableOnExec ? 1 : 0
        return attr
    }

    /// Enables every group.
    func enable() throws(SyscallError) {
        for fd in leaders { _ = try sysCall("ioctl(PERF_EVENT_IOC_ENABLE)") { csprof_ioctl_enable(fd, 1) } }
    }

    /// Disables every group.
    func disable() throws(SyscallError) {
        for fd in leaders { _ = try sysCall("ioctl(PERF_EVENT_IOC_DISABLE)") { csprof_ioctl_disable(fd, 1) } }
    }

    /// Raw figures per event, summed over threads; nil for unsupported events.
    func readRaw() -> [(raw: UInt64, enabled: UInt64, running: UInt64, scaled: Double)?] {
        var out: [(raw: UInt64, enabled: UInt64, running: UInt64, scaled: Double)?] = []
        for index in events.indices {
            if unsupported[index] != nil { out.append(nil); continue }
            var total: (raw: UInt64, enabled: UInt64, running: UInt64, scaled: Double) = (0, 0, 0, 0)
            for fd in fds[index] {
                guard let r = Self.read(fd) else { continue }
                total.raw &+= r.0
                total.enabled &+= r.1
                total.running &+= r.2
                // Scale per thread: each thread's counter was multiplexed on its own.
                if r.2 > 0 { total.scaled += r.2 >= r.1 ? Double(r.0) : Double(r.0) * Double(r.1) / Double(r.2) }
            }
            out.append(total)
        }
        return out
    }

    /// Current values.
    func read() -> [CounterValue] {
        zip(events, readRaw()).enumerated().map { index, pair in
            let (event, raw) = pair
            guard let raw else { return CounterValue(unsupported: event, reason: unsupported[index] ?? "not opened") }
            var value = CounterValue(event: event, raw: raw.raw, enabled: raw.enabled, running: raw.running)
            if value.status == .counted { value.value = raw.scaled }
            return value
        }
    }

    /// One fd's `{value, time_enabled, time_running}`.
    static func read(_ fd: Int32) -> (UInt64, UInt64, UInt64)? {
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let n = try? sysCall("read") { withUnsafeMutableBytes(of: &buffer) { Glibc.read(fd, $0.baseAddress, $0.count) } }
        guard n == 24 else { return nil }
        return buffer
    }

    /// All fds of one event (for the single-counter fast path).
    func descriptors(of index: Int) -> [Int32] { fds[index] }
}
