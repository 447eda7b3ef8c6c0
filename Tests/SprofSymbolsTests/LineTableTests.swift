import Foundation
import XCTest
import SprofTestSupport
import SprofCore
@testable import SprofSymbols

/// sprof decodes `.debug_line` itself (`LineTable`) instead of keeping libdw's whole-CU row
/// array; every address must still get exactly the file and line libdw gives.
final class LineTableTests: XCTestCase {
    static let header = """
    static inline __attribute__((always_inline)) int helper(int *v, int n) {
        int acc = 0;
        for (int i = 0; i < n; i++)
            acc += v[i] * (i + 1);
        return acc;
    }
    """

    static let source = """
    #include <stdio.h>
    #include "helper.h"

    __attribute__((noinline)) int top(int *v, int n) {
        int r = helper(v, n);
        return r - 1;
    }

    __attribute__((noinline)) int unused(int x) { return x * 3; }

    int main(int argc, char **argv) {
        int v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        printf("%d\\n", top(v, argc + 7));
        return 0;
    }
    """

    /// Compares LineTable and libdw at every address of the executable segment; returns how
    /// many addresses had a line.
    private func compareEverywhere(_ exe: String, bench: Workbench, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let elf = try XCTUnwrap(ElfFile(path: exe, moduleName: "t", context: DwflContext(debugDirectories: [])))
        var covered = 0
        for load in try bench.loads(exe) where load.executable {
            for address in load.vaddr..<(load.vaddr + load.fileSize) {
                let ours = elf.sourceLine(at: address, libdw: false)
                let theirs = elf.sourceLine(at: address, libdw: true)
                // libdw leaves a relative include directory relative; LineTable joins it to the
                // compilation directory (testRelativeIncludeDirectoriesAreJoinedToTheBuildDirectory).
                var expected = theirs?.file
                if let o = ours?.file, let t = theirs?.file, o != t, !t.hasPrefix("/"), o.hasSuffix("/" + t) { expected = o }
                XCTAssertEqual(ours?.file, expected, "file at 0x\(String(address, radix: 16)) of \(exe)", file: file, line: line)
                XCTAssertEqual(ours?.line, theirs?.line, "line at 0x\(String(address, radix: 16)) of \(exe)", file: file, line: line)
                XCTAssertEqual(ours == nil, theirs == nil, "row at 0x\(String(address, radix: 16)) of \(exe)", file: file, line: line)
                if theirs?.line != nil { covered += 1 }
                if ours?.file != expected || ours?.line != theirs?.line { return covered }
            }
        }
        return covered
    }

    func testSameLinesAsLibdwAcrossDwarfVersionsAndLayouts() throws {
        let bench = try Workbench()
        try Self.header.write(toFile: bench.path("helper.h"), atomically: true, encoding: .utf8)
        let variants: [(String, [String])] = [
            ("o2-dwarf5", ["-O2", "-g"]),
            ("o2-dwarf4", ["-O2", "-gdwarf-4"]),
            ("o0-dwarf3", ["-O0", "-gdwarf-3"]),
            ("o2-dwarf2", ["-O2", "-gdwarf-2"]),
            // Sections the linker drops leave sequences at address 0 that overlap each other.
            ("gc-sections", ["-O1", "-g", "-ffunction-sections", "-Wl,--gc-sections"]),
            ("relative", ["-O2", "-g", "-fdebug-prefix-map=\(bench.dir.path)=."]),
        ]
        for (name, flags) in variants {
            let exe = try bench.compile(name, source: Self.source, flags: flags + ["-I", bench.dir.path])
            XCTAssertGreaterThan(try compareEverywhere(exe, bench: bench), 20, name)
        }
    }

    /// `cc -I inc` run in the build directory records `inc` as a relative include directory
    /// (before DWARF 5 and, with gcc, in DWARF 5 too). Its files must be named from the build
    /// directory, so that `annotate` and debuginfod's source lookup find them from anywhere.
    func testRelativeIncludeDirectoriesAreJoinedToTheBuildDirectory() throws {
        let bench = try Workbench()
        try FileManager.default.createDirectory(atPath: bench.path("inc"), withIntermediateDirectories: true)
        try Self.header.write(toFile: bench.path("inc/helper.h"), atomically: true, encoding: .utf8)
        try Self.source.write(toFile: bench.path("rel.c"), atomically: true, encoding: .utf8)
        for dwarf in ["-gdwarf-4", "-gdwarf-5"] {
            let exe = bench.path("rel" + dwarf)
            _ = try bench.run("sh", ["-c", "cd '\(bench.dir.path)' && cc -O2 \(dwarf) -I inc -o '\(exe)' rel.c"])
            let elf = try XCTUnwrap(ElfFile(path: exe, moduleName: "t", context: DwflContext(debugDirectories: [])))
            var files = Set<String>()
            for load in try bench.loads(exe) where load.executable {
                for address in load.vaddr..<(load.vaddr + load.fileSize) {
                    if let f = elf.sourceLine(at: address, libdw: false)?.file { files.insert(f) }
                }
            }
            XCTAssertTrue(files.contains(bench.path("inc/helper.h")), "\(dwarf): \(files.sorted())")
            XCTAssertTrue(files.allSatisfy { $0.hasPrefix("/") }, "\(dwarf): \(files.sorted())")
        }
    }

    /// A function per line: libdw keeps several rows per function, LineTable one plus the
    /// sequence end (rows with the previous row's line never answer anything).
    func testRowsThatCannotAnswerAreNotKept() throws {
        let bench = try Workbench()
        let count = 500
        var source = "int f0(int x) { for (int k = 0; k < 5; k++) x = x * 7 + 1; return x; }\n"
        for i in 1..<count { source += "int f\(i)(int x) { for (int k = 0; k < 5; k++) x = x * 7 + \(i); return f\(i - 1)(x); }\n" }
        source += "int main(int argc, char **argv) { return f\(count - 1)(argc); }\n"
        let exe = try bench.compile("many", source: source, flags: ["-O0", "-g"])
        let elf = try XCTUnwrap(ElfFile(path: exe, moduleName: "many", context: DwflContext(debugDirectories: [])))
        let f = try XCTUnwrap(try bench.symbols(exe)["f250"])
        XCTAssertNotNil(elf.sourceLine(at: f.address, libdw: false)?.line)
        let rows = try XCTUnwrap(elf.lineTableRowCount(at: f.address))
        XCTAssertLessThanOrEqual(rows, count + 10, "rows kept for \(count) one-line functions")
        XCTAssertGreaterThanOrEqual(rows, count)
        XCTAssertGreaterThan(try compareEverywhere(exe, bench: bench), count)
    }
}
