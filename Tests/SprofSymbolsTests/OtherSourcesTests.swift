import Foundation
import XCTest
import SprofCore
@testable import SprofSymbols

final class DemanglerTests: XCTestCase {
    func testSwiftNames() {
        XCTAssertEqual(Demangler.demangle("$s4main3fooyyF"), "main.foo() -> ()")
        XCTAssertEqual(Demangler.demangle("_$s4main3fooyyF"), "main.foo() -> ()")
        XCTAssertEqual(Demangler.demangle("$sSi1poiyS2i_SitFZ"), "static Swift.Int.+ infix(Swift.Int, Swift.Int) -> Swift.Int")
    }

    func testCxxNames() {
        XCTAssertEqual(Demangler.demangle("_Z3fooi"), "foo(int)")
        XCTAssertEqual(Demangler.demangle("_ZN2ns5twiceEi"), "ns::twice(int)")
    }

    func testPlainAndInvalidNamesUnchanged() {
        XCTAssertEqual(Demangler.demangle("main"), "main")
        XCTAssertEqual(Demangler.demangle("_Zgarbage!"), "_Zgarbage!")
        XCTAssertEqual(Demangler.demangle("$snot-mangled"), "$snot-mangled")
        XCTAssertEqual(Demangler.demangle(""), "")
    }
}

final class SymbolTableTests: XCTestCase {
    func testZeroSizeSymbolsReachTheNextSymbolOrSectionEnd() {
        let table = SymbolTable([
            SymbolCandidate(start: 0x100, size: 0, name: "asm_entry", rank: 0),
            SymbolCandidate(start: 0x180, size: 0x10, name: "sized", rank: 4),
            SymbolCandidate(start: 0x200, size: 0, name: "last", rank: 0, limit: 0x240),
        ])
        XCTAssertEqual(table.lookup(0x17f).map { table.names[$0] }, "asm_entry")
        XCTAssertEqual(table.lookup(0x185).map { table.names[$0] }, "sized")
        XCTAssertNil(table.lookup(0x190), "a sized symbol ends at its size")
        XCTAssertEqual(table.lookup(0x23f).map { table.names[$0] }, "last")
        XCTAssertNil(table.lookup(0x240), "a zero-size symbol stops at its section's end")
        XCTAssertNil(table.lookup(0xff))
    }

    func testAliasesPreferFunctionsThenPublicNames() {
        let table = SymbolTable([
            SymbolCandidate(start: 0x10, size: 0x20, name: "__libc_malloc", rank: 6),
            SymbolCandidate(start: 0x10, size: 0x20, name: "malloc", rank: 6),
            SymbolCandidate(start: 0x10, size: 0, name: "label", rank: 0),
        ])
        XCTAssertEqual(table.count, 1)
        XCTAssertEqual(table.lookup(0x2f).map { table.names[$0] }, "malloc")
    }

    func testNestedSymbolFallsBackToTheEnclosingOne() {
        let table = SymbolTable([
            SymbolCandidate(start: 0x100, size: 0x100, name: "big", rank: 4),
            SymbolCandidate(start: 0x120, size: 0x10, name: "small", rank: 4),
        ])
        XCTAssertEqual(table.lookup(0x125).map { table.names[$0] }, "small")
        XCTAssertEqual(table.lookup(0x150).map { table.names[$0] }, "big")
    }
}

