import XCTest
@testable import SprofRecording
import SprofTestSupport

final class RecordParserTests: XCTestCase {
    let fpLayout = SampleLayout.sampling(.framePointer)
    let dwarfLayout = SampleLayout.sampling(.dwarf(stackSize: 64))

    private func parse(_ bytes: [UInt8], layout: SampleLayout) throws -> PerfRecord {
        try bytes.withUnsafeBytes { try RecordParser(layout: layout).parse($0) }
    }

    func testSampleWithCallchain() throws {
        var s = SampleRecord()
        s.ip = 0x401000; s.pid = 42; s.tid = 43; s.time = 1_000; s.cpu = 1; s.period = 1_001_001
        s.callchain = [UInt64(bitPattern: -512), 0x401000, 0x402000, 0x403000]
        s.cpuMode = .user
        let record = try parse(RecordBuilder(layout: fpLayout).sample(s), layout: fpLayout)
        XCTAssertEqual(record, .sample(s))
        XCTAssertEqual(record.time, 1_000)
    }

    func testSampleWithRegistersAndStack() throws {
        var s = SampleRecord()
        s.ip = 0x1234; s.pid = 7; s.tid = 8; s.time = 5; s.cpu = 0; s.period = 1
        s.callchain = [UInt64(bitPattern: -128), 0xffffffff81000000]
        s.userRegisters = (0..<UserRegisters.sampled.count).map { UInt64($0) * 0x10 }
        s.userRegistersABI = 2
        s.userStack = Array(0..<40)
        s.cpuMode = .kernel
        // The kernel reserves `sample_stack_user` bytes and reports the copied part as dyn_size.
        let bytes = RecordBuilder(layout: dwarfLayout).sample(s, stackCapacity: 64)
        XCTAssertEqual(try parse(bytes, layout: dwarfLayout), .sample(s))
    }

    func testSampleFromKernelThreadHasNoRegisters() throws {
        var s = SampleRecord()
        s.ip = 0xffffffff81000010; s.pid = 0; s.tid = 0; s.time = 9; s.period = 1; s.cpuMode = .kernel
        let bytes = RecordBuilder(layout: dwarfLayout).sample(s, stackCapacity: 0)
        guard case .sample(let parsed) = try parse(bytes, layout: dwarfLayout) else { return XCTFail("not a sample") }
        XCTAssertTrue(parsed.userRegisters.isEmpty)
        XCTAssertTrue(parsed.userStack.isEmpty)
    }

    func testMmap2WithBuildID() throws {
        let id: [UInt8] = Array(1...20)
        let bytes = RecordBuilder(layout: fpLayout).mmap2(pid: 5, tid: 5, start: 0x5555_0000, length: 0x2000, pgoff: 0x1000,
                                                          path: "/usr/bin/true", buildID: id, time: 77)
        guard case .mmap(let m) = try parse(bytes, layout: fpLayout) else { return XCTFail("not an mmap") }
        XCTAssertEqual(m.path, "/usr/bin/true")
        XCTAssertEqual(m.buildID, id)
        XCTAssertEqual(m.start, 0x5555_0000)
        XCTAssertEqual(m.length, 0x2000)
        XCTAssertEqual(m.pageOffset, 0x1000)
        XCTAssertEqual(m.time, 77)
        XCTAssertTrue(m.isExecutable)
    }

    func testCommExecForkExitLostThrottle() throws {
        let b = RecordBuilder(layout: fpLayout)
        XCTAssertEqual(try parse(b.comm(pid: 3, tid: 3, name: "qsl-bench", exec: true, time: 10), layout: fpLayout),
                       .comm(CommRecord(pid: 3, tid: 3, name: "qsl-bench", isExec: true, time: 10)))
        XCTAssertEqual(try parse(b.fork(pid: 4, ppid: 3, tid: 4, ptid: 3, time: 11), layout: fpLayout),
                       .fork(TaskRecord(pid: 4, parentPID: 3, tid: 4, parentTID: 3, time: 11)))
        XCTAssertEqual(try parse(b.fork(pid: 4, ppid: 3, tid: 4, ptid: 3, time: 12, exit: true), layout: fpLayout),
                       .exit(TaskRecord(pid: 4, parentPID: 3, tid: 4, parentTID: 3, time: 12)))
        XCTAssertEqual(try parse(b.lost(count: 17, time: 13), layout: fpLayout), .lost(count: 17, time: 13))
        XCTAssertEqual(try parse(b.throttle(true, time: 14), layout: fpLayout), .throttle(true, time: 14))
        XCTAssertEqual(try parse(b.throttle(false, time: 15), layout: fpLayout), .throttle(false, time: 15))
    }

