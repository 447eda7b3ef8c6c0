/// One record from a perf ring buffer, decoded. Parsing is pure: bytes in, value out.
public enum PerfRecord: Sendable, Equatable {
    /// PERF_RECORD_SAMPLE.
    case sample(SampleRecord)
    /// PERF_RECORD_MMAP / MMAP2: an executable mapping appeared.
    case mmap(MmapRecord)
    /// PERF_RECORD_COMM: a thread got a name (`isExec`: by exec, which replaces the address space).
    case comm(CommRecord)
    /// PERF_RECORD_FORK: a process or thread was created.
    case fork(TaskRecord)
    /// PERF_RECORD_EXIT.
    case exit(TaskRecord)
    /// PERF_RECORD_LOST: the buffer was full and `count` records were dropped.
    case lost(count: UInt64, time: UInt64)
    /// PERF_RECORD_LOST_SAMPLES: samples dropped before reaching the buffer.
    case lostSamples(count: UInt64, time: UInt64)
    /// PERF_RECORD_THROTTLE (`true`) / UNTHROTTLE (`false`): the kernel lowered or restored the rate.
    case throttle(Bool, time: UInt64)
    /// PERF_RECORD_SWITCH / SWITCH_CPU_WIDE (`attr.context_switch`): a thread left or took a CPU.
    case contextSwitch(SwitchRecord)
    /// Anything else (kept so that the caller can count it).
    case other(type: UInt32, time: UInt64)

    /// The record's timestamp (CLOCK_MONOTONIC ns), used to merge buffers; 0 when unknown.
    public var time: UInt64 {
        switch self {
        case .sample(let s): return s.time
        case .mmap(let m): return m.time
        case .comm(let c): return c.time
        case .fork(let t), .exit(let t): return t.time
        case .contextSwitch(let s): return s.time
        case .lost(_, let t), .lostSamples(_, let t), .throttle(_, let t), .other(_, let t): return t
        }
    }
}

/// The kernel's PERF_RECORD_MISC_CPUMODE values that matter for a profiler.
public enum CPUMode: UInt16, Sendable {
    case unknown = 0, kernel = 1, user = 2, hypervisor = 3, guestKernel = 4, guestUser = 5
}

/// A sample. Fields absent from the layout are zero or empty.
public struct SampleRecord: Sendable, Equatable {
    /// The sampled instruction pointer.
    public var ip: UInt64 = 0
    /// Process id.
    public var pid: Int32 = 0
    /// Thread id.
    public var tid: Int32 = 0
    /// CLOCK_MONOTONIC timestamp in ns.
    public var time: UInt64 = 0
    /// The CPU it was taken on.
    public var cpu: UInt32 = 0
    /// The event count this sample stands for.
    public var period: UInt64 = 0
    /// Kernel-recorded callchain, leaf first, with PERF_CONTEXT_* markers left in.
    public var callchain: [UInt64] = []
    /// Sampled user registers in ``UserRegisters/sampled`` order; empty when the sample hit a
    /// kernel thread (ABI none).
    public var userRegisters: [UInt64] = []
    /// The ABI of ``userRegisters`` (`PERF_SAMPLE_REGS_ABI_*`): 0 none, 1 a 32-bit task (i386
    /// code: the registers hold 32-bit values), 2 a 64-bit task.
    public var userRegistersABI: UInt64 = 0
    /// The copied user stack, starting at the sampled stack pointer; only the bytes the kernel
    /// really copied (`dyn_size`).
    public var userStack: [UInt8] = []
    /// The thread's stack just beyond ``userStack``, read from the live process as the sample
    /// came out of the ring buffer, when the kernel's copy ended before the stack and the live bytes at its end
    /// were still the copied ones (see `LiveStackReader`); empty otherwise. Together with
    /// ``userStack`` it is the stack from the sampled stack pointer on, without a gap.
    public var liveStack: ArraySlice<UInt8> = []
    /// Where the sample was taken.
    public var cpuMode: CPUMode = .unknown
    /// The id of the event that took it (PERF_SAMPLE_IDENTIFIER; the parent event's id for
    /// inherited events); 0 when the layout has no identifier. Tells the on-CPU event's samples
    /// from the `context-switches` event's when both write to one buffer (`--off-cpu`).
    public var eventID: UInt64 = 0

