import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// Off-CPU accounting: switch-out stacks, intervals timed by SWITCH records, their leaves.
extension ProfileBuilder {
    // MARK: Off-CPU intervals (`--off-cpu`, issue 10)

    /// Turns on off-CPU accounting: samples of the events `ids` (`context-switches` events) are
    /// switch-outs, not on-CPU samples, and SWITCH records time the intervals. The profile then
    /// has two more sample types, `wall`/`nanoseconds` and `off-cpu`/`nanoseconds`.
    func enableOffCPU(eventIDs ids: Set<UInt64>) {
        interpret(rows: [.onCPU, .offCPU], ids: Dictionary(uniqueKeysWithValues: ids.map { ($0, EventRole.offCPU) }))
    }

    func offCPUSwitch(_ r: SwitchRecord) {
        guard columns.offCPU != nil, !excludedThreads.contains(r.tid) else { return }
        lastRecordTime = max(lastRecordTime, r.time)
        if let interval = intervals.apply(r) { addOffCPU(interval) }
    }

    func addOffCPU(_ interval: OffCPUIntervals<StackKey>.Interval) {
        // A switch-out whose sample was lost still counts, on the thread's root.
        let stack = interval.stack ?? StackKey(refs: [], thread: threadIndex(processes.process(interval.pid, tid: interval.tid), tid: interval.tid))
        offCPUStacks[OffCPUKey(stack: stack, preempted: interval.preempted), default: 0] += Int64(clamping: interval.nanoseconds)
    }

    /// The leaf that says why a thread was off CPU: the kernel's preempt flag, else whether it
    /// waited in `io_schedule` (disk and other uninterruptible I/O) or slept (nanosleep, futex,
    /// poll, pipe and socket reads).
    func offCPUMarker(_ key: OffCPUKey) -> UInt32 {
        if key.preempted { return marker(Self.offCPUPreempted) }
        for id in key.stack.refs.reversed() {
            guard case .code(let address, _, _, true) = refs[Int(id)] else { continue }
            if symbolizer.symbolizeKernel(address).name.hasPrefix("io_schedule") { return marker(Self.offCPUBlockedIO) }
        }
        return marker(Self.offCPUSleeping)
    }

    /// Leaf names of off-CPU stacks.
    static let offCPUSleeping = "[off-cpu: sleeping]"
    static let offCPUBlockedIO = "[off-cpu: blocked on I/O]"
    static let offCPUPreempted = "[off-cpu: preempted]"

    /// Closes the intervals still open at the last record and returns the off-CPU stacks
    /// (root-first frame ids ending in their marker) in a fixed order. Runs before threads and
    /// locations are made final.
    func finishOffCPU() -> [(refs: [UInt32], thread: Int, ns: Int64)] {
        for interval in intervals.finish(at: lastRecordTime) { addOffCPU(interval) }
        let ordered = offCPUStacks.map { (key: $0.key, value: $0.value) }.sorted { a, b in
            if a.key.stack.thread != b.key.stack.thread { return a.key.stack.thread < b.key.stack.thread }
            if a.key.stack.refs != b.key.stack.refs { return a.key.stack.refs.lexicographicallyPrecedes(b.key.stack.refs) }
            return !a.key.preempted && b.key.preempted
        }
        return ordered.map { (refs: $0.key.stack.refs + [offCPUMarker($0.key)], thread: $0.key.stack.thread, ns: $0.value) }
    }

    /// Adds off-CPU stacks: 0 samples, 0 cpu, their nanoseconds as wall and off-cpu time.
    func addOffCPUStacks(_ entries: [(refs: [UInt32], thread: Int, ns: Int64)]) {
        for entry in entries {
            building.add(stack: stackIndex(entry.refs), thread: entry.thread, values: columns.offCPUValues(ns: entry.ns))
        }
    }
}
