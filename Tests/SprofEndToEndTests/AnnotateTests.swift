import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `sprof annotate`: per-line and per-instruction samples against a fixture whose split is known
/// by design (Tests/Fixtures/c/lines.c: 60/30/10 iterations of the same dependent chain).
final class AnnotateTests: XCTestCase {
    /// -O1 keeps each statement's loop a loop (no unrolling), and the linker's build-id lets a
    /// rebuilt binary be told from the recorded one.
    static let lineFlags = ["-O1", "-g", "-fno-omit-frame-pointer", "-Wl,--build-id"]

    private func record(_ binary: String, rounds: String = "15000000", options: [String] = []) throws -> String {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("lines")
        let r = try SprofCLI.run(["run", "-q", "-o", prefix] + options + ["--", binary, rounds], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        return prefix + ".pb.gz"
    }

    /// The self samples of the source row whose text contains `marker`.
    private func selfSamples(_ listing: String, _ marker: String) -> Int? {
        guard let row = listing.split(separator: "\n").first(where: { $0.contains(marker) && !$0.contains("ROUTINE") }) else { return nil }
        let first = row.split(separator: " ", omittingEmptySubsequences: true).first.map(String.init)
        return first == "." ? 0 : first.flatMap { Int($0) }
    }

    func testAnnotateSplitsTheLoopSixtyThirtyTen() throws {
        let binary = try SprofCLI.buildC("lines", flags: Self.lineFlags)
        // Each sample lands on a line with its share's probability: at the default 999 Hz (~1,600
        // samples) the 60% line's share has σ ≈ 1.2 points and ±3 was 2.5σ (~1% of runs failed).
        // At 4,999 Hz (~8,000 samples) σ ≈ 0.55 and ±3 is 5.5σ. Frame-pointer stacks: only the
        // leaf address matters here, and 32 KiB DWARF copies at that rate would be lost.
        let profile = try record(binary, options: ["-F", "4999", "--call-graph", "fp"])
        let r = try SprofCLI.run(["annotate", "hot_lines", profile])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("ROUTINE ======================== hot_lines in "), r.stdout)
        // Lines without samples stay for context: the function's opening and closing lines.
        XCTAssertTrue(r.stdout.contains("for (unsigned long r = 0; r < rounds; r++) {"), r.stdout)
        let sixty = try XCTUnwrap(selfSamples(r.stdout, "LINE_SIXTY"), r.stdout)
        let thirty = try XCTUnwrap(selfSamples(r.stdout, "LINE_THIRTY"), r.stdout)
        let ten = try XCTUnwrap(selfSamples(r.stdout, "LINE_TEN"), r.stdout)
        let sum = Double(sixty + thirty + ten)
        XCTAssertGreaterThan(sum, 300, "too few samples for a split:\n\(r.stdout)")
        XCTAssertEqual(Double(sixty) / sum * 100, 60, accuracy: 3, r.stdout)
        XCTAssertEqual(Double(thirty) / sum * 100, 30, accuracy: 3, r.stdout)
        XCTAssertEqual(Double(ten) / sum * 100, 10, accuracy: 3, r.stdout)
    }

