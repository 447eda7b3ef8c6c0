import Foundation
import XCTest
@testable import SprofRecording
import SprofTestSupport

/// The reader's records wait for a consumer that may be far slower (unwinding at SCHED_IDLE on a
/// busy machine): they must stay within the memory budget, spill to a temporary file beyond it,
/// and all arrive, in order.
final class PendingRecordsTests: XCTestCase {
    let layout = SampleLayout.sampling(.dwarf(stackSize: 8192))

    /// A DWARF sample numbered `n` (its time), with `copied` of its 8 KiB stack copy filled.
    func sample(_ n: Int, copied: Int = 2000) -> (record: SampleRecord, bytes: [UInt8]) {
        var s = SampleRecord()
        s.ip = 0x401000; s.pid = 7; s.tid = 7; s.time = UInt64(n); s.period = 1; s.cpuMode = .user
        s.callchain = [UInt64(bitPattern: -512), 0x401000]
        s.userRegisters = (0..<UserRegisters.sampled.count).map { UInt64($0) }
        s.userRegistersABI = 2 // PERF_SAMPLE_REGS_ABI_64, as the kernel writes for a 64-bit task
        s.userStack = (0..<copied).map { UInt8(truncatingIfNeeded: $0 &+ n) }
        return (s, RecordBuilder(layout: layout).sample(s, stackCapacity: 8192))
    }

    /// The reader side as readLoop drives it, against a consumer that sleeps on every batch.
    /// `liveStack(n)`: the live-stack bytes the reader adds after sample n (nil: none).
    /// `liveRecords(n)`, when given, are the live-stack records the reader adds after sample n
    /// instead (references to blocks sent before), `liveStack(n)` what the consumer must get.
    func run(records: Int, budget: Int, directory: String? = nil, liveStack: ((Int) -> [UInt8]?)? = nil,
             liveRecords: ((Int) -> [UInt8])? = nil)
        -> (delivered: [UInt64], lost: UInt64, work: PendingRecords, mailbox: Mailbox) {
        let mailbox = Mailbox()
        let work = PendingRecords(budget: budget, directory: directory)
        let parser = RecordParser(layout: layout)
        final class Received: @unchecked Sendable { var times: [UInt64] = []; var lost: UInt64 = 0; var wrongLive: [UInt64] = [] }
        let received = Received()  // written by the consumer thread, read after it is done
        let consumerDone = DispatchSemaphore(value: 0)
        let consumer = Thread {
            var blocks = LiveStackBlocks()
            while true {
                let (chunks, bytes, l, done) = mailbox.take(limit: work.chunkBytes)
                for r in RecordingSession.parse(chunks, parser: parser, blocks: &blocks) {
                    if case .sample(let s) = r {
                        received.times.append(s.time)
                        if Array(s.liveStack) != (liveStack?(Int(s.time)) ?? []) { received.wrongLive.append(s.time) }
                    }
                }
                received.lost += l
                usleep(20_000)  // slow: unwinding at idle priority
                mailbox.release(bytes)
                if done { break }
            }
            consumerDone.signal()
        }
        consumer.start()
        for n in 0..<records {
            let (s, bytes) = sample(n)
            let (parsed, stack) = bytes.withUnsafeBytes { try! parser.parse($0, copyingStack: false) }
            XCTAssertEqual(parsed.time, s.time)
            var raw = bytes.withUnsafeBytes { RecordParser.compacted($0, stack: stack) }
            if let liveRecords {
                raw += liveRecords(n)
            } else if let live = liveStack?(n) {
                raw += RecordParser.liveStackRecords(live)
            }
            work.append(raw, window: 0)
            if n % 16 == 15 { work.handOver(to: mailbox, statistics: .init(), finishing: false) }
        }
        work.handOver(to: mailbox, statistics: .init(), finishing: true)
        consumerDone.wait()
        XCTAssertEqual(received.wrongLive, [], "samples whose live stack did not come through whole")
        return (received.times, received.lost, work, mailbox)
    }

    func testSlowConsumerKeepsPendingBytesWithinTheBudgetAndGetsEveryRecordInOrder() {
        // 3,000 records of ~2.2 KiB (compacted from 8 KiB copies): ~6.6 MiB against 256 KiB.
        let budget = 256 << 10
        let (delivered, lost, work, mailbox) = run(records: 3000, budget: budget)
        XCTAssertEqual(delivered, (0..<3000).map { UInt64($0) }, "every record, in order")
        XCTAssertEqual(lost, 0)
        XCTAssertEqual(work.dropped, 0)
        XCTAssertGreaterThan(work.spilledBytes, 1 << 20, "the consumer fell behind: records went to the file")
        XCTAssertLessThanOrEqual(work.peakBytes, budget)
        XCTAssertLessThanOrEqual(mailbox.peakBytes, budget)
    }

