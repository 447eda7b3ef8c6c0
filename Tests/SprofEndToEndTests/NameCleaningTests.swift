import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// Names read from a pprof file are untrusted: every text view (report text and CSV, diff and its
/// artifacts, annotate) prints them cleaned as folded stacks clean theirs (NameCleaning), so no
/// escape sequence reaches the terminal, no newline splits a row, and a profile compared with its
/// own folded conversion has the same names. A `;` is kept (Rust's `[u8; 32]`): only folded stacks,
/// where it separates frames, turn it into `:`.
final class NameCleaningTests: XCTestCase {
    static let hostile = "g\u{1B}[1m:h i\n7"
    static let cleaned = "g?[1m:h i?7"
    /// What the profile is built with: sprof writes names cleaned, so the hostile bytes are put
    /// into the written file in its place (same length: no protobuf length changes).
    static let placeholder = "gE[1mSh iN7"

    /// The uncompressed pprof of ``profile()`` with the function name made hostile, as another
    /// tool could write it.
    static func hostilePprof() throws -> Data {
        var bytes = try PprofFormat.encodeUncompressed(profile())
        let from = Array(placeholder.utf8), to = Array(hostile.utf8)
        precondition(from.count == to.count)
        var replaced = 0
        var i = 0
        while i + from.count <= bytes.count {
            if Array(bytes[i ..< i + from.count]) == from {
                bytes.replaceSubrange(i ..< i + from.count, with: to)
                replaced += 1
            }
            i += 1
        }
        precondition(replaced > 0)
        return Data(bytes)
    }

    /// main → hostile, with a source line for annotate; a thread whose names are hostile too.
    static func profile() -> Profile {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let thread = b.thread(.init(pid: 7, tid: 8, name: "t\u{1B}]0;x\u{07}", processName: "p\u{1B}[2J"))
        let main = b.function(.init(name: "main", file: "m.c"))
        let hot = b.function(.init(name: placeholder, file: "h.c"))
        let stack = b.stack([b.location(.init(address: 0x20, lines: [.init(function: hot, line: 3)])),
                             b.location(.init(address: 0x10, lines: [.init(function: main, line: 1)]))])
        b.add(stack: stack, thread: thread, values: [9])
        b.add(stack: b.stack([b.location(.init(address: 0x10, lines: [.init(function: main, line: 1)]))]), thread: thread, values: [1])
        return b.build(metadata: .init())
    }

    private func assertClean(_ text: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(text.contains("\u{1B}"), "\(what) prints an escape: \(text.debugDescription)", file: file, line: line)
        XCTAssertFalse(text.contains("\u{07}"), "\(what) prints a BEL: \(text.debugDescription)", file: file, line: line)
    }

    /// Two names that differ only in bytes that are not UTF-8 stay two functions, shown escaped.
    func testNamesThatAreNotUTF8StayApart() throws {
        let path = SprofCLI.outputPrefix("bytes") + ".folded"
        let text: [UInt8] = Array("app;main;f".utf8) + [0xFF] + Array(" 3\napp;main;f".utf8) + [0xFE] + Array(" 2\n".utf8)
        try Data(text).write(to: URL(fileURLWithPath: path))
        let r = try SprofCLI.run(["report", "--format", "csv", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("f\\xff"), r.stdout)
        XCTAssertTrue(r.stdout.contains("f\\xfe"), r.stdout)
        let folded = try SprofCLI.run(["convert", path, "--to", "folded", "-o", "-"])
        XCTAssertEqual(folded.stdout, "app;main;f\\xfe 2\napp;main;f\\xff 3\n", folded.stderr)
    }

    func testHostileNamesArePrintedCleanedByEveryTextView() throws {
        let dir = SprofCLI.outputPrefix("names")
        let pprof = dir + ".pb.gz"
        try Self.hostilePprof().write(to: URL(fileURLWithPath: pprof))

        let text = try SprofCLI.run(["report", pprof])
        XCTAssertEqual(text.status, 0, text.stderr)
        assertClean(text.stdout, "report")
        let row = try XCTUnwrap(text.stdout.split(separator: "\n").first { $0.hasSuffix(Self.cleaned) }, text.stdout.debugDescription)
        XCTAssertTrue(row.contains("90.00%"), "one row, not split: \(row)")

        let sorted = try SprofCLI.run(["report", pprof, "--sort", "comm,thread,sym", "--lines"])
        XCTAssertEqual(sorted.status, 0, sorted.stderr)
        assertClean(sorted.stdout, "report --sort comm,thread,sym --lines")
        XCTAssertTrue(sorted.stdout.contains("p?[2J  t?]0;x?-8  \(Self.cleaned) h.c:3"), sorted.stdout.debugDescription)

        let csv = try SprofCLI.run(["report", pprof, "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        assertClean(csv.stdout, "report --format csv")
        XCTAssertEqual(csv.stdout.split(separator: "\n").count, 3, "header and two rows: \(csv.stdout.debugDescription)")

        // A pprof → folded round trip names functions as the pprof does: nothing changes.
        let folded = dir + ".folded"
        let convert = try SprofCLI.run(["convert", pprof, "--to", "folded", "-o", folded])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        let diff = try SprofCLI.run(["diff", folded, pprof, "-o", dir + ".svg", "--limit", "0"])
        XCTAssertEqual(diff.status, 0, diff.stderr)
        assertClean(diff.stdout, "diff")
        let diffRows = diff.stdout.split(separator: "\n").dropFirst()
        XCTAssertEqual(diffRows.filter { $0.contains("h i") }.count, 1, "one row for the function on both sides: \(diff.stdout.debugDescription)")
        XCTAssertTrue(diffRows.allSatisfy { !$0.contains("+") || $0.contains("+0.00") }, "no share moved: \(diff.stdout)")

        let artifacts = dir + ".artifacts"
        let a = try SprofCLI.run(["diff", folded, pprof, "--artifacts", artifacts])
        XCTAssertEqual(a.status, 0, a.stderr)
        for case let name as String in FileManager.default.enumerator(atPath: artifacts)! where name.hasSuffix(".txt") {
            let content = try String(contentsOfFile: artifacts + "/" + name, encoding: .utf8)
            assertClean(content, name)
            // The diff table of a profile against itself has no rows; the top table has the name.
            if !name.hasSuffix("_diff_top.txt") { XCTAssertTrue(content.contains(Self.cleaned), "\(name): \(content.debugDescription)") }
        }

        let annotate = try SprofCLI.run(["annotate", "h i", pprof])
        XCTAssertEqual(annotate.status, 0, annotate.stderr)
        assertClean(annotate.stdout + annotate.stderr, "annotate")
        XCTAssertTrue(annotate.stdout.contains("ROUTINE ======================== \(Self.cleaned) in h.c\n"), annotate.stdout.debugDescription)
    }
}