    /// Creates an empty sample.
    public init() {}
}

/// An executable mapping.
public struct MmapRecord: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    public var start: UInt64
    public var length: UInt64
    public var pageOffset: UInt64
    public var path: String
    /// The GNU build-id, when the kernel sent it (MMAP2 with build_id).
    public var buildID: [UInt8]
    /// Protection bits (PROT_*), 0 for MMAP (v1) records.
    public var protection: UInt32
    public var time: UInt64
    /// Creates a record.
    public init(pid: Int32, tid: Int32, start: UInt64, length: UInt64, pageOffset: UInt64, path: String,
                buildID: [UInt8], protection: UInt32, time: UInt64) {
        self.pid = pid; self.tid = tid; self.start = start; self.length = length; self.pageOffset = pageOffset
        self.path = path; self.buildID = buildID; self.protection = protection; self.time = time
    }
    /// Whether the mapping is executable (v1 MMAP records only describe executable maps).
    public var isExecutable: Bool { protection == 0 || protection & 4 != 0 }
}

/// A thread name change.
public struct CommRecord: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    public var name: String
    /// True when the name came from exec: the process's address space was replaced.
    public var isExec: Bool
    public var time: UInt64
    /// Creates a record.
    public init(pid: Int32, tid: Int32, name: String, isExec: Bool, time: UInt64) {
        self.pid = pid; self.tid = tid; self.name = name; self.isExec = isExec; self.time = time
    }
}

/// FORK or EXIT.
public struct TaskRecord: Sendable, Equatable {
    public var pid: Int32
    public var parentPID: Int32
    public var tid: Int32
    public var parentTID: Int32
    public var time: UInt64
    /// Creates a record.
    public init(pid: Int32, parentPID: Int32, tid: Int32, parentTID: Int32, time: UInt64) {
        self.pid = pid; self.parentPID = parentPID; self.tid = tid; self.parentTID = parentTID; self.time = time
    }
}

/// A context switch seen by one thread (PERF_RECORD_SWITCH), or by one CPU
/// (PERF_RECORD_SWITCH_CPU_WIDE, for system-wide events, which also names the other thread).
/// The thread and time come from the sample_id trailer, so they are 0 without `sample_id_all`.
public struct SwitchRecord: Sendable, Equatable {
    /// Process of the thread the record is about (the one switching out or in).
    public var pid: Int32
    /// That thread.
    public var tid: Int32
    /// CLOCK_MONOTONIC ns.
    public var time: UInt64
    /// CPU it happened on (0 when the layout has no CPU field).
    public var cpu: UInt32
    /// True for a switch-out (PERF_RECORD_MISC_SWITCH_OUT), false for a switch-in.
    public var isOut: Bool
    /// A switch-out while the thread was still runnable: it was preempted, not blocked
    /// (PERF_RECORD_MISC_SWITCH_OUT_PREEMPT, Linux 4.17+).
    public var preempted: Bool
    /// For CPU-wide records: the thread switched to (on out) or from (on in); nil otherwise.
    public var otherPID: Int32?
    /// See ``otherPID``.
    public var otherTID: Int32?
    /// Creates a record.
    public init(pid: Int32, tid: Int32, time: UInt64, cpu: UInt32 = 0, isOut: Bool, preempted: Bool = false,
                otherPID: Int32? = nil, otherTID: Int32? = nil) {
        self.pid = pid; self.tid = tid; self.time = time; self.cpu = cpu; self.isOut = isOut
        self.preempted = preempted; self.otherPID = otherPID; self.otherTID = otherTID
    }
}

/// A record that could not be parsed: truncated or inconsistent bytes.
public struct RecordParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was wrong.
    public var description: String
}

