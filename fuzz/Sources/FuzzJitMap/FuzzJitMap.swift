@testable import SprofSymbols

/// One libFuzzer input: any bytes as a /tmp/perf-PID.map file. Lines that do not parse are skipped;
/// the symbol table built from the rest is looked up at each parsed start, end and a few fixed points.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJitMap(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
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
