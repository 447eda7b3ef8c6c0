import Foundation
import XCTest
import SprofTestSupport
import SprofCore
@testable import SprofSymbols

/// Inline chains must be complete: every level of inlining at an address, out to the function,
/// whether or not the binary has `.debug_aranges` (LLVM-based compilers such as swiftc omit it).
final class InlineChainTests: XCTestCase {
    /// `top` calls `mid`, which calls `leaf`; both helpers are forced inline.
    static let nestedSource = """
    #include <stdio.h>

    static inline __attribute__((always_inline)) double leaf(double *v, int n) {
        double acc = 1.0;
        for (int i = 0; i < n; i++) acc = acc * v[i] + v[(i * 7) % n] / (acc + 1.0);
        return acc;
    }

    static inline __attribute__((always_inline)) double mid(double *v, int n) {
        double r = leaf(v, n);
        return r * 3.0 + v[n / 2];
    }

    __attribute__((noinline)) double top(double *v, int n) {
        double r = mid(v, n);
        return r - 1.0;
    }

    int main(int argc, char **argv) {
        double v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        printf("%f\\n", top(v, argc + 7));
        return 0;
    }
    """

    /// Every address of `function` in `exe`, symbolized.
    private func frames(of function: String, in exe: String, bench: Workbench,
                        options: SymbolizerOptions = .init()) throws -> [[SymbolizedFrame]] {
        let sym = try XCTUnwrap(try bench.symbols(exe)[function], "no symbol \(function)")
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer(options: options)
        return (0..<sym.size).map { symbolizer.symbolize(ProcessAddress(base + sym.address + $0), in: mapping, pid: 1) }
    }

    private func checkNestedChain(_ exe: String, bench: Workbench, file: StaticString = #filePath, line: UInt = #line) throws {
        let midCall = lineNumber(of: "double r = leaf(v, n);", in: Self.nestedSource)
        let topCall = lineNumber(of: "double r = mid(v, n);", in: Self.nestedSource)
        var deepest = 0
        for frames in try frames(of: "top", in: exe, bench: bench) {
            XCTAssertEqual(frames.last?.name, "top", file: file, line: line)
            XCTAssertEqual(frames.last?.kind, .user, file: file, line: line)
            let names = frames.map(\.name)
            // leaf is only ever reached through mid: an inline chain never skips a level.
            if let i = names.firstIndex(of: "leaf") {
                XCTAssertEqual(names[(i + 1)...].first, "mid", "chain \(names)", file: file, line: line)
            }
            if names == ["leaf", "mid", "top"] {
                deepest = 3
                XCTAssertEqual(frames[0].kind, .inlined, file: file, line: line)
                XCTAssertEqual(frames[1].kind, .inlined, file: file, line: line)
                XCTAssertEqual(frames[1].line, midCall, "mid's line is where it inlined leaf", file: file, line: line)
                XCTAssertEqual(frames[2].line, topCall, "top's line is where it inlined mid", file: file, line: line)
            }
        }
        XCTAssertEqual(deepest, 3, "no address in top() mapped to leaf inlined in mid inlined in top", file: file, line: line)
    }

    /// libdw's `dwarf_getscopes` follows the innermost inlined call's abstract definition, not
    /// its callers, so only the innermost of two nested inlined calls used to be reported.
    func testNestedInlinedCallsAreAllReported() throws {
        let bench = try Workbench()
        let exe = try bench.compile("nested", source: Self.nestedSource, flags: ["-O2", "-g", "-fPIE", "-pie"])
        try checkNestedChain(exe, bench: bench)
    }

    /// Without `.debug_aranges`, libdwfl (elfutils 0.188 here) finds no compile unit at all.
    func testInlineFramesWithoutDebugAranges() throws {
        let bench = try Workbench()
        let exe = try bench.compile("aranged", source: Self.nestedSource, flags: ["-O2", "-g", "-fPIE", "-pie"])
        let bare = bench.path("noaranges")
        try bench.run("objcopy", ["--remove-section=.debug_aranges", exe, bare])
        XCTAssertFalse(try bench.run("readelf", ["-S", "-W", bare]).contains(".debug_aranges"))
        try checkNestedChain(bare, bench: bench)
        // Source lines come through the same compile-unit lookup.
        let plain = try frames(of: "top", in: bare, bench: bench)
        XCTAssertTrue(plain.contains { $0.last?.line != nil }, "no source line for any address in top()")
        // --no-inline still gives exactly one frame per address.
        for frames in try frames(of: "top", in: bare, bench: bench, options: .init(inlineFrames: false)) {
            XCTAssertEqual(frames.map(\.name), ["top"])
        }
    }

    /// The qsl-bench shape: a closure inlined into the function that defines it, through an
    /// inlined `withUnsafeBufferPointer`, in a swiftc binary (no `.debug_aranges`).
    func testSwiftClosureInlinedIntoItsDefiningFunction() throws {
        let bench = try Workbench()
        let exe: String
        do {
            exe = try bench.compile("swiftinl", source: """
            @inline(never) func consume(_ b: UInt8) -> Int { Int(b) &* 31 &+ 7 }
            @inline(never) func replay(_ bytes: [UInt8]) -> Int {
                bytes.withUnsafeBufferPointer { buffer in
                    var sum = 0
                    for b in buffer { sum &+= consume(b) }
                    return sum
                }
            }
            print(replay(Array(repeating: UInt8(CommandLine.arguments.count), count: 1000)))
            """, flags: ["-O", "-g", "-module-name", "demo"], compiler: "swiftc", ext: "swift")
        } catch {
            // Only a missing compiler is a reason to skip; a compile failure is a failure.
            guard TestFixtures.findExecutable("swiftc") != nil else { throw XCTSkip("swiftc not installed") }
            throw error
        }
        guard let name = try bench.symbols(exe).keys.first(where: { $0.hasPrefix("$s4demo6replay") }) else {
            return XCTFail("no replay symbol")
        }
        var found = false
        for frames in try frames(of: name, in: exe, bench: bench) {
            XCTAssertTrue(frames.last?.name.hasPrefix(Demangler.hasSimplifiedSwiftNames ? "replay(" : "demo.replay(") ?? false, "\(frames.map(\.name))")
            guard let closure = frames.firstIndex(where: { $0.name.hasPrefix("closure #1") }) else { continue }
            found = true
            XCTAssertEqual(frames[closure].kind, .inlined)
            XCTAssertTrue(frames[closure + 1].name.contains("withUnsafeBufferPointer"), "\(frames.map(\.name))")
            XCTAssertEqual(frames[closure + 1].kind, .inlined)
        }
        XCTAssertTrue(found, "no address in replay() mapped to the inlined closure")
    }
}
