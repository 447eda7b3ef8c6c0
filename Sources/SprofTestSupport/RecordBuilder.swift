import SprofRecording

/// Builds perf records byte by byte, laid out as the kernel writes them, so the pure parser and
/// the ring buffer's wrap handling can be tested without a kernel.
public struct RecordBuilder {
    /// The layout records are built for (its sample_type decides the fields).
    public var layout: SampleLayout

    /// Creates a builder.
    public init(layout: SampleLayout) { self.layout = layout }

    private func header(type: UInt32, misc: UInt16, body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.append(le: type)
        out.append(le: misc)
        out.append(le: UInt16(8 + body.count))
        return out + body
    }

    /// The sample_id trailer for non-sample records (TID, TIME, CPU in sprof's layout).
    private func trailer(pid: Int32, tid: Int32, time: UInt64, cpu: UInt32 = 0, eventID: UInt64 = 0) -> [UInt8] {
        var out: [UInt8] = []
        let t = layout.sampleType
        if t & SampleBits.tid != 0 { out.append(le: UInt32(bitPattern: pid)); out.append(le: UInt32(bitPattern: tid)) }
        if t & SampleBits.time != 0 { out.append(le: time) }
        if t & SampleBits.cpu != 0 { out.append(le: cpu); out.append(le: UInt32(0)) }
        if t & SampleBits.identifier != 0 { out.append(le: eventID) }
        return out
    }

    /// A PERF_RECORD_SAMPLE.
    public func sample(_ s: SampleRecord, stackCapacity: Int? = nil) -> [UInt8] {
        var b: [UInt8] = []
        let t = layout.sampleType
        if t & SampleBits.identifier != 0 { b.append(le: s.eventID) }
        if t & SampleBits.ip != 0 { b.append(le: s.ip) }
        if t & SampleBits.tid != 0 { b.append(le: UInt32(bitPattern: s.pid)); b.append(le: UInt32(bitPattern: s.tid)) }
        if t & SampleBits.time != 0 { b.append(le: s.time) }
        if t & SampleBits.cpu != 0 { b.append(le: s.cpu); b.append(le: UInt32(0)) }
        if t & SampleBits.period != 0 { b.append(le: s.period) }
        if t & SampleBits.callchain != 0 {
            b.append(le: UInt64(s.callchain.count))
            for v in s.callchain { b.append(le: v) }
        }
        if t & SampleBits.regsUser != 0 {
            if s.userRegisters.isEmpty {
                b.append(le: UInt64(0))
            } else {
                b.append(le: s.userRegistersABI == 0 ? UInt64(2) : s.userRegistersABI) // PERF_SAMPLE_REGS_ABI_64 unless set
                for v in s.userRegisters { b.append(le: v) }
            }
        }
        if t & SampleBits.stackUser != 0 {
            let capacity = stackCapacity ?? ((s.userStack.count + 7) / 8 * 8)
            b.append(le: UInt64(capacity))
            if capacity > 0 {
                b += s.userStack
                b += [UInt8](repeating: 0, count: capacity - s.userStack.count)
                b.append(le: UInt64(s.userStack.count))
            }
        }
        return header(type: 9, misc: s.cpuMode.rawValue, body: b)
    }

    /// A PERF_RECORD_SWITCH, or PERF_RECORD_SWITCH_CPU_WIDE when the record names the other thread.
    public func contextSwitch(_ r: SwitchRecord, eventID: UInt64 = 0) -> [UInt8] {
        var b: [UInt8] = []
        if let otherPID = r.otherPID, let otherTID = r.otherTID {
            b.append(le: UInt32(bitPattern: otherPID)); b.append(le: UInt32(bitPattern: otherTID))
        }
        b += trailer(pid: r.pid, tid: r.tid, time: r.time, cpu: r.cpu, eventID: eventID)
        let misc: UInt16 = (r.isOut ? 1 << 13 : 0) | (r.preempted ? 1 << 14 : 0)
        return header(type: r.otherPID == nil ? 14 : 15, misc: misc, body: b)
    }

    /// A PERF_RECORD_MMAP2, with a build-id when given.
    public func mmap2(pid: Int32, tid: Int32, start: UInt64, length: UInt64, pgoff: UInt64, path: String,
                      buildID: [UInt8] = [], prot: UInt32 = 5, time: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        b.append(le: UInt32(bitPattern: pid)); b.append(le: UInt32(bitPattern: tid))
        b.append(le: start); b.append(le: length); b.append(le: pgoff)
        if buildID.isEmpty {
            b += [UInt8](repeating: 0, count: 24)
        } else {
            b.append(UInt8(buildID.count)); b += [0, 0, 0]
            b += buildID + [UInt8](repeating: 0, count: 20 - buildID.count)
        }
        b.append(le: prot); b.append(le: UInt32(2))
        b += padded(path)
        b += trailer(pid: pid, tid: tid, time: time)
        return header(type: 10, misc: buildID.isEmpty ? 0 : 1 << 14, body: b)
    }

    /// A PERF_RECORD_COMM.
    public func comm(pid: Int32, tid: Int32, name: String, exec: Bool, time: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        b.append(le: UInt32(bitPattern: pid)); b.append(le: UInt32(bitPattern: tid))
        b += padded(name)
        b += trailer(pid: pid, tid: tid, time: time)
        return header(type: 3, misc: exec ? 1 << 13 : 0, body: b)
    }

    /// A PERF_RECORD_FORK (or EXIT with `exit: true`).
    public func fork(pid: Int32, ppid: Int32, tid: Int32, ptid: Int32, time: UInt64, exit: Bool = false) -> [UInt8] {
        var b: [UInt8] = []
        for v in [pid, ppid, tid, ptid] { b.append(le: UInt32(bitPattern: v)) }
        b.append(le: time)
        b += trailer(pid: pid, tid: tid, time: time)
        return header(type: exit ? 4 : 7, misc: 0, body: b)
    }

    /// A PERF_RECORD_LOST.
    public func lost(count: UInt64, time: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        b.append(le: UInt64(0)); b.append(le: count)
        b += trailer(pid: 0, tid: 0, time: time)
        return header(type: 2, misc: 0, body: b)
    }

    /// A PERF_RECORD_THROTTLE or UNTHROTTLE.
    public func throttle(_ on: Bool, time: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        b.append(le: time); b.append(le: UInt64(0)); b.append(le: UInt64(0))
        b += trailer(pid: 0, tid: 0, time: time)
        return header(type: on ? 5 : 6, misc: 0, body: b)
    }

    /// A NUL-terminated string padded to 8 bytes, as the kernel stores names.
    private func padded(_ s: String) -> [UInt8] {
        var bytes = Array(s.utf8) + [0]
        while bytes.count % 8 != 0 { bytes.append(0) }
        return bytes
    }

    /// Lays `records` into a ring-buffer data area of `size` bytes starting at free-running
    /// offset `start`, wrapping at the end as the kernel does. Returns the data and the head.
    public static func ring(_ records: [[UInt8]], size: Int, start: UInt64) -> (data: [UInt8], head: UInt64) {
        var data = [UInt8](repeating: 0, count: size)
        var head = start
        for r in records {
            for byte in r {
                data[Int(head % UInt64(size))] = byte
                head += 1
            }
        }
        return (data, head)
    }
}

extension Array where Element == UInt8 {
    mutating func append<T: FixedWidthInteger>(le value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