final class KernelSymbolTests: XCTestCase {
    func testRealKallsyms() throws {
        guard let text = try? readProcFile("/proc/kallsyms"), !text.isEmpty else {
            throw XCTSkip("/proc/kallsyms unreadable")
        }
        var byAddress: [UInt64: [String]] = [:]
        var picked: (UInt64, String)?
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3, let a = UInt64(f[0], radix: 16) else { continue }
            byAddress[a, default: []].append(String(f[2]))
            if picked == nil, f[1] == "T", f.count == 3, f[2] == "schedule" { picked = (a, String(f[2])) }
        }
        guard let (address, name) = picked, address != 0 else {
            throw XCTSkip("kallsyms addresses hidden (kptr_restrict) or no `schedule` symbol")
        }
        XCTAssertEqual(byAddress[address]?.count, 1, "pick a symbol without aliases")
        let symbolizer = Symbolizer()
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(address + 4)),
                       SymbolizedFrame(name: name, kind: .kernel, module: "[kernel.kallsyms]"))
    }

    func testSyntheticKallsymsWithModules() throws {
        let bench = try Workbench()
        let path = bench.path("kallsyms")
        try """
        ffffffff81000000 T _stext
        ffffffff81000100 t do_thing
        ffffffff81000200 D some_data
        ffffffff81000300 T _etext
        ffffffffc0001000 t nvme_poll\t[nvme]
        ffffffffc0001080 t nvme_irq\t[nvme]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let symbolizer = Symbolizer(options: .init(kallsymsPath: path))
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(0xffffffff81000150)).name, "do_thing")
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(0xffffffff81000250)).name, "do_thing",
                       "data symbols do not cut text ranges")
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(0xffffffffc0001010)),
                       SymbolizedFrame(name: "nvme_poll", kind: .kernel, module: "[nvme]"))
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(0xffffffff80000000)).name, "[kernel.kallsyms]")
    }

    /// The file is parsed 4 KiB at a time: lines split across reads, a last line without a
    /// newline and module symbols out of address order must give what parsing it whole gives.
    func testChunkedReadingMatchesWholeText() throws {
        var text = ""
        var expected: [(UInt64, String)] = []
        for i in 0..<3000 {
            let address: UInt64 = 0xffffffff81000000 + UInt64(i) * 0x40
            let name = "fn_\(i)_" + String(repeating: "x", count: i % 37)
            text += String(address, radix: 16) + (i % 2 == 0 ? " T " : " t ") + name + "\n"
            expected.append((address, name))
        }
        text += "ffffffffc0002000 t mod_b\t[modb]\nffffffffc0001000 t mod_a\t[moda]"
        let bench = try Workbench()
        let path = bench.path("kallsyms")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let read = try XCTUnwrap(KernelSymbols(contentsOf: path))
        let whole = KernelSymbols(parsing: Array(text.utf8))
        for (address, name) in expected {
            XCTAssertEqual(read.lookup(address + 8)?.name, name)
            XCTAssertEqual(whole.lookup(address + 8)?.name, name)
        }
        XCTAssertEqual(read.lookup(0xffffffffc0001010)?.name, "mod_a")
        XCTAssertEqual(read.lookup(0xffffffffc0001010)?.module, "[moda]")
        XCTAssertEqual(read.lookup(0xffffffffc0002010)?.module, "[modb]")
        XCTAssertNil(KernelSymbols(contentsOf: bench.path("missing")))
    }

    /// The table read ahead on another thread is the one lookups use, and reading ahead twice or
    /// after the table is loaded changes nothing.
    func testPrefetchedKernelSymbolsAreUsed() throws {
        let bench = try Workbench()
        let path = bench.path("kallsyms")
        try "ffffffff81000000 T first\nffffffff81000100 t second\n".write(toFile: path, atomically: true, encoding: .utf8)
        let symbolizer = Symbolizer(options: .init(kallsymsPath: path))
        symbolizer.prefetchKernelSymbols()
        symbolizer.prefetchKernelSymbols()
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(0xffffffff81000180)).name, "second")
        symbolizer.prefetchKernelSymbols()
        XCTAssertEqual(symbolizer.symbolizeKernel(ProcessAddress(0xffffffff81000010)).name, "first")
        let missing = Symbolizer(options: .init(kallsymsPath: bench.path("missing")))
        missing.prefetchKernelSymbols()
        XCTAssertEqual(missing.symbolizeKernel(ProcessAddress(0xffffffff81000010)).name, "[kernel.kallsyms]")
    }

    func testHiddenAddressesGiveKernelPlaceholder() throws {
        let bench = try Workbench()
        let path = bench.path("kallsyms")
        try "0000000000000000 T _stext\n0000000000000000 T schedule\n".write(toFile: path, atomically: true, encoding: .utf8)
        for p in [path, bench.path("missing")] {
            let frame = Symbolizer(options: .init(kallsymsPath: p)).symbolizeKernel(ProcessAddress(0xffffffff81000000))
            XCTAssertEqual(frame, SymbolizedFrame(name: "[kernel.kallsyms]", kind: .kernel, module: "[kernel.kallsyms]"))
        }
    }
}

final class VdsoAndJitTests: XCTestCase {
    func testVdsoClockGettimeInThisProcess() throws {
        guard let handle = dlopen("linux-vdso.so.1", RTLD_NOLOAD | RTLD_LAZY),
              let fn = dlsym(handle, "__vdso_clock_gettime") else {
            throw XCTSkip("no vdso symbol visible through the dynamic linker")
        }
        let address = UInt64(UInt(bitPattern: fn))
        let mapping = try XCTUnwrap(try selfMapping(containing: address))
        XCTAssertEqual(mapping.path, "[vdso]")
        let symbolizer = Symbolizer()
        let frames = symbolizer.symbolize(ProcessAddress(address + 1), in: mapping, pid: getpid())
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(frames[0].kind, .user)
        XCTAssertEqual(frames[0].module, "[vdso]")
        // clock_gettime is a weak alias at the same address; the global name wins.
        XCTAssertEqual(frames[0].name, "__vdso_clock_gettime")
        XCTAssertEqual(symbolizer.openedFileCount, 1)
    }

    func testJitMapLoadsLazilyAndReloadsWhenItGrows() throws {
        let bench = try Workbench()
        let pid: Int32 = 4242
        let mapPath = bench.path("perf-\(pid).map")
        try "7f0000001000 40 LazyCompile:~fib /app/fib.js:3\n7f0000001040 0x20 Builtin:Add\n"
            .write(toFile: mapPath, atomically: true, encoding: .utf8)
        let symbolizer = Symbolizer(options: .init(jitMapDirectory: bench.dir.path))
        XCTAssertEqual(symbolizer.symbolizeUnmapped(ProcessAddress(0x7f000000103f), pid: pid),
                       SymbolizedFrame(name: "LazyCompile:~fib /app/fib.js:3", kind: .jit, module: "[jit]"))
        XCTAssertEqual(symbolizer.symbolizeUnmapped(ProcessAddress(0x7f0000001050), pid: pid).name, "Builtin:Add")
        XCTAssertEqual(symbolizer.symbolizeUnmapped(ProcessAddress(0x7f0000002000), pid: pid),
                       SymbolizedFrame(name: "[unmapped+0x7f0000002000]", kind: .user, module: "[unmapped]"))

        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: mapPath))
        handle.seekToEndOfFile()
        handle.write("7f0000002000 100 JittedLater\n".data(using: .utf8)!)
        handle.closeFile()
        XCTAssertEqual(symbolizer.symbolizeUnmapped(ProcessAddress(0x7f0000002010), pid: pid).name, "JittedLater")

        // Anonymous executable memory is where JIT code lives.
        let anon = Mapping(start: ProcessAddress(0x7f0000000000), end: ProcessAddress(0x7f0000010000), fileOffset: 0, path: "//anon")
        XCTAssertEqual(symbolizer.symbolize(ProcessAddress(0x7f0000001000), in: anon, pid: pid),
                       [SymbolizedFrame(name: "LazyCompile:~fib /app/fib.js:3", kind: .jit, module: "[jit]")])
        // Not in the map: never a bare [unknown], but the mapping and the offset in it.
        XCTAssertEqual(symbolizer.symbolize(ProcessAddress(0x7f0000001000), in: anon, pid: pid + 1).first?.name, "[anon+0x1000]")

        try FileManager.default.removeItem(atPath: mapPath)
        symbolizer.forgetProcess(pid)
        XCTAssertEqual(symbolizer.symbolizeUnmapped(ProcessAddress(0x7f0000001000), pid: pid).name, "[unmapped+0x7f0000001000]")
    }
}
