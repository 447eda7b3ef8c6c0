import Foundation
import XCTest
import SprofTestSupport

/// `sprof flamegraph` through the built CLI: folded stacks from a file or from stdin, the same SVG
/// either way, and bad input reported in one line without touching an earlier output file.
final class FlamegraphCommandTests: XCTestCase {
    private let folded = """
        app;main;parse;tokenize 12
        app;main;compute;sqrt 30
        app;main;compute;multiply 25
        app;main;write_output;write;sys_write_[k] 13

        """

    private func titles(_ svg: String) -> [String] {
        svg.components(separatedBy: "<title>").dropFirst().compactMap { $0.components(separatedBy: "</title>").first }
    }

    func testFromAFileAndFromStdinGiveTheSameFlameGraph() throws {
        let dir = SprofCLI.outputPrefix("fg")
        let input = dir + ".folded"
        try folded.write(toFile: input, atomically: true, encoding: .utf8)

        let out = dir + ".svg"
        let fromFile = try SprofCLI.run(["flamegraph", input, "-o", out, "--title", "From a file"])
        XCTAssertEqual(fromFile.status, 0, fromFile.stderr)
        XCTAssertEqual(fromFile.stdout, "", "with -o nothing goes to stdout")
        let svg = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<?xml"), String(svg.prefix(80)))
        XCTAssertTrue(svg.hasSuffix("</svg>\n"), "the SVG is complete")
        XCTAssertTrue(svg.contains("From a file"))
        let t = titles(svg)
        XCTAssertTrue(t.contains("all (80 samples, 100.00%)"), "\(t)")
        XCTAssertTrue(t.contains("compute (55 samples, 68.75%)"), "\(t)")
        XCTAssertTrue(t.contains("sqrt (30 samples, 37.50%)"), "\(t)")
        XCTAssertTrue(t.contains { $0.hasPrefix("sys_write") && $0.contains("13 samples") }, "\(t)")

        let fromStdin = try SprofCLI.run(["flamegraph", "--title", "From a file"], input: folded)
        XCTAssertEqual(fromStdin.status, 0, fromStdin.stderr)
        XCTAssertEqual(fromStdin.stdout, svg, "stdin to stdout gives the same bytes as file to file")
        let dash = try SprofCLI.run(["flamegraph", "-", "--title", "From a file"], input: folded)
        XCTAssertEqual(dash.stdout, svg, "'-' reads stdin")
    }

    func testBadInputIsOneLineAndLeavesTheEarlierOutputAlone() throws {
        let dir = SprofCLI.outputPrefix("bad")
        let out = dir + ".svg"
        try "earlier output\n".write(toFile: out, atomically: true, encoding: .utf8)

        let malformed = try SprofCLI.run(["flamegraph", "-o", out], input: "app;main 3\napp;main;oops\n")
        XCTAssertEqual(malformed.status, 1, malformed.stderr)
        XCTAssertEqual(malformed.stderr.split(separator: "\n").count, 1, malformed.stderr)
        XCTAssertTrue(malformed.stderr.contains("2"), "names the line: \(malformed.stderr)")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "earlier output\n")

        let missing = try SprofCLI.run(["flamegraph", dir + "-missing.folded", "-o", out])
        XCTAssertEqual(missing.status, 1, missing.stderr)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("No such file"), missing.stderr)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "earlier output\n")
    }
}
