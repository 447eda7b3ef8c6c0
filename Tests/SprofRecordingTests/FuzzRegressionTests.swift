import XCTest
@testable import SprofRecording
import SprofTestSupport

/// Inputs fuzz/FuzzRecords found that crashed the record parser (fuzz/README.md): each must now be
/// a RecordParseError, never a trap. Corrupt records reach the parser when a ring buffer is
/// misread, so a length field can hold anything.
final class FuzzRegressionTests: XCTestCase {
    private func parse(_ bytes: [UInt8], layout: SampleLayout) -> Result<PerfRecord, RecordParseError> {
        bytes.withUnsafeBytes { raw in Result { () throws(RecordParseError) in try RecordParser(layout: layout).parse(raw) } }
    }

    /// Overwrites the u64 at `offset` (from the record's start) with `value`.
    private func patch(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    func testCallchainCountPastIntMaxIsAnError() {
        // fuzz/artifacts FuzzRecords-crash-d742b3ec…: nr = 0xFFFF… trapped in Int(UInt64).
        let layout = SampleLayout.sampling(.framePointer)
        var s = SampleRecord()
        s.callchain = [0x401000]
        var bytes = RecordBuilder(layout: layout).sample(s)
        // header 8, ip 8, pid/tid 8, time 8, cpu 8, period 8: nr sits at 48.
        for value: UInt64 in [.max, 1 << 63, UInt64(Int.max)] {
            patch(&bytes, at: 48, value)
            guard case .failure = parse(bytes, layout: layout) else { return XCTFail("nr \(value) parsed") }
        }
    }

    func testUserStackSizesPastTheRecordAreErrors() {
        let layout = SampleLayout.sampling(.dwarf(stackSize: 64))
        var s = SampleRecord()
        s.callchain = [0x401000]
        s.userRegisters = (0..<UserRegisters.sampled.count).map { UInt64($0) }
        s.userStack = Array(repeating: 7, count: 16)
        let good = RecordBuilder(layout: layout).sample(s)
        guard case .success = parse(good, layout: layout) else { return XCTFail("the unpatched record must parse") }
        let sizeOffset = 48 + 8 * 2 + 8 + 8 * UserRegisters.sampled.count
        for value: UInt64 in [.max, 1 << 63, UInt64(Int.max), UInt64(Int.max) - 100] {
            var bytes = good
            patch(&bytes, at: sizeOffset, value)
            guard case .failure = parse(bytes, layout: layout) else { return XCTFail("stack size \(value) parsed") }
            bytes = good
            patch(&bytes, at: bytes.count - 8, value) // dyn_size
            guard case .failure = parse(bytes, layout: layout) else { return XCTFail("dyn_size \(value) parsed") }
        }
    }
}