/// Decodes perf records. Pure: the same bytes and layout give the same record.
public struct RecordParser: Sendable {
    /// The layout the events were opened with.
    public var layout: SampleLayout
    private let regCount: Int

    /// Creates a parser for records produced with `layout`.
    public init(layout: SampleLayout) {
        self.layout = layout
        self.regCount = layout.regsUserMask.nonzeroBitCount
    }

    // Record types from perf_event.h.
    static let typeMmap: UInt32 = 1, typeLost: UInt32 = 2, typeComm: UInt32 = 3, typeExit: UInt32 = 4
    static let typeThrottle: UInt32 = 5, typeUnthrottle: UInt32 = 6, typeFork: UInt32 = 7, typeSample: UInt32 = 9
    static let typeMmap2: UInt32 = 10, typeLostSamples: UInt32 = 13
    static let typeSwitch: UInt32 = 14, typeSwitchCPUWide: UInt32 = 15
    /// sprof's own record type, never written by the kernel (its types are below 64) nor found in
    /// perf.data (perf's own start at 64): a piece of ``SampleRecord/liveStack`` that follows its
    /// sample in the reader's output (the 16-bit record size cannot hold 512 KiB at once).
    static let typeLiveStack: UInt32 = 0x5350_0001
    /// sprof's own record type: follows a sample to say that its ``SampleRecord/liveStack`` is
    /// the thread's live-stack block numbered `serial` (u64) from byte `offset` (u64) on. The
    /// block's ``typeLiveStack`` pieces follow when it is sent for the first time; later samples
    /// of the thread refer to it without them (see `LiveStackLedger`).
    static let typeLiveStackRef: UInt32 = 0x5350_0002
    static let miscSwitchOut: UInt16 = 1 << 13
    static let miscSwitchOutPreempt: UInt16 = 1 << 14
    static let miscCommExec: UInt16 = 1 << 13
    static let miscMmapBuildID: UInt16 = 1 << 14

    /// Parses one whole record (header included). The bytes may be a scratch copy.
    public func parse(_ bytes: UnsafeRawBufferPointer) throws(RecordParseError) -> PerfRecord {
        try parse(bytes, copyingStack: true).record
    }

    /// Where a sample's user-stack copy lies in its record: the offset of its `size` field, that
    /// size, the bytes the kernel really copied (`dyn_size`), and the offset just past `dyn_size`.
    struct StackSpan: Equatable {
        var sizeField: Int
        var size: Int
        var copied: Int
        var end: Int
    }