    func testTruncatedRecordThrows() throws {
        var s = SampleRecord()
        s.callchain = [1, 2, 3]
        var bytes = RecordBuilder(layout: fpLayout).sample(s)
        bytes.removeLast(8)
        // Fix up the header size so only the body is short.
        let size = UInt16(bytes.count)
        bytes[6] = UInt8(size & 0xff); bytes[7] = UInt8(size >> 8)
        XCTAssertThrowsError(try parse(bytes, layout: fpLayout))
    }

    func testCallchainLengthOverrunThrows() throws {
        var s = SampleRecord()
        s.callchain = [1]
        var bytes = RecordBuilder(layout: fpLayout).sample(s)
        // Claim a huge callchain: the parser must refuse rather than read past the record.
        let nrOffset = 8 + 8 + 8 + 8 + 8 + 8
        bytes.replaceSubrange(nrOffset..<(nrOffset + 8), with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        XCTAssertThrowsError(try parse(bytes, layout: fpLayout))
    }

    func testUnknownRecordTypeIsKept() throws {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: withUnsafeBytes(of: UInt32(99).littleEndian, Array.init))
        bytes.append(contentsOf: [0, 0, 32, 0])
        bytes += [UInt8](repeating: 0, count: 24)
        guard case .other(let type, _) = try parse(bytes, layout: fpLayout) else { return XCTFail("expected .other") }
        XCTAssertEqual(type, 99)
    }
}

final class RingBufferTests: XCTestCase {
    let layout = SampleLayout.sampling(.framePointer)

    private func records(_ n: Int) -> [[UInt8]] {
        let b = RecordBuilder(layout: layout)
        return (0..<n).map { i in
            var s = SampleRecord()
            s.ip = UInt64(0x1000 + i); s.pid = 1; s.tid = 1; s.time = UInt64(i); s.period = 1
            s.callchain = Array(repeating: UInt64(i), count: i % 5)
            return b.sample(s)
        }
    }

    private func drainAll(data: [UInt8], tail: UInt64, head: UInt64) throws -> ([PerfRecord], UInt64) {
        var ring = RingBuffer(syntheticData: data, tail: tail, head: head)
        var out: [PerfRecord] = []
        let parser = RecordParser(layout: layout)
        try ring.drain { out.append(try parser.parse($0)) }
        return (out, ring.tail)
    }

    func testRecordsWrappingPastTheEndAreReassembled() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let recs = records(200)
        let total = recs.reduce(0) { $0 + $1.count }
        XCTAssertGreaterThan(total, page, "records must overflow one page to wrap")
        // Start near the end so that records, and headers, straddle the wrap point.
        for start in [UInt64(page - 3), UInt64(page - 8), UInt64(3 * page - 5)] {
            let subset = Array(recs.prefix { _ in true }.prefix(40))
            let (data, head) = RecordBuilder.ring(subset, size: page, start: start)
            let (parsed, tail) = try drainAll(data: data, tail: start, head: head)
            XCTAssertEqual(parsed.count, subset.count, "start \(start)")
            XCTAssertEqual(tail, head, "the tail must be released up to head")
            for (i, r) in parsed.enumerated() {
                guard case .sample(let s) = r else { return XCTFail("not a sample") }
                XCTAssertEqual(s.ip, UInt64(0x1000 + i))
                XCTAssertEqual(s.callchain.count, i % 5)
            }
        }
    }

    func testPartialRecordIsLeftForLater() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let recs = records(3)
        let (data, head) = RecordBuilder.ring(recs, size: page, start: 0)
        // The kernel has published only part of the last record.
        let (parsed, tail) = try drainAll(data: data, tail: 0, head: head - 4)
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(tail, UInt64(recs[0].count + recs[1].count))
    }
}

/// `--off-cpu` records: switch records and samples that say which event took them.
final class SwitchRecordTests: XCTestCase {
    private func parse(_ bytes: [UInt8], layout: SampleLayout) throws -> PerfRecord {
        try bytes.withUnsafeBytes { try RecordParser(layout: layout).parse($0) }
    }

    private var offCPULayout: SampleLayout {
        var options = SamplingOptions(callGraph: .dwarf(stackSize: 64))
        options.offCPU = true
        return SampleLayout.sampling(options)
    }

    func testOffCPULayoutCarriesIdentifier() {
        XCTAssertNotEqual(offCPULayout.sampleType & SampleBits.identifier, 0)
        XCTAssertEqual(SampleLayout.sampling(SamplingOptions()).sampleType & SampleBits.identifier, 0)
    }

