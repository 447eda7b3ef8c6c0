@testable import SprofOutput
import SprofProfile
import Foundation
import XCTest

final class FlameGraphTests: XCTestCase {
    private func stacks(_ text: String) throws -> FoldedStacks {
        try FoldedStacks.parse(text, source: "test")
    }

    private let sample = """
    app;main;compute;sqrt 30
    app;main;compute 10
    app;main;io;read_[k] 20
    app;main;jit_[j] 5
    app;start 35

    """

    func testWellFormedAndFramesProportional() throws {
        let svg = FlameGraph.render(try stacks(sample))
        let doc = SVGInspector(svg)
        XCTAssertNil(doc.error, "\(String(describing: doc.error))")
        XCTAssertEqual(doc.rootAttributes["width"], "1200")
        XCTAssertEqual(doc.texts["title"], "Flame Graph")
        // all, app, main, start, compute, io, jit, sqrt, read
        XCTAssertEqual(doc.frames.count, 9)
        let all = try XCTUnwrap(doc.frame(named: "all"))
        XCTAssertEqual(all.title, "all (100 samples, 100.00%)")
        XCTAssertEqual(all.x, 10, accuracy: 0.001)
        XCTAssertEqual(all.width, 1180, accuracy: 0.001)
        let compute = try XCTUnwrap(doc.frame(named: "compute"))
        XCTAssertEqual(compute.title, "compute (40 samples, 40.00%)")
        XCTAssertEqual(compute.width, 1180 * 0.4, accuracy: 0.01)
        XCTAssertEqual(compute.dataW, "40")
        // Children are in name order: main (65) before start (35), compute before io before jit.
        let main = try XCTUnwrap(doc.frame(named: "main")), start = try XCTUnwrap(doc.frame(named: "start"))
        XCTAssertLessThan(main.x, start.x)
        let io = try XCTUnwrap(doc.frame(named: "io"))
        XCTAssertEqual(io.dataX, "40")
        XCTAssertEqual(io.x, 10 + 1180 * 0.4, accuracy: 0.01)
        // Root at the bottom: deeper frames have smaller y.
        XCTAssertGreaterThan(all.y, main.y)
        XCTAssertGreaterThan(main.y, compute.y)
        // Kinds get their own colours; colours are a function of the name only.
        let read = try XCTUnwrap(doc.frame(named: "read_[k]"))
        XCTAssertNotEqual(read.fill, compute.fill)
        XCTAssertEqual(FrameKind(frameName: "read_[k]"), .kernel)
        XCTAssertTrue(svg.contains("<script"))
        XCTAssertFalse(svg.contains("http://www.w3.org/1999/xlink"))
        XCTAssertFalse(svg.contains("href"), "no external references")
    }

    func testDeterministicOutput() throws {
        let a = FlameGraph.renderBytes(try stacks(sample))
        let b = FlameGraph.renderBytes(try stacks(sample))
        XCTAssertEqual(a, b)
        // Same samples in another order: same document.
        let shuffled = sample.split(separator: "\n").reversed().joined(separator: "\n")
        XCTAssertEqual(FlameGraph.renderBytes(try stacks(shuffled)), a)
        XCTAssertEqual(FlameGraph.render(try stacks(sample)), String(decoding: a, as: UTF8.self))
    }

    func testUntrustedNamesAreEscapedAndStayOutOfTheScript() throws {
        var s = FoldedStacks()
        let evil = "<script>&\"'"
        s.add(["app", evil], count: 3)
        s.add(["app", "]]></script><script>alert(1)</script>"], count: 1)
        s.add(["app", "x\u{1}\u{FFFE}y"], count: 1)
        var options = FlameGraphOptions(title: "<b>T&itle</b>", subtitle: "cmd 'a' \"b\"", countName: "<samples>")
        options.fontType = "\"><script>"
        let svg = FlameGraph.render(s, options: options)
        let doc = SVGInspector(svg)
        XCTAssertNil(doc.error, "\(String(describing: doc.error))")
        XCTAssertTrue(svg.contains("&lt;script&gt;&amp;&quot;&#39;"))
        XCTAssertFalse(svg.contains("<script>&"))
        XCTAssertFalse(svg.contains("<script>alert"))
        XCTAssertFalse(svg.contains("<b>"))
        XCTAssertEqual(doc.frame(named: evil)?.title, "\(evil) (3 <samples>, 60.00%)")
        XCTAssertEqual(doc.texts["title"], "<b>T&itle</b>")
        XCTAssertEqual(doc.texts["subtitle"], "cmd 'a' \"b\"")
        // Exactly one script element, and it holds no profile data.
        let parts = svg.components(separatedBy: "<script")
        XCTAssertEqual(parts.count, 2)
        let script = parts[1].components(separatedBy: "</script>")[0]
        XCTAssertFalse(script.contains("alert(1)"))
        XCTAssertFalse(script.contains("app"))
    }

    func testMinWidthPrunesAndCounts() throws {
        let svg = FlameGraph.render(try stacks("a;big 100000\na;tiny 1\na;tiny;deeper 1\n"))
        let doc = SVGInspector(svg)
        XCTAssertNil(doc.error)
        XCTAssertNil(doc.frame(named: "tiny"))
        XCTAssertNil(doc.frame(named: "deeper"))
        XCTAssertNotNil(doc.frame(named: "big"))
        XCTAssertEqual(doc.texts["note"], "2 frames narrower than 0.10 px not shown")
        XCTAssertTrue(svg.contains("3 frames drawn, 2 narrower than 0.10 px omitted"))

        let everything = FlameGraph.render(try stacks("a;big 100000\na;tiny 1\na;tiny;deeper 1\n"),
                                           options: FlameGraphOptions(minWidth: 0))
        let full = SVGInspector(everything)
        XCTAssertNotNil(full.frame(named: "deeper"))
        XCTAssertNil(full.texts["note"])
    }

