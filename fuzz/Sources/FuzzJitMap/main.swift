#if canImport(Glibc)
import Glibc
#endif
@testable import SprofSymbols

/// One libFuzzer input: any bytes as a /tmp/perf-PID.map file. Lines that do not parse are skipped;
/// the symbol table built from the rest is looked up at each parsed start, end and a few fixed points.
func fuzzJitMap(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let candidates = JitMap.parse(bytes)
    let table = SymbolTable(candidates)
    for c in candidates.prefix(64) {
        for address in [c.start, c.start &+ c.size, c.start &+ c.size / 2, c.start &- 1] {
            if let i = table.lookup(address) { _ = table.names[i] }
        }
    }
    for address: UInt64 in [0, 1, 0x1000, .max, .max - 1] { _ = table.lookup(address) }
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
    guard let data else { var empty: UInt8 = 0; return fuzzJitMap(&empty, 0) }
    return fuzzJitMap(data, size)
})