    /// A sample's live stack (up to 512 KiB, in pieces of its own record type after it) stays
    /// with it through the budget, the temporary file and the chunks read back, which are cut
    /// between records: never between a sample and its pieces (issue 20).
    func testLiveStackPiecesStayWithTheirSampleThroughTheTemporaryFile() {
        let budget = 256 << 10
        let live: (Int) -> [UInt8]? = { n in
            n % 3 == 0 ? (0..<(8 * (1 + n * 331 % 65_536))).map { UInt8(truncatingIfNeeded: $0 * 7 &+ n) } : nil
        }
        let (delivered, lost, work, _) = run(records: 600, budget: budget, liveStack: live)
        XCTAssertEqual(delivered, (0..<600).map { UInt64($0) }, "every record, in order")
        XCTAssertEqual(lost, 0)
        XCTAssertGreaterThan(work.spilledBytes, 8 << 20, "the pieces went through the file")
    }

    /// A thread's samples with the same callers share one live-stack block: it goes through once,
    /// whole, and later samples refer to it by serial and offset, across chunks and through the
    /// temporary file (the reader copied and spilled ~140 KiB per sample before: 967 samples lost
    /// and 255 stacks cut in CI on 2026-12-06).
    func testLiveStackBlocksSentOnceAreReferredToAcrossChunksAndTheFile() {
        let budget = 256 << 10
        // A new 96 KiB block every 100 samples; each sample starts at its own 8-byte offset in it.
        func block(_ k: Int) -> [UInt8] { (0..<(96 << 10)).map { UInt8(truncatingIfNeeded: $0 / 8 &+ k * 13) } }
        let blocks = (0..<6).map(block)
        func offset(_ n: Int) -> Int { 8 * (n % 50) }
        let live: (Int) -> [UInt8]? = { n in Array(blocks[n / 100][offset(n)...]) }
        let liveRecords: (Int) -> [UInt8] = { n in
            var out: [UInt8] = []
            RecordParser.appendLiveStackRef(serial: UInt64(n / 100 + 1), offset: offset(n), to: &out)
            if n % 100 == 0 { blocks[n / 100].withUnsafeBytes { RecordParser.appendLiveStackRecords($0, to: &out) } }
            return out
        }
        let (delivered, lost, work, _) = run(records: 600, budget: budget, liveStack: live, liveRecords: liveRecords)
        XCTAssertEqual(delivered, (0..<600).map { UInt64($0) }, "every record, in order")
        XCTAssertEqual(lost, 0)
        XCTAssertGreaterThan(work.spilledBytes, 1 << 20, "the consumer fell behind: records went to the file")
        XCTAssertLessThan(work.spilledBytes, 3 << 20, "each block went through once, not once per sample (600 x ~96 KiB)")
    }

    /// A reference to a block the consumer does not have (its records lost, or another thread's)
    /// gives no live stack, never wrong bytes; an EXIT forgets the thread's block.
    func testAReferenceToAMissingBlockGivesNoLiveStack() {
        let parser = RecordParser(layout: layout)
        let blockBytes = [UInt8](repeating: 0xAB, count: 4096)
        func with(_ n: Int, serial: UInt64, whole: Bool) -> [UInt8] {
            let (_, bytes) = sample(n)
            let (_, stack) = bytes.withUnsafeBytes { try! parser.parse($0, copyingStack: false) }
            var raw = bytes.withUnsafeBytes { RecordParser.compacted($0, stack: stack) }
            RecordParser.appendLiveStackRef(serial: serial, offset: 64, to: &raw)
            if whole { blockBytes.withUnsafeBytes { RecordParser.appendLiveStackRecords($0, to: &raw) } }
            return raw
        }
        var exit: [UInt8] = []
        withUnsafeBytes(of: RecordParser.typeExit.littleEndian) { exit.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(0)) { exit.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(8 + 24).littleEndian) { exit.append(contentsOf: $0) }
        for v: UInt32 in [7, 1, 7, 1] { withUnsafeBytes(of: v.littleEndian) { exit.append(contentsOf: $0) } }
        exit += [UInt8](repeating: 0, count: 8)
        var blocks = LiveStackBlocks()
        let first = RecordingSession.parse([with(0, serial: 5, whole: true), with(1, serial: 5, whole: false)], parser: parser, blocks: &blocks)
        let second = RecordingSession.parse([with(2, serial: 6, whole: false), with(3, serial: 5, whole: false), exit, with(4, serial: 5, whole: false)],
                                            parser: parser, blocks: &blocks)
        let lives = (first + second).compactMap { r -> Int? in
            if case .sample(let s) = r { return s.liveStack.count } else { return nil }
        }
        XCTAssertEqual(lives, [4096 - 64, 4096 - 64, 0, 4096 - 64, 0])
        XCTAssertEqual(blocks.missing, 2)
    }

