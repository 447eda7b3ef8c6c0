#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import SprofCore
@testable import SprofSymbols

/// Code that stripped files leave without a symbol but that sprof still names: the program's entry
/// point and the signal trampoline.
final class WellKnownCodeTests: XCTestCase {
    /// Debian's executables are stripped: `_start` is in no symbol table, yet it is the root of
    /// every main-thread stack and must read `_start`, not `[sqlite3+0xa780]`.
    func testStrippedExecutableEntryIsStart() throws {
        let bench = try Workbench()
        let exe = try bench.compile("entry", source: "int main(void) { return 0; }", flags: ["-O2", "-fPIE", "-pie"])
        let start = try XCTUnwrap(try bench.symbols(exe)["_start"])
        try bench.run("strip", ["-s", exe])
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        // The return address after `call __libc_start_main` lies inside _start.
        let frames = Symbolizer(options: .init(debugDirectories: [])).symbolize(ProcessAddress(base + start.address + start.size - 2), in: mapping, pid: 1)
        XCTAssertEqual(frames.map(\.name), ["_start"])
    }

    /// A library's `e_entry` is not `_start` (libc's prints its version): no name from it.
    func testLibraryEntryIsNotStart() throws {
        let bench = try Workbench()
        let lib = try bench.compile("libx.so", source: "int twice(int x) { return 2 * x; } int thrice(int x) { return 3 * x; }",
                                    flags: ["-O2", "-fPIC", "-shared"])
        try bench.run("strip", ["-s", lib])
        let base: UInt64 = 0x7f00_0000_0000
        let mapping = try bench.textMapping(lib, base: base)
        let symbolizer = Symbolizer(options: .init(debugDirectories: []))
        for offset in stride(from: UInt64(0), to: mapping.end.rawValue - mapping.start.rawValue, by: 16) {
            let name = symbolizer.symbolize(ProcessAddress(mapping.start.rawValue + offset), in: mapping, pid: 1)[0].name
            XCTAssertNotEqual(name, "_start")
        }
    }

    /// glibc's `__restore_rt` is a local symbol, gone from the stripped libc.so.6 (only
    /// libc6-dbg has it): it is recognized by its code. Its address is what sigaction reports as
    /// the restorer of an installed handler.
    func testSignalTrampolineIsNamedWithoutDebugSymbols() throws {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        var old = sigaction()
        XCTAssertEqual(sigaction(SIGUSR2, &action, &old), 0)
        defer { _ = sigaction(SIGUSR2, &old, nil) }
        var current = sigaction()
        XCTAssertEqual(sigaction(SIGUSR2, nil, &current), 0)
        guard let restorer = current.sa_restorer else { throw XCTSkip("this libc reports no sa_restorer") }
        let address = UInt64(UInt(bitPattern: unsafeBitCast(restorer, to: UnsafeRawPointer.self)))
        let mapping = try XCTUnwrap(try selfMapping(containing: address))
        // No debug directories: libc6-dbg, if installed, is not consulted.
        let symbolizer = Symbolizer(options: .init(debugDirectories: []))
        XCTAssertEqual(symbolizer.symbolize(ProcessAddress(address), in: mapping, pid: getpid()).map(\.name), ["__restore_rt"])
    }
}

/// Debug sections this libdw cannot read are not lost silently.
final class CompressedDebugSectionsTests: XCTestCase {
    func testZstdDebugSectionsGiveOneNoticeNamingTheFile() throws {
        let bench = try Workbench()
        let exe = try bench.compile("zdebug", source: """
        static inline int helper(int x) { return x * 3 + 1; }
        int work(int n) { int s = 0; for (int i = 0; i < n; i++) s += helper(i ^ s); return s; }
        int main(int argc, char **argv) { (void)argv; return work(argc * 1000) & 1; }
        """, flags: ["-O2", "-g"])
        let zstd = bench.path("zdebug-zstd")
        do {
            try bench.run("objcopy", ["--compress-debug-sections=zstd", exe, zstd])
        } catch {
            throw XCTSkip("this objcopy cannot write zstd sections: \(error)")
        }
        let work = try XCTUnwrap(try bench.symbols(zstd)["work"])
        let base: UInt64 = 0
        let mapping = try bench.textMapping(zstd, base: base)
        let symbolizer = Symbolizer(options: .init(debugDirectories: []))
        for offset in 0..<work.size {
            let frames = symbolizer.symbolize(ProcessAddress(base + work.address + offset), in: mapping, pid: 1)
            XCTAssertEqual(frames.last?.name, "work")
        }
        XCTAssertEqual(symbolizer.notices.count, 1, "\(symbolizer.notices)")
        XCTAssertTrue(symbolizer.notices.first?.contains(zstd) ?? false, "\(symbolizer.notices)")
        XCTAssertTrue(symbolizer.notices.first?.contains("zstd") ?? false)
        // The zlib-compressed file, which libdw reads, gives no notice.
        let zlib = bench.path("zdebug-zlib")
        try bench.run("objcopy", ["--compress-debug-sections=zlib", exe, zlib])
        let other = Symbolizer(options: .init(debugDirectories: []))
        let zlibMapping = try bench.textMapping(zlib, base: base)
        _ = other.symbolize(ProcessAddress(base + work.address + 1), in: zlibMapping, pid: 1)
        XCTAssertEqual(other.notices, [])
    }
}
