#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import SprofTestSupport

/// Paths that name no input: an empty path and standard input given twice are usage errors
/// (status 2) before anything is read; a --baseline that is no stat result says what it is.
final class ProfileInputPathTests: XCTestCase {
    private func goodProfile(_ prefix: String) throws -> String {
        let good = prefix + ".good.folded"
        try "main;a 3\nmain;b 1\n".write(toFile: good, atomically: true, encoding: .utf8)
        return good
    }

    /// `diff - -` would read standard input twice, the second time empty.
    func testDiffRefusesStandardInputTwice() throws {
        let r = try SprofCLI.run(["diff", "-", "-", "-o", SprofCLI.outputPrefix("diff-stdin") + ".svg"], timeout: 60, input: "main;a 1\n")
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(r.stderr, "sprof: both inputs cannot be standard input: give BASE or NEW as a file (see sprof diff --help)\n")
    }

    /// An empty path names no file: a usage error before anything is read or written.
    func testEmptyPathsAreUsageErrors() throws {
        let prefix = SprofCLI.outputPrefix("empty-path")
        let good = try goodProfile(prefix)
        let cases: [([String], String)] = [
            (["flamegraph", good, "-o", ""], "-o '': an empty path; give a file name (see sprof flamegraph --help)"),
            (["convert", good, "--to", "folded", "-o", ""], "-o '': an empty path; give a file name (see sprof convert --help)"),
            (["diff", good, good, "--artifacts", ""], "--artifacts '': an empty path; give a file name (see sprof diff --help)"),
            (["diff", good, good, "-o", ""], "-o '': an empty path; give a file name (see sprof diff --help)"),
            (["report", ""], "FILE '': an empty path; give a file name (see sprof report --help)"),
        ]
        for (args, expected) in cases {
            let r = try SprofCLI.run(args, timeout: 60)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr, "sprof: \(expected)\n", "\(args)")
        }
    }

    /// --baseline that is a directory, empty, or JSON of the wrong shape: the line says what is wrong.
    func testBaselineMessagesSayWhatIsWrong() throws {
        let prefix = SprofCLI.outputPrefix("baseline-shape")
        let array = prefix + ".array.json"
        try "[]".write(toFile: array, atomically: true, encoding: .utf8)
        let dir = NSTemporaryDirectory()
        let fix = "write one with sprof stat --json -o FILE"
        let cases: [(String, String)] = [
            (dir, "--baseline \(dir): a directory, not a 'sprof stat --json' result; give the file, or \(fix)"),
            ("/dev/null", "--baseline /dev/null: empty, not a 'sprof stat --json' result; \(fix)"),
            (array, "--baseline \(array): not a 'sprof stat --json' result (the top level is not a JSON object); write one with sprof stat --json -o \(array)"),
        ]
        for (baseline, expected) in cases {
            let r = try SprofCLI.run(["stat", "--baseline", baseline, "true"], timeout: 60)
            XCTAssertEqual(r.status, 1, "\(baseline): \(r.stderr)")
            XCTAssertEqual(r.stderr, "sprof: \(expected)\n", baseline)
        }
    }
}