    /// ``parse(_:)`` that, without `copyingStack`, leaves `userStack` empty (the reader thread
    /// needs a sample's time, thread and event, not its 32 KiB stack copy), and also tells where
    /// the stack copy lies, for ``compacted(_:stack:)``.
    func parse(_ bytes: UnsafeRawBufferPointer, copyingStack: Bool) throws(RecordParseError) -> (record: PerfRecord, stack: StackSpan?) {
        var r = ByteReader(bytes)
        let type = try r.u32()
        let misc = try r.u16()
        let size = Int(try r.u16())
        guard size >= 8, size <= bytes.count else {
            throw RecordParseError(description: "record size \(size) outside 8...\(bytes.count)")
        }
        r.limit = size
        switch type {
        case Self.typeSample:
            var stack: StackSpan?
            let sample = try parseSample(&r, misc: misc, copyingStack: copyingStack, stack: &stack)
            return (.sample(sample), stack)
        case Self.typeMmap, Self.typeMmap2:
            let pid = try r.i32(), tid = try r.i32()
            let start = try r.u64(), length = try r.u64(), pgoff = try r.u64()
            var buildID: [UInt8] = []
            var prot: UInt32 = 0
            if type == Self.typeMmap2 {
                if misc & Self.miscMmapBuildID != 0 {
                    let n = Int(try r.u8())
                    try r.skip(3)
                    let id = try r.bytes(20)
                    buildID = Array(id.prefix(min(n, 20)))
                } else {
                    try r.skip(24) // maj, min, ino, ino_generation
                }
                prot = try r.u32()
                try r.skip(4) // flags
            }
            let trailer = trailerSize
            let path = try r.cString(end: size - trailer)
            let time = try sampleIDTime(bytes, size: size)
            return (.mmap(MmapRecord(pid: pid, tid: tid, start: start, length: length, pageOffset: pgoff,
                                    path: path, buildID: buildID, protection: prot, time: time)), nil)
        case Self.typeComm:
            let pid = try r.i32(), tid = try r.i32()
            let name = try r.cString(end: size - trailerSize)
            return (.comm(CommRecord(pid: pid, tid: tid, name: name, isExec: misc & Self.miscCommExec != 0,
                                    time: try sampleIDTime(bytes, size: size))), nil)
        case Self.typeFork, Self.typeExit:
            let pid = try r.i32(), ppid = try r.i32(), tid = try r.i32(), ptid = try r.i32()
            let time = try r.u64()
            let task = TaskRecord(pid: pid, parentPID: ppid, tid: tid, parentTID: ptid, time: time)
            return (type == Self.typeFork ? .fork(task) : .exit(task), nil)
        case Self.typeLost:
            _ = try r.u64()
            let lost = try r.u64()
            return (.lost(count: lost, time: try sampleIDTime(bytes, size: size)), nil)
        case Self.typeLostSamples:
            let lost = try r.u64()
            return (.lostSamples(count: lost, time: try sampleIDTime(bytes, size: size)), nil)
        case Self.typeSwitch, Self.typeSwitchCPUWide:
            var other: (Int32, Int32)?
            if type == Self.typeSwitchCPUWide { other = (try r.i32(), try r.i32()) }
            let id = try sampleID(bytes, size: size)
            let out = misc & Self.miscSwitchOut != 0
            return (.contextSwitch(SwitchRecord(pid: id.pid, tid: id.tid, time: id.time, cpu: id.cpu, isOut: out,
                                               preempted: out && misc & Self.miscSwitchOutPreempt != 0,
                                               otherPID: other?.0, otherTID: other?.1)), nil)
        case Self.typeThrottle, Self.typeUnthrottle:
            let time = try r.u64()
            return (.throttle(type == Self.typeThrottle, time: time), nil)
        default:
            return (.other(type: type, time: (try? sampleIDTime(bytes, size: size)) ?? 0), nil)
        }
    }

    /// Bytes of the sample_id trailer on non-sample records (TID, TIME, ID, STREAM_ID, CPU, IDENTIFIER).
    var trailerSize: Int {
        guard layout.sampleIDAll else { return 0 }
        let t = layout.sampleType
        var n = 0
        for bit in [SampleBits.tid, SampleBits.time, SampleBits.id, SampleBits.streamID, SampleBits.cpu, SampleBits.identifier]
        where t & bit != 0 { n += 8 }
        return n
    }

    /// The TIME field of the sample_id trailer, read from the record's end.
    func sampleIDTime(_ bytes: UnsafeRawBufferPointer, size: Int) throws(RecordParseError) -> UInt64 {
        let t = layout.sampleType
        guard layout.sampleIDAll, t & SampleBits.time != 0 else { return 0 }
        var offset = size - trailerSize
        if t & SampleBits.tid != 0 { offset += 8 }
        guard offset >= 8, offset + 8 <= size else { throw RecordParseError(description: "record too short for sample_id") }
        return bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    }