    func testRecordsThatFitNeitherMemoryNorDiskAreCountedAsLost() {
        let (delivered, lost, work, _) = run(records: 500, budget: 64 << 10, directory: "/nonexistent/sprof-test")
        XCTAssertNotNil(work.spillError)
        XCTAssertGreaterThan(work.dropped, 0)
        XCTAssertEqual(UInt64(delivered.count) + lost, 500, "every record delivered or counted as lost")
        XCTAssertEqual(lost, work.dropped)
        XCTAssertEqual(delivered, delivered.sorted())
    }

    func testCompactedSampleParsesToTheSameRecord() throws {
        let parser = RecordParser(layout: layout)
        for copied in [0, 1, 7, 8, 100, 8191, 8192] {
            let (s, bytes) = sample(3, copied: copied)
            let compact = try bytes.withUnsafeBytes { raw in
                let (_, stack) = try parser.parse(raw, copyingStack: false)
                return RecordParser.compacted(raw, stack: stack)
            }
            XCTAssertEqual(compact.count % 8, 0)
            XCTAssertLessThanOrEqual(compact.count, bytes.count - (8192 - ((copied + 7) & ~7)), "copied \(copied)")
            XCTAssertEqual(try compact.withUnsafeBytes { try parser.parse($0) }, .sample(s), "copied \(copied)")
        }
    }

    /// The spill file is made with O_TMPFILE where the file system has it (tmpfs and ext4 do), so
    /// it never has a name another process could open; the kernel names such a file `#INODE` in
    /// /proc, where mkstemp's would read `sprof-spill-…`. Close-on-exec either way.
    func testSpillFileIsAnonymousAndCloseOnExec() throws {
        let directory = NSTemporaryDirectory() + "anonymous-check-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try SpillFile(directory: directory)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
        XCTAssertNotEqual(fcntl(file.fd, F_GETFD) & FD_CLOEXEC, 0)
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(file.fd)")
        // ext4, tmpfs, xfs and btrfs all have O_TMPFILE (Linux 3.11+): there, a mkstemp file means
        // the flag was wrong. Elsewhere the fallback is expected.
        let fsType = try TestFixtures.run("/usr/bin/stat", ["-f", "-c", "%t", directory]).stdout
        let hasTmpfile: Set<Int> = [0xEF53, 0x0102_1994, 0x5846_5342, 0x9123_683E]
        if link.contains("sprof-spill-"), !hasTmpfile.contains(Int(fsType.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16) ?? 0) {
            throw XCTSkip("\(directory)'s file system refused O_TMPFILE; the mkstemp fallback was used (\(link))")
        }
        XCTAssertTrue(link.hasPrefix(directory + "/#"), link)
    }

    /// Wait statuses as Linux encodes them (the layout glibc's W* macros read).
    func testWaitStatusDecoding() {
        XCTAssertEqual(ExitStatus(waitStatus: 0), .exited(0))
        XCTAssertEqual(ExitStatus(waitStatus: 3 << 8), .exited(3))
        XCTAssertEqual(ExitStatus(waitStatus: 255 << 8), .exited(255))
        XCTAssertEqual(ExitStatus(waitStatus: 9), .signaled(9))
        XCTAssertEqual(ExitStatus(waitStatus: 0x80 | 11), .signaled(11))  // SIGSEGV with a core dump
        XCTAssertEqual(ExitStatus(waitStatus: 15), .signaled(15))
    }
}

extension PendingRecordsTests {
    /// A chunk is allocated once, with room for chunkBytes: started as the first record's array,
    /// it grew by doubling, copying its bytes again at each step (a fifth of sprof's CPU on
    /// bench/heap/run's malloc loop). Records still arrive whole and in order (the tests above).
    func testChunksAreAllocatedOnceAtTheirFullSize() {
        let work = PendingRecords(budget: 64 << 20)
        XCTAssertEqual(work.openChunkCapacity, 0)
        work.append(sample(1).bytes, window: 0)
        XCTAssertGreaterThanOrEqual(work.openChunkCapacity, work.chunkBytes)
        let capacity = work.openChunkCapacity
        for n in 2...100 { work.append(sample(n).bytes, window: 0) }
        XCTAssertEqual(work.openChunkCapacity, capacity, "no reallocation while the chunk fills")
    }
}
