/// Pairs each thread's switch-out with its next switch-in, giving off-CPU intervals with the stack
/// taken at the switch-out (`--off-cpu`). Pure: records in, intervals out.
///
/// The kernel takes the `context-switches` sample before it writes the switch-out record
/// (`perf_event_task_sched_out`), so a thread's last switch-out sample is the stack of the
/// interval its next switch-out record opens. `Stack` is whatever handle the caller keeps for a
/// stack (ids of frames, an index).
public struct OffCPUIntervals<Stack> {
    /// One stretch of time a thread spent off CPU.
    public struct Interval {
        /// Process of the thread.
        public var pid: Int32
        /// The thread.
        public var tid: Int32
        /// The stack at the switch-out; nil when its sample was lost or never taken (the
        /// `context-switches` event could not sample, or was not yet enabled).
        public var stack: Stack?
        /// The thread was still runnable when it left the CPU (PERF_RECORD_MISC_SWITCH_OUT_PREEMPT):
        /// it waited for a CPU, not for an event.
        public var preempted: Bool
        /// Switch-in time minus switch-out time, CLOCK_MONOTONIC nanoseconds.
        public var nanoseconds: UInt64
    }

    private struct Open {
        var pid: Int32
        var start: UInt64
        var stack: Stack?
        var preempted: Bool
    }

    private var lastSample: [Int32: Stack] = [:]
    private var open: [Int32: Open] = [:]

    /// Creates an empty tracker.
    public init() {}

    /// Notes the stack of a switch-out sample of `tid` (the `context-switches` event's).
    public mutating func switchOutSample(tid: Int32, stack: Stack) {
        lastSample[tid] = stack
    }

    /// Applies a switch record; returns the interval a switch-in closes. Thread 0 (the idle task,
    /// seen in system-wide records) is never off CPU in this sense and is ignored.
    public mutating func apply(_ record: SwitchRecord) -> Interval? {
        guard record.tid > 0 else { return nil }
        if record.isOut {
            open[record.tid] = Open(pid: record.pid, start: record.time, stack: lastSample.removeValue(forKey: record.tid),
                                    preempted: record.preempted)
            return nil
        }
        guard let o = open.removeValue(forKey: record.tid), record.time >= o.start else { return nil }
        return Interval(pid: o.pid, tid: record.tid, stack: o.stack, preempted: o.preempted, nanoseconds: record.time - o.start)
    }

    /// Forgets a thread that exited: an exit ends no off-CPU interval worth reporting (the
    /// thread's last switch-out is its death).
    public mutating func threadExited(tid: Int32) {
        open[tid] = nil
        lastSample[tid] = nil
    }

    /// Closes the intervals still open when recording stopped at `time` (attached and
    /// system-wide recordings end while threads sleep), in thread order.
    public mutating func finish(at time: UInt64) -> [Interval] {
        let closing = open.sorted { $0.key < $1.key }
        open.removeAll()
        lastSample.removeAll()
        return closing.compactMap { tid, o in
            time > o.start ? Interval(pid: o.pid, tid: tid, stack: o.stack, preempted: o.preempted, nanoseconds: time - o.start) : nil
        }
    }
}