    /// The thread, time and CPU of the sample_id trailer (zero where the layout lacks them).
    func sampleID(_ bytes: UnsafeRawBufferPointer, size: Int) throws(RecordParseError) -> (pid: Int32, tid: Int32, time: UInt64, cpu: UInt32) {
        guard layout.sampleIDAll else { return (0, 0, 0, 0) }
        let t = layout.sampleType
        var offset = size - trailerSize
        guard offset >= 8 else { throw RecordParseError(description: "record too short for sample_id") }
        var id: (pid: Int32, tid: Int32, time: UInt64, cpu: UInt32) = (0, 0, 0, 0)
        if t & SampleBits.tid != 0 {
            id.pid = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            id.tid = bytes.loadUnaligned(fromByteOffset: offset + 4, as: Int32.self)
            offset += 8
        }
        if t & SampleBits.time != 0 { id.time = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self); offset += 8 }
        if t & SampleBits.id != 0 { offset += 8 }
        if t & SampleBits.streamID != 0 { offset += 8 }
        if t & SampleBits.cpu != 0 { id.cpu = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        return id
    }

    private func parseSample(_ r: inout ByteReader, misc: UInt16, copyingStack: Bool,
                             stack: inout StackSpan?) throws(RecordParseError) -> SampleRecord {
        let t = layout.sampleType
        var s = SampleRecord()
        s.cpuMode = CPUMode(rawValue: misc & 7) ?? .unknown
        if t & SampleBits.identifier != 0 { s.eventID = try r.u64() }
        if t & SampleBits.ip != 0 { s.ip = try r.u64() }
        if t & SampleBits.tid != 0 { s.pid = try r.i32(); s.tid = try r.i32() }
        if t & SampleBits.time != 0 { s.time = try r.u64() }
        if t & SampleBits.addr != 0 { try r.skip(8) }
        if t & SampleBits.id != 0 { s.eventID = try r.u64() }
        if t & SampleBits.streamID != 0 { try r.skip(8) }
        if t & SampleBits.cpu != 0 { s.cpu = try r.u32(); try r.skip(4) }
        if t & SampleBits.period != 0 { s.period = try r.u64() }
        if t & SampleBits.read != 0 { throw RecordParseError(description: "PERF_SAMPLE_READ is not supported") }
        if t & SampleBits.callchain != 0 {
            let n = try r.length()
            guard n <= (r.limit - r.offset) / 8 else { throw RecordParseError(description: "callchain of \(n) entries overruns the record") }
            s.callchain = try r.u64Array(n)
        }
        if t & SampleBits.raw != 0 { let n = Int(try r.u32()); try r.skip(n) }
        if t & SampleBits.branchStack != 0 { throw RecordParseError(description: "PERF_SAMPLE_BRANCH_STACK is not supported") }
        if t & SampleBits.regsUser != 0 {
            let abi = try r.u64()
            s.userRegistersABI = abi
            if abi != 0 { s.userRegisters = try r.u64Array(regCount) }
        }
        if t & SampleBits.stackUser != 0 {
            let sizeField = r.offset
            let size = try r.length()
            if size != 0 {
                let start = r.offset
                try r.skip(size)
                let dyn = min(try r.length(), size)
                if copyingStack { s.userStack = Array(r.buffer[start..<(start + dyn)]) }
                stack = StackSpan(sizeField: sizeField, size: size, copied: dyn, end: r.offset)
            }
        }
        return s
    }
}

extension RecordParser {
    /// The record's bytes, with a sample's user-stack copy cut to the bytes the kernel really
    /// copied (`dyn_size`, rounded up to 8 as the kernel pads it): the same record to ``parse(_:)``,
    /// often a tenth of the size (a shallow stack in a 32 KiB copy). Records whose stack copy is
    /// not their last field are returned whole. Pure: bytes in, bytes out.
    static func compacted(_ bytes: UnsafeRawBufferPointer, stack: StackSpan?) -> [UInt8] {
        guard let stack, stack.end == bytes.count else { return Array(bytes) }
        let kept = (stack.copied + 7) & ~7
        guard kept < stack.size else { return Array(bytes) }
        let dataStart = stack.sizeField + 8
        var out = [UInt8](repeating: 0, count: dataStart + kept + 8)
        out.withUnsafeMutableBytes { o in
            o.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<(dataStart + kept)]))
            o.storeBytes(of: UInt16(o.count).littleEndian, toByteOffset: 6, as: UInt16.self)
            o.storeBytes(of: UInt64(kept).littleEndian, toByteOffset: stack.sizeField, as: UInt64.self)
            o.storeBytes(of: UInt64(stack.copied).littleEndian, toByteOffset: dataStart + kept, as: UInt64.self)
        }
        return out
    }
}

