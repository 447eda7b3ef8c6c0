#if canImport(Glibc)
import Glibc
#endif
@testable import SprofRecording

/// One libFuzzer input: byte 0 picks the sample layout (none / fp / dwarf, with or without the
/// sample_id trailer), bytes 1-4 the tail and head positions, the rest fills one page of ring data.
/// Each drained record goes through the parser: errors are expected, crashes and hangs are not.
func fuzzRecords(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 5 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let layouts: [SamplingOptions.CallGraph] = [.none, .framePointer, .dwarf(stackSize: 8192)]
    var layout = SampleLayout.sampling(layouts[Int(input[0] & 3) % 3])
    layout.sampleIDAll = input[0] & 4 != 0
    if input[0] & 8 != 0 { layout.sampleType |= SampleBits.identifier | SampleBits.addr | SampleBits.raw }
    let page = 4096
    var ring = [UInt8](repeating: 0, count: page)
    let body = input[5...]
    for (i, b) in body.prefix(page).enumerated() { ring[i] = b }
    let tail = UInt64(UInt16(input[1]) | UInt16(input[2]) << 8)
    let head = tail + UInt64(UInt16(input[3]) | UInt16(input[4]) << 8) % UInt64(page + 1)
    var buffer = RingBuffer(syntheticData: ring, tail: tail, head: head)
    let parser = RecordParser(layout: layout)
    buffer.drain { record in _ = try? parser.parse(record) }
    // The parser on the input as one contiguous record, too: sizes the ring would have rejected.
    _ = try? parser.parse(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[5...]))
    // And as the consumer reads the reader's output: records one after another, sprof's own
    // live-stack pieces and references to blocks among them, the blocks carried across chunks.
    var records: [PerfRecord] = []
    var blocks = LiveStackBlocks()
    let stream = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[5...])
    parser.parseAll(stream, into: &records, blocks: &blocks)
    parser.parseAll(stream, into: &records, blocks: &blocks)
    return 0
}

// SwiftPM links an executable's entry point as `main`, so libFuzzer's own main is not pulled in:
// this top-level code hands libFuzzer the command line and the harness instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    // libFuzzer passes a null pointer for the empty input.
    guard let data else { var empty: UInt8 = 0; return fuzzRecords(&empty, 0) }
    return fuzzRecords(data, size)
})