    func testAsmMarksTheHottestInstructionInsideTheSixtyLoop() throws {
        let binary = try SprofCLI.buildC("lines", flags: Self.lineFlags)
        let profile = try record(binary, rounds: "8000000")
        let r = try SprofCLI.run(["annotate", "hot_lines", profile, "--asm"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = r.stdout.split(separator: "\n")
        XCTAssertTrue(rows.contains { $0.contains("imul") }, r.stdout)
        // The mark column of instruction rows (source rows hold `x >> 17` too).
        func marked(_ row: Substring) -> Bool { row.count > 22 && Array(row)[20..<22] == [">", ">"] }
        let hottest = try XCTUnwrap(rows.firstIndex(where: marked), r.stdout)
        XCTAssertEqual(rows.filter(marked).count, 1, r.stdout)
        // The nearest source line above the hottest instruction is the 60% statement.
        let source = try XCTUnwrap(rows[..<hottest].last { $0.contains("lines.c:") }, r.stdout)
        XCTAssertTrue(source.contains("LINE_SIXTY"), "hottest instruction under \(source):\n\(r.stdout)")
    }

    /// A stripped binary: sprof names its functions by their `.eh_frame` start (`[lines-s+0x…]`),
    /// and `--asm` disassembles them by that range, where it said "no disassembly" and exited 0.
    func testAsmDisassemblesAStrippedFunctionByAddress() throws {
        let built = try SprofCLI.buildC("lines", flags: Self.lineFlags)
        let stripped = SprofCLI.outputPrefix("lines-s")
        let strip = try TestFixtures.run("/usr/bin/strip", ["-o", stripped, built])
        XCTAssertEqual(strip.status, 0, strip.stderr)
        let profile = try record(stripped, rounds: "8000000", options: ["--call-graph", "fp"])
        let name = (stripped as NSString).lastPathComponent
        let r = try SprofCLI.run(["annotate", "--asm", "^\\[\(NSRegularExpression.escapedPattern(for: name))\\+", profile])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("ROUTINE ======================== [\(name)+0x"), r.stdout + r.stderr)
        XCTAssertFalse(r.stdout.contains("no disassembly") || r.stderr.contains("no disassembly"), r.stdout + r.stderr)
        let rows = r.stdout.split(separator: "\n")
        XCTAssertTrue(rows.contains { $0.contains("imul") }, r.stdout)
        XCTAssertTrue(rows.contains { $0.count > 22 && Array($0)[20..<22] == [">", ">"] }, "the hottest instruction is marked:\n\(r.stdout)")
    }

    /// A kernel function has no image to disassemble: one `sprof:` line says so and, nothing
    /// being listed, the status is 1 (it was a stdout line without the prefix, and 0).
    func testAsmOfAKernelFunctionIsOneLineAndStatusOne() throws {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let kernel = b.mapping(.init(start: 0xffff_ffff_8100_0000, limit: 0xffff_ffff_8200_0000, path: "[kernel.kallsyms]"))
        let function = b.function(named: "finish_task_switch")
        let location = b.location(.init(address: 0xffff_ffff_8100_1234, mapping: kernel, lines: [.init(function: function)], kind: .kernel))
        let stack = b.stack([location])
        b.add(stack: stack, thread: nil, values: [5])
        let path = SprofCLI.outputPrefix("kernel") + ".pb.gz"
        try Data(try PprofFormat.encode(b.build(metadata: .init()))).write(to: URL(fileURLWithPath: path))
        let r = try SprofCLI.run(["annotate", "--asm", "finish_task_switch", path])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("sprof: finish_task_switch: [kernel.kallsyms] is no file"), r.stderr)
    }

