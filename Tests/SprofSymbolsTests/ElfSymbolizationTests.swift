import Foundation
import XCTest
import SprofTestSupport
import SprofCore
@testable import SprofSymbols

final class ElfSymbolizationTests: XCTestCase {
    func testPIEExecutableAtRandomBase() throws {
        let bench = try Workbench()
        let exe = try bench.compile("pie", source: sampleSource, flags: ["-O2", "-g", "-fPIE", "-pie"])
        let syms = try bench.symbols(exe)
        let base: UInt64 = 0x5555_5555_4000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer()
        for name in ["alpha", "beta", "main"] {
            let sym = try XCTUnwrap(syms[name])
            for offset in [0, sym.size / 2, sym.size - 1] {
                let frames = symbolizer.symbolize(ProcessAddress(base + sym.address + offset), in: mapping, pid: 1)
                XCTAssertEqual(frames.last?.name, name, "offset \(offset)")
                XCTAssertEqual(frames.last?.kind, .user)
                XCTAssertEqual(frames.last?.module, "pie")
            }
        }
    }

    /// PLT stubs are named `function@plt`, as objdump names them, whatever the linker's layout:
    /// lazy `.plt`, IBT's `.plt.sec`, and `.plt.got` (a function both called and address-taken).
    func testPLTStubsAreNamedLikeObjdump() throws {
        let source = """
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        int (*keep)(const char *) = puts;
        int main(int argc, char **argv) {
            char *p = malloc(32);
            strcpy(p, argv[0]);
            puts(p);
            free(p);
            return keep(argv[0]) > 0 ? (int)strlen(argv[0]) : 0;
        }
        """
        let bench = try Workbench()
        let variants: [(String, [String])] = [("lazy", ["-O1"]), ("ibt", ["-O1", "-fcf-protection", "-Wl,-z,ibtplt"]),
                                              ("now", ["-O1", "-Wl,-z,now"])]
        var checked = 0
        for (name, flags) in variants {
            let exe = try bench.compile("plt-\(name)", source: source, flags: flags)
            var stubs: [(UInt64, String)] = []
            for line in try bench.run("objdump", ["-d", "--no-show-raw-insn", exe]).split(separator: "\n") {
                // "0000000000001030 <puts@plt>:"
                guard line.hasSuffix("@plt>:"), let space = line.firstIndex(of: " "),
                      let address = UInt64(line[..<space], radix: 16) else { continue }
                let label = line[line.index(space, offsetBy: 2)..<line.index(line.endIndex, offsetBy: -2)]
                stubs.append((address, String(label)))
            }
            XCTAssertFalse(stubs.isEmpty, "objdump shows no PLT stubs in \(name)")
            let mapping = try bench.textMapping(exe, base: 0x5555_5555_4000)
            let symbolizer = Symbolizer()
            for (address, label) in stubs {
                let frames = symbolizer.symbolize(ProcessAddress(0x5555_5555_4000 + address + 2), in: mapping, pid: 1)
                XCTAssertEqual(frames.last?.name, label, "\(name) at 0x\(String(address, radix: 16))")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 9)
    }

    func testNonPIEExecutableHasZeroBias() throws {
        let bench = try Workbench()
        let exe = try bench.compile("nopie", source: sampleSource, flags: ["-O2", "-g", "-fno-pie", "-no-pie"])
        let syms = try bench.symbols(exe)
        XCTAssertGreaterThanOrEqual(syms["alpha"]!.address, 0x400000, "expected an ET_EXEC link address")
        let mapping = try bench.textMapping(exe, base: 0)
        let frames = Symbolizer().symbolize(ProcessAddress(syms["beta"]!.address + 2), in: mapping, pid: 1)
        XCTAssertEqual(frames.last?.name, "beta")
    }

    /// lld lays out text with `p_vaddr != p_offset`, where `start - pgoff` alone is wrong.
    func testSegmentWhoseVaddrDiffersFromOffset() throws {
        let bench = try Workbench()
        let exe: String
        do {
            exe = try bench.compile("lld", source: sampleSource, flags: ["-O2", "-fPIE", "-pie", "-fuse-ld=lld"], compiler: "clang")
        } catch {
            // Only a missing tool is a reason to skip; a compile or link failure is a failure.
            for tool in ["clang", "ld.lld"] where TestFixtures.findExecutable(tool) == nil {
                throw XCTSkip("\(tool) not installed")
            }
            throw error
        }
        let text = try XCTUnwrap(try bench.loads(exe).first { $0.executable })
        let syms = try bench.symbols(exe)
        let base: UInt64 = 0x7f12_3400_0000
        let mapping = try bench.textMapping(exe, base: base)
        if text.vaddr == text.offset { print("note: lld produced vaddr == offset; bias test is weaker") }
        let frames = Symbolizer().symbolize(ProcessAddress(base + syms["alpha"]!.address), in: mapping, pid: 1)
        XCTAssertEqual(frames.last?.name, "alpha")
    }

    /// A shared library really loaded by ld.so into this process, found through /proc/self/maps.
    func testSharedLibraryLoadedInThisProcess() throws {
        let bench = try Workbench()
        let lib = try bench.compile("libsprofdemo.so", source: """
        __attribute__((noinline)) int sprof_demo_work(int x) { int s = 0; for (int i = 0; i < x; i++) s ^= i * 31; return s; }
        int sprof_demo_entry(int x) { return sprof_demo_work(x) + 1; }
        """, flags: ["-O2", "-g", "-shared", "-fPIC"])
        guard let handle = dlopen(lib, RTLD_NOW) else { return XCTFail("dlopen failed") }
        defer { dlclose(handle) }
        let address = UInt64(UInt(bitPattern: try XCTUnwrap(dlsym(handle, "sprof_demo_work"))))
        let mapping = try XCTUnwrap(try selfMapping(containing: address))
        XCTAssertEqual(mapping.path, lib)
        let frames = Symbolizer().symbolize(ProcessAddress(address + 3), in: mapping, pid: getpid())
        XCTAssertEqual(frames.last?.name, "sprof_demo_work")
        XCTAssertEqual(frames.last?.module, "libsprofdemo.so")
        XCTAssertTrue(frames.last?.sourceFile?.hasSuffix("libsprofdemo.so.c") ?? false, "\(frames)")
    }

    func testStrippedBinaryGetsNamesFromBuildIDDebugDirectory() throws {
        let bench = try Workbench()
        let exe = try bench.compile("stripped", source: sampleSource, flags: ["-O2", "-g", "-Wl,--build-id"])
        let syms = try bench.symbols(exe)
        let id = try bench.buildID(exe)
        let root = bench.path("debugroot")
        let idDir = root + "/.build-id/" + id.prefix(2)
        try FileManager.default.createDirectory(atPath: idDir, withIntermediateDirectories: true)
        try bench.run("objcopy", ["--only-keep-debug", exe, idDir + "/" + id.dropFirst(2) + ".debug"])
        try bench.run("strip", ["--strip-all", exe])
        XCTAssertNil(try bench.symbols(exe)["alpha"], "strip left .symtab behind")

        let base: UInt64 = 0x5600_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let address = ProcessAddress(base + syms["alpha"]!.address + 1)

        let without = Symbolizer(options: .init(debugDirectories: [bench.path("empty")]))
        let unnamed = without.symbolize(address, in: mapping, pid: 1)
        // Unnamed, but placed at its function's start (from .eh_frame).
        XCTAssertEqual(unnamed.last?.name, "[stripped+0x\(String(syms["alpha"]!.address, radix: 16))]")

        let with = Symbolizer(options: .init(debugDirectories: [root]))
        let named = with.symbolize(address, in: mapping, pid: 1)
        XCTAssertEqual(named.last?.name, "alpha")
        XCTAssertNotNil(named.last?.line, "line info should come from the debug file too")
    }

    /// `.gnu_debuglink` names a debug file in the binary's `.debug/` subdirectory (no build-id
    /// note, so only the link can find it).
    func testStrippedBinaryGetsNamesThroughDebuglink() throws {
        let bench = try Workbench()
        let exe = try bench.compile("linked", source: sampleSource, flags: ["-O2", "-g", "-Wl,--build-id=none"])
        let syms = try bench.symbols(exe)
        try FileManager.default.createDirectory(atPath: bench.path(".debug"), withIntermediateDirectories: true)
        try bench.run("objcopy", ["--only-keep-debug", exe, bench.path("linked.debug")])
        try bench.run("strip", ["--strip-all", exe])
        try bench.run("objcopy", ["--add-gnu-debuglink=" + bench.path("linked.debug"), exe])
        try FileManager.default.moveItem(atPath: bench.path("linked.debug"), toPath: bench.path(".debug/linked.debug"))

        let mapping = try bench.textMapping(exe, base: 0x5555_0000_0000)
        let frames = Symbolizer(options: .init(debugDirectories: [bench.path("none")]))
            .symbolize(ProcessAddress(0x5555_0000_0000 + syms["beta"]!.address), in: mapping, pid: 1)
        XCTAssertEqual(frames.last?.name, "beta")
    }

    /// MiniDebugInfo: a stripped binary carrying an xz-compressed symbol table in `.gnu_debugdata`,
    /// built the way Fedora's find-debuginfo does it.
    func testMiniDebugInfoSymbols() throws {
        let bench = try Workbench()
        let exe = try bench.compile("mini", source: sampleSource, flags: ["-O2", "-g", "-fPIE", "-pie"])
        let syms = try bench.symbols(exe)
        let keep = syms.keys.filter { ["alpha", "beta", "outer"].contains($0) }.sorted().joined(separator: "\n") + "\n"
        try keep.write(toFile: bench.path("keep"), atomically: true, encoding: .utf8)
        try bench.run("objcopy", ["--only-keep-debug", exe, bench.path("dbg")])
        try bench.run("objcopy", ["-S", "--remove-section", ".comment", "--keep-symbols=" + bench.path("keep"),
                                  bench.path("dbg"), bench.path("minisyms")])
        try bench.run("xz", ["-f", bench.path("minisyms")])
        try bench.run("strip", ["--strip-all", exe])
        try bench.run("objcopy", ["--add-section", ".gnu_debugdata=" + bench.path("minisyms.xz"), exe])
        XCTAssertNil(try bench.symbols(exe)["beta"])

        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer(options: .init(debugDirectories: [bench.path("none")]))
        XCTAssertEqual(symbolizer.symbolize(ProcessAddress(base + syms["beta"]!.address + 1), in: mapping, pid: 1).last?.name, "beta")
        XCTAssertEqual(symbolizer.symbolize(ProcessAddress(base + syms["alpha"]!.address), in: mapping, pid: 1).last?.name, "alpha")
    }

    /// Swift symbols start with `$s`; they must be neither filtered out nor left mangled.
    func testSwiftExecutableNamesAreDemangled() throws {
        let bench = try Workbench()
        let exe: String
        do {
            exe = try bench.compile("swiftdemo", source: """
            @inline(never) func crunch(_ n: Int) -> Int { var s = 0; for i in 0..<n { s &+= i &* n }; return s }
            print(crunch(Int(CommandLine.arguments.count) + 100))
            """, flags: ["-O", "-g", "-module-name", "demo"], compiler: "swiftc", ext: "swift")
        } catch {
            // Only a missing compiler is a reason to skip; a compile failure is a failure.
            guard TestFixtures.findExecutable("swiftc") != nil else { throw XCTSkip("swiftc not installed") }
            throw error
        }
        let sym = try XCTUnwrap(try bench.symbols(exe)["$s4demo6crunchyS2iF"])
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let frames = Symbolizer().symbolize(ProcessAddress(base + sym.address + 1), in: mapping, pid: 1)
        // Short by default (as `swift demangle --simplified`), the full name alongside.
        if Demangler.hasSimplifiedSwiftNames {
            XCTAssertEqual(frames.last?.name, "crunch(_:)")
            XCTAssertEqual(frames.last?.fullName, "demo.crunch(Swift.Int) -> Swift.Int")
        } else {
            XCTAssertEqual(frames.last?.name, "demo.crunch(Swift.Int) -> Swift.Int")
        }
        XCTAssertEqual(frames.last?.systemName, "$s4demo6crunchyS2iF")
        let full = Symbolizer(options: .init(fullNames: true)).symbolize(ProcessAddress(base + sym.address + 1), in: mapping, pid: 1)
        XCTAssertEqual(full.last?.name, "demo.crunch(Swift.Int) -> Swift.Int")
        XCTAssertNil(full.last?.fullName)
        XCTAssertEqual(Symbolizer(options: .init(demangle: false)).symbolize(ProcessAddress(base + sym.address + 1), in: mapping, pid: 1).last?.name,
                       "$s4demo6crunchyS2iF")
    }

    func testInlinedHelperYieldsInlineFrameThenCaller() throws {
        let bench = try Workbench()
        let exe = try bench.compile("inl", source: sampleSource, flags: ["-O2", "-g", "-fPIE", "-pie"])
        let outer = try XCTUnwrap(try bench.symbols(exe)["outer"])
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer()
        let helperFirst = lineNumber(of: "double helper(", in: sampleSource)
        let callLine = lineNumber(of: "double r = helper(v, n);", in: sampleSource)
        var found = false
        for offset in 0..<outer.size {
            let frames = symbolizer.symbolize(ProcessAddress(base + outer.address + offset), in: mapping, pid: 1)
            XCTAssertEqual(frames.last?.name, "outer")
            guard frames.count == 2 else { continue }
            found = true
            XCTAssertEqual(frames[0].name, "helper")
            XCTAssertEqual(frames[0].kind, .inlined)
            XCTAssertEqual(frames[1].kind, .user)
            XCTAssertEqual(frames[1].line, callLine, "the caller's line is the inlined call site")
            XCTAssertTrue(frames[1].sourceFile?.hasSuffix("inl.c") ?? false)
            if let line = frames[0].line {
                XCTAssert((helperFirst...(helperFirst + 4)).contains(line), "helper line \(line)")
            }
        }
        XCTAssertTrue(found, "no address in outer() mapped to the inlined helper")

        let plain = Symbolizer(options: .init(inlineFrames: false))
        for offset in 0..<outer.size {
            XCTAssertEqual(plain.symbolize(ProcessAddress(base + outer.address + offset), in: mapping, pid: 1).count, 1)
        }
    }

    func testSourceLineOfPlainFunction() throws {
        let bench = try Workbench()
        let exe = try bench.compile("lines", source: sampleSource, flags: ["-O0", "-g", "-fPIE", "-pie"])
        let alpha = try XCTUnwrap(try bench.symbols(exe)["alpha"])
        let mapping = try bench.textMapping(exe, base: 0x5555_0000_0000)
        let frame = try XCTUnwrap(Symbolizer().symbolize(ProcessAddress(0x5555_0000_0000 + alpha.address), in: mapping, pid: 1).last)
        XCTAssertEqual(frame.line, lineNumber(of: "int alpha(int x)", in: sampleSource))
        XCTAssertEqual(frame.sourceFile, bench.path("lines.c"))

        let noLines = Symbolizer(options: .init(sourceLines: false))
        XCTAssertNil(noLines.symbolize(ProcessAddress(0x5555_0000_0000 + alpha.address), in: mapping, pid: 1).last?.line)
    }

    func testCxxNamesDemangledUnlessDisabled() throws {
        let bench = try Workbench()
        let exe = try bench.compile("cxx", source: """
        namespace ns { __attribute__((noinline)) int twice(int x) { return x * 2 + __builtin_popcount(x); } }
        int main(int argc, char **) { return ns::twice(argc); }
        """, flags: ["-O2", "-fPIE", "-pie"], compiler: "g++", ext: "cc")
        let sym = try XCTUnwrap(try bench.symbols(exe)["_ZN2ns5twiceEi"])
        let mapping = try bench.textMapping(exe, base: 0x5555_0000_0000)
        let address = ProcessAddress(0x5555_0000_0000 + sym.address)
        XCTAssertEqual(Symbolizer().symbolize(address, in: mapping, pid: 1).last?.name, "ns::twice(int)")
        XCTAssertEqual(Symbolizer(options: .init(demangle: false)).symbolize(address, in: mapping, pid: 1).last?.name,
                       "_ZN2ns5twiceEi")
    }

    func testUnknownAddressesAreNamedByModuleAndOffset() throws {
        let bench = try Workbench()
        let exe = try bench.compile("unk", source: sampleSource, flags: ["-O2", "-fPIE", "-pie"])
        let base: UInt64 = 0x5555_0000_0000
        var mapping = try bench.textMapping(exe, base: base)
        // Past the last symbol of the text segment, but still inside the mapping.
        let syms = try bench.symbols(exe)
        let lastEnd = syms.values.map { $0.address + $0.size }.filter { $0 < mapping.end.rawValue - base }.max()!
        let symbolizer = Symbolizer()
        // The text segment of a small program often ends within the last symbol's open-ended reach,
        // so the mapping is stretched (as a larger segment of the same file would be) until the
        // address is past it: the check must run on every toolchain, not only where it happens to.
        let pastReach = base + lastEnd + SymbolTable.openEndedReach + 0x100
        if mapping.end.rawValue <= pastReach { mapping.end = ProcessAddress((pastReach + 0x1000) & ~UInt64(0xfff)) }
        let lastAddress = mapping.end.rawValue - 1
        XCTAssertGreaterThanOrEqual(lastAddress - base, lastEnd + SymbolTable.openEndedReach)
        let tail = symbolizer.symbolize(ProcessAddress(lastAddress), in: mapping, pid: 1)
        XCTAssertEqual(tail, [SymbolizedFrame(name: "[unk+0x\(String(lastAddress - base, radix: 16))]", kind: .user, module: "unk")])

        mapping.path = bench.path("does-not-exist.so")
        let missing = symbolizer.symbolize(ProcessAddress(mapping.start.rawValue + 0x10), in: mapping, pid: 1)
        XCTAssertEqual(missing.count, 1)
        XCTAssertEqual(missing[0].name, "[does-not-exist.so+0x\(String(mapping.fileOffset + 0x10, radix: 16))]")
    }

    /// A stripped binary's functions have no names, but .eh_frame still says where each starts:
    /// every address inside one gets the same `[module+0xSTART]` frame, not one per address.
    func testStrippedCodeIsNamedByItsFunctionStart() throws {
        let bench = try Workbench()
        let exe = try bench.compile("strp", source: sampleSource, flags: ["-O2", "-fPIE", "-pie"])
        let syms = try bench.symbols(exe)
        try bench.run("strip", ["-s", exe])
        XCTAssertNil(try bench.symbols(exe)["alpha"], "strip left .symtab behind")
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        let symbolizer = Symbolizer()
        // main adjusts its stack, so its CFI has several rows: the name must be the FDE's start,
        // not the start of the row the address falls in.
        for name in ["alpha", "beta", "outer", "main"] {
            let sym = try XCTUnwrap(syms[name])
            let expected = "[strp+0x\(String(sym.address, radix: 16))]"
            for offset in [1, sym.size / 2, sym.size - 1] {
                let frames = symbolizer.symbolize(ProcessAddress(base + sym.address + offset), in: mapping, pid: 1)
                XCTAssertEqual(frames.map(\.name), [expected], "\(name)+\(offset)")
            }
        }
    }

    func testFileOpenedOnceAndLookupsCached() throws {
        let bench = try Workbench()
        let exe = try bench.compile("cache", source: sampleSource, flags: ["-O2", "-g", "-fPIE", "-pie"])
        let syms = try bench.symbols(exe)
        let base: UInt64 = 0x5555_0000_0000
        let mapping = try bench.textMapping(exe, base: base)
        var second = mapping
        second.start.rawValue += 0x1000_0000
        second.end.rawValue += 0x1000_0000
        let symbolizer = Symbolizer()
        for _ in 0..<3 {
            for name in ["alpha", "beta", "outer", "main"] {
                let a = syms[name]!.address
                XCTAssertEqual(symbolizer.symbolize(ProcessAddress(base + a), in: mapping, pid: 1).last?.name, name)
                // The same file mapped at another address in another process shares the open file.
                XCTAssertEqual(symbolizer.symbolize(ProcessAddress(base + 0x1000_0000 + a), in: second, pid: 2).last?.name, name)
            }
        }
        XCTAssertEqual(symbolizer.openedFileCount, 1)
    }

    func testMismatchedBuildIDIsNotTrusted() throws {
        let bench = try Workbench()
        let exe = try bench.compile("rebuilt", source: sampleSource, flags: ["-O2", "-fPIE", "-pie", "-Wl,--build-id"])
        let alpha = try XCTUnwrap(try bench.symbols(exe)["alpha"])
        var mapping = try bench.textMapping(exe, base: 0x5555_0000_0000)
        mapping.buildID = [UInt8](repeating: 0xab, count: 20)
        let frames = Symbolizer().symbolize(ProcessAddress(0x5555_0000_0000 + alpha.address), in: mapping, pid: 1)
        XCTAssertTrue(frames[0].name.hasPrefix("[rebuilt+0x"), frames[0].name)
        let id = try bench.buildID(exe)
        mapping.buildID = stride(from: 0, to: id.count, by: 2).map { i in
            UInt8(id[id.index(id.startIndex, offsetBy: i)..<id.index(id.startIndex, offsetBy: i + 2)], radix: 16)!
        }
        XCTAssertEqual(Symbolizer().symbolize(ProcessAddress(0x5555_0000_0000 + alpha.address), in: mapping, pid: 1).last?.name, "alpha")
    }
}

/// The executable mapping of this process that contains `address`, parsed from /proc/self/maps.
func selfMapping(containing address: UInt64) throws -> Mapping? {
    let maps = try readProcFile("/proc/self/maps")
    for line in maps.split(separator: "\n") {
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        guard f.count >= 5 else { continue }
        let range = f[0].split(separator: "-")
        guard let lo = UInt64(range[0], radix: 16), let hi = UInt64(range[1], radix: 16),
              lo <= address, address < hi, let off = UInt64(f[2], radix: 16) else { continue }
        let path = f.count >= 6 ? f[5...].joined(separator: " ") : ""
        return Mapping(start: ProcessAddress(lo), end: ProcessAddress(hi), fileOffset: off, path: path)
    }
    return nil
}

/// /proc files report size 0, so read them to EOF instead of by their stat size.
func readProcFile(_ path: String) throws -> String {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}
