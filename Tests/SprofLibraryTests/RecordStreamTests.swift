import XCTest
@testable import Sprof
import SprofSymbols
import SprofTestSupport

/// Synthetic record streams, laid out byte by byte as the kernel writes them, parsed and fed to the
/// profile builder: what the statistics and the folded stacks must say about losses, throttling and
/// truncation, without a kernel (so these run everywhere and fail on any machine when the counting
/// breaks).
final class RecordStreamTests: XCTestCase {
    private let layout = SampleLayout.sampling(.framePointer)
    private let perfContextUser = UInt64(bitPattern: -512)

    private func records(_ chunks: [[UInt8]]) throws -> [PerfRecord] {
        let parser = RecordParser(layout: layout)
        return try chunks.map { bytes in try bytes.withUnsafeBytes { try parser.parse($0) } }
    }

    private func sample(time: UInt64, callchain: [UInt64]) -> SampleRecord {
        var s = SampleRecord()
        s.ip = callchain.first ?? 0
        s.pid = 4242
        s.tid = 4242
        s.time = time
        s.period = 1_001_001
        s.callchain = [perfContextUser] + callchain
        s.cpuMode = .user
        return s
    }

    /// A builder that takes callchains as the kernel recorded them (`.none`: no unwinding and no
    /// root check against a live process, which these synthetic pids are not).
    private func builder() -> ProfileBuilder {
        ProfileBuilder(symbolizer: Symbolizer(), callGraph: .none, maxStack: 127)
    }

    func testLostAndThrottleRecordsAreCountedOnce() throws {
        let b = RecordBuilder(layout: layout)
        let stream = try records([
            b.comm(pid: 4242, tid: 4242, name: "synthetic", exec: true, time: 1),
            b.sample(sample(time: 2, callchain: [0x1000, 0x2000])),
            b.lost(count: 17, time: 3),
            b.throttle(true, time: 4),
            b.throttle(false, time: 5),
            b.sample(sample(time: 6, callchain: [0x1000, 0x2000])),
            b.lost(count: 5, time: 7),
            b.throttle(true, time: 8),
        ])
        let profile = builder()
        profile.consume(stream)
        let stats = profile.finish()
        XCTAssertEqual(stats.lostRecords, 22, "PERF_RECORD_LOST counts are summed")
        XCTAssertEqual(stats.lost, 22)
        XCTAssertEqual(stats.throttles, 2, "THROTTLE counts, UNTHROTTLE does not")
        XCTAssertEqual(stats.samples, 2)
        XCTAssertEqual(stats.truncated, 0)
        XCTAssertEqual(profile.profile(metadata: ProfileMetadata()).folded.total, 2)
    }

    func testLostSamplesRecordIsCounted() throws {
        let profile = builder()
        profile.consume([.lostSamples(count: 9, time: 1), .lost(count: 1, time: 2)])
        let stats = profile.finish()
        XCTAssertEqual(stats.lostSamples, 9)
        XCTAssertEqual(stats.lostRecords, 1)
        XCTAssertEqual(stats.lost, 10)
        XCTAssertEqual(stats.samples, 0)
    }

    func testCallchainCutAtTheKernelLimitGetsATruncatedRoot() throws {
        let b = RecordBuilder(layout: layout)
        // 126 user frames + the context marker = 127 entries: the kernel stopped at its limit.
        let deep = (0..<126).map { 0x10_0000 + UInt64($0) * 16 }
        let stream = try records([
            b.comm(pid: 4242, tid: 4242, name: "synthetic", exec: true, time: 1),
            b.sample(sample(time: 2, callchain: deep)),
            b.sample(sample(time: 3, callchain: [0x1000, 0x2000])),
        ])
        let profile = builder()
        profile.consume(stream)
        let stats = profile.finish()
        XCTAssertEqual(stats.truncated, 1, "only the stack cut at the limit is truncated")
        let stacks = profile.profile(metadata: ProfileMetadata()).folded.stacks()
        let marked = stacks.filter { (stack: (frames: [String], count: UInt64)) in stack.frames.contains("[truncated]") }
        XCTAssertEqual(marked.count, 1, "\(stacks.map { $0.frames })")
        XCTAssertEqual(marked.first?.frames.dropFirst().first, "[truncated]", "the mark is the root, right under the process")
        XCTAssertEqual(stacks.reduce(0) { $0 + $1.count }, 2)
    }
}