    func testSwitchOutPreemptedAndSwitchIn() throws {
        let layout = offCPULayout
        let out = SwitchRecord(pid: 10, tid: 11, time: 5_000, cpu: 1, isOut: true, preempted: true)
        XCTAssertEqual(try parse(RecordBuilder(layout: layout).contextSwitch(out, eventID: 77), layout: layout), .contextSwitch(out))
        let sleeping = SwitchRecord(pid: 10, tid: 11, time: 6_000, cpu: 0, isOut: true, preempted: false)
        XCTAssertEqual(try parse(RecordBuilder(layout: layout).contextSwitch(sleeping), layout: layout), .contextSwitch(sleeping))
        let into = SwitchRecord(pid: 10, tid: 11, time: 9_000, cpu: 1, isOut: false)
        let parsed = try parse(RecordBuilder(layout: layout).contextSwitch(into), layout: layout)
        XCTAssertEqual(parsed, .contextSwitch(into))
        XCTAssertEqual(parsed.time, 9_000)
    }

    func testCPUWideSwitchNamesTheOtherThread() throws {
        let layout = SampleLayout.sampling(.framePointer)
        let r = SwitchRecord(pid: 3, tid: 4, time: 123, cpu: 1, isOut: true, otherPID: 0, otherTID: 0)
        XCTAssertEqual(try parse(RecordBuilder(layout: layout).contextSwitch(r), layout: layout), .contextSwitch(r))
    }

    func testSampleIdentifierTellsEventsApart() throws {
        let layout = offCPULayout
        var s = SampleRecord()
        s.eventID = 0xabc; s.ip = 0xffffffff81000000; s.pid = 1; s.tid = 2; s.time = 3; s.period = 1
        s.callchain = [UInt64(bitPattern: -128), 0xffffffff81000000]
        s.userRegisters = (0..<UserRegisters.sampled.count).map { UInt64($0) }
        s.userRegistersABI = 2
        s.userStack = Array(0..<16)
        s.cpuMode = .kernel
        XCTAssertEqual(try parse(RecordBuilder(layout: layout).sample(s, stackCapacity: 64), layout: layout), .sample(s))
    }
}

final class OffCPUIntervalTests: XCTestCase {
    func testSwitchOutToSwitchInWithTheSampledStack() {
        var t = OffCPUIntervals<String>()
        t.switchOutSample(tid: 5, stack: "main;sleep_phase;nanosleep")
        XCTAssertNil(t.apply(SwitchRecord(pid: 4, tid: 5, time: 1_000, isOut: true)))
        // Another thread's switches do not touch thread 5's interval.
        XCTAssertNil(t.apply(SwitchRecord(pid: 4, tid: 6, time: 1_500, isOut: false)))
        let i = t.apply(SwitchRecord(pid: 4, tid: 5, time: 36_000, isOut: false))
        XCTAssertEqual(i?.nanoseconds, 35_000)
        XCTAssertEqual(i?.stack, "main;sleep_phase;nanosleep")
        XCTAssertEqual(i?.preempted, false)
        XCTAssertEqual(i?.pid, 4)
        // The sample is used once: a later switch-out without its own sample has no stack.
        XCTAssertNil(t.apply(SwitchRecord(pid: 4, tid: 5, time: 40_000, isOut: true, preempted: true)))
        let j = t.apply(SwitchRecord(pid: 4, tid: 5, time: 41_000, isOut: false))
        XCTAssertNil(j?.stack)
        XCTAssertEqual(j?.preempted, true)
        XCTAssertEqual(j?.nanoseconds, 1_000)
    }

    func testExitAndFinish() {
        var t = OffCPUIntervals<Int>()
        t.switchOutSample(tid: 7, stack: 1)
        _ = t.apply(SwitchRecord(pid: 7, tid: 7, time: 100, isOut: true))
        t.threadExited(tid: 7)
        XCTAssertNil(t.apply(SwitchRecord(pid: 7, tid: 7, time: 200, isOut: false)))
        t.switchOutSample(tid: 9, stack: 2)
        _ = t.apply(SwitchRecord(pid: 8, tid: 9, time: 100, isOut: true))
        _ = t.apply(SwitchRecord(pid: 0, tid: 0, time: 100, isOut: true)) // idle task: ignored
        let rest = t.finish(at: 600)
        XCTAssertEqual(rest.map(\.tid), [9])
        XCTAssertEqual(rest.first?.nanoseconds, 500)
        XCTAssertEqual(rest.first?.stack, 2)
    }
}
