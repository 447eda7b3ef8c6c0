#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// Stacks and mappings that must be true to the process (issue 20, "Stacks and names that are
/// wrong"): no frame invented from memory outside the copied stack, build-ids for processes sprof
/// attached to, DWARF stacks as deep as the copy allows.
final class StackTruthTests: XCTestCase {
    override func setUpWithError() throws {
        try SprofCLI.requirePerfEvents()
    }

    /// The GNU build-id `readelf -n` prints for `path`, lower-case hex.
    private func readelfBuildID(_ path: String) throws -> String {
        guard let readelf = TestFixtures.findExecutable("readelf") else { throw XCTSkip("readelf not installed") }
        let r = try TestFixtures.run(readelf, ["-n", path])
        guard let line = r.stdout.split(separator: "\n").first(where: { $0.contains("Build ID:") }) else {
            throw XCTSkip("\(path) has no build-id note")
        }
        return String(line.split(separator: ":").last!).trimmingCharacters(in: .whitespaces)
    }

    func testAttachedProcessMappingsCarryBuildIDs() throws {
        let busy = try SprofCLI.buildC("busy")
        let target = try BackgroundProcess(busy, ["0"])
        defer { target.send(SIGKILL) }
        XCTAssertTrue(ProcInfo.waitUntil { (ProcInfo.cpuTicks(target.pid) ?? 0) >= 5 })
        let maps = try String(contentsOfFile: "/proc/\(target.pid)/maps", encoding: .utf8)
        guard let libcLine = maps.split(separator: "\n").first(where: { $0.contains("/libc.so") }),
              let libc = libcLine.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init) else {
            throw XCTSkip("the fixture maps no libc.so")
        }
        let expected = try readelfBuildID(libc)
        let prefix = SprofCLI.outputPrefix("attached-ids")
        let r = try SprofCLI.run(["run", "--call-graph", "dwarf", "-o", prefix, "-p", String(target.pid), "--duration", "1"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let profile = try PprofFormat.decode(Array(try Data(contentsOf: URL(fileURLWithPath: prefix + ".pb.gz"))))
        let libcMappings = profile.mappings.filter { $0.path == libc }
        XCTAssertFalse(libcMappings.isEmpty, "no libc mapping in \(profile.mappings.map(\.path))")
        for m in libcMappings {
            XCTAssertEqual(m.buildID, expected, "libc's mapping \(String(m.start, radix: 16)) in the pprof")
        }
    }

    private func profile(_ command: [String], options: [String], name: String) throws -> (shape: ProfileShape, stderr: String) {
        let prefix = SprofCLI.outputPrefix(name)
        let result = try SprofCLI.run(["run", "-o", prefix] + options + ["--"] + command)
        XCTAssertEqual(result.status, 0, result.stderr)
        return (try ProfileShape(foldedFile: prefix + ".folded"), result.stderr)
    }

    // MARK: - Invented frames

    /// `Tests/Fixtures/go/callers.go` built with the Go toolchain, or a skip.
    private func goCallers() throws -> String {
        guard let go = TestFixtures.findExecutable("go") else { throw XCTSkip("go not installed") }
        let dir = TestFixtures.scratchDirectory.appendingPathComponent("go-callers")
        let binary = dir.appendingPathComponent("callers").path
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let source = TestFixtures.cFixturesDirectory.deletingLastPathComponent().appendingPathComponent("go/callers.go").path
        let env = TestFixtures.environment(adding: ["GOCACHE": dir.appendingPathComponent("cache").path, "GO111MODULE": "off",
                                                    "GOPATH": dir.appendingPathComponent("gopath").path, "CGO_ENABLED": "0"])
        let r = try TestFixtures.run(go, ["build", "-o", binary, source], environment: env, timeout: 300)
        guard r.status == 0 else { throw XCTSkip("go build failed: \(r.stderr)") }
        return binary
    }

    func testNoFrameIsInventedAboveGoSystemStack() throws {
        let callers = try goCallers()
        let (shape, _) = try profile([callers, "1.5"], options: ["--call-graph", "dwarf"], name: "go-callers")
        let onSystemStack = shape.stacks.filter { $0.frames.contains { $0.hasPrefix("runtime.systemstack") } }
        let underSystemStack = onSystemStack.reduce(UInt64(0)) { $0 + $1.count }
        XCTAssertGreaterThan(underSystemStack, 50, "runtime.Callers runs on the system stack: \(shape.total) samples")
        for stack in shape.stacks {
            XCTAssertFalse(stack.frames.contains { $0.hasPrefix("[unmapped") }, "a frame in no mapping: \(stack.frames)")
        }
        // Code on the g0 stack was called through runtime.systemstack, whose callers live on the
        // goroutine's stack: above the outermost systemstack frame, only the truncation marker or a
        // thread root (runtime.mstart) can be true.
        for stack in onSystemStack {
            let first = stack.frames.firstIndex { $0.hasPrefix("runtime.systemstack") }!
            // frames[0] is the process name.
            let above = stack.frames[1..<first].filter { $0 != "[truncated]" && !$0.hasPrefix("runtime.mstart") && !$0.hasPrefix("runtime.rt0_go") }
            XCTAssertTrue(above.isEmpty, "frames above runtime.systemstack: \(stack.frames)")
        }
    }

    // MARK: - Depth

    func testDwarfStackFollowsTheWholeCopy() throws {
        let binary = try TestFixtures.buildC("recurse", flags: TestFixtures.noFramePointerFlags)
        // 6000 frames of 16 bytes (clang -O2: a return address and one pushed register) need more
        // than the largest copy the kernel makes (65528 bytes).
        // Without the reads of the live stack past the copy (SPROF_LIVE_STACK=0), which would
        // reach main here: this is about the copy alone.
        let (shape, stderr) = try SprofCLI.runCopyOnly(SprofCLI.outputPrefix("deep"), ["--call-graph", "dwarf,65528"], [binary, "6000", "0.5"])
        var bottom: UInt64 = 0, deepest = 0
        for stack in shape.stacks where stack.frames.contains(where: { $0.contains("recurse_bottom") }) {
            bottom += stack.count
            deepest = max(deepest, stack.frames.filter { $0.contains("recurse_step") }.count)
            XCTAssertTrue(stack.frames.contains("[truncated]"), "a stack cut by the copy's end must be marked")
        }
        XCTAssertEqual(Double(bottom), 0.5 * 999, accuracy: 0.2 * 0.5 * 999)
        // The copy holds about 4,090 of recurse_step's frames, and no cap of sprof's own (it
        // stopped at 1,023) may cut them shorter.
        let frameBytes = 16
        XCTAssertGreaterThanOrEqual(deepest, 65528 / frameBytes - 100, "the unwinder stopped before the copy's end")
        XCTAssertTrue(stderr.contains("stack copy ran out"), "the cut must be explained: \(stderr)")
    }

    // MARK: - Unreadable unwind information

    func testZstdCompressedDebugFrameIsNamedAndItsStacksMarked() throws {
        guard let objcopy = TestFixtures.findExecutable("objcopy") else { throw XCTSkip("objcopy not installed") }
        // gcc without asynchronous unwind tables: the program's own functions have .debug_frame
        // CFI only, no .eh_frame.
        let plain = try TestFixtures.buildC("fp_chain", flags: ["-O2", "-g", "-fomit-frame-pointer", "-fno-asynchronous-unwind-tables"], compiler: "cc")
        let zstd = plain + "-zstd", zlib = plain + "-zlib"
        for (kind, output) in [("zstd", zstd), ("zlib", zlib)] {
            let r = try TestFixtures.run(objcopy, ["--compress-debug-sections=\(kind)", plain, output])
            guard r.status == 0 else { throw XCTSkip("objcopy cannot compress with \(kind): \(r.stderr)") }
        }
        let leaves = ["leaf_sixty", "leaf_thirty", "leaf_ten"]
        // The same program with zlib: libdw reads it, and the stacks reach main.
        let (readable, readableNotes) = try profile([zlib, "0.5"], options: ["--call-graph", "dwarf"], name: "zlib")
        let inLeavesZlib = leaves.reduce(UInt64(0)) { $0 + readable.samples(containing: $1) }
        XCTAssertGreaterThan(inLeavesZlib, 200)
        XCTAssertGreaterThanOrEqual(Double(readable.samples(withChain: ["main", "run_all", "do_round"])), 0.95 * Double(inLeavesZlib))
        XCTAssertFalse(readableNotes.contains("zstd"), readableNotes)

        let (shape, stderr) = try profile([zstd, "0.5"], options: ["--call-graph", "dwarf"], name: "zstd")
        let inLeaves = leaves.reduce(UInt64(0)) { $0 + shape.samples(containing: $1) }
        XCTAssertGreaterThan(inLeaves, 200)
        XCTAssertLessThan(Double(shape.samples(withChain: ["main", "run_all"])), 0.05 * Double(inLeaves), "libdw cannot read this CFI")
        let marked = leaves.reduce(UInt64(0)) { total, leaf in
            total + shape.stacks.filter { $0.frames.contains("[truncated]") && $0.frames.contains { $0.contains(leaf) } }.reduce(0) { $0 + $1.count }
        }
        XCTAssertGreaterThanOrEqual(Double(marked), 0.95 * Double(inLeaves), "cut stacks must be marked [truncated]")
        let notes = stderr.split(separator: "\n").filter { $0.contains("unwind information") }
        XCTAssertEqual(notes.count, 1, stderr)
        XCTAssertTrue(notes.first?.contains(zstd + ":") ?? false, "the notice names the file: \(stderr)")
        XCTAssertTrue(notes.first?.contains("zstd") ?? false, stderr)
        XCTAssertTrue(notes.first?.contains("elfutils") ?? false, stderr)
    }

    // MARK: - Epilogues

    func testLeafInItsEpilogueKeepsItsCallers() throws {
        // The leaf spends nearly all its time between `pop %rbp` and `ret`, under a caller whose
        // CFA is rbp-based: without the epilogue rule (Epilogue.swift) these stacks end after two
        // frames, marked truncated.
        let binary = try TestFixtures.buildC("epilogue", flags: ["-O2", "-g", "-fno-omit-frame-pointer"])
        let (shape, _) = try profile([binary, "1.0"], options: ["--call-graph", "dwarf"], name: "epilogue")
        let inLeaf = shape.samples(containing: "epi_leaf")
        XCTAssertGreaterThanOrEqual(Double(inLeaf), 0.8 * Double(shape.total), "the fixture's time is in epi_leaf")
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["main", "run_epilogue", "epi_leaf"])), 0.97 * Double(inLeaf))
        XCTAssertLessThanOrEqual(Double(shape.samples(containing: "[truncated]")), 0.03 * Double(shape.total))
    }

    // MARK: - 32-bit processes

    func testI386StacksAreMarkedAndCounted() throws {
        let binary: String
        do {
            binary = try TestFixtures.buildC("fp_chain", flags: ["-m32", "-O2", "-g"], compiler: "cc")
        } catch {
            throw XCTSkip("gcc -m32 cannot build here (libc6-dev-i386 and gcc-multilib: scripts/setup.sh --test): \(error)")
        }
        let prefix = SprofCLI.outputPrefix("i386")
        let r = try SprofCLI.run(["run", "--call-graph", "dwarf", "-o", prefix, "--", binary, "0.5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let shape = try ProfileShape(foldedFile: prefix + ".folded")
        let summary = try RunSummary(stderr: r.stderr)
        XCTAssertGreaterThan(shape.total, 200, summary.line)
        let whole = shape.samples(withChain: ["main", "run_all", "do_round"])
        let marked = shape.stacks.filter { $0.frames.contains("[truncated]") }.reduce(UInt64(0)) { $0 + $1.count }
        // Every stack is either whole or marked, and the summary counts the marked ones.
        XCTAssertGreaterThanOrEqual(Double(whole + marked), 0.99 * Double(shape.total), "unmarked partial stacks: \(shape.stacks.prefix(5))")
        XCTAssertEqual(summary.truncated, marked, summary.line)
        if marked > 0 {
            XCTAssertTrue(r.stderr.contains("32-bit"), "the cut must be explained: \(r.stderr)")
        }
    }

    // MARK: - Past the kernel's stack copy

    func testStackDeeperThanAnyCopyReachesMainThroughTheLiveStack() throws {
        let binary = try TestFixtures.buildC("bigframes", flags: ["-O2", "-g", "-fomit-frame-pointer", "-fno-optimize-sibling-calls"])
        // Twelve 16 KiB frames: main is about 200 KiB above the leaf, three times the largest copy.
        // The leaf then sleeps 3 s in place (from when the stack was read as a sample was
        // unwound; it is now read as the sample is taken from the ring buffer: see below).
        let prefix = SprofCLI.outputPrefix("bigframes")
        let r = try SprofCLI.run(["run", "--call-graph", "dwarf,65528", "-o", prefix, "--", binary, "12", "0.5", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let shape = try ProfileShape(foldedFile: prefix + ".folded")
        let summary = try RunSummary(stderr: r.stderr)
        let bottom = shape.samples(containing: "big_bottom")
        // About 0.5 s of CPU at 999 Hz when the machine is quiet; fewer when it is loaded (the
        // fixture spins by the clock): enough for the share below to mean something.
        XCTAssertGreaterThan(bottom, 150, summary.line)
        var whole: UInt64 = 0
        for stack in shape.stacks where stack.frames.contains(where: { $0.contains("big_bottom") }) {
            let frames = stack.frames.filter { $0.contains("big_frame") }.count
            if stack.frames.contains("main") && frames == 12 { whole += stack.count }
        }
        XCTAssertGreaterThanOrEqual(Double(whole), 0.95 * Double(bottom), "stacks reaching main with all 12 frames: \(summary.line)")
        XCTAssertTrue(summary.line.contains("read past the stack copy"), summary.line)
        // The reader's counts of those reads are in the provenance (not the summary line).
        let profile = try PprofFormat.decode(Array(try XCTUnwrap(FileManager.default.contents(atPath: prefix + ".pb.gz"))))
        XCTAssertGreaterThanOrEqual(profile.statistics.liveStackReads, Int(whole), profile.metadata.provenanceLines.joined(separator: "\n"))
        XCTAssertLessThanOrEqual(profile.statistics.liveStackChanged, profile.statistics.liveStackReads)
        XCTAssertTrue(profile.metadata.provenanceLines.contains { $0.hasPrefix("live stack reads: ") })
        XCTAssertFalse(summary.line.contains("live stack"), summary.line)
    }

    /// The live stack beyond a full copy is read as the reader takes the sample from the ring
    /// buffer, not when the sample is unwound: three copies of bigframes spin on this 2-CPU
    /// machine (the consumer, at idle priority, gets next to nothing until they are done) and
    /// exit at once, so a sprof that read the stack at unwind time found the processes gone
    /// and cut nearly every stack (issue 20: GNU sort reached the root in 84.6% of samples).
    func testLiveStackIsReadWhenTheSampleIsReadNotWhenUnwound() throws {
        let binary = try TestFixtures.buildC("bigframes", flags: ["-O2", "-g", "-fomit-frame-pointer", "-fno-optimize-sibling-calls"])
        let copies = max(3, ProcessInfo.processInfo.activeProcessorCount + 1)
        let prefix = SprofCLI.outputPrefix("bigframes-busy")
        let r = try SprofCLI.run(["run", "--call-graph", "dwarf,65528", "-o", prefix, "--", "/bin/sh", "-c",
                                  "i=0; while [ $i -lt \(copies) ]; do \"$0\" 12 1 0 & i=$((i+1)); done; wait", binary])
        XCTAssertEqual(r.status, 0, r.stderr)
        let shape = try ProfileShape(foldedFile: prefix + ".folded")
        let summary = try RunSummary(stderr: r.stderr)
        let bottom = shape.samples(containing: "big_bottom")
        // The lost samples count too: copies+1 CPU-bound processes on 2 CPUs may keep the reader
        // off long enough for the buffers to fill (2,305 lost in one full-suite run).
        XCTAssertGreaterThan(Double(bottom + summary.lost), 0.5 * Double(copies) * 999, summary.line)
        var whole: UInt64 = 0
        for stack in shape.stacks where stack.frames.contains(where: { $0.contains("big_bottom") }) {
            let frames = stack.frames.filter { $0.contains("big_frame") }.count
            if stack.frames.contains("main") && frames == 12 { whole += stack.count }
        }
        // 80%: with copies+1 spinning processes on 2 CPUs some live reads come too late (the
        // process has exited or moved on): 92.8% and 94.6% reached main in 2 of 4 runs on
        // 2026-12-06, the other two above 95%, and CI's machine may be busier. A read at unwind
        // time cut nearly every stack, so the bound keeps its meaning with room for the load.
        XCTAssertGreaterThanOrEqual(Double(whole), 0.80 * Double(bottom), "stacks reaching main with all 12 frames: \(summary.line)")
        // Each thread spins under the same callers: its reads share one block, kept and handed
        // over once, instead of ~140 KiB copied (and spilled) per sample, which took a third of
        // a CPU from the reader and lost samples (CI: 967 lost, 255 stacks cut).
        let profile = try PprofFormat.decode(Array(try XCTUnwrap(FileManager.default.contents(atPath: prefix + ".pb.gz"))))
        XCTAssertGreaterThanOrEqual(Double(profile.statistics.liveStackShared), 0.8 * Double(profile.statistics.liveStackReads),
                                    profile.metadata.provenanceLines.joined(separator: "\n"))
    }
}