    /// `run -r 3`: three processes map the binary at three addresses; `--asm` gives one listing
    /// of the function with the samples of all three (it gave one per process), as the source
    /// view does.
    func testAsmMergesTheProcessesOfOneBinary() throws {
        let binary = try SprofCLI.buildC("lines", flags: Self.lineFlags)
        let profile = try record(binary, rounds: "3000000", options: ["-r", "3", "--call-graph", "fp"])
        let r = try SprofCLI.run(["annotate", "--asm", "hot_lines", profile])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.components(separatedBy: "ROUTINE ====").count - 1, 1, r.stdout)
        let source = try SprofCLI.run(["annotate", "hot_lines", profile])
        let ownSamples = try XCTUnwrap(source.stdout.split(separator: "\n").dropFirst().first.flatMap { Int($0.split(separator: " ").first ?? "") }, source.stdout)
        let listed = try XCTUnwrap(r.stdout.split(separator: "\n").dropFirst().first.flatMap { Int($0.split(separator: " ").first ?? "") }, r.stdout)
        XCTAssertEqual(listed, ownSamples, "the listing holds every run's samples of hot_lines:\n\(r.stdout)\n\(source.stdout)")
    }

    func testInlinedCodeIsAttributedToItsOwnLines() throws {
        let binary = try SprofCLI.buildC("inline")
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("inline")
        let rec = try SprofCLI.run(["run", "-q", "-o", prefix, "--", binary, "1500"], timeout: 300)
        XCTAssertEqual(rec.status, 0, rec.stderr)
        let inlined = try SprofCLI.run(["annotate", "^inlined_hot$", prefix + ".pb.gz"])
        XCTAssertEqual(inlined.status, 0, inlined.stderr)
        XCTAssertTrue(inlined.stdout.contains("ROUTINE ======================== inlined_hot in "), inlined.stdout)
        let bodyRows = inlined.stdout.split(separator: "\n").filter { $0.contains("x ^= x") }
        XCTAssertEqual(bodyRows.count, 3, inlined.stdout)
        XCTAssertGreaterThan(bodyRows.compactMap { Int($0.split(separator: " ").first ?? "") }.reduce(0, +), 0, inlined.stdout)
        // Its caller shows the same samples at the call site, as total, not self.
        let caller = try SprofCLI.run(["annotate", "^outer_caller$", prefix + ".pb.gz"])
        XCTAssertEqual(caller.status, 0, caller.stderr)
        XCTAssertFalse(caller.stdout.contains("x ^= x << 13"), "the inlined body belongs to inlined_hot:\n\(caller.stdout)")
        let call = try XCTUnwrap(caller.stdout.split(separator: "\n").first { $0.contains("inlined_hot(") }, caller.stdout)
        let row = Array(call)
        let own = Int(String(row[0..<10]).trimmingCharacters(in: .whitespaces)) ?? 0
        let total = try XCTUnwrap(Int(String(row[19..<29]).trimmingCharacters(in: .whitespaces)), caller.stdout)
        XCTAssertLessThan(own * 10, total, "the call site's samples are the inlined code's, total not self:\n\(caller.stdout)")
    }

    func testRebuiltBinaryIsNotAnnotated() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-annotate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let original = try SprofCLI.buildC("lines", flags: Self.lineFlags)
        let other = try SprofCLI.buildC("lines", flags: ["-O2", "-g", "-Wl,--build-id"])
        let binary = dir.appendingPathComponent("lines").path
        try FileManager.default.copyItem(atPath: original, toPath: binary)
        let profile = try record(binary, rounds: "2000000")
        try FileManager.default.removeItem(atPath: binary)
        try FileManager.default.copyItem(atPath: other, toPath: binary)
        for extra in [[], ["--asm"]] {
            let r = try SprofCLI.run(["annotate", "hot_lines", profile] + extra)
            // Nothing annotated is a failure, said on stderr; stdout holds listings only.
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stdout, "")
            let lines = r.stderr.split(separator: "\n")
            XCTAssertTrue(lines.contains { $0.contains("has changed since it was recorded") }, r.stderr)
            XCTAssertTrue(lines.last?.contains("nothing annotated") ?? false, r.stderr)
        }
    }

    func testMovedSourcesAreFoundWithSourcePrefix() throws {
        guard let clang = TestFixtures.findExecutable("clang") else { throw XCTSkip("clang not installed") }
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("sprof-annotate-\(UUID().uuidString)")
        let old = root.appendingPathComponent("build/src"), new = root.appendingPathComponent("moved/src")
        try fm.createDirectory(at: old, withIntermediateDirectories: true)
        try fm.createDirectory(at: new.deletingLastPathComponent(), withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: root) }
        try fm.copyItem(at: TestFixtures.cFixturesDirectory.appendingPathComponent("lines.c"), to: old.appendingPathComponent("lines.c"))
        let binary = root.appendingPathComponent("lines").path
        let cc = try TestFixtures.run(clang, Self.lineFlags + [old.appendingPathComponent("lines.c").path, "-o", binary])
        XCTAssertEqual(cc.status, 0, cc.stderr)
        let profile = try record(binary, rounds: "2000000")
        try fm.moveItem(at: old, to: new)
        let lost = try SprofCLI.run(["annotate", "hot_lines", profile])
        XCTAssertEqual(lost.status, 0, lost.stderr)
        XCTAssertFalse(lost.stdout.contains("LINE_SIXTY"), lost.stdout)
        XCTAssertEqual(lost.stderr.components(separatedBy: "cannot read source").count - 1, 1, "one notice:\n\(lost.stderr)")
        let found = try SprofCLI.run(["annotate", "hot_lines", profile, "--source-prefix", old.path + "=" + new.path])
        XCTAssertEqual(found.status, 0, found.stderr)
        XCTAssertTrue(found.stdout.contains("LINE_SIXTY"), found.stdout)
        XCTAssertFalse(found.stderr.contains("cannot read source"), found.stderr)
    }

    /// Source paths come from the debug info, or from a profile made elsewhere: one that names a
    /// FIFO (which blocks open and read forever) or /dev/zero (which never ends) is not read; each
    /// gets the one notice, and its rows keep their numbers and counts.
    func testSourcesThatAreNotRegularFilesAreNotRead() throws {
        let dir = URL(fileURLWithPath: SprofCLI.outputPrefix("sources"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fifo = dir.appendingPathComponent("fifo.c").path, zero = dir.appendingPathComponent("zero.c").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: zero, withDestinationPath: "/dev/zero")
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        for (name, file) in [("from_fifo", fifo), ("from_zero", zero)] {
            let f = b.function(Profile.Function(name: name, file: file))
            b.add(stack: b.stack([b.location(Profile.Location(lines: [.init(function: f, line: 3)]))]), thread: nil, values: [5])
        }
        let profile = dir.appendingPathComponent("p.pb.gz").path
        try Data(try PprofFormat.encode(b.build(metadata: .init()))).write(to: URL(fileURLWithPath: profile))
        let r = try SprofCLI.run(["annotate", "^from_", profile], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "cannot read source").count - 1, 2, r.stderr)
        XCTAssertEqual(r.stdout.components(separatedBy: "ROUTINE").count - 1, 2, r.stdout)
        XCTAssertTrue(r.stdout.contains("         5 "), r.stdout)
    }

    /// Folded stacks carry names only: nothing to put on lines or instructions. One line, status 1,
    /// rather than a listing of "(no line information)" rows or a misleading "no code of its own".
    func testFoldedInputIsRefusedWithOneLine() throws {
        let folded = SprofCLI.outputPrefix("annotate-folded") + ".folded"
        FileManager.default.createFile(atPath: folded, contents: Data("app;main;hot_lines 7\napp;main 3\n".utf8))
        for extra in [[], ["--asm"]] {
            let r = try SprofCLI.run(["annotate", "hot_lines", folded] + extra)
            XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("sprof: ") && r.stderr.contains("folded"), r.stderr)
            XCTAssertEqual(r.stdout, "")
        }
    }

    func testBadPatternAndNoMatchAreOneLineErrors() throws {
        let binary = try SprofCLI.buildC("lines", flags: Self.lineFlags)
        let profile = try record(binary, rounds: "500000")
        let bad = try SprofCLI.run(["annotate", "([", profile])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        let none = try SprofCLI.run(["annotate", "no_such_function_anywhere", profile])
        XCTAssertEqual(none.status, 1, none.stderr)
        XCTAssertTrue(none.stderr.hasPrefix("sprof: ") && none.stderr.contains("no function"), none.stderr)
        let prefix = try SprofCLI.run(["annotate", "hot_lines", profile, "--source-prefix", "nothing"])
        XCTAssertEqual(prefix.status, 2, prefix.stderr)
        // A mistyped debug root was accepted silently: it only showed as lines not found.
        let missing = try SprofCLI.run(["annotate", "hot_lines", profile, "--debug-dir", "/nonexistent/debug"])
        XCTAssertEqual(missing.status, 2, missing.stderr)
        XCTAssertTrue(missing.stderr.hasPrefix("sprof: --debug-dir /nonexistent/debug: no such directory; give a root of separate debug files (such as /usr/lib/debug)"), missing.stderr)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        let file = try SprofCLI.run(["annotate", "hot_lines", profile, "--debug-dir", profile])
        XCTAssertEqual(file.status, 2, file.stderr)
        XCTAssertTrue(file.stderr.contains("not a directory"), file.stderr)
        let slash = try SprofCLI.run(["annotate", "hot_lines", profile, "--debug-dir", profile + "/"])
        XCTAssertEqual(slash.status, 2, slash.stderr)
        XCTAssertTrue(slash.stderr.contains("not a directory"), slash.stderr)
        let existing = try SprofCLI.run(["annotate", "hot_lines", profile, "--debug-dir", NSTemporaryDirectory()])
        XCTAssertEqual(existing.status, 0, existing.stderr)
    }
}