extension RecordParser {
    /// `liveStack` (a multiple of 8 bytes) as records of ``typeLiveStack`` to follow the sample's
    /// own: header, then up to 65,520 bytes each. Pure: bytes in, bytes out.
    static func liveStackRecords(_ liveStack: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        liveStack.withUnsafeBytes { appendLiveStackRecords($0, to: &out) }
        return out
    }

    /// ``liveStackRecords(_:)`` appended to `out`.
    static func appendLiveStackRecords(_ liveStack: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let piece = 65_520
        out.reserveCapacity(out.count + liveStack.count + (liveStack.count / piece + 1) * 8)
        var at = 0
        while at < liveStack.count {
            let n = min(piece, liveStack.count - at)
            appendHeader(type: typeLiveStack, size: n + 8, to: &out)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: liveStack[at..<(at + n)]))
            at += n
        }
    }

    /// A record header (`perf_event_header`: type, misc 0, size) for one of sprof's own records.
    private static func appendHeader(type: UInt32, size: Int, to out: inout [UInt8]) {
        withUnsafeBytes(of: type.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(0)) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(size).littleEndian) { out.append(contentsOf: $0) }
    }

    /// A ``typeLiveStackRef`` record for block `serial` from byte `offset` on, appended to `out`.
    static func appendLiveStackRef(serial: UInt64, offset: Int, to out: inout [UInt8]) {
        appendHeader(type: typeLiveStackRef, size: 24, to: &out)
        withUnsafeBytes(of: serial.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(offset).littleEndian) { out.append(contentsOf: $0) }
    }

    /// Whether the record starting at `offset` of `bytes` is a ``typeLiveStack`` piece or a
    /// ``typeLiveStackRef`` (which belong to the sample before them and must not be separated
    /// from it).
    static func isLiveStackRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        guard offset + 8 <= bytes.count else { return false }
        let type = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        return type == typeLiveStack || type == typeLiveStackRef
    }

    /// Every record in `bytes` (whole raw records one after another), with ``typeLiveStack``
    /// pieces joined to the sample before them as its ``SampleRecord/liveStack``. Records that do
    /// not parse are skipped, as are pieces without a sample before them. Pure.
    func parseAll(_ bytes: UnsafeRawBufferPointer, into records: inout [PerfRecord]) {
        var blocks = LiveStackBlocks()
        parseAll(bytes, into: &records, blocks: &blocks)
    }

    /// ``parseAll(_:into:)`` for a stream cut into chunks: `blocks` carries the live-stack blocks
    /// that later samples refer to (``typeLiveStackRef``) from one chunk to the next. Pure: the
    /// same bytes and state in give the same records and state out.
    func parseAll(_ bytes: UnsafeRawBufferPointer, into records: inout [PerfRecord], blocks: inout LiveStackBlocks) {
        var at = 0
        var live: [UInt8] = []
        var liveOwner: Int?
        var ref: (serial: UInt64, offset: Int)?
        func attach() {
            defer {
                live = []
                liveOwner = nil
                ref = nil
            }
            guard let i = liveOwner, case .sample(var s) = records[i] else { return }
            if let ref {
                let block: [UInt8]?
                if !live.isEmpty {
                    blocks.ledger.insert(tid: s.tid, serial: ref.serial, size: live.count, value: live)
                    block = live
                } else {
                    block = blocks.ledger.lookup(tid: s.tid, serial: ref.serial)
                    if block == nil { blocks.missing += 1 }
                }
                guard let block, ref.offset < block.count else { return }
                s.liveStack = block[ref.offset...]
            } else {
                guard !live.isEmpty else { return }
                s.liveStack = live[...]
            }
            records[i] = .sample(s)
        }
        while at + 8 <= bytes.count {
            let size = Int(bytes.loadUnaligned(fromByteOffset: at + 6, as: UInt16.self))
            guard size >= 8, at + size <= bytes.count else { break }
            let type = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            if type == Self.typeLiveStack {
                if liveOwner != nil { live.append(contentsOf: bytes[(at + 8)..<(at + size)]) }
            } else if type == Self.typeLiveStackRef {
                if liveOwner != nil, size >= 24 {
                    let serial = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self))
                    let offset = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 16, as: UInt64.self))
                    ref = (serial, Int(min(offset, UInt64(Int32.max))))
                }
            } else {
                attach()
                if let r = try? parse(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + size)])) {
                    records.append(r)
                    switch r {
                    case .sample: liveOwner = records.count - 1
                    case .exit(let t): blocks.ledger.remove(tid: t.tid)
                    default: break
                    }
                }
            }
            at += size
        }
        attach()
    }
}