    func testInvertedPutsRootOnTop() throws {
        let s = try stacks(sample)
        let doc = SVGInspector(FlameGraph.render(s, options: FlameGraphOptions(inverted: true)))
        XCTAssertNil(doc.error)
        XCTAssertEqual(doc.texts["title"], "Icicle Graph")
        let all = try XCTUnwrap(doc.frame(named: "all")), sqrt = try XCTUnwrap(doc.frame(named: "sqrt"))
        XCTAssertLessThan(all.y, sqrt.y)
        XCTAssertEqual(doc.frames.map(\.y).min(), all.y)
        let titled = SVGInspector(FlameGraph.render(s, options: FlameGraphOptions(title: "Mine", inverted: true)))
        XCTAssertEqual(titled.texts["title"], "Mine")
    }

    func testEmptyInputSaysNoSamples() {
        let svg = FlameGraph.render(FoldedStacks())
        let doc = SVGInspector(svg)
        XCTAssertNil(doc.error)
        XCTAssertEqual(doc.texts["empty"], "No samples")
        XCTAssertTrue(doc.frames.isEmpty)
    }

    func testPalettesAndLabels() throws {
        let s = try stacks(sample)
        var fills: Set<String> = []
        for palette in FlameGraphPalette.allCases {
            let doc = SVGInspector(FlameGraph.render(s, options: FlameGraphOptions(palette: palette)))
            XCTAssertNil(doc.error)
            let fill = try XCTUnwrap(doc.frame(named: "compute")?.fill)
            XCTAssertTrue(fill.hasPrefix("#") && fill.count == 7)
            fills.insert(fill)
            // Kernel frames keep their family whatever the palette.
            XCTAssertEqual(doc.frame(named: "read_[k]")?.fill,
                           SVGInspector(FlameGraph.render(s)).frame(named: "read_[k]")?.fill)
        }
        XCTAssertEqual(fills.count, FlameGraphPalette.allCases.count)
        XCTAssertTrue(FlameGraphPalette.names.hasPrefix("hot, mem, io"))
    }

    func testLabelTruncation() {
        func label(_ name: String, _ width: Double) -> String {
            var out: [UInt8] = []
            Array(name.utf8).withUnsafeBufferPointer {
                FlameGraph.appendLabel($0, width: width, charWidth: 10, into: &out)
            }
            return String(decoding: out, as: UTF8.self)
        }
        XCTAssertEqual(label("abcdef", 63), "abcdef")       // room for 6
        XCTAssertEqual(label("abcdefg", 63), "abcd..")      // 7 > 6: 4 characters and ".."
        XCTAssertEqual(label("abc", 32), "")                 // room for 2: nothing
        XCTAssertEqual(label("ééééé", 43), "éé..")          // cut between scalars, not bytes
        XCTAssertEqual(label("éééé", 43), "éééé")
        XCTAssertEqual(label("<<<<<<", 43), "&lt;&lt;..")    // escaped after cutting
    }

    func testLargeProfileRenders() throws {
        var s = FoldedStacks()
        for i in 0 ..< 20000 {
            s.add(["app", "m\(i % 10)", "n\(i % 100)", "leaf\(i)"], count: UInt64(1 + i % 5))
        }
        let bytes = FlameGraph.renderBytes(s)
        let doc = SVGInspector(String(decoding: bytes, as: UTF8.self))
        XCTAssertNil(doc.error)
        XCTAssertGreaterThan(doc.frames.count, 100)
        // Every frame that was drawn is at least minWidth wide.
        XCTAssertTrue(doc.frames.allSatisfy { $0.width >= 0.1 - 0.005 })
    }

    private func nodeExecutable() throws -> String {
        let found = ["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let found else { throw XCTSkip("node not installed") }
        return found
    }

    private func runNode(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try nodeExecutable())
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    private func temporaryFile(_ name: String, _ contents: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-\(getpid())-\(name)")
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// The embedded script must at least be valid JavaScript; checked with node when it is installed.
    func testScriptIsValidJavaScript() throws {
        _ = try nodeExecutable()
        let svg = FlameGraph.render(try stacks(sample))
        let body = svg.components(separatedBy: "<![CDATA[")[2].components(separatedBy: "]]>")[0]
        let path = try temporaryFile("fg.js", body)
        defer { try? FileManager.default.removeItem(at: path) }
        let result = try runNode(["--check", path.path])
        XCTAssertEqual(result.status, 0, result.output)
    }

    /// Drives the script (hover, zoom, unzoom, search with nested matches, Escape) in node against a
    /// minimal fake DOM: Fixtures/script-check.js holds the DOM and the expectations.
    func testScriptBehaviour() throws {
        _ = try nodeExecutable()
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let input = try XCTUnwrap(FileManager.default.contents(atPath: fixtures.appendingPathComponent("simple.folded").path))
        let svg = FlameGraph.render(try FoldedStacks.parse(bytes: [UInt8](input), source: "simple.folded"))
        let path = try temporaryFile("fg.svg", svg)
        defer { try? FileManager.default.removeItem(at: path) }
        let result = try runNode([fixtures.appendingPathComponent("script-check.js").path, path.path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("OK"), result.output)
    }
}
