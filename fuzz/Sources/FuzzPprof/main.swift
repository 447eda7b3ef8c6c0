#if canImport(Glibc)
import Glibc
#endif
import SprofFormats
import SprofOutput
import SprofProfile

/// One libFuzzer input: any bytes as a pprof file (gzip-compressed or plain profile.proto, from
/// sprof or any other tool). Decoding errors are expected; crashes, hangs and unbounded memory (a
/// gzip bomb) are not. What decodes must give a folded view and encode again.
func fuzzPprof(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let profile = try? PprofFormat.decode(bytes) else { return 0 }
    _ = profile.folded(perThread: true).serializedBytes()
    _ = profile.folded(valueIndex: 0, names: profile.functionNames(.full)).total
    _ = try? PprofFormat.encodeUncompressed(profile)
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
    guard let data else { var empty: UInt8 = 0; return fuzzPprof(&empty, 0) }
    return fuzzPprof(data, size)
})
