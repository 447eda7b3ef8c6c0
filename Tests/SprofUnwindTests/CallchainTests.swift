import XCTest
import SprofCore
import SprofRecording
@testable import SprofUnwind

final class CallchainTests: XCTestCase {
    let kernel = UInt64(bitPattern: -128)
    let user = UInt64(bitPattern: -512)

    func testContextsSplitKernelAndUserAndMarkReturnAddresses() {
        var s = SampleRecord()
        s.callchain = [kernel, 0xffff_0010, 0xffff_0020, user, 0x1000, 0x2000, 0x3000]
        let stack = Callchain.frames(of: s)
        XCTAssertEqual(stack.frames.map(\.address.rawValue), [0xffff_0010, 0xffff_0020, 0x1000, 0x2000, 0x3000])
        XCTAssertEqual(stack.frames.map(\.isKernel), [true, true, false, false, false])
        // The first address of each context is the interrupted instruction, the rest return addresses.
        XCTAssertEqual(stack.frames.map(\.isReturnAddress), [false, true, false, true, true])
        XCTAssertEqual(stack.frames[3].lookupAddress.rawValue, 0x1fff)
        XCTAssertEqual(stack.frames[2].lookupAddress.rawValue, 0x1000)
        XCTAssertFalse(stack.truncated)
    }

    func testKernelOnlyForDwarfMode() {
        var s = SampleRecord()
        s.callchain = [kernel, 0xffff_0010, user, 0x1000]
        let stack = Callchain.frames(of: s, userFrames: false)
        XCTAssertEqual(stack.frames.map(\.address.rawValue), [0xffff_0010])
    }

    func testChainAtTheKernelCapIsTruncated() {
        var s = SampleRecord()
        s.callchain = [user] + (0..<126).map { UInt64(0x1000 + $0) }
        XCTAssertTrue(Callchain.frames(of: s, maxStack: 127).truncated)
        s.callchain.removeLast()
        XCTAssertFalse(Callchain.frames(of: s, maxStack: 127).truncated)
    }

    func testNoCallchainUsesTheSampledIP() {
        var s = SampleRecord()
        s.ip = 0x4242
        s.cpuMode = .user
        let stack = Callchain.frames(of: s)
        XCTAssertEqual(stack.frames, [StackFrame(address: ProcessAddress(0x4242), isReturnAddress: false, isKernel: false)])
    }
}

final class ProcessTableTests: XCTestCase {
    private func mmap(_ pid: Int32, _ start: UInt64, _ len: UInt64, _ path: String) -> PerfRecord {
        .mmap(MmapRecord(pid: pid, tid: pid, start: start, length: len, pageOffset: 0, path: path, buildID: [], protection: 5, time: 0))
    }

    func testMappingsAreFoundAndReplaced() {
        let t = ProcessTable()
        t.readProcForUnknown = false
        t.apply(.comm(CommRecord(pid: 10, tid: 10, name: "app", isExec: true, time: 0)))
        t.apply(mmap(10, 0x1000, 0x1000, "/bin/a"))
        t.apply(mmap(10, 0x4000, 0x2000, "/lib/b.so"))
        var p = t.process(10, tid: 10)
        XCTAssertEqual(p.name, "app")
        XCTAssertEqual(p.mapping(containing: ProcessAddress(0x1800))?.path, "/bin/a")
        XCTAssertEqual(p.mapping(containing: ProcessAddress(0x5fff))?.path, "/lib/b.so")
        XCTAssertNil(p.mapping(containing: ProcessAddress(0x3000)))
        // A new mapping over the middle of b.so splits it.
        t.apply(mmap(10, 0x4800, 0x800, "/lib/c.so"))
        p = t.process(10, tid: 10)
        XCTAssertEqual(p.mapping(containing: ProcessAddress(0x4900))?.path, "/lib/c.so")
        XCTAssertEqual(p.mapping(containing: ProcessAddress(0x4100))?.path, "/lib/b.so")
        XCTAssertEqual(p.mapping(containing: ProcessAddress(0x5100))?.fileOffset, 0x1000)
    }

    /// Processes that only an MMAP record named (already running under -a) still count their
    /// main thread: a summary never says "126 processes, 63 threads" (issue 20).
    func testEveryProcessCountsItsMainThread() {
        let t = ProcessTable()
        t.readProcForUnknown = false
        t.apply(mmap(10, 0x1000, 0x1000, "/bin/a"))
        t.apply(mmap(20, 0x1000, 0x1000, "/bin/b"))
        t.apply(.comm(CommRecord(pid: 30, tid: 31, name: "worker", isExec: false, time: 0)))
        _ = t.process(30, tid: 30)
        _ = t.process(40, tid: 41)
        XCTAssertEqual(t.processCount, 4)
        XCTAssertEqual(t.threadCount, 6, "10, 20, 30, 31, 40 and 41")
    }

    func testForkCopiesAndExecClears() {
        let t = ProcessTable()
        t.readProcForUnknown = false
        t.apply(.comm(CommRecord(pid: 10, tid: 10, name: "sh", isExec: true, time: 0)))
        t.apply(mmap(10, 0x1000, 0x1000, "/bin/sh"))
        t.apply(.fork(TaskRecord(pid: 11, parentPID: 10, tid: 11, parentTID: 10, time: 1)))
        XCTAssertEqual(t.process(11, tid: 11).mapping(containing: ProcessAddress(0x1000))?.path, "/bin/sh")
        let before = t.process(11, tid: 11).generation
        t.apply(.comm(CommRecord(pid: 11, tid: 11, name: "child", isExec: true, time: 2)))
        let after = t.process(11, tid: 11)
        XCTAssertNil(after.mapping(containing: ProcessAddress(0x1000)))
        XCTAssertEqual(after.name, "child")
        XCTAssertNotEqual(after.generation, before)
        // A thread (pid == ppid) does not create a process.
        t.apply(.fork(TaskRecord(pid: 10, parentPID: 10, tid: 12, parentTID: 10, time: 3)))
        XCTAssertEqual(t.processCount, 2)
        XCTAssertEqual(t.threadCount, 3)
    }
}
