import XCTest
import Sprof

/// The `Profile` value on synthetic stacks: top-N arithmetic and output, no kernel needed.
final class ProfileValueTests: XCTestCase {
    private func profile(_ lines: [(String, UInt64)]) -> Profile {
        Profile(folded: lines.map { (frames: $0.0.components(separatedBy: ";"), count: Int64($0.1)) })
    }

    func testTopFunctionsBySelfAndTotal() {
        let p = profile([
            ("app;main;parse;lex", 6),
            ("app;main;parse", 2),
            ("app;main;render", 2),
        ])
        let bySelf = p.topFunctions(10)
        XCTAssertEqual(bySelf.map(\.name), ["lex", "parse", "render", "main"])
        XCTAssertEqual(bySelf[0].selfSamples, 6)
        XCTAssertEqual(bySelf[0].selfPercent, 60, accuracy: 1e-9)
        let parse = bySelf[1]
        XCTAssertEqual(parse.selfSamples, 2)
        XCTAssertEqual(parse.totalSamples, 8)
        XCTAssertEqual(parse.totalPercent, 80, accuracy: 1e-9)
        let byTotal = p.topFunctions(2, by: .totalSamples)
        XCTAssertEqual(byTotal.map(\.name), ["main", "parse"])
        XCTAssertEqual(byTotal[0].totalSamples, 10)
        XCTAssertEqual(byTotal[0].selfSamples, 0)
        XCTAssertFalse(bySelf.contains { $0.name == "app" }, "the process frame is not a function")
    }

    func testRecursionCountsOncePerSampleInTotal() {
        let p = profile([("app;f;f;f", 3), ("app;g", 1)])
        let f = p.topFunctions(5).first { $0.name == "f" }
        XCTAssertEqual(f?.totalSamples, 3)
        XCTAssertEqual(f?.selfSamples, 3)
    }

    func testTruncationMarkerIsNotAFunction() {
        let p = profile([("app;[truncated];deep;leaf", 4)])
        XCTAssertEqual(p.topFunctions(5).map(\.name).sorted(), ["deep", "leaf"])
    }

    func testEmptyProfile() {
        let p = profile([])
        XCTAssertTrue(p.topFunctions().isEmpty)
        XCTAssertEqual(p.foldedText(), "")
        XCTAssertTrue(p.svg().contains("<svg"))
        XCTAssertEqual(p.topTable().split(separator: "\n").count, 1, "header only")
    }

    func testTableAndOutputs() throws {
        let p = profile([("app;main;work", 3), ("app;main", 1)])
        let table = p.topTable(5)
        XCTAssertTrue(table.contains("75.0%"), table)
        XCTAssertTrue(table.split(separator: "\n")[1].hasSuffix("work"), table)
        XCTAssertEqual(p.foldedText(), "app;main 1\napp;main;work 3\n")
        XCTAssertEqual(p.sampleCount { $0 == "work" }, 3)
        XCTAssertEqual(p.sampleCount { $0 == "app" }, 0, "the process frame is not matched")

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-lib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let folded = dir.appendingPathComponent("p.folded").path, svg = dir.appendingPathComponent("p.svg").path
        try p.write(folded: folded, svg: svg, title: "Unit")
        XCTAssertEqual(try String(contentsOfFile: folded, encoding: .utf8), p.foldedText())
        let svgText = try String(contentsOfFile: svg, encoding: .utf8)
        XCTAssertTrue(svgText.contains("Unit"))
        XCTAssertTrue(svgText.contains("work"))
    }

    func testProfileIsSendable() {
        func requireSendable<T: Sendable>(_: T.Type) {}
        requireSendable(Profile.self)
        requireSendable(Profile.Sample.self)
        requireSendable(Profiler.Options.self)
        requireSendable(SprofError.self)
        requireSendable(CounterReadings.self)
        requireSendable(InstructionCount.self)
    }
}
