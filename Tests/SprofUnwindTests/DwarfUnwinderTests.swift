import Foundation
import XCTest
import SprofTestSupport
import SprofCore
import SprofRecording
@testable import SprofUnwind

/// A C program that captures its own registers and stack the way perf does (perf register order,
/// the stack from sp up), with glibc's backtrace() as the reference answer, each object's load
/// bias from the dynamic linker, and its /proc/self/maps. Unwinding the capture offline needs no
/// perf_event_open.
private let captureSource = #"""
#define _GNU_SOURCE
#include <execinfo.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* Captures its own registers and stack the way perf would (perf register order, stack from sp),
   plus glibc backtrace() as the reference, the load bias of every object, and /proc/self/maps. */
static FILE *out;
int level2(int x);
int level3(int x);
static int print_bias(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size; (void)data;
  fprintf(out, "bias %llx %s\n", (unsigned long long)info->dlpi_addr, info->dlpi_name);
  return 0;
}
__attribute__((noinline)) void capture(void) {
  static ucontext_t uc;
  getcontext(&uc);
  void *bt[128];
  int n = backtrace(bt, 128);
  greg_t *g = uc.uc_mcontext.gregs;
  uint64_t regs[17] = { g[REG_RAX], g[REG_RBX], g[REG_RCX], g[REG_RDX], g[REG_RSI], g[REG_RDI], g[REG_RBP],
                        g[REG_RSP], g[REG_RIP], g[REG_R8], g[REG_R9], g[REG_R10], g[REG_R11], g[REG_R12],
                        g[REG_R13], g[REG_R14], g[REG_R15] };
  out = stdout;
  for (int i = 0; i < 17; i++) printf("reg %llx\n", (unsigned long long)regs[i]);
  for (int i = 0; i < n; i++) printf("bt %llx\n", (unsigned long long)(uintptr_t)bt[i]);
  printf("level3 %llx", (unsigned long long)(uintptr_t)&level3);
  for (int i = 0; i < 64; i++) printf(" %02x", ((unsigned char *)(uintptr_t)&level3)[i]);
  printf("\nlevel2 %llx", (unsigned long long)(uintptr_t)&level2);
  for (int i = 0; i < 64; i++) printf(" %02x", ((unsigned char *)(uintptr_t)&level2)[i]);
  printf("\n");
  dl_iterate_phdr(print_bias, NULL);
  char line[4096];
  uint64_t stack_end = 0;
  FILE *maps = fopen("/proc/self/maps", "r");
  while (fgets(line, sizeof line, maps)) {
    printf("map %s", line);
    if (strstr(line, "[stack]")) stack_end = strtoull(strchr(line, '-') + 1, NULL, 16);
  }
  fclose(maps);
  uint64_t sp = regs[7];
  printf("stack");
  for (uint64_t a = sp; a < stack_end; a++) printf(" %02x", *(unsigned char *)(uintptr_t)a);
  printf("\n");
  fflush(stdout);
}
__attribute__((noinline)) int level3(int x) { capture(); return x + 3; }
__attribute__((noinline)) int level2(int x) { return level3(x * 2) + 2; }
__attribute__((noinline)) int level1(int x) { return level2(x + 1) * 3; }
int main(int argc, char **argv) { (void)argv; return level1(argc) == 0; }
"""#

/// What the capture program printed.
private struct Capture {
    var registers: [UInt64] = []
    var backtrace: [UInt64] = []
    var biases: [(bias: UInt64, name: String)] = []
    var maps: [String] = []
    var stack: [UInt8] = []
    var binary = ""
    /// level2's and level3's addresses and their first 64 bytes of code.
    var code: [String: (address: UInt64, bytes: [UInt8])] = [:]

    init(binary: String, output: String) {
        self.binary = binary
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 1)
            guard fields.count == 2 else { continue }
            let rest = fields[1]
            switch fields[0] {
            case "reg": registers.append(UInt64(rest, radix: 16)!)
            case "bt": backtrace.append(UInt64(rest, radix: 16)!)
            case "bias":
                let f = rest.split(separator: " ", maxSplits: 1)
                biases.append((UInt64(f[0], radix: 16)!, f.count > 1 ? String(f[1]) : ""))
            case "map": maps.append(String(rest))
            case "stack": stack = rest.split(separator: " ").map { UInt8($0, radix: 16)! }
            case "level2", "level3":
                let f = rest.split(separator: " ")
                code[String(fields[0])] = (UInt64(f[0], radix: 16)!, f.dropFirst().map { UInt8($0, radix: 16)! })
            default: break
            }
        }
    }

    /// Executable mappings as ProcessTable would record them.
    var mappings: [Mapping] {
        var out: [Mapping] = []
        for line in maps {
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count >= 5, f[1].contains("x") else { continue }
            let r = f[0].split(separator: "-")
            let path = f.count == 6 ? f[5].trimmingCharacters(in: .whitespaces) : "//anon"
            out.append(Mapping(start: ProcessAddress(UInt64(r[0], radix: 16)!), end: ProcessAddress(UInt64(r[1], radix: 16)!),
                               fileOffset: UInt64(f[2], radix: 16)!, path: path))
        }
        return out
    }

    func process(pid: Int32 = 4242, only keep: (Mapping) -> Bool = { _ in true }) -> ProcessState {
        var p = ProcessState(pid: pid, name: "capture", mappings: [], generation: 1, threads: [:])
        for m in mappings where keep(m) { p.insert(m) }
        return p
    }

    func sample(pid: Int32 = 4242, stackBytes: Int? = nil) -> SampleRecord {
        var s = SampleRecord()
        s.pid = pid
        s.tid = pid
        s.ip = registers[UserRegisters.ipIndex]
        s.cpuMode = .user
        s.userRegisters = registers
        s.userStack = Array(stack.prefix(stackBytes ?? stack.count))
        return s
    }
}

final class DwarfUnwinderTests: XCTestCase {
    private static var cached: [String: Capture] = [:]

    /// Builds and runs the capture program once per flag set.
    private func capture(flags: [String]) throws -> Capture {
        let key = flags.joined(separator: " ")
        if let c = Self.cached[key] { return c }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-unwind-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = dir.appendingPathComponent("capture.c").path
        let bin = dir.appendingPathComponent("capture").path
        try captureSource.write(toFile: src, atomically: true, encoding: .utf8)
        do {
            try run("/usr/bin/env", ["cc"] + flags + ["-o", bin, src])
        } catch {
            // Only a missing compiler is a reason to skip; a compile failure is a failure.
            guard TestFixtures.findExecutable("cc") != nil else { throw XCTSkip("cc not installed") }
            throw error
        }
        let c = Capture(binary: bin, output: try run(bin, []))
        XCTAssertEqual(c.registers.count, 17)
        XCTAssertFalse(c.stack.isEmpty)
        Self.cached[key] = c
        return c
    }

    @discardableResult
    private func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "DwarfUnwinderTests", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(tool) \(args) failed"])
        }
        return String(decoding: data, as: UTF8.self)
    }

    func testPerfRegistersMapToDwarfOrder() {
        // perf order: AX BX CX DX SI DI BP SP IP R8..R15, given as 100 + perf register number.
        let perfNumbers = [0, 1, 2, 3, 4, 5, 6, 7, 8] + Array(16...23)
        XCTAssertEqual(perfNumbers, UserRegisters.sampled)
        let perf = perfNumbers.map { UInt64(100 + $0) }
        let dwarf = DwarfRegisters.dwarfOrder(fromPerf: perf)
        // DWARF: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip.
        XCTAssertEqual(dwarf, [100, 103, 102, 101, 104, 105, 106, 107,
                               116, 117, 118, 119, 120, 121, 122, 123, 108])
    }

    func testLoadBiasMatchesTheDynamicLinker() throws {
        let c = try capture(flags: ["-O2", "-fomit-frame-pointer"])
        var checked = 0
        for m in c.mappings where m.path.hasPrefix("/") {
            let base = (m.path as NSString).lastPathComponent
            guard let expected = c.biases.first(where: { b in
                b.name.isEmpty ? m.path == c.binary : (b.name as NSString).lastPathComponent == base
            }) else { continue }
            let layout = try XCTUnwrap(ElfLayout(path: m.path), m.path)
            XCTAssertEqual(layout.bias(mappingStart: m.start.rawValue, fileOffset: m.fileOffset), expected.bias, m.path)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 2) // the program and libc at least
    }

    func testBiasUsesTheSegmentHoldingTheOffset() {
        // A segment whose p_offset - p_vaddr differs from the first one's (lld-style layouts).
        let layout = ElfLayout(isExecutable: false, loads: [
            .init(offset: 0, vaddr: 0, fileSize: 0x1000, executable: false),
            .init(offset: 0x1000, vaddr: 0x201000, fileSize: 0x3000, executable: true),
        ])
        XCTAssertEqual(layout.bias(mappingStart: 0x7f00_0000_0000, fileOffset: 0x1000), 0x7f00_0000_0000 - 0x201000)
        XCTAssertEqual(ElfLayout(isExecutable: true, loads: layout.loads).bias(mappingStart: 0x401000, fileOffset: 0x1000), 0)
    }

    private func assertMatchesBacktrace(_ c: Capture, file: StaticString = #filePath, line: UInt = #line) {
        let unwinder = DwarfUnwinder()
        let stack = unwinder.unwindUser(c.sample(), process: c.process())
        let frames = stack.frames.map(\.address.rawValue)
        XCTAssertEqual(frames.first, c.registers[UserRegisters.ipIndex], file: file, line: line)
        XCTAssertEqual(stack.frames.first?.isReturnAddress, false, file: file, line: line)
        XCTAssertTrue(stack.frames.dropFirst().allSatisfy(\.isReturnAddress), file: file, line: line)
        // backtrace()[0] is its own call site in capture(); the callers follow.
        XCTAssertEqual(Array(frames.dropFirst()), Array(c.backtrace.dropFirst()), file: file, line: line)
        XCTAssertFalse(stack.truncated, "\(unwinder.statistics)", file: file, line: line)
    }

    func testUnwindMatchesGlibcBacktraceWithoutFramePointers() throws {
        assertMatchesBacktrace(try capture(flags: ["-O2", "-fomit-frame-pointer"]))
    }

    func testUnwindMatchesGlibcBacktraceNonPIE() throws {
        assertMatchesBacktrace(try capture(flags: ["-O1", "-fomit-frame-pointer", "-no-pie", "-fno-pie"]))
    }

    func testShortCopiedStackIsTruncated() throws {
        let c = try capture(flags: ["-O2", "-fomit-frame-pointer"])
        let unwinder = DwarfUnwinder()
        let stack = unwinder.unwindUser(c.sample(stackBytes: 16), process: c.process())
        XCTAssertTrue(stack.truncated)
        XCTAssertGreaterThanOrEqual(stack.frames.count, 1)
        XCTAssertLessThan(stack.frames.count, c.backtrace.count)
        XCTAssertEqual(unwinder.statistics.stackExhausted, 1)
    }

    /// The state in `function`'s epilogue just after it restored rbp (`pop %rbp` or `leave`), as a
    /// sample taken there would have it: rsp at the return address, rbp the caller's, and the
    /// slots the registers were saved in below rsp, outside the copied stack. `returnAddress` is
    /// what the function returns to (its backtrace() entry).
    private func sampleInEpilogue(_ c: Capture, function: String, returnAddress: UInt64) throws -> SampleRecord {
        guard let (address, code) = c.code[function] else { throw FixtureError("no code of \(function)") }
        // The function's own bytes only (nm -S gives its size), so the search cannot end in the next one.
        let nm = try run("/usr/bin/env", ["nm", "-S", "--defined-only", c.binary])
        guard let size = nm.split(separator: "\n").map({ $0.split(separator: " ") })
            .first(where: { $0.count == 4 && $0[3] == function }).flatMap({ Int($0[1], radix: 16) }) else {
            throw FixtureError("nm gives no size for \(function)")
        }
        let bytes = Array(code.prefix(size))
        // The function ends in its one ret; the last `pop %rbp` (5d) or `leave` (c9) before it
        // restores rbp (found without the unwinder's own decoder, which is under test).
        guard let ret = bytes.lastIndex(of: 0xc3), let restored = bytes[..<ret].lastIndex(where: { $0 == 0x5d || $0 == 0xc9 }) else {
            throw FixtureError("no 'pop %rbp' or 'leave' before the ret of \(function): \(bytes)")
        }
        func word(_ address: UInt64) -> UInt64 {
            let at = Int(address - c.registers[UserRegisters.spIndex])
            return c.stack[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        // The slot holding the return address: the highest copy, since capture()'s own `bt`
        // array below it holds the same value.
        let sp = c.registers[UserRegisters.spIndex]
        guard let slot = stride(from: sp, to: sp + UInt64(c.stack.count - 8), by: 8).reversed().first(where: { word($0) == returnAddress }) else {
            throw FixtureError("\(function)'s return address is not on the captured stack")
        }
        var regs = c.registers
        regs[UserRegisters.ipIndex] = address + UInt64(restored + 1)
        regs[UserRegisters.spIndex] = slot
        regs[6] = word(slot - 8) // rbp: the caller's, pushed right under the return address
        var s = c.sample()
        s.ip = regs[UserRegisters.ipIndex]
        s.userRegisters = regs
        s.userStack = Array(c.stack[Int(slot - sp)...])
        return s
    }

    func testLeafInItsEpilogueUnwindsThroughRbpBasedCallers() throws {
        // With frame pointers the callers find their CFA from rbp. After `pop %rbp` / `leave` the
        // CFI still says rbp is saved at CFA-16, a slot below rsp that the kernel does not copy;
        // the unwinder must take the register's current (restored) value instead of ending the
        // stack there. level3 ends in `leave; ret`; gcc's level2 in `pop %rbp; add $0x2,%eax; ret`.
        let c = try capture(flags: ["-O2", "-fno-omit-frame-pointer"])
        for (function, depth) in [("level3", 2), ("level2", 3)] {
            let sample = try sampleInEpilogue(c, function: function, returnAddress: c.backtrace[depth])
            let unwinder = DwarfUnwinder()
            let stack = unwinder.unwindUser(sample, process: c.process())
            let frames = stack.frames.map(\.address.rawValue)
            XCTAssertEqual(frames.first, sample.ip, function)
            XCTAssertEqual(Array(frames.dropFirst()), Array(c.backtrace.dropFirst(depth)), "\(function): \(unwinder.statistics)")
            XCTAssertFalse(stack.truncated, "\(function): \(unwinder.statistics)")
        }
    }

    func testEpiloguesAreRecognizedUpToTheirReturn() {
        let yes: [[UInt8]] = [
            [0xc3], [0xf3, 0xc3], [0xc2, 0x08, 0x00],
            [0x5d, 0xc3], // pop %rbp; ret
            [0x5b, 0x41, 0x5c, 0x41, 0x5d, 0x41, 0x5e, 0x41, 0x5f, 0x5d, 0xc3], // pop rbx, r12-r15, rbp
            [0x5d, 0x83, 0xc0, 0x02, 0xc3], // pop %rbp; add $0x2,%eax; ret (GCC)
            [0x5d, 0x8d, 0x04, 0x40, 0xc3], // pop %rbp; lea (%rax,%rax,2),%eax; ret (GCC)
            [0x89, 0xd8, 0xc3], // mov %ebx,%eax: reads rbx, writes rax
            [0x48, 0x8b, 0x44, 0x24, 0x10, 0xc3], // mov 0x10(%rsp),%rax: a load into a scratch register
            [0xc5, 0xf8, 0x77, 0x5d, 0xc3], // vzeroupper; pop %rbp; ret
            [0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3], // mov $1,%eax
            [0x58, 0xc3], // pop %rax
            [0x0f, 0xb6, 0xc0, 0x5d, 0xc3], // movzbl %al,%eax
            [0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3], // nopl 0x0(%rax,%rax,1)
        ]
        for code in yes { XCTAssertTrue(Epilogue.reachesReturn(code), "\(code)") }
        let no: [[UInt8]] = [
            [], [0x5d], [0x83, 0xc0, 0x02], // no ret
            [0x48, 0x8b, 0x5c, 0x24, 0xf8, 0xc3], // mov -8(%rsp),%rbx: restores rbx from the red zone
            [0x89, 0xc3, 0xc3], // mov %eax,%ebx
            [0x4c, 0x89, 0xc5, 0xc3], // mov %r8,%rbp
            [0x41, 0xbc, 0x01, 0x00, 0x00, 0x00, 0xc3], // mov $1,%r12d
            [0x48, 0x83, 0xc4, 0x08, 0xc3], // add $8,%rsp
            [0x55, 0xc3], // push %rbp
            [0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3], // call
            [0xeb, 0x00, 0xc3], // jmp
            [0xc9, 0xc3], // leave: writes rbp and rsp
        ]
        for code in no { XCTAssertFalse(Epilogue.reachesReturn(code), "\(code)") }
        // Bounded: a long run of harmless instructions is not followed to a distant ret.
        XCTAssertFalse(Epilogue.reachesReturn([UInt8](repeating: 0x90, count: 40) + [0xc3]))
    }

    func testDepthCapTruncates() throws {
        let c = try capture(flags: ["-O2", "-fomit-frame-pointer"])
        let unwinder = DwarfUnwinder()
        unwinder.maxFrames = 3
        let stack = unwinder.unwindUser(c.sample(), process: c.process())
        XCTAssertEqual(stack.frames.count, 3)
        XCTAssertTrue(stack.truncated)
    }

    func testOneSessionPerProcessWithIncrementalMappings() throws {
        let c = try capture(flags: ["-O2", "-fomit-frame-pointer"])
        let unwinder = DwarfUnwinder()
        // First only the program itself is known: the walk stops in libc (no module there).
        var process = c.process(only: { $0.path == c.binary })
        let partial = unwinder.unwindUser(c.sample(), process: process)
        XCTAssertLessThan(partial.frames.count, c.backtrace.count)
        let modulesBefore = unwinder.statistics.modules
        // Then the libraries appear (new MMAP records bump the generation): same session, more modules.
        for m in c.mappings where m.path != c.binary { process.insert(m) }
        let full = unwinder.unwindUser(c.sample(), process: process)
        XCTAssertEqual(Array(full.frames.dropFirst().map(\.address.rawValue)), Array(c.backtrace.dropFirst()))
        XCTAssertEqual(unwinder.statistics.sessions, 1)
        XCTAssertGreaterThan(unwinder.statistics.modules, modulesBefore)
        // Repeated samples reuse it.
        for _ in 0..<10 { _ = unwinder.unwindUser(c.sample(), process: process) }
        XCTAssertEqual(unwinder.statistics.sessions, 1)
        XCTAssertEqual(unwinder.cachedProcessCount, 1)
        // A second process gets its own; forgetting drops it.
        _ = unwinder.unwindUser(c.sample(pid: 777), process: c.process(pid: 777))
        XCTAssertEqual(unwinder.cachedProcessCount, 2)
        unwinder.forgetProcess(777)
        unwinder.forgetProcess(4242)
        XCTAssertEqual(unwinder.cachedProcessCount, 0)
    }

    func testSamplesWithoutRegistersKeepTheIP() {
        let unwinder = DwarfUnwinder()
        var s = SampleRecord()
        s.ip = 0x1234
        s.cpuMode = .user
        let p = ProcessState(pid: 1, name: "x", mappings: [], generation: 1, threads: [:])
        XCTAssertEqual(unwinder.unwindUser(s, process: p).frames.map(\.address.rawValue), [0x1234])
        s.cpuMode = .kernel
        XCTAssertEqual(unwinder.unwindUser(s, process: p).frames, [])
    }

    /// The per-process session is reused across samples (the cost of that is measured in
    /// bench/stages, not here): every later unwind of the same sample gives the first one's frames.
    func testReusedSessionGivesTheSameStackEveryTime() throws {
        let c = try capture(flags: ["-O2", "-fomit-frame-pointer"])
        let unwinder = DwarfUnwinder()
        let process = c.process()
        let sample = c.sample()
        let first = unwinder.unwindUser(sample, process: process).frames.map(\.address.rawValue)
        XCTAssertGreaterThan(first.count, 2)
        for i in 0..<2000 {
            let again = unwinder.unwindUser(sample, process: process).frames.map(\.address.rawValue)
            if again != first { XCTFail("unwind \(i) differs: \(again) vs \(first)"); break }
        }
    }
}

/// The kernel's frame-pointer walk through code without frame pointers reads data as return
/// addresses (text read as an address, 0x4154454e4f4d5f42, in a new user's `-g` leak report):
/// the first return address in no executable mapping ends the stack, marked truncated.
final class FramePointerCheckTests: XCTestCase {
    func testAReturnAddressOutsideEveryMappingEndsTheStack() {
        let unwinder = DwarfUnwinder()
        let text = Mapping(start: ProcessAddress(0x400000), end: ProcessAddress(0x401000), fileOffset: 0, path: "/nonexistent/prog")
        let process = ProcessState(pid: 999_999, name: "x", mappings: [text], generation: 1, threads: [:])
        func frame(_ a: UInt64, returnAddress: Bool = true) -> StackFrame {
            StackFrame(address: ProcessAddress(a), isReturnAddress: returnAddress, isKernel: false)
        }
        var stack = UnwoundStack(frames: [frame(0x400100, returnAddress: false), frame(0x400200), frame(0x4154454e4f4d5f42), frame(0x400300)], truncated: false)
        unwinder.checkFramePointerStack(&stack, process: process)
        XCTAssertEqual(stack.frames.map(\.address.rawValue), [0x400100, 0x400200])
        XCTAssertTrue(stack.truncated)
        // A walk that stays in mapped code keeps every frame.
        var good = UnwoundStack(frames: [frame(0x400100, returnAddress: false), frame(0x400200), frame(0x400300)], truncated: false)
        unwinder.checkFramePointerStack(&good, process: process)
        XCTAssertEqual(good.frames.count, 3)
    }
}