/// The consumer's side of `LiveStackLedger`: the blocks later samples may refer to, carried from
/// one chunk of records to the next.
struct LiveStackBlocks {
    var ledger = LiveStackLedger<[UInt8]>(limit: LiveStackBlocks.limit)
    /// References to a block that never arrived (its records were lost to the memory budget).
    var missing = 0
    /// The most bytes of blocks kept on each side of the hand-over.
    static let limit = 64 << 20
}

/// Bounds-checked little-endian reads over a record's bytes.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var offset = 0
    var limit: Int

    init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.limit = buffer.count
    }

    @inline(__always) mutating func need(_ n: Int) throws(RecordParseError) {
        // `n <= limit - offset`, not `offset + n <= limit`: a corrupt length near Int.max must
        // be an error, not an overflow trap (found by fuzz/FuzzRecords).
        guard n >= 0, n <= limit - offset else {
            throw RecordParseError(description: "record truncated: need \(n) bytes at offset \(offset) of \(limit)")
        }
    }
    mutating func skip(_ n: Int) throws(RecordParseError) { try need(n); offset += n }
    /// A u64 count or size field; any value past the record's end is an error (a corrupt
    /// record may hold 2^64-1, which does not even fit an Int).
    mutating func length() throws(RecordParseError) -> Int {
        let v = try u64()
        guard v <= UInt64(limit) else { throw RecordParseError(description: "length \(v) overruns the record") }
        return Int(v)
    }
    mutating func u8() throws(RecordParseError) -> UInt8 { try need(1); defer { offset += 1 }; return buffer[offset] }
    mutating func u16() throws(RecordParseError) -> UInt16 {
        try need(2); defer { offset += 2 }; return buffer.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
    }
    mutating func u32() throws(RecordParseError) -> UInt32 {
        try need(4); defer { offset += 4 }; return buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
    }
    mutating func i32() throws(RecordParseError) -> Int32 { Int32(bitPattern: try u32()) }
    mutating func u64() throws(RecordParseError) -> UInt64 {
        try need(8); defer { offset += 8 }; return buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    }
    mutating func u64Array(_ n: Int) throws(RecordParseError) -> [UInt64] {
        try need(n * 8)
        let start = offset
        offset += n * 8
        return [UInt64](unsafeUninitializedCapacity: n) { out, count in
            for i in 0..<n { out[i] = buffer.loadUnaligned(fromByteOffset: start + i * 8, as: UInt64.self) }
            count = n
        }
    }
    mutating func bytes(_ n: Int) throws(RecordParseError) -> [UInt8] {
        try need(n); defer { offset += n }; return Array(buffer[offset..<(offset + n)])
    }
    /// A NUL-terminated string padded to `end`.
    mutating func cString(end: Int) throws(RecordParseError) -> String {
        guard end >= offset, end <= limit else { throw RecordParseError(description: "string field overruns the record") }
        var stop = offset
        while stop < end && buffer[stop] != 0 { stop += 1 }
        defer { offset = end }
        return String(decoding: buffer[offset..<stop], as: UTF8.self)
    }
}
