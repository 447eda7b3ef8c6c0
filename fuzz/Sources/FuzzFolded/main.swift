#if canImport(Glibc)
import Glibc
#endif
import SprofOutput

/// One libFuzzer input: any bytes as a folded-stacks file. Parse errors are expected; crashes,
/// hangs and unbounded memory are not. What parses must serialize, re-parse to the same stacks,
/// and render to an SVG that is valid UTF-8 (the XML must be well formed whatever the bytes).
func fuzzFolded(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let stacks = try? FoldedStacks.parse(bytes: bytes, source: "fuzz") else { return 0 }
    let text = stacks.serializedBytes()
    guard let again = try? FoldedStacks.parse(bytes: text, source: "again") else {
        fatalError("serialized folded stacks do not parse again")
    }
    if again.serializedBytes() != text { fatalError("parse → serialize is not stable") }
    // Rendering costs ~50x the parse: render one input in 8 (chosen by length, so the choice is a
    // function of the input, as libFuzzer needs), and only small ones, where escaping cases are dense.
    if size < 200 && size % 8 == 0 {
        var options = FlameGraphOptions()
        options.title = String(decoding: bytes.prefix(40), as: UTF8.self)
        let svg = FlameGraph.renderBytes(stacks, options: options)
        if String(validating: svg, as: UTF8.self) == nil { fatalError("SVG is not valid UTF-8") }
        for b in svg where b < 0x20 && b != 0x0A && b != 0x09 && b != 0x0D { fatalError("control byte \(b) in SVG") }
    }
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
    guard let data else { var empty: UInt8 = 0; return fuzzFolded(&empty, 0) }
    return fuzzFolded(data, size)
})