/// `sprof report --lines` / `--addresses` on the same fixture.
final class ReportGranularityTests: XCTestCase {
    func testReportLinesGivesTheDesignedSplit() throws {
        let binary = try SprofCLI.buildC("lines", flags: AnnotateTests.lineFlags)
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("lines")
        let rec = try SprofCLI.run(["run", "-q", "-o", prefix, "--", binary, "8000000"], timeout: 300)
        XCTAssertEqual(rec.status, 0, rec.stderr)
        let r = try SprofCLI.run(["report", prefix + ".pb.gz", "--lines", "--format", "csv", "--limit", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = r.stdout.split(separator: "\n").dropFirst()
        XCTAssertEqual(rows.map { $0.split(separator: ",").last.map { String($0.split(separator: ":").last ?? "") } ?? "" }, ["11", "12", "13"], r.stdout)
        XCTAssertTrue(rows.allSatisfy { $0.contains("hot_lines ") && $0.contains("lines.c:") }, r.stdout)
        let a = try SprofCLI.run(["report", prefix + ".pb.gz", "--addresses", "--limit", "3"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let first = try XCTUnwrap(a.stdout.split(separator: "\n").dropFirst(2).first, a.stdout)
        XCTAssertTrue(first.contains("  0x") && first.contains("hot_lines ") && first.contains("lines.c:11"), a.stdout)
        let both = try SprofCLI.run(["report", prefix + ".pb.gz", "--addresses", "--lines"])
        XCTAssertEqual(both.status, 2, both.stderr)
    }
}
